// The controller's decision logic (ARCHITECTURE.md §2 items 8-17) as a pure state machine.
//
// Controller owns the metadata log and its MetadataImage. Every request from the I/O shell (broker
// registration and heartbeats, AlterPartition, admin calls, the periodic tick) is a method that
// validates, decides, and appends MetadataRecords to the log and the image; time is passed in, and
// nothing here touches a socket, a file or a clock.
//
// Lifecycle with the shell (faultline-controller):
//   1. replay(records from MetadataStore)                   — restart: same image as before.
//   2. for each request / tick: call the method, then persist take_new_records() (fsync) and
//      call mark_durable(last offset); only then answer the request. records_since() serves
//      broker metadata pulls and returns durable records only (KRaft: never expose an
//      uncommitted change). If persisting fails the shell must stop: the image is ahead of disk.
//   3. take_election_events() feeds faultline_elections_total / faultline_election_seconds.
// Threading: none; the shell serialises calls.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "faultline/cluster/config.h"
#include "faultline/cluster/controller/elections.h"
#include "faultline/cluster/controller/metadata.h"
#include "faultline/cluster/errc.h"
#include "faultline/cluster/types.h"

namespace faultline::cluster {

using ControllerClock = std::chrono::steady_clock;
using ControllerTime = ControllerClock::time_point;

// Dynamic config keys understood by the controller (ConfigChanged records).
inline constexpr std::string_view kUncleanLeaderElectionKey = "unclean.leader.election.enable";
inline constexpr std::string_view kAutoLeaderRebalanceKey = "auto.leader.rebalance.enable";
// kMarkerKey (the harness's marker writes) lives in metadata.h: the image keeps their history.

struct BrokerRegistration {
  BrokerId broker;
  uint64_t incarnation = 0;  // random per process start
  Endpoint internal_endpoint;
  Endpoint client_endpoint;
  std::optional<std::string> rack;
  std::optional<Endpoint> kafka_endpoint;
};
struct RegisterResult {
  errc error = errc::none;
  BrokerEpoch broker_epoch{-1};
};

struct BrokerHeartbeat {
  BrokerId broker;
  BrokerEpoch broker_epoch;
  MetadataOffset applied_offset{-1};  // last metadata record the broker has applied
  bool want_shutdown = false;
  // Its (only) log directory is offline: fenced, out of every ISR, until it restarts.
  bool log_dir_offline = false;
};
struct HeartbeatResult {
  errc error = errc::none;  // stale_broker_epoch, broker_id_not_registered
  bool fenced = true;
  bool shutting_down = false;
  bool shutdown_allowed = false;  // leads nothing and the other brokers have seen that
};

struct CreateTopicResult {
  errc error = errc::none;  // topic_already_exists, invalid_partitions, invalid_replication_factor
  std::vector<ReplicaList> assignment;
};

struct AlterPartitionRequest {
  TopicPartition tp;
  BrokerId leader;
  BrokerEpoch leader_broker_epoch;
  LeaderEpoch leader_epoch;
  PartitionEpoch partition_epoch;
  ReplicaList proposed_isr;
};
struct AlterPartitionResult {
  // fenced_leader_epoch (stale leader epoch), unknown_leader_epoch (newer than the controller's),
  // invalid_update_version (stale partition epoch), stale_broker_epoch, not_leader_or_follower,
  // unknown_topic_or_partition, broker_id_not_registered, invalid_request (ISR without the
  // leader, with a duplicate or a non-replica, or with a fenced / unregistered / shutting-down
  // broker).
  errc error = errc::none;
  // The partition after the request (when error is none). Its leader may differ from the
  // requester: a completed reassignment or a demoted leader handing over to a normal broker that
  // just joined the ISR.
  PartitionState state;
};

enum class ElectionType : uint8_t { preferred, unclean };
struct PartitionElectionResult {
  TopicPartition tp;
  errc error = errc::none;
};

// A partition got a new leader (not emitted when it merely went offline), for metrics: the shell
// observes (commit time - triggered_at) per reason.
struct ElectionEvent {
  TopicPartition tp;
  ElectionReason reason = ElectionReason::none;
  ControllerTime triggered_at;
  BrokerId previous_leader = kNoBroker;
  BrokerId new_leader = kNoBroker;
  MetadataOffset offset;
};

class Controller {
 public:
  // Reads session_timeout, unclean_leader_election, auto_leader_rebalance,
  // leader_imbalance_check_interval, leader_imbalance_per_broker_percentage and
  // rebalance_batch_cap; the rest of the config belongs to the shell.
  Controller(ControllerConfig config, ControllerTime now);

  // Rebuilds the state from the log (records must start at offset 0 and be contiguous). Records
  // up to `durable` count as durable (committed); by default all of them. A controller that has
  // just won the quorum's election replays its whole log, uncommitted tail included: Raft commits
  // that tail with the new term's first record. Every registered broker gets a fresh session.
  // With a `snapshot` (the image as of a compacted log's snapshot point) the state starts from it
  // and `records` continue it.
  std::error_code replay(std::span<const MetadataEntry> records, ControllerTime now,
                         std::optional<MetadataOffset> durable = std::nullopt,
                         const MetadataImage* snapshot = nullptr);
  // The Raft term (controller epoch) stamped on every record appended from now on.
  void set_term(int64_t term) { term_ = term; }
  // Appends any record (the shell's ControllerElected); false if the image refuses it.
  bool append_record(MetadataRecord record);

  // ---- brokers ----
  // A new incarnation gets a new epoch (the offset of its BrokerRegistered record) and starts
  // fenced; an older incarnation of the same id is fenced first and its partitions failed over.
  // The same incarnation again (a retried request) gets its epoch back.
  RegisterResult register_broker(const BrokerRegistration& registration, ControllerTime now);
  // Renews the session. A fenced broker is unfenced once its applied offset has reached its own
  // registration and its latest fencing (it knows it lost its leaderships); partitions left
  // offline with it as last ISR member get it back as leader. want_shutdown starts a controlled
  // shutdown (item 13): it leaves every ISR and leadership at once, and shutdown_allowed turns true
  // (and the broker fenced) once it leads nothing and every other live broker has applied that.
  HeartbeatResult heartbeat(const BrokerHeartbeat& heartbeat, ControllerTime now);
  // Fences brokers whose session expired (and fails their partitions over) and runs the auto
  // rebalance when due. Call it regularly (every ~100 ms): a gap longer than half a session is
  // taken as the controller itself having stalled, and brokers then get half a session to be
  // heard again instead of being fenced for heartbeats the controller never read.
  void tick(ControllerTime now);

  // ---- topics and partitions ----
  CreateTopicResult create_topic(const std::string& name, int32_t partitions,
                                 int32_t replication_factor, ControllerTime now);
  AlterPartitionResult alter_partition(const AlterPartitionRequest& request, ControllerTime now);
  // `partitions` empty = every partition.
  std::vector<PartitionElectionResult> elect_leaders(ElectionType type,
                                                     std::span<const TopicPartition> partitions,
                                                     ControllerTime now);
  errc reassign(const TopicPartition& tp, const ReplicaList& target, ControllerTime now);

  // ---- leadership priority (item 16) ----
  errc demote(BrokerId broker, const std::string& reason, ControllerTime now);
  errc promote(BrokerId broker, ControllerTime now);

  // ---- dynamic config ----
  errc set_config(const std::string& key, const std::string& value, ControllerTime now);
  bool unclean_election_enabled() const;
  bool auto_rebalance_enabled() const;

  // ---- the log ----
  // Records appended since the last call, for the shell to persist.
  std::vector<MetadataEntry> take_new_records();
  // The shell has persisted everything up to `offset`.
  void mark_durable(MetadataOffset offset);
  MetadataOffset durable_offset() const { return durable_offset_; }
  // Up to `max` durable records starting at offset `from` (a broker passes its applied offset + 1),
  // or at log_start() when `from` is before it: the caller checks, and sends a snapshot first.
  // A view into the log: valid until the next mutating call, so encode it right away.
  std::span<const MetadataEntry> records_since(MetadataOffset from, size_t max) const;
  // The shell saved a snapshot through `through`: durable records up to it leave the log.
  void compact(MetadataOffset through);
  // The first offset records_since() can serve.
  MetadataOffset log_start() const { return log_start_; }
  std::vector<ElectionEvent> take_election_events();

  const MetadataImage& image() const { return image_; }
  const ControllerConfig& config() const { return config_; }

 private:
  struct Session {
    ControllerTime last_heartbeat;
    MetadataOffset applied_offset{-1};
    // A fenced broker is unfenced only after it has applied its own fencing (and so knows it lost
    // its leaderships) as well as its registration.
    MetadataOffset fenced_at{-1};
    // Controlled shutdown: records other brokers must apply before the broker may stop.
    MetadataOffset shutdown_barrier{-1};
  };

  MetadataOffset append(MetadataRecord record);
  void append_change(PartitionChanged change, const PartitionState& before, ControllerTime trigger);
  ClusterView view() const { return ClusterView::from(image_); }
  void fence(BrokerId broker, ControllerTime trigger);
  void on_log_dir_offline(BrokerId broker, ControllerTime trigger);
  void fail_over(BrokerId broker, ElectionReason reason, ControllerTime trigger);
  void elect_returned(BrokerId broker, ControllerTime trigger);
  void try_unclean(PartitionRef ref, const ClusterView& view, ControllerTime trigger);
  bool shutdown_complete(BrokerId broker, const Session& session) const;
  bool run_rebalance(ControllerTime now);  // true when the batch was full
  void advance_reassignment_of(PartitionRef ref, ControllerTime now);

  ControllerConfig config_;
  MetadataImage image_;
  std::vector<MetadataEntry> log_;  // from log_start_
  MetadataOffset log_start_{0};
  size_t first_new_record_ = 0;
  MetadataOffset durable_offset_{-1};
  std::unordered_map<BrokerId, Session> sessions_;
  std::vector<ElectionEvent> events_;
  uint32_t placement_start_ = 0;
  int64_t term_ = 0;
  ControllerTime next_rebalance_;
  ControllerTime last_tick_;
};

}  // namespace faultline::cluster
