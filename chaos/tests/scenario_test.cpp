#include "faultline/chaos/runner/scenario.h"
#include "faultline/chaos/runner/runner.h"

#include <gtest/gtest.h>

namespace faultline::chaos {
namespace {

using namespace std::chrono_literals;

TEST(Scenario, EveryBuiltInParsesUnderItsContractName) {
  auto names = builtin_scenario_names();
  for (const char* contract : {"leader-kill", "controlled-shutdown", "leader-pause",
                               "controller-kill", "isolate-leader", "disk-throttle-leader",
                               "double-failover", "rolling-restart", "partition-halves",
                               "cluster-netem", "preferred-rebalance",
                               "neg-acks1-leader-kill", "neg-unclean-isolated-leader",
                               "gray-failure-external", "slow-disk-demotion"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), contract), names.end()) << contract;
  }
  for (const auto& name : names) {
    auto s = builtin_scenario(name);
    ASSERT_TRUE(s) << name;
    EXPECT_EQ(s->name, name);
    EXPECT_FALSE(s->faults.empty()) << name;
  }
  auto neg = builtin_scenario("neg-acks1-leader-kill");
  EXPECT_FALSE(neg->expect_valid);
  EXPECT_FALSE(neg->acks_all);
  auto unclean = builtin_scenario("neg-unclean-isolated-leader");
  EXPECT_FALSE(unclean->expect_valid);
  EXPECT_TRUE(unclean->cluster.unclean_leader_election);
  EXPECT_EQ(unclean->cluster.min_insync_replicas, 1);
  auto preferred = builtin_scenario("preferred-rebalance");
  ASSERT_TRUE(preferred->preferred_leaders_within);
  EXPECT_GT(preferred->cluster.leader_imbalance_check_interval_s, 0);
  for (const char* probed : {"gray-failure-external", "slow-disk-demotion"}) {
    auto s = builtin_scenario(probed);
    EXPECT_TRUE(s->cluster.probe) << probed;
    EXPECT_TRUE(s->leader_moved_within_probe_bound) << probed;
    EXPECT_TRUE(s->preferred_leaders_within) << probed;
  }
  EXPECT_EQ(builtin_scenario("gray-failure-external")->cluster.probe_args,
            (std::vector<std::string>{"--recovery-hold-ms", "3000"}));
}

TEST(Scenario, TheProbeBoundIsDerivedFromTheProbeSettings) {
  auto gray = builtin_scenario("gray-failure-external");
  std::string why;
  // K = 3 failures at 200 ms, the last ending at its 150 ms timeout, plus 2.5 s.
  EXPECT_EQ(probe_demotion_bound(gray->cluster, FaultAction::cut_leader_ext, &why), 3250ms);
  EXPECT_EQ(why, "probe: K=3 x 200 ms + 150 ms timeout + 2.5 s slack");
  ScenarioError error;
  auto k5 = parse_scenario("name = \"k5\"\n[cluster]\nprobe = true\nprobe_interval_ms = 1000\n"
                           "probe_failures_to_demote = 5\n[checks]\nleader_moved_within_s = \"probe\"\n",
                           "k5.toml", error);
  ASSERT_TRUE(k5) << error.str();
  EXPECT_TRUE(k5->leader_moved_within_probe_bound);
  EXPECT_FALSE(k5->leader_moved_within);
  EXPECT_EQ(probe_demotion_bound(k5->cluster, FaultAction::cut_leader_ext), 8250ms);
  // A disk: the broker's next flush, more than half of the 20-sample window slow at the 200 ms
  // canary, then two rounds.
  auto disk = builtin_scenario("slow-disk-demotion");
  EXPECT_EQ(probe_demotion_bound(disk->cluster, FaultAction::throttle_leader_disk), 6100ms);
}

TEST(Scenario, ChecksAreReadInSeconds) {
  ScenarioError error;
  auto s = parse_scenario("name = \"c\"\n[checks]\nleader_moved_within_s = 7\n"
                          "preferred_leaders_within_s = 20\n",
                          "c.toml", error);
  ASSERT_TRUE(s) << error.str();
  EXPECT_EQ(s->leader_moved_within, 7s);
  EXPECT_EQ(s->preferred_leaders_within, 20s);
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

TEST(Scenario, AFileSetsEveryField) {
  ScenarioError error;
  auto s = parse_scenario(R"(name = "mine"
duration_s = 12
expect = "invalid"
[cluster]
brokers = 5
session_timeout_ms = 1500
min_insync_replicas = 3
unclean_leader_election = true
[workload]
partitions = 4
producers = 3
acks = "1"
[nemesis]
faults = ["pause-leader", "kill-controller"]
interval_s = 5
hold_s = 2
)",
                          "mine.toml", error);
  ASSERT_TRUE(s) << error.str();
  EXPECT_EQ(s->duration, 12s);
  EXPECT_FALSE(s->expect_valid);
  EXPECT_EQ(s->cluster.brokers, 5);
  EXPECT_EQ(s->cluster.session_timeout_ms, 1500);
  EXPECT_TRUE(s->cluster.unclean_leader_election);
  EXPECT_EQ(s->partitions, 4);
  EXPECT_FALSE(s->acks_all);
  EXPECT_EQ(s->faults, (std::vector<FaultAction>{FaultAction::pause_leader,
                                                 FaultAction::kill_controller}));
  EXPECT_EQ(s->interval, 5s);
  EXPECT_EQ(s->hold, 2s);
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
        BadFile{"name = \"x\"\n\n[nemesis]\nfaults = [\"kill-leader\", \"meteor\"]\n", 4,
                "unknown fault"},
        BadFile{"name = \"x\"\n[workload]\nacks = \"2\"\n", 3, "acks"},
        BadFile{"name = \"x\"\nbrokers = 3\n", 2, "unknown key brokers"},
        BadFile{"name = \"x\"\n[cluster]\nbrokerz = 3\n", 3, "unknown key cluster.brokerz"},
        BadFile{"name = \"x\"\nexpect = \"maybe\"\n", 2, "expect"},
        BadFile{"name = \"x\"\n[nemesis\n", 2, ""},  // TOML syntax error
        BadFile{"description = \"no name\"\n", 1, "name: missing"},
        BadFile{"name = \"x\"\n[checks]\npreferred_leaders_within_s = 0\n", 3, "outside 1..3600"},
        BadFile{"name = \"x\"\n[checks]\nleader_moved = 3\n", 3, "unknown key checks.leader_moved"},
        BadFile{"name = \"x\"\n[checks]\nleader_moved_within_s = \"probe\"\n", 3,
                "needs cluster.probe = true"},
        BadFile{"name = \"x\"\n[cluster]\nprobe = true\n[checks]\nleader_moved_within_s = \"soon\"\n",
                5, "expected seconds or \"probe\""}));

TEST(Schedule, TheSameSeedGivesTheSameScheduleAndAnotherSeedAnother) {
  auto s = *builtin_scenario("leader-kill");
  s.duration = 60s;
  s.faults = {FaultAction::kill_leader, FaultAction::pause_leader, FaultAction::kill_controller};
  auto a = make_schedule(s, 42);
  auto b = make_schedule(s, 42);
  auto c = make_schedule(s, 43);
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  bool differs = a.size() != c.size();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].at, b[i].at);
    EXPECT_EQ(a[i].action, b[i].action);
    if (i < c.size() && (a[i].at != c[i].at || a[i].action != c[i].action)) differs = true;
  }
  EXPECT_TRUE(differs);
}

TEST(Schedule, FaultsAreHealedBeforeTheEndAndNeverOverlap) {
  auto s = *builtin_scenario("leader-kill");
  for (int seconds : {5, 13, 30, 120}) {
    s.duration = std::chrono::seconds(seconds);
    for (uint64_t seed = 0; seed < 50; ++seed) {
      auto plan = make_schedule(s, seed);
      for (size_t i = 0; i < plan.size(); ++i) {
        EXPECT_GE(plan[i].at, s.interval);
        EXPECT_EQ(plan[i].heal - plan[i].at, s.hold);
        EXPECT_LT(plan[i].heal, s.duration);
        if (i > 0) EXPECT_GT(plan[i].at, plan[i - 1].heal);
      }
    }
  }
}

TEST(Schedule, SubSeedsAreIndependentStreams) {
  EXPECT_NE(sub_seed(1, "schedule"), sub_seed(1, "workload"));
  EXPECT_NE(sub_seed(1, "schedule"), sub_seed(2, "schedule"));
  EXPECT_EQ(sub_seed(7, "schedule"), sub_seed(7, "schedule"));
}

}  // namespace
}  // namespace faultline::chaos
