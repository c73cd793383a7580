// What a fault is, as a value: its kind, its targets and its parameters (ARCHITECTURE.md §3).
//
// A FaultSpec is what a schedule produces, what `fault inject` parses, and what faults.jsonl and
// the journal record; it is plain data (copyable, comparable, JSON round-trip). validate() is the
// single place where parameters are checked, so every backend can assume a valid spec.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

namespace faultline::chaos {

using NodeName = std::string;

// The names (to_string/parse) are a contract: CLI, scenarios and faults.jsonl use them.
enum class FaultKind {
  // process (supervisor)
  kill,          // kill -9; heal restarts the process
  pause,         // SIGSTOP; heal sends SIGCONT
  stop,          // SIGTERM (controlled shutdown); heal restarts
  restart,       // one-off: SIGTERM, wait, start again
  kill_restart,  // one-off: kill -9, start again
  // partition (nftables inside the nodes' namespaces)
  isolate,          // targets[0] cannot talk to anyone, nobody can talk to it
  halves,           // targets (in the order given) split into two halves
  majorities_ring,  // every node sees a majority, no two nodes the same one
  bridge,           // two halves plus one node (the middle one) that sees both
  one_way,          // targets[0] cannot reach targets[1]; targets[1] still reaches targets[0]
  isolate_leader,   // targets[0] (leader) cut from targets[1..] (followers), not from the others
  cut_link,         // one interface of targets[0] down (link down), e.g. "ext"
  // packets
  packets,  // delay / jitter / loss / duplicate / reorder / corrupt (netem, else NFQUEUE shaper)
  rate,     // tbf on the interface
  // disk
  disk_throttle,  // blkio/io.max limits on the node's loop device
  disk_stall,     // the same, throttled to almost nothing
  // storage (the node's faultline-lazyfs, ClusterShape::lazyfs)
  power_loss,  // kill -9 + every un-fsynced write lost, on each target; heal restarts
  torn_write,  // the same, but the newest un-fsynced write keeps a prefix on disk
  disk_error,  // EIO / ENOSPC on read / write / fsync at a rate; heal: pass-through
  slow_fsync,  // fsync delayed by delay + uniform jitter; heal: pass-through
};

std::string_view to_string(FaultKind k) noexcept;
std::optional<FaultKind> parse_fault_kind(std::string_view s) noexcept;

enum class FaultClass { process, partition, packets, disk, storage };
FaultClass fault_class(FaultKind k) noexcept;
// One-offs have no heal (restart, kill_restart).
bool is_one_off(FaultKind k) noexcept;

struct NoParams {
  friend bool operator==(const NoParams&, const NoParams&) = default;
};

struct LinkParams {
  std::string interface = "ext";
  friend bool operator==(const LinkParams&, const LinkParams&) = default;
};

// Same meaning as netem's parameters. Percentages are 0..100, like `tc ... netem loss 10%`.
struct PacketParams {
  std::string interface = "int";
  std::vector<NodeName> peers;  // empty: all traffic leaving the interface
  std::chrono::microseconds delay{0};
  std::chrono::microseconds jitter{0};  // uniform in [delay - jitter, delay + jitter]
  double loss_pct = 0;
  double duplicate_pct = 0;
  double reorder_pct = 0;  // share of packets sent at once while the others wait `delay`
  double corrupt_pct = 0;
  friend bool operator==(const PacketParams&, const PacketParams&) = default;
};

struct RateParams {
  std::string interface = "int";
  uint64_t bytes_per_second = 0;
  uint32_t burst_bytes = 32 * 1024;
  std::chrono::milliseconds latency{50};  // how long a packet may wait in tbf before it is dropped
  friend bool operator==(const RateParams&, const RateParams&) = default;
};

// 0 means "no limit" for that direction.
struct DiskParams {
  uint64_t read_bytes_per_second = 0;
  uint64_t write_bytes_per_second = 0;
  uint64_t read_iops = 0;
  uint64_t write_iops = 0;
  friend bool operator==(const DiskParams&, const DiskParams&) = default;
};

// torn-write: the share of the newest un-fsynced write that reaches the disk (never all of it).
struct TornWriteParams {
  double keep_pct = 50;
  friend bool operator==(const TornWriteParams&, const TornWriteParams&) = default;
};

// disk-error: operations `op` on files matching `path` (a glob over the path inside the data dir,
// `*` crossing `/`) fail with `error` ("EIO" | "ENOSPC"); the first `after_ops` matching
// operations pass, then each fails with probability rate_pct / 100.
struct DiskErrorParams {
  std::string error = "EIO";
  std::string op = "any";  // "read" | "write" | "fsync" | "any"
  double rate_pct = 100;
  uint64_t after_ops = 0;
  std::string path = "*";
  // Heal also restarts the broker (kill -9, start): one whose log directory went offline serves
  // nothing until it restarts and recovers its logs, as a Kafka operator would restart it.
  bool restart_on_heal = true;
  friend bool operator==(const DiskErrorParams&, const DiskErrorParams&) = default;
};

// slow-fsync: every fsync takes delay + uniform[0, jitter] longer.
struct SlowFsyncParams {
  std::chrono::milliseconds delay{100};
  std::chrono::milliseconds jitter{0};
  friend bool operator==(const SlowFsyncParams&, const SlowFsyncParams&) = default;
};

using FaultParams = std::variant<NoParams, LinkParams, PacketParams, RateParams, DiskParams,
                                 TornWriteParams, DiskErrorParams, SlowFsyncParams>;

struct FaultSpec {
  FaultKind kind = FaultKind::kill;
  std::vector<NodeName> targets;
  FaultParams params;
  friend bool operator==(const FaultSpec&, const FaultSpec&) = default;
};

// The parameter type a kind needs, default-valued (disk_stall comes with its stall limits).
FaultParams default_params(FaultKind k);
// Limits that make a disk "stalled": a few KiB/s and one operation per second.
DiskParams stall_limits() noexcept;

// Checks arity of targets and parameter ranges. fault_errc::invalid_spec with nothing else to say;
// `why` (if given) gets the human reason.
std::error_code validate(const FaultSpec& spec, std::string* why = nullptr);

nlohmann::json to_json(const FaultSpec& spec);
// Accepts what to_json writes; missing parameters take their defaults. Does not validate().
std::optional<FaultSpec> fault_spec_from_json(const nlohmann::json& j, std::string* why = nullptr);

}  // namespace faultline::chaos
