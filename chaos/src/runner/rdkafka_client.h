// The workload's client on librdkafka (`[workload] client = "librdkafka"`): a real Kafka client
// against the brokers' Kafka listeners, recording the same history as faultline's own client so
// the same checker judges it.
//
// Producer: one message at a time to an explicit partition, waiting for its delivery report;
// without idempotence and without librdkafka's own retries, so a value is written at most once
// (see the .cpp for why that is the only honest setting). Consumer: the legacy simple consumer,
// one fetcher per started partition, no consumer group (the brokers serve no group coordinator).
//
// Lifecycle and threading: one client per workload thread, like cluster::SyncClient; its
// librdkafka handles are made on first use (a producer thread never starts a consumer) and
// destroyed with the client. Delivery reports are served on the calling thread (rd_kafka_poll).
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/cluster/config.h"
#include "workload_client.h"

namespace faultline::chaos {

struct RdKafkaConfig {
  std::string bootstrap;  // "host:port,..." of the brokers' Kafka listeners
  std::string topic;
  // The same budget as the faultline client's ClientConfig, so that the run's availability
  // bounds mean the same for both clients.
  std::chrono::milliseconds request_timeout{5000};    // socket.timeout.ms, request.timeout.ms
  std::chrono::milliseconds delivery_timeout{30000};  // message.timeout.ms
  std::chrono::milliseconds retry_backoff{100};       // retry.backoff.ms
  // How long one final-read poll may take to reach the high watermark.
  std::chrono::milliseconds final_read_timeout{30000};
};

// "host:port,host:port" for bootstrap.servers.
std::string kafka_bootstrap_list(const std::vector<cluster::Endpoint>& endpoints);

// How the history records a delivery report (pure): no error → ok; otherwise by the message's
// persistence status: NOT_PERSISTED → fail, POSSIBLY_PERSISTED → info, PERSISTED → ok.
checker::Outcome delivery_outcome(rd_kafka_resp_err_t err, rd_kafka_msg_status_t status);
// The whole send outcome of a delivery report: offset and broker when acknowledged and known
// (`offset` < 0 and `broker_id` < 0 mean unknown); error = rd_kafka_err2name. librdkafka 2.0 does
// not expose the leader epoch, so it is always left out.
SendOutcome delivery_send_outcome(rd_kafka_resp_err_t err, rd_kafka_msg_status_t status,
                                  int64_t offset, int32_t broker_id);

class RdKafkaWorkloadClient final : public WorkloadClient {
 public:
  explicit RdKafkaWorkloadClient(RdKafkaConfig config);
  ~RdKafkaWorkloadClient() override;
  RdKafkaWorkloadClient(const RdKafkaWorkloadClient&) = delete;
  RdKafkaWorkloadClient& operator=(const RdKafkaWorkloadClient&) = delete;

  // The first configuration error librdkafka reports for `config` (producer or consumer), if
  // any: checked once before a run starts, since the workload threads cannot stop the run.
  static std::optional<std::string> check(const RdKafkaConfig& config);

  SendOutcome send(int partition, const std::string& value, bool acks_all) override;
  PollOutcome poll(int partition, int64_t from, std::chrono::milliseconds max_wait,
                   bool final_read) override;

 private:
  struct Delivery {
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_msg_status_t status = RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    int64_t offset = -1;
    int32_t broker_id = -1;
  };
  struct Handle;
  static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);

  bool ensure_producer(bool acks_all, std::string& why);
  bool ensure_consumer(std::string& why);
  std::string position(int partition, int64_t from);
  PollOutcome read_some(int partition, int64_t from, std::chrono::milliseconds max_wait);
  PollOutcome read_to_end(int partition, int64_t from);

  RdKafkaConfig config_;
  std::unique_ptr<Handle> producer_;
  bool producer_acks_all_ = true;
  std::unique_ptr<Handle> consumer_;
  std::vector<std::optional<int64_t>> consumer_next_;  // per started partition: where it reads
  uint64_t sent_ = 0;                  // the last message's id (its delivery-report opaque)
  std::optional<Delivery> delivered_;  // the report for message `sent_`, once served
};

}  // namespace faultline::chaos
