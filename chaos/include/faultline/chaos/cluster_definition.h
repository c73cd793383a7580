// Cluster definitions: any Kafka-API cluster as the system under test (ARCHITECTURE.md §3,
// "Other Kafka-API clusters").
//
// A definition (TOML) says how to start each node as a command template, how to create a topic
// and on which port the brokers speak the Kafka protocol. The harness starts those commands in
// its namespaces under its supervisor, exactly as it starts the mini-cluster, so every fault and
// scenario applies; it follows leadership through Kafka Metadata answers (leader and leader epoch
// per partition) and drives the workload with librdkafka.
//
//   name = "kafka-kraft"
//   kafka_port = 9092                      # every broker's Kafka listener, on its ext address
//   [controller]                           # optional: one separate controller process (node c1)
//   command = ["{bin}/faultline-controller", "--listen", "{int_addr}:9094", ...]
//   ready_port = 9094                      # up once this port of its int address accepts
//   [broker]                               # one process per broker node b1..bN
//   command = ["/opt/kafka/bin/kafka-server-start.sh", "{data_dir}/server.properties"]
//   setup = ["sh", "-c", "..."]            # optional: run once before `command` (format storage)
//   ready_timeout_s = 60
//   [topic]
//   create = ["/opt/kafka/bin/kafka-topics.sh", "--create", "--topic", "{topic}", ...]
//
// Placeholders, replaced in every argument: {bin} (faultline's executables), {id} (broker id),
// {node} (b1...), {int_addr}, {ext_addr}, {data_dir}, {controller_addr} (c1's int address),
// {controller_quorum} ("1@<int_addr>:<quorum_port>,2@..." over the brokers, for KRaft's combined
// mode), {quorum_port}, {brokers}, {kafka_bootstrap}, the cluster settings {session_timeout_ms},
// {heartbeat_interval_ms}, {replica_lag_time_max_ms}, {min_insync_replicas},
// {unclean_leader_election} (true/false), and for [topic] {topic}, {partitions},
// {replication_factor}. An unknown placeholder is an error when the file is read.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace faultline::chaos {

struct ClusterDefinition {
  struct Process {
    std::vector<std::string> command;
    std::vector<std::string> setup;  // empty: none
    std::optional<uint16_t> ready_port;
  };
  std::string name;
  std::string file;  // where it was read from (messages)
  uint16_t kafka_port = 9092;
  uint16_t quorum_port = 9094;
  std::optional<Process> controller;
  Process broker;
  std::chrono::seconds ready_timeout{30};
  std::vector<std::string> create_topic;
};

struct DefinitionError {
  std::string file;
  int line = 0;
  std::string why;
  std::string str() const;
};

// Reads a definition; on failure `error` names the file, line and problem.
std::optional<ClusterDefinition> parse_cluster_definition(std::string_view text,
                                                          const std::string& file,
                                                          DefinitionError& error);
std::optional<ClusterDefinition> load_cluster_definition(const std::filesystem::path& path,
                                                         DefinitionError& error);

// The placeholders a definition may use, for the parser's check and for messages.
const std::vector<std::string>& definition_placeholders();

// `args` with every {name} replaced from `values`; a placeholder missing from `values` is left
// as written (the parser has already refused unknown names).
std::vector<std::string> expand(const std::vector<std::string>& args,
                                const std::map<std::string, std::string>& values);

}  // namespace faultline::chaos
