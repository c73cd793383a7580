// The run's view of the cluster: a thread that follows the controller's metadata, keeps the
// latest ClusterSnapshot for the nemesis (selectors, triggers) and records the cluster's timeline
// into the history as it changes: partition-state and cluster-state events (the checker's
// invariant pass), leader-change and unclean-election (the report's lanes, the loss evidence).
// It long-polls the controller's metadata watch, so a change is seen within milliseconds; for a
// cluster run from a definition (cluster_definition.h) it polls the brokers' Kafka Metadata
// every 50 ms instead (leaders, epochs, replicas, ISR; brokers missing from it count as fenced).
//
// The controller quorum (mini-cluster only) is followed by a second thread: every controller is
// asked DescribeQuorum every 50 ms, each bounded by 200 ms (one that does not answer is not up),
// into the snapshot's controllers_up / active_controller / controller_epoch. Each new active
// controller (or new epoch) is a `note` event "controller-change" in the history and a sample of
// controllers(), so the run reports controller failover apart from partition failover.
//
// Threading: one watcher thread owns the metadata client, one the quorum client;
// snapshot()/leaders()/controllers() copy under a mutex and may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "faultline/chaos/controller_quorum.h"
#include "faultline/chaos/runner/schedule.h"
#include "faultline/checker/recorder.h"
#include "faultline/cluster/client/client.h"
#include "faultline/cluster/kafka/metadata_client.h"

namespace faultline::chaos {

class ClusterWatcher {
 public:
  using Clock = std::chrono::steady_clock;
  // A partition's leader from `at` on (-1: none).
  struct LeaderSample {
    Clock::time_point at;
    int partition = 0;
    int leader = -1;
    int epoch = -1;
  };
  // The active controller from `at` on (0: none answered as leader).
  struct ControllerSample {
    Clock::time_point at;
    int active = 0;
    int64_t epoch = -1;
  };
  // DescribeQuorum's bound per controller and look.
  static constexpr std::chrono::milliseconds kQuorumTimeout{200};

  ClusterWatcher(cluster::ClientConfig config, int brokers, checker::HistoryRecorder& history);
  ClusterWatcher(std::vector<cluster::Endpoint> kafka_bootstrap, int brokers,
                 checker::HistoryRecorder& history);
  ~ClusterWatcher();
  ClusterWatcher(const ClusterWatcher&) = delete;
  ClusterWatcher& operator=(const ClusterWatcher&) = delete;

  void start();
  void stop();
  // Fetches the metadata (and describes the quorum) once on the calling thread (also before
  // start() and after stop()).
  void refresh();

  ClusterSnapshot snapshot() const;
  // The snapshot, after asking the quorum again (each look bounded by kPatientQuorumTimeout, all
  // of them by `patience`) when it shows no active controller. The watcher's looks are short, and
  // on a loaded machine a look that timed out is no election: a step aimed at the active
  // controller must not be skipped for it. With one controller, or no quorum client (a cluster
  // followed through Kafka), the snapshot as it is.
  ClusterSnapshot snapshot_with_active_controller(std::chrono::milliseconds patience);
  static constexpr std::chrono::milliseconds kPatientQuorumTimeout{1000};
  std::vector<LeaderSample> leaders() const;
  std::vector<ControllerSample> controllers() const;
  std::optional<cluster::MetadataResponse> metadata() const;

 private:
  void loop();
  void quorum_loop();
  void apply(const std::optional<cluster::MetadataResponse>& md);
  void apply_quorum(const QuorumLook& look);
  void record_partition(const cluster::PartitionMetadata& p, const PartitionView& view);
  void record_brokers(const cluster::MetadataResponse& md);

  // One look at the metadata: waits up to its own bound for news after `seen_offset`.
  using Fetch = std::function<std::optional<cluster::MetadataResponse>(int64_t seen_offset)>;
  Fetch fetch_;
  std::function<std::optional<cluster::MetadataResponse>()> fetch_now_;
  int brokers_;
  checker::HistoryRecorder& history_;
  std::unique_ptr<cluster::SyncClient> client_;
  std::unique_ptr<cluster::KafkaMetadataClient> kafka_;
  std::unique_ptr<QuorumClient> quorum_;  // mini-cluster only
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::thread quorum_thread_;
  mutable std::mutex mu_;
  ClusterSnapshot snapshot_;
  std::optional<cluster::MetadataResponse> metadata_;
  std::vector<LeaderSample> leaders_;
  std::vector<ControllerSample> controller_samples_;
  std::map<int, std::pair<int32_t, int32_t>> seen_;  // partition -> (epoch, unclean elections)
  std::map<int, PartitionView> recorded_;            // the last partition-state written
  std::map<int, int32_t> unclean_epoch_;             // the epoch of a partition's unclean election
  std::optional<checker::NemesisFields> recorded_brokers_;  // the last cluster-state written
  int64_t seen_offset_ = -1;                                // the controller's metadata offset seen
};

}  // namespace faultline::chaos
