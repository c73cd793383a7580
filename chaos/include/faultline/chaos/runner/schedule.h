// The nemesis schedule and target resolution. Both pure and seeded, so one scenario and one seed
// give one schedule (schedule.jsonl) and, against the same cluster state, the same targets.
//
// make_schedule flattens the scenario's fault tree into planned steps: choices drawn, rounds of
// `repeat`/`mix` laid out with their jitter, `any` partitions drawn once per round. What a step
// hits is decided only when it runs: resolve() maps its selectors onto the cluster's metadata at
// that moment (a snapshot) and yields the FaultSpecs to inject, or why the step is skipped.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "faultline/chaos/faults/spec.h"
#include "faultline/chaos/runner/scenario.h"

namespace faultline::chaos {

struct PlannedStep {
  std::chrono::milliseconds at{0};  // planned start, since the workload started
  FaultStep step;                   // `any` partitions already drawn
  int round = 0;
  uint64_t variant = 0;  // seeds resolve()'s own choices (random-broker, node orders)
};

// The latest end of the schedule's planned steps (a triggered step may start up to within later).
std::chrono::milliseconds planned_end(const PlannedStep& p);

// Steps in order of planned start; a round of a repeat never starts before the previous round's
// last planned heal plus 500 ms; nothing is planned to heal after `duration`.
std::vector<PlannedStep> make_schedule(const Scenario& s, uint64_t seed);

// schedule.jsonl's line for a planned step.
nlohmann::json to_json(const PlannedStep& p);

// What the cluster looks like to the nemesis when a step runs (from the controller's metadata).
struct PartitionView {
  int leader = -1;  // -1: none
  int epoch = -1;
  std::vector<int> replicas;  // replicas[0]: the preferred leader
  std::vector<int> isr;
  friend bool operator==(const PartitionView&, const PartitionView&) = default;
};
struct ClusterSnapshot {
  int brokers = 3;            // broker ids 1..brokers
  bool controller_up = true;  // an active controller answered (its metadata is the rest)
  // The controller quorum, nodes c1..c<controllers>: which answered DescribeQuorum, and which is
  // active (0: none known, e.g. during an election). Without any answer (a cluster definition,
  // which has no DescribeQuorum), a single controller counts as up and active while
  // `controller_up`.
  int controllers = 1;
  int active_controller = 0;
  int64_t controller_epoch = -1;  // the active controller's epoch
  std::set<int> controllers_up;
  std::set<int> alive;  // registered and unfenced
  std::set<int> fenced;
  std::set<int> demoted;
  std::map<int, PartitionView> partitions;
  friend bool operator==(const ClusterSnapshot&, const ClusterSnapshot&) = default;
};

// The faults a step becomes against a snapshot, or why it is skipped (a selector that matches
// nothing is a skip, never an error). `targets_desc` says whom it hit, e.g. "leader(2)=b3".
struct Resolution {
  std::vector<FaultSpec> specs;
  std::string skipped;  // non-empty: not injected, and why
  std::string targets_desc;
  // For the leadership checks: the partitions whose leader a leader(P) target hit, and who it was.
  std::map<int, int> leaders_hit;
  // ... and of those, the partitions where another ISR member was alive and not hit: leadership
  // has somewhere to go (without one, a clean election must wait for the leader to return).
  std::set<int> successor_available;
  // What the step's faults act on, and the partitions as the step saw them: which partitions the
  // faults left alone. `touched`: nodes whose process, disk or packets a fault acts on (packet
  // peers included); `cut`: the (from, to) links a network partition blocks.
  std::set<std::string> touched;
  std::set<std::pair<std::string, std::string>> cut;
  std::map<int, PartitionView> partitions;
  // The quorum as the step saw it: every controller node, and the active one (empty: none; a
  // lone controller is always the active one).
  std::vector<std::string> controllers;
  std::string active_controller;
};

// Node names are the harness's: "c<K>" for controller K, "b<N>" for broker N.
std::string controller_node(int controller);
std::string broker_node(int broker);
// The active controller (1-based; 0 none known) and the live controllers of a snapshot, with the
// fallback for a lone controller that has no quorum to describe (see ClusterSnapshot).
int active_controller(const ClusterSnapshot& snapshot);
std::set<int> live_controllers(const ClusterSnapshot& snapshot);

Resolution resolve(const FaultStep& step, const ClusterSnapshot& snapshot, uint64_t variant);

// The brokers a selector names in `snapshot` (node names), in a seeded order where it picks.
std::vector<std::string> select_nodes(const Selector& sel, const ClusterSnapshot& snapshot,
                                      std::mt19937_64& rng);

// What faults act on together (a round's steps): nodes touched, links cut; and the controller
// quorum they act on (by default a lone controller c1).
struct Reach {
  std::set<std::string> touched;
  std::set<std::pair<std::string, std::string>> cut;
  std::vector<std::string> controllers{"c1"};
  std::string active_controller{"c1"};  // empty: none was active
  bool linked(const std::string& a, const std::string& b) const {
    return !cut.count({a, b}) && !cut.count({b, a});
  }
};

// The partitions `reach` leaves alone: the active controller untouched with a majority of the
// controllers (itself included) untouched and linked with it both ways, the leader and its links
// to the active controller untouched, and at least `min_insync` ISR members (the leader included)
// untouched and linked with the leader both ways. Such a partition can go on taking acks=all
// writes once its leader dropped any follower it lost from the ISR.
std::vector<int> untouched_partitions(int min_insync, const Reach& reach,
                                      const std::map<int, PartitionView>& partitions);

// Did the cluster do what `t` waits for, between `armed` and `now`?
bool trigger_fired(const Trigger& t, const ClusterSnapshot& armed, const ClusterSnapshot& now);

}  // namespace faultline::chaos
