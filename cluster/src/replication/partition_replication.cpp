#include "faultline/cluster/replication/partition_replication.h"

#include <algorithm>
#include <utility>

#ifdef FAULTLINE_MUTANTS
#include "faultline/cluster/mutants.h"
#endif

namespace faultline::cluster {

#ifdef FAULTLINE_MUTANTS
namespace {

// The HW mutants: what the leader takes for its HW instead of `slowest` (the smallest log end in
// the ISR).
Offset mutated_high_watermark(Offset slowest, Offset furthest_follower, Offset leader_log_end) {
  // Mutant hw-on-leader-append: the HW follows the leader's own log end, as if every ISR member
  // had what the leader has (acks=all behaves like acks=1; consumers read unreplicated records).
  if (mutant_active(Mutant::hw_on_leader_append))
    return leader_log_end;
  // Mutant hw-max-of-isr: the HW is the furthest ISR follower's position instead of the
  // slowest's (a min/max slip in the HW computation).
  if (mutant_active(Mutant::hw_max_of_isr) && furthest_follower.value() >= 0)
    return std::min(furthest_follower, leader_log_end);
  return slowest;
}

}  // namespace
#endif

PartitionReplication::PartitionReplication(LeaderAssignment assignment,
                                           ReplicationSettings settings, Offset log_end_offset,
                                           Offset high_watermark, ReplicationTime now)
    : assignment_(std::move(assignment)),
      settings_(settings),
      isr_(assignment_.isr),
      partition_epoch_(assignment_.partition_epoch),
      log_end_offset_(log_end_offset),
      high_watermark_(std::min(high_watermark, log_end_offset)),
      last_seen_time_(now) {
  for (BrokerId b : assignment_.replicas) {
    if (b == assignment_.self)
      continue;
    FollowerProgress f;
    f.broker = b;
    // A new leader cannot know how far the ISR got; it gives every member a full lag window
    // rather than shrinking the ISR before anyone had a chance to fetch.
    if (isr_.contains(b))
      f.last_caught_up_time = now;
    followers_.push_back(f);
  }
}

const FollowerProgress* PartitionReplication::follower(BrokerId broker) const {
  auto it = std::find_if(followers_.begin(), followers_.end(),
                         [&](const FollowerProgress& f) { return f.broker == broker; });
  return it == followers_.end() ? nullptr : &*it;
}

FollowerProgress* PartitionReplication::follower_mut(BrokerId broker) {
  return const_cast<FollowerProgress*>(std::as_const(*this).follower(broker));
}

void PartitionReplication::on_leader_append(Offset log_end_offset) {
  log_end_offset_ = std::max(log_end_offset_, log_end_offset);
  update_high_watermark();
}

bool PartitionReplication::on_follower_fetch(BrokerId follower, Offset fetch_offset,
                                             ReplicationTime now) {
  last_seen_time_ = std::max(last_seen_time_, now);
  FollowerProgress* f = follower_mut(follower);
  if (f == nullptr)
    return false;
  // A fetch beyond our log end is answered with an error by the shell; never count it as more.
  Offset leo = std::min(fetch_offset, log_end_offset_);
  if (leo >= log_end_offset_) {
    f->last_caught_up_time = now;
  } else if (f->leader_log_end_at_last_fetch.value() >= 0 &&
             leo >= f->leader_log_end_at_last_fetch) {
    f->last_caught_up_time = std::max(f->last_caught_up_time, f->last_fetch_time);
  }
  f->log_end_offset = leo;
  f->last_fetch_time = now;
  f->leader_log_end_at_last_fetch = log_end_offset_;
  Offset before = high_watermark_;
  update_high_watermark();
  return high_watermark_ > before;
}

ReplicaList PartitionReplication::maximal_isr() const {
  ReplicaList isr = isr_;
  if (in_flight_) {
    for (BrokerId b : in_flight_->proposed_isr) {
      if (!isr.contains(b))
        isr.push_back(b);
    }
  }
  return isr;
}

void PartitionReplication::update_high_watermark() {
  if (static_cast<int>(isr_.size()) < settings_.min_insync_replicas)
    return;
  Offset candidate = log_end_offset_;
#ifdef FAULTLINE_MUTANTS
  Offset furthest{-1};
#endif
  for (BrokerId b : maximal_isr()) {
    if (b == assignment_.self)
      continue;
    const FollowerProgress* f = follower(b);
    // An ISR member we have not heard from since becoming leader may hold less than we think.
    if (f == nullptr || f->log_end_offset.value() < 0)
      return;
    candidate = std::min(candidate, f->log_end_offset);
#ifdef FAULTLINE_MUTANTS
    furthest = std::max(furthest, f->log_end_offset);
#endif
  }
#ifdef FAULTLINE_MUTANTS
  candidate = mutated_high_watermark(candidate, furthest, log_end_offset_);
#endif
  if (candidate <= high_watermark_)
    return;
  high_watermark_ = candidate;
  auto done = std::partition_point(pending_.begin(), pending_.end(), [&](const Pending& p) {
    return p.last_offset < high_watermark_;
  });
  for (auto it = pending_.begin(); it != done; ++it) {
    completed_.push_back({it->request_id, errc::none});
  }
  pending_.erase(pending_.begin(), done);
}

ReplicaList PartitionReplication::isr_shrink_candidates(ReplicationTime now) const {
  ReplicaList out;
#ifdef FAULTLINE_MUTANTS
  // Mutant isr-never-shrinks: a lagging or dead follower is never proposed for removal, so
  // acks=all waits on it forever (the ISR-shrink thread that silently stopped).
  if (mutant_active(Mutant::isr_never_shrinks))
    return out;
#endif
  for (BrokerId b : isr_) {
    if (b == assignment_.self)
      continue;
    const FollowerProgress* f = follower(b);
    if (f == nullptr || now - f->last_caught_up_time > settings_.replica_lag_time_max) {
      out.push_back(b);
    }
  }
  return out;
}

ReplicaList PartitionReplication::isr_expand_candidates(const ReplicaList& ineligible) const {
  ReplicaList out;
  for (const FollowerProgress& f : followers_) {
    if (isr_.contains(f.broker) || f.log_end_offset.value() < 0 || ineligible.contains(f.broker))
      continue;
#ifdef FAULTLINE_MUTANTS
    // Mutant isr-rejoin-early: a follower re-enters the ISR on its first fetch, before it caught
    // up to the HW or to the start of the leader's epoch (the "caught up" checks that compared
    // against the wrong offset, or none).
    if (mutant_active(Mutant::isr_rejoin_early)) {
      out.push_back(f.broker);
      continue;
    }
#endif
    if (f.log_end_offset >= high_watermark_ &&
        f.log_end_offset >= assignment_.leader_epoch_start_offset) {
      out.push_back(f.broker);
    }
  }
  return out;
}

std::optional<IsrChangeProposal> PartitionReplication::propose_isr_change(
    ReplicationTime now, const ReplicaList& ineligible) {
  last_seen_time_ = std::max(last_seen_time_, now);
  if (in_flight_ || awaiting_metadata_ || now < retry_not_before_)
    return std::nullopt;
  ReplicaList shrink = isr_shrink_candidates(now);
  ReplicaList expand = isr_expand_candidates(ineligible);
  if (shrink.empty() && expand.empty())
    return std::nullopt;
  ReplicaList proposed;
  for (BrokerId b : isr_) {
    if (!shrink.contains(b))
      proposed.push_back(b);
  }
  for (BrokerId b : expand)
    proposed.push_back(b);
  in_flight_ = IsrChangeProposal{assignment_.leader_epoch, partition_epoch_, std::move(proposed)};
#ifdef FAULTLINE_MUTANTS
  // Mutant shrink-without-controller: the leader drops the lagging followers from its own ISR
  // (and may advance the HW without them) before the controller committed the change; if the
  // controller refuses or never hears of it, it may still elect one of them (what KIP-497's
  // "maximal ISR" rule prevents).
  if (mutant_active(Mutant::shrink_without_controller) && !shrink.empty()) {
    for (BrokerId b : shrink)
      isr_.erase(b);
    update_high_watermark();
  }
#endif
  return in_flight_;
}

bool PartitionReplication::on_alter_partition_result(const IsrChangeProposal& answered, errc error,
                                                     const ReplicaList& isr,
                                                     PartitionEpoch partition_epoch) {
  if (!in_flight_ || !(*in_flight_ == answered))
    return false;
  in_flight_.reset();
  if (error == errc::none) {
    if (partition_epoch >= partition_epoch_) {
      isr_ = isr;
      partition_epoch_ = partition_epoch;
      on_isr_committed();
    }
    return true;
  }
  if (error == errc::fenced_leader_epoch || error == errc::invalid_update_version) {
    awaiting_metadata_ = true;
  } else {
    retry_not_before_ = last_seen_time_ + settings_.alter_partition_retry_backoff;
  }
  // The maximal ISR just lost the proposal's additions; the HW can only have been held back by
  // them, never pushed forward, so nothing to recompute.
  return true;
}

void PartitionReplication::on_metadata_update(const ReplicaList& isr,
                                              PartitionEpoch partition_epoch,
                                              const ReplicaList& replicas) {
  if (partition_epoch < partition_epoch_)
    return;
  isr_ = isr;
  partition_epoch_ = partition_epoch;
  awaiting_metadata_ = false;
  if (in_flight_ && partition_epoch > in_flight_->partition_epoch)
    in_flight_.reset();
  // Reassignment changes the replica set: track new followers, forget removed ones.
  std::erase_if(followers_,
                [&](const FollowerProgress& f) { return !replicas.contains(f.broker); });
  for (BrokerId b : replicas) {
    if (b != assignment_.self && follower(b) == nullptr)
      followers_.push_back({b});
  }
  assignment_.replicas = replicas;
  on_isr_committed();
}

void PartitionReplication::on_isr_committed() {
  if (static_cast<int>(isr_.size()) < settings_.min_insync_replicas) {
    // The HW is frozen now; waiting would only end in a timeout. The records are in the log, so
    // the client learns the outcome is unknown, not that the write failed.
    for (const Pending& p : pending_) {
      completed_.push_back({p.request_id, errc::not_enough_replicas_after_append});
    }
    pending_.clear();
    return;
  }
  update_high_watermark();
}

errc PartitionReplication::check_produce(Acks acks) const {
  if (acks == Acks::all && static_cast<int>(isr_.size()) < settings_.min_insync_replicas) {
    return errc::not_enough_replicas;
  }
  return errc::none;
}

void PartitionReplication::add_pending_produce(uint64_t request_id, Offset last_offset) {
  if (last_offset < high_watermark_) {
    completed_.push_back({request_id, errc::none});
    return;
  }
  if (static_cast<int>(isr_.size()) < settings_.min_insync_replicas) {
    completed_.push_back({request_id, errc::not_enough_replicas_after_append});
    return;
  }
  // Appends come in offset order, so pending_ stays sorted by last_offset.
  pending_.push_back({request_id, last_offset});
}

std::vector<ProduceCompletion> PartitionReplication::take_completed_produces() {
  std::vector<ProduceCompletion> out;
  out.swap(completed_);
  return out;
}

std::vector<ProduceCompletion> PartitionReplication::abandon_pending_produces() {
  std::vector<ProduceCompletion> out = take_completed_produces();
  for (const Pending& p : pending_)
    out.push_back({p.request_id, errc::leadership_lost_after_append});
  pending_.clear();
  return out;
}

}  // namespace faultline::cluster
