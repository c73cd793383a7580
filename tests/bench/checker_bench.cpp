// Checker speed against the reference figures of shared/oracles/porcupine/README.md (Porcupine
// v1.3.0 on this machine) and the Kafka-log check on generated histories (DESIGN.md §9).
// Run once: build/bench/checker_bench
#include <benchmark/benchmark.h>
#include <faultline/checker/formats.h>
#include <faultline/checker/kafka.h>
#include <faultline/checker/linearizability.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <sstream>

#include "../../checker/tests/simulated_log.h"

// Heap accounting for the memory figures: every operator new in this binary is counted.
namespace heap {
std::atomic<std::size_t> current{0};
std::atomic<std::size_t> peak{0};
void add(void* p) {
  const std::size_t now = current += malloc_usable_size(p);
  std::size_t old = peak.load();
  while (now > old && !peak.compare_exchange_weak(old, now)) {
  }
}
}  // namespace heap

void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (!p)
    throw std::bad_alloc();
  heap::add(p);
  return p;
}
void operator delete(void* p) noexcept {
  if (!p)
    return;
  heap::current -= malloc_usable_size(p);
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  operator delete(p);
}

namespace {

using namespace faultline::checker;
namespace fs = std::filesystem;

fs::path oracle_dir() {
  const char* env = std::getenv("FAULTLINE_SOURCE_DIR");
  const fs::path source =
      env && *env ? fs::path(env) : fs::path(__FILE__).parent_path() / ".." / "..";
  return source / ".." / "shared" / "oracles" / "porcupine";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::vector<History>& etcd_histories() {
  static const std::vector<History> all = [] {
    std::vector<History> out;
    for (int n = 0; n <= 102; ++n) {
      const auto p = oracle_dir() / "jepsen" / fmt::format("etcd_{:03}.log", n);
      if (!fs::exists(p))
        continue;
      auto h = parse_jepsen_etcd(slurp(p));
      if (h)
        out.push_back(std::move(*h));
    }
    return out;
  }();
  return all;
}

History kv(const char* name) {
  auto h = parse_porcupine_kv(slurp(oracle_dir() / "kv" / name));
  return h ? std::move(*h) : History{};
}

void BM_EtcdAll(benchmark::State& state) {
  const auto& all = etcd_histories();
  if (all.size() != 102)
    state.SkipWithError("oracle files not found");
  for (auto _ : state) {
    for (const auto& h : all)
      benchmark::DoNotOptimize(check_linearizable(h, ModelKind::cas_register));
  }
  state.counters["porcupine_ms"] = 560;
}
BENCHMARK(BM_EtcdAll)->Unit(benchmark::kMillisecond);

void BM_EtcdAllParseAndCheck(benchmark::State& state) {
  std::vector<std::string> texts;
  for (int n = 0; n <= 102; ++n) {
    const auto p = oracle_dir() / "jepsen" / fmt::format("etcd_{:03}.log", n);
    if (fs::exists(p))
      texts.push_back(slurp(p));
  }
  for (auto _ : state) {
    for (const auto& t : texts) {
      auto h = parse_jepsen_etcd(t);
      benchmark::DoNotOptimize(check_linearizable(*h, ModelKind::cas_register));
    }
  }
  state.counters["porcupine_ms"] = 560;
}
BENCHMARK(BM_EtcdAllParseAndCheck)->Unit(benchmark::kMillisecond);

void BM_Etcd007(benchmark::State& state) {
  auto h = parse_jepsen_etcd(slurp(oracle_dir() / "jepsen" / "etcd_007.log"));
  for (auto _ : state)
    benchmark::DoNotOptimize(check_linearizable(*h, ModelKind::cas_register));
  state.counters["porcupine_ms"] = 127;
}
BENCHMARK(BM_Etcd007)->Unit(benchmark::kMillisecond);

void kv_bench(benchmark::State& state, const char* file, bool partition, double porcupine_ms,
              Verdict expected) {
  const History h = kv(file);
  LinearizabilityOptions o;
  o.partition_by_key = partition;
  for (auto _ : state) {
    auto r = check_linearizable(h, ModelKind::kv, o);
    if (r.verdict != expected)
      state.SkipWithError("wrong verdict");
  }
  state.counters["porcupine_ms"] = porcupine_ms;
}
BENCHMARK_CAPTURE(kv_bench, c50_ok_per_key, "c50-ok.txt", true, 149, Verdict::valid)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(kv_bench, c50_bad_per_key, "c50-bad.txt", true, 27, Verdict::invalid)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(kv_bench, c10_ok_whole, "c10-ok.txt", false, 2700, Verdict::valid)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(kv_bench, c10_bad_whole, "c10-bad.txt", false, 3100, Verdict::invalid)
    ->Unit(benchmark::kMillisecond);

// Kafka: a simulated correct log with producers, consumers, crashes and seeks; ~ops operations.
History kafka_history(std::size_t ops) {
  faultline::checker::testing::SimulationOptions o;
  o.partitions = 8;
  o.producers = 16;
  o.consumers = 8;
  o.steps = 2 * ops;
  auto h = build_history(faultline::checker::testing::simulate_kafka(42, o));
  return h ? std::move(*h) : History{};
}

constexpr double kMiB = 1024.0 * 1024.0;

void BM_KafkaCheck(benchmark::State& state) {
  const std::size_t before_history = heap::current;
  const History h = kafka_history(static_cast<std::size_t>(state.range(0)));
  const std::size_t history_bytes = heap::current - before_history;
  std::size_t check_peak = 0;
  for (auto _ : state) {
    const std::size_t base = heap::current;
    heap::peak = base;
    auto r = check_kafka(h);
    check_peak = std::max(check_peak, heap::peak - base);
    if (!r.valid)
      state.SkipWithError("simulated history judged invalid");
  }
  state.counters["ops"] = static_cast<double>(h.ops.size());
  state.counters["history_MiB"] = static_cast<double>(history_bytes) / kMiB;
  state.counters["check_peak_MiB"] = static_cast<double>(check_peak) / kMiB;
}
BENCHMARK(BM_KafkaCheck)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

void BM_KafkaParseJsonl(benchmark::State& state) {
  faultline::checker::testing::SimulationOptions o;
  o.steps = 2 * static_cast<std::size_t>(state.range(0));
  const auto events = faultline::checker::testing::simulate_kafka(7, o);
  std::string text = history_header_line("kafka") + "\n";
  for (const auto& e : events)
    text += to_jsonl_line(e) + "\n";
  for (auto _ : state)
    benchmark::DoNotOptimize(parse_jsonl(text));
  state.counters["MB"] = static_cast<double>(text.size()) / 1e6;
}
// What `faultline check --model kafka` does with a file already in memory: parse, pair, check.
void BM_KafkaJsonlEndToEnd(benchmark::State& state) {
  faultline::checker::testing::SimulationOptions o;
  o.partitions = 8;
  o.producers = 16;
  o.consumers = 8;
  o.steps = 2 * static_cast<std::size_t>(state.range(0));
  std::string text = history_header_line("kafka") + "\n";
  {
    const auto events = faultline::checker::testing::simulate_kafka(42, o);
    for (const auto& e : events) text += to_jsonl_line(e) + "\n";
  }
  std::size_t peak = 0;
  for (auto _ : state) {
    const std::size_t base = heap::current;
    heap::peak = base;
    auto h = parse_jsonl(text);
    if (!h) state.SkipWithError("parse failed");
    auto r = check_kafka(*h);
    if (!r.valid) state.SkipWithError("judged invalid");
    peak = std::max(peak, heap::peak - base);
  }
  state.counters["MB"] = static_cast<double>(text.size()) / 1e6;
  state.counters["peak_MiB"] = static_cast<double>(peak) / kMiB;
}
BENCHMARK(BM_KafkaJsonlEndToEnd)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->Iterations(1);

BENCHMARK(BM_KafkaParseJsonl)->Arg(100'000)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
