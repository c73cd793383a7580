// A real mini-cluster on loopback for integration tests: one faultline-controller (or a quorum of
// `controllers` voters, controller_quorum.h) and N faultline-broker processes, each with fixed
// ports so a killed process restarts where clients expect it. Every process is killed and reaped,
// and the data directory removed, on destruction.
// With `lazyfs` (root, /dev/fuse) each broker's data directory is a faultline-lazyfs mount, as in
// a `faultline run` with `[cluster] lazyfs = true`; it is unmounted on destruction.
#pragma once

#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>

#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "child_process.h"
#include "controller_quorum.h"
#include "faultline/cluster/client/client.h"
#include "local_ports.h"

namespace faultline::testing {

struct LocalClusterOptions {
  int brokers = 3;
  int min_insync_replicas = 2;
  int session_timeout_ms = 2000;
  int heartbeat_interval_ms = 200;
  int replica_lag_time_max_ms = 2000;
  bool unclean_leader_election = false;
  bool lazyfs = false;
  std::string flush_policy;  // the broker's --flush-policy; empty: its default
  // 1: one controller, as before the quorum existed; 3 or 5: a Raft quorum (voters 0..N-1 with the
  // controller's default election timeout and heartbeat), and brokers and clients follow the
  // active one.
  int controllers = 1;
  int metadata_snapshot_records = 0;  // --metadata-snapshot-records; 0: the controller's default
  int max_open_log_files = 0;         // the brokers' --max-open-log-files; 0: their default
  bool metrics = false;               // each broker serves /metrics (metrics_port(id))
};

class LocalCluster {
 public:
  explicit LocalCluster(LocalClusterOptions options = {})
      : options_(options), dir_("faultline-cluster") {
    if (options_.controllers > 1) {
      quorum_.emplace(
          dir_.path(),
          ControllerQuorumOptions{options_.controllers, 1000, 100, options_.session_timeout_ms,
                                  options_.min_insync_replicas, options_.unclean_leader_election,
                                  options_.metadata_snapshot_records});
    } else {
      controller_port_ = free_port();
      start_controller();
    }
    for (int id = 1; id <= options_.brokers; ++id) {
      client_ports_[id] = free_port();
      internal_ports_[id] = free_port();
      kafka_ports_[id] = free_port();
      if (options_.metrics)
        metrics_ports_[id] = free_port();
    }
    for (int id = 1; id <= options_.brokers; ++id) {
      if (options_.lazyfs)
        mount_lazyfs(id);
      start_broker(id);
    }
    if (!wait_until_brokers_unfenced(std::chrono::seconds(20))) {
      throw std::runtime_error("the cluster did not come up:\n" + logs());
    }
  }

  ~LocalCluster() {
    brokers_.clear();  // nothing may hold a file on a mount that goes away
    for (const auto& [id, fs] : filesystems_)
      ::umount2(broker_dir(id).c_str(), MNT_DETACH);
  }
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // Waits until the controller answers and lists every broker registered and unfenced.
  bool wait_until_brokers_unfenced(std::chrono::milliseconds timeout) {
    cluster::SyncClient admin(client_config());
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto md = admin.controller_metadata()) {
        int unfenced = 0;
        for (const auto& b : md->brokers)
          unfenced += b.fenced ? 0 : 1;
        if (unfenced == options_.brokers)
          return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // (Re)starts controller `i` (0 when there is one controller).
  void start_controller(int i = 0) {
    if (quorum_) {
      quorum_->start(i);
      return;
    }
    std::vector<std::string> argv = {(binary_dir() / "faultline-controller").string(),
                                     "--data-dir",
                                     (dir_.path() / "controller").string(),
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(controller_port_),
                                     "--session-timeout-ms",
                                     std::to_string(options_.session_timeout_ms),
                                     "--min-insync-replicas",
                                     std::to_string(options_.min_insync_replicas)};
    if (options_.unclean_leader_election)
      argv.push_back("--unclean-leader-election");
    if (options_.metadata_snapshot_records > 0) {
      argv.push_back("--metadata-snapshot-records");
      argv.push_back(std::to_string(options_.metadata_snapshot_records));
    }
    controller_ = ChildProcess(argv, dir_.path() / "controller.log");
  }
  // Every controller, as brokers and clients take them.
  std::vector<cluster::Endpoint> controller_endpoints() const {
    if (quorum_)
      return quorum_->endpoint_list();
    return {{"127.0.0.1", controller_port_}};
  }

  std::filesystem::path broker_dir(int id) const {
    return dir_.path() / ("broker-" + std::to_string(id));
  }

  static bool mounted(const std::filesystem::path& at) {
    std::ifstream mounts("/proc/self/mounts");
    std::string device, point, rest;
    while (mounts >> device >> point && std::getline(mounts, rest))
      if (point == at.string())
        return true;
    return false;
  }

  void mount_lazyfs(int id) {
    const auto backing = dir_.path() / ("broker-" + std::to_string(id) + ".backing");
    std::filesystem::create_directories(backing);
    std::filesystem::create_directories(broker_dir(id));
    filesystems_[id] = ChildProcess({(binary_dir() / "faultline-lazyfs").string(), "--backing",
                                     backing.string(), "--mount", broker_dir(id).string()},
                                    dir_.path() / ("lazyfs-" + std::to_string(id) + ".log"));
    for (int i = 0; i < 250 && !mounted(broker_dir(id)); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!mounted(broker_dir(id)))
      throw std::runtime_error("faultline-lazyfs did not mount " + broker_dir(id).string() + ":\n" +
                               filesystems_[id].log());
  }

  void start_broker(int id) {
    std::vector<std::string> argv = {
        (binary_dir() / "faultline-broker").string(),
        "--id",
        std::to_string(id),
        "--data-dir",
        broker_dir(id).string(),
        "--internal",
        "127.0.0.1:" + std::to_string(internal_ports_[id]),
        "--client",
        "127.0.0.1:" + std::to_string(client_ports_[id]),
        "--kafka",
        "127.0.0.1:" + std::to_string(kafka_ports_[id]),
        "--controller",
        quorum_ ? quorum_->endpoints() : "127.0.0.1:" + std::to_string(controller_port_),
        "--heartbeat-interval-ms",
        std::to_string(options_.heartbeat_interval_ms),
        "--replica-lag-time-max-ms",
        std::to_string(options_.replica_lag_time_max_ms),
        "--min-insync-replicas",
        std::to_string(options_.min_insync_replicas)};
    if (!options_.flush_policy.empty()) {
      argv.push_back("--flush-policy");
      argv.push_back(options_.flush_policy);
    }
    if (options_.max_open_log_files > 0) {
      argv.push_back("--max-open-log-files");
      argv.push_back(std::to_string(options_.max_open_log_files));
    }
    if (options_.metrics) {
      argv.push_back("--metrics-port");
      argv.push_back(std::to_string(metrics_ports_[id]));
    }
    brokers_[id] = ChildProcess(argv, dir_.path() / ("broker-" + std::to_string(id) + ".log"));
  }

  ChildProcess& broker(int id) { return brokers_.at(id); }
  cluster::Endpoint client_endpoint(int id) const { return {"127.0.0.1", client_ports_.at(id)}; }
  // The broker's Prometheus port on 127.0.0.1 (options.metrics).
  uint16_t metrics_port(int id) const { return metrics_ports_.at(id); }
  ChildProcess& controller(int i = 0) { return quorum_ ? quorum_->process(i) : controller_; }
  // The brokers' Kafka-protocol listeners as librdkafka's bootstrap.servers ("host:port,...").
  std::string kafka_bootstrap() const {
    std::string out;
    for (const auto& [id, port] : kafka_ports_)
      out += (out.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(port);
    return out;
  }

  cluster::ClientConfig client_config() const {
    cluster::ClientConfig c;
    for (const auto& [id, port] : client_ports_)
      c.bootstrap.push_back({"127.0.0.1", port});
    c.controllers = controller_endpoints();
    c.request_timeout = std::chrono::milliseconds(3000);
    c.delivery_timeout = std::chrono::milliseconds(15000);
    c.retry_backoff = std::chrono::milliseconds(50);
    return c;
  }

  // Every process's log, for a failing test's output.
  std::string logs() const {
    std::string out;
    if (!quorum_)
      out = "--- controller\n" + controller_.log();
    for (int i = 0; quorum_ && i < quorum_->size(); ++i)
      out += "--- controller " + std::to_string(i) + "\n" + quorum_->process(i).log();
    for (const auto& [id, b] : brokers_) {
      out += "--- broker " + std::to_string(id) + "\n" + b.log();
    }
    return out;
  }

  const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  LocalClusterOptions options_;
  TempDir dir_;
  uint16_t controller_port_ = 0;  // one controller
  std::map<int, uint16_t> client_ports_;
  std::map<int, uint16_t> internal_ports_;
  std::map<int, uint16_t> kafka_ports_;
  std::map<int, uint16_t> metrics_ports_;
  ChildProcess controller_;
  std::optional<ControllerQuorum> quorum_;   // controllers > 1
  std::map<int, ChildProcess> filesystems_;  // before brokers_: destroyed after them
  std::map<int, ChildProcess> brokers_;
};

}  // namespace faultline::testing
