// The prober's I/O shell around HealthPolicy (ARCHITECTURE.md §4): once per interval it probes
// every broker's client listener (fresh connection + BrokerHealth, concurrently, each bounded by
// the probe timeout), reads the storage canary figures from the answers, steps the policy, logs
// every decision and held demotion with its evidence, and carries the decisions out through the
// controller's admin API. It also keeps the policy's view of demotions made by others current.
//
// Lifecycle: construct, start(), run the io_context; stop() ends the loop after the round in
// progress, closes the controller connection and stops the io_context.
//
// Threading: one io_context thread; the policy, the reader and the logs belong to it.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "faultline/cluster/client/client.h"
#include "faultline/probes/health_policy.h"
#include "faultline/probes/probe_options.h"
#include "faultline/probes/storage_reports.h"
#include "probe_metrics.h"

namespace faultline::probes {

class ProbeService {
 public:
  ProbeService(asio::io_context& io, ProbeOptions options, prometheus::Registry& registry);

  void start();
  void stop();

 private:
  struct Probed {
    ReachabilityObservation observation;
    std::optional<cluster::BrokerHealthResponse> answer;
  };
  struct RoundState;

  asio::awaitable<void> loop();
  asio::awaitable<ProbeRound> probe_round();
  asio::awaitable<void> probe_into(std::shared_ptr<RoundState> round, size_t index);
  asio::awaitable<void> act_on(RoundOutcome outcome, TimePoint now);
  asio::awaitable<void> refresh_controller_view();
  void note_probe(const Probed& p, ProbeRound& round);
  // One line of the decisions file (JSON Lines), with wall and monotonic time.
  void record(nlohmann::json line, TimePoint at);

  asio::io_context& io_;
  ProbeOptions options_;
  HealthPolicy policy_;
  StorageReportReader storage_;
  ProbeMetrics metrics_;
  cluster::Client controller_;
  asio::steady_timer tick_;
  std::ofstream decisions_;
  bool stopping_ = false;
  bool adopted_ = false;  // the controller's demotions were looked at once (start-up adoption)
  bool refresh_in_flight_ = false;
  bool controller_reachable_ = true;
  TimePoint last_refresh_attempt_{};
  // Counts each decision's start and end: a controller view asked for before a decision ended,
  // or answered after one started, is stale (it could show a promotion elsewhere that is only the
  // decision not applied yet).
  uint64_t decisions_made_ = 0;
  bool vantage_suspect_ = false;
  std::map<BrokerId, std::string> last_error_;    // "" while the broker answers
  std::map<BrokerId, std::string> canary_error_;  // the canary's reported failure, if any
  std::map<BrokerId, TimePoint> held_logged_at_;  // held demotions are repeated every round
  std::set<BrokerId> demoted_shown_;              // faultline_health_demoted series set to 1
};

}  // namespace faultline::probes
