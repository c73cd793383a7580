#include "faultline/cluster/net/rpc.h"

#include <spdlog/spdlog.h>

#include <array>
#include <deque>
#include <unordered_map>
#include <vector>

namespace faultline::cluster {

using asio::awaitable;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

// A SYN into a partitioned network is retried by the kernel for minutes; a client gives up much
// sooner and tries again, so it reconnects promptly once the network heals.
constexpr auto kConnectTimeout = 1500ms;

// Reads one frame body (after its size prefix) into a buffer of its own, not zeroed first: the
// batches decoded from it share that buffer (shared_bytes.h).
awaitable<std::error_code> read_frame(tcp::socket& socket, uint32_t max_bytes, SharedBytes& body) {
  std::array<char, kFrameSizeBytes> prefix{};
  auto [ec, n] = co_await asio::async_read(socket, asio::buffer(prefix), use_tuple);
  if (ec)
    co_return ec;
  uint32_t size = 0;
  if (errc e = decode_frame_size(prefix, max_bytes, size); e != errc::none) {
    co_return make_error_code(e);
  }
  auto [frame, space] = SharedBytes::allocate(size);
  auto [ec2, n2] =
      co_await asio::async_read(socket, asio::buffer(space.data(), space.size()), use_tuple);
  body = std::move(frame);
  co_return ec2;
}

// Frames waiting to be written to one socket, written in order.
struct Outbox {
  std::deque<OutFrame> frames;
  bool writing = false;
};

// At most this many frames go out in one gather write.
constexpr size_t kFramesPerWrite = 64;

// Drains `outbox` into `socket`: the frames queued meanwhile go out together, each frame's
// attached batches straight from their buffers. `on_error` runs once if a write fails.
template <typename OnError>
awaitable<void> drain(std::shared_ptr<tcp::socket> socket, std::shared_ptr<Outbox> outbox,
                      OnError on_error) {
  std::vector<OutFrame> batch;
  std::vector<asio::const_buffer> pieces;
  while (!outbox->frames.empty()) {
    batch.clear();
    pieces.clear();
    while (!outbox->frames.empty() && batch.size() < kFramesPerWrite) {
      batch.push_back(std::move(outbox->frames.front()));
      outbox->frames.pop_front();
    }
    for (const OutFrame& frame : batch)
      frame.for_each_piece(
          [&](std::span<const char> piece) { pieces.emplace_back(piece.data(), piece.size()); });
    auto [ec, n] = co_await asio::async_write(*socket, pieces, use_tuple);
    if (ec) {
      outbox->frames.clear();
      outbox->writing = false;
      on_error(ec);
      co_return;
    }
  }
  outbox->writing = false;
}

template <typename OnError>
void send(asio::io_context& io, const std::shared_ptr<tcp::socket>& socket,
          const std::shared_ptr<Outbox>& outbox, OutFrame frame, OnError on_error) {
  outbox->frames.push_back(std::move(frame));
  if (outbox->writing)
    return;
  outbox->writing = true;
  asio::co_spawn(io, drain(socket, outbox, std::move(on_error)), asio::detached);
}

void close_socket(tcp::socket& socket) {
  std::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

}  // namespace

// ---- server ------------------------------------------------------------------------------------

struct RpcServer::Connection {
  explicit Connection(tcp::socket s)
      : socket(std::make_shared<tcp::socket>(std::move(s))), outbox(std::make_shared<Outbox>()) {}
  std::shared_ptr<tcp::socket> socket;
  std::shared_ptr<Outbox> outbox;
  std::string peer;
  bool closed = false;
  void close() {
    if (closed)
      return;
    closed = true;
    close_socket(*socket);
  }
};

tcp::acceptor listen_on(asio::io_context& io, const Endpoint& endpoint) {
  tcp::endpoint ep(asio::ip::make_address(endpoint.host), endpoint.port);
  tcp::acceptor acceptor(io);
  acceptor.open(ep.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(ep);
  acceptor.listen();
  return acceptor;
}

std::string peer_name(const tcp::socket& s) {
  std::error_code ec;
  auto ep = s.remote_endpoint(ec);
  return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
}

RpcServer::RpcServer(asio::io_context& io, const Endpoint& endpoint, ListenerKind kind,
                     RequestHandler& handler, uint32_t max_frame_bytes)
    : io_(io),
      acceptor_(listen_on(io, endpoint)),
      kind_(kind),
      handler_(handler),
      max_frame_bytes_(max_frame_bytes),
      port_(acceptor_.local_endpoint().port()) {}

RpcServer::~RpcServer() {
  stop();
}

void RpcServer::start() {
  asio::co_spawn(io_, accept_loop(), asio::detached);
}

void RpcServer::stop() {
  if (stopped_)
    return;
  stopped_ = true;
  std::error_code ignored;
  acceptor_.close(ignored);
  for (auto& [id, weak] : connections_) {
    if (auto c = weak.lock())
      c->close();
  }
  connections_.clear();
}

size_t RpcServer::open_connections() const {
  size_t n = 0;
  for (const auto& [id, weak] : connections_)
    n += weak.expired() ? 0 : 1;
  return n;
}

awaitable<void> RpcServer::accept_loop() {
  while (!stopped_) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
    if (stopped_)
      co_return;
    if (ec) {
      // EMFILE and friends: back off instead of spinning.
      spdlog::warn("event=accept_failed port={} error=\"{}\"", port_, ec.message());
      asio::steady_timer t(io_, 100ms);
      co_await t.async_wait(use_tuple);
      continue;
    }
    std::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto c = std::make_shared<Connection>(std::move(socket));
    c->peer = peer_name(*c->socket);
    asio::co_spawn(io_, serve(c), asio::detached);
  }
}

awaitable<void> RpcServer::serve(std::shared_ptr<Connection> c) {
  uint64_t id = next_connection_id_++;
  connections_[id] = c;
  SharedBytes body;
  const char* listener = kind_ == ListenerKind::internal ? "internal" : "client";
  while (!c->closed) {
    std::error_code ec = co_await read_frame(*c->socket, max_frame_bytes_, body);
    if (ec) {
      if (ec.category() == cluster_category()) {
        spdlog::warn("event=bad_frame listener={} peer={} error=\"{}\" action=close_connection",
                     listener, c->peer, ec.message());
      }
      break;
    }
    DecodedRequest decoded = decode_request(body);
    if (decoded.error != errc::none) {
      // Nothing of a bad frame is trusted, not even to answer it: this connection closes and
      // every other one keeps being served.
      spdlog::warn(
          "event=bad_frame listener={} peer={} api_key={} version={} error={} "
          "action=close_connection",
          listener, c->peer, decoded.header.api_key, decoded.header.api_version,
          errc_name(decoded.error));
      break;
    }
    asio::co_spawn(io_, answer(c, decoded.header.correlation_id, std::move(decoded.request)),
                   asio::detached);
  }
  c->close();
  connections_.erase(id);
}

awaitable<void> RpcServer::answer(std::shared_ptr<Connection> c, int32_t correlation_id,
                                  Request request) {
  ApiKey key = api_key(request);
  Response response;
  try {
    response = co_await handler_.handle(std::move(request), kind_);
  } catch (const std::exception& e) {
    spdlog::error("event=handler_failed api={} peer={} error=\"{}\"", api_name(key), c->peer,
                  e.what());
    c->close();
    co_return;
  }
  if (c->closed)
    co_return;
  OutFrame frame;
  encode_response(correlation_id, response, frame);
  send(io_, c->socket, c->outbox, std::move(frame), [c](std::error_code) { c->close(); });
}

// ---- client ------------------------------------------------------------------------------------

struct RpcClient::State {
  State(asio::io_context& io, Endpoint ep) : io(io), endpoint(std::move(ep)) {}

  struct Pending {
    std::shared_ptr<asio::steady_timer> timer;
    size_t expected_index = 0;
    std::optional<Response> response;
    std::error_code error;
  };
  enum class Phase { idle, connecting, connected };

  asio::io_context& io;
  Endpoint endpoint;
  Phase phase = Phase::idle;
  uint64_t generation = 0;  // of the current socket; stale readers and writers check it
  std::shared_ptr<tcp::socket> socket;
  std::shared_ptr<Outbox> outbox;
  std::error_code connect_error;
  std::vector<std::shared_ptr<asio::steady_timer>> connect_waiters;
  int32_t next_correlation_id = 1;
  std::unordered_map<int32_t, std::shared_ptr<Pending>> pending;

  void wake_connect_waiters() {
    auto waiters = std::move(connect_waiters);
    connect_waiters.clear();
    for (auto& t : waiters)
      t->cancel();
  }

  // The connection of generation `gen` is gone: every request on it fails.
  void fail(uint64_t gen, std::error_code ec) {
    if (gen != generation || phase != Phase::connected)
      return;
    phase = Phase::idle;
    close_socket(*socket);
    auto failed = std::move(pending);
    pending.clear();
    for (auto& [id, p] : failed) {
      p->error = ec;
      p->timer->cancel();
    }
  }
};

namespace {

awaitable<void> read_responses(std::shared_ptr<RpcClient::State> st, uint64_t gen);

awaitable<void> connect(std::shared_ptr<RpcClient::State> st) {
  using Phase = RpcClient::State::Phase;
  st->phase = Phase::connecting;
  uint64_t gen = ++st->generation;
  auto socket = std::make_shared<tcp::socket>(st->io);
  std::error_code ec;
  tcp::resolver resolver(st->io);
  auto [rec, results] = co_await resolver.async_resolve(
      st->endpoint.host, std::to_string(st->endpoint.port), use_tuple);
  ec = rec;
  if (!ec) {
    asio::steady_timer timeout(st->io, kConnectTimeout);
    timeout.async_wait([socket](std::error_code e) {
      if (!e)
        close_socket(*socket);
    });
    auto [cec, ep] = co_await asio::async_connect(*socket, results, use_tuple);
    timeout.cancel();
    ec = cec == asio::error::operation_aborted ? asio::error::timed_out : cec;
  }
  if (gen != st->generation)
    co_return;  // closed meanwhile
  if (ec) {
    st->phase = Phase::idle;
    st->connect_error = ec;
  } else {
    std::error_code ignored;
    socket->set_option(tcp::no_delay(true), ignored);
    st->socket = socket;
    st->outbox = std::make_shared<Outbox>();
    st->phase = Phase::connected;
    st->connect_error.clear();
    asio::co_spawn(st->io, read_responses(st, gen), asio::detached);
  }
  st->wake_connect_waiters();
}

awaitable<void> read_responses(std::shared_ptr<RpcClient::State> st, uint64_t gen) {
  auto socket = st->socket;
  SharedBytes body;
  while (gen == st->generation) {
    std::error_code ec = co_await read_frame(*socket, kMaxFrameBytes, body);
    if (ec) {
      st->fail(gen, ec);
      co_return;
    }
    DecodedResponse decoded = decode_response(body);
    if (decoded.error != errc::none) {
      spdlog::warn("event=bad_response peer={} error={} action=close_connection",
                   st->endpoint.str(), errc_name(decoded.error));
      st->fail(gen, make_error_code(decoded.error));
      co_return;
    }
    auto it = st->pending.find(decoded.correlation_id);
    if (it == st->pending.end())
      continue;  // the caller timed out already
    auto p = it->second;
    st->pending.erase(it);
    if (decoded.response.index() != p->expected_index) {
      p->error = make_error_code(errc::malformed_frame);
    } else {
      p->response = std::move(decoded.response);
    }
    p->timer->cancel();
  }
}

}  // namespace

RpcClient::RpcClient(asio::io_context& io, Endpoint endpoint)
    : endpoint_(endpoint), state_(std::make_shared<State>(io, std::move(endpoint))) {}

RpcClient::~RpcClient() {
  close();
}

void RpcClient::close() {
  auto& st = *state_;
  if (st.phase == State::Phase::connected) {
    st.fail(st.generation, asio::error::operation_aborted);
  } else if (st.phase == State::Phase::connecting) {
    ++st.generation;
    st.phase = State::Phase::idle;
    st.connect_error = asio::error::operation_aborted;
    st.wake_connect_waiters();
  }
}

awaitable<CallResult> RpcClient::call_request(Request request, std::chrono::milliseconds timeout) {
  auto st = state_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (st->phase != State::Phase::connected) {
    if (st->phase == State::Phase::idle)
      asio::co_spawn(st->io, connect(st), asio::detached);
    auto waiter = std::make_shared<asio::steady_timer>(st->io, deadline);
    st->connect_waiters.push_back(waiter);
    co_await waiter->async_wait(use_tuple);
    std::erase(st->connect_waiters, waiter);
    if (st->phase != State::Phase::connected) {
      CallResult r;
      r.error = st->connect_error ? st->connect_error : asio::error::timed_out;
      co_return r;
    }
  }
  int32_t id = st->next_correlation_id++;
  auto p = std::make_shared<State::Pending>();
  p->timer = std::make_shared<asio::steady_timer>(st->io, deadline);
  p->expected_index = request.index();
  st->pending[id] = p;
  OutFrame frame;
  encode_request(id, request, frame);
  uint64_t gen = st->generation;
  send(st->io, st->socket, st->outbox, std::move(frame),
       [st, gen](std::error_code ec) { st->fail(gen, ec); });
  co_await p->timer->async_wait(use_tuple);
  st->pending.erase(id);
  CallResult r;
  if (p->response) {
    r.response = std::move(*p->response);
  } else {
    r.error = p->error ? p->error : asio::error::timed_out;
    r.maybe_sent = true;
  }
  co_return r;
}

RpcClient& ClientPool::get(const Endpoint& endpoint) {
  auto& slot = clients_[endpoint.str()];
  if (!slot)
    slot = std::make_unique<RpcClient>(io_, endpoint);
  return *slot;
}

void ClientPool::close_all() {
  for (auto& [name, client] : clients_)
    client->close();
}

}  // namespace faultline::cluster
