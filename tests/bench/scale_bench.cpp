// Partition-count scale benchmark on loopback (issue 3, issue 17), real processes: 1 controller
// (or a quorum of 3) and 5 brokers, one topic of N partitions with 3 replicas (arguments: N, and
// the number of controllers: 1k, 10k, and 10k with 3 controllers, 3 iterations each; 15k, 50k and
// 100k, one iteration each (a size whose open files the limits here cannot allow is skipped,
// with the numbers). Pick sizes with --benchmark_filter, e.g. 'partitions:10000/').
//
//   create_to_full_isr_s   from CreateTopic until the controller lists every partition with a
//                          leader and all 3 replicas in the ISR, and every broker has applied
//                          that metadata (its Metadata answer is at the controller's offset)
//   idle_cpu_pct_*         each broker's and the controller's CPU (user+system, % of one core)
//                          over 10 s with nothing produced; the ISRs must stay full meanwhile
//                          (a follower that stops fetching a partition is shrunk out of it)
// Then each iteration takes the broker leading the most partitions away twice, and brings it
// back each time; the counters of the two departures are prefixed shutdown_ and kill_:
//   shutdown_  SIGTERM, a controlled shutdown: the broker asks the controller to move its
//              leaders away before it exits
//   kill_      SIGKILL: the controller notices when the broker's session times out (3 s here),
//              and the restarted broker recovers its logs from an unclean shutdown
//   *_victim_led           partitions the departing broker led
//   *_exit_ms              signal until the process exited
//   *_fenced_ms            signal until the controller's metadata shows the broker fenced
//   *_leaders_moved_ms     signal until every partition it led has another leader
//   shutdown_elections_per_s  its partitions over shutdown_leaders_moved_ms: the controller's
//                          election rate, each election a committed metadata record (with a
//                          quorum, replicated to a majority first). Polled (every 10 ms, 1 ms per
//                          1k partitions for larger topics), so a lower bound. After SIGKILL the
//                          controller fences the broker and elects new leaders for all its
//                          partitions in one step, so kill_fenced_ms and kill_leaders_moved_ms
//                          are one poll apart at most: no rate can be read from them
//   *_rejoin_s             restart of that broker until every ISR is full again
// Medians over the iterations. Every departure is framed by one acks=all record to each of 100
// partitions spread over the topic, before and after, and fails if any write is not acknowledged.
//
// Run from the build directory (it starts build/bin/faultline-*): cd build && bench/scale_bench
// Heavier than the other benchmarks: about 2 minutes per iteration at 10k partitions here.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
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
// Above this many partitions the cluster runs with Kafka's default replica lag and the sample
// writes with Kafka's default request timeout (30 s each; why at each use).
constexpr int kKafkaDefaultsAbove = 15000;

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

// Resident memory of `pid` in MiB (VmRSS).
double rss_mib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("VmRSS:"))
      return std::stod(line.substr(6)) / 1024;  // kB
  }
  return 0;
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

asio::awaitable<void> send_one(Client& client, TopicPartition tp,
                               std::map<std::string, int>& outcomes, int& outstanding) {
  std::vector<std::string> values{"scale-" + std::to_string(tp.partition.value())};
  SendResult r = co_await client.send(tp, std::move(values), Acks::all);
  ++outcomes[r.acknowledged() ? std::string("acknowledged") : std::string(errc_name(r.error))];
  --outstanding;
}

// One acks=all record to each of 100 partitions spread over the topic: how many ended how
// ("acknowledged", or the error's name).
std::map<std::string, int> write_sample(LocalCluster& cluster, const std::string& topic,
                                        int partitions) {
  asio::io_context io;
  ClientConfig config = cluster.client_config();
  config.delivery_timeout = 20s;
  // Above 15k partitions five brokers' idle work fills this 2-core machine (README), and right
  // after a failover they apply tens of thousands of leadership changes: Kafka's default
  // request.timeout.ms (30 s) then, so that "acknowledged" measures that writes work, not how
  // quickly an overloaded box answers.
  if (partitions > kKafkaDefaultsAbove)
    config.request_timeout = 30s;
  Client client(io, config);
  std::map<std::string, int> outcomes;
  int outstanding = 0;
  const int step = std::max(1, partitions / 100);
  for (int p = 0; p < partitions; p += step) {
    ++outstanding;
    asio::co_spawn(io, send_one(client, {topic, PartitionIndex{p}}, outcomes, outstanding),
                   asio::detached);
  }
  while (outstanding > 0)
    io.run_one();
  client.close();
  io.run_for(50ms);
  return outcomes;
}

// Every process's log goes to scale_bench_failure.log in the working directory (the cluster's
// directory is removed with it).
void fail(benchmark::State& state, LocalCluster& cluster, const std::string& what) {
  std::ofstream("scale_bench_failure.log") << what << "\n" << cluster.logs();
  state.SkipWithError((what + " (logs: scale_bench_failure.log)").c_str());
}

// How often the benchmark polls the controller's metadata while it waits: every 10 ms, and less
// often for large topics (each poll lists every partition and costs the controller CPU that the
// elections being measured need).
std::chrono::milliseconds poll_interval(int partitions) {
  return std::chrono::milliseconds(std::max(10, partitions / 1000));
}

// The broker leading the most partitions, and how many it leads.
std::pair<int, int> busiest(const TopicView& v) {
  auto most = std::max_element(v.leaders.begin(), v.leaders.end(),
                               [](const auto& a, const auto& b) { return a.second < b.second; });
  return *most;
}

// True when every partition `victim` led in `before` has another leader in `now`.
bool leaders_moved(const TopicView& before, const TopicView& now, int victim) {
  for (size_t p = 0; p < before.leader_of.size(); ++p) {
    if (before.leader_of[p] != victim)
      continue;
    if (now.leader_of[p] == -1 || now.leader_of[p] == victim)
      return false;
  }
  return true;
}

// What one broker's departure took, in seconds from the signal (-1: did not happen in time).
struct Departure {
  double exited = -1;  // the process exited
  double fenced = -1;  // the controller's metadata lists a fenced broker
  double moved = -1;   // every partition it led has another leader
};

Departure watch_departure(LocalCluster& cluster, SyncClient& admin, const std::string& topic,
                          const TopicView& before, int victim, Clock::time_point signalled,
                          std::chrono::seconds timeout) {
  const int partitions = static_cast<int>(before.leader_of.size());
  Departure d;
  auto deadline = signalled + timeout;
  while ((d.exited < 0 || d.moved < 0) && Clock::now() < deadline) {
    if (d.exited < 0 && cluster.broker(victim).wait_for(0ms) >= 0)
      d.exited = seconds_since(signalled);
    if (d.moved < 0) {
      if (auto v = view_topic(admin, topic, partitions)) {
        if (d.fenced < 0 && v->fenced_brokers > 0)
          d.fenced = seconds_since(signalled);
        if (leaders_moved(before, *v, victim))
          d.moved = seconds_since(signalled);
      }
    }
    std::this_thread::sleep_for(poll_interval(partitions));
  }
  return d;
}

// Everything a stage needs; a stage returns an empty string or what failed.
struct ScaleRun {
  LocalCluster& cluster;
  SyncClient& admin;
  std::string topic;
  int partitions;
  std::vector<int> brokers;
  std::chrono::seconds timeout;
  std::map<std::string, std::vector<double>> samples;  // counter name -> one value per iteration
};

std::string check_writes(ScaleRun& run, const char* when) {
  const auto outcomes = write_sample(run.cluster, run.topic, run.partitions);
  const auto acked = outcomes.find("acknowledged");
  if (acked != outcomes.end() && acked->second == std::min(run.partitions, 100))
    return "";
  std::string what = std::string("an acks=all write ") + when + " was not acknowledged:";
  for (const auto& [outcome, n] : outcomes)
    what += " " + outcome + "=" + std::to_string(n);
  return what;
}

// Stops the busiest broker with `sig` (SIGTERM: controlled shutdown; SIGKILL: a crash, found by
// the controller when its session times out), then restarts it until every ISR is full again.
// Counters are prefixed with `name`.
std::string depart_and_rejoin(ScaleRun& run, int sig, const std::string& name,
                              double* iteration_time) {
  if (auto e = check_writes(run, ("before the " + name).c_str()); !e.empty())
    return e;
  auto before = view_topic(run.admin, run.topic, run.partitions);
  if (!before || !before->complete)
    return "no complete view of the topic before the " + name;
  auto [victim, led] = busiest(*before);
  run.samples[name + "_victim_led"].push_back(led);

  auto signalled = Clock::now();
  run.cluster.broker(victim).signal(sig);
  Departure d =
      watch_departure(run.cluster, run.admin, run.topic, *before, victim, signalled, run.timeout);
  if (d.exited < 0 || d.moved < 0)
    return "the " + name + " did not complete in time";
  auto after = view_topic(run.admin, run.topic, run.partitions);
  if (!after || after->offline != 0 || after->leaders.count(victim) != 0)
    return "after the " + name + " the broker still leads partitions, or some are offline";
  run.samples[name + "_exit_ms"].push_back(d.exited * 1000);
  run.samples[name + "_leaders_moved_ms"].push_back(d.moved * 1000);
  if (d.fenced >= 0)
    run.samples[name + "_fenced_ms"].push_back(d.fenced * 1000);
  if (sig == SIGTERM)
    run.samples[name + "_elections_per_s"].push_back(led / d.moved);
  if (iteration_time != nullptr)
    *iteration_time = d.exited;
  if (auto e = check_writes(run, ("after the " + name).c_str()); !e.empty())
    return e;
  std::cerr << "scale_bench: " << run.partitions << " partitions: " << name << " of broker "
            << victim << " (led " << led << "): leaders moved " << d.moved * 1000 << " ms, exited "
            << d.exited * 1000 << " ms\n";

  auto restarted_at = Clock::now();
  run.cluster.start_broker(victim);
  if (!wait_full_isr(run.cluster, run.admin, run.topic, run.partitions, run.brokers, run.timeout))
    return "the broker restarted after the " + name + " never rejoined every ISR";
  run.samples[name + "_rejoin_s"].push_back(seconds_since(restarted_at));
  std::cerr << "scale_bench: " << run.partitions << " partitions: rejoin after the " << name << " "
            << run.samples[name + "_rejoin_s"].back() << " s\n";
  return "";
}

// Creates the topic and waits for full ISR; then measures every process's CPU while idle.
std::string create_and_idle(ScaleRun& run, benchmark::State& state) {
  auto created_at = Clock::now();
  auto created = run.admin.create_topic(run.topic, run.partitions, 3);
  if (created.error != errc::none)
    return "CreateTopic failed";
  if (!wait_full_isr(run.cluster, run.admin, run.topic, run.partitions, run.brokers, run.timeout))
    return "the topic never reached full ISR";
  state.counters["create_to_full_isr_s"] = seconds_since(created_at);

  // Idle: nothing produced; followers long-poll, leaders check ISRs, brokers heartbeat.
  std::map<int, double> cpu_before;
  for (int id : run.brokers)
    cpu_before[id] = cpu_seconds(run.cluster.broker(id).pid());
  double controller_before = cpu_seconds(run.cluster.controller().pid());
  // Says when the idle window starts and which processes to watch (e.g. `perf record -p`).
  std::cerr << "scale_bench: " << run.partitions << " partitions: full ISR after "
            << seconds_since(created_at) << " s; idle for "
            << std::chrono::duration_cast<std::chrono::seconds>(kIdleWindow).count()
            << " s from now, broker pids";
  for (int id : run.brokers)
    std::cerr << ' ' << run.cluster.broker(id).pid();
  std::cerr << std::endl;
  auto idle_from = Clock::now();
  std::this_thread::sleep_for(kIdleWindow);
  double idle_s = seconds_since(idle_from);
  std::vector<double> broker_cpu;
  for (int id : run.brokers)
    broker_cpu.push_back(100 * (cpu_seconds(run.cluster.broker(id).pid()) - cpu_before[id]) /
                         idle_s);
  state.counters["idle_cpu_pct_broker_avg"] =
      std::accumulate(broker_cpu.begin(), broker_cpu.end(), 0.0) / kBrokers;
  state.counters["idle_cpu_pct_broker_max"] =
      *std::max_element(broker_cpu.begin(), broker_cpu.end());
  state.counters["idle_cpu_pct_controller"] =
      100 * (cpu_seconds(run.cluster.controller().pid()) - controller_before) / idle_s;
  double rss_max = 0;
  for (int id : run.brokers)
    rss_max = std::max(rss_max, rss_mib(run.cluster.broker(id).pid()));
  state.counters["rss_mib_broker_max"] = rss_max;
  state.counters["rss_mib_controller"] = rss_mib(run.cluster.controller().pid());
  // Progress on stderr: a large topic takes minutes per stage, and a later failure hides these.
  std::cerr << "scale_bench: " << run.partitions << " partitions: create -> full ISR "
            << state.counters["create_to_full_isr_s"] << " s, idle CPU per broker avg "
            << state.counters["idle_cpu_pct_broker_avg"] << " % max "
            << state.counters["idle_cpu_pct_broker_max"] << " %, RSS max " << rss_max << " MiB\n";
  auto after_idle = view_topic(run.admin, run.topic, run.partitions);
  if (!after_idle || !after_idle->complete || after_idle->fenced_brokers != 0)
    return "ISRs shrank or a broker was fenced while idle";
  return "";
}

void BM_ControlledShutdownAtScale(benchmark::State& state) {
  // A broker has two files per replica; at 100k partitions ~120k, above this sandbox's hard
  // descriptor limit (20,000). The brokers' log file cache (cluster/src/log/open_file_cache.cpp)
  // keeps three quarters of the limit open and reopens the rest on use, so every size fits.
  const int partitions = static_cast<int>(state.range(0));
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
  // Above 15k partitions each broker needs tens of seconds to open its logs (60k at 100k) after
  // the topic is created, and the brokers finish seconds apart: a leader's followers may not have
  // fetched 5 s after its election. Kafka's default lag (30 s) then, so that creation does not
  // shrink ISRs that were never out of sync.
  if (partitions > kKafkaDefaultsAbove)
    options.replica_lag_time_max_ms = 30000;
  LocalCluster cluster(options);
  SyncClient admin(cluster.client_config());
  std::vector<int> brokers(kBrokers);
  std::iota(brokers.begin(), brokers.end(), 1);
  const auto timeout = std::chrono::seconds(std::max(300, partitions / 100));
  ScaleRun run{cluster, admin, "scale", partitions, brokers, timeout, {}};

  if (auto e = create_and_idle(run, state); !e.empty()) {
    fail(state, cluster, e);
    return;
  }
  for (auto _ : state) {
    double exited = 0;
    for (auto [sig, name] : {std::pair{SIGTERM, "shutdown"}, std::pair{SIGKILL, "kill"}}) {
      if (auto e = depart_and_rejoin(run, sig, name, sig == SIGTERM ? &exited : nullptr);
          !e.empty()) {
        fail(state, cluster, e);
        return;
      }
    }
    state.SetIterationTime(exited);
  }
  for (const auto& [counter, values] : run.samples)
    state.counters[counter] = median(values);
}
BENCHMARK(BM_ControlledShutdownAtScale)
    ->ArgNames({"partitions", "controllers"})
    ->Args({1000, 1})
    ->Args({10000, 1})
    ->Args({10000, 3})
    ->Iterations(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
// Larger topics, one iteration each (minutes per stage):
//   bench/scale_bench --benchmark_filter='partitions:(15000|50000|100000)/'
BENCHMARK(BM_ControlledShutdownAtScale)
    ->ArgNames({"partitions", "controllers"})
    ->Args({15000, 1})
    ->Args({50000, 1})
    ->Args({100000, 1})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace faultline::cluster

BENCHMARK_MAIN();
