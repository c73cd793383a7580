// Leader elections (ARCHITECTURE.md §2 items 11-17) as pure functions of one partition's state and
// a view of broker liveness and priority. No I/O, no clock, no allocation beyond the returned
// record: the controller calls them for hundreds of thousands of partitions when a broker fails.
//
// Every function returns either the partition's complete new state as a PartitionChanged (with the
// partition epoch incremented, and the leader epoch incremented when the leader changes), or no
// change and a Kafka result code saying why.
#pragma once

#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

#include "faultline/cluster/controller/metadata.h"
#include "faultline/cluster/errc.h"

namespace faultline::cluster {

// What an election needs to know about a broker.
struct BrokerStatus {
  bool registered = false;
  bool fenced = true;
  bool shutting_down = false;
  bool demoted = false;
  // item 11 without priority: a broker that could lead at all.
  bool alive() const { return registered && !fenced && !shutting_down; }
};

// Liveness and priority of every broker, flattened for fast lookups during mass elections.
class ClusterView {
 public:
  ClusterView() = default;
  static ClusterView from(const MetadataImage& image);
  void set(BrokerId broker, BrokerStatus status);
  // Unknown brokers are unregistered.
  BrokerStatus status(BrokerId broker) const;
  bool alive(BrokerId broker) const { return status(broker).alive(); }
  bool demoted(BrokerId broker) const { return status(broker).demoted; }

 private:
  std::vector<std::pair<BrokerId, BrokerStatus>> brokers_;  // sorted by id
};

// Picks the leader among `candidates` (in their order) that pass `eligible`: the first alive,
// non-demoted one; else the first alive demoted one (availability over performance, item 16);
// else kNoBroker.
template <typename Eligible>
BrokerId pick_leader(const ReplicaList& candidates, const ClusterView& view, Eligible eligible) {
  BrokerId demoted_choice = kNoBroker;
  for (BrokerId b : candidates) {
    if (!eligible(b))
      continue;
    BrokerStatus s = view.status(b);
    if (!s.alive())
      continue;
    if (!s.demoted)
      return b;
    if (demoted_choice == kNoBroker)
      demoted_choice = b;
  }
  return demoted_choice;
}

// Item 11: may `broker` lead a partition with this ISR right now? Alive, and either not demoted or
// no other alive non-demoted ISR member exists.
bool is_acceptable_leader(BrokerId broker, const PartitionState& p, const ClusterView& view);

struct ElectionResult {
  // none when `change` is set; otherwise why nothing changed (election_not_needed,
  // preferred_leader_not_available, eligible_leaders_not_available, invalid_replica_assignment...).
  errc error = errc::none;
  std::optional<PartitionChanged> change;
  bool changed() const { return change.has_value(); }
  bool leader_changed = false;
};

// Builds the record taking `p` to (leader, isr): partition epoch + 1, leader epoch + 1 when the
// leader differs. Replicas and reassignment lists are copied from `p`.
PartitionChanged make_partition_change(const TopicPartition& tp, const PartitionState& p,
                                       BrokerId leader, ReplicaList isr, ElectionReason reason);

// Item 12 (also run when a broker comes back, for partitions left offline): drops brokers that are
// not alive from the ISR; keeps the leader if it stays acceptable; else elects the first replica in
// assignment order that is in the ISR and acceptable (non-demoted first). If no ISR member is
// alive, the ISR keeps one member (the old leader if it was in the ISR, else the first remaining
// in assignment order) and the leader becomes kNoBroker. election_not_needed when nothing changes.
ElectionResult elect_offline(const TopicPartition& tp, const PartitionState& p,
                             const ClusterView& view,
                             ElectionReason reason = ElectionReason::offline);

// Item 13: the same rules with `broker` marked as shutting down in `view` (the caller's job): the
// broker leaves the ISR (unless it is the last member) and loses leadership.
ElectionResult elect_controlled_shutdown(const TopicPartition& tp, const PartitionState& p,
                                         const ClusterView& view);

// Item 14: replicas[0] becomes leader if it is in the ISR, alive and not demoted.
// election_not_needed when it already leads; preferred_leader_not_available otherwise.
ElectionResult elect_preferred(const TopicPartition& tp, const PartitionState& p,
                               const ClusterView& view,
                               ElectionReason reason = ElectionReason::preferred);

// Item 15: when no ISR member is alive, the first alive replica in assignment order (non-demoted
// first) leads with ISR = {leader}, leader_recovery = recovering. If an ISR member is alive, the
// clean choice of elect_offline is made instead (an unclean election never loses data needlessly).
// election_not_needed if the current leader is acceptable; eligible_leaders_not_available when no
// replica is alive. Whether unclean elections are allowed (config or admin) is the caller's call.
ElectionResult elect_unclean(const TopicPartition& tp, const PartitionState& p,
                             const ClusterView& view);

// Item 16 (demote): when the leader is demoted in `view`, leadership moves to the first alive,
// non-demoted ISR member in assignment order; the demoted broker stays in the ISR.
// election_not_needed when the leader is not demoted; eligible_leaders_not_available when nobody
// else can lead (the demoted broker then keeps leading).
ElectionResult elect_for_demotion(const TopicPartition& tp, const PartitionState& p,
                                  const ClusterView& view);

// Item 17, step 1: start moving the partition to `target` (non-empty, no duplicates, else
// invalid_replica_assignment). replicas becomes target followed by the removed replicas; adding =
// target - old, removing = old - target. election_not_needed when target equals the replicas.
ElectionResult start_reassignment(const TopicPartition& tp, const PartitionState& p,
                                  const ReplicaList& target, const ClusterView& view);
// Item 17, step 2: once every adding replica is in the ISR, drop the removing replicas from
// replicas and ISR and, if the leader was removed, elect from the remaining ISR in assignment
// order. election_not_needed while waiting; no_reassignment_in_progress when none is in progress.
ElectionResult advance_reassignment(const TopicPartition& tp, const PartitionState& p,
                                    const ClusterView& view);

// Item 14 (auto rebalance): the partitions a periodic preferred election should move, broker by
// broker in id order. A broker is imbalanced when more than `imbalance_percentage` % of the
// partitions whose preferred leader it is are led by someone else. Only partitions where the
// preferred leader is alive, not demoted and in the ISR are selected; at most `batch_cap`.
std::vector<PartitionRef> select_rebalance(const MetadataImage& image, const ClusterView& view,
                                           int imbalance_percentage, size_t batch_cap);

// Per-broker imbalance ratio (0..1) used by select_rebalance; 0 for a broker that is preferred
// leader of nothing.
double leader_imbalance_ratio(const MetadataImage& image, BrokerId broker);

}  // namespace faultline::cluster
