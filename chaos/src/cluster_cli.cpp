#include "faultline/chaos/cluster_cli.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include "faultline/chaos/faults/adapters.h"
#include "faultline/chaos/faults/cli.h"
#include "faultline/chaos/journal.h"
#include "faultline/chaos/supervisor.h"
#include "faultline/chaos/topology.h"
#include "faultline/cluster/client/client.h"

namespace faultline::chaos {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr uint16_t kControllerPort = 9090;
constexpr uint16_t kClientPort = 9092;
constexpr uint16_t kInternalPort = 9093;
constexpr uint16_t kMetricsPort = 9100;

std::atomic<bool> g_stop{false};
void on_stop_signal(int) { g_stop = true; }

fs::path self_dir() {
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path();
}

std::optional<nlohmann::json> read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return std::nullopt;
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::error_code write_json(const fs::path& p, const nlohmann::json& j) {
  auto tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    if (!out) return std::make_error_code(std::errc::io_error);
  }
  std::error_code ec;
  fs::rename(tmp, p, ec);
  return ec;
}

// A zombie (killed, not yet reaped by the harness) counts as gone.
bool process_alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z';
}

struct UpOptions {
  int brokers = 3;
  int session_timeout_ms = 3000;
  int heartbeat_interval_ms = 500;
  int min_insync_replicas = 2;
  int replica_lag_time_max_ms = 5000;
  bool unclean = false;
};

struct Harness {
  std::unique_ptr<Journal> journal;
  std::unique_ptr<Topology> topology;
  std::unique_ptr<Supervisor> supervisor;
  fs::path run_dir;
  std::vector<std::string> processes;  // supervisor names, in start order

  std::error_code write_processes() {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& name : processes) {
      auto pid = supervisor->is_running(name) ? supervisor->pid(name) : std::nullopt;
      j[name] = pid ? nlohmann::json(*pid) : nlohmann::json(nullptr);
    }
    return write_json(run_dir / "processes.json", j);
  }
};

std::vector<std::string> controller_argv(const NodeInfo& n, const fs::path& data,
                                         const UpOptions& o) {
  std::vector<std::string> argv = {
      (self_dir() / "faultline-controller").string(),
      "--data-dir", (data / n.id).string(),
      "--listen", fmt::format("{}:{}", n.int_address->str(), kControllerPort),
      "--metrics-port", std::to_string(kMetricsPort),
      "--session-timeout-ms", std::to_string(o.session_timeout_ms),
      "--min-insync-replicas", std::to_string(o.min_insync_replicas)};
  if (o.unclean) argv.push_back("--unclean-leader-election");
  return argv;
}

std::vector<std::string> broker_argv(const NodeInfo& n, const NodeInfo& controller,
                                     const fs::path& data, const UpOptions& o) {
  return {(self_dir() / "faultline-broker").string(),
          "--id", std::to_string(n.index),
          "--data-dir", (data / n.id).string(),
          "--internal", fmt::format("{}:{}", n.int_address->str(), kInternalPort),
          "--client", fmt::format("{}:{}", n.ext_address->str(), kClientPort),
          "--controller", fmt::format("{}:{}", controller.int_address->str(), kControllerPort),
          "--metrics-port", std::to_string(kMetricsPort),
          "--heartbeat-interval-ms", std::to_string(o.heartbeat_interval_ms),
          "--replica-lag-time-max-ms", std::to_string(o.replica_lag_time_max_ms),
          "--min-insync-replicas", std::to_string(o.min_insync_replicas)};
}

// Exit codes per DESIGN.md §7: 0 clean stop, 3 missing capability, 4 harness failure.
int cluster_up(const UpOptions& o) {
  std::random_device rd;
  std::string run_id = fmt::format("cluster-{:08x}", rd());
  std::string prefix = run_prefix(run_id);
  std::error_code ec;
  Harness h;
  h.journal = Journal::open(default_state_root(), run_id, prefix, ec);
  if (!h.journal) {
    fmt::print(stderr, "cluster up: cannot open the run journal under {}: {}\n",
               default_state_root().string(), ec.message());
    return 4;
  }
  h.run_dir = h.journal->dir();
  TopologySpec spec;
  spec.brokers = o.brokers;
  h.topology = Topology::create(spec, *h.journal, ec);
  if (!h.topology) {
    fmt::print(stderr, "cluster up: building the namespaces failed: {} (see `faultline doctor`)\n",
               ec.message());
    return ec == std::errc::operation_not_permitted ? 3 : 4;
  }
  h.supervisor = std::make_unique<Supervisor>(h.journal.get(), h.run_dir / "logs");
  const fs::path data = h.run_dir / "data";
  const NodeInfo* controller = h.topology->find("c1");
  nlohmann::json nodes = nlohmann::json::array();
  std::vector<std::string> bootstrap;

  auto start = [&](const NodeInfo& n, std::vector<std::string> argv, const std::string& address,
                   uint16_t port) -> bool {
    ProcessSpec ps{n.id, std::move(argv), {}, n.netns, std::nullopt};
    if (auto e = h.supervisor->start(ps)) {
      fmt::print(stderr, "cluster up: starting {} failed: {}\n", n.id, e.message());
      return false;
    }
    h.processes.push_back(n.id);
    if (auto e = h.supervisor->wait_ready(n.id, {address, port}, 10s)) {
      fmt::print(stderr, "cluster up: {} not ready on {}:{}: {} (log: {})\n", n.id, address, port,
                 e.message(), h.supervisor->stderr_path(n.id).string());
      return false;
    }
    return true;
  };
  bool ok = start(*controller, controller_argv(*controller, data, o),
                  controller->int_address->str(), kControllerPort);
  for (const auto& n : h.topology->nodes()) {
    nlohmann::json node{{"id", n.id}, {"netns", n.netns}};
    if (n.int_address) node["int"] = n.int_address->str();
    if (n.ext_address) node["ext"] = n.ext_address->str();
    nodes.push_back(node);
    if (!ok || n.role != NodeRole::broker) continue;
    ok = start(n, broker_argv(n, *controller, data, o), n.ext_address->str(), kClientPort);
    bootstrap.push_back(fmt::format("{}:{}", n.ext_address->str(), kClientPort));
  }
  std::string controller_ep = fmt::format("{}:{}", controller->int_address->str(), kControllerPort);
  if (ok) {
    // Ready means usable: every broker registered with the controller and unfenced.
    cluster::ClientConfig config;
    cluster::parse_endpoint(controller_ep, config.controller);
    config.request_timeout = 1s;
    cluster::SyncClient admin(config);
    auto deadline = std::chrono::steady_clock::now() + 20s;
    int unfenced = 0;
    while (unfenced < o.brokers && std::chrono::steady_clock::now() < deadline) {
      unfenced = 0;
      if (auto md = admin.controller_metadata())
        for (const auto& b : md->brokers) unfenced += b.fenced ? 0 : 1;
      if (unfenced < o.brokers) std::this_thread::sleep_for(20ms);
    }
    if (unfenced < o.brokers) {
      fmt::print(stderr, "cluster up: only {} of {} brokers registered (logs in {})\n", unfenced,
                 o.brokers, (h.run_dir / "logs").string());
      ok = false;
    }
  }
  if (ok) {
    ok = !save_fault_topology(h.run_dir, fault_topology(prefix, h.topology->nodes())) &&
         !h.write_processes() &&
         !write_json(h.run_dir / "cluster.json",
                     {{"run_id", run_id},
                      {"prefix", prefix},
                      {"harness_pid", ::getpid()},
                      {"controller", controller_ep},
                      {"bootstrap", bootstrap},
                      {"nodes", nodes}});
  }
  if (ok) {
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    std::string conn =
        fmt::format("--controller {} --bootstrap {}", controller_ep, fmt::join(bootstrap, ","));
    fmt::print(
        "cluster up: run {} ({} brokers) in {}\n"
        "  faultline topic create t --partitions 3 --replication-factor 3 {}\n"
        "  faultline produce t hello {}\n"
        "  faultline fault inject --run {} kill b1\n"
        "  faultline cluster status   |   faultline cluster down   (or Ctrl-C here)\n",
        run_id, o.brokers, h.run_dir.string(), conn, conn, h.run_dir.string());
    std::cout.flush();
    fs::create_directories(h.run_dir / "control", ec);
    // The harness's loop: carry out restart requests and keep processes.json current.
    while (!g_stop) {
      std::this_thread::sleep_for(100ms);
      for (const auto& entry : fs::directory_iterator(h.run_dir / "control", ec)) {
        auto name = entry.path().filename().string();
        if (name.rfind("restart-", 0) != 0) continue;
        auto node = name.substr(8);
        auto e = h.supervisor->restart(node);
        spdlog::info("event=restart node={} result=\"{}\"", node, e ? e.message() : "ok");
        fs::remove(entry.path(), ec);
      }
      (void)h.write_processes();
    }
  }
  // Heal what `fault inject` left active, then stop processes, then the network.
  if (auto topo = load_fault_topology(h.run_dir)) {
    FaultCommand heal;
    heal.verb = FaultCommand::Verb::heal;
    heal.heal_all = true;
    std::ostringstream ignored;
    run_fault_command(heal, *topo, h.run_dir, nullptr, ignored);
  }
  h.supervisor->stop_all();
  h.processes.clear();
  auto torn = h.topology->teardown();
  fs::remove(h.run_dir / "cluster.json", ec);
  fmt::print("cluster {}: {}\n", ok ? "down" : "up failed", torn ? torn.message() : "nothing left behind");
  return ok ? (torn ? 4 : 0) : 4;
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
  cluster::parse_endpoint(info->value("controller", ""), config.controller);
  config.request_timeout = 2s;
  cluster::SyncClient client(config);
  if (auto md = client.controller_metadata()) {
    for (const auto& p : md->partitions) {
      std::vector<int32_t> isr;
      for (auto b : p.isr) isr.push_back(b.value());
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
  for (int i = 0; i < 300 && process_alive(harness); ++i) std::this_thread::sleep_for(100ms);
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
    if (!info || !process_alive(info->value("harness_pid", 0))) continue;
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
  if (!pids || !pids->contains(node) || !(*pids)[node].is_number()) return std::nullopt;
  pid_t p = (*pids)[node].get<pid_t>();
  if (!process_alive(p)) return std::nullopt;
  return p;
}

std::error_code RunDirProcessControl::signal(const NodeName& node, int signo) {
  auto p = pid(node);
  if (!p) return std::make_error_code(std::errc::no_such_process);
  if (::kill(*p, signo) != 0) return {errno, std::generic_category()};
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
  for (int i = 0; i < 200 && fs::exists(request, ec); ++i) std::this_thread::sleep_for(50ms);
  if (fs::exists(request, ec)) {
    fs::remove(request, ec);
    return std::make_error_code(std::errc::timed_out);
  }
  return {};
}

void add_cluster_commands(CLI::App& app, int& exit_code) {
  auto* cluster = app.add_subcommand("cluster", "bring the mini-cluster up in namespaces, inspect it, take it down");
  cluster->require_subcommand(1);
  auto o = std::make_shared<UpOptions>();
  auto run = std::make_shared<std::string>();

  auto* up = cluster->add_subcommand("up", "build the namespaces and start the cluster (foreground)");
  up->add_option("--brokers", o->brokers, "number of brokers")->check(CLI::Range(1, 9));
  up->add_option("--session-timeout-ms", o->session_timeout_ms, "broker.session.timeout.ms");
  up->add_option("--heartbeat-interval-ms", o->heartbeat_interval_ms);
  up->add_option("--min-insync-replicas", o->min_insync_replicas);
  up->add_option("--replica-lag-time-max-ms", o->replica_lag_time_max_ms);
  up->add_flag("--unclean-leader-election", o->unclean);
  up->callback([o, &exit_code] { exit_code = cluster_up(*o); });

  auto resolve = [run]() -> std::optional<fs::path> {
    if (!run->empty()) return fs::path(*run);
    return latest_cluster_run();
  };
  auto* status = cluster->add_subcommand("status", "nodes, addresses, pids, leaders, active faults");
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
