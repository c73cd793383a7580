// Scenarios and their fault schedules (DESIGN.md §3). Pure: no I/O besides parsing text.
//
// A scenario is a TOML file (or a built-in of the same shape):
//
//   name = "leader-kill"
//   description = "kill -9 the leader of partition 0 repeatedly, restart it later"
//   duration_s = 30
//   expect = "valid"            # or "invalid" for negative controls
//   [cluster]
//   brokers = 3
//   session_timeout_ms = 2000   # broker.session.timeout.ms
//   min_insync_replicas = 2
//   unclean_leader_election = false
//   planted_bug_early_ack = false   # TEST ONLY: brokers ack acks=all early (must be caught)
//   disks = false               # data dirs on loop-mounted images (for disk faults)
//   leader_imbalance_check_interval_s = 300   # auto leader rebalance period (controller)
//   probe = false               # run faultline-probe (demotes brokers clients cannot reach or
//   probe_interval_ms = 200     #   whose disk is slow; probes/README.md)
//   probe_failures_to_demote = 3      # faultline-probe --failures-to-demote
//   probe_recovery_hold_ms = 30000    # faultline-probe --recovery-hold-ms
//   [workload]
//   partitions = 1
//   producers = 2
//   acks = "all"                # "all" | "1"
//   [nemesis]
//   faults = ["kill-leader"]    # what the nemesis may do, see FaultAction
//   interval_s = 6              # between the start of one fault and the next
//   hold_s = 3                  # how long a fault stays before it is healed
//   [checks]                    # leadership checks besides the checker's (optional)
//   leader_moved_within_s = 8   # leadership of partition 0 left each fault's target broker in time
//                               # ("probe": the bound the probe's settings give for the fault's
//                               # kind plus 2.5 s, see probe_demotion_bound())
//   preferred_leaders_within_s = 20   # after the last heal, every partition is led by its
//                                     # preferred replica within this (auto rebalance)
//
// One root seed drives every random choice through sub-seeds (schedule, workload), so the same
// scenario and seed give the same schedule.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/chaos/cluster_harness.h"

namespace faultline::chaos {

// What a scheduled fault does; targets are resolved when it is injected.
enum class FaultAction {
  kill_leader,          // kill -9 the leader of partition 0; heal restarts it
  pause_leader,         // SIGSTOP the leader; heal SIGCONTs it
  stop_leader,          // SIGTERM (controlled shutdown); heal restarts it
  kill_controller,      // kill -9 the controller; heal restarts it
  isolate_leader,       // cut the leader off from every other node; heal removes the rules
  cut_leader_ext,       // cut the leader's ext link (clients only); heal brings it up
  throttle_leader_disk,  // throttle the leader's disk hard (needs cluster.disks); heal lifts it
  kill_leader_twice,     // kill -9 the leader, then the next leader right after its election
  restart_next_broker,   // graceful restart of b1, b2, ... in turn (one-off: nothing to heal)
  partition_random,      // random halves, majorities ring or bridge over every cluster node
  netem_cluster,         // delay 20±10 ms and 2% loss on every broker's int interface
  kill_leader_lagging,   // delay the followers' int traffic 50 ms, then kill -9 the leader
  isolate_leader_unclean,  // cut the leader off from its followers (not the controller) until it
                           // acks alone, then kill -9 it: only out-of-sync followers remain
};
std::string_view to_string(FaultAction a);
std::optional<FaultAction> fault_action_from(std::string_view s);

struct Scenario {
  std::string name;
  std::string description;
  std::chrono::seconds duration{30};
  bool expect_valid = true;
  ClusterShape cluster;
  int partitions = 1;
  int producers = 2;
  bool acks_all = true;
  std::vector<FaultAction> faults;
  std::chrono::milliseconds interval{6000};
  std::chrono::milliseconds hold{3000};
  std::optional<std::chrono::milliseconds> leader_moved_within;
  // leader_moved_within_s = "probe": leader_moved_within is derived per fault from the probe's
  // settings (probe_demotion_bound).
  bool leader_moved_within_probe_bound = false;
  std::optional<std::chrono::milliseconds> preferred_leaders_within;
};

// How long after `action` began the probe of `shape` must have moved leadership off its target:
// the latest its rules decide (probes::unreachable_demotion_bound, or for a disk fault the
// broker's next 1 s log flush plus slow_storage_demotion_bound) plus 2.5 s for the controller's elections, the brokers applying them, the
// runner's 100 ms view of partition 0 and a loaded machine. `why` says how it was derived.
std::chrono::milliseconds probe_demotion_bound(const ClusterShape& shape, FaultAction action,
                                               std::string* why = nullptr);

struct ScenarioError {
  std::string file;
  int line = 0;  // 0 when the error has no line (e.g. the file is missing)
  std::string why;
  std::string str() const;
};

// Built-in scenarios by their contract names (DESIGN.md §3) that this build can run.
std::vector<std::string> builtin_scenario_names();
std::optional<Scenario> builtin_scenario(std::string_view name);
// The TOML text of a built-in (what `faultline scenarios --show NAME` prints).
std::optional<std::string> builtin_scenario_toml(std::string_view name);

// Parses a scenario; on failure `error` names the file, line and problem.
std::optional<Scenario> parse_scenario(std::string_view text, const std::string& file,
                                       ScenarioError& error);

struct ScheduledFault {
  std::chrono::milliseconds at{0};    // since the workload started
  std::chrono::milliseconds heal{0};  // since the workload started
  FaultAction action = FaultAction::kill_leader;
  uint64_t variant = 0;  // seeded choices inside the fault (which partition shape, node order)
};

// The nemesis schedule for `seed`: faults start every interval (with seeded jitter up to a
// quarter of it), each healed after `hold`, the last one healed before the duration ends.
std::vector<ScheduledFault> make_schedule(const Scenario& s, uint64_t seed);

// Sub-seed of stream `stream` ("schedule", "workload") of a root seed.
uint64_t sub_seed(uint64_t root, std::string_view stream);

}  // namespace faultline::chaos
