// Brokers and clients follow the active controller of a quorum (net/controller_rotation.h): the
// pure rotation, then the broker's ControllerCaller and the client library against fake
// controllers on loopback that answer as the active one, refuse (NOT_CONTROLLER), answer nothing
// (paused) or are not there at all.
#include <gtest/gtest.h>

#include <asio.hpp>
#include <atomic>
#include <memory>
#include <thread>

#include "faultline/cluster/client/client.h"
#include "faultline/cluster/net/controller_rotation.h"
#include "faultline/cluster/net/rpc.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
using asio::awaitable;
using Clock = std::chrono::steady_clock;

// ---- the rotation alone ----------------------------------------------------------------------

std::vector<Endpoint> three() {
  return {{"127.0.0.1", 1}, {"127.0.0.1", 2}, {"127.0.0.1", 3}};
}

TEST(ControllerRotation, StartsAtTheFirstAndMovesRoundRobinPastFailures) {
  ControllerRotation r(three());
  EXPECT_EQ(r.next(), 0u);
  EXPECT_EQ(r.followed().port, 1);
  r.on_failure(0);
  EXPECT_EQ(r.next(), 1u);
  r.on_failure(1);
  r.on_failure(2);
  EXPECT_EQ(r.next(), 0u) << "round robin wraps";
  EXPECT_EQ(r.followed().port, 1) << "failures alone change whom we follow";
}

TEST(ControllerRotation, FollowsTheControllerThatAnswered) {
  ControllerRotation r(three());
  r.on_failure(0);
  EXPECT_TRUE(r.on_answer(1));
  EXPECT_EQ(r.followed().port, 2);
  EXPECT_EQ(r.next(), 1u) << "the next call starts where the last answer came from";
  EXPECT_FALSE(r.on_answer(1)) << "no change, nothing to log";
}

TEST(ControllerRotation, ConcurrentFailuresOnOneControllerSkipOnlyIt) {
  ControllerRotation r(three());
  // Two calls in flight at controller 0 both time out: the second must not skip controller 1.
  r.on_failure(0);
  r.on_failure(0);
  EXPECT_EQ(r.next(), 1u);
}

TEST(ControllerRotation, AnEmptyListFollowsNobody) {
  ControllerRotation r({});
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.followed(), Endpoint{});
}

// ---- fake controllers ------------------------------------------------------------------------

enum class Role { active, standby, paused };

// One voter as brokers and clients see it. Active: answers Metadata with `id` as its metadata
// offset, FetchMetadataLog with the offset asked for, DemoteBroker with `demote_answer`. Standby:
// NOT_CONTROLLER to everything. Paused: holds every request unanswered.
class FakeController final : public RequestHandler {
 public:
  FakeController(asio::io_context& io, int id, Role initial) : role(initial), io_(io), id_(id) {}

  awaitable<Response> handle(Request request, ListenerKind) override {
    ++handled;
    if (role == Role::paused) {
      asio::steady_timer never(io_, 60s);
      co_await never.async_wait(use_tuple);
    }
    if (role != Role::active)
      co_return error_response_for(request, errc::not_controller);
    if (std::holds_alternative<MetadataRequest>(request)) {
      MetadataResponse resp;
      resp.metadata_offset = id_;
      co_return resp;
    }
    if (auto* fetch = std::get_if<FetchMetadataLogRequest>(&request)) {
      FetchMetadataLogResponse resp;
      resp.durable_offset = fetch->from;
      co_return resp;
    }
    if (std::holds_alternative<DemoteBrokerRequest>(request)) {
      DemoteBrokerResponse resp;
      resp.error = demote_answer;
      co_return resp;
    }
    co_return error_response_for(request, errc::invalid_request);
  }

  std::atomic<Role> role;
  std::atomic<int> handled{0};
  std::atomic<errc> demote_answer{errc::none};

 private:
  asio::io_context& io_;
  int id_;
};

// Controllers on their own io thread, plus an endpoint where nothing listens.
class Quorum : public ::testing::Test {
 protected:
  void TearDown() override {
    io_.stop();
    if (thread_.joinable())
      thread_.join();
    servers_.clear();
  }

  // Adds a controller (before start()); its id is its place in the list.
  Endpoint add(Role role) {
    int id = static_cast<int>(controllers_.size());
    controllers_.push_back(std::make_unique<FakeController>(io_, id, role));
    servers_.push_back(std::make_unique<RpcServer>(io_, Endpoint{"127.0.0.1", 0},
                                                   ListenerKind::internal, *controllers_.back()));
    servers_.back()->start();
    return {"127.0.0.1", servers_.back()->port()};
  }
  void start() {
    thread_ = std::thread([this] { io_.run(); });
  }
  FakeController& controller(int id) { return *controllers_.at(id); }

  // A port that refuses connections (bound once, then released).
  static Endpoint nobody() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    return {"127.0.0.1", a.local_endpoint().port()};
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_{asio::make_work_guard(io_)};
  std::vector<std::unique_ptr<FakeController>> controllers_;
  std::vector<std::unique_ptr<RpcServer>> servers_;
  std::thread thread_;
};

ClientConfig admin_config(std::vector<Endpoint> controllers, std::chrono::milliseconds timeout) {
  ClientConfig c;
  c.controllers = std::move(controllers);
  c.request_timeout = timeout;
  return c;
}

// ---- the client library ----------------------------------------------------------------------

TEST_F(Quorum, TheClientSkipsARefusingAndAnAbsentControllerAndStaysWithTheActiveOne) {
  Endpoint standby = add(Role::standby);
  Endpoint active = add(Role::active);
  start();
  SyncClient client(admin_config({nobody(), standby, active}, 2s));
  auto md = client.controller_metadata();
  ASSERT_TRUE(md.has_value());
  EXPECT_EQ(md->metadata_offset, 1) << "answered by the active controller";
  EXPECT_EQ(controller(0).handled.load(), 1);
  // Later calls go straight to the controller that answered.
  EXPECT_EQ(client.demote(BrokerId{2}, "test"), errc::none);
  EXPECT_TRUE(client.controller_metadata().has_value());
  EXPECT_EQ(controller(0).handled.load(), 1);
  EXPECT_EQ(controller(1).handled.load(), 3);
}

TEST_F(Quorum, TheClientFollowsANewActiveController) {
  add(Role::active);
  add(Role::standby);
  start();
  SyncClient client(
      admin_config({{"127.0.0.1", servers_[0]->port()}, {"127.0.0.1", servers_[1]->port()}}, 2s));
  ASSERT_EQ(client.controller_metadata()->metadata_offset, 0);
  controller(0).role = Role::standby;
  controller(1).role = Role::active;
  auto md = client.controller_metadata();
  ASSERT_TRUE(md.has_value());
  EXPECT_EQ(md->metadata_offset, 1);
}

TEST_F(Quorum, AnErrorOtherThanNotControllerIsTheAnswer) {
  Endpoint active = add(Role::active);
  Endpoint other = add(Role::active);
  controller(0).demote_answer = errc::invalid_request;
  start();
  SyncClient client(admin_config({active, other}, 2s));
  EXPECT_EQ(client.demote(BrokerId{9}, "test"), errc::invalid_request);
  EXPECT_EQ(controller(1).handled.load(), 0) << "a refusal on the merits is not retried elsewhere";
}

TEST_F(Quorum, ASingleControllerGetsOneAttempt) {
  Endpoint standby = add(Role::standby);
  start();
  SyncClient client(admin_config({standby}, 2s));
  EXPECT_EQ(client.demote(BrokerId{1}, "test"), errc::not_controller);
  EXPECT_EQ(controller(0).handled.load(), 1) << "the caller's own retry loop decides, as before";
}

TEST_F(Quorum, WithNoActiveControllerTheCallEndsWithinItsTimeoutAndBacksOffBetweenRounds) {
  Endpoint a = add(Role::standby);
  Endpoint b = add(Role::standby);
  start();
  SyncClient client(admin_config({a, b}, 500ms));
  auto started = Clock::now();
  EXPECT_EQ(client.demote(BrokerId{1}, "test"), errc::not_controller);
  auto took = Clock::now() - started;
  EXPECT_GE(took, 400ms) << "rounds go on while the election may finish";
  EXPECT_LT(took, 1500ms);
  // A round of two fast refusals, then 50 ms: about 10 rounds in 500 ms, not thousands.
  int attempts = controller(0).handled + controller(1).handled;
  EXPECT_GE(attempts, 6);
  EXPECT_LE(attempts, 30);
}

TEST_F(Quorum, APausedControllerCostsOnlyItsShareOfTheCall) {
  Endpoint paused = add(Role::paused);
  Endpoint active = add(Role::active);
  start();
  SyncClient client(admin_config({paused, active}, 2s));
  auto started = Clock::now();
  auto md = client.controller_metadata();
  auto took = Clock::now() - started;
  ASSERT_TRUE(md.has_value()) << "the paused controller took the whole call";
  EXPECT_EQ(md->metadata_offset, 1);
  EXPECT_GE(took, 900ms) << "half of the call for each of the two";
  EXPECT_LT(took, 1900ms);
}

// Below ControllerCaller::kMinAttempt per controller there is no time to share.
TEST_F(Quorum, APausedControllerUsesUpAShortCallAndTheNextCallStartsPastIt) {
  Endpoint paused = add(Role::paused);
  Endpoint active = add(Role::active);
  start();
  SyncClient client(admin_config({paused, active}, 300ms));
  EXPECT_FALSE(client.controller_metadata().has_value()) << "the paused one took the whole call";
  auto md = client.controller_metadata();
  ASSERT_TRUE(md.has_value());
  EXPECT_EQ(md->metadata_offset, 1);
  EXPECT_EQ(controller(0).handled.load(), 1);
}

// ---- the broker's helper ---------------------------------------------------------------------

// Runs `body` on `io` to completion (bounded, so a hang fails instead of blocking CI).
template <typename F>
bool run_on(asio::io_context& io, F body) {
  bool done = false;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        co_await body();
        done = true;
        io.stop();
      },
      asio::detached);
  io.run_for(10s);
  io.restart();
  return done;
}

FetchMetadataLogRequest fetch_from(int64_t offset) {
  FetchMetadataLogRequest r;
  r.from = MetadataOffset{offset};
  return r;
}

TEST_F(Quorum, TheBrokersCallerFollowsTheActiveControllerAndKeepsItsOffset) {
  Endpoint a = add(Role::active);
  Endpoint b = add(Role::standby);
  Endpoint c = add(Role::standby);
  start();
  asio::io_context broker_io;
  ClientPool pool(broker_io);
  ControllerCaller caller(broker_io, pool, {a, b, c});
  CallResult first, second;
  Endpoint followed_first;
  ASSERT_TRUE(run_on(broker_io, [&]() -> awaitable<void> {
    first = co_await caller.call(fetch_from(7), 2s);
    followed_first = caller.followed();
  }));
  controller(0).role = Role::standby;
  controller(2).role = Role::active;
  ASSERT_TRUE(run_on(
      broker_io, [&]() -> awaitable<void> { second = co_await caller.call(fetch_from(8), 2s); }));
  pool.close_all();
  broker_io.run_for(100ms);
  ASSERT_FALSE(first.error) << first.error.message();
  ASSERT_FALSE(second.error) << second.error.message();
  EXPECT_EQ(followed_first, a);
  EXPECT_EQ(caller.followed(), c);
  EXPECT_EQ(std::get<FetchMetadataLogResponse>(second.response).durable_offset, MetadataOffset{8})
      << "the new active controller is asked from the same offset";
  EXPECT_EQ(controller(1).handled.load(), 1) << "b refused once, on the way from a to c";
}

TEST_F(Quorum, TheBrokersCallerWithNoControllerFailsAtOnce) {
  start();
  asio::io_context broker_io;
  ClientPool pool(broker_io);
  ControllerCaller caller(broker_io, pool, {});
  CallResult r;
  ASSERT_TRUE(
      run_on(broker_io, [&]() -> awaitable<void> { r = co_await caller.call(fetch_from(0), 2s); }));
  EXPECT_EQ(r.error, make_error_code(errc::network_exception));
}

}  // namespace
}  // namespace faultline::cluster
