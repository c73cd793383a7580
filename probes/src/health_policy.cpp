#include "faultline/probes/health_policy.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace faultline::probes {
namespace {

using std::chrono::microseconds;

// The lower middle element for an even count: for a broker's own window that asks for more than
// half of its samples to be slow before it counts as slow; for the cluster it keeps the reference
// on the fast side when half of the brokers are slow. Reorders `v`.
microseconds lower_median(std::vector<microseconds>& v) {
  auto mid = v.begin() + static_cast<std::ptrdiff_t>((v.size() - 1) / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

}  // namespace

std::string HealthConfig::validate() const {
  if (failures_to_demote < 1)
    return "failures_to_demote must be at least 1";
  if (successes_to_promote < 1)
    return "successes_to_promote must be at least 1";
  if (recovery_hold < std::chrono::milliseconds{0})
    return "recovery_hold must not be negative";
  if (!(storage_outlier_factor >= 1.0) || !std::isfinite(storage_outlier_factor))
    return "storage_outlier_factor must be a finite number >= 1";
  if (storage_floor < microseconds{0})
    return "storage_floor must not be negative";
  if (storage_window < 1)
    return "storage_window must be at least 1";
  if (storage_max_age <= std::chrono::milliseconds{0})
    return "storage_max_age must be positive";
  if (storage_min_samples < 1 || storage_min_samples > storage_window)
    return "storage_min_samples must be between 1 and storage_window";
  if (storage_min_brokers < 2)
    return "storage_min_brokers must be at least 2 (a broker is an outlier only against others)";
  if (max_demoted < 0)
    return "max_demoted must not be negative";
  if (!(vantage_guard_fraction > 0.0 && vantage_guard_fraction <= 1.0))
    return "vantage_guard_fraction must be in (0, 1]";
  if (vantage_min_failures < 1)
    return "vantage_min_failures must be at least 1";
  return {};
}

nlohmann::json HealthConfig::to_json() const {
  return {
      {"failures_to_demote", failures_to_demote},
      {"successes_to_promote", successes_to_promote},
      {"recovery_hold_ms", recovery_hold.count()},
      {"storage_outlier_factor", storage_outlier_factor},
      {"storage_floor_us", storage_floor.count()},
      {"storage_window", storage_window},
      {"storage_max_age_ms", storage_max_age.count()},
      {"storage_min_samples", storage_min_samples},
      {"storage_min_brokers", storage_min_brokers},
      {"max_demoted", max_demoted},
      {"vantage_guard_fraction", vantage_guard_fraction},
      {"vantage_min_failures", vantage_min_failures},
  };
}

HealthPolicy::HealthPolicy(HealthConfig config, std::span<const BrokerId> brokers)
    : config_(config) {
  if (auto problem = config_.validate(); !problem.empty())
    throw std::invalid_argument("health policy config: " + problem);
  if (brokers.empty())
    throw std::invalid_argument("health policy: the cluster has no brokers");
  brokers_.reserve(brokers.size());
  for (BrokerId id : brokers) {
    BrokerState b;
    b.id = id;
    brokers_.push_back(std::move(b));
  }
  std::sort(brokers_.begin(), brokers_.end(),
            [](const BrokerState& a, const BrokerState& b) { return a.id < b.id; });
  auto dup = std::adjacent_find(brokers_.begin(), brokers_.end(),
                                [](const auto& a, const auto& b) { return a.id == b.id; });
  if (dup != brokers_.end())
    throw std::invalid_argument(fmt::format("health policy: broker {} listed twice", dup->id));
}

HealthPolicy::BrokerState* HealthPolicy::find(BrokerId id) {
  auto it = std::lower_bound(brokers_.begin(), brokers_.end(), id,
                             [](const BrokerState& b, BrokerId v) { return b.id < v; });
  return it != brokers_.end() && it->id == id ? &*it : nullptr;
}

RoundOutcome HealthPolicy::step(const ProbeRound& round) {
  RoundOutcome out;
  observe_reachability(round, out);
  observe_storage(round, out);
  // A prober that cannot trust its own view decides nothing this round, in either direction; the
  // storage samples are kept for the next round that can be trusted.
  if (out.vantage_point_suspect)
    return out;
  evaluate_storage(round.now);
  promote_recovered(round.now, out);
  demote_unhealthy(round.now, out);
  return out;
}

void HealthPolicy::observe_reachability(const ProbeRound& round, RoundOutcome& out) {
  // Pass 1: keep the observations that count, and learn each probed broker's latest result, so the
  // vantage-point guard can look at the round as a whole before any streak moves.
  std::vector<std::pair<BrokerState*, const ReachabilityObservation*>> valid;
  valid.reserve(round.reachability.size());
  for (const auto& obs : round.reachability) {
    BrokerState* b = find(obs.broker);
    if (b == nullptr || (b->last_observed_at && obs.at < *b->last_observed_at)) {
      ++out.ignored_observations;
      continue;
    }
    valid.emplace_back(b, &obs);
  }
  // Apply in time order per broker (stable: equal times keep the prober's order).
  std::stable_sort(valid.begin(), valid.end(), [](const auto& x, const auto& y) {
    return x.first->id != y.first->id ? x.first->id < y.first->id : x.second->at < y.second->at;
  });
  for (size_t i = 0; i < valid.size(); ++i) {
    bool last_of_broker = i + 1 == valid.size() || valid[i + 1].first != valid[i].first;
    if (!last_of_broker)
      continue;
    ++out.probed_this_round;
    if (!valid[i].second->ok)
      ++out.failed_this_round;
  }

  // The guard: a prober whose own link is down sees every broker fail at once. Blaming the brokers
  // would demote healthy leaders (or, with the cap, an arbitrary one), so the round is discarded
  // and every failure streak starts over: K failures must then be seen again from a working
  // vantage point. Success streaks are left alone: the round says nothing about them either way.
  const auto failed = out.failed_this_round;
  const bool guard =
      failed >= config_.vantage_min_failures &&
      static_cast<double>(failed) >=
          config_.vantage_guard_fraction * static_cast<double>(out.probed_this_round) - 1e-9;
  if (guard) {
    out.vantage_point_suspect = true;
    for (auto& b : brokers_) {
      if (b.failure_streak > 0) {
        b.failure_streak = 0;
        b.streak_started_at.reset();
      }
    }
    for (auto [b, obs] : valid)
      b->last_observed_at = obs->at;
    return;
  }

  for (auto [b, obs] : valid) {
    b->last_observed_at = obs->at;
    b->last_latency = obs->latency;
    if (obs->ok) {
      b->last_error.clear();
      if (b->success_streak++ == 0)
        b->streak_started_at = obs->at;
      b->failure_streak = 0;
      if (b->success_streak >= config_.successes_to_promote)
        b->unreachable = false;
    } else {
      b->last_error = obs->error;
      if (b->failure_streak++ == 0)
        b->streak_started_at = obs->at;
      b->success_streak = 0;
      b->last_unhealthy_at = obs->at;
      if (b->failure_streak >= config_.failures_to_demote)
        b->unreachable = true;
    }
  }
}

void HealthPolicy::observe_storage(const ProbeRound& round, RoundOutcome& out) {
  for (const auto& obs : round.storage) {
    BrokerState* b = find(obs.broker);
    // Samples arrive in the order the broker measured them; an older one is a re-delivery.
    if (b == nullptr || (!b->samples.empty() && obs.at < b->samples.back().at)) {
      ++out.ignored_observations;
      continue;
    }
    if (!obs.error.empty()) {
      ++b->storage_error_streak;
      b->storage_error = obs.error;
      continue;
    }
    b->storage_error_streak = 0;
    b->samples.push_back({obs.at, obs.append_fsync_latency});
    while (b->samples.size() > static_cast<size_t>(config_.storage_window))
      b->samples.pop_front();
  }
}

void HealthPolicy::evaluate_storage(TimePoint now) {
  std::vector<microseconds> scratch;
  std::vector<microseconds> medians;
  medians.reserve(brokers_.size());
  for (auto& b : brokers_) {
    while (!b.samples.empty() && b.samples.front().at + config_.storage_max_age < now)
      b.samples.pop_front();
    if (b.samples.size() < static_cast<size_t>(config_.storage_min_samples)) {
      b.fsync_median = microseconds{0};
      b.samples_judged = 0;
      continue;
    }
    scratch.clear();
    for (const auto& s : b.samples)
      scratch.push_back(s.latency);
    b.fsync_median = lower_median(scratch);
    b.samples_judged = static_cast<int32_t>(b.samples.size());
    medians.push_back(b.fsync_median);
  }

  // Too few brokers to compare against: keep every verdict as it was. In particular a demoted
  // broker that went quiet is not promoted on the absence of evidence.
  if (medians.size() < static_cast<size_t>(config_.storage_min_brokers)) {
    storage_ = {};
    judge_storage_errors(now);
    return;
  }
  storage_.cluster_median = lower_median(medians);
  const auto scaled = microseconds{static_cast<int64_t>(std::ceil(
      config_.storage_outlier_factor * static_cast<double>(storage_.cluster_median.count())))};
  storage_.threshold = std::max(config_.storage_floor, scaled);
  storage_.judged = true;
  for (auto& b : brokers_) {
    if (b.samples_judged == 0)
      continue;
    b.slow_storage = b.fsync_median > storage_.threshold;
    if (b.slow_storage)
      b.last_unhealthy_at = now;
  }
  judge_storage_errors(now);
}

// A canary that keeps failing is a disk that cannot persist: as bad as the slowest one, whatever
// the other brokers' disks do (no comparison needed). As many consecutive failed reports as it
// takes samples to judge a latency, so one failed write does nothing.
void HealthPolicy::judge_storage_errors(TimePoint now) {
  for (auto& b : brokers_) {
    if (b.storage_error_streak >= config_.storage_min_samples) {
      b.slow_storage = true;
      b.last_unhealthy_at = now;
    }
  }
}

Evidence HealthPolicy::evidence_for(const BrokerState& b, TimePoint now) const {
  Evidence e;
  e.decided_at = now;
  e.failure_streak = b.failure_streak;
  e.success_streak = b.success_streak;
  e.streak_started_at = b.streak_started_at;
  e.last_latency = b.last_latency;
  e.last_error = b.last_error;
  if (b.samples_judged > 0) {
    e.broker_fsync_median = b.fsync_median;
    e.storage_samples = b.samples_judged;
  }
  e.storage_error_streak = b.storage_error_streak;
  if (b.storage_error_streak > 0)
    e.storage_error = b.storage_error;
  if (storage_.judged) {
    e.cluster_fsync_median = storage_.cluster_median;
    e.fsync_threshold = storage_.threshold;
  }
  e.demoted_at = b.demoted_at;
  e.last_unhealthy_at = b.last_unhealthy_at;
  return e;
}

void HealthPolicy::promote_recovered(TimePoint now, RoundOutcome& out) {
  for (auto& b : brokers_) {
    if (!b.demoted_by_policy || b.unreachable || b.slow_storage)
      continue;
    // last_unhealthy_at is at least the demotion time, so this also keeps every demotion for at
    // least recovery_hold.
    if (b.last_unhealthy_at && now - *b.last_unhealthy_at < config_.recovery_hold)
      continue;
    out.decisions.push_back(
        Decision{Action::promote, b.id, Reason::recovered, evidence_for(b, now)});
    b.demoted_by_policy = false;
  }
}

void HealthPolicy::demote_unhealthy(TimePoint now, RoundOutcome& out) {
  std::vector<BrokerState*> candidates;
  for (auto& b : brokers_) {
    if (!b.demoted() && (b.unreachable || b.slow_storage))
      candidates.push_back(&b);
  }
  if (candidates.empty())
    return;
  // Most urgent first, so the cap spends its slots well: unreachable before slow (clients cannot
  // use the former at all), then the longest failure streak, then the slowest disk, then the id
  // (determinism).
  std::sort(candidates.begin(), candidates.end(), [](const BrokerState* x, const BrokerState* y) {
    if (x->unreachable != y->unreachable)
      return x->unreachable;
    if (x->failure_streak != y->failure_streak)
      return x->failure_streak > y->failure_streak;
    if (x->fsync_median != y->fsync_median)
      return x->fsync_median > y->fsync_median;
    return x->id < y->id;
  });

  auto demoted_count = static_cast<int32_t>(
      std::count_if(brokers_.begin(), brokers_.end(), [](const auto& b) { return b.demoted(); }));
  const auto total = static_cast<int32_t>(brokers_.size());
  for (BrokerState* b : candidates) {
    const Reason reason = b->unreachable ? Reason::unreachable : Reason::slow_storage;
    if (b->promoted_elsewhere_at && now - *b->promoted_elsewhere_at < config_.recovery_hold) {
      out.held.push_back({b->id, reason, HeldBack::promoted_by_operator, evidence_for(*b, now)});
      continue;
    }
    if (total - demoted_count <= 1) {
      out.held.push_back({b->id, reason, HeldBack::last_healthy_broker, evidence_for(*b, now)});
      continue;
    }
    if (demoted_count >= config_.max_demoted) {
      out.held.push_back({b->id, reason, HeldBack::cap_reached, evidence_for(*b, now)});
      continue;
    }
    b->demoted_by_policy = true;
    b->demotion_reason = reason;
    b->demoted_at = now;
    b->last_unhealthy_at = now;
    ++demoted_count;
    out.decisions.push_back(Decision{Action::demote, b->id, reason, evidence_for(*b, now)});
  }
}

void HealthPolicy::decision_failed(const Decision& decision) {
  BrokerState* b = find(decision.broker);
  if (b == nullptr)
    return;
  if (decision.action == Action::demote && b->demoted_by_policy) {
    b->demoted_by_policy = false;
    b->demoted_at.reset();
  } else if (decision.action == Action::promote && !b->demoted_by_policy) {
    // Still demoted in the controller: it is still ours to promote, on the next round.
    b->demoted_by_policy = true;
  }
}

std::vector<BrokerId> HealthPolicy::set_demoted_elsewhere(std::span<const BrokerId> brokers,
                                                          TimePoint now) {
  std::vector<BrokerId> promoted_elsewhere;
  for (auto& b : brokers_) {
    const bool listed = std::find(brokers.begin(), brokers.end(), b.id) != brokers.end();
    // The controller lists this policy's own demotions too; those stay ours.
    b.demoted_elsewhere = listed && !b.demoted_by_policy;
    if (b.demoted_by_policy && !listed) {
      b.demoted_by_policy = false;
      b.demoted_at.reset();
      b.promoted_elsewhere_at = now;
      promoted_elsewhere.push_back(b.id);
    }
  }
  return promoted_elsewhere;
}

void HealthPolicy::adopt_demotion(BrokerId broker, Reason reason, TimePoint now) {
  BrokerState* b = find(broker);
  if (b == nullptr)
    return;
  b->demoted_by_policy = true;
  b->demoted_elsewhere = false;
  b->demotion_reason = reason;
  b->demoted_at = now;
  b->last_unhealthy_at = now;
}

std::vector<BrokerHealth> HealthPolicy::health() const {
  std::vector<BrokerHealth> result;
  result.reserve(brokers_.size());
  for (const auto& b : brokers_) {
    result.push_back({b.id, b.unreachable, b.slow_storage, b.demoted_by_policy, b.demoted_elsewhere,
                      b.failure_streak, b.success_streak, b.fsync_median});
  }
  return result;
}

std::vector<BrokerId> HealthPolicy::demoted_by_policy() const {
  std::vector<BrokerId> result;
  for (const auto& b : brokers_) {
    if (b.demoted_by_policy)
      result.push_back(b.id);
  }
  return result;
}

}  // namespace faultline::probes
