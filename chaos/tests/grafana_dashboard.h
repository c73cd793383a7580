// ci/grafana-dashboard.json as the tests see it: its PromQL expressions and the faultline_* series
// they read, sorted by the process that exports each one.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace faultline::chaos::testing {

// Series the probe process (faultline-probe, probes/, ARCHITECTURE.md §6) exports. Listed apart
// from the rest: the probe is not yet part of every run, so the unit test checks them by name and
// the privileged test against a scrape only when a probe runs.
inline const std::set<std::string> kProbeSeries = {
    "faultline_probe_up",
    "faultline_probe_latency_seconds_bucket",
    "faultline_health_decisions_total",
};
// Series only the harness of `faultline run` exports (--metrics-port / --prometheus).
inline const std::set<std::string> kHarnessSeries = {
    "faultline_faults_total",
    "faultline_partition_unavailable_seconds_bucket",
    "faultline_partition_unavailable_seconds_sum",
    "faultline_partition_unavailable_seconds_count",
};

struct Dashboard {
  nlohmann::json json;
  std::vector<std::string> exprs;                 // every target's expr
  std::set<std::string> series;                   // every faultline_* name in them
  std::set<std::string> cluster_series() const {  // exported by the controller and brokers
    std::set<std::string> out;
    for (const auto& s : series)
      if (!kProbeSeries.count(s) && !kHarnessSeries.count(s))
        out.insert(s);
    return out;
  }
};

inline std::filesystem::path dashboard_path() {
  const char* env = std::getenv("FAULTLINE_SOURCE_DIR");
  std::filesystem::path source = env && *env ? env : FAULTLINE_DEFAULT_SOURCE_DIR;
  return source / "ci" / "grafana-dashboard.json";
}

inline Dashboard load_dashboard() {
  Dashboard d;
  std::ifstream in(dashboard_path());
  d.json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!d.json.is_object())
    return d;
  static const std::regex name(R"(\bfaultline_[a-z0-9_]+)");
  for (const auto& panel : d.json.value("panels", nlohmann::json::array())) {
    for (const auto& target : panel.value("targets", nlohmann::json::array())) {
      std::string expr = target.value("expr", "");
      d.exprs.push_back(expr);
      for (std::sregex_iterator it(expr.begin(), expr.end(), name), end; it != end; ++it)
        d.series.insert(it->str());
    }
  }
  return d;
}

}  // namespace faultline::chaos::testing
