// Harness bring-up and tear-down (ARCHITECTURE.md §9: a 5-broker cluster with controller, clients
// and probe namespaces up and serving in <= 1.5 s, torn down in <= 1 s). Every node runs a stand-in
// TCP listener (this binary re-exec'd) since what matters here is namespaces, links and process
// start-up; "up" ends when every listener accepts a connection made from inside its namespace.
// Needs root. Run once: build/bench/topology_bench
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "../../chaos/tests/test_listener.h"
#include "faultline/chaos/journal.h"
#include "faultline/chaos/supervisor.h"
#include "faultline/chaos/topology.h"

namespace {
namespace fs = std::filesystem;
using namespace faultline::chaos;
using namespace std::chrono_literals;
constexpr uint16_t kPort = 9092;

struct Cluster {
  std::unique_ptr<Journal> journal;
  std::unique_ptr<Topology> topology;
  std::unique_ptr<Supervisor> supervisor;
};

fs::path state_root() {
  return fs::temp_directory_path() / fmt::format("fl-topo-bench-{}", ::getpid());
}

bool bring_up(Cluster& c, int iteration) {
  const std::string run = fmt::format("bench-{}-{}", ::getpid(), iteration);
  std::error_code ec;
  c.journal = Journal::open(state_root(), run, run_prefix(run), ec);
  if (ec)
    return false;
  TopologySpec spec;
  spec.controllers = 1;
  spec.brokers = 5;
  c.topology = Topology::create(spec, *c.journal, ec);
  if (ec)
    return false;
  c.supervisor = std::make_unique<Supervisor>(c.journal.get(), c.journal->dir() / "logs");
  for (const auto& node : c.topology->nodes()) {
    const Ipv4 addr = node.int_address ? *node.int_address : *node.ext_address;
    ProcessSpec p{
        node.id,
        {"/proc/self/exe"},
        {{faultline::chaos::testing::kListenEnv, fmt::format("{}:{}", addr.str(), kPort)}},
        node.netns,
        std::nullopt};
    if (c.supervisor->start(p))
      return false;
  }
  for (const auto& node : c.topology->nodes()) {
    const Ipv4 addr = node.int_address ? *node.int_address : *node.ext_address;
    if (c.supervisor->wait_ready(node.id, {addr.str(), kPort}, 10s))
      return false;
  }
  return true;
}

void tear_down(Cluster& c) {
  c.supervisor.reset();  // SIGKILL and reap every node process
  c.topology.reset();    // links, bridges, namespaces
  if (c.journal) {
    fs::path dir = c.journal->dir();
    c.journal.reset();
    fs::remove_all(dir);
  }
}

void BM_ClusterUp(benchmark::State& state) {
  int i = 0;
  for (auto _ : state) {
    Cluster c;
    if (!bring_up(c, i++))
      state.SkipWithError("bring-up failed (root needed)");
    state.PauseTiming();
    tear_down(c);
    state.ResumeTiming();
  }
}

void BM_ClusterDown(benchmark::State& state) {
  int i = 1000;
  for (auto _ : state) {
    state.PauseTiming();
    Cluster c;
    if (!bring_up(c, i++))
      state.SkipWithError("bring-up failed (root needed)");
    state.ResumeTiming();
    tear_down(c);
  }
}

BENCHMARK(BM_ClusterUp)
    ->Iterations(1)
    ->Repetitions(7)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_ClusterDown)
    ->Iterations(1)
    ->Repetitions(7)
    ->ReportAggregatesOnly(true)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  fs::remove_all(state_root());
  return 0;
}
