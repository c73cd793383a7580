// The broker's Kafka-protocol front end: what each Kafka request (kafka/protocol.h) becomes in the
// cluster's own API (wire/messages.h), and how the answers are translated back.
//
// Nothing here has rules of its own: a Kafka Produce of three partitions is three of the broker's
// ProduceRequests, answered by the same code that answers faultline's client, so acks=all, the
// ISR, fencing and the high watermark mean the same to a librdkafka producer. What the gateway
// adds is the translation: the record format (kafka/records.h), error codes, Kafka's
// multi-partition requests and the Fetch long-poll across partitions.
//
// What is not served, and what a client sees instead:
// - compressed, transactional or idempotent batches: UNSUPPORTED_COMPRESSION_TYPE / INVALID_RECORD;
// - ListOffsets by timestamp (no time index): INVALID_REQUEST for that partition;
// - CreateTopics with explicit assignments, configs, default sizes (-1) or validate_only: refused
//   per topic with Kafka's code and a message (the controller places replicas itself);
// - fetch sessions (KIP-227): every Fetch is answered in full with session id 0, as Kafka does
//   when it declines to create a session;
// - a Fetch with replica_id >= 0: replication runs on the internal listener only (INVALID_REQUEST).
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <vector>

#include "faultline/cluster/errc.h"
#include "faultline/cluster/kafka/protocol.h"
#include "faultline/cluster/net/rpc.h"
#include "faultline/cluster/types.h"
#include "faultline/cluster/wire/messages.h"

namespace faultline::cluster {

// What the gateway needs from the broker.
class KafkaBackend {
 public:
  virtual ~KafkaBackend() = default;
  // The broker's own request handling, as on its client listener.
  virtual asio::awaitable<Response> handle(Request request, ListenerKind listener) = 0;
  // Until any of `tps` gets new data, a new high watermark or a leadership change, or max_wait.
  virtual asio::awaitable<void> wait_for_any(const std::vector<TopicPartition>& tps,
                                             std::chrono::milliseconds max_wait) = 0;
  // Creates a topic through the controller (round-robin placement, as `faultline topic create`).
  // network_exception when the controller cannot be reached.
  virtual asio::awaitable<errc> create_topic(std::string name, int32_t partitions,
                                             int32_t replication_factor) = 0;
};

// The Kafka error code a client must see for the cluster's own error. Kafka's codes pass through
// (errc uses Kafka's numbering); the local ones are translated by what the client may conclude:
// leadership_lost_after_append and io_error leave the outcome of a produce unknown, so they become
// REQUEST_TIMED_OUT, which a Kafka client reports as "possibly persisted", never as a failure.
int16_t to_kafka_error(errc e) noexcept;

// The Kafka Metadata answer for the cluster's. Brokers: the registered, unfenced ones that run a
// Kafka listener (KRaft also leaves fenced brokers out); the first of them is named controller,
// since every broker forwards admin requests. `topics`: nullopt for all; a topic the cluster does
// not have gets UNKNOWN_TOPIC_OR_PARTITION.
kafka::MetadataResponse to_kafka_metadata(const MetadataResponse& cluster,
                                          const std::optional<std::vector<std::string>>& topics);

class KafkaGateway {
 public:
  explicit KafkaGateway(KafkaBackend& backend) : backend_(backend) {}

  // The answer to one decoded request; nullopt for a Produce with acks=0 (Kafka sends none).
  asio::awaitable<std::optional<kafka::Response>> handle(kafka::Request request);

 private:
  asio::awaitable<kafka::MetadataResponse> metadata(kafka::MetadataRequest req);
  asio::awaitable<kafka::ProduceResponse> produce(kafka::ProduceRequest req);
  asio::awaitable<kafka::ProducePartitionResponse> produce_one(std::string topic,
                                                               kafka::ProducePartition part,
                                                               Acks acks, int32_t timeout_ms);
  asio::awaitable<kafka::FetchResponse> fetch(kafka::FetchRequest req);
  // One pass over every partition of `req` without waiting; the bytes of records it found.
  asio::awaitable<size_t> fetch_pass(const kafka::FetchRequest& req, kafka::FetchResponse& resp);
  asio::awaitable<kafka::ListOffsetsResponse> list_offsets(kafka::ListOffsetsRequest req);
  asio::awaitable<kafka::CreateTopicsResponse> create_topics(kafka::CreateTopicsRequest req);

  KafkaBackend& backend_;
};

}  // namespace faultline::cluster
