// The controller quorum with real faultline-controller processes on loopback (no brokers).
//   BM_ActiveControllerFailover/<election_timeout_ms>    a 3-voter quorum; kill -9 of the active
//       controller; the time until the two others agree on a new active controller (each polled
//       with DescribeQuorum every ~5 ms). The killed voter is restarted and caught up before the
//       next kill. Kills: FAULTLINE_BENCH_KILLS, else 20. 1000 ms is Kafka's default
//       controller.quorum.election.timeout.ms; the heartbeat is a tenth of it.
//   BM_MetadataCommit/<voters>    one admin request (SetConfig) at a time against the active
//       controller: its record appended, fsync'd on the active controller and, with 3 voters,
//       replicated to and fsync'd on a follower before the answer. The quorum of 1 is the single
//       controller as it was before the quorum existed.
// Run from the build directory (it starts build/bin/faultline-controller):
//   cd build && bench/controller_quorum_bench
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "controller_quorum.h"
#include "faultline/cluster/client/client.h"

namespace faultline::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double percentile(std::vector<double> v, double q) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

int kills() {
  if (const char* k = std::getenv("FAULTLINE_BENCH_KILLS"))
    return std::max(1, std::atoi(k));
  return 20;
}

// Waits until voter `i` follows `leader` with the leader's whole log.
bool caught_up(const ControllerQuorum& q, int i, int leader, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto d = q.describe(i);
    auto l = q.describe(leader);
    if (d && l && d->leader == leader && d->last_offset == l->last_offset)
      return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

void BM_ActiveControllerFailover(benchmark::State& state) {
  TempDir dir("faultline-quorum-bench");
  ControllerQuorumOptions options;
  options.election_timeout_ms = static_cast<int>(state.range(0));
  options.heartbeat_ms = std::max(10, options.election_timeout_ms / 10);
  ControllerQuorum quorum(dir.path(), options);
  std::vector<double> samples_ms;
  int unrecovered = 0;
  for (auto _ : state) {
    samples_ms.clear();
    for (int k = 0; k < kills(); ++k) {
      auto leader = quorum.wait_for_leader(20s);
      if (!leader) {
        state.SkipWithError("no active controller");
        return;
      }
      auto killed_at = Clock::now();
      quorum.process(*leader).kill_and_reap();
      std::optional<int> next;
      while (!next && Clock::now() - killed_at < 20s) {
        next = quorum.agreed_leader({*leader});
        if (!next)
          std::this_thread::sleep_for(5ms);
      }
      if (!next) {
        ++unrecovered;
      } else {
        samples_ms.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - killed_at).count());
      }
      quorum.start(*leader);
      if (next && !caught_up(quorum, *leader, *next, 20s))
        ++unrecovered;
    }
    state.SetIterationTime(percentile(samples_ms, 0.5) / 1000);
  }
  state.counters["p50_ms"] = percentile(samples_ms, 0.50);
  state.counters["p99_ms"] = percentile(samples_ms, 0.99);
  state.counters["max_ms"] = percentile(samples_ms, 1.0);
  state.counters["kills"] = static_cast<double>(samples_ms.size());
  state.counters["unrecovered"] = unrecovered;
}
BENCHMARK(BM_ActiveControllerFailover)
    ->Arg(1000)
    ->Arg(500)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_MetadataCommit(benchmark::State& state) {
  TempDir dir("faultline-quorum-bench");
  ControllerQuorumOptions options;
  options.voters = static_cast<int>(state.range(0));
  ControllerQuorum quorum(dir.path(), options);
  if (!quorum.wait_for_leader(20s)) {
    state.SkipWithError("no active controller");
    return;
  }
  cluster::ClientConfig config;
  config.controllers = quorum.endpoint_list();
  cluster::SyncClient admin(config);
  // Find the active controller once, so the figures exclude the rotation.
  (void)admin.set_config("auto.leader.rebalance.enable", "true");
  std::vector<double> latencies_ms;
  int failed = 0;
  bool flip = false;
  for (auto _ : state) {
    auto started = Clock::now();
    auto e = admin.set_config("auto.leader.rebalance.enable", flip ? "true" : "false");
    latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - started).count());
    failed += e == cluster::errc::none ? 0 : 1;
    flip = !flip;
  }
  state.counters["p50_ms"] = percentile(latencies_ms, 0.50);
  state.counters["p99_ms"] = percentile(latencies_ms, 0.99);
  state.counters["failed"] = failed;
}
BENCHMARK(BM_MetadataCommit)->Arg(1)->Arg(3)->Unit(benchmark::kMicrosecond)->MinTime(2.0);

}  // namespace
}  // namespace faultline::testing

BENCHMARK_MAIN();
