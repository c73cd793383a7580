#include "faultline/cluster/metrics.h"

namespace faultline::cluster {

namespace {
// Latency buckets from 100 µs to ~30 s: failovers and produce latencies both fit.
prometheus::Histogram::BucketBoundaries latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,     1.0,    1.5,   2.0,    3.0,   5.0,  10.0,  30.0};
}

// The one unlabelled series of a new family.
prometheus::Counter& counter(prometheus::Registry& registry, const std::string& name,
                             const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}
prometheus::Gauge& gauge(prometheus::Registry& registry, const std::string& name,
                         const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}
prometheus::Histogram& latency_histogram(prometheus::Registry& registry, const std::string& name,
                                         const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add(
      {}, latency_buckets());
}
}  // namespace

MetricsEndpoint::MetricsEndpoint(const std::string& host, uint16_t port)
    : registry_(std::make_shared<prometheus::Registry>()) {
  if (port != 0) {
    exposer_ = std::make_unique<prometheus::Exposer>(host + ":" + std::to_string(port));
    exposer_->RegisterCollectable(registry_);
  }
}

uint16_t MetricsEndpoint::port() const {
  if (!exposer_)
    return 0;
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : static_cast<uint16_t>(ports.front());
}

ControllerMetrics::ControllerMetrics(prometheus::Registry& registry)
    : elections_(prometheus::BuildCounter()
                     .Name("faultline_elections_total")
                     .Help("Partition leadership changes committed by the controller, by reason")
                     .Register(registry)),
      election_seconds_(prometheus::BuildHistogram()
                            .Name("faultline_election_seconds")
                            .Help("Time from an election's trigger to its committed change")
                            .Register(registry)),
      offline_partitions_(
          gauge(registry, "faultline_offline_partitions", "Partitions without a leader")),
      broker_fenced_(prometheus::BuildGauge()
                         .Name("faultline_broker_fenced")
                         .Help("1 while the broker is fenced")
                         .Register(registry)),
      broker_demoted_(prometheus::BuildGauge()
                          .Name("faultline_broker_demoted")
                          .Help("1 while the broker is demoted (leadership priority), by reason")
                          .Register(registry)),
      broker_storage_canary_(prometheus::BuildGauge()
                                 .Name("faultline_broker_storage_canary_seconds")
                                 .Help("The broker's storage canary append+fsync latency, as its "
                                       "latest heartbeat reported it")
                                 .Register(registry)) {}

QuorumMetrics::QuorumMetrics(prometheus::Registry& registry)
    : elections_(counter(registry, "faultline_controller_elections_total",
                         "Elections of the controller quorum this controller won")),
      leaderless_seconds_(
          latency_histogram(registry, "faultline_controller_leaderless_seconds",
                            "Time without an active controller, from this voter's last "
                            "contact with the previous one to the next one being known")),
      commit_seconds_(
          latency_histogram(registry, "faultline_metadata_commit_seconds",
                            "Metadata record proposal to majority commit, on the active "
                            "controller")),
      active_(gauge(registry, "faultline_controller_active",
                    "1 while this controller is the active controller")),
      epoch_(gauge(registry, "faultline_controller_epoch",
                   "The controller epoch (Raft term) this controller is in")) {}

void ControllerMetrics::set_broker_storage_canary(BrokerId broker, int64_t canary_us) {
  if (canary_us < 0)
    return;
  broker_storage_canary_.Add({{"broker", std::to_string(broker.value())}})
      .Set(static_cast<double>(canary_us) / 1e6);
}

void ControllerMetrics::election(std::string_view reason,
                                 std::chrono::duration<double> trigger_to_commit) {
  std::map<std::string, std::string> labels{{"reason", std::string(reason)}};
  elections_.Add(labels).Increment();
  election_seconds_.Add(labels, latency_buckets()).Observe(trigger_to_commit.count());
}

void ControllerMetrics::set_offline_partitions(size_t count) {
  offline_partitions_.Set(static_cast<double>(count));
}

void ControllerMetrics::set_broker_fenced(BrokerId broker, bool fenced) {
  broker_fenced_.Add({{"broker", std::to_string(broker.value())}}).Set(fenced ? 1 : 0);
}

void ControllerMetrics::set_broker_demoted(BrokerId broker, const std::string& reason,
                                           bool demoted) {
  // One series per broker: the reason label follows the latest demotion.
  auto it = demoted_reason_.find(broker);
  if (it != demoted_reason_.end() && (it->second != reason || !demoted)) {
    broker_demoted_.Add({{"broker", std::to_string(broker.value())}, {"reason", it->second}})
        .Set(0);
  }
  if (demoted) {
    broker_demoted_.Add({{"broker", std::to_string(broker.value())}, {"reason", reason}}).Set(1);
    demoted_reason_[broker] = reason;
  } else if (it != demoted_reason_.end()) {
    demoted_reason_.erase(it);
  }
}

BrokerMetrics::BrokerMetrics(prometheus::Registry& registry)
    : isr_shrinks(counter(registry, "faultline_isr_shrinks_total",
                          "ISR shrinks committed for partitions this broker leads")),
      isr_expands(counter(registry, "faultline_isr_expands_total",
                          "ISR expansions committed for partitions this broker leads")),
      under_replicated_partitions(gauge(registry, "faultline_under_replicated_partitions",
                                        "Led partitions whose ISR is smaller than the replicas")),
      leader_partitions(
          gauge(registry, "faultline_leader_partitions", "Partitions this broker leads")),
      produce_latency(latency_histogram(registry, "faultline_produce_latency_seconds",
                                        "Produce request latency as seen by the broker")),
      storage_fsync(latency_histogram(registry, "faultline_storage_fsync_seconds",
                                      "Partition log fsync latency")),
      storage_canary(
          latency_histogram(registry, "faultline_storage_canary_seconds",
                            "Append+fsync latency of the storage canary file in the data dir")),
      storage_canary_last(gauge(registry, "faultline_storage_canary_last_seconds",
                                "The storage canary's latest append+fsync latency")),
      log_open_files(gauge(registry, "faultline_log_open_files",
                           "Partition log segment and index files held open")),
      log_file_reopens(counter(registry, "faultline_log_file_reopens_total",
                               "Log files opened again after the descriptor cache closed them")),
      replica_fetch_requests(prometheus::BuildCounter()
                                 .Name("faultline_replica_fetch_requests_total")
                                 .Help("Followers' fetch requests served, by session kind")
                                 .Register(registry)),
      replica_fetches_sessionless(replica_fetch_requests.Add({{"session", "none"}})),
      replica_fetches_full(replica_fetch_requests.Add({{"session", "full"}})),
      replica_fetches_incremental(replica_fetch_requests.Add({{"session", "incremental"}})),
      replica_fetch_session_errors(
          counter(registry, "faultline_replica_fetch_session_errors_total",
                  "Follower fetches refused for an unknown session or a wrong session epoch")),
      replica_fetch_partitions_sent(
          counter(registry, "faultline_replica_fetch_partitions_sent_total",
                  "Partitions listed in followers' fetch requests (changes only, in a session)")),
      replica_fetch_partitions_served(
          counter(registry, "faultline_replica_fetch_partitions_served_total",
                  "Partitions served to followers' fetch requests (every one a session holds)")),
      fetch_sessions(gauge(registry, "faultline_fetch_sessions",
                           "Followers' fetch sessions this broker holds as a leader")),
      fetch_session_partitions(gauge(registry, "faultline_fetch_session_partitions",
                                     "Partitions held across this broker's fetch sessions")) {}

}  // namespace faultline::cluster
