#include "log/segment.h"

#include <algorithm>

#include "faultline/cluster/log/record_batch.h"
#include "fmt/format.h"
#include "log/big_endian.h"

namespace faultline::cluster::log_detail {

namespace L = batch_layout;

std::error_code WindowReader::view(uint64_t pos, size_t n, std::span<const char>& out) {
  if (pos < buf_pos_ || pos + n > buf_pos_ + buf_.size()) {
    const uint64_t want = std::min<uint64_t>(std::max<uint64_t>(n, window_), file_size_ - pos);
    buf_.resize(want);
    buf_pos_ = pos;
    if (auto ec = fs::pread_exact(fd_, buf_, pos, path_)) {
      buf_.clear();
      return ec;
    }
  }
  out = std::span<const char>(buf_).subspan(pos - buf_pos_, n);
  return {};
}

Segment::SeekPoint Segment::seek(Offset target) const {
  const int64_t rel = target.value() - base.value();
  const auto it = std::upper_bound(
      entries.begin(), entries.end(), rel,
      [](int64_t r, const IndexEntry& e) { return r < static_cast<int64_t>(e.relative_offset); });
  if (it == entries.begin())
    return {0, base};
  const auto& e = *std::prev(it);
  return {e.position, Offset{base.value() + e.relative_offset}};
}

bool Segment::note_batch(uint64_t position, Offset batch_base, uint64_t batch_size,
                         size_t interval) {
  bool added = false;
  if (position > 0 && bytes_since_index >= interval) {
    entries.push_back({static_cast<uint32_t>(batch_base.value() - base.value()),
                       static_cast<uint32_t>(position)});
    bytes_since_index = 0;
    added = true;
  }
  bytes_since_index += batch_size;
  return added;
}

std::error_code Segment::write_index_from(size_t from) {
  std::string bytes;
  bytes.reserve((entries.size() - from) * kIndexEntryBytes);
  for (size_t i = from; i < entries.size(); ++i) {
    be::append<uint32_t>(bytes, entries[i].relative_offset);
    be::append<uint32_t>(bytes, entries[i].position);
  }
  OpenFileCache::Lease fd;
  if (auto ec = index.open(fd))
    return ec;
  if (auto ec = fs::pwrite_all(fd.fd(), bytes, from * kIndexEntryBytes, index.path()))
    return ec;
  return fs::truncate_fd(fd.fd(), entries.size() * kIndexEntryBytes, index.path());
}

std::error_code walk_batches(const Segment& seg, uint64_t position, bool verify,
                             const std::function<bool(const BatchHeader&)>& fn,
                             WalkResult* result) {
  WalkResult ignored;
  WalkResult& out = result ? *result : ignored;
  // Verified walks read every byte anyway: a large window. Header walks skip over batch bodies:
  // a window a few headers wide is enough for small batches and wastes little on large ones.
  if (position >= seg.size) {
    out.stop = WalkStop::end_of_data;
    out.position = position;
    return {};
  }
  OpenFileCache::Lease fd;
  if (auto ec = seg.log.open(fd))
    return ec;
  WindowReader reader(fd.fd(), seg.log.path(), seg.size, verify ? (1 << 20) : (16 << 10));
  out.stop = WalkStop::end_of_data;
  while (position < seg.size) {
    out.position = position;
    const uint64_t remaining = seg.size - position;
    std::span<const char> bytes;
    if (remaining < L::kHeaderSize) {
      out.stop = WalkStop::bad_batch;
      return {};
    }
    if (auto ec = reader.view(position, L::kHeaderSize, bytes))
      return ec;
    const auto size = batch_size_at(bytes);
    if (!size || *size > remaining) {
      out.stop = WalkStop::bad_batch;
      return {};
    }
    if (verify) {
      if (auto ec = reader.view(position, *size, bytes))
        return ec;
      if (validate_batch(bytes) != errc::none) {
        out.stop = WalkStop::bad_batch;
        return {};
      }
    }
    const BatchView view(bytes);
    BatchHeader h{position, *size, view.base_offset(), view.last_offset(),
                  view.partition_leader_epoch()};
    if (view.last_offset_delta() < 0 || h.base < seg.base) {
      out.stop = WalkStop::bad_batch;
      return {};
    }
    if (!fn(h))
      return {};
    position += *size;
  }
  out.position = position;
  return {};
}

std::string segment_stem(Offset base) {
  return fmt::format("{:020d}", base.value());
}

}  // namespace faultline::cluster::log_detail
