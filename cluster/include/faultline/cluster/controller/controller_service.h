// ControllerService: the durable shell around the pure Controller (controller.h).
//
// It owns the metadata log on disk (MetadataStore) and the controller's metrics. Every mutating
// call runs the Controller method, then persists the new records with fsync and marks them
// durable before returning, so an answer a broker or an admin sees is never ahead of disk
// (ARCHITECTURE.md §2 item 8). Brokers pull durable records with records_since().
//
// Threading: none; the process's event loop serialises calls. `on_durable` (optional) is called
// after records became durable, so the shell can wake metadata long-polls.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <system_error>

#include "faultline/cluster/config.h"
#include "faultline/cluster/controller/controller.h"
#include "faultline/cluster/controller/metadata_store.h"
#include "faultline/cluster/metrics.h"

namespace faultline::cluster {

class ControllerService {
 public:
  struct OpenResult {
    std::error_code error;
    std::unique_ptr<ControllerService> service;
    size_t replayed_records = 0;
    uint64_t dropped_tail_bytes = 0;
  };
  // Opens (or creates) <data_dir>/metadata.log and replays it.
  static OpenResult open(const ControllerConfig& config, prometheus::Registry& registry,
                         ControllerTime now);

  RegisterResult register_broker(const BrokerRegistration& registration, ControllerTime now);
  HeartbeatResult heartbeat(const BrokerHeartbeat& heartbeat, ControllerTime now);
  // What a broker's latest accepted heartbeat said about its storage canary (not part of the
  // metadata log: it is a live reading, gone with the controller).
  struct StorageReport {
    int64_t canary_us = -1;
    std::string error;
  };
  void note_storage(BrokerId broker, StorageReport report);
  const std::map<BrokerId, StorageReport>& storage_reports() const { return storage_; }
  void tick(ControllerTime now);
  CreateTopicResult create_topic(const std::string& name, int32_t partitions,
                                 int32_t replication_factor, ControllerTime now);
  AlterPartitionResult alter_partition(const AlterPartitionRequest& request, ControllerTime now);
  std::vector<PartitionElectionResult> elect_leaders(ElectionType type,
                                                     std::span<const TopicPartition> partitions,
                                                     ControllerTime now);
  errc reassign(const TopicPartition& tp, const ReplicaList& target, ControllerTime now);
  errc demote(BrokerId broker, const std::string& reason, ControllerTime now);
  errc promote(BrokerId broker, ControllerTime now);
  errc set_config(const std::string& key, const std::string& value, ControllerTime now);

  std::span<const MetadataEntry> records_since(MetadataOffset from, size_t max) const {
    return controller_.records_since(from, max);
  }
  MetadataOffset durable_offset() const { return controller_.durable_offset(); }
  const MetadataImage& image() const { return controller_.image(); }
  const Controller& controller() const { return controller_; }

  std::function<void()> on_durable;

 private:
  ControllerService(const ControllerConfig& config, prometheus::Registry& registry,
                    std::unique_ptr<MetadataStore> store, ControllerTime now);
  // Persists what the last call appended; aborts the process when the disk refuses (the image
  // would be ahead of the log: continuing could acknowledge what a restart forgets).
  void commit(ControllerTime now);
  void publish_broker_metrics();

  Controller controller_;
  std::unique_ptr<MetadataStore> store_;
  ControllerMetrics metrics_;
  std::map<BrokerId, StorageReport> storage_;
};

}  // namespace faultline::cluster
