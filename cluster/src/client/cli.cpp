#include "faultline/cluster/client/cli.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "faultline/cluster/client/client.h"

namespace faultline::cluster {
namespace {

std::string replicas_str(const ReplicaList& l) {
  std::vector<int32_t> ids;
  for (BrokerId b : l)
    ids.push_back(b.value());
  return fmt::format("{}", fmt::join(ids, ","));
}

void print_metadata(const MetadataResponse& md) {
  for (const auto& b : md.brokers) {
    std::string storage;
    if (b.storage_canary_us >= 0)
      storage =
          fmt::format(" storage_canary_ms={:.1f}", static_cast<double>(b.storage_canary_us) / 1e3);
    if (!b.storage_canary_error.empty())
      storage += " storage_error=\"" + b.storage_canary_error + "\"";
    fmt::print("broker {} client={} internal={}{}{}{}\n", b.id, b.client_endpoint.str(),
               b.internal_endpoint.str(), b.fenced ? " fenced" : "",
               b.demoted ? " demoted(" + b.demotion_reason + ")" : "", storage);
  }
  for (const auto& p : md.partitions) {
    fmt::print(
        "{} leader={} leader_epoch={} replicas=[{}] isr=[{}]{}{}\n", p.tp, p.leader, p.leader_epoch,
        replicas_str(p.replicas), replicas_str(p.isr),
        p.unclean_elections > 0 ? fmt::format(" unclean_elections={}", p.unclean_elections) : "",
        p.error != errc::none ? fmt::format(" error={}", errc_name(p.error)) : "");
  }
}

// Connection options every client subcommand takes.
struct Connection {
  std::vector<std::string> bootstrap;
  std::string controller = "127.0.0.1:9090";
  int timeout_ms = 5000;

  void add_to(CLI::App* cmd) {
    cmd->add_option("--bootstrap", bootstrap, "broker client listeners host:port[,host:port]")
        ->delimiter(',');
    cmd->add_option("--controller", controller,
                    "controller host:port (admin requests), or every controller of the quorum as "
                    "host:port,host:port,...: the active one answers");
    cmd->add_option("--timeout-ms", timeout_ms, "request.timeout.ms");
  }

  // nullptr (with the reason on stderr) when an endpoint does not parse.
  std::unique_ptr<SyncClient> connect() const {
    ClientConfig config;
    for (const auto& b : bootstrap) {
      Endpoint ep;
      if (!parse_endpoint(b, ep)) {
        fmt::print(stderr, "bad --bootstrap endpoint: {}\n", b);
        return nullptr;
      }
      config.bootstrap.push_back(ep);
    }
    if (!parse_endpoints(controller, config.controllers)) {
      fmt::print(stderr, "bad --controller endpoint: {}\n", controller);
      return nullptr;
    }
    config.request_timeout = std::chrono::milliseconds(timeout_ms);
    config.delivery_timeout = 3 * config.request_timeout;
    return std::make_unique<SyncClient>(config);
  }
};

struct Options {
  Connection conn;
  std::string topic;
  int32_t partition = 0, partitions = 1, replication_factor = 1;
  std::vector<std::string> values;
  std::string acks = "all";
  int64_t from = 0;
  std::string election_type = "preferred";
  int32_t broker = 0;
  std::string reason = "operator";
  std::vector<int32_t> replicas;
  std::string key, value;
  std::string json_file;
};

// kafka-leader-election.sh's --path-to-json-file format:
// {"partitions": [{"topic": "t", "partition": 0}, ...]}. False (with the reason) when malformed.
bool read_partition_list(const std::string& file, std::vector<TopicPartition>& out,
                         std::string& why) {
  std::ifstream in(file);
  if (!in) {
    why = file + ": cannot open";
    return false;
  }
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("partitions") ||
      !j["partitions"].is_array()) {
    why = file + ": expected {\"partitions\": [{\"topic\": ..., \"partition\": ...}]}";
    return false;
  }
  for (const auto& p : j["partitions"]) {
    if (!p.is_object() || !p.contains("topic") || !p["topic"].is_string() ||
        !p.contains("partition") || !p["partition"].is_number_integer()) {
      why = file + ": every entry needs a string \"topic\" and an integer \"partition\"";
      return false;
    }
    out.push_back({p["topic"].get<std::string>(), PartitionIndex{p["partition"].get<int32_t>()}});
  }
  return true;
}

int describe(const Options& o) {
  auto client = o.conn.connect();
  if (!client)
    return 2;
  auto md = client->controller_metadata();
  if (!md) {
    fmt::print(stderr, "describe: controller {} unreachable\n", o.conn.controller);
    return 1;
  }
  if (md->error != errc::none) {  // e.g. NOT_CONTROLLER: no active controller among those given
    fmt::print(stderr, "describe: {}\n", errc_name(md->error));
    return 1;
  }
  print_metadata(*md);
  return 0;
}

int report(std::string_view what, errc e) {
  fmt::print("{}: {}\n", what, errc_name(e));
  return e == errc::none ? 0 : 1;
}

}  // namespace

void add_client_commands(CLI::App& app, int& exit_code) {
  auto o = std::make_shared<Options>();
  auto run = [&exit_code, o](auto body) { return [&exit_code, o, body] { exit_code = body(*o); }; };

  auto* produce =
      app.add_subcommand("produce", "send values as one batch; prints ok, fail or info");
  o->conn.add_to(produce);
  produce->add_option("topic", o->topic)->required();
  produce->add_option("values", o->values)->required();
  produce->add_option("--partition", o->partition);
  produce->add_option("--acks", o->acks)->check(CLI::IsMember({"0", "1", "all"}));
  produce->callback(run([](const Options& o) {
    auto client = o.conn.connect();
    if (!client)
      return 2;
    TopicPartition tp{o.topic, PartitionIndex{o.partition}};
    Acks a = o.acks == "0" ? Acks::none : o.acks == "1" ? Acks::leader : Acks::all;
    auto r = client->send(tp, o.values, a);
    if (r.acknowledged()) {
      fmt::print("ok {} base_offset={} leader={} leader_epoch={} attempts={}\n", tp, r.base_offset,
                 r.leader, r.leader_epoch, r.attempts);
      return 0;
    }
    // fail: certainly not written; info: the outcome is unknown (it may yet be committed).
    fmt::print("{} {} error={} leader={} attempts={}\n", r.definite ? "fail" : "info", tp,
               errc_name(r.error), r.leader, r.attempts);
    return 1;
  }));

  auto* consume = app.add_subcommand("consume", "print a partition's records up to the HW");
  o->conn.add_to(consume);
  consume->add_option("topic", o->topic)->required();
  consume->add_option("--partition", o->partition);
  consume->add_option("--from", o->from, "first offset");
  consume->callback(run([](const Options& o) {
    auto client = o.conn.connect();
    if (!client)
      return 2;
    TopicPartition tp{o.topic, PartitionIndex{o.partition}};
    auto records = client->read_all(tp, Offset{o.from});
    if (!records) {
      fmt::print(stderr, "consume: {} unreadable\n", tp);
      return 1;
    }
    for (const auto& r : *records)
      fmt::print("{} {} leader_epoch={}\n", r.offset, r.value.value_or("<null>"), r.leader_epoch);
    return 0;
  }));

  auto* topic = app.add_subcommand("topic", "create or describe topics");
  topic->require_subcommand(1);
  auto* create = topic->add_subcommand("create", "create a topic (round-robin placement)");
  o->conn.add_to(create);
  create->add_option("name", o->topic)->required();
  create->add_option("--partitions", o->partitions);
  create->add_option("--replication-factor", o->replication_factor);
  create->callback(run([](const Options& o) {
    auto client = o.conn.connect();
    if (!client)
      return 2;
    auto r = client->create_topic(o.topic, o.partitions, o.replication_factor);
    if (r.error != errc::none)
      return report("topic create", r.error);
    for (size_t i = 0; i < r.assignment.size(); ++i)
      fmt::print("{}-{} replicas=[{}]\n", o.topic, i, replicas_str(r.assignment[i]));
    return 0;
  }));
  auto* topic_describe = topic->add_subcommand("describe", "brokers and partitions");
  o->conn.add_to(topic_describe);
  topic_describe->callback(run(describe));

  auto* admin = app.add_subcommand("admin", "elections, leadership priority, reassignment");
  admin->require_subcommand(1);
  auto* admin_describe = admin->add_subcommand("describe", "brokers and partitions");
  o->conn.add_to(admin_describe);
  admin_describe->callback(run(describe));

  auto* elect =
      admin->add_subcommand("elect", "preferred or unclean election (kafka-leader-election.sh)");
  o->conn.add_to(elect);
  elect->add_option("--topic", o->topic, "one topic's partitions (default: all partitions)");
  elect->add_option("--partition", o->partition);
  elect->add_option("--path-to-json-file", o->json_file,
                    "partitions as {\"partitions\": [{\"topic\": ..., \"partition\": ...}]}");
  elect->add_option("--election-type", o->election_type)
      ->check(CLI::IsMember({"preferred", "unclean"}));
  elect->callback(run([](const Options& o) {
    auto client = o.conn.connect();
    if (!client)
      return 2;
    std::vector<TopicPartition> tps;
    if (!o.topic.empty())
      tps.push_back({o.topic, PartitionIndex{o.partition}});
    std::string why;
    if (!o.json_file.empty() && !read_partition_list(o.json_file, tps, why)) {
      fmt::print(stderr, "elect: {}\n", why);
      return 2;
    }
    auto type = o.election_type == "unclean" ? ElectionType::unclean : ElectionType::preferred;
    auto r = client->elect_leaders(type, tps);
    if (r.error != errc::none)
      return report("elect", r.error);
    int code = 0;
    for (const auto& p : r.results) {
      fmt::print("{} {}\n", p.tp, errc_name(p.error));
      if (p.error != errc::none && p.error != errc::election_not_needed)
        code = 1;
    }
    return code;
  }));

  auto* demote = admin->add_subcommand("demote", "lower a broker's leadership priority");
  o->conn.add_to(demote);
  demote->add_option("broker", o->broker)->required();
  demote->add_option("--reason", o->reason);
  demote->callback(run([](const Options& o) {
    auto client = o.conn.connect();
    if (!client)
      return 2;
    return report(fmt::format("demote {}", o.broker), client->demote(BrokerId{o.broker}, o.reason));
  }));

  auto* promote = admin->add_subcommand("promote", "restore a demoted broker's priority");
  o->conn.add_to(promote);
  promote->add_option("broker", o->broker)->required();
  promote->callback(run([](const Options& o) {
    auto client = o.conn.connect();
    if (!client)
      return 2;
    return report(fmt::format("promote {}", o.broker), client->promote(BrokerId{o.broker}));
  }));

  auto* reassign = admin->add_subcommand("reassign", "change a partition's replica list");
  o->conn.add_to(reassign);
  reassign->add_option("topic", o->topic)->required();
  reassign->add_option("--partition", o->partition);
  reassign->add_option("--replicas", o->replicas)->required()->delimiter(',');
  reassign->callback(run([](const Options& o) {
    auto client = o.conn.connect();
    if (!client)
      return 2;
    ReplicaList target;
    for (int32_t id : o.replicas)
      target.push_back(BrokerId{id});
    return report("reassign", client->reassign({o.topic, PartitionIndex{o.partition}}, target));
  }));

  auto* set_config = admin->add_subcommand(
      "set-config", "dynamic cluster config (e.g. unclean.leader.election.enable)");
  o->conn.add_to(set_config);
  set_config->add_option("key", o->key)->required();
  set_config->add_option("value", o->value)->required();
  set_config->callback(run([](const Options& o) {
    auto client = o.conn.connect();
    if (!client)
      return 2;
    return report("set-config", client->set_config(o.key, o.value));
  }));
}

}  // namespace faultline::cluster
