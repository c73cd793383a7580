// What a metadata snapshot costs, next to what it replaces (ARCHITECTURE.md §2 item 18). 5 brokers,
// replication factor 3, one topic of N partitions, then two brokers fenced (their partitions fail
// over) and back: about 1.2 records per partition. The log grows with every change while the image
// stays one state per partition, so the snapshot pays off once the log is a few records per
// partition long (compare the two times):
//   BM_EncodeSnapshot   a voter saving its committed image (before the fsync)
//   BM_DecodeSnapshot   a broker or voter loading it (all indexes rebuilt)
//   BM_ReplayLog        the alternative without snapshots: applying the whole log from offset 0
// Counters: bytes (snapshot size), bytes_per_partition, records (log length replayed).
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>

#include "faultline/cluster/controller/controller.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
constexpr int kBrokers = 5;

// A controller's log after creating the topic and failing two brokers over and back.
std::vector<MetadataEntry> build_log(int32_t partitions) {
  ControllerConfig config;
  config.session_timeout = 1000ms;
  config.auto_leader_rebalance = false;
  ControllerTime now = ControllerTime{} + 1h;
  Controller c(config, now);
  std::vector<MetadataEntry> log;
  auto drain = [&] {
    auto records = c.take_new_records();
    if (!records.empty())
      c.mark_durable(records.back().offset);
    log.insert(log.end(), records.begin(), records.end());
    c.take_election_events();
  };
  std::map<int32_t, BrokerEpoch> epochs;
  auto heartbeat_all = [&](int32_t except) {
    for (int32_t b = 1; b <= kBrokers; ++b) {
      if (b == except)
        continue;
      c.heartbeat({BrokerId{b}, epochs[b], c.durable_offset(), false}, now);
      drain();
    }
  };
  for (int32_t b = 1; b <= kBrokers; ++b) {
    epochs[b] = c.register_broker({BrokerId{b}, 1, {}, {}, {}, {}}, now).broker_epoch;
    drain();
  }
  heartbeat_all(0);
  c.create_topic("bench", partitions, 3, now);
  drain();
  for (int32_t failed : {1, 2}) {
    // The broker misses its session: fenced, its partitions fail over.
    for (int i = 0; i < 12; ++i) {
      now += 100ms;
      heartbeat_all(failed);
      c.tick(now);
      drain();
    }
    // It comes back (a new incarnation) and catches up.
    epochs[failed] = c.register_broker({BrokerId{failed}, 2, {}, {}, {}, {}}, now).broker_epoch;
    drain();
    heartbeat_all(0);
  }
  return log;
}

MetadataImage replay(const std::vector<MetadataEntry>& log) {
  MetadataImage image;
  for (const MetadataEntry& e : log) {
    if (image.apply(e))
      std::abort();
  }
  return image;
}

void BM_EncodeSnapshot(benchmark::State& state) {
  const MetadataImage image = replay(build_log(static_cast<int32_t>(state.range(0))));
  std::vector<uint8_t> bytes;
  for (auto _ : state) {
    bytes.clear();
    encode_metadata_snapshot(image, 1, bytes);
    benchmark::DoNotOptimize(bytes.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes.size());
  state.counters["bytes_per_partition"] =
      static_cast<double>(bytes.size()) / static_cast<double>(state.range(0));
}

void BM_DecodeSnapshot(benchmark::State& state) {
  const MetadataImage image = replay(build_log(static_cast<int32_t>(state.range(0))));
  std::vector<uint8_t> bytes;
  encode_metadata_snapshot(image, 1, bytes);
  for (auto _ : state) {
    auto snapshot = decode_metadata_snapshot(bytes);
    if (!snapshot || !(snapshot->image == image))
      state.SkipWithError("round trip failed");
    benchmark::DoNotOptimize(snapshot);
  }
  state.counters["bytes"] = static_cast<double>(bytes.size());
}

void BM_ReplayLog(benchmark::State& state) {
  const std::vector<MetadataEntry> log = build_log(static_cast<int32_t>(state.range(0)));
  for (auto _ : state) {
    MetadataImage image = replay(log);
    benchmark::DoNotOptimize(image);
  }
  state.counters["records"] = static_cast<double>(log.size());
}

BENCHMARK(BM_EncodeSnapshot)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeSnapshot)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReplayLog)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace faultline::cluster

BENCHMARK_MAIN();
