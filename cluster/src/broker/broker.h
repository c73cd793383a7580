// Broker: the broker process's state and request handling (ARCHITECTURE.md §2 items 1-7, 9, 13).
//
// Lifecycle: construct, start() (binds listeners, registers with the controller, starts the
// metadata pull, heartbeat, ISR and flush loops), then run the io_context. SIGTERM calls
// begin_controlled_shutdown(); the broker stops the io_context once the controller allows it.
//
// Scale: a follower fetches all partitions it replicates from one leader broker in one long-poll
// (a Fetcher per leader, ReplicaFetch on the wire); metadata is applied in slices of a few
// milliseconds between which the io_context runs (heartbeats, fetches); the gauges, the flush and
// the HW checkpoints touch only what changed. 10k partitions on 5 brokers: cluster/README.md.
//
// Threading: everything runs on one io_context thread; no locks. Partition logs are accessed only
// from that thread. The Prometheus exposer has its own threads but only touches metrics; the
// storage canary has its own thread and its own file (storage_canary.h).
#pragma once

#include <asio.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "broker/kafka_gateway.h"
#include "faultline/cluster/config.h"
#include "faultline/cluster/controller/metadata.h"
#include "faultline/cluster/log/partition_log.h"
#include "faultline/cluster/metrics.h"
#include "faultline/cluster/net/controller_rotation.h"
#include "faultline/cluster/net/rpc.h"
#include "faultline/cluster/replication/fetch_session.h"
#include "faultline/cluster/replication/partition_replication.h"
#include "faultline/cluster/wire/messages.h"

namespace faultline::cluster {

class StorageCanary;
class KafkaServer;

class Broker final : public RequestHandler, public KafkaBackend {
 public:
  Broker(asio::io_context& io, BrokerConfig config, MetricsEndpoint& metrics);
  ~Broker() override;

  // Binds both listeners; returns false (logged) when a port is taken or the data dir unusable.
  bool start();
  void begin_controlled_shutdown();
  // Stops every loop and listener; the io_context then runs out of work.
  void stop();

  uint16_t internal_port() const;
  uint16_t client_port() const;
  uint16_t kafka_port() const;  // 0 when there is no Kafka listener

  asio::awaitable<Response> handle(Request request, ListenerKind listener) override;
  // Until any of the partitions is woken (new data, HW, leadership) or max_wait passes.
  asio::awaitable<void> wait_for_any(const std::vector<TopicPartition>& tps,
                                     std::chrono::milliseconds max_wait) override;
  asio::awaitable<errc> create_topic(std::string name, int32_t partitions,
                                     int32_t replication_factor) override;

 private:
  using Clock = std::chrono::steady_clock;

  // One partition replica hosted by this broker.
  struct Partition {
    TopicPartition tp;
    std::unique_ptr<PartitionLog> log;
    BrokerId leader = kNoBroker;
    LeaderEpoch leader_epoch{-1};
    PartitionEpoch partition_epoch{-1};
    ReplicaList replicas;
    ReplicaList isr;
    // Set while this broker leads the partition (for the current leader epoch).
    std::optional<PartitionReplication> replication;
    // A follower's high watermark (the leader's, capped by the local log end).
    Offset follower_high_watermark{0};
    // The leader broker whose fetcher carries this partition (kNoBroker: none; it leads, has no
    // leader, or is not hosted any more).
    BrokerId fetching_from = kNoBroker;
    // After a per-partition fetch error the fetcher leaves the partition out until then.
    Clock::time_point fetch_backoff_until{};
    // Appended since the last flush (the flush loop fsyncs only these).
    bool unflushed = false;
    // Long-polls (follower and consumer fetches) waiting for new data or a higher HW.
    std::vector<asio::steady_timer*> waiters;
  };

  // One replication fetcher per leader broker this broker follows partitions from: a single
  // long-polling ReplicaFetch carries all of them (so 10k partitions cost 4 fetches in flight per
  // broker, not thousands). A fetcher whose set gained partitions or changed epochs is restarted
  // (generation bump; the fetch in flight is abandoned and its answer dropped). Each run of
  // fetcher_loop keeps its own fetch session with the leader (FetchSessionBuilder): a restart
  // opens a new one with a full request, later polls carry only partitions whose state changed.
  struct Fetcher {
    std::set<TopicPartition> partitions;
    uint64_t generation = 0;
    bool restart = false;  // set while applying metadata; acted on by restart_fetchers()
    size_t rotation = 0;   // first partition of the next request, so a full answer is shared fairly
  };

  struct PendingProduce {
    asio::steady_timer* timer = nullptr;
    std::optional<errc> result;
  };

  // ---- request handlers ----
  asio::awaitable<Response> handle_produce(ProduceRequest req);
  asio::awaitable<Response> handle_fetch(FetchRequest req, ListenerKind listener);
  asio::awaitable<Response> handle_replica_fetch(ReplicaFetchRequest req, ListenerKind listener);
  // The checks every fetch of a partition passes on its leader: hosted, leading, epoch fencing.
  errc check_leader(Partition* p, const TopicPartition& tp, int32_t current_leader_epoch) const;
  // The leader's side of a follower's fetch of one partition before reading: KIP-320 divergence
  // (fills `diverging`; nothing is read then) and the follower's position for HW and ISR.
  errc accept_follower_fetch(Partition& p, BrokerId follower, Offset fetch_offset,
                             int32_t last_fetched_epoch, std::optional<DivergingEpoch>& diverging);
  Response handle_list_offsets(const ListOffsetsRequest& req);
  Response handle_offset_for_leader_epoch(const OffsetForLeaderEpochRequest& req);
  Response handle_metadata(const MetadataRequest& req);
  Response handle_broker_health() const;

  // ---- loops ----
  asio::awaitable<void> registration_and_heartbeat_loop();
  asio::awaitable<void> metadata_loop();
  asio::awaitable<void> isr_loop();
  ReplicaList isr_ineligible_brokers() const;
  asio::awaitable<void> flush_loop();
  asio::awaitable<void> fetcher_loop(BrokerId leader, uint64_t generation);
  asio::awaitable<void> send_alter_partitions(
      std::vector<std::pair<TopicPartition, IsrChangeProposal>> batch);
  void on_alter_partition_answer(const TopicPartition& tp, const IsrChangeProposal& proposal,
                                 const AlterPartitionResponse& answer);

  // ---- state changes ----
  // Applies one entry's partition changes, yielding to the io_context every few milliseconds so
  // heartbeats and fetches keep flowing while a 10k-partition topic is created or moved.
  asio::awaitable<void> on_metadata_entry(const MetadataEntry& entry);
  // The controller's log starts past this broker's image (compacted): its snapshot replaces the
  // image, and every partition is reconciled with it. False when it does not decode.
  asio::awaitable<bool> on_metadata_snapshot(std::span<const uint8_t> bytes);
  // Opens the logs of the topic's partitions this broker hosts and has not opened yet.
  asio::awaitable<void> open_hosted(const std::string& topic, size_t partitions);
  asio::awaitable<void> yield_if_busy(Clock::time_point& slice_started);
  void follow(Partition& p, BrokerId leader);
  void unfollow(Partition& p);
  void restart_fetchers();
  void apply_fetched(Partition& p, const ReplicaFetchPartitionResponse& r);
  // What one flush round does for a partition, off the io thread (see flush_loop).
  struct FlushJob {
    TopicPartition tp;
    PartitionLog* log;
    bool sync;  // appended since the last round
    Offset hw;  // checkpointed when it moved
  };
  // Nothing (nullopt) when the partition has nothing to flush or checkpoint.
  std::optional<FlushJob> flush_job(Partition& p);
  void run_flush_job(const FlushJob& job);
  void reconcile(const TopicPartition& tp);
  Partition* find(const TopicPartition& tp);
  // `log` already opened (open_logs), or nullptr to open it here.
  Partition* open_partition(const TopicPartition& tp, std::unique_ptr<PartitionLog> log = nullptr);
  LogConfig log_config() const;
  // Opens (creates) the logs of many partitions at once on a few threads of their own, so their
  // fsyncs overlap instead of queueing one by one on the io thread; the io thread runs meanwhile.
  asio::awaitable<std::vector<std::unique_ptr<PartitionLog>>> open_logs(
      std::vector<TopicPartition> tps);
  void become_leader(Partition& p, const PartitionState& state);
  void stop_leading(Partition& p);
  // After anything that may move the HW or end produces: completes produces, wakes long-polls.
  void after_replication_change(Partition& p);
  void complete(const std::vector<ProduceCompletion>& completions);
  void wake(Partition& p);
  Offset high_watermark(const Partition& p) const;
  void update_gauges();
  void publish_log_file_metrics();
  // Counts a follower's fetch by session kind (or its refusal) and refreshes the session gauges.
  void publish_fetch_session_metrics(const ReplicaFetchRequest& req,
                                     const FetchSessionResolution& session);
  asio::awaitable<void> wait_for_data(Partition& p, std::chrono::milliseconds max_wait);
  // True when a partition woke the wait (wake()), false when it timed out.
  asio::awaitable<bool> wait_for_any(const std::vector<Partition*>& partitions,
                                     std::chrono::milliseconds max_wait);
  asio::awaitable<void> sleep(std::chrono::milliseconds d);

  // ---- log directory failure (log_dir.cpp) ----
  // An I/O error on a log takes the (single) log directory offline until the broker restarts:
  // produces and fetches are answered KAFKA_STORAGE_ERROR, fetchers stop and the heartbeats ask
  // the controller to fence the broker (Kafka's offline log dir, KIP-112). Any thread.
  void mark_log_dir_offline(const TopicPartition& tp, const std::error_code& ec);
  bool log_dir_offline() const { return log_dir_offline_.load(std::memory_order_relaxed); }

  asio::io_context& io_;
  BrokerConfig config_;
  BrokerMetrics metrics_;
  std::unique_ptr<RpcServer> internal_server_;
  std::unique_ptr<RpcServer> client_server_;
  std::unique_ptr<KafkaServer> kafka_server_;  // null without a Kafka listener
  ClientPool peers_;  // connections to the controllers and to other brokers' internal listeners
  // Every request to the controller quorum goes through this: it follows the active controller.
  ControllerCaller controllers_;
  std::unique_ptr<StorageCanary> canary_;  // its own thread; null when the interval is 0

  uint64_t incarnation_;
  // Leader side of the followers' fetch sessions (one per follower broker).
  FetchSessionCache fetch_sessions_;
  // The descriptors of every partition log's files (log/open_file_cache.h), bounded by
  // config_.max_open_log_files or the process's descriptor limit.
  std::shared_ptr<OpenFileCache> log_files_;
  uint64_t log_file_reopens_published_ = 0;
  BrokerEpoch broker_epoch_{-1};
  bool registered_ = false;
  bool fenced_ = true;
  bool stopping_ = false;
  bool want_shutdown_ = false;
  Clock::time_point shutdown_deadline_{};

  MetadataImage image_;
  // The last metadata offset whose partition changes are all applied to partitions_ (image_ may
  // be one entry ahead while a large entry is being applied): what heartbeats report.
  MetadataOffset reconciled_offset_{-1};
  bool gauges_stale_ = false;
  // Hashed: every long-poll looks up each partition it carries several times, and at 50k
  // partitions an ordered map's string comparisons were a third of an idle broker's CPU.
  // Entries are never removed, so a Partition* stays valid for the broker's life.
  std::unordered_map<TopicPartition, std::unique_ptr<Partition>> partitions_;
  std::map<BrokerId, Fetcher> fetchers_;
  bool alter_partitions_in_flight_ = false;
  // Partitions the ISR loop checks between its sweeps (Broker::isr_loop).
  std::unordered_set<Partition*> isr_watch_;
  asio::steady_timer* heartbeat_wait_ = nullptr;  // the heartbeat loop's pause, while it waits
  std::thread log_opener_;  // running while open_logs() waits; joined by stop()
  std::atomic<bool> abandon_log_opening_{false};
  std::atomic<bool> log_dir_offline_{false};
  std::unordered_map<uint64_t, PendingProduce> pending_;
  uint64_t next_request_id_ = 1;
  // Runs the flush rounds' fsyncs and checkpoint writes. Declared after partitions_: destroyed
  // (stopped and joined) first, so no round outlives the logs it flushes.
  asio::thread_pool flusher_{1};
};

}  // namespace faultline::cluster
