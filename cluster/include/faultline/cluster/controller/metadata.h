// The controller's event-sourced metadata log (ARCHITECTURE.md §2 item 8) and the state machine
// that replays it.
//
// Every controller decision is a MetadataRecord appended at the next MetadataOffset. The
// controller and every broker keep a MetadataImage and apply the same records in the same order,
// so they agree on brokers, topics, leaders and ISRs without any other channel. Records carry full
// partition state (not deltas), so applying one is idempotent per partition and a broker that
// pulls records can check them in isolation. The log is what the controller quorum replicates
// with Raft (raft.h, KRaft's design): each entry carries the term of the controller that wrote it.
//
// Threading: none. A MetadataImage is a plain value owned by one thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <variant>
#include <vector>

#include "faultline/cluster/config.h"
#include "faultline/cluster/controller/replica_list.h"
#include "faultline/cluster/errc.h"
#include "faultline/cluster/types.h"

namespace faultline::cluster {

// Why a partition changed. Also the `reason` label of faultline_elections_total.
enum class ElectionReason : uint8_t {
  none = 0,     // ISR-only change requested by the leader (AlterPartition)
  offline = 1,  // leader or ISR member fenced / gone (item 12)
  controlled_shutdown = 2,
  preferred = 3,        // admin-requested preferred election (item 14)
  auto_rebalance = 4,   // periodic preferred election (item 14)
  unclean = 5,          // item 15
  demotion = 6,         // item 16
  promotion = 7,        // item 16
  reassignment = 8,     // item 17
  broker_returned = 9,  // an offline partition's last ISR member came back
  new_topic = 10,       // initial leader moved off a demoted preferred replica
};
std::string_view election_reason_name(ElectionReason r) noexcept;

// Whether the leader may hold data the ISR never agreed on (set by an unclean election).
enum class LeaderRecovery : uint8_t { recovered = 0, recovering = 1 };

struct BrokerRegistered {
  BrokerId broker;
  // The broker epoch is the MetadataOffset of this record: unique and growing across restarts of
  // the controller, so a stale incarnation can always be told apart.
  BrokerEpoch broker_epoch;
  // Random per process start; a retried registration of the same start keeps its epoch.
  uint64_t incarnation = 0;
  Endpoint internal_endpoint;
  Endpoint client_endpoint;
  std::optional<std::string> rack;
  // The broker's Kafka-protocol listener (kafka/protocol.h), when it runs one.
  std::optional<Endpoint> kafka_endpoint;
  friend bool operator==(const BrokerRegistered&, const BrokerRegistered&) = default;
};
struct BrokerFenced {
  BrokerId broker;
  BrokerEpoch broker_epoch;
  friend bool operator==(const BrokerFenced&, const BrokerFenced&) = default;
};
struct BrokerUnfenced {
  BrokerId broker;
  BrokerEpoch broker_epoch;
  friend bool operator==(const BrokerUnfenced&, const BrokerUnfenced&) = default;
};
struct BrokerControlledShutdown {
  BrokerId broker;
  BrokerEpoch broker_epoch;
  friend bool operator==(const BrokerControlledShutdown&,
                         const BrokerControlledShutdown&) = default;
};
// A new topic: partition i gets replicas partitions[i]; its initial leader is partitions[i][0]
// (leader epoch 0, partition epoch 0) and its ISR the whole list.
struct TopicCreated {
  std::string name;
  std::vector<ReplicaList> partitions;
  friend bool operator==(const TopicCreated&, const TopicCreated&) = default;
};
// The full new state of one partition.
struct PartitionChanged {
  TopicPartition tp;
  BrokerId leader = kNoBroker;
  ReplicaList isr;
  LeaderEpoch leader_epoch;
  PartitionEpoch partition_epoch;
  ReplicaList replicas;
  ReplicaList adding;    // reassignment in progress: replicas being added
  ReplicaList removing;  // ... and being removed once the added ones are in the ISR
  LeaderRecovery leader_recovery = LeaderRecovery::recovered;
  ElectionReason reason = ElectionReason::none;
  friend bool operator==(const PartitionChanged&, const PartitionChanged&) = default;
};
struct BrokerPriorityChanged {
  BrokerId broker;
  bool demoted = false;
  std::string reason;  // operator, network-health, storage-health ...
  friend bool operator==(const BrokerPriorityChanged&, const BrokerPriorityChanged&) = default;
};
// A config key with no effect, any value: what the harness writes to check the metadata log itself
// (every acknowledged write read back in one order from every controller of the quorum). The
// image keeps the history of its writes (MetadataImage::marker_history).
inline constexpr std::string_view kMarkerKey = "faultline.marker";

// Dynamic cluster config, e.g. unclean.leader.election.enable=true.
struct ConfigChanged {
  std::string key;
  std::string value;
  friend bool operator==(const ConfigChanged&, const ConfigChanged&) = default;
};

// A controller won an election of the quorum (raft.h) and became the active controller: the first
// record of every term (KRaft's LeaderChangeMessage). `epoch` is the Raft term: the controller
// epoch that fences a deposed active controller.
struct ControllerElected {
  int32_t controller = -1;
  int64_t epoch = 0;
  std::vector<int32_t> voters;
  friend bool operator==(const ControllerElected&, const ControllerElected&) = default;
};

using MetadataRecord = std::variant<BrokerRegistered, BrokerFenced, BrokerUnfenced,
                                    BrokerControlledShutdown, TopicCreated, PartitionChanged,
                                    BrokerPriorityChanged, ConfigChanged, ControllerElected>;

struct MetadataEntry {
  MetadataOffset offset;
  MetadataRecord record;
  int64_t term = 0;  // the Raft term (controller epoch) of the controller that appended it
  friend bool operator==(const MetadataEntry&, const MetadataEntry&) = default;
};

// ---- binary encoding ---------------------------------------------------------------------------
// Frame: u32 payload length | u32 CRC32C(payload) | payload; payload = i64 offset | i64 term | u8
// type | fields (big-endian integers, u16-length strings, u32-count lists). The same frames are the
// on-disk log and the wire format of metadata pulls.

inline constexpr size_t kMetadataFrameHeaderBytes = 8;
inline constexpr uint32_t kMaxMetadataRecordBytes = 256u << 20;

// Appends the frame of `entry` to `out`.
void encode_metadata_entry(const MetadataEntry& entry, std::vector<uint8_t>& out);

enum class DecodeStatus : uint8_t {
  ok,
  incomplete,  // the buffer ends inside the frame: read more (or, at the end of a file: torn tail)
  corrupt,     // bad length, CRC, type or field bounds
};
struct DecodeResult {
  DecodeStatus status = DecodeStatus::corrupt;
  size_t consumed = 0;  // bytes of the frame when ok
  MetadataEntry entry;
};
// Decodes the frame at the start of `bytes`. Never reads outside `bytes`.
DecodeResult decode_metadata_entry(std::span<const uint8_t> bytes);

// CRC32C (Castagnoli), as used by the frames.
uint32_t metadata_crc32c(std::span<const uint8_t> bytes) noexcept;

// ---- the state machine -------------------------------------------------------------------------

struct BrokerState {
  BrokerId id;
  BrokerEpoch epoch{-1};
  uint64_t incarnation = 0;
  Endpoint internal_endpoint;
  Endpoint client_endpoint;
  std::optional<std::string> rack;
  std::optional<Endpoint> kafka_endpoint;
  MetadataOffset registered_at{-1};  // offset of its latest BrokerRegistered
  bool registered = false;
  bool fenced = true;  // a registered broker starts fenced until it has caught up
  bool shutting_down = false;
  bool demoted = false;
  std::string demotion_reason;
  // May join an ISR: registered, unfenced and not in controlled shutdown. A fenced or departing
  // broker added to an ISR could later be elected while it cannot serve (Kafka's KIP-841); the
  // controller refuses such an AlterPartition, and leaders never propose one.
  bool isr_eligible() const { return registered && !fenced && !shutting_down; }
  friend bool operator==(const BrokerState&, const BrokerState&) = default;
};

struct PartitionState {
  ReplicaList replicas;  // assignment order; replicas[0] is the preferred leader
  ReplicaList isr;
  BrokerId leader = kNoBroker;
  LeaderEpoch leader_epoch{0};
  PartitionEpoch partition_epoch{0};
  int32_t unclean_elections = 0;
  LeaderRecovery leader_recovery = LeaderRecovery::recovered;
  ReplicaList adding;
  ReplicaList removing;
  bool reassigning() const { return !adding.empty() || !removing.empty(); }
  BrokerId preferred_leader() const { return replicas.empty() ? kNoBroker : replicas.front(); }
  friend bool operator==(const PartitionState&, const PartitionState&) = default;
};

struct TopicState {
  std::string name;
  std::vector<PartitionState> partitions;
  friend bool operator==(const TopicState&, const TopicState&) = default;
};

// A partition named without its topic's string: cheap to store in per-broker indexes.
struct PartitionRef {
  uint32_t topic = 0;  // index into MetadataImage::topics()
  int32_t partition = 0;
  friend auto operator<=>(const PartitionRef&, const PartitionRef&) = default;
};

// One ConfigChanged of kMarkerKey: its offset and value.
struct MarkerWrite {
  MetadataOffset offset;
  std::string value;
  friend bool operator==(const MarkerWrite&, const MarkerWrite&) = default;
};

struct MetadataSnapshot;

class MetadataImage {
 public:
  // Applies the record at `entry.offset`, which must be exactly applied_offset() + 1. Errors
  // (the image is then unchanged): invalid_request for an offset gap or a PartitionChanged that
  // breaks the partition invariants (leader outside the ISR, ISR outside the replicas, empty
  // ISR), unknown_topic_or_partition, topic_already_exists, invalid_replica_assignment,
  // broker_id_not_registered / stale_broker_epoch for records about unknown brokers or epochs.
  std::error_code apply(const MetadataEntry& entry);
  MetadataOffset applied_offset() const { return applied_offset_; }
  MetadataOffset next_offset() const { return applied_offset_.next(); }

  const std::map<BrokerId, BrokerState>& brokers() const { return brokers_; }
  const BrokerState* broker(BrokerId id) const;

  const std::vector<TopicState>& topics() const { return topics_; }
  const TopicState* topic(std::string_view name) const;
  std::optional<uint32_t> topic_index(std::string_view name) const;
  const PartitionState* partition(const TopicPartition& tp) const;
  const PartitionState& partition(PartitionRef ref) const {
    return topics_[ref.topic].partitions[static_cast<size_t>(ref.partition)];
  }
  std::optional<PartitionRef> ref(const TopicPartition& tp) const;
  TopicPartition topic_partition(PartitionRef ref) const {
    return {topics_[ref.topic].name, PartitionIndex{ref.partition}};
  }
  size_t partition_count() const { return partition_count_; }

  // O(partitions the broker is a replica of), thanks to a per-broker index.
  std::vector<PartitionRef> partitions_with_replica(BrokerId broker) const;
  std::vector<PartitionRef> partitions_led_by(BrokerId broker) const;
  // The index itself (no copy): partitions whose replicas or adding list contain the broker.
  std::span<const PartitionRef> replica_index(BrokerId broker) const;
  // Partitions without a leader, from the whole image (O(all partitions)).
  std::vector<PartitionRef> offline_partitions() const;
  // Their number, kept up to date on every apply (O(1): for the offline-partitions gauge).
  size_t offline_partition_count() const { return offline_count_; }

  // Dynamic configs from ConfigChanged records.
  const std::map<std::string, std::string, std::less<>>& configs() const { return configs_; }
  std::optional<std::string_view> config(std::string_view key) const;

  // Every applied ConfigChanged of kMarkerKey, in log order. The harness's log check reads every
  // acknowledged marker back in log order; once the log is compacted into a snapshot those
  // records are gone, so their order has to survive as image state. Only the harness writes that
  // key, so this grows with its marker writes and nothing else.
  const std::vector<MarkerWrite>& marker_history() const { return marker_history_; }

  // The latest ControllerElected record: who was active and in which controller epoch (-1 / 0
  // before the first).
  int32_t active_controller() const { return active_controller_; }
  int64_t controller_epoch() const { return controller_epoch_; }

  // Two images are equal when they describe the same cluster at the same offset.
  friend bool operator==(const MetadataImage& a, const MetadataImage& b);

 private:
  std::error_code apply_record(MetadataOffset offset, const MetadataRecord& record);
  void index_add(BrokerId broker, PartitionRef ref);
  void index_remove(BrokerId broker, PartitionRef ref);
  // Recomputes every derived member (name and replica indexes, counts) from the topics, as the
  // applies that built them would have: for an image restored from a snapshot.
  void rebuild_indexes();
  friend std::optional<MetadataSnapshot> decode_metadata_snapshot(std::span<const uint8_t> bytes,
                                                                  std::string* error);

  MetadataOffset applied_offset_{-1};
  int32_t active_controller_ = -1;
  int64_t controller_epoch_ = 0;
  std::map<BrokerId, BrokerState> brokers_;
  std::vector<TopicState> topics_;
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::unordered_map<std::string, uint32_t, NameHash, std::equal_to<>> topic_by_name_;
  std::unordered_map<BrokerId, std::vector<PartitionRef>> replica_index_;
  std::map<std::string, std::string, std::less<>> configs_;
  std::vector<MarkerWrite> marker_history_;
  size_t partition_count_ = 0;
  size_t offline_count_ = 0;
};

// Applies `record` to a partition state (pure; shared by the image and the elections' tests).
void apply_partition_change(PartitionState& state, const PartitionChanged& change);

// ---- snapshots ---------------------------------------------------------------------------------
// A snapshot is the image as of a committed offset: what replaces the log up to that offset when
// it is compacted (KRaft's metadata snapshots). Blob: u32 magic | u8 version | u32 payload length
// | u32 CRC32C(payload) | payload; payload = i64 last offset | i64 last term | the image's source
// fields (offset, active controller and epoch, brokers, topics, configs, marker history), encoded
// like the record frames. Derived indexes are not stored: decoding rebuilds them.

inline constexpr uint32_t kMetadataSnapshotMagic = 0x464c4d53;  // "FLMS"
inline constexpr uint8_t kMetadataSnapshotVersion = 1;
inline constexpr size_t kMetadataSnapshotHeaderBytes = 13;

struct MetadataSnapshot {
  MetadataOffset last_offset{-1};  // the last record the image contains (= its applied offset)
  int64_t last_term = 0;           // that record's term, for Raft's log matching after compaction
  MetadataImage image;
};

// Appends the snapshot blob of `image` to `out`. `last_term` is the term of the entry at
// image.applied_offset() (0 for an empty image).
void encode_metadata_snapshot(const MetadataImage& image, int64_t last_term,
                              std::vector<uint8_t>& out);

// Decodes a blob that must span all of `bytes` (no trailing bytes). Never reads outside `bytes`.
// nullopt, with a short reason in `*error` when given, for a bad magic, version, length or CRC, a
// malformed payload, or an image apply() could not have built (a leader outside its ISR, an ISR
// outside its replicas, duplicate broker ids or topic names, last offset != applied offset ...).
// The decoded image has every derived index rebuilt and applies the entry at last_offset + 1
// like the original.
std::optional<MetadataSnapshot> decode_metadata_snapshot(std::span<const uint8_t> bytes,
                                                         std::string* error = nullptr);

}  // namespace faultline::cluster
