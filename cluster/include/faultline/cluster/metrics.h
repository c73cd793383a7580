// Prometheus metrics of the cluster's processes (ARCHITECTURE.md §6), exported with prometheus-cpp
// on the process's internal address. Names start with faultline_ and carry their unit.
//
// Threading: prometheus-cpp metrics are thread-safe; the exposer serves scrapes on its own threads.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "faultline/cluster/config.h"
#include "faultline/cluster/types.h"

namespace faultline::cluster {

// Owns a registry and, when a port is given, the HTTP exposer serving /metrics on host:port.
class MetricsEndpoint {
 public:
  // port 0: metrics are kept but not served (tests, or when not asked for).
  MetricsEndpoint(const std::string& host, uint16_t port);
  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> registry_ptr() { return registry_; }
  // The bound port (0 when not serving).
  uint16_t port() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

class ControllerMetrics {
 public:
  explicit ControllerMetrics(prometheus::Registry& registry);
  void election(std::string_view reason, std::chrono::duration<double> trigger_to_commit);
  void set_offline_partitions(size_t count);
  void set_broker_fenced(BrokerId broker, bool fenced);
  void set_broker_demoted(BrokerId broker, const std::string& reason, bool demoted);
  // From the broker's heartbeats; -1 (unknown) is not exported.
  void set_broker_storage_canary(BrokerId broker, int64_t canary_us);

 private:
  prometheus::Family<prometheus::Counter>& elections_;
  prometheus::Family<prometheus::Histogram>& election_seconds_;
  prometheus::Gauge& offline_partitions_;
  prometheus::Family<prometheus::Gauge>& broker_fenced_;
  prometheus::Family<prometheus::Gauge>& broker_demoted_;
  prometheus::Family<prometheus::Gauge>& broker_storage_canary_;
  std::map<BrokerId, std::string> demoted_reason_;
};

// The controller quorum as one voter sees it (raft.h).
class QuorumMetrics {
 public:
  explicit QuorumMetrics(prometheus::Registry& registry);
  // This controller won an election and became the active controller.
  void won_election() { elections_.Increment(); }
  // A leader became known again after `leaderless` without one (as this voter saw it).
  void leader_known(std::chrono::duration<double> leaderless) {
    leaderless_seconds_.Observe(leaderless.count());
  }
  // A record went from proposal to majority commit in `latency` (active controller only).
  void committed(std::chrono::duration<double> latency) {
    commit_seconds_.Observe(latency.count());
  }
  void set_state(bool active, int64_t epoch) {
    active_.Set(active ? 1 : 0);
    epoch_.Set(static_cast<double>(epoch));
  }

 private:
  prometheus::Counter& elections_;
  prometheus::Histogram& leaderless_seconds_;
  prometheus::Histogram& commit_seconds_;
  prometheus::Gauge& active_;
  prometheus::Gauge& epoch_;
};

class BrokerMetrics {
 public:
  explicit BrokerMetrics(prometheus::Registry& registry);
  prometheus::Counter& isr_shrinks;
  prometheus::Counter& isr_expands;
  prometheus::Gauge& under_replicated_partitions;
  prometheus::Gauge& leader_partitions;
  prometheus::Histogram& produce_latency;
  prometheus::Histogram& storage_fsync;
  // The storage canary (append + fsync of a small record every canary interval, off the request
  // path): what the prober compares across brokers.
  prometheus::Histogram& storage_canary;
  prometheus::Gauge& storage_canary_last;
  // The partition logs' descriptor cache (log/open_file_cache.h).
  prometheus::Gauge& log_open_files;
  prometheus::Counter& log_file_reopens;
  // Replication fetch sessions on the leader side (replication/fetch_session.h): how followers'
  // long-polls arrive, and what a session saves them: partitions_sent counts the partitions the
  // requests listed, partitions_served those the leader served from them.
  // By session kind: "none" (sessionless), "full" (opens a session), "incremental".
  prometheus::Family<prometheus::Counter>& replica_fetch_requests;
  prometheus::Counter& replica_fetches_sessionless;
  prometheus::Counter& replica_fetches_full;
  prometheus::Counter& replica_fetches_incremental;
  prometheus::Counter& replica_fetch_session_errors;
  prometheus::Counter& replica_fetch_partitions_sent;
  prometheus::Counter& replica_fetch_partitions_served;
  prometheus::Gauge& fetch_sessions;
  prometheus::Gauge& fetch_session_partitions;
};

}  // namespace faultline::cluster
