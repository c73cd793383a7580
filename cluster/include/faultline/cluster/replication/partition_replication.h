// The leader side of one partition's replication rules (ARCHITECTURE.md §2 items 3-5), pure:
// follower progress, the high watermark, ISR shrink/expand decisions, the single in-flight
// AlterPartition, and the outcome of acks=all produce requests. The broker's replica manager feeds
// it fetches, local appends and metadata, and carries out what it returns; time is passed in.
//
// Lifecycle: one instance per partition this broker leads, created when it becomes leader (a new
// leader epoch) and dropped when it stops leading (pending produces are then abandoned).
// Threading: none; the owner serialises calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "faultline/cluster/controller/replica_list.h"
#include "faultline/cluster/errc.h"
#include "faultline/cluster/types.h"

namespace faultline::cluster {

using ReplicationClock = std::chrono::steady_clock;
using ReplicationTime = ReplicationClock::time_point;

struct FollowerProgress {
  BrokerId broker;
  Offset log_end_offset{-1};  // -1: not fetched since this broker became leader
  ReplicationTime last_fetch_time{};
  // Last time the follower was known to hold the leader's whole log: now when a fetch reaches the
  // leader's log end, or the previous fetch's time when a fetch reaches the log end the leader
  // had then (Kafka's rule: under steady load a follower never equals the moving log end).
  ReplicationTime last_caught_up_time{};
  Offset leader_log_end_at_last_fetch{-1};
};

struct ReplicationSettings {
  int min_insync_replicas = 1;                            // min.insync.replicas
  std::chrono::milliseconds replica_lag_time_max{30000};  // replica.lag.time.max.ms
  // After a rejected AlterPartition (other than fencing), wait this long before proposing again:
  // e.g. the controller refuses a follower that is fenced, and the leader must not spin on it.
  std::chrono::milliseconds alter_partition_retry_backoff{500};
};

// What the leader knows of the partition from the metadata log.
struct LeaderAssignment {
  BrokerId self;
  LeaderEpoch leader_epoch;
  PartitionEpoch partition_epoch;
  ReplicaList replicas;
  ReplicaList isr;
  Offset leader_epoch_start_offset{0};  // first offset written in this leader epoch
};

// A request for the controller (AlterPartition) the shell must send.
struct IsrChangeProposal {
  LeaderEpoch leader_epoch;
  PartitionEpoch partition_epoch;
  ReplicaList proposed_isr;
  friend bool operator==(const IsrChangeProposal&, const IsrChangeProposal&) = default;
};

struct ProduceCompletion {
  uint64_t request_id = 0;
  errc error = errc::none;  // none, not_enough_replicas_after_append, leadership_lost_after_append
};

class PartitionReplication {
 public:
  PartitionReplication(LeaderAssignment assignment, ReplicationSettings settings,
                       Offset log_end_offset, Offset high_watermark, ReplicationTime now);

  // ---- progress ----
  // The leader appended locally; its log end is now `log_end_offset`.
  void on_leader_append(Offset log_end_offset);
  // A follower fetched from `fetch_offset` (= its log end). Returns true when the high watermark
  // advanced (the shell then completes produces and wakes consumers).
  bool on_follower_fetch(BrokerId follower, Offset fetch_offset, ReplicationTime now);

  // Minimum log end over the ISR (including members being added by an in-flight AlterPartition,
  // and still including members being removed, so it is safe either way); frozen while the
  // committed ISR is smaller than min.insync.replicas; never moves backwards.
  Offset high_watermark() const { return high_watermark_; }
  Offset log_end_offset() const { return log_end_offset_; }

  // ISR members (not the leader) whose last catch-up is older than replica.lag.time.max.
  ReplicaList isr_shrink_candidates(ReplicationTime now) const;
  // Replicas outside the ISR whose log end reached the high watermark and the start of the
  // current leader epoch, except `ineligible` ones: brokers the metadata shows fenced, in
  // controlled shutdown or unregistered, which the controller refuses to add (Kafka's KIP-841).
  // Proposing one anyway would get the whole proposal refused, and while it is in flight the
  // high watermark waits for that broker too (maximal ISR).
  ReplicaList isr_expand_candidates(const ReplicaList& ineligible = {}) const;

  // ---- AlterPartition (at most one in flight) ----
  // The ISR change to request now (shrink and expand combined), or nothing when none is due or a
  // request is already in flight. Marks the request in flight. `ineligible`: as for
  // isr_expand_candidates (they may still be shrunk out).
  std::optional<IsrChangeProposal> propose_isr_change(ReplicationTime now,
                                                      const ReplicaList& ineligible = {});
  // The controller answered `answered` (or the request failed). On success pass the new ISR and
  // partition epoch; on fenced_leader_epoch / invalid_update_version the proposal is dropped and
  // the next metadata update decides; on other errors a new proposal waits
  // alter_partition_retry_backoff from the last `now` this object was given.
  // Ignored when `answered` is no longer the proposal in flight: a metadata update moved the
  // partition epoch past it first (typically its own commit, pulled from the metadata log before
  // the answer arrived, e.g. when a retry at a new active controller is answered
  // invalid_update_version because the first attempt was committed). The metadata already decided;
  // heeding the late answer would wait for metadata that has come, or cancel a newer proposal.
  // Returns false when ignored.
  bool on_alter_partition_result(const IsrChangeProposal& answered, errc error,
                                 const ReplicaList& isr, PartitionEpoch partition_epoch);
  // A PartitionChanged for this partition arrived through the metadata log (same leader epoch).
  void on_metadata_update(const ReplicaList& isr, PartitionEpoch partition_epoch,
                          const ReplicaList& replicas);
  bool alter_partition_in_flight() const { return in_flight_.has_value(); }
  // An ISR change is under way: a proposal in flight, a fenced one waiting for the metadata log,
  // or a refused one waiting for its retry.
  bool changing_isr() const {
    return in_flight_.has_value() || awaiting_metadata_ || retry_not_before_ > last_seen_time_;
  }

  // ---- acks=all ----
  // errc::not_enough_replicas when the ISR is smaller than min.insync.replicas (reject before
  // appending); none otherwise.
  errc check_produce(Acks acks) const;
  // An acks=all batch ending at `last_offset` was appended; it completes when HW > last_offset.
  void add_pending_produce(uint64_t request_id, Offset last_offset);
  // Produces that completed since the last call: ok once the HW passed them;
  // not_enough_replicas_after_append when the ISR fell below the minimum while they waited
  // (their records are in the log: the outcome is unknown to the client).
  std::vector<ProduceCompletion> take_completed_produces();
  // Leadership lost: every pending produce ends with leadership_lost_after_append (its outcome is
  // unknown: the batch is in this log and may or may not be on the new leader).
  std::vector<ProduceCompletion> abandon_pending_produces();
  size_t pending_produces() const { return pending_.size(); }

  const ReplicaList& isr() const { return isr_; }
  PartitionEpoch partition_epoch() const { return partition_epoch_; }
  LeaderEpoch leader_epoch() const { return assignment_.leader_epoch; }
  const std::vector<FollowerProgress>& followers() const { return followers_; }
  const FollowerProgress* follower(BrokerId broker) const;

 private:
  struct Pending {
    uint64_t request_id;
    Offset last_offset;
  };
  FollowerProgress* follower_mut(BrokerId broker);
  ReplicaList maximal_isr() const;
  void update_high_watermark();
  void on_isr_committed();

  LeaderAssignment assignment_;
  ReplicationSettings settings_;
  ReplicaList isr_;
  PartitionEpoch partition_epoch_;
  Offset log_end_offset_;
  Offset high_watermark_;
  std::vector<FollowerProgress> followers_;
  std::optional<IsrChangeProposal> in_flight_;
  // A proposal was fenced: wait for the metadata log rather than retrying with stale epochs.
  bool awaiting_metadata_ = false;
  ReplicationTime last_seen_time_{};
  ReplicationTime retry_not_before_{};
  std::vector<Pending> pending_;  // in offset order
  std::vector<ProduceCompletion> completed_;
};

// A follower's high watermark: the leader's, capped by what the follower has.
inline Offset follower_high_watermark(Offset leader_high_watermark, Offset local_log_end) {
  return leader_high_watermark < local_log_end ? leader_high_watermark : local_log_end;
}

}  // namespace faultline::cluster
