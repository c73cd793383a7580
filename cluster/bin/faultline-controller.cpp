// faultline-controller: the cluster's controller process (ARCHITECTURE.md §2 items 8-17).
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "faultline/cluster/server/controller_process.h"

#ifdef FAULTLINE_MUTANTS
#include "faultline/cluster/mutants.h"
#endif

int main(int argc, char** argv) {
  using namespace faultline::cluster;
  ControllerConfig config;
  std::string listen = "127.0.0.1:9090";
  int64_t session_timeout_ms = config.session_timeout.count();
  int64_t rebalance_interval_s = config.leader_imbalance_check_interval.count();
  CLI::App app{"faultline-controller: the controller of a faultline mini-cluster"};
  app.add_option("--data-dir", config.data_dir, "where the metadata log lives")->required();
  app.add_option("--listen", listen, "internal address host:port (controller and admin API)");
  app.add_option("--metrics-port", config.metrics_port, "Prometheus port on the listen host");
  app.add_option("--session-timeout-ms", session_timeout_ms, "broker.session.timeout.ms");
  app.add_option("--min-insync-replicas", config.default_min_insync_replicas,
                 "min.insync.replicas");
  app.add_flag("--unclean-leader-election,!--no-unclean-leader-election",
               config.unclean_leader_election, "unclean.leader.election.enable");
  app.add_flag("--auto-leader-rebalance,!--no-auto-leader-rebalance",
               config.auto_leader_rebalance, "auto.leader.rebalance.enable");
  app.add_option("--leader-imbalance-check-interval-s", rebalance_interval_s,
                 "leader.imbalance.check.interval.seconds");
  app.add_option("--leader-imbalance-per-broker-percentage",
                 config.leader_imbalance_per_broker_percentage,
                 "leader.imbalance.per.broker.percentage");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
#ifdef FAULTLINE_MUTANTS
  if (!enable_mutant_from_environment()) return 2;
#endif
  if (!parse_endpoint(listen, config.listener)) {
    spdlog::error("event=bad_config option=--listen value={}", listen);
    return 2;
  }
  config.session_timeout = std::chrono::milliseconds(session_timeout_ms);
  config.leader_imbalance_check_interval = std::chrono::seconds(rebalance_interval_s);
  return run_controller_process(config);
}
