#include "log/file.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace faultline::cluster::fs {
namespace {

std::error_code fail(const char* call, const std::filesystem::path& path, int err = errno) {
  std::error_code ec(err, std::system_category());
  spdlog::error("event=log_io_error call={} path={} error=\"{}\"", call, path.string(),
                ec.message());
  return ec;
}

}  // namespace

FileHandle& FileHandle::operator=(FileHandle&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void FileHandle::reset() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

std::error_code open_rw(const std::filesystem::path& path, bool create, FileHandle& out) {
  const int fd = ::open(path.c_str(), O_RDWR | (create ? O_CREAT : 0) | O_CLOEXEC, 0644);
  if (fd < 0)
    return fail("open", path);
  out = FileHandle(fd);
  return {};
}

std::error_code file_size(int fd, const std::filesystem::path& path, uint64_t& size) {
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return fail("fstat", path);
  size = static_cast<uint64_t>(st.st_size);
  return {};
}

std::error_code pwrite_all(int fd, std::span<const char> data, uint64_t pos,
                           const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return fail("pwrite", path);
    }
    data = data.subspan(static_cast<size_t>(n));
    pos += static_cast<uint64_t>(n);
  }
  return {};
}

std::error_code pwritev_all(int fd, std::span<const char> first, std::span<const char> second,
                            uint64_t pos, const std::filesystem::path& path) {
  while (!first.empty() || !second.empty()) {
    std::array<iovec, 2> iov{iovec{const_cast<char*>(first.data()), first.size()},
                             iovec{const_cast<char*>(second.data()), second.size()}};
    const ssize_t n = ::pwritev(fd, iov.data(), 2, static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return fail("pwritev", path);
    }
    auto written = static_cast<size_t>(n);
    pos += written;
    const size_t from_first = std::min(written, first.size());
    first = first.subspan(from_first);
    second = second.subspan(written - from_first);
  }
  return {};
}

std::error_code pread_exact(int fd, std::span<char> data, uint64_t pos,
                            const std::filesystem::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::pread(fd, data.data(), data.size(), static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return fail("pread", path);
    }
    if (n == 0)
      return fail("pread(short)", path, EIO);
    data = data.subspan(static_cast<size_t>(n));
    pos += static_cast<uint64_t>(n);
  }
  return {};
}

std::error_code truncate_fd(int fd, uint64_t size, const std::filesystem::path& path) {
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0)
    return fail("ftruncate", path);
  return {};
}

std::error_code sync_fd(int fd, const std::filesystem::path& path) {
  if (::fsync(fd) != 0)
    return fail("fsync", path);
  return {};
}

std::error_code sync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return fail("open(dir)", dir);
  FileHandle handle(fd);
  return sync_fd(handle.get(), dir);
}

std::error_code write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  auto tmp = path;
  tmp += ".tmp";
  {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      return fail("open", tmp);
    FileHandle handle(fd);
    if (auto ec = pwrite_all(handle.get(), content, 0, tmp))
      return ec;
    if (auto ec = sync_fd(handle.get(), tmp))
      return ec;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return fail("rename", path);
  return sync_dir(path.parent_path());
}

std::error_code read_small_file(const std::filesystem::path& path, std::string& content,
                                bool& exists) {
  content.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      exists = false;
      return {};
    }
    return fail("open", path);
  }
  exists = true;
  FileHandle handle(fd);
  uint64_t size = 0;
  if (auto ec = file_size(handle.get(), path, size))
    return ec;
  // Only checkpoints go through here; anything larger is not one of ours.
  constexpr uint64_t kMaxSmallFile = 16 << 20;
  if (size > kMaxSmallFile)
    return fail("read(too large)", path, EFBIG);
  content.resize(size);
  return pread_exact(handle.get(), content, 0, path);
}

std::error_code remove_file(const std::filesystem::path& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return fail("unlink", path);
  return {};
}

}  // namespace faultline::cluster::fs
