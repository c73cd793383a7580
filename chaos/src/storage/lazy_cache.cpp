#include "faultline/chaos/storage/lazy_cache.h"

#include <algorithm>
#include <cstring>

namespace faultline::chaos::storage {

namespace {

uint64_t op_bytes(const PendingOp& op) {
  const auto* w = std::get_if<PendingWrite>(&op);
  return w == nullptr ? 0 : w->bytes.size();
}

WriteSeq op_seq(const PendingOp& op) {
  return std::visit([](const auto& o) { return o.seq; }, op);
}

// Copies the part of `w` that falls in [offset, offset + buf.size()) into buf.
void copy_overlap(const PendingWrite& w, uint64_t offset, std::span<char> buf) {
  const uint64_t begin = std::max(offset, w.offset);
  const uint64_t end = std::min(offset + buf.size(), w.offset + w.bytes.size());
  if (begin >= end)
    return;
  std::memcpy(buf.data() + (begin - offset), w.bytes.data() + (begin - w.offset), end - begin);
}

// A truncate drops everything past `size`: if the file grows again, that range reads as zeros.
void zero_past(uint64_t size, uint64_t offset, std::span<char> buf) {
  if (size >= offset + buf.size())
    return;
  const uint64_t from = size > offset ? size - offset : 0;
  std::fill(buf.begin() + static_cast<std::ptrdiff_t>(from), buf.end(), '\0');
}

bool under(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

}  // namespace

void FileChanges::write(WriteSeq seq, uint64_t offset, std::string_view bytes) {
  ops_.push_back(PendingWrite{seq, offset, std::string(bytes)});
  pending_bytes_ += bytes.size();
}

void FileChanges::truncate(WriteSeq seq, uint64_t size) {
  ops_.push_back(PendingTruncate{seq, size});
}

uint64_t FileChanges::visible_size(uint64_t backing_size) const {
  uint64_t size = backing_size;
  for (const auto& op : ops_) {
    if (const auto* w = std::get_if<PendingWrite>(&op))
      size = std::max(size, w->offset + w->bytes.size());
    else
      size = std::get<PendingTruncate>(op).size;
  }
  return size;
}

size_t FileChanges::overlay(uint64_t offset, std::span<char> buf, uint64_t backing_size) const {
  zero_past(backing_size, offset, buf);
  uint64_t size = backing_size;
  for (const auto& op : ops_) {
    if (const auto* w = std::get_if<PendingWrite>(&op)) {
      copy_overlap(*w, offset, buf);
      size = std::max(size, w->offset + w->bytes.size());
    } else {
      size = std::get<PendingTruncate>(op).size;
      zero_past(size, offset, buf);
    }
  }
  return size <= offset ? 0 : static_cast<size_t>(std::min<uint64_t>(size - offset, buf.size()));
}

std::error_code FileChanges::apply(ByteSink& sink) const {
  for (const auto& op : ops_) {
    std::error_code ec;
    if (const auto* w = std::get_if<PendingWrite>(&op))
      ec = sink.write_at(w->offset, w->bytes);
    else
      ec = sink.truncate(std::get<PendingTruncate>(op).size);
    if (ec)
      return ec;
  }
  return {};
}

bool FileChanges::tear(WriteSeq seq, uint64_t keep_bytes) {
  auto it = std::find_if(ops_.begin(), ops_.end(), [&](const PendingOp& op) {
    return std::holds_alternative<PendingWrite>(op) && op_seq(op) == seq;
  });
  if (it == ops_.end())
    return false;
  auto& w = std::get<PendingWrite>(*it);
  w.bytes.resize(std::min<uint64_t>(keep_bytes, w.bytes.size()));
  ops_.erase(it + 1, ops_.end());
  pending_bytes_ = 0;
  for (const auto& op : ops_)
    pending_bytes_ += op_bytes(op);
  return true;
}

std::optional<WriteSeq> FileChanges::last_write_seq() const {
  for (auto it = ops_.rbegin(); it != ops_.rend(); ++it) {
    if (std::holds_alternative<PendingWrite>(*it))
      return op_seq(*it);
  }
  return std::nullopt;
}

const PendingWrite* FileChanges::find_write(WriteSeq seq) const {
  for (const auto& op : ops_) {
    const auto* w = std::get_if<PendingWrite>(&op);
    if (w != nullptr && w->seq == seq)
      return w;
  }
  return nullptr;
}

WriteSeq LazyCache::write(const std::string& path, uint64_t offset, std::string_view bytes) {
  const WriteSeq seq = next_seq_++;
  files_[path].write(seq, offset, bytes);
  return seq;
}

void LazyCache::truncate(const std::string& path, uint64_t size) {
  files_[path].truncate(next_seq_++, size);
}

const FileChanges* LazyCache::find(const std::string& path) const {
  auto it = files_.find(path);
  return it == files_.end() ? nullptr : &it->second;
}

std::optional<FileChanges> LazyCache::take(const std::string& path) {
  auto node = files_.extract(path);
  if (node.empty())
    return std::nullopt;
  return std::move(node.mapped());
}

void LazyCache::rename(const std::string& from, const std::string& to) {
  unlink(to);
  std::vector<std::pair<std::string, FileChanges>> moved;
  for (auto it = files_.begin(); it != files_.end();) {
    if (it->first == from || under(it->first, from)) {
      moved.emplace_back(to + it->first.substr(from.size()), std::move(it->second));
      it = files_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [path, changes] : moved)
    files_[path] = std::move(changes);
}

void LazyCache::unlink(const std::string& path) {
  std::erase_if(files_, [&](const auto& kv) { return kv.first == path || under(kv.first, path); });
}

uint64_t LazyCache::lose_unsynced() {
  const uint64_t dropped = pending_bytes();
  files_.clear();
  return dropped;
}

std::optional<std::string> LazyCache::newest_write_path() const {
  std::optional<std::string> path;
  WriteSeq newest = 0;
  for (const auto& [p, changes] : files_) {
    if (auto seq = changes.last_write_seq(); seq && *seq > newest) {
      newest = *seq;
      path = p;
    }
  }
  return path;
}

std::optional<LazyCache::Torn> LazyCache::take_torn_newest(double keep_pct) {
  auto path = newest_write_path();
  if (!path)
    return std::nullopt;
  Torn torn{*path, *take(*path), 0, 0};
  const WriteSeq seq = *torn.changes.last_write_seq();
  torn.write_bytes = torn.changes.find_write(seq)->bytes.size();
  torn.kept_bytes = torn_prefix_bytes(torn.write_bytes, keep_pct);
  torn.changes.tear(seq, torn.kept_bytes);
  return torn;
}

std::vector<std::string> LazyCache::paths() const {
  std::vector<std::string> out;
  for (const auto& [p, changes] : files_)
    out.push_back(p);
  return out;
}

uint64_t LazyCache::pending_bytes() const {
  uint64_t total = 0;
  for (const auto& [p, changes] : files_)
    total += changes.pending_bytes();
  return total;
}

uint64_t torn_prefix_bytes(uint64_t size, double keep_pct) {
  if (size <= 1)
    return size;
  const double pct = std::clamp(keep_pct, 0.0, 100.0);
  const auto keep = static_cast<uint64_t>(static_cast<double>(size) * pct / 100.0);
  return std::min(keep, size - 1);
}

}  // namespace faultline::chaos::storage
