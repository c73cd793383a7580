#include "faultline/cluster/controller/controller_service.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace faultline::cluster {

ControllerService::OpenResult ControllerService::open(const ControllerConfig& config,
                                                      prometheus::Registry& registry,
                                                      ControllerTime now) {
  OpenResult result;
  auto opened = MetadataStore::open(config.data_dir / "metadata.log");
  if (opened.error) {
    result.error = opened.error;
    return result;
  }
  result.replayed_records = opened.records.size();
  result.dropped_tail_bytes = opened.dropped_tail_bytes;
  auto service = std::unique_ptr<ControllerService>(
      new ControllerService(config, registry, std::move(opened.store), now));
  if (auto ec = service->controller_.replay(opened.records, now)) {
    result.error = ec;
    return result;
  }
  service->publish_broker_metrics();
  result.service = std::move(service);
  return result;
}

ControllerService::ControllerService(const ControllerConfig& config,
                                     prometheus::Registry& registry,
                                     std::unique_ptr<MetadataStore> store, ControllerTime now)
    : controller_(config, now), store_(std::move(store)), metrics_(registry) {}

void ControllerService::commit(ControllerTime now) {
  auto records = controller_.take_new_records();
  if (records.empty()) return;
  if (auto ec = store_->append(records)) {
    spdlog::critical("event=metadata_persist_failed path={} error=\"{}\"", store_->path().string(),
                     ec.message());
    std::abort();
  }
  controller_.mark_durable(records.back().offset);
  auto committed_at = ControllerClock::now();
  auto events = controller_.take_election_events();
  // A mass failover elects many partitions at once: log the first few, then a summary.
  constexpr size_t kLoggedElections = 16;
  for (size_t i = 0; i < events.size(); ++i) {
    const auto& ev = events[i];
    auto elapsed = std::chrono::duration<double>(committed_at - ev.triggered_at);
    metrics_.election(election_reason_name(ev.reason), elapsed);
    if (i >= kLoggedElections) continue;
    spdlog::info("event=election tp={} reason={} from={} to={} offset={} trigger_to_commit_ms={:.2f}",
                 ev.tp, election_reason_name(ev.reason), ev.previous_leader, ev.new_leader,
                 ev.offset, elapsed.count() * 1000);
  }
  if (events.size() > kLoggedElections) {
    spdlog::info("event=elections_summary count={} logged={}", events.size(), kLoggedElections);
  }
  publish_broker_metrics();
  if (on_durable) on_durable();
  (void)now;
}

void ControllerService::publish_broker_metrics() {
  const auto& image = controller_.image();
  for (const auto& [id, broker] : image.brokers()) {
    metrics_.set_broker_fenced(id, broker.fenced);
    metrics_.set_broker_demoted(id, broker.demotion_reason, broker.demoted);
  }
  metrics_.set_offline_partitions(image.offline_partition_count());
}

RegisterResult ControllerService::register_broker(const BrokerRegistration& registration,
                                                  ControllerTime now) {
  auto r = controller_.register_broker(registration, now);
  commit(now);
  return r;
}

HeartbeatResult ControllerService::heartbeat(const BrokerHeartbeat& heartbeat, ControllerTime now) {
  auto r = controller_.heartbeat(heartbeat, now);
  commit(now);
  return r;
}

void ControllerService::note_storage(BrokerId broker, StorageReport report) {
  metrics_.set_broker_storage_canary(broker, report.canary_us);
  storage_[broker] = std::move(report);
}

void ControllerService::tick(ControllerTime now) {
  controller_.tick(now);
  commit(now);
}

CreateTopicResult ControllerService::create_topic(const std::string& name, int32_t partitions,
                                                  int32_t replication_factor, ControllerTime now) {
  auto r = controller_.create_topic(name, partitions, replication_factor, now);
  commit(now);
  return r;
}

AlterPartitionResult ControllerService::alter_partition(const AlterPartitionRequest& request,
                                                        ControllerTime now) {
  auto r = controller_.alter_partition(request, now);
  commit(now);
  return r;
}

std::vector<PartitionElectionResult> ControllerService::elect_leaders(
    ElectionType type, std::span<const TopicPartition> partitions, ControllerTime now) {
  auto r = controller_.elect_leaders(type, partitions, now);
  commit(now);
  return r;
}

errc ControllerService::reassign(const TopicPartition& tp, const ReplicaList& target,
                                 ControllerTime now) {
  auto r = controller_.reassign(tp, target, now);
  commit(now);
  return r;
}

errc ControllerService::demote(BrokerId broker, const std::string& reason, ControllerTime now) {
  auto r = controller_.demote(broker, reason, now);
  commit(now);
  return r;
}

errc ControllerService::promote(BrokerId broker, ControllerTime now) {
  auto r = controller_.promote(broker, now);
  commit(now);
  return r;
}

errc ControllerService::set_config(const std::string& key, const std::string& value,
                                   ControllerTime now) {
  auto r = controller_.set_config(key, value, now);
  commit(now);
  return r;
}

}  // namespace faultline::cluster
