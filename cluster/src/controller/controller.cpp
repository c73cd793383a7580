#include "faultline/cluster/controller/controller.h"

#include <algorithm>
#include <cstdlib>

namespace faultline::cluster {

namespace {

constexpr size_t kMaxTopicNameLength = 249;  // Kafka's limit

bool valid_topic_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxTopicNameLength || name == "." || name == "..") {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

std::optional<bool> parse_bool(std::string_view v) {
  if (v == "true")
    return true;
  if (v == "false")
    return false;
  return std::nullopt;
}

}  // namespace

Controller::Controller(ControllerConfig config, ControllerTime now)
    : config_(std::move(config)),
      next_rebalance_(now + config_.leader_imbalance_check_interval),
      last_tick_(now) {}

std::error_code Controller::replay(std::span<const MetadataEntry> records, ControllerTime now,
                                   std::optional<MetadataOffset> durable,
                                   const MetadataImage* snapshot) {
  if (!log_.empty() || image_.applied_offset().value() >= 0)
    return make_error_code(errc::invalid_request);
  std::unordered_map<BrokerId, MetadataOffset> fenced_at;
  if (snapshot != nullptr) {
    image_ = *snapshot;
    placement_start_ = static_cast<uint32_t>(image_.topics().size());
    // When a broker fenced before the snapshot was fenced is gone with the records: it must have
    // applied the snapshot's whole state before it is unfenced, which includes its fencing.
    for (const auto& [id, broker] : image_.brokers())
      if (broker.fenced)
        fenced_at[id] = image_.applied_offset();
  }
  log_start_ = image_.next_offset();
  for (const MetadataEntry& entry : records) {
    if (auto ec = image_.apply(entry))
      return ec;
    if (const auto* f = std::get_if<BrokerFenced>(&entry.record))
      fenced_at[f->broker] = entry.offset;
    if (std::holds_alternative<TopicCreated>(entry.record))
      ++placement_start_;
  }
  log_.assign(records.begin(), records.end());
  last_tick_ = now;
  first_new_record_ = log_.size();
  durable_offset_ = std::min(image_.applied_offset(), durable.value_or(image_.applied_offset()));
  if (!records.empty())
    term_ = records.back().term;
  for (const auto& [id, broker] : image_.brokers()) {
    if (!broker.registered)
      continue;
    Session& s = sessions_[id];
    // Heartbeat times did not survive the restart: every broker gets a full session to call in.
    s.last_heartbeat = now;
    if (auto it = fenced_at.find(id); it != fenced_at.end())
      s.fenced_at = it->second;
    // Which changes the other brokers had seen is unknown too: wait for everything.
    if (broker.shutting_down)
      s.shutdown_barrier = image_.applied_offset();
  }
  return {};
}

// ---- log ------------------------------------------------------------------------------------

MetadataOffset Controller::append(MetadataRecord record) {
  MetadataEntry entry{image_.next_offset(), std::move(record), term_};
  // The controller only produces records its own image accepts; anything else is a bug that
  // would corrupt every broker's view, so stop rather than persist it.
  if (image_.apply(entry))
    std::abort();
  log_.push_back(std::move(entry));
  return log_.back().offset;
}

void Controller::append_change(PartitionChanged change, const PartitionState& before,
                               ControllerTime trigger) {
  BrokerId previous_leader = before.leader;  // `before` lives in the image: read it first
  // Going offline is not an election: the metric measures the time until a new leader serves.
  if (change.leader != previous_leader && change.leader != kNoBroker) {
    events_.push_back(ElectionEvent{change.tp, change.reason, trigger, previous_leader,
                                    change.leader, image_.next_offset()});
  }
  append(std::move(change));
}

bool Controller::append_record(MetadataRecord record) {
  MetadataEntry entry{image_.next_offset(), std::move(record), term_};
  if (image_.apply(entry))
    return false;
  log_.push_back(std::move(entry));
  return true;
}

std::vector<MetadataEntry> Controller::take_new_records() {
  std::vector<MetadataEntry> fresh(log_.begin() + static_cast<std::ptrdiff_t>(first_new_record_),
                                   log_.end());
  first_new_record_ = log_.size();
  return fresh;
}

void Controller::mark_durable(MetadataOffset offset) {
  MetadataOffset last = image_.applied_offset();
  durable_offset_ = std::max(durable_offset_, std::min(offset, last));
}

void Controller::compact(MetadataOffset through) {
  auto dropped = std::clamp<int64_t>(through.value() + 1 - log_start_.value(), 0,
                                     durable_offset_.value() + 1 - log_start_.value());
  if (dropped <= 0)
    return;
  log_.erase(log_.begin(), log_.begin() + dropped);
  first_new_record_ -= static_cast<size_t>(dropped);
  log_start_ = MetadataOffset{log_start_.value() + dropped};
}

std::span<const MetadataEntry> Controller::records_since(MetadataOffset from, size_t max) const {
  // Indexes into log_, which starts at log_start_.
  int64_t begin = std::max<int64_t>(from.value() - log_start_.value(), 0);
  int64_t end = std::min<int64_t>(durable_offset_.value() + 1 - log_start_.value(),
                                  static_cast<int64_t>(log_.size()));
  if (begin >= end)
    return {};
  end = std::min<int64_t>(end, begin + static_cast<int64_t>(max));
  return std::span<const MetadataEntry>(log_).subspan(static_cast<size_t>(begin),
                                                      static_cast<size_t>(end - begin));
}

std::vector<ElectionEvent> Controller::take_election_events() {
  std::vector<ElectionEvent> events;
  events.swap(events_);
  return events;
}

// ---- config ---------------------------------------------------------------------------------

bool Controller::unclean_election_enabled() const {
  if (auto v = image_.config(kUncleanLeaderElectionKey)) {
    if (auto b = parse_bool(*v))
      return *b;
  }
  return config_.unclean_leader_election;
}

bool Controller::auto_rebalance_enabled() const {
  if (auto v = image_.config(kAutoLeaderRebalanceKey)) {
    if (auto b = parse_bool(*v))
      return *b;
  }
  return config_.auto_leader_rebalance;
}

errc Controller::set_config(const std::string& key, const std::string& value, ControllerTime now) {
  if (key == kMarkerKey) {
    append(ConfigChanged{key, value});
    return errc::none;
  }
  if (key != kUncleanLeaderElectionKey && key != kAutoLeaderRebalanceKey) {
    return errc::invalid_config;
  }
  if (!parse_bool(value))
    return errc::invalid_config;
  bool unclean_before = unclean_election_enabled();
  append(ConfigChanged{key, value});
  if (!unclean_before && unclean_election_enabled()) {
    // Partitions that went offline while unclean elections were off can come back now.
    ClusterView v = view();
    for (PartitionRef ref : image_.offline_partitions())
      try_unclean(ref, v, now);
  }
  return errc::none;
}

// ---- brokers --------------------------------------------------------------------------------

RegisterResult Controller::register_broker(const BrokerRegistration& registration,
                                           ControllerTime now) {
  if (registration.broker.value() < 0)
    return {errc::invalid_request, BrokerEpoch{-1}};
  const BrokerState* existing = image_.broker(registration.broker);
  if (existing != nullptr && existing->registered &&
      existing->incarnation == registration.incarnation) {
    // A retried request of the same process start: same epoch, nothing new to record.
    sessions_[registration.broker].last_heartbeat = now;
    return {errc::none, existing->epoch};
  }
  if (existing != nullptr && existing->registered && !existing->fenced) {
    // The old incarnation is gone (it restarted): whatever it led must move now, not after its
    // session would have expired.
    fence(registration.broker, now);
  }
  BrokerEpoch epoch{image_.next_offset().value()};
  append(BrokerRegistered{registration.broker, epoch, registration.incarnation,
                          registration.internal_endpoint, registration.client_endpoint,
                          registration.rack, registration.kafka_endpoint});
  Session& s = sessions_[registration.broker];
  s = Session{};
  s.last_heartbeat = now;
  return {errc::none, epoch};
}

HeartbeatResult Controller::heartbeat(const BrokerHeartbeat& hb, ControllerTime now) {
  HeartbeatResult result;
  const BrokerState* b = image_.broker(hb.broker);
  if (b == nullptr || !b->registered) {
    result.error = errc::broker_id_not_registered;
    return result;
  }
  if (hb.broker_epoch != b->epoch) {
    result.error = errc::stale_broker_epoch;
    return result;
  }
  Session& s = sessions_[hb.broker];
  s.last_heartbeat = now;
  s.applied_offset = std::max(s.applied_offset, hb.applied_offset);

  if (hb.log_dir_offline) {
    on_log_dir_offline(hb.broker, now);
  } else if (hb.want_shutdown && !b->shutting_down) {
    if (!b->fenced) {
      append(BrokerControlledShutdown{hb.broker, b->epoch});
      fail_over(hb.broker, ElectionReason::controlled_shutdown, now);
      s.shutdown_barrier = image_.applied_offset();
    } else {
      // A fenced broker leads nothing: it may stop at once.
      append(BrokerControlledShutdown{hb.broker, b->epoch});
    }
  } else if (!hb.want_shutdown && b->fenced && !b->shutting_down &&
             s.applied_offset >= b->registered_at && s.applied_offset >= s.fenced_at) {
    append(BrokerUnfenced{hb.broker, b->epoch});
    elect_returned(hb.broker, now);
  }

  if (b->shutting_down && !b->fenced && shutdown_complete(hb.broker, s)) {
    // Done: fence it so nothing is elected onto it before it re-registers.
    fence(hb.broker, now);
  }
  result.fenced = b->fenced;
  result.shutting_down = b->shutting_down;
  result.shutdown_allowed = b->shutting_down && b->fenced;
  return result;
}

bool Controller::shutdown_complete(BrokerId broker, const Session& session) const {
  for (PartitionRef ref : image_.replica_index(broker)) {
    if (image_.partition(ref).leader == broker)
      return false;
  }
  // The others must have applied the moves before the broker stops serving, or clients and
  // followers would be sent to a leader that is gone.
  for (const auto& [id, other] : image_.brokers()) {
    if (id == broker || !other.registered || other.fenced || other.shutting_down)
      continue;
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.applied_offset < session.shutdown_barrier)
      return false;
  }
  return true;
}

void Controller::tick(ControllerTime now) {
  // A gap this long between ticks means the controller itself was not running (paused, stopped,
  // starved): the brokers' heartbeats were waiting unread, so silence says nothing about them.
  // Give every broker a fresh half session to be heard before fencing anyone.
  ControllerTime stall_threshold = last_tick_ + config_.session_timeout / 2;
  if (now > stall_threshold) {
    for (auto& [id, session] : sessions_) {
      session.last_heartbeat = std::max(session.last_heartbeat, now - config_.session_timeout / 2);
    }
  }
  last_tick_ = now;

  std::vector<std::pair<BrokerId, ControllerTime>> expired;
  for (const auto& [id, broker] : image_.brokers()) {
    if (!broker.registered || broker.fenced)
      continue;
    auto it = sessions_.find(id);
    if (it == sessions_.end())
      continue;
    ControllerTime deadline = it->second.last_heartbeat + config_.session_timeout;
    if (now > deadline)
      expired.emplace_back(id, deadline);
  }
  // Fence them all before electing, so that no partition is handed to a broker that is about to
  // be fenced in the same tick. The session's expiry, not this tick, is when the failure was
  // detectable: election latency metrics measure from there.
  for (const auto& [id, deadline] : expired)
    sessions_[id].fenced_at = append(BrokerFenced{id, image_.broker(id)->epoch});
  for (const auto& [id, deadline] : expired)
    fail_over(id, ElectionReason::offline, deadline);

  if (now >= next_rebalance_) {
    next_rebalance_ = now + config_.leader_imbalance_check_interval;
    // A full batch means more may be waiting: continue at the next tick instead of a whole
    // interval later, one capped batch at a time so replication is never starved.
    if (auto_rebalance_enabled() && run_rebalance(now))
      next_rebalance_ = now;
  }
}

// A broker has one log directory, so an offline directory is every replica it holds: it is fenced
// as if its session had expired (out of every ISR, its leaderships elected elsewhere) and stays
// fenced while it says so. Restarted, it registers afresh with its recovered logs and rejoins.
void Controller::on_log_dir_offline(BrokerId broker, ControllerTime trigger) {
  const BrokerState* b = image_.broker(broker);
  if (b->fenced)
    return;
  fence(broker, trigger);
}

void Controller::fence(BrokerId broker, ControllerTime trigger) {
  const BrokerState* b = image_.broker(broker);
  sessions_[broker].fenced_at = append(BrokerFenced{broker, b->epoch});
  fail_over(broker, ElectionReason::offline, trigger);
}

void Controller::fail_over(BrokerId broker, ElectionReason reason, ControllerTime trigger) {
  ClusterView v = view();
  bool unclean = unclean_election_enabled();
  // Copy: appending may touch the index (it does not today, but iteration must not depend on it).
  auto index = image_.replica_index(broker);
  std::vector<PartitionRef> refs(index.begin(), index.end());
  for (PartitionRef ref : refs) {
    const PartitionState& p = image_.partition(ref);
    if (p.leader != broker && !p.isr.contains(broker))
      continue;
    ElectionResult r = elect_offline(image_.topic_partition(ref), p, v, reason);
    if (r.changed())
      append_change(std::move(*r.change), p, trigger);
    if (unclean && image_.partition(ref).leader == kNoBroker)
      try_unclean(ref, v, trigger);
  }
}

void Controller::elect_returned(BrokerId broker, ControllerTime trigger) {
  ClusterView v = view();
  bool unclean = unclean_election_enabled();
  for (PartitionRef ref : image_.partitions_with_replica(broker)) {
    const PartitionState& p = image_.partition(ref);
    if (p.leader != kNoBroker)
      continue;
    if (p.isr.contains(broker)) {
      ElectionResult r =
          elect_offline(image_.topic_partition(ref), p, v, ElectionReason::broker_returned);
      if (r.changed())
        append_change(std::move(*r.change), p, trigger);
    } else if (unclean) {
      try_unclean(ref, v, trigger);
    }
  }
}

void Controller::try_unclean(PartitionRef ref, const ClusterView& view, ControllerTime trigger) {
  const PartitionState& p = image_.partition(ref);
  ElectionResult r = elect_unclean(image_.topic_partition(ref), p, view);
  if (r.changed())
    append_change(std::move(*r.change), p, trigger);
}

// ---- topics ---------------------------------------------------------------------------------

CreateTopicResult Controller::create_topic(const std::string& name, int32_t partitions,
                                           int32_t replication_factor, ControllerTime now) {
  CreateTopicResult result;
  if (!valid_topic_name(name)) {
    result.error = errc::invalid_request;
    return result;
  }
  if (image_.topic(name) != nullptr) {
    result.error = errc::topic_already_exists;
    return result;
  }
  if (partitions <= 0) {
    result.error = errc::invalid_partitions;
    return result;
  }
  std::vector<BrokerId> brokers;
  for (const auto& [id, b] : image_.brokers()) {
    if (b.registered && !b.fenced && !b.shutting_down)
      brokers.push_back(id);
  }
  auto n = static_cast<int32_t>(brokers.size());
  if (replication_factor <= 0 || replication_factor > n) {
    result.error = errc::invalid_replication_factor;
    return result;
  }
  // Kafka's rack-unaware placement: leaders round-robin from a start broker that rotates per
  // topic, and followers offset by a shift that grows every n partitions, so that leaders,
  // followers and leader-follower pairs all spread evenly.
  int32_t start = static_cast<int32_t>(placement_start_ % static_cast<uint32_t>(n));
  int32_t shift = start;
  result.assignment.reserve(static_cast<size_t>(partitions));
  for (int32_t p = 0; p < partitions; ++p) {
    if (p > 0 && p % n == 0)
      ++shift;
    int32_t first = (start + p) % n;
    ReplicaList replicas;
    replicas.push_back(brokers[static_cast<size_t>(first)]);
    for (int32_t j = 0; j < replication_factor - 1; ++j) {
      int32_t index = (first + 1 + (shift + j) % (n - 1)) % n;
      replicas.push_back(brokers[static_cast<size_t>(index)]);
    }
    result.assignment.push_back(std::move(replicas));
  }
  ++placement_start_;
  append(TopicCreated{name, result.assignment});

  // A demoted preferred replica must not start out leading (item 16).
  ClusterView v = view();
  auto index = static_cast<uint32_t>(*image_.topic_index(name));
  for (int32_t p = 0; p < partitions; ++p) {
    PartitionRef ref{index, p};
    const PartitionState& state = image_.partition(ref);
    if (!v.demoted(state.leader))
      continue;
    ElectionResult r = elect_for_demotion(image_.topic_partition(ref), state, v);
    if (r.changed()) {
      r.change->reason = ElectionReason::new_topic;
      append_change(std::move(*r.change), state, now);
    }
  }
  return result;
}

AlterPartitionResult Controller::alter_partition(const AlterPartitionRequest& request,
                                                 ControllerTime now) {
  AlterPartitionResult result;
  const BrokerState* requester = image_.broker(request.leader);
  if (requester == nullptr || !requester->registered) {
    result.error = errc::broker_id_not_registered;
    return result;
  }
  if (requester->epoch != request.leader_broker_epoch || requester->fenced) {
    result.error = errc::stale_broker_epoch;
    return result;
  }
  auto ref = image_.ref(request.tp);
  if (!ref) {
    result.error = errc::unknown_topic_or_partition;
    return result;
  }
  const PartitionState& p = image_.partition(*ref);
  if (request.leader_epoch < p.leader_epoch) {
    result.error = errc::fenced_leader_epoch;
    return result;
  }
  if (request.leader_epoch > p.leader_epoch) {
    result.error = errc::unknown_leader_epoch;
    return result;
  }
  if (p.leader != request.leader) {
    result.error = errc::not_leader_or_follower;
    return result;
  }
  if (request.partition_epoch != p.partition_epoch) {
    result.error = errc::invalid_update_version;
    return result;
  }
  const ReplicaList& isr = request.proposed_isr;
  if (!isr.contains(request.leader)) {
    result.error = errc::invalid_request;
    return result;
  }
  for (uint32_t i = 0; i < isr.size(); ++i) {
    const BrokerState* member = image_.broker(isr[i]);
    bool duplicate = std::find(isr.begin(), isr.begin() + i, isr[i]) != isr.begin() + i;
    if (duplicate || !p.replicas.contains(isr[i]) || member == nullptr || !member->isr_eligible()) {
      result.error = errc::invalid_request;
      return result;
    }
  }
  if (!(isr == p.isr)) {
    PartitionChanged change =
        make_partition_change(request.tp, p, p.leader, isr, ElectionReason::none);
    // A leader only replicates (and so asks for ISR changes) once it serves: after an unclean
    // election its log is the partition's history from here on.
    change.leader_recovery = LeaderRecovery::recovered;
    append_change(std::move(change), p, now);
    if (image_.partition(*ref).reassigning())
      advance_reassignment_of(*ref, now);
    // A demoted broker leads only while nobody else can (item 16): a normal broker that just
    // joined its ISR takes over.
    const PartitionState& after = image_.partition(*ref);
    ClusterView v = view();
    if (after.leader != kNoBroker && v.demoted(after.leader)) {
      ElectionResult r = elect_for_demotion(request.tp, after, v);
      if (r.changed())
        append_change(std::move(*r.change), after, now);
    }
  }
  result.state = image_.partition(*ref);
  return result;
}

std::vector<PartitionElectionResult> Controller::elect_leaders(
    ElectionType type, std::span<const TopicPartition> partitions, ControllerTime now) {
  std::vector<PartitionRef> refs;
  std::vector<PartitionElectionResult> results;
  if (partitions.empty()) {
    for (uint32_t t = 0; t < image_.topics().size(); ++t) {
      for (size_t p = 0; p < image_.topics()[t].partitions.size(); ++p) {
        refs.push_back({t, static_cast<int32_t>(p)});
      }
    }
  } else {
    for (const TopicPartition& tp : partitions) {
      if (auto ref = image_.ref(tp)) {
        refs.push_back(*ref);
      } else {
        results.push_back({tp, errc::unknown_topic_or_partition});
      }
    }
  }
  ClusterView v = view();
  for (PartitionRef ref : refs) {
    const PartitionState& p = image_.partition(ref);
    TopicPartition tp = image_.topic_partition(ref);
    // An admin asking for an unclean election has decided to accept data loss: the dynamic
    // config only governs the automatic ones.
    ElectionResult r =
        type == ElectionType::preferred ? elect_preferred(tp, p, v) : elect_unclean(tp, p, v);
    if (r.changed())
      append_change(std::move(*r.change), p, now);
    results.push_back({std::move(tp), r.error});
  }
  return results;
}

errc Controller::reassign(const TopicPartition& tp, const ReplicaList& target, ControllerTime now) {
  auto ref = image_.ref(tp);
  if (!ref)
    return errc::unknown_topic_or_partition;
  const PartitionState& p = image_.partition(*ref);
  ElectionResult r = start_reassignment(tp, p, target, view());
  if (r.changed()) {
    append_change(std::move(*r.change), p, now);
    return errc::none;
  }
  return r.error == errc::election_not_needed ? errc::none : r.error;
}

void Controller::advance_reassignment_of(PartitionRef ref, ControllerTime now) {
  const PartitionState& p = image_.partition(ref);
  ElectionResult r = advance_reassignment(image_.topic_partition(ref), p, view());
  if (r.changed())
    append_change(std::move(*r.change), p, now);
}

// ---- priority -------------------------------------------------------------------------------

errc Controller::demote(BrokerId broker, const std::string& reason, ControllerTime now) {
  const BrokerState* b = image_.broker(broker);
  if (b == nullptr || !b->registered)
    return errc::broker_id_not_registered;
  if (!b->demoted || b->demotion_reason != reason) {
    append(BrokerPriorityChanged{broker, true, reason});
  }
  ClusterView v = view();
  for (PartitionRef ref : image_.partitions_led_by(broker)) {
    const PartitionState& p = image_.partition(ref);
    ElectionResult r = elect_for_demotion(image_.topic_partition(ref), p, v);
    if (r.changed())
      append_change(std::move(*r.change), p, now);
  }
  return errc::none;
}

errc Controller::promote(BrokerId broker, ControllerTime now) {
  const BrokerState* b = image_.broker(broker);
  if (b == nullptr || !b->registered)
    return errc::broker_id_not_registered;
  if (b->demoted)
    append(BrokerPriorityChanged{broker, false, {}});
  ClusterView v = view();
  for (PartitionRef ref : image_.partitions_with_replica(broker)) {
    const PartitionState& p = image_.partition(ref);
    ElectionResult r;
    if (p.preferred_leader() == broker) {
      r = elect_preferred(image_.topic_partition(ref), p, v, ElectionReason::promotion);
    } else if (p.leader != kNoBroker && v.demoted(p.leader) && p.isr.contains(broker)) {
      // A demoted leader was only tolerated for want of a normal ISR member; now there is one.
      r = elect_for_demotion(image_.topic_partition(ref), p, v);
      if (r.changed())
        r.change->reason = ElectionReason::promotion;
    }
    if (r.changed())
      append_change(std::move(*r.change), p, now);
  }
  return errc::none;
}

bool Controller::run_rebalance(ControllerTime now) {
  ClusterView v = view();
  auto cap = static_cast<size_t>(std::max(config_.rebalance_batch_cap, 1));
  auto selected = select_rebalance(image_, v, config_.leader_imbalance_per_broker_percentage, cap);
  for (PartitionRef ref : selected) {
    const PartitionState& p = image_.partition(ref);
    ElectionResult r =
        elect_preferred(image_.topic_partition(ref), p, v, ElectionReason::auto_rebalance);
    if (r.changed())
      append_change(std::move(*r.change), p, now);
  }
  return selected.size() == cap;
}

}  // namespace faultline::cluster
