// What the health policy decides, with the evidence behind it (ARCHITECTURE.md §4: "every decision
// is logged with its evidence"). Plain values; to_string() for log lines, to_json() for the run
// directory and for tests that compare whole decisions.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/probes/observation.h"

namespace faultline::probes {

enum class Action : uint8_t { demote, promote };

enum class Reason : uint8_t {
  unreachable,   // clients cannot reach the broker's listener (gray failure: the cluster can)
  slow_storage,  // the broker's append+fsync latency is an outlier against the cluster
  recovered,     // a broker this policy demoted is healthy again
};

// Why a demotion the policy wanted was not made this round.
enum class HeldBack : uint8_t {
  cap_reached,           // max_demoted brokers are already demoted (by anyone)
  last_healthy_broker,   // it is the last non-demoted broker: availability wins
  promoted_by_operator,  // someone promoted it after this policy demoted it, within recovery_hold
};

std::string_view to_string(Action a) noexcept;
std::string_view to_string(Reason r) noexcept;
std::string_view to_string(HeldBack h) noexcept;

// The reason string recorded with a demotion in the controller's metadata log (ARCHITECTURE.md §2
// item 16): "network-health" or "storage-health".
std::string_view controller_reason(Reason r) noexcept;

// The numbers a human needs to agree (or not) with a decision. Fields that do not apply to the
// decision's reason keep their zero / empty value.
struct Evidence {
  TimePoint decided_at{};

  // Reachability, as of the decision.
  int32_t failure_streak = 0;  // consecutive failed probes
  int32_t success_streak = 0;  // consecutive successful probes
  // First observation of the current streak (failure streak for a demotion, success streak for a
  // promotion); unset when there is no streak.
  std::optional<TimePoint> streak_started_at;
  std::chrono::microseconds last_latency{0};
  std::string last_error;

  // Storage, as of the decision (zero when the broker had too few samples to judge).
  std::chrono::microseconds broker_fsync_median{0};
  std::chrono::microseconds cluster_fsync_median{0};
  std::chrono::microseconds fsync_threshold{0};  // max(floor, factor * cluster median)
  int32_t storage_samples = 0;                   // samples behind broker_fsync_median
  // The canary failing outright: consecutive reports of an error, and the latest error.
  int32_t storage_error_streak = 0;
  std::string storage_error;

  // Promotion only: when this policy demoted the broker, and the last time it looked unhealthy.
  std::optional<TimePoint> demoted_at;
  std::optional<TimePoint> last_unhealthy_at;

  std::string to_string() const;
  // Times are monotonic (steady_clock) nanoseconds, as in faults.jsonl; durations in microseconds.
  nlohmann::json to_json() const;

  friend bool operator==(const Evidence&, const Evidence&) = default;
};

struct Decision {
  Action action = Action::demote;
  BrokerId broker;
  Reason reason = Reason::unreachable;
  Evidence evidence;

  // "demote broker=2 reason=unreachable failure_streak=3 ..." (one structured log line).
  std::string to_string() const;
  nlohmann::json to_json() const;

  friend bool operator==(const Decision&, const Decision&) = default;
};

// A demotion the policy wanted but did not make (logged so an operator can see why a sick broker
// still leads). The policy retries every round while the broker stays unhealthy.
struct HeldDemotion {
  BrokerId broker;
  Reason reason = Reason::unreachable;
  HeldBack why = HeldBack::cap_reached;
  Evidence evidence;

  std::string to_string() const;
  nlohmann::json to_json() const;

  friend bool operator==(const HeldDemotion&, const HeldDemotion&) = default;
};

// The outcome of one round.
struct RoundOutcome {
  // Promotions first (they free demotion slots), then demotions, most urgent first.
  std::vector<Decision> decisions;
  std::vector<HeldDemotion> held;
  // The vantage-point guard fired: so many brokers failed at once that the prober blamed itself,
  // ignored this round's reachability results, reset every failure streak and decided nothing
  // (no demotion, no promotion; storage samples are kept for later rounds).
  bool vantage_point_suspect = false;
  int32_t failed_this_round = 0;
  int32_t probed_this_round = 0;
  // Observations for brokers the policy does not know, or older than one already seen.
  int32_t ignored_observations = 0;
};

}  // namespace faultline::probes
