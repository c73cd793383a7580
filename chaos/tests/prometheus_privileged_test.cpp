// Prometheus as a user runs it with faultline: `faultline run --prometheus` and `faultline cluster
// up --prometheus` start Debian's real server, which scrapes every process. The failover histogram
// and the election counters it stored must say what the run's history says, its data must stay in
// the run directory, a restarted broker must be scraped again, and every series the Grafana
// dashboard reads must be in the scrape.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "child_process.h"
#include "faultline/chaos/prometheus_server.h"
#include "faultline/chaos/supervisor.h"
#include "faultline/checker/history.h"
#include "faultline/cluster/client/client.h"
#include "faultline_test_support.h"
#include "grafana_dashboard.h"

namespace faultline::chaos {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using faultline::testing::binary_dir;
using faultline::testing::ChildProcess;
using faultline::testing::TempDir;

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::pair<int, std::string> faultline(const TempDir& dir, std::vector<std::string> args) {
  static int n = 0;
  args.insert(args.begin(), (binary_dir() / "faultline").string());
  auto log = dir.path() / ("cmd-" + std::to_string(n++) + ".log");
  ChildProcess p(args, log);
  int code = p.wait_for(60s);
  return {code, p.log()};
}

// One number per value of `label` ("" for a result without it).
std::map<std::string, double> by_label(const PrometheusClient& prom, const std::string& promql,
                                       const std::string& label) {
  std::map<std::string, double> out;
  auto r = prom.query(promql);
  EXPECT_TRUE(r) << (r ? "" : r.error());
  if (!r)
    return out;
  for (const auto& s : *r)
    out[s.labels.count(label) ? s.labels.at(label) : ""] = s.value;
  return out;
}

double scalar(const PrometheusClient& prom, const std::string& promql) {
  auto r = by_label(prom, promql, "");
  return r.empty() ? -1 : r.begin()->second;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  for (auto deadline = std::chrono::steady_clock::now() + timeout;
       std::chrono::steady_clock::now() < deadline;) {
    if (condition())
      return true;
    std::this_thread::sleep_for(200ms);
  }
  return condition();
}

// What the history says about each fault: its kind and the longest stretch without an
// acknowledged write from the injection until 5 s after the heal (or the end of the workload).
struct HistoryFault {
  std::string kind;
  double unavailable_s = 0;
};

std::vector<HistoryFault> faults_in(const checker::History& h) {
  std::vector<std::chrono::nanoseconds> acks;
  for (const auto& op : h.ops)
    if (op.f == checker::Function::send && op.outcome == checker::Outcome::ok && op.complete_time)
      acks.push_back(*op.complete_time);
  std::sort(acks.begin(), acks.end());
  std::vector<HistoryFault> out;
  for (size_t i = 0; i < h.nemesis.size(); ++i) {
    const auto& start = h.nemesis[i];
    if (start.kind != checker::NemesisKind::fault_start)
      continue;
    auto until = acks.empty() ? start.time : acks.back();
    for (size_t j = i + 1; j < h.nemesis.size(); ++j) {
      if (h.nemesis[j].kind == checker::NemesisKind::fault_stop) {
        until = std::min(until, h.nemesis[j].time + std::chrono::nanoseconds(5s));
        break;
      }
    }
    auto last = start.time;
    std::chrono::nanoseconds longest{0};
    for (auto t : acks) {
      if (t < start.time)
        continue;
      if (t > until)
        break;
      longest = std::max(longest, t - last);
      last = t;
    }
    longest = std::max(longest, until - last);
    out.push_back({start.fault, std::chrono::duration<double>(longest).count()});
  }
  return out;
}

TEST(FaultlineRunWithPrometheus, FailoverHistogramAndElectionCountersSayWhatTheHistorySays) {
  FAULTLINE_REQUIRE_ROOT();
  TempDir dir("faultline-prom");
  auto out = dir.path() / "run";
  ChildProcess run({(binary_dir() / "faultline").string(), "run", "--scenario", "leader-kill",
                    "--seed", "3", "--duration", "14", "--prometheus", "--out", out.string()},
                   dir.path() / "run.log");
  ASSERT_EQ(run.wait_for(180s), 0) << run.log();
  EXPECT_NE(run.log().find("run: prometheus on http://127.0.0.1:"), std::string::npos) << run.log();
  auto verdict = nlohmann::json::parse(read(out / "verdict.json"), nullptr, false);
  ASSERT_TRUE(verdict.is_object()) << run.log();
  ASSERT_TRUE(verdict.contains("prometheus")) << verdict.dump(2);
  const auto& reported = verdict["prometheus"];
  ASSERT_FALSE(reported.contains("error")) << reported.dump(2);
  EXPECT_TRUE(reported["final_scrape"].get<bool>()) << "the last observations may be missing";
  // Its files are in the run directory: configuration, file_sd targets, the TSDB.
  EXPECT_NE(read(out / "prometheus" / "prometheus.yml").find("file_sd_configs"), std::string::npos);
  auto brokers =
      nlohmann::json::parse(read(out / "prometheus" / "targets" / "broker.json"), nullptr, false);
  ASSERT_TRUE(brokers.is_array());
  EXPECT_EQ(brokers.size(), 3u);
  ASSERT_TRUE(fs::exists(out / "prometheus" / "data" / "wal"));

  // The history, read the way the checker reads it.
  auto history = checker::parse_jsonl(read(out / "history.jsonl"));
  ASSERT_TRUE(history) << history.error().to_string();
  auto faults = faults_in(*history);
  ASSERT_FALSE(faults.empty()) << "no fault in the history: the test proves nothing";
  std::map<std::string, double> faults_per_kind;
  double history_unavailable_s = 0;
  for (const auto& f : faults) {
    faults_per_kind[f.kind] += 1;
    history_unavailable_s += f.unavailable_s;
  }
  int leader_changes = 0;
  // The first leader of each partition (epoch 0, the topic's creation) is recorded too, but it is
  // no election in the controller's counters.
  for (const auto& n : history->nemesis)
    leader_changes +=
        n.kind == checker::NemesisKind::leader_change && n.epoch && n.epoch->value() > 0;
  ASSERT_GT(leader_changes, 0) << "killing the leader elected nobody?";

  // Open the kept TSDB with a Prometheus of our own and ask it through the query API. The run is
  // over, so every query looks back over the last hour.
  Supervisor supervisor(nullptr, dir.path() / "logs");
  std::string why;
  auto server = PrometheusServer::start(
      supervisor, {.dir = dir.path() / "reopened", .data_dir = out / "prometheus" / "data"}, {},
      why);
  ASSERT_TRUE(server) << why;
  const auto& prom = server->client();

  // Faults: one histogram observation and one counted fault per fault in the history.
  EXPECT_EQ(
      by_label(prom,
               "sum by (fault) (last_over_time(faultline_partition_unavailable_seconds_count[1h]))",
               "fault"),
      faults_per_kind);
  EXPECT_EQ(by_label(prom, "sum by (kind) (last_over_time(faultline_faults_total[1h]))", "kind"),
            faults_per_kind);
  // The failover time: exactly what the harness observed (verdict.json), and within 100 ms per
  // fault of what the history's acknowledgement times say.
  double sum = scalar(prom, "sum(last_over_time(faultline_partition_unavailable_seconds_sum[1h]))");
  double verdict_sum = 0;
  std::vector<double> observed;
  for (const auto& f : verdict["faults"]) {
    observed.push_back(f["unavailable_ms"].get<double>() / 1000);
    verdict_sum += observed.back();
  }
  EXPECT_NEAR(sum, verdict_sum, 1e-6);
  EXPECT_NEAR(sum, history_unavailable_s, 0.1 * double(faults.size()))
      << "history says " << history_unavailable_s << " s";
  EXPECT_GT(sum, 0.3)
      << "a leader kill with a 3 s session timeout cost less than 300 ms of writes?";
  // Every bucket counts the observations at or below its bound.
  auto buckets = prom.query("last_over_time(faultline_partition_unavailable_seconds_bucket[1h])");
  ASSERT_TRUE(buckets) << buckets.error();
  ASSERT_FALSE(buckets->empty());
  std::map<double, double> count_at_bound;
  for (const auto& s : *buckets)
    count_at_bound[std::strtod(s.labels.at("le").c_str(), nullptr)] += s.value;
  for (auto [bound, count] : count_at_bound) {
    double expected = double(
        std::count_if(observed.begin(), observed.end(), [&](double v) { return v <= bound; }));
    EXPECT_EQ(count, expected) << "le=" << bound;
  }

  // Elections: as many as the leader changes the history recorded.
  auto raw = prom.query_range_vector("faultline_elections_total[1h]");
  ASSERT_TRUE(raw) << raw.error();
  double elections = 0;
  for (const auto& series : *raw) {
    std::vector<double> values;
    for (const auto& sample : series.samples)
      values.push_back(sample.second);
    elections += counter_total(values);
  }
  EXPECT_EQ(elections, leader_changes);
  double reported_elections = 0;
  for (const auto& [reason, n] : reported["elections"].items())
    reported_elections += n.get<double>();
  EXPECT_EQ(reported_elections, leader_changes) << reported.dump(2);
  EXPECT_TRUE(reported["elections"].contains("offline")) << reported.dump(2);
  EXPECT_EQ(reported["failover"]["all"]["count"].get<double>(), double(faults.size()));
  EXPECT_TRUE(reported["failover"]["all"]["p50_s"].is_number()) << reported.dump(2);

  // Every target the run wrote was scraped, and the dashboard's harness series are there.
  std::map<std::string, double> targets_per_job;
  for (const auto& t : reported["targets"])
    targets_per_job[t["job"].get<std::string>()] += 1;
  EXPECT_EQ(targets_per_job["broker"], 3);
  EXPECT_EQ(targets_per_job["controller"], 1);
  EXPECT_EQ(targets_per_job["harness"], 1);
  EXPECT_EQ(by_label(prom, "count by (job) (last_over_time(up[1h]))", "job"), targets_per_job);
  for (const auto& s : testing::kHarnessSeries)
    EXPECT_GT(scalar(prom, "count(last_over_time(" + s + "[1h]))"), 0) << s;
  EXPECT_FALSE(server->stop());
}

// Starts `faultline cluster up --prometheus`; returns (run dir, Prometheus URL).
std::optional<std::pair<fs::path, std::string>> start_up(ChildProcess& harness,
                                                         const TempDir& dir) {
  harness = ChildProcess(
      {(binary_dir() / "faultline").string(), "cluster", "up", "--brokers", "3",
       "--session-timeout-ms", "2000", "--heartbeat-interval-ms", "200", "--prometheus"},
      dir.path() / "up.log");
  std::regex run_line("cluster up: run \\S+ \\(3 brokers\\) in (\\S+)");
  std::regex prom_line("cluster up: prometheus on (http://127\\.0\\.0\\.1:[0-9]+)");
  for (int i = 0; i < 600; ++i) {
    std::string log = harness.log();
    std::smatch run, prom;
    if (std::regex_search(log, run, run_line) && std::regex_search(log, prom, prom_line))
      return std::pair{fs::path(run[1].str()), prom[1].str()};
    if (harness.wait_for(0ms) != -1)
      return std::nullopt;
    std::this_thread::sleep_for(50ms);
  }
  return std::nullopt;
}

TEST(ClusterUpWithPrometheus, ScrapesARestartedBrokerAgainAndEveryDashboardSeriesIsInTheScrape) {
  FAULTLINE_REQUIRE_ROOT();
  auto dashboard = testing::load_dashboard();
  ASSERT_FALSE(dashboard.series.empty()) << testing::dashboard_path();
  TempDir dir("faultline-prom-up");
  ChildProcess harness;
  auto up = start_up(harness, dir);
  ASSERT_TRUE(up) << harness.log();
  auto [run_dir, url] = *up;
  PrometheusClient prom(url);
  // The file_sd targets: the controller, 3 brokers, and the probe when the cluster runs one.
  std::map<std::string, size_t> targets;
  for (const auto& job : scrape_jobs()) {
    auto doc = nlohmann::json::parse(read(run_dir / "prometheus" / "targets" / (job + ".json")),
                                     nullptr, false);
    ASSERT_TRUE(doc.is_array()) << job;
    targets[job] = doc.size();
  }
  EXPECT_EQ(targets["controller"], 1u);
  EXPECT_EQ(targets["broker"], 3u);
  EXPECT_EQ(targets["harness"], 0u) << "cluster up has no harness metrics";
  const size_t all_targets = targets["controller"] + targets["broker"] + targets["probe"];
  ASSERT_TRUE(
      eventually([&] { return scalar(prom, "count(up == 1)") == double(all_targets); }, 20s))
      << "not every process is scraped: " << read(run_dir / "logs" / "prometheus.stderr");

  auto info = nlohmann::json::parse(read(run_dir / "cluster.json"));
  std::string controller = info["controller"].get<std::string>();
  std::string bootstrap = info["bootstrap"][0].get<std::string>();
  cluster::ClientConfig config;
  cluster::parse_endpoints(controller, config.controllers);
  for (const auto& b : info["bootstrap"]) {
    cluster::Endpoint ep;
    cluster::parse_endpoint(b.get<std::string>(), ep);
    config.bootstrap.push_back(ep);
  }
  config.request_timeout = 2s;
  config.delivery_timeout = 10s;
  cluster::SyncClient client(config);
  ASSERT_EQ(client.create_topic("t", 3, 3).error, cluster::errc::none);
  for (int p = 0; p < 3; ++p) {
    cluster::TopicPartition tp{"t", cluster::PartitionIndex{p}};
    ASSERT_TRUE(client.wait_for_leader(
        tp, 10s, [](const cluster::PartitionMetadata& m) { return m.isr.size() == 3; }));
    ASSERT_TRUE(client.send(tp, {"x"}, cluster::Acks::all).acknowledged());
  }
  // A demotion (leadership moves off b1) and a kill of b2 (its partitions fail over).
  auto [demote_code, demote_out] =
      faultline(dir, {"admin", "demote", "1", "--reason", "operator", "--controller", controller,
                      "--bootstrap", bootstrap});
  ASSERT_EQ(demote_code, 0) << demote_out;
  auto run = run_dir.string();
  auto [kill_code, kill_out] = faultline(dir, {"fault", "inject", "--run", run, "kill", "b2"});
  ASSERT_EQ(kill_code, 0) << kill_out;
  EXPECT_TRUE(eventually([&] { return scalar(prom, "up{node=\"b2\"}") == 0; }, 15s))
      << "the killed broker still looks up";
  auto [heal_code, heal_out] = faultline(dir, {"fault", "heal", "--run", run, "--all"});
  ASSERT_EQ(heal_code, 0) << heal_out;
  // The restarted broker has the same address: the same target, now scraping the new process.
  EXPECT_TRUE(eventually([&] { return scalar(prom, "up{node=\"b2\"}") == 1; }, 20s))
      << "the restarted broker is not scraped";
  EXPECT_TRUE(eventually(
      [&] {
        return by_label(prom, "sum by (reason) (faultline_elections_total)", "reason")
                   .count("demotion") == 1;
      },
      10s))
      << "no demotion election scraped";

  // Every expression of the dashboard is valid PromQL, and every cluster series it reads has been
  // scraped. The harness's series come from `faultline run` (previous test); the probe's are
  // listed apart in grafana_dashboard.h and checked here only when the cluster runs a probe.
  for (const auto& expr : dashboard.exprs) {
    auto r = prom.query(expr);
    EXPECT_TRUE(r) << expr << ": " << (r ? "" : r.error());
  }
  for (const auto& s : dashboard.cluster_series())
    EXPECT_GT(scalar(prom, "count(last_over_time(" + s + "[10m]))"), 0)
        << s << " is on the dashboard but not in the scrape";
  if (targets["probe"] > 0) {
    // A probe runs: what it exports from its first round is scraped too (decisions only appear
    // once it has decided something, which a healthy cluster never makes it do).
    for (const std::string s : {"faultline_probe_up", "faultline_probe_latency_seconds_bucket"})
      EXPECT_TRUE(eventually([&] { return scalar(prom, "count(" + s + ")") > 0; }, 10s)) << s;
  }

  auto [down_code, down_out] = faultline(dir, {"cluster", "down", "--run", run});
  EXPECT_EQ(down_code, 0) << down_out;
  EXPECT_EQ(harness.wait_for(30s), 0) << harness.log();
  EXPECT_FALSE(prom.query("up")) << "prometheus outlived its cluster";
  EXPECT_TRUE(fs::exists(run_dir / "prometheus" / "data" / "wal"))
      << "the TSDB is kept in the run directory";
  // `cluster down` keeps the run directory (data, logs, the TSDB) for the user; a test removes its
  // own.
  std::error_code ec;
  fs::remove_all(run_dir, ec);
}

}  // namespace
}  // namespace faultline::chaos
