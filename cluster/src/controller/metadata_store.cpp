#include "faultline/cluster/controller/metadata_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <nlohmann/json.hpp>

namespace faultline::cluster {

namespace {

std::error_code last_errno() {
  return {errno, std::system_category()};
}

// Writes all of `bytes`, retrying short writes and EINTR.
std::error_code write_all(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return last_errno();
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return {};
}

std::error_code read_file(int fd, std::vector<uint8_t>& out) {
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return last_errno();
  out.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return last_errno();
    }
    if (n == 0)
      break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return {};
}

std::error_code fsync_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return last_errno();
  std::error_code ec;
  if (::fsync(fd) != 0)
    ec = last_errno();
  ::close(fd);
  return ec;
}

// Replaces `file` with `bytes` so that a crash leaves either the old or the new contents: write a
// temporary file, fsync it, rename it over, fsync the directory.
std::error_code replace_file(const std::filesystem::path& file, std::span<const uint8_t> bytes) {
  auto tmp = file;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return last_errno();
  auto ec = write_all(fd, bytes.data(), bytes.size());
  if (!ec && ::fsync(fd) != 0)
    ec = last_errno();
  ::close(fd);
  if (ec)
    return ec;
  if (::rename(tmp.c_str(), file.c_str()) != 0)
    return last_errno();
  return fsync_dir(file.parent_path());
}

}  // namespace

MetadataStore::MetadataStore(int fd, std::filesystem::path path, MetadataOffset last_offset)
    : fd_(fd), path_(std::move(path)), last_offset_(last_offset) {}

MetadataStore::~MetadataStore() {
  if (fd_ >= 0)
    ::close(fd_);
}

MetadataStoreOpenResult MetadataStore::open(const std::filesystem::path& file) {
  MetadataStoreOpenResult result;
  std::error_code ec;
  if (file.has_parent_path()) {
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec) {
      result.error = ec;
      return result;
    }
  }
  bool existed = std::filesystem::exists(file, ec);
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    result.error = last_errno();
    return result;
  }
  // Owned from here on, so every early return closes it.
  std::unique_ptr<MetadataStore> store(new MetadataStore(fd, file, MetadataOffset{-1}));
  if (!existed) {
    // The new file's directory entry must be durable too, or a crash can lose the whole log.
    if ((result.error = fsync_dir(file.parent_path())))
      return result;
  }

  std::vector<uint8_t> bytes;
  if ((result.error = read_file(fd, bytes)))
    return result;
  size_t pos = 0;
  while (pos < bytes.size()) {
    DecodeResult d = decode_metadata_entry(std::span<const uint8_t>(bytes).subspan(pos));
    // A partial or corrupt frame, or one that does not continue the sequence, is what a crash
    // mid-append leaves: everything from there on was never acknowledged.
    bool first = result.records.empty();
    if (d.status != DecodeStatus::ok || (!first && d.entry.offset != store->last_offset_.next()) ||
        d.entry.offset.value() < 0)
      break;
    if (first)
      store->base_ = d.entry.offset;  // a compacted log starts after its snapshot
    store->last_offset_ = d.entry.offset;
    store->starts_.push_back(pos);
    result.records.push_back(std::move(d.entry));
    pos += d.consumed;
  }
  if (pos < bytes.size()) {
    result.dropped_tail_bytes = bytes.size() - pos;
    if (::ftruncate(fd, static_cast<off_t>(pos)) != 0 || ::fsync(fd) != 0) {
      result.error = last_errno();
      result.records.clear();
      return result;
    }
  }
  if (::lseek(fd, static_cast<off_t>(pos), SEEK_SET) < 0) {
    result.error = last_errno();
    result.records.clear();
    return result;
  }
  store->end_ = pos;
  result.store = std::move(store);
  return result;
}

std::error_code MetadataStore::append(std::span<const MetadataEntry> records) {
  if (records.empty())
    return {};
  MetadataOffset expected = last_offset_.next();
  buffer_.clear();
  std::vector<uint64_t> starts;
  starts.reserve(records.size());
  for (const MetadataEntry& entry : records) {
    if (entry.offset != expected)
      return make_error_code(errc::invalid_request);
    starts.push_back(end_ + buffer_.size());
    encode_metadata_entry(entry, buffer_);
    expected = expected.next();
  }
  if (auto ec = write_all(fd_, buffer_.data(), buffer_.size()))
    return ec;
  if (::fdatasync(fd_) != 0)
    return last_errno();
  last_offset_ = records.back().offset;
  end_ += buffer_.size();
  starts_.insert(starts_.end(), starts.begin(), starts.end());
  return {};
}

std::error_code MetadataStore::truncate_after(MetadataOffset offset) {
  if (offset >= last_offset_)
    return {};
  auto keep = static_cast<size_t>(std::max<int64_t>(offset.value() + 1 - base_.value(), 0));
  uint64_t end = keep < starts_.size() ? starts_[keep] : end_;
  if (::ftruncate(fd_, static_cast<off_t>(end)) != 0 || ::fsync(fd_) != 0)
    return last_errno();
  if (::lseek(fd_, static_cast<off_t>(end), SEEK_SET) < 0)
    return last_errno();
  starts_.resize(keep);
  end_ = end;
  last_offset_ = MetadataOffset{base_.value() + static_cast<int64_t>(keep) - 1};
  return {};
}

std::error_code MetadataStore::compact_through(MetadataOffset offset) {
  if (offset < base_)
    return {};
  // The records after `offset`, as they are in the file.
  auto dropped = static_cast<size_t>(
      std::min<int64_t>(offset.value() + 1 - base_.value(), static_cast<int64_t>(starts_.size())));
  uint64_t from = dropped < starts_.size() ? starts_[dropped] : end_;
  std::vector<uint8_t> kept(end_ - from);
  for (size_t done = 0; done < kept.size();) {
    ssize_t n =
        ::pread(fd_, kept.data() + done, kept.size() - done, static_cast<off_t>(from + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? last_errno() : make_error_code(errc::corrupt_message);
    done += static_cast<size_t>(n);
  }
  if (auto ec = replace_file(path_, kept))
    return ec;
  int fd = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return last_errno();
  if (::lseek(fd, static_cast<off_t>(kept.size()), SEEK_SET) < 0) {
    auto ec = last_errno();
    ::close(fd);
    return ec;
  }
  ::close(fd_);
  fd_ = fd;
  starts_.erase(starts_.begin(), starts_.begin() + static_cast<ptrdiff_t>(dropped));
  for (uint64_t& start : starts_)
    start -= from;
  end_ = kept.size();
  last_offset_ = std::max(last_offset_, offset);
  base_ = starts_.empty() ? last_offset_.next() : MetadataOffset{offset.value() + 1};
  return {};
}

std::error_code MetadataStore::align_to_snapshot(MetadataOffset offset) {
  if (starts_.empty()) {
    last_offset_ = std::max(last_offset_, offset);
    base_ = last_offset_.next();
    return {};
  }
  if (base_ > offset.next())
    return make_error_code(errc::corrupt_message);
  return compact_through(offset);
}

std::error_code MetadataStore::reset_after(MetadataOffset offset) {
  if (::ftruncate(fd_, 0) != 0 || ::fsync(fd_) != 0)
    return last_errno();
  if (::lseek(fd_, 0, SEEK_SET) < 0)
    return last_errno();
  starts_.clear();
  end_ = 0;
  last_offset_ = offset;
  base_ = offset.next();
  return {};
}

QuorumStateLoad load_quorum_state(const std::filesystem::path& file) {
  QuorumStateLoad result;
  std::ifstream in(file);
  if (!in) {
    if (std::filesystem::exists(file))
      result.error = last_errno();
    return result;
  }
  auto json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object() || !json.contains("term") ||
      !json["term"].is_number_integer() || !json.contains("voted_for") ||
      !json["voted_for"].is_number_integer() || json["term"].get<int64_t>() < 0) {
    result.error = make_error_code(errc::corrupt_message);
    return result;
  }
  result.state.term = json["term"].get<int64_t>();
  result.state.voted_for = json["voted_for"].get<int32_t>();
  return result;
}

std::error_code save_quorum_state(const std::filesystem::path& file, const RaftHardState& state) {
  std::string text =
      nlohmann::json{{"term", state.term}, {"voted_for", state.voted_for}}.dump() + "\n";
  return replace_file(file, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

SnapshotFileLoad load_metadata_snapshot(const std::filesystem::path& file) {
  SnapshotFileLoad result;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT)
      result.error = last_errno();
    return result;
  }
  result.error = read_file(fd, result.bytes);
  ::close(fd);
  return result;
}

std::error_code save_metadata_snapshot(const std::filesystem::path& file,
                                       std::span<const uint8_t> bytes) {
  return replace_file(file, bytes);
}

}  // namespace faultline::cluster
