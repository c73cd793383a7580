// How a broker or a client finds the active controller of the quorum (ARCHITECTURE.md §2 item 18).
//
// Only the active controller serves broker and admin requests; the other voters answer
// NOT_CONTROLLER, and any of them may be down, paused or cut off. Both callers keep the list of
// controllers they were given and follow the one that answered last: every call starts there, and
// moves round-robin past controllers that refuse (NOT_CONTROLLER) or do not answer.
//
// `ControllerRotation` is the decision (which controller next, whom we follow), with no I/O;
// `ControllerCaller` is the thin shell that sends the requests.
//
// A request that got NOT_CONTROLLER, or no answer, may still have been applied: a controller
// answers only once its records are committed, and loses leadership (answering NOT_CONTROLLER) or
// its connection after they may already be. A retry at the next controller can then meet its own
// effect; callers make their requests conditional (AlterPartition's partition epoch) or idempotent.
//
// Threading: the io_context's thread only, like ClientPool. Several calls may be in flight at
// once (a broker's heartbeat, metadata long-poll and AlterPartitions) and share one rotation.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <cstddef>
#include <vector>

#include "faultline/cluster/config.h"
#include "faultline/cluster/net/rpc.h"

namespace faultline::cluster {

class ControllerRotation {
 public:
  explicit ControllerRotation(std::vector<Endpoint> controllers)
      : controllers_(std::move(controllers)) {}

  const std::vector<Endpoint>& controllers() const { return controllers_; }
  size_t size() const { return controllers_.size(); }
  bool empty() const { return controllers_.empty(); }

  // The controller (index) a new attempt goes to.
  size_t next() const { return next_; }
  // The controller that answered last; before any answer, the first of the list (a default
  // Endpoint when the list is empty).
  const Endpoint& followed() const;

  // Controller `i` answered (with anything but NOT_CONTROLLER): later attempts start there. True
  // when that changes the controller followed.
  bool on_answer(size_t i);
  // Controller `i` refused (NOT_CONTROLLER) or did not answer: later attempts go to the one after
  // it, unless a concurrent call has already moved on from it (so two calls failing on the same
  // controller skip one controller, not two).
  void on_failure(size_t i);

 private:
  std::vector<Endpoint> controllers_;
  size_t next_ = 0;
  size_t followed_ = 0;
};

class ControllerCaller {
 public:
  // After a round in which every controller refused or did not answer (an election under way).
  static constexpr std::chrono::milliseconds kRoundBackoff{50};
  // The least one attempt is given when the call's time is shared among several controllers.
  static constexpr std::chrono::milliseconds kMinAttempt{500};

  // Connections come from `pool`, which must outlive this.
  ControllerCaller(asio::io_context& io, ClientPool& pool, std::vector<Endpoint> controllers)
      : io_(io), pool_(pool), rotation_(std::move(controllers)) {}

  // Sends `message` to the controllers, the followed one first, until one answers with anything
  // but NOT_CONTROLLER or `timeout` (for the whole call) runs out; then the last attempt's result
  // (a NOT_CONTROLLER answer, or its transport error). With several controllers an attempt waits
  // at most max(timeout / controllers, kMinAttempt + hold), never past the deadline, so a paused
  // controller costs a share of the call and the others are still tried.
  // With a single controller, exactly one attempt of `timeout`: the callers' own retry loops
  // behave as they did before the quorum. An empty list fails at once (network_exception).
  // A template, not a coroutine, for the reason given at RpcClient::call.
  template <typename Message>
  asio::awaitable<CallResult> call(Message message, std::chrono::milliseconds timeout,
                                   std::chrono::milliseconds hold = std::chrono::milliseconds(0)) {
    return call_request(Request(std::move(message)), timeout, hold);
  }
  // `hold`: how long the controller may legitimately keep the request (a metadata watch or
  // long-poll), which every attempt is given on top of its share.
  asio::awaitable<CallResult> call_request(
      Request request, std::chrono::milliseconds timeout,
      std::chrono::milliseconds hold = std::chrono::milliseconds(0));

  const std::vector<Endpoint>& controllers() const { return rotation_.controllers(); }
  const Endpoint& followed() const { return rotation_.followed(); }

 private:
  asio::io_context& io_;
  ClientPool& pool_;
  ControllerRotation rotation_;
};

}  // namespace faultline::cluster
