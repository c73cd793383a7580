#include "faultline/cluster/controller/controller_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

namespace faultline::cluster {

namespace {

// Without a --quorum the controller is a quorum of one: itself, id 0.
std::vector<QuorumVoter> voters_of(const ControllerConfig& config) {
  if (!config.quorum.empty())
    return config.quorum;
  return {QuorumVoter{config.node_id, config.listener}};
}

RaftConfig raft_config(const ControllerConfig& config, const std::vector<QuorumVoter>& voters) {
  RaftConfig rc;
  rc.id = config.node_id;
  rc.voters.clear();
  for (const QuorumVoter& v : voters)
    rc.voters.push_back(v.id);
  rc.election_timeout = config.quorum_election_timeout;
  rc.heartbeat_interval = config.quorum_heartbeat_interval;
  return rc;
}

// The disk refused: the node's promises (votes, acknowledged entries) would no longer hold after
// a restart, so it must not continue.
[[noreturn]] void die_on_disk_error(std::string_view what, const std::error_code& ec) {
  spdlog::critical("event=metadata_persist_failed what={} error=\"{}\"", what, ec.message());
  std::abort();
}

struct LoadedSnapshot {
  std::error_code error;
  std::vector<uint8_t> bytes;
  RaftSnapshotPoint point;
};

// The snapshot file, checked: one that does not decode is a corrupt store (its records are gone
// from the log), not something to start without.
LoadedSnapshot load_snapshot(const std::filesystem::path& file) {
  LoadedSnapshot result;
  auto loaded = load_metadata_snapshot(file);
  if (loaded.error || loaded.bytes.empty()) {
    result.error = loaded.error;
    return result;
  }
  std::string why;
  auto snapshot = decode_metadata_snapshot(loaded.bytes, &why);
  if (!snapshot) {
    spdlog::critical("event=metadata_snapshot_corrupt file={} error=\"{}\"", file.string(), why);
    result.error = make_error_code(errc::corrupt_message);
    return result;
  }
  result.point = {snapshot->last_offset, snapshot->last_term};
  result.bytes = std::move(loaded.bytes);
  return result;
}

}  // namespace

ControllerService::OpenResult ControllerService::open(const ControllerConfig& config,
                                                      prometheus::Registry& registry,
                                                      ControllerTime now, uint64_t seed) {
  OpenResult result;
  auto voters = voters_of(config);
  if (std::none_of(voters.begin(), voters.end(),
                   [&](const QuorumVoter& v) { return v.id == config.node_id; })) {
    result.error = make_error_code(errc::invalid_request);
    return result;
  }
  auto snapshot_path = config.data_dir / "metadata.snapshot";
  auto snapshot = load_snapshot(snapshot_path);
  if (snapshot.error) {
    result.error = snapshot.error;
    return result;
  }
  auto opened = MetadataStore::open(config.data_dir / "metadata.log");
  if (opened.error) {
    result.error = opened.error;
    return result;
  }
  // A crash between saving a snapshot and compacting the log leaves records it covers.
  if (auto ec = opened.store->align_to_snapshot(snapshot.point.offset)) {
    spdlog::critical("event=metadata_log_misaligned snapshot_offset={} log_start={}",
                     snapshot.point.offset.value(), opened.store->first_offset().value());
    result.error = ec;
    return result;
  }
  std::erase_if(opened.records,
                [&](const MetadataEntry& e) { return e.offset <= snapshot.point.offset; });
  auto quorum_state_path = config.data_dir / "quorum-state";
  auto state = load_quorum_state(quorum_state_path);
  if (state.error) {
    result.error = state.error;
    return result;
  }
  result.replayed_records = opened.records.size();
  result.dropped_tail_bytes = opened.dropped_tail_bytes;
  RaftNode raft(raft_config(config, voters), state.state, snapshot.point, std::move(opened.records),
                seed, now);
  auto service = std::unique_ptr<ControllerService>(
      new ControllerService(config, registry, std::move(opened.store), std::move(raft)));
  service->quorum_state_path_ = std::move(quorum_state_path);
  service->snapshot_path_ = std::move(snapshot_path);
  service->snapshot_bytes_ = std::move(snapshot.bytes);
  service->last_leader_alive_ = now;
  // A quorum of one has elected itself in the constructor: persist that and take office.
  service->step(now);
  result.service = std::move(service);
  return result;
}

ControllerService::ControllerService(const ControllerConfig& config, prometheus::Registry& registry,
                                     std::unique_ptr<MetadataStore> store, RaftNode raft)
    : config_(config),
      voters_(voters_of(config)),
      store_(std::move(store)),
      raft_(std::move(raft)),
      metrics_(registry),
      quorum_metrics_(registry) {}

// ---- the Ready protocol ----------------------------------------------------------------------

void ControllerService::step(ControllerTime now) {
  if (raft_.is_leader() && !controller_) {
    take_office(now);
  } else if (!raft_.is_leader() && controller_) {
    leave_office();
  }
  if (controller_) {
    auto records = controller_->take_new_records();
    if (!records.empty()) {
      // The Controller was rebuilt from this very log, so its offsets continue it.
      if (errc e = raft_.propose(records, now); e != errc::none) {
        spdlog::critical("event=propose_failed error={}", static_cast<int>(e));
        std::abort();
      }
      proposed_ = records.back().offset;
      proposal_times_.emplace_back(proposed_, now);
      for (ElectionEvent& ev : controller_->take_election_events())
        pending_elections_.push_back(std::move(ev));
    }
  }
  RaftReady ready = raft_.take_ready();
  persist(ready);
  for (RaftOutgoing& m : ready.messages) {
    // Asked for in this very event, so the RaftNode's snapshot is still the one on disk.
    if (auto* install = std::get_if<InstallSnapshotRequest>(&m.message))
      install->data = snapshot_bytes_;
    outgoing_.push_back(std::move(m));
  }
  observe_leader(now);
  apply_commit(ready.commit, now);
  maybe_snapshot();
}

void ControllerService::persist(RaftReady& ready) {
  if (ready.hard_state) {
    if (auto ec = save_quorum_state(quorum_state_path_, *ready.hard_state))
      die_on_disk_error("quorum-state", ec);
  }
  if (ready.install_snapshot)
    install_snapshot(*ready.install_snapshot);
  if (ready.truncate_after) {
    if (auto ec = store_->truncate_after(*ready.truncate_after))
      die_on_disk_error("truncate", ec);
    spdlog::warn("event=metadata_log_truncated after={}", ready.truncate_after->value());
  }
  if (!ready.append.empty()) {
    if (auto ec = store_->append(ready.append))
      die_on_disk_error("append", ec);
  }
}

// Won an election: rebuild the Controller from the whole log (the uncommitted tail of earlier
// terms included: Raft commits it with this term's first record) and open the term with
// ControllerElected.
void ControllerService::take_office(ControllerTime now) {
  auto controller = std::make_unique<Controller>(config_, now);
  std::optional<MetadataImage> base = snapshot_image();
  if (auto ec =
          controller->replay(raft_.log(), now, raft_.commit_offset(), base ? &*base : nullptr)) {
    spdlog::critical("event=metadata_replay_failed error=\"{}\"", ec.message());
    std::abort();
  }
  controller->set_term(raft_.term());
  ControllerElected elected{raft_.id(), raft_.term(), raft_.config().voters};
  if (!controller->append_record(std::move(elected))) {
    spdlog::critical("event=controller_elected_refused epoch={}", raft_.term());
    std::abort();
  }
  controller_ = std::move(controller);
  storage_.clear();
  pending_elections_.clear();
  proposal_times_.clear();
  quorum_metrics_.won_election();
  spdlog::info("event=controller_active node={} epoch={} log_end={} commit={}", raft_.id(),
               raft_.term(), raft_.last_offset().value(), raft_.commit_offset().value());
}

void ControllerService::leave_office() {
  spdlog::warn("event=controller_resigned node={} epoch={} leader={}", raft_.id(), raft_.term(),
               raft_.leader());
  controller_.reset();
  pending_elections_.clear();
  proposal_times_.clear();
  storage_.clear();
}

void ControllerService::observe_leader(ControllerTime now) {
  bool live_leader = raft_.leader() != kNoNode;
  if (live_leader && raft_.term() > known_leader_term_) {
    if (known_leader_term_ >= 0)
      quorum_metrics_.leader_known(now - last_leader_alive_);
    known_leader_term_ = raft_.term();
  }
  if (live_leader)
    last_leader_alive_ = now;
  quorum_metrics_.set_state(active(), raft_.term());
}

void ControllerService::apply_commit(MetadataOffset commit, ControllerTime now) {
  if (commit <= applied_commit_)
    return;
  applied_commit_ = commit;
  if (controller_) {
    controller_->mark_durable(commit);
    while (!proposal_times_.empty() && proposal_times_.front().first <= commit) {
      quorum_metrics_.committed(now - proposal_times_.front().second);
      proposal_times_.pop_front();
    }
    publish_elections(commit, now);
    publish_broker_metrics();
  }
  if (on_commit)
    on_commit();
}

void ControllerService::publish_elections(MetadataOffset commit, ControllerTime now) {
  // A mass failover elects many partitions at once: log the first few, then a summary.
  constexpr size_t kLoggedElections = 16;
  size_t count = 0;
  while (!pending_elections_.empty() && pending_elections_.front().offset <= commit) {
    const ElectionEvent& ev = pending_elections_.front();
    auto elapsed = std::chrono::duration<double>(now - ev.triggered_at);
    metrics_.election(election_reason_name(ev.reason), elapsed);
    if (count++ < kLoggedElections) {
      spdlog::info(
          "event=election tp={} reason={} from={} to={} offset={} trigger_to_commit_ms={:.2f}",
          ev.tp, election_reason_name(ev.reason), ev.previous_leader, ev.new_leader, ev.offset,
          elapsed.count() * 1000);
    }
    pending_elections_.pop_front();
  }
  if (count > kLoggedElections)
    spdlog::info("event=elections_summary count={} logged={}", count, kLoggedElections);
}

void ControllerService::publish_broker_metrics() {
  const auto& image = controller_->image();
  for (const auto& [id, broker] : image.brokers()) {
    metrics_.set_broker_fenced(id, broker.fenced);
    metrics_.set_broker_demoted(id, broker.demotion_reason, broker.demoted);
  }
  metrics_.set_offline_partitions(image.offline_partition_count());
}

// ---- snapshots -------------------------------------------------------------------------------

std::optional<MetadataImage> ControllerService::snapshot_image() const {
  if (snapshot_bytes_.empty())
    return std::nullopt;
  auto snapshot = decode_metadata_snapshot(snapshot_bytes_);
  if (!snapshot) {  // it decoded when it was loaded, made or received
    spdlog::critical("event=metadata_snapshot_unreadable");
    std::abort();
  }
  return std::move(snapshot->image);
}

// Once the log holds `every` committed records after its snapshot, the older half goes into a
// new snapshot: the newer half stays as records, so a broker or voter only a little behind (a
// long-poll waiting for the very record that triggered this) gets records, not the whole image.
void ControllerService::maybe_snapshot() {
  const int64_t every = config_.metadata_snapshot_records;
  const MetadataOffset commit = raft_.commit_offset();
  if (every > 0 && commit.value() - raft_.snapshot().offset.value() >= every)
    take_snapshot(MetadataOffset{commit.value() - every / 2});
}

// The committed image through `through`: the last snapshot's plus the committed records after
// it. Saved before anything is compacted, so a crash in between loses nothing.
void ControllerService::take_snapshot(MetadataOffset through) {
  const auto started = ControllerClock::now();
  MetadataImage image = snapshot_image().value_or(MetadataImage{});
  for (const MetadataEntry& entry : raft_.log()) {
    if (entry.offset > through)
      break;
    if (auto ec = image.apply(entry)) {
      spdlog::critical("event=metadata_snapshot_apply_failed offset={} error=\"{}\"",
                       entry.offset.value(), ec.message());
      std::abort();
    }
  }
  std::vector<uint8_t> bytes;
  encode_metadata_snapshot(image, raft_.term_at(through), bytes);
  if (auto ec = save_metadata_snapshot(snapshot_path_, bytes))
    die_on_disk_error("snapshot", ec);
  if (raft_.compact(through) != errc::none) {
    spdlog::critical("event=metadata_compact_refused through={}", through.value());
    std::abort();
  }
  if (auto ec = store_->compact_through(through))
    die_on_disk_error("compact", ec);
  if (controller_)
    controller_->compact(through);
  snapshot_bytes_ = std::move(bytes);
  spdlog::info("event=metadata_snapshot through={} bytes={} log_left={} took_ms={:.2f}",
               through.value(), snapshot_bytes_.size(), raft_.log().size(),
               std::chrono::duration<double, std::milli>(ControllerClock::now() - started).count());
}

void ControllerService::install_snapshot(const RaftSnapshotPoint& point) {
  if (arriving_snapshot_ == nullptr) {
    spdlog::critical("event=snapshot_install_without_data offset={}", point.offset.value());
    std::abort();
  }
  if (auto ec = save_metadata_snapshot(snapshot_path_, *arriving_snapshot_))
    die_on_disk_error("snapshot", ec);
  if (auto ec = store_->reset_after(point.offset))
    die_on_disk_error("reset", ec);
  snapshot_bytes_ = *arriving_snapshot_;
  spdlog::info("event=metadata_snapshot_installed through={} term={} bytes={}",
               point.offset.value(), point.term, snapshot_bytes_.size());
}

// ---- quorum events ---------------------------------------------------------------------------

VoteResponse ControllerService::on_vote(const VoteRequest& request, ControllerTime now) {
  VoteResponse response = raft_.on_vote(request, now);
  step(now);  // the vote is on disk before it is returned
  return response;
}

AppendResponse ControllerService::on_append(const AppendRequest& request, ControllerTime now) {
  AppendResponse response = raft_.on_append(request, now);
  step(now);  // the entries are on disk before they are acknowledged
  return response;
}

AppendResponse ControllerService::on_install_snapshot(const InstallSnapshotRequest& request,
                                                      ControllerTime now) {
  std::string why;
  auto snapshot = decode_metadata_snapshot(request.data, &why);
  if (!snapshot || snapshot->last_offset != request.snapshot.offset ||
      snapshot->last_term != request.snapshot.term) {
    spdlog::warn("event=snapshot_refused from={} offset={} error=\"{}\"", request.leader,
                 request.snapshot.offset.value(), snapshot ? "point differs from its data" : why);
    return AppendResponse{raft_.term(), false, raft_.last_offset()};
  }
  arriving_snapshot_ = &request.data;
  AppendResponse response = raft_.on_install_snapshot(request, now);
  step(now);  // the snapshot is on disk before it is acknowledged
  arriving_snapshot_ = nullptr;
  return response;
}

void ControllerService::on_vote_response(ControllerNodeId from, const VoteResponse& response,
                                         ControllerTime now) {
  raft_.on_vote_response(from, response, now);
  step(now);
}

void ControllerService::on_append_response(ControllerNodeId from, const AppendResponse& response,
                                           ControllerTime now, ControllerTime sent) {
  raft_.on_append_response(from, response, now, sent);
  step(now);
}

void ControllerService::on_unreachable(ControllerNodeId peer, ControllerTime now) {
  raft_.on_unreachable(peer, now);
  step(now);
}

std::vector<RaftOutgoing> ControllerService::take_outgoing() {
  std::vector<RaftOutgoing> out;
  out.swap(outgoing_);
  return out;
}

void ControllerService::tick(ControllerTime now) {
  raft_.tick(now);
  if (controller_ && raft_.is_leader())
    controller_->tick(now);
  step(now);
}

// ---- the active controller -------------------------------------------------------------------

RegisterResult ControllerService::register_broker(const BrokerRegistration& registration,
                                                  ControllerTime now) {
  auto r = controller_->register_broker(registration, now);
  step(now);
  return r;
}

HeartbeatResult ControllerService::heartbeat(const BrokerHeartbeat& heartbeat, ControllerTime now) {
  auto r = controller_->heartbeat(heartbeat, now);
  step(now);
  return r;
}

void ControllerService::note_storage(BrokerId broker, StorageReport report) {
  metrics_.set_broker_storage_canary(broker, report.canary_us);
  storage_[broker] = std::move(report);
}

CreateTopicResult ControllerService::create_topic(const std::string& name, int32_t partitions,
                                                  int32_t replication_factor, ControllerTime now) {
  auto r = controller_->create_topic(name, partitions, replication_factor, now);
  step(now);
  return r;
}

AlterPartitionResult ControllerService::alter_partition(const AlterPartitionRequest& request,
                                                        ControllerTime now) {
  auto r = controller_->alter_partition(request, now);
  step(now);
  return r;
}

std::vector<AlterPartitionResult> ControllerService::alter_partitions(
    std::span<const AlterPartitionRequest> requests, ControllerTime now) {
  std::vector<AlterPartitionResult> results;
  results.reserve(requests.size());
  for (const AlterPartitionRequest& request : requests)
    results.push_back(controller_->alter_partition(request, now));
  step(now);  // one proposal, one fsync for all of them
  return results;
}

std::vector<PartitionElectionResult> ControllerService::elect_leaders(
    ElectionType type, std::span<const TopicPartition> partitions, ControllerTime now) {
  auto r = controller_->elect_leaders(type, partitions, now);
  step(now);
  return r;
}

errc ControllerService::reassign(const TopicPartition& tp, const ReplicaList& target,
                                 ControllerTime now) {
  auto r = controller_->reassign(tp, target, now);
  step(now);
  return r;
}

errc ControllerService::demote(BrokerId broker, const std::string& reason, ControllerTime now) {
  auto r = controller_->demote(broker, reason, now);
  step(now);
  return r;
}

errc ControllerService::promote(BrokerId broker, ControllerTime now) {
  auto r = controller_->promote(broker, now);
  step(now);
  return r;
}

errc ControllerService::set_config(const std::string& key, const std::string& value,
                                   ControllerTime now) {
  auto r = controller_->set_config(key, value, now);
  step(now);
  return r;
}

}  // namespace faultline::cluster
