#include "faultline/cluster/controller/metadata.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/crc.hpp>
#include <cstring>
#include <type_traits>

namespace faultline::cluster {

std::string_view election_reason_name(ElectionReason r) noexcept {
  switch (r) {
    case ElectionReason::none:
      return "isr_change";
    case ElectionReason::offline:
      return "offline";
    case ElectionReason::controlled_shutdown:
      return "controlled_shutdown";
    case ElectionReason::preferred:
      return "preferred";
    case ElectionReason::auto_rebalance:
      return "auto_rebalance";
    case ElectionReason::unclean:
      return "unclean";
    case ElectionReason::demotion:
      return "demotion";
    case ElectionReason::promotion:
      return "promotion";
    case ElectionReason::reassignment:
      return "reassignment";
    case ElectionReason::broker_returned:
      return "broker_returned";
    case ElectionReason::new_topic:
      return "new_topic";
  }
  return "unknown";
}

uint32_t metadata_crc32c(std::span<const uint8_t> bytes) noexcept {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(bytes.data(), bytes.size());
  return crc.checksum();
}

namespace {

// Record type tags on the wire; append only, never renumber (persisted logs depend on them).
enum class RecordType : uint8_t {
  broker_registered = 1,
  broker_fenced = 2,
  broker_unfenced = 3,
  broker_controlled_shutdown = 4,
  topic_created = 5,
  partition_changed = 6,
  broker_priority_changed = 7,
  config_changed = 8,
  controller_elected = 9,
};

class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& out) : out_(out) {}
  template <typename T>
  void integer(T v) {
    using U = std::make_unsigned_t<T>;
    auto u = static_cast<U>(v);
    for (int shift = (sizeof(T) - 1) * 8; shift >= 0; shift -= 8) {
      out_.push_back(static_cast<uint8_t>(u >> shift));
    }
  }
  void u8(uint8_t v) { out_.push_back(v); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void string(std::string_view s) {
    // Names and endpoints are short; longer strings are cut rather than corrupting the frame.
    auto n = static_cast<uint16_t>(std::min<size_t>(s.size(), UINT16_MAX));
    integer<uint16_t>(n);
    out_.insert(out_.end(), s.begin(), s.begin() + n);
  }
  void endpoint(const Endpoint& e) {
    string(e.host);
    integer<uint16_t>(e.port);
  }
  void replicas(const ReplicaList& list) {
    integer<uint32_t>(list.size());
    for (BrokerId b : list)
      integer<int32_t>(b.value());
  }
  void tp(const TopicPartition& tp) {
    string(tp.topic);
    integer<int32_t>(tp.partition.value());
  }

 private:
  std::vector<uint8_t>& out_;
};

// Bounds-checked reader: once a read would pass the end, every later read yields zero and ok()
// turns false, so decoders check once at the end.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == bytes_.size(); }
  size_t remaining() const { return bytes_.size() - pos_; }
  // For a value the decoder finds out of range.
  void invalidate() { ok_ = false; }
  // A u32 count of items that take at least `min_bytes` each. A count the remaining bytes cannot
  // hold is corrupt (and yields 0): checking first avoids huge reserves.
  uint32_t count(size_t min_bytes) {
    auto n = integer<uint32_t>();
    if (n > remaining() / min_bytes) {
      ok_ = false;
      return 0;
    }
    return n;
  }
  template <typename T>
  T integer() {
    using U = std::make_unsigned_t<T>;
    if (!take(sizeof(T)))
      return T{};
    U u = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      u = static_cast<U>((u << 8) | bytes_[pos_ - sizeof(T) + i]);
    return static_cast<T>(u);
  }
  uint8_t u8() { return integer<uint8_t>(); }
  bool boolean() {
    uint8_t v = u8();
    if (v > 1)
      ok_ = false;
    return v == 1;
  }
  std::string string() {
    auto n = integer<uint16_t>();
    if (!take(n))
      return {};
    return std::string(reinterpret_cast<const char*>(bytes_.data() + pos_ - n), n);
  }
  Endpoint endpoint() {
    Endpoint e;
    e.host = string();
    e.port = integer<uint16_t>();
    return e;
  }
  ReplicaList replicas() {
    auto n = integer<uint32_t>();
    // A count the remaining bytes cannot hold is corrupt; checking first avoids huge reserves.
    if (n > remaining() / 4) {
      ok_ = false;
      return {};
    }
    ReplicaList list;
    list.reserve(n);
    for (uint32_t i = 0; i < n; ++i)
      list.push_back(BrokerId{integer<int32_t>()});
    return list;
  }
  TopicPartition tp() {
    TopicPartition t;
    t.topic = string();
    t.partition = PartitionIndex{integer<int32_t>()};
    return t;
  }

 private:
  bool take(size_t n) {
    if (!ok_ || n > remaining()) {
      ok_ = false;
      return false;
    }
    pos_ += n;
    return true;
  }
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
  bool ok_ = true;
};

void encode_payload(const MetadataRecord& record, Writer& w) {
  std::visit(
      [&w](const auto& r) {
        using R = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<R, BrokerRegistered>) {
          w.u8(static_cast<uint8_t>(RecordType::broker_registered));
          w.integer<int32_t>(r.broker.value());
          w.integer<int64_t>(r.broker_epoch.value());
          w.integer<uint64_t>(r.incarnation);
          w.endpoint(r.internal_endpoint);
          w.endpoint(r.client_endpoint);
          w.boolean(r.rack.has_value());
          if (r.rack)
            w.string(*r.rack);
          w.boolean(r.kafka_endpoint.has_value());
          if (r.kafka_endpoint)
            w.endpoint(*r.kafka_endpoint);
        } else if constexpr (std::is_same_v<R, BrokerFenced> || std::is_same_v<R, BrokerUnfenced> ||
                             std::is_same_v<R, BrokerControlledShutdown>) {
          RecordType type = std::is_same_v<R, BrokerFenced> ? RecordType::broker_fenced
                            : std::is_same_v<R, BrokerUnfenced>
                                ? RecordType::broker_unfenced
                                : RecordType::broker_controlled_shutdown;
          w.u8(static_cast<uint8_t>(type));
          w.integer<int32_t>(r.broker.value());
          w.integer<int64_t>(r.broker_epoch.value());
        } else if constexpr (std::is_same_v<R, TopicCreated>) {
          w.u8(static_cast<uint8_t>(RecordType::topic_created));
          w.string(r.name);
          w.integer<uint32_t>(static_cast<uint32_t>(r.partitions.size()));
          for (const auto& replicas : r.partitions)
            w.replicas(replicas);
        } else if constexpr (std::is_same_v<R, PartitionChanged>) {
          w.u8(static_cast<uint8_t>(RecordType::partition_changed));
          w.tp(r.tp);
          w.integer<int32_t>(r.leader.value());
          w.replicas(r.isr);
          w.integer<int32_t>(r.leader_epoch.value());
          w.integer<int32_t>(r.partition_epoch.value());
          w.replicas(r.replicas);
          w.replicas(r.adding);
          w.replicas(r.removing);
          w.u8(static_cast<uint8_t>(r.leader_recovery));
          w.u8(static_cast<uint8_t>(r.reason));
        } else if constexpr (std::is_same_v<R, BrokerPriorityChanged>) {
          w.u8(static_cast<uint8_t>(RecordType::broker_priority_changed));
          w.integer<int32_t>(r.broker.value());
          w.boolean(r.demoted);
          w.string(r.reason);
        } else if constexpr (std::is_same_v<R, ConfigChanged>) {
          w.u8(static_cast<uint8_t>(RecordType::config_changed));
          w.string(r.key);
          w.string(r.value);
        } else if constexpr (std::is_same_v<R, ControllerElected>) {
          w.u8(static_cast<uint8_t>(RecordType::controller_elected));
          w.integer<int32_t>(r.controller);
          w.integer<int64_t>(r.epoch);
          w.integer<uint32_t>(static_cast<uint32_t>(r.voters.size()));
          for (int32_t v : r.voters)
            w.integer<int32_t>(v);
        }
      },
      record);
}

bool decode_payload(Reader& r, MetadataRecord& out) {
  auto type = static_cast<RecordType>(r.u8());
  switch (type) {
    case RecordType::broker_registered: {
      BrokerRegistered rec;
      rec.broker = BrokerId{r.integer<int32_t>()};
      rec.broker_epoch = BrokerEpoch{r.integer<int64_t>()};
      rec.incarnation = r.integer<uint64_t>();
      rec.internal_endpoint = r.endpoint();
      rec.client_endpoint = r.endpoint();
      if (r.boolean())
        rec.rack = r.string();
      if (r.boolean())
        rec.kafka_endpoint = r.endpoint();
      out = std::move(rec);
      return true;
    }
    case RecordType::broker_fenced:
    case RecordType::broker_unfenced:
    case RecordType::broker_controlled_shutdown: {
      BrokerId broker{r.integer<int32_t>()};
      BrokerEpoch epoch{r.integer<int64_t>()};
      if (type == RecordType::broker_fenced) {
        out = BrokerFenced{broker, epoch};
      } else if (type == RecordType::broker_unfenced) {
        out = BrokerUnfenced{broker, epoch};
      } else {
        out = BrokerControlledShutdown{broker, epoch};
      }
      return true;
    }
    case RecordType::topic_created: {
      TopicCreated rec;
      rec.name = r.string();
      auto n = r.integer<uint32_t>();
      if (n > r.remaining() / 4)
        return false;  // each list needs at least its count
      rec.partitions.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i)
        rec.partitions.push_back(r.replicas());
      out = std::move(rec);
      return true;
    }
    case RecordType::partition_changed: {
      PartitionChanged rec;
      rec.tp = r.tp();
      rec.leader = BrokerId{r.integer<int32_t>()};
      rec.isr = r.replicas();
      rec.leader_epoch = LeaderEpoch{r.integer<int32_t>()};
      rec.partition_epoch = PartitionEpoch{r.integer<int32_t>()};
      rec.replicas = r.replicas();
      rec.adding = r.replicas();
      rec.removing = r.replicas();
      uint8_t recovery = r.u8();
      uint8_t reason = r.u8();
      if (recovery > static_cast<uint8_t>(LeaderRecovery::recovering) ||
          reason > static_cast<uint8_t>(ElectionReason::new_topic)) {
        return false;
      }
      rec.leader_recovery = static_cast<LeaderRecovery>(recovery);
      rec.reason = static_cast<ElectionReason>(reason);
      out = std::move(rec);
      return true;
    }
    case RecordType::broker_priority_changed: {
      BrokerPriorityChanged rec;
      rec.broker = BrokerId{r.integer<int32_t>()};
      rec.demoted = r.boolean();
      rec.reason = r.string();
      out = std::move(rec);
      return true;
    }
    case RecordType::config_changed: {
      ConfigChanged rec;
      rec.key = r.string();
      rec.value = r.string();
      out = std::move(rec);
      return true;
    }
    case RecordType::controller_elected: {
      ControllerElected rec;
      rec.controller = r.integer<int32_t>();
      rec.epoch = r.integer<int64_t>();
      auto n = r.integer<uint32_t>();
      if (n > r.remaining() / 4)
        return false;
      rec.voters.reserve(n);
      for (uint32_t i = 0; i < n && r.ok(); ++i)
        rec.voters.push_back(r.integer<int32_t>());
      out = std::move(rec);
      return true;
    }
  }
  return false;
}

// Why a partition state breaks the invariants elections rely on (a non-empty ISR inside the
// replicas, a leader in the ISR or none), or nullptr. Checked on every PartitionChanged applied and
// on every partition of a snapshot, so a decoded image holds only states apply() accepts.
const char* partition_violation(BrokerId leader, const ReplicaList& isr,
                                const ReplicaList& replicas) {
  if (isr.empty())
    return "empty ISR";
  if (!std::all_of(isr.begin(), isr.end(), [&](BrokerId b) { return replicas.contains(b); }))
    return "ISR outside the replicas";
  if (leader != kNoBroker && !isr.contains(leader))
    return "leader outside the ISR";
  return nullptr;
}

uint32_t load_u32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
void store_u32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace

void encode_metadata_entry(const MetadataEntry& entry, std::vector<uint8_t>& out) {
  size_t header = out.size();
  out.resize(header + kMetadataFrameHeaderBytes);
  Writer w(out);
  w.integer<int64_t>(entry.offset.value());
  w.integer<int64_t>(entry.term);
  encode_payload(entry.record, w);
  size_t payload = header + kMetadataFrameHeaderBytes;
  auto length = static_cast<uint32_t>(out.size() - payload);
  uint32_t crc = metadata_crc32c(std::span<const uint8_t>(out.data() + payload, length));
  store_u32(out.data() + header, length);
  store_u32(out.data() + header + 4, crc);
}

DecodeResult decode_metadata_entry(std::span<const uint8_t> bytes) {
  DecodeResult result;
  if (bytes.size() < kMetadataFrameHeaderBytes) {
    result.status = DecodeStatus::incomplete;
    return result;
  }
  uint32_t length = load_u32(bytes.data());
  uint32_t crc = load_u32(bytes.data() + 4);
  if (length > kMaxMetadataRecordBytes || length < 17) {  // offset + term + type at least
    result.status = DecodeStatus::corrupt;
    return result;
  }
  if (bytes.size() - kMetadataFrameHeaderBytes < length) {
    result.status = DecodeStatus::incomplete;
    return result;
  }
  auto payload = bytes.subspan(kMetadataFrameHeaderBytes, length);
  if (metadata_crc32c(payload) != crc) {
    result.status = DecodeStatus::corrupt;
    return result;
  }
  Reader r(payload);
  result.entry.offset = MetadataOffset{r.integer<int64_t>()};
  result.entry.term = r.integer<int64_t>();
  if (!decode_payload(r, result.entry.record) || !r.ok() || !r.at_end() ||
      result.entry.offset.value() < 0 || result.entry.term < 0) {
    result.status = DecodeStatus::corrupt;
    return result;
  }
  result.status = DecodeStatus::ok;
  result.consumed = kMetadataFrameHeaderBytes + length;
  return result;
}

// ---- MetadataImage --------------------------------------------------------------------------

void apply_partition_change(PartitionState& state, const PartitionChanged& change) {
  if (change.reason == ElectionReason::unclean &&
      change.leader_recovery == LeaderRecovery::recovering && change.leader != state.leader) {
    ++state.unclean_elections;
  }
  state.leader = change.leader;
  state.isr = change.isr;
  state.leader_epoch = change.leader_epoch;
  state.partition_epoch = change.partition_epoch;
  state.replicas = change.replicas;
  state.adding = change.adding;
  state.removing = change.removing;
  state.leader_recovery = change.leader_recovery;
}

std::error_code MetadataImage::apply(const MetadataEntry& entry) {
  if (entry.offset != applied_offset_.next())
    return make_error_code(errc::invalid_request);
  if (auto ec = apply_record(entry.offset, entry.record))
    return ec;
  applied_offset_ = entry.offset;
  return {};
}

std::error_code MetadataImage::apply_record(MetadataOffset offset, const MetadataRecord& record) {
  return std::visit(
      [&](const auto& r) -> std::error_code {
        using R = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<R, BrokerRegistered>) {
          BrokerState& b = brokers_[r.broker];
          b.id = r.broker;
          b.epoch = r.broker_epoch;
          b.incarnation = r.incarnation;
          b.internal_endpoint = r.internal_endpoint;
          b.client_endpoint = r.client_endpoint;
          b.rack = r.rack;
          b.kafka_endpoint = r.kafka_endpoint;
          b.registered_at = offset;
          b.registered = true;
          b.fenced = true;
          b.shutting_down = false;
          // Priority belongs to the broker id, not to one process start: a demoted broker that
          // restarts stays demoted until promoted.
          return {};
        } else if constexpr (std::is_same_v<R, BrokerFenced> || std::is_same_v<R, BrokerUnfenced> ||
                             std::is_same_v<R, BrokerControlledShutdown>) {
          auto it = brokers_.find(r.broker);
          if (it == brokers_.end())
            return make_error_code(errc::broker_id_not_registered);
          if (it->second.epoch != r.broker_epoch)
            return make_error_code(errc::stale_broker_epoch);
          if constexpr (std::is_same_v<R, BrokerFenced>) {
            it->second.fenced = true;
          } else if constexpr (std::is_same_v<R, BrokerUnfenced>) {
            it->second.fenced = false;
          } else {
            it->second.shutting_down = true;
          }
          return {};
        } else if constexpr (std::is_same_v<R, TopicCreated>) {
          if (topic_by_name_.contains(r.name))
            return make_error_code(errc::topic_already_exists);
          for (const auto& replicas : r.partitions) {
            if (replicas.empty())
              return make_error_code(errc::invalid_replica_assignment);
          }
          auto index = static_cast<uint32_t>(topics_.size());
          TopicState& topic = topics_.emplace_back();
          topic.name = r.name;
          topic.partitions.resize(r.partitions.size());
          for (size_t i = 0; i < r.partitions.size(); ++i) {
            PartitionState& p = topic.partitions[i];
            p.replicas = r.partitions[i];
            p.isr = r.partitions[i];
            p.leader = p.replicas.front();
            for (BrokerId b : p.replicas)
              index_add(b, PartitionRef{index, static_cast<int32_t>(i)});
          }
          topic_by_name_.emplace(r.name, index);
          partition_count_ += r.partitions.size();
          return {};
        } else if constexpr (std::is_same_v<R, PartitionChanged>) {
          auto ref = this->ref(r.tp);
          if (!ref)
            return make_error_code(errc::unknown_topic_or_partition);
          // Brokers apply what they pull: a record that would break the invariants elections
          // rely on is refused rather than believed.
          if (partition_violation(r.leader, r.isr, r.replicas) != nullptr)
            return make_error_code(errc::invalid_request);
          PartitionState& p = topics_[ref->topic].partitions[static_cast<size_t>(ref->partition)];
          if (!(p.replicas == r.replicas)) {
            for (BrokerId b : p.replicas) {
              if (!r.replicas.contains(b))
                index_remove(b, *ref);
            }
            for (BrokerId b : r.replicas) {
              if (!p.replicas.contains(b))
                index_add(b, *ref);
            }
          }
          offline_count_ -= p.leader == kNoBroker ? 1 : 0;
          offline_count_ += r.leader == kNoBroker ? 1 : 0;
          apply_partition_change(p, r);
          return {};
        } else if constexpr (std::is_same_v<R, BrokerPriorityChanged>) {
          auto it = brokers_.find(r.broker);
          if (it == brokers_.end())
            return make_error_code(errc::broker_id_not_registered);
          it->second.demoted = r.demoted;
          it->second.demotion_reason = r.demoted ? r.reason : std::string{};
          return {};
        } else if constexpr (std::is_same_v<R, ConfigChanged>) {
          configs_[r.key] = r.value;
          if (r.key == kMarkerKey)
            marker_history_.push_back({offset, r.value});
          return {};
        } else if constexpr (std::is_same_v<R, ControllerElected>) {
          if (r.epoch < controller_epoch_)
            return make_error_code(errc::invalid_request);
          active_controller_ = r.controller;
          controller_epoch_ = r.epoch;
          return {};
        }
      },
      record);
}

void MetadataImage::index_add(BrokerId broker, PartitionRef ref) {
  replica_index_[broker].push_back(ref);
}

void MetadataImage::rebuild_indexes() {
  topic_by_name_.clear();
  replica_index_.clear();
  partition_count_ = 0;
  offline_count_ = 0;
  for (uint32_t t = 0; t < topics_.size(); ++t) {
    const auto& partitions = topics_[t].partitions;
    topic_by_name_.emplace(topics_[t].name,
                           t);  // a duplicate name keeps the first (decoder checks)
    partition_count_ += partitions.size();
    for (size_t i = 0; i < partitions.size(); ++i) {
      // Like apply(): the replicas, which during a reassignment include the adding ones. After a
      // reassignment the order within a broker's list can differ from apply()'s (it
      // swap-removes): the same partitions, visited in another order.
      for (BrokerId b : partitions[i].replicas)
        index_add(b, PartitionRef{t, static_cast<int32_t>(i)});
      offline_count_ += partitions[i].leader == kNoBroker ? 1 : 0;
    }
  }
}

void MetadataImage::index_remove(BrokerId broker, PartitionRef ref) {
  // Only reassignments remove replicas: rare enough for a linear search.
  auto it = replica_index_.find(broker);
  if (it == replica_index_.end())
    return;
  auto& refs = it->second;
  auto pos = std::find(refs.begin(), refs.end(), ref);
  if (pos == refs.end())
    return;
  *pos = refs.back();
  refs.pop_back();
}

const BrokerState* MetadataImage::broker(BrokerId id) const {
  auto it = brokers_.find(id);
  return it == brokers_.end() ? nullptr : &it->second;
}

std::optional<uint32_t> MetadataImage::topic_index(std::string_view name) const {
  auto it = topic_by_name_.find(name);
  if (it == topic_by_name_.end())
    return std::nullopt;
  return it->second;
}

const TopicState* MetadataImage::topic(std::string_view name) const {
  auto index = topic_index(name);
  return index ? &topics_[*index] : nullptr;
}

std::optional<PartitionRef> MetadataImage::ref(const TopicPartition& tp) const {
  auto it = topic_by_name_.find(tp.topic);
  if (it == topic_by_name_.end())
    return std::nullopt;
  int32_t p = tp.partition.value();
  if (p < 0 || static_cast<size_t>(p) >= topics_[it->second].partitions.size()) {
    return std::nullopt;
  }
  return PartitionRef{it->second, p};
}

const PartitionState* MetadataImage::partition(const TopicPartition& tp) const {
  auto r = ref(tp);
  return r ? &partition(*r) : nullptr;
}

std::span<const PartitionRef> MetadataImage::replica_index(BrokerId broker) const {
  auto it = replica_index_.find(broker);
  if (it == replica_index_.end())
    return {};
  return it->second;
}

std::vector<PartitionRef> MetadataImage::partitions_with_replica(BrokerId broker) const {
  auto refs = replica_index(broker);
  return {refs.begin(), refs.end()};
}

std::vector<PartitionRef> MetadataImage::partitions_led_by(BrokerId broker) const {
  std::vector<PartitionRef> led;
  for (PartitionRef ref : replica_index(broker)) {
    if (partition(ref).leader == broker)
      led.push_back(ref);
  }
  return led;
}

std::vector<PartitionRef> MetadataImage::offline_partitions() const {
  std::vector<PartitionRef> offline;
  for (uint32_t t = 0; t < topics_.size(); ++t) {
    const auto& partitions = topics_[t].partitions;
    for (size_t p = 0; p < partitions.size(); ++p) {
      if (partitions[p].leader == kNoBroker)
        offline.push_back({t, static_cast<int32_t>(p)});
    }
  }
  return offline;
}

std::optional<std::string_view> MetadataImage::config(std::string_view key) const {
  auto it = configs_.find(key);
  if (it == configs_.end())
    return std::nullopt;
  return std::string_view(it->second);
}

bool operator==(const MetadataImage& a, const MetadataImage& b) {
  // The replica index is derived from the topics, so comparing the sources is enough.
  return a.applied_offset_ == b.applied_offset_ && a.brokers_ == b.brokers_ &&
         a.topics_ == b.topics_ && a.configs_ == b.configs_ &&
         a.marker_history_ == b.marker_history_ && a.active_controller_ == b.active_controller_ &&
         a.controller_epoch_ == b.controller_epoch_;
}

// ---- snapshots ------------------------------------------------------------------------------

namespace {

// The smallest encoding of one item of each list: bounds the counts a payload can claim.
constexpr size_t kMinBrokerBytes = 4 + 8 + 8 + 4 + 4 + 1 + 1 + 8 + 4 + 2;
constexpr size_t kMinTopicBytes = 2 + 4;
constexpr size_t kMinPartitionBytes = 4 + 4 + 4 + 4 + 4 + 4 + 1 + 4 + 4;
constexpr size_t kMinConfigBytes = 2 + 2;
constexpr size_t kMinMarkerBytes = 8 + 2;

void encode_broker(const BrokerState& b, Writer& w) {
  w.integer<int32_t>(b.id.value());
  w.integer<int64_t>(b.epoch.value());
  w.integer<uint64_t>(b.incarnation);
  w.endpoint(b.internal_endpoint);
  w.endpoint(b.client_endpoint);
  w.boolean(b.rack.has_value());
  if (b.rack)
    w.string(*b.rack);
  w.boolean(b.kafka_endpoint.has_value());
  if (b.kafka_endpoint)
    w.endpoint(*b.kafka_endpoint);
  w.integer<int64_t>(b.registered_at.value());
  w.boolean(b.registered);
  w.boolean(b.fenced);
  w.boolean(b.shutting_down);
  w.boolean(b.demoted);
  w.string(b.demotion_reason);
}

BrokerState decode_broker(Reader& r) {
  BrokerState b;
  b.id = BrokerId{r.integer<int32_t>()};
  b.epoch = BrokerEpoch{r.integer<int64_t>()};
  b.incarnation = r.integer<uint64_t>();
  b.internal_endpoint = r.endpoint();
  b.client_endpoint = r.endpoint();
  if (r.boolean())
    b.rack = r.string();
  if (r.boolean())
    b.kafka_endpoint = r.endpoint();
  b.registered_at = MetadataOffset{r.integer<int64_t>()};
  b.registered = r.boolean();
  b.fenced = r.boolean();
  b.shutting_down = r.boolean();
  b.demoted = r.boolean();
  b.demotion_reason = r.string();
  return b;
}

void encode_partition(const PartitionState& p, Writer& w) {
  w.replicas(p.replicas);
  w.replicas(p.isr);
  w.integer<int32_t>(p.leader.value());
  w.integer<int32_t>(p.leader_epoch.value());
  w.integer<int32_t>(p.partition_epoch.value());
  w.integer<int32_t>(p.unclean_elections);
  w.u8(static_cast<uint8_t>(p.leader_recovery));
  w.replicas(p.adding);
  w.replicas(p.removing);
}

PartitionState decode_partition(Reader& r) {
  PartitionState p;
  p.replicas = r.replicas();
  p.isr = r.replicas();
  p.leader = BrokerId{r.integer<int32_t>()};
  p.leader_epoch = LeaderEpoch{r.integer<int32_t>()};
  p.partition_epoch = PartitionEpoch{r.integer<int32_t>()};
  p.unclean_elections = r.integer<int32_t>();
  uint8_t recovery = r.u8();
  if (recovery > static_cast<uint8_t>(LeaderRecovery::recovering))
    r.invalidate();
  p.leader_recovery = static_cast<LeaderRecovery>(recovery);
  p.adding = r.replicas();
  p.removing = r.replicas();
  return p;
}

// Every source field of the image, in a fixed order; the derived indexes are left out.
void encode_image(const MetadataImage& image, Writer& w) {
  w.integer<int64_t>(image.applied_offset().value());
  w.integer<int32_t>(image.active_controller());
  w.integer<int64_t>(image.controller_epoch());
  w.integer<uint32_t>(static_cast<uint32_t>(image.brokers().size()));
  for (const auto& [id, b] : image.brokers())
    encode_broker(b, w);
  w.integer<uint32_t>(static_cast<uint32_t>(image.topics().size()));
  for (const TopicState& t : image.topics()) {
    w.string(t.name);
    w.integer<uint32_t>(static_cast<uint32_t>(t.partitions.size()));
    for (const PartitionState& p : t.partitions)
      encode_partition(p, w);
  }
  w.integer<uint32_t>(static_cast<uint32_t>(image.configs().size()));
  for (const auto& [key, value] : image.configs()) {
    w.string(key);
    w.string(value);
  }
  w.integer<uint32_t>(static_cast<uint32_t>(image.marker_history().size()));
  for (const MarkerWrite& m : image.marker_history()) {
    w.integer<int64_t>(m.offset.value());
    w.string(m.value);
  }
}

// A duplicate broker id is an error here: the map would silently keep one of them.
std::string decode_brokers(Reader& r, std::map<BrokerId, BrokerState>& brokers) {
  // Written in ascending id order (the map's): any other order is not an encoding of an image, and
  // accepting it would give two byte strings for one image.
  uint32_t n = r.count(kMinBrokerBytes);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    BrokerState b = decode_broker(r);
    BrokerId id = b.id;
    if (!r.ok())
      break;
    if (!brokers.empty() && id <= brokers.rbegin()->first)
      return id == brokers.rbegin()->first ? fmt::format("duplicate broker id {}", id.value())
                                           : fmt::format("broker id {} out of order", id.value());
    brokers.emplace_hint(brokers.end(), id, std::move(b));
  }
  return {};
}

void decode_topics(Reader& r, std::vector<TopicState>& topics) {
  uint32_t n = r.count(kMinTopicBytes);
  topics.reserve(n);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    TopicState& t = topics.emplace_back();
    t.name = r.string();
    uint32_t partitions = r.count(kMinPartitionBytes);
    t.partitions.reserve(partitions);
    for (uint32_t p = 0; p < partitions && r.ok(); ++p)
      t.partitions.push_back(decode_partition(r));
  }
}

std::string decode_configs(Reader& r, std::map<std::string, std::string, std::less<>>& configs) {
  uint32_t n = r.count(kMinConfigBytes);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    std::string key = r.string();
    std::string value = r.string();
    if (!r.ok())
      break;
    if (!configs.empty() && key <= configs.rbegin()->first)
      return key == configs.rbegin()->first ? fmt::format("duplicate config key {}", key)
                                            : fmt::format("config key {} out of order", key);
    configs.emplace_hint(configs.end(), std::move(key), std::move(value));
  }
  return {};
}

void decode_markers(Reader& r, std::vector<MarkerWrite>& markers) {
  uint32_t n = r.count(kMinMarkerBytes);
  markers.reserve(n);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    MetadataOffset offset{r.integer<int64_t>()};
    markers.push_back({offset, r.string()});
  }
}

// The frame around the payload: magic, version, exact length (nothing after it), CRC.
std::string snapshot_payload(std::span<const uint8_t> bytes, std::span<const uint8_t>& payload) {
  if (bytes.size() < kMetadataSnapshotHeaderBytes)
    return "truncated header";
  if (load_u32(bytes.data()) != kMetadataSnapshotMagic)
    return "bad magic";
  if (bytes[4] != kMetadataSnapshotVersion)
    return fmt::format("unsupported version {}", bytes[4]);
  uint32_t length = load_u32(bytes.data() + 5);
  size_t available = bytes.size() - kMetadataSnapshotHeaderBytes;
  if (length > available)
    return "truncated payload";
  if (length < available)
    return "trailing bytes after the payload";
  payload = bytes.subspan(kMetadataSnapshotHeaderBytes);
  if (metadata_crc32c(payload) != load_u32(bytes.data() + 9))
    return "CRC mismatch";
  return {};
}

std::string check_topics(const MetadataImage& image) {
  const auto& topics = image.topics();
  for (uint32_t t = 0; t < topics.size(); ++t) {
    if (image.topic_index(topics[t].name) != t)  // the name index kept an earlier topic
      return fmt::format("duplicate topic name {}", topics[t].name);
    for (size_t i = 0; i < topics[t].partitions.size(); ++i) {
      const PartitionState& p = topics[t].partitions[i];
      if (const char* why = partition_violation(p.leader, p.isr, p.replicas))
        return fmt::format("partition {}-{}: {}", topics[t].name, i, why);
    }
  }
  return {};
}

// The marker history is what apply() appends: increasing offsets within the image, the last value
// being the key's config.
std::string check_markers(const MetadataImage& image) {
  const auto& markers = image.marker_history();
  MetadataOffset previous{-1};
  for (const MarkerWrite& m : markers) {
    if (m.offset <= previous || m.offset > image.applied_offset())
      return fmt::format("marker offset {} out of order", m.offset.value());
    previous = m.offset;
  }
  auto config = image.config(kMarkerKey);
  bool consistent = markers.empty() ? !config : config && *config == markers.back().value;
  return consistent ? std::string{} : "marker history does not match the marker config";
}

// What holds for every image apply() builds, decoded from an arbitrary (CRC-valid) payload.
std::string check_snapshot(const MetadataSnapshot& s) {
  if (s.last_offset < MetadataOffset{-1} || s.last_term < 0 || s.image.controller_epoch() < 0)
    return "negative offset, term or controller epoch";
  if (s.last_offset != s.image.applied_offset())
    return "last offset is not the image's applied offset";
  if (auto why = check_topics(s.image); !why.empty())
    return why;
  return check_markers(s.image);
}

}  // namespace

void encode_metadata_snapshot(const MetadataImage& image, int64_t last_term,
                              std::vector<uint8_t>& out) {
  size_t header = out.size();
  out.resize(header + kMetadataSnapshotHeaderBytes);
  Writer w(out);
  w.integer<int64_t>(image.applied_offset().value());
  w.integer<int64_t>(last_term);
  encode_image(image, w);
  size_t payload = header + kMetadataSnapshotHeaderBytes;
  auto length = static_cast<uint32_t>(out.size() - payload);
  uint32_t crc = metadata_crc32c(std::span<const uint8_t>(out.data() + payload, length));
  store_u32(out.data() + header, kMetadataSnapshotMagic);
  out[header + 4] = kMetadataSnapshotVersion;
  store_u32(out.data() + header + 5, length);
  store_u32(out.data() + header + 9, crc);
}

std::optional<MetadataSnapshot> decode_metadata_snapshot(std::span<const uint8_t> bytes,
                                                         std::string* error) {
  auto fail = [error](std::string why) -> std::optional<MetadataSnapshot> {
    if (error != nullptr)
      *error = std::move(why);
    return std::nullopt;
  };
  std::span<const uint8_t> payload;
  if (auto why = snapshot_payload(bytes, payload); !why.empty())
    return fail(std::move(why));
  Reader r(payload);
  MetadataSnapshot s;
  MetadataImage& image = s.image;
  s.last_offset = MetadataOffset{r.integer<int64_t>()};
  s.last_term = r.integer<int64_t>();
  image.applied_offset_ = MetadataOffset{r.integer<int64_t>()};
  image.active_controller_ = r.integer<int32_t>();
  image.controller_epoch_ = r.integer<int64_t>();
  if (auto why = decode_brokers(r, image.brokers_); !why.empty())
    return fail(std::move(why));
  decode_topics(r, image.topics_);
  if (auto why = decode_configs(r, image.configs_); !why.empty())
    return fail(std::move(why));
  decode_markers(r, image.marker_history_);
  if (!r.ok())
    return fail("malformed payload");
  if (!r.at_end())
    return fail("trailing bytes in the payload");
  image.rebuild_indexes();
  if (auto why = check_snapshot(s); !why.empty())
    return fail(std::move(why));
  return s;
}

}  // namespace faultline::cluster
