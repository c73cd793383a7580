// Process faults through the supervisor (ProcessControl): kill -9, SIGSTOP/SIGCONT, SIGTERM,
// restart and kill-and-restart, verified through /proc/<pid>/stat.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>

#include "faultline/chaos/faults/fault.h"

namespace faultline::chaos {

// The state letter of /proc/<pid>/stat ('R', 'S', 'T' stopped, 'Z', ...); nullopt if no process.
std::optional<char> process_state(pid_t pid);
// Parses the state letter out of a /proc/<pid>/stat line (the comm field may contain spaces and
// parentheses, so it is found from the last ')').
std::optional<char> parse_stat_state(const std::string& stat_line);

std::unique_ptr<Fault> make_process_fault(const FaultSpec& spec, ProcessControl& processes);

}  // namespace faultline::chaos
