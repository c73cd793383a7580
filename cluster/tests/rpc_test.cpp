// The RPC layer over real loopback sockets in one process.
#include "faultline/cluster/net/rpc.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <asio.hpp>
#include <thread>

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
using asio::awaitable;
using asio::use_awaitable;

// `size` bytes that depend on `seed` at every position, so a misplaced or torn piece shows.
std::string pattern(int64_t seed, size_t size) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i)
    out[i] = static_cast<char>((seed * 131 + static_cast<int64_t>(i) * 7) & 0xff);
  return out;
}

// Answers MetadataRequest{topics} with one partition per topic, after the delay in the topic's
// name ("30" waits 30 ms; "never" waits a minute), so a test controls the order of answers.
// Answers FetchRequest{fetch_offset, max_bytes} at once with max_bytes records of
// pattern(fetch_offset).
class DelayedEcho final : public RequestHandler {
 public:
  explicit DelayedEcho(asio::io_context& io) : io_(io) {}
  awaitable<Response> handle(Request request, ListenerKind) override {
    ++handled;
    if (auto* m = std::get_if<MetadataRequest>(&request)) {
      MetadataResponse resp;
      for (const auto& t : m->topics) {
        auto delay = t == "never" ? std::chrono::milliseconds(60000)
                                  : std::chrono::milliseconds(std::stoi(t));
        asio::steady_timer timer(io_, delay);
        co_await timer.async_wait(use_tuple);
        PartitionMetadata pm;
        pm.tp = {t, PartitionIndex{0}};
        resp.partitions.push_back(pm);
      }
      co_return resp;
    }
    if (auto* f = std::get_if<FetchRequest>(&request)) {
      FetchResponse resp;
      resp.records = SharedBytes(pattern(f->fetch_offset, static_cast<size_t>(f->max_bytes)));
      co_return resp;
    }
    co_return error_response_for(request, errc::invalid_request);
  }
  int handled = 0;

 private:
  asio::io_context& io_;
};

class Rpc : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<RpcServer>(io_, Endpoint{"127.0.0.1", 0}, ListenerKind::internal,
                                          handler_);
    server_->start();
  }
  Endpoint endpoint() const { return {"127.0.0.1", server_->port()}; }

  // Runs `body` as a coroutine to completion (bounded, so a hang fails instead of blocking CI).
  template <typename F>
  void run(F body) {
    bool done = false;
    asio::co_spawn(
        io_,
        [&]() -> awaitable<void> {
          co_await body();
          done = true;
          io_.stop();
        },
        asio::detached);
    io_.run_for(10s);
    io_.restart();
    ASSERT_TRUE(done) << "the exchange did not finish";
  }

  asio::io_context io_;
  DelayedEcho handler_{io_};
  std::unique_ptr<RpcServer> server_;
};

// GCC 12 rejects a braced-init-list temporary (its backing array) in a full-expression with
// co_await ("array used as initializer"), and gtest's macros hold such temporaries, so the
// coroutines below build requests with a plain function and only record what happened; the
// assertions run after them.
MetadataRequest delayed(const std::string& delay) {
  MetadataRequest r;
  r.topics.push_back(delay);
  return r;
}

// One call whose answer is appended to `answered`; `remaining` counts the calls still out.
awaitable<void> call_and_record(RpcClient& client, std::string delay,
                                std::vector<std::string>& answered, int& remaining,
                                asio::steady_timer& all_done) {
  CallResult r = co_await client.call(delayed(delay), 5s);
  answered.push_back(r.error ? "error: " + r.error.message()
                             : std::get<MetadataResponse>(r.response).partitions.at(0).tp.topic);
  if (--remaining == 0)
    all_done.cancel();
}

TEST_F(Rpc, ConcurrentCallsOnOneConnectionAreAnsweredOutOfOrder) {
  RpcClient client(io_, endpoint());
  std::vector<std::string> answered;
  run([&]() -> awaitable<void> {
    int remaining = 3;
    asio::steady_timer all_done(io_, 10s);
    for (std::string delay : std::vector<std::string>{"200", "10", "100"}) {
      asio::co_spawn(io_, call_and_record(client, delay, answered, remaining, all_done),
                     asio::detached);
    }
    co_await all_done.async_wait(use_tuple);
  });
  // The quick answers did not wait behind the slow one.
  EXPECT_EQ(answered, (std::vector<std::string>{"10", "100", "200"}));
  EXPECT_EQ(server_->open_connections(), 1u);
}

// Fetches `size` bytes of pattern(seed) and records whether they arrived whole.
awaitable<void> fetch_and_check(RpcClient& client, int64_t seed, int32_t size,
                                std::vector<std::string>& wrong, int& remaining,
                                asio::steady_timer& all_done) {
  FetchRequest req;
  req.fetch_offset = seed;
  req.max_bytes = size;
  CallResult r = co_await client.call(std::move(req), 5s);
  if (r.error)
    wrong.push_back(fmt::format("{}: {}", seed, r.error.message()));
  else if (std::get<FetchResponse>(r.response).records != pattern(seed, static_cast<size_t>(size)))
    wrong.push_back(fmt::format("{}: {} bytes, not as sent", seed, size));
  if (--remaining == 0)
    all_done.cancel();
}

// Answers that carry batches go out as gather writes (the batch attached, not copied, and the
// frames queued meanwhile in one write) and are decoded as slices of the frame read: many of them
// in flight on one connection, small and large mixed, must each arrive whole and in its place.
TEST_F(Rpc, ManyAnswersWithLargeBatchesInFlightArriveWhole) {
  RpcClient client(io_, endpoint());
  std::vector<std::string> wrong;
  constexpr int kCalls = 200;
  run([&]() -> awaitable<void> {
    int remaining = kCalls;
    asio::steady_timer all_done(io_, 10s);
    for (int i = 0; i < kCalls; ++i) {
      // Below, at and above the attachment threshold, up to 1 MiB.
      const int32_t size = i % 4 == 0 ? 100 : i % 4 == 1 ? 4096 : (i % 4 == 2 ? 65537 : 1 << 20);
      asio::co_spawn(io_, fetch_and_check(client, i, size, wrong, remaining, all_done),
                     asio::detached);
    }
    co_await all_done.async_wait(use_tuple);
  });
  EXPECT_TRUE(wrong.empty()) << fmt::format("{}", fmt::join(wrong, "\n"));
  EXPECT_EQ(handler_.handled, kCalls);
}

// Sends `bytes` on a fresh raw connection and returns how the server reacted to it.
awaitable<std::error_code> send_raw(asio::io_context& io, uint16_t port, std::string bytes) {
  asio::ip::tcp::socket raw(io);
  co_await raw.async_connect({asio::ip::make_address("127.0.0.1"), port}, use_awaitable);
  co_await asio::async_write(raw, asio::buffer(bytes), use_awaitable);
  char byte = 0;
  auto [ec, n] = co_await raw.async_read_some(asio::buffer(&byte, 1), use_tuple);
  co_return ec;
}

TEST_F(Rpc, AMalformedFrameClosesOnlyItsConnection) {
  RpcClient good(io_, endpoint());
  CallResult first, second;
  std::error_code bad;
  run([&]() -> awaitable<void> {
    first = co_await good.call(delayed("0"), 5s);
    // A plausible size, then an api key no server knows.
    bad = co_await send_raw(io_, server_->port(),
                            std::string("\0\0\0\x08\x7f\x7f\0\0\0\0\0\x01", 12));
    second = co_await good.call(delayed("0"), 5s);
  });
  EXPECT_FALSE(first.error);
  EXPECT_EQ(bad, asio::error::eof) << "the server should close the bad connection";
  EXPECT_FALSE(second.error) << "the other connection must keep being served";
}

TEST_F(Rpc, AnOversizedFrameIsRefusedBeforeAllocating) {
  std::error_code bad;
  run([&]() -> awaitable<void> {
    bad = co_await send_raw(io_, server_->port(), std::string("\x7f\x7f\x7f\x7f", 4));
  });
  EXPECT_EQ(bad, asio::error::eof);
  EXPECT_EQ(handler_.handled, 0);
}

TEST_F(Rpc, ATimeoutIsReportedAsMaybeSent) {
  RpcClient client(io_, endpoint());
  CallResult slow, again;
  run([&]() -> awaitable<void> {
    slow = co_await client.call(delayed("never"), 100ms);
    again = co_await client.call(delayed("0"), 5s);
  });
  EXPECT_EQ(slow.error, asio::error::timed_out);
  EXPECT_TRUE(slow.maybe_sent) << "the server may act on a request whose answer never came";
  EXPECT_FALSE(again.error) << "the connection stays usable";
}

TEST_F(Rpc, ARefusedConnectionWasNeverSent) {
  uint16_t port = server_->port();
  server_.reset();
  RpcClient client(io_, {"127.0.0.1", port});
  CallResult r;
  run([&]() -> awaitable<void> { r = co_await client.call(delayed("0"), 2s); });
  EXPECT_EQ(r.error, asio::error::connection_refused);
  EXPECT_FALSE(r.maybe_sent);
}

TEST_F(Rpc, CallsInFlightFailWhenTheServerGoesAndTheClientReconnectsWhenItReturns) {
  uint16_t port = server_->port();
  RpcClient client(io_, endpoint());
  CallResult cut, again;
  auto started = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration cut_after{};
  run([&]() -> awaitable<void> {
    asio::steady_timer stop_soon(io_, 100ms);
    stop_soon.async_wait([&](std::error_code) { server_->stop(); });
    cut = co_await client.call(delayed("never"), 5s);
    cut_after = std::chrono::steady_clock::now() - started;
    server_ = std::make_unique<RpcServer>(io_, Endpoint{"127.0.0.1", port}, ListenerKind::internal,
                                          handler_);
    server_->start();
    again = co_await client.call(delayed("0"), 5s);
  });
  EXPECT_TRUE(cut.error);
  EXPECT_NE(cut.error, asio::error::timed_out) << "a closed connection fails at once";
  EXPECT_LT(cut_after, 4s);
  EXPECT_TRUE(cut.maybe_sent);
  EXPECT_FALSE(again.error) << again.error.message();
}

}  // namespace
}  // namespace faultline::cluster
