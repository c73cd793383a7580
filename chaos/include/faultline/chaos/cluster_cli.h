// `faultline cluster up|status|down`: the cluster of cluster/ in namespaces, for breaking by hand
// (ARCHITECTURE.md §7, the Vagrant VM use case).
//
// `cluster up` is the run's harness: it builds the topology, starts the controller and brokers
// under the supervisor, writes <run>/cluster.json (endpoints, nodes, pids) and
// <run>/fault-topology.json, prints how to reach the cluster, and stays in the foreground until
// SIGINT/SIGTERM (or `cluster down`), when it heals active faults, stops every process and tears
// the topology down. Other `faultline` invocations act on the run through its directory:
// `fault inject --run DIR kill b1` signals the pid in <run>/processes.json, and a restart is
// requested through <run>/control/restart-<node>, which the harness carries out.
#pragma once

#include <filesystem>
#include <optional>

#include "faultline/chaos/faults/fault.h"

namespace CLI {
class App;
}

namespace faultline::chaos {

void add_cluster_commands(CLI::App& app, int& exit_code);

// Process faults against a `cluster up` harness in another process (see above).
class RunDirProcessControl final : public ProcessControl {
 public:
  explicit RunDirProcessControl(std::filesystem::path run_dir) : run_dir_(std::move(run_dir)) {}
  std::optional<pid_t> pid(const NodeName& node) const override;
  std::error_code signal(const NodeName& node, int signo) override;
  std::error_code wait_exit(const NodeName& node, std::chrono::milliseconds timeout) override;
  std::error_code start(const NodeName& node) override;

 private:
  std::filesystem::path run_dir_;
};

// The newest run under the state root whose `cluster up` harness is alive.
std::optional<std::filesystem::path> latest_cluster_run();

}  // namespace faultline::chaos
