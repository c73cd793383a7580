#include "faultline/chaos/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

namespace faultline::chaos {
namespace fs = std::filesystem;

namespace {
std::error_code last_errno(std::string_view call, std::string_view what) {
  int e = errno;
  spdlog::info("chaos.netns_error call={} what={} errno={}", call, what, e);
  return {e, std::system_category()};
}

fs::path netns_path(const std::string& name) {
  return kNetnsRunDir / name;
}

bool valid_name(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

// /run/netns must be a shared mount point so that namespace mounts propagate to other mount
// namespaces (what `ip netns add` does): try MS_SHARED; if it is not a mount point yet (EINVAL),
// bind-mount it onto itself first.
std::error_code prepare_run_dir() {
  if (::mkdir(kNetnsRunDir.c_str(), 0755) != 0 && errno != EEXIST) {
    return last_errno("mkdir", kNetnsRunDir.string());
  }
  for (bool bound = false;;) {
    if (::mount("", kNetnsRunDir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0)
      return {};
    if (errno != EINVAL || bound)
      return last_errno("mount MS_SHARED", kNetnsRunDir.string());
    if (::mount(kNetnsRunDir.c_str(), kNetnsRunDir.c_str(), "none", MS_BIND | MS_REC, nullptr) !=
        0) {
      return last_errno("mount MS_BIND", kNetnsRunDir.string());
    }
    bound = true;
  }
}
}  // namespace

std::error_code create_netns(const std::string& name) {
  if (!valid_name(name))
    return std::make_error_code(std::errc::invalid_argument);
  if (auto ec = prepare_run_dir())
    return ec;
  const fs::path path = netns_path(name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0)
    return last_errno("open O_EXCL", path.string());
  ::close(fd);

  // unshare() on a throwaway thread: the new namespace is that thread's, the bind mount keeps it
  // alive after the thread exits. /proc/thread-self, not /proc/self (that is the main thread).
  std::error_code ec;
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      ec = last_errno("unshare CLONE_NEWNET", name);
      return;
    }
    if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      ec = last_errno("mount bind ns/net", path.string());
    }
  }).join();
  if (ec)
    ::unlink(path.c_str());
  return ec;
}

std::error_code delete_netns(const std::string& name) {
  if (!valid_name(name))
    return std::make_error_code(std::errc::invalid_argument);
  const fs::path path = netns_path(name);
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return last_errno("umount2", path.string());
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return last_errno("unlink", path.string());
  return {};
}

bool netns_exists(const std::string& name) {
  struct stat st {};
  return valid_name(name) && ::stat(netns_path(name).c_str(), &st) == 0;
}

std::vector<std::string> list_netns() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kNetnsRunDir, ec)) {
    out.push_back(entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

NetnsFd& NetnsFd::operator=(NetnsFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

NetnsFd::~NetnsFd() {
  if (fd_ >= 0)
    ::close(fd_);
}

NetnsFd open_netns(const std::string& name, std::error_code& ec) {
  ec.clear();
  if (!valid_name(name)) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  int fd = ::open(netns_path(name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ec = last_errno("open", netns_path(name).string());
    return {};
  }
  return NetnsFd(fd);
}

std::error_code run_in_netns(const std::string& name, const std::function<std::error_code()>& fn) {
  NetnsFd ns;
  if (!name.empty()) {
    std::error_code ec;
    ns = open_netns(name, ec);
    if (ec)
      return ec;
  }
  std::error_code result;
  std::thread([&] {
    if (ns && ::setns(ns.get(), CLONE_NEWNET) != 0) {
      result = last_errno("setns", name);
      return;
    }
    result = fn();
  }).join();
  return result;
}

}  // namespace faultline::chaos
