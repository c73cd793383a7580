// The Kafka wire protocol codec (kafka/protocol.h): requests as librdkafka and kcat send them,
// responses as they parse them. Frames are written field by field from Apache Kafka's message
// definitions here, independently of the codec's own writer.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "faultline/cluster/kafka/protocol.h"

namespace faultline::cluster::kafka {
namespace {

// A hand-written frame: big-endian fixed-width fields, Kafka strings and varints.
struct Bytes {
  std::string s;
  Bytes& be(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i)
      s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
    return *this;
  }
  Bytes& i8(int8_t v) { return be(static_cast<uint8_t>(v), 1); }
  Bytes& i16(int16_t v) { return be(static_cast<uint16_t>(v), 2); }
  Bytes& i32(int32_t v) { return be(static_cast<uint32_t>(v), 4); }
  Bytes& i64(int64_t v) { return be(static_cast<uint64_t>(v), 8); }
  Bytes& uvarint(uint32_t v) {
    for (; v >= 0x80; v >>= 7)
      s.push_back(static_cast<char>((v & 0x7F) | 0x80));
    s.push_back(static_cast<char>(v));
    return *this;
  }
  Bytes& str(std::string_view v) {
    i16(static_cast<int16_t>(v.size()));
    s += v;
    return *this;
  }
  Bytes& null_str() { return i16(-1); }
  Bytes& compact_str(std::string_view v) {
    uvarint(static_cast<uint32_t>(v.size() + 1));
    s += v;
    return *this;
  }
  Bytes& bytes(std::string_view v) {
    i32(static_cast<int32_t>(v.size()));
    s += v;
    return *this;
  }
  Bytes& raw(std::string_view v) {
    s += v;
    return *this;
  }
  // Request header v1: api_key, api_version, correlation_id, client_id.
  Bytes& header(ApiKey key, int16_t version, int32_t correlation_id = 7) {
    return i16(static_cast<int16_t>(key)).i16(version).i32(correlation_id).str("rdkafka");
  }
  // A response frame: size prefix around what is written so far.
  std::string framed() const {
    Bytes f;
    f.i32(static_cast<int32_t>(s.size()));
    return f.s + s;
  }
};

DecodeError decode_frame(const std::string& frame, Request& out) {
  size_t body_offset = 0;
  const auto header = decode_header(frame, body_offset);
  if (!header)
    return DecodeError::malformed;
  return decode_request(*header, std::span<const char>(frame).subspan(body_offset), out);
}

template <typename T>
T decoded(const std::string& frame) {
  Request out;
  EXPECT_EQ(decode_frame(frame, out), DecodeError::none);
  EXPECT_TRUE(std::holds_alternative<T>(out));
  return std::holds_alternative<T>(out) ? std::get<T>(out) : T{};
}

RequestHeader header_of(ApiKey key, int16_t version, int32_t correlation_id = 7) {
  return RequestHeader{static_cast<int16_t>(key), version, correlation_id, "rdkafka"};
}

// ---- hand-built request frames -----------------------------------------------------------------

std::string api_versions_v0() {
  return Bytes().header(ApiKey::api_versions, 0).s;
}
std::string api_versions_v3() {
  return Bytes()
      .header(ApiKey::api_versions, 3)
      .uvarint(0)  // header tagged fields
      .compact_str("librdkafka")
      .compact_str("2.0.2")
      .uvarint(0)
      .s;
}
std::string metadata_v1_all() {
  return Bytes().header(ApiKey::metadata, 1).i32(-1).s;
}
std::string metadata_v1_two() {
  return Bytes().header(ApiKey::metadata, 1).i32(2).str("a").str("orders").s;
}
std::string metadata_v8() {
  return Bytes().header(ApiKey::metadata, 8).i32(1).str("t").i8(0).i8(1).i8(0).s;
}
std::string produce(int16_t version) {
  Bytes b;
  b.header(ApiKey::produce, version).null_str().i16(-1).i32(5000);
  b.i32(1).str("t").i32(2).i32(0).bytes("batch").i32(1).i32(-1);
  return b.s;
}
std::string fetch_v4() {
  Bytes b;
  b.header(ApiKey::fetch, 4).i32(-1).i32(500).i32(1).i32(52428800).i8(1);
  b.i32(1).str("t").i32(1).i32(0).i64(42).i32(1048576);
  return b.s;
}
std::string fetch_v11() {
  Bytes b;
  b.header(ApiKey::fetch, 11).i32(-1).i32(500).i32(1).i32(52428800).i8(0).i32(77).i32(3);
  b.i32(1).str("t").i32(2);
  b.i32(0).i32(5).i64(42).i64(-1).i32(1048576);
  b.i32(3).i32(6).i64(9).i64(2).i32(4096);
  b.i32(1).str("gone").i32(2).i32(1).i32(2);  // forgotten_topics_data
  b.str("rack-1");
  return b.s;
}
std::string list_offsets_v1() {
  return Bytes().header(ApiKey::list_offsets, 1).i32(-1).i32(1).str("t").i32(1).i32(0).i64(-2).s;
}
std::string list_offsets_v4() {
  Bytes b;
  b.header(ApiKey::list_offsets, 4).i32(-1).i8(1);
  b.i32(1).str("t").i32(2).i32(0).i32(5).i64(-1).i32(1).i32(-1).i64(1234);
  return b.s;
}

std::vector<std::string> valid_frames() {
  return {api_versions_v0(), api_versions_v3(), metadata_v1_all(), metadata_v1_two(),
          metadata_v8(),     produce(3),        produce(7),        fetch_v4(),
          fetch_v11(),       list_offsets_v1(), list_offsets_v4()};
}

// ---- supported versions and headers ------------------------------------------------------------

TEST(KafkaSupportedApis, AdvertisesTheServedRanges) {
  const std::vector<ApiRange> expected{{0, 3, 7}, {1, 4, 11}, {2, 1, 4},
                                       {3, 1, 8}, {18, 0, 3}, {19, 0, 4}};
  const auto apis = supported_apis();
  EXPECT_EQ(std::vector<ApiRange>(apis.begin(), apis.end()), expected);
  EXPECT_EQ(supported(1), (ApiRange{1, 4, 11}));
  EXPECT_EQ(supported(9), std::nullopt) << "OffsetFetch is not served";
  EXPECT_EQ(supported(-1), std::nullopt);
}

TEST(KafkaDecodeHeader, ReadsHeaderV1) {
  const std::string frame = Bytes().header(ApiKey::fetch, 11, 0x01020304).raw("body").s;
  size_t body_offset = 0;
  const auto h = decode_header(frame, body_offset);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->api_key, 1);
  EXPECT_EQ(h->api_version, 11);
  EXPECT_EQ(h->correlation_id, 0x01020304);
  EXPECT_EQ(h->client_id, "rdkafka");
  EXPECT_EQ(body_offset, frame.size() - 4);
}

TEST(KafkaDecodeHeader, ReadsANullClientId) {
  const std::string frame = Bytes().i16(3).i16(1).i32(9).null_str().s;
  size_t body_offset = 0;
  const auto h = decode_header(frame, body_offset);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->client_id, std::nullopt);
  EXPECT_EQ(body_offset, frame.size());
}

TEST(KafkaDecodeHeader, ReadsTaggedFieldsOfFlexibleApiVersions) {
  // One tagged field (tag 5, two bytes) that we skip.
  const std::string frame =
      Bytes().header(ApiKey::api_versions, 3).uvarint(1).uvarint(5).uvarint(2).raw("xy").raw("B").s;
  size_t body_offset = 0;
  ASSERT_TRUE(decode_header(frame, body_offset));
  EXPECT_EQ(body_offset, frame.size() - 1);
  // ApiVersions v7 (not served) is flexible too: its header still parses, to answer it.
  const std::string v7 = Bytes().header(ApiKey::api_versions, 7).uvarint(0).s;
  ASSERT_TRUE(decode_header(v7, body_offset));
  EXPECT_EQ(body_offset, v7.size());
  // Metadata v9 is flexible but not served: header v1 is enough to refuse it.
  const std::string meta9 = Bytes().header(ApiKey::metadata, 9).uvarint(0).s;
  ASSERT_TRUE(decode_header(meta9, body_offset));
  EXPECT_EQ(body_offset, meta9.size() - 1);
}

TEST(KafkaDecodeHeader, RefusesMalformedHeaders) {
  size_t body_offset = 0;
  EXPECT_FALSE(decode_header({}, body_offset));
  EXPECT_FALSE(decode_header(Bytes().i16(3).i16(1).i32(9).s, body_offset)) << "no client_id";
  EXPECT_FALSE(decode_header(Bytes().i16(3).i16(1).i32(9).i16(-2).s, body_offset));
  EXPECT_FALSE(decode_header(Bytes().i16(3).i16(1).i32(9).i16(5).raw("abc").s, body_offset));
  EXPECT_FALSE(
      decode_header(Bytes().header(ApiKey::api_versions, 3).uvarint(1).uvarint(0).s, body_offset))
      << "tagged field cut short";
  EXPECT_FALSE(
      decode_header(Bytes().header(ApiKey::api_versions, 3).uvarint(100000).s, body_offset))
      << "tagged field count beyond the frame";
}

// ---- request bodies ----------------------------------------------------------------------------

TEST(KafkaDecodeRequest, ApiVersions) {
  const auto v0 = decoded<ApiVersionsRequest>(api_versions_v0());
  EXPECT_EQ(v0.client_software_name, "");
  const auto v3 = decoded<ApiVersionsRequest>(api_versions_v3());
  EXPECT_EQ(v3.client_software_name, "librdkafka");
  EXPECT_EQ(v3.client_software_version, "2.0.2");
}

TEST(KafkaDecodeRequest, Metadata) {
  const auto all = decoded<MetadataRequest>(metadata_v1_all());
  EXPECT_EQ(all.topics, std::nullopt);
  EXPECT_TRUE(all.allow_auto_topic_creation);
  const auto two = decoded<MetadataRequest>(metadata_v1_two());
  EXPECT_EQ(two.topics, (std::vector<std::string>{"a", "orders"}));
  const auto v8 = decoded<MetadataRequest>(metadata_v8());
  EXPECT_EQ(v8.topics, std::vector<std::string>{"t"});
  EXPECT_FALSE(v8.allow_auto_topic_creation);
  const auto none = decoded<MetadataRequest>(Bytes().header(ApiKey::metadata, 4).i32(0).i8(1).s);
  ASSERT_TRUE(none.topics);
  EXPECT_TRUE(none.topics->empty()) << "an empty array asks for no topics (v1+)";
}

TEST(KafkaDecodeRequest, Produce) {
  for (const int16_t version : {3, 7}) {
    const auto r = decoded<ProduceRequest>(produce(version));
    EXPECT_EQ(r.transactional_id, std::nullopt);
    EXPECT_EQ(r.acks, -1);
    EXPECT_EQ(r.timeout_ms, 5000);
    ASSERT_EQ(r.topics.size(), 1u);
    EXPECT_EQ(r.topics[0].name, "t");
    ASSERT_EQ(r.topics[0].partitions.size(), 2u);
    EXPECT_EQ(r.topics[0].partitions[0].index, 0);
    EXPECT_EQ(r.topics[0].partitions[0].records, "batch");
    EXPECT_EQ(r.topics[0].partitions[1].index, 1);
    EXPECT_EQ(r.topics[0].partitions[1].records, "") << "null records";
  }
  const auto txn =
      decoded<ProduceRequest>(Bytes().header(ApiKey::produce, 5).str("tx").i16(1).i32(10).i32(0).s);
  EXPECT_EQ(txn.transactional_id, "tx");
  EXPECT_EQ(txn.acks, 1);
  EXPECT_TRUE(txn.topics.empty());
}

TEST(KafkaDecodeRequest, FetchV4) {
  const auto r = decoded<FetchRequest>(fetch_v4());
  EXPECT_EQ(r.replica_id, -1);
  EXPECT_EQ(r.max_wait_ms, 500);
  EXPECT_EQ(r.min_bytes, 1);
  EXPECT_EQ(r.max_bytes, 52428800);
  EXPECT_EQ(r.isolation_level, 1);
  EXPECT_EQ(r.session_id, 0);
  EXPECT_EQ(r.session_epoch, -1);
  ASSERT_EQ(r.topics.size(), 1u);
  ASSERT_EQ(r.topics[0].partitions.size(), 1u);
  const FetchPartition& p = r.topics[0].partitions[0];
  EXPECT_EQ(p.index, 0);
  EXPECT_EQ(p.current_leader_epoch, -1);
  EXPECT_EQ(p.fetch_offset, 42);
  EXPECT_EQ(p.log_start_offset, -1);
  EXPECT_EQ(p.partition_max_bytes, 1048576);
}

TEST(KafkaDecodeRequest, FetchV11) {
  const auto r = decoded<FetchRequest>(fetch_v11());
  EXPECT_EQ(r.isolation_level, 0);
  EXPECT_EQ(r.session_id, 77);
  EXPECT_EQ(r.session_epoch, 3);
  ASSERT_EQ(r.topics.size(), 1u);
  EXPECT_EQ(r.topics[0].name, "t");
  ASSERT_EQ(r.topics[0].partitions.size(), 2u);
  const FetchPartition& a = r.topics[0].partitions[0];
  EXPECT_EQ(a.index, 0);
  EXPECT_EQ(a.current_leader_epoch, 5);
  EXPECT_EQ(a.fetch_offset, 42);
  EXPECT_EQ(a.log_start_offset, -1);
  EXPECT_EQ(a.partition_max_bytes, 1048576);
  const FetchPartition& b = r.topics[0].partitions[1];
  EXPECT_EQ(b.index, 3);
  EXPECT_EQ(b.current_leader_epoch, 6);
  EXPECT_EQ(b.fetch_offset, 9);
  EXPECT_EQ(b.log_start_offset, 2);
  EXPECT_EQ(b.partition_max_bytes, 4096);
}

TEST(KafkaDecodeRequest, ListOffsets) {
  const auto v1 = decoded<ListOffsetsRequest>(list_offsets_v1());
  EXPECT_EQ(v1.replica_id, -1);
  EXPECT_EQ(v1.isolation_level, 0);
  ASSERT_EQ(v1.topics.size(), 1u);
  ASSERT_EQ(v1.topics[0].partitions.size(), 1u);
  EXPECT_EQ(v1.topics[0].partitions[0].timestamp, -2);
  EXPECT_EQ(v1.topics[0].partitions[0].current_leader_epoch, -1);

  const auto v4 = decoded<ListOffsetsRequest>(list_offsets_v4());
  EXPECT_EQ(v4.isolation_level, 1);
  ASSERT_EQ(v4.topics.size(), 1u);
  ASSERT_EQ(v4.topics[0].partitions.size(), 2u);
  EXPECT_EQ(v4.topics[0].partitions[0].index, 0);
  EXPECT_EQ(v4.topics[0].partitions[0].current_leader_epoch, 5);
  EXPECT_EQ(v4.topics[0].partitions[0].timestamp, -1);
  EXPECT_EQ(v4.topics[0].partitions[1].index, 1);
  EXPECT_EQ(v4.topics[0].partitions[1].current_leader_epoch, -1);
  EXPECT_EQ(v4.topics[0].partitions[1].timestamp, 1234);
}

TEST(KafkaDecodeRequest, RefusesUnservedApisAndVersions) {
  Request out;
  EXPECT_EQ(decode_frame(Bytes().i16(9).i16(1).i32(1).null_str().s, out),
            DecodeError::unsupported_api);
  EXPECT_EQ(decode_frame(Bytes().header(ApiKey::produce, 2).s, out),
            DecodeError::unsupported_version);
  EXPECT_EQ(decode_frame(Bytes().header(ApiKey::produce, 8).s, out),
            DecodeError::unsupported_version);
  EXPECT_EQ(decode_frame(Bytes().header(ApiKey::fetch, 3).s, out),
            DecodeError::unsupported_version);
  EXPECT_EQ(decode_frame(Bytes().header(ApiKey::fetch, 12).s, out),
            DecodeError::unsupported_version);
  EXPECT_EQ(decode_frame(Bytes().header(ApiKey::metadata, 0).s, out),
            DecodeError::unsupported_version);
  EXPECT_EQ(decode_frame(Bytes().header(ApiKey::list_offsets, 5).s, out),
            DecodeError::unsupported_version);
  EXPECT_EQ(decode_frame(Bytes().header(ApiKey::api_versions, 4).uvarint(0).s, out),
            DecodeError::unsupported_version);
  EXPECT_EQ(decode_frame(Bytes().header(ApiKey::api_versions, -1).s, out),
            DecodeError::unsupported_version);
}

TEST(KafkaDecodeRequest, EveryTruncationOfEveryValidFrameIsMalformed) {
  for (const std::string& frame : valid_frames()) {
    Request out;
    ASSERT_EQ(decode_frame(frame, out), DecodeError::none);
    for (size_t n = 0; n < frame.size(); ++n)
      EXPECT_EQ(decode_frame(frame.substr(0, n), out), DecodeError::malformed)
          << "api " << (frame.size() > 1 ? int(frame[1]) : -1) << " cut at " << n;
  }
}

TEST(KafkaDecodeRequest, TrailingBytesAreMalformed) {
  for (const std::string& frame : valid_frames()) {
    Request out;
    EXPECT_EQ(decode_frame(frame + "x", out), DecodeError::malformed);
  }
}

TEST(KafkaDecodeRequest, RefusesLengthsAndCountsBeyondTheFrame) {
  // Counts that would allocate gigabytes are refused by the bytes left, not attempted.
  const auto produce_v3 = [] {
    Bytes b;
    b.header(ApiKey::produce, 3).null_str().i16(1).i32(0);
    return b;
  };
  const auto api_versions_v3 = [] {
    Bytes b;
    b.header(ApiKey::api_versions, 3).uvarint(0);
    return b;
  };
  const auto fetch_v4_prefix = [] {
    Bytes b;
    b.header(ApiKey::fetch, 4).i32(-1).i32(0).i32(0).i32(0).i8(0);
    return b;
  };
  const std::vector<std::pair<std::string_view, std::string>> cases{
      {"huge topic count", Bytes().header(ApiKey::metadata, 1).i32(0x7fffffff).str("a").s},
      {"negative topic count", Bytes().header(ApiKey::metadata, 1).i32(-2).s},
      {"huge produce topic count", produce_v3().i32(1 << 30).s},
      {"records beyond the frame",
       produce_v3().i32(1).str("t").i32(1).i32(0).i32(0x7fffffff).raw("abc").s},
      {"records length -2", produce_v3().i32(1).str("t").i32(1).i32(0).i32(-2).s},
      {"null topic name", produce_v3().i32(1).null_str().i32(0).s},
      {"huge fetch partition count", fetch_v4_prefix().i32(1).str("t").i32(1000000).s},
      {"null compact string", api_versions_v3().uvarint(0).compact_str("v").uvarint(0).s},
      {"compact string beyond the frame", api_versions_v3().uvarint(0xFFFFFFFF).s},
      {"varint beyond 32 bits", api_versions_v3().raw("\xff\xff\xff\xff\x7f").s},
  };
  for (const auto& [name, frame] : cases) {
    Request out;
    EXPECT_EQ(decode_frame(frame, out), DecodeError::malformed) << name;
  }
}

// ---- every served version ---------------------------------------------------------------------
// The same requests written once per version, each field gated by the first version that has it
// in Kafka's message definitions ("versions": "N+"), so every version boundary is exercised.

TEST(KafkaDecodeRequestEveryVersion, Fetch) {
  for (int16_t v = 4; v <= 11; ++v) {
    Bytes b;
    b.header(ApiKey::fetch, v).i32(-1).i32(500).i32(1);
    b.i32(1000);  // max_bytes (3+)
    b.i8(1);      // isolation_level (4+)
    if (v >= 7)
      b.i32(77).i32(3);  // session_id, session_epoch
    b.i32(1).str("t").i32(1).i32(4);
    if (v >= 9)
      b.i32(6);  // current_leader_epoch
    b.i64(42);
    if (v >= 5)
      b.i64(2);  // log_start_offset
    b.i32(4096);
    if (v >= 7)
      b.i32(1).str("gone").i32(1).i32(9);  // forgotten_topics_data
    if (v >= 11)
      b.str("rack");
    const auto r = decoded<FetchRequest>(b.s);
    EXPECT_EQ(r.max_bytes, 1000) << v;
    EXPECT_EQ(r.isolation_level, 1) << v;
    EXPECT_EQ(r.session_id, v >= 7 ? 77 : 0) << v;
    EXPECT_EQ(r.session_epoch, v >= 7 ? 3 : -1) << v;
    ASSERT_EQ(r.topics.size(), 1u) << v;
    ASSERT_EQ(r.topics[0].partitions.size(), 1u) << v;
    const FetchPartition& p = r.topics[0].partitions[0];
    EXPECT_EQ(p.index, 4) << v;
    EXPECT_EQ(p.current_leader_epoch, v >= 9 ? 6 : -1) << v;
    EXPECT_EQ(p.fetch_offset, 42) << v;
    EXPECT_EQ(p.log_start_offset, v >= 5 ? 2 : -1) << v;
    EXPECT_EQ(p.partition_max_bytes, 4096) << v;
  }
}

TEST(KafkaDecodeRequestEveryVersion, Metadata) {
  for (int16_t v = 1; v <= 8; ++v) {
    Bytes b;
    b.header(ApiKey::metadata, v).i32(1).str("t");
    if (v >= 4)
      b.i8(0);  // allow_auto_topic_creation
    if (v >= 8)
      b.i8(1).i8(1);  // include_cluster/topic_authorized_operations
    const auto r = decoded<MetadataRequest>(b.s);
    EXPECT_EQ(r.topics, std::vector<std::string>{"t"}) << v;
    EXPECT_EQ(r.allow_auto_topic_creation, v < 4) << v;
  }
}

TEST(KafkaDecodeRequestEveryVersion, ListOffsets) {
  for (int16_t v = 1; v <= 4; ++v) {
    Bytes b;
    b.header(ApiKey::list_offsets, v).i32(-1);
    if (v >= 2)
      b.i8(1);  // isolation_level
    b.i32(1).str("t").i32(1).i32(3);
    if (v >= 4)
      b.i32(8);  // current_leader_epoch
    b.i64(-2);
    const auto r = decoded<ListOffsetsRequest>(b.s);
    EXPECT_EQ(r.isolation_level, v >= 2 ? 1 : 0) << v;
    ASSERT_EQ(r.topics.size(), 1u) << v;
    ASSERT_EQ(r.topics[0].partitions.size(), 1u) << v;
    EXPECT_EQ(r.topics[0].partitions[0].index, 3) << v;
    EXPECT_EQ(r.topics[0].partitions[0].current_leader_epoch, v >= 4 ? 8 : -1) << v;
    EXPECT_EQ(r.topics[0].partitions[0].timestamp, -2) << v;
  }
}

TEST(KafkaDecodeRequestEveryVersion, ProduceAndApiVersions) {
  for (int16_t v = 3; v <= 7; ++v)
    EXPECT_EQ(decoded<ProduceRequest>(produce(v)).topics.size(), 1u) << v;
  for (int16_t v = 0; v <= 2; ++v)
    decoded<ApiVersionsRequest>(Bytes().header(ApiKey::api_versions, v).s);
}

// ---- responses ---------------------------------------------------------------------------------

TEST(KafkaEncodeResponse, ApiVersionsV0) {
  ApiVersionsResponse r;
  r.api_keys = {{0, 3, 7}, {18, 0, 3}};
  r.throttle_time_ms = 99;  // not in v0
  Bytes b;
  b.i32(7);  // correlation_id
  b.i16(0);  // error_code
  b.i32(2);  // api_keys
  b.i16(0).i16(3).i16(7);
  b.i16(18).i16(0).i16(3);
  const std::string expected = b.framed();
  EXPECT_EQ(encode_response(header_of(ApiKey::api_versions, 0), r), expected);
}

TEST(KafkaEncodeResponse, ApiVersionsV3IsFlexibleBehindAV0Header) {
  ApiVersionsResponse r;
  r.api_keys = {{0, 3, 7}, {18, 0, 3}};
  r.throttle_time_ms = 5;
  Bytes b;
  b.i32(7);      // correlation_id; no header tagged fields
  b.i16(0);      // error_code
  b.uvarint(3);  // compact array of 2
  b.i16(0).i16(3).i16(7).uvarint(0);
  b.i16(18).i16(0).i16(3).uvarint(0);
  b.i32(5);      // throttle_time_ms
  b.uvarint(0);  // tagged fields
  const std::string expected = b.framed();
  EXPECT_EQ(encode_response(header_of(ApiKey::api_versions, 3), r), expected);
}

TEST(KafkaEncodeResponse, ApiVersionsForAnUnsupportedVersion) {
  Bytes b;
  b.i32(42).i16(35).i32(6);
  b.i16(0).i16(3).i16(7).i16(1).i16(4).i16(11).i16(2).i16(1).i16(4).i16(3).i16(1).i16(8);
  b.i16(18).i16(0).i16(3).i16(19).i16(0).i16(4);
  EXPECT_EQ(encode_api_versions_unsupported(42), b.framed());
}

MetadataResponse sample_metadata() {
  MetadataResponse r;
  r.throttle_time_ms = 3;
  r.brokers = {{1, "b1", 9092, std::nullopt}, {2, "b2", 9093, "rack-b"}};
  r.cluster_id = "fl";
  r.controller_id = 2;
  MetadataTopic t;
  t.name = "t";
  t.partitions.push_back({0, 0, 1, 4, {1, 2}, {1}, {2}});
  r.topics.push_back(t);
  r.topics.push_back({3, "missing", false, {}});
  return r;
}

TEST(KafkaEncodeResponse, MetadataV1) {
  Bytes b;
  b.i32(7);
  b.i32(2).i32(1).str("b1").i32(9092).null_str().i32(2).str("b2").i32(9093).str("rack-b");
  b.i32(2);  // controller_id; no cluster_id before v2
  b.i32(2);
  b.i16(0).str("t").i8(0).i32(1);
  b.i16(0).i32(0).i32(1).i32(2).i32(1).i32(2).i32(1).i32(1);  // no leader_epoch, no offline
  b.i16(3).str("missing").i8(0).i32(0);
  EXPECT_EQ(encode_response(header_of(ApiKey::metadata, 1), sample_metadata()), b.framed());
}

TEST(KafkaEncodeResponse, MetadataV8) {
  Bytes b;
  b.i32(7);
  b.i32(3);  // throttle_time_ms first (v3+)
  b.i32(2).i32(1).str("b1").i32(9092).null_str().i32(2).str("b2").i32(9093).str("rack-b");
  b.str("fl").i32(2);
  b.i32(2);
  b.i16(0).str("t").i8(0).i32(1);
  b.i16(0).i32(0).i32(1).i32(4);                       // error, index, leader, leader_epoch
  b.i32(2).i32(1).i32(2).i32(1).i32(1).i32(1).i32(2);  // replicas, isr, offline
  b.i32(INT32_MIN);                                    // topic_authorized_operations
  b.i16(3).str("missing").i8(0).i32(0).i32(INT32_MIN);
  b.i32(INT32_MIN);  // cluster_authorized_operations
  EXPECT_EQ(encode_response(header_of(ApiKey::metadata, 8), sample_metadata()), b.framed());
}

ProduceResponse sample_produce_response() {
  ProduceResponse r;
  r.topics.push_back({"t", {{0, 0, 42, -1, 10}, {1, 6, -1, -1, -1}}});
  r.throttle_time_ms = 8;
  return r;
}

TEST(KafkaEncodeResponse, ProduceV3) {
  Bytes b;
  b.i32(7).i32(1).str("t").i32(2);
  b.i32(0).i16(0).i64(42).i64(-1);  // log_append_time (v2+), no log_start_offset
  b.i32(1).i16(6).i64(-1).i64(-1);
  b.i32(8);  // throttle_time_ms at the end
  EXPECT_EQ(encode_response(header_of(ApiKey::produce, 3), sample_produce_response()), b.framed());
}

TEST(KafkaEncodeResponse, ProduceV7) {
  Bytes b;
  b.i32(7).i32(1).str("t").i32(2);
  b.i32(0).i16(0).i64(42).i64(-1).i64(10);
  b.i32(1).i16(6).i64(-1).i64(-1).i64(-1);
  b.i32(8);
  EXPECT_EQ(encode_response(header_of(ApiKey::produce, 7), sample_produce_response()), b.framed());
}

FetchResponse sample_fetch_response() {
  FetchResponse r;
  r.throttle_time_ms = 1;
  r.error_code = 0;
  r.session_id = 0;
  FetchPartitionResponse p;
  p.index = 2;
  p.high_watermark = 10;
  p.last_stable_offset = 10;
  p.log_start_offset = 0;
  p.records = "RECORDS";
  r.topics.push_back({"t", {p, {5, 6, -1, -1, -1, -1, ""}}});
  return r;
}

TEST(KafkaEncodeResponse, FetchV4) {
  Bytes b;
  b.i32(7).i32(1).i32(1).str("t").i32(2);
  b.i32(2).i16(0).i64(10).i64(10).i32(0).bytes("RECORDS");  // lso, empty aborted_transactions
  b.i32(5).i16(6).i64(-1).i64(-1).i32(0).bytes("");
  EXPECT_EQ(encode_response(header_of(ApiKey::fetch, 4), sample_fetch_response()), b.framed());
}

TEST(KafkaEncodeResponse, FetchV11) {
  FetchResponse r = sample_fetch_response();
  r.error_code = 0;
  r.session_id = 0;
  r.topics[0].partitions[0].preferred_read_replica = -1;
  Bytes b;
  b.i32(7).i32(1).i16(0).i32(0).i32(1).str("t").i32(2);
  b.i32(2).i16(0).i64(10).i64(10).i64(0).i32(0).i32(-1).bytes("RECORDS");
  b.i32(5).i16(6).i64(-1).i64(-1).i64(-1).i32(0).i32(-1).bytes("");
  EXPECT_EQ(encode_response(header_of(ApiKey::fetch, 11), r), b.framed());
}

ListOffsetsResponse sample_list_offsets_response() {
  ListOffsetsResponse r;
  r.throttle_time_ms = 4;
  r.topics.push_back({"t", {{0, 0, -1, 17, 3}}});
  return r;
}

TEST(KafkaEncodeResponse, ListOffsetsV1) {
  Bytes b;
  b.i32(7).i32(1).str("t").i32(1).i32(0).i16(0).i64(-1).i64(17);
  EXPECT_EQ(encode_response(header_of(ApiKey::list_offsets, 1), sample_list_offsets_response()),
            b.framed());
}

TEST(KafkaEncodeResponse, ListOffsetsV4) {
  Bytes b;
  b.i32(7).i32(4).i32(1).str("t").i32(1).i32(0).i16(0).i64(-1).i64(17).i32(3);
  EXPECT_EQ(encode_response(header_of(ApiKey::list_offsets, 4), sample_list_offsets_response()),
            b.framed());
}

TEST(KafkaEncodeResponseEveryVersion, Metadata) {
  for (int16_t v = 1; v <= 8; ++v) {
    Bytes b;
    b.i32(7);
    if (v >= 3)
      b.i32(3);  // throttle_time_ms
    b.i32(2).i32(1).str("b1").i32(9092).null_str().i32(2).str("b2").i32(9093).str("rack-b");
    if (v >= 2)
      b.str("fl");  // cluster_id
    b.i32(2);       // controller_id
    b.i32(2).i16(0).str("t").i8(0).i32(1).i16(0).i32(0).i32(1);
    if (v >= 7)
      b.i32(4);  // leader_epoch
    b.i32(2).i32(1).i32(2).i32(1).i32(1);
    if (v >= 5)
      b.i32(1).i32(2);  // offline_replicas
    if (v >= 8)
      b.i32(INT32_MIN);  // topic_authorized_operations
    b.i16(3).str("missing").i8(0).i32(0);
    if (v >= 8)
      b.i32(INT32_MIN).i32(INT32_MIN);  // topic, then cluster_authorized_operations
    EXPECT_EQ(encode_response(header_of(ApiKey::metadata, v), sample_metadata()), b.framed()) << v;
  }
}

TEST(KafkaEncodeResponseEveryVersion, Produce) {
  for (int16_t v = 3; v <= 7; ++v) {
    Bytes b;
    b.i32(7).i32(1).str("t").i32(2);
    b.i32(0).i16(0).i64(42).i64(-1);
    if (v >= 5)
      b.i64(10);
    b.i32(1).i16(6).i64(-1).i64(-1);
    if (v >= 5)
      b.i64(-1);
    b.i32(8);
    EXPECT_EQ(encode_response(header_of(ApiKey::produce, v), sample_produce_response()), b.framed())
        << v;
  }
}

TEST(KafkaEncodeResponseEveryVersion, Fetch) {
  FetchResponse r = sample_fetch_response();
  r.error_code = 9;
  r.session_id = 11;
  r.topics[0].partitions[0].preferred_read_replica = 2;
  for (int16_t v = 4; v <= 11; ++v) {
    Bytes b;
    b.i32(7).i32(1);
    if (v >= 7)
      b.i16(9).i32(11);  // error_code, session_id
    b.i32(1).str("t").i32(2);
    b.i32(2).i16(0).i64(10).i64(10);
    if (v >= 5)
      b.i64(0);  // log_start_offset
    b.i32(0);    // aborted_transactions
    if (v >= 11)
      b.i32(2);  // preferred_read_replica
    b.bytes("RECORDS");
    b.i32(5).i16(6).i64(-1).i64(-1);
    if (v >= 5)
      b.i64(-1);
    b.i32(0);
    if (v >= 11)
      b.i32(-1);
    b.bytes("");
    EXPECT_EQ(encode_response(header_of(ApiKey::fetch, v), r), b.framed()) << v;
  }
}

TEST(KafkaEncodeResponseEveryVersion, ListOffsetsAndApiVersions) {
  for (int16_t v = 1; v <= 4; ++v) {
    Bytes b;
    b.i32(7);
    if (v >= 2)
      b.i32(4);  // throttle_time_ms
    b.i32(1).str("t").i32(1).i32(0).i16(0).i64(-1).i64(17);
    if (v >= 4)
      b.i32(3);  // leader_epoch
    EXPECT_EQ(encode_response(header_of(ApiKey::list_offsets, v), sample_list_offsets_response()),
              b.framed())
        << v;
  }
  const ApiVersionsResponse r{0, {{18, 0, 3}}, 6};
  for (int16_t v = 0; v <= 2; ++v) {
    Bytes b;
    b.i32(7).i16(0).i32(1).i16(18).i16(0).i16(3);
    if (v >= 1)
      b.i32(6);
    EXPECT_EQ(encode_response(header_of(ApiKey::api_versions, v), r), b.framed()) << v;
  }
}

// ---- client side: Metadata requests and responses ----------------------------------------------

TEST(KafkaEncodeRequest, MetadataMatchesKafkasLayout) {
  MetadataRequest all;
  all.allow_auto_topic_creation = false;
  EXPECT_EQ(encode_request(header_of(ApiKey::metadata, 1), all), Bytes{metadata_v1_all()}.framed());
  EXPECT_EQ(encode_request(header_of(ApiKey::metadata, 4, 9), all),
            Bytes().header(ApiKey::metadata, 4, 9).i32(-1).i8(0).framed());
  const MetadataRequest one{std::vector<std::string>{"t"}, true};
  // v8 asks for no authorized operations, neither the cluster's nor the topics'.
  EXPECT_EQ(encode_request(header_of(ApiKey::metadata, 8), one),
            Bytes().header(ApiKey::metadata, 8).i32(1).str("t").i8(1).i8(0).i8(0).framed());
  RequestHeader anonymous = header_of(ApiKey::metadata, 7);
  anonymous.client_id.reset();
  EXPECT_EQ(encode_request(anonymous, one),
            Bytes().i16(3).i16(7).i32(7).null_str().i32(1).str("t").i8(1).framed());
}

TEST(KafkaEncodeRequestEveryVersion, MetadataRoundTripsThroughTheServerDecoder) {
  const std::vector<MetadataRequest> requests = {
      {std::nullopt, false},
      {std::nullopt, true},
      {std::vector<std::string>{}, false},
      {std::vector<std::string>{"a", "orders", ""}, true},
  };
  for (int16_t v = 1; v <= 8; ++v) {
    for (const MetadataRequest& request : requests) {
      const RequestHeader header = header_of(ApiKey::metadata, v, 1000 + v);
      const std::string frame = encode_request(header, request);
      ASSERT_GE(frame.size(), 4u);
      EXPECT_EQ(frame.substr(0, 4), Bytes().i32(static_cast<int32_t>(frame.size() - 4)).s) << v;
      size_t body_offset = 0;
      const auto decoded_header =
          decode_header(std::span<const char>(frame).subspan(4), body_offset);
      ASSERT_TRUE(decoded_header) << v;
      EXPECT_EQ(decoded_header->api_key, header.api_key);
      EXPECT_EQ(decoded_header->api_version, v);
      EXPECT_EQ(decoded_header->correlation_id, header.correlation_id);
      EXPECT_EQ(decoded_header->client_id, header.client_id);
      MetadataRequest expected = request;
      if (v < 4)
        expected.allow_auto_topic_creation = true;  // not on the wire: Kafka's default
      EXPECT_EQ(decoded<MetadataRequest>(frame.substr(4)), expected) << v;
    }
  }
}

// Every field set, also those only some versions carry.
MetadataResponse full_metadata() {
  MetadataResponse r = sample_metadata();
  r.brokers.push_back({3, "broker-three.example", 19092, "rack-c"});
  MetadataTopic internal;
  internal.name = "__consumer_offsets";
  internal.is_internal = true;
  internal.partitions.push_back({0, 1, 3, 12, {3, 1, 2}, {3, 2}, {}});
  internal.partitions.push_back({5, 0, -1, 9, {1}, {}, {1}});
  r.topics.push_back(internal);
  return r;
}

// What a client of `version` can learn from `r`: fields the version lacks read as their defaults.
MetadataResponse as_seen_by(int16_t version, MetadataResponse r) {
  if (version < 3)
    r.throttle_time_ms = 0;
  if (version < 2)
    r.cluster_id.reset();
  for (MetadataTopic& t : r.topics) {
    for (MetadataPartition& p : t.partitions) {
      if (version < 7)
        p.leader_epoch = -1;
      if (version < 5)
        p.offline_replicas.clear();
    }
  }
  return r;
}

// The body after the size and the correlation id of a response frame.
std::string response_body(const std::string& frame) {
  return frame.substr(8);
}

TEST(KafkaDecodeMetadataResponseEveryVersion, RoundTripsThroughTheServerEncoder) {
  for (const MetadataResponse& sent : {sample_metadata(), full_metadata(), MetadataResponse{}}) {
    for (int16_t v = 1; v <= 8; ++v) {
      const std::string frame = encode_response(header_of(ApiKey::metadata, v, 4242), sent);
      EXPECT_EQ(decode_response_correlation(std::span<const char>(frame).subspan(4)), 4242);
      MetadataResponse received;
      ASSERT_TRUE(decode_metadata_response(v, response_body(frame), received)) << v;
      EXPECT_EQ(received, as_seen_by(v, sent)) << v;
    }
  }
}

TEST(KafkaDecodeMetadataResponse, ReadsAKafkaV7Answer) {
  Bytes b;
  b.i32(0);                                                        // throttle_time_ms
  b.i32(1).i32(101).str("kafka-1.internal").i32(9092).null_str();  // brokers
  b.str("MkU3OEVBNTcwNTJENDM2Qk").i32(101);                        // cluster_id, controller_id
  b.i32(1).i16(0).str("orders").i8(0).i32(2);
  b.i16(0).i32(1).i32(101).i32(17).i32(2).i32(101).i32(102).i32(1).i32(101).i32(1).i32(102);
  b.i16(5).i32(0).i32(-1).i32(16).i32(1).i32(102).i32(0).i32(1).i32(102);
  MetadataResponse r;
  ASSERT_TRUE(decode_metadata_response(7, b.s, r));
  ASSERT_EQ(r.brokers.size(), 1u);
  EXPECT_EQ(r.brokers[0], (MetadataBroker{101, "kafka-1.internal", 9092, std::nullopt}));
  EXPECT_EQ(r.cluster_id, "MkU3OEVBNTcwNTJENDM2Qk");
  EXPECT_EQ(r.controller_id, 101);
  ASSERT_EQ(r.topics.size(), 1u);
  EXPECT_EQ(r.topics[0].name, "orders");
  ASSERT_EQ(r.topics[0].partitions.size(), 2u);
  EXPECT_EQ(r.topics[0].partitions[0],
            (MetadataPartition{0, 1, 101, 17, {101, 102}, {101}, {102}}));
  EXPECT_EQ(r.topics[0].partitions[1], (MetadataPartition{5, 0, -1, 16, {102}, {}, {102}}));
}

TEST(KafkaDecodeMetadataResponseEveryVersion, EveryTruncationAndTrailingByteIsMalformed) {
  for (int16_t v = 1; v <= 8; ++v) {
    const std::string body =
        response_body(encode_response(header_of(ApiKey::metadata, v), full_metadata()));
    for (size_t n = 0; n < body.size(); ++n) {
      MetadataResponse r;
      EXPECT_FALSE(decode_metadata_response(v, std::string_view(body).substr(0, n), r))
          << "v" << v << " cut to " << n << " of " << body.size();
    }
    MetadataResponse r;
    EXPECT_FALSE(decode_metadata_response(v, body + '\0', r)) << v;
  }
}

TEST(KafkaDecodeMetadataResponse, RefusesUnservedVersionsAndBadLengths) {
  const std::string v1 =
      response_body(encode_response(header_of(ApiKey::metadata, 1), MetadataResponse{}));
  MetadataResponse r;
  EXPECT_TRUE(decode_metadata_response(1, v1, r));
  EXPECT_FALSE(decode_metadata_response(0, v1, r));
  EXPECT_FALSE(decode_metadata_response(9, v1, r));
  // A broker count, a host length and a replica count larger than the body could hold.
  EXPECT_FALSE(decode_metadata_response(1, Bytes().i32(0x7fffffff).s, r));
  EXPECT_FALSE(
      decode_metadata_response(1, Bytes().i32(1).i32(1).i16(500).raw("0123456789ab").s, r));
  Bytes partition = Bytes().i32(0).i32(-1).i32(1).i16(0).str("t").i8(0).i32(1).i16(0).i32(0).i32(1);
  EXPECT_TRUE(decode_metadata_response(1, Bytes(partition).i32(1).i32(1).i32(0).s, r));
  EXPECT_FALSE(decode_metadata_response(1, Bytes(partition).i32(1000).i32(1).i32(0).s, r));
  // A null host, where Kafka never sends one.
  EXPECT_TRUE(decode_metadata_response(
      1, Bytes().i32(1).i32(1).str("").i32(1).null_str().i32(-1).i32(0).s, r));
  EXPECT_FALSE(decode_metadata_response(
      1, Bytes().i32(1).i32(1).null_str().i32(1).null_str().i32(-1).i32(0).s, r));
  // A negative topic count.
  EXPECT_FALSE(decode_metadata_response(1, Bytes().i32(0).i32(-1).i32(-2).s, r));
}

TEST(KafkaDecodeResponseCorrelation, NeedsFourBytes) {
  EXPECT_EQ(decode_response_correlation(Bytes().i32(-5).raw("rest").s), -5);
  EXPECT_EQ(decode_response_correlation(Bytes().i16(1).i8(2).s), std::nullopt);
  EXPECT_EQ(decode_response_correlation(std::string_view()), std::nullopt);
}

}  // namespace
}  // namespace faultline::cluster::kafka

namespace faultline::cluster::kafka {
namespace {

// CreateTopics v4 as librdkafka's rd_kafka_CreateTopics sends it: one topic with an explicit
// assignment and a config, one plain.
std::string create_topics(int16_t version) {
  Bytes b;
  b.header(ApiKey::create_topics, version).i32(2);
  b.str("placed")
      .i32(-1)
      .i16(-1)
      .i32(1)
      .i32(0)
      .i32(2)
      .i32(1)
      .i32(2)
      .i32(1)
      .str("cleanup.policy")
      .str("compact");
  b.str("plain").i32(6).i16(3).i32(0).i32(0);
  b.i32(5000);
  if (version >= 1)
    b.i8(1);
  return b.s;
}

TEST(KafkaDecodeRequest, CreateTopicsV0AndV4) {
  for (int16_t v : {0, 4}) {
    auto r = decoded<CreateTopicsRequest>(create_topics(v));
    ASSERT_EQ(r.topics.size(), 2u) << v;
    EXPECT_EQ(r.topics[0].name, "placed");
    EXPECT_EQ(r.topics[0].num_partitions, -1);
    EXPECT_EQ(r.topics[0].assignments, 1u);
    EXPECT_EQ(r.topics[0].configs, 1u);
    EXPECT_EQ(r.topics[1].name, "plain");
    EXPECT_EQ(r.topics[1].num_partitions, 6);
    EXPECT_EQ(r.topics[1].replication_factor, 3);
    EXPECT_EQ(r.timeout_ms, 5000);
    EXPECT_EQ(r.validate_only, v >= 1);
  }
  const std::string whole = create_topics(4);
  for (size_t n = 0; n < whole.size(); ++n) {
    Request out;
    EXPECT_EQ(decode_frame(whole.substr(0, n), out), DecodeError::malformed) << n;
  }
}

TEST(KafkaEncodeResponse, CreateTopicsV0V1V4) {
  CreateTopicsResponse r;
  r.throttle_time_ms = 0;
  r.topics = {{"a", 0, std::nullopt}, {"b", 39, std::string("no")}};
  Bytes v0;
  v0.i32(7).i32(2).str("a").i16(0).str("b").i16(39);
  EXPECT_EQ(encode_response(header_of(ApiKey::create_topics, 0), r), v0.framed());
  Bytes v1;
  v1.i32(7).i32(2).str("a").i16(0).null_str().str("b").i16(39).str("no");
  EXPECT_EQ(encode_response(header_of(ApiKey::create_topics, 1), r), v1.framed());
  Bytes v4;
  v4.i32(7).i32(0).i32(2).str("a").i16(0).null_str().str("b").i16(39).str("no");
  EXPECT_EQ(encode_response(header_of(ApiKey::create_topics, 4), r), v4.framed());
}

}  // namespace
}  // namespace faultline::cluster::kafka
