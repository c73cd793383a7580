// faultline-broker: a broker of the mini-cluster (ARCHITECTURE.md §2 items 1-7, 9, 13).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "faultline/cluster/server/broker_process.h"

#ifdef FAULTLINE_MUTANTS
#include <fmt/core.h>

#include <string_view>

#include "faultline/cluster/mutants.h"
#endif

int main(int argc, char** argv) {
  using namespace faultline::cluster;
  BrokerConfig config;
  int32_t id = 1;
  std::string internal = "127.0.0.1:0", client = "127.0.0.1:0", controller;
  int64_t heartbeat_ms = config.heartbeat_interval.count();
  int64_t lag_ms = config.replica_lag_time_max.count();
  int64_t fetch_wait_ms = config.replica_fetch_wait_max.count();
  int64_t request_timeout_ms = config.request_timeout.count();
  int64_t canary_ms = config.storage_canary_interval.count();
  CLI::App app{"faultline-broker: a broker of a faultline mini-cluster"};
  app.add_option("--id", id, "broker id")->required();
  app.add_option("--data-dir", config.data_dir, "where the partition logs live")->required();
  app.add_option("--internal", internal, "internal listener host:port (replication, admin)");
  app.add_option("--client", client, "client listener host:port (clients only)");
  std::string kafka;
  app.add_option("--kafka", kafka,
                 "Kafka-protocol listener host:port for Kafka clients (librdkafka, kcat); none "
                 "when not given");
  app.add_option(
         "--controller", controller,
         "controller host:port, or every controller of the quorum as host:port,host:port,... "
         "(an id@ prefix on each is ignored); the broker follows the active one")
      ->required();
  app.add_option("--metrics-port", config.metrics_port, "Prometheus port on the internal host");
  app.add_option("--heartbeat-interval-ms", heartbeat_ms, "broker.heartbeat.interval.ms");
  app.add_option("--replica-lag-time-max-ms", lag_ms, "replica.lag.time.max.ms");
  app.add_option("--replica-fetch-wait-max-ms", fetch_wait_ms, "replica.fetch.wait.max.ms");
  app.add_option("--request-timeout-ms", request_timeout_ms, "request.timeout.ms");
  app.add_option("--min-insync-replicas", config.min_insync_replicas, "min.insync.replicas");
  app.add_option("--storage-canary-interval-ms", canary_ms,
                 "append+fsync a canary file in the data dir this often, for faultline-probe "
                 "(0: off)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-open-log-files", config.max_open_log_files,
                 "segment and index files held open at once over all partitions, the rest opened "
                 "again when used (0: from the descriptor limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--flush-every-batch", config.flush_every_batch,
               "fsync after every batch (log.flush.interval.messages=1)");
#ifdef FAULTLINE_MUTANTS
  bool list_mutants = false;  // for --help; looked for before parsing (no required options then)
  app.add_flag("--list-mutants", list_mutants,
               "print the planted bugs FAULTLINE_MUTANT can enable and exit");
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--list-mutants") {
      for (auto name : mutant_names())
        fmt::print("{}\n", name);
      return 0;
    }
  }
#endif
  std::string flush_policy;
  app.add_option("--flush-policy", flush_policy,
                 "every-batch | interval:<ms> | never (log.flush.interval.messages / .ms)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
#ifdef FAULTLINE_MUTANTS
  if (!enable_mutant_from_environment())
    return 2;
#endif
  config.broker_id = BrokerId{id};
  if (!flush_policy.empty() && !parse_flush_policy(flush_policy, config)) {
    spdlog::error(
        "event=bad_config reason=\"--flush-policy: every-batch, interval:<ms> or never\"");
    return 2;
  }
  if (!parse_endpoint(internal, config.internal_listener) ||
      !parse_endpoint(client, config.client_listener) ||
      !parse_endpoints(controller, config.controllers)) {
    spdlog::error(
        "event=bad_config reason=\"endpoints must be host:port (--controller: a "
        "comma-separated list of them)\"");
    return 2;
  }
  if (!kafka.empty()) {
    config.kafka_listener.emplace();
    if (!parse_endpoint(kafka, *config.kafka_listener)) {
      spdlog::error("event=bad_config reason=\"--kafka must be host:port\"");
      return 2;
    }
  }
  config.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  config.replica_lag_time_max = std::chrono::milliseconds(lag_ms);
  config.replica_fetch_wait_max = std::chrono::milliseconds(fetch_wait_ms);
  config.request_timeout = std::chrono::milliseconds(request_timeout_ms);
  config.storage_canary_interval = std::chrono::milliseconds(canary_ms);
  return run_broker_process(config);
}
