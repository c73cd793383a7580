// Storage faults through faultline-lazyfs (chaos/bin/faultline-lazyfs.cpp): each broker's data
// directory is a lazyfs mount (ClusterShape::lazyfs), and a fault is a command written to that
// mount's control file — with, for power-loss and torn-write, a kill -9 of the broker first.
//
// LazyFsMount is the mount's RAII owner: the mount is journaled ("fuse-mount") before the daemon
// is started, the daemon runs under the Supervisor (journaled as a process), and remove() (or
// `faultline clean` after a crash) unmounts it lazily and kills whatever daemon is left.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "faultline/chaos/faults/fault.h"

namespace faultline::chaos {

class Supervisor;

// The control file inside a lazyfs mount.
inline constexpr const char* kLazyFsControlFile = ".faultline-ctl";

// Writes one command line (parse_control_command's syntax) to the control file.
std::error_code lazyfs_command(const std::filesystem::path& control, const std::string& line);
// The daemon's status (pending_bytes, lost_bytes, faults, ...); nullopt when unreadable.
std::optional<nlohmann::json> lazyfs_status(const std::filesystem::path& control);
// True when `mount_point` is a mounted faultline-lazyfs (fstype fuse.lazyfs in mountinfo).
bool is_lazyfs_mounted(const std::filesystem::path& mount_point);

class LazyFsMount {
 public:
  // Mounts faultline-lazyfs at `mount_point` over `backing` (both created if missing), as the
  // supervised process `process_name`; waits until the mount is up.
  static std::optional<LazyFsMount> create(Supervisor& supervisor, ResourceRecorder& recorder,
                                           const std::filesystem::path& binary,
                                           const std::string& process_name,
                                           const std::filesystem::path& backing,
                                           const std::filesystem::path& mount_point, uint64_t seed,
                                           std::error_code& ec);
  LazyFsMount(LazyFsMount&& other) noexcept;
  LazyFsMount& operator=(LazyFsMount&&) = delete;
  LazyFsMount(const LazyFsMount&) = delete;
  ~LazyFsMount();

  // Stops the daemon and unmounts (lazily); idempotent.
  std::error_code remove();
  std::filesystem::path control() const { return mount_point_ / kLazyFsControlFile; }
  const std::filesystem::path& mount_point() const { return mount_point_; }

 private:
  LazyFsMount() = default;
  Supervisor* supervisor_ = nullptr;
  ResourceRecorder* recorder_ = nullptr;
  std::string process_name_;
  std::filesystem::path mount_point_;
  bool live_ = false;
};

// The fault for a storage kind (power-loss, torn-write, disk-error, slow-fsync); every target
// must have a lazyfs (FaultNode::lazyfs_control), else backend_unavailable.
std::unique_ptr<Fault> make_storage_fault(FaultId id, const FaultSpec& spec,
                                          const FaultContext& ctx, std::error_code& ec);

// `faultline clean` for "fuse-mount" (lazy unmount, kill the daemon) and "lazyfs-fault" (heal
// through the control file, if the mount still answers). Already gone = success.
std::error_code clean_storage_resource(const std::string& kind, const nlohmann::json& details);

}  // namespace faultline::chaos
