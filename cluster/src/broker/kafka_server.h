// The broker's Kafka-protocol listener: TCP framing and connection handling around KafkaGateway.
//
// Like Kafka, each connection is served one request at a time, answers in request order (a
// client may pipeline; the next frame is read after the answer is written). A frame that cannot
// be decoded, an unknown API or an unsupported version closes that connection only (ApiVersions
// excepted: an unsupported version of it is answered with the versions served, as Kafka does);
// every other connection keeps being served.
//
// Threading: the broker's io_context thread, like the rest of the broker.
#pragma once

#include <asio.hpp>
#include <cstdint>
#include <map>
#include <memory>

#include "broker/kafka_gateway.h"
#include "faultline/cluster/config.h"

namespace faultline::cluster {

class KafkaServer {
 public:
  // Kafka's socket.request.max.bytes default.
  static constexpr uint32_t kMaxRequestBytes = 100u << 20;

  // Binds at once (port 0: ephemeral); throws std::system_error when it can't.
  KafkaServer(asio::io_context& io, const Endpoint& endpoint, KafkaBackend& backend);
  ~KafkaServer();
  KafkaServer(const KafkaServer&) = delete;
  KafkaServer& operator=(const KafkaServer&) = delete;

  void start();
  void stop();
  uint16_t port() const { return port_; }

 private:
  struct Connection;
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(std::shared_ptr<Connection> c);
  // The answer frame for one request frame; empty: none is due (acks=0); nullopt: close.
  asio::awaitable<std::optional<std::string>> answer(const std::string& frame,
                                                     const std::string& peer);

  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  KafkaGateway gateway_;
  uint16_t port_ = 0;
  bool stopped_ = false;
  uint64_t next_connection_id_ = 1;
  std::map<uint64_t, std::weak_ptr<Connection>> connections_;
};

}  // namespace faultline::cluster
