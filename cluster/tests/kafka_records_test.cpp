// Kafka RecordBatch v2 <-> internal batch (kafka/records.h): what a Kafka producer's records become
// in the log, and what a Kafka consumer is served from it. Expected bytes are written from the
// Kafka spec here, with an independent bitwise CRC32C and varint writer.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "faultline/cluster/kafka/records.h"
#include "faultline/cluster/log/record_batch.h"

namespace faultline::cluster::kafka {
namespace {

// Bitwise CRC32C (reflected Castagnoli polynomial), independent of the table-driven one.
uint32_t reference_crc32c(std::string_view data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (const char c : data) {
    crc ^= static_cast<uint8_t>(c);
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// "00 0a ff" -> bytes.
std::string hex(std::string_view text) {
  std::string out;
  int nibbles = 0;
  unsigned value = 0;
  for (const char c : text) {
    if (c == ' ')
      continue;
    value = value * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : c - 'a' + 10);
    if (++nibbles == 2) {
      out.push_back(static_cast<char>(value));
      nibbles = 0;
      value = 0;
    }
  }
  return out;
}

void put_be(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// Rewrites the CRC field of the Kafka batch starting at `at` (after an edit).
void fix_crc(std::string& batch, size_t at = 0) {
  const uint32_t crc = reference_crc32c(std::string_view(batch).substr(at + 21));
  for (int i = 0; i < 4; ++i)
    batch[at + 17 + i] = static_cast<char>(crc >> (24 - 8 * i));
}

void put_varint(std::string& out, int64_t v) {
  uint64_t u = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  while (u >= 0x80) {
    out.push_back(static_cast<char>((u & 0x7F) | 0x80));
    u >>= 7;
  }
  out.push_back(static_cast<char>(u));
}

void put_nullable(std::string& out, const std::optional<std::string>& s) {
  put_varint(out, s ? static_cast<int64_t>(s->size()) : -1);
  if (s)
    out += *s;
}

// A Kafka batch as a producer would send it, built from the spec.
struct SpecRecord {
  int64_t timestamp_delta = 0;
  int32_t offset_delta = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>> headers;
};
struct SpecBatch {
  int64_t first_timestamp = 1000;
  int16_t attributes = 0;
  std::vector<SpecRecord> records;
};

std::string kafka_batch(const SpecBatch& spec) {
  std::string records;
  for (const SpecRecord& r : spec.records) {
    std::string body(1, '\0');  // attributes
    put_varint(body, r.timestamp_delta);
    put_varint(body, r.offset_delta);
    put_nullable(body, r.key);
    put_nullable(body, r.value);
    put_varint(body, static_cast<int64_t>(r.headers.size()));
    for (const auto& [key, value] : r.headers) {
      put_nullable(body, key);
      put_nullable(body, value);
    }
    put_varint(records, static_cast<int64_t>(body.size()));
    records += body;
  }
  const auto count = static_cast<uint32_t>(spec.records.size());
  std::string out;
  put_be(out, 0, 8);                                            // base_offset
  put_be(out, 49 + records.size(), 4);                          // batch_length
  put_be(out, 0xFFFFFFFFu, 4);                                  // partition_leader_epoch
  out.push_back(2);                                             // magic
  put_be(out, 0, 4);                                            // crc
  put_be(out, static_cast<uint16_t>(spec.attributes), 2);       // attributes
  put_be(out, count - 1, 4);                                    // last_offset_delta
  put_be(out, static_cast<uint64_t>(spec.first_timestamp), 8);  // first_timestamp
  put_be(out, static_cast<uint64_t>(spec.first_timestamp), 8);  // max_timestamp
  put_be(out, ~0ull, 8);                                        // producer_id
  put_be(out, 0xFFFF, 2);                                       // producer_epoch
  put_be(out, 0xFFFFFFFFu, 4);                                  // base_sequence
  put_be(out, count, 4);                                        // record_count
  out += records;
  fix_crc(out);
  return out;
}

SpecBatch three_records() {
  SpecBatch b;
  b.records.push_back({0, 0, "k", "v", {}});
  b.records.push_back({5, 1, std::nullopt, std::string(64, 'x'), {}});
  b.records.push_back({-3, 2, "", std::nullopt, {}});
  return b;
}

std::vector<Record> records_of(const std::string& internal) {
  std::vector<Record> out;
  EXPECT_EQ(validate_batch(internal), errc::none);
  EXPECT_EQ(decode_records(internal, out), errc::none);
  return out;
}

int16_t convert(const std::string& kafka, std::string& internal) {
  int32_t count = 0;
  return to_internal_batch(kafka, internal, count);
}

// ---- to_kafka_batches --------------------------------------------------------------------------

// The internal batch matching the hand-written Kafka batch below.
std::string internal_three_records() {
  BatchBuilder b(1000);
  b.add("k", "v", 0);
  b.add(std::nullopt, std::string(64, 'x'), 5);
  b.add("", std::nullopt, -3);
  std::string batch = b.finish();
  stamp_batch(batch, Offset{100}, LeaderEpoch{7});
  return batch;
}

TEST(ToKafkaBatches, MatchesHandWrittenSpecBytes) {
  std::string expected = hex(
      "00 00 00 00 00 00 00 64"     // base_offset 100
      "00 00 00 8a"                 // batch_length 49 + 89
      "00 00 00 07"                 // partition_leader_epoch
      "02"                          // magic
      "00 00 00 00"                 // crc, filled in below
      "00 00"                       // attributes
      "00 00 00 02"                 // last_offset_delta
      "00 00 00 00 00 00 03 e8"     // first_timestamp 1000
      "00 00 00 00 00 00 03 ed"     // max_timestamp 1005
      "ff ff ff ff ff ff ff ff"     // producer_id -1
      "ff ff"                       // producer_epoch -1
      "ff ff ff ff"                 // base_sequence -1
      "00 00 00 03"                 // record_count
      "10 00 00 00 02 6b 02 76 00"  // len 8, attrs, ts 0, offset 0, key "k", value "v", 0 headers
      "8e 01 00 0a 02 01 80 01");   // len 71, attrs, ts +5, offset 1, null key, value len 64
  expected += std::string(64, 'x');
  expected +=
      hex("00"                      // 0 headers
          "0c 00 05 04 00 01 00");  // len 6, attrs, ts -3, offset 2, key "", null value, 0 headers
  ASSERT_EQ(expected.size(), 12u + 0x8a);
  const uint32_t crc = reference_crc32c(std::string_view(expected).substr(21));
  for (int i = 0; i < 4; ++i)
    expected[17 + i] = static_cast<char>(crc >> (24 - 8 * i));

  std::string out;
  ASSERT_EQ(to_kafka_batches(internal_three_records(), out), 0);
  EXPECT_EQ(out, expected);
}

TEST(ToKafkaBatches, DropsATrailingPartialBatchAndAppendsToOut) {
  const std::string a = internal_three_records();
  std::string b = internal_three_records();
  stamp_batch(b, Offset{103}, LeaderEpoch{8});
  std::string one;
  ASSERT_EQ(to_kafka_batches(a, one), 0);
  for (size_t cut = a.size(); cut < a.size() + b.size(); ++cut) {
    std::string out = "prefix";
    ASSERT_EQ(to_kafka_batches(std::span<const char>(a + b).first(cut), out), 0) << cut;
    EXPECT_EQ(out, "prefix" + one) << cut;
  }
  std::string empty;
  EXPECT_EQ(to_kafka_batches({}, empty), 0);
  EXPECT_EQ(empty, "");
}

TEST(ToKafkaBatches, RejectsACorruptBatchAfterConvertingTheOnesBeforeIt) {
  const std::string a = internal_three_records();
  std::string b = a;
  b[b.size() - 1] ^= 0x40;
  std::string one;
  ASSERT_EQ(to_kafka_batches(a, one), 0);
  std::string out;
  EXPECT_EQ(to_kafka_batches(a + b, out), kCorruptMessage);
  EXPECT_EQ(out, one);
  std::string garbage(12, '\0');  // batch_length 0: not even a cut batch
  out.clear();
  EXPECT_EQ(to_kafka_batches(garbage, out), kCorruptMessage);
}

// ---- to_internal_batch -------------------------------------------------------------------------

TEST(ToInternalBatch, ReadsTheSpecBatch) {
  std::string internal;
  int32_t count = 0;
  ASSERT_EQ(to_internal_batch(kafka_batch(three_records()), internal, count), 0);
  EXPECT_EQ(count, 3);
  const auto records = records_of(internal);
  ASSERT_EQ(records.size(), 3u);
  // Offsets are relative until the leader stamps the batch.
  EXPECT_EQ(records[0], (Record{Offset{0}, 1000, "k", "v", LeaderEpoch{-1}}));
  EXPECT_EQ(records[1],
            (Record{Offset{1}, 1005, std::nullopt, std::string(64, 'x'), LeaderEpoch{-1}}));
  EXPECT_EQ(records[2], (Record{Offset{2}, 997, "", std::nullopt, LeaderEpoch{-1}}));
  EXPECT_EQ(BatchView(internal).max_timestamp(), 1005);
}

TEST(ToInternalBatch, MergesSeveralBatchesInOrder) {
  SpecBatch second;
  second.first_timestamp = 2000;
  second.records.push_back({0, 0, "a", "1", {}});
  second.records.push_back({7, 1, "b", "2", {}});
  std::string internal;
  int32_t count = 0;
  ASSERT_EQ(to_internal_batch(kafka_batch(three_records()) + kafka_batch(second), internal, count),
            0);
  EXPECT_EQ(count, 5);
  const auto records = records_of(internal);
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records[3], (Record{Offset{3}, 2000, "a", "1", LeaderEpoch{-1}}));
  EXPECT_EQ(records[4], (Record{Offset{4}, 2007, "b", "2", LeaderEpoch{-1}}));
}

TEST(ToInternalBatch, DropsRecordHeaders) {
  SpecBatch b;
  b.records.push_back({0, 0, "k", "v", {{"h1", "x"}, {"h2", std::nullopt}, {"", ""}}});
  b.records.push_back({1, 1, std::nullopt, std::nullopt, {}});
  std::string internal;
  ASSERT_EQ(convert(kafka_batch(b), internal), 0);
  const auto records = records_of(internal);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0], (Record{Offset{0}, 1000, "k", "v", LeaderEpoch{-1}}));
  EXPECT_EQ(records[1], (Record{Offset{1}, 1001, std::nullopt, std::nullopt, LeaderEpoch{-1}}));
}

TEST(RoundTrip, InternalToKafkaToInternalKeepsOffsetsKeysValuesAndTimestamps) {
  std::vector<std::string> batches;
  for (int b = 0; b < 4; ++b) {
    BatchBuilder builder(1'700'000'000'000 + b * 1000);
    for (int i = 0; i <= b; ++i) {
      std::optional<std::string> key;
      std::optional<std::string> value;
      if (i % 2 == 0)
        key = "key-" + std::to_string(b) + "-" + std::to_string(i);
      if (i % 3 != 2)
        value = std::string(static_cast<size_t>(i * 50), static_cast<char>('a' + i));
      builder.add(key, value, i * 17 - (i == 2 ? 40 : 0));
    }
    batches.push_back(builder.finish());
  }
  int64_t next = 10;
  std::string log;
  for (size_t b = 0; b < batches.size(); ++b) {
    stamp_batch(batches[b], Offset{next}, LeaderEpoch{static_cast<int32_t>(b + 3)});
    next += static_cast<int64_t>(b) + 1 + 5;  // gaps, as after compaction or a truncation
    log += batches[b];
  }
  std::string kafka;
  ASSERT_EQ(to_kafka_batches(log, kafka), 0);

  std::vector<Record> original;
  ASSERT_EQ(decode_records(log, original), errc::none);
  size_t at = 0;
  size_t seen = 0;
  for (const std::string& batch : batches) {
    // Each Kafka batch carries its base offset and epoch; converted back and stamped with them,
    // it is byte for byte the internal batch it came from.
    ASSERT_LE(at + 12, kafka.size());
    const BatchView view(batch);
    const std::string_view k(kafka.data() + at, kafka.size() - at);
    const size_t size =
        12 + static_cast<size_t>(static_cast<uint8_t>(k[10]) << 8 | static_cast<uint8_t>(k[11]));
    const std::string one(k.substr(0, size));
    EXPECT_EQ(reference_crc32c(std::string_view(one).substr(21)),
              static_cast<uint32_t>(
                  static_cast<uint8_t>(one[17]) << 24 | static_cast<uint8_t>(one[18]) << 16 |
                  static_cast<uint8_t>(one[19]) << 8 | static_cast<uint8_t>(one[20])));
    std::string back;
    int32_t count = 0;
    ASSERT_EQ(to_internal_batch(one, back, count), 0);
    EXPECT_EQ(count, view.record_count());
    stamp_batch(back, view.base_offset(), view.partition_leader_epoch());
    EXPECT_EQ(back, batch);
    const auto records = records_of(back);
    for (const Record& r : records)
      EXPECT_EQ(r, original[seen++]);
    at += size;
  }
  EXPECT_EQ(at, kafka.size());
  EXPECT_EQ(seen, original.size());
}

// ---- rejections --------------------------------------------------------------------------------

TEST(ToInternalBatch, RejectsNoRecordsAtAll) {
  std::string internal = "untouched";
  int32_t count = -5;
  EXPECT_EQ(to_internal_batch({}, internal, count), kInvalidRecord);
  EXPECT_EQ(internal, "untouched");
  EXPECT_EQ(count, -5);
  SpecBatch empty;
  EXPECT_EQ(to_internal_batch(kafka_batch(empty), internal, count), kInvalidRecord)
      << "record_count 0, last_offset_delta -1";
  EXPECT_EQ(internal, "untouched");
}

TEST(ToInternalBatch, RejectsEveryTruncationAndTrailingBytes) {
  const std::string good = kafka_batch(three_records());
  std::string internal;
  for (size_t n = 1; n < good.size(); ++n)
    EXPECT_EQ(convert(good.substr(0, n), internal), kCorruptMessage) << n;
  EXPECT_EQ(convert(good + "x", internal), kCorruptMessage);
  EXPECT_EQ(convert(good + std::string(12, '\0'), internal), kCorruptMessage);
  EXPECT_EQ(convert(good + good.substr(0, 70), internal), kCorruptMessage);
}

TEST(ToInternalBatch, RejectsABadCrcOrMagic) {
  const std::string good = kafka_batch(three_records());
  std::string internal;
  std::string bad_crc = good;
  bad_crc[20] ^= 1;
  EXPECT_EQ(convert(bad_crc, internal), kCorruptMessage);
  std::string bad_payload = good;
  bad_payload[good.size() - 2] ^= 0x10;
  EXPECT_EQ(convert(bad_payload, internal), kCorruptMessage);
  for (const char magic : {0, 1, 3}) {
    std::string bad_magic = good;
    bad_magic[16] = magic;
    EXPECT_EQ(convert(bad_magic, internal), kCorruptMessage) << int(magic);
  }
}

TEST(ToInternalBatch, RejectsCompressionTransactionsAndControlBatches) {
  std::string internal;
  for (int16_t codec = 1; codec <= 4; ++codec) {
    SpecBatch b = three_records();
    b.attributes = codec;
    EXPECT_EQ(convert(kafka_batch(b), internal), kUnsupportedCompression) << codec;
  }
  for (const int16_t flag : {0x10, 0x20, 0x30}) {
    SpecBatch b = three_records();
    b.attributes = flag;
    EXPECT_EQ(convert(kafka_batch(b), internal), kInvalidRecord) << flag;
  }
  SpecBatch log_append_time = three_records();
  log_append_time.attributes = 0x08;  // timestamp type: not a reason to refuse
  EXPECT_EQ(convert(kafka_batch(log_append_time), internal), 0);
}

TEST(ToInternalBatch, RejectsInconsistentCountsAndLengths) {
  const std::string good = kafka_batch(three_records());
  std::string internal;
  auto with = [&](size_t at, std::string_view bytes) {
    std::string b = good;
    b.replace(at, bytes.size(), bytes);
    fix_crc(b);
    return b;
  };
  EXPECT_EQ(convert(with(23, hex("00 00 00 03")), internal), kCorruptMessage)
      << "last_offset_delta != record_count - 1";
  EXPECT_EQ(convert(with(23, hex("00 00 00 03 00 00 00 00 00 00 03 e8 00 00 00 00 00 00 03 ed ff "
                                 "ff ff ff ff ff ff ff ff ff ff ff ff ff 00 00 00 04")),
                    internal),
            kCorruptMessage)
      << "records run out before record_count";
  EXPECT_EQ(convert(with(23, hex("7f ff ff fe 00 00 00 00 00 00 03 e8 00 00 00 00 00 00 03 e8 ff "
                                 "ff ff ff ff ff ff ff ff ff ff ff ff ff 7f ff ff ff")),
                    internal),
            kCorruptMessage)
      << "huge count";
  EXPECT_EQ(convert(with(57, hex("ff ff ff ff")), internal), kCorruptMessage) << "negative";
  EXPECT_EQ(convert(with(61, hex("0e")), internal), kCorruptMessage) << "record length short";
  EXPECT_EQ(convert(with(61, hex("12")), internal), kCorruptMessage) << "record length long";
  EXPECT_EQ(convert(with(61, hex("01")), internal), kCorruptMessage) << "negative record length";
  EXPECT_EQ(convert(with(64, hex("02")), internal), kCorruptMessage) << "offset delta 1 for 0";
  EXPECT_EQ(convert(with(65, hex("03")), internal), kCorruptMessage) << "key length -2";
  EXPECT_EQ(convert(with(65, hex("04")), internal), kCorruptMessage) << "key overruns record";
  EXPECT_EQ(convert(with(8, hex("00 00 00 30")), internal), kCorruptMessage) << "length < header";
  EXPECT_EQ(convert(with(8, hex("7f ff ff ff")), internal), kCorruptMessage) << "huge length";
  EXPECT_EQ(convert(with(61, hex("ff ff ff ff 7f")), internal), kCorruptMessage)
      << "record length varint beyond 32 bits";

  SpecBatch null_header_key;
  null_header_key.records.push_back({0, 0, "k", "v", {{std::nullopt, "x"}}});
  EXPECT_EQ(convert(kafka_batch(null_header_key), internal), kCorruptMessage);
  SpecBatch out_of_order;
  out_of_order.records.push_back({0, 0, "k", "v", {}});
  out_of_order.records.push_back({0, 0, "k", "v", {}});
  EXPECT_EQ(convert(kafka_batch(out_of_order), internal), kCorruptMessage);
}

TEST(ToInternalBatch, RejectsTimestampsTooFarApartForTheInternalFormat) {
  SpecBatch far;
  far.records.push_back({0, 0, "a", "1", {}});
  far.records.push_back({int64_t{1} << 31, 1, "b", "2", {}});
  std::string internal;
  EXPECT_EQ(convert(kafka_batch(far), internal), kInvalidRecord);
  far.records[1].timestamp_delta = (int64_t{1} << 31) - 1;
  EXPECT_EQ(convert(kafka_batch(far), internal), 0) << "int32 max is still representable";
  SpecBatch later;
  later.first_timestamp = 1000 + (int64_t{1} << 32);
  later.records.push_back({0, 0, "c", "3", {}});
  EXPECT_EQ(convert(kafka_batch(three_records()) + kafka_batch(later), internal), kInvalidRecord)
      << "across batches";
  SpecBatch overflow;
  overflow.first_timestamp = INT64_MAX;
  overflow.records.push_back({1, 0, "a", "1", {}});
  EXPECT_EQ(convert(kafka_batch(overflow), internal), kInvalidRecord);
}

}  // namespace
}  // namespace faultline::cluster::kafka
