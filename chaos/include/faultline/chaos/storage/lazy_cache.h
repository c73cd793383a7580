// The data model of faultline-lazyfs: what a file looks like to its writer while some of its
// writes are not yet durable (not fsynced), and what is left of it after a power loss.
//
// Each file keeps its un-fsynced changes as an ordered list of operations (writes and truncates)
// over the backing file, which holds only what was made durable. A read overlays the list on the
// backing bytes; fsync applies the list to the backing file; a power loss drops it. Pure: the
// backing file is reached through a ByteSink, so tests run on strings. Not thread-safe: the FUSE
// shell serialises every call under one mutex.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

namespace faultline::chaos::storage {

// Global order of every change, across files: "the last write" of a torn-write is the largest.
using WriteSeq = uint64_t;

struct PendingWrite {
  WriteSeq seq = 0;
  uint64_t offset = 0;
  std::string bytes;
  friend bool operator==(const PendingWrite&, const PendingWrite&) = default;
};

struct PendingTruncate {
  WriteSeq seq = 0;
  uint64_t size = 0;
  friend bool operator==(const PendingTruncate&, const PendingTruncate&) = default;
};

using PendingOp = std::variant<PendingWrite, PendingTruncate>;

// Where un-fsynced changes go when they are made durable (the backing file's descriptor).
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual std::error_code write_at(uint64_t offset, std::string_view bytes) = 0;
  virtual std::error_code truncate(uint64_t size) = 0;
};

// One file's un-fsynced changes, oldest first.
class FileChanges {
 public:
  void write(WriteSeq seq, uint64_t offset, std::string_view bytes);
  void truncate(WriteSeq seq, uint64_t size);
  // The size the writer sees when the durable (backing) file has `backing_size` bytes.
  uint64_t visible_size(uint64_t backing_size) const;
  // `buf` holds the backing bytes at [offset, offset + buf.size()) (zeros past the backing end);
  // overlays the changes on it and returns how many of its bytes exist in the visible file.
  size_t overlay(uint64_t offset, std::span<char> buf, uint64_t backing_size) const;
  // Applies every change in order; stops at the first sink error.
  std::error_code apply(ByteSink& sink) const;
  // Keeps `keep_bytes` of write `seq` and drops every later change; false when `seq` is not a
  // write of this file.
  bool tear(WriteSeq seq, uint64_t keep_bytes);
  std::optional<WriteSeq> last_write_seq() const;
  const PendingWrite* find_write(WriteSeq seq) const;
  uint64_t pending_bytes() const { return pending_bytes_; }
  bool empty() const { return ops_.empty(); }
  const std::vector<PendingOp>& ops() const { return ops_; }

 private:
  std::vector<PendingOp> ops_;
  uint64_t pending_bytes_ = 0;
};

// Every file's un-fsynced changes, by path relative to the mount root ("/dir/file").
class LazyCache {
 public:
  WriteSeq write(const std::string& path, uint64_t offset, std::string_view bytes);
  void truncate(const std::string& path, uint64_t size);
  const FileChanges* find(const std::string& path) const;
  // Removes and returns a file's changes (fsync applies them; nullopt: nothing pending).
  std::optional<FileChanges> take(const std::string& path);
  // A renamed file (or directory: every path under it) keeps its changes; the replaced
  // destination's are dropped with it.
  void rename(const std::string& from, const std::string& to);
  void unlink(const std::string& path);
  // Power loss: everything not fsynced is gone. Returns the bytes dropped.
  uint64_t lose_unsynced();
  // The path holding the newest pending write, if any.
  std::optional<std::string> newest_write_path() const;
  // A torn last write: takes the changes of the file holding the newest pending write, cut so
  // that this write keeps only its torn prefix (torn_prefix_bytes). The caller applies them: the
  // disk got that far before the power went.
  struct Torn {
    std::string path;
    FileChanges changes;
    uint64_t write_bytes = 0;  // the size of the torn write
    uint64_t kept_bytes = 0;   // its prefix that is kept
  };
  std::optional<Torn> take_torn_newest(double keep_pct);
  std::vector<std::string> paths() const;
  uint64_t pending_bytes() const;

 private:
  std::map<std::string, FileChanges> files_;
  WriteSeq next_seq_ = 1;
};

// The torn prefix of a write of `size` bytes: `keep_pct` percent, rounded down, but never the
// whole write (a tear that keeps everything is no tear) unless it is one byte or empty.
uint64_t torn_prefix_bytes(uint64_t size, double keep_pct);

}  // namespace faultline::chaos::storage
