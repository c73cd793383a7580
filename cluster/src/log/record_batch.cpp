#include "faultline/cluster/log/record_batch.h"

#include "faultline/cluster/log/crc32c.h"
#include "log/big_endian.h"

namespace faultline::cluster {

namespace L = batch_layout;

BatchBuilder::BatchBuilder(int64_t first_timestamp_ms) : first_timestamp_ms_(first_timestamp_ms) {
  buf_.assign(L::kHeaderSize, '\0');
}

void BatchBuilder::add(std::optional<std::string_view> key, std::optional<std::string_view> value,
                       int32_t timestamp_delta) {
  be::append<int32_t>(buf_, record_count_);
  be::append<int32_t>(buf_, timestamp_delta);
  for (const auto& field : {key, value}) {
    if (field) {
      be::append<int32_t>(buf_, static_cast<int32_t>(field->size()));
      buf_.append(*field);
    } else {
      be::append<int32_t>(buf_, -1);
    }
  }
  if (record_count_ == 0 || timestamp_delta > max_timestamp_delta_)
    max_timestamp_delta_ = timestamp_delta;
  ++record_count_;
}

std::string BatchBuilder::finish() {
  char* h = buf_.data();
  be::store<int64_t>(h + L::kBaseOffset, 0);
  be::store<int32_t>(h + L::kBatchLength, static_cast<int32_t>(buf_.size() - L::kLogOverhead));
  be::store<int32_t>(h + L::kPartitionLeaderEpoch, -1);
  h[L::kMagic] = L::kMagicV2;
  be::store<int16_t>(h + L::kAttributes, 0);
  be::store<int32_t>(h + L::kLastOffsetDelta, record_count_ - 1);
  be::store<int64_t>(h + L::kFirstTimestamp, first_timestamp_ms_);
  be::store<int64_t>(h + L::kMaxTimestamp, first_timestamp_ms_ + max_timestamp_delta_);
  be::store<int64_t>(h + L::kProducerId, -1);  // Kafka's "no producer id"
  be::store<int16_t>(h + L::kProducerEpoch, -1);
  be::store<int32_t>(h + L::kBaseSequence, -1);
  be::store<int32_t>(h + L::kRecordCount, record_count_);
  const uint32_t crc = crc32c(std::span<const char>(buf_).subspan(L::kAttributes));
  be::store<uint32_t>(buf_.data() + L::kCrc, crc);

  std::string out = std::move(buf_);
  buf_.assign(L::kHeaderSize, '\0');
  record_count_ = 0;
  max_timestamp_delta_ = 0;
  return out;
}

std::optional<size_t> batch_size_at(std::span<const char> bytes) {
  if (bytes.size() < L::kLogOverhead)
    return std::nullopt;
  const int32_t length = be::load<int32_t>(bytes.data() + L::kBatchLength);
  if (length < static_cast<int32_t>(L::kHeaderSize - L::kLogOverhead))
    return std::nullopt;
  return L::kLogOverhead + static_cast<size_t>(length);
}

namespace {

// Walks the records of a batch whose header is already checked. Calls on_record(delta,
// timestamp_delta, key, value) for each; returns false if they do not parse exactly to the end.
template <typename OnRecord>
bool walk_records(std::span<const char> batch, int32_t count, OnRecord&& on_record) {
  size_t pos = L::kHeaderSize;
  const size_t end = batch.size();
  const char* p = batch.data();
  auto read_i32 = [&](int32_t& v) {
    if (end - pos < 4)
      return false;
    v = be::load<int32_t>(p + pos);
    pos += 4;
    return true;
  };
  auto read_bytes = [&](std::optional<std::string_view>& field) {
    int32_t len = 0;
    if (!read_i32(len) || len < -1)
      return false;
    if (len == -1) {
      field.reset();
      return true;
    }
    if (end - pos < static_cast<size_t>(len))
      return false;
    field.emplace(p + pos, static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
    return true;
  };
  for (int32_t i = 0; i < count; ++i) {
    int32_t offset_delta = 0;
    int32_t timestamp_delta = 0;
    std::optional<std::string_view> key;
    std::optional<std::string_view> value;
    if (!read_i32(offset_delta) || offset_delta != i || !read_i32(timestamp_delta) ||
        !read_bytes(key) || !read_bytes(value))
      return false;
    on_record(i, timestamp_delta, key, value);
  }
  return pos == end;
}

}  // namespace

errc validate_batch(std::span<const char> bytes) {
  if (bytes.size() < L::kHeaderSize)
    return errc::corrupt_message;
  const auto size = batch_size_at(bytes);
  if (!size || *size != bytes.size())
    return errc::corrupt_message;
  const char* p = bytes.data();
  if (static_cast<int8_t>(p[L::kMagic]) != L::kMagicV2)
    return errc::corrupt_message;
  // Compression codec bits: we store and serve batches verbatim and cannot decode compressed
  // ones, so they are refused rather than half understood.
  if ((be::load<int16_t>(p + L::kAttributes) & 0x7) != 0)
    return errc::corrupt_message;
  const int32_t count = be::load<int32_t>(p + L::kRecordCount);
  if (count < 1 || static_cast<size_t>(count) > (bytes.size() - L::kHeaderSize) / L::kMinRecordSize)
    return errc::corrupt_message;
  if (be::load<int32_t>(p + L::kLastOffsetDelta) != count - 1)
    return errc::corrupt_message;
  if (be::load<uint32_t>(p + L::kCrc) != crc32c(bytes.subspan(L::kAttributes)))
    return errc::corrupt_message;
  if (!walk_records(bytes, count, [](auto&&...) {}))
    return errc::corrupt_message;
  return errc::none;
}

Offset BatchView::base_offset() const {
  return Offset{be::load<int64_t>(bytes_.data() + L::kBaseOffset)};
}
Offset BatchView::last_offset() const {
  return Offset{base_offset().value() + last_offset_delta()};
}
LeaderEpoch BatchView::partition_leader_epoch() const {
  return LeaderEpoch{be::load<int32_t>(bytes_.data() + L::kPartitionLeaderEpoch)};
}
int32_t BatchView::last_offset_delta() const {
  return be::load<int32_t>(bytes_.data() + L::kLastOffsetDelta);
}
int32_t BatchView::record_count() const {
  return be::load<int32_t>(bytes_.data() + L::kRecordCount);
}
int64_t BatchView::first_timestamp() const {
  return be::load<int64_t>(bytes_.data() + L::kFirstTimestamp);
}
int64_t BatchView::max_timestamp() const {
  return be::load<int64_t>(bytes_.data() + L::kMaxTimestamp);
}

void stamp_batch(std::span<char> batch, Offset base_offset, LeaderEpoch epoch) {
  be::store<int64_t>(batch.data() + L::kBaseOffset, base_offset.value());
  be::store<int32_t>(batch.data() + L::kPartitionLeaderEpoch, epoch.value());
}

namespace {

// Visits each complete batch of a concatenation, stopping silently at a trailing partial one.
template <typename OnBatch>
errc for_each_batch(std::span<const char> bytes, OnBatch&& on_batch) {
  while (bytes.size() >= L::kLogOverhead) {
    const auto size = batch_size_at(bytes);
    if (!size)
      return errc::corrupt_message;
    if (*size > bytes.size())
      break;  // cut short by the sender's byte budget
    const auto batch = bytes.first(*size);
    if (validate_batch(batch) != errc::none)
      return errc::corrupt_message;
    on_batch(batch);
    bytes = bytes.subspan(*size);
  }
  return errc::none;
}

}  // namespace

errc decode_records(std::span<const char> batches, std::vector<Record>& out) {
  return for_each_batch(batches, [&](std::span<const char> batch) {
    const BatchView view(batch);
    const int64_t base = view.base_offset().value();
    const int64_t first_ts = view.first_timestamp();
    const LeaderEpoch epoch = view.partition_leader_epoch();
    walk_records(batch, view.record_count(),
                 [&](int32_t delta, int32_t ts_delta, std::optional<std::string_view> key,
                     std::optional<std::string_view> value) {
                   Record r;
                   r.offset = Offset{base + delta};
                   r.timestamp_ms = first_ts + ts_delta;
                   if (key)
                     r.key.emplace(*key);
                   if (value)
                     r.value.emplace(*value);
                   r.leader_epoch = epoch;
                   out.push_back(std::move(r));
                 });
  });
}

errc split_batches(std::span<const char> bytes, std::vector<std::span<const char>>& out) {
  return for_each_batch(bytes, [&](std::span<const char> batch) { out.push_back(batch); });
}

}  // namespace faultline::cluster
