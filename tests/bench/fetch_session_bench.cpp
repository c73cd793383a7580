// Replication fetch sessions (cluster/.../replication/fetch_session.h): what an idle follower's
// long-poll costs on the wire and on both brokers, sessionless vs in a session.
//
// One follower replicating N partitions (topic "faultline") from one leader, every partition
// caught up and idle. Counters:
//   request_bytes    the encoded ReplicaFetch request frame
//   partitions_sent  partitions listed in it
// Times are per call.
// BM_EncodeIdleRequest: a sessionless/opening request (every partition) vs an incremental one
// (nothing changed). BM_LeaderResolve: FetchSessionCache::resolve of an idle incremental request,
// which copies the whole session out (what the broker then checks). BM_FollowerBuild:
// FetchSessionBuilder::build diffing N wanted partitions against what the leader holds.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "faultline/cluster/replication/fetch_session.h"
#include "faultline/cluster/wire/codec.h"

namespace faultline::cluster {
namespace {

std::vector<ReplicaFetchPartition> idle_partitions(int64_t n) {
  std::vector<ReplicaFetchPartition> v;
  v.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i)
    v.push_back({{"faultline", PartitionIndex{i}}, 3, 123456, 3, 123456});
  return v;
}

ReplicaFetchRequest base_request() {
  ReplicaFetchRequest r;
  r.replica_id = 2;
  r.broker_epoch = 17;
  r.max_wait_ms = 500;
  return r;
}

// A builder that has opened a session over `wanted` (its next request is incremental).
FetchSessionBuilder opened_builder(const std::vector<ReplicaFetchPartition>& wanted) {
  FetchSessionBuilder b;
  ReplicaFetchRequest req = base_request();
  b.build(wanted, req);
  ReplicaFetchResponse resp;
  resp.session_id = 99;
  b.on_response(resp);
  return b;
}

// An idle follower's request for `n` partitions: all of them, or (incremental) what a builder
// with an open session over them sends.
ReplicaFetchRequest idle_request(int64_t n, bool incremental) {
  auto wanted = idle_partitions(n);
  ReplicaFetchRequest req = base_request();
  if (incremental) {
    opened_builder(wanted).build(wanted, req);
  } else {
    req.partitions = wanted;
  }
  return req;
}

void BM_EncodeIdleRequest(benchmark::State& state) {
  const bool incremental = state.range(1) != 0;
  ReplicaFetchRequest req = idle_request(state.range(0), incremental);
  std::string frame;
  for (auto _ : state) {
    frame.clear();
    encode_request(1, req, frame);
    benchmark::DoNotOptimize(frame.data());
  }
  state.counters["request_bytes"] = static_cast<double>(frame.size());
  state.counters["partitions_sent"] = static_cast<double>(req.partitions.size());
  state.SetLabel(incremental ? "incremental" : "full");
}
BENCHMARK(BM_EncodeIdleRequest)
    ->ArgsProduct({{100, 1000, 10000}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);

void BM_DecodeIdleRequest(benchmark::State& state) {
  const bool incremental = state.range(1) != 0;
  ReplicaFetchRequest req = idle_request(state.range(0), incremental);
  std::string frame;
  encode_request(1, req, frame);
  std::span<const char> body(frame.data() + kFrameSizeBytes, frame.size() - kFrameSizeBytes);
  for (auto _ : state) {
    auto decoded = decode_request(body);
    benchmark::DoNotOptimize(decoded);
  }
  state.SetLabel(incremental ? "incremental" : "full");
}
BENCHMARK(BM_DecodeIdleRequest)->ArgsProduct({{10000}, {0, 1}})->Unit(benchmark::kMicrosecond);

void BM_LeaderResolve(benchmark::State& state) {
  auto wanted = idle_partitions(state.range(0));
  FetchSessionCache cache(1);
  ReplicaFetchRequest open = base_request();
  open.session_epoch = kFetchSessionOpen;
  open.partitions = wanted;
  ReplicaFetchRequest idle = base_request();
  idle.session_id = cache.resolve(open).session_id;
  idle.session_epoch = 1;
  for (auto _ : state) {
    auto served = cache.resolve(idle);
    if (served.error != errc::none || served.partitions.size() != wanted.size()) {
      state.SkipWithError("not served");
      break;
    }
    idle.session_epoch = next_fetch_session_epoch(idle.session_epoch);
    benchmark::DoNotOptimize(served.partitions.data());
  }
}
BENCHMARK(BM_LeaderResolve)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

void BM_FollowerBuild(benchmark::State& state) {
  auto wanted = idle_partitions(state.range(0));
  FetchSessionBuilder b = opened_builder(wanted);
  ReplicaFetchRequest req = base_request();
  ReplicaFetchResponse resp;
  resp.session_id = 99;
  for (auto _ : state) {
    b.build(wanted, req);
    b.on_response(resp);
    benchmark::DoNotOptimize(req.partitions.data());
  }
}
BENCHMARK(BM_FollowerBuild)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace faultline::cluster

BENCHMARK_MAIN();
