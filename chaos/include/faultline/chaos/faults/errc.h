// Error codes of the fault backends. Expected failures (a kernel without sch_netem, a target that
// is not in the run, a partition that did not take) are values of this enum; kernel errors from
// netlink / nftables / syscalls are mapped to the closest code at the boundary and logged with the
// failing call.
#pragma once

#include <system_error>

namespace faultline::chaos {

enum class fault_errc {
  ok = 0,
  invalid_spec = 1,     // parameters out of range / missing targets
  unknown_kind,         // no such fault kind
  unknown_target,       // target node is not part of the run
  backend_unavailable,  // the host lacks the kernel feature (e.g. sch_netem)
  kernel_error,         // a netlink / nftables / syscall failed
  verify_failed,        // injected, but the effect could not be observed
  not_found,            // no active fault with that id
  not_owned,            // refusing to touch a resource without the run's prefix
};

const std::error_category& fault_category() noexcept;

inline std::error_code make_error_code(fault_errc e) noexcept {
  return {static_cast<int>(e), fault_category()};
}

}  // namespace faultline::chaos

template <>
struct std::is_error_code_enum<faultline::chaos::fault_errc> : std::true_type {};
