// Configuration of the cluster's processes. Kafka's config keys (ARCHITECTURE.md §2) map onto these
// fields one to one (see `apply_kafka_key`); defaults are Kafka's.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "faultline/cluster/types.h"

namespace faultline::cluster {

using std::chrono::milliseconds;

// "host:port"; port 0 asks for an ephemeral port.
struct Endpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string str() const { return host + ":" + std::to_string(port); }
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// Parses "host:port"; false on malformed input.
bool parse_endpoint(std::string_view text, Endpoint& out);

// One voter of the controller quorum (KRaft's controller.quorum.voters entry "id@host:port").
struct QuorumVoter {
  int32_t id = 0;
  Endpoint endpoint;
  friend bool operator==(const QuorumVoter&, const QuorumVoter&) = default;
};
// Parses "id@host:port,id@host:port,..." (ids unique and >= 0); false on malformed input.
bool parse_quorum_voters(std::string_view text, std::vector<QuorumVoter>& out);
// Parses "host:port,host:port,..." (an "id@" prefix on each is accepted and ignored, so a quorum's
// voter list can be passed as it is); false on malformed or empty input.
bool parse_endpoints(std::string_view text, std::vector<Endpoint>& out);

struct BrokerConfig;
// "every-batch" (fsync each append), "interval:<ms>" (fsync every <ms>), "never"; sets
// flush_every_batch / flush_interval / flush_never. False on anything else.
bool parse_flush_policy(std::string_view text, BrokerConfig& config);

struct BrokerConfig {
  BrokerId broker_id{1};
  std::filesystem::path data_dir = "data";
  Endpoint internal_listener{"127.0.0.1", 0};  // replication, admin, metrics
  Endpoint client_listener{"127.0.0.1", 0};    // clients only
  // Kafka-protocol listener for Kafka clients (librdkafka, kcat); none when unset.
  std::optional<Endpoint> kafka_listener;
  // Every controller of the quorum (one or more); the broker follows whichever is active
  // (net/controller_rotation.h).
  std::vector<Endpoint> controllers;
  uint16_t metrics_port = 0;                 // on the internal address; 0 = no exporter
  milliseconds heartbeat_interval{2000};     // broker.heartbeat.interval.ms
  milliseconds replica_lag_time_max{30000};  // replica.lag.time.max.ms
  int min_insync_replicas = 1;               // min.insync.replicas
  milliseconds replica_fetch_wait_max{500};  // replica.fetch.wait.max.ms
  milliseconds request_timeout{30000};       // request.timeout.ms (acks=all wait cap)
  milliseconds controlled_shutdown_timeout{30000};
  bool flush_every_batch = false;     // log.flush.interval.messages=1 when true
  milliseconds flush_interval{1000};  // log.flush.interval.ms
  // No periodic fsync of the logs at all (Kafka's default: the OS decides); the high-watermark
  // checkpoint is still written every flush_interval.
  bool flush_never = false;
  int64_t segment_bytes = 64ll << 20;         // log.segment.bytes
  int32_t replica_fetch_max_bytes = 4 << 20;  // replica.fetch.max.bytes
  // Segment and index files held open at once over all partitions (the rest are opened again when
  // used); 0: three quarters of the descriptor limit, at most all but 4096 of it.
  size_t max_open_log_files = 0;
  // Append+fsync of a canary file in the data dir, read by faultline-probe; 0 = no canary.
  milliseconds storage_canary_interval{1000};
};

struct ControllerConfig {
  std::filesystem::path data_dir = "controller";
  Endpoint listener{"127.0.0.1", 0};
  uint16_t metrics_port = 0;
  milliseconds session_timeout{9000};  // broker.session.timeout.ms
  int default_min_insync_replicas = 1;
  bool unclean_leader_election = false;  // unclean.leader.election.enable
  bool auto_leader_rebalance = true;     // auto.leader.rebalance.enable
  std::chrono::seconds leader_imbalance_check_interval{300};
  int leader_imbalance_per_broker_percentage = 10;
  int rebalance_batch_cap = 1000;
  milliseconds metadata_fetch_wait_max{500};
  // The controller quorum (ARCHITECTURE.md §2 item 18). Empty: a quorum of one, this controller
  // alone (node_id 0 at `listener`). Otherwise every voter, this one (`node_id`) included.
  int32_t node_id = 0;
  std::vector<QuorumVoter> quorum;
  milliseconds quorum_election_timeout{1000};   // controller.quorum.election.timeout.ms
  milliseconds quorum_heartbeat_interval{100};  // how often the active controller sends appends
  // Each voter snapshots its committed state and compacts its metadata log once it holds this many
  // committed records after its last snapshot; the newer half stays in the log (KRaft:
  // metadata.log.max.record.bytes.between.snapshots, in records here). 0: never.
  int64_t metadata_snapshot_records = 20000;
};

}  // namespace faultline::cluster
