#include "faultline/chaos/runner/scenario.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "faultline/probes/probe_options.h"

namespace faultline::chaos {

namespace {

// A parse failure at a node's line; the first failure wins.
struct Reader {
  const std::string& file;
  ScenarioError& error;
  bool failed = false;

  bool fail(const toml::node& where, std::string why) {
    return fail_at(static_cast<int>(where.source().begin.line), std::move(why));
  }
  bool fail_at(int line, std::string why) {
    if (!failed)
      error = {file, line, std::move(why)};
    failed = true;
    return false;
  }

  template <typename T>
  bool read(const toml::table& t, std::string_view key, T& out, T min, T max) {
    const toml::node* n = t.get(key);
    if (n == nullptr)
      return true;
    if constexpr (std::is_same_v<T, bool>) {
      if (!n->is_boolean())
        return fail(*n, fmt::format("{}: expected true or false", key));
      out = n->as_boolean()->get();
    } else {
      if (!n->is_integer())
        return fail(*n, fmt::format("{}: expected an integer", key));
      auto v = n->as_integer()->get();
      if (v < static_cast<int64_t>(min) || v > static_cast<int64_t>(max))
        return fail(*n, fmt::format("{}: {} is outside {}..{}", key, v, min, max));
      out = static_cast<T>(v);
    }
    return true;
  }

  // Seconds as an integer or a decimal (0.5), within [min_s, max_s], into milliseconds.
  bool read_seconds(const toml::table& t, std::string_view key, std::chrono::milliseconds& out,
                    double min_s, double max_s) {
    const toml::node* n = t.get(key);
    if (n == nullptr)
      return true;
    double v = 0;
    if (n->is_integer())
      v = static_cast<double>(n->as_integer()->get());
    else if (n->is_floating_point())
      v = n->as_floating_point()->get();
    else
      return fail(*n, fmt::format("{}: expected seconds (a number)", key));
    if (v < min_s || v > max_s)
      return fail(*n, fmt::format("{}: {} is outside {}..{} seconds", key, v, min_s, max_s));
    out = std::chrono::milliseconds(static_cast<int64_t>(v * 1000 + 0.5));
    return true;
  }

  bool read_string(const toml::table& t, std::string_view key, std::string& out) {
    const toml::node* n = t.get(key);
    if (n == nullptr)
      return true;
    if (!n->is_string())
      return fail(*n, fmt::format("{}: expected a string", key));
    out = n->as_string()->get();
    return true;
  }

  // Every key of `t` must be one of `known`: a typo is an error, not a silent default.
  bool only(const toml::table& t, std::initializer_list<std::string_view> known,
            std::string_view where) {
    for (const auto& [k, v] : t) {
      if (std::find(known.begin(), known.end(), k.str()) == known.end())
        return fail(v, fmt::format("unknown key {}{}", where, k.str()));
    }
    return true;
  }

  // An integer count of milliseconds into a duration.
  bool read_ms(const toml::table& t, std::string_view key, std::chrono::milliseconds& out, int min,
               int max) {
    int v = static_cast<int>(out.count());
    if (!read(t, key, v, min, max))
      return false;
    out = std::chrono::milliseconds(v);
    return true;
  }

  const toml::table* table(const toml::table& root, std::string_view key) {
    const toml::node* n = root.get(key);
    if (n == nullptr)
      return nullptr;
    if (!n->is_table()) {
      fail(*n, fmt::format("{}: expected a table", key));
      return nullptr;
    }
    return n->as_table();
  }
};

// "name" or "name(arg)": the name and the argument (empty when there is none).
bool split_call(std::string_view text, std::string_view& name, std::string_view& arg) {
  auto open = text.find('(');
  if (open == std::string_view::npos) {
    name = text;
    arg = {};
    return true;
  }
  if (text.back() != ')')
    return false;
  name = text.substr(0, open);
  arg = text.substr(open + 1, text.size() - open - 2);
  return !arg.empty();
}

std::optional<int> parse_int(std::string_view s) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size())
    return std::nullopt;
  return v;
}

std::optional<PartitionRef> parse_partition(std::string_view arg) {
  if (arg == "any")
    return PartitionRef{PartitionRef::Kind::any, 0};
  if (arg == "all")
    return PartitionRef{PartitionRef::Kind::all, 0};
  auto v = parse_int(arg);
  if (!v || *v < 0)
    return std::nullopt;
  return PartitionRef{PartitionRef::Kind::index, *v};
}

std::string partition_str(const PartitionRef& p) {
  switch (p.kind) {
    case PartitionRef::Kind::any:
      return "any";
    case PartitionRef::Kind::all:
      return "all";
    case PartitionRef::Kind::index:
      break;
  }
  return std::to_string(p.index);
}

struct SelectorName {
  SelectorKind kind;
  std::string_view name;
  bool takes_partition;
};
constexpr SelectorName kSelectors[] = {
    {SelectorKind::leader, "leader", true},
    {SelectorKind::followers, "followers", true},
    {SelectorKind::follower, "follower", true},
    {SelectorKind::lagging_follower, "lagging-follower", true},
    {SelectorKind::preferred_leader, "preferred-leader", true},
    {SelectorKind::controller, "controller", false},
    {SelectorKind::active_controller, "active-controller", false},
    {SelectorKind::controller_follower, "controller-follower", false},
    {SelectorKind::controller_minority, "controller-minority", false},
    {SelectorKind::all_controllers, "all-controllers", false},
    {SelectorKind::broker, "broker", false},
    {SelectorKind::random_broker, "random-broker", false},
    {SelectorKind::minority, "minority", false},
    {SelectorKind::majority, "majority", false},
    {SelectorKind::all_brokers, "all-brokers", false},
    {SelectorKind::all_nodes, "all-nodes", false},
};

constexpr std::string_view kSelectorList =
    "leader(P), followers(P), follower(P), lagging-follower(P), preferred-leader(P), controller, "
    "active-controller, controller-follower, controller-minority, all-controllers, broker(N), "
    "random-broker, minority, majority, all-brokers, all-nodes; P = a partition, any or all";

constexpr std::pair<TriggerKind, std::string_view> kTriggers[] = {
    {TriggerKind::leader_change, "leader-change"},
    {TriggerKind::isr_shrink, "isr-shrink"},
    {TriggerKind::isr_expand, "isr-expand"},
    {TriggerKind::fenced, "fenced"},
    {TriggerKind::controller_change, "controller-change"},
};

// Triggers about the whole cluster, not one partition: they take no argument.
bool takes_partition(TriggerKind kind) {
  return kind != TriggerKind::fenced && kind != TriggerKind::controller_change;
}

// Keys of a nemesis node that are not fault parameters.
constexpr std::string_view kStructuralKeys[] = {
    "fault",    "target",     "peers",  "hold_s", "on",  "within_s", "after_s",  "weight",
    "sequence", "concurrent", "choice", "repeat", "mix", "every_s",  "jitter_s", "times"};
bool is_structural(std::string_view key) {
  return std::find(std::begin(kStructuralKeys), std::end(kStructuralKeys), key) !=
         std::end(kStructuralKeys);
}

// Placeholder targets with the arity `kind` needs, so validate() can check the parameters alone
// before the real targets exist.
std::vector<NodeName> placeholder_targets(FaultKind kind) {
  switch (kind) {
    case FaultKind::one_way:
    case FaultKind::isolate_leader:
    case FaultKind::halves:
      return {"x1", "x2"};
    case FaultKind::majorities_ring:
    case FaultKind::bridge:
      return {"x1", "x2", "x3"};
    default:
      return {"x1"};
  }
}

bool is_partition_shape(FaultKind k) {
  return k == FaultKind::halves || k == FaultKind::majorities_ring || k == FaultKind::bridge;
}

std::optional<nlohmann::json> toml_to_json(const toml::node& n) {
  if (n.is_integer())
    return nlohmann::json(n.as_integer()->get());
  if (n.is_floating_point())
    return nlohmann::json(n.as_floating_point()->get());
  if (n.is_string())
    return nlohmann::json(n.as_string()->get());
  if (n.is_boolean())
    return nlohmann::json(n.as_boolean()->get());
  if (n.is_array()) {
    auto out = nlohmann::json::array();
    for (const auto& e : *n.as_array()) {
      auto v = toml_to_json(e);
      if (!v)
        return std::nullopt;
      out.push_back(*v);
    }
    return out;
  }
  return std::nullopt;
}

// The parser of the nemesis tree; one instance per scenario file.
struct NemesisParser {
  Reader& r;

  std::optional<NemesisNode> node(const toml::node& n, std::string_view where) {
    if (!n.is_table()) {
      r.fail(n, fmt::format("{}: expected a table (a fault step, sequence, concurrent, choice, "
                            "repeat or mix)",
                            where));
      return std::nullopt;
    }
    const toml::table& t = *n.as_table();
    static constexpr std::string_view kShapes[] = {"fault",  "sequence", "concurrent",
                                                   "choice", "repeat",   "mix"};
    std::vector<std::string_view> present;
    for (auto shape : kShapes)
      if (t.contains(shape))
        present.push_back(shape);
    if (present.size() != 1) {
      r.fail(n, present.empty()
                    ? fmt::format("{}: a node needs one of fault, sequence, concurrent, choice, "
                                  "repeat, mix",
                                  where)
                    : fmt::format("{}: {} and {} in one node (nest them instead)", where,
                                  present[0], present[1]));
      return std::nullopt;
    }
    NemesisNode out;
    out.line = static_cast<int>(n.source().begin.line);
    if (!r.read_seconds(t, "after_s", out.after, 0, 86400))
      return std::nullopt;
    if (const toml::node* w = t.get("weight")) {
      auto v = w->value<double>();
      if (!v || *v <= 0) {
        r.fail(*w, "weight: expected a positive number");
        return std::nullopt;
      }
      out.weight = *v;
    }
    if (present[0] == "fault")
      return step_node(t, std::move(out));
    if (present[0] == "repeat" || present[0] == "mix")
      return repeat_node(t, present[0], std::move(out));
    return group_node(t, present[0], std::move(out));
  }

  bool only_keys(const toml::table& t, std::initializer_list<std::string_view> extra,
                 std::string_view shape) {
    for (const auto& [k, v] : t) {
      if (k.str() == shape || k.str() == "after_s" || k.str() == "weight")
        continue;
      if (std::find(extra.begin(), extra.end(), k.str()) == extra.end())
        return r.fail(v, fmt::format("{}: unknown key {} (a fault step's keys go in the step)",
                                     shape, k.str()));
    }
    return true;
  }

  std::optional<NemesisNode> group_node(const toml::table& t, std::string_view shape,
                                        NemesisNode out) {
    if (!only_keys(t, {}, shape))
      return std::nullopt;
    const toml::node& list = *t.get(shape);
    if (!list.is_array()) {
      r.fail(list, fmt::format("{}: expected a list of nodes", shape));
      return std::nullopt;
    }
    if (list.as_array()->empty()) {
      r.fail(list, fmt::format("{}: empty (it needs at least one node)", shape));
      return std::nullopt;
    }
    out.type = shape == "sequence"     ? NemesisNode::Type::sequence
               : shape == "concurrent" ? NemesisNode::Type::concurrent
                                       : NemesisNode::Type::choice;
    for (const auto& child : *list.as_array()) {
      auto c = node(child, shape);
      if (!c)
        return std::nullopt;
      out.children.push_back(std::move(*c));
    }
    return out;
  }

  std::optional<NemesisNode> repeat_node(const toml::table& t, std::string_view shape,
                                         NemesisNode out) {
    if (!only_keys(t, {"every_s", "jitter_s", "times"}, shape))
      return std::nullopt;
    out.type = NemesisNode::Type::repeat;
    if (!r.read_seconds(t, "every_s", out.every, 0.1, 86400) ||
        !r.read_seconds(t, "jitter_s", out.jitter, 0, 86400) ||
        !r.read(t, "times", out.times, 0, 1000000))
      return std::nullopt;
    const toml::node& body = *t.get(shape);
    if (shape == "repeat") {
      auto c = node(body, "repeat");
      if (!c)
        return std::nullopt;
      out.children.push_back(std::move(*c));
      return out;
    }
    // mix = [a, b, c]: every round, a seeded weighted pick.
    if (!body.is_array() || body.as_array()->empty()) {
      r.fail(body, "mix: expected a non-empty list of nodes");
      return std::nullopt;
    }
    NemesisNode choice;
    choice.type = NemesisNode::Type::choice;
    choice.line = out.line;
    for (const auto& child : *body.as_array()) {
      auto c = node(child, "mix");
      if (!c)
        return std::nullopt;
      choice.children.push_back(std::move(*c));
    }
    out.children.push_back(std::move(choice));
    return out;
  }

  std::optional<NemesisNode> step_node(const toml::table& t, NemesisNode out) {
    FaultStep& step = out.step;
    step.line = out.line;
    for (const auto& [k, v] : t) {
      if (is_structural(k.str()) &&
          (k.str() == "sequence" || k.str() == "concurrent" || k.str() == "choice" ||
           k.str() == "repeat" || k.str() == "mix" || k.str() == "every_s" ||
           k.str() == "jitter_s" || k.str() == "times")) {
        r.fail(v, fmt::format("fault step: {} belongs to a group, not a step", k.str()));
        return std::nullopt;
      }
    }
    std::string kind_name;
    if (!r.read_string(t, "fault", kind_name))
      return std::nullopt;
    auto kind = parse_fault_kind(kind_name);
    if (!kind) {
      r.fail(*t.get("fault"), fmt::format("fault: unknown kind \"{}\"", kind_name));
      return std::nullopt;
    }
    step.kind = *kind;
    if (!selectors(t, step) || !params(t, step) || !timing(t, step))
      return std::nullopt;
    return out;
  }

  bool selectors(const toml::table& t, FaultStep& step) {
    std::string target;
    if (!r.read_string(t, "target", target))
      return false;
    if (target.empty()) {
      if (!is_partition_shape(step.kind))
        return r.fail(
            t, fmt::format("fault {}: target missing ({})", to_string(step.kind), kSelectorList));
      target = "all-nodes";
    }
    std::string why;
    auto sel = parse_selector(target, &why);
    if (!sel)
      return r.fail(*t.get("target"), "target: " + why);
    step.target = *sel;
    if (t.contains("peers")) {
      std::string peers;
      if (!r.read_string(t, "peers", peers))
        return false;
      auto p = parse_selector(peers, &why);
      if (!p)
        return r.fail(*t.get("peers"), "peers: " + why);
      if (step.kind != FaultKind::one_way && step.kind != FaultKind::isolate_leader &&
          step.kind != FaultKind::packets)
        return r.fail(*t.get("peers"),
                      fmt::format("peers: only one-way, isolate-leader and packets take peers, "
                                  "not {}",
                                  to_string(step.kind)));
      step.peers = *p;
    } else if (step.kind == FaultKind::one_way) {
      return r.fail(t, "fault one-way: peers missing (the node the target cannot reach)");
    }
    return true;
  }

  // Every other key is a parameter of the kind, by its faults.jsonl name; the spec's own schema
  // (fault_spec_from_json + validate) decides what is known and what is in range.
  bool params(const toml::table& t, FaultStep& step) {
    nlohmann::json params = nlohmann::json::object();
    const nlohmann::json known =
        to_json(FaultSpec{step.kind, {}, default_params(step.kind)})["params"];
    for (const auto& [k, v] : t) {
      if (is_structural(k.str()))
        continue;
      if (!known.contains(k.str()) || k.str() == "peers") {
        std::vector<std::string> names;
        for (const auto& [name, value] : known.items())
          if (name != "peers")
            names.push_back(name);
        return r.fail(
            v, fmt::format("fault {}: unknown parameter {} ({})", to_string(step.kind), k.str(),
                           names.empty() ? std::string("it takes none")
                                         : "known: " + fmt::format("{}", fmt::join(names, ", "))));
      }
      auto j = toml_to_json(v);
      if (!j)
        return r.fail(v, fmt::format("{}: expected a number, string or list", k.str()));
      params[std::string(k.str())] = *j;
    }
    std::string why;
    auto spec = fault_spec_from_json(
        {{"kind", std::string(to_string(step.kind))}, {"params", params}}, &why);
    if (!spec)
      return r.fail(t, fmt::format("fault {}: {}", to_string(step.kind), why));
    spec->targets = placeholder_targets(step.kind);
    if (validate(*spec, &why))
      return r.fail(t, fmt::format("fault {}: {}", to_string(step.kind), why));
    step.params = spec->params;
    return true;
  }

  bool timing(const toml::table& t, FaultStep& step) {
    if (is_one_off(step.kind)) {
      if (t.contains("hold_s"))
        return r.fail(
            *t.get("hold_s"),
            fmt::format("hold_s: {} is a one-off, there is nothing to heal", to_string(step.kind)));
      step.hold = std::chrono::milliseconds(0);
    } else if (!r.read_seconds(t, "hold_s", step.hold, 0.1, 86400)) {
      return false;
    }
    if (const toml::node* on = t.get("on")) {
      if (!on->is_string())
        return r.fail(*on, "on: expected a trigger");
      std::string why;
      auto trigger = parse_trigger(on->as_string()->get(), &why);
      if (!trigger)
        return r.fail(*on, "on: " + why);
      if (!r.read_seconds(t, "within_s", trigger->within, 0.1, 3600))
        return false;
      step.on = *trigger;
    } else if (t.contains("within_s")) {
      return r.fail(*t.get("within_s"), "within_s: only with a trigger (on)");
    }
    return true;
  }
};

void read_cluster(Reader& r, const toml::table& c, Scenario& s) {
  r.only(c,
         {"brokers", "controllers", "controller_election_timeout_ms", "metadata_snapshot_records",
          "session_timeout_ms", "heartbeat_interval_ms", "min_insync_replicas",
          "replica_lag_time_max_ms", "unclean_leader_election", "lazyfs", "flush_policy", "disks",
          "leader_imbalance_check_interval_s", "probe", "probe_interval_ms",
          "probe_failures_to_demote", "probe_recovery_hold_ms"},
         "cluster.");
  r.read(c, "brokers", s.cluster.brokers, 1, 9);
  if (r.read(c, "controllers", s.cluster.controllers, 1, 5) && s.cluster.controllers % 2 == 0)
    r.fail(*c.get("controllers"),
           fmt::format("cluster.controllers: {} is not 1, 3 or 5 (a quorum of an even number of "
                       "controllers survives no more failures than one less)",
                       s.cluster.controllers));
  r.read_ms(c, "controller_election_timeout_ms", s.cluster.controller_election_timeout, 100, 60000);
  r.read(c, "metadata_snapshot_records", s.cluster.metadata_snapshot_records, 0, 10000000);
  r.read_ms(c, "session_timeout_ms", s.cluster.session_timeout, 100, 600000);
  r.read_ms(c, "heartbeat_interval_ms", s.cluster.heartbeat_interval, 10, 60000);
  r.read(c, "min_insync_replicas", s.cluster.min_insync_replicas, 1, 9);
  r.read_ms(c, "replica_lag_time_max_ms", s.cluster.replica_lag_time_max, 100, 600000);
  r.read(c, "unclean_leader_election", s.cluster.unclean_leader_election, false, true);
  r.read(c, "lazyfs", s.cluster.lazyfs, false, true);
  r.read_string(c, "flush_policy", s.cluster.flush_policy);
  if (!s.cluster.flush_policy.empty() && s.cluster.flush_policy != "every-batch" &&
      s.cluster.flush_policy != "never" && s.cluster.flush_policy.rfind("interval:", 0) != 0)
    r.fail(*c.get("flush_policy"), "cluster.flush_policy: every-batch, interval:<ms> or never");
  r.read(c, "disks", s.cluster.disks, false, true);
  r.read(c, "probe", s.cluster.probe, false, true);
  r.read_ms(c, "probe_interval_ms", s.cluster.probe_interval, 20, 60000);
  for (const char* key : {"probe_failures_to_demote", "probe_recovery_hold_ms"}) {
    int v = 0;
    if (c.get(key) != nullptr && r.read(c, key, v, 1, 3600000)) {
      std::string flag = std::string("--") + std::string(key).substr(6);
      std::replace(flag.begin(), flag.end(), '_', '-');
      s.cluster.probe_args.push_back(flag);
      s.cluster.probe_args.push_back(std::to_string(v));
    }
  }
  int rebalance_s = static_cast<int>(s.cluster.leader_imbalance_check_interval.count());
  r.read(c, "leader_imbalance_check_interval_s", rebalance_s, 1, 86400);
  s.cluster.leader_imbalance_check_interval = std::chrono::seconds(rebalance_s);
  if (!r.failed && s.cluster.min_insync_replicas > s.cluster.brokers)
    r.fail(c, "cluster.min_insync_replicas: larger than the number of brokers");
}

void read_workload(Reader& r, const toml::table& w, Scenario& s) {
  r.only(w, {"partitions", "producers", "consumers", "acks", "rate_per_s", "value_bytes", "client"},
         "workload.");
  r.read(w, "consumers", s.workload.consumers, 0, 64);
  r.read(w, "partitions", s.workload.partitions, 1, 256);
  r.read(w, "producers", s.workload.producers, 1, 16);
  r.read(w, "rate_per_s", s.workload.rate_per_s, 0, 1000000);
  r.read(w, "value_bytes", s.workload.value_bytes, 0, 1 << 20);
  std::string acks = "all";
  r.read_string(w, "acks", acks);
  if (acks != "all" && acks != "1")
    r.fail(*w.get("acks"), "workload.acks: \"all\" or \"1\"");
  s.workload.acks_all = acks == "all";
  std::string client(to_string(s.workload.client));
  r.read_string(w, "client", client);
  if (client == to_string(WorkloadClientKind::librdkafka))
    s.workload.client = WorkloadClientKind::librdkafka;
  else if (client != to_string(WorkloadClientKind::faultline))
    r.fail(*w.get("client"),
           fmt::format("workload.client: \"{}\" is not \"faultline\" or \"librdkafka\"", client));
}

void read_unavailable_max(Reader& r, const toml::table& c, Scenario& s) {
  const toml::node* n = c.get("unavailable_max_s");
  if (n == nullptr)
    return;
  if (!n->is_table()) {
    std::chrono::milliseconds v{0};
    if (r.read_seconds(c, "unavailable_max_s", v, 0.001, 3600))
      s.unavailable_max = v;
    return;
  }
  for (const auto& [k, v] : *n->as_table()) {
    auto kind = parse_fault_kind(k.str());
    if (!kind) {
      r.fail(v, fmt::format("checks.unavailable_max_s: unknown fault kind {}", k.str()));
      return;
    }
    std::chrono::milliseconds bound{0};
    if (!r.read_seconds(*n->as_table(), k.str(), bound, 0.001, 3600))
      return;
    s.unavailable_max_by_kind[*kind] = bound;
  }
}

void read_checks(Reader& r, const toml::table& c, Scenario& s) {
  r.only(c, {"leader_moved_within_s", "preferred_leaders_within_s", "unavailable_max_s", "derived"},
         "checks.");
  r.read(c, "derived", s.derived_checks, false, true);
  read_unavailable_max(r, c, s);
  if (const toml::node* n = c.get("leader_moved_within_s"); n != nullptr && n->is_string()) {
    if (n->as_string()->get() != "probe")
      r.fail(*n, "checks.leader_moved_within_s: expected seconds or \"probe\"");
    else if (!s.cluster.probe)
      r.fail(*n, "checks.leader_moved_within_s: \"probe\" needs cluster.probe = true");
    s.leader_moved_within_probe_bound = true;
  } else if (n != nullptr) {
    std::chrono::milliseconds v{0};
    if (r.read_seconds(c, "leader_moved_within_s", v, 0.1, 3600))
      s.leader_moved_within = v;
  }
  if (c.contains("preferred_leaders_within_s")) {
    std::chrono::milliseconds v{0};
    if (r.read_seconds(c, "preferred_leaders_within_s", v, 0.1, 3600))
      s.preferred_leaders_within = v;
  }
}

// Disk faults need the brokers' data directories on their own devices.
bool check_steps(Reader& r, const NemesisNode& n, const Scenario& s) {
  if (n.type == NemesisNode::Type::step) {
    if (fault_class(n.step.kind) == FaultClass::disk && !s.cluster.disks)
      return r.fail_at(n.line,
                       fmt::format("fault {}: needs cluster.disks = true", to_string(n.step.kind)));
    if (fault_class(n.step.kind) == FaultClass::storage && !s.cluster.lazyfs)
      return r.fail_at(
          n.line, fmt::format("fault {}: needs cluster.lazyfs = true", to_string(n.step.kind)));
    return true;
  }
  for (const auto& c : n.children)
    if (!check_steps(r, c, s))
      return false;
  return true;
}

void read_nemesis(Reader& r, const toml::table& n, Scenario& s) {
  if (n.contains("faults")) {
    r.fail(*n.get("faults"),
           "nemesis.faults: the fixed fault list is gone; write the faults as steps "
           "(e.g. [nemesis] every_s = 6, repeat = { fault = \"kill\", target = \"leader(any)\", "
           "hold_s = 3 }; ARCHITECTURE.md)");
    return;
  }
  NemesisParser parser{r};
  auto root = parser.node(n, "nemesis");
  if (!root)
    return;
  if (!check_steps(r, *root, s))
    return;
  s.nemesis = std::move(*root);
}

}  // namespace

bool is_controller_selector(SelectorKind kind) {
  switch (kind) {
    case SelectorKind::controller:
    case SelectorKind::active_controller:
    case SelectorKind::controller_follower:
    case SelectorKind::controller_minority:
    case SelectorKind::all_controllers:
      return true;
    default:
      return false;
  }
}

std::string Selector::str() const {
  for (const auto& e : kSelectors) {
    if (e.kind != kind)
      continue;
    if (e.takes_partition)
      return fmt::format("{}({})", e.name, partition_str(partition));
    if (kind == SelectorKind::broker)
      return fmt::format("broker({})", broker);
    return std::string(e.name);
  }
  return "?";
}

std::optional<Selector> parse_selector(std::string_view text, std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<Selector> {
    if (why)
      *why = fmt::format("{}: {} ({})", text, reason, kSelectorList);
    return std::nullopt;
  };
  std::string_view name, arg;
  if (!split_call(text, name, arg))
    return fail("malformed selector");
  for (const auto& e : kSelectors) {
    if (e.name != name)
      continue;
    Selector s;
    s.kind = e.kind;
    if (e.takes_partition) {
      if (arg.empty())
        return fail(fmt::format("{} needs a partition", e.name));
      auto p = parse_partition(arg);
      if (!p)
        return fail("the partition must be an index >= 0, any or all");
      s.partition = *p;
    } else if (e.kind == SelectorKind::broker) {
      auto id = parse_int(arg);
      if (!id || *id < 1)
        return fail("broker(N) needs a broker id >= 1");
      s.broker = *id;
    } else if (!arg.empty()) {
      return fail(fmt::format("{} takes no argument", e.name));
    }
    return s;
  }
  return fail("unknown selector");
}

std::string Trigger::str() const {
  for (auto [k, name] : kTriggers)
    if (k == kind)
      return takes_partition(kind) ? fmt::format("{}({})", name, partition_str(partition))
                                   : std::string(name);
  return "?";
}

std::optional<Trigger> parse_trigger(std::string_view text, std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<Trigger> {
    if (why)
      *why = fmt::format(
          "{}: {} (leader-change(P), isr-shrink(P), isr-expand(P), fenced, controller-change)",
          text, reason);
    return std::nullopt;
  };
  std::string_view name, arg;
  if (!split_call(text, name, arg))
    return fail("malformed trigger");
  for (auto [kind, trigger_name] : kTriggers) {
    if (trigger_name != name)
      continue;
    Trigger t;
    t.kind = kind;
    if (!takes_partition(kind)) {
      if (!arg.empty())
        return fail(fmt::format("{} takes no argument", trigger_name));
      return t;
    }
    if (arg.empty())
      return fail(fmt::format("{} needs a partition", trigger_name));
    auto p = parse_partition(arg);
    if (!p)
      return fail("the partition must be an index >= 0, any or all");
    t.partition = *p;
    return t;
  }
  return fail("unknown trigger");
}

std::string ScenarioError::str() const {
  return line > 0 ? fmt::format("{}:{}: {}", file, line, why) : fmt::format("{}: {}", file, why);
}

std::string_view to_string(WorkloadClientKind kind) {
  return kind == WorkloadClientKind::librdkafka ? "librdkafka" : "faultline";
}

std::optional<Scenario> parse_scenario(std::string_view text, const std::string& file,
                                       ScenarioError& error) {
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    error = {file, static_cast<int>(e.source().begin.line), std::string(e.description())};
    return std::nullopt;
  }
  Reader r{file, error};
  Scenario s;
  r.only(
      root,
      {"name", "description", "duration_s", "expect", "cluster", "workload", "nemesis", "checks"},
      "");
  r.read_string(root, "name", s.name);
  r.read_string(root, "description", s.description);
  int duration = static_cast<int>(s.duration.count());
  r.read(root, "duration_s", duration, 1, 86400);
  s.duration = std::chrono::seconds(duration);
  std::string expect = "valid";
  r.read_string(root, "expect", expect);
  if (expect != "valid" && expect != "invalid")
    r.fail(*root.get("expect"), "expect: must be \"valid\" or \"invalid\"");
  s.expect_valid = expect == "valid";
  if (s.name.empty() && !r.failed)
    r.fail(root, "name: missing");
  if (const auto* c = r.table(root, "cluster"))
    read_cluster(r, *c, s);
  if (const auto* w = r.table(root, "workload"))
    read_workload(r, *w, s);
  if (const auto* n = r.table(root, "nemesis"); n != nullptr && !r.failed)
    read_nemesis(r, *n, s);
  if (const auto* c = r.table(root, "checks"); c != nullptr && !r.failed)
    read_checks(r, *c, s);
  if (r.failed)
    return std::nullopt;
  return s;
}

std::chrono::milliseconds probe_demotion_bound(const ClusterShape& shape, FaultKind kind,
                                               std::string* why) {
  probes::ProbeOptions o;
  o.interval = shape.probe_interval;
  for (size_t i = 0; i + 1 < shape.probe_args.size(); ++i) {
    if (shape.probe_args[i] == "--failures-to-demote")
      o.health.failures_to_demote = std::stoi(shape.probe_args[i + 1]);
  }
  constexpr std::chrono::milliseconds kSlack{2500};
  if (fault_class(kind) == FaultClass::disk) {
    const std::chrono::milliseconds canary =
        shape.storage_canary_interval.value_or(std::chrono::milliseconds(200));
    // A throttle is felt once the broker's own log flush (every second) uses up the budget and
    // the canary's fsync queues behind it (probes/README.md): one flush interval more.
    constexpr std::chrono::milliseconds kBrokerFlushInterval{1000};
    auto bound = kBrokerFlushInterval + probes::slow_storage_demotion_bound(o, canary);
    if (why)
      *why = fmt::format(
          "probe: 1 s broker flush + ({}/2 + 1) x {} ms canary + 2 x {} ms + 2.5 s slack",
          o.health.storage_window, canary.count(), o.interval.count());
    return bound + kSlack;
  }
  auto bound = probes::unreachable_demotion_bound(o);
  if (why)
    *why = fmt::format("probe: K={} x {} ms + {} ms timeout + 2.5 s slack",
                       o.health.failures_to_demote, o.interval.count(),
                       o.effective_probe_timeout().count());
  return bound + kSlack;
}

DerivedBounds derived_bounds(const ClusterShape& shape, FaultKind kind) {
  using std::chrono::milliseconds;
  const milliseconds session = shape.session_timeout;
  DerivedBounds b;
  switch (kind) {
    case FaultKind::stop:
    case FaultKind::restart: {
      // Handed over before the exit: one controller commit (an fsync of its log) and one client
      // metadata refresh, which a loaded shared machine can stretch past a second. Kept below
      // the earliest a broker that exits without handing over is fenced (its last heartbeat +
      // the session timeout, so session - heartbeat after the exit), with 250 ms to tell them
      // apart: such a broker fails the bound instead of passing as slow.
      const milliseconds fenced_earliest = session - shape.heartbeat_interval - milliseconds(250);
      const milliseconds bound =
          std::clamp(fenced_earliest, milliseconds(1000), milliseconds(2000));
      b.unavailable_max = bound;
      b.leader_moved_within = bound;
      b.why = "controlled shutdown: handed over before the exit";
      break;
    }
    case FaultKind::kill:
    case FaultKind::kill_restart:
      b.unavailable_max = session + milliseconds(3000);
      b.leader_moved_within = session + milliseconds(2000);
      b.why = fmt::format("session timeout {} ms + margin", session.count());
      break;
    case FaultKind::pause:
      b.unavailable_max = session + milliseconds(4000);
      b.leader_moved_within = session + milliseconds(2000);
      b.why = fmt::format("session timeout {} ms + margin", session.count());
      break;
    default:
      break;
  }
  return b;
}

uint64_t sub_seed(uint64_t root, std::string_view stream) {
  // FNV-1a of the stream name mixed into the root with splitmix64: independent, stable streams.
  uint64_t h = 1469598103934665603ull;
  for (char c : stream)
    h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  uint64_t z = root ^ h;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace faultline::chaos
