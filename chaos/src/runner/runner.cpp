#include "faultline/chaos/runner/runner.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "cluster_view.h"
#include "faultline/chaos/binaries.h"
#include "faultline/chaos/cluster_harness.h"
#include "faultline/chaos/faults/adapters.h"
#include "faultline/chaos/faults/injector.h"
#include "faultline/chaos/prometheus_server.h"
#include "faultline/chaos/runner/report.h"
#include "faultline/chaos/runner/run_metrics.h"
#include "faultline/chaos/runner/schedule.h"
#include "faultline/checker/kafka.h"
#include "faultline/checker/recorder.h"
#include "faultline/checker/verdict.h"
#include "faultline/cluster/metrics.h"
#include "metadata_workload.h"
#include "nemesis.h"
#include "rdkafka_client.h"
#include "workload.h"
#include "workload_client.h"

namespace faultline::chaos {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// SIGINT/SIGTERM end the workload early; the run then heals, tears down and exits 4, leaving
// nothing behind (an interrupted run has no verdict).
std::atomic<bool> g_interrupted{false};
void on_interrupt(int) {
  g_interrupted = true;
}

// The effective capability set (CapEff of /proc/self/status); all bits when it cannot be read,
// so that the real operation reports what is missing instead.
uint64_t effective_capabilities() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("CapEff:", 0) == 0)
      return std::stoull(line.substr(7), nullptr, 16);
  return ~uint64_t{0};
}

}  // namespace

std::vector<std::string> missing_run_capabilities(uint64_t cap_eff) {
  constexpr int kCapNetAdmin = 12;
  constexpr int kCapSysAdmin = 21;
  std::vector<std::string> missing;
  if (!(cap_eff >> kCapNetAdmin & 1))
    missing.emplace_back("CAP_NET_ADMIN");
  if (!(cap_eff >> kCapSysAdmin & 1))
    missing.emplace_back("CAP_SYS_ADMIN");
  return missing;
}

namespace {

double secs(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// verdict.json's "failover": per fault kind, the client-observed write unavailability
// (count, p50/p99/max seconds; nearest rank).
nlohmann::json failover_summary(const nlohmann::json& fault_results) {
  std::map<std::string, std::vector<double>> by_kind;
  for (const auto& f : fault_results)
    if (f.contains("unavailable_ms") && f.value("injected", false))
      by_kind[f["fault"].get<std::string>()].push_back(f["unavailable_ms"].get<double>() / 1000);
  nlohmann::json out = nlohmann::json::object();
  for (auto& entry : by_kind) {
    auto& v = entry.second;  // not a structured binding: clang 14 (clang-tidy) cannot capture one
    std::sort(v.begin(), v.end());
    auto rank = [&](double q) {
      return v[std::min(v.size() - 1, size_t(std::ceil(q * v.size())) - 1)];
    };
    out[entry.first] = {
        {"count", v.size()}, {"p50_s", rank(0.5)}, {"p99_s", rank(0.99)}, {"max_s", v.back()}};
  }
  return out;
}

// verdict.json's "controller_failover": over the steps that hit the active controller, how
// long until another controller was active (count, p50/max seconds, steps with none), and every
// change of the active controller the watcher saw (seconds since the workload started).
nlohmann::json controller_failover_summary(
    const nlohmann::json& fault_results,
    const std::vector<ClusterWatcher::ControllerSample>& samples,
    Clock::time_point workload_start) {
  std::vector<double> moved;
  int without = 0;
  for (const auto& f : fault_results) {
    if (!f.contains("controller_before") || !f.value("injected", false))
      continue;
    if (f["controller_moved_after_ms"].is_number())
      moved.push_back(f["controller_moved_after_ms"].get<double>() / 1000);
    else
      ++without;
  }
  auto changes = nlohmann::json::array();
  for (const auto& sample : samples)
    changes.push_back({{"at_s", secs(sample.at - workload_start)},
                       {"active", sample.active > 0 ? nlohmann::json(controller_node(sample.active))
                                                    : nlohmann::json()},
                       {"epoch", sample.epoch}});
  nlohmann::json out = {{"count", moved.size()}, {"not_moved", without}, {"changes", changes}};
  if (!moved.empty()) {
    std::sort(moved.begin(), moved.end());
    out["p50_s"] = moved[(moved.size() - 1) / 2];
    out["max_s"] = moved.back();
  }
  return out;
}

// ---- stage 1: the run directory (run.json for replay, the planned schedule) ----

std::optional<fs::path> prepare_run_dir(const Scenario& s, const std::string& scenario_text,
                                        const RunOptions& o,
                                        const std::vector<PlannedStep>& schedule,
                                        std::ostream& out) {
  fs::path dir = o.out_dir.empty()
                     ? fs::path("faultline-runs") / fmt::format("{}-{}", s.name, o.seed)
                     : o.out_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    out << "run: cannot create " << dir << ": " << ec.message() << "\n";
    return std::nullopt;
  }
  dir = fs::absolute(dir);
  nlohmann::json run{{"scenario", s.name},
                     {"scenario_text", scenario_text},
                     {"seed", o.seed},
                     {"duration_s", s.duration.count()}};
  if (o.only_steps)
    run["only_steps"] = *o.only_steps;
  if (o.client)
    run["client"] = std::string(to_string(*o.client));
  if (!o.cluster_definition.empty())
    run["cluster_definition"] = fs::absolute(o.cluster_definition).string();
  std::ofstream(dir / "run.json") << run.dump(2);
  std::ofstream plan(dir / "schedule.jsonl");
  for (const auto& p : schedule)
    plan << to_json(p).dump() << "\n";
  return dir;
}

// ---- stage 2: the cluster, Prometheus and the topic ----

struct Setup {
  std::unique_ptr<ClusterHarness> harness;
  std::unique_ptr<PrometheusServer> prometheus;
  cluster::ClientConfig config;
  int replication_factor = 3;
};

// Until every partition of the run's topic has a leader and a full ISR (or `timeout`): through
// the controller for the mini-cluster, through Kafka Metadata for a defined cluster.
void wait_full_isr(const Scenario& s, const Setup& setup, std::chrono::seconds timeout) {
  const int rf = setup.replication_factor;
  if (s.cluster.definition) {
    cluster::KafkaMetadataClient kafka(setup.harness->kafka_bootstrap(), 1s);
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline && !g_interrupted) {
      auto md = kafka.fetch(std::vector<std::string>{kRunTopic});
      int ready = 0;
      if (md)
        for (const auto& t : md->topics)
          for (const auto& p : t.partitions)
            ready += p.leader_id >= 0 && int(p.isr_nodes.size()) == rf ? 1 : 0;
      if (ready == s.workload.partitions)
        return;
      std::this_thread::sleep_for(100ms);
    }
    return;
  }
  cluster::SyncClient admin(setup.config);
  for (int p = 0; p < s.workload.partitions && !g_interrupted; ++p)
    admin.wait_for_leader(
        {kRunTopic, cluster::PartitionIndex{p}}, timeout,
        [&](const cluster::PartitionMetadata& m) { return int(m.isr.size()) == rf; });
}

int bring_up(const Scenario& s, const RunOptions& o, const fs::path& dir, uint16_t metrics_port,
             Setup& setup, std::ostream& out) {
  ClusterHarness::UpError up_error;
  std::random_device rd;
  setup.harness = ClusterHarness::up(s.cluster, fmt::format("run-{:x}-{:08x}", o.seed, rd()),
                                     up_error, dir / "logs");
  if (!setup.harness) {
    out << "run: " << up_error.why << "\n";
    return up_error.exit_code;
  }
  if (o.prometheus) {
    std::string why;
    PrometheusOptions options;
    options.dir = dir / "prometheus";
    setup.prometheus =
        PrometheusServer::start(setup.harness->supervisor(), options,
                                cluster_scrape_targets(*setup.harness, metrics_port), why);
    if (!setup.prometheus) {
      out << "run: prometheus: " << why << "\n";
      return fs::exists(PrometheusOptions{}.binary) ? 4 : 3;
    }
    (void)setup.prometheus->wait_scraped(std::chrono::system_clock::now(), 10s);
    out << fmt::format("run: prometheus on {} (data in {})\n", setup.prometheus->url(),
                       setup.prometheus->options().data_dir.string());
  }
  setup.config = setup.harness->client_config();
  setup.config.request_timeout = 2s;
  setup.config.delivery_timeout = 6s;
  setup.config.retry_backoff = 50ms;
  setup.replication_factor = std::min(3, s.cluster.brokers);
  if (auto why =
          setup.harness->create_topic(kRunTopic, s.workload.partitions, setup.replication_factor);
      !why.empty()) {
    out << "run: creating the topic failed: " << why << "\n";
    return 4;
  }
  wait_full_isr(s, setup, 20s);
  return 0;
}

// The workload's clients (`[workload] client`): faultline's own on the brokers' client
// listeners, or librdkafka on their Kafka listeners with the same time budget. Empty, with `why`,
// when librdkafka refuses its configuration.
WorkloadClientFactory workload_clients(const Scenario& s, const Setup& setup, std::string& why) {
  if (s.workload.client == WorkloadClientKind::faultline)
    return [config = setup.config] {
      return std::make_unique<FaultlineWorkloadClient>(config, kRunTopic);
    };
  RdKafkaConfig c;
  c.bootstrap = kafka_bootstrap_list(setup.harness->kafka_bootstrap());
  c.topic = kRunTopic;
  c.request_timeout = setup.config.request_timeout;
  c.delivery_timeout = setup.config.delivery_timeout;
  c.retry_backoff = setup.config.retry_backoff;
  if (auto error = RdKafkaWorkloadClient::check(c)) {
    why = *error;
    return {};
  }
  return [c] { return std::make_unique<RdKafkaWorkloadClient>(c); };
}

// ---- stage 3: workload and nemesis together ----

// Progress: a line rewritten in place on a terminal, a plain line every 5 s otherwise.
class Progress {
 public:
  Progress(std::ostream& out, const Scenario& s, const Workload& w, const ClusterWatcher& view)
      : out_(out),
        s_(s),
        w_(w),
        view_(view),
        tty_(::isatty(STDOUT_FILENO) == 1 && &out == &std::cout) {}
  void start() { start_ = last_ = Clock::now(); }
  void tick(const std::string& active) {
    auto now = Clock::now();
    if (now - last_ < (tty_ ? 1s : 5s))
      return;
    last_ = now;
    const auto snapshot = view_.snapshot();
    std::string leaders;
    if (snapshot.controllers > 1)
      leaders += snapshot.active_controller > 0
                     ? fmt::format(" controller={}", controller_node(snapshot.active_controller))
                     : " controller=none";
    for (const auto& [p, v] : snapshot.partitions)
      leaders += fmt::format(" p{}=b{}", p, v.leader);
    std::string line =
        fmt::format("[{:5.1f}/{}s] sends ok={} fail={} info={} | fault: {} | leaders:{}",
                    secs(now - start_), s_.duration.count(), w_.counts().ok.load(),
                    w_.counts().fail.load(), w_.counts().info.load(), active, leaders);
    out_ << (tty_ ? "\r\033[K" + line : line + "\n");
    out_.flush();
  }
  void say(const std::string& line) {
    out_ << (tty_ ? "\r\033[K" : "") << "  " << line << "\n";
    out_.flush();
  }
  void end() {
    if (tty_)
      out_ << "\n";
  }

 private:
  std::ostream& out_;
  const Scenario& s_;
  const Workload& w_;
  const ClusterWatcher& view_;
  bool tty_;
  Clock::time_point start_{}, last_{};
};

struct Timeline {
  Clock::time_point started, setup_done, history_start, workload_start, workload_done, final_done,
      check_done, last_heal;
};

// ---- stage 4: what each injected step did to clients and to leadership ----

// Process faults per round: derived bounds only hold for a round with exactly one, on a broker
// (a controller killed alongside delays the fencing they assume by a controller election).
std::map<int, int> process_faults_per_round(const Nemesis& nemesis) {
  std::map<int, int> count;
  for (const auto& o : nemesis.injected())
    if (fault_class(o.planned.step.kind) == FaultClass::process)
      ++count[o.planned.round];
  return count;
}

// The window a step's effect on clients is measured in: from its injection to 5 s after its heal,
// cut short where a step of a later round begins (its effect is not this step's).
Clock::time_point window_end(const Nemesis& nemesis, const StepOutcome& o, const Timeline& t) {
  auto healed = o.healed_at == Clock::time_point{} ? t.workload_done : o.healed_at;
  auto end = std::min(t.workload_done, healed + 5s);
  for (const auto& other : nemesis.injected())
    if (other.planned.round != o.planned.round && other.injected_at > o.injected_at)
      end = std::min(end, other.injected_at);
  return end;
}

// The run's own checks that failed, by what they bound; each makes the verdict invalid.
struct CheckFailures {
  std::vector<std::string> availability;  // writes stopped for longer than a bound
  std::vector<std::string> leadership;    // leadership did not move, or come back, in time
  bool empty() const { return availability.empty() && leadership.empty(); }
  std::vector<std::string> all() const {
    auto out = availability;
    out.insert(out.end(), leadership.begin(), leadership.end());
    return out;
  }
};

struct StepBounds {
  std::optional<std::chrono::milliseconds> unavailable_max;
  std::optional<std::chrono::milliseconds> leader_moved_within;
  std::string unavailable_why, leader_why;
  bool leader_bound_derived = false;  // from the cluster's timeouts, not from [checks]
};

StepBounds bounds_for(const Scenario& s, const StepOutcome& o, bool single_in_round) {
  const FaultKind kind = o.planned.step.kind;
  StepBounds b;
  const DerivedBounds derived =
      s.derived_checks && single_in_round && !is_controller_selector(o.planned.step.target.kind)
          ? derived_bounds(s.cluster, kind)
          : DerivedBounds{};
  if (auto it = s.unavailable_max_by_kind.find(kind); it != s.unavailable_max_by_kind.end()) {
    b.unavailable_max = it->second;
    b.unavailable_why = "[checks] unavailable_max_s." + std::string(to_string(kind));
  } else if (s.unavailable_max) {
    b.unavailable_max = s.unavailable_max;
    b.unavailable_why = "[checks] unavailable_max_s";
  } else if (derived.unavailable_max) {
    b.unavailable_max = derived.unavailable_max;
    b.unavailable_why = "derived: " + derived.why;
  }
  if (s.leader_moved_within_probe_bound) {
    b.leader_moved_within = probe_demotion_bound(s.cluster, kind, &b.leader_why);
  } else if (s.leader_moved_within) {
    b.leader_moved_within = s.leader_moved_within;
    b.leader_why = "[checks] leader_moved_within_s";
  } else if (derived.leader_moved_within) {
    b.leader_moved_within = derived.leader_moved_within;
    b.leader_why = "derived: " + derived.why;
    b.leader_bound_derived = true;
  }
  return b;
}

// When leadership of `partition` left `leader` after the step, from the watcher's timeline.
std::optional<double> leader_moved_ms(const std::vector<ClusterWatcher::LeaderSample>& leaders,
                                      int partition, int leader, Clock::time_point from) {
  for (const auto& sample : leaders)
    if (sample.partition == partition && sample.at >= from && sample.leader > 0 &&
        sample.leader != leader)
      return std::chrono::duration<double, std::milli>(sample.at - from).count();
  return std::nullopt;
}

// Controller failover after a step that hit the active controller (its process, packets or
// links): who was active when the step began, who was elected next and how long after the
// injection. Reported apart from partition failover; not a check of its own (the checker judges
// what it did to the data).
struct ControllerFailover {
  std::string before, after;
  std::optional<double> moved_ms;
};
std::optional<ControllerFailover> controller_failover(
    const std::vector<ClusterWatcher::ControllerSample>& samples, const StepOutcome& o) {
  const std::string& active = o.resolution.active_controller;
  bool hit = !active.empty() && o.resolution.touched.count(active) > 0;
  for (const auto& [from, to] : o.resolution.cut)
    hit = hit || from == active || to == active;
  if (!hit)
    return std::nullopt;
  const ClusterWatcher::ControllerSample* before = nullptr;
  for (const auto& sample : samples)
    if (sample.at <= o.injected_at)
      before = &sample;
  ControllerFailover f;
  f.before = active;
  for (const auto& sample : samples) {
    if (sample.at <= o.injected_at || sample.active == 0)
      continue;
    if (before != nullptr && sample.active == before->active && sample.epoch == before->epoch)
      continue;
    f.after = controller_node(sample.active);
    f.moved_ms = std::chrono::duration<double, std::milli>(sample.at - o.injected_at).count();
    break;
  }
  return f;
}

// Per injected step: the client-observed unavailability on the partitions it hit (all when it
// hit no partition's leader), and when leadership left the leaders it hit; each against its
// bound (explicit in [checks], else derived from the cluster's timeouts). A step that hit the
// active controller also says when another controller took over.
nlohmann::json step_results(const Scenario& s, const Nemesis& nemesis, const Workload& workload,
                            const ClusterWatcher& view, const Timeline& t, RunMetrics& metrics,
                            CheckFailures& failures) {
  auto results = nlohmann::json::array();
  const auto leaders = view.leaders();
  const auto controllers = view.controllers();
  const auto per_round = process_faults_per_round(nemesis);
  for (const auto& o : nemesis.injected()) {
    const std::string kind(to_string(o.planned.step.kind));
    const double at_s = secs(o.injected_at - t.workload_start);
    std::vector<int> partitions;
    for (auto [p, b] : o.resolution.leaders_hit)
      partitions.push_back(p);
    const double gap_ms =
        workload.longest_gap_ms(partitions, o.injected_at, window_end(nemesis, o, t));
    metrics.unavailability(kind, gap_ms / 1000);
    auto healed = o.healed_at == Clock::time_point{} ? t.workload_done : o.healed_at;
    nlohmann::json r = {{"fault", kind},
                        {"target", o.resolution.targets_desc},
                        {"selector", o.planned.step.target.str()},
                        {"at_s", at_s},
                        {"heal_s", secs(healed - t.workload_start)},
                        {"planned_at_s", o.planned.at.count() / 1000.0},
                        {"round", o.planned.round},
                        {"injected", o.injected},
                        {"backend", o.backend},
                        {"inject_ms", secs(o.resolve_and_inject) * 1000},
                        {"unavailable_ms", gap_ms}};
    if (!o.error.empty())
      r["error"] = o.error;
    if (auto failover = controller_failover(controllers, o)) {
      r["controller_before"] = failover->before;
      r["controller_after"] =
          failover->after.empty() ? nlohmann::json() : nlohmann::json(failover->after);
      r["controller_moved_after_ms"] =
          failover->moved_ms ? nlohmann::json(*failover->moved_ms) : nlohmann::json();
    }
    const bool single = per_round.count(o.planned.round) && per_round.at(o.planned.round) == 1;
    const StepBounds bounds = bounds_for(s, o, single);
    if (bounds.unavailable_max) {
      r["unavailable_bound_ms"] = bounds.unavailable_max->count();
      if (o.injected && gap_ms > double(bounds.unavailable_max->count()))
        failures.availability.push_back(fmt::format(
            "availability: {} on {} at +{:.1f}s left {} without an acknowledged write for {:.2f} "
            "s, "
            "more than {:.2f} s ({})",
            kind, o.resolution.targets_desc, at_s,
            partitions.empty() ? std::string("every partition")
                               : fmt::format("partition {}", fmt::join(partitions, ",")),
            gap_ms / 1000, bounds.unavailable_max->count() / 1000.0, bounds.unavailable_why));
    }
    for (auto [partition, leader] : o.resolution.leaders_hit) {
      auto moved = leader_moved_ms(leaders, partition, leader, o.injected_at);
      r["leaders_hit"].push_back(
          {{"partition", partition},
           {"leader_before", leader},
           {"moved_after_ms", moved ? nlohmann::json(*moved) : nlohmann::json()}});
      if (!r.contains("leader_moved_after_ms") && moved)
        r["leader_moved_after_ms"] = *moved;
      // A bound derived from timeouts needs somewhere for leadership to go.
      if (!bounds.leader_moved_within || !o.injected ||
          (bounds.leader_bound_derived && !o.resolution.successor_available.count(partition)))
        continue;
      r["leader_moved_bound_ms"] = bounds.leader_moved_within->count();
      if (!moved || *moved > double(bounds.leader_moved_within->count()))
        failures.leadership.push_back(
            fmt::format("leadership of partition {} stayed on b{} for more than {:.2f} s ({}) "
                        "after {} at +{:.1f}s",
                        partition, leader, bounds.leader_moved_within->count() / 1000.0,
                        bounds.leader_why, kind, at_s));
    }
    results.push_back(std::move(r));
  }
  return results;
}

// The partitions a round of faults left alone: the controller, their leader and its links to the
// controller untouched, and enough ISR members (the leader included) untouched and still linked
// with the leader both ways for min.insync.replicas. Such a partition keeps taking writes; at
// worst its leader waits replica.lag.time.max for a follower it lost before the controller
// commits dropping it from the ISR. A longer gap is a leader that never shrinks its ISR, or a
// stall that spread from the partitions the faults did hit.
constexpr auto kUntouchedMargin = 2000ms;

nlohmann::json untouched_availability(const Scenario& s, const Nemesis& nemesis,
                                      const Workload& workload, const Timeline& t,
                                      std::vector<std::string>& failures) {
  auto results = nlohmann::json::array();
  if (!s.derived_checks)
    return results;
  std::map<int, std::vector<const StepOutcome*>> rounds;
  for (const auto& o : nemesis.injected())
    if (o.injected)
      rounds[o.planned.round].push_back(&o);
  const auto bound = s.cluster.replica_lag_time_max + kUntouchedMargin;
  for (const auto& [round, steps] : rounds) {
    const StepOutcome& first = *steps.front();
    Reach reach;
    reach.controllers = first.resolution.controllers;
    reach.active_controller = first.resolution.active_controller;
    for (const auto* o : steps) {
      reach.touched.insert(o->resolution.touched.begin(), o->resolution.touched.end());
      reach.cut.insert(o->resolution.cut.begin(), o->resolution.cut.end());
    }
    auto end = t.workload_done;
    for (const auto* o : steps)
      end = std::min(end, window_end(nemesis, *o, t));
    const auto partitions =
        untouched_partitions(s.cluster.min_insync_replicas, reach, first.resolution.partitions);
    if (partitions.empty())
      continue;
    double worst_ms = 0;
    int worst_partition = -1;
    for (int p : partitions) {
      const double gap = workload.longest_gap_ms({p}, first.injected_at, end);
      if (gap > worst_ms)
        worst_ms = gap, worst_partition = p;
    }
    results.push_back({{"round", round},
                       {"at_s", secs(first.injected_at - t.workload_start)},
                       {"partitions", partitions},
                       {"unavailable_ms", worst_ms},
                       {"bound_ms", bound.count()}});
    if (worst_ms > double(bound.count()))
      failures.push_back(fmt::format(
          "availability: partition {} went {:.2f} s without an acknowledged write after +{:.1f}s, "
          "although the faults of round {} left its leader, the controller and {} of its ISR alone "
          "(derived: replica.lag.time.max {} ms + {} ms)",
          worst_partition, worst_ms / 1000, secs(first.injected_at - t.workload_start), round,
          s.cluster.min_insync_replicas, s.cluster.replica_lag_time_max.count(),
          kUntouchedMargin.count()));
  }
  return results;
}

nlohmann::json skipped_steps(const Nemesis& nemesis) {
  auto out = nlohmann::json::array();
  for (const auto& o : nemesis.skipped())
    out.push_back({{"fault", std::string(to_string(o.planned.step.kind))},
                   {"target", o.planned.step.target.str()},
                   {"planned_at_s", o.planned.at.count() / 1000.0},
                   {"why", o.resolution.skipped}});
  return out;
}

// After the last heal: every partition back to a full ISR, then (if the scenario asks) led by
// its preferred replica within the bound.
nlohmann::json preferred_leadership(const Scenario& s, ClusterWatcher& view,
                                    Clock::time_point last_heal,
                                    std::vector<std::string>& failures) {
  if (!s.preferred_leaders_within || g_interrupted || last_heal == Clock::time_point{})
    return {};
  auto deadline = last_heal + *s.preferred_leaders_within;
  std::optional<double> restored_s;
  std::string still;
  for (;;) {
    auto now = Clock::now();
    view.refresh();
    auto snap = view.snapshot();
    if (snap.controller_up) {
      still.clear();
      for (const auto& [p, v] : snap.partitions)
        if (v.replicas.empty() || v.leader != v.replicas.front())
          still += fmt::format(" p{}=b{} (preferred b{})", p, v.leader,
                               v.replicas.empty() ? -1 : v.replicas.front());
      if (still.empty()) {
        restored_s = secs(now - last_heal);
        break;
      }
    }
    if (now > deadline)
      break;
    std::this_thread::sleep_for(100ms);
  }
  if (!restored_s || *restored_s > s.preferred_leaders_within->count() / 1000.0)
    failures.push_back(
        fmt::format("preferred leadership not restored within {} s of the last heal:{}",
                    s.preferred_leaders_within->count() / 1000.0, still));
  return {{"within_s", s.preferred_leaders_within->count() / 1000.0},
          {"restored_after_s", restored_s ? nlohmann::json(*restored_s) : nlohmann::json()}};
}

// ---- stage 5: the verdict ----

void write_junit(const fs::path& dir, const Scenario& s, uint64_t seed, const std::string& verdict,
                 bool matches, double seconds) {
  std::ofstream junit(dir / "junit.xml");
  junit << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        << fmt::format("<testsuite name=\"faultline\" tests=\"1\" failures=\"{}\">\n",
                       matches ? 0 : 1)
        << fmt::format("  <testcase classname=\"faultline.{}\" name=\"seed-{}\" time=\"{:.3f}\">\n",
                       s.name, seed, seconds);
  if (!matches)
    junit << fmt::format(
        "    <failure message=\"expected {}, got {}\">replay: faultline replay {}</failure>\n",
        s.expect_valid ? "valid" : "invalid", verdict, dir.string());
  junit << "  </testcase>\n</testsuite>\n";
}

struct RunFacts {
  nlohmann::json faults;
  nlohmann::json controller_failover;
  nlohmann::json skipped;
  nlohmann::json untouched;  // per round: the partitions its faults left alone, and their gap
  nlohmann::json preferred;
  nlohmann::json prometheus;
  CheckFailures failures;
  std::vector<std::string> vacuity;  // the run's own reasons it proves nothing
  // With a controller quorum: the metadata-log workload's result (metadata_workload.h).
  std::optional<MetadataLogResult> metadata_log;
};

// The checker's verdict on the history (data, invariants over the timeline, vacuity), with the
// recovery bound measured from the last heal.
checker::KafkaVerdict judge(const checker::History& history, const Timeline& t) {
  checker::InvariantOptions options;
  if (t.last_heal != Clock::time_point{})
    options.recovery_from =
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.last_heal - t.history_start);
  return checker::judge_kafka(history, {}, options);
}

int decide(const Scenario& s, const RunOptions& o, const fs::path& dir, RunFacts& facts,
           Timeline& t, std::ostream& out) {
  auto parsed =
      checker::parse_jsonl(read_file(dir / "history.jsonl"), (dir / "history.jsonl").string());
  if (!parsed) {
    out << "run: the history does not parse: " << parsed.error().to_string() << "\n";
    return 4;
  }
  const auto judged = judge(*parsed, t);
  const auto& result = judged.kafka;
  t.check_done = Clock::now();
  const auto& metadata_log = facts.metadata_log;
  const bool invalid = judged.verdict == checker::Verdict::invalid || !facts.failures.empty() ||
                       (metadata_log && metadata_log->invalid());
  std::vector<std::string> vacuity = judged.vacuity;
  vacuity.insert(vacuity.end(), facts.vacuity.begin(), facts.vacuity.end());
  if (metadata_log) {
    for (const auto& why : metadata_log->vacuity)
      vacuity.push_back("metadata log: " + why);
    // Unknown without a reason of its own (the search ran out of budget) is still unknown.
    if (metadata_log->vacuity.empty() && !metadata_log->invalid() && !metadata_log->valid())
      vacuity.push_back(metadata_log->summary);
  }
  // Invalid wins; a run that could not have shown a loss proves nothing (exit 3).
  const std::string verdict_name = invalid ? "invalid" : vacuity.empty() ? "valid" : "unknown";
  const bool valid = verdict_name == "valid";
  const nlohmann::json checker_json = judged.to_json();
  const bool matches = verdict_name != "unknown" && valid == s.expect_valid;
  nlohmann::json verdict = {
      {"scenario", s.name},
      {"seed", o.seed},
      {"expected", s.expect_valid ? "valid" : "invalid"},
      {"verdict", verdict_name},
      {"valid", valid},
      {"expected_valid", s.expect_valid},
      {"vacuity", vacuity},
      {"invariants", checker_json["invariants"]},
      {"acked", result.sends_acked},
      {"lost", checker_json["lost"]},
      {"unseen", checker_json["unseen"]},
      {"duplicates", checker_json["duplicates"]},
      {"anomalies", checker_json["anomalies"]},
      {"failover", failover_summary(facts.faults)},
      {"controller_failover", facts.controller_failover},
      {"leadership", {{"failures", facts.failures.all()}, {"preferred", facts.preferred}}},
      {"matches_expectation", matches},
      {"checker", checker_json},
      {"faults", facts.faults},
      {"skipped_steps", facts.skipped},
      {"untouched_partitions", facts.untouched},
      {"timings_s",
       {{"setup", secs(t.setup_done - t.started)},
        {"workload", secs(t.workload_done - t.setup_done)},
        {"heal_and_final_read", secs(t.final_done - t.workload_done)},
        {"check", secs(t.check_done - t.final_done)}}},
      {"replay", fmt::format("faultline replay {}", dir.string())}};
  if (!facts.prometheus.is_null())
    verdict["prometheus"] = facts.prometheus;
  if (metadata_log) {
    verdict["metadata_log"] = metadata_log->to_json();
    if (!metadata_log->anomalies.empty())
      verdict["anomalies"]["metadata_log"] = metadata_log->anomalies.size();
    if (metadata_log->verdict == checker::Verdict::invalid)
      verdict["anomalies"]["metadata_log_linearizability"] = 1;
  }
  if (!facts.failures.availability.empty())
    verdict["anomalies"]["availability"] = facts.failures.availability.size();
  if (!facts.failures.leadership.empty())
    verdict["anomalies"]["leadership"] = facts.failures.leadership.size();
  // A named copy: a range-for over a temporary's items() would dangle.
  const nlohmann::json violations =
      checker_json["invariants"].value("violations", nlohmann::json::object());
  for (const auto& [kind, count] : violations.items())
    if (count.is_number() && count.get<int>() > 0)
      verdict["anomalies"][kind] = count;
  std::ofstream(dir / "verdict.json") << verdict.dump(2) << "\n";
  write_junit(dir, s, o.seed, verdict_name, matches, secs(t.check_done - t.started));
  // report.html is drawn from the files just written; its own time goes into verdict.json after.
  auto report_started = Clock::now();
  auto report_error = write_run_report(dir);
  if (!report_error) {
    verdict["timings_s"]["report"] = secs(Clock::now() - report_started);
    std::ofstream(dir / "verdict.json") << verdict.dump(2) << "\n";
  }
  out << judged.summary() << "\n";
  if (metadata_log)
    out << metadata_log->summary << "\n";
  for (const auto& f : facts.failures.all())
    out << "leadership: " << f << "\n";
  for (const auto& why : vacuity)
    out << "proves nothing: " << why << "\n";
  out << fmt::format("verdict: {} (expected {}) -> {}\n", verdict_name,
                     s.expect_valid ? "valid" : "invalid", (dir / "verdict.json").string());
  if (report_error)
    out << "run: report.html could not be written: " << report_error.message() << "\n";
  else
    out << "report: " << (dir / "report.html").string() << "\n";
  if (!matches)
    out << "replay: faultline replay " << dir.string() << "\n";
  if (verdict_name == "unknown")
    return 3;
  return matches ? 0 : 1;
}

}  // namespace

// --client and --cluster-definition. A defined cluster is driven by librdkafka and followed
// through Kafka Metadata; the probe, which talks to the mini-cluster's controller, cannot run
// with it, nor a controller quorum (a definition has one controller node). Exit 2 (bad input)
// when the definition does not parse or the scenario needs the probe or a quorum.
int apply_cluster_options(Scenario& s, const RunOptions& o, std::ostream& out) {
  if (o.client)
    s.workload.client = *o.client;
  if (o.cluster_definition.empty())
    return 0;
  DefinitionError error;
  s.cluster.definition = load_cluster_definition(o.cluster_definition, error);
  if (!s.cluster.definition) {
    out << "run: " << error.str() << "\n";
    return 2;
  }
  if (s.cluster.probe) {
    out << fmt::format(
        "run: {} needs faultline-probe, which demotes brokers through the "
        "mini-cluster's controller: not available with --cluster-definition\n",
        s.name);
    return 2;
  }
  if (s.cluster.controllers > 1) {
    out << fmt::format(
        "run: {} needs a quorum of {} controllers; a cluster definition starts "
        "one controller node: not available with --cluster-definition\n",
        s.name, s.cluster.controllers);
    return 2;
  }
  s.workload.client = WorkloadClientKind::librdkafka;
  return 0;
}

int run_scenario(Scenario s, const std::string& scenario_text, const RunOptions& o,
                 std::ostream& out) {
  if (o.duration)
    s.duration = *o.duration;
  if (int rc = apply_cluster_options(s, o, out); rc != 0)
    return rc;
  if (auto missing = missing_run_capabilities(effective_capabilities()); !missing.empty()) {
    out << fmt::format(
        "run: this process lacks {}, needed to build the run's network namespaces, "
        "bridges and nftables rules (run as root; `faultline doctor` lists the rest)\n",
        fmt::join(missing, " and "));
    return 3;
  }
  auto schedule = make_schedule(s, o.seed);
  if (o.only_steps) {
    std::vector<PlannedStep> kept;
    for (size_t i : *o.only_steps)
      if (i < schedule.size())
        kept.push_back(schedule[i]);
    schedule = std::move(kept);
  }
  auto dir_or = prepare_run_dir(s, scenario_text, o, schedule, out);
  if (!dir_or)
    return 4;
  const fs::path dir = *dir_or;
  const bool rdkafka = s.workload.client == WorkloadClientKind::librdkafka;
  out << fmt::format("run: {} seed={} duration={}s steps={}{}{} -> {}\n", s.name, o.seed,
                     s.duration.count(), schedule.size(), rdkafka ? " client=librdkafka" : "",
                     s.cluster.definition ? " cluster=" + s.cluster.definition->file : "",
                     dir.string());
  out.flush();

  Timeline t;
  t.started = Clock::now();
  // With --prometheus the harness's metrics are served (on a free port unless one is given).
  cluster::MetricsEndpoint metrics_endpoint(
      "127.0.0.1", o.metrics_port != 0 || !o.prometheus ? o.metrics_port : free_loopback_port());
  RunMetrics metrics(metrics_endpoint.registry());
  if (o.metrics_port != 0)
    out << fmt::format("run: metrics on http://127.0.0.1:{}/metrics\n", metrics_endpoint.port());
  Setup setup;
  if (int rc = bring_up(s, o, dir, metrics_endpoint.port(), setup, out); rc != 0)
    return rc;
  std::string clients_error;
  WorkloadClientFactory clients = workload_clients(s, setup, clients_error);
  if (!clients) {
    out << "run: workload client: " << clients_error << "\n";
    return 4;
  }
  // The history's clock starts here; the invariant pass's recovery bound is measured on it.
  t.history_start = Clock::now();
  auto recorder = checker::HistoryRecorder::open(
      (dir / "history.jsonl").string(),
      checker::HistoryHeader{"kafka",
                             s.workload.acks_all ? checker::Acks::all : checker::Acks::one},
      [start = t.history_start] { return Clock::now() - start; });
  if (!recorder) {
    out << "run: cannot write the history: " << recorder.error().message() << "\n";
    return 4;
  }
  checker::HistoryRecorder& history = **recorder;
  t.setup_done = Clock::now();

  auto view_ptr = s.cluster.definition
                      ? std::make_unique<ClusterWatcher>(setup.harness->kafka_bootstrap(),
                                                         s.cluster.brokers, history)
                      : std::make_unique<ClusterWatcher>(setup.config, s.cluster.brokers, history);
  ClusterWatcher& view = *view_ptr;
  view.refresh();
  view.start();
  Workload workload(s.workload, clients, sub_seed(o.seed, "workload"), history);
  JournalRecorder journal_recorder(setup.harness->journal());
  SupervisorProcessControl processes(setup.harness->supervisor());
  FaultTopology topology = setup.harness->fault_topology();
  FaultLog fault_log(dir / "faults.jsonl");
  FaultInjector injector(FaultContext{&topology, &journal_recorder, &processes,
                                      sibling_binary("faultline-shaper"), dir, o.seed},
                         &fault_log);
  Progress progress(out, s, workload, view);
  Nemesis::Hooks hooks;
  hooks.interrupted = [] { return g_interrupted.load(); };
  hooks.say = [&](const std::string& line) { progress.say(line); };
  hooks.after_heal = [&] { (void)setup.harness->write_processes(); };
  const Nemesis* running = nullptr;
  hooks.tick = [&] { progress.tick(running ? running->active() : "none"); };
  Nemesis nemesis(schedule, injector, view, history, metrics, hooks);
  running = &nemesis;

  g_interrupted = false;
  auto previous_int = std::signal(SIGINT, on_interrupt);
  auto previous_term = std::signal(SIGTERM, on_interrupt);
  workload.start();
  // With a controller quorum the metadata log is checked too, on the same clock (a second
  // history, metadata-history.jsonl).
  std::unique_ptr<MetadataWorkload> metadata;
  if (s.cluster.controllers > 1 && !s.cluster.definition) {
    metadata = std::make_unique<MetadataWorkload>();
    MetadataWorkloadOptions options;
    options.history_clock = [start = t.history_start] { return Clock::now() - start; };
    if (auto ec =
            metadata->start(setup.config.controllers, dir / "metadata-history.jsonl", options)) {
      out << "run: cannot write the metadata history: " << ec.message() << "\n";
      workload.stop();
      return 4;
    }
  }
  t.workload_start = Clock::now();
  progress.start();
  // The nemesis runs on this thread: restarted processes must belong to the harness's thread.
  nemesis.run(t.workload_start);
  while (Clock::now() < t.workload_start + s.duration && !g_interrupted) {
    progress.tick(nemesis.active());
    std::this_thread::sleep_for(50ms);
  }
  progress.end();
  workload.stop();
  t.workload_done = Clock::now();

  RunFacts facts;
  facts.faults = step_results(s, nemesis, workload, view, t, metrics, facts.failures);
  facts.controller_failover =
      controller_failover_summary(facts.faults, view.controllers(), t.workload_start);
  facts.untouched = untouched_availability(s, nemesis, workload, t, facts.failures.availability);
  facts.skipped = skipped_steps(nemesis);
  wait_full_isr(s, setup, 30s);
  if (!g_interrupted)
    workload.final_read();
  // After the heal: the final reads need every controller back to read the quorum's log.
  if (metadata && !g_interrupted) {
    metadata->stop();
    facts.metadata_log = metadata->check();
  }
  metadata.reset();
  t.final_done = Clock::now();
  facts.preferred = preferred_leadership(s, view, nemesis.last_heal(), facts.failures.leadership);
  t.last_heal = nemesis.last_heal();
  if (!schedule.empty() && nemesis.injected().empty())
    facts.vacuity.push_back(
        fmt::format("no fault was injected ({} planned, every one skipped)", schedule.size()));
  if (s.nemesis && schedule.empty())
    facts.vacuity.push_back(
        fmt::format("no fault fits in {} s: the first round would heal after the run ends (a "
                    "longer --duration)",
                    s.duration.count()));
  view.stop();
  view.refresh();
  if (setup.prometheus) {
    facts.prometheus = final_failover_report(
        *setup.prometheus,
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - t.started) + 60s);
    setup.prometheus.reset();
  }
  setup.harness->down();
  setup.harness.reset();
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  if (g_interrupted) {
    out << "run: interrupted; everything the run made was removed (history in " << dir.string()
        << ")\n";
    return 4;
  }
  return decide(s, o, dir, facts, t, out);
}

std::optional<RecordedRun> read_recorded_run(const fs::path& dir, std::string& why) {
  const fs::path path = dir / "run.json";
  nlohmann::json run;
  try {
    run = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    why = path.string() + ": " + e.what();
    return std::nullopt;
  }
  RecordedRun r;
  r.scenario_text = run.value("scenario_text", "");
  ScenarioError error;
  auto s = parse_scenario(r.scenario_text, path.string(), error);
  if (!s) {
    why = error.str();
    return std::nullopt;
  }
  r.scenario = std::move(*s);
  r.options.seed = run.value("seed", uint64_t{1});
  r.options.duration = std::chrono::seconds(run.value("duration_s", 30));
  if (run.contains("only_steps"))
    r.options.only_steps = run["only_steps"].get<std::vector<size_t>>();
  if (run.contains("client"))
    r.options.client = run["client"] == "librdkafka" ? WorkloadClientKind::librdkafka
                                                     : WorkloadClientKind::faultline;
  r.options.cluster_definition = run.value("cluster_definition", "");
  return r;
}

int replay_run(const fs::path& dir, std::ostream& out) {
  std::string why;
  auto recorded = read_recorded_run(dir, why);
  if (!recorded) {
    out << "replay: " << why << "\n";
    return 2;
  }
  RunOptions o = recorded->options;
  int n = 1;
  while (fs::exists(dir / fmt::format("replay-{}", n)))
    ++n;
  o.out_dir = dir / fmt::format("replay-{}", n);
  return run_scenario(recorded->scenario, recorded->scenario_text, o, out);
}

}  // namespace faultline::chaos
