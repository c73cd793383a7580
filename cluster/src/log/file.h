// Thin RAII layer over POSIX file descriptors for the partition log. Every function maps errno to
// a std::error_code (system category) and logs the failing call with its path, so the log's
// callers see values, never exceptions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace faultline::cluster::fs {

// Owns one open file descriptor; closes it on destruction. Move-only.
class FileHandle {
 public:
  FileHandle() = default;
  explicit FileHandle(int fd) : fd_(fd) {}
  FileHandle(FileHandle&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileHandle& operator=(FileHandle&& other) noexcept;
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  ~FileHandle() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset();

 private:
  int fd_ = -1;
};

// Opens a file for reading and writing, creating it if missing when `create`.
std::error_code open_rw(const std::filesystem::path& path, bool create, FileHandle& out);
std::error_code file_size(int fd, const std::filesystem::path& path, uint64_t& size);
std::error_code pwrite_all(int fd, std::span<const char> data, uint64_t pos,
                           const std::filesystem::path& path);
// Writes `first` then `second` at `pos` in one pwritev (more on a short write).
std::error_code pwritev_all(int fd, std::span<const char> first, std::span<const char> second,
                            uint64_t pos, const std::filesystem::path& path);
// Reads exactly data.size() bytes; a file ending early is std::errc::io_error.
std::error_code pread_exact(int fd, std::span<char> data, uint64_t pos,
                            const std::filesystem::path& path);
std::error_code truncate_fd(int fd, uint64_t size, const std::filesystem::path& path);
std::error_code sync_fd(int fd, const std::filesystem::path& path);
// fsync of a directory, so that a created, renamed or removed entry survives a crash.
std::error_code sync_dir(const std::filesystem::path& dir);
// Whole-file replace that a crash cannot tear: write `<path>.tmp`, fsync, rename, fsync the dir.
std::error_code write_file_atomically(const std::filesystem::path& path, std::string_view content);
// Reads a small file whole. A missing file is not an error: `exists` is set to false.
std::error_code read_small_file(const std::filesystem::path& path, std::string& content,
                                bool& exists);
std::error_code remove_file(const std::filesystem::path& path);

}  // namespace faultline::cluster::fs
