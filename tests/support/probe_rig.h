// A cluster in namespaces with (or without) faultline-probe, a fault injector and the client-side
// measurements the probe tests and the failover benchmark share: who leads what, who is demoted,
// when partitions become writable elsewhere, the probe's decisions file and metrics.
//
// Threading: construct and inject from one thread (the harness's children die with the thread
// that started them); Producers run their own threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "faultline/chaos/cluster_harness.h"
#include "faultline/chaos/faults/adapters.h"
#include "faultline/chaos/faults/injector.h"
#include "faultline/cluster/client/client.h"
#include "scrape.h"

namespace faultline::testing {

class ProbeRig {
 public:
  ProbeRig(const chaos::ClusterShape& shape, const std::string& run_id,
           const std::filesystem::path& logs_dir, int partitions)
      : partitions_(partitions) {
    chaos::ClusterHarness::UpError error;
    harness_ = chaos::ClusterHarness::up(shape, run_id, error, logs_dir);
    if (!harness_)
      throw std::runtime_error("cluster up failed: " + error.why);
    topology_ = harness_->fault_topology();
    recorder_ = std::make_unique<chaos::JournalRecorder>(harness_->journal());
    processes_ = std::make_unique<chaos::SupervisorProcessControl>(harness_->supervisor());
    fault_log_ = std::make_unique<chaos::FaultLog>(logs_dir / "faults.jsonl");
    injector_ = std::make_unique<chaos::FaultInjector>(
        chaos::FaultContext{&topology_, recorder_.get(), processes_.get(),
                            shape.binaries_dir / "faultline-shaper", logs_dir, 1},
        fault_log_.get());
    cluster::ClientConfig config = harness_->client_config();
    config.request_timeout = std::chrono::milliseconds(1000);
    admin_ = std::make_unique<cluster::SyncClient>(config);
    if (admin_->create_topic(kTopic, partitions, std::min(3, shape.brokers)).error !=
        cluster::errc::none) {
      throw std::runtime_error("creating the topic failed");
    }
    for (int p = 0; p < partitions; ++p) {
      auto full = admin_->wait_for_leader(tp(p), std::chrono::seconds(20),
                                          [&](const cluster::PartitionMetadata& m) {
                                            return int(m.isr.size()) == std::min(3, shape.brokers);
                                          });
      if (!full)
        throw std::runtime_error("partition " + std::to_string(p) + " never got its ISR");
    }
  }
  ~ProbeRig() {
    admin_.reset();
    if (injector_)
      injector_->heal_all(false);
    if (harness_)
      harness_->down();
  }

  static constexpr const char* kTopic = "probed";
  static cluster::TopicPartition tp(int p) { return {kTopic, cluster::PartitionIndex{p}}; }
  int partitions() const { return partitions_; }
  chaos::ClusterHarness& harness() { return *harness_; }

  // The controller's view (the harness reaches the controller on the cluster network).
  std::optional<cluster::MetadataResponse> metadata() { return admin_->controller_metadata(); }
  cluster::BrokerId leader_of(int partition) {
    if (auto md = metadata())
      for (const auto& p : md->partitions)
        if (p.tp == tp(partition))
          return p.leader;
    return cluster::kNoBroker;
  }
  std::vector<int> led_by(cluster::BrokerId b) {
    std::vector<int> out;
    if (auto md = metadata())
      for (const auto& p : md->partitions)
        if (p.leader == b)
          out.push_back(p.tp.partition.value());
    return out;
  }
  // Partitions whose preferred (first) replica is `b`.
  std::vector<int> preferred_by(cluster::BrokerId b) {
    std::vector<int> out;
    if (auto md = metadata())
      for (const auto& p : md->partitions)
        if (!p.replicas.empty() && *p.replicas.begin() == b)
          out.push_back(p.tp.partition.value());
    return out;
  }
  // nullopt when the controller did not answer.
  std::optional<bool> demoted(cluster::BrokerId b) {
    auto md = metadata();
    if (!md)
      return std::nullopt;
    for (const auto& m : md->brokers)
      if (m.id == b)
        return m.demoted;
    return false;
  }
  std::vector<cluster::BrokerId> demoted_brokers() {
    std::vector<cluster::BrokerId> out;
    if (auto md = metadata())
      for (const auto& m : md->brokers)
        if (m.demoted)
          out.push_back(m.id);
    return out;
  }

  chaos::FaultInjector::Outcome inject(chaos::FaultSpec spec) { return injector_->inject(spec); }
  chaos::FaultInjector::Outcome cut_link(const std::string& node, const std::string& iface) {
    return inject({chaos::FaultKind::cut_link, {node}, chaos::LinkParams{iface}});
  }
  chaos::FaultInjector::Outcome heal(chaos::FaultId id) { return injector_->heal(id); }

  // The probe's decisions file, one JSON object per line ("type": decision, held, ...).
  std::vector<nlohmann::json> decisions() const {
    std::vector<nlohmann::json> out;
    std::ifstream in(harness_->probe_decisions());
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded())
        out.push_back(std::move(j));
    }
    return out;
  }
  // Decisions (carried out by the controller) for `broker` with `action`.
  std::vector<nlohmann::json> decisions(const std::string& action, cluster::BrokerId broker) const {
    std::vector<nlohmann::json> out;
    for (auto& d : decisions())
      if (d.value("type", "") == "decision" && d.value("action", "") == action &&
          d.value("broker", -1) == broker.value() && d.value("controller", "") == "ok")
        out.push_back(d);
    return out;
  }
  std::string probe_log() const {
    std::ifstream in(harness_->supervisor().stderr_path(chaos::ClusterHarness::kProbeNode));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string probe_metrics() const {
    const auto* pr = harness_->topology().find(chaos::ClusterHarness::kProbeNode);
    return pr ? http_get(pr->ext_address->str(), 9100, "/metrics") : std::string{};
  }
  std::optional<pid_t> probe_pid() const {
    return harness_->supervisor().pid(chaos::ClusterHarness::kProbeNode);
  }

  // A client that learns leaders from the controller, so it writes to a partition's new leader
  // as soon as the cluster has one: what it measures is the cluster and the probe, not a client's
  // metadata refresh policy.
  cluster::ClientConfig fast_client_config() const {
    cluster::ClientConfig c = harness_->client_config();
    c.request_timeout = std::chrono::milliseconds(300);
    c.delivery_timeout = std::chrono::milliseconds(300);
    c.retry_backoff = std::chrono::milliseconds(10);
    return c;
  }

  // From now until each of `partitions` acknowledges an acks=all write led by a broker other than
  // `away_from`: the time of that first acknowledgement (missing when `timeout` passed first).
  std::map<int, Clock::time_point> wait_writable_elsewhere(const std::vector<int>& partitions,
                                                           cluster::BrokerId away_from,
                                                           Clock::duration timeout) {
    cluster::SyncClient client(fast_client_config());
    std::map<int, Clock::time_point> writable;
    const auto deadline = Clock::now() + timeout;
    int n = 0;
    while (writable.size() < partitions.size() && Clock::now() < deadline) {
      auto md = client.controller_metadata();  // also updates the client's leader cache
      for (int p : partitions) {
        if (writable.contains(p) || !md)
          continue;
        auto it = std::find_if(md->partitions.begin(), md->partitions.end(),
                               [&](const auto& m) { return m.tp == tp(p); });
        if (it == md->partitions.end() || it->leader == away_from ||
            it->leader == cluster::kNoBroker)
          continue;
        auto r = client.send(tp(p), {"writable-check-" + std::to_string(n++)}, cluster::Acks::all);
        if (r.acknowledged() && r.leader != away_from)
          writable[p] = Clock::now();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return writable;
  }

 private:
  int partitions_;
  std::unique_ptr<chaos::ClusterHarness> harness_;
  chaos::FaultTopology topology_;
  std::unique_ptr<chaos::JournalRecorder> recorder_;
  std::unique_ptr<chaos::SupervisorProcessControl> processes_;
  std::unique_ptr<chaos::FaultLog> fault_log_;
  std::unique_ptr<chaos::FaultInjector> injector_;
  std::unique_ptr<cluster::SyncClient> admin_;
};

// Writers with acks=all, one thread per partition (so a send stuck on one partition's leader
// never holds up another's), recording each acknowledged value (unique) with its offset and time.
// Clients as an application would configure them (1 s request timeout, metadata refreshed after
// a timeout): the gaps they see are what users see.
class Producers {
 public:
  struct Ack {
    int partition;
    std::string value;
    int64_t offset;
    Clock::time_point at;
  };

  Producers(cluster::ClientConfig config, int partitions) {
    config.request_timeout = std::chrono::milliseconds(1000);
    config.delivery_timeout = std::chrono::milliseconds(3000);
    config.retry_backoff = std::chrono::milliseconds(50);
    for (int p = 0; p < partitions; ++p) {
      threads_.emplace_back([this, config, p] {
        cluster::SyncClient client(config);
        for (int64_t i = 0; !stop_; ++i) {
          std::string value = "w" + std::to_string(p) + "-" + std::to_string(i);
          auto r = client.send(ProbeRig::tp(p), {value}, cluster::Acks::all);
          if (r.acknowledged()) {
            std::lock_guard lock(mu_);
            acks_.push_back({p, value, r.base_offset.value(), Clock::now()});
          } else {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
          }
        }
      });
    }
  }
  ~Producers() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
  }
  std::vector<Ack> acks() {
    std::lock_guard lock(mu_);
    return acks_;
  }
  // The first acknowledgement on `partition` at or after `since`.
  std::optional<Clock::time_point> first_ack_after(int partition, Clock::time_point since) {
    std::lock_guard lock(mu_);
    for (const auto& a : acks_)
      if (a.partition == partition && a.at >= since)
        return a.at;
    return std::nullopt;
  }
  // The longest stretch without an acknowledgement on `partition` between `from` and `to` (the
  // client-observed unavailability of a fault in that window).
  Clock::duration longest_gap(int partition, Clock::time_point from, Clock::time_point to) {
    std::lock_guard lock(mu_);
    Clock::time_point last = from;
    Clock::duration gap{};
    for (const auto& a : acks_) {
      if (a.partition != partition || a.at < from || a.at > to)
        continue;
      gap = std::max(gap, a.at - last);
      last = a.at;
    }
    return std::max(gap, to - last);
  }
  // The last acknowledgement on `partition` before `until`.
  std::optional<Clock::time_point> last_ack_before(int partition, Clock::time_point until) {
    std::lock_guard lock(mu_);
    std::optional<Clock::time_point> out;
    for (const auto& a : acks_)
      if (a.partition == partition && a.at < until)
        out = a.at;
    return out;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Ack> acks_;
  std::vector<std::thread> threads_;
};

// Every acknowledged value read back at its offset; returns the ones missing (empty: none lost).
inline std::vector<std::string> lost_writes(cluster::SyncClient& reader,
                                            const std::vector<Producers::Ack>& acks,
                                            int partitions) {
  std::vector<std::map<int64_t, std::string>> logs(static_cast<size_t>(partitions));
  for (int p = 0; p < partitions; ++p) {
    auto records = reader.read_all(ProbeRig::tp(p));
    if (!records)
      return {"partition " + std::to_string(p) + " could not be read"};
    for (const auto& r : *records)
      logs[size_t(p)][r.offset.value()] = r.value.value_or("");
  }
  std::vector<std::string> lost;
  for (const auto& a : acks) {
    auto it = logs[size_t(a.partition)].find(a.offset);
    if (it == logs[size_t(a.partition)].end() || it->second != a.value)
      lost.push_back(a.value + "@p" + std::to_string(a.partition) + ":" + std::to_string(a.offset));
  }
  return lost;
}

}  // namespace faultline::testing
