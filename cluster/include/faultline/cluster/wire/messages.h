// The cluster's wire protocol: every request and response as a plain struct (ARCHITECTURE.md §2).
//
// A frame is `u32 size | header | body` (big-endian). Request header: i16 api key, i16 version,
// i32 correlation id. Response header: i32 correlation id, i16 api key. The api key of a message is
// its index in the Request / Response variants below, so the two variants list the same APIs in
// the same order. Bodies are encoded field by field from each struct's `fields()` (codec.h), so a
// struct and its encoding cannot drift apart.
//
// Every response carries an `errc error` first: a server that cannot serve an API answers with
// error_response_for(request, code) without knowing the response's other fields.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "faultline/cluster/config.h"
#include "faultline/cluster/controller/controller.h"
#include "faultline/cluster/controller/metadata.h"
#include "faultline/cluster/controller/raft.h"
#include "faultline/cluster/errc.h"
#include "faultline/cluster/shared_bytes.h"
#include "faultline/cluster/types.h"

namespace faultline::cluster {

// ---- data path (brokers) -----------------------------------------------------------------------

struct ProduceRequest {
  TopicPartition tp;
  Acks acks = Acks::all;
  int32_t timeout_ms = 30000;
  SharedBytes batch;  // exactly one record batch (log/record_batch.h)
  static auto fields(auto& s) { return std::tie(s.tp, s.acks, s.timeout_ms, s.batch); }
};
struct ProduceResponse {
  errc error = errc::none;
  Offset base_offset{-1};
  // The epoch under which this broker appended and acknowledged; on errors the epoch it holds for
  // the partition, -1 when it hosts none.
  LeaderEpoch leader_epoch{-1};
  static auto fields(auto& s) { return std::tie(s.error, s.base_offset, s.leader_epoch); }
};

struct FetchRequest {
  int32_t replica_id = -1;  // >= 0: a follower (internal listener only); -1: a consumer
  int64_t broker_epoch = -1;
  TopicPartition tp;
  int32_t current_leader_epoch = -1;  // -1: not checked
  int64_t fetch_offset = 0;
  int32_t last_fetched_epoch = -1;  // followers: epoch of their last record (KIP-320)
  int32_t max_bytes = 1 << 20;
  int32_t max_wait_ms = 0;
  static auto fields(auto& s) {
    return std::tie(s.replica_id, s.broker_epoch, s.tp, s.current_leader_epoch, s.fetch_offset,
                    s.last_fetched_epoch, s.max_bytes, s.max_wait_ms);
  }
};
// The leader's answer to a follower whose log diverged: truncate using this epoch and end offset.
struct DivergingEpoch {
  int32_t epoch = -1;
  int64_t end_offset = -1;
  static auto fields(auto& s) { return std::tie(s.epoch, s.end_offset); }
};
struct FetchResponse {
  errc error = errc::none;
  int64_t high_watermark = -1;
  int64_t log_start_offset = -1;
  int64_t log_end_offset = -1;
  std::optional<DivergingEpoch> diverging;
  SharedBytes records;  // whole batches
  static auto fields(auto& s) {
    return std::tie(s.error, s.high_watermark, s.log_start_offset, s.log_end_offset, s.diverging,
                    s.records);
  }
};

// ---- replication fetch: one request per (follower, leader broker) pair
// ----------------------------

// A follower fetches every partition it replicates from one leader broker in one long-poll (Kafka's
// multi-partition FetchRequest): the leader answers as soon as any of them has records, a
// divergence or an error for it, or after max_wait_ms. Consumers keep the single-partition Fetch.
// Each partition is checked on its own (epochs, KIP-320 divergence, follower position for the
// ISR), exactly as a single-partition follower Fetch would be.
//
// Fetch sessions (KIP-227's idea; replication/fetch_session.h): the leader keeps, per follower,
// the last fetch state of every partition in the session, so an incremental request lists only
// the partitions whose state changed and those that left (`forgotten`). The leader still checks
// every partition of the session on every request (ISR liveness does not depend on resending).
struct ReplicaFetchPartition {
  TopicPartition tp;
  int32_t current_leader_epoch = -1;  // the follower's view; fenced/unknown answered per partition
  int64_t fetch_offset = 0;           // the follower's log end
  int32_t last_fetched_epoch = -1;    // epoch of its last record (KIP-320)
  // The high watermark the follower holds: a partition without records is answered only when the
  // leader's differs (so an idle partition costs nothing in the answer).
  int64_t known_high_watermark = -1;
  static auto fields(auto& s) {
    return std::tie(s.tp, s.current_leader_epoch, s.fetch_offset, s.last_fetched_epoch,
                    s.known_high_watermark);
  }
  friend bool operator==(const ReplicaFetchPartition&, const ReplicaFetchPartition&) = default;
};
// session_epoch values with a meaning of their own (Kafka's INITIAL_EPOCH and FINAL_EPOCH).
inline constexpr int32_t kFetchSessionOpen = 0;   // with session_id 0: open a new session
inline constexpr int32_t kFetchSessionless = -1;  // a full fetch outside any session
struct ReplicaFetchRequest {
  int32_t replica_id = -1;  // the follower (internal listener only)
  int64_t broker_epoch = -1;
  int32_t max_wait_ms = 0;
  int32_t max_bytes = 16 << 20;           // the whole answer (replica.fetch.response.max.bytes)
  int32_t partition_max_bytes = 1 << 20;  // one partition (replica.fetch.max.bytes)
  // Sessionless and session-opening requests: every partition. Incremental ones: the partitions
  // added to the session or whose fetch state changed since the follower last sent them.
  std::vector<ReplicaFetchPartition> partitions;
  // 0: none (sessionless, or opening one). Otherwise the id the leader answered the opening with.
  int32_t session_id = 0;
  // kFetchSessionless, kFetchSessionOpen, or the session's next epoch (1, 2, ...) for an
  // incremental request; the leader refuses any other with INVALID_FETCH_SESSION_EPOCH.
  int32_t session_epoch = kFetchSessionless;
  std::vector<TopicPartition> forgotten;  // incremental only: partitions that left the session
  static auto fields(auto& s) {
    return std::tie(s.replica_id, s.broker_epoch, s.max_wait_ms, s.max_bytes, s.partition_max_bytes,
                    s.partitions, s.session_id, s.session_epoch, s.forgotten);
  }
};
struct ReplicaFetchPartitionResponse {
  TopicPartition tp;
  errc error = errc::none;  // per partition: fenced_leader_epoch, not_leader_or_follower, ...
  int64_t high_watermark = -1;
  int64_t log_start_offset = -1;
  int64_t log_end_offset = -1;
  std::optional<DivergingEpoch> diverging;
  SharedBytes records;  // whole batches
  static auto fields(auto& s) {
    return std::tie(s.tp, s.error, s.high_watermark, s.log_start_offset, s.log_end_offset,
                    s.diverging, s.records);
  }
};
// Only the partitions with something to say: records, a divergence, an error or another HW than
// the follower holds (in a session: than the leader last answered or the follower last sent).
struct ReplicaFetchResponse {
  // For the whole request: invalid_request (client listener), storage_error, and the session's
  // fetch_session_id_not_found / invalid_fetch_session_epoch (the follower then opens a new one).
  errc error = errc::none;
  std::vector<ReplicaFetchPartitionResponse> partitions;
  int32_t session_id = 0;  // the session this answer belongs to; 0 for a sessionless fetch
  static auto fields(auto& s) { return std::tie(s.error, s.partitions, s.session_id); }
};

enum class OffsetSpec : int8_t { earliest = 0, latest = 1, high_watermark = 2 };
struct ListOffsetsRequest {
  TopicPartition tp;
  OffsetSpec which = OffsetSpec::latest;
  static auto fields(auto& s) { return std::tie(s.tp, s.which); }
};
struct ListOffsetsResponse {
  errc error = errc::none;
  int64_t offset = -1;
  static auto fields(auto& s) { return std::tie(s.error, s.offset); }
};

struct OffsetForLeaderEpochRequest {
  TopicPartition tp;
  int32_t current_leader_epoch = -1;
  int32_t requested_epoch = -1;
  static auto fields(auto& s) { return std::tie(s.tp, s.current_leader_epoch, s.requested_epoch); }
};
struct OffsetForLeaderEpochResponse {
  errc error = errc::none;
  int32_t leader_epoch = -1;
  int64_t end_offset = -1;
  static auto fields(auto& s) { return std::tie(s.error, s.leader_epoch, s.end_offset); }
};

// With max_wait_ms > 0 (the controller only; brokers answer at once) a watch: the answer comes as
// soon as the controller's metadata offset is past seen_metadata_offset, or after max_wait_ms.
struct MetadataRequest {
  std::vector<std::string> topics;  // empty: every topic
  int64_t seen_metadata_offset = -1;
  int32_t max_wait_ms = 0;
  static auto fields(auto& s) { return std::tie(s.topics, s.seen_metadata_offset, s.max_wait_ms); }
};
struct BrokerMetadata {
  BrokerId id;
  Endpoint client_endpoint;
  Endpoint internal_endpoint;
  bool fenced = false;
  bool demoted = false;
  std::string demotion_reason;
  // Storage canary as of the broker's latest heartbeat (controller only; -1: not known).
  int64_t storage_canary_us = -1;
  std::string storage_canary_error;
  bool shutting_down = false;  // in controlled shutdown (asked to leave; not yet exited)
  std::optional<Endpoint> kafka_endpoint;  // its Kafka-protocol listener, if it runs one
  static auto fields(auto& s) {
    return std::tie(s.id, s.client_endpoint, s.internal_endpoint, s.fenced, s.demoted,
                    s.demotion_reason, s.storage_canary_us, s.storage_canary_error, s.shutting_down,
                    s.kafka_endpoint);
  }
};
struct PartitionMetadata {
  TopicPartition tp;
  errc error = errc::none;
  BrokerId leader = kNoBroker;
  LeaderEpoch leader_epoch{-1};
  PartitionEpoch partition_epoch{-1};
  ReplicaList replicas;
  ReplicaList isr;
  int32_t unclean_elections = 0;
  static auto fields(auto& s) {
    return std::tie(s.tp, s.error, s.leader, s.leader_epoch, s.partition_epoch, s.replicas, s.isr,
                    s.unclean_elections);
  }
};
struct MetadataResponse {
  errc error = errc::none;
  Endpoint controller;
  int64_t metadata_offset = -1;
  std::vector<BrokerMetadata> brokers;
  std::vector<PartitionMetadata> partitions;
  static auto fields(auto& s) {
    return std::tie(s.error, s.controller, s.metadata_offset, s.brokers, s.partitions);
  }
};

struct ApiVersionsRequest {
  static auto fields(auto&) { return std::tie(); }
};
struct ApiVersionsResponse {
  errc error = errc::none;
  BrokerId broker_id{-1};  // -1 when the controller answers
  int16_t max_version = 0;
  static auto fields(auto& s) { return std::tie(s.error, s.broker_id, s.max_version); }
};

// ---- broker <-> controller ---------------------------------------------------------------------

struct BrokerRegistrationRequest {
  BrokerId broker;
  uint64_t incarnation = 0;
  Endpoint internal_endpoint;
  Endpoint client_endpoint;
  std::optional<Endpoint> kafka_endpoint;
  static auto fields(auto& s) {
    return std::tie(s.broker, s.incarnation, s.internal_endpoint, s.client_endpoint,
                    s.kafka_endpoint);
  }
};
struct BrokerRegistrationResponse {
  errc error = errc::none;
  BrokerEpoch broker_epoch{-1};
  static auto fields(auto& s) { return std::tie(s.error, s.broker_epoch); }
};

struct BrokerHeartbeatRequest {
  BrokerId broker;
  BrokerEpoch broker_epoch{-1};
  MetadataOffset applied_metadata_offset{-1};
  bool want_shutdown = false;
  // The broker's storage canary (append+fsync in its data dir): the latest sample, or how long the
  // one in progress has been running if that is longer (a stuck fsync shows); -1: no canary or
  // no sample yet. The error of the latest sample when it failed.
  int64_t storage_canary_us = -1;
  std::string storage_canary_error;
  // The broker's log directory failed (an I/O error on a log): it serves none of its partitions
  // until restarted, and asks to be fenced meanwhile.
  bool log_dir_offline = false;
  static auto fields(auto& s) {
    return std::tie(s.broker, s.broker_epoch, s.applied_metadata_offset, s.want_shutdown,
                    s.storage_canary_us, s.storage_canary_error, s.log_dir_offline);
  }
};
struct BrokerHeartbeatResponse {
  errc error = errc::none;
  bool fenced = true;
  bool shutting_down = false;
  bool shutdown_allowed = false;
  static auto fields(auto& s) {
    return std::tie(s.error, s.fenced, s.shutting_down, s.shutdown_allowed);
  }
};

// Brokers pull the metadata log (ARCHITECTURE.md §2 item 8): a long-poll from `from` (inclusive).
struct FetchMetadataLogRequest {
  MetadataOffset from{0};
  uint32_t max_records = 4096;
  int32_t max_wait_ms = 0;
  // Any voter of the controller quorum answers with what it knows is committed (no long-poll),
  // instead of only the active controller: how the harness reads every voter's log back.
  bool any_voter = false;
  static auto fields(auto& s) {
    return std::tie(s.from, s.max_records, s.max_wait_ms, s.any_voter);
  }
};
struct FetchMetadataLogResponse {
  errc error = errc::none;
  std::vector<MetadataEntry> entries;
  MetadataOffset durable_offset{-1};
  // When `from` is before the start of the controller's compacted log: its latest snapshot
  // (encode_metadata_snapshot, metadata.h), which `entries` then continue. Empty otherwise.
  std::vector<uint8_t> snapshot;
  static auto fields(auto& s) { return std::tie(s.error, s.entries, s.durable_offset, s.snapshot); }
};

// The controller's AlterPartitionRequest (controller.h) travels as it is.
struct AlterPartitionRequestMsg : AlterPartitionRequest {
  AlterPartitionRequestMsg() = default;
  AlterPartitionRequestMsg(const AlterPartitionRequest& r) : AlterPartitionRequest(r) {}  // NOLINT
  static auto fields(auto& s) {
    return std::tie(s.tp, s.leader, s.leader_broker_epoch, s.leader_epoch, s.partition_epoch,
                    s.proposed_isr);
  }
};
struct AlterPartitionResponse {
  errc error = errc::none;
  BrokerId leader = kNoBroker;
  ReplicaList isr;
  LeaderEpoch leader_epoch{-1};
  PartitionEpoch partition_epoch{-1};
  static auto fields(auto& s) {
    return std::tie(s.error, s.leader, s.isr, s.leader_epoch, s.partition_epoch);
  }
};

// ---- admin (controller) ------------------------------------------------------------------------

struct CreateTopicRequest {
  std::string name;
  int32_t partitions = 1;
  int32_t replication_factor = 1;
  static auto fields(auto& s) { return std::tie(s.name, s.partitions, s.replication_factor); }
};
struct CreateTopicResponse {
  errc error = errc::none;
  std::vector<ReplicaList> assignment;
  static auto fields(auto& s) { return std::tie(s.error, s.assignment); }
};

struct ElectLeadersRequest {
  ElectionType type = ElectionType::preferred;
  std::vector<TopicPartition> partitions;  // empty: every partition
  static auto fields(auto& s) { return std::tie(s.type, s.partitions); }
};
struct ElectLeadersResult {
  TopicPartition tp;
  errc error = errc::none;
  static auto fields(auto& s) { return std::tie(s.tp, s.error); }
};
struct ElectLeadersResponse {
  errc error = errc::none;
  std::vector<ElectLeadersResult> results;
  static auto fields(auto& s) { return std::tie(s.error, s.results); }
};

struct DemoteBrokerRequest {
  BrokerId broker;
  std::string reason;
  static auto fields(auto& s) { return std::tie(s.broker, s.reason); }
};
struct DemoteBrokerResponse {
  errc error = errc::none;
  static auto fields(auto& s) { return std::tie(s.error); }
};
struct PromoteBrokerRequest {
  BrokerId broker;
  static auto fields(auto& s) { return std::tie(s.broker); }
};
struct PromoteBrokerResponse {
  errc error = errc::none;
  static auto fields(auto& s) { return std::tie(s.error); }
};

struct ReassignRequest {
  TopicPartition tp;
  ReplicaList replicas;
  static auto fields(auto& s) { return std::tie(s.tp, s.replicas); }
};
struct ReassignResponse {
  errc error = errc::none;
  static auto fields(auto& s) { return std::tie(s.error); }
};

struct SetConfigRequest {
  std::string key;
  std::string value;
  static auto fields(auto& s) { return std::tie(s.key, s.value); }
};
struct SetConfigResponse {
  errc error = errc::none;
  static auto fields(auto& s) { return std::tie(s.error); }
};

// ---- broker health (read by faultline-probe on the client listener; ARCHITECTURE.md §4)
// -------------

// One append+fsync of the broker's storage canary (a small file in its data dir, written by a
// thread of its own every canary interval, so a stalled disk never blocks the request path).
struct StorageSample {
  int64_t seq = 0;         // 1, 2, ... within one canary run
  int64_t latency_us = 0;  // append + fsync
  int64_t age_us = 0;      // how long before the answer it completed (the peers' clocks differ)
  static auto fields(auto& s) { return std::tie(s.seq, s.latency_us, s.age_us); }
};
struct BrokerHealthRequest {
  static auto fields(auto&) { return std::tie(); }
};
// A broker that runs no canary answers canary_interval_ms = 0 and no samples: the prober then has
// reachability only. A new canary_run (random at every broker start) restarts the sequence.
struct BrokerHealthResponse {
  errc error = errc::none;
  BrokerId broker_id{-1};
  uint64_t canary_run = 0;
  int32_t canary_interval_ms = 0;
  std::vector<StorageSample> samples;  // the most recent ones, oldest first
  int64_t pending_seq = 0;             // the sample in progress, 0 when none
  int64_t pending_us = 0;              // how long it has been in progress: a stuck fsync shows here
  std::string canary_error;            // the canary's last write/fsync failure; empty when fine
  static auto fields(auto& s) {
    return std::tie(s.error, s.broker_id, s.canary_run, s.canary_interval_ms, s.samples,
                    s.pending_seq, s.pending_us, s.canary_error);
  }
};

// ---- the controller quorum (controller to controller, and its description) ----------------------

// raft.h's messages as they travel. Only voters of the quorum send them; a controller answers a
// vote or an append from a node outside its voter list with invalid_request.
struct QuorumVoteRequest : VoteRequest {
  QuorumVoteRequest() = default;
  QuorumVoteRequest(const VoteRequest& r) : VoteRequest(r) {}  // NOLINT
  static auto fields(auto& s) {
    return std::tie(s.term, s.candidate, s.last_offset, s.last_term, s.pre_vote);
  }
};
struct QuorumVoteResponse {
  errc error = errc::none;
  int64_t term = 0;
  bool granted = false;
  bool pre_vote = false;
  static auto fields(auto& s) { return std::tie(s.error, s.term, s.granted, s.pre_vote); }
};
struct QuorumAppendRequest : AppendRequest {
  QuorumAppendRequest() = default;
  QuorumAppendRequest(const AppendRequest& r) : AppendRequest(r) {}        // NOLINT
  QuorumAppendRequest(AppendRequest&& r) : AppendRequest(std::move(r)) {}  // NOLINT
  static auto fields(auto& s) {
    return std::tie(s.term, s.leader, s.prev_offset, s.prev_term, s.entries, s.commit_offset);
  }
};
struct QuorumAppendResponse {
  errc error = errc::none;
  int64_t term = 0;
  bool success = false;
  MetadataOffset match_offset{-1};
  static auto fields(auto& s) { return std::tie(s.error, s.term, s.success, s.match_offset); }
};

// Many partitions' ISR changes in one request, as Kafka's AlterPartition (KIP-497) carries many:
// the controller decides each one as it would decide an AlterPartition alone and persists all of
// their records together (one fsync, one quorum commit), and answers each in request order. An
// error in `error` (NOT_CONTROLLER ...) answers every partition: their outcomes are unknown.
struct AlterPartitionsRequest {
  std::vector<AlterPartitionRequestMsg> partitions;
  static auto fields(auto& s) { return std::tie(s.partitions); }
};
struct AlterPartitionsResponse {
  errc error = errc::none;
  std::vector<AlterPartitionResponse> partitions;
  static auto fields(auto& s) { return std::tie(s.error, s.partitions); }
};

// A leader's snapshot for a voter behind its log start, with the snapshot's bytes (raft.h).
struct QuorumInstallSnapshotRequest {
  int64_t term = 0;
  int32_t leader = -1;
  MetadataOffset last_offset{-1};
  int64_t last_term = 0;
  std::vector<uint8_t> data;
  static auto fields(auto& s) {
    return std::tie(s.term, s.leader, s.last_offset, s.last_term, s.data);
  }
};
// Answered like an append (raft.h): success with match_offset = last_offset.
struct QuorumInstallSnapshotResponse {
  errc error = errc::none;
  int64_t term = 0;
  bool success = false;
  MetadataOffset match_offset{-1};
  static auto fields(auto& s) { return std::tie(s.error, s.term, s.success, s.match_offset); }
};

// What one controller knows of the quorum (KRaft's DescribeQuorum): any voter answers; the active
// controller also knows how far each voter has replicated.
struct DescribeQuorumRequest {
  static auto fields(auto&) { return std::tie(); }
};
struct QuorumVoterInfo {
  int32_t id = -1;
  Endpoint endpoint;
  int64_t match_offset = -1;     // known to the leader only; -1 unknown
  int64_t last_contact_ms = -1;  // how long ago the leader last heard from it; -1 unknown
  static auto fields(auto& s) {
    return std::tie(s.id, s.endpoint, s.match_offset, s.last_contact_ms);
  }
};
struct DescribeQuorumResponse {
  errc error = errc::none;
  int32_t node_id = -1;  // the controller that answered
  std::string role;      // follower, pre_candidate, candidate, leader
  int32_t leader = -1;   // the active controller as this one knows it; -1 unknown
  int64_t epoch = 0;     // its current term (the controller epoch)
  int64_t commit_offset = -1;
  int64_t last_offset = -1;
  std::vector<QuorumVoterInfo> voters;
  static auto fields(auto& s) {
    return std::tie(s.error, s.node_id, s.role, s.leader, s.epoch, s.commit_offset, s.last_offset,
                    s.voters);
  }
};

// ---- the variants: index == api key ------------------------------------------------------------

using Request =
    std::variant<ProduceRequest, FetchRequest, ListOffsetsRequest, OffsetForLeaderEpochRequest,
                 MetadataRequest, ApiVersionsRequest, BrokerRegistrationRequest,
                 BrokerHeartbeatRequest, FetchMetadataLogRequest, AlterPartitionRequestMsg,
                 CreateTopicRequest, ElectLeadersRequest, DemoteBrokerRequest, PromoteBrokerRequest,
                 ReassignRequest, SetConfigRequest, BrokerHealthRequest, ReplicaFetchRequest,
                 QuorumVoteRequest, QuorumAppendRequest, DescribeQuorumRequest,
                 QuorumInstallSnapshotRequest, AlterPartitionsRequest>;
using Response =
    std::variant<ProduceResponse, FetchResponse, ListOffsetsResponse, OffsetForLeaderEpochResponse,
                 MetadataResponse, ApiVersionsResponse, BrokerRegistrationResponse,
                 BrokerHeartbeatResponse, FetchMetadataLogResponse, AlterPartitionResponse,
                 CreateTopicResponse, ElectLeadersResponse, DemoteBrokerResponse,
                 PromoteBrokerResponse, ReassignResponse, SetConfigResponse, BrokerHealthResponse,
                 ReplicaFetchResponse, QuorumVoteResponse, QuorumAppendResponse,
                 DescribeQuorumResponse, QuorumInstallSnapshotResponse, AlterPartitionsResponse>;
static_assert(std::variant_size_v<Request> == std::variant_size_v<Response>);

using ApiKey = int16_t;
inline constexpr int16_t kApiVersion = 0;  // every API is at version 0 for now
inline ApiKey api_key(const Request& r) {
  return static_cast<ApiKey>(r.index());
}
inline ApiKey api_key(const Response& r) {
  return static_cast<ApiKey>(r.index());
}
std::string_view api_name(ApiKey key) noexcept;

// The response type that answers `request`, with `error` set and every other field defaulted.
Response error_response_for(const Request& request, errc error);
// The `error` field of any response.
errc response_error(const Response& response) noexcept;

}  // namespace faultline::cluster
