#include "faultline/cluster/kafka/protocol.h"

#include <array>
#include <cassert>

#include "faultline/cluster/errc.h"
#include "kafka/cursor.h"

namespace faultline::cluster::kafka {

using detail::Reader;
using detail::Writer;

namespace {

constexpr int16_t key_of(ApiKey k) {
  return static_cast<int16_t>(k);
}

constexpr std::array<ApiRange, 6> kSupported{{
    {key_of(ApiKey::produce), 3, 7},
    {key_of(ApiKey::fetch), 4, 11},
    {key_of(ApiKey::list_offsets), 1, 4},
    {key_of(ApiKey::metadata), 1, 8},
    {key_of(ApiKey::api_versions), 0, 3},
    {key_of(ApiKey::create_topics), 0, 4},
}};

constexpr auto kUnsupportedVersion = static_cast<int16_t>(errc::unsupported_version);
// Metadata v8+: "authorized operations were not requested".
constexpr int32_t kAuthorizedOperationsOmitted = INT32_MIN;

// Smallest encodings, used to cap array counts by the bytes that remain.
constexpr size_t kMinString = 2;  // i16 length, empty
constexpr size_t kMinArray = 4;   // i32 count, empty

bool is_flexible_request(int16_t api_key, int16_t api_version) {
  return api_key == key_of(ApiKey::api_versions) && api_version >= 3;
}

// ---- request bodies ----------------------------------------------------------------------------

bool decode(Reader& r, int16_t version, ApiVersionsRequest& out) {
  if (version >= 3) {
    r.compact_string(out.client_software_name);
    r.compact_string(out.client_software_version);
    r.skip_tagged_fields();
  }
  return r.done();
}

bool decode(Reader& r, int16_t version, MetadataRequest& out) {
  std::optional<uint32_t> n;
  if (!r.nullable_count(n, kMinString))
    return false;
  if (n) {
    out.topics.emplace();
    for (uint32_t i = 0; i < *n && r.ok(); ++i)
      r.string(out.topics->emplace_back());
  }
  if (version >= 4)
    r.boolean(out.allow_auto_topic_creation);
  if (version >= 8) {
    bool include_cluster_authorized_operations = false;
    bool include_topic_authorized_operations = false;
    r.boolean(include_cluster_authorized_operations);
    r.boolean(include_topic_authorized_operations);
  }
  return r.done();
}

bool decode(Reader& r, int16_t version, ProduceRequest& out) {
  if (version >= 3)
    r.nullable_string(out.transactional_id);
  r.integer(out.acks);
  r.integer(out.timeout_ms);
  uint32_t topics = 0;
  if (!r.count(topics, kMinString + kMinArray))
    return false;
  for (uint32_t t = 0; t < topics && r.ok(); ++t) {
    ProduceTopic& topic = out.topics.emplace_back();
    uint32_t partitions = 0;
    if (!r.string(topic.name) || !r.count(partitions, 4 + 4))
      return false;
    for (uint32_t p = 0; p < partitions && r.ok(); ++p) {
      ProducePartition& partition = topic.partitions.emplace_back();
      r.integer(partition.index);
      r.nullable_bytes(partition.records);
    }
  }
  return r.done();
}

bool decode(Reader& r, int16_t version, FetchPartition& out) {
  r.integer(out.index);
  if (version >= 9)
    r.integer(out.current_leader_epoch);
  r.integer(out.fetch_offset);
  if (version >= 5)
    r.integer(out.log_start_offset);
  return r.integer(out.partition_max_bytes);
}

// forgotten_topics_data (v7+): topic name and partition indexes, which a sessionless broker
// ignores.
bool skip_forgotten_topics(Reader& r) {
  uint32_t topics = 0;
  if (!r.count(topics, kMinString + kMinArray))
    return false;
  for (uint32_t t = 0; t < topics && r.ok(); ++t) {
    std::string name;
    uint32_t partitions = 0;
    int32_t index = 0;
    if (!r.string(name) || !r.count(partitions, 4))
      return false;
    for (uint32_t p = 0; p < partitions; ++p)
      r.integer(index);
  }
  return r.ok();
}

bool decode(Reader& r, int16_t version, FetchRequest& out) {
  r.integer(out.replica_id);
  r.integer(out.max_wait_ms);
  r.integer(out.min_bytes);
  if (version >= 3)
    r.integer(out.max_bytes);
  if (version >= 4)
    r.integer(out.isolation_level);
  if (version >= 7) {
    r.integer(out.session_id);
    r.integer(out.session_epoch);
  }
  uint32_t topics = 0;
  if (!r.count(topics, kMinString + kMinArray))
    return false;
  for (uint32_t t = 0; t < topics && r.ok(); ++t) {
    FetchTopic& topic = out.topics.emplace_back();
    uint32_t partitions = 0;
    if (!r.string(topic.name) || !r.count(partitions, 4 + 8 + 4))
      return false;
    for (uint32_t p = 0; p < partitions && r.ok(); ++p)
      decode(r, version, topic.partitions.emplace_back());
  }
  if (version >= 7)
    skip_forgotten_topics(r);
  if (version >= 11) {
    std::string rack_id;
    r.string(rack_id);
  }
  return r.done();
}

bool decode(Reader& r, int16_t version, ListOffsetsRequest& out) {
  r.integer(out.replica_id);
  if (version >= 2)
    r.integer(out.isolation_level);
  uint32_t topics = 0;
  if (!r.count(topics, kMinString + kMinArray))
    return false;
  for (uint32_t t = 0; t < topics && r.ok(); ++t) {
    ListOffsetsTopic& topic = out.topics.emplace_back();
    uint32_t partitions = 0;
    if (!r.string(topic.name) || !r.count(partitions, 4 + 8))
      return false;
    for (uint32_t p = 0; p < partitions && r.ok(); ++p) {
      ListOffsetsPartition& partition = topic.partitions.emplace_back();
      r.integer(partition.index);
      if (version >= 4)
        r.integer(partition.current_leader_epoch);
      r.integer(partition.timestamp);
    }
  }
  return r.done();
}

// Skips `n` entries of (i32 index, [i32 broker]) or (string name, nullable string value).
bool skip_assignments(Reader& r, uint32_t n) {
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    int32_t index = 0;
    uint32_t brokers = 0;
    r.integer(index);
    if (!r.count(brokers, 4))
      return false;
    for (uint32_t b = 0; b < brokers && r.ok(); ++b) {
      int32_t broker = 0;
      r.integer(broker);
    }
  }
  return r.ok();
}
bool skip_configs(Reader& r, uint32_t n) {
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    std::string name;
    std::optional<std::string> value;
    r.string(name);
    r.nullable_string(value);
  }
  return r.ok();
}

bool decode(Reader& r, int16_t version, CreateTopicsRequest& out) {
  uint32_t topics = 0;
  if (!r.count(topics, kMinString + 4 + 2 + kMinArray + kMinArray))
    return false;
  for (uint32_t t = 0; t < topics && r.ok(); ++t) {
    CreatableTopic& topic = out.topics.emplace_back();
    r.string(topic.name);
    r.integer(topic.num_partitions);
    r.integer(topic.replication_factor);
    if (!r.count(topic.assignments, 4 + kMinArray) || !skip_assignments(r, topic.assignments) ||
        !r.count(topic.configs, kMinString + 2) || !skip_configs(r, topic.configs))
      return false;
  }
  r.integer(out.timeout_ms);
  if (version >= 1)
    r.boolean(out.validate_only);
  return r.done();
}

template <typename T>
DecodeError decode_as(std::span<const char> body, int16_t version, Request& out) {
  Reader r(body);
  T& request = out.emplace<T>();
  return decode(r, version, request) ? DecodeError::none : DecodeError::malformed;
}

// ---- response bodies ---------------------------------------------------------------------------

void encode_api_keys(Writer& w, int16_t version, const std::vector<ApiRange>& api_keys) {
  const bool flexible = version >= 3;
  if (flexible)
    w.compact_count(api_keys.size());
  else
    w.count(api_keys.size());
  for (const ApiRange& range : api_keys) {
    w.integer(range.key);
    w.integer(range.min_version);
    w.integer(range.max_version);
    if (flexible)
      w.no_tagged_fields();
  }
}

void encode(Writer& w, int16_t version, const ApiVersionsResponse& r) {
  w.integer(r.error_code);
  encode_api_keys(w, version, r.api_keys);
  if (version >= 1)
    w.integer(r.throttle_time_ms);
  if (version >= 3)
    w.no_tagged_fields();
}

void encode_int32_array(Writer& w, const std::vector<int32_t>& values) {
  w.count(values.size());
  for (int32_t v : values)
    w.integer(v);
}

void encode(Writer& w, int16_t version, const MetadataPartition& p) {
  w.integer(p.error_code);
  w.integer(p.index);
  w.integer(p.leader_id);
  if (version >= 7)
    w.integer(p.leader_epoch);
  encode_int32_array(w, p.replica_nodes);
  encode_int32_array(w, p.isr_nodes);
  if (version >= 5)
    encode_int32_array(w, p.offline_replicas);
}

void encode(Writer& w, int16_t version, const MetadataTopic& t) {
  w.integer(t.error_code);
  w.string(t.name);
  if (version >= 1)
    w.boolean(t.is_internal);
  w.count(t.partitions.size());
  for (const MetadataPartition& p : t.partitions)
    encode(w, version, p);
  if (version >= 8)
    w.integer(kAuthorizedOperationsOmitted);
}

void encode(Writer& w, int16_t version, const MetadataResponse& r) {
  if (version >= 3)
    w.integer(r.throttle_time_ms);
  w.count(r.brokers.size());
  for (const MetadataBroker& b : r.brokers) {
    w.integer(b.node_id);
    w.string(b.host);
    w.integer(b.port);
    if (version >= 1)
      w.nullable_string(b.rack);
  }
  if (version >= 2)
    w.nullable_string(r.cluster_id);
  if (version >= 1)
    w.integer(r.controller_id);
  w.count(r.topics.size());
  for (const MetadataTopic& t : r.topics)
    encode(w, version, t);
  if (version >= 8)
    w.integer(kAuthorizedOperationsOmitted);
}

void encode(Writer& w, int16_t version, const ProduceResponse& r) {
  w.count(r.topics.size());
  for (const ProduceTopicResponse& t : r.topics) {
    w.string(t.name);
    w.count(t.partitions.size());
    for (const ProducePartitionResponse& p : t.partitions) {
      w.integer(p.index);
      w.integer(p.error_code);
      w.integer(p.base_offset);
      if (version >= 2)
        w.integer(p.log_append_time_ms);
      if (version >= 5)
        w.integer(p.log_start_offset);
    }
  }
  if (version >= 1)
    w.integer(r.throttle_time_ms);
}

void encode(Writer& w, int16_t version, const FetchPartitionResponse& p) {
  w.integer(p.index);
  w.integer(p.error_code);
  w.integer(p.high_watermark);
  if (version >= 4)
    w.integer(p.last_stable_offset);
  if (version >= 5)
    w.integer(p.log_start_offset);
  if (version >= 4)
    w.count(0);  // aborted_transactions
  if (version >= 11)
    w.integer(p.preferred_read_replica);
  w.bytes(p.records);
}

void encode(Writer& w, int16_t version, const FetchResponse& r) {
  if (version >= 1)
    w.integer(r.throttle_time_ms);
  if (version >= 7) {
    w.integer(r.error_code);
    w.integer(r.session_id);
  }
  w.count(r.topics.size());
  for (const FetchTopicResponse& t : r.topics) {
    w.string(t.name);
    w.count(t.partitions.size());
    for (const FetchPartitionResponse& p : t.partitions)
      encode(w, version, p);
  }
}

void encode(Writer& w, int16_t version, const ListOffsetsResponse& r) {
  if (version >= 2)
    w.integer(r.throttle_time_ms);
  w.count(r.topics.size());
  for (const ListOffsetsTopicResponse& t : r.topics) {
    w.string(t.name);
    w.count(t.partitions.size());
    for (const ListOffsetsPartitionResponse& p : t.partitions) {
      w.integer(p.index);
      w.integer(p.error_code);
      w.integer(p.timestamp);
      w.integer(p.offset);
      if (version >= 4)
        w.integer(p.leader_epoch);
    }
  }
}

void encode(Writer& w, int16_t version, const CreateTopicsResponse& r) {
  if (version >= 2)
    w.integer(r.throttle_time_ms);
  w.count(r.topics.size());
  for (const CreateTopicResult& t : r.topics) {
    w.string(t.name);
    w.integer(t.error_code);
    if (version >= 1)
      w.nullable_string(t.error_message);
  }
}

constexpr ApiKey key_of_response(const Response& response) {
  constexpr std::array<ApiKey, std::variant_size_v<Response>> keys{
      ApiKey::api_versions, ApiKey::metadata,     ApiKey::produce,
      ApiKey::fetch,        ApiKey::list_offsets, ApiKey::create_topics};
  return keys[response.index()];
}

// An i32 size, then whatever `body` writes.
template <typename Body>
std::string sized_frame(Body&& body) {
  std::string out;
  Writer w(out);
  w.integer<int32_t>(0);
  body(w);
  w.patch_u32(0, static_cast<uint32_t>(out.size() - sizeof(int32_t)));
  return out;
}

// Frames a response: i32 size, header v0 (correlation id), then whatever `body` writes.
template <typename Body>
std::string frame(int32_t correlation_id, Body&& body) {
  return sized_frame([&](Writer& w) {
    w.integer(correlation_id);
    body(w);
  });
}

// ---- client side: Metadata ---------------------------------------------------------------------

constexpr int16_t kMinClientMetadataVersion = 1;
constexpr int16_t kMaxClientMetadataVersion = 8;

// Smallest encodings of Metadata response elements (v1), to cap their counts.
constexpr size_t kMinMetadataBroker = 4 + kMinString + 4 + kMinString;
constexpr size_t kMinMetadataTopic = 2 + kMinString + 1 + kMinArray;
constexpr size_t kMinMetadataPartition = 2 + 4 + 4 + kMinArray + kMinArray;

bool is_client_metadata_version(int16_t version) {
  return version >= kMinClientMetadataVersion && version <= kMaxClientMetadataVersion;
}

void write_header_v1(Writer& w, const RequestHeader& header) {
  w.integer(header.api_key);
  w.integer(header.api_version);
  w.integer(header.correlation_id);
  w.nullable_string(header.client_id);
}

void encode(Writer& w, int16_t version, const MetadataRequest& r) {
  if (r.topics) {
    w.count(r.topics->size());
    for (const std::string& name : *r.topics)
      w.string(name);
  } else {
    w.integer<int32_t>(-1);  // null: every topic
  }
  if (version >= 4)
    w.boolean(r.allow_auto_topic_creation);
  if (version >= 8) {
    w.boolean(false);  // include_cluster_authorized_operations
    w.boolean(false);  // include_topic_authorized_operations
  }
}

bool decode_int32_array(Reader& r, std::vector<int32_t>& out) {
  uint32_t n = 0;
  if (!r.count(n, sizeof(int32_t)))
    return false;
  out.resize(n);  // n is capped by the bytes that remain
  for (int32_t& v : out)
    r.integer(v);
  return r.ok();
}

bool decode(Reader& r, int16_t version, MetadataBroker& out) {
  r.integer(out.node_id);
  r.string(out.host);
  r.integer(out.port);
  if (version >= 1)
    r.nullable_string(out.rack);
  return r.ok();
}

bool decode(Reader& r, int16_t version, MetadataPartition& out) {
  r.integer(out.error_code);
  r.integer(out.index);
  r.integer(out.leader_id);
  if (version >= 7)
    r.integer(out.leader_epoch);
  decode_int32_array(r, out.replica_nodes);
  decode_int32_array(r, out.isr_nodes);
  if (version >= 5)
    decode_int32_array(r, out.offline_replicas);
  return r.ok();
}

bool decode(Reader& r, int16_t version, MetadataTopic& out) {
  r.integer(out.error_code);
  r.string(out.name);
  if (version >= 1)
    r.boolean(out.is_internal);
  uint32_t partitions = 0;
  if (!r.count(partitions, kMinMetadataPartition))
    return false;
  for (uint32_t p = 0; p < partitions && r.ok(); ++p)
    decode(r, version, out.partitions.emplace_back());
  int32_t topic_authorized_operations = 0;
  if (version >= 8)
    r.integer(topic_authorized_operations);
  return r.ok();
}

bool decode(Reader& r, int16_t version, MetadataResponse& out) {
  if (version >= 3)
    r.integer(out.throttle_time_ms);
  uint32_t brokers = 0;
  if (!r.count(brokers, kMinMetadataBroker))
    return false;
  for (uint32_t b = 0; b < brokers && r.ok(); ++b)
    decode(r, version, out.brokers.emplace_back());
  if (version >= 2)
    r.nullable_string(out.cluster_id);
  if (version >= 1)
    r.integer(out.controller_id);
  uint32_t topics = 0;
  if (!r.count(topics, kMinMetadataTopic))
    return false;
  for (uint32_t t = 0; t < topics && r.ok(); ++t)
    decode(r, version, out.topics.emplace_back());
  int32_t cluster_authorized_operations = 0;
  if (version >= 8)
    r.integer(cluster_authorized_operations);
  return r.done();
}

}  // namespace

std::span<const ApiRange> supported_apis() {
  return kSupported;
}

std::optional<ApiRange> supported(int16_t api_key) {
  for (const ApiRange& range : kSupported)
    if (range.key == api_key)
      return range;
  return std::nullopt;
}

std::optional<RequestHeader> decode_header(std::span<const char> frame, size_t& body_offset) {
  Reader r(frame);
  RequestHeader h;
  r.integer(h.api_key);
  r.integer(h.api_version);
  r.integer(h.correlation_id);
  r.nullable_string(h.client_id);
  if (r.ok() && is_flexible_request(h.api_key, h.api_version))
    r.skip_tagged_fields();
  if (!r.ok())
    return std::nullopt;
  body_offset = r.position();
  return h;
}

DecodeError decode_request(const RequestHeader& header, std::span<const char> body, Request& out) {
  const auto range = supported(header.api_key);
  if (!range)
    return DecodeError::unsupported_api;
  const int16_t v = header.api_version;
  if (v < range->min_version || v > range->max_version)
    return DecodeError::unsupported_version;
  switch (static_cast<ApiKey>(header.api_key)) {
    case ApiKey::api_versions:
      return decode_as<ApiVersionsRequest>(body, v, out);
    case ApiKey::metadata:
      return decode_as<MetadataRequest>(body, v, out);
    case ApiKey::produce:
      return decode_as<ProduceRequest>(body, v, out);
    case ApiKey::fetch:
      return decode_as<FetchRequest>(body, v, out);
    case ApiKey::list_offsets:
      return decode_as<ListOffsetsRequest>(body, v, out);
    case ApiKey::create_topics:
      return decode_as<CreateTopicsRequest>(body, v, out);
  }
  return DecodeError::unsupported_api;
}

std::string encode_response(const RequestHeader& header, const Response& response) {
  assert(key_of(key_of_response(response)) == header.api_key);
  return frame(header.correlation_id, [&](Writer& w) {
    std::visit([&](const auto& body) { encode(w, header.api_version, body); }, response);
  });
}

std::string encode_api_versions_unsupported(int32_t correlation_id) {
  ApiVersionsResponse body;
  body.error_code = kUnsupportedVersion;
  body.api_keys.assign(kSupported.begin(), kSupported.end());
  return frame(correlation_id, [&](Writer& w) { encode(w, 0, body); });
}

std::string encode_request(const RequestHeader& header, const MetadataRequest& request) {
  assert(header.api_key == key_of(ApiKey::metadata));
  assert(is_client_metadata_version(header.api_version));
  return sized_frame([&](Writer& w) {
    write_header_v1(w, header);
    encode(w, header.api_version, request);
  });
}

std::optional<int32_t> decode_response_correlation(std::span<const char> frame_body) {
  Reader r(frame_body);
  int32_t correlation_id = 0;
  if (!r.integer(correlation_id))
    return std::nullopt;
  return correlation_id;
}

bool decode_metadata_response(int16_t version, std::span<const char> body_after_correlation_id,
                              MetadataResponse& out) {
  if (!is_client_metadata_version(version))
    return false;
  out = MetadataResponse{};
  Reader r(body_after_correlation_id);
  return decode(r, version, out);
}

}  // namespace faultline::cluster::kafka
