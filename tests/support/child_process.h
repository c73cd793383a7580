// A child process for integration tests that run real faultline binaries on loopback.
//
// RAII: the destructor kills (SIGKILL) and reaps the child, so a failing test leaves no process
// behind. stdout/stderr go to a log file the test names, to read on failure.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace faultline::testing {

// The directory holding the project's executables: $FAULTLINE_BUILD_DIR/bin, else ./bin (ctest runs
// test binaries with the build directory as the working directory).
inline std::filesystem::path binary_dir() {
  if (const char* b = std::getenv("FAULTLINE_BUILD_DIR")) {
    return std::filesystem::path(b) / "bin";
  }
  return std::filesystem::current_path() / "bin";
}

class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(std::vector<std::string> argv, std::filesystem::path log_file)
      : argv_(std::move(argv)), log_file_(std::move(log_file)) {
    start();
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&& o) noexcept { *this = std::move(o); }
  ChildProcess& operator=(ChildProcess&& o) noexcept {
    if (this != &o) {
      kill_and_reap();
      argv_ = std::move(o.argv_);
      log_file_ = std::move(o.log_file_);
      pid_ = o.pid_;
      o.pid_ = -1;
    }
    return *this;
  }
  ~ChildProcess() { kill_and_reap(); }

  void start() {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    std::vector<char*> args;
    for (auto& a : argv_)
      args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
      throw std::runtime_error("posix_spawn " + argv_[0] + ": " + std::to_string(rc));
    pid_ = pid;
  }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  void signal(int sig) const {
    if (pid_ > 0)
      ::kill(pid_, sig);
  }

  // Waits for the child to exit; returns its exit status (or 128+signal), -1 on timeout.
  int wait_for(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() > deadline)
        return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
  }

  void kill_and_reap() {
    if (pid_ > 0) {
      ::kill(pid_, SIGCONT);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

  std::string log() const {
    std::ifstream in(log_file_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::vector<std::string> argv_;
  std::filesystem::path log_file_;
  pid_t pid_ = -1;
};

// A fresh temporary directory removed (recursively) when the object goes away.
class TempDir {
 public:
  explicit TempDir(const std::string& stem = "faultline-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (stem + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace faultline::testing
