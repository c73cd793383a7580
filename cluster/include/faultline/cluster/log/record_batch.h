// The record batch: the unit the partition log stores, replicates and serves (ARCHITECTURE.md
// §2.7).
//
// The format is Kafka's v2 batch without varints or compression; all integers are big-endian.
// Header (61 bytes):
//   0 base_offset i64 | 8 batch_length i32 (bytes after this field) | 12 partition_leader_epoch i32
//   16 magic i8 (=2) | 17 crc u32 | 21 attributes i16 | 23 last_offset_delta i32
//   27 first_timestamp i64 (ms) | 35 max_timestamp i64 | 43 producer_id i64 | 51 producer_epoch i16
//   53 base_sequence i32 | 57 record_count i32
// then record_count records: offset_delta i32 | timestamp_delta i32 | key_length i32 (-1 = null) |
// key | value_length i32 (-1 = null) | value.
//
// The CRC (CRC32C) covers everything from `attributes` to the end of the batch. It leaves out
// base_offset and partition_leader_epoch on purpose: the leader stamps both in place when it
// appends, without recomputing the checksum the producer wrote.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/cluster/errc.h"
#include "faultline/cluster/types.h"

namespace faultline::cluster {

namespace batch_layout {
inline constexpr size_t kBaseOffset = 0;
inline constexpr size_t kBatchLength = 8;
inline constexpr size_t kPartitionLeaderEpoch = 12;
inline constexpr size_t kMagic = 16;
inline constexpr size_t kCrc = 17;
inline constexpr size_t kAttributes = 21;
inline constexpr size_t kLastOffsetDelta = 23;
inline constexpr size_t kFirstTimestamp = 27;
inline constexpr size_t kMaxTimestamp = 35;
inline constexpr size_t kProducerId = 43;
inline constexpr size_t kProducerEpoch = 51;
inline constexpr size_t kBaseSequence = 53;
inline constexpr size_t kRecordCount = 57;
inline constexpr size_t kHeaderSize = 61;
// base_offset + batch_length: the prefix that is not counted in batch_length.
inline constexpr size_t kLogOverhead = 12;
// The smallest record: four i32 fields, null key and value.
inline constexpr size_t kMinRecordSize = 16;
inline constexpr int8_t kMagicV2 = 2;
}  // namespace batch_layout

// Builds one batch in memory. The result has base_offset 0 and partition_leader_epoch -1 (the
// leader stamps both on append) and a correct CRC. Not thread-safe; one builder per batch.
class BatchBuilder {
 public:
  explicit BatchBuilder(int64_t first_timestamp_ms);
  void add(std::optional<std::string_view> key, std::optional<std::string_view> value,
           int32_t timestamp_delta = 0);
  // The finished batch; the builder is reset to an empty batch with the same first timestamp.
  // Callers must add at least one record: an empty batch does not validate.
  std::string finish();
  size_t record_count() const { return static_cast<size_t>(record_count_); }

 private:
  int64_t first_timestamp_ms_;
  int32_t record_count_ = 0;
  int32_t max_timestamp_delta_ = 0;
  std::string buf_;
};

// Checks that `bytes` is exactly ONE complete, intact batch: consistent lengths, magic 2, no
// compression, matching CRC, at least one record, records parsing exactly to the end with offset
// deltas 0..n-1 and last_offset_delta n-1. Never reads outside `bytes`, never allocates.
// Returns errc::none or errc::corrupt_message.
errc validate_batch(std::span<const char> bytes);

// Accessors for the header of an already validated batch (they do not check anything).
class BatchView {
 public:
  explicit BatchView(std::span<const char> one_batch) : bytes_(one_batch) {}
  Offset base_offset() const;
  Offset last_offset() const;
  LeaderEpoch partition_leader_epoch() const;
  int32_t last_offset_delta() const;
  int32_t record_count() const;
  int64_t first_timestamp() const;
  int64_t max_timestamp() const;
  size_t size_bytes() const { return bytes_.size(); }
  std::span<const char> bytes() const { return bytes_; }

 private:
  std::span<const char> bytes_;
};

// Overwrites the two fields the CRC does not cover. `batch` must hold at least a header.
void stamp_batch(std::span<char> batch, Offset base_offset, LeaderEpoch epoch);

// Size of the batch that starts at the front of `bytes`, read from its batch_length field:
// nullopt when fewer than 12 bytes are present or the length is impossible (< header). The
// result may exceed bytes.size() (a batch cut short).
std::optional<size_t> batch_size_at(std::span<const char> bytes);

struct Record {
  Offset offset;
  int64_t timestamp_ms = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  LeaderEpoch leader_epoch;
  friend bool operator==(const Record&, const Record&) = default;
};

// Decodes a concatenation of zero or more batches (a fetch response), validating each one and
// appending its records to `out`. A trailing partial batch (a fetch may cut the last one short)
// is ignored; any complete batch that does not validate yields errc::corrupt_message (records of
// the batches before it are left in `out`).
errc decode_records(std::span<const char> batches, std::vector<Record>& out);

// Splits a concatenation of batches into one span per complete batch, validating each (a corrupt
// batch -> errc::corrupt_message). Like decode_records it ignores a trailing partial batch: the
// caller can tell by summing the spans' sizes.
errc split_batches(std::span<const char> bytes, std::vector<std::span<const char>>& out);

}  // namespace faultline::cluster
