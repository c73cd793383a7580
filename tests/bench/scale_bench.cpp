// Partition-count scale benchmark on loopback (issue 3), real processes: 1 controller (or a
// quorum of 3) and 5 brokers, one topic of N partitions with 3 replicas (N = 1,000 and 10,000;
// the second argument is the number of controllers).
//
//   create_to_full_isr_s   from CreateTopic until the controller lists every partition with a
//                          leader and all 3 replicas in the ISR, and every broker has applied
//                          that metadata (its Metadata answer is at the controller's offset)
//   idle_cpu_pct_*         each broker's and the controller's CPU (user+system, % of one core)
//                          over 10 s with nothing produced; the ISRs must stay full meanwhile
//                          (a follower that stops fetching a partition is shrunk out of it)
//   shutdown_exit_ms       SIGTERM (controlled shutdown) of the broker leading the most
//                          partitions until the process exited; it must lead nothing by then
//   leaders_moved_ms       SIGTERM until every partition it led has another leader
//   elections_per_s        the partitions it led over leaders_moved_ms: the controller's election
//                          rate, each election a committed metadata record (with a quorum, one
//                          replicated to a majority of the controllers first)
//   rejoin_s               restart of that broker until every ISR is full again
// Medians over the iterations (a different broker each time: the one leading the most). Every
// iteration also writes one acks=all record to 100 partitions spread over the topic, before the
// shutdown and after it, and fails if any write is not acknowledged.
//
// Run from the build directory (it starts build/bin/faultline-*): cd build && bench/scale_bench
// Heavier than the other benchmarks: about 2 minutes per iteration at 10k partitions here.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

#include "local_cluster.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
using testing::LocalCluster;
using testing::LocalClusterOptions;
using Clock = std::chrono::steady_clock;

constexpr int kBrokers = 5;
constexpr auto kIdleWindow = 10s;

double median(std::vector<double> v) {
  if (v.empty())
    return -1;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// user + system CPU time of a process, in seconds (/proc/PID/stat fields 14 and 15).
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos)
    return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i)
    fields >> skip;  // state .. cmajflt
  double utime = 0, stime = 0;
  fields >> utime >> stime;
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct TopicView {
  bool complete = false;  // every partition listed with a leader and a full ISR
  int64_t metadata_offset = -1;
  std::map<int, int> leaders;  // broker -> partitions led
  std::vector<int> leader_of;  // partition -> leader (-1: none)
  int under_replicated = 0;
  int offline = 0;
  int fenced_brokers = 0;
};

std::optional<TopicView> view_topic(SyncClient& admin, const std::string& topic, int partitions) {
  auto md = admin.controller_metadata();
  if (!md)
    return std::nullopt;
  TopicView v;
  v.metadata_offset = md->metadata_offset;
  v.leader_of.assign(static_cast<size_t>(partitions), -1);
  int seen = 0;
  for (const auto& p : md->partitions) {
    if (p.tp.topic != topic || p.tp.partition.value() >= partitions)
      continue;
    ++seen;
    if (p.leader == kNoBroker) {
      ++v.offline;
      continue;
    }
    v.leader_of[static_cast<size_t>(p.tp.partition.value())] = p.leader.value();
    ++v.leaders[p.leader.value()];
    if (p.isr.size() < 3)
      ++v.under_replicated;
  }
  for (const auto& b : md->brokers)
    v.fenced_brokers += b.fenced ? 1 : 0;
  v.complete = seen == partitions && v.offline == 0 && v.under_replicated == 0;
  return v;
}

// Every broker answers Metadata at (at least) `offset`: it has applied the controller's log.
bool brokers_applied(LocalCluster& cluster, const std::vector<int>& ids, int64_t offset) {
  for (int id : ids) {
    ClientConfig c = cluster.client_config();
    c.bootstrap = {cluster.client_endpoint(id)};
    SyncClient client(c);
    auto md = client.metadata({"no-such-topic-probe"});
    if (!md || md->metadata_offset < offset)
      return false;
  }
  return true;
}

// Waits until the topic is complete and every listed broker applied it; nullopt on timeout.
std::optional<TopicView> wait_full_isr(LocalCluster& cluster, SyncClient& admin,
                                       const std::string& topic, int partitions,
                                       const std::vector<int>& brokers,
                                       std::chrono::seconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto v = view_topic(admin, topic, partitions);
    if (v && v->complete && v->fenced_brokers == 0 &&
        brokers_applied(cluster, brokers, v->metadata_offset)) {
      return v;
    }
    std::this_thread::sleep_for(100ms);
  }
  return std::nullopt;
}

asio::awaitable<void> send_one(Client& client, TopicPartition tp, int& acknowledged,
                               int& outstanding) {
  std::vector<std::string> values{"scale-" + std::to_string(tp.partition.value())};
  SendResult r = co_await client.send(tp, std::move(values), Acks::all);
  if (r.acknowledged())
    ++acknowledged;
  --outstanding;
}

// One acks=all record to each of 100 partitions spread over the topic; the count acknowledged.
int write_sample(LocalCluster& cluster, const std::string& topic, int partitions) {
  asio::io_context io;
  ClientConfig config = cluster.client_config();
  config.delivery_timeout = 20s;
  Client client(io, config);
  int acknowledged = 0;
  int outstanding = 0;
  const int step = std::max(1, partitions / 100);
  for (int p = 0; p < partitions; p += step) {
    ++outstanding;
    asio::co_spawn(io, send_one(client, {topic, PartitionIndex{p}}, acknowledged, outstanding),
                   asio::detached);
  }
  while (outstanding > 0)
    io.run_one();
  client.close();
  io.run_for(50ms);
  return acknowledged;
}

// Every process's log goes to scale_bench_failure.log in the working directory (the cluster's
// directory is removed with it).
void fail(benchmark::State& state, LocalCluster& cluster, const std::string& what) {
  std::ofstream("scale_bench_failure.log") << what << "\n" << cluster.logs();
  state.SkipWithError((what + " (logs: scale_bench_failure.log)").c_str());
}

void BM_ControlledShutdownAtScale(benchmark::State& state) {
  const int partitions = static_cast<int>(state.range(0));
  const std::string topic = "scale";
  LocalClusterOptions options;
  options.controllers = static_cast<int>(state.range(1));
  options.brokers = kBrokers;
  options.min_insync_replicas = 2;
  // Kafka's defaults are 9 s / 2 s / 30 s; tighter here, as in the integration tests, so a
  // heartbeat or a follower fetch starved by the partition count shows up as fencing or an ISR
  // shrink within the benchmark.
  options.session_timeout_ms = 3000;
  options.heartbeat_interval_ms = 300;
  options.replica_lag_time_max_ms = 5000;
  LocalCluster cluster(options);
  std::vector<int> all_brokers;
  for (int id = 1; id <= kBrokers; ++id)
    all_brokers.push_back(id);
  SyncClient admin(cluster.client_config());

  auto created_at = Clock::now();
  auto created = admin.create_topic(topic, partitions, 3);
  if (created.error != errc::none) {
    fail(state, cluster, "CreateTopic failed");
    return;
  }
  auto full = wait_full_isr(cluster, admin, topic, partitions, all_brokers, 300s);
  if (!full) {
    fail(state, cluster, "the topic never reached full ISR");
    return;
  }
  state.counters["create_to_full_isr_s"] = seconds_since(created_at);

  // Idle: nothing produced; followers long-poll, leaders check ISRs, brokers heartbeat.
  std::map<int, double> cpu_before;
  for (int id : all_brokers)
    cpu_before[id] = cpu_seconds(cluster.broker(id).pid());
  double controller_before = cpu_seconds(cluster.controller().pid());
  auto idle_from = Clock::now();
  std::this_thread::sleep_for(kIdleWindow);
  double idle_s = seconds_since(idle_from);
  std::vector<double> broker_cpu;
  for (int id : all_brokers) {
    broker_cpu.push_back(100 * (cpu_seconds(cluster.broker(id).pid()) - cpu_before[id]) / idle_s);
  }
  state.counters["idle_cpu_pct_broker_avg"] =
      std::accumulate(broker_cpu.begin(), broker_cpu.end(), 0.0) / kBrokers;
  state.counters["idle_cpu_pct_broker_max"] =
      *std::max_element(broker_cpu.begin(), broker_cpu.end());
  state.counters["idle_cpu_pct_controller"] =
      100 * (cpu_seconds(cluster.controller().pid()) - controller_before) / idle_s;
  auto after_idle = view_topic(admin, topic, partitions);
  if (!after_idle || !after_idle->complete || after_idle->fenced_brokers != 0) {
    fail(state, cluster, "ISRs shrank or a broker was fenced while idle");
    return;
  }

  std::vector<double> exit_ms, moved_ms, rejoin_s, elections_per_s;
  for (auto _ : state) {
    if (write_sample(cluster, topic, partitions) != std::min(partitions, 100)) {
      fail(state, cluster, "an acks=all write before the shutdown was not acknowledged");
      return;
    }
    auto before = view_topic(admin, topic, partitions);
    if (!before || !before->complete) {
      fail(state, cluster, "no complete view of the topic before the shutdown");
      return;
    }
    auto most = std::max_element(before->leaders.begin(), before->leaders.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    const int victim = most->first;
    state.counters["victim_led"] = most->second;

    auto sigterm_at = Clock::now();
    cluster.broker(victim).signal(SIGTERM);
    double exited = -1, moved = -1;
    auto deadline = sigterm_at + 120s;
    while ((exited < 0 || moved < 0) && Clock::now() < deadline) {
      if (exited < 0 && cluster.broker(victim).wait_for(0ms) >= 0)
        exited = seconds_since(sigterm_at);
      if (moved < 0) {
        if (auto v = view_topic(admin, topic, partitions)) {
          bool all_moved = true;
          for (int p = 0; p < partitions && all_moved; ++p) {
            if (before->leader_of[static_cast<size_t>(p)] != victim)
              continue;
            int now_leader = v->leader_of[static_cast<size_t>(p)];
            all_moved = now_leader != -1 && now_leader != victim;
          }
          if (all_moved)
            moved = seconds_since(sigterm_at);
        }
      }
      std::this_thread::sleep_for(10ms);
    }
    if (exited < 0 || moved < 0) {
      fail(state, cluster, "the controlled shutdown did not complete within 120 s");
      return;
    }
    auto after = view_topic(admin, topic, partitions);
    if (!after || after->offline != 0 || after->leaders.count(victim) != 0) {
      fail(state, cluster, "the shut-down broker still leads partitions, or some are offline");
      return;
    }
    exit_ms.push_back(exited * 1000);
    moved_ms.push_back(moved * 1000);
    elections_per_s.push_back(most->second / moved);
    state.SetIterationTime(exited);
    if (write_sample(cluster, topic, partitions) != std::min(partitions, 100)) {
      fail(state, cluster, "an acks=all write after the shutdown was not acknowledged");
      return;
    }

    auto restarted_at = Clock::now();
    cluster.start_broker(victim);
    if (!wait_full_isr(cluster, admin, topic, partitions, all_brokers, 300s)) {
      fail(state, cluster, "the restarted broker never rejoined every ISR");
      return;
    }
    rejoin_s.push_back(seconds_since(restarted_at));
  }
  state.counters["shutdown_exit_ms"] = median(exit_ms);
  state.counters["leaders_moved_ms"] = median(moved_ms);
  state.counters["rejoin_s"] = median(rejoin_s);
  state.counters["elections_per_s"] = median(elections_per_s);
}
BENCHMARK(BM_ControlledShutdownAtScale)
    ->ArgNames({"partitions", "controllers"})
    ->Args({1000, 1})
    ->Args({10000, 1})
    ->Args({10000, 3})
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace faultline::cluster

BENCHMARK_MAIN();
