#include "faultline/chaos/runner/scenario.h"

#include <fmt/format.h>

#include <map>
#include <random>
#include <toml++/toml.h>

#include "faultline/probes/probe_options.h"

namespace faultline::chaos {

namespace {

constexpr std::pair<FaultAction, std::string_view> kActions[] = {
    {FaultAction::kill_leader, "kill-leader"},         {FaultAction::pause_leader, "pause-leader"},
    {FaultAction::stop_leader, "stop-leader"},         {FaultAction::kill_controller, "kill-controller"},
    {FaultAction::isolate_leader, "isolate-leader"},   {FaultAction::cut_leader_ext, "cut-leader-ext"},
    {FaultAction::throttle_leader_disk, "throttle-leader-disk"},
    {FaultAction::kill_leader_twice, "kill-leader-twice"},
    {FaultAction::restart_next_broker, "restart-next-broker"},
    {FaultAction::partition_random, "partition-random"},
    {FaultAction::netem_cluster, "netem-cluster"},
    {FaultAction::kill_leader_lagging, "kill-leader-lagging"},
    {FaultAction::isolate_leader_unclean, "isolate-leader-unclean"},
};

// The built-ins, as TOML so that they go through the same parser as users' files.
const std::map<std::string_view, std::string_view>& builtins() {
  static const std::map<std::string_view, std::string_view> b = {
      {"leader-kill", R"toml(name = "leader-kill"
description = "kill -9 the leader of partition 0 repeatedly, restart it later"
expect = "valid"
[nemesis]
faults = ["kill-leader"]
)toml"},
      {"controlled-shutdown", R"toml(name = "controlled-shutdown"
description = "SIGTERM the leader (controlled shutdown), restart it later"
expect = "valid"
[nemesis]
faults = ["stop-leader"]
)toml"},
      {"leader-pause", R"toml(name = "leader-pause"
description = "SIGSTOP the leader for longer than the session timeout, then SIGCONT"
expect = "valid"
[nemesis]
faults = ["pause-leader"]
hold_s = 4
)toml"},
      {"controller-kill", R"toml(name = "controller-kill"
description = "kill -9 the controller, restart it later; brokers keep serving"
expect = "valid"
[nemesis]
faults = ["kill-controller"]
)toml"},
      {"isolate-leader", R"toml(name = "isolate-leader"
description = "cut the leader off from its followers but not from the controller (Jepsen 2013)"
expect = "valid"
[cluster]
min_insync_replicas = 2
[nemesis]
faults = ["isolate-leader"]
hold_s = 4
)toml"},
      {"double-failover", R"toml(name = "double-failover"
description = "kill -9 the leader, then the new leader right after it is elected; restart both"
expect = "valid"
[nemesis]
faults = ["kill-leader-twice"]
interval_s = 7
hold_s = 4
)toml"},
      {"rolling-restart", R"toml(name = "rolling-restart"
description = "graceful restart (controlled shutdown, start again) of every broker in turn"
expect = "valid"
[nemesis]
faults = ["restart-next-broker"]
interval_s = 4
hold_s = 1
)toml"},
      {"partition-halves", R"toml(name = "partition-halves"
description = "random halves, majorities ring or bridge over the controller and brokers"
expect = "valid"
[nemesis]
faults = ["partition-random"]
interval_s = 7
hold_s = 4
)toml"},
      {"cluster-netem", R"toml(name = "cluster-netem"
description = "delay, jitter and loss on the cluster network (NFQUEUE shaper where no netem)"
expect = "valid"
[nemesis]
faults = ["netem-cluster"]
interval_s = 6
hold_s = 4
)toml"},
      {"disk-throttle-leader", R"toml(name = "disk-throttle-leader"
description = "throttle the leader's disk hard (256 KiB/s, 20 IOPS), then lift it"
expect = "valid"
[cluster]
disks = true
[nemesis]
faults = ["throttle-leader-disk"]
hold_s = 4
)toml"},
      {"neg-acks1-leader-kill", R"toml(name = "neg-acks1-leader-kill"
description = "negative control: acks=1, leader killed while its followers lag 50 ms: loses acknowledged writes"
expect = "invalid"
[cluster]
min_insync_replicas = 1
[workload]
acks = "1"
producers = 4
[nemesis]
faults = ["kill-leader-lagging"]
interval_s = 5
hold_s = 3
)toml"},
      {"preferred-rebalance", R"toml(name = "preferred-rebalance"
description = "kill the preferred leader, restart it; auto rebalance must return every partition to its preferred leader"
expect = "valid"
[cluster]
leader_imbalance_check_interval_s = 2
[workload]
partitions = 3
[nemesis]
faults = ["kill-leader"]
interval_s = 12
hold_s = 4
[checks]
leader_moved_within_s = 8
preferred_leaders_within_s = 15
)toml"},
      {"gray-failure-external", R"toml(name = "gray-failure-external"
description = "cut the leader's ext link only (clients lose it, the cluster does not); the probe must get it demoted, then promoted"
expect = "valid"
[cluster]
probe = true
probe_interval_ms = 200
probe_recovery_hold_ms = 3000
[workload]
partitions = 3
[nemesis]
faults = ["cut-leader-ext"]
interval_s = 12
hold_s = 5
[checks]
leader_moved_within_s = "probe"
preferred_leaders_within_s = 15
)toml"},
      {"slow-disk-demotion", R"toml(name = "slow-disk-demotion"
description = "throttle the leader's disk hard; the probe must get it demoted, then promoted when the disk is healed"
expect = "valid"
[cluster]
disks = true
probe = true
probe_interval_ms = 200
probe_recovery_hold_ms = 3000
[workload]
partitions = 3
[nemesis]
faults = ["throttle-leader-disk"]
interval_s = 12
hold_s = 7
[checks]
leader_moved_within_s = "probe"
preferred_leaders_within_s = 20
)toml"},
      {"neg-unclean-isolated-leader", R"toml(name = "neg-unclean-isolated-leader"
description = "negative control: unclean election on, min.insync.replicas=1, the leader acks alone while isolated, then dies: loses acknowledged writes"
expect = "invalid"
[cluster]
min_insync_replicas = 1
unclean_leader_election = true
replica_lag_time_max_ms = 1000
[nemesis]
faults = ["isolate-leader-unclean"]
interval_s = 10
hold_s = 8
)toml"},
  };
  return b;
}

// A parse failure at `node`'s line (or the table's when the node is missing).
struct Reader {
  const std::string& file;
  ScenarioError& error;
  bool failed = false;

  bool fail(const toml::source_region& where, std::string why) {
    if (!failed) error = {file, static_cast<int>(where.begin.line), std::move(why)};
    failed = true;
    return false;
  }

  template <typename T>
  bool read(const toml::table& t, std::string_view key, T& out, T min, T max) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return true;
    if constexpr (std::is_same_v<T, bool>) {
      if (!n->is_boolean()) return fail(n->source(), fmt::format("{}: expected true or false", key));
      out = n->as_boolean()->get();
    } else {
      if (!n->is_integer()) return fail(n->source(), fmt::format("{}: expected an integer", key));
      auto v = n->as_integer()->get();
      if (v < static_cast<int64_t>(min) || v > static_cast<int64_t>(max))
        return fail(n->source(), fmt::format("{}: {} is outside {}..{}", key, v, min, max));
      out = static_cast<T>(v);
    }
    return true;
  }

  bool read_string(const toml::table& t, std::string_view key, std::string& out) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return true;
    if (!n->is_string()) return fail(n->source(), fmt::format("{}: expected a string", key));
    out = n->as_string()->get();
    return true;
  }

  // Every key of `t` must be one of `known`: a typo is an error, not a silent default.
  bool only(const toml::table& t, std::initializer_list<std::string_view> known,
            std::string_view where) {
    for (const auto& [k, v] : t) {
      if (std::find(known.begin(), known.end(), k.str()) == known.end())
        return fail(v.source(), fmt::format("unknown key {}{}", where, k.str()));
    }
    return true;
  }
};

}  // namespace

std::string_view to_string(FaultAction a) {
  for (auto [action, name] : kActions)
    if (action == a) return name;
  return "?";
}

std::optional<FaultAction> fault_action_from(std::string_view s) {
  for (auto [action, name] : kActions)
    if (name == s) return action;
  return std::nullopt;
}

std::string ScenarioError::str() const {
  return line > 0 ? fmt::format("{}:{}: {}", file, line, why) : fmt::format("{}: {}", file, why);
}

std::vector<std::string> builtin_scenario_names() {
  std::vector<std::string> out;
  for (const auto& [name, text] : builtins()) out.emplace_back(name);
  return out;
}

std::optional<std::string> builtin_scenario_toml(std::string_view name) {
  auto it = builtins().find(name);
  if (it == builtins().end()) return std::nullopt;
  return std::string(it->second);
}

std::optional<Scenario> builtin_scenario(std::string_view name) {
  auto text = builtin_scenario_toml(name);
  if (!text) return std::nullopt;
  ScenarioError ignored;
  return parse_scenario(*text, fmt::format("<built-in {}>", name), ignored);
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
  r.only(root, {"name", "description", "duration_s", "expect", "cluster", "workload", "nemesis", "checks"},
         "");
  r.read_string(root, "name", s.name);
  r.read_string(root, "description", s.description);
  int duration = static_cast<int>(s.duration.count());
  r.read(root, "duration_s", duration, 1, 86400);
  s.duration = std::chrono::seconds(duration);
  std::string expect = "valid";
  r.read_string(root, "expect", expect);
  if (expect != "valid" && expect != "invalid")
    r.fail(root.get("expect")->source(), "expect: must be \"valid\" or \"invalid\"");
  s.expect_valid = expect == "valid";
  if (s.name.empty() && !r.failed) r.fail(root.source(), "name: missing");

  auto table = [&](std::string_view key) -> const toml::table* {
    const toml::node* n = root.get(key);
    if (n == nullptr) return nullptr;
    if (!n->is_table()) {
      r.fail(n->source(), fmt::format("{}: expected a table", key));
      return nullptr;
    }
    return n->as_table();
  };
  if (const auto* c = table("cluster")) {
    r.only(*c, {"brokers", "session_timeout_ms", "heartbeat_interval_ms", "min_insync_replicas",
                "replica_lag_time_max_ms", "unclean_leader_election", "planted_bug_early_ack",
                "disks", "leader_imbalance_check_interval_s", "probe", "probe_interval_ms",
                "probe_failures_to_demote", "probe_recovery_hold_ms"},
           "cluster.");
    r.read(*c, "brokers", s.cluster.brokers, 1, 9);
    r.read(*c, "session_timeout_ms", s.cluster.session_timeout_ms, 100, 600000);
    r.read(*c, "heartbeat_interval_ms", s.cluster.heartbeat_interval_ms, 10, 60000);
    r.read(*c, "min_insync_replicas", s.cluster.min_insync_replicas, 1, 9);
    r.read(*c, "replica_lag_time_max_ms", s.cluster.replica_lag_time_max_ms, 100, 600000);
    r.read(*c, "unclean_leader_election", s.cluster.unclean_leader_election, false, true);
    r.read(*c, "planted_bug_early_ack", s.cluster.planted_bug_early_ack, false, true);
    r.read(*c, "disks", s.cluster.disks, false, true);
    r.read(*c, "probe", s.cluster.probe, false, true);
    r.read(*c, "probe_interval_ms", s.cluster.probe_interval_ms, 20, 60000);
    for (const char* key : {"probe_failures_to_demote", "probe_recovery_hold_ms"}) {
      int v = 0;
      if (c->get(key) != nullptr && r.read(*c, key, v, 1, 3600000)) {
        s.cluster.probe_args.push_back(std::string("--") + std::string(key).substr(6));
        std::replace(s.cluster.probe_args.back().begin(), s.cluster.probe_args.back().end(), '_', '-');
        s.cluster.probe_args.push_back(std::to_string(v));
      }
    }
    r.read(*c, "leader_imbalance_check_interval_s", s.cluster.leader_imbalance_check_interval_s, 1,
           86400);
    if (!r.failed && s.cluster.min_insync_replicas > s.cluster.brokers)
      r.fail(c->source(), "cluster.min_insync_replicas: larger than the number of brokers");
  }
  if (const auto* w = table("workload")) {
    r.only(*w, {"partitions", "producers", "acks"}, "workload.");
    r.read(*w, "partitions", s.partitions, 1, 64);
    r.read(*w, "producers", s.producers, 1, 64);
    std::string acks = "all";
    r.read_string(*w, "acks", acks);
    if (acks != "all" && acks != "1") r.fail(w->get("acks")->source(), "workload.acks: \"all\" or \"1\"");
    s.acks_all = acks == "all";
  }
  if (const auto* n = table("nemesis")) {
    r.only(*n, {"faults", "interval_s", "hold_s"}, "nemesis.");
    if (const toml::node* f = n->get("faults")) {
      if (!f->is_array()) {
        r.fail(f->source(), "nemesis.faults: expected a list of fault names");
      } else {
        for (const auto& e : *f->as_array()) {
          auto action = e.is_string() ? fault_action_from(e.as_string()->get()) : std::nullopt;
          if (!action) {
            r.fail(e.source(), "nemesis.faults: unknown fault (kill-leader, pause-leader, "
                               "stop-leader, kill-controller, isolate-leader, cut-leader-ext, "
                               "throttle-leader-disk, kill-leader-twice, restart-next-broker, "
                               "partition-random, netem-cluster, kill-leader-lagging, "
                               "isolate-leader-unclean)");
            break;
          }
          s.faults.push_back(*action);
        }
      }
    }
    if (!r.failed && !s.cluster.disks &&
        std::find(s.faults.begin(), s.faults.end(), FaultAction::throttle_leader_disk) != s.faults.end())
      r.fail(n->source(), "nemesis.faults: throttle-leader-disk needs cluster.disks = true");
    int interval = static_cast<int>(s.interval.count() / 1000);
    int hold = static_cast<int>(s.hold.count() / 1000);
    r.read(*n, "interval_s", interval, 1, 3600);
    r.read(*n, "hold_s", hold, 1, 3600);
    s.interval = std::chrono::seconds(interval);
    s.hold = std::chrono::seconds(hold);
    if (!r.failed && s.hold >= s.interval)
      r.fail(n->source(), "nemesis.hold_s: must be shorter than interval_s");
  }
  if (const auto* c = table("checks")) {
    r.only(*c, {"leader_moved_within_s", "preferred_leaders_within_s"}, "checks.");
    auto seconds = [&](std::string_view key, std::optional<std::chrono::milliseconds>& out) {
      int v = 0;
      if (c->get(key) == nullptr) return;
      if (r.read(*c, key, v, 1, 3600)) out = std::chrono::seconds(v);
    };
    if (const toml::node* n = c->get("leader_moved_within_s"); n != nullptr && n->is_string()) {
      if (n->as_string()->get() != "probe")
        r.fail(n->source(), "checks.leader_moved_within_s: expected seconds or \"probe\"");
      else if (!s.cluster.probe)
        r.fail(n->source(), "checks.leader_moved_within_s: \"probe\" needs cluster.probe = true");
      s.leader_moved_within_probe_bound = true;
    } else {
      seconds("leader_moved_within_s", s.leader_moved_within);
    }
    seconds("preferred_leaders_within_s", s.preferred_leaders_within);
  }
  if (r.failed) return std::nullopt;
  return s;
}

std::chrono::milliseconds probe_demotion_bound(const ClusterShape& shape, FaultAction action,
                                               std::string* why) {
  probes::ProbeOptions o;
  o.interval = std::chrono::milliseconds(shape.probe_interval_ms);
  for (size_t i = 0; i + 1 < shape.probe_args.size(); ++i) {
    if (shape.probe_args[i] == "--failures-to-demote")
      o.health.failures_to_demote = std::stoi(shape.probe_args[i + 1]);
  }
  constexpr std::chrono::milliseconds kSlack{2500};
  if (action == FaultAction::throttle_leader_disk) {
    const std::chrono::milliseconds canary(
        shape.storage_canary_interval_ms >= 0 ? shape.storage_canary_interval_ms : 200);
    // A throttle is felt once the broker's own log flush (every second) uses up the budget and
    // the canary's fsync queues behind it (probes/README.md): one flush interval more.
    constexpr std::chrono::milliseconds kBrokerFlushInterval{1000};
    auto bound = kBrokerFlushInterval + probes::slow_storage_demotion_bound(o, canary);
    if (why)
      *why = fmt::format("probe: 1 s broker flush + ({}/2 + 1) x {} ms canary + 2 x {} ms + 2.5 s slack",
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

uint64_t sub_seed(uint64_t root, std::string_view stream) {
  // FNV-1a of the stream name mixed into the root with splitmix64: independent, stable streams.
  uint64_t h = 1469598103934665603ull;
  for (char c : stream) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  uint64_t z = root ^ h;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::vector<ScheduledFault> make_schedule(const Scenario& s, uint64_t seed) {
  std::vector<ScheduledFault> out;
  if (s.faults.empty()) return out;
  std::mt19937_64 rng(sub_seed(seed, "schedule"));
  using std::chrono::milliseconds;
  const milliseconds end = std::chrono::duration_cast<milliseconds>(s.duration);
  const auto jitter_max = s.interval.count() / 4;
  // The first fault after one interval of calm, so the history has a baseline.
  for (milliseconds at = s.interval;; at += s.interval) {
    std::uniform_int_distribution<int64_t> jitter(0, std::max<int64_t>(jitter_max, 0));
    std::uniform_int_distribution<size_t> pick(0, s.faults.size() - 1);
    ScheduledFault f;
    f.at = at + milliseconds(jitter(rng));
    // Faults never overlap: the next one waits for the previous heal and a little settling.
    if (!out.empty()) f.at = std::max(f.at, out.back().heal + milliseconds(500));
    f.heal = f.at + s.hold;
    f.action = s.faults[pick(rng)];
    f.variant = rng();
    if (f.heal >= end) break;
    out.push_back(f);
  }
  return out;
}

}  // namespace faultline::chaos
