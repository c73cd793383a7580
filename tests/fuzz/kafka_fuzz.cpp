// libFuzzer target for the Kafka wire codec (cluster/include/faultline/cluster/kafka/): every byte
// a Kafka client sends goes through decode_header / decode_request, every produce's records
// through to_internal_batch, and every fetch's log bytes through to_kafka_batches. Besides memory
// safety (ASan, UBSan) it checks that what is accepted round-trips:
//  - Kafka records accepted by to_internal_batch give a valid internal batch, which converts back
//    to Kafka and again to the identical internal batch;
//  - internal batches accepted by to_kafka_batches come back with the same records;
//  - a decoded request can be answered, and the answer's frame size and correlation id are right.
// Each input is tried as a request frame (the bytes after the size), as Kafka records and as
// internal batches, the last two also with every batch's CRC recomputed (random bytes almost never
// carry a matching one, which would leave the record parsers behind it unexplored).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "faultline/cluster/kafka/protocol.h"
#include "faultline/cluster/kafka/records.h"
#include "faultline/cluster/log/crc32c.h"
#include "faultline/cluster/log/record_batch.h"

using namespace faultline::cluster;
using namespace faultline::cluster::kafka;

namespace {

void require(bool condition) {
  if (!condition)
    std::abort();
}

uint32_t load_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Both formats share the header layout: batch_length at 8, CRC at 17 over 21..end.
std::vector<char> with_fixed_crcs(std::span<const char> bytes) {
  std::vector<char> out(bytes.begin(), bytes.end());
  size_t at = 0;
  while (out.size() - at >= batch_layout::kHeaderSize) {
    const auto length =
        static_cast<int32_t>(load_u32(out.data() + at + batch_layout::kBatchLength));
    size_t end = out.size();
    if (length >= 0 && static_cast<size_t>(length) <= out.size() - at - batch_layout::kLogOverhead)
      end = at + batch_layout::kLogOverhead + static_cast<size_t>(length);
    if (end < at + batch_layout::kHeaderSize)
      break;
    const auto covered = std::span<const char>(out).subspan(at + batch_layout::kAttributes,
                                                            end - at - batch_layout::kAttributes);
    const uint32_t crc = crc32c(covered);
    for (int i = 0; i < 4; ++i)
      out[at + batch_layout::kCrc + i] = static_cast<char>(crc >> (24 - 8 * i));
    at = end;
  }
  return out;
}

void check_kafka_records(std::span<const char> kafka) {
  std::string internal;
  int32_t count = 0;
  if (to_internal_batch(kafka, internal, count) != 0)
    return;
  std::vector<Record> records;
  require(validate_batch(internal) == errc::none);
  require(decode_records(internal, records) == errc::none);
  require(records.size() == static_cast<size_t>(count));
  std::string again;
  require(to_kafka_batches(internal, again) == 0);
  std::string back;
  int32_t back_count = 0;
  require(to_internal_batch(again, back, back_count) == 0);
  require(back == internal && back_count == count);
}

void check_internal_batches(std::span<const char> internal) {
  std::string kafka;
  if (to_kafka_batches(internal, kafka) != 0 || kafka.empty())
    return;
  std::vector<Record> expected;
  require(decode_records(internal, expected) == errc::none);
  std::string back;
  int32_t count = 0;
  const int16_t result = to_internal_batch(kafka, back, count);
  if (result == kInvalidRecord)
    return;  // timestamps of the batches too far apart for one internal batch
  require(result == 0);
  std::vector<Record> got;
  require(decode_records(back, got) == errc::none);
  require(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i)
    require(got[i].key == expected[i].key && got[i].value == expected[i].value &&
            got[i].timestamp_ms == expected[i].timestamp_ms);
}

void check_frame(const std::string& frame, int32_t correlation_id) {
  require(frame.size() >= 8);
  require(load_u32(frame.data()) == frame.size() - 4);
  require(static_cast<int32_t>(load_u32(frame.data() + 4)) == correlation_id);
}

// An answer shaped after the request, so the encoders see its names and counts.
Response answer(const Request& request) {
  struct Visitor {
    Response operator()(const ApiVersionsRequest&) const {
      const auto apis = supported_apis();
      return ApiVersionsResponse{0, {apis.begin(), apis.end()}, 0};
    }
    Response operator()(const MetadataRequest& r) const {
      MetadataResponse out;
      out.brokers.push_back({1, "b1", 9092, std::nullopt});
      for (const std::string& name : r.topics.value_or(std::vector<std::string>{}))
        out.topics.push_back({3, name, false, {{0, 0, 1, 0, {1}, {1}, {}}}});
      return out;
    }
    Response operator()(const ProduceRequest& r) const {
      ProduceResponse out;
      for (const ProduceTopic& t : r.topics) {
        for (const ProducePartition& p : t.partitions) {
          check_kafka_records(p.records);
          check_kafka_records(with_fixed_crcs(p.records));
        }
        out.topics.push_back({t.name, {{0, 0, 0, -1, 0}}});
      }
      return out;
    }
    Response operator()(const FetchRequest& r) const {
      FetchResponse out;
      for (const FetchTopic& t : r.topics)
        out.topics.push_back({t.name, {{0, 0, 1, 1, 0, -1, "records"}}});
      return out;
    }
    Response operator()(const ListOffsetsRequest& r) const {
      ListOffsetsResponse out;
      for (const ListOffsetsTopic& t : r.topics)
        out.topics.push_back({t.name, {{0, 0, -1, 5, 0}}});
      return out;
    }
    Response operator()(const CreateTopicsRequest& r) const {
      CreateTopicsResponse out;
      for (const CreatableTopic& t : r.topics)
        out.topics.push_back({t.name, 0, std::nullopt});
      return out;
    }
  };
  return std::visit(Visitor{}, request);
}

void check_request(std::span<const char> frame) {
  size_t body_offset = 0;
  const auto header = decode_header(frame, body_offset);
  if (!header)
    return;
  require(body_offset <= frame.size());
  Request request;
  const DecodeError error = decode_request(*header, frame.subspan(body_offset), request);
  if (error == DecodeError::unsupported_version && header->api_key == 18)
    check_frame(encode_api_versions_unsupported(header->correlation_id), header->correlation_id);
  if (error != DecodeError::none)
    return;
  check_frame(encode_response(*header, answer(request)), header->correlation_id);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const char> bytes(reinterpret_cast<const char*>(data), size);
  check_request(bytes);
  check_kafka_records(bytes);
  check_internal_batches(bytes);
  const std::vector<char> fixed = with_fixed_crcs(bytes);
  check_kafka_records(fixed);
  check_internal_batches(fixed);
  return 0;
}
