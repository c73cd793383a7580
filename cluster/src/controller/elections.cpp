#include "faultline/cluster/controller/elections.h"

#include <algorithm>

#ifdef FAULTLINE_MUTANTS
#include "faultline/cluster/mutants.h"
#endif

namespace faultline::cluster {

ClusterView ClusterView::from(const MetadataImage& image) {
  ClusterView view;
  view.brokers_.reserve(image.brokers().size());
  for (const auto& [id, b] : image.brokers()) {  // std::map: already sorted by id
    bool demoted = b.demoted;
#ifdef FAULTLINE_MUTANTS
    // Mutant ignore-demotion: leadership priority lost between the metadata and the elections (the
    // demotion is recorded and shown, but no election looks at it), as when a priority or
    // preferred-leader flag is dropped while the controller rebuilds its view of the brokers.
    if (mutant_active(Mutant::ignore_demotion))
      demoted = false;
#endif
    view.brokers_.emplace_back(id, BrokerStatus{b.registered, b.fenced, b.shutting_down, demoted});
  }
  return view;
}

void ClusterView::set(BrokerId broker, BrokerStatus status) {
  auto it = std::lower_bound(brokers_.begin(), brokers_.end(), broker,
                             [](const auto& entry, BrokerId id) { return entry.first < id; });
  if (it != brokers_.end() && it->first == broker) {
    it->second = status;
  } else {
    brokers_.insert(it, {broker, status});
  }
}

BrokerStatus ClusterView::status(BrokerId broker) const {
  auto it = std::lower_bound(brokers_.begin(), brokers_.end(), broker,
                             [](const auto& entry, BrokerId id) { return entry.first < id; });
  if (it != brokers_.end() && it->first == broker)
    return it->second;
  return BrokerStatus{};
}

namespace {

bool acceptable_with_isr(BrokerId broker, const ReplicaList& isr, const ClusterView& view) {
  BrokerStatus s = view.status(broker);
  if (!s.alive())
    return false;
  if (!s.demoted)
    return true;
  return std::none_of(isr.begin(), isr.end(), [&](BrokerId other) {
    BrokerStatus o = view.status(other);
    return o.alive() && !o.demoted;
  });
}

}  // namespace

bool is_acceptable_leader(BrokerId broker, const PartitionState& p, const ClusterView& view) {
  return acceptable_with_isr(broker, p.isr, view);
}

PartitionChanged make_partition_change(const TopicPartition& tp, const PartitionState& p,
                                       BrokerId leader, ReplicaList isr, ElectionReason reason) {
  PartitionChanged c;
  c.tp = tp;
  c.leader = leader;
  c.isr = std::move(isr);
  c.leader_epoch = leader != p.leader ? p.leader_epoch.next() : p.leader_epoch;
#ifdef FAULTLINE_MUTANTS
  // Mutant no-epoch-bump-on-planned-move: a planned leader change (controlled shutdown, demotion,
  // preferred election) keeps the leader epoch, so two leaders write under the same epoch and
  // epoch-based fencing and KIP-320 divergence checks cannot tell their histories apart (Raft
  // implementations that transferred leadership without a new term shipped this).
  bool planned = reason == ElectionReason::controlled_shutdown ||
                 reason == ElectionReason::demotion || reason == ElectionReason::promotion ||
                 reason == ElectionReason::preferred || reason == ElectionReason::auto_rebalance;
  if (mutant_active(Mutant::no_epoch_bump_on_planned_move) && planned)
    c.leader_epoch = p.leader_epoch;
#endif
  c.partition_epoch = p.partition_epoch.next();
  c.replicas = p.replicas;
  c.adding = p.adding;
  c.removing = p.removing;
  // A clean leader change ends the recovery state of an unclean one.
  c.leader_recovery = leader != p.leader ? LeaderRecovery::recovered : p.leader_recovery;
  c.reason = reason;
  return c;
}

namespace {

ElectionResult no_change(errc why) {
  ElectionResult r;
  r.error = why;
  return r;
}

ElectionResult changed(const TopicPartition& tp, const PartitionState& p, BrokerId leader,
                       ReplicaList isr, ElectionReason reason) {
  ElectionResult r;
  r.leader_changed = leader != p.leader;
  r.change = make_partition_change(tp, p, leader, std::move(isr), reason);
  return r;
}

// First broker of `candidates` in assignment order that is in `isr` (or any, if none is).
BrokerId first_in(const ReplicaList& order, const ReplicaList& isr) {
  for (BrokerId b : order) {
    if (isr.contains(b))
      return b;
  }
  return isr.empty() ? kNoBroker : isr.front();
}

#ifdef FAULTLINE_MUTANTS
// The controller's election and fencing mutants, applied to elect_offline's clean choice.
void mutate_offline_election(const PartitionState& p, const ClusterView& view, BrokerId& leader,
                             ReplicaList& isr) {
  if (mutant_active(Mutant::elect_outside_isr) && leader != p.leader) {
    // Mutant elect-outside-isr: a new leader is the first live replica in assignment order, in
    // the ISR or not (an unclean election although it is disabled, or when a clean one is
    // possible; Kafka's and many Raft ports' "pick any live replica" failover bugs).
    BrokerId any = pick_leader(p.replicas, view, [](BrokerId) { return true; });
    if (any != kNoBroker) {
      leader = any;
      if (!isr.contains(any))
        isr.push_back(any);
    }
  }
  if (mutant_active(Mutant::fenced_stays_in_isr) && leader != kNoBroker) {
    // Mutant fenced-stays-in-isr: a fenced (or departing) broker is not removed from the ISR, so
    // it may be elected when it returns without the records acknowledged meanwhile.
    for (BrokerId b : p.isr) {
      if (!isr.contains(b))
        isr.push_back(b);
    }
  }
}
#endif

}  // namespace

ElectionResult elect_offline(const TopicPartition& tp, const PartitionState& p,
                             const ClusterView& view, ElectionReason reason) {
  ReplicaList isr;
  for (BrokerId b : p.isr) {
    if (view.alive(b))
      isr.push_back(b);
  }
  BrokerId leader = kNoBroker;
  if (isr.empty()) {
    // Nobody left to lead: remember who has the most data so the partition comes back clean when
    // that broker does. The leader has everything acknowledged; otherwise the first ISR member.
    if (p.isr.empty())
      return no_change(errc::eligible_leaders_not_available);
    BrokerId keep = p.isr.contains(p.leader) ? p.leader : first_in(p.replicas, p.isr);
    isr.push_back(keep);
  } else {
    if (p.leader != kNoBroker && isr.contains(p.leader) &&
        acceptable_with_isr(p.leader, isr, view)) {
      leader = p.leader;
    } else {
      leader = pick_leader(p.replicas, view, [&](BrokerId b) { return isr.contains(b); });
      // An ISR member outside the assignment (never created by this controller) still beats
      // going offline.
      if (leader == kNoBroker)
        leader = pick_leader(isr, view, [](BrokerId) { return true; });
    }
  }
#ifdef FAULTLINE_MUTANTS
  mutate_offline_election(p, view, leader, isr);
#endif
  if (leader == p.leader && isr == p.isr)
    return no_change(errc::election_not_needed);
  return changed(tp, p, leader, std::move(isr), reason);
}

ElectionResult elect_controlled_shutdown(const TopicPartition& tp, const PartitionState& p,
                                         const ClusterView& view) {
  return elect_offline(tp, p, view, ElectionReason::controlled_shutdown);
}

ElectionResult elect_preferred(const TopicPartition& tp, const PartitionState& p,
                               const ClusterView& view, ElectionReason reason) {
  BrokerId preferred = p.preferred_leader();
  if (preferred == kNoBroker)
    return no_change(errc::preferred_leader_not_available);
  if (p.leader == preferred)
    return no_change(errc::election_not_needed);
  BrokerStatus s = view.status(preferred);
  if (!p.isr.contains(preferred) || !s.alive() || s.demoted) {
    return no_change(errc::preferred_leader_not_available);
  }
  return changed(tp, p, preferred, p.isr, reason);
}

ElectionResult elect_unclean(const TopicPartition& tp, const PartitionState& p,
                             const ClusterView& view) {
  if (p.leader != kNoBroker && view.alive(p.leader))
    return no_change(errc::election_not_needed);
  bool isr_member_alive =
      std::any_of(p.isr.begin(), p.isr.end(), [&](BrokerId b) { return view.alive(b); });
  if (isr_member_alive)
    return elect_offline(tp, p, view, ElectionReason::offline);
  BrokerId leader = pick_leader(p.replicas, view, [](BrokerId) { return true; });
  if (leader == kNoBroker)
    return no_change(errc::eligible_leaders_not_available);
  ElectionResult r = changed(tp, p, leader, ReplicaList{leader}, ElectionReason::unclean);
  r.change->leader_recovery = LeaderRecovery::recovering;
  return r;
}

ElectionResult elect_for_demotion(const TopicPartition& tp, const PartitionState& p,
                                  const ClusterView& view) {
  if (p.leader == kNoBroker || !view.demoted(p.leader)) {
    return no_change(errc::election_not_needed);
  }
  BrokerId leader = kNoBroker;
  for (BrokerId b : p.replicas) {
    BrokerStatus s = view.status(b);
    if (b != p.leader && p.isr.contains(b) && s.alive() && !s.demoted) {
      leader = b;
      break;
    }
  }
  if (leader == kNoBroker)
    return no_change(errc::eligible_leaders_not_available);
  return changed(tp, p, leader, p.isr, ElectionReason::demotion);
}

ElectionResult start_reassignment(const TopicPartition& tp, const PartitionState& p,
                                  const ReplicaList& target, const ClusterView& view) {
  if (target.empty())
    return no_change(errc::invalid_replica_assignment);
  for (uint32_t i = 0; i < target.size(); ++i) {
    if (!view.status(target[i]).registered)
      return no_change(errc::invalid_replica_assignment);
    for (uint32_t j = 0; j < i; ++j) {
      if (target[i] == target[j])
        return no_change(errc::invalid_replica_assignment);
    }
  }
  if (p.reassigning())
    return no_change(errc::invalid_request);  // one at a time
  if (target == p.replicas)
    return no_change(errc::election_not_needed);

  PartitionState moving = p;
  moving.replicas = target;
  moving.adding.clear();
  moving.removing.clear();
  for (BrokerId b : target) {
    if (!p.replicas.contains(b))
      moving.adding.push_back(b);
  }
  for (BrokerId b : p.replicas) {
    if (!target.contains(b)) {
      moving.removing.push_back(b);
      moving.replicas.push_back(b);
    }
  }
  // Nothing to wait for (a reorder or a pure removal): finish in the same change.
  ElectionResult finished = advance_reassignment(tp, moving, view);
  if (finished.changed()) {
    // Epochs and leadership are judged against the state before the reassignment started.
    const PartitionChanged& f = *finished.change;
    ElectionResult r = changed(tp, p, f.leader, f.isr, ElectionReason::reassignment);
    r.change->replicas = f.replicas;
    r.change->adding.clear();
    r.change->removing.clear();
    return r;
  }
  ElectionResult r = changed(tp, p, p.leader, p.isr, ElectionReason::reassignment);
  r.change->replicas = moving.replicas;
  r.change->adding = moving.adding;
  r.change->removing = moving.removing;
  return r;
}

ElectionResult advance_reassignment(const TopicPartition& tp, const PartitionState& p,
                                    const ClusterView& view) {
  if (!p.reassigning())
    return no_change(errc::no_reassignment_in_progress);
  for (BrokerId b : p.adding) {
    if (!p.isr.contains(b))
      return no_change(errc::election_not_needed);
  }
  ReplicaList replicas;
  for (BrokerId b : p.replicas) {
    if (!p.removing.contains(b))
      replicas.push_back(b);
  }
  ReplicaList isr;
  for (BrokerId b : p.isr) {
    if (!p.removing.contains(b))
      isr.push_back(b);
  }
  // Dropping the old replicas must leave someone in sync to lead; until then keep waiting.
  if (isr.empty())
    return no_change(errc::election_not_needed);
  BrokerId leader = p.leader;
  if (leader == kNoBroker || !isr.contains(leader)) {
    leader = pick_leader(replicas, view, [&](BrokerId b) { return isr.contains(b); });
  }
  ElectionResult r = changed(tp, p, leader, std::move(isr), ElectionReason::reassignment);
  r.change->replicas = std::move(replicas);
  r.change->adding.clear();
  r.change->removing.clear();
  return r;
}

double leader_imbalance_ratio(const MetadataImage& image, BrokerId broker) {
  size_t preferred = 0;
  size_t not_led = 0;
  for (PartitionRef ref : image.replica_index(broker)) {
    const PartitionState& p = image.partition(ref);
    if (p.preferred_leader() != broker)
      continue;
    ++preferred;
    if (p.leader != broker)
      ++not_led;
  }
  return preferred == 0 ? 0.0 : static_cast<double>(not_led) / static_cast<double>(preferred);
}

std::vector<PartitionRef> select_rebalance(const MetadataImage& image, const ClusterView& view,
                                           int imbalance_percentage, size_t batch_cap) {
  std::vector<PartitionRef> selected;
  for (const auto& [id, broker] : image.brokers()) {
    if (selected.size() >= batch_cap)
      break;
    BrokerStatus s = view.status(id);
    // Leadership never moves onto a demoted or unavailable broker, so its imbalance is moot.
    if (!s.alive() || s.demoted)
      continue;
    if (leader_imbalance_ratio(image, id) * 100.0 <= imbalance_percentage)
      continue;
    for (PartitionRef ref : image.replica_index(id)) {
      if (selected.size() >= batch_cap)
        break;
      const PartitionState& p = image.partition(ref);
      if (p.preferred_leader() == id && p.leader != id && p.isr.contains(id)) {
        selected.push_back(ref);
      }
    }
  }
  return selected;
}

}  // namespace faultline::cluster
