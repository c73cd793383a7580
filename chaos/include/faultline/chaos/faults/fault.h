// The Fault interface, what a fault needs to know about the run, and the registry of active faults.
//
// Lifecycle: a Fault is built from a valid FaultSpec; inject() records every resource it will
// create in the journal *before* creating it, then applies it; verify() checks the effect is
// observable (a partition: a TCP connect that must fail; a pause: state T in /proc); heal() undoes
// it and is idempotent (healing twice, or healing a half-injected fault, is fine). Destroying a
// Fault does not heal it: faults outlive the harness only through the journal and `faultline
// clean`. Not thread-safe; one owner (the runner or the CLI).
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "faultline/chaos/faults/errc.h"
#include "faultline/chaos/faults/spec.h"

namespace faultline::chaos {

using FaultId = uint64_t;

// One node of the run as the fault backends see it.
struct FaultNode {
  NodeName name;
  std::string netns;                             // name under /run/netns
  std::map<std::string, std::string> addresses;  // interface ("int", "ext") -> IPv4
  std::optional<std::string> block_device;       // "7:3" major:minor of its data dir's loop device
  std::optional<std::filesystem::path> blkio_cgroup;  // the run's cgroup its processes are in
  // The control file of the faultline-lazyfs mounted as its data directory (storage faults).
  std::optional<std::filesystem::path> lazyfs_control;
};

struct FaultTopology {
  std::string run_prefix;  // every resource name carries it
  std::vector<FaultNode> nodes;

  const FaultNode* find(const NodeName& name) const;
  std::vector<NodeName> names() const;
  std::map<NodeName, std::vector<std::string>> addresses() const;
};

// Where a fault writes what it is about to create ("kind", "name", details) before creating it,
// and erases it after removing it. The lead adapts topo's crash-safe journal to this.
class ResourceRecorder {
 public:
  virtual ~ResourceRecorder() = default;
  virtual std::error_code will_create(const std::string& kind, const std::string& name,
                                      const nlohmann::json& details) = 0;
  virtual void removed(const std::string& kind, const std::string& name) = 0;
};

// Signals and restarts for a node's process (topo's supervisor implements this via an adapter).
class ProcessControl {
 public:
  virtual ~ProcessControl() = default;
  virtual std::optional<pid_t> pid(const NodeName& node) const = 0;
  virtual std::error_code signal(const NodeName& node, int signo) = 0;
  // Wait until the node's process exited (after SIGTERM/SIGKILL), at most `timeout`.
  virtual std::error_code wait_exit(const NodeName& node, std::chrono::milliseconds timeout) = 0;
  virtual std::error_code start(const NodeName& node) = 0;
};

struct FaultContext {
  const FaultTopology* topology = nullptr;
  ResourceRecorder* recorder = nullptr;  // required for network/disk faults
  ProcessControl* processes = nullptr;   // required for process faults
  std::filesystem::path shaper_binary;   // faultline-shaper, for the NFQUEUE backend
  std::filesystem::path run_dir;         // shaper logs
  uint64_t seed = 0;                     // the shaper's RNG seed (per fault: seed ^ id)
};

class Fault {
 public:
  virtual ~Fault() = default;
  virtual std::error_code inject() = 0;
  virtual std::error_code heal() = 0;
  virtual std::error_code verify() = 0;
  // After heal(): the effect is gone (the blocked path connects again, the process runs again).
  virtual std::error_code verify_healed() = 0;
  // Which mechanism implements it ("nftables", "link-down", "netem", "nfqueue", "tbf",
  // "blkio-v1", "io.max", "signal"); recorded in faults.jsonl.
  virtual std::string backend() const = 0;
  // Extra facts for faults.jsonl (groups of a partition, queue number, ...).
  virtual nlohmann::json details() const { return nlohmann::json::object(); }
};

// Builds the backend for `spec` (already validated). Chooses netem vs NFQUEUE by probing. Errors:
// unknown_target, invalid_spec, backend_unavailable.
std::unique_ptr<Fault> make_fault(FaultId id, const FaultSpec& spec, const FaultContext& ctx,
                                  std::error_code& ec);

// Active faults by id, for `fault heal ID|--all` and for the runner's end-of-run heal.
class ActiveFaults {
 public:
  struct Entry {
    FaultId id;
    FaultSpec spec;
    std::unique_ptr<Fault> fault;
  };
  FaultId next_id() { return next_id_++; }
  void add(FaultId id, FaultSpec spec, std::unique_ptr<Fault> fault);
  Entry* find(FaultId id);
  // Heals and forgets it; not_found when there is no such id.
  std::error_code heal(FaultId id);
  // Forgets it without healing (the caller healed it).
  void erase(FaultId id);
  // Heals every fault, newest first; returns the first error but tries them all.
  std::error_code heal_all();
  std::vector<FaultId> ids() const;
  size_t size() const { return entries_.size(); }

 private:
  FaultId next_id_ = 1;
  std::vector<Entry> entries_;
};

}  // namespace faultline::chaos
