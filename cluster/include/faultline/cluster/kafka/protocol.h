// The Kafka wire protocol, as far as a broker needs it to serve real Kafka clients (librdkafka,
// kcat): request headers, the bodies of ApiVersions, Metadata, Produce, Fetch, ListOffsets and
// CreateTopics
// requests, and their responses, for the versions listed by supported_apis().
//
// Pure functions on byte spans: no sockets, no Asio, no exceptions. Decoders never read outside
// their input, never size an allocation by a length field alone (array counts are capped by the
// bytes that remain) and report malformed input as a value. Field presence per version follows
// Apache Kafka's message definitions (clients/src/main/resources/common/message/*.json).
//
// A frame on the wire is an i32 size followed by that many bytes; decode_header takes the bytes
// after the size, encode_response returns a whole frame including its size.
//
// The client side is served for Metadata only (encode_request, decode_metadata_response), so the
// harness can follow leadership of any Kafka-API cluster: Apache Kafka, Redpanda or our own.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace faultline::cluster::kafka {

enum class ApiKey : int16_t {
  produce = 0,
  fetch = 1,
  list_offsets = 2,
  metadata = 3,
  api_versions = 18,
  create_topics = 19
};

struct ApiRange {
  int16_t key = 0;
  int16_t min_version = 0;
  int16_t max_version = 0;
  friend bool operator==(const ApiRange&, const ApiRange&) = default;
};

// What this listener serves, advertised in ApiVersions: Produce 3-7, Fetch 4-11, ListOffsets 1-4,
// Metadata 1-8, ApiVersions 0-3. None of these is a flexible version except ApiVersions 3.
std::span<const ApiRange> supported_apis();
// The version range of `api_key`, nullopt if it is not served.
std::optional<ApiRange> supported(int16_t api_key);

// ---- requests ----------------------------------------------------------------------------------

struct RequestHeader {
  int16_t api_key = 0;
  int16_t api_version = 0;
  int32_t correlation_id = 0;
  std::optional<std::string> client_id;
};

// Parses the request header at the front of a frame body: header v1 (api_key, api_version,
// correlation_id, nullable i16 client_id), plus tagged fields (header v2) for ApiVersions >= 3,
// the only flexible request among those served. Other APIs' unsupported versions are parsed as v1:
// their bodies are never decoded. Sets `body_offset` to the first byte after the header; nullopt
// when the header itself is cut short or malformed.
std::optional<RequestHeader> decode_header(std::span<const char> frame, size_t& body_offset);

struct ApiVersionsRequest {
  // v3+; empty for older versions.
  std::string client_software_name;
  std::string client_software_version;
};

struct MetadataRequest {
  std::optional<std::vector<std::string>> topics;  // nullopt: all topics (null array)
  bool allow_auto_topic_creation = true;           // v4+
  friend bool operator==(const MetadataRequest&, const MetadataRequest&) = default;
};

struct ProducePartition {
  int32_t index = 0;
  std::string records;  // raw Kafka record batches; null bytes read as empty
};
struct ProduceTopic {
  std::string name;
  std::vector<ProducePartition> partitions;
};
struct ProduceRequest {
  std::optional<std::string> transactional_id;
  int16_t acks = -1;
  int32_t timeout_ms = 30000;
  std::vector<ProduceTopic> topics;
};

struct FetchPartition {
  int32_t index = 0;
  int32_t current_leader_epoch = -1;  // v9+
  int64_t fetch_offset = 0;
  int64_t log_start_offset = -1;  // v5+
  int32_t partition_max_bytes = 1 << 20;
};
struct FetchTopic {
  std::string name;
  std::vector<FetchPartition> partitions;
};
struct FetchRequest {
  int32_t replica_id = -1;
  int32_t max_wait_ms = 0;
  int32_t min_bytes = 0;
  int32_t max_bytes = 0x7fffffff;  // v3+
  int8_t isolation_level = 0;      // v4+
  int32_t session_id = 0;          // v7+
  int32_t session_epoch = -1;      // v7+
  std::vector<FetchTopic> topics;
  // forgotten_topics_data (v7+) and rack_id (v11) are parsed and dropped: fetch sessions are not
  // kept, every fetch is a full one.
};

struct ListOffsetsPartition {
  int32_t index = 0;
  int32_t current_leader_epoch = -1;  // v4+
  int64_t timestamp = -1;             // -1 latest, -2 earliest
};
struct ListOffsetsTopic {
  std::string name;
  std::vector<ListOffsetsPartition> partitions;
};
struct ListOffsetsRequest {
  int32_t replica_id = -1;
  int8_t isolation_level = 0;  // v2+
  std::vector<ListOffsetsTopic> topics;
};

// CreateTopics v0-4. Explicit assignments and configs are read so the answer can refuse them
// (the cluster places replicas itself and takes its settings from the controller).
struct CreatableTopic {
  std::string name;
  int32_t num_partitions = -1;      // -1: the broker's default (v4+)
  int16_t replication_factor = -1;  // -1: the broker's default (v4+)
  uint32_t assignments = 0;         // explicit replica assignments given
  uint32_t configs = 0;             // config entries given
};
struct CreateTopicsRequest {
  std::vector<CreatableTopic> topics;
  int32_t timeout_ms = 60000;
  bool validate_only = false;  // v1+
};
using Request = std::variant<ApiVersionsRequest, MetadataRequest, ProduceRequest, FetchRequest,
                             ListOffsetsRequest, CreateTopicsRequest>;

enum class DecodeError : uint8_t { none, unsupported_api, unsupported_version, malformed };

// Decodes the body of a request whose header was decoded (body = frame after body_offset).
// Trailing bytes after a complete body are malformed. On error `out` is unspecified.
DecodeError decode_request(const RequestHeader& header, std::span<const char> body, Request& out);

// ---- responses ---------------------------------------------------------------------------------
// Error codes are Kafka's int16 codes (faultline/cluster/errc.h has the same numeric values).

struct ApiVersionsResponse {
  int16_t error_code = 0;
  std::vector<ApiRange> api_keys;
  int32_t throttle_time_ms = 0;  // v1+
};

struct MetadataBroker {
  int32_t node_id = -1;
  std::string host;
  int32_t port = 0;
  std::optional<std::string> rack;  // v1+
  friend bool operator==(const MetadataBroker&, const MetadataBroker&) = default;
};
struct MetadataPartition {
  int16_t error_code = 0;
  int32_t index = 0;
  int32_t leader_id = -1;
  int32_t leader_epoch = -1;  // v7+
  std::vector<int32_t> replica_nodes;
  std::vector<int32_t> isr_nodes;
  std::vector<int32_t> offline_replicas;  // v5+
  friend bool operator==(const MetadataPartition&, const MetadataPartition&) = default;
};
struct MetadataTopic {
  int16_t error_code = 0;
  std::string name;
  bool is_internal = false;  // v1+
  std::vector<MetadataPartition> partitions;
  friend bool operator==(const MetadataTopic&, const MetadataTopic&) = default;
};
struct MetadataResponse {
  int32_t throttle_time_ms = 0;  // v3+
  std::vector<MetadataBroker> brokers;
  std::optional<std::string> cluster_id;  // v2+
  int32_t controller_id = -1;             // v1+
  std::vector<MetadataTopic> topics;
  // v8+ topic and cluster authorized operations are always sent as "not requested"
  // (-2147483648): there is no ACL model here.
  friend bool operator==(const MetadataResponse&, const MetadataResponse&) = default;
};

struct ProducePartitionResponse {
  int32_t index = 0;
  int16_t error_code = 0;
  int64_t base_offset = -1;
  int64_t log_append_time_ms = -1;  // v2+; -1: the records keep their CreateTime
  int64_t log_start_offset = -1;    // v5+
};
struct ProduceTopicResponse {
  std::string name;
  std::vector<ProducePartitionResponse> partitions;
};
struct ProduceResponse {
  std::vector<ProduceTopicResponse> topics;
  int32_t throttle_time_ms = 0;  // v1+, at the end
};

struct FetchPartitionResponse {
  int32_t index = 0;
  int16_t error_code = 0;
  int64_t high_watermark = -1;
  int64_t last_stable_offset = -1;  // v4+
  int64_t log_start_offset = -1;    // v5+
  // v4+ aborted_transactions: always an empty array (no transactions).
  int32_t preferred_read_replica = -1;  // v11+
  std::string records;                  // Kafka record batches
};
struct FetchTopicResponse {
  std::string name;
  std::vector<FetchPartitionResponse> partitions;
};
struct FetchResponse {
  int32_t throttle_time_ms = 0;  // v1+
  int16_t error_code = 0;        // v7+
  int32_t session_id = 0;        // v7+
  std::vector<FetchTopicResponse> topics;
};

struct ListOffsetsPartitionResponse {
  int32_t index = 0;
  int16_t error_code = 0;
  int64_t timestamp = -1;
  int64_t offset = -1;
  int32_t leader_epoch = -1;  // v4+
};
struct ListOffsetsTopicResponse {
  std::string name;
  std::vector<ListOffsetsPartitionResponse> partitions;
};
struct ListOffsetsResponse {
  int32_t throttle_time_ms = 0;  // v2+
  std::vector<ListOffsetsTopicResponse> topics;
};

struct CreateTopicResult {
  std::string name;
  int16_t error_code = 0;
  std::optional<std::string> error_message;  // v1+
};
struct CreateTopicsResponse {
  int32_t throttle_time_ms = 0;  // v2+
  std::vector<CreateTopicResult> topics;
};
using Response = std::variant<ApiVersionsResponse, MetadataResponse, ProduceResponse, FetchResponse,
                              ListOffsetsResponse, CreateTopicsResponse>;

// The whole response frame: i32 size, response header v0 (the correlation id only; also for
// ApiVersions v3, whose response header stays v0 although its body is flexible), then the body
// encoded for header.api_version. The body's layout follows the alternative `response` holds,
// which must be the one of header.api_key (a mismatch is a programming error; asserted).
std::string encode_response(const RequestHeader& header, const Response& response);

// The answer to an ApiVersions request of a version we don't serve: as Kafka does, a v0 body with
// UNSUPPORTED_VERSION (35) and the full supported list, so the client retries with a version
// found there.
std::string encode_api_versions_unsupported(int32_t correlation_id);

// ---- client side (Metadata only) ---------------------------------------------------------------

// The whole request frame: i32 size, request header v1 (api_key, api_version, correlation_id,
// client_id), then the Metadata body for header.api_version, which must be 1-8 (v0 reads an empty
// topic list as "all", v9+ is flexible); header.api_key must be Metadata. Both are asserted.
// v8's include_*_authorized_operations are sent false: only leadership is wanted.
std::string encode_request(const RequestHeader& header, const MetadataRequest& request);

// The correlation id at the front of a response frame's body (the bytes after its i32 size);
// nullopt when fewer than 4 bytes are there.
std::optional<int32_t> decode_response_correlation(std::span<const char> frame_body);

// Decodes a Metadata response body of `version` 1-8: the bytes after the correlation id of
// response header v0. v8's authorized operations are read and dropped. False on a version outside
// 1-8, on malformed or truncated input and on trailing bytes; `out` is then unspecified.
bool decode_metadata_response(int16_t version, std::span<const char> body_after_correlation_id,
                              MetadataResponse& out);

}  // namespace faultline::cluster::kafka
