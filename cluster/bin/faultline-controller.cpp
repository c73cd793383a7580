// faultline-controller: the cluster's controller process (ARCHITECTURE.md §2 items 8-17).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>

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
  std::string quorum;
  int64_t election_timeout_ms = config.quorum_election_timeout.count();
  int64_t quorum_heartbeat_ms = config.quorum_heartbeat_interval.count();
  CLI::App app{"faultline-controller: the controller of a faultline mini-cluster"};
  app.add_option("--data-dir", config.data_dir, "where the metadata log lives")->required();
  app.add_option("--listen", listen, "internal address host:port (controller and admin API)");
  app.add_option("--metrics-port", config.metrics_port, "Prometheus port on the listen host");
  app.add_option("--session-timeout-ms", session_timeout_ms, "broker.session.timeout.ms");
  app.add_option("--min-insync-replicas", config.default_min_insync_replicas,
                 "min.insync.replicas");
  app.add_flag("--unclean-leader-election,!--no-unclean-leader-election",
               config.unclean_leader_election, "unclean.leader.election.enable");
  app.add_flag("--auto-leader-rebalance,!--no-auto-leader-rebalance", config.auto_leader_rebalance,
               "auto.leader.rebalance.enable");
  app.add_option("--leader-imbalance-check-interval-s", rebalance_interval_s,
                 "leader.imbalance.check.interval.seconds");
  app.add_option("--leader-imbalance-per-broker-percentage",
                 config.leader_imbalance_per_broker_percentage,
                 "leader.imbalance.per.broker.percentage");
  app.add_option("--node-id", config.node_id, "this controller's id in --quorum (node.id)");
  app.add_option("--quorum", quorum,
                 "every voter of the controller quorum as id@host:port,... "
                 "(controller.quorum.voters); none: a quorum of one");
  app.add_option("--quorum-election-timeout-ms", election_timeout_ms,
                 "controller.quorum.election.timeout.ms");
  app.add_option("--quorum-heartbeat-ms", quorum_heartbeat_ms,
                 "how often the active controller replicates to the other voters");
  app.add_option("--metadata-snapshot-records", config.metadata_snapshot_records,
                 "once the log holds this many committed records after its snapshot, snapshot "
                 "the older half and compact it away (0: never)")
      ->check(CLI::NonNegativeNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
#ifdef FAULTLINE_MUTANTS
  if (!enable_mutant_from_environment())
    return 2;
#endif
  if (!parse_endpoint(listen, config.listener)) {
    spdlog::error("event=bad_config option=--listen value={}", listen);
    return 2;
  }
  if (!quorum.empty()) {
    bool ok = parse_quorum_voters(quorum, config.quorum);
    ok = ok && std::any_of(config.quorum.begin(), config.quorum.end(),
                           [&](const QuorumVoter& v) { return v.id == config.node_id; });
    if (!ok) {
      spdlog::error(
          "event=bad_config option=--quorum value={} node_id={} (want id@host:port,... "
          "with this --node-id among them)",
          quorum, config.node_id);
      return 2;
    }
  }
  if (election_timeout_ms <= 0 || quorum_heartbeat_ms <= 0 ||
      quorum_heartbeat_ms >= election_timeout_ms) {
    spdlog::error(
        "event=bad_config option=--quorum-election-timeout-ms/--quorum-heartbeat-ms "
        "(want 0 < heartbeat < election timeout)");
    return 2;
  }
  config.quorum_election_timeout = std::chrono::milliseconds(election_timeout_ms);
  config.quorum_heartbeat_interval = std::chrono::milliseconds(quorum_heartbeat_ms);
  config.session_timeout = std::chrono::milliseconds(session_timeout_ms);
  config.leader_imbalance_check_interval = std::chrono::seconds(rebalance_interval_s);
  return run_controller_process(config);
}
