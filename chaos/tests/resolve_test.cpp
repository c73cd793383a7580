// Target resolution against cluster snapshots: every selector, and the states that make one match
// nothing (a skip, never a crash).
#include "faultline/chaos/runner/schedule.h"

#include <gtest/gtest.h>

namespace faultline::chaos {
namespace {

// p0: leader 1, replicas 1,2,3, all in sync.  p1: leader 2 (preferred 3), ISR 2,3 (1 lags).
// p2: no leader (replicas 3,1,2, ISR 3).
ClusterSnapshot healthy() {
  ClusterSnapshot s;
  s.brokers = 3;
  s.alive = {1, 2, 3};
  s.partitions[0] = {1, 4, {1, 2, 3}, {1, 2, 3}};
  s.partitions[1] = {2, 7, {3, 2, 1}, {2, 3}};
  s.partitions[2] = {-1, 2, {3, 1, 2}, {3}};
  return s;
}

ClusterSnapshot controller_down() {
  auto s = healthy();
  s.controller_up = false;
  return s;
}

ClusterSnapshot one_alive() {
  auto s = healthy();
  s.alive = {2};
  s.fenced = {1, 3};
  return s;
}

FaultStep step(FaultKind kind, const char* target, const char* peers = nullptr) {
  FaultStep st;
  st.kind = kind;
  st.target = *parse_selector(target);
  if (peers) st.peers = *parse_selector(peers);
  st.params = default_params(kind);
  if (auto* p = std::get_if<PacketParams>(&st.params)) p->delay = std::chrono::milliseconds(50);
  return st;
}

struct Case {
  const char* name;
  ClusterSnapshot (*snapshot)();
  FaultKind kind;
  const char* target;
  const char* peers;
  // Targets of each resulting spec, joined: "b1" per spec, "c1 b2 b3" for one spec of several.
  std::vector<std::string> specs;
  const char* skipped;  // substring of the skip reason, or nullptr
};

std::string join(const std::vector<NodeName>& v) {
  std::string out;
  for (const auto& n : v) out += (out.empty() ? "" : " ") + n;
  return out;
}

class Resolve : public ::testing::TestWithParam<Case> {};

TEST_P(Resolve, SelectsWhatTheSnapshotSays) {
  const Case& c = GetParam();
  auto r = resolve(step(c.kind, c.target, c.peers), c.snapshot(), 11);
  if (c.skipped) {
    EXPECT_TRUE(r.specs.empty());
    EXPECT_NE(r.skipped.find(c.skipped), std::string::npos) << r.skipped;
    return;
  }
  ASSERT_TRUE(r.skipped.empty()) << r.skipped;
  std::vector<std::string> got;
  for (const auto& s : r.specs) got.push_back(join(s.targets));
  if (c.kind == FaultKind::halves || c.target == std::string("minority") ||
      c.target == std::string("majority") || c.target == std::string("random-broker") ||
      std::string(c.target).rfind("follower(", 0) == 0) {
    // Seeded picks and orders: check the size and membership, not the order.
    ASSERT_EQ(got.size(), c.specs.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].size(), c.specs[i].size()) << got[i];
  } else {
    EXPECT_EQ(got, c.specs);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Selectors, Resolve,
    ::testing::Values(
        Case{"leader", healthy, FaultKind::kill, "leader(0)", nullptr, {"b1"}, nullptr},
        Case{"leader_all", healthy, FaultKind::kill, "leader(all)", nullptr, {"b1", "b2"}, nullptr},
        Case{"leaderless", healthy, FaultKind::kill, "leader(2)", nullptr, {}, "matches nothing"},
        Case{"unknown_partition", healthy, FaultKind::kill, "leader(9)", nullptr, {},
             "partition 9 is not in the metadata"},
        Case{"followers", healthy, FaultKind::pause, "followers(0)", nullptr, {"b2", "b3"}, nullptr},
        Case{"follower", healthy, FaultKind::pause, "follower(0)", nullptr, {"b2"}, nullptr},
        Case{"followers_leaderless", healthy, FaultKind::pause, "followers(2)", nullptr, {},
             "matches nothing"},
        Case{"lagging", healthy, FaultKind::kill, "lagging-follower(1)", nullptr, {"b1"}, nullptr},
        Case{"none_lagging", healthy, FaultKind::kill, "lagging-follower(0)", nullptr, {},
             "matches nothing"},
        Case{"preferred", healthy, FaultKind::kill, "preferred-leader(1)", nullptr, {"b3"}, nullptr},
        Case{"controller", healthy, FaultKind::kill, "controller", nullptr, {"c1"}, nullptr},
        Case{"controller_down", controller_down, FaultKind::kill, "controller", nullptr, {},
             "the controller is down"},
        Case{"broker", healthy, FaultKind::stop, "broker(3)", nullptr, {"b3"}, nullptr},
        Case{"no_such_broker", healthy, FaultKind::stop, "broker(4)", nullptr, {},
             "there is no broker 4"},
        Case{"random_broker_one_alive", one_alive, FaultKind::kill, "random-broker", nullptr, {"b2"},
             nullptr},
        Case{"minority", healthy, FaultKind::kill, "minority", nullptr, {"b1"}, nullptr},
        Case{"majority", healthy, FaultKind::kill, "majority", nullptr, {"b1", "b2"}, nullptr},
        Case{"all_brokers", healthy, FaultKind::packets, "all-brokers", nullptr, {"b1", "b2", "b3"},
             nullptr},
        Case{"halves_all_nodes", healthy, FaultKind::halves, "all-nodes", nullptr, {"c1 b1 b2 b3"},
             nullptr},
        Case{"halves_controller_down", controller_down, FaultKind::halves, "all-nodes", nullptr,
             {"b1 b2 b3"}, nullptr},
        Case{"isolate_leader_default_peers", healthy, FaultKind::isolate_leader, "leader(1)", nullptr,
             {"b2 b3 b1"}, nullptr},
        Case{"controller_from_minority", healthy, FaultKind::isolate_leader, "controller", "broker(2)",
             {"c1 b2"}, nullptr},
        Case{"one_way", healthy, FaultKind::one_way, "leader(0)", "broker(3)", {"b1 b3"}, nullptr},
        Case{"one_way_to_itself", healthy, FaultKind::one_way, "leader(0)", "broker(1)", {},
             "peers broker(1) match nothing"},
        Case{"halves_one_node", one_alive, FaultKind::halves, "broker(2)", nullptr, {},
             "halves needs at least two nodes"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Resolve, LeadersHitAreRecordedForTheLeadershipCheck) {
  auto r = resolve(step(FaultKind::kill, "leader(all)"), healthy(), 1);
  EXPECT_EQ(r.leaders_hit, (std::map<int, int>{{0, 1}, {1, 2}}));
  auto preferred = resolve(step(FaultKind::kill, "preferred-leader(0)"), healthy(), 1);
  EXPECT_EQ(preferred.leaders_hit, (std::map<int, int>{{0, 1}}));
  // The preferred replica of p1 (b3) is not its leader: no leadership hit.
  EXPECT_TRUE(resolve(step(FaultKind::kill, "preferred-leader(1)"), healthy(), 1).leaders_hit.empty());
  EXPECT_TRUE(resolve(step(FaultKind::kill, "broker(1)"), healthy(), 1).leaders_hit.empty());
}

TEST(Resolve, PacketPeersBecomeTheSpecsPeers) {
  auto r = resolve(step(FaultKind::packets, "followers(0)", "leader(0)"), healthy(), 1);
  ASSERT_EQ(r.specs.size(), 2u);
  for (const auto& s : r.specs)
    EXPECT_EQ(std::get<PacketParams>(s.params).peers, std::vector<NodeName>{"b1"});
}

// Which partitions a fault leaves alone (leader, controller and a min-ISR quorum linked with the
// leader untouched): the partitions whose acks=all writes must go on within replica.lag.time.max.
struct UntouchedCase {
  const char* name;
  FaultKind kind;
  const char* target;
  const char* peers;
  int min_insync;
  std::vector<int> untouched;
};

class Untouched : public ::testing::TestWithParam<UntouchedCase> {};

TEST_P(Untouched, LeavesAloneWhatTheFaultDoesNotReach) {
  const auto& c = GetParam();
  auto r = resolve(step(c.kind, c.target, c.peers), healthy(), 1);
  ASSERT_TRUE(r.skipped.empty()) << r.skipped;
  Reach reach{r.touched, r.cut};
  EXPECT_EQ(untouched_partitions(c.min_insync, reach, r.partitions), c.untouched);
}

INSTANTIATE_TEST_SUITE_P(
    Faults, Untouched,
    ::testing::Values(
        // p0 keeps b1 and b2; p1 (ISR 2,3) is left with b2 alone, below min ISR 2; p2 has no leader.
        UntouchedCase{"kill_a_follower", FaultKind::kill, "broker(3)", nullptr, 2, {0}},
        UntouchedCase{"kill_a_follower_min_isr_1", FaultKind::kill, "broker(3)", nullptr, 1, {0, 1}},
        UntouchedCase{"kill_a_leader", FaultKind::kill, "broker(1)", nullptr, 2, {1}},
        // A link cut between b3 and b1 only: both leaders keep the controller and one follower.
        UntouchedCase{"cut_follower_from_leader", FaultKind::isolate_leader, "broker(3)", "broker(1)", 2,
                      {0, 1}},
        // b2 cut from everyone, the controller included: its partition p1 is hit, p0 is not.
        UntouchedCase{"isolate_a_broker", FaultKind::isolate, "broker(2)", nullptr, 2, {0}},
        UntouchedCase{"controller_down", FaultKind::kill, "controller", nullptr, 1, {}},
        // Packet peers count as touched: p0's leader b1 is one.
        UntouchedCase{"packets_towards_the_leader", FaultKind::packets, "followers(0)", "leader(0)", 1,
                      {}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Resolve, TheSameVariantPicksTheSameNodes) {
  for (uint64_t v = 0; v < 20; ++v) {
    auto a = resolve(step(FaultKind::kill, "minority"), healthy(), v);
    auto b = resolve(step(FaultKind::kill, "minority"), healthy(), v);
    EXPECT_EQ(a.specs, b.specs);
  }
}

TEST(Triggers, FireOnWhatTheyWaitFor) {
  auto before = healthy();
  auto elected = before;
  elected.partitions[0].leader = 2;
  elected.partitions[0].epoch = 5;
  auto shrunk = before;
  shrunk.partitions[0].isr = {1, 2};
  auto fenced = before;
  fenced.fenced = {3};
  auto leaderless = before;
  leaderless.partitions[0].leader = -1;
  auto t = [](const char* text) { return *parse_trigger(text); };
  EXPECT_TRUE(trigger_fired(t("leader-change(0)"), before, elected));
  EXPECT_FALSE(trigger_fired(t("leader-change(1)"), before, elected));
  EXPECT_TRUE(trigger_fired(t("leader-change(all)"), before, elected));
  // A partition without a leader has no new leader to act on yet.
  EXPECT_FALSE(trigger_fired(t("leader-change(0)"), before, leaderless));
  EXPECT_FALSE(trigger_fired(t("leader-change(0)"), before, before));
  EXPECT_TRUE(trigger_fired(t("isr-shrink(0)"), before, shrunk));
  EXPECT_FALSE(trigger_fired(t("isr-shrink(0)"), shrunk, before));
  EXPECT_TRUE(trigger_fired(t("isr-expand(0)"), shrunk, before));
  EXPECT_TRUE(trigger_fired(t("isr-expand(any)"), shrunk, before));
  EXPECT_FALSE(trigger_fired(t("isr-expand(1)"), shrunk, before));
  EXPECT_FALSE(trigger_fired(t("isr-expand(0)"), before, shrunk));
  EXPECT_TRUE(trigger_fired(t("fenced"), before, fenced));
  EXPECT_FALSE(trigger_fired(t("fenced"), fenced, fenced));
}

}  // namespace
}  // namespace faultline::chaos
