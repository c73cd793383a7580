// A Kafka Metadata client, so the harness can follow partition leadership of any Kafka-API cluster
// (Apache Kafka, Redpanda, or the mini-cluster's own Kafka listener) without librdkafka or Asio;
// and the conversion of its answers into the cluster's own MetadataResponse, so what watches
// faultline's controller can watch a Kafka cluster too.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "faultline/cluster/config.h"
#include "faultline/cluster/kafka/protocol.h"
#include "faultline/cluster/wire/messages.h"

namespace faultline::cluster {

// Synchronous, blocking, plain POSIX sockets. Not thread-safe: one object per calling thread.
//
// It keeps one connection open, to the broker that answered last, and drops it on any error
// (refused, reset, timeout, a malformed answer or a wrong correlation id); the next broker is then
// tried at once, in turn: the bootstrap brokers, then those listed in the latest answer.
class KafkaMetadataClient {
 public:
  // The first Metadata version with partition leader epochs (KIP-320): Kafka >= 2.1, Redpanda and
  // our listener serve it, so no ApiVersions round trip is made.
  static constexpr int16_t kMetadataVersion = 7;

  // `timeout` bounds each broker attempt as a whole: connect, send and the complete answer. Name
  // resolution (getaddrinfo) is not bounded by it.
  KafkaMetadataClient(std::vector<Endpoint> bootstrap, std::chrono::milliseconds timeout);
  ~KafkaMetadataClient();
  KafkaMetadataClient(const KafkaMetadataClient&) = delete;
  KafkaMetadataClient& operator=(const KafkaMetadataClient&) = delete;

  // Metadata of `topics` (nullopt: every topic) from the first broker that answers: the connected
  // one, then every known broker once. nullopt when none did; it then blocks for at most
  // timeout × (known brokers + 1). Topics are never auto-created: watching must not change the
  // cluster.
  std::optional<kafka::MetadataResponse> fetch(std::optional<std::vector<std::string>> topics);

  // The broker the open connection goes to; nullopt when none is open.
  std::optional<Endpoint> connected_to() const;

 private:
  class Connection;
  using Deadline = std::chrono::steady_clock::time_point;

  // Opens connection_ to `to`; false (and no connection) on failure.
  bool connect(const Endpoint& to, Deadline deadline);
  // One request on connection_, which is dropped on any failure.
  std::optional<kafka::MetadataResponse> ask(const kafka::MetadataRequest& request,
                                             Deadline deadline);
  // Bootstrap brokers, then learned ones not among them.
  std::vector<Endpoint> candidates() const;
  void learn(const kafka::MetadataResponse& answer);

  std::vector<Endpoint> bootstrap_;
  std::vector<Endpoint> learned_;  // the brokers of the latest answer
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Connection> connection_;
  size_t next_candidate_ = 0;   // where the next search starts: after the last broker that answered
  uint32_t requests_sent_ = 0;  // the correlation ids, wrapping within int32's positive range
};

// The cluster's view of a Kafka Metadata answer. Brokers: each one listed is unfenced, with
// client_endpoint = kafka_endpoint = its host:port; ids 1..expected_brokers missing from the
// answer are listed fenced (Kafka leaves unavailable brokers out). Sorted by id. Partitions: one
// per Kafka partition, error codes kept as they are (errc uses Kafka's numbers); a topic-level
// error is one PartitionMetadata for partition 0 with that error, as the cluster's own brokers
// answer for an unknown topic. Not in a Kafka answer, so left at their defaults: controller
// (Kafka's controller id is no faultline controller endpoint), metadata_offset (-1),
// partition_epoch (-1), unclean_elections.
MetadataResponse from_kafka_metadata(const kafka::MetadataResponse& kafka, int expected_brokers);

}  // namespace faultline::cluster
