// Per-broker disks the run owns: a sparse ext4 image on a loop device, mounted as the broker's data
// directory, and a blkio cgroup (v1 blkio.throttle.*, or v2 io.max) the supervisor puts the broker
// in. Disk faults then throttle that cgroup on that loop device's major:minor only.
//
// Both are RAII: the destructor removes what was made (umount, detach, unlink; rmdir). Every step
// is recorded with the ResourceRecorder before it is taken, so `faultline clean` can undo a crash.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>

#include "faultline/chaos/faults/fault.h"

namespace faultline::chaos {

class LoopDisk {
 public:
  // Creates `image` (sparse, `size_bytes`), attaches a free loop device, makes ext4 and mounts it
  // on `mount_point` (created if missing).
  static std::optional<LoopDisk> create(const std::filesystem::path& image,
                                        const std::filesystem::path& mount_point,
                                        uint64_t size_bytes, ResourceRecorder* recorder,
                                        std::error_code& ec);
  LoopDisk(LoopDisk&& other) noexcept;
  LoopDisk& operator=(LoopDisk&&) = delete;
  LoopDisk(const LoopDisk&) = delete;
  ~LoopDisk();

  // umount, detach, unlink; idempotent.
  std::error_code remove();

  const std::string& device() const { return device_; }            // "/dev/loop3"
  const std::string& major_minor() const { return major_minor_; }  // "7:3"
  const std::filesystem::path& mount_point() const { return mount_point_; }

 private:
  LoopDisk() = default;
  std::filesystem::path image_;
  std::filesystem::path mount_point_;
  std::string device_;
  std::string major_minor_;
  ResourceRecorder* recorder_ = nullptr;
  bool live_ = false;
};

enum class CgroupIo { v1_blkio, v2_io, none };
// Which I/O controller this host offers (v1 blkio mounted, else v2 with io available).
CgroupIo detect_cgroup_io();

class IoCgroup {
 public:
  // <blkio root>/<prefix>-<node> (v1) or /sys/fs/cgroup/<prefix>-<node> (v2).
  static std::optional<IoCgroup> create(const std::string& run_prefix, const NodeName& node,
                                        ResourceRecorder* recorder, std::error_code& ec);
  IoCgroup(IoCgroup&& other) noexcept;
  IoCgroup& operator=(IoCgroup&&) = delete;
  IoCgroup(const IoCgroup&) = delete;
  ~IoCgroup();

  std::error_code add_process(pid_t pid) const;
  std::error_code remove();  // moves leftover processes to the parent, rmdir; idempotent
  const std::filesystem::path& path() const { return path_; }
  CgroupIo version() const { return version_; }

 private:
  IoCgroup() = default;
  std::filesystem::path path_;
  CgroupIo version_ = CgroupIo::none;
  ResourceRecorder* recorder_ = nullptr;
  bool live_ = false;
};

// Applies/removes I/O limits for device `major_minor` in `cgroup` (v1 or v2 from the path).
std::error_code set_io_limits(const std::filesystem::path& cgroup, const std::string& major_minor,
                              const DiskParams& limits);
std::error_code clear_io_limits(const std::filesystem::path& cgroup,
                                const std::string& major_minor);
// True when any limit for the device is in place.
bool has_io_limits(const std::filesystem::path& cgroup, const std::string& major_minor);

}  // namespace faultline::chaos
