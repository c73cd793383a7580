// The nemesis's own cost: laying out a scenario's schedule, and resolving each step's targets
// against a cluster snapshot (what happens between "the step is due" and the injector's call).
// Target: schedule generation + resolve for a 1-hour nemesis-mix run <= 10 ms.
#include <benchmark/benchmark.h>

#include "faultline/chaos/runner/schedule.h"

namespace faultline::chaos {
namespace {

ClusterSnapshot snapshot(int partitions) {
  ClusterSnapshot s;
  s.brokers = 3;
  s.alive = {1, 2, 3};
  for (int p = 0; p < partitions; ++p) {
    int leader = p % 3 + 1;
    s.partitions[p] = {leader, 3, {leader, leader % 3 + 1, (leader + 1) % 3 + 1}, {1, 2, 3}};
  }
  return s;
}

Scenario hour_of(const char* name) {
  auto s = *builtin_scenario(name);
  s.duration = std::chrono::hours(1);
  return s;
}

void BM_ScheduleOneHour(benchmark::State& state) {
  auto s = hour_of("nemesis-mix");
  uint64_t seed = 0;
  size_t steps = 0;
  for (auto _ : state) {
    auto plan = make_schedule(s, ++seed);
    steps = plan.size();
    benchmark::DoNotOptimize(plan);
  }
  state.counters["steps"] = double(steps);
}
BENCHMARK(BM_ScheduleOneHour)->Unit(benchmark::kMillisecond);

// The whole nemesis plan of a 1-hour run: schedule, then every step resolved.
void BM_ScheduleAndResolveOneHour(benchmark::State& state) {
  auto s = hour_of("nemesis-mix");
  auto snap = snapshot(int(state.range(0)));
  uint64_t seed = 0;
  for (auto _ : state) {
    auto plan = make_schedule(s, ++seed);
    size_t specs = 0;
    for (const auto& p : plan)
      specs += resolve(p.step, snap, p.variant).specs.size();
    benchmark::DoNotOptimize(specs);
  }
}
BENCHMARK(BM_ScheduleAndResolveOneHour)->Arg(6)->Arg(1000)->Unit(benchmark::kMillisecond);

void BM_ResolveOneStep(benchmark::State& state) {
  auto plan = make_schedule(hour_of("lagging-follower-leader-kill"), 1);
  auto snap = snapshot(6);
  size_t i = 0;
  for (auto _ : state) {
    const auto& p = plan[i++ % plan.size()];
    benchmark::DoNotOptimize(resolve(p.step, snap, p.variant));
  }
}
BENCHMARK(BM_ResolveOneStep)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace faultline::chaos

BENCHMARK_MAIN();
