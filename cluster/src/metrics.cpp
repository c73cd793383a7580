#include "faultline/cluster/metrics.h"

namespace faultline::cluster {

namespace {
// Latency buckets from 100 µs to ~30 s: failovers and produce latencies both fit.
prometheus::Histogram::BucketBoundaries latency_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,     1.0,    1.5,   2.0,    3.0,   5.0,  10.0,  30.0};
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
      offline_partitions_(prometheus::BuildGauge()
                              .Name("faultline_offline_partitions")
                              .Help("Partitions without a leader")
                              .Register(registry)
                              .Add({})),
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
    : elections_(prometheus::BuildCounter()
                     .Name("faultline_controller_elections_total")
                     .Help("Elections of the controller quorum this controller won")
                     .Register(registry)
                     .Add({})),
      leaderless_seconds_(prometheus::BuildHistogram()
                              .Name("faultline_controller_leaderless_seconds")
                              .Help("Time without an active controller, from this voter's last "
                                    "contact with the previous one to the next one being known")
                              .Register(registry)
                              .Add({}, latency_buckets())),
      commit_seconds_(prometheus::BuildHistogram()
                          .Name("faultline_metadata_commit_seconds")
                          .Help("Metadata record proposal to majority commit, on the active "
                                "controller")
                          .Register(registry)
                          .Add({}, latency_buckets())),
      active_(prometheus::BuildGauge()
                  .Name("faultline_controller_active")
                  .Help("1 while this controller is the active controller")
                  .Register(registry)
                  .Add({})),
      epoch_(prometheus::BuildGauge()
                 .Name("faultline_controller_epoch")
                 .Help("The controller epoch (Raft term) this controller is in")
                 .Register(registry)
                 .Add({})) {}

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
    : isr_shrinks(prometheus::BuildCounter()
                      .Name("faultline_isr_shrinks_total")
                      .Help("ISR shrinks committed for partitions this broker leads")
                      .Register(registry)
                      .Add({})),
      isr_expands(prometheus::BuildCounter()
                      .Name("faultline_isr_expands_total")
                      .Help("ISR expansions committed for partitions this broker leads")
                      .Register(registry)
                      .Add({})),
      under_replicated_partitions(prometheus::BuildGauge()
                                      .Name("faultline_under_replicated_partitions")
                                      .Help("Led partitions whose ISR is smaller than the replicas")
                                      .Register(registry)
                                      .Add({})),
      leader_partitions(prometheus::BuildGauge()
                            .Name("faultline_leader_partitions")
                            .Help("Partitions this broker leads")
                            .Register(registry)
                            .Add({})),
      produce_latency(prometheus::BuildHistogram()
                          .Name("faultline_produce_latency_seconds")
                          .Help("Produce request latency as seen by the broker")
                          .Register(registry)
                          .Add({}, latency_buckets())),
      storage_fsync(prometheus::BuildHistogram()
                        .Name("faultline_storage_fsync_seconds")
                        .Help("Partition log fsync latency")
                        .Register(registry)
                        .Add({}, latency_buckets())),
      storage_canary(prometheus::BuildHistogram()
                         .Name("faultline_storage_canary_seconds")
                         .Help("Append+fsync latency of the storage canary file in the data dir")
                         .Register(registry)
                         .Add({}, latency_buckets())),
      storage_canary_last(prometheus::BuildGauge()
                              .Name("faultline_storage_canary_last_seconds")
                              .Help("The storage canary's latest append+fsync latency")
                              .Register(registry)
                              .Add({})),
      log_open_files(prometheus::BuildGauge()
                         .Name("faultline_log_open_files")
                         .Help("Partition log segment and index files held open")
                         .Register(registry)
                         .Add({})),
      log_file_reopens(prometheus::BuildCounter()
                           .Name("faultline_log_file_reopens_total")
                           .Help("Log files opened again after the descriptor cache closed them")
                           .Register(registry)
                           .Add({})),
      replica_fetch_requests(prometheus::BuildCounter()
                                 .Name("faultline_replica_fetch_requests_total")
                                 .Help("Followers' fetch requests served, by session kind")
                                 .Register(registry)),
      replica_fetches_sessionless(replica_fetch_requests.Add({{"session", "none"}})),
      replica_fetches_full(replica_fetch_requests.Add({{"session", "full"}})),
      replica_fetches_incremental(replica_fetch_requests.Add({{"session", "incremental"}})),
      replica_fetch_session_errors(
          prometheus::BuildCounter()
              .Name("faultline_replica_fetch_session_errors_total")
              .Help("Follower fetches refused for an unknown session or a wrong session epoch")
              .Register(registry)
              .Add({})),
      replica_fetch_partitions_sent(
          prometheus::BuildCounter()
              .Name("faultline_replica_fetch_partitions_sent_total")
              .Help("Partitions listed in followers' fetch requests (changes only, in a session)")
              .Register(registry)
              .Add({})),
      replica_fetch_partitions_served(
          prometheus::BuildCounter()
              .Name("faultline_replica_fetch_partitions_served_total")
              .Help("Partitions served to followers' fetch requests (every one a session holds)")
              .Register(registry)
              .Add({})),
      fetch_sessions(prometheus::BuildGauge()
                         .Name("faultline_fetch_sessions")
                         .Help("Followers' fetch sessions this broker holds as a leader")
                         .Register(registry)
                         .Add({})),
      fetch_session_partitions(prometheus::BuildGauge()
                                   .Name("faultline_fetch_session_partitions")
                                   .Help("Partitions held across this broker's fetch sessions")
                                   .Register(registry)
                                   .Add({})) {}

}  // namespace faultline::cluster
