// `faultline run`: one scenario end to end (ARCHITECTURE.md §3, §6, §7). The cluster comes up in
// the run's namespaces; producers and a consumer record a history through the checker's recorder
// while the nemesis injects the scenario's seeded schedule; then everything is healed, the
// partitions are read to the end, and the Kafka-log checker decides. The run directory holds
// history.jsonl, faults.jsonl, verdict.json, junit.xml, run.json (scenario text and seed, for
// replay) and logs/.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "faultline/chaos/runner/scenario.h"

namespace CLI {
class App;
}

namespace faultline::chaos {

// `faultline run`, `faultline scenarios`, `faultline replay`.
void add_run_commands(CLI::App& app, int& exit_code);

struct RunOptions {
  uint64_t seed = 1;
  std::optional<std::chrono::seconds> duration;  // overrides the scenario's
  std::filesystem::path out_dir;                 // default: ./faultline-runs/<scenario>-<seed>
  uint16_t metrics_port = 0;  // serve the harness's metrics on 127.0.0.1:port (0: not served)
  // Run Debian's Prometheus scraping every process into <out>/prometheus; its failover figures
  // go into verdict.json ("prometheus").
  bool prometheus = false;
  // Inject only these steps of the planned schedule (indices into schedule.jsonl); the others
  // are dropped before the run starts. `faultline shrink` runs subsets this way.
  std::optional<std::vector<size_t>> only_steps;
  // Overrides the scenario's [workload] client (`faultline run --client`).
  std::optional<WorkloadClientKind> client;
  // Runs another Kafka-API cluster (or the mini-cluster) from this definition instead of the
  // built-in mini-cluster (cluster_definition.h); the workload is then librdkafka's.
  std::filesystem::path cluster_definition;
};

// Exit codes (ARCHITECTURE.md §7): 0 the verdict matches the expectation, 1 it does not, 3 a
// capability is missing, 4 the harness failed.
int run_scenario(Scenario scenario, const std::string& scenario_text, const RunOptions& options,
                 std::ostream& out);

// Capabilities a run needs that `cap_eff` (a CapEff bit mask) lacks, by name ("CAP_NET_ADMIN",
// "CAP_SYS_ADMIN"); empty when it can build namespaces. A run without them exits 3 naming them.
std::vector<std::string> missing_run_capabilities(uint64_t cap_eff);

// What <dir>/run.json recorded: the scenario (its text parsed again) and the options that give
// the same run (seed, duration, only_steps; no output directory).
struct RecordedRun {
  Scenario scenario;
  std::string scenario_text;
  RunOptions options;
};
// Empty with `why` ("<path>: <problem>", or the scenario's own error) when it cannot be read.
std::optional<RecordedRun> read_recorded_run(const std::filesystem::path& dir, std::string& why);

// Runs again what <dir>/run.json recorded (same scenario text, seed and duration) into
// <dir>/replay-N.
int replay_run(const std::filesystem::path& dir, std::ostream& out);

}  // namespace faultline::chaos
