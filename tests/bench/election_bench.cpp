// Controller election cost (ARCHITECTURE.md §9: re-electing the partitions of a failed broker costs
// <= 2 µs per partition at 1,000,000 partitions). 5 brokers, replication factor 3, one topic.
//
// Each benchmark builds the cluster outside the timed region and times one controller call; the
// time covers deciding, appending the records to the log and applying them to the image (what the
// controller does before the shell persists). Counters:
//   us_per_moved     time / partitions whose leader changed
//   us_per_touched   time / partitions that got a new record (leader or ISR change)
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>

#include "faultline/cluster/controller/controller.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
constexpr int kBrokers = 5;

class BenchCluster {
 public:
  explicit BenchCluster(int32_t partitions) : now_(ControllerTime{} + 1h), c_(config(), now_) {
    for (int32_t b = 1; b <= kBrokers; ++b) {
      epochs_[b] = c_.register_broker({BrokerId{b}, 1, {}, {}, {}, {}}, now_).broker_epoch;
    }
    drain();
    for (int32_t b = 1; b <= kBrokers; ++b)
      heartbeat(b);
    c_.create_topic("bench", partitions, 3, now_);
    drain();
  }

  static ControllerConfig config() {
    ControllerConfig c;
    c.session_timeout = 1000ms;
    c.auto_leader_rebalance = false;  // measured on its own, not inside the failover tick
    return c;
  }

  void drain() {
    auto records = c_.take_new_records();
    if (!records.empty())
      c_.mark_durable(records.back().offset);
    c_.take_election_events();
  }
  HeartbeatResult heartbeat(int32_t b, bool shutdown = false) {
    auto r = c_.heartbeat({BrokerId{b}, epochs_[b], c_.durable_offset(), shutdown}, now_);
    drain();
    return r;
  }
  void advance(std::chrono::milliseconds d) { now_ += d; }
  // Records written and leader changes since the last drain.
  std::pair<size_t, size_t> outcome() {
    size_t records = c_.take_new_records().size();
    size_t moved = c_.take_election_events().size();
    return {records, moved};
  }

  Controller& controller() { return c_; }
  ControllerTime now() const { return now_; }
  std::map<int32_t, BrokerEpoch>& epochs() { return epochs_; }

 private:
  ControllerTime now_;
  Controller c_;
  std::map<int32_t, BrokerEpoch> epochs_;
};

template <typename F>
double timed_seconds(F&& f) {
  auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void report(benchmark::State& state, double seconds, std::pair<size_t, size_t> outcome) {
  state.SetIterationTime(seconds);
  auto [records, moved] = outcome;
  state.counters["moved"] = static_cast<double>(moved);
  state.counters["touched"] = static_cast<double>(records);
  state.counters["us_per_moved"] = moved ? seconds * 1e6 / static_cast<double>(moved) : 0;
  state.counters["us_per_touched"] = records ? seconds * 1e6 / static_cast<double>(records) : 0;
}

// Broker 1 stops heartbeating; the tick that notices fences it and fails over everything it led
// or was in the ISR of.
void BM_FailoverOfFailedBroker(benchmark::State& state) {
  for (auto _ : state) {
    BenchCluster cluster(static_cast<int32_t>(state.range(0)));
    // The shell ticks every 100 ms; broker 1 is silent from the start.
    for (int step = 0; step < 10; ++step) {
      cluster.advance(100ms);
      for (int32_t b = 2; b <= kBrokers; ++b)
        cluster.heartbeat(b);
      cluster.controller().tick(cluster.now());
    }
    cluster.advance(100ms);
    for (int32_t b = 2; b <= kBrokers; ++b)
      cluster.heartbeat(b);
    double s = timed_seconds([&] { cluster.controller().tick(cluster.now()); });
    report(state, s, cluster.outcome());
  }
}
BENCHMARK(BM_FailoverOfFailedBroker)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_ControlledShutdown(benchmark::State& state) {
  for (auto _ : state) {
    BenchCluster cluster(static_cast<int32_t>(state.range(0)));
    double s = timed_seconds([&] { cluster.heartbeat(1, /*shutdown=*/true); });
    // heartbeat() drained the records: count them from the image instead.
    state.SetIterationTime(s);
    size_t still_led = cluster.controller().image().partitions_led_by(BrokerId{1}).size();
    state.counters["still_led"] = static_cast<double>(still_led);
    state.counters["us_per_partition_of_broker"] =
        s * 1e6 /
        static_cast<double>(cluster.controller().image().replica_index(BrokerId{1}).size());
  }
}
BENCHMARK(BM_ControlledShutdown)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_Demotion(benchmark::State& state) {
  for (auto _ : state) {
    BenchCluster cluster(static_cast<int32_t>(state.range(0)));
    double s = timed_seconds(
        [&] { cluster.controller().demote(BrokerId{1}, "network-health", cluster.now()); });
    report(state, s, cluster.outcome());
  }
}
BENCHMARK(BM_Demotion)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Broker 1 failed and came back; its leaders re-added it to their ISRs; a preferred election over
// every partition hands it back the 1/5 it should lead.
void BM_PreferredRebalance(benchmark::State& state) {
  for (auto _ : state) {
    BenchCluster cluster(static_cast<int32_t>(state.range(0)));
    Controller& c = cluster.controller();
    cluster.epochs()[1] =
        c.register_broker({BrokerId{1}, 2, {}, {}, {}, {}}, cluster.now()).broker_epoch;
    cluster.drain();
    cluster.heartbeat(1);
    for (PartitionRef ref : c.image().partitions_with_replica(BrokerId{1})) {
      const PartitionState p = c.image().partition(ref);
      ReplicaList isr = p.isr;
      isr.push_back(BrokerId{1});
      c.alter_partition(
          {c.image().topic_partition(ref), p.leader, cluster.epochs()[p.leader.value()],
           p.leader_epoch, p.partition_epoch, isr},
          cluster.now());
    }
    cluster.drain();
    double s = timed_seconds([&] { c.elect_leaders(ElectionType::preferred, {}, cluster.now()); });
    report(state, s, cluster.outcome());
    state.counters["us_per_scanned"] = s * 1e6 / static_cast<double>(state.range(0));
  }
}
BENCHMARK(BM_PreferredRebalance)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace faultline::cluster

BENCHMARK_MAIN();
