#include "faultline/cluster/log/partition_log.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

#include "faultline/cluster/log/record_batch.h"
#include "log/file.h"
#include "log/segment.h"

namespace faultline::cluster {

using log_detail::BatchHeader;
using log_detail::IndexEntry;
using log_detail::Segment;
using log_detail::walk_batches;
using log_detail::WalkStop;

namespace {

constexpr const char* kEpochCheckpoint = "leader-epoch-checkpoint";
constexpr const char* kHwCheckpoint = "hw-checkpoint";
constexpr uint64_t kMaxSegmentBytes = uint64_t{1} << 30;
// Descriptors a log without a shared cache keeps for itself (LogConfig::files).
constexpr size_t kOwnFiles = 64;

// "<20 digits>.log" -> base offset.
std::optional<int64_t> parse_segment_name(const std::string& name) {
  constexpr size_t kDigits = 20;
  if (name.size() != kDigits + 4 || !name.ends_with(".log"))
    return std::nullopt;
  int64_t base = 0;
  const auto [ptr, ec] = std::from_chars(name.data(), name.data() + kDigits, base);
  if (ec != std::errc{} || ptr != name.data() + kDigits || base < 0)
    return std::nullopt;
  return base;
}

std::optional<int64_t> parse_hw(std::string_view text) {
  if (!text.starts_with("0\n") || !text.ends_with("\n"))
    return std::nullopt;
  text = text.substr(2, text.size() - 3);
  int64_t hw = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), hw);
  if (ec != std::errc{} || ptr != text.data() + text.size() || hw < 0)
    return std::nullopt;
  return hw;
}

// Loads a trusted segment's index file and checks it against the segment: entries strictly
// increasing and inside it, the first indexed batch where the entry says, and no entry missing
// at the tail (the writer's rule replayed from the last entry). False: rebuild it.
bool load_index(Segment& seg, size_t interval) {
  uint64_t bytes = 0;
  OpenFileCache::Lease index;
  if (seg.index.open(index) || fs::file_size(index.fd(), seg.index.path(), bytes) ||
      bytes % log_detail::kIndexEntryBytes != 0 || bytes / log_detail::kIndexEntryBytes > seg.size)
    return false;
  std::string raw(bytes, '\0');
  if (fs::pread_exact(index.fd(), raw, 0, seg.index.path()))
    return false;
  seg.entries.clear();
  for (size_t i = 0; i < raw.size(); i += log_detail::kIndexEntryBytes) {
    IndexEntry e{};
    for (int k = 0; k < 4; ++k) {
      e.relative_offset = e.relative_offset << 8 | static_cast<unsigned char>(raw[i + k]);
      e.position = e.position << 8 | static_cast<unsigned char>(raw[i + 4 + k]);
    }
    if (e.position == 0 || e.position >= seg.size ||
        static_cast<int64_t>(e.relative_offset) >= seg.end.value() - seg.base.value())
      return false;
    if (!seg.entries.empty() && (e.relative_offset <= seg.entries.back().relative_offset ||
                                 e.position <= seg.entries.back().position))
      return false;
    seg.entries.push_back(e);
  }
  const uint64_t from = seg.entries.empty() ? 0 : seg.entries.back().position;
  const int64_t from_rel = seg.entries.empty() ? 0 : seg.entries.back().relative_offset;
  bool consistent = true;
  uint64_t since = 0;
  log_detail::WalkResult walked;
  const auto ec = walk_batches(
      seg, from, /*verify=*/false,
      [&](const BatchHeader& h) {
        if (h.position == from && h.base.value() - seg.base.value() != from_rel) {
          consistent = false;  // the last entry does not point at the batch it names
          return false;
        }
        if (h.position != from && since >= interval) {
          consistent = false;  // short: the writer would have indexed this batch
          return false;
        }
        since += h.size;
        return true;
      },
      &walked);
  // A walk that trips over a bad header started from a position that is not a batch start.
  if (ec || !consistent || walked.stop == WalkStop::bad_batch)
    return false;
  seg.bytes_since_index = since;
  return true;
}

std::error_code rebuild_index(Segment& seg, size_t interval) {
  seg.entries.clear();
  seg.bytes_since_index = 0;
  log_detail::WalkResult walked;
  if (auto ec = walk_batches(
          seg, 0, /*verify=*/false,
          [&](const BatchHeader& h) {
            seg.note_batch(h.position, h.base, h.size, interval);
            return true;
          },
          &walked))
    return ec;
  if (walked.stop == WalkStop::bad_batch)
    spdlog::warn("event=log_segment_unreadable_tail segment={} position={} size={}",
                 seg.log.path().string(), walked.position, seg.size);
  return seg.write_index_from(0);
}

}  // namespace

PartitionLog::PartitionLog(std::filesystem::path dir, LogConfig cfg)
    : dir_(std::move(dir)), cfg_(cfg) {}

PartitionLog::~PartitionLog() = default;

std::unique_ptr<PartitionLog> PartitionLog::open(std::filesystem::path dir, LogConfig cfg,
                                                 std::error_code& ec) {
  ec.clear();
  cfg.segment_bytes = std::clamp<uint64_t>(cfg.segment_bytes, 1, kMaxSegmentBytes);
  if (!cfg.files)
    cfg.files = std::make_shared<OpenFileCache>(kOwnFiles);
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    spdlog::error("event=log_open_failed dir={} error=\"{}\"", dir.string(), ec.message());
    return nullptr;
  }
  std::unique_ptr<PartitionLog> log(new PartitionLog(std::move(dir), cfg));
  ec = log->recover();
  if (ec)
    return nullptr;
  log->publish_bounds();
  return log;
}

std::error_code PartitionLog::add_segment(Offset base) {
  auto seg = std::make_unique<Segment>();
  seg->base = base;
  seg->end = base;
  const std::string stem = log_detail::segment_stem(base);
  if (auto ec = OpenFileCache::create(cfg_.files, dir_ / (stem + ".log"), seg->log))
    return ec;
  if (auto ec = OpenFileCache::create(cfg_.files, dir_ / (stem + ".index"), seg->index))
    return ec;
  segments_.push_back(std::move(seg));
  return {};
}

std::error_code PartitionLog::recover() {
  std::error_code ec;
  std::vector<int64_t> bases;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".tmp")) {
      // A checkpoint write interrupted before its rename; the previous version is intact.
      if (auto rm = fs::remove_file(entry.path()))
        return rm;
    } else if (const auto base = parse_segment_name(name)) {
      bases.push_back(*base);
    }
  }
  if (ec)
    return ec;
  std::sort(bases.begin(), bases.end());
  if (bases.empty())
    bases.push_back(0);
  for (const int64_t base : bases) {
    if (auto e = add_segment(Offset{base}))
      return e;
    Segment& seg = *segments_.back();
    OpenFileCache::Lease fd;
    if (auto e = seg.log.open(fd))
      return e;
    if (auto e = fs::file_size(fd.fd(), seg.log.path(), seg.size))
      return e;
  }
  for (size_t i = 0; i + 1 < segments_.size(); ++i) {
    Segment& seg = *segments_[i];
    seg.end = segments_[i + 1]->base;
    if (!load_index(seg, cfg_.index_interval_bytes)) {
      spdlog::info("event=log_index_rebuilt segment={}", seg.log.path().string());
      if (auto e = rebuild_index(seg, cfg_.index_interval_bytes))
        return e;
    }
  }

  // The epoch history: the checkpoint if readable, else rebuilt from the older segments'
  // batches; the last segment's epochs are merged in by its recovery scan below either way.
  bool epochs_dirty = false;
  std::string text;
  bool exists = false;
  if (auto e = fs::read_small_file(dir_ / kEpochCheckpoint, text, exists))
    return e;
  if (auto parsed = exists ? LeaderEpochCache::parse(text) : std::nullopt) {
    epochs_ = std::move(*parsed);
  } else {
    if (exists)
      spdlog::warn("event=log_epoch_checkpoint_unreadable dir={}", dir_.string());
    epochs_dirty = true;
    for (size_t i = 0; i + 1 < segments_.size(); ++i) {
      if (auto e = walk_batches(*segments_[i], 0, false, [&](const BatchHeader& h) {
            if (h.epoch > epochs_.latest_epoch())
              epochs_.assign(h.epoch, h.base);
            return true;
          }))
        return e;
    }
  }

  // Recover the last segment: keep the longest prefix of valid batches in offset sequence.
  Segment& last = *segments_.back();
  last.entries.clear();
  last.bytes_since_index = 0;
  Offset expected = last.base;
  uint64_t good_end = 0;
  if (auto e = walk_batches(last, 0, /*verify=*/true, [&](const BatchHeader& h) {
        if (h.base != expected)
          return false;
        last.note_batch(h.position, h.base, h.size, cfg_.index_interval_bytes);
        if (h.epoch > epochs_.latest_epoch()) {
          epochs_.assign(h.epoch, h.base);
          epochs_dirty = true;
        }
        expected = h.last.next();
        good_end = h.position + h.size;
        return true;
      }))
    return e;
  if (good_end < last.size) {
    spdlog::warn(
        "event=log_torn_tail_truncated segment={} valid_bytes={} dropped_bytes={} "
        "log_end_offset={}",
        last.log.path().string(), good_end, last.size - good_end, expected.value());
    OpenFileCache::Lease fd;
    if (auto e = last.log.open(fd))
      return e;
    if (auto e = fs::truncate_fd(fd.fd(), good_end, last.log.path()))
      return e;
    if (auto e = fs::sync_fd(fd.fd(), last.log.path()))
      return e;
    last.size = good_end;
  }
  last.end = expected;
  if (auto e = last.write_index_from(0))
    return e;
  log_end_ = last.end;

  if (epochs_.truncate_from_end(log_end_))
    epochs_dirty = true;
  if (epochs_dirty)
    if (auto e = persist_epochs(epochs_))
      return e;

  if (auto e = fs::read_small_file(dir_ / kHwCheckpoint, text, exists))
    return e;
  if (exists) {
    if (const auto hw = parse_hw(text))
      hw_checkpoint_.store(std::min(Offset{*hw}, log_end_).value());
    else
      spdlog::warn("event=log_hw_checkpoint_unreadable dir={}", dir_.string());
  }
  return fs::sync_dir(dir_);
}

std::error_code PartitionLog::persist_epochs(const LeaderEpochCache& cache) {
  return fs::write_file_atomically(dir_ / kEpochCheckpoint, cache.serialize());
}

size_t PartitionLog::segment_index_for(Offset offset) const {
  const auto it =
      std::upper_bound(segments_.begin(), segments_.end(), offset,
                       [](Offset o, const std::unique_ptr<Segment>& s) { return o < s->base; });
  return it == segments_.begin() ? 0 : static_cast<size_t>(it - segments_.begin()) - 1;
}

std::error_code PartitionLog::roll_locked() {
  // Older segments are trusted at recovery, so they must be on disk before writes move on.
  if (auto ec = sync_segment(*segments_.back()))
    return ec;
  if (auto ec = add_segment(log_end_))
    return ec;
  // A stale file of the same name (an earlier life of this offset) must not leak into it.
  for (const OpenFileCache::File* file : {&segments_.back()->log, &segments_.back()->index}) {
    OpenFileCache::Lease fd;
    if (auto ec = file->open(fd))
      return ec;
    if (auto ec = fs::truncate_fd(fd.fd(), 0, file->path()))
      return ec;
  }
  return fs::sync_dir(dir_);
}

std::error_code PartitionLog::append_locked(std::span<const char> head, std::span<const char> rest,
                                            Offset base, Offset next) {
  const size_t size = head.size() + rest.size();
  if (segments_.back()->size > 0 && segments_.back()->size + size > cfg_.segment_bytes)
    if (auto ec = roll_locked())
      return ec;
  Segment& seg = *segments_.back();
  const uint64_t pos = seg.size;
  const size_t entries_before = seg.entries.size();
  const uint64_t since_before = seg.bytes_since_index;
  OpenFileCache::Lease fd;
  if (auto ec = seg.log.open(fd))
    return ec;
  const bool indexed = seg.note_batch(pos, base, size, cfg_.index_interval_bytes);
  std::error_code ec = fs::pwritev_all(fd.fd(), head, rest, pos, seg.log.path());
  if (!ec && indexed)
    ec = seg.write_index_from(entries_before);
  if (ec) {
    // Leave the segment as it was: a half-written batch would otherwise sit before the next one.
    (void)fs::truncate_fd(fd.fd(), pos, seg.log.path());
    seg.entries.resize(entries_before);
    seg.bytes_since_index = since_before;
    return ec;
  }
  seg.size += size;
  seg.end = next;
  log_end_ = next;
  publish_bounds();
  return {};
}

std::error_code PartitionLog::sync_after_append(std::unique_lock<std::shared_mutex>& lock) {
  if (!cfg_.fsync_every_batch)
    return {};
  // The batch is written; only its durability is pending. Readers may go on meanwhile (they
  // see it already, as Kafka's do: the HW, not the fsync, decides what consumers get). If
  // another append rolled the segment in between, the roll fsynced ours.
  lock.unlock();
  std::shared_lock shared(mu_);
  const Segment& seg = *segments_.back();
  OpenFileCache::Lease fd;
  if (auto ec = seg.log.open(fd))
    return ec;
  const auto start = std::chrono::steady_clock::now();
  auto ec = fs::sync_fd(fd.fd(), seg.log.path());
  last_fsync_ns_ =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  return ec;
}

Offset PartitionLog::append_as_leader(std::span<const char> batch, LeaderEpoch epoch,
                                      std::error_code& ec) {
  std::unique_lock lock(mu_);
  ec.clear();
  const auto size = batch_size_at(batch);
  if (!size || *size != batch.size()) {
    ec = errc::corrupt_message;
    return log_end_;
  }
  if (epoch == kNoLeaderEpoch || epoch.value() < 0) {
    ec = errc::invalid_request;
    return log_end_;
  }
  if (epoch < epochs_.latest_epoch()) {
    ec = errc::fenced_leader_epoch;
    return log_end_;
  }
  const Offset base = log_end_;
  // Only the header is copied to be stamped; the rest is written from the caller's bytes.
  std::array<char, batch_layout::kHeaderSize> header{};
  std::copy_n(batch.begin(), header.size(), header.begin());
  stamp_batch(header, base, epoch);
  const Offset next{base.value() + BatchView(batch).last_offset_delta() + 1};
  if (epoch > epochs_.latest_epoch()) {
    LeaderEpochCache updated = epochs_;
    updated.assign(epoch, base);
    if ((ec = persist_epochs(updated)))
      return base;
    epochs_ = std::move(updated);
  }
  if ((ec = append_locked(header, batch.subspan(header.size()), base, next))) {
    // The new epoch has no record after all; the checkpoint is fixed at the next change or open.
    epochs_.truncate_from_end(log_end_);
    return base;
  }
  ec = sync_after_append(lock);
  return base;
}

std::error_code PartitionLog::append_as_follower(std::span<const char> batches) {
  // Checksums first, outside the lock: they are the expensive part and need no log state.
  std::vector<std::span<const char>> parts;
  for (auto rest = batches; !rest.empty();) {
    const auto size = batch_size_at(rest);
    if (!size || *size > rest.size() || validate_batch(rest.first(*size)) != errc::none)
      return errc::corrupt_message;
    parts.push_back(rest.first(*size));
    rest = rest.subspan(*size);
  }
  if (parts.empty())
    return {};
  std::unique_lock lock(mu_);
  if (BatchView(parts.front()).base_offset() != log_end_)
    return errc::offset_out_of_range;

  LeaderEpochCache updated = epochs_;
  bool epochs_changed = false;
  Offset expected = log_end_;
  for (const auto& part : parts) {
    const BatchView view(part);
    const LeaderEpoch epoch = view.partition_leader_epoch();
    if (view.base_offset() != expected || epoch.value() < 0 || epoch < updated.latest_epoch())
      return errc::corrupt_message;
    if (epoch > updated.latest_epoch())
      epochs_changed |= updated.assign(epoch, view.base_offset());
    expected = view.last_offset().next();
  }
  if (epochs_changed) {
    if (auto ec = persist_epochs(updated))
      return ec;
    epochs_ = std::move(updated);
  }
  for (const auto& part : parts) {
    const BatchView view(part);
    if (auto ec = append_locked({}, part, view.base_offset(), view.last_offset().next())) {
      epochs_.truncate_from_end(log_end_);
      return ec;
    }
  }
  return sync_after_append(lock);
}

SharedBytes PartitionLog::read(Offset from, size_t max_bytes, Offset upper_exclusive,
                               std::error_code& ec) const {
  std::shared_lock lock(mu_);
  ec.clear();
  if (from < segments_.front()->base || from > log_end_) {
    ec = errc::offset_out_of_range;
    return {};
  }
  // First the byte range to take from each segment (headers only), then one buffer for all of
  // them, filled without being zeroed first.
  struct Range {
    const Segment* seg;
    uint64_t start;
    uint64_t end;
  };
  std::vector<Range> ranges;
  size_t total = 0;
  bool done = false;
  for (size_t i = segment_index_for(from); i < segments_.size() && !done; ++i) {
    const Segment& seg = *segments_[i];
    const uint64_t scan_from = seg.base <= from ? seg.scan_start_for(from) : 0;
    Range range{&seg, 0, 0};
    ec = walk_batches(seg, scan_from, /*verify=*/false, [&](const BatchHeader& h) {
      if (h.last < from)
        return true;
      if (h.base >= upper_exclusive) {
        done = true;
        return false;
      }
      const uint64_t taken = total + (range.end - range.start);
      if (taken > 0 && taken + h.size > max_bytes) {
        done = true;
        return false;
      }
      if (range.end == range.start)
        range.start = h.position;
      range.end = h.position + h.size;
      return true;
    });
    if (ec)
      return {};
    if (range.end > range.start) {
      total += range.end - range.start;
      ranges.push_back(range);
    }
  }
  auto [bytes, out] = SharedBytes::allocate(total);
  for (const Range& range : ranges) {
    const auto length = static_cast<size_t>(range.end - range.start);
    OpenFileCache::Lease fd;
    if ((ec = range.seg->log.open(fd)) ||
        (ec = fs::pread_exact(fd.fd(), out.first(length), range.start, range.seg->log.path())))
      return {};
    out = out.subspan(length);
  }
  return bytes;
}

void PartitionLog::publish_bounds() {
  start_published_.store(segments_.front()->base.value(), std::memory_order_release);
  end_published_.store(log_end_.value(), std::memory_order_release);
}

Offset PartitionLog::log_start_offset() const {
  return Offset{start_published_.load(std::memory_order_acquire)};
}

Offset PartitionLog::log_end_offset() const {
  return Offset{end_published_.load(std::memory_order_acquire)};
}

size_t PartitionLog::segment_count() const {
  std::shared_lock lock(mu_);
  return segments_.size();
}

std::error_code PartitionLog::truncate_to(Offset new_end) {
  std::unique_lock lock(mu_);
  if (new_end >= log_end_)
    return {};
  const Offset target = std::max(new_end, segments_.front()->base);
  const size_t idx = segment_index_for(target);

  // Deleting whole segments first: a crash part way leaves a shorter log, which recovery handles.
  while (segments_.size() > idx + 1) {
    Segment& doomed = *segments_.back();
    doomed.log.close();
    doomed.index.close();
    if (auto ec = fs::remove_file(doomed.log.path()))
      return ec;
    if (auto ec = fs::remove_file(doomed.index.path()))
      return ec;
    segments_.pop_back();
  }
  Segment& seg = *segments_.back();
  // Walk from the index entry at or before target; everything before that point stays.
  const auto start = seg.seek(target);
  uint64_t cut = start.position;
  Offset new_log_end = start.batch_base;
  if (auto ec = walk_batches(seg, start.position, false, [&](const BatchHeader& h) {
        if (h.last >= target)
          return false;  // this batch holds target (or starts at it): it goes
        cut = h.position + h.size;
        new_log_end = h.last.next();
        return true;
      }))
    return ec;
  {
    OpenFileCache::Lease fd;
    if (auto ec = seg.log.open(fd))
      return ec;
    if (auto ec = fs::truncate_fd(fd.fd(), cut, seg.log.path()))
      return ec;
  }
  seg.size = cut;
  seg.end = new_log_end;
  std::erase_if(seg.entries, [&](const IndexEntry& e) { return e.position >= cut; });
  seg.bytes_since_index = cut - (seg.entries.empty() ? 0 : seg.entries.back().position);
  if (auto ec = seg.write_index_from(seg.entries.size()))
    return ec;
  log_end_ = new_log_end;
  publish_bounds();
  if (auto ec = sync_segment(seg))
    return ec;
  if (auto ec = fs::sync_dir(dir_))
    return ec;
  {
    std::lock_guard hw_lock(hw_mu_);
    hw_checkpoint_.store(std::min(hw_checkpoint_.load(), log_end_.value()));
  }
  LeaderEpochCache updated = epochs_;
  if (updated.truncate_from_end(log_end_)) {
    if (auto ec = persist_epochs(updated))
      return ec;
    epochs_ = std::move(updated);
  }
  return {};
}

std::error_code PartitionLog::flush() {
  // The fsyncs run outside the lock on leases of the active segment's descriptors: a flush on a
  // slow disk must not hold up appends and reads (they take the lock on the broker's io thread).
  // A segment rolled meanwhile was fsynced by the roll; the leases keep the files open whatever
  // happens to the segment.
  OpenFileCache::Lease log;
  OpenFileCache::Lease index;
  std::filesystem::path log_path;
  std::filesystem::path index_path;
  {
    std::shared_lock lock(mu_);
    const Segment& seg = *segments_.back();
    if (auto ec = seg.log.open(log))
      return ec;
    if (auto ec = seg.index.open(index))
      return ec;
    log_path = seg.log.path();
    index_path = seg.index.path();
  }
  if (auto ec = fs::sync_fd(log.fd(), log_path))
    return ec;
  return fs::sync_fd(index.fd(), index_path);
}

std::error_code PartitionLog::sync_segment(const Segment& seg) {
  for (const OpenFileCache::File* file : {&seg.log, &seg.index}) {
    OpenFileCache::Lease fd;
    if (auto ec = file->open(fd))
      return ec;
    if (auto ec = fs::sync_fd(fd.fd(), file->path()))
      return ec;
  }
  return {};
}

LeaderEpoch PartitionLog::latest_epoch() const {
  std::shared_lock lock(mu_);
  return epochs_.latest_epoch();
}

std::pair<LeaderEpoch, Offset> PartitionLog::end_offset_for_epoch(LeaderEpoch requested) const {
  std::shared_lock lock(mu_);
  return epochs_.end_offset_for(requested, log_end_);
}

std::vector<EpochEntry> PartitionLog::epoch_entries() const {
  std::shared_lock lock(mu_);
  return epochs_.entries();
}

Offset PartitionLog::high_watermark_checkpoint() const {
  return Offset{hw_checkpoint_.load()};
}

std::error_code PartitionLog::write_high_watermark_checkpoint(Offset hw) {
  std::lock_guard lock(hw_mu_);
  if (auto ec = fs::write_file_atomically(dir_ / kHwCheckpoint,
                                          "0\n" + std::to_string(hw.value()) + "\n"))
    return ec;
  hw_checkpoint_.store(hw.value());
  return {};
}

std::optional<std::chrono::nanoseconds> PartitionLog::last_fsync_duration() const {
  const int64_t ns = last_fsync_ns_.load();
  if (ns < 0)
    return std::nullopt;
  return std::chrono::nanoseconds(ns);
}

}  // namespace faultline::cluster
