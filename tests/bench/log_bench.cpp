// Partition log throughput and recovery (cluster/include/faultline/cluster/log/partition_log.h).
//   BM_Append/fsync:0|1   leader appends of 100-record batches of 1 KiB values (~104 KiB each),
//                         page cache only vs. fsync after every batch (Kafka flush.messages=1)
//   BM_Read               sequential fetches of 1 MiB from a 64 MiB log (warm page cache)
//   BM_Recovery/segment_mib:N  PartitionLog::open of a 255 MiB log: the last segment is scanned
//                         and CRC-checked batch by batch; with 64 MiB segments that is ~63 MiB,
//                         with 1024 MiB all of it (warm page cache: this measures our CPU
//                         cost, not the disk)
//   BM_Crc32c/slice8:0|1  the batch checksum, hardware (SSE4.2) vs. portable path, 1 MiB
// Logs live in fresh directories under /tmp and are removed afterwards. Run with
// --benchmark_repetitions to get medians; each case has a fixed iteration count so a run writes
// a bounded amount to disk.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "faultline/cluster/log/crc32c.h"
#include "faultline/cluster/log/partition_log.h"
#include "faultline/cluster/log/record_batch.h"

namespace faultline::cluster {
namespace {

namespace fsys = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fsys::temp_directory_path() / "faultline-log-bench-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fsys::remove_all(path_); }
  const fsys::path& path() const { return path_; }

 private:
  fsys::path path_;
};

std::string kib_batch() {
  BatchBuilder b(1'700'000'000'000);
  const std::string value(1024, 'v');
  for (int i = 0; i < 100; ++i)
    b.add("key-" + std::to_string(i), value, i);
  return b.finish();
}

std::unique_ptr<PartitionLog> open_or_die(const fsys::path& dir, LogConfig cfg) {
  std::error_code ec;
  auto log = PartitionLog::open(dir, cfg, ec);
  if (!log)
    std::abort();
  return log;
}

void fill(PartitionLog& log, uint64_t bytes) {
  const std::string batch = kib_batch();
  std::error_code ec;
  for (uint64_t written = 0; written < bytes; written += batch.size()) {
    log.append_as_leader(batch, LeaderEpoch{1}, ec);
    if (ec)
      std::abort();
  }
  if (log.flush())
    std::abort();
}

void BM_Append(benchmark::State& state) {
  TempDir dir;
  LogConfig cfg;
  cfg.fsync_every_batch = state.range(0) != 0;
  auto log = open_or_die(dir.path(), cfg);
  const std::string batch = kib_batch();
  std::error_code ec;
  for (auto _ : state) {
    log->append_as_leader(batch, LeaderEpoch{1}, ec);
    if (ec) {
      state.SkipWithError(ec.message().c_str());
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 100));
  if (auto fsync = log->last_fsync_duration())
    state.counters["last_fsync_us"] = static_cast<double>(fsync->count()) / 1e3;
}
BENCHMARK(BM_Append)->ArgName("fsync")->Arg(0)->Iterations(1500)->UseRealTime();
BENCHMARK(BM_Append)->ArgName("fsync")->Arg(1)->Iterations(150)->UseRealTime();

void BM_Read(benchmark::State& state) {
  static TempDir dir;
  static auto log = [] {
    auto l = open_or_die(dir.path(), LogConfig{});
    fill(*l, uint64_t{64} << 20);
    return l;
  }();
  const size_t max_bytes = 1 << 20;
  Offset from{0};
  uint64_t bytes = 0;
  std::error_code ec;
  for (auto _ : state) {
    const SharedBytes chunk = log->read(from, max_bytes, log->log_end_offset(), ec);
    if (ec || chunk.empty()) {
      state.SkipWithError("read failed");
      break;
    }
    bytes += chunk.size();
    // Continue after the last batch returned; wrap around at the end.
    std::vector<std::span<const char>> parts;
    split_batches(chunk, parts);
    from = BatchView(parts.back()).last_offset().next();
    if (from == log->log_end_offset())
      from = Offset{0};
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Read)->Iterations(200)->UseRealTime();

void BM_Recovery(benchmark::State& state) {
  TempDir dir;
  LogConfig cfg;
  cfg.segment_bytes = static_cast<uint64_t>(state.range(0)) << 20;
  {
    auto log = open_or_die(dir.path(), cfg);
    // Just under 256 MiB, so that with 64 MiB segments the last one is nearly full: the worst
    // case for a recovery that scans the last segment.
    fill(*log, (uint64_t{256} << 20) - (uint64_t{1} << 20));
  }
  Offset leo{0};
  for (auto _ : state) {
    auto log = open_or_die(dir.path(), cfg);
    leo = log->log_end_offset();
    benchmark::DoNotOptimize(leo);
  }
  state.counters["log_end_offset"] = static_cast<double>(leo.value());
}
BENCHMARK(BM_Recovery)
    ->ArgName("segment_mib")
    ->Arg(64)
    ->Arg(1024)
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_Crc32c(benchmark::State& state) {
  const std::string data(1 << 20, 'x');
  const bool portable = state.range(0) != 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(portable ? crc32c_slice8(data) : crc32c(data));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_Crc32c)->ArgName("slice8")->Arg(0)->Arg(1);

}  // namespace
}  // namespace faultline::cluster

BENCHMARK_MAIN();
