// The cluster's client library: producer, consumer and admin (ARCHITECTURE.md §2, issue "cluster
// part 1").
//
// `Client` is asynchronous (Asio coroutines on the caller's io_context); `SyncClient` wraps it
// with its own io thread for tests, tools and the workload's threads.
//
// A send's outcome is one of three, because that is what a checker needs (ARCHITECTURE.md §5):
//   acknowledged  error == none;
//   failed        error != none and definite: nothing was appended by any attempt;
//   unknown       !definite: an attempt may have been appended (a timeout after the request was
//                 written, NOT_ENOUGH_REPLICAS_AFTER_APPEND, a connection lost mid-request).
// The producer retries (with backoff and a metadata refresh) only after definite failures, so it
// never writes a value twice; an unknown outcome ends the send and is reported as such.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "faultline/cluster/log/record_batch.h"
#include "faultline/cluster/net/controller_rotation.h"
#include "faultline/cluster/net/rpc.h"
#include "faultline/cluster/wire/messages.h"

namespace faultline::cluster {

struct ClientConfig {
  std::vector<Endpoint> bootstrap;  // any brokers' client listeners
  // Admin requests (create topic, elections, demote/promote): every controller of the quorum;
  // the client follows whichever is active (net/controller_rotation.h).
  std::vector<Endpoint> controllers;
  // request.timeout.ms: one attempt; for an admin request, its attempts at every controller.
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds delivery_timeout{30000};  // delivery.timeout.ms (all attempts)
  std::chrono::milliseconds retry_backoff{100};       // retry.backoff.ms
};

struct SendResult {
  errc error = errc::none;
  bool definite = true;
  Offset base_offset{-1};  // when acknowledged (acks >= 1)
  int attempts = 0;
  BrokerId leader = kNoBroker;  // the broker of the last attempt (the one that answered)
  // The epoch in the last attempt's answer: for an acknowledged send, the epoch the leader
  // appended and acknowledged under; -1 when no broker answered.
  LeaderEpoch leader_epoch{-1};
  bool acknowledged() const { return error == errc::none; }
};

struct PollResult {
  errc error = errc::none;
  std::vector<Record> records;
  int64_t high_watermark = -1;
  BrokerId leader = kNoBroker;
  LeaderEpoch leader_epoch{-1};
};

class Client {
 public:
  Client(asio::io_context& io, ClientConfig config);

  // Sends `values` (one batch, keys null) to `tp`. acks=0 answers as soon as it is written.
  asio::awaitable<SendResult> send(TopicPartition tp, std::vector<std::string> values, Acks acks);
  // Reads from `from` up to the high watermark (at most max_bytes; waits up to max_wait for data).
  asio::awaitable<PollResult> poll(TopicPartition tp, Offset from, int32_t max_bytes,
                                   std::chrono::milliseconds max_wait);

  // Metadata from any reachable broker (falls back to the controller); updates the leader cache.
  asio::awaitable<std::optional<MetadataResponse>> metadata(std::vector<std::string> topics = {});
  // The cached leader of `tp` (refreshed by metadata() and by retries).
  std::optional<PartitionMetadata> cached(const TopicPartition& tp) const;

  // Admin, against the active controller (the others are skipped, see ControllerCaller). The
  // request's error, or network_exception when no controller answered.
  //
  // An attempt that got NOT_CONTROLLER or no answer may still have been applied, and the next
  // controller then answers the retry as it finds things. The elections, demote, promote and
  // set-config converge on the same state whether applied once or twice. A create_topic whose
  // first attempt was applied answers TOPIC_ALREADY_EXISTS: it is returned as the controller
  // said, so that error means "exists now, perhaps created by this call"; a caller that must
  // know reads the topic's metadata.
  asio::awaitable<CreateTopicResponse> create_topic(std::string name, int32_t partitions,
                                                    int32_t replication_factor);
  asio::awaitable<ElectLeadersResponse> elect_leaders(ElectionType type,
                                                      std::vector<TopicPartition> partitions);
  asio::awaitable<errc> demote(BrokerId broker, std::string reason);
  asio::awaitable<errc> promote(BrokerId broker);
  asio::awaitable<errc> reassign(TopicPartition tp, ReplicaList replicas);
  asio::awaitable<errc> set_config(std::string key, std::string value);
  // The controller's own view (it answers Metadata too), for describe.
  asio::awaitable<std::optional<MetadataResponse>> controller_metadata();
  // A watch of the controller's view: its metadata as soon as its metadata_offset is past
  // `seen_offset`, else after `max_wait` (then unchanged); nullopt when the controller is
  // unreachable. -1 answers at once.
  asio::awaitable<std::optional<MetadataResponse>> watch_metadata(
      int64_t seen_offset, std::chrono::milliseconds max_wait);

  void close() { pool_.close_all(); }

 private:
  asio::awaitable<CallResult> call_leader(const TopicPartition& tp, Request request,
                                          std::chrono::milliseconds timeout,
                                          PartitionMetadata& leader);
  // `extra_wait`: how long the controller may hold the request (a watch) on top of the timeout.
  asio::awaitable<CallResult> call_controller(
      Request request, std::chrono::milliseconds extra_wait = std::chrono::milliseconds(0));
  void learn(const MetadataResponse& md);
  asio::awaitable<void> refresh_topic(std::string topic);
  asio::awaitable<void> sleep(std::chrono::milliseconds d);

  asio::io_context& io_;
  ClientConfig config_;
  ClientPool pool_;
  ControllerCaller controllers_;  // over pool_
  std::map<TopicPartition, PartitionMetadata> leaders_;
  std::map<BrokerId, Endpoint> brokers_;  // client endpoints
  size_t next_bootstrap_ = 0;
  // Metadata requests in flight by topic; cancelled (woken) when the answer is learnt.
  std::map<std::string, std::shared_ptr<asio::steady_timer>> refreshing_;
};

// A Client on its own io thread; every call blocks until the coroutine finishes.
class SyncClient {
 public:
  explicit SyncClient(ClientConfig config);
  ~SyncClient();
  SyncClient(const SyncClient&) = delete;
  SyncClient& operator=(const SyncClient&) = delete;

  SendResult send(const TopicPartition& tp, std::vector<std::string> values, Acks acks);
  PollResult poll(const TopicPartition& tp, Offset from, int32_t max_bytes = 1 << 20,
                  std::chrono::milliseconds max_wait = std::chrono::milliseconds(0));
  std::optional<MetadataResponse> metadata(std::vector<std::string> topics = {});
  std::optional<MetadataResponse> controller_metadata();
  std::optional<MetadataResponse> watch_metadata(int64_t seen_offset,
                                                 std::chrono::milliseconds max_wait);
  CreateTopicResponse create_topic(const std::string& name, int32_t partitions,
                                   int32_t replication_factor);
  ElectLeadersResponse elect_leaders(ElectionType type, std::vector<TopicPartition> partitions);
  errc demote(BrokerId broker, const std::string& reason);
  errc promote(BrokerId broker);
  errc reassign(const TopicPartition& tp, const ReplicaList& replicas);
  errc set_config(const std::string& key, const std::string& value);

  // Polls metadata until `tp` has a leader for which `accept` holds, or `timeout` passes.
  std::optional<PartitionMetadata> wait_for_leader(
      const TopicPartition& tp, std::chrono::milliseconds timeout,
      const std::function<bool(const PartitionMetadata&)>& accept = nullptr);
  // Reads `tp` from `from` to the high watermark as it stands when the read starts.
  std::optional<std::vector<Record>> read_all(const TopicPartition& tp, Offset from = Offset{0});

 private:
  template <typename T>
  T run(asio::awaitable<T> op);

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  Client client_;
  std::thread thread_;
};

}  // namespace faultline::cluster
