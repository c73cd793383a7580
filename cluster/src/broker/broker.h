// Broker: the broker process's state and request handling (DESIGN.md §2 items 1-7, 9, 13).
//
// Lifecycle: construct, start() (binds listeners, registers with the controller, starts the
// metadata pull, heartbeat, ISR and flush loops), then run the io_context. SIGTERM calls
// begin_controlled_shutdown(); the broker stops the io_context once the controller allows it.
//
// Threading: everything runs on one io_context thread; no locks. Partition logs are accessed only
// from that thread. The Prometheus exposer has its own threads but only touches metrics; the
// storage canary has its own thread and its own file (storage_canary.h).
#pragma once

#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <unordered_map>
#include <vector>

#include "faultline/cluster/config.h"
#include "faultline/cluster/controller/metadata.h"
#include "faultline/cluster/log/partition_log.h"
#include "faultline/cluster/metrics.h"
#include "faultline/cluster/net/rpc.h"
#include "faultline/cluster/replication/partition_replication.h"
#include "faultline/cluster/wire/messages.h"

namespace faultline::cluster {

class StorageCanary;

class Broker final : public RequestHandler {
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

  asio::awaitable<Response> handle(Request request, ListenerKind listener) override;

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
    // Bumped to stop the running follower fetch loop (leader change, leadership gained).
    uint64_t fetcher_generation = 0;
    bool fetcher_running = false;
    // Long-polls (follower and consumer fetches) waiting for new data or a higher HW.
    std::vector<asio::steady_timer*> waiters;
  };

  struct PendingProduce {
    asio::steady_timer* timer = nullptr;
    std::optional<errc> result;
  };

  // ---- request handlers ----
  asio::awaitable<Response> handle_produce(ProduceRequest req);
  asio::awaitable<Response> handle_fetch(FetchRequest req, ListenerKind listener);
  Response handle_list_offsets(const ListOffsetsRequest& req);
  Response handle_offset_for_leader_epoch(const OffsetForLeaderEpochRequest& req);
  Response handle_metadata(const MetadataRequest& req);
  Response handle_broker_health() const;

  // ---- loops ----
  asio::awaitable<void> registration_and_heartbeat_loop();
  asio::awaitable<void> metadata_loop();
  asio::awaitable<void> isr_loop();
  asio::awaitable<void> flush_loop();
  asio::awaitable<void> follower_loop(TopicPartition tp, uint64_t generation);
  asio::awaitable<void> send_alter_partition(TopicPartition tp, IsrChangeProposal proposal);

  // ---- state changes ----
  void on_metadata_entry(const MetadataEntry& entry);
  void reconcile(const TopicPartition& tp);
  Partition* find(const TopicPartition& tp);
  Partition* open_partition(const TopicPartition& tp);
  void become_leader(Partition& p, const PartitionState& state);
  void stop_leading(Partition& p);
  // After anything that may move the HW or end produces: completes produces, wakes long-polls.
  void after_replication_change(Partition& p);
  void complete(const std::vector<ProduceCompletion>& completions);
  void wake(Partition& p);
  Offset high_watermark(const Partition& p) const;
  void update_gauges();
  asio::awaitable<void> wait_for_data(Partition& p, std::chrono::milliseconds max_wait);
  asio::awaitable<void> sleep(std::chrono::milliseconds d);

  asio::io_context& io_;
  BrokerConfig config_;
  BrokerMetrics metrics_;
  std::unique_ptr<RpcServer> internal_server_;
  std::unique_ptr<RpcServer> client_server_;
  ClientPool peers_;  // connections to the controller and to other brokers' internal listeners
  std::unique_ptr<StorageCanary> canary_;  // its own thread; null when the interval is 0

  uint64_t incarnation_;
  BrokerEpoch broker_epoch_{-1};
  bool registered_ = false;
  bool fenced_ = true;
  bool stopping_ = false;
  bool want_shutdown_ = false;
  Clock::time_point shutdown_deadline_{};

  MetadataImage image_;
  std::map<TopicPartition, std::unique_ptr<Partition>> partitions_;
  std::unordered_map<uint64_t, PendingProduce> pending_;
  uint64_t next_request_id_ = 1;
};

}  // namespace faultline::cluster
