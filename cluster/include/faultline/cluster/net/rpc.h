// Request/response over TCP with the frames of wire/codec.h (standalone Asio, C++20 coroutines).
//
// A connection carries many requests at once: the server runs each request as its own coroutine
// and answers in completion order, and the client matches answers by correlation id. So a
// long-polling fetch never holds up a heartbeat on the same connection (Kafka instead orders
// requests per connection and opens more connections; multiplexing keeps one per peer).
//
// Threading: a server or client belongs to one io_context run by one thread; no locks.
#pragma once

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <system_error>

#include "faultline/cluster/config.h"
#include "faultline/cluster/wire/codec.h"

namespace faultline::cluster {

// Completion token of awaited operations whose errors are values, not exceptions:
// `auto [ec, n] = co_await op(..., use_tuple)`. (asio::as_tuple is experimental in Asio 1.22.)
inline constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

// Which listener a request arrived on. Brokers serve replication only on the internal one
// (ARCHITECTURE.md §2: the client network and the replication network are separate).
enum class ListenerKind : uint8_t { internal, client };

// An acceptor listening on `endpoint` (port 0 picks a free port), with SO_REUSEADDR so a restarted
// process binds its port again at once; throws std::system_error when it can't. Shared by every
// listener of the cluster (RpcServer, the brokers' Kafka listener).
asio::ip::tcp::acceptor listen_on(asio::io_context& io, const Endpoint& endpoint);
// "address:port" of a connected socket's peer, "?" when it is not known (for logs).
std::string peer_name(const asio::ip::tcp::socket& s);

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual asio::awaitable<Response> handle(Request request, ListenerKind listener) = 0;
};

class RpcServer {
 public:
  // Binds the endpoint at once (port 0 picks a free port); throws std::system_error when it can't.
  RpcServer(asio::io_context& io, const Endpoint& endpoint, ListenerKind kind,
            RequestHandler& handler, uint32_t max_frame_bytes = kMaxFrameBytes);
  ~RpcServer();
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  void start();
  // Closes the listener and every connection; requests in flight finish without an answer.
  void stop();
  uint16_t port() const { return port_; }
  size_t open_connections() const;

 private:
  struct Connection;
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(std::shared_ptr<Connection> c);
  asio::awaitable<void> answer(std::shared_ptr<Connection> c, int32_t correlation_id,
                               Request request);

  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  ListenerKind kind_;
  RequestHandler& handler_;
  uint32_t max_frame_bytes_;
  uint16_t port_ = 0;
  bool stopped_ = false;
  uint64_t next_connection_id_ = 1;
  std::map<uint64_t, std::weak_ptr<Connection>> connections_;
};

struct CallResult {
  // Empty on an answer. Otherwise connection_refused, timed_out, connection_reset, bad_message...
  std::error_code error;
  // With an error: whether the request may have reached the server, so its effect is unknown
  // (a produce that timed out after being written may still commit).
  bool maybe_sent = false;
  Response response;
};

// One multiplexed connection to one endpoint, (re)connected on demand.
class RpcClient {
 public:
  RpcClient(asio::io_context& io, Endpoint endpoint);
  ~RpcClient();
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Sends `message` (any request type) and waits at most `timeout`, connecting included, for its
  // answer. Not a coroutine itself: the Request is built here, because GCC 12 rejects a temporary
  // Request (whose ReplicaLists hold arrays) living across a co_await in the caller's frame.
  template <typename Message>
  asio::awaitable<CallResult> call(Message message, std::chrono::milliseconds timeout) {
    return call_request(Request(std::move(message)), timeout);
  }
  asio::awaitable<CallResult> call_request(Request request, std::chrono::milliseconds timeout);
  void close();
  const Endpoint& endpoint() const { return endpoint_; }

  struct State;  // connection state shared with its reader and writer coroutines (rpc.cpp)

 private:
  Endpoint endpoint_;
  std::shared_ptr<State> state_;
};

// Connections by endpoint, created on first use and kept until close_all().
class ClientPool {
 public:
  explicit ClientPool(asio::io_context& io) : io_(io) {}
  RpcClient& get(const Endpoint& endpoint);
  void close_all();

 private:
  asio::io_context& io_;
  std::map<std::string, std::unique_ptr<RpcClient>> clients_;
};

}  // namespace faultline::cluster
