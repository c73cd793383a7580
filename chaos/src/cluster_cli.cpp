#include "faultline/chaos/cluster_cli.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "faultline/chaos/cluster_harness.h"
#include "faultline/chaos/controller_quorum.h"
#include "faultline/chaos/journal.h"
#include "faultline/chaos/prometheus_server.h"
#include "faultline/cluster/client/client.h"

namespace faultline::chaos {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::atomic<bool> g_stop{false};
void on_stop_signal(int) {
  g_stop = true;
}

std::optional<nlohmann::json> read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in)
    return std::nullopt;
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

// A zombie (killed, not yet reaped by the harness) counts as gone.
bool process_alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0)
    return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z';
}

// Exit codes per ARCHITECTURE.md §7: 0 clean stop, 3 missing capability, 4 harness failure.
int cluster_up(const ClusterShape& shape, bool with_prometheus) {
  std::random_device rd;
  std::string run_id = fmt::format("cluster-{:08x}", rd());
  ClusterHarness::UpError error;
  auto h = ClusterHarness::up(shape, run_id, error);
  if (!h) {
    fmt::print(stderr, "cluster up: {}\n", error.why);
    return error.exit_code;
  }
  std::unique_ptr<PrometheusServer> prometheus;  // declared after the harness: stopped before it
  if (with_prometheus) {
    std::string why;
    PrometheusOptions options;
    options.dir = h->run_dir() / "prometheus";
    prometheus =
        PrometheusServer::start(h->supervisor(), options, cluster_scrape_targets(*h, 0), why);
    if (!prometheus) {
      fmt::print(stderr, "cluster up: prometheus: {}\n", why);
      return fs::exists(PrometheusOptions{}.binary) ? 4 : 3;
    }
    fmt::print("cluster up: prometheus on {} (data in {})\n", prometheus->url(),
               prometheus->options().data_dir.string());
  }
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::string conn = fmt::format("--controller {} --bootstrap {}", h->controller_endpoint(),
                                 fmt::join(h->bootstrap(), ","));
  std::vector<std::string> kafka;
  for (const auto& ep : h->kafka_bootstrap())
    kafka.push_back(ep.str());
  fmt::print(
      "cluster up: run {} ({} brokers{}) in {}\n"
      "  faultline topic create t --partitions 3 --replication-factor 3 {}\n"
      "  faultline produce t hello {}\n"
      "  Kafka clients: bootstrap.servers={}  (e.g. kcat -b {} -L)\n"
      "  faultline fault inject --run {} kill b1\n"
      "  faultline cluster status   |   faultline cluster down   (or Ctrl-C here)\n",
      run_id, shape.brokers,
      shape.controllers > 1 ? fmt::format(", {} controllers", shape.controllers) : "",
      h->run_dir().string(), conn, conn, fmt::join(kafka, ","), kafka.empty() ? "-" : kafka.front(),
      h->run_dir().string());
  if (shape.probe) {
    const auto* pr = h->topology().find(ClusterHarness::kProbeNode);
    fmt::print("  probe: decisions in {}, metrics http://{}:9100/metrics (inside netns {})\n",
               h->probe_decisions().string(), pr && pr->ext_address ? pr->ext_address->str() : "-",
               pr ? pr->netns : "-");
  }
  std::cout.flush();
  std::error_code ec;
  fs::create_directories(h->run_dir() / "control", ec);
  // The harness's loop: carry out restart requests and keep processes.json current.
  while (!g_stop) {
    std::this_thread::sleep_for(100ms);
    for (const auto& entry : fs::directory_iterator(h->run_dir() / "control", ec)) {
      auto name = entry.path().filename().string();
      if (name.rfind("restart-", 0) != 0)
        continue;
      auto node = name.substr(8);
      auto e = h->supervisor().restart(node);
      spdlog::info("event=restart node={} result=\"{}\"", node, e ? e.message() : "ok");
      fs::remove(entry.path(), ec);
    }
    (void)h->write_processes();
    if (prometheus)
      (void)prometheus->set_targets(cluster_scrape_targets(*h, 0));
  }
  prometheus.reset();
  auto torn = h->down();
  fmt::print("cluster down: {}\n", torn ? torn.message() : "nothing left behind");
  return torn ? 4 : 0;
}

// Each controller's own view (role, the leader it knows, epoch, offsets), then what the active one
// knows of each voter's replication: how far behind its log it is, and since when it was heard.
void print_quorum(const QuorumLook& look) {
  fmt::print("  controller quorum: {}\n",
             look.active > 0 ? fmt::format("active {} at epoch {}",
                                           ClusterHarness::controller_node(look.active), look.epoch)
                             : std::string("no active controller"));
  for (size_t i = 0; i < look.answers.size(); ++i) {
    const std::string node = ClusterHarness::controller_node(static_cast<int>(i) + 1);
    const auto& a = look.answers[i];
    if (!a) {
      fmt::print("    {} unreachable\n", node);
      continue;
    }
    fmt::print("    {} {} leader={} epoch={} commit_offset={} last_offset={}\n", node, a->role,
               a->leader >= 0 ? ClusterHarness::controller_node(a->leader + 1) : "-", a->epoch,
               a->commit_offset, a->last_offset);
  }
  const auto* active = look.active_answer();
  if (active == nullptr)
    return;
  for (const auto& v : active->voters) {
    const std::string node = ClusterHarness::controller_node(v.id + 1);
    if (v.id == active->node_id)
      continue;
    fmt::print("    replication {}: match_offset={} lag={} last_contact={}\n", node, v.match_offset,
               v.match_offset >= 0 ? std::to_string(active->last_offset - v.match_offset) : "?",
               v.last_contact_ms >= 0 ? fmt::format("{} ms ago", v.last_contact_ms) : "never");
  }
}

int cluster_status(const fs::path& run) {
  auto info = read_json(run / "cluster.json");
  if (!info) {
    fmt::print(stderr, "cluster status: no cluster in {}\n", run.string());
    return 2;
  }
  auto pids = read_json(run / "processes.json").value_or(nlohmann::json::object());
  fmt::print("run {} (harness pid {}) in {}\n", info->value("run_id", ""),
             info->value("harness_pid", 0), run.string());
  for (const auto& n : info->at("nodes")) {
    std::string id = n.value("id", "");
    std::string pid = "-";
    if (pids.contains(id) && pids[id].is_number()) {
      pid_t p = pids[id].get<pid_t>();
      pid = fmt::format("{}{}", p, process_alive(p) ? "" : " (exited)");
    }
    fmt::print("  {:3} netns={} int={} ext={} pid={}\n", id, n.value("netns", ""),
               n.value("int", "-"), n.value("ext", "-"), pid);
  }
  cluster::ClientConfig config;
  cluster::parse_endpoints(info->value("controller", ""), config.controllers);
  print_quorum(QuorumClient(config.controllers).describe(1s));
  config.request_timeout = 2s;
  cluster::SyncClient client(config);
  if (auto md = client.controller_metadata()) {
    for (const auto& b : md->brokers) {
      fmt::print("  broker {}{}{}{}{}\n", b.id, b.fenced ? " fenced" : "",
                 b.demoted ? fmt::format(" demoted ({})", b.demotion_reason) : "",
                 b.storage_canary_us >= 0
                     ? fmt::format(" storage canary {:.1f} ms",
                                   static_cast<double>(b.storage_canary_us) / 1e3)
                     : "",
                 b.storage_canary_error.empty() ? "" : " storage error: " + b.storage_canary_error);
    }
    for (const auto& p : md->partitions) {
      std::vector<int32_t> isr;
      for (auto b : p.isr)
        isr.push_back(b.value());
      fmt::print("  {} leader={} leader_epoch={} isr=[{}]\n", p.tp, p.leader, p.leader_epoch,
                 fmt::join(isr, ","));
    }
  } else {
    fmt::print("  controller {} unreachable\n", info->value("controller", ""));
  }
  if (auto active = read_json(run / "faults-active.json")) {
    for (const auto& f : active->value("faults", nlohmann::json::array()))
      fmt::print("  fault {} {}\n", f.value("id", 0), f.value("spec", nlohmann::json{}).dump());
  }
  return 0;
}

int cluster_down(const fs::path& run) {
  auto info = read_json(run / "cluster.json");
  if (!info) {
    fmt::print(stderr, "cluster down: no cluster in {}\n", run.string());
    return 2;
  }
  pid_t harness = info->value("harness_pid", 0);
  if (!process_alive(harness)) {
    fmt::print(stderr, "cluster down: the harness (pid {}) is gone; run `faultline clean`\n",
               harness);
    return 4;
  }
  ::kill(harness, SIGTERM);
  for (int i = 0; i < 300 && process_alive(harness); ++i)
    std::this_thread::sleep_for(100ms);
  if (process_alive(harness)) {
    fmt::print(stderr, "cluster down: the harness (pid {}) did not stop\n", harness);
    return 4;
  }
  fmt::print("cluster down: run {} stopped\n", info->value("run_id", ""));
  return 0;
}

}  // namespace

std::optional<fs::path> latest_cluster_run() {
  std::error_code ec;
  std::optional<fs::path> best;
  fs::file_time_type newest{};
  for (const auto& entry : fs::directory_iterator(default_state_root(), ec)) {
    auto info = read_json(entry.path() / "cluster.json");
    if (!info || !process_alive(info->value("harness_pid", 0)))
      continue;
    auto t = fs::last_write_time(entry.path() / "cluster.json", ec);
    if (!best || t > newest) {
      best = entry.path();
      newest = t;
    }
  }
  return best;
}

std::optional<pid_t> RunDirProcessControl::pid(const NodeName& node) const {
  auto pids = read_json(run_dir_ / "processes.json");
  if (!pids || !pids->contains(node) || !(*pids)[node].is_number())
    return std::nullopt;
  pid_t p = (*pids)[node].get<pid_t>();
  if (!process_alive(p))
    return std::nullopt;
  return p;
}

std::error_code RunDirProcessControl::signal(const NodeName& node, int signo) {
  auto p = pid(node);
  if (!p)
    return std::make_error_code(std::errc::no_such_process);
  if (::kill(*p, signo) != 0)
    return {errno, std::generic_category()};
  return {};
}

std::error_code RunDirProcessControl::wait_exit(const NodeName& node,
                                                std::chrono::milliseconds timeout) {
  auto p = pid(node);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (p && process_alive(*p)) {
    if (std::chrono::steady_clock::now() > deadline)
      return std::make_error_code(std::errc::timed_out);
    std::this_thread::sleep_for(10ms);
  }
  return {};
}

std::error_code RunDirProcessControl::start(const NodeName& node) {
  std::error_code ec;
  fs::create_directories(run_dir_ / "control", ec);
  auto request = run_dir_ / "control" / ("restart-" + node);
  { std::ofstream(request) << "\n"; }
  // The harness picks requests up every 100 ms and removes the file once it restarted the node.
  for (int i = 0; i < 200 && fs::exists(request, ec); ++i)
    std::this_thread::sleep_for(50ms);
  if (fs::exists(request, ec)) {
    fs::remove(request, ec);
    return std::make_error_code(std::errc::timed_out);
  }
  return {};
}

void add_cluster_commands(CLI::App& app, int& exit_code) {
  auto* cluster = app.add_subcommand(
      "cluster", "bring the mini-cluster up in namespaces, inspect it, take it down");
  cluster->require_subcommand(1);
  auto o = std::make_shared<ClusterShape>();
  auto run = std::make_shared<std::string>();
  // CLI11 reads integers; the shape holds durations.
  struct Millis {
    int session_timeout = 3000, heartbeat_interval = 500, replica_lag_time_max = 5000;
    int probe_interval = 200, storage_canary_interval = -1;
    int controller_election_timeout = 1000;
  };
  auto ms = std::make_shared<Millis>();

  auto* up =
      cluster->add_subcommand("up", "build the namespaces and start the cluster (foreground)");
  up->add_option("--brokers", o->brokers, "number of brokers")->check(CLI::Range(1, 9));
  up->add_option("--controllers", o->controllers,
                 "controllers in the Raft quorum (c1..cN); brokers follow the active one")
      ->check(CLI::IsMember({1, 3, 5}))
      ->capture_default_str();
  up->add_option("--controller-election-timeout-ms", ms->controller_election_timeout,
                 "controller.quorum.election.timeout.ms (with --controllers 3 or 5)")
      ->check(CLI::Range(100, 60000))
      ->capture_default_str();
  up->add_option("--session-timeout-ms", ms->session_timeout, "broker.session.timeout.ms");
  up->add_option("--heartbeat-interval-ms", ms->heartbeat_interval);
  up->add_option("--min-insync-replicas", o->min_insync_replicas);
  up->add_option("--replica-lag-time-max-ms", ms->replica_lag_time_max);
  up->add_flag("--unclean-leader-election", o->unclean_leader_election);
  up->add_flag("--disks", o->disks, "brokers' data on loop-mounted images (for disk faults)");
  up->add_flag("--lazyfs", o->lazyfs,
               "brokers' data dirs on faultline-lazyfs (for power-loss, torn-write, disk-error, "
               "slow-fsync)");
  up->add_option("--flush-policy", o->flush_policy,
                 "brokers' log fsync: every-batch | interval:<ms> | never (default interval:1000)");
  up->add_flag("--probe", o->probe,
               "run faultline-probe in the probe namespace: it demotes brokers clients cannot "
               "reach or whose disk is slow, and promotes them when healthy (probes/README.md)");
  up->add_option("--probe-interval-ms", ms->probe_interval, "one probing round this often")
      ->check(CLI::Range(10, 60000))
      ->capture_default_str();
  up->add_option("--probe-arg", o->probe_args,
                 "one more faultline-probe argument, repeatable: --probe-arg=--failures-to-demote "
                 "--probe-arg=5");
  up->add_option("--storage-canary-interval-ms", ms->storage_canary_interval,
                 "brokers' storage canary (0: off; default 200 with --probe, else 1000)");
  auto with_prometheus = std::make_shared<bool>(false);
  up->add_flag(
      "--prometheus", *with_prometheus,
      "run Prometheus (/usr/bin/prometheus) scraping every process; data in <run>/prometheus");
  up->callback([o, ms, with_prometheus, &exit_code] {
    using std::chrono::milliseconds;
    o->session_timeout = milliseconds(ms->session_timeout);
    o->heartbeat_interval = milliseconds(ms->heartbeat_interval);
    o->replica_lag_time_max = milliseconds(ms->replica_lag_time_max);
    o->probe_interval = milliseconds(ms->probe_interval);
    o->controller_election_timeout = milliseconds(ms->controller_election_timeout);
    if (ms->storage_canary_interval >= 0)
      o->storage_canary_interval = milliseconds(ms->storage_canary_interval);
    exit_code = cluster_up(*o, *with_prometheus);
  });

  auto resolve = [run]() -> std::optional<fs::path> {
    if (!run->empty())
      return fs::path(*run);
    return latest_cluster_run();
  };
  auto* status = cluster->add_subcommand(
      "status", "nodes, addresses, pids, the controller quorum, leaders, active faults");
  status->add_option("--run", *run, "run directory (default: the newest live cluster)");
  status->callback([resolve, &exit_code] {
    auto dir = resolve();
    exit_code = dir ? cluster_status(*dir) : (fmt::print(stderr, "no live cluster\n"), 2);
  });
  auto* down = cluster->add_subcommand("down", "stop a cluster started by `cluster up`");
  down->add_option("--run", *run, "run directory (default: the newest live cluster)");
  down->callback([resolve, &exit_code] {
    auto dir = resolve();
    exit_code = dir ? cluster_down(*dir) : (fmt::print(stderr, "no live cluster\n"), 2);
  });
}

}  // namespace faultline::chaos
