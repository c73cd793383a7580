// Named network namespaces, created and deleted the way `ip netns add/del` does (a bind mount of
// the namespace on /run/netns/<name>), without shelling out, and a helper to run code inside one.
//
// Network namespaces are per thread: run_in_netns() runs the function on a short-lived thread that
// has setns()'d into the namespace, so sockets it opens (netlink, nftables, TCP) live there while
// the caller's thread never changes namespace.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

namespace faultline::chaos {

inline const std::filesystem::path kNetnsRunDir = "/run/netns";

// Creates /run/netns/<name>. Fails with errc::file_exists if it exists already.
std::error_code create_netns(const std::string& name);
// Unmounts (MNT_DETACH) and unlinks /run/netns/<name>. Idempotent: a missing one is success.
std::error_code delete_netns(const std::string& name);
bool netns_exists(const std::string& name);
// Names under /run/netns (sorted).
std::vector<std::string> list_netns();

// An owned O_CLOEXEC fd of /run/netns/<name> (for setns in a child before exec).
class NetnsFd {
 public:
  NetnsFd() = default;
  explicit NetnsFd(int fd) : fd_(fd) {}
  NetnsFd(NetnsFd&& o) noexcept : fd_(o.release()) {}
  NetnsFd& operator=(NetnsFd&& o) noexcept;
  ~NetnsFd();
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};
NetnsFd open_netns(const std::string& name, std::error_code& ec);

// Runs fn on a fresh thread inside the namespace and returns fn's error (or the setns error).
// An empty name runs fn in the caller's (root) namespace, still on a fresh thread.
std::error_code run_in_netns(const std::string& name, const std::function<std::error_code()>& fn);

}  // namespace faultline::chaos
