#include "broker/kafka_server.h"

#include <spdlog/spdlog.h>

#include "faultline/cluster/kafka/protocol.h"
#include "faultline/cluster/net/rpc.h"

namespace faultline::cluster {

using asio::awaitable;
using asio::ip::tcp;

struct KafkaServer::Connection {
  explicit Connection(tcp::socket s) : socket(std::move(s)) {}
  tcp::socket socket;
  std::string peer;
  void close() {
    std::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
};

namespace {

// Reads one frame's body (after its i32 size). An error, or a size that is negative or over the
// limit (bad_message): the connection ends.
awaitable<std::error_code> read_frame(tcp::socket& socket, std::string& body) {
  char prefix[kFrameSizeBytes];
  auto [ec, n] = co_await asio::async_read(socket, asio::buffer(prefix), use_tuple);
  if (ec)
    co_return ec;
  // Kafka frames have the cluster's own size prefix and the same smallest header (8 bytes).
  uint32_t size = 0;
  if (decode_frame_size(std::span<const char, kFrameSizeBytes>(prefix, kFrameSizeBytes),
                        KafkaServer::kMaxRequestBytes, size) != errc::none)
    co_return std::make_error_code(std::errc::bad_message);
  body.resize(size);
  auto [ec2, n2] = co_await asio::async_read(socket, asio::buffer(body), use_tuple);
  co_return ec2;
}

}  // namespace

KafkaServer::KafkaServer(asio::io_context& io, const Endpoint& endpoint, KafkaBackend& backend)
    : io_(io),
      acceptor_(listen_on(io, endpoint)),
      gateway_(backend),
      port_(acceptor_.local_endpoint().port()) {}

KafkaServer::~KafkaServer() {
  stop();
}

void KafkaServer::start() {
  asio::co_spawn(io_, accept_loop(), asio::detached);
}

void KafkaServer::stop() {
  if (stopped_)
    return;
  stopped_ = true;
  std::error_code ignored;
  acceptor_.close(ignored);
  for (auto& [id, weak] : connections_)
    if (auto c = weak.lock())
      c->close();
  connections_.clear();
}

awaitable<void> KafkaServer::accept_loop() {
  while (!stopped_) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
    if (stopped_)
      co_return;
    if (ec) {
      spdlog::warn("event=accept_failed listener=kafka port={} error=\"{}\"", port_, ec.message());
      asio::steady_timer t(io_, std::chrono::milliseconds(100));
      co_await t.async_wait(use_tuple);
      continue;
    }
    std::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto c = std::make_shared<Connection>(std::move(socket));
    c->peer = peer_name(c->socket);
    asio::co_spawn(io_, serve(c), asio::detached);
  }
}

awaitable<void> KafkaServer::serve(std::shared_ptr<Connection> c) {
  uint64_t id = next_connection_id_++;
  connections_[id] = c;
  std::string frame;
  while (!stopped_) {
    if (auto ec = co_await read_frame(c->socket, frame)) {
      if (ec == std::errc::bad_message)
        spdlog::warn("event=bad_frame listener=kafka peer={} action=close_connection", c->peer);
      break;
    }
    auto out = co_await answer(frame, c->peer);
    if (!out)
      break;
    if (out->empty())
      continue;
    auto [ec, n] = co_await asio::async_write(c->socket, asio::buffer(*out), use_tuple);
    if (ec)
      break;
  }
  c->close();
  connections_.erase(id);
}

awaitable<std::optional<std::string>> KafkaServer::answer(const std::string& frame,
                                                          const std::string& peer) {
  std::span<const char> bytes(frame.data(), frame.size());
  size_t body_at = 0;
  auto header = kafka::decode_header(bytes, body_at);
  if (!header) {
    spdlog::warn("event=bad_frame listener=kafka peer={} error=header action=close_connection",
                 peer);
    co_return std::nullopt;
  }
  kafka::Request request;
  auto error = kafka::decode_request(*header, bytes.subspan(body_at), request);
  if (error == kafka::DecodeError::unsupported_version &&
      header->api_key == static_cast<int16_t>(kafka::ApiKey::api_versions))
    co_return kafka::encode_api_versions_unsupported(header->correlation_id);
  if (error != kafka::DecodeError::none) {
    static constexpr const char* kWhy[] = {"none", "unsupported_api", "unsupported_version",
                                           "malformed"};
    spdlog::warn(
        "event=bad_request listener=kafka peer={} api_key={} version={} error={} "
        "action=close_connection",
        peer, header->api_key, header->api_version, kWhy[static_cast<int>(error)]);
    co_return std::nullopt;
  }
  std::optional<kafka::Response> response;
  try {
    response = co_await gateway_.handle(std::move(request));
  } catch (const std::exception& e) {
    spdlog::error("event=handler_failed listener=kafka peer={} api_key={} error=\"{}\"", peer,
                  header->api_key, e.what());
    co_return std::nullopt;
  }
  if (!response)
    co_return std::string();
  co_return kafka::encode_response(*header, *response);
}

}  // namespace faultline::cluster
