// Checker speed against the reference figures of shared/oracles/porcupine/README.md (Porcupine
// v1.3.0 on this machine) and the Kafka-log check on generated histories (ARCHITECTURE.md §9).
// Run once: build/bench/checker_bench
#include <benchmark/benchmark.h>
#include <faultline/checker/formats.h>
#include <faultline/checker/invariants.h>
#include <faultline/checker/kafka.h>
#include <faultline/checker/linearizability.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <random>
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
    for (const auto& e : events)
      text += to_jsonl_line(e) + "\n";
  }
  std::size_t peak = 0;
  for (auto _ : state) {
    const std::size_t base = heap::current;
    heap::peak = base;
    auto h = parse_jsonl(text);
    if (!h)
      state.SkipWithError("parse failed");
    auto r = check_kafka(*h);
    if (!r.valid)
      state.SkipWithError("judged invalid");
    peak = std::max(peak, heap::peak - base);
  }
  state.counters["MB"] = static_cast<double>(text.size()) / 1e6;
  state.counters["peak_MiB"] = static_cast<double>(peak) / kMiB;
}
BENCHMARK(BM_KafkaJsonlEndToEnd)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->Iterations(1);

BENCHMARK(BM_KafkaParseJsonl)->Arg(100'000)->Unit(benchmark::kMillisecond)->Iterations(3);

// ---- The invariant pass on a synthetic one-hour run (built as a History directly: 2M Events in
// memory would measure the builder, not the checker) ----

// A correct run: 6 partitions on 3 brokers, `ops` sends and polls spread evenly over an hour,
// and `changes` timeline events among them: leader moves (epoch bumps), ISR shrinks and
// expansions, and demotions that the next events act on. Every ack names the current leader and
// epoch; the run ends with a final read that reaches the end of every partition.
class HourRun {
 public:
  HourRun(std::size_t ops, std::size_t changes) : rng_(2026), ops_(ops), changes_(changes) {
    for (int p = 0; p < kPartitions; ++p) {
      Part& part = parts_[p];
      part.replicas = {BrokerId(1 + p % 3), BrokerId(1 + (p + 1) % 3), BrokerId(1 + (p + 2) % 3)};
      part.leader = part.replicas[0];
      part.isr = part.replicas;
      publish(p);
    }
  }

  History build() {
    const std::chrono::nanoseconds hour = std::chrono::hours(1);
    const auto op_step = hour / static_cast<int64_t>(ops_);
    const auto change_step = hour / static_cast<int64_t>(changes_ + 1);
    std::chrono::nanoseconds next_change = change_step;
    for (std::size_t i = 0; i < ops_; ++i) {
      now_ = op_step * static_cast<int64_t>(i);
      while (next_change <= now_ && h_.nemesis.size() < changes_) {
        now_ = next_change;
        change();
        next_change += change_step;
      }
      now_ = op_step * static_cast<int64_t>(i) + std::chrono::microseconds(1);
      if (rng_() % 10 < 7)
        send(i);
      else
        poll();
    }
    final_read();
    h_.workload = "kafka";
    h_.acks = Acks::all;
    return std::move(h_);
  }

 private:
  static constexpr int kPartitions = 6;
  struct Part {
    std::vector<BrokerId> replicas, isr;
    BrokerId leader;
    int32_t epoch = 0;
    std::vector<int64_t> log;  // values by offset
    std::size_t read = 0;      // the consumer's position
  };

  NemesisEvent event(NemesisKind kind) {
    NemesisEvent n;
    n.kind = kind;
    n.time = now_;
    n.line = ++line_;
    now_ += std::chrono::microseconds(1);
    return n;
  }
  void publish(int p) {
    NemesisEvent n = event(NemesisKind::partition_state);
    n.partition = PartitionId(p);
    n.epoch = LeaderEpoch(parts_[p].epoch);
    n.leader = parts_[p].leader;
    n.isr = parts_[p].isr;
    n.replicas = parts_[p].replicas;
    h_.nemesis.push_back(std::move(n));
  }
  void move_leader(int p, BrokerId avoid) {
    Part& part = parts_[p];
    for (BrokerId b : part.replicas) {
      if (b != avoid && b != part.leader && b != demoted_) {
        part.leader = b;
        break;
      }
    }
    part.isr = part.replicas;
    ++part.epoch;
    publish(p);
  }
  void change() {
    const int p = static_cast<int>(rng_() % kPartitions);
    const auto roll = rng_() % 20;
    if (roll < 12) {
      move_leader(p, BrokerId(-1));
    } else if (roll < 17) {
      Part& part = parts_[p];
      part.isr = part.isr.size() == 3 ? std::vector<BrokerId>{part.leader} : part.replicas;
      publish(p);
    } else {
      // Demote a broker (or lift the demotion); the controller then moves its leaderships.
      demoted_ =
          demoted_ == BrokerId(-1) ? BrokerId(1 + static_cast<int32_t>(rng_() % 3)) : BrokerId(-1);
      NemesisEvent n = event(NemesisKind::cluster_state);
      n.alive = {BrokerId(1), BrokerId(2), BrokerId(3)};
      if (demoted_ != BrokerId(-1))
        n.demoted = {demoted_};
      h_.nemesis.push_back(std::move(n));
      for (int q = 0; q < kPartitions && demoted_ != BrokerId(-1); ++q) {
        if (parts_[q].leader == demoted_)
          move_leader(q, demoted_);
      }
    }
  }
  // One operation at a time (invoked and completed before the next), so any process may run it;
  // polls of a partition go to its own consumer so each consumer reads in order.
  Operation& begin(int64_t process, Function f, int p) {
    Operation& op = h_.ops.emplace_back();
    op.index = h_.ops.size() - 1;
    op.process = ProcessId(process);
    op.f = f;
    op.outcome = Outcome::ok;
    op.partition = PartitionId(p);
    op.invoke_time = now_;
    op.complete_time = now_ + std::chrono::microseconds(500);
    op.invoke_line = ++line_;
    op.complete_line = ++line_;
    return op;
  }
  void send(std::size_t i) {
    const int p = static_cast<int>(rng_() % kPartitions);
    Part& part = parts_[p];
    Operation& op = begin(static_cast<int64_t>(i % 16), Function::send, p);
    op.value = next_value_;
    op.offset = Offset(static_cast<int64_t>(part.log.size()));
    op.epoch = LeaderEpoch(part.epoch);
    op.leader = part.leader;
    part.log.push_back(next_value_++);
  }
  void poll() {
    const int p = static_cast<int>(rng_() % kPartitions);
    Part& part = parts_[p];
    Operation& op = begin(100 + p, Function::poll, p);
    for (int k = 0; k < 5 && part.read < part.log.size(); ++k, ++part.read)
      op.records.push_back(Record{Offset(static_cast<int64_t>(part.read)), part.log[part.read]});
  }
  void final_read() {
    for (int p = 0; p < kPartitions; ++p) {
      for (int round = 0; round < 2; ++round) {  // everything, then nothing: the end of the log
        Operation& op = begin(1000 + p, Function::poll, p);  // a fresh reader from offset 0
        op.final_read = true;
        for (std::size_t o = 0; round == 0 && o < parts_[p].log.size(); ++o)
          op.records.push_back(Record{Offset(static_cast<int64_t>(o)), parts_[p].log[o]});
        now_ += std::chrono::milliseconds(1);
      }
    }
  }

  std::mt19937_64 rng_;
  std::size_t ops_, changes_;
  std::array<Part, kPartitions> parts_;
  History h_;
  std::chrono::nanoseconds now_{0};
  std::size_t line_ = 1;
  int64_t next_value_ = 1;
  BrokerId demoted_{-1};
};

const History& hour_run() {
  static const History h = HourRun(1'000'000, 10'000).build();
  return h;
}

void BM_HourRunInvariants(benchmark::State& state) {
  const History& h = hour_run();
  InvariantResult r;
  for (auto _ : state) {
    r = check_invariants(h);
    if (!r.valid)
      state.SkipWithError(("synthetic run judged invalid: " + r.summary()).c_str());
  }
  state.counters["ops"] = static_cast<double>(h.ops.size());
  state.counters["timeline_events"] = static_cast<double>(h.nemesis.size());
}
BENCHMARK(BM_HourRunInvariants)->Unit(benchmark::kMillisecond)->Iterations(1);

// The Kafka data check on the same history, for comparison.
void BM_HourRunKafka(benchmark::State& state) {
  const History& h = hour_run();
  for (auto _ : state) {
    auto r = check_kafka(h);
    if (!r.valid)
      state.SkipWithError("synthetic run judged invalid by check_kafka");
  }
  state.counters["ops"] = static_cast<double>(h.ops.size());
}
BENCHMARK(BM_HourRunKafka)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
