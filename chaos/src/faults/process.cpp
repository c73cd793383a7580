#include "faultline/chaos/faults/process.h"

#include <signal.h>

#include <fstream>
#include <sstream>
#include <thread>

namespace faultline::chaos {

using namespace std::chrono_literals;

std::optional<char> parse_stat_state(const std::string& line) {
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size())
    return std::nullopt;
  return line[close + 2];
}

std::optional<char> process_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line))
    return std::nullopt;
  return parse_stat_state(line);
}

namespace {

constexpr auto kStopTimeout = 10s;  // SIGTERM: controlled shutdown may take a while
constexpr auto kKillTimeout = 2s;

class ProcessFault final : public Fault {
 public:
  ProcessFault(const FaultSpec& spec, ProcessControl& processes)
      : kind_(spec.kind), node_(spec.targets.at(0)), processes_(processes) {}

  std::error_code inject() override {
    pid_ = processes_.pid(node_);
    switch (kind_) {
      case FaultKind::kill:
        return processes_.signal(node_, SIGKILL);
      case FaultKind::pause:
        return processes_.signal(node_, SIGSTOP);
      case FaultKind::stop:
        return processes_.signal(node_, SIGTERM);
      case FaultKind::restart:
        return stop_and_start(SIGTERM, kStopTimeout);
      case FaultKind::kill_restart:
        return stop_and_start(SIGKILL, kKillTimeout);
      default:
        return fault_errc::invalid_spec;
    }
  }

  std::error_code heal() override {
    switch (kind_) {
      case FaultKind::pause:
        // SIGCONT to a running process is harmless, so healing twice is fine.
        if (!processes_.pid(node_))
          return {};
        return processes_.signal(node_, SIGCONT);
      case FaultKind::kill:
      case FaultKind::stop:
        if (auto pid = processes_.pid(node_); pid && process_state(*pid))
          return {};  // running
        return processes_.start(node_);
      default:
        return {};  // one-offs have nothing to heal
    }
  }

  std::error_code verify() override {
    switch (kind_) {
      case FaultKind::pause: {
        // SIGSTOP is delivered asynchronously: allow a moment for the state to show.
        for (int i = 0; i < 50; ++i) {
          if (pid_ && process_state(*pid_) == 'T')
            return {};
          std::this_thread::sleep_for(2ms);
        }
        return fault_errc::verify_failed;
      }
      case FaultKind::kill:
      case FaultKind::stop:
        return gone(*pid_, kind_ == FaultKind::kill ? kKillTimeout : kStopTimeout);
      case FaultKind::restart:
      case FaultKind::kill_restart: {
        auto now = processes_.pid(node_);
        return now && now != pid_ && process_state(*now)
                   ? std::error_code{}
                   : make_error_code(fault_errc::verify_failed);
      }
      default:
        return fault_errc::invalid_spec;
    }
  }

  std::error_code verify_healed() override {
    auto pid = processes_.pid(node_);
    if (!pid)
      return fault_errc::verify_failed;
    auto state = process_state(*pid);
    return state && *state != 'T' && *state != 'Z' ? std::error_code{}
                                                   : make_error_code(fault_errc::verify_failed);
  }

  std::string backend() const override { return "signal"; }
  nlohmann::json details() const override {
    return pid_ ? nlohmann::json{{"pid", *pid_}} : nlohmann::json::object();
  }

 private:
  std::error_code gone(pid_t pid, std::chrono::milliseconds timeout) {
    if (auto ec = processes_.wait_exit(node_, timeout))
      return ec;
    auto state = process_state(pid);
    return !state || *state == 'Z' ? std::error_code{} : make_error_code(fault_errc::verify_failed);
  }

  std::error_code stop_and_start(int signo, std::chrono::milliseconds timeout) {
    if (auto ec = processes_.signal(node_, signo))
      return ec;
    if (auto ec = processes_.wait_exit(node_, timeout))
      return ec;
    return processes_.start(node_);
  }

  FaultKind kind_;
  NodeName node_;
  ProcessControl& processes_;
  std::optional<pid_t> pid_;
};

}  // namespace

std::unique_ptr<Fault> make_process_fault(const FaultSpec& spec, ProcessControl& processes) {
  return std::make_unique<ProcessFault>(spec, processes);
}

}  // namespace faultline::chaos
