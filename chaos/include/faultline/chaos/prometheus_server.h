// A real Prometheus server (Debian's /usr/bin/prometheus) scraping a run: `faultline run
// --prometheus` and `faultline cluster up --prometheus` (ARCHITECTURE.md §6).
//
// Files, all under one directory (the run's `prometheus/`): `prometheus.yml` (one scrape job per
// kind of process, 1 s interval), `targets/<job>.json` (file-based service discovery, rewritten
// atomically when the set of processes changes; a restarted broker keeps its address, so its
// target stays the same and Prometheus scrapes the new process), and `data/` (the TSDB, kept after
// the run: `prometheus --storage.tsdb.path <run>/prometheus/data` shows it again).
//
// Lifecycle: start() launches the server under the run's Supervisor (journaled, so `faultline
// clean` kills it after a crashed harness; PR_SET_PDEATHSIG, so it dies with the harness thread),
// bound to a free port on 127.0.0.1, and returns once /-/ready answers 200. stop() (or the
// destructor) sends SIGTERM so the TSDB is closed cleanly. Queries go to the HTTP API
// (/api/v1/query). Not thread-safe: one owner, the harness's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "faultline/checker/types.h"

namespace faultline::chaos {

class Supervisor;
class ClusterHarness;

// One endpoint Prometheus scrapes (/metrics), in the scrape job `job`.
struct ScrapeTarget {
  std::string job;                            // "controller", "broker", "probe", "harness"
  std::string address;                        // host:port
  std::map<std::string, std::string> labels;  // target labels, e.g. node="b1"
  bool operator==(const ScrapeTarget&) const = default;
};

// The scrape jobs every configuration has (a job without targets just scrapes nothing).
inline const std::vector<std::string>& scrape_jobs() {
  static const std::vector<std::string> jobs{"controller", "broker", "probe", "harness"};
  return jobs;
}

// Pure: prometheus.yml for scrape_jobs(), each reading <targets_dir>/<job>.json.
std::string prometheus_config(std::chrono::milliseconds scrape_interval,
                              const std::filesystem::path& targets_dir);
// Pure: the file_sd document (a list of target groups) for the targets of `job`.
nlohmann::json file_sd_document(const std::vector<ScrapeTarget>& targets, std::string_view job);
// Pure: what a counter gained over its raw samples (oldest first), across restarts of the process
// that exports it (a drop is a reset: the new process counted from 0). The first sample counts in
// full: every counter here starts at 0 when its process starts.
double counter_total(const std::vector<double>& samples);

// One series of an instant vector.
struct PromSample {
  std::map<std::string, std::string> labels;
  double value = 0;
};
// One series of a range vector: raw (timestamp, value) samples, oldest first.
struct PromSeries {
  std::map<std::string, std::string> labels;
  std::vector<std::pair<double, double>> samples;  // (unix seconds, value)
};

// Pure: parses an /api/v1/query answer ("vector" or "scalar" → samples; "matrix" → series).
checker::Expected<std::vector<PromSample>, std::string> parse_instant_vector(std::string_view body);
checker::Expected<std::vector<PromSeries>, std::string> parse_range_vector(std::string_view body);

// The HTTP API of a Prometheus server (any: the one a run started, or one reading a kept TSDB).
class PrometheusClient {
 public:
  explicit PrometheusClient(std::string url) : url_(std::move(url)) {}
  const std::string& url() const { return url_; }
  // GET /api/v1/query?query=<promql> (evaluated now).
  checker::Expected<std::vector<PromSample>, std::string> query(std::string_view promql) const;
  // The same for a range-vector selector such as `x[5m]`: every raw sample.
  checker::Expected<std::vector<PromSeries>, std::string> query_range_vector(
      std::string_view selector) const;
  // Waits until `targets` targets have been scraped (successfully or not) after `since`, so
  // whatever they exported before `since` is in the TSDB.
  std::error_code wait_scraped(std::chrono::system_clock::time_point since, size_t targets,
                               std::chrono::milliseconds timeout) const;

 private:
  std::string url_;
};

struct PrometheusOptions {
  std::filesystem::path dir;       // prometheus.yml and targets/ go here
  std::filesystem::path data_dir;  // the TSDB (default: dir/data)
  std::chrono::milliseconds scrape_interval{1000};
  std::filesystem::path binary = "/usr/bin/prometheus";
  std::string process_name = "prometheus";  // the Supervisor's name (log file stem)
};

class PrometheusServer {
 public:
  // Writes the configuration and targets, starts the server, waits until it is ready.
  // nullptr with `why` set when it could not (binary missing, not ready within 30 s ...).
  static std::unique_ptr<PrometheusServer> start(Supervisor& supervisor, PrometheusOptions options,
                                                 const std::vector<ScrapeTarget>& targets,
                                                 std::string& why);
  ~PrometheusServer();
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  // Rewrites the targets files whose job's targets changed (Prometheus re-reads them itself).
  std::error_code set_targets(const std::vector<ScrapeTarget>& targets);
  const std::vector<ScrapeTarget>& targets() const { return targets_; }

  uint16_t port() const { return port_; }
  std::string url() const { return client_.url(); }  // http://127.0.0.1:<port>
  const PrometheusOptions& options() const { return options_; }
  const PrometheusClient& client() const { return client_; }

  // Waits until every current target has been scraped after `since`.
  std::error_code wait_scraped(std::chrono::system_clock::time_point since,
                               std::chrono::milliseconds timeout) const {
    return client_.wait_scraped(since, targets_.size(), timeout);
  }

  // SIGTERM (the TSDB is closed cleanly), SIGKILL after 10 s. Idempotent.
  std::error_code stop();

 private:
  PrometheusServer(Supervisor& supervisor, PrometheusOptions options)
      : supervisor_(supervisor), options_(std::move(options)), client_("") {}

  Supervisor& supervisor_;
  PrometheusOptions options_;
  PrometheusClient client_;
  std::vector<ScrapeTarget> targets_;
  uint16_t port_ = 0;
  bool stopped_ = false;
};

// A port on 127.0.0.1 that nothing listens on right now (bound to port 0, then closed).
uint16_t free_loopback_port();

// The metrics port of every cluster process (ARCHITECTURE.md §6: on the process's own address).
inline constexpr uint16_t kNodeMetricsPort = 9100;

// What to scrape in a run: every controller of the quorum (node="cK") and the brokers
// (node="bN", broker="N") on their int address, the probe (node="pr") on its ext address while a
// supervised process of that name exists, and the harness on 127.0.0.1:harness_metrics_port
// (0: not scraped).
std::vector<ScrapeTarget> cluster_scrape_targets(ClusterHarness& harness,
                                                 uint16_t harness_metrics_port);

// The verdict's "prometheus" section, queried from the server after a final scrape: per fault
// kind the failover histogram (count, sum, p50/p99 from the buckets), per election reason the
// number of elections (across controller restarts, from the raw samples) and the controller's
// trigger-to-commit p50/p99, and the faults injected per kind. `window` must cover the run.
checker::Expected<nlohmann::json, std::string> query_failover_report(const PrometheusServer& server,
                                                                     std::chrono::seconds window);
// At the end of a run: waits for a scrape of every target that started after this call (so what
// the harness observed last is in the TSDB), then query_failover_report(). On failure the report
// is {"error": why}; "final_scrape" says whether the wait succeeded.
nlohmann::json final_failover_report(const PrometheusServer& server, std::chrono::seconds window);

}  // namespace faultline::chaos
