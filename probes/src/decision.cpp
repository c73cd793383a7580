#include "faultline/probes/decision.h"

#include <fmt/format.h>

#include <iterator>
#include <nlohmann/json.hpp>

namespace faultline::probes {
namespace {

int64_t monotonic_ns(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// Durations in log lines are read by people: milliseconds with a fraction.
double ms(std::chrono::microseconds d) {
  return static_cast<double>(d.count()) / 1000.0;
}

void append_evidence(std::string& s, const Evidence& e) {
  auto out = std::back_inserter(s);
  fmt::format_to(out, "failure_streak={} success_streak={}", e.failure_streak, e.success_streak);
  if (e.streak_started_at)
    fmt::format_to(
        out, " streak_for_ms={:.1f}",
        std::chrono::duration<double, std::milli>(e.decided_at - *e.streak_started_at).count());
  fmt::format_to(out, " last_latency_ms={:.3f}", ms(e.last_latency));
  if (!e.last_error.empty())
    fmt::format_to(out, " last_error=\"{}\"", e.last_error);
  if (e.storage_samples > 0)
    fmt::format_to(out, " fsync_median_ms={:.3f} samples={}", ms(e.broker_fsync_median),
                   e.storage_samples);
  if (e.storage_error_streak > 0)
    fmt::format_to(out, " storage_error_streak={} storage_error=\"{}\"", e.storage_error_streak,
                   e.storage_error);
  if (e.fsync_threshold.count() > 0)
    fmt::format_to(out, " cluster_fsync_median_ms={:.3f} fsync_threshold_ms={:.3f}",
                   ms(e.cluster_fsync_median), ms(e.fsync_threshold));
  if (e.demoted_at)
    fmt::format_to(out, " demoted_for_ms={:.1f}",
                   std::chrono::duration<double, std::milli>(e.decided_at - *e.demoted_at).count());
  if (e.last_unhealthy_at)
    fmt::format_to(
        out, " since_unhealthy_ms={:.1f}",
        std::chrono::duration<double, std::milli>(e.decided_at - *e.last_unhealthy_at).count());
}

}  // namespace

std::string_view to_string(Action a) noexcept {
  switch (a) {
    case Action::demote:
      return "demote";
    case Action::promote:
      return "promote";
  }
  return "unknown";
}

std::string_view to_string(Reason r) noexcept {
  switch (r) {
    case Reason::unreachable:
      return "unreachable";
    case Reason::slow_storage:
      return "slow_storage";
    case Reason::recovered:
      return "recovered";
  }
  return "unknown";
}

std::string_view to_string(HeldBack h) noexcept {
  switch (h) {
    case HeldBack::cap_reached:
      return "cap_reached";
    case HeldBack::promoted_by_operator:
      return "promoted_by_operator";
    case HeldBack::last_healthy_broker:
      return "last_healthy_broker";
  }
  return "unknown";
}

std::string_view controller_reason(Reason r) noexcept {
  return r == Reason::slow_storage ? "storage-health" : "network-health";
}

std::string Evidence::to_string() const {
  std::string s;
  append_evidence(s, *this);
  return s;
}

nlohmann::json Evidence::to_json() const {
  nlohmann::json j = {
      {"decided_at_ns", monotonic_ns(decided_at)},
      {"failure_streak", failure_streak},
      {"success_streak", success_streak},
      {"last_latency_us", last_latency.count()},
      {"last_error", last_error},
      {"broker_fsync_median_us", broker_fsync_median.count()},
      {"cluster_fsync_median_us", cluster_fsync_median.count()},
      {"fsync_threshold_us", fsync_threshold.count()},
      {"storage_samples", storage_samples},
      {"storage_error_streak", storage_error_streak},
      {"storage_error", storage_error},
  };
  j["streak_started_at_ns"] =
      streak_started_at ? nlohmann::json(monotonic_ns(*streak_started_at)) : nlohmann::json();
  j["demoted_at_ns"] = demoted_at ? nlohmann::json(monotonic_ns(*demoted_at)) : nlohmann::json();
  j["last_unhealthy_at_ns"] =
      last_unhealthy_at ? nlohmann::json(monotonic_ns(*last_unhealthy_at)) : nlohmann::json();
  return j;
}

std::string Decision::to_string() const {
  std::string s = fmt::format("{} broker={} reason={} ", probes::to_string(action), broker,
                              probes::to_string(reason));
  append_evidence(s, evidence);
  return s;
}

nlohmann::json Decision::to_json() const {
  return {{"action", probes::to_string(action)},
          {"broker", broker.value()},
          {"reason", probes::to_string(reason)},
          {"evidence", evidence.to_json()}};
}

std::string HeldDemotion::to_string() const {
  std::string s = fmt::format("demotion_held broker={} reason={} why={} ", broker,
                              probes::to_string(reason), probes::to_string(why));
  append_evidence(s, evidence);
  return s;
}

nlohmann::json HeldDemotion::to_json() const {
  return {{"broker", broker.value()},
          {"reason", probes::to_string(reason)},
          {"why", probes::to_string(why)},
          {"evidence", evidence.to_json()}};
}

}  // namespace faultline::probes
