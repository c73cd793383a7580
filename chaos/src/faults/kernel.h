// Thin I/O shell of the fault backends: everything here runs a kernel operation inside one named
// network namespace and maps the failure to an error_code (logging the failing call). Private.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

#include "faultline/chaos/faults/spec.h"

namespace faultline::chaos::kernel {

// Runs fn on a fresh thread that has entered /run/netns/<netns> (network namespaces are
// per-thread, so the caller's thread never changes namespace). An empty name is refused: faults
// never run in the root namespace.
std::error_code in_netns(const std::string& netns, const std::function<std::error_code()>& fn);

// libnftables: run `commands` in the namespace. `error_out` gets nft's message on failure.
std::error_code nft_run(const std::string& netns, const std::string& commands,
                        std::string* error_out = nullptr);
// Same, in the caller's namespace, output captured (used for the root-ruleset snapshot in tests).
std::error_code nft_run_here(const std::string& commands, std::string* output);
// Whether `table inet <name>` exists in the namespace.
bool nft_table_exists(const std::string& netns, const std::string& table);

// Deletes `table inet <name>` if present (idempotent); one namespace entry, one nft context.
std::error_code nft_delete_table_if_exists(const std::string& netns, const std::string& table);

std::error_code set_link_up(const std::string& netns, const std::string& ifname, bool up);
std::error_code link_is_up(const std::string& netns, const std::string& ifname, bool& up);

// Root qdisc on the interface. kind "tbf" / "netem". netem with kernel lacking sch_netem yields
// fault_errc::backend_unavailable.
std::error_code add_tbf(const std::string& netns, const std::string& ifname, const RateParams& p);
std::error_code add_netem(const std::string& netns, const std::string& ifname,
                          const PacketParams& p);
// Removes the root qdisc if it is of `kind`; idempotent (no qdisc of that kind is success).
std::error_code delete_root_qdisc(const std::string& netns, const std::string& ifname,
                                  const std::string& kind);
// Kind of the root qdisc ("" when none / default).
std::error_code root_qdisc_kind(const std::string& netns, const std::string& ifname,
                                std::string& kind);

// faultline-shaper processes in `netns` serving `queue`, found by a /proc scan (cmdline and
// network namespace), so that heal and clean work without knowing the pid.
std::vector<pid_t> find_shapers(const std::string& netns, uint16_t queue);
// SIGTERM (the shaper releases what it holds), SIGKILL after a second; idempotent.
std::error_code stop_shapers(const std::string& netns, uint16_t queue);

// fork, enter the namespace, exec argv (PATH lookup), wait. Returns the exit status (or -1).
// Output goes to /dev/null. Used for iptables and mkfs, which have no library interface here.
int exec_in_netns(const std::string& netns, const std::vector<std::string>& argv);

// The shaper's queue rule through iptables-nft (xt NFQUEUE) for kernels without nft's `queue`
// expression (this one: nft_queue is missing, xt_NFQUEUE is there). A chain of its own in the
// mangle table, jumped to from PREROUTING (packets arriving on `interface` from
// `peer_addresses`); removal is idempotent.
std::error_code add_iptables_queue_chain(const std::string& netns, const std::string& chain,
                                         const std::string& interface,
                                         const std::vector<std::string>& peer_addresses,
                                         uint16_t queue, uint32_t reinject_mark);
std::error_code remove_iptables_chain(const std::string& netns, const std::string& chain);
bool iptables_chain_exists(const std::string& netns, const std::string& chain);

// Every qdisc of the caller's namespace as "ifindex parent handle kind" lines (host-unchanged
// checks).
std::string qdisc_snapshot_here();

enum class Reach { reachable, unreachable };
// TCP connect from inside `netns` to addr:port. A refusal (RST) proves reachability as well as an
// accept does; a timeout means the packets are dropped.
Reach tcp_probe(const std::string& netns, const std::string& addr, uint16_t port,
                std::chrono::milliseconds timeout);

}  // namespace faultline::chaos::kernel
