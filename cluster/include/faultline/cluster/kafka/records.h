// Conversion between Kafka's RecordBatch v2 (what Kafka clients produce and fetch) and the
// partition log's own batch (faultline/cluster/log/record_batch.h).
//
// Both share the 61-byte header and its CRC32C; they differ in the records. Kafka writes each
// record as: length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
// keyLength varint | key | valueLength varint | value | headerCount varint | headers (keyLength
// varint, key, valueLength varint, value), all varints zigzag-encoded and -1 meaning null. The
// internal batch has fixed-width i32 fields and no record headers.
//
// Pure functions on byte spans; they never read outside their input and never throw.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace faultline::cluster::kafka {

// Kafka error codes these conversions return, besides 0.
inline constexpr int16_t kCorruptMessage = 2, kUnsupportedCompression = 76, kInvalidRecord = 87;

// Turns the records field of a Kafka produce (one or more RecordBatch v2) into ONE internal batch
// holding every record in order, with its key, value and absolute timestamp (the internal batch's
// first timestamp is the first record's; its base offset and leader epoch are left for the leader
// to stamp). Record headers are dropped: the internal format has no place for them.
// Rejects, leaving `internal_batch` and `record_count` untouched:
//  - kCorruptMessage: a truncated batch or trailing bytes, inconsistent lengths (batch or record),
//    magic != 2, a bad CRC32C, record_count != last_offset_delta + 1, offset deltas not 0..n-1;
//  - kUnsupportedCompression: attributes & 7 != 0 (the log cannot store compressed batches);
//  - kInvalidRecord: a transactional or control batch, an empty batch or no records at all, a
//    record whose timestamp is more than ~24.8 days (int32 milliseconds) from the first record's.
// The producer id, epoch and sequence are not kept: idempotence is not provided.
int16_t to_internal_batch(std::span<const char> kafka_records, std::string& internal_batch,
                          int32_t& record_count);

// Turns internal batches as read from a partition log (whole batches back to back, possibly
// followed by a partial one, which is dropped) into Kafka RecordBatch v2 with the same base
// offset, partition leader epoch, offsets and timestamps, producer id -1, producer epoch -1, base
// sequence -1, attributes 0 (uncompressed, CreateTime) and a correct CRC32C, appended to `out`.
// Returns 0, or kCorruptMessage if a complete batch does not validate (`out` then holds the
// batches before it).
int16_t to_kafka_batches(std::span<const char> internal_batches, std::string& out);

}  // namespace faultline::cluster::kafka
