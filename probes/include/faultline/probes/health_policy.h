// The health manager's policy (ARCHITECTURE.md §4): turns reachability and storage observations
// into demote / promote decisions for the controller's leadership priority (ARCHITECTURE.md §2 item
// 16).
//
// Pure and deterministic: no I/O, no clock (time arrives inside the observations), no randomness.
// The shell calls step() once per probing round, sends each decision to the controller, and calls
// decision_failed() when the controller refused or could not be reached, so the policy's idea of
// who is demoted never drifts from what it actually achieved.
//
// Guarantees, whatever the input:
//   - it never demotes the last non-demoted broker (availability over performance);
//   - at most max_demoted brokers are demoted at once, counting demotions made by others;
//   - it promotes only brokers it demoted itself (an operator's demotion is the operator's);
//   - a demoted broker stays demoted for at least recovery_hold, and is promoted only after
//     successes_to_promote consecutive successful probes and recovery_hold without a bad sign.
//
// Not thread-safe: one instance belongs to one prober loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "faultline/probes/decision.h"
#include "faultline/probes/observation.h"

namespace faultline::probes {

// Defaults suit the scenario timings (probe every 500 ms-1 s, session timeout 1 s); see
// probes/README.md for why each one is what it is.
struct HealthConfig {
  // --- reachability hysteresis ---
  // K: consecutive failed probes before a broker is declared unreachable.
  int32_t failures_to_demote = 3;
  // M: consecutive successful probes before an unreachable broker counts as reachable again.
  int32_t successes_to_promote = 5;
  // A demoted broker is promoted only once it has looked healthy for this long (and was demoted at
  // least this long ago): a broker that flickers must not drag leadership back and forth.
  std::chrono::milliseconds recovery_hold{30'000};

  // --- storage outliers ---
  // A broker is slow when the median of its recent append+fsync samples exceeds
  // max(storage_floor, storage_outlier_factor * the median of all brokers' medians).
  double storage_outlier_factor = 5.0;
  // Absolute floor: on a fast disk 0.1 ms vs 1 ms is a 10x outlier nobody should act on.
  std::chrono::microseconds storage_floor{20'000};
  // Per-broker window: the last storage_window samples no older than storage_max_age.
  int32_t storage_window = 20;
  std::chrono::milliseconds storage_max_age{60'000};
  // A broker is judged only with this many samples in its window, and the cluster median is
  // meaningful only across at least storage_min_brokers such brokers.
  int32_t storage_min_samples = 5;
  int32_t storage_min_brokers = 2;

  // --- safety ---
  // Most brokers demoted at once, by anyone (operator demotions included).
  int32_t max_demoted = 1;
  // Vantage-point guard: when at least this fraction of the probed brokers fail in the same round
  // (and at least vantage_min_failures of them), the prober is the likely culprit (its own link is
  // down): the round decides nothing and failure streaks restart. 1.0 means "all of them".
  double vantage_guard_fraction = 1.0;
  int32_t vantage_min_failures = 2;

  // An empty string when the configuration is usable, otherwise what is wrong with it.
  std::string validate() const;
  nlohmann::json to_json() const;
};

// Where one broker stands, for status output and for tests.
struct BrokerHealth {
  BrokerId broker;
  bool unreachable = false;   // K failures seen, not yet M successes
  bool slow_storage = false;  // storage median above the threshold at the last evaluation
  bool demoted_by_policy = false;
  bool demoted_elsewhere = false;
  int32_t failure_streak = 0;
  int32_t success_streak = 0;
  std::chrono::microseconds fsync_median{0};  // zero when not enough samples
};

class HealthPolicy {
 public:
  // `brokers`: every broker of the cluster. Throws std::invalid_argument when config.validate()
  // reports a problem or the broker list is empty (start-up errors).
  HealthPolicy(HealthConfig config, std::span<const BrokerId> brokers);

  // Consumes one round of observations and decides. Deterministic in its inputs and prior calls.
  RoundOutcome step(const ProbeRound& round);

  // The controller refused or never received `decision`: undo its effect on the policy's state.
  // A failed demotion is retried next round if the broker is still unhealthy; a failed promotion
  // is retried next round too (the broker stays demoted meanwhile).
  void decision_failed(const Decision& decision);

  // Who the controller's metadata lists as demoted, read at `now`. Brokers demoted by someone else
  // (operator, another tool) count against max_demoted and "the last non-demoted broker", and
  // this policy never promotes them. A broker this policy demoted that is not listed any more was
  // promoted by someone else: the operator's word stands, the policy lets go of its demotion and
  // does not demote that broker again for recovery_hold (after that, if it is still unhealthy, it
  // is demoted again). Returns those brokers. Replaces the previous view.
  std::vector<BrokerId> set_demoted_elsewhere(std::span<const BrokerId> brokers, TimePoint now);

  // A demotion recorded at the controller with this policy's own reasons (network-health,
  // storage-health) when the prober starts: an earlier run of the prober made it. The policy takes
  // it over as if it had demoted the broker at `now`, so the usual rules promote it (successes and
  // recovery_hold from `now`) instead of it staying demoted forever as "someone else's". No effect
  // on an unknown broker.
  void adopt_demotion(BrokerId broker, Reason reason, TimePoint now);

  const HealthConfig& config() const { return config_; }
  std::vector<BrokerHealth> health() const;
  // Brokers currently demoted by this policy, ascending.
  std::vector<BrokerId> demoted_by_policy() const;

 private:
  struct Sample {
    TimePoint at;
    std::chrono::microseconds latency;
  };
  struct BrokerState {
    BrokerId id;
    // reachability
    int32_t failure_streak = 0;
    int32_t success_streak = 0;
    std::optional<TimePoint> streak_started_at;
    std::optional<TimePoint> last_observed_at;
    std::chrono::microseconds last_latency{0};
    std::string last_error;
    bool unreachable = false;
    // storage
    std::deque<Sample> samples;
    std::chrono::microseconds fsync_median{0};
    int32_t samples_judged = 0;
    bool slow_storage = false;  // slow against the cluster, or its canary failing
    int32_t storage_error_streak = 0;
    std::string storage_error;
    // priority
    bool demoted_by_policy = false;
    bool demoted_elsewhere = false;
    Reason demotion_reason = Reason::unreachable;
    std::optional<TimePoint> demoted_at;
    // When someone else promoted a broker this policy had demoted (set_demoted_elsewhere).
    std::optional<TimePoint> promoted_elsewhere_at;
    // The last time anything looked wrong (a failed probe, a slow storage verdict, the demotion).
    std::optional<TimePoint> last_unhealthy_at;

    bool demoted() const { return demoted_by_policy || demoted_elsewhere; }
  };
  // Storage verdict of the last evaluation, shared by every broker's evidence.
  struct StorageView {
    std::chrono::microseconds cluster_median{0};
    std::chrono::microseconds threshold{0};
    bool judged = false;
  };

  BrokerState* find(BrokerId id);
  void observe_reachability(const ProbeRound& round, RoundOutcome& out);
  void observe_storage(const ProbeRound& round, RoundOutcome& out);
  void evaluate_storage(TimePoint now);
  void judge_storage_errors(TimePoint now);
  Evidence evidence_for(const BrokerState& b, TimePoint now) const;
  void promote_recovered(TimePoint now, RoundOutcome& out);
  void demote_unhealthy(TimePoint now, RoundOutcome& out);

  HealthConfig config_;
  std::vector<BrokerState> brokers_;  // sorted by id
  StorageView storage_;
};

}  // namespace faultline::probes
