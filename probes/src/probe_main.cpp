// `faultline-probe`: command line, logging and signals around ProbeService.
#include <fmt/format.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <asio.hpp>
#include <charconv>
#include <csignal>
#include <set>

#include "faultline/cluster/metrics.h"
#include "faultline/probes/probe_options.h"
#include "probe_service.h"

namespace faultline::probes {

std::optional<std::vector<BrokerTarget>> parse_broker_targets(std::string_view text,
                                                              std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<std::vector<BrokerTarget>> {
    if (why)
      *why = std::move(reason);
    return std::nullopt;
  };
  std::vector<BrokerTarget> out;
  std::set<BrokerId> seen;
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    auto eq = item.find('=');
    if (eq == std::string_view::npos)
      return fail(fmt::format("\"{}\" is not ID=HOST:PORT", item));
    int32_t id = 0;
    auto id_text = item.substr(0, eq);
    auto [ptr, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
    if (ec != std::errc{} || ptr != id_text.data() + id_text.size() || id < 0)
      return fail(fmt::format("\"{}\" is not a broker id", id_text));
    BrokerTarget t;
    t.id = BrokerId{id};
    if (!cluster::parse_endpoint(item.substr(eq + 1), t.client) || t.client.port == 0)
      return fail(fmt::format("\"{}\" is not HOST:PORT", item.substr(eq + 1)));
    if (!seen.insert(t.id).second)
      return fail(fmt::format("broker {} is listed twice", id));
    out.push_back(std::move(t));
  }
  if (out.empty())
    return fail("no brokers");
  return out;
}

std::chrono::milliseconds unreachable_demotion_bound(const ProbeOptions& options) {
  return options.interval * options.health.failures_to_demote + options.effective_probe_timeout();
}

std::chrono::milliseconds slow_storage_demotion_bound(const ProbeOptions& options,
                                                      std::chrono::milliseconds canary_interval) {
  return canary_interval * (options.health.storage_window / 2 + 1) + options.interval * 2;
}

std::string ProbeOptions::validate() const {
  if (brokers.empty())
    return "no brokers to probe";
  if (interval.count() <= 0)
    return "the interval must be positive";
  if (effective_probe_timeout().count() <= 0 || effective_probe_timeout() >= interval)
    return "the probe timeout must be positive and shorter than the interval";
  if (controller_timeout.count() <= 0)
    return "the controller timeout must be positive";
  if (controllers.empty())
    return "no controller";
  for (const auto& c : controllers) {
    if (c.port == 0)
      return "the controller's port is missing";
  }
  if (auto problem = health.validate(); !problem.empty())
    return problem;
  return {};
}

int probe_main(int argc, char** argv) {
  ProbeOptions o;
  HealthConfig& h = o.health;
  std::string brokers, controller;
  int64_t interval_ms = o.interval.count(), timeout_ms = 0;
  int64_t controller_timeout_ms = o.controller_timeout.count();
  int64_t refresh_ms = o.controller_refresh.count();
  int64_t hold_ms = h.recovery_hold.count(), max_age_ms = h.storage_max_age.count();
  double floor_ms = static_cast<double>(h.storage_floor.count()) / 1000.0;

  CLI::App app{
      "faultline-probe: probes brokers from the client network and asks the controller "
      "to demote the ones clients cannot use (probes/README.md)"};
  app.add_option("--brokers", brokers, "ID=HOST:PORT,... every broker's client listener")
      ->required();
  app.add_option("--controller", controller,
                 "controller HOST:PORT (admin API), or every controller of the quorum as "
                 "HOST:PORT,HOST:PORT,...")
      ->required();
  app.add_option("--interval-ms", interval_ms, "one probing round this often")
      ->capture_default_str();
  app.add_option("--probe-timeout-ms", timeout_ms,
                 "one probe gives up after this (default: 3/4 of the interval)");
  app.add_option("--controller-timeout-ms", controller_timeout_ms, "one controller request")
      ->capture_default_str();
  app.add_option("--controller-refresh-ms", refresh_ms,
                 "read the controller's demoted brokers this often")
      ->capture_default_str();
  app.add_option("--failures-to-demote", h.failures_to_demote, "K: consecutive failed probes")
      ->capture_default_str();
  app.add_option("--successes-to-promote", h.successes_to_promote,
                 "M: consecutive successful probes")
      ->capture_default_str();
  app.add_option("--recovery-hold-ms", hold_ms, "healthy this long before a promotion")
      ->capture_default_str();
  app.add_option("--max-demoted", h.max_demoted, "most brokers demoted at once, by anyone")
      ->capture_default_str();
  app.add_option("--vantage-guard-fraction", h.vantage_guard_fraction,
                 "this share of brokers failing at once blames the prober")
      ->capture_default_str();
  app.add_option("--vantage-min-failures", h.vantage_min_failures,
                 "... and at least this many of them")
      ->capture_default_str();
  app.add_option("--storage-outlier-factor", h.storage_outlier_factor,
                 "slow: median fsync above this many times the cluster's")
      ->capture_default_str();
  app.add_option("--storage-floor-ms", floor_ms, "... and above this")->capture_default_str();
  app.add_option("--storage-window", h.storage_window, "samples per broker judged")
      ->capture_default_str();
  app.add_option("--storage-min-samples", h.storage_min_samples, "judge a broker from this many")
      ->capture_default_str();
  app.add_option("--storage-min-brokers", h.storage_min_brokers,
                 "compare only across this many brokers")
      ->capture_default_str();
  app.add_option("--storage-max-age-ms", max_age_ms, "older samples are dropped")
      ->capture_default_str();
  app.add_option("--metrics-host", o.metrics_host, "Prometheus address")->capture_default_str();
  app.add_option("--metrics-port", o.metrics_port, "Prometheus port (0: none)")
      ->capture_default_str();
  app.add_option("--log", o.log_file, "log file (default: stderr)");
  app.add_option("--decisions", o.decisions_file,
                 "append every decision and held demotion as JSON Lines to this file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::string why;
  auto targets = parse_broker_targets(brokers, &why);
  if (!targets) {
    std::fprintf(stderr, "faultline-probe: --brokers: %s\n", why.c_str());
    return 2;
  }
  o.brokers = std::move(*targets);
  if (!cluster::parse_endpoints(controller, o.controllers)) {
    std::fprintf(stderr, "faultline-probe: --controller must be HOST:PORT[,HOST:PORT...]\n");
    return 2;
  }
  o.interval = std::chrono::milliseconds(interval_ms);
  o.probe_timeout = std::chrono::milliseconds(timeout_ms);
  o.controller_timeout = std::chrono::milliseconds(controller_timeout_ms);
  o.controller_refresh = std::chrono::milliseconds(refresh_ms);
  h.recovery_hold = std::chrono::milliseconds(hold_ms);
  h.storage_max_age = std::chrono::milliseconds(max_age_ms);
  h.storage_floor = std::chrono::microseconds(static_cast<int64_t>(floor_ms * 1000.0));
  if (auto problem = o.validate(); !problem.empty()) {
    std::fprintf(stderr, "faultline-probe: %s\n", problem.c_str());
    return 2;
  }

  try {
    auto logger = o.log_file.empty() ? spdlog::stderr_logger_mt("probe")
                                     : spdlog::basic_logger_mt("probe", o.log_file.string());
    spdlog::set_default_logger(logger);
    spdlog::flush_on(spdlog::level::info);
  } catch (const spdlog::spdlog_ex& e) {
    std::fprintf(stderr, "faultline-probe: cannot log to %s: %s\n", o.log_file.c_str(), e.what());
    return 1;
  }

  asio::io_context io;
  std::unique_ptr<cluster::MetricsEndpoint> metrics;
  std::unique_ptr<ProbeService> service;
  try {
    metrics = std::make_unique<cluster::MetricsEndpoint>(o.metrics_host, o.metrics_port);
    service = std::make_unique<ProbeService>(io, o, metrics->registry());
  } catch (const std::exception& e) {
    spdlog::error("event=start_failed error=\"{}\"", e.what());
    return 1;
  }
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const std::error_code& ec, int sig) {
    if (ec)
      return;
    spdlog::info("event=stopping signal={}", sig);
    service->stop();
  });
  service->start();
  io.run();
  return 0;
}

}  // namespace faultline::probes
