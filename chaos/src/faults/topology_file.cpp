// <run>/fault-topology.json: the fault view of a running cluster, for `fault` CLI invocations.
#include <fstream>

#include "faultline/chaos/faults/cli.h"

namespace faultline::chaos {

namespace fs = std::filesystem;

nlohmann::json fault_topology_to_json(const FaultTopology& t) {
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& n : t.nodes) {
    nlohmann::json j{{"name", n.name}, {"netns", n.netns}, {"addresses", n.addresses}};
    if (n.block_device)
      j["block_device"] = *n.block_device;
    if (n.blkio_cgroup)
      j["io_cgroup"] = n.blkio_cgroup->string();
    if (n.lazyfs_control)
      j["lazyfs_control"] = n.lazyfs_control->string();
    nodes.push_back(std::move(j));
  }
  return {{"run_prefix", t.run_prefix}, {"nodes", nodes}};
}

std::optional<FaultTopology> fault_topology_from_json(const nlohmann::json& j) {
  try {
    FaultTopology t;
    t.run_prefix = j.at("run_prefix").get<std::string>();
    for (const auto& n : j.at("nodes")) {
      FaultNode f;
      f.name = n.at("name").get<std::string>();
      f.netns = n.value("netns", std::string());
      f.addresses = n.value("addresses", std::map<std::string, std::string>{});
      if (n.contains("block_device"))
        f.block_device = n["block_device"].get<std::string>();
      if (n.contains("io_cgroup"))
        f.blkio_cgroup = n["io_cgroup"].get<std::string>();
      if (n.contains("lazyfs_control"))
        f.lazyfs_control = n["lazyfs_control"].get<std::string>();
      t.nodes.push_back(std::move(f));
    }
    return t;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::error_code save_fault_topology(const fs::path& run_dir, const FaultTopology& t) {
  std::ofstream out(run_dir / "fault-topology.json", std::ios::trunc);
  out << fault_topology_to_json(t).dump(2) << "\n";
  return out ? std::error_code{} : std::make_error_code(std::errc::io_error);
}

std::optional<FaultTopology> load_fault_topology(const fs::path& run_dir) {
  std::ifstream in(run_dir / "fault-topology.json");
  if (!in)
    return std::nullopt;
  try {
    return fault_topology_from_json(nlohmann::json::parse(in));
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace faultline::chaos
