// Whole-cluster benchmarks on loopback (ARCHITECTURE.md §9), real processes:
//   BM_ProduceAcksAll/N     acks=all, RF=3, 3 brokers, batches of 100 x 1 KiB records, N sends in
//                           flight spread over 3 partitions: throughput and produce latency.
//   BM_ProduceAcksAllStream/N  the same with N sends kept in flight all the time (a new send as
//                           soon as one is acknowledged), as Kafka's producer-perf-test does.
//   BM_ProduceAcksAllFlush/{plain,lazyfs}_{every_batch,never}/16   the same, 16 in flight, with
//                           each flush policy, with and without faultline-lazyfs under the brokers
//                           (root: FUSE mounts), side by side.
//   BM_FailoverAfterKill    client-observed write unavailability after kill -9 of the leader with
//                           broker.session.timeout.ms=1000: from the kill to the first
//                           acknowledged write on the new leader, over 20 kills.
//   BM_Handover/demotion    the same for a planned move: demoting the leader, or SIGTERM
//   BM_Handover/shutdown    (controlled shutdown); the longest gap between two acknowledged writes
//                           from the request until writes flow on the new leader (20 moves each).
// Run from the build directory (it starts build/bin/faultline-*): cd build && bench/cluster_bench
#include <benchmark/benchmark.h>

#include <algorithm>

#include "local_cluster.h"
#include "test_producer.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
using testing::LocalCluster;
using testing::LocalClusterOptions;
using Clock = std::chrono::steady_clock;

double percentile(std::vector<double> v, double q) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

bool create_topic(LocalCluster& cluster, const std::string& topic, int partitions) {
  SyncClient admin(cluster.client_config());
  if (admin.create_topic(topic, partitions, 3).error != errc::none)
    return false;
  for (int p = 0; p < partitions; ++p) {
    if (!admin.wait_for_leader({topic, PartitionIndex{p}}, 10s,
                               [](const PartitionMetadata& m) { return m.isr.size() == 3; }))
      return false;
  }
  return true;
}

asio::awaitable<void> send_one(Client& client, TopicPartition tp, std::vector<std::string> values,
                               std::vector<double>& latencies, int& failures, int& outstanding) {
  auto started = Clock::now();
  SendResult r = co_await client.send(tp, std::move(values), Acks::all);
  latencies.push_back(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
  if (!r.acknowledged())
    ++failures;
  --outstanding;
}

// What every produce benchmark shares: a cluster with a 3-partition topic, a client, one batch of
// 100 x 1 KiB records sent round-robin over the partitions, and the outcome of each send.
struct Producer {
  static constexpr int kRecords = 100;
  static constexpr size_t kRecordBytes = 1024;

  explicit Producer(const LocalClusterOptions& options)
      : cluster(options),
        up(create_topic(cluster, "bench", 3)),
        client(io, cluster.client_config()) {}

  void spawn() {
    TopicPartition tp{"bench", PartitionIndex{static_cast<int32_t>(sent++ % 3)}};
    ++outstanding;
    asio::co_spawn(io, send_one(client, tp, batch, latencies, failures, outstanding),
                   asio::detached);
  }
  // Waits for every send, then reports `batches` batches and the latency counters.
  void finish(benchmark::State& state, int64_t batches) {
    while (outstanding > 0)
      io.run_one();
    client.close();
    io.run_for(100ms);
    state.SetBytesProcessed(batches * kRecords * static_cast<int64_t>(kRecordBytes));
    state.counters["p50_ms"] = percentile(latencies, 0.50);
    state.counters["p99_ms"] = percentile(latencies, 0.99);
    state.counters["failed_sends"] = failures;
  }

  LocalCluster cluster;
  bool up;
  asio::io_context io;
  Client client;
  std::vector<std::string> batch =
      std::vector<std::string>(kRecords, std::string(kRecordBytes, 'x'));
  std::vector<double> latencies;
  int failures = 0;
  int outstanding = 0;
  int64_t sent = 0;
};

// N sends, then wait for all of them, then the next N.
void produce_acks_all(benchmark::State& state, const LocalClusterOptions& options) {
  const int in_flight = static_cast<int>(state.range(0));
  Producer producer(options);
  if (!producer.up) {
    state.SkipWithError("the cluster did not come up");
    return;
  }
  for (auto _ : state) {
    for (int i = 0; i < in_flight; ++i)
      producer.spawn();
    while (producer.outstanding > 0)
      producer.io.run_one();
  }
  producer.finish(state, producer.sent);
}

void BM_ProduceAcksAll(benchmark::State& state) {
  produce_acks_all(state, {});
}
BENCHMARK(BM_ProduceAcksAll)
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->MinTime(5.0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// A producer that keeps N sends in flight all the time (a new one as soon as one is acknowledged),
// as Kafka's producer-perf-test does; BM_ProduceAcksAll instead sends N and waits for all of them
// before the next N, so every round ends with the slowest of its sends. One iteration is one
// acknowledged send.
void BM_ProduceAcksAllStream(benchmark::State& state) {
  const int in_flight = static_cast<int>(state.range(0));
  Producer producer(LocalClusterOptions{});
  if (!producer.up) {
    state.SkipWithError("the cluster did not come up");
    return;
  }
  for (int i = 0; i < in_flight; ++i)
    producer.spawn();
  for (auto _ : state) {
    while (producer.outstanding == in_flight)
      producer.io.run_one();
    producer.spawn();
  }
  producer.finish(state, state.iterations());
}
BENCHMARK(BM_ProduceAcksAllStream)
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->Arg(32)
    ->MinTime(5.0)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The same with every broker's data directory on faultline-lazyfs (root, /dev/fuse), side by
// side with the plain runs of the same flush policy: what the storage faults' filesystem costs.
void BM_ProduceAcksAllFlush(benchmark::State& state, bool lazyfs, std::string policy) {
  LocalClusterOptions options;
  options.lazyfs = lazyfs;
  options.flush_policy = std::move(policy);
  produce_acks_all(state, options);
}
BENCHMARK_CAPTURE(BM_ProduceAcksAllFlush, plain_every_batch, false, "every-batch")
    ->Arg(16)
    ->MinTime(5.0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ProduceAcksAllFlush, lazyfs_every_batch, true, "every-batch")
    ->Arg(16)
    ->MinTime(5.0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ProduceAcksAllFlush, plain_never, false, "never")
    ->Arg(16)
    ->MinTime(5.0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ProduceAcksAllFlush, lazyfs_never, true, "never")
    ->Arg(16)
    ->MinTime(5.0)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_FailoverAfterKill(benchmark::State& state) {
  LocalClusterOptions options;
  options.session_timeout_ms = 1000;
  options.heartbeat_interval_ms = 100;
  LocalCluster cluster(options);
  const TopicPartition tp{"failover", PartitionIndex{0}};
  if (!create_topic(cluster, "failover", 1)) {
    state.SkipWithError("the cluster did not come up");
    return;
  }
  SyncClient admin(cluster.client_config());
  ClientConfig config = cluster.client_config();
  config.retry_backoff = 10ms;
  std::vector<double> samples;
  for (auto _ : state) {
    testing::TestProducer producer(config, tp, Acks::all);
    producer.wait_for_more(20, 10s);
    int leader = admin.wait_for_leader(tp, 10s)->leader.value();
    auto killed_at = Clock::now();
    cluster.broker(leader).signal(SIGKILL);
    cluster.broker(leader).wait_for(5s);
    producer.wait_for_more(5, 20s);
    producer.stop();
    double unavailable = -1;
    for (const auto& o : producer.outcomes()) {
      if (o.completed > killed_at && o.result.acknowledged() && o.result.leader.value() != leader) {
        unavailable = std::chrono::duration<double>(o.completed - killed_at).count();
        break;
      }
    }
    if (unavailable < 0) {
      state.SkipWithError("writes never resumed");
      return;
    }
    samples.push_back(unavailable * 1000);
    state.SetIterationTime(unavailable);
    cluster.start_broker(leader);
    admin.wait_for_leader(tp, 20s, [](const PartitionMetadata& p) { return p.isr.size() == 3; });
  }
  state.counters["p50_ms"] = percentile(samples, 0.50);
  state.counters["p99_ms"] = percentile(samples, 0.99);
  state.counters["max_ms"] = percentile(samples, 1.0);
}
BENCHMARK(BM_FailoverAfterKill)->Iterations(20)->UseManualTime()->Unit(benchmark::kMillisecond);

// Planned leadership moves: the client should barely notice (ARCHITECTURE.md §9: <= 100 ms at p99).
void BM_Handover(benchmark::State& state) {
  const bool shutdown = state.range(0) == 1;
  state.SetLabel(shutdown ? "controlled-shutdown" : "demotion");
  LocalCluster cluster;
  const TopicPartition tp{"handover", PartitionIndex{0}};
  if (!create_topic(cluster, "handover", 1)) {
    state.SkipWithError("the cluster did not come up");
    return;
  }
  SyncClient admin(cluster.client_config());
  ClientConfig config = cluster.client_config();
  config.retry_backoff = 5ms;
  std::vector<double> samples;
  for (auto _ : state) {
    testing::TestProducer producer(config, tp, Acks::all);
    producer.wait_for_more(20, 10s);
    int leader = admin.wait_for_leader(tp, 10s)->leader.value();
    auto moved_at = Clock::now();
    if (shutdown) {
      cluster.broker(leader).signal(SIGTERM);
    } else {
      admin.demote(BrokerId{leader}, "bench");
    }
    admin.wait_for_leader(tp, 20s,
                          [&](const PartitionMetadata& p) { return p.leader.value() != leader; });
    producer.wait_for_more(20, 20s);
    producer.stop();
    auto gap = producer.longest_gap(moved_at, Clock::now());
    samples.push_back(std::chrono::duration<double, std::milli>(gap).count());
    state.SetIterationTime(std::chrono::duration<double>(gap).count());
    if (shutdown) {
      cluster.broker(leader).wait_for(20s);
      cluster.start_broker(leader);
    } else {
      admin.promote(BrokerId{leader});
    }
    admin.wait_for_leader(tp, 20s, [&](const PartitionMetadata& p) {
      return p.isr.size() == 3 && (shutdown || p.leader.value() == leader);
    });
  }
  state.counters["p50_ms"] = percentile(samples, 0.50);
  state.counters["p99_ms"] = percentile(samples, 0.99);
  state.counters["max_ms"] = percentile(samples, 1.0);
}
BENCHMARK(BM_Handover)
    ->Arg(0)
    ->Arg(1)
    ->Iterations(20)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace faultline::cluster

BENCHMARK_MAIN();
