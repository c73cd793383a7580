#include "faultline/cluster/log/open_file_cache.h"

#include <algorithm>

#include "log/file.h"

namespace faultline::cluster {

OpenFileCache::OpenFileCache(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

size_t OpenFileCache::capacity_for_limit(uint64_t limit, size_t reserve) {
  return limit > reserve + 1 ? static_cast<size_t>(limit - reserve) : 1;
}

std::error_code OpenFileCache::create(const std::shared_ptr<OpenFileCache>& cache,
                                      std::filesystem::path path, File& out) {
  uint64_t key = 0;
  {
    std::lock_guard lock(cache->mu_);
    key = cache->next_key_++;
  }
  Lease lease;
  if (auto ec = cache->acquire(key, path, /*create=*/true, lease))
    return ec;
  out = File();
  out.cache_ = cache;
  out.path_ = std::move(path);
  out.key_ = key;
  return {};
}

std::error_code OpenFileCache::acquire(uint64_t key, const std::filesystem::path& path, bool create,
                                       Lease& out) {
  {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      out = it->second->lease;
      return {};
    }
  }
  // Opened outside the lock, so a slow open (a busy disk) holds up no other log.
  fs::FileHandle handle;
  if (auto ec = fs::open_rw(path, create, handle))
    return ec;
  // The last lease to let go closes it.
  const auto owner = std::make_shared<const fs::FileHandle>(std::move(handle));
  std::list<Entry> evicted;  // closed after the lock is released
  {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);  // another thread opened it meanwhile
      out = it->second->lease;
      return {};
    }
    if (!create)
      ++reopens_;
    out = Lease(owner, owner->get());
    insert_locked(key, out, evicted);
  }
  return {};
}

void OpenFileCache::insert_locked(uint64_t key, Lease lease, std::list<Entry>& evicted) {
  lru_.push_front(Entry{key, std::move(lease)});
  index_[key] = lru_.begin();
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().key);
    evicted.splice(evicted.end(), lru_, std::prev(lru_.end()));
    ++evictions_;
  }
}

void OpenFileCache::forget(uint64_t key) {
  std::list<Entry> dropped;
  std::lock_guard lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    dropped.splice(dropped.end(), lru_, it->second);
    index_.erase(it);
  }
}

size_t OpenFileCache::held() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

uint64_t OpenFileCache::reopens() const {
  std::lock_guard lock(mu_);
  return reopens_;
}

uint64_t OpenFileCache::evictions() const {
  std::lock_guard lock(mu_);
  return evictions_;
}

OpenFileCache::File& OpenFileCache::File::operator=(File&& other) noexcept {
  if (this != &other) {
    close();
    cache_ = std::move(other.cache_);
    path_ = std::move(other.path_);
    key_ = other.key_;
  }
  return *this;
}

OpenFileCache::File::~File() {
  close();
}

std::error_code OpenFileCache::File::open(Lease& out) const {
  if (!cache_)
    return std::make_error_code(std::errc::bad_file_descriptor);
  return cache_->acquire(key_, path_, /*create=*/false, out);
}

void OpenFileCache::File::close() {
  if (cache_)
    cache_->forget(key_);
}

}  // namespace faultline::cluster
