#include "faultline/chaos/cluster_definition.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace faultline::chaos {

namespace {

const std::set<std::string> kTopLevel = {"name",       "kafka_port", "quorum_port",
                                         "controller", "broker",     "topic"};
const std::set<std::string> kProcessKeys = {"command", "setup", "ready_port", "ready_timeout_s"};
const std::set<std::string> kTopicKeys = {"create"};
const std::set<std::string> kTopicPlaceholders = {"topic", "partitions", "replication_factor"};

struct Parser {
  const std::string& file;
  DefinitionError& error;

  bool fail(const toml::node& where, std::string why) {
    error = {file, static_cast<int>(where.source().begin.line), std::move(why)};
    return false;
  }

  bool only_known(const toml::table& t, const std::set<std::string>& known,
                  const std::string& where) {
    for (const auto& [k, v] : t)
      if (!known.contains(std::string(k.str())))
        return fail(v, fmt::format("unknown key {}{}", where, k.str()));
    return true;
  }

  // Every {name} in `arg` must be a placeholder (topic ones only where `topic` is true).
  bool placeholders_known(const toml::node& where, const std::string& arg, bool topic) {
    for (size_t open = arg.find('{'); open != std::string::npos; open = arg.find('{', open + 1)) {
      size_t close = arg.find('}', open);
      if (close == std::string::npos)
        return fail(where, fmt::format("unclosed {{ in \"{}\"", arg));
      std::string name = arg.substr(open + 1, close - open - 1);
      const auto& all = definition_placeholders();
      bool known = std::find(all.begin(), all.end(), name) != all.end();
      if (!known && !(topic && kTopicPlaceholders.contains(name)))
        return fail(where, fmt::format("unknown placeholder {{{}}} in \"{}\"", name, arg));
    }
    return true;
  }

  bool command(const toml::table& t, std::string_view key, std::vector<std::string>& out,
               bool required, bool topic) {
    const toml::node* n = t.get(key);
    if (n == nullptr) {
      if (required) {
        error = {
            file, static_cast<int>(t.source().begin.line),
            fmt::format("{} is missing (a list of strings: the program and its arguments)", key)};
      }
      return !required;
    }
    const auto* list = n->as_array();
    if (list == nullptr || list->empty())
      return fail(*n, fmt::format("{}: expected a non-empty list of strings", key));
    for (const auto& item : *list) {
      const auto* s = item.as_string();
      if (s == nullptr)
        return fail(item, fmt::format("{}: every element must be a string", key));
      if (!placeholders_known(item, s->get(), topic))
        return false;
      out.push_back(s->get());
    }
    return true;
  }

  bool port(const toml::table& t, std::string_view key, std::optional<uint16_t>& out) {
    const toml::node* n = t.get(key);
    if (n == nullptr)
      return true;
    auto v = n->value<int64_t>();
    if (!v || *v < 1 || *v > 65535)
      return fail(*n, fmt::format("{}: expected a port 1..65535", key));
    out = static_cast<uint16_t>(*v);
    return true;
  }

  bool process(const toml::table& root, std::string_view key, bool required,
               std::optional<ClusterDefinition::Process>& out, std::chrono::seconds* timeout) {
    const toml::node* n = root.get(key);
    if (n == nullptr) {
      if (required)
        error = {file, 0, fmt::format("[{}] is missing: how to start each {}", key, key)};
      return !required;
    }
    const auto* t = n->as_table();
    if (t == nullptr)
      return fail(*n, fmt::format("{}: expected a table", key));
    if (!only_known(*t, kProcessKeys, std::string(key) + "."))
      return false;
    ClusterDefinition::Process p;
    if (!command(*t, "command", p.command, true, false) ||
        !command(*t, "setup", p.setup, false, false) || !port(*t, "ready_port", p.ready_port))
      return false;
    if (const toml::node* r = t->get("ready_timeout_s")) {
      auto v = r->value<int64_t>();
      if (!v || *v < 1 || *v > 600)
        return fail(*r, "ready_timeout_s: expected 1..600 seconds");
      if (timeout != nullptr)
        *timeout = std::chrono::seconds(*v);
    }
    out = std::move(p);
    return true;
  }

  std::optional<ClusterDefinition> parse(const toml::table& root) {
    ClusterDefinition d;
    d.file = file;
    if (!only_known(root, kTopLevel, ""))
      return std::nullopt;
    if (auto name = root["name"].value<std::string>())
      d.name = *name;
    std::optional<uint16_t> kafka, quorum;
    if (!port(root, "kafka_port", kafka) || !port(root, "quorum_port", quorum))
      return std::nullopt;
    d.kafka_port = kafka.value_or(d.kafka_port);
    d.quorum_port = quorum.value_or(d.quorum_port);
    std::optional<ClusterDefinition::Process> broker;
    if (!process(root, "controller", false, d.controller, nullptr) ||
        !process(root, "broker", true, broker, &d.ready_timeout))
      return std::nullopt;
    d.broker = std::move(*broker);
    const auto* topic = root["topic"].as_table();
    if (topic == nullptr) {
      error = {file, 0, "[topic] is missing: create = the command that creates a topic"};
      return std::nullopt;
    }
    if (!only_known(*topic, kTopicKeys, "topic.") ||
        !command(*topic, "create", d.create_topic, true, true))
      return std::nullopt;
    return d;
  }
};

}  // namespace

std::string DefinitionError::str() const {
  return line > 0 ? fmt::format("{}:{}: {}", file, line, why) : fmt::format("{}: {}", file, why);
}

const std::vector<std::string>& definition_placeholders() {
  static const std::vector<std::string> names = {"bin",
                                                 "id",
                                                 "node",
                                                 "int_addr",
                                                 "ext_addr",
                                                 "data_dir",
                                                 "controller_addr",
                                                 "controller_quorum",
                                                 "quorum_port",
                                                 "brokers",
                                                 "kafka_bootstrap",
                                                 "session_timeout_ms",
                                                 "heartbeat_interval_ms",
                                                 "replica_lag_time_max_ms",
                                                 "min_insync_replicas",
                                                 "unclean_leader_election"};
  return names;
}

std::optional<ClusterDefinition> parse_cluster_definition(std::string_view text,
                                                          const std::string& file,
                                                          DefinitionError& error) {
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    error = {file, static_cast<int>(e.source().begin.line), std::string(e.description())};
    return std::nullopt;
  }
  return Parser{file, error}.parse(root);
}

std::optional<ClusterDefinition> load_cluster_definition(const std::filesystem::path& path,
                                                         DefinitionError& error) {
  std::ifstream in(path);
  if (!in) {
    error = {path.string(), 0, "cannot read the cluster definition"};
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  return parse_cluster_definition(text.str(), path.string(), error);
}

std::vector<std::string> expand(const std::vector<std::string>& args,
                                const std::map<std::string, std::string>& values) {
  std::vector<std::string> out;
  out.reserve(args.size());
  for (const auto& arg : args) {
    std::string s;
    size_t at = 0;
    while (at < arg.size()) {
      size_t open = arg.find('{', at);
      size_t close = open == std::string::npos ? open : arg.find('}', open);
      if (close == std::string::npos) {
        s += arg.substr(at);
        break;
      }
      auto it = values.find(arg.substr(open + 1, close - open - 1));
      s += arg.substr(at, open - at);
      s += it != values.end() ? it->second : arg.substr(open, close - open + 1);
      at = close + 1;
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace faultline::chaos
