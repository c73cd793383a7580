// Scenarios: what a run sets up, what its workload does, what its nemesis does and what its
// verdict checks. Pure: no I/O besides parsing text. The language is documented, with examples,
// in ARCHITECTURE.md ("The scenario language"); a short reference:
//
//   name = "lagging-follower-leader-kill"
//   description = "..."
//   duration_s = 30
//   expect = "valid"                      # "invalid" for negative controls
//   [cluster]                             # brokers, controllers (1, 3, 5), timeouts,
//                                         # min.insync.replicas, probe, disks
//   [workload]                            # partitions, producers, consumers, acks, rate_per_s,
//                                         # value_bytes, client ("faultline" or "librdkafka")
//   [nemesis]                             # one node of the fault tree (below)
//   every_s = 10                          # with `repeat`/`mix`: a round every 10 s ...
//   jitter_s = 2                          #   ... plus a seeded 0..2 s
//   repeat.sequence = [
//     { fault = "packets", target = "followers(any)", interface = "int", delay_us = 80000, hold_s =
//     6 }, { after_s = 2, fault = "kill", target = "leader(any)", hold_s = 3 },
//   ]
//   [checks]                              # leadership bounds besides the checker's
//
// A node of the fault tree is a table with exactly one of:
//   fault = KIND        a fault step: KIND is a fault kind of the shared vocabulary
//                       (faults/spec.h: kill, pause, stop, restart, kill-restart, isolate, halves,
//                       majorities-ring, bridge, one-way, isolate-leader, cut-link, packets, rate,
//                       disk-throttle, disk-stall, ...); `target` and `peers` are selectors; every
//                       other key is a parameter of the kind, named as in faults.jsonl
//                       (delay_us, loss_pct, interface, read_bytes_per_second, ...); `hold_s` is
//                       how long until the heal (not for one-offs); `on` a trigger.
//   sequence = [nodes]  one after another; each starts `after_s` after the previous one started
//   concurrent = [nodes] together
//   choice = [nodes]    one of them, seeded, by `weight`
//   repeat = node       rounds every `every_s` (+ seeded `jitter_s`) until the run ends (or
//                       `times` rounds), a round never starting before the previous one's last
//                       planned heal + 0.5 s
//   mix = [nodes]       repeat + choice: a seeded draw from the set every round
// Every node may have `after_s` (delay within its sequence) and `weight` (within a choice).
//
// Selectors (schedule.h) are resolved when the step is injected, from the cluster's metadata then:
// leader(P), followers(P), follower(P), lagging-follower(P), preferred-leader(P), controller,
// active-controller, controller-follower, controller-minority, all-controllers, broker(N),
// random-broker, minority, majority, all-brokers, all-nodes; P is a partition index, `any` (one
// seeded partition per round, the same for every step of the round) or `all`.
// Triggers (`on = "leader-change(P)"`, `isr-shrink(P)`, `isr-expand(P)`, `fenced`,
// `controller-change`, with `within_s`): the step waits from its planned start until the cluster
// does that, or is skipped after within_s.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/chaos/cluster_harness.h"
#include "faultline/chaos/faults/spec.h"

namespace faultline::chaos {

// A partition a selector or trigger refers to: one index, the round's seeded pick, or all.
struct PartitionRef {
  enum class Kind { index, any, all };
  Kind kind = Kind::index;
  int index = 0;
  friend bool operator==(const PartitionRef&, const PartitionRef&) = default;
};

// What a step aims at, resolved against the cluster's metadata at injection time.
enum class SelectorKind {
  leader,               // the leader of P
  followers,            // the replicas of P other than its leader
  follower,             // one of them, seeded
  lagging_follower,     // a replica of P outside its ISR (none when every replica is in sync)
  preferred_leader,     // the first replica of P
  controller,           // the active controller (c1 with a single controller): kept for old files
  active_controller,    // the active controller node c<k> of the quorum
  controller_follower,  // one live controller other than the active one, seeded
  controller_minority,  // (n-1)/2 controllers: the active one plus seeded others
  all_controllers,      // every controller c1..cN, up or not
  broker,               // broker N
  random_broker,        // a seeded pick among the live brokers
  minority,             // (n-1)/2 brokers, seeded
  majority,             // n/2+1 brokers, seeded
  all_brokers,
  all_nodes,  // every live controller and every broker (partition shapes)
};
// The selectors that name controllers, not brokers (their faults are no broker faults).
bool is_controller_selector(SelectorKind kind);

struct Selector {
  SelectorKind kind = SelectorKind::leader;
  PartitionRef partition;  // leader, followers, lagging_follower, preferred_leader
  int broker = 0;          // broker(N)
  std::string str() const;
  friend bool operator==(const Selector&, const Selector&) = default;
};
// "leader(0)", "followers(any)", "broker(2)", "minority" ...; nullopt with `why` when malformed.
std::optional<Selector> parse_selector(std::string_view text, std::string* why = nullptr);

enum class TriggerKind {
  leader_change,      // P's leader (or epoch) changed after the step was armed
  isr_shrink,         // P's ISR lost a member after the step was armed
  isr_expand,         // a replica joined P's ISR after the step was armed
  fenced,             // some broker became fenced after the step was armed
  controller_change,  // another controller became active (or the same one at a new epoch)
};
struct Trigger {
  TriggerKind kind = TriggerKind::leader_change;
  PartitionRef partition;
  std::chrono::milliseconds within{10000};
  std::string str() const;
  friend bool operator==(const Trigger&, const Trigger&) = default;
};
std::optional<Trigger> parse_trigger(std::string_view text, std::string* why = nullptr);

// One fault step of a scenario: the kind, whom it hits, its parameters, how long it holds.
struct FaultStep {
  FaultKind kind = FaultKind::kill;
  Selector target;
  std::optional<Selector> peers;  // one-way's receiver, isolate-leader's other side, packets' peers
  FaultParams params;             // the kind's defaults, overridden by the step's keys
  std::chrono::milliseconds hold{3000};  // 0 for one-offs
  std::optional<Trigger> on;
  int line = 0;  // in the scenario file, for messages
  friend bool operator==(const FaultStep&, const FaultStep&) = default;
};

// A node of the nemesis tree.
struct NemesisNode {
  enum class Type { step, sequence, concurrent, choice, repeat };
  Type type = Type::step;
  FaultStep step;                     // Type::step
  std::vector<NemesisNode> children;  // sequence, concurrent, choice; repeat: exactly one
  std::chrono::milliseconds after{0};
  double weight = 1;
  std::chrono::milliseconds every{6000};  // repeat
  std::chrono::milliseconds jitter{0};    // repeat
  int times = 0;                          // repeat: 0 = until the run ends
  int line = 0;
};

// Which client library the workload's producers and consumers use. Both record the same history,
// judged by the same checker: librdkafka shows that a real Kafka client keeps the guarantees too.
enum class WorkloadClientKind {
  faultline,   // cluster::SyncClient on the brokers' own client listener
  librdkafka,  // librdkafka on the brokers' Kafka listener
};
std::string_view to_string(WorkloadClientKind kind);

struct WorkloadShape {
  int partitions = 6;
  int producers = 1;  // per partition: each producer process sends to one partition
  int consumers = 1;  // each polls every partition from offset 0
  bool acks_all = true;
  int rate_per_s = 0;   // per producer; 0 = as fast as acknowledgements come back
  int value_bytes = 0;  // values are padded to this size (0: just the number)
  WorkloadClientKind client = WorkloadClientKind::faultline;
};

struct Scenario {
  std::string name;
  std::string description;
  std::chrono::seconds duration{30};
  bool expect_valid = true;
  ClusterShape cluster;
  WorkloadShape workload;
  std::optional<NemesisNode> nemesis;
  // [checks]: leadership of P left the broker a leader(P) step hit within this
  std::optional<std::chrono::milliseconds> leader_moved_within;
  // leader_moved_within_s = "probe": derived per step from the probe's settings.
  bool leader_moved_within_probe_bound = false;
  std::optional<std::chrono::milliseconds> preferred_leaders_within;
  // [checks] unavailable_max_s: the longest client-observed write unavailability a fault may
  // cause on the partitions it hit; one number for every kind, or a table by fault kind.
  std::optional<std::chrono::milliseconds> unavailable_max;
  std::map<FaultKind, std::chrono::milliseconds> unavailable_max_by_kind;
  // [checks] derived = false: no bounds derived from the cluster's timeouts (derived_bounds()).
  bool derived_checks = true;
};

// What the cluster's own settings promise about a process fault on a broker, checked on every
// round that holds exactly one such fault (a round of several mixes their effects):
// - stop/restart (controlled shutdown): leadership is handed over before the process exits, so
//   clients wait about one controller commit and one metadata refresh; bound 2 s for both
//   unavailability and leadership gone, less when the session timeout is short (never past
//   session - heartbeat - 250 ms, when a broker that exits without handing over is fenced; never
//   under 1 s);
// - kill/kill-restart: the controller fences the broker after the session timeout; bound
//   session + 3 s of unavailability, leadership gone within session + 2 s;
// - pause: the same as a kill for leadership (the broker must be fenced while paused, not when
//   the pause ends); unavailability session + 4 s (requests in flight wait their timeout).
// Other kinds: none. `why` says how a bound was derived.
struct DerivedBounds {
  std::optional<std::chrono::milliseconds> unavailable_max;
  std::optional<std::chrono::milliseconds> leader_moved_within;
  std::string why;
};
DerivedBounds derived_bounds(const ClusterShape& shape, FaultKind kind);

// How long after a fault of `kind` began the probe of `shape` must have moved leadership off its
// target: the latest its rules decide (probes::unreachable_demotion_bound, or for a disk fault the
// broker's next 1 s log flush plus slow_storage_demotion_bound) plus 2.5 s for the controller's
// elections, the brokers applying them and a loaded machine. `why` says how it was derived.
std::chrono::milliseconds probe_demotion_bound(const ClusterShape& shape, FaultKind kind,
                                               std::string* why = nullptr);

struct ScenarioError {
  std::string file;
  int line = 0;  // 0 when the error has no line (e.g. the file is missing)
  std::string why;
  std::string str() const;
};

// Built-in scenarios by name, and their TOML text (`faultline scenarios --show NAME`).
std::vector<std::string> builtin_scenario_names();
std::optional<Scenario> builtin_scenario(std::string_view name);
std::optional<std::string> builtin_scenario_toml(std::string_view name);

// Parses a scenario; on failure `error` names the file, line and problem.
std::optional<Scenario> parse_scenario(std::string_view text, const std::string& file,
                                       ScenarioError& error);

// Sub-seed of stream `stream` ("schedule", "workload", "resolve") of a root seed.
uint64_t sub_seed(uint64_t root, std::string_view stream);

}  // namespace faultline::chaos
