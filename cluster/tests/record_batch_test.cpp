// The record batch format (record_batch.h) and its checksum: what a broker relies on to refuse
// damaged data on produce, replication and recovery.
#include "faultline/cluster/log/record_batch.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "faultline/cluster/log/crc32c.h"

namespace faultline::cluster {
namespace {

std::span<const char> as_span(const std::string& s) {
  return {s.data(), s.size()};
}

TEST(Crc32c, MatchesTheCastagnoliCheckValue) {
  EXPECT_EQ(crc32c(as_span(std::string("123456789"))), 0xE3069283u);
  EXPECT_EQ(crc32c({}), 0u);
}

TEST(Crc32c, KnownVectorsFromRfc3720) {
  // iSCSI (RFC 3720 B.4): 32 bytes of zeros, of 0xFF, and an ascending sequence.
  EXPECT_EQ(crc32c(as_span(std::string(32, '\0'))), 0x8A9136AAu);
  EXPECT_EQ(crc32c(as_span(std::string(32, '\xFF'))), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i)
    ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(as_span(ascending)), 0x46DD794Eu);
}

TEST(Crc32c, ChainsAcrossPiecesAtEveryAlignment) {
  std::string data;
  for (int i = 0; i < 1000; ++i)
    data.push_back(static_cast<char>(i * 37 + 11));
  const uint32_t whole = crc32c(as_span(data));
  for (size_t cut = 0; cut <= data.size(); cut += 7) {
    const auto s = as_span(data);
    EXPECT_EQ(crc32c(s.subspan(cut), crc32c(s.first(cut))), whole) << "cut=" << cut;
  }
}

TEST(Crc32c, HardwareAndPortablePathsAgree) {
  std::string data;
  for (int i = 0; i < 3000; ++i)
    data.push_back(static_cast<char>((i * 7919) >> 3));
  const auto s = as_span(data);
  EXPECT_EQ(crc32c_slice8(as_span(std::string("123456789"))), 0xE3069283u);
  for (size_t start = 0; start < 9; ++start)
    for (size_t len : {0, 1, 7, 8, 9, 63, 64, 65, 1000, 2990})
      EXPECT_EQ(crc32c(s.subspan(start, len), 0x1234), crc32c_slice8(s.subspan(start, len), 0x1234))
          << start << "+" << len;
}

std::string sample_batch() {
  BatchBuilder b(1'700'000'000'000);
  b.add("k1", "v1");
  b.add(std::nullopt, "value without key", 5);
  b.add("key without value", std::nullopt, 3);
  b.add(std::nullopt, std::nullopt, 9);
  b.add("", "", 1);
  return b.finish();
}

TEST(BatchBuilder, ProducesAValidBatchWithTheDocumentedHeader) {
  BatchBuilder b(1000);
  b.add("k", "v", 0);
  b.add("k2", "v2", 7);
  EXPECT_EQ(b.record_count(), 2u);
  const std::string batch = b.finish();
  EXPECT_EQ(b.record_count(), 0u) << "finish resets the builder";
  ASSERT_EQ(validate_batch(batch), errc::none);
  const BatchView view(batch);
  EXPECT_EQ(view.base_offset(), Offset{0});
  EXPECT_EQ(view.last_offset(), Offset{1});
  EXPECT_EQ(view.partition_leader_epoch(), LeaderEpoch{-1});
  EXPECT_EQ(view.record_count(), 2);
  EXPECT_EQ(view.first_timestamp(), 1000);
  EXPECT_EQ(view.max_timestamp(), 1007);
  EXPECT_EQ(view.size_bytes(), batch.size());
  // 61-byte header + per record 16 bytes of lengths and deltas + key/value bytes.
  EXPECT_EQ(batch.size(), 61u + (16 + 2) + (16 + 4));
  EXPECT_EQ(batch[16], 2) << "magic";
}

TEST(BatchBuilder, RoundTripsThroughDecode) {
  const std::string batch = sample_batch();
  ASSERT_EQ(validate_batch(batch), errc::none);
  std::vector<Record> records;
  ASSERT_EQ(decode_records(batch, records), errc::none);
  ASSERT_EQ(records.size(), 5u);
  const int64_t t0 = 1'700'000'000'000;
  EXPECT_EQ(records[0], (Record{Offset{0}, t0, "k1", "v1", LeaderEpoch{-1}}));
  EXPECT_EQ(records[1],
            (Record{Offset{1}, t0 + 5, std::nullopt, "value without key", LeaderEpoch{-1}}));
  EXPECT_EQ(records[2],
            (Record{Offset{2}, t0 + 3, "key without value", std::nullopt, LeaderEpoch{-1}}));
  EXPECT_EQ(records[3], (Record{Offset{3}, t0 + 9, std::nullopt, std::nullopt, LeaderEpoch{-1}}));
  EXPECT_EQ(records[4], (Record{Offset{4}, t0 + 1, std::string(), std::string(), LeaderEpoch{-1}}));
}

TEST(StampBatch, SetsOffsetAndEpochWithoutBreakingTheCrc) {
  std::string batch = sample_batch();
  stamp_batch(batch, Offset{1234}, LeaderEpoch{7});
  ASSERT_EQ(validate_batch(batch), errc::none);
  std::vector<Record> records;
  ASSERT_EQ(decode_records(batch, records), errc::none);
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records.front().offset, Offset{1234});
  EXPECT_EQ(records.back().offset, Offset{1238});
  EXPECT_EQ(records.back().leader_epoch, LeaderEpoch{7});
  EXPECT_EQ(BatchView(batch).last_offset(), Offset{1238});
}

TEST(ValidateBatch, RejectsEveryFlippedByteTheCrcOrStructureCovers) {
  const std::string good = sample_batch();
  for (size_t i = 0; i < good.size(); ++i) {
    for (const unsigned char flip : {0x01, 0x80, 0xFF}) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ flip);
      const errc result = validate_batch(bad);
      if (i < 8 || (i >= 12 && i < 16)) {
        // base_offset and partition_leader_epoch are outside the CRC by design.
        EXPECT_EQ(result, errc::none) << "byte " << i;
      } else {
        EXPECT_EQ(result, errc::corrupt_message) << "byte " << i << " flip " << int(flip);
      }
    }
  }
}

TEST(ValidateBatch, RejectsEveryTruncationAndEveryExtension) {
  const std::string good = sample_batch();
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_EQ(validate_batch(std::span<const char>(good).first(n)), errc::corrupt_message) << n;
  EXPECT_EQ(validate_batch(good + "x"), errc::corrupt_message);
  EXPECT_EQ(validate_batch(good + good), errc::corrupt_message) << "exactly one batch";
}

TEST(ValidateBatch, RejectsAnEmptyBatch) {
  BatchBuilder b(0);
  EXPECT_EQ(validate_batch(b.finish()), errc::corrupt_message);
}

TEST(DecodeRecords, ReadsConcatenatedBatchesAndIgnoresATrailingPartialOne) {
  std::string a = sample_batch();
  stamp_batch(a, Offset{0}, LeaderEpoch{1});
  std::string b = sample_batch();
  stamp_batch(b, Offset{5}, LeaderEpoch{2});
  const std::string both = a + b;
  for (size_t cut = a.size(); cut < both.size(); ++cut) {
    std::vector<Record> records;
    ASSERT_EQ(decode_records(std::span<const char>(both).first(cut), records), errc::none) << cut;
    EXPECT_EQ(records.size(), 5u) << cut;
  }
  std::vector<Record> records;
  ASSERT_EQ(decode_records(both, records), errc::none);
  ASSERT_EQ(records.size(), 10u);
  EXPECT_EQ(records[5].offset, Offset{5});
  EXPECT_EQ(records[5].leader_epoch, LeaderEpoch{2});
  EXPECT_EQ(decode_records({}, records), errc::none);
  EXPECT_EQ(records.size(), 10u) << "nothing appended for empty input";
}

TEST(DecodeRecords, FailsOnACorruptBatchAfterGoodOnes) {
  const std::string a = sample_batch();
  std::string b = sample_batch();
  b[b.size() - 1] ^= 0x20;
  std::vector<Record> records;
  EXPECT_EQ(decode_records(a + b, records), errc::corrupt_message);
  EXPECT_EQ(records.size(), 5u) << "records of the good batch before it are kept";
}

TEST(DecodeRecords, FailsOnAnImpossibleLengthField) {
  std::string garbage(12, '\0');  // batch_length 0 < header: cannot be a cut batch
  std::vector<Record> records;
  EXPECT_EQ(decode_records(garbage, records), errc::corrupt_message);
}

TEST(SplitBatches, ReturnsOneSpanPerCompleteBatch) {
  const std::string a = sample_batch();
  BatchBuilder bb(5);
  bb.add("x", "y");
  const std::string b = bb.finish();
  const std::string all = a + b + a.substr(0, 30);
  std::vector<std::span<const char>> parts;
  ASSERT_EQ(split_batches(all, parts), errc::none);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(std::string(parts[0].begin(), parts[0].end()), a);
  EXPECT_EQ(std::string(parts[1].begin(), parts[1].end()), b);

  std::string bad = a + b;
  bad[a.size() + 30] ^= 1;
  parts.clear();
  EXPECT_EQ(split_batches(bad, parts), errc::corrupt_message);
}

}  // namespace
}  // namespace faultline::cluster
