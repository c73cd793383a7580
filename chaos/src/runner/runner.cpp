#include "faultline/chaos/runner/runner.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "faultline/checker/kafka.h"
#include "faultline/checker/recorder.h"
#include "faultline/chaos/cluster_harness.h"
#include "faultline/chaos/faults/adapters.h"
#include "faultline/chaos/faults/injector.h"
#include "faultline/chaos/prometheus_server.h"
#include "faultline/chaos/runner/report.h"
#include "faultline/chaos/runner/run_metrics.h"
#include "faultline/cluster/metrics.h"

namespace faultline::chaos {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const char* kTopic = "faultline";

// SIGINT/SIGTERM end the workload early; the run then heals, tears down and exits 4, leaving
// nothing behind (an interrupted run has no verdict).
std::atomic<bool> g_interrupted{false};
void on_interrupt(int) { g_interrupted = true; }

// The effective capability set (CapEff of /proc/self/status); all bits when it cannot be read,
// so that the real operation reports what is missing instead.
uint64_t effective_capabilities() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  return ~uint64_t{0};
}

}  // namespace

std::vector<std::string> missing_run_capabilities(uint64_t cap_eff) {
  constexpr int kCapNetAdmin = 12;
  constexpr int kCapSysAdmin = 21;
  std::vector<std::string> missing;
  if (!(cap_eff >> kCapNetAdmin & 1)) missing.emplace_back("CAP_NET_ADMIN");
  if (!(cap_eff >> kCapSysAdmin & 1)) missing.emplace_back("CAP_SYS_ADMIN");
  return missing;
}

namespace {

bool leader_targeted(FaultAction a) {
  switch (a) {
    case FaultAction::kill_controller:
    case FaultAction::restart_next_broker:
    case FaultAction::partition_random:
    case FaultAction::netem_cluster:
      return false;
    default:
      return true;
  }
}

// verdict.json's "failover": per fault kind, the client-observed write unavailability
// (count, p50/p99/max seconds; nearest rank).
nlohmann::json failover_summary(const nlohmann::json& fault_results) {
  std::map<std::string, std::vector<double>> by_kind;
  for (const auto& f : fault_results)
    if (f.contains("unavailable_ms") && f.value("injected", false))
      by_kind[f["fault"].get<std::string>()].push_back(f["unavailable_ms"].get<double>() / 1000);
  nlohmann::json out = nlohmann::json::object();
  for (auto& [kind, v] : by_kind) {
    std::sort(v.begin(), v.end());
    auto rank = [&](double q) { return v[std::min(v.size() - 1, size_t(std::ceil(q * v.size())) - 1)]; };
    out[kind] = {{"count", v.size()}, {"p50_s", rank(0.5)}, {"p99_s", rank(0.99)}, {"max_s", v.back()}};
  }
  return out;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path shaper_binary() {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path("faultline-shaper") : self.parent_path() / "faultline-shaper";
}

// Acknowledgement times, for the client-observed unavailability around each fault.
struct AckTimes {
  std::mutex mu;
  std::vector<Clock::time_point> times;
  void add(Clock::time_point t) {
    std::lock_guard lock(mu);
    times.push_back(t);
  }
  // The longest stretch without an acknowledged write within [from, to].
  double longest_gap_ms(Clock::time_point from, Clock::time_point to) {
    std::lock_guard lock(mu);
    std::vector<Clock::time_point> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    Clock::time_point last = from;
    Clock::duration longest{};
    for (auto t : sorted) {
      if (t < from) continue;
      if (t > to) break;
      longest = std::max(longest, t - last);
      last = t;
    }
    longest = std::max(longest, to - last);
    return std::chrono::duration<double, std::milli>(longest).count();
  }
};

// What the progress line shows: send outcomes so far.
struct Outcomes {
  std::atomic<int64_t> ok{0}, fail{0}, info{0};
};

void produce_loop(Outcomes& outcomes, int process, const Scenario& s, cluster::ClientConfig config, uint64_t seed,
                  checker::HistoryRecorder& history, AckTimes& acks, std::atomic<bool>& stop) {
  cluster::SyncClient client(config);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(0, s.partitions - 1);
  for (int64_t n = 0; !stop; ++n) {
    int partition = pick(rng);
    int64_t value = int64_t(process) * 1'000'000'000 + n;  // unique across the run
    checker::OpFields in;
    in.partition = checker::PartitionId{partition};
    in.value = value;
    auto op = history.invoke(checker::ProcessId{process}, checker::Function::send, in);
    if (!op) continue;
    cluster::TopicPartition tp{kTopic, cluster::PartitionIndex{partition}};
    auto r = client.send(tp, {std::to_string(value)}, s.acks_all ? cluster::Acks::all : cluster::Acks::leader);
    checker::OpFields done;
    done.partition = in.partition;
    done.value = value;
    if (r.acknowledged()) {
      done.offset = checker::Offset{r.base_offset.value()};
      done.epoch = checker::LeaderEpoch{r.leader_epoch.value()};
      history.complete(*op, checker::Outcome::ok, done);
      acks.add(Clock::now());
      ++outcomes.ok;
    } else {
      done.error = std::string(cluster::errc_name(r.error));
      history.complete(*op, r.definite ? checker::Outcome::fail : checker::Outcome::info, done);
      ++(r.definite ? outcomes.fail : outcomes.info);
      std::this_thread::sleep_for(20ms);
    }
  }
}

// Reads every partition from offset 0 forward; with `final_read`, once to the end and stops.
void poll_partitions(int process, const Scenario& s, cluster::SyncClient& client,
                     checker::HistoryRecorder& history, std::vector<int64_t>& next, bool final_read,
                     std::atomic<bool>* stop) {
  do {
    for (int p = 0; p < s.partitions; ++p) {
      checker::OpFields in;
      in.partition = checker::PartitionId{p};
      in.final_read = final_read;
      auto op = history.invoke(checker::ProcessId{process}, checker::Function::poll, in);
      if (!op) continue;
      cluster::TopicPartition tp{kTopic, cluster::PartitionIndex{p}};
      auto r = client.poll(tp, cluster::Offset{next[p]}, 1 << 20, final_read ? 0ms : 100ms);
      checker::OpFields done = in;
      if (r.error != cluster::errc::none) {
        done.error = std::string(cluster::errc_name(r.error));
        history.complete(*op, checker::Outcome::fail, done);
        std::this_thread::sleep_for(20ms);
        continue;
      }
      for (const auto& rec : r.records) {
        int64_t v = 0;
        try {
          v = std::stoll(rec.value.value_or("0"));
        } catch (const std::exception&) {
        }
        done.records.push_back({checker::Offset{rec.offset.value()}, v});
        next[p] = rec.offset.value() + 1;
      }
      history.complete(*op, checker::Outcome::ok, done);
    }
  } while (stop != nullptr && !*stop);
}

}  // namespace

int run_scenario(Scenario s, const std::string& scenario_text, const RunOptions& o,
                 std::ostream& out) {
  if (o.duration) s.duration = *o.duration;
  if (auto missing = missing_run_capabilities(effective_capabilities()); !missing.empty()) {
    out << fmt::format("run: this process lacks {}, needed to build the run's network namespaces, "
                       "bridges and nftables rules (run as root; `faultline doctor` lists the rest)\n",
                       fmt::join(missing, " and "));
    return 3;
  }
  fs::path dir = o.out_dir.empty() ? fs::path("faultline-runs") / fmt::format("{}-{}", s.name, o.seed)
                                   : o.out_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    out << "run: cannot create " << dir << ": " << ec.message() << "\n";
    return 4;
  }
  dir = fs::absolute(dir);
  {
    std::ofstream run_json(dir / "run.json");
    run_json << nlohmann::json{{"scenario", s.name},
                               {"scenario_text", scenario_text},
                               {"seed", o.seed},
                               {"duration_s", s.duration.count()}}
                    .dump(2);
  }
  auto schedule = make_schedule(s, o.seed);
  {
    std::ofstream plan(dir / "schedule.jsonl");
    for (const auto& f : schedule)
      plan << nlohmann::json{{"at_ms", f.at.count()}, {"heal_ms", f.heal.count()},
                             {"fault", std::string(to_string(f.action))}}
                  .dump()
           << "\n";
  }
  out << fmt::format("run: {} seed={} duration={}s faults={} -> {}\n", s.name, o.seed,
                     s.duration.count(), schedule.size(), dir.string());
  out.flush();

  auto started = Clock::now();
  // With --prometheus the harness's metrics are served (on a free port unless one is given).
  cluster::MetricsEndpoint metrics_endpoint(
      "127.0.0.1", o.metrics_port != 0 || !o.prometheus ? o.metrics_port : free_loopback_port());
  RunMetrics metrics(metrics_endpoint.registry());
  if (o.metrics_port != 0)
    out << fmt::format("run: metrics on http://127.0.0.1:{}/metrics\n", metrics_endpoint.port());
  ClusterHarness::UpError up_error;
  std::random_device rd;
  auto harness = ClusterHarness::up(s.cluster, fmt::format("run-{:x}-{:08x}", o.seed, rd()), up_error,
                                    dir / "logs");
  if (!harness) {
    out << "run: " << up_error.why << "\n";
    return up_error.exit_code;
  }
  std::unique_ptr<PrometheusServer> prometheus;  // declared after the harness: stopped before it
  if (o.prometheus) {
    std::string why;
    prometheus = PrometheusServer::start(harness->supervisor(), {.dir = dir / "prometheus"},
                                         cluster_scrape_targets(*harness, metrics_endpoint.port()), why);
    if (!prometheus) {
      out << "run: prometheus: " << why << "\n";
      return fs::exists(PrometheusOptions{}.binary) ? 4 : 3;
    }
    (void)prometheus->wait_scraped(std::chrono::system_clock::now(), 10s);
    out << fmt::format("run: prometheus on {} (data in {})\n", prometheus->url(),
                       prometheus->options().data_dir.string());
  }
  cluster::ClientConfig config = harness->client_config();
  config.request_timeout = 2s;
  config.delivery_timeout = 6s;
  config.retry_backoff = 50ms;
  cluster::SyncClient admin(config);
  int rf = std::min(3, s.cluster.brokers);
  if (admin.create_topic(kTopic, s.partitions, rf).error != cluster::errc::none) {
    out << "run: creating the topic failed\n";
    return 4;
  }
  for (int p = 0; p < s.partitions; ++p) {
    admin.wait_for_leader({kTopic, cluster::PartitionIndex{p}}, 20s,
                          [&](const cluster::PartitionMetadata& m) { return int(m.isr.size()) == rf; });
  }
  auto recorder = checker::HistoryRecorder::open((dir / "history.jsonl").string(), "kafka");
  if (!recorder) {
    out << "run: cannot write the history: " << recorder.error().message() << "\n";
    return 4;
  }
  checker::HistoryRecorder& history = **recorder;
  auto setup_done = Clock::now();

  // ---- workload ----
  std::atomic<bool> stop{false};
  AckTimes acks;
  Outcomes outcomes;
  std::vector<std::thread> threads;
  uint64_t workload_seed = sub_seed(o.seed, "workload");
  for (int p = 0; p < s.producers; ++p) {
    threads.emplace_back(produce_loop, std::ref(outcomes), p, std::cref(s), config, workload_seed + p,
                         std::ref(history), std::ref(acks), std::ref(stop));
  }
  std::vector<int64_t> consumer_next(s.partitions, 0);
  threads.emplace_back([&] {
    cluster::SyncClient client(config);
    poll_partitions(1000, s, client, history, consumer_next, false, &stop);
  });

  // ---- nemesis (this thread: restarted processes must belong to the harness's thread) ----
  JournalRecorder journal_recorder(harness->journal());
  SupervisorProcessControl processes(harness->supervisor());
  FaultTopology topology = harness->fault_topology();
  FaultLog fault_log(dir / "faults.jsonl");
  FaultInjector injector(FaultContext{&topology, &journal_recorder, &processes, shaper_binary(), dir,
                                      o.seed},
                         &fault_log);
  nlohmann::json fault_results = nlohmann::json::array();
  std::vector<int> fault_leaders;  // per fault: partition 0's leader it targeted, or -1
  Clock::time_point last_heal_at{};
  int next_rolling = 1;
  std::map<int, std::pair<int32_t, int32_t>> seen_epochs;  // partition -> (epoch, unclean count)
  // Partition 0's leader over time (for the leadership checks): (when, leader or -1 when offline).
  std::vector<std::pair<Clock::time_point, int32_t>> p0_leaders;
  auto watch_leaders = [&] {
    auto md = admin.controller_metadata();
    if (!md) return std::optional<cluster::MetadataResponse>{};
    for (const auto& p : md->partitions) {
      int idx = p.tp.partition.value();
      if (idx == 0 && (p0_leaders.empty() || p0_leaders.back().second != p.leader.value()))
        p0_leaders.emplace_back(Clock::now(), p.leader.value());
      // Epoch -1 until seen, so the first leader (epoch 0) is recorded too.
      auto& [epoch, unclean] = seen_epochs.try_emplace(idx, -1, 0).first->second;
      if (p.unclean_elections > unclean) {
        checker::NemesisFields f;
        f.partition = checker::PartitionId{idx};
        f.epoch = checker::LeaderEpoch{p.leader_epoch.value()};
        f.leader = checker::BrokerId{p.leader.value()};
        history.nemesis(checker::NemesisKind::unclean_election, f);
      }
      if (p.leader_epoch.value() != epoch && p.leader != cluster::kNoBroker) {
        checker::NemesisFields f;
        f.partition = checker::PartitionId{idx};
        f.epoch = checker::LeaderEpoch{p.leader_epoch.value()};
        f.leader = checker::BrokerId{p.leader.value()};
        history.nemesis(checker::NemesisKind::leader_change, f);
        epoch = p.leader_epoch.value();
      }
      unclean = p.unclean_elections;
    }
    return md;
  };
  auto workload_start = Clock::now();
  // Progress: a line rewritten in place on a terminal, a plain line every 5 s otherwise.
  const bool tty = ::isatty(STDOUT_FILENO) == 1 && &out == &std::cout;
  std::string active_fault = "none";
  auto last_progress = Clock::now();
  auto progress = [&](const std::optional<cluster::MetadataResponse>& md) {
    auto now = Clock::now();
    if (now - last_progress < (tty ? 1s : 5s)) return;
    last_progress = now;
    std::string leaders;
    if (md)
      for (const auto& p : md->partitions) leaders += fmt::format(" p{}=b{}", p.tp.partition.value(), p.leader.value());
    std::string line = fmt::format("[{:5.1f}/{}s] sends ok={} fail={} info={} | fault: {} | leaders:{}",
                                   std::chrono::duration<double>(now - workload_start).count(),
                                   s.duration.count(), outcomes.ok.load(), outcomes.fail.load(),
                                   outcomes.info.load(), active_fault, leaders);
    out << (tty ? "\r\033[K" + line : line + "\n");
    out.flush();
  };
  auto sleep_until = [&](Clock::time_point t) {
    while (Clock::now() < t && !g_interrupted) {
      progress(watch_leaders());
      std::this_thread::sleep_for(std::min<Clock::duration>(100ms, t - Clock::now()));
    }
  };
  workload_start = Clock::now();
  g_interrupted = false;
  auto previous_int = std::signal(SIGINT, on_interrupt);
  auto previous_term = std::signal(SIGTERM, on_interrupt);
  for (const auto& f : schedule) {
    sleep_until(workload_start + f.at);
    if (g_interrupted) break;
    auto md = watch_leaders();
    FaultSpec spec;
    std::string target;
    int leader = -1;
    if (md) {
      for (const auto& p : md->partitions)
        if (p.tp.partition.value() == 0) leader = p.leader.value();
    }
    switch (f.action) {
      case FaultAction::kill_controller:
        spec = {FaultKind::kill, {"c1"}, default_params(FaultKind::kill)};
        break;
      case FaultAction::partition_random: {
        // Every cluster node in a seeded order; the shape is seeded too.
        std::vector<NodeName> nodes{"c1"};
        for (int b = 1; b <= s.cluster.brokers; ++b) nodes.push_back(ClusterHarness::broker_node(b));
        std::mt19937_64 variant(f.variant);
        std::shuffle(nodes.begin(), nodes.end(), variant);
        const FaultKind shapes[] = {FaultKind::halves, FaultKind::majorities_ring, FaultKind::bridge};
        FaultKind kind = shapes[variant() % 3];
        spec = {kind, nodes, default_params(kind)};
        break;
      }
      case FaultAction::netem_cluster:
        spec = {FaultKind::packets, {"b1"}, default_params(FaultKind::packets)};
        break;
      case FaultAction::restart_next_broker:
        // Rolling: b1, b2, ... bN, b1 ... (a one-off: SIGTERM, wait for the exit, start again).
        spec = {FaultKind::restart, {ClusterHarness::broker_node(next_rolling)},
                default_params(FaultKind::restart)};
        next_rolling = next_rolling % s.cluster.brokers + 1;
        break;
      default: {
        if (leader < 0) {
          out << "run: partition 0 has no leader; skipping " << to_string(f.action) << "\n";
          continue;
        }
        std::string node = ClusterHarness::broker_node(leader);
        FaultKind kind = f.action == FaultAction::kill_leader ||
                                 f.action == FaultAction::kill_leader_twice ||
                                 f.action == FaultAction::kill_leader_lagging
                             ? FaultKind::kill
                         : f.action == FaultAction::isolate_leader_unclean ? FaultKind::isolate_leader
                         : f.action == FaultAction::pause_leader ? FaultKind::pause
                         : f.action == FaultAction::stop_leader  ? FaultKind::stop
                         : f.action == FaultAction::cut_leader_ext ? FaultKind::cut_link
                         : f.action == FaultAction::throttle_leader_disk ? FaultKind::disk_throttle
                                                                         : FaultKind::isolate_leader;
        spec = {kind, {node}, default_params(kind)};
        if (kind == FaultKind::isolate_leader) {
          for (int b = 1; b <= s.cluster.brokers; ++b)
            if (b != leader) spec.targets.push_back(ClusterHarness::broker_node(b));
        }
        if (kind == FaultKind::cut_link) std::get<LinkParams>(spec.params).interface = "ext";
        if (kind == FaultKind::disk_throttle) {
          auto& d = std::get<DiskParams>(spec.params);
          d.write_bytes_per_second = d.read_bytes_per_second = 256 << 10;
          d.write_iops = d.read_iops = 20;
        }
      }
    }
    auto injected_at = Clock::now();
    std::vector<FaultInjector::Outcome> results;
    std::vector<std::string> targets;
    if (f.action == FaultAction::netem_cluster) {
      // One shaper per broker's int interface: every replication and controller hop is affected.
      for (int b = 1; b <= s.cluster.brokers; ++b) {
        FaultSpec one{FaultKind::packets, {ClusterHarness::broker_node(b)},
                      default_params(FaultKind::packets)};
        auto& p = std::get<PacketParams>(one.params);
        p.interface = "int";
        p.delay = 20ms;
        p.jitter = 10ms;
        p.loss_pct = 2;
        results.push_back(injector.inject(one));
        targets.push_back(one.targets[0]);
      }
    } else if (f.action == FaultAction::isolate_leader_unclean) {
      // The leader, cut off from its followers, shrinks the ISR to itself (min.insync.replicas=1)
      // and acknowledges acks=all writes alone; then it dies, and only out-of-sync followers are
      // left for the (unclean) election. Its writes since the shrink are gone.
      results.push_back(injector.inject(spec));
      targets = spec.targets;
      auto acks_alone = std::chrono::milliseconds(s.cluster.replica_lag_time_max_ms) + 2000ms;
      sleep_until(std::min(Clock::now() + acks_alone, workload_start + f.heal - 1s));
      FaultSpec kill{FaultKind::kill, {spec.targets[0]}, default_params(FaultKind::kill)};
      results.push_back(injector.inject(kill));
    } else if (f.action == FaultAction::kill_leader_lagging) {
      // Replication lags behind the leader by the delay; acks=1 acknowledges what only the leader
      // has, and the kill makes a lagging follower the new leader.
      for (int b = 1; b <= s.cluster.brokers; ++b) {
        if (b == leader) continue;
        FaultSpec lag{FaultKind::packets, {ClusterHarness::broker_node(b)},
                      default_params(FaultKind::packets)};
        auto& p = std::get<PacketParams>(lag.params);
        p.interface = "int";
        p.delay = 50ms;
        results.push_back(injector.inject(lag));
        targets.push_back(lag.targets[0]);
      }
      std::this_thread::sleep_for(500ms);
      results.push_back(injector.inject(spec));
      targets.push_back(spec.targets[0]);
    } else {
      results.push_back(injector.inject(spec));
      targets = spec.targets;
    }
    if (f.action == FaultAction::kill_leader_twice && !results[0].error) {
      // Double failover: wait for the next leader, then kill it right after its election.
      int second = -1;
      for (auto deadline = Clock::now() + 10s; second < 0 && Clock::now() < deadline;) {
        if (auto now_md = watch_leaders())
          for (const auto& p : now_md->partitions)
            if (p.tp.partition.value() == 0 && p.leader.value() > 0 && p.leader.value() != leader)
              second = p.leader.value();
        if (second < 0) std::this_thread::sleep_for(20ms);
      }
      if (second > 0) {
        FaultSpec again{FaultKind::kill, {ClusterHarness::broker_node(second)},
                        default_params(FaultKind::kill)};
        results.push_back(injector.inject(again));
        targets.push_back(again.targets[0]);
      }
    }
    auto result = results[0];
    for (const auto& r : results)
      if (r.error) result = r;
    if (!result.error) metrics.fault_injected(std::string(to_string(f.action)));
    checker::NemesisFields nf;
    nf.fault = std::string(to_string(f.action));
    nf.target = fmt::format("{}", fmt::join(targets, ","));
    history.nemesis(checker::NemesisKind::fault_start, nf);
    active_fault = fmt::format("{} {}", nf.fault, nf.target);
    out << fmt::format("{}  +{:.1f}s {} {} {}\n", tty ? "\r\033[K" : "",
                       std::chrono::duration<double>(injected_at - workload_start).count(),
                       to_string(f.action), nf.target,
                       result.error ? "FAILED: " + result.error.message() : "injected");
    out.flush();
    sleep_until(workload_start + f.heal);
    // Healed in reverse; one-offs (a rolling restart) have nothing to heal.
    for (auto it = results.rbegin(); it != results.rend(); ++it)
      if (!it->error && f.action != FaultAction::restart_next_broker) injector.heal(it->id);
    last_heal_at = Clock::now();
    (void)harness->write_processes();
    history.nemesis(checker::NemesisKind::fault_stop, nf);
    active_fault = "none";
    fault_leaders.push_back(leader_targeted(f.action) ? leader : -1);
    fault_results.push_back({{"fault", nf.fault},
                             {"target", nf.target},
                             {"at_s", std::chrono::duration<double>(injected_at - workload_start).count()},
                             {"heal_s", std::chrono::duration<double>(last_heal_at - workload_start).count()},
                             {"injected", !result.error},
                             {"backend", result.backend}});
  }
  sleep_until(workload_start + s.duration);
  if (tty) out << "\n";
  stop = true;
  for (auto& t : threads) t.join();
  auto workload_done = Clock::now();
  // Client-observed write unavailability per fault: the longest gap between acknowledged writes
  // from the injection until 5 s after the heal (or the end of the workload).
  for (size_t i = 0; i < fault_results.size(); ++i) {
    auto at = workload_start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(fault_results[i]["at_s"].get<double>()));
    auto heal = workload_start + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(fault_results[i]["heal_s"].get<double>()));
    auto until = std::min(workload_done, heal + 5s);
    double gap_ms = acks.longest_gap_ms(at, until);
    fault_results[i]["unavailable_ms"] = gap_ms;
    metrics.unavailability(fault_results[i]["fault"].get<std::string>(), gap_ms / 1000);
  }

  // Leadership checks: when partition 0's leadership left each fault's target broker.
  std::vector<std::string> leadership_failures;
  for (size_t i = 0; i < fault_results.size(); ++i) {
    if (fault_leaders[i] <= 0) continue;
    auto at = workload_start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(fault_results[i]["at_s"].get<double>()));
    std::optional<double> moved_ms;
    for (const auto& [when, who] : p0_leaders)
      if (when >= at && who > 0 && who != fault_leaders[i]) {
        moved_ms = std::chrono::duration<double, std::milli>(when - at).count();
        break;
      }
    fault_results[i]["leader_before"] = fault_leaders[i];
    fault_results[i]["leader_moved_after_ms"] = moved_ms ? nlohmann::json(*moved_ms) : nlohmann::json();
    std::optional<std::chrono::milliseconds> bound = s.leader_moved_within;
    std::string derived;
    if (s.leader_moved_within_probe_bound) {
      auto action = fault_action_from(fault_results[i]["fault"].get<std::string>());
      if (action) bound = probe_demotion_bound(s.cluster, *action, &derived);
    }
    if (bound) fault_results[i]["leader_moved_bound_ms"] = bound->count();
    if (bound && fault_results[i]["injected"].get<bool>() &&
        (!moved_ms || *moved_ms > double(bound->count()))) {
      leadership_failures.push_back(fmt::format(
          "leadership of partition 0 stayed on b{} for more than {:.2f} s{} after {} at +{:.1f}s",
          fault_leaders[i], bound->count() / 1000.0, derived.empty() ? "" : " (" + derived + ")",
          fault_results[i]["fault"].get<std::string>(), fault_results[i]["at_s"].get<double>()));
    }
  }

  // ---- heal, settle, final read (skipped when interrupted: there will be no verdict) ----
  for (int p = 0; p < s.partitions && !g_interrupted; ++p) {
    admin.wait_for_leader({kTopic, cluster::PartitionIndex{p}}, 30s,
                          [&](const cluster::PartitionMetadata& m) { return int(m.isr.size()) == rf; });
  }
  watch_leaders();
  if (!g_interrupted) {
    cluster::SyncClient reader(config);
    std::vector<int64_t> from_start(s.partitions, 0);
    poll_partitions(2000, s, reader, history, from_start, true, nullptr);
    // Read until the end: a poll returns at most 1 MiB, so keep going while records come back.
    for (int round = 0; round < 1000; ++round) {
      auto before = from_start;
      poll_partitions(2000, s, reader, history, from_start, true, nullptr);
      if (before == from_start) break;
    }
  }
  auto final_done = Clock::now();
  // Preferred leadership back after the last heal (auto rebalance), within the scenario's bound.
  nlohmann::json preferred_check;
  if (s.preferred_leaders_within && !g_interrupted && last_heal_at != Clock::time_point{}) {
    auto deadline = last_heal_at + *s.preferred_leaders_within;
    std::optional<double> restored_s;
    std::string still;
    for (;;) {
      auto now = Clock::now();
      if (auto md = watch_leaders()) {
        still.clear();
        for (const auto& p : md->partitions)
          if (p.replicas.empty() || p.leader != p.replicas.front())
            still += fmt::format(" p{}=b{} (preferred b{})", p.tp.partition.value(), p.leader.value(),
                                 p.replicas.empty() ? -1 : p.replicas.front().value());
        if (still.empty()) {
          restored_s = std::chrono::duration<double>(now - last_heal_at).count();
          break;
        }
      }
      if (now > deadline) break;
      std::this_thread::sleep_for(100ms);
    }
    preferred_check = {{"within_s", s.preferred_leaders_within->count() / 1000.0},
                       {"restored_after_s", restored_s ? nlohmann::json(*restored_s) : nlohmann::json()}};
    if (!restored_s || *restored_s > s.preferred_leaders_within->count() / 1000.0)
      leadership_failures.push_back(fmt::format(
          "preferred leadership not restored within {} s of the last heal:{}",
          s.preferred_leaders_within->count() / 1000, still));
  }
  nlohmann::json prometheus_report;
  if (prometheus) {
    prometheus_report = final_failover_report(
        *prometheus, std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started) + 60s);
    prometheus.reset();
  }
  harness->down();
  harness.reset();
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  if (g_interrupted) {
    out << "run: interrupted; everything the run made was removed (history in " << dir.string()
        << ")\n";
    return 4;
  }

  // ---- verdict ----
  auto parsed = checker::parse_jsonl(read_file(dir / "history.jsonl"), (dir / "history.jsonl").string());
  if (!parsed) {
    out << "run: the history does not parse: " << parsed.error().to_string() << "\n";
    return 4;
  }
  auto result = checker::check_kafka(*parsed);
  auto check_done = Clock::now();
  const bool valid = result.valid && leadership_failures.empty();
  const nlohmann::json checker_json = result.to_json();
  bool matches = valid == s.expect_valid;
  auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
  nlohmann::json verdict = {
      {"scenario", s.name},
      {"seed", o.seed},
      {"expected", s.expect_valid ? "valid" : "invalid"},
      {"verdict", valid ? "valid" : "invalid"},
      {"valid", valid},
      {"expected_valid", s.expect_valid},
      {"acked", result.sends_acked},
      {"lost", checker_json["lost"]},
      {"unseen", checker_json["unseen"]},
      {"duplicates", checker_json["duplicates"]},
      {"anomalies", checker_json["anomalies"]},
      {"failover", failover_summary(fault_results)},
      {"leadership", {{"failures", leadership_failures}, {"preferred", preferred_check}}},
      {"matches_expectation", matches},
      {"checker", checker_json},
      {"faults", fault_results},
      {"timings_s",
       {{"setup", secs(setup_done - started)},
        {"workload", secs(workload_done - setup_done)},
        {"heal_and_final_read", secs(final_done - workload_done)},
        {"check", secs(check_done - final_done)}}},
      {"replay", fmt::format("faultline replay {}", dir.string())}};
  if (!prometheus_report.is_null()) verdict["prometheus"] = prometheus_report;
  if (!leadership_failures.empty())
    verdict["anomalies"]["leadership"] = leadership_failures.size();
  std::ofstream(dir / "verdict.json") << verdict.dump(2) << "\n";
  {
    std::ofstream junit(dir / "junit.xml");
    junit << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          << fmt::format("<testsuite name=\"faultline\" tests=\"1\" failures=\"{}\">\n", matches ? 0 : 1)
          << fmt::format("  <testcase classname=\"faultline.{}\" name=\"seed-{}\" time=\"{:.3f}\">\n",
                         s.name, o.seed, secs(check_done - started));
    if (!matches)
      junit << fmt::format("    <failure message=\"expected {}, got {}\">replay: faultline replay {}</failure>\n",
                           s.expect_valid ? "valid" : "invalid", valid ? "valid" : "invalid",
                           dir.string());
    junit << "  </testcase>\n</testsuite>\n";
  }
  // report.html is drawn from the files just written; its own time goes into verdict.json after.
  auto report_started = Clock::now();
  auto report_error = write_run_report(dir);
  if (!report_error) {
    verdict["timings_s"]["report"] = secs(Clock::now() - report_started);
    std::ofstream(dir / "verdict.json") << verdict.dump(2) << "\n";
  }
  out << result.summary() << "\n";
  for (const auto& f : leadership_failures) out << "leadership: " << f << "\n";
  out << fmt::format("verdict: {} (expected {}) -> {}\n", valid ? "valid" : "invalid",
                     s.expect_valid ? "valid" : "invalid", (dir / "verdict.json").string());
  if (report_error)
    out << "run: report.html could not be written: " << report_error.message() << "\n";
  else
    out << "report: " << (dir / "report.html").string() << "\n";
  if (!matches) out << "replay: faultline replay " << dir.string() << "\n";
  return matches ? 0 : 1;
}

int replay_run(const fs::path& dir, std::ostream& out) {
  auto text = read_file(dir / "run.json");
  nlohmann::json run;
  try {
    run = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    out << "replay: " << (dir / "run.json").string() << ": " << e.what() << "\n";
    return 2;
  }
  ScenarioError error;
  std::string scenario_text = run.value("scenario_text", "");
  auto s = parse_scenario(scenario_text, (dir / "run.json").string(), error);
  if (!s) {
    out << "replay: " << error.str() << "\n";
    return 2;
  }
  RunOptions o;
  o.seed = run.value("seed", uint64_t{1});
  o.duration = std::chrono::seconds(run.value("duration_s", 30));
  int n = 1;
  while (fs::exists(dir / fmt::format("replay-{}", n))) ++n;
  o.out_dir = dir / fmt::format("replay-{}", n);
  return run_scenario(*s, scenario_text, o, out);
}

}  // namespace faultline::chaos
