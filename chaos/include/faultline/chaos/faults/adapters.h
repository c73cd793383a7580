// Glue between the fault backends and the rest of chaos/: topo's Journal, Supervisor, Topology
// and clean's cleaner registry. The backends themselves only know the small interfaces in fault.h
// (ResourceRecorder, ProcessControl, FaultTopology), which keeps them testable without a run.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "faultline/chaos/faults/fault.h"
#include "faultline/chaos/topology.h"

namespace faultline::chaos {

class Journal;
class Supervisor;

// Records fault resources in the run's crash-safe journal (intend before, removed after). Fault
// resources are journaled with an empty netns field; their namespace is in the details.
class JournalRecorder final : public ResourceRecorder {
 public:
  explicit JournalRecorder(Journal& journal) : journal_(journal) {}
  std::error_code will_create(const std::string& kind, const std::string& name,
                              const nlohmann::json& details) override;
  void removed(const std::string& kind, const std::string& name) override;

 private:
  Journal& journal_;
};

// Process faults through the supervisor; node names are the supervisor's process names ("b1").
class SupervisorProcessControl final : public ProcessControl {
 public:
  explicit SupervisorProcessControl(Supervisor& supervisor) : supervisor_(supervisor) {}
  std::optional<pid_t> pid(const NodeName& node) const override;
  std::error_code signal(const NodeName& node, int signo) override;
  std::error_code wait_exit(const NodeName& node, std::chrono::milliseconds timeout) override;
  std::error_code start(const NodeName& node) override;

 private:
  Supervisor& supervisor_;
};

// Per-broker disk facts the topology does not know (from LoopDisk / IoCgroup), by node id.
// Either part may be missing: a node may have a loop disk, a lazyfs, both or neither.
struct NodeDisk {
  std::string major_minor;
  std::filesystem::path cgroup;
  std::filesystem::path lazyfs_control;
};

// The fault view of topo's nodes: name = node id ("b1"), interfaces "int"/"ext" with addresses.
FaultTopology fault_topology(const std::string& prefix, const std::vector<NodeInfo>& nodes,
                             const std::map<std::string, NodeDisk>& disks = {});

// Registers clean_fault_resource for every fault resource kind with clean.h's registry.
void register_fault_cleaners();

}  // namespace faultline::chaos
