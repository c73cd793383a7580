// A bound on the segment files the partition logs of one process hold open at once.
//
// A broker has two files per replica (its active segment and its offset index), so 100k
// partitions of RF 3 on 5 brokers would need ~120k descriptors per broker if every log kept its
// files open. The logs instead reach their files through one OpenFileCache: it keeps at most
// `capacity` descriptors, least recently used out first, and a log whose file was closed opens
// it again on its next read, write or fsync. Idle partitions then cost no descriptors.
//
// Safety: a descriptor is handed out as an OpenFileCache::Lease, which keeps it open for as long
// as the caller holds it. Eviction only drops the cache's own reference, so a descriptor is never
// closed (and its number reused by another open) under a read, a write or an fsync in progress.
//
// Durability: closing a descriptor does not write anything back, and Linux's fsync on a
// descriptor opened later flushes every dirty page of the file and reports a write-back error
// that no one has seen yet, so a log that fsyncs after a reopen keeps its promise.
//
// A file is created once, by create(); a later open never creates it, so a segment deleted
// behind the broker's back is an I/O error (ENOENT), not a silently empty file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <system_error>
#include <unordered_map>

namespace faultline::cluster {

class OpenFileCache {
 public:
  // An open descriptor, valid while the lease is held (copies share it).
  class Lease {
   public:
    Lease() = default;
    int fd() const { return fd_; }

   private:
    friend class OpenFileCache;
    Lease(std::shared_ptr<const void> owner, int fd) : owner_(std::move(owner)), fd_(fd) {}
    std::shared_ptr<const void> owner_;  // closes the descriptor when the last holder lets go
    int fd_ = -1;
  };

  // One file reached through a cache. Thread-safe: the cache serialises what they share.
  // Destroying it closes the file's descriptor as soon as no lease holds it.
  class File {
   public:
    File() = default;
    File(File&&) noexcept = default;
    File& operator=(File&& other) noexcept;
    File(const File&) = delete;
    File& operator=(const File&) = delete;
    ~File();

    // The descriptor (opened read-write if the cache had closed it).
    std::error_code open(Lease& out) const;
    // Drops the cached descriptor, for example before the file is removed.
    void close();
    const std::filesystem::path& path() const { return path_; }

   private:
    friend class OpenFileCache;
    std::shared_ptr<OpenFileCache> cache_;
    std::filesystem::path path_;
    uint64_t key_ = 0;
  };

  // At most `capacity` descriptors held (at least 1).
  explicit OpenFileCache(size_t capacity);
  // A cache for a process whose descriptor limit is `limit`: room for `reserve` descriptors that
  // are not log files (sockets, checkpoints being written, the controller's log), the rest for
  // logs.
  static size_t capacity_for_limit(uint64_t limit, size_t reserve);

  // Opens `path` read-write, creating it if missing, and returns it as a File of this cache.
  static std::error_code create(const std::shared_ptr<OpenFileCache>& cache,
                                std::filesystem::path path, File& out);

  size_t capacity() const { return capacity_; }
  size_t held() const;
  // Descriptors opened again after an eviction (a measure of the cache being too small).
  uint64_t reopens() const;
  uint64_t evictions() const;

 private:
  struct Entry {
    uint64_t key;
    Lease lease;
  };
  using Lru = std::list<Entry>;  // most recently used first

  std::error_code acquire(uint64_t key, const std::filesystem::path& path, bool create, Lease& out);
  void insert_locked(uint64_t key, Lease lease, std::list<Entry>& evicted);
  void forget(uint64_t key);

  const size_t capacity_;
  mutable std::mutex mu_;
  Lru lru_;
  std::unordered_map<uint64_t, Lru::iterator> index_;
  uint64_t next_key_ = 1;
  uint64_t reopens_ = 0;
  uint64_t evictions_ = 0;
};

}  // namespace faultline::cluster
