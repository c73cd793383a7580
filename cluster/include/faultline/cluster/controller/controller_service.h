// ControllerService: one member of the controller quorum — the durable shell around the pure
// RaftNode (raft.h) and, while this member is the active controller, the pure Controller
// (controller.h).
//
// It owns the metadata log on disk (MetadataStore), the quorum state file, and the controller's
// metrics. After every event it drives the RaftNode's Ready protocol: the term and vote are
// persisted, then the log (truncated and appended, fsync'd), and only then are messages handed to
// the process to send and commits applied (ARCHITECTURE.md §2 items 8 and 18).
//
// Only the active controller (the Raft leader) has a Controller: it is rebuilt from the whole log
// when this member wins an election, its first record is ControllerElected (the new term's entry
// that lets the earlier terms' tail commit), and it is dropped the moment the member stops leading.
// Every decision's records are proposed to the quorum; an answer may be given only once the
// records it depends on are committed (`committed_offset() >= proposed_offset()` at the time of
// the call, within the same epoch). records_since() serves committed records only.
//
// Snapshots: once config.metadata_snapshot_records records were committed since the last one, the
// member saves the committed image up to the older half of them (metadata.snapshot, written before
// the log is compacted) and compacts the RaftNode, the store and the Controller. A leader sends it
// to a voter behind its log start (attached to the RaftNode's InstallSnapshotRequest in
// take_outgoing()); a voter that installs one stores its bytes and starts its log empty after it.
// Brokers and readers asking for records before log_start() get the snapshot first
// (snapshot_bytes()).
//
// Threading: none; the process's event loop serialises calls. `on_commit` (optional) is called
// after the commit offset moved, so the process can wake metadata long-polls and waiting answers.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <system_error>

#include "faultline/cluster/config.h"
#include "faultline/cluster/controller/controller.h"
#include "faultline/cluster/controller/metadata_store.h"
#include "faultline/cluster/controller/raft.h"
#include "faultline/cluster/metrics.h"

namespace faultline::cluster {

class ControllerService {
 public:
  struct OpenResult {
    std::error_code error;
    std::unique_ptr<ControllerService> service;
    size_t replayed_records = 0;
    uint64_t dropped_tail_bytes = 0;
  };
  // Opens (or creates) <data_dir>/metadata.log and <data_dir>/quorum-state. `seed` jitters the
  // election timeout.
  static OpenResult open(const ControllerConfig& config, prometheus::Registry& registry,
                         ControllerTime now, uint64_t seed);

  // ---- the quorum ----
  // This member leads the quorum and its Controller is built: broker and admin requests may be
  // served. Otherwise they are answered not_controller.
  bool active() const { return controller_ != nullptr; }
  int64_t epoch() const { return raft_.term(); }
  const RaftNode& raft() const { return raft_; }
  // The voters' ids in quorum order (this member's included).
  const std::vector<QuorumVoter>& voters() const { return voters_; }

  VoteResponse on_vote(const VoteRequest& request, ControllerTime now);
  AppendResponse on_append(const AppendRequest& request, ControllerTime now);
  // An InstallSnapshotRequest with its data; a snapshot that does not decode is refused (the
  // answer then carries success = false and this member's last offset).
  AppendResponse on_install_snapshot(const InstallSnapshotRequest& request, ControllerTime now);
  void on_vote_response(ControllerNodeId from, const VoteResponse& response, ControllerTime now);
  // `sent`: when the request it answers was sent (the read lease, raft.h).
  void on_append_response(ControllerNodeId from, const AppendResponse& response, ControllerTime now,
                          ControllerTime sent);
  void on_unreachable(ControllerNodeId peer, ControllerTime now);
  // Messages to other voters produced by the events so far, already safe to send (snapshots
  // with their data attached).
  std::vector<RaftOutgoing> take_outgoing();

  // ---- snapshots ----
  // The latest snapshot's bytes (encode_metadata_snapshot), empty before the first, and the
  // first offset of the log after it: a reader asking for less needs the snapshot.
  const std::vector<uint8_t>& snapshot_bytes() const { return snapshot_bytes_; }
  MetadataOffset log_start() const { return raft_.snapshot().offset.next(); }

  // The last offset proposed by this member, and the quorum's commit offset.
  MetadataOffset proposed_offset() const { return proposed_; }
  MetadataOffset committed_offset() const { return raft_.commit_offset(); }

  // ---- the active controller (call only while active()) ----
  RegisterResult register_broker(const BrokerRegistration& registration, ControllerTime now);
  HeartbeatResult heartbeat(const BrokerHeartbeat& heartbeat, ControllerTime now);
  // What a broker's latest accepted heartbeat said about its storage canary (not part of the
  // metadata log: it is a live reading, gone with the active controller).
  struct StorageReport {
    int64_t canary_us = -1;
    std::string error;
  };
  void note_storage(BrokerId broker, StorageReport report);
  const std::map<BrokerId, StorageReport>& storage_reports() const { return storage_; }
  CreateTopicResult create_topic(const std::string& name, int32_t partitions,
                                 int32_t replication_factor, ControllerTime now);
  AlterPartitionResult alter_partition(const AlterPartitionRequest& request, ControllerTime now);
  // Each request decided on its own, their records proposed (and persisted) together.
  std::vector<AlterPartitionResult> alter_partitions(
      std::span<const AlterPartitionRequest> requests, ControllerTime now);
  std::vector<PartitionElectionResult> elect_leaders(ElectionType type,
                                                     std::span<const TopicPartition> partitions,
                                                     ControllerTime now);
  errc reassign(const TopicPartition& tp, const ReplicaList& target, ControllerTime now);
  errc demote(BrokerId broker, const std::string& reason, ControllerTime now);
  errc promote(BrokerId broker, ControllerTime now);
  errc set_config(const std::string& key, const std::string& value, ControllerTime now);

  std::span<const MetadataEntry> records_since(MetadataOffset from, size_t max) const {
    return controller_->records_since(from, max);
  }
  const MetadataImage& image() const { return controller_->image(); }
  const Controller& controller() const { return *controller_; }

  // Quorum timeouts and, while active, sessions and rebalancing. Call every ~10-100 ms.
  void tick(ControllerTime now);

  std::function<void()> on_commit;

 private:
  ControllerService(const ControllerConfig& config, prometheus::Registry& registry,
                    std::unique_ptr<MetadataStore> store, RaftNode raft);
  // After every event: become or stop being the active controller, propose what the Controller
  // appended, persist the Ready, queue its messages, apply its commit.
  void step(ControllerTime now);
  void take_office(ControllerTime now);
  void leave_office();
  void persist(RaftReady& ready);
  void apply_commit(MetadataOffset commit, ControllerTime now);
  void observe_leader(ControllerTime now);
  void publish_elections(MetadataOffset commit, ControllerTime now);
  void publish_broker_metrics();
  void maybe_snapshot();
  void take_snapshot(MetadataOffset through);
  void install_snapshot(const RaftSnapshotPoint& point);
  std::optional<MetadataImage> snapshot_image() const;

  ControllerConfig config_;
  std::vector<QuorumVoter> voters_;
  std::filesystem::path quorum_state_path_;
  std::unique_ptr<MetadataStore> store_;
  RaftNode raft_;
  std::unique_ptr<Controller> controller_;  // while active
  MetadataOffset proposed_{-1};
  MetadataOffset applied_commit_{-1};
  std::vector<RaftOutgoing> outgoing_;
  std::deque<ElectionEvent> pending_elections_;  // appended, not yet committed
  std::deque<std::pair<MetadataOffset, ControllerTime>> proposal_times_;
  std::vector<uint8_t> snapshot_bytes_;  // of the snapshot through raft_.snapshot()
  // What an InstallSnapshotRequest being handled carries, for persist().
  const std::vector<uint8_t>* arriving_snapshot_ = nullptr;
  std::filesystem::path snapshot_path_;
  ControllerMetrics metrics_;
  QuorumMetrics quorum_metrics_;
  std::map<BrokerId, StorageReport> storage_;
  // For the leaderless-time metric: the (term, leader) this member last knew and when it last
  // heard from a live leader.
  int64_t known_leader_term_ = -1;
  ControllerTime last_leader_alive_;
};

}  // namespace faultline::cluster
