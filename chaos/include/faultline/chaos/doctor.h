// `faultline doctor`: probes what this host can do (in a scratch namespace that is journaled and
// removed) and reports which backend each fault kind will use (ARCHITECTURE.md §3).
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace faultline::chaos {

struct HostCapabilities {
  bool netns = false;
  bool veth = false;
  bool bridge = false;
  bool nftables = false;
  bool nfqueue = false;    // packets can be queued to userspace (nft or iptables rule + bind)
  bool nft_queue = false;  // ... by nftables' own `queue` statement (kernel nft_queue)
  bool netem = false;
  bool tbf = false;
  bool cgroup_v1_blkio = false;
  bool cgroup_v2_io = false;
  bool loop = false;
  bool fuse = false;
};

struct Probe {
  std::string name;  // "netns", "veth", ...
  bool ok = false;
  std::string detail;  // why it failed / what was found
};

// One line of the report: a fault kind and the backend it will use (nullopt: cannot run here).
struct BackendChoice {
  std::string fault;  // "process", "partition", "link-cut", "packets", "rate", "disk"
  std::optional<std::string> backend;
  std::string note;
};

// The pure policy: which backend serves each fault kind given the capabilities.
std::vector<BackendChoice> choose_backends(const HostCapabilities& caps);
// netns, veth, bridge and nftables: without them no run can start.
bool minimum_met(const HostCapabilities& caps);

struct DoctorResult {
  HostCapabilities caps;
  std::vector<Probe> probes;
};
// Runs every probe (needs root for most of them; failures are reported, not thrown).
DoctorResult probe_host();

// CLI entry: prints probes and backends; returns 0, or 3 when the minimum is missing.
int run_doctor(std::ostream& out);

}  // namespace faultline::chaos
