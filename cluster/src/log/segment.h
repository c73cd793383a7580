// Internals of PartitionLog: one segment (a .log file and its sparse .index) and the sequential
// reader used to walk batches in it. Not part of the public API.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "faultline/cluster/log/open_file_cache.h"
#include "faultline/cluster/types.h"
#include "log/file.h"

namespace faultline::cluster::log_detail {

struct IndexEntry {
  uint32_t relative_offset;  // batch base offset - segment base
  uint32_t position;         // byte position of the batch in the .log file
  friend bool operator==(const IndexEntry&, const IndexEntry&) = default;
};
inline constexpr size_t kIndexEntryBytes = 8;

// What a walk needs from a batch header, without the records.
struct BatchHeader {
  uint64_t position = 0;
  uint64_t size = 0;
  Offset base;
  Offset last;
  LeaderEpoch epoch;
};

// Reads a file front to back through a window buffer, so that walking many small batch headers
// costs one pread per window rather than one per batch. Allocation is bounded by what the file
// holds (callers check lengths against the file size first).
class WindowReader {
 public:
  WindowReader(int fd, const std::filesystem::path& path, uint64_t file_size, size_t window)
      : fd_(fd), path_(path), file_size_(file_size), window_(window) {}
  // The n bytes at pos (pos + n <= file size), valid until the next call.
  std::error_code view(uint64_t pos, size_t n, std::span<const char>& out);

 private:
  int fd_;
  const std::filesystem::path& path_;
  uint64_t file_size_;
  size_t window_;
  std::string buf_;
  uint64_t buf_pos_ = 0;
};

struct Segment {
  Offset base;
  Offset end;         // offset after the last record (== base when empty)
  uint64_t size = 0;  // bytes of complete batches in the .log file
  // Reached through the process's OpenFileCache: open them for each use (open_file_cache.h).
  OpenFileCache::File log;
  OpenFileCache::File index;
  std::vector<IndexEntry> entries;
  uint64_t bytes_since_index = 0;  // batch bytes since the last index entry (Kafka's rule)

  // Position to start scanning from to find `target`: that of the last index entry at or before
  // it, 0 when none.
  uint64_t scan_start_for(Offset target) const { return seek(target).position; }
  // The same, with the base offset of the batch found there (the segment base when 0).
  struct SeekPoint {
    uint64_t position;
    Offset batch_base;
  };
  SeekPoint seek(Offset target) const;

  // The writer's indexing rule, shared by append and by the rebuild so both give the same index:
  // a batch at `position` gets an entry when at least interval bytes were written since the last
  // one. Returns whether it added one (to entries).
  bool note_batch(uint64_t position, Offset batch_base, uint64_t batch_size, size_t interval);

  // Writes entries[from..] to the .index file and cuts the file to the entries held.
  std::error_code write_index_from(size_t from);
};

enum class WalkStop { end_of_data, bad_batch };
struct WalkResult {
  WalkStop stop = WalkStop::end_of_data;
  uint64_t position = 0;  // where the walk ended: the start of the bad batch, or the end
};

// Walks the batch headers of `seg` from `position` (a batch start) to its size, calling
// fn(header) for each; fn returns false to stop early. With `verify`, every batch is read whole and
// must pass validate_batch; without, only the header is checked for plausibility (length fits in
// the file, base offset not before the segment, last offset delta >= 0). A bad batch ends the
// walk without an error: `result` says where and why it ended. Errors are I/O failures only.
std::error_code walk_batches(const Segment& seg, uint64_t position, bool verify,
                             const std::function<bool(const BatchHeader&)>& fn,
                             WalkResult* result = nullptr);

// The 20-digit zero-padded file name stem of a segment.
std::string segment_stem(Offset base);

}  // namespace faultline::cluster::log_detail
