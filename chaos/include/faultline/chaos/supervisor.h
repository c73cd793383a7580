// The process supervisor: starts every node process (broker, controller, probe, workload) inside
// its network namespace (and cgroup) before exec, captures its stdout/stderr to per-process files,
// and signals, waits for, reaps and restarts it.
//
// Lifecycle and safety: each child is journaled (intended before fork, created with pid and
// /proc start time after) so `faultline clean` can kill leftovers of a crashed harness; each child
// gets PR_SET_PDEATHSIG(SIGKILL), so it also dies with the harness. Note that the kernel sends the
// death signal when the *thread* that forked exits: call start()/restart() from a long-lived
// thread. stop() and the destructor reap every child, so no zombie is left behind. Thread-safety:
// all methods may be called from any thread (internally serialised). Boost.Process is used only in
// the implementation: this header includes neither it nor Asio.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace faultline::chaos {

class Journal;

struct ProcessSpec {
  std::string name;               // unique per supervisor, e.g. "b1"; also the log file stem
  std::vector<std::string> argv;  // argv[0] is the executable path (searched in PATH if relative)
  std::map<std::string, std::string> env;       // added to / overriding the harness environment
  std::optional<std::string> netns;             // /run/netns/<netns> entered before exec
  std::optional<std::filesystem::path> cgroup;  // cgroup directory joined before exec
};

struct TcpEndpoint {
  std::string address;  // IPv4 dotted
  uint16_t port = 0;
};

// How a child ended (from waitpid).
struct ExitStatus {
  std::optional<int> code;    // exited normally
  std::optional<int> signal;  // killed by a signal
};

class Supervisor {
 public:
  // journal may be null (tests without a run) and must otherwise outlive the Supervisor; log_dir
  // gets <name>.stdout / <name>.stderr (appended to across restarts).
  Supervisor(Journal* journal, std::filesystem::path log_dir);
  ~Supervisor();  // stop_all(): SIGKILL and reap whatever still runs
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Starts the process; errc::file_exists if one with that name is running.
  std::error_code start(const ProcessSpec& spec);
  // Connects to endpoint from inside the process's namespace until it accepts, the process exits
  // (errc::no_such_process) or timeout passes (errc::timed_out).
  std::error_code wait_ready(const std::string& name, const TcpEndpoint& endpoint,
                             std::chrono::milliseconds timeout);
  // Sends signo (SIGKILL, SIGSTOP, SIGCONT, SIGTERM, ...). errc::no_such_process if not running.
  std::error_code signal(const std::string& name, int signo);
  // Waits for the process to exit and reaps it; errc::timed_out if it still runs after timeout.
  std::error_code wait_exit(const std::string& name, std::chrono::milliseconds timeout);
  // SIGTERM, then SIGKILL after grace; always reaps. A stopped process is continued first so that
  // it can act on SIGTERM.
  std::error_code stop(const std::string& name,
                       std::chrono::milliseconds grace = std::chrono::milliseconds(2000));
  // Starts a stopped/exited process again with its last spec (stops it first if running).
  std::error_code restart(const std::string& name);
  void stop_all();

  bool is_running(const std::string& name);
  std::optional<pid_t> pid(const std::string& name);
  std::optional<ExitStatus> exit_status(const std::string& name);
  std::vector<std::string> names() const;
  std::filesystem::path stdout_path(const std::string& name) const;
  std::filesystem::path stderr_path(const std::string& name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Connects to endpoint from inside netns (empty: caller's namespace) with a timeout per attempt.
// Success when the connection is accepted.
std::error_code tcp_connect_once(const std::string& netns, const TcpEndpoint& endpoint,
                                 std::chrono::milliseconds timeout);

// The start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat): with the
// pid it identifies a process across pid reuse. nullopt if no such process.
std::optional<uint64_t> process_start_time(pid_t pid);

}  // namespace faultline::chaos
