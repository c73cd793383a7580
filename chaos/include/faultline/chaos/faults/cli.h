// `faultline fault inject KIND ...`, `fault heal ID|--all`, `fault list` against a run directory.
//
// Each invocation is its own process, so the active faults live in <run>/faults-active.json
// (id, spec) and every fault is rebuilt from (id, spec) to be healed: heal is derivable from them
// (nft tables and iptables chains are named after the id, the shaper is found by a /proc scan,
// qdiscs by kind). Resources are appended to the run's journal (journal.jsonl) so `faultline clean`
// sees them; injections and heals go to <run>/faults.jsonl. The topology comes from
// <run>/fault-topology.json (written by `cluster up`, see save_fault_topology).
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iosfwd>
#include <optional>

#include "faultline/chaos/faults/fault.h"

namespace faultline::chaos {

void add_fault_commands(CLI::App& app, int& exit_code);

struct FaultCommand {
  enum class Verb { inject, heal, list } verb = Verb::list;
  FaultSpec spec;                  // inject
  std::optional<FaultId> heal_id;  // heal ID
  bool heal_all = false;           // heal --all
  bool verify = true;
};

// The command logic, reusable by `cluster up` / the runner with an in-memory topology.
// `processes` may be null (process faults then fail with backend_unavailable). Returns the exit
// code: 0 ok, 1 failed, 2 bad arguments / unknown id.
int run_fault_command(const FaultCommand& cmd, const FaultTopology& topology,
                      const std::filesystem::path& run_dir, ProcessControl* processes,
                      std::ostream& out);

nlohmann::json fault_topology_to_json(const FaultTopology& t);
std::optional<FaultTopology> fault_topology_from_json(const nlohmann::json& j);
std::error_code save_fault_topology(const std::filesystem::path& run_dir, const FaultTopology& t);
std::optional<FaultTopology> load_fault_topology(const std::filesystem::path& run_dir);

}  // namespace faultline::chaos
