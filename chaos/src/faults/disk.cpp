#include "faultline/chaos/faults/disk.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace faultline::chaos {

namespace fs = std::filesystem;

namespace {

std::error_code sys_error(const char* call, const std::string& what) {
  const int err = errno;
  spdlog::warn("event=fault_disk_error call={} target={} error=\"{}\"", call, what, strerror(err));
  return {err, std::generic_category()};
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0)
      ::close(fd);
  }
};

std::error_code write_file(const fs::path& path, const std::string& text) {
  Fd f{::open(path.c_str(), O_WRONLY | O_CLOEXEC)};
  if (f.fd < 0)
    return sys_error("open", path.string());
  if (::write(f.fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return sys_error("write", path.string() + " <- " + text);
  }
  return {};
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::error_code run_mkfs(const std::string& device) {
  // Initialise inode tables and journal now: lazy init would keep writing in the background and
  // blur every disk-throttle measurement.
  const pid_t pid = ::fork();
  if (pid < 0)
    return sys_error("fork", "mkfs.ext4");
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    ::execlp("mkfs.ext4", "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
             device.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    spdlog::warn("event=fault_disk_error call=mkfs.ext4 target={} status={}", device, status);
    return make_error_code(fault_errc::kernel_error);
  }
  return {};
}

bool is_cgroup2(const fs::path& p) {
  struct statfs s {};
  return ::statfs(p.c_str(), &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC;
}

const fs::path kBlkioV1Root = "/sys/fs/cgroup/blkio";
const fs::path kCgroupV2Root = "/sys/fs/cgroup";

}  // namespace

// ---------------------------------------------------------------- LoopDisk

std::optional<LoopDisk> LoopDisk::create(const fs::path& image, const fs::path& mount_point,
                                         uint64_t size_bytes, ResourceRecorder* recorder,
                                         std::error_code& ec) {
  LoopDisk disk;
  disk.image_ = image;
  disk.mount_point_ = mount_point;
  disk.recorder_ = recorder;
  disk.live_ = true;  // from here on the destructor undoes whatever step was reached
  if (recorder) {
    if ((ec = recorder->will_create("disk-image", image.string(), {{"path", image.string()}}))) {
      return std::nullopt;
    }
  }
  {
    Fd img{::open(image.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)};
    if (img.fd < 0) {
      ec = sys_error("open", image.string());
      return std::nullopt;
    }
    if (::ftruncate(img.fd, static_cast<off_t>(size_bytes)) != 0) {
      ec = sys_error("ftruncate", image.string());
      return std::nullopt;
    }
  }
  Fd control{::open("/dev/loop-control", O_RDWR | O_CLOEXEC)};
  if (control.fd < 0) {
    ec = sys_error("open", "/dev/loop-control");
    return std::nullopt;
  }
  Fd backing{::open(image.c_str(), O_RDWR | O_CLOEXEC)};
  // Another process may take the free device between GET_FREE and CONFIGURE: retry a few times.
  for (int attempt = 0; attempt < 8 && disk.device_.empty(); ++attempt) {
    const int n = ::ioctl(control.fd, LOOP_CTL_GET_FREE);
    if (n < 0) {
      ec = sys_error("ioctl(LOOP_CTL_GET_FREE)", "/dev/loop-control");
      return std::nullopt;
    }
    const std::string dev = fmt::format("/dev/loop{}", n);
    if (recorder) {
      if ((ec = recorder->will_create("loop-device", dev,
                                      {{"device", dev}, {"image", image.string()}}))) {
        return std::nullopt;
      }
    }
    Fd loop{::open(dev.c_str(), O_RDWR | O_CLOEXEC)};
    if (loop.fd < 0) {
      if (recorder)
        recorder->removed("loop-device", dev);
      continue;
    }
    loop_config config{};
    config.fd = static_cast<uint32_t>(backing.fd);
    // AUTOCLEAR: the device detaches itself when the last user (our mount) goes, so even a
    // harness killed with -9 leaks at most a mount, which clean removes.
    config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    std::strncpy(reinterpret_cast<char*>(config.info.lo_file_name), image.c_str(),
                 LO_NAME_SIZE - 1);
    if (::ioctl(loop.fd, LOOP_CONFIGURE, &config) != 0) {
      if (recorder)
        recorder->removed("loop-device", dev);
      if (errno == EBUSY)
        continue;
      ec = sys_error("ioctl(LOOP_CONFIGURE)", dev);
      return std::nullopt;
    }
    struct stat st {};
    ::fstat(loop.fd, &st);
    disk.device_ = dev;
    disk.major_minor_ = fmt::format("{}:{}", major(st.st_rdev), minor(st.st_rdev));
    // Keep the device attached while we run mkfs and mount: AUTOCLEAR would otherwise detach it
    // when this fd closes, before the mount holds it.
    if ((ec = run_mkfs(dev)))
      return std::nullopt;
    std::error_code fs_ec;
    fs::create_directories(mount_point, fs_ec);
    if (recorder) {
      if ((ec = recorder->will_create("disk-mount", mount_point.string(),
                                      {{"path", mount_point.string()}, {"device", dev}}))) {
        return std::nullopt;
      }
    }
    if (::mount(dev.c_str(), mount_point.c_str(), "ext4", MS_NOATIME, "") != 0) {
      ec = sys_error("mount", mount_point.string());
      return std::nullopt;
    }
  }
  if (disk.device_.empty()) {
    ec = make_error_code(fault_errc::kernel_error);
    return std::nullopt;
  }
  ec.clear();
  return std::optional<LoopDisk>(std::move(disk));
}

LoopDisk::LoopDisk(LoopDisk&& o) noexcept
    : image_(std::move(o.image_)),
      mount_point_(std::move(o.mount_point_)),
      device_(std::move(o.device_)),
      major_minor_(std::move(o.major_minor_)),
      recorder_(o.recorder_),
      live_(o.live_) {
  o.live_ = false;
}

LoopDisk::~LoopDisk() {
  remove();
}

std::error_code LoopDisk::remove() {
  if (!live_)
    return {};
  std::error_code first;
  if (!mount_point_.empty()) {
    if (::umount2(mount_point_.c_str(), 0) != 0 && errno != EINVAL && errno != ENOENT) {
      // Busy (a process still has files open): detach lazily so the device frees when it exits.
      if (::umount2(mount_point_.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
        first = sys_error("umount2", mount_point_.string());
      }
    }
    if (recorder_)
      recorder_->removed("disk-mount", mount_point_.string());
  }
  if (!device_.empty()) {
    Fd loop{::open(device_.c_str(), O_RDWR | O_CLOEXEC)};
    // Normally AUTOCLEAR already detached it; ENXIO means it is not bound any more.
    if (loop.fd >= 0 && ::ioctl(loop.fd, LOOP_CLR_FD) != 0 && errno != ENXIO && !first) {
      if (errno != EBUSY)
        first = sys_error("ioctl(LOOP_CLR_FD)", device_);
    }
    if (recorder_)
      recorder_->removed("loop-device", device_);
  }
  if (!image_.empty()) {
    std::error_code ec;
    fs::remove(image_, ec);
    if (recorder_)
      recorder_->removed("disk-image", image_.string());
  }
  live_ = false;
  return first;
}

// ---------------------------------------------------------------- cgroups

CgroupIo detect_cgroup_io() {
  if (fs::exists(kBlkioV1Root / "blkio.throttle.write_bps_device"))
    return CgroupIo::v1_blkio;
  if (is_cgroup2(kCgroupV2Root) &&
      read_file(kCgroupV2Root / "cgroup.controllers").find("io") != std::string::npos) {
    return CgroupIo::v2_io;
  }
  return CgroupIo::none;
}

std::optional<IoCgroup> IoCgroup::create(const std::string& run_prefix, const NodeName& node,
                                         ResourceRecorder* recorder, std::error_code& ec) {
  IoCgroup cg;
  cg.version_ = detect_cgroup_io();
  if (cg.version_ == CgroupIo::none) {
    ec = fault_errc::backend_unavailable;
    return std::nullopt;
  }
  const fs::path root = cg.version_ == CgroupIo::v1_blkio ? kBlkioV1Root : kCgroupV2Root;
  if (cg.version_ == CgroupIo::v2_io) {
    // The io controller must be enabled for children of the root; harmless when it already is.
    (void)write_file(root / "cgroup.subtree_control", "+io");
  }
  cg.path_ = root / fmt::format("{}-{}", run_prefix, node);
  cg.recorder_ = recorder;
  if (recorder) {
    if ((ec = recorder->will_create("io-cgroup", cg.path_.string(),
                                    {{"path", cg.path_.string()}}))) {
      return std::nullopt;
    }
  }
  if (::mkdir(cg.path_.c_str(), 0755) != 0 && errno != EEXIST) {
    ec = sys_error("mkdir", cg.path_.string());
    if (recorder)
      recorder->removed("io-cgroup", cg.path_.string());
    return std::nullopt;
  }
  cg.live_ = true;
  ec.clear();
  return std::optional<IoCgroup>(std::move(cg));
}

IoCgroup::IoCgroup(IoCgroup&& o) noexcept
    : path_(std::move(o.path_)), version_(o.version_), recorder_(o.recorder_), live_(o.live_) {
  o.live_ = false;
}

IoCgroup::~IoCgroup() {
  remove();
}

std::error_code IoCgroup::add_process(pid_t pid) const {
  return write_file(path_ / "cgroup.procs", std::to_string(pid));
}

std::error_code IoCgroup::remove() {
  if (!live_)
    return {};
  // rmdir fails while processes are inside: hand them to the parent first.
  std::istringstream procs(read_file(path_ / "cgroup.procs"));
  for (std::string pid; std::getline(procs, pid);) {
    if (!pid.empty())
      (void)write_file(path_.parent_path() / "cgroup.procs", pid);
  }
  std::error_code ec;
  if (::rmdir(path_.c_str()) != 0 && errno != ENOENT)
    ec = sys_error("rmdir", path_.string());
  if (!ec && recorder_)
    recorder_->removed("io-cgroup", path_.string());
  live_ = false;
  return ec;
}

std::error_code set_io_limits(const fs::path& cgroup, const std::string& major_minor,
                              const DiskParams& limits) {
  if (is_cgroup2(cgroup)) {
    auto v = [](uint64_t x) { return x == 0 ? std::string("max") : std::to_string(x); };
    return write_file(cgroup / "io.max",
                      fmt::format("{} rbps={} wbps={} riops={} wiops={}", major_minor,
                                  v(limits.read_bytes_per_second), v(limits.write_bytes_per_second),
                                  v(limits.read_iops), v(limits.write_iops)));
  }
  const std::pair<const char*, uint64_t> files[] = {
      {"blkio.throttle.read_bps_device", limits.read_bytes_per_second},
      {"blkio.throttle.write_bps_device", limits.write_bytes_per_second},
      {"blkio.throttle.read_iops_device", limits.read_iops},
      {"blkio.throttle.write_iops_device", limits.write_iops},
  };
  for (const auto& [file, value] : files) {
    // v1 reads "0" as "remove the limit", which is also what 0 means in DiskParams.
    if (auto ec = write_file(cgroup / file, fmt::format("{} {}", major_minor, value)))
      return ec;
  }
  return {};
}

std::error_code clear_io_limits(const fs::path& cgroup, const std::string& major_minor) {
  if (!fs::exists(cgroup))
    return {};
  if (is_cgroup2(cgroup)) {
    return write_file(cgroup / "io.max",
                      fmt::format("{} rbps=max wbps=max riops=max wiops=max", major_minor));
  }
  return set_io_limits(cgroup, major_minor, DiskParams{});
}

bool has_io_limits(const fs::path& cgroup, const std::string& major_minor) {
  const std::string needle = major_minor + " ";
  if (is_cgroup2(cgroup))
    return read_file(cgroup / "io.max").find(needle) != std::string::npos;
  for (const char* file : {"blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
                           "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"}) {
    if (read_file(cgroup / file).find(needle) != std::string::npos)
      return true;
  }
  return false;
}

}  // namespace faultline::chaos
