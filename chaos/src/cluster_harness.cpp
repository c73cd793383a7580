#include "faultline/chaos/cluster_harness.h"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "faultline/chaos/binaries.h"
#include "faultline/chaos/controller_quorum.h"
#include "faultline/chaos/faults/adapters.h"
#include "faultline/chaos/faults/cli.h"
#include "faultline/cluster/kafka/metadata_client.h"

namespace faultline::chaos {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr uint16_t kControllerPort = 9090;
constexpr uint16_t kClientPort = 9092;
// The brokers' Kafka-protocol listener (librdkafka, kcat), next to faultline's own.
constexpr uint16_t kKafkaPort = 9094;
constexpr uint16_t kInternalPort = 9093;
constexpr uint16_t kMetricsPort = 9100;

fs::path binaries(const ClusterShape& s) {
  return s.binaries_dir.empty() ? binaries_dir() : s.binaries_dir;
}

std::error_code write_json(const fs::path& p, const nlohmann::json& j) {
  auto tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    if (!out)
      return std::make_error_code(std::errc::io_error);
  }
  std::error_code ec;
  fs::rename(tmp, p, ec);
  return ec;
}

// Every controller of the quorum as id@host:port (ids 0..N-1 for c1..cN), or host:port only.
std::string controller_list(const std::vector<NodeInfo>& nodes, bool with_ids) {
  std::string out;
  for (const auto& n : nodes) {
    if (n.role != NodeRole::controller)
      continue;
    out += fmt::format("{}{}{}:{}", out.empty() ? "" : ",",
                       with_ids ? fmt::format("{}@", n.index - 1) : "", n.int_address->str(),
                       kControllerPort);
  }
  return out;
}

std::vector<std::string> controller_argv(const NodeInfo& n, const std::vector<NodeInfo>& nodes,
                                         const fs::path& data, const ClusterShape& s) {
  std::vector<std::string> argv = {(binaries(s) / "faultline-controller").string(),
                                   "--data-dir",
                                   (data / n.id).string(),
                                   "--listen",
                                   fmt::format("{}:{}", n.int_address->str(), kControllerPort),
                                   "--metrics-port",
                                   std::to_string(kMetricsPort),
                                   "--session-timeout-ms",
                                   std::to_string(s.session_timeout.count()),
                                   "--min-insync-replicas",
                                   std::to_string(s.min_insync_replicas)};
  if (s.controllers > 1) {
    // Heartbeats well inside the election timeout, as KRaft's defaults (500 ms of 1000 ms) are not:
    // a loaded host must not depose a healthy leader.
    const auto heartbeat = std::max<std::chrono::milliseconds>(std::chrono::milliseconds(10),
                                                               s.controller_election_timeout / 10);
    argv.insert(argv.end(), {"--node-id", std::to_string(n.index - 1), "--quorum",
                             controller_list(nodes, true), "--quorum-election-timeout-ms",
                             std::to_string(s.controller_election_timeout.count()),
                             "--quorum-heartbeat-ms", std::to_string(heartbeat.count())});
  }
  if (s.metadata_snapshot_records > 0) {
    argv.push_back("--metadata-snapshot-records");
    argv.push_back(std::to_string(s.metadata_snapshot_records));
  }
  if (s.unclean_leader_election)
    argv.push_back("--unclean-leader-election");
  if (s.leader_imbalance_check_interval.count() > 0) {
    argv.push_back("--leader-imbalance-check-interval-s");
    argv.push_back(std::to_string(s.leader_imbalance_check_interval.count()));
  }
  return argv;
}

std::vector<std::string> broker_argv(const NodeInfo& n, const std::string& controllers,
                                     const fs::path& data, const ClusterShape& s) {
  std::vector<std::string> argv = {
      (binaries(s) / "faultline-broker").string(),
      "--id",
      std::to_string(n.index),
      "--data-dir",
      (data / n.id).string(),
      "--internal",
      fmt::format("{}:{}", n.int_address->str(), kInternalPort),
      "--client",
      fmt::format("{}:{}", n.ext_address->str(), kClientPort),
      "--kafka",
      fmt::format("{}:{}", n.ext_address->str(), kKafkaPort),
      "--controller",
      controllers,
      "--metrics-port",
      std::to_string(kMetricsPort),
      "--heartbeat-interval-ms",
      std::to_string(s.heartbeat_interval.count()),
      "--replica-lag-time-max-ms",
      std::to_string(s.replica_lag_time_max.count()),
      "--min-insync-replicas",
      std::to_string(s.min_insync_replicas),
      "--storage-canary-interval-ms",
      std::to_string(s.storage_canary_interval ? s.storage_canary_interval->count()
                     : s.probe                 ? 200
                                               : 1000)};
  if (!s.flush_policy.empty()) {
    argv.push_back("--flush-policy");
    argv.push_back(s.flush_policy);
  }
  return argv;
}

std::vector<std::string> probe_argv(const NodeInfo& probe, const std::vector<NodeInfo>& nodes,
                                    const std::string& controllers, const fs::path& decisions,
                                    const ClusterShape& s) {
  std::string brokers;
  for (const auto& n : nodes) {
    if (n.role != NodeRole::broker)
      continue;
    brokers += fmt::format("{}{}={}:{}", brokers.empty() ? "" : ",", n.index, n.ext_address->str(),
                           kClientPort);
  }
  std::vector<std::string> argv = {(binaries(s) / "faultline-probe").string(),
                                   "--brokers",
                                   brokers,
                                   "--controller",
                                   controllers,
                                   "--interval-ms",
                                   std::to_string(s.probe_interval.count()),
                                   "--metrics-host",
                                   probe.ext_address->str(),
                                   "--metrics-port",
                                   std::to_string(kMetricsPort),
                                   "--decisions",
                                   decisions.string()};
  argv.insert(argv.end(), s.probe_args.begin(), s.probe_args.end());
  return argv;
}

}  // namespace

std::unique_ptr<ClusterHarness> ClusterHarness::up(const ClusterShape& shape,
                                                   const std::string& run_id, UpError& error,
                                                   const fs::path& logs_dir) {
  std::unique_ptr<ClusterHarness> h(new ClusterHarness());
  h->run_id_ = run_id;
  std::error_code ec;
  h->journal_ = Journal::open(default_state_root(), run_id, run_prefix(run_id), ec);
  if (!h->journal_) {
    error = {4, fmt::format("cannot open the run journal under {}: {}",
                            default_state_root().string(), ec.message())};
    return nullptr;
  }
  h->run_dir_ = h->journal_->dir();
  TopologySpec spec;
  spec.brokers = shape.brokers;
  // A defined cluster (Kafka in KRaft combined mode, ...) brings its own quorum: one c1 node.
  spec.controllers = shape.definition ? 1 : shape.controllers;
  {
    // Another run may be on the default addresses: take a free slot (its bridges' root
    // addresses show which subnets are in use), under a lock until our bridges exist.
    AddressLock lock(default_state_root());
    auto plan = pick_free_plan(local_ipv4_addresses(ec));
    if (!plan) {
      error = {4, "no free 198.18.0.0/15 address slot: 256 runs are up on this host"};
      return nullptr;
    }
    spec.addresses = *plan;
    h->topology_ = Topology::create(spec, *h->journal_, ec);
  }
  if (!h->topology_) {
    error = {
        ec == std::errc::operation_not_permitted ? 3 : 4,
        fmt::format("building the namespaces failed: {} (see `faultline doctor`)", ec.message())};
    return nullptr;
  }
  h->remove_state_on_down_ = !logs_dir.empty();
  const fs::path logs = logs_dir.empty() ? h->run_dir_ / "logs" : logs_dir;
  h->supervisor_ = std::make_unique<Supervisor>(h->journal_.get(), logs);
  const fs::path data = h->run_dir_ / "data";
  h->recorder_ = std::make_unique<JournalRecorder>(*h->journal_);
  if (shape.disks) {
    if (detect_cgroup_io() == CgroupIo::none) {
      error = {3, "disks: this host has no cgroup I/O controller (see `faultline doctor`)"};
      h->down();
      return nullptr;
    }
    fs::create_directories(h->run_dir_ / "disks", ec);
    fs::create_directories(data, ec);
    for (const auto& n : h->topology_->nodes()) {
      if (n.role != NodeRole::broker)
        continue;
      auto disk = LoopDisk::create(h->run_dir_ / "disks" / (n.id + ".img"), data / n.id,
                                   256ull << 20, h->recorder_.get(), ec);
      if (!disk) {
        error = {ec == std::errc::operation_not_permitted ? 3 : 4,
                 fmt::format("disks: loop disk for {}: {}", n.id, ec.message())};
        h->down();
        return nullptr;
      }
      auto cgroup = IoCgroup::create(h->prefix(), n.id, h->recorder_.get(), ec);
      if (!cgroup) {
        error = {4, fmt::format("disks: I/O cgroup for {}: {}", n.id, ec.message())};
        h->disks_.push_back(std::move(*disk));
        h->down();
        return nullptr;
      }
      h->node_disks_[n.id] = NodeDisk{disk->major_minor(), cgroup->path(), {}};
      h->disks_.push_back(std::move(*disk));
      h->cgroups_.push_back(std::move(*cgroup));
    }
  }
  if (shape.lazyfs && !h->mount_lazyfs(shape, data, error)) {
    h->down();
    return nullptr;
  }

  StartNode start = [&](const NodeInfo& n, std::vector<std::string> argv,
                        const std::string& address, uint16_t port,
                        std::chrono::seconds ready_timeout) -> bool {
    ProcessSpec ps{n.id, std::move(argv), {}, n.netns, std::nullopt};
    if (auto it = h->node_disks_.find(n.id);
        it != h->node_disks_.end() && !it->second.cgroup.empty())
      ps.cgroup = it->second.cgroup;
    if (auto e = h->supervisor_->start(ps)) {
      error = {4, fmt::format("starting {} failed: {}", n.id, e.message())};
      return false;
    }
    h->processes_.push_back(n.id);
    if (auto e = h->supervisor_->wait_ready(n.id, {address, port}, ready_timeout)) {
      error = {4, fmt::format("{} not ready on {}:{}: {} (log: {})", n.id, address, port,
                              e.message(), h->supervisor_->stderr_path(n.id).string())};
      return false;
    }
    return true;
  };
  h->shape_ = shape;
  bool ok = shape.definition ? h->start_defined(shape, data, start, error)
                             : h->start_builtin(shape, data, start, error);
  if (ok && shape.probe) {
    // Started last: it would otherwise see brokers that are still starting as unreachable.
    const NodeInfo* probe = h->topology_->find(kProbeNode);
    h->probe_decisions_ = logs / "probe-decisions.jsonl";
    ok = probe != nullptr && start(*probe,
                                   probe_argv(*probe, h->topology_->nodes(),
                                              h->controller_endpoint_, h->probe_decisions_, shape),
                                   probe->ext_address->str(), kMetricsPort, 10s);
  }
  if (ok) {
    nlohmann::json nodes = nlohmann::json::array();
    for (const auto& n : h->topology_->nodes()) {
      nlohmann::json node{{"id", n.id}, {"netns", n.netns}};
      if (n.int_address)
        node["int"] = n.int_address->str();
      if (n.ext_address)
        node["ext"] = n.ext_address->str();
      nodes.push_back(node);
    }
    ok = !save_fault_topology(h->run_dir_, h->fault_topology()) && !h->write_processes() &&
         !write_json(h->run_dir_ / "cluster.json", {{"run_id", run_id},
                                                    {"prefix", h->prefix()},
                                                    {"harness_pid", ::getpid()},
                                                    {"controller", h->controller_endpoint_},
                                                    {"bootstrap", h->bootstrap_},
                                                    {"nodes", nodes}});
    if (!ok)
      error = {4, "cannot write the run's files in " + h->run_dir_.string()};
  }
  if (!ok) {
    h->down();
    return nullptr;
  }
  return h;
}

ClusterHarness::~ClusterHarness() {
  down();
}

std::error_code ClusterHarness::down() {
  if (down_)
    return {};
  down_ = true;
  // Heal what `fault inject` left active, then stop processes, then the network.
  if (auto topo = load_fault_topology(run_dir_)) {
    FaultCommand heal;
    heal.verb = FaultCommand::Verb::heal;
    heal.heal_all = true;
    std::ostringstream ignored;
    run_fault_command(heal, *topo, run_dir_, nullptr, ignored);
  }
  if (supervisor_)
    supervisor_->stop_all();
  // Unmount the lazyfs mounts (they may sit on the loop disks), then unmount and detach the
  // disks, then the cgroups (empty now), then the network.
  std::error_code first;
  for (auto& m : lazyfs_)
    if (auto e = m.remove(); e && !first)
      first = e;
  lazyfs_.clear();
  for (auto& d : disks_)
    if (auto e = d.remove(); e && !first)
      first = e;
  for (auto& g : cgroups_)
    if (auto e = g.remove(); e && !first)
      first = e;
  disks_.clear();
  cgroups_.clear();
  std::error_code ec;
  fs::remove(run_dir_ / "cluster.json", ec);
  auto torn = topology_ ? topology_->teardown() : std::error_code{};
  if (!torn)
    torn = first;
  if (!torn && remove_state_on_down_) {
    // Everything the journal lists is gone: the state directory is not needed for `clean`.
    supervisor_.reset();
    topology_.reset();
    recorder_.reset();
    journal_.reset();
    fs::remove_all(run_dir_, ec);
  }
  return torn;
}

bool ClusterHarness::mount_lazyfs(const ClusterShape& shape, const fs::path& data, UpError& error) {
  if (!fs::exists("/dev/fuse")) {
    error = {3, "lazyfs: this host has no /dev/fuse (see `faultline doctor`)"};
    return false;
  }
  const uint64_t seed = std::hash<std::string>{}(run_id_);
  for (const auto& n : topology_->nodes()) {
    if (n.role != NodeRole::broker)
      continue;
    // On a loop disk the lazyfs sits over the disk's own mount point (it opens its backing
    // directory before mounting over it).
    const fs::path mount_point = data / n.id;
    const fs::path backing = shape.disks ? mount_point : data / (n.id + ".backing");
    std::error_code ec;
    auto m = LazyFsMount::create(*supervisor_, *recorder_, binaries(shape) / "faultline-lazyfs",
                                 n.id + "-fs", backing, mount_point, seed ^ n.index, ec);
    if (!m) {
      error = {ec == std::errc::operation_not_permitted ? 3 : 4,
               fmt::format("lazyfs for {}: {} (log: {})", n.id, ec.message(),
                           supervisor_->stderr_path(n.id + "-fs").string())};
      return false;
    }
    node_disks_[n.id].lazyfs_control = m->control();
    lazyfs_.push_back(std::move(*m));
  }
  return true;
}

FaultTopology ClusterHarness::fault_topology() const {
  return chaos::fault_topology(prefix(), topology_->nodes(), node_disks_);
}

cluster::ClientConfig ClusterHarness::client_config() const {
  cluster::ClientConfig c;
  cluster::parse_endpoints(controller_endpoint_, c.controllers);
  for (const auto& b : bootstrap_) {
    cluster::Endpoint ep;
    if (cluster::parse_endpoint(b, ep))
      c.bootstrap.push_back(ep);
  }
  return c;
}

std::error_code ClusterHarness::write_processes() {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& name : processes_) {
    auto pid = supervisor_->is_running(name) ? supervisor_->pid(name) : std::nullopt;
    j[name] = pid ? nlohmann::json(*pid) : nlohmann::json(nullptr);
  }
  return write_json(run_dir_ / "processes.json", j);
}

}  // namespace faultline::chaos

namespace faultline::chaos {

bool ClusterHarness::start_builtin(const ClusterShape& shape, const fs::path& data,
                                   const StartNode& start, UpError& error) {
  const auto& nodes = topology_->nodes();
  controller_endpoint_ = controller_list(nodes, false);
  // Every controller first: the quorum elects a leader once a majority listens.
  bool ok = true;
  for (const auto& n : nodes) {
    if (!ok || n.role != NodeRole::controller)
      continue;
    ok = start(n, controller_argv(n, nodes, data, shape), n.int_address->str(), kControllerPort,
               10s);
  }
  for (const auto& n : nodes) {
    if (!ok || n.role != NodeRole::broker)
      continue;
    ok = start(n, broker_argv(n, controller_endpoint_, data, shape), n.ext_address->str(),
               kClientPort, 10s);
    bootstrap_.push_back(fmt::format("{}:{}", n.ext_address->str(), kClientPort));
    kafka_bootstrap_.push_back({n.ext_address->str(), kKafkaPort});
  }
  if (!ok)
    return false;
  const std::string logs = supervisor_->stderr_path(controller_node(1)).parent_path().string();
  auto deadline = std::chrono::steady_clock::now() + 20s;
  // Ready means usable: a controller of the quorum active ...
  cluster::ClientConfig config = client_config();
  QuorumClient quorum(config.controllers);
  QuorumLook look;
  while ((look = quorum.describe(500ms)).active == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  if (look.active == 0) {
    error = {4, fmt::format("no active controller among {} ({} answered; logs in {})",
                            controller_endpoint_, look.up.size(), logs)};
    return false;
  }
  // ... and every broker registered with it and unfenced.
  config.request_timeout = 1s;
  cluster::SyncClient admin(config);
  int unfenced = 0;
  while (unfenced < shape.brokers && std::chrono::steady_clock::now() < deadline) {
    unfenced = 0;
    if (auto md = admin.controller_metadata())
      for (const auto& b : md->brokers)
        unfenced += b.fenced ? 0 : 1;
    if (unfenced < shape.brokers)
      std::this_thread::sleep_for(20ms);
  }
  if (unfenced < shape.brokers) {
    error = {4, fmt::format("only {} of {} brokers registered (logs in {})", unfenced,
                            shape.brokers, logs)};
    return false;
  }
  return true;
}

namespace {

// The placeholders of a definition's templates for node `n` (definition_placeholders()).
std::map<std::string, std::string> node_values(const NodeInfo& n, const NodeInfo& controller,
                                               const std::vector<NodeInfo>& nodes,
                                               const fs::path& data, const ClusterShape& s) {
  const auto& d = *s.definition;
  std::string quorum, bootstrap;
  for (const auto& b : nodes) {
    if (b.role != NodeRole::broker)
      continue;
    quorum += fmt::format("{}{}@{}:{}", quorum.empty() ? "" : ",", b.index, b.int_address->str(),
                          d.quorum_port);
    bootstrap +=
        fmt::format("{}{}:{}", bootstrap.empty() ? "" : ",", b.ext_address->str(), d.kafka_port);
  }
  return {{"bin", binaries(s).string()},
          {"id", std::to_string(n.index)},
          {"node", n.id},
          {"int_addr", n.int_address ? n.int_address->str() : ""},
          {"ext_addr", n.ext_address ? n.ext_address->str() : ""},
          {"data_dir", (data / n.id).string()},
          {"controller_addr", controller.int_address->str()},
          {"controller_quorum", quorum},
          {"quorum_port", std::to_string(d.quorum_port)},
          {"brokers", std::to_string(s.brokers)},
          {"kafka_bootstrap", bootstrap},
          {"session_timeout_ms", std::to_string(s.session_timeout.count())},
          {"heartbeat_interval_ms", std::to_string(s.heartbeat_interval.count())},
          {"replica_lag_time_max_ms", std::to_string(s.replica_lag_time_max.count())},
          {"min_insync_replicas", std::to_string(s.min_insync_replicas)},
          {"unclean_leader_election", s.unclean_leader_election ? "true" : "false"}};
}

}  // namespace

bool ClusterHarness::start_defined(const ClusterShape& shape, const fs::path& data,
                                   const StartNode& start, UpError& error) {
  const ClusterDefinition& d = *shape.definition;
  const NodeInfo* controller = topology_->find("c1");
  const auto& nodes = topology_->nodes();
  if (d.controller) {
    auto values = node_values(*controller, *controller, nodes, data, shape);
    fs::create_directories(data / controller->id);
    const uint16_t port = d.controller->ready_port.value_or(0);
    controller_endpoint_ = fmt::format("{}:{}", controller->int_address->str(), port);
    if (!d.controller->setup.empty()) {
      auto why = run_to_end(controller->id + "-setup", expand(d.controller->setup, values),
                            controller->netns, d.ready_timeout);
      if (!why.empty())
        return error = {4, why}, false;
    }
    if (!start(*controller, expand(d.controller->command, values), controller->int_address->str(),
               port, d.ready_timeout))
      return false;
  }
  for (const auto& n : nodes) {
    if (n.role != NodeRole::broker)
      continue;
    auto values = node_values(n, *controller, nodes, data, shape);
    std::error_code ec;
    fs::create_directories(data / n.id, ec);
    if (!d.broker.setup.empty()) {
      auto why =
          run_to_end(n.id + "-setup", expand(d.broker.setup, values), n.netns, d.ready_timeout);
      if (!why.empty())
        return error = {4, why}, false;
    }
    kafka_bootstrap_.push_back({n.ext_address->str(), d.kafka_port});
    bootstrap_.push_back(kafka_bootstrap_.back().str());
    if (!start(n, expand(d.broker.command, values), n.ext_address->str(),
               d.broker.ready_port.value_or(d.kafka_port), d.ready_timeout))
      return false;
  }
  // Ready means usable: a Kafka Metadata answer lists every broker.
  cluster::KafkaMetadataClient metadata(kafka_bootstrap_, 1s);
  auto deadline = std::chrono::steady_clock::now() + d.ready_timeout;
  size_t listed = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto md = metadata.fetch(std::vector<std::string>{});
    listed = md ? md->brokers.size() : 0;
    if (listed >= static_cast<size_t>(shape.brokers))
      return true;
    std::this_thread::sleep_for(100ms);
  }
  error = {4, fmt::format("{}: only {} of {} brokers in the Kafka metadata after {} s (logs in {})",
                          d.file, listed, shape.brokers, d.ready_timeout.count(),
                          supervisor_->stderr_path("b1").parent_path().string())};
  return false;
}

std::string ClusterHarness::run_to_end(const std::string& name, std::vector<std::string> argv,
                                       std::optional<std::string> netns,
                                       std::chrono::seconds timeout) {
  ProcessSpec ps{name, std::move(argv), {}, std::move(netns), std::nullopt};
  if (auto e = supervisor_->start(ps))
    return fmt::format("starting {}: {}", name, e.message());
  if (auto e = supervisor_->wait_exit(name, timeout)) {
    (void)supervisor_->stop(name);
    return fmt::format("{} did not finish within {} s (log: {})", name, timeout.count(),
                       supervisor_->stderr_path(name).string());
  }
  auto status = supervisor_->exit_status(name);
  if (!status || !status->code || *status->code != 0)
    return fmt::format("{} failed (log: {})", name, supervisor_->stderr_path(name).string());
  return {};
}

std::string ClusterHarness::create_topic(const std::string& topic, int partitions,
                                         int replication_factor) {
  if (!shape_.definition) {
    cluster::SyncClient admin(client_config());
    auto r = admin.create_topic(topic, partitions, replication_factor);
    return r.error == cluster::errc::none ? std::string()
                                          : std::string(cluster::errc_name(r.error));
  }
  const NodeInfo* controller = topology_->find("c1");
  auto values =
      node_values(*controller, *controller, topology_->nodes(), run_dir_ / "data", shape_);
  values["topic"] = topic;
  values["partitions"] = std::to_string(partitions);
  values["replication_factor"] = std::to_string(replication_factor);
  return run_to_end("create-topic-" + topic, expand(shape_.definition->create_topic, values),
                    std::nullopt, 60s);
}

}  // namespace faultline::chaos
