#include "faultline/chaos/faults/adapters.h"

#include "faultline/chaos/clean.h"
#include "faultline/chaos/faults/injector.h"
#include "faultline/chaos/journal.h"
#include "faultline/chaos/supervisor.h"

namespace faultline::chaos {

std::error_code JournalRecorder::will_create(const std::string& kind, const std::string& name,
                                             const nlohmann::json& details) {
  return journal_.intend(kind, name, {}, details);
}

void JournalRecorder::removed(const std::string& kind, const std::string& name) {
  (void)journal_.removed(kind, name, {});
}

std::optional<pid_t> SupervisorProcessControl::pid(const NodeName& node) const {
  return supervisor_.pid(node);
}

std::error_code SupervisorProcessControl::signal(const NodeName& node, int signo) {
  return supervisor_.signal(node, signo);
}

std::error_code SupervisorProcessControl::wait_exit(const NodeName& node,
                                                    std::chrono::milliseconds timeout) {
  return supervisor_.wait_exit(node, timeout);
}

std::error_code SupervisorProcessControl::start(const NodeName& node) {
  return supervisor_.restart(node);
}

FaultTopology fault_topology(const std::string& prefix, const std::vector<NodeInfo>& nodes,
                             const std::map<std::string, NodeDisk>& disks) {
  FaultTopology topo;
  topo.run_prefix = prefix;
  for (const auto& n : nodes) {
    FaultNode f;
    f.name = n.id;
    f.netns = n.netns;
    if (n.int_address)
      f.addresses["int"] = n.int_address->str();
    if (n.ext_address)
      f.addresses["ext"] = n.ext_address->str();
    if (auto it = disks.find(n.id); it != disks.end()) {
      if (!it->second.major_minor.empty()) {
        f.block_device = it->second.major_minor;
        f.blkio_cgroup = it->second.cgroup;
      }
      if (!it->second.lazyfs_control.empty())
        f.lazyfs_control = it->second.lazyfs_control;
    }
    topo.nodes.push_back(std::move(f));
  }
  return topo;
}

void register_fault_cleaners() {
  for (const auto& kind : fault_resource_kinds()) {
    register_cleaner(
        kind, [](const OutstandingResource& r) { return clean_fault_resource(r.kind, r.details); });
  }
}

}  // namespace faultline::chaos
