// faultline-lazyfs: a FUSE filesystem over a backing directory that keeps every un-fsynced write
// in its own cache, so that a power loss (the `lose-unsynced` command) loses exactly what was not
// fsynced, and that fails, tears or delays I/O on command (chaos/README.md, "faultline-lazyfs").
//
// This file is the thin FUSE shell: it maps each FUSE call onto the backing directory (through a
// descriptor opened before mounting, so the backing directory may be the mount point itself) and
// onto the pure model in faultline/chaos/storage (LazyCache, StorageFaults). One mutex serialises
// the model; the slow-fsync delay is slept outside it so that other operations go on.
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <fcntl.h>
#include <fuse3/fuse.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "faultline/chaos/storage/lazy_cache.h"
#include "faultline/chaos/storage/lazy_faults.h"

namespace {

using namespace faultline::chaos::storage;

constexpr const char* kControlPath = "/.faultline-ctl";

// The backing file behind an open descriptor.
class FdSink final : public ByteSink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  std::error_code write_at(uint64_t offset, std::string_view bytes) override {
    while (!bytes.empty()) {
      const ssize_t n = ::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset));
      if (n < 0)
        return {errno, std::generic_category()};
      bytes.remove_prefix(static_cast<size_t>(n));
      offset += static_cast<uint64_t>(n);
    }
    return {};
  }
  std::error_code truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
      return {errno, std::generic_category()};
    return {};
  }

 private:
  int fd_;
};

struct LazyFs {
  int backing_fd = -1;
  uint64_t max_pending_file_bytes = 64ull << 20;
  std::mutex mu;
  LazyCache cache;
  StorageFaults faults{0};
  uint64_t lost_bytes = 0;
  uint64_t torn_writes = 0;
  uint64_t fsyncs = 0;
  uint64_t writebacks = 0;
};

LazyFs& fs_state() {
  return *static_cast<LazyFs*>(fuse_get_context()->private_data);
}

// FUSE paths start with '/'; the backing calls take them relative to the backing descriptor.
const char* rel(const char* path) {
  return path[1] == '\0' ? "." : path + 1;
}

int neg_errno() {
  return -errno;
}

// Writes `changes` into the backing file `path` and makes them durable there.
std::error_code apply_to_backing(LazyFs& s, const std::string& path, const FileChanges& changes) {
  const int fd = ::openat(s.backing_fd, rel(path.c_str()), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? std::error_code{} : std::error_code{errno, std::generic_category()};
  FdSink sink(fd);
  auto ec = changes.apply(sink);
  if (!ec && ::fsync(fd) != 0)
    ec = {errno, std::generic_category()};
  ::close(fd);
  return ec;
}

// Every pending change to the backing files (`sync`, and a clean unmount).
void sync_all(LazyFs& s) {
  for (const auto& path : s.cache.paths()) {
    if (auto changes = s.cache.take(path))
      (void)apply_to_backing(s, path, *changes);
  }
}

std::string status_json(LazyFs& s) {
  nlohmann::json j{{"pending_files", s.cache.paths().size()},
                   {"pending_bytes", s.cache.pending_bytes()},
                   {"lost_bytes", s.lost_bytes},
                   {"torn_writes", s.torn_writes},
                   {"fsyncs", s.fsyncs},
                   {"writebacks", s.writebacks},
                   {"faults", s.faults.status()}};
  return j.dump() + "\n";
}

// One control command; 0 or a negative errno.
int run_command(LazyFs& s, const ControlCommand& c) {
  if (std::holds_alternative<LoseUnsynced>(c)) {
    s.lost_bytes += s.cache.lose_unsynced();
  } else if (const auto* t = std::get_if<TornWrite>(&c)) {
    if (auto torn = s.cache.take_torn_newest(t->keep_pct)) {
      if (auto ec = apply_to_backing(s, torn->path, torn->changes))
        return -ec.value();
      ++s.torn_writes;
    }
  } else if (const auto* e = std::get_if<ErrorRule>(&c)) {
    s.faults.set_error(*e);
  } else if (const auto* slow = std::get_if<SlowFsync>(&c)) {
    s.faults.set_slow_fsync(*slow);
  } else if (std::holds_alternative<Heal>(c)) {
    s.faults.heal();
  } else if (std::holds_alternative<SyncAll>(c)) {
    sync_all(s);
  } else {
    s.faults.reseed(std::get<Reseed>(c).seed);
  }
  return 0;
}

int control_write(LazyFs& s, const char* buf, size_t size) {
  std::string text(buf, size);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos)
      end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    std::string why;
    auto cmd = parse_control_command(line, &why);
    if (!cmd) {
      std::fprintf(stderr, "event=lazyfs_bad_command line=\"%s\" why=\"%s\"\n", line.c_str(),
                   why.c_str());
      return -EINVAL;
    }
    std::lock_guard lock(s.mu);
    if (int rc = run_command(s, *cmd); rc != 0)
      return rc;
    std::fprintf(stderr, "event=lazyfs_command command=\"%s\"\n",
                 render_control_command(*cmd).c_str());
  }
  return static_cast<int>(size);
}

// ---------------------------------------------------------------- FUSE operations

void* op_init(fuse_conn_info*, fuse_config* cfg) {
  // Every stat and open asks us: after a power loss the kernel must not serve sizes or pages
  // cached from before it.
  cfg->attr_timeout = 0;
  cfg->entry_timeout = 0;
  cfg->negative_timeout = 0;
  cfg->kernel_cache = 0;
  // Unlinking an open file really unlinks it (no .fuse_hidden files for the broker to find).
  cfg->hard_remove = 1;
  cfg->nullpath_ok = 0;  // paths key the cache; only an unlinked open file comes without one
  return fuse_get_context()->private_data;
}

void op_destroy(void* data) {
  // A clean unmount is a clean shutdown: what is pending reaches the disk, as a sync would.
  auto& s = *static_cast<LazyFs*>(data);
  std::lock_guard lock(s.mu);
  sync_all(s);
}

int op_getattr(const char* path, struct stat* st, fuse_file_info* fi) {
  auto& s = fs_state();
  if (path != nullptr && std::strcmp(path, kControlPath) == 0) {
    std::memset(st, 0, sizeof *st);
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    return 0;
  }
  const int rc = fi != nullptr ? ::fstat(static_cast<int>(fi->fh), st)
                               : ::fstatat(s.backing_fd, rel(path), st, AT_SYMLINK_NOFOLLOW);
  if (rc != 0)
    return neg_errno();
  if (path != nullptr && S_ISREG(st->st_mode)) {
    std::lock_guard lock(s.mu);
    if (const auto* changes = s.cache.find(path))
      st->st_size = static_cast<off_t>(changes->visible_size(static_cast<uint64_t>(st->st_size)));
  }
  return 0;
}

// The backing descriptor never has O_TRUNC (a truncate is a change that waits for fsync) nor
// O_APPEND (pwrite would then ignore the offsets the kernel computed).
int backing_flags(int flags) {
  return (flags & ~(O_TRUNC | O_APPEND)) | O_CLOEXEC;
}

int open_common(const char* path, fuse_file_info* fi, int fd) {
  if (fd < 0)
    return neg_errno();
  fi->fh = static_cast<uint64_t>(fd);
  fi->keep_cache = 0;
  if (fi->flags & O_TRUNC) {
    auto& s = fs_state();
    std::lock_guard lock(s.mu);
    s.cache.truncate(path, 0);
  }
  return 0;
}

int op_open(const char* path, fuse_file_info* fi) {
  if (std::strcmp(path, kControlPath) == 0) {
    fi->direct_io = 1;  // its size is 0 but reads return the status
    fi->fh = static_cast<uint64_t>(-1);
    return 0;
  }
  return open_common(path, fi,
                     ::openat(fs_state().backing_fd, rel(path), backing_flags(fi->flags)));
}

int op_create(const char* path, mode_t mode, fuse_file_info* fi) {
  const int fd =
      ::openat(fs_state().backing_fd, rel(path), backing_flags(fi->flags) | O_CREAT, mode);
  return open_common(path, fi, fd);
}

int op_read(const char* path, char* buf, size_t size, off_t offset, fuse_file_info* fi) {
  auto& s = fs_state();
  if (path != nullptr && std::strcmp(path, kControlPath) == 0) {
    std::string status;
    {
      std::lock_guard lock(s.mu);
      status = status_json(s);
    }
    if (static_cast<size_t>(offset) >= status.size())
      return 0;
    const size_t n = std::min(size, status.size() - static_cast<size_t>(offset));
    std::memcpy(buf, status.data() + offset, n);
    return static_cast<int>(n);
  }
  const int fd = static_cast<int>(fi->fh);
  std::lock_guard lock(s.mu);
  if (path != nullptr) {
    if (int e = s.faults.decide_error(IoOp::read, path))
      return -e;
  }
  const FileChanges* changes = path != nullptr ? s.cache.find(path) : nullptr;
  const ssize_t n = ::pread(fd, buf, size, offset);
  if (n < 0)
    return neg_errno();
  if (changes == nullptr)
    return static_cast<int>(n);
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return neg_errno();
  std::memset(buf + n, 0, size - static_cast<size_t>(n));
  return static_cast<int>(changes->overlay(static_cast<uint64_t>(offset), {buf, size},
                                           static_cast<uint64_t>(st.st_size)));
}

int op_write(const char* path, const char* buf, size_t size, off_t offset, fuse_file_info* fi) {
  auto& s = fs_state();
  if (path != nullptr && std::strcmp(path, kControlPath) == 0)
    return control_write(s, buf, size);
  const int fd = static_cast<int>(fi->fh);
  if (path == nullptr) {
    // An unlinked file: nothing can see it after a crash, so durability does not matter.
    const ssize_t n = ::pwrite(fd, buf, size, offset);
    return n < 0 ? neg_errno() : static_cast<int>(n);
  }
  std::lock_guard lock(s.mu);
  if (int e = s.faults.decide_error(IoOp::write, path))
    return -e;
  s.cache.write(path, static_cast<uint64_t>(offset), {buf, size});
  // Past the cap, the "kernel" writes the file back, as memory pressure would force it to.
  if (s.cache.find(path)->pending_bytes() > s.max_pending_file_bytes) {
    FdSink sink(fd);
    if (auto ec = s.cache.take(path)->apply(sink))
      return -ec.value();
    ++s.writebacks;
  }
  return static_cast<int>(size);
}

int op_truncate(const char* path, off_t size, fuse_file_info* fi) {
  auto& s = fs_state();
  if (path == nullptr)
    return ::ftruncate(static_cast<int>(fi->fh), size) == 0 ? 0 : neg_errno();
  if (std::strcmp(path, kControlPath) == 0)
    return 0;  // `echo cmd > ctl` truncates first
  struct stat st {};
  if (::fstatat(s.backing_fd, rel(path), &st, 0) != 0)
    return neg_errno();
  std::lock_guard lock(s.mu);
  s.cache.truncate(path, static_cast<uint64_t>(size));
  return 0;
}

int op_fsync(const char* path, int datasync, fuse_file_info* fi) {
  auto& s = fs_state();
  if (path != nullptr && std::strcmp(path, kControlPath) == 0)
    return 0;
  std::chrono::milliseconds delay;
  {
    std::lock_guard lock(s.mu);
    delay = s.faults.fsync_delay();
  }
  if (delay.count() > 0)
    std::this_thread::sleep_for(delay);
  const int fd = static_cast<int>(fi->fh);
  {
    std::lock_guard lock(s.mu);
    ++s.fsyncs;
    if (path != nullptr) {
      if (int e = s.faults.decide_error(IoOp::fsync, path)) {
        // As Linux does after a failed writeback: the pages are marked clean, the data is gone.
        if (auto dropped = s.cache.take(path))
          s.lost_bytes += dropped->pending_bytes();
        return -e;
      }
      // Through a descriptor of our own: the caller's may be read-only (fsync works on any).
      if (auto changes = s.cache.take(path)) {
        auto ec = apply_to_backing(s, path, *changes);
        return ec ? -ec.value() : 0;
      }
    }
  }
  const int rc = datasync ? ::fdatasync(fd) : ::fsync(fd);
  return rc == 0 ? 0 : neg_errno();
}

int op_release(const char* path, fuse_file_info* fi) {
  if (fi->fh != static_cast<uint64_t>(-1))
    ::close(static_cast<int>(fi->fh));
  return 0;
}

int op_flush(const char*, fuse_file_info*) {
  return 0;  // close(2) makes nothing durable
}

int op_unlink(const char* path) {
  auto& s = fs_state();
  if (::unlinkat(s.backing_fd, rel(path), 0) != 0)
    return neg_errno();
  std::lock_guard lock(s.mu);
  s.cache.unlink(path);
  return 0;
}

int op_rmdir(const char* path) {
  auto& s = fs_state();
  if (::unlinkat(s.backing_fd, rel(path), AT_REMOVEDIR) != 0)
    return neg_errno();
  std::lock_guard lock(s.mu);
  s.cache.unlink(path);
  return 0;
}

int op_mkdir(const char* path, mode_t mode) {
  return ::mkdirat(fs_state().backing_fd, rel(path), mode) == 0 ? 0 : neg_errno();
}

int op_rename(const char* from, const char* to, unsigned int flags) {
  auto& s = fs_state();
  if (::renameat2(s.backing_fd, rel(from), s.backing_fd, rel(to), flags) != 0)
    return neg_errno();
  std::lock_guard lock(s.mu);
  s.cache.rename(from, to);
  return 0;
}

int op_readdir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*,
               fuse_readdir_flags) {
  const int fd = ::openat(fs_state().backing_fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return neg_errno();
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return neg_errno();
  }
  while (const dirent* e = ::readdir(dir)) {
    struct stat st {};
    st.st_ino = e->d_ino;
    st.st_mode = static_cast<mode_t>(DTTOIF(e->d_type));
    if (fill(buf, e->d_name, &st, 0, static_cast<fuse_fill_dir_flags>(0)) != 0)
      break;
  }
  ::closedir(dir);
  return 0;
}

int op_statfs(const char*, struct statvfs* st) {
  return ::fstatvfs(fs_state().backing_fd, st) == 0 ? 0 : neg_errno();
}

int op_utimens(const char* path, const timespec tv[2], fuse_file_info* fi) {
  if (fi != nullptr)
    return ::futimens(static_cast<int>(fi->fh), tv) == 0 ? 0 : neg_errno();
  return ::utimensat(fs_state().backing_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0
                                                                                     : neg_errno();
}

int op_chmod(const char* path, mode_t mode, fuse_file_info*) {
  return ::fchmodat(fs_state().backing_fd, rel(path), mode, 0) == 0 ? 0 : neg_errno();
}

int op_chown(const char* path, uid_t uid, gid_t gid, fuse_file_info*) {
  return ::fchownat(fs_state().backing_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) == 0
             ? 0
             : neg_errno();
}

int op_access(const char* path, int mask) {
  if (std::strcmp(path, kControlPath) == 0)
    return 0;
  return ::faccessat(fs_state().backing_fd, rel(path), mask, 0) == 0 ? 0 : neg_errno();
}

int op_fsyncdir(const char* path, int, fuse_file_info*) {
  // Names are durable as soon as they are made (see chaos/README.md): only pass it down.
  const int fd = ::openat(fs_state().backing_fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return neg_errno();
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? 0 : neg_errno();
}

fuse_operations make_operations() {
  fuse_operations ops{};
  ops.init = op_init;
  ops.destroy = op_destroy;
  ops.getattr = op_getattr;
  ops.open = op_open;
  ops.create = op_create;
  ops.read = op_read;
  ops.write = op_write;
  ops.truncate = op_truncate;
  ops.fsync = op_fsync;
  ops.flush = op_flush;
  ops.release = op_release;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.mkdir = op_mkdir;
  ops.rename = op_rename;
  ops.readdir = op_readdir;
  ops.statfs = op_statfs;
  ops.utimens = op_utimens;
  ops.chmod = op_chmod;
  ops.chown = op_chown;
  ops.access = op_access;
  ops.fsyncdir = op_fsyncdir;
  return ops;
}

int serve(LazyFs& state, const std::string& mount_point, bool debug) {
  std::vector<std::string> arg_text = {"faultline-lazyfs", "-o",
                                       "fsname=faultline-lazyfs,subtype=lazyfs,allow_other"};
  if (debug)
    arg_text.push_back("-d");
  std::vector<char*> argv;
  argv.reserve(arg_text.size());
  for (auto& a : arg_text)
    argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  const fuse_operations ops = make_operations();
  fuse* f = fuse_new(&args, &ops, sizeof ops, &state);
  if (f == nullptr)
    return 1;
  int rc = 1;
  if (fuse_mount(f, mount_point.c_str()) == 0) {
    if (fuse_set_signal_handlers(fuse_get_session(f)) == 0) {
      std::printf("event=lazyfs_ready mount=%s\n", mount_point.c_str());
      std::fflush(stdout);
      fuse_loop_config* config = fuse_loop_cfg_create();
      fuse_loop_cfg_set_max_threads(config, 16);
      rc = fuse_loop_mt(f, config) == 0 ? 0 : 1;
      fuse_loop_cfg_destroy(config);
      fuse_remove_signal_handlers(fuse_get_session(f));
    }
    fuse_unmount(f);
  }
  fuse_destroy(f);
  fuse_opt_free_args(&args);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::string backing, mount_point;
  uint64_t seed = 0;
  uint64_t max_pending_mib = 64;
  bool debug = false;
  CLI::App app{"faultline-lazyfs: a FUSE filesystem that loses un-fsynced writes on command"};
  app.add_option("--backing", backing, "the real directory holding the durable data")->required();
  app.add_option("--mount", mount_point, "where to mount (may be the backing directory)")
      ->required();
  app.add_option("--seed", seed, "seed of the fault decisions (rates, jitter)");
  app.add_option("--max-pending-mib", max_pending_mib,
                 "un-fsynced MiB per file before it is written back anyway");
  app.add_flag("--debug", debug, "libfuse's request trace on stderr");
  CLI11_PARSE(app, argc, argv);
  LazyFs state;
  state.faults.reseed(seed);
  state.max_pending_file_bytes = max_pending_mib << 20;
  state.backing_fd = ::open(backing.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (state.backing_fd < 0) {
    std::fprintf(stderr, "event=lazyfs_failed call=open(backing) path=%s error=\"%s\"\n",
                 backing.c_str(), std::strerror(errno));
    return 2;
  }
  return serve(state, mount_point, debug);
}
