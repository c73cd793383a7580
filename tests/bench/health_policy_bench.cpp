// Health policy cost per probing round (ARCHITECTURE.md §4), for 5..100 brokers.
//
// One round = every broker probed once and every broker reporting one append+fsync sample, then
// the policy decides (median of each storage window, cluster median, hysteresis, cap, guard).
// The recorded rounds mimic a bad day: broker 1 loses its client link for 20 of every 200 rounds,
// broker 2's disk is 20x slow for 60 of every 300 rounds, every probe fails at random 1% of the
// time, and once every 500 rounds the prober itself is cut off for 3 rounds.
//
// Time is per round. Counters:
//   items_per_second         rounds decided per second (each round returns one set of decisions)
//   observations_per_second  reachability + storage observations consumed per second
//   decisions_per_1k_rounds  demote + promote decisions made (sanity: the policy did act)
#include <benchmark/benchmark.h>

#include <chrono>
#include <random>
#include <vector>

#include "faultline/probes/health_policy.h"

namespace faultline::probes {
namespace {

using namespace std::chrono_literals;

constexpr size_t kRecordedRounds = 3000;
constexpr auto kInterval = 1s;

std::vector<ProbeRound> record(int32_t brokers, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution random_failure(0.01);
  std::uniform_int_distribution<int64_t> fsync_us(1500, 4500);
  std::vector<ProbeRound> rounds(kRecordedRounds);
  for (size_t r = 0; r < kRecordedRounds; ++r) {
    auto& round = rounds[r];
    round.now = TimePoint{} + 1h + kInterval * static_cast<int64_t>(r);
    const bool prober_cut_off = r % 500 < 3;
    for (int32_t b = 1; b <= brokers; ++b) {
      bool ok =
          !prober_cut_off && !random_failure(rng) && !(b == 1 && r % 200 >= 100 && r % 200 < 120);
      round.reachability.push_back(
          {BrokerId{b}, ok, ok ? 900us : 500ms, ok ? "" : "connect: timed out", round.now});
      auto latency = std::chrono::microseconds(fsync_us(rng));
      if (b == 2 && r % 300 >= 100 && r % 300 < 160)
        latency *= 20;
      round.storage.push_back({BrokerId{b}, latency, round.now, ""});
    }
  }
  return rounds;
}

// Moves every time in the recording one recording-length forward, so it can be replayed into the
// same policy without going back in time.
void shift(std::vector<ProbeRound>& rounds) {
  const auto d = kInterval * static_cast<int64_t>(kRecordedRounds);
  for (auto& round : rounds) {
    round.now += d;
    for (auto& o : round.reachability)
      o.at += d;
    for (auto& o : round.storage)
      o.at += d;
  }
}

void BM_HealthPolicyRound(benchmark::State& state) {
  const auto brokers = static_cast<int32_t>(state.range(0));
  auto rounds = record(brokers, 42);
  std::vector<BrokerId> ids;
  for (int32_t b = 1; b <= brokers; ++b)
    ids.emplace_back(b);
  HealthConfig config;
  config.recovery_hold = 10s;
  HealthPolicy policy(config, ids);

  size_t next = 0;
  int64_t decisions = 0;
  for (auto _ : state) {
    if (next == rounds.size()) {
      state.PauseTiming();
      shift(rounds);
      next = 0;
      state.ResumeTiming();
    }
    auto out = policy.step(rounds[next++]);
    decisions += static_cast<int64_t>(out.decisions.size());
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["observations_per_second"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 2 * brokers, benchmark::Counter::kIsRate);
  state.counters["decisions_per_1k_rounds"] =
      1000.0 * static_cast<double>(decisions) / static_cast<double>(state.iterations());
}

BENCHMARK(BM_HealthPolicyRound)->Arg(5)->Arg(10)->Arg(25)->Arg(50)->Arg(100);

}  // namespace
}  // namespace faultline::probes

BENCHMARK_MAIN();
