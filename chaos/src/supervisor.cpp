// Process launching with Boost.Process. This file must never include standalone Asio
// (ARCHITECTURE.md §10).
#include "faultline/chaos/supervisor.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/env.hpp>
#include <boost/process/environment.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/io.hpp>
#include <boost/process/search_path.hpp>
#include <mutex>
#include <thread>

#include "faultline/chaos/journal.h"
#include "faultline/chaos/netns.h"

namespace faultline::chaos {
namespace bp = boost::process;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {
constexpr std::string_view kKind = resource_kind::process;

std::error_code errno_code() {
  return {errno, std::system_category()};
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0)
      ::close(fd);
  }
};
}  // namespace

struct Supervisor::Impl {
  struct Child {
    ProcessSpec spec;
    pid_t pid = -1;  // -1: not running (never started, or reaped)
    std::optional<ExitStatus> exit;
  };

  Journal* journal;
  fs::path log_dir;
  mutable std::mutex mu;
  std::map<std::string, Child> children;

  // Reaps pid if it has exited; returns true when it is gone. Caller holds mu.
  bool reap_locked(Child& c) {
    if (c.pid < 0)
      return true;
    int status = 0;
    pid_t r = ::waitpid(c.pid, &status, WNOHANG);
    if (r == 0)
      return false;
    ExitStatus es;
    if (r == c.pid) {
      if (WIFEXITED(status))
        es.code = WEXITSTATUS(status);
      if (WIFSIGNALED(status))
        es.signal = WTERMSIG(status);
    }
    // r < 0 (ECHILD): someone else reaped it; it is gone either way.
    spdlog::info("chaos.process_exited name={} pid={} code={} signal={}", c.spec.name, c.pid,
                 es.code.value_or(-1), es.signal.value_or(0));
    c.exit = es;
    c.pid = -1;
    if (journal)
      (void)journal->removed(kKind, c.spec.name, c.spec.netns.value_or(""));
    return true;
  }

  std::error_code launch_locked(Child& c) {
    const ProcessSpec& spec = c.spec;
    if (spec.argv.empty())
      return std::make_error_code(std::errc::invalid_argument);
    std::error_code ec;
    NetnsFd ns;
    if (spec.netns) {
      ns = open_netns(*spec.netns, ec);
      if (ec)
        return ec;
    }
    fs::create_directories(log_dir, ec);
    if (ec)
      return ec;
    Fd out{::open((log_dir / (spec.name + ".stdout")).c_str(),
                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)};
    Fd err{::open((log_dir / (spec.name + ".stderr")).c_str(),
                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)};
    if (out.fd < 0 || err.fd < 0)
      return errno_code();
    const std::string cgroup_procs = spec.cgroup ? (*spec.cgroup / "cgroup.procs").string() : "";

    fs::path exe = spec.argv[0];
    if (exe.string().find('/') == std::string::npos) {
      exe = bp::search_path(exe.string()).string();
      if (exe.empty())
        return std::make_error_code(std::errc::no_such_file_or_directory);
    }
    std::vector<std::string> args(spec.argv.begin() + 1, spec.argv.end());
    bp::environment env = boost::this_process::environment();
    for (const auto& [k, v] : spec.env)
      env[k] = v;

    if (journal) {
      if ((ec = journal->intend(kKind, spec.name, spec.netns.value_or(""),
                                {{"argv0", spec.argv[0]}}))) {
        return ec;
      }
    }
    const pid_t parent = ::getpid();
    const int ns_fd = ns.get();
    const int out_fd = out.fd;
    const int err_fd = err.fd;
    // Runs in the child between fork and exec: only async-signal-safe calls.
    auto setup = [=](auto& exec) {
      auto fail = [&](const char* what) { exec.set_error(errno_code(), what); };
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        return fail("prctl(PR_SET_PDEATHSIG)");
      if (::getppid() != parent)
        ::_exit(127);  // the harness died before prctl took effect
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::setpgid(0, 0);  // a terminal's ^C goes to the harness, which decides
      if (ns_fd >= 0 && ::setns(ns_fd, CLONE_NEWNET) != 0)
        return fail("setns");
      if (!cgroup_procs.empty()) {
        int fd = ::open(cgroup_procs.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ::write(fd, "0", 1) != 1)
          return fail("cgroup.procs");
        ::close(fd);
      }
      if (::dup2(out_fd, STDOUT_FILENO) < 0 || ::dup2(err_fd, STDERR_FILENO) < 0)
        return fail("dup2");
    };
    bp::child child(exe.string(), bp::args(args), env, bp::std_in < bp::null,
                    bp::extend::on_exec_setup(setup), ec);
    if (ec) {
      spdlog::error("chaos.process_start_failed name={} exe={} error=\"{}\"", spec.name,
                    exe.string(), ec.message());
      if (journal)
        (void)journal->removed(kKind, spec.name, spec.netns.value_or(""));
      return ec;
    }
    c.pid = child.id();
    c.exit.reset();
    // We reap with waitpid ourselves (WNOHANG polling, timeouts); bp::child must not.
    child.detach();
    if (journal) {
      nlohmann::json details = {{"pid", c.pid}};
      if (auto st = process_start_time(c.pid))
        details["start_time"] = *st;
      (void)journal->created(kKind, spec.name, spec.netns.value_or(""), std::move(details));
    }
    spdlog::info("chaos.process_started name={} pid={} netns={}", spec.name, c.pid,
                 spec.netns.value_or(""));
    return {};
  }

  Child* find_locked(const std::string& name) {
    auto it = children.find(name);
    return it == children.end() ? nullptr : &it->second;
  }
};

Supervisor::Supervisor(Journal* journal, fs::path log_dir) : impl_(std::make_unique<Impl>()) {
  impl_->journal = journal;
  impl_->log_dir = std::move(log_dir);
}

Supervisor::~Supervisor() {
  stop_all();
}

std::error_code Supervisor::start(const ProcessSpec& spec) {
  std::lock_guard lock(impl_->mu);
  auto& c = impl_->children[spec.name];
  if (!impl_->reap_locked(c))
    return std::make_error_code(std::errc::file_exists);
  c.spec = spec;
  return impl_->launch_locked(c);
}

std::error_code Supervisor::wait_ready(const std::string& name, const TcpEndpoint& endpoint,
                                       std::chrono::milliseconds timeout) {
  std::optional<std::string> netns;
  {
    std::lock_guard lock(impl_->mu);
    auto* c = impl_->find_locked(name);
    if (c == nullptr)
      return std::make_error_code(std::errc::no_such_process);
    netns = c->spec.netns;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto attempt_loop = [&]() -> std::error_code {
    for (;;) {
      {
        std::lock_guard lock(impl_->mu);
        auto* c = impl_->find_locked(name);
        if (c == nullptr || impl_->reap_locked(*c))
          return std::make_error_code(std::errc::no_such_process);
      }
      // Connection refused comes back at once while the listener is not up yet: retry quickly.
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms)
        return std::make_error_code(std::errc::timed_out);
      if (!tcp_connect_once("", endpoint, std::min<std::chrono::milliseconds>(left, 200ms)))
        return {};
      std::this_thread::sleep_for(5ms);
    }
  };
  // One thread in the namespace for the whole loop rather than one per attempt.
  return netns ? run_in_netns(*netns, attempt_loop) : attempt_loop();
}

std::error_code Supervisor::signal(const std::string& name, int signo) {
  std::lock_guard lock(impl_->mu);
  auto* c = impl_->find_locked(name);
  if (c == nullptr || impl_->reap_locked(*c))
    return std::make_error_code(std::errc::no_such_process);
  if (::kill(c->pid, signo) != 0)
    return errno_code();
  spdlog::info("chaos.process_signal name={} pid={} signal={}", name, c->pid, signo);
  return {};
}

std::error_code Supervisor::wait_exit(const std::string& name, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    {
      std::lock_guard lock(impl_->mu);
      auto* c = impl_->find_locked(name);
      if (c == nullptr || impl_->reap_locked(*c))
        return {};
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return std::make_error_code(std::errc::timed_out);
    std::this_thread::sleep_for(2ms);
  }
}

std::error_code Supervisor::stop(const std::string& name, std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(impl_->mu);
    auto* c = impl_->find_locked(name);
    if (c == nullptr || impl_->reap_locked(*c))
      return {};
    ::kill(c->pid, SIGCONT);  // a paused process cannot act on SIGTERM
    ::kill(c->pid, SIGTERM);
  }
  if (!wait_exit(name, grace))
    return {};
  {
    std::lock_guard lock(impl_->mu);
    auto* c = impl_->find_locked(name);
    if (c != nullptr && c->pid > 0)
      ::kill(c->pid, SIGKILL);
  }
  // SIGKILL cannot be ignored; the wait only covers the kernel tearing the process down.
  return wait_exit(name, 10s);
}

std::error_code Supervisor::restart(const std::string& name) {
  if (auto ec = stop(name))
    return ec;
  std::lock_guard lock(impl_->mu);
  auto* c = impl_->find_locked(name);
  if (c == nullptr)
    return std::make_error_code(std::errc::no_such_process);
  return impl_->launch_locked(*c);
}

void Supervisor::stop_all() {
  std::vector<std::string> running;
  {
    std::lock_guard lock(impl_->mu);
    for (auto& [name, c] : impl_->children) {
      if (!impl_->reap_locked(c)) {
        ::kill(c.pid, SIGKILL);
        running.push_back(name);
      }
    }
  }
  for (const auto& name : running)
    (void)wait_exit(name, 10s);
}

bool Supervisor::is_running(const std::string& name) {
  std::lock_guard lock(impl_->mu);
  auto* c = impl_->find_locked(name);
  return c != nullptr && !impl_->reap_locked(*c);
}

std::optional<pid_t> Supervisor::pid(const std::string& name) {
  std::lock_guard lock(impl_->mu);
  auto* c = impl_->find_locked(name);
  if (c == nullptr || impl_->reap_locked(*c))
    return std::nullopt;
  return c->pid;
}

std::optional<ExitStatus> Supervisor::exit_status(const std::string& name) {
  std::lock_guard lock(impl_->mu);
  auto* c = impl_->find_locked(name);
  if (c == nullptr || !impl_->reap_locked(*c))
    return std::nullopt;
  return c->exit;
}

std::vector<std::string> Supervisor::names() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> out;
  for (const auto& [name, c] : impl_->children)
    out.push_back(name);
  return out;
}

fs::path Supervisor::stdout_path(const std::string& name) const {
  return impl_->log_dir / (name + ".stdout");
}
fs::path Supervisor::stderr_path(const std::string& name) const {
  return impl_->log_dir / (name + ".stderr");
}

}  // namespace faultline::chaos
