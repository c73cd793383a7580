#include "faultline/cluster/kafka/records.h"

#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include "faultline/cluster/log/crc32c.h"
#include "faultline/cluster/log/record_batch.h"
#include "kafka/cursor.h"

namespace faultline::cluster::kafka {

using detail::Reader;
using detail::Writer;

namespace {

namespace L = batch_layout;

constexpr int16_t kAttributeCompression = 0x07;
constexpr int16_t kAttributeTransactional = 0x10;
constexpr int16_t kAttributeControl = 0x20;
// The smallest Kafka record: length, attributes, timestampDelta, offsetDelta, keyLength (-1),
// valueLength (-1) and headerCount, one byte each.
constexpr size_t kMinKafkaRecord = 7;
// The smallest record header: keyLength 0 and valueLength -1.
constexpr size_t kMinRecordHeader = 2;

// The header fields a produce is checked against; the rest (producer id, epoch, sequence, max
// timestamp, base offset, leader epoch) is not kept.
struct KafkaBatchHeader {
  int8_t magic = 0;
  uint32_t crc = 0;
  int16_t attributes = 0;
  int32_t last_offset_delta = 0;
  int64_t first_timestamp = 0;
  int32_t record_count = 0;
};

struct KafkaRecord {
  int64_t timestamp_ms = 0;
  std::optional<std::string_view> key;
  std::optional<std::string_view> value;
};

bool read_header(Reader& r, KafkaBatchHeader& h) {
  int64_t skip64 = 0;
  int32_t skip32 = 0;
  int16_t skip16 = 0;
  r.integer(skip64);  // base_offset
  r.integer(skip32);  // batch_length, checked by the caller
  r.integer(skip32);  // partition_leader_epoch
  r.integer(h.magic);
  r.integer(h.crc);
  r.integer(h.attributes);
  r.integer(h.last_offset_delta);
  r.integer(h.first_timestamp);
  r.integer(skip64);  // max_timestamp
  r.integer(skip64);  // producer_id
  r.integer(skip16);  // producer_epoch
  r.integer(skip32);  // base_sequence
  return r.integer(h.record_count);
}

// A record's key, value, header key or header value: varint length, -1 for null.
bool read_nullable(Reader& r, std::optional<std::string_view>& field) {
  int32_t n = 0;
  if (!r.varint(n) || n < -1)
    return r.fail();
  if (n == -1) {
    field.reset();
    return true;
  }
  std::string_view bytes;
  if (!r.view(static_cast<size_t>(n), bytes))
    return false;
  field = bytes;
  return true;
}

bool skip_record_headers(Reader& r) {
  uint32_t n = 0;
  if (!r.varint_count(n, kMinRecordHeader))
    return false;
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    std::optional<std::string_view> key;
    std::optional<std::string_view> value;
    if (!read_nullable(r, key) || !key)  // header keys are never null
      return r.fail();
    read_nullable(r, value);
  }
  return r.ok();
}

// One record, length prefix included; its offset delta must be `index`.
int16_t read_record(Reader& r, int32_t index, int64_t first_timestamp, KafkaRecord& out) {
  int32_t length = 0;
  std::string_view body;
  if (!r.varint(length) || length < 0 || !r.view(static_cast<size_t>(length), body))
    return kCorruptMessage;
  Reader fields(body);
  int8_t attributes = 0;
  int64_t timestamp_delta = 0;
  int32_t offset_delta = 0;
  fields.integer(attributes);
  fields.varlong(timestamp_delta);
  fields.varint(offset_delta);
  read_nullable(fields, out.key);
  read_nullable(fields, out.value);
  skip_record_headers(fields);
  if (!fields.done() || offset_delta != index)
    return kCorruptMessage;
  if (__builtin_add_overflow(first_timestamp, timestamp_delta, &out.timestamp_ms))
    return kInvalidRecord;
  return 0;
}

int16_t check_header(const KafkaBatchHeader& h, std::span<const char> batch) {
  if (h.magic != L::kMagicV2)
    return kCorruptMessage;
  if (h.crc != crc32c(batch.subspan(L::kAttributes)))
    return kCorruptMessage;
  if ((h.attributes & kAttributeCompression) != 0)
    return kUnsupportedCompression;
  if ((h.attributes & (kAttributeTransactional | kAttributeControl)) != 0)
    return kInvalidRecord;
  if (h.record_count < 0 || h.last_offset_delta != h.record_count - 1)
    return kCorruptMessage;
  if (h.record_count == 0)
    return kInvalidRecord;
  if (static_cast<size_t>(h.record_count) > (batch.size() - L::kHeaderSize) / kMinKafkaRecord)
    return kCorruptMessage;
  return 0;
}

// Reads the Kafka batch at the front of `bytes`, which must hold all of it; appends its records
// to `out` and sets `size` to the batch's size.
int16_t read_batch(std::span<const char> bytes, size_t& size, std::vector<KafkaRecord>& out) {
  const auto batch_size = batch_size_at(bytes);  // the length field sits where ours does
  if (bytes.size() < L::kHeaderSize || !batch_size || *batch_size > bytes.size())
    return kCorruptMessage;
  const auto batch = bytes.first(*batch_size);
  Reader r(batch);
  KafkaBatchHeader h;
  read_header(r, h);
  if (const int16_t error = check_header(h, batch); error != 0)
    return error;
  for (int32_t i = 0; i < h.record_count; ++i) {
    if (const int16_t error = read_record(r, i, h.first_timestamp, out.emplace_back()); error != 0)
      return error;
  }
  if (!r.done())
    return kCorruptMessage;
  size = *batch_size;
  return 0;
}

// Builds the internal batch; every timestamp must lie within int32 milliseconds of the first.
int16_t build_internal(const std::vector<KafkaRecord>& records, std::string& internal_batch) {
  const int64_t first_timestamp = records.front().timestamp_ms;
  BatchBuilder builder(first_timestamp);
  for (const KafkaRecord& record : records) {
    int64_t delta = 0;
    if (__builtin_sub_overflow(record.timestamp_ms, first_timestamp, &delta) ||
        delta < std::numeric_limits<int32_t>::min() || delta > std::numeric_limits<int32_t>::max())
      return kInvalidRecord;
    builder.add(record.key, record.value, static_cast<int32_t>(delta));
  }
  internal_batch = builder.finish();
  return 0;
}

void append_kafka_record(Writer& w, const Record& record, int64_t offset_delta,
                         int64_t timestamp_delta) {
  const int64_t key_length = record.key ? static_cast<int64_t>(record.key->size()) : -1;
  const int64_t value_length = record.value ? static_cast<int64_t>(record.value->size()) : -1;
  const size_t length = 1 + Writer::varint_size(timestamp_delta) +
                        Writer::varint_size(offset_delta) + Writer::varint_size(key_length) +
                        (record.key ? record.key->size() : 0) + Writer::varint_size(value_length) +
                        (record.value ? record.value->size() : 0) + 1;
  w.varlong(static_cast<int64_t>(length));
  w.integer<int8_t>(0);  // attributes
  w.varlong(timestamp_delta);
  w.varlong(offset_delta);
  w.varlong(key_length);
  if (record.key)
    w.raw(*record.key);
  w.varlong(value_length);
  if (record.value)
    w.raw(*record.value);
  w.varint(0);  // no headers
}

// Appends the Kafka form of one validated internal batch, whose records are `records`.
void append_kafka_batch(const BatchView& view, const std::vector<Record>& records,
                        std::string& out) {
  const size_t start = out.size();
  const int64_t base_offset = view.base_offset().value();
  const int64_t first_timestamp = view.first_timestamp();
  Writer w(out);
  w.integer(base_offset);
  w.integer<int32_t>(0);  // batch_length, patched below
  w.integer(view.partition_leader_epoch().value());
  w.integer(L::kMagicV2);
  w.integer<uint32_t>(0);  // crc, patched below
  w.integer<int16_t>(0);   // attributes: no compression, CreateTime, not transactional
  w.integer(view.last_offset_delta());
  w.integer(first_timestamp);
  w.integer(view.max_timestamp());
  w.integer<int64_t>(-1);  // producer_id
  w.integer<int16_t>(-1);  // producer_epoch
  w.integer<int32_t>(-1);  // base_sequence
  w.integer(view.record_count());
  // Offset deltas are 0..n-1 in a valid batch. Timestamps come back as first + delta; the
  // subtraction is done modulo 2^64 so that it recovers delta exactly, whatever the base.
  int64_t offset_delta = 0;
  for (const Record& record : records) {
    const auto timestamp_delta = static_cast<int64_t>(static_cast<uint64_t>(record.timestamp_ms) -
                                                      static_cast<uint64_t>(first_timestamp));
    append_kafka_record(w, record, offset_delta++, timestamp_delta);
  }
  w.patch_u32(start + L::kBatchLength, static_cast<uint32_t>(out.size() - start - L::kLogOverhead));
  const uint32_t crc = crc32c(std::span<const char>(out).subspan(start + L::kAttributes));
  w.patch_u32(start + L::kCrc, crc);
}

}  // namespace

int16_t to_internal_batch(std::span<const char> kafka_records, std::string& internal_batch,
                          int32_t& record_count) {
  std::vector<KafkaRecord> records;
  while (!kafka_records.empty()) {
    size_t size = 0;
    if (const int16_t error = read_batch(kafka_records, size, records); error != 0)
      return error;
    kafka_records = kafka_records.subspan(size);
  }
  if (records.empty())
    return kInvalidRecord;
  if (records.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    return kInvalidRecord;
  if (const int16_t error = build_internal(records, internal_batch); error != 0)
    return error;
  record_count = static_cast<int32_t>(records.size());
  return 0;
}

int16_t to_kafka_batches(std::span<const char> internal_batches, std::string& out) {
  std::vector<std::span<const char>> batches;
  // On a corrupt batch split_batches still lists the intact ones before it.
  const errc split = split_batches(internal_batches, batches);
  std::vector<Record> records;
  for (const auto& batch : batches) {
    records.clear();
    if (decode_records(batch, records) != errc::none)
      return kCorruptMessage;
    append_kafka_batch(BatchView(batch), records, out);
  }
  return split == errc::none ? 0 : kCorruptMessage;
}

}  // namespace faultline::cluster::kafka
