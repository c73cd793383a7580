#include "faultline/cluster/net/controller_rotation.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

namespace faultline::cluster {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const Endpoint& ControllerRotation::followed() const {
  static const Endpoint kNone;
  return controllers_.empty() ? kNone : controllers_[followed_];
}

bool ControllerRotation::on_answer(size_t i) {
  next_ = i;
  if (followed_ == i)
    return false;
  followed_ = i;
  return true;
}

void ControllerRotation::on_failure(size_t i) {
  if (next_ == i)
    next_ = (i + 1) % controllers_.size();
}

asio::awaitable<CallResult> ControllerCaller::call_request(Request request, milliseconds timeout,
                                                           milliseconds hold) {
  CallResult result;
  if (rotation_.empty()) {
    result.error = make_error_code(errc::network_exception);
    co_return result;
  }
  const auto deadline = Clock::now() + timeout;
  for (size_t attempt = 1;; ++attempt) {
    const size_t i = rotation_.next();
    const Endpoint target = rotation_.controllers()[i];
    milliseconds left =
        attempt == 1 ? timeout
                     : std::max(milliseconds(1),
                                std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
    // With several controllers one attempt gets a share of the call, so a paused or cut-off
    // controller (which answers nothing) leaves time to try the others within the same call.
    if (rotation_.size() > 1)
      left = std::min(left,
                      std::max(kMinAttempt + hold, timeout / static_cast<int>(rotation_.size())));
    Request copy = request;
    result = co_await pool_.get(target).call_request(std::move(copy), left);
    const bool refused = !result.error && response_error(result.response) == errc::not_controller;
    if (!result.error && !refused) {
      const std::string before = rotation_.followed().str();
      if (rotation_.on_answer(i))
        spdlog::info("event=controller_changed from={} to={}", before, target.str());
      co_return result;
    }
    rotation_.on_failure(i);
    spdlog::debug("event=controller_attempt_failed controller={} attempt={} error=\"{}\"",
                  target.str(), attempt,
                  refused ? std::string(errc_name(errc::not_controller)) : result.error.message());
    if (rotation_.size() == 1)
      co_return result;
    // A whole round refused or silent: an election is under way (or every controller is away);
    // give it a moment before the next round.
    const milliseconds pause = attempt % rotation_.size() == 0 ? kRoundBackoff : milliseconds(0);
    if (Clock::now() + pause >= deadline)
      co_return result;
    if (pause.count() > 0) {
      asio::steady_timer timer(io_, pause);
      co_await timer.async_wait(use_tuple);
    }
  }
}

}  // namespace faultline::cluster
