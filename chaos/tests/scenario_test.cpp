#include "faultline/chaos/runner/scenario.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "faultline/chaos/runner/runner.h"
#include "faultline/chaos/runner/schedule.h"

namespace faultline::chaos {
namespace {

using namespace std::chrono_literals;

TEST(Scenario, EveryBuiltInParsesUnderItsContractName) {
  auto names = builtin_scenario_names();
  for (const char* contract : {"leader-kill",
                               "controlled-shutdown",
                               "leader-pause",
                               "controller-kill",
                               "isolate-leader",
                               "disk-throttle-leader",
                               "double-failover",
                               "rolling-restart",
                               "partition-halves",
                               "cluster-netem",
                               "preferred-rebalance",
                               "neg-acks1-leader-kill",
                               "neg-unclean-isolated-leader",
                               "gray-failure-external",
                               "slow-disk-demotion",
                               "lagging-follower-leader-kill",
                               "leader-and-follower-kill",
                               "isolate-leader-then-kill",
                               "kill-new-leader-on-election",
                               "controller-minority-partition",
                               "nemesis-mix",
                               "follower-cut-from-leader",
                               "out-of-sync-follower-leader-kill",
                               "leader-cut-from-controller-and-follower",
                               "kill-leader-on-follower-rejoin",
                               "active-controller-kill",
                               "controller-quorum-partition",
                               "controller-pause",
                               "controller-and-leader-kill"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), contract), names.end()) << contract;
  }
  // The controller-quorum scenarios run three controllers and aim at the active one.
  for (const char* quorum : {"active-controller-kill", "controller-quorum-partition",
                             "controller-pause", "controller-and-leader-kill"}) {
    auto s = builtin_scenario(quorum);
    ASSERT_TRUE(s) << quorum;
    EXPECT_EQ(s->cluster.controllers, 3) << quorum;
    EXPECT_TRUE(s->expect_valid) << quorum;
    bool aims_at_active = false;
    for (const auto& p : make_schedule(*s, 1))
      aims_at_active |= p.step.target.kind == SelectorKind::active_controller;
    EXPECT_TRUE(aims_at_active) << quorum;
  }
  EXPECT_EQ(builtin_scenario("leader-kill")->cluster.controllers, 1);
  for (const auto& name : names) {
    ScenarioError error;
    auto s = parse_scenario(*builtin_scenario_toml(name), name, error);
    ASSERT_TRUE(s) << error.str();
    EXPECT_EQ(s->name, name);
    ASSERT_TRUE(s->nemesis) << name;
    EXPECT_FALSE(make_schedule(*s, 1).empty()) << name << ": nothing planned in its duration";
  }
  auto neg = builtin_scenario("neg-acks1-leader-kill");
  EXPECT_FALSE(neg->expect_valid);
  EXPECT_FALSE(neg->workload.acks_all);
  auto unclean = builtin_scenario("neg-unclean-isolated-leader");
  EXPECT_FALSE(unclean->expect_valid);
  EXPECT_TRUE(unclean->cluster.unclean_leader_election);
  EXPECT_EQ(unclean->cluster.min_insync_replicas, 1);
  auto preferred = builtin_scenario("preferred-rebalance");
  ASSERT_TRUE(preferred->preferred_leaders_within);
  EXPECT_GT(preferred->cluster.leader_imbalance_check_interval.count(), 0);
  for (const char* probed : {"gray-failure-external", "slow-disk-demotion"}) {
    auto s = builtin_scenario(probed);
    EXPECT_TRUE(s->cluster.probe) << probed;
    EXPECT_TRUE(s->leader_moved_within_probe_bound) << probed;
    EXPECT_TRUE(s->preferred_leaders_within) << probed;
  }
  EXPECT_EQ(builtin_scenario("gray-failure-external")->cluster.probe_args,
            (std::vector<std::string>{"--recovery-hold-ms", "3000"}));
}

// `faultline scenarios --show NAME` prints the text a user saves and runs: the same schedule.
TEST(Scenario, AShownBuiltInSavedAsAFileGivesTheSameSchedule) {
  for (const auto& name : builtin_scenario_names()) {
    ScenarioError error;
    auto from_file = parse_scenario(*builtin_scenario_toml(name), "saved.toml", error);
    ASSERT_TRUE(from_file) << error.str();
    auto builtin = builtin_scenario(name);
    for (uint64_t seed : {1, 7, 1234}) {
      auto a = make_schedule(*builtin, seed), b = make_schedule(*from_file, seed);
      ASSERT_EQ(a.size(), b.size()) << name;
      for (size_t i = 0; i < a.size(); ++i)
        EXPECT_EQ(to_json(a[i]), to_json(b[i])) << name;
    }
  }
}

// README's worked examples are what a user copies first: each must parse and plan faults.
TEST(Scenario, EveryExampleInTheReadmeParses) {
  const char* env = std::getenv("FAULTLINE_SOURCE_DIR");
  std::filesystem::path source = env && *env ? env : FAULTLINE_DEFAULT_SOURCE_DIR;
  std::ifstream in(source / "README.md");
  ASSERT_TRUE(in) << source / "README.md";
  std::stringstream text;
  text << in.rdbuf();
  const std::string readme = text.str();
  int examples = 0;
  for (size_t at = readme.find("```toml\n"); at != std::string::npos;
       at = readme.find("```toml\n", at + 1)) {
    const size_t begin = at + 8, end = readme.find("```", begin);
    ASSERT_NE(end, std::string::npos);
    ScenarioError error;
    auto s = parse_scenario(readme.substr(begin, end - begin), "README.md example", error);
    ASSERT_TRUE(s) << error.str();
    EXPECT_FALSE(make_schedule(*s, 1).empty()) << s->name;
    ++examples;
  }
  EXPECT_GE(examples, 3);
}

TEST(Scenario, TheProbeBoundIsDerivedFromTheProbeSettings) {
  auto gray = builtin_scenario("gray-failure-external");
  std::string why;
  // K = 3 failures at 200 ms, the last ending at its 150 ms timeout, plus 2.5 s.
  EXPECT_EQ(probe_demotion_bound(gray->cluster, FaultKind::cut_link, &why), 3250ms);
  EXPECT_EQ(why, "probe: K=3 x 200 ms + 150 ms timeout + 2.5 s slack");
  ScenarioError error;
  auto k5 = parse_scenario(
      "name = \"k5\"\n[cluster]\nprobe = true\nprobe_interval_ms = 1000\n"
      "probe_failures_to_demote = 5\n[checks]\nleader_moved_within_s = \"probe\"\n",
      "k5.toml", error);
  ASSERT_TRUE(k5) << error.str();
  EXPECT_TRUE(k5->leader_moved_within_probe_bound);
  EXPECT_FALSE(k5->leader_moved_within);
  EXPECT_EQ(probe_demotion_bound(k5->cluster, FaultKind::cut_link), 8250ms);
  // A disk: the broker's next flush, more than half of the 20-sample window slow at the 200 ms
  // canary, then two rounds.
  auto disk = builtin_scenario("slow-disk-demotion");
  EXPECT_EQ(probe_demotion_bound(disk->cluster, FaultKind::disk_throttle), 6100ms);
}

// A controlled shutdown's bounds stay below the earliest a broker that exits without handing over
// is fenced (session - heartbeat after its exit): 2 s with the default 3 s / 500 ms, tighter with a
// short session, never under 1 s. A kill's follow the session timeout.
TEST(Scenario, DerivedBoundsFollowTheSessionAndHeartbeat) {
  struct Row {
    std::chrono::milliseconds session, heartbeat;
    FaultKind kind;
    std::chrono::milliseconds unavailable, moved;
  };
  for (const Row& row : {Row{3000ms, 500ms, FaultKind::stop, 2000ms, 2000ms},
                         Row{3000ms, 500ms, FaultKind::restart, 2000ms, 2000ms},
                         Row{2500ms, 500ms, FaultKind::stop, 1750ms, 1750ms},
                         Row{1500ms, 500ms, FaultKind::stop, 1000ms, 1000ms},
                         Row{9000ms, 2000ms, FaultKind::stop, 2000ms, 2000ms},
                         Row{3000ms, 500ms, FaultKind::kill, 6000ms, 5000ms},
                         Row{3000ms, 500ms, FaultKind::pause, 7000ms, 5000ms}}) {
    ClusterShape shape;
    shape.session_timeout = row.session;
    shape.heartbeat_interval = row.heartbeat;
    const DerivedBounds b = derived_bounds(shape, row.kind);
    EXPECT_EQ(b.unavailable_max, row.unavailable) << to_string(row.kind) << " " << row.session;
    EXPECT_EQ(b.leader_moved_within, row.moved) << to_string(row.kind) << " " << row.session;
  }
  EXPECT_FALSE(derived_bounds(ClusterShape{}, FaultKind::cut_link).unavailable_max);
}

TEST(Scenario, ChecksAreReadInSeconds) {
  ScenarioError error;
  auto s = parse_scenario(
      "name = \"c\"\n[checks]\nleader_moved_within_s = 7\n"
      "preferred_leaders_within_s = 20.5\n",
      "c.toml", error);
  ASSERT_TRUE(s) << error.str();
  EXPECT_EQ(s->leader_moved_within, 7s);
  EXPECT_EQ(s->preferred_leaders_within, 20500ms);
  EXPECT_FALSE(builtin_scenario("leader-kill")->preferred_leaders_within);
}

TEST(RunCapabilities, NamesExactlyWhatIsMissing) {
  const uint64_t all = ~uint64_t{0};
  EXPECT_TRUE(missing_run_capabilities(all).empty());
  EXPECT_EQ(missing_run_capabilities(all & ~(uint64_t{1} << 12)),
            std::vector<std::string>{"CAP_NET_ADMIN"});
  EXPECT_EQ(missing_run_capabilities(0),
            (std::vector<std::string>{"CAP_NET_ADMIN", "CAP_SYS_ADMIN"}));
}

TEST(Scenario, AFileSetsEveryFieldAndEveryParameter) {
  ScenarioError error;
  auto s = parse_scenario(R"toml(name = "mine"
duration_s = 40
expect = "invalid"
[cluster]
brokers = 5
controllers = 5
controller_election_timeout_ms = 1500
session_timeout_ms = 1500
min_insync_replicas = 3
unclean_leader_election = true
[workload]
partitions = 4
producers = 3
consumers = 2
acks = "1"
rate_per_s = 200
value_bytes = 100
[nemesis]
every_s = 8
jitter_s = 0.5
times = 3
repeat.sequence = [
  { fault = "packets", target = "follower(any)", peers = "leader(any)", interface = "int", delay_us = 200000, loss_pct = 1.5, hold_s = 5 },
  { after_s = 1.5, fault = "kill", target = "leader(any)", hold_s = 2 },
  { on = "leader-change(any)", within_s = 3, fault = "pause", target = "leader(any)", hold_s = 1 },
]
)toml",
                          "mine.toml", error);
  ASSERT_TRUE(s) << error.str();
  EXPECT_EQ(s->duration, 40s);
  EXPECT_FALSE(s->expect_valid);
  EXPECT_EQ(s->cluster.brokers, 5);
  EXPECT_EQ(s->cluster.controllers, 5);
  EXPECT_EQ(s->cluster.controller_election_timeout, 1500ms);
  EXPECT_EQ(s->cluster.session_timeout, 1500ms);
  EXPECT_TRUE(s->cluster.unclean_leader_election);
  EXPECT_EQ(s->workload.partitions, 4);
  EXPECT_EQ(s->workload.rate_per_s, 200);
  EXPECT_EQ(s->workload.consumers, 2);
  EXPECT_EQ(s->workload.value_bytes, 100);
  EXPECT_FALSE(s->workload.acks_all);
  const NemesisNode& root = *s->nemesis;
  ASSERT_EQ(root.type, NemesisNode::Type::repeat);
  EXPECT_EQ(root.every, 8s);
  EXPECT_EQ(root.jitter, 500ms);
  EXPECT_EQ(root.times, 3);
  const NemesisNode& seq = root.children.at(0);
  ASSERT_EQ(seq.type, NemesisNode::Type::sequence);
  ASSERT_EQ(seq.children.size(), 3u);
  const FaultStep& lag = seq.children[0].step;
  EXPECT_EQ(lag.kind, FaultKind::packets);
  EXPECT_EQ(lag.target.str(), "follower(any)");
  EXPECT_EQ(lag.peers->str(), "leader(any)");
  const auto& p = std::get<PacketParams>(lag.params);
  EXPECT_EQ(p.delay, 200ms);
  EXPECT_DOUBLE_EQ(p.loss_pct, 1.5);
  EXPECT_EQ(lag.hold, 5s);
  EXPECT_EQ(seq.children[1].after, 1500ms);
  EXPECT_EQ(seq.children[2].step.on->str(), "leader-change(any)");
  EXPECT_EQ(seq.children[2].step.on->within, 3s);
  // Three rounds at most, each of three steps, each round with one partition for `any`.
  auto plan = make_schedule(*s, 9);
  ASSERT_EQ(plan.size(), 9u);
  for (size_t i = 0; i < plan.size(); i += 3) {
    EXPECT_EQ(plan[i].step.target.partition, plan[i + 1].step.target.partition);
    EXPECT_EQ(plan[i].step.target.partition.kind, PartitionRef::Kind::index);
    EXPECT_EQ(plan[i + 1].at - plan[i].at, 1500ms);
    EXPECT_EQ(plan[i + 2].step.on->partition, plan[i].step.target.partition);
  }
}

struct BadFile {
  const char* text;
  int line;
  const char* says;
};

class BrokenScenario : public ::testing::TestWithParam<BadFile> {};

TEST_P(BrokenScenario, NamesTheFileTheLineAndTheProblem) {
  ScenarioError error;
  EXPECT_FALSE(parse_scenario(GetParam().text, "bad.toml", error));
  EXPECT_EQ(error.file, "bad.toml");
  EXPECT_EQ(error.line, GetParam().line) << error.str();
  EXPECT_NE(error.why.find(GetParam().says), std::string::npos) << error.str();
}

INSTANTIATE_TEST_SUITE_P(
    Files, BrokenScenario,
    ::testing::Values(
        BadFile{"name = \"x\"\n[cluster]\nbrokers = \"three\"\n", 3, "expected an integer"},
        BadFile{"name = \"x\"\n[cluster]\nbrokers = 40\n", 3, "outside 1..9"},
        BadFile{"name = \"x\"\n[cluster]\nbrokers = 3\ncontrollers = 2\n", 4,
                "cluster.controllers: 2 is not 1, 3 or 5"},
        BadFile{"name = \"x\"\n[cluster]\ncontrollers = 4\n", 3, "is not 1, 3 or 5"},
        BadFile{"name = \"x\"\n[cluster]\ncontrollers = 7\n", 3, "controllers: 7 is outside 1..5"},
        BadFile{"name = \"x\"\n[cluster]\ncontrollers = 0\n", 3, "outside 1..5"},
        BadFile{"name = \"x\"\n[cluster]\ncontroller_election_timeout_ms = 5\n", 3,
                "outside 100..60000"},
        BadFile{"name = \"x\"\n[nemesis]\nrepeat = { fault = \"kill\", target = "
                "\"active-controller(1)\" }\n",
                3, "active-controller takes no argument"},
        BadFile{"name = \"x\"\n[nemesis]\nrepeat = { fault = \"kill\", target = \"leader(0)\", "
                "on = \"controller-change(0)\" }\n",
                3, "controller-change takes no argument"},
        BadFile{"name = \"x\"\n\n[nemesis]\nfaults = [\"kill-leader\"]\n", 4,
                "fixed fault list is gone"},
        BadFile{
            "name = \"x\"\n[nemesis]\nrepeat = { fault = \"meteor\", target = \"leader(0)\" }\n", 3,
            "unknown kind \"meteor\""},
        BadFile{"name = \"x\"\n[nemesis]\nrepeat = { fault = \"kill\", target = \"leder(0)\" }\n",
                3, "unknown selector"},
        BadFile{"name = \"x\"\n[nemesis]\nrepeat = { fault = \"kill\", target = \"leader\" }\n", 3,
                "needs a partition"},
        BadFile{"name = \"x\"\n[nemesis]\nrepeat = { fault = \"kill\", target = \"broker(0)\" }\n",
                3, "broker id >= 1"},
        BadFile{"name = \"x\"\n[nemesis]\nrepeat = { fault = \"kill\" }\n", 3, "target missing"},
        BadFile{"name = \"x\"\n[nemesis]\nsequence = [\n  { fault = \"kill\", target = "
                "\"controller\" },\n  { after_s = -1, fault = \"kill\", target = \"controller\" "
                "},\n]\n",
                5, "after_s: -1 is outside"},
        BadFile{"name = \"x\"\n[nemesis]\nconcurrent = []\n", 3, "concurrent: empty"},
        BadFile{
            "name = \"x\"\n[nemesis]\nrepeat = { fault = \"packets\", target = \"all-brokers\", "
            "delay_us = -5 }\n",
            3, "negative delay"},
        BadFile{"name = \"x\"\n[nemesis]\nrepeat = { fault = \"kill\", target = \"controller\", "
                "delay_us = 5 }\n",
                3, "unknown parameter delay_us"},
        BadFile{
            "name = \"x\"\n[nemesis]\nrepeat = { fault = \"packets\", target = \"all-brokers\", "
            "loss_pct = 140 }\n",
            3, "percentages"},
        BadFile{"name = \"x\"\n[nemesis]\nrepeat = { fault = \"restart\", target = \"broker(1)\", "
                "hold_s = 3 }\n",
                3, "one-off"},
        BadFile{"name = \"x\"\n[nemesis]\nrepeat = { fault = \"kill\", target = \"leader(0)\", "
                "on = \"sunrise\" }\n",
                3, "unknown trigger"},
        BadFile{"name = \"x\"\n[nemesis]\nfault = \"kill\"\ntarget = \"controller\"\nrepeat = "
                "{ fault = \"kill\", target = \"controller\" }\n",
                2, "fault and repeat in one node"},
        BadFile{"name = \"x\"\n[nemesis]\nrepeat = { fault = \"disk-stall\", target = "
                "\"leader(0)\" }\n",
                3, "needs cluster.disks = true"},
        BadFile{
            "name = \"x\"\n[nemesis]\nrepeat = { fault = \"one-way\", target = \"broker(1)\" }\n",
            3, "peers missing"},
        BadFile{"name = \"x\"\n[nemesis]\nevery_s = 0\nrepeat = { fault = \"kill\", target = "
                "\"controller\" }\n",
                3, "every_s"},
        BadFile{"name = \"x\"\n[workload]\nacks = \"2\"\n", 3, "acks"},
        BadFile{"name = \"x\"\nbrokers = 3\n", 2, "unknown key brokers"},
        BadFile{"name = \"x\"\n[cluster]\nbrokerz = 3\n", 3, "unknown key cluster.brokerz"},
        BadFile{"name = \"x\"\nexpect = \"maybe\"\n", 2, "expect"},
        BadFile{"name = \"x\"\n[nemesis\n", 2, ""},  // TOML syntax error
        BadFile{"description = \"no name\"\n", 1, "name: missing"},
        BadFile{"name = \"x\"\n[checks]\npreferred_leaders_within_s = 0\n", 3, "outside 0.1..3600"},
        BadFile{"name = \"x\"\n[checks]\nleader_moved = 3\n", 3, "unknown key checks.leader_moved"},
        BadFile{"name = \"x\"\n[checks]\nleader_moved_within_s = \"probe\"\n", 3,
                "needs cluster.probe = true"},
        BadFile{
            "name = \"x\"\n[cluster]\nprobe = true\n[checks]\nleader_moved_within_s = \"soon\"\n",
            5, "expected seconds or \"probe\""}));

TEST(Schedule, TheSameSeedGivesTheSameScheduleAndAnotherSeedAnother) {
  auto s = *builtin_scenario("nemesis-mix");
  s.duration = 120s;
  auto a = make_schedule(s, 42), b = make_schedule(s, 42), c = make_schedule(s, 43);
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  bool differs = a.size() != c.size();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(to_json(a[i]), to_json(b[i]));
    EXPECT_EQ(a[i].variant, b[i].variant);
    if (i < c.size() && to_json(a[i]) != to_json(c[i]))
      differs = true;
  }
  EXPECT_TRUE(differs);
}

TEST(Schedule, RoundsHealBeforeTheEndAndNeverOverlap) {
  auto s = *builtin_scenario("leader-kill");
  for (int seconds : {5, 13, 30, 120}) {
    s.duration = std::chrono::seconds(seconds);
    for (uint64_t seed = 0; seed < 50; ++seed) {
      auto plan = make_schedule(s, seed);
      for (size_t i = 0; i < plan.size(); ++i) {
        EXPECT_GE(plan[i].at, 6s);
        EXPECT_EQ(plan[i].step.hold, 3s);
        EXPECT_LT(planned_end(plan[i]), s.duration);
        if (i > 0) {
          EXPECT_GT(plan[i].at, planned_end(plan[i - 1]));
        }
      }
    }
  }
}

TEST(Schedule, AMixDrawsEveryKindOverManySeeds) {
  auto s = *builtin_scenario("nemesis-mix");
  std::set<std::string> kinds;
  for (uint64_t seed = 0; seed < 40; ++seed)
    for (const auto& p : make_schedule(s, seed))
      kinds.insert(std::string(to_string(p.step.kind)));
  for (const char* k : {"kill", "pause", "stop", "restart", "isolate-leader", "halves", "packets"})
    EXPECT_TRUE(kinds.count(k)) << k;
}

TEST(Schedule, ChoiceFollowsTheWeights) {
  ScenarioError error;
  auto s = parse_scenario(R"toml(name = "w"
duration_s = 3600
[nemesis]
every_s = 1
mix = [ { fault = "kill", target = "controller", hold_s = 0.1, weight = 9 },
        { fault = "pause", target = "controller", hold_s = 0.1 } ]
)toml",
                          "w.toml", error);
  ASSERT_TRUE(s) << error.str();
  int kills = 0, total = 0;
  for (const auto& p : make_schedule(*s, 3)) {
    ++total;
    kills += p.step.kind == FaultKind::kill;
  }
  ASSERT_GT(total, 1000);
  EXPECT_NEAR(double(kills) / total, 0.9, 0.03);
}

TEST(Schedule, SubSeedsAreIndependentStreams) {
  EXPECT_NE(sub_seed(1, "schedule"), sub_seed(1, "workload"));
  EXPECT_NE(sub_seed(1, "schedule"), sub_seed(2, "schedule"));
  EXPECT_EQ(sub_seed(7, "schedule"), sub_seed(7, "schedule"));
}

}  // namespace
}  // namespace faultline::chaos
