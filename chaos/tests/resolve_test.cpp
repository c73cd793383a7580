// Target resolution against cluster snapshots: every selector, and the states that make one match
// nothing (a skip, never a crash).
#include <gtest/gtest.h>

#include "faultline/chaos/runner/schedule.h"

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

// Three controllers: c2 is active at epoch 5, c1 follows, c3 does not answer.
ClusterSnapshot quorum_of_three() {
  auto s = healthy();
  s.controllers = 3;
  s.controllers_up = {1, 2};
  s.active_controller = 2;
  s.controller_epoch = 5;
  return s;
}

// ... and during an election: c1 and c2 answer, neither leads.
ClusterSnapshot quorum_electing() {
  auto s = quorum_of_three();
  s.active_controller = 0;
  s.controller_epoch = -1;
  return s;
}

// A lone controller that describes its quorum of one.
ClusterSnapshot quorum_of_one() {
  auto s = healthy();
  s.controllers_up = {1};
  s.active_controller = 1;
  s.controller_epoch = 1;
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
  if (peers)
    st.peers = *parse_selector(peers);
  st.params = default_params(kind);
  if (auto* p = std::get_if<PacketParams>(&st.params))
    p->delay = std::chrono::milliseconds(50);
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
  for (const auto& n : v)
    out += (out.empty() ? "" : " ") + n;
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
  for (const auto& s : r.specs)
    got.push_back(join(s.targets));
  if (c.kind == FaultKind::halves || c.target == std::string("minority") ||
      c.target == std::string("majority") || c.target == std::string("random-broker") ||
      std::string(c.target).rfind("follower(", 0) == 0) {
    // Seeded picks and orders: check the size and membership, not the order.
    ASSERT_EQ(got.size(), c.specs.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(got[i].size(), c.specs[i].size()) << got[i];
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
        Case{"unknown_partition",
             healthy,
             FaultKind::kill,
             "leader(9)",
             nullptr,
             {},
             "partition 9 is not in the metadata"},
        Case{
            "followers", healthy, FaultKind::pause, "followers(0)", nullptr, {"b2", "b3"}, nullptr},
        Case{"follower", healthy, FaultKind::pause, "follower(0)", nullptr, {"b2"}, nullptr},
        Case{"followers_leaderless",
             healthy,
             FaultKind::pause,
             "followers(2)",
             nullptr,
             {},
             "matches nothing"},
        Case{"lagging", healthy, FaultKind::kill, "lagging-follower(1)", nullptr, {"b1"}, nullptr},
        Case{"none_lagging",
             healthy,
             FaultKind::kill,
             "lagging-follower(0)",
             nullptr,
             {},
             "matches nothing"},
        Case{
            "preferred", healthy, FaultKind::kill, "preferred-leader(1)", nullptr, {"b3"}, nullptr},
        Case{"controller", healthy, FaultKind::kill, "controller", nullptr, {"c1"}, nullptr},
        Case{"controller_down",
             controller_down,
             FaultKind::kill,
             "controller",
             nullptr,
             {},
             "the controller is down"},
        Case{"broker", healthy, FaultKind::stop, "broker(3)", nullptr, {"b3"}, nullptr},
        Case{"no_such_broker",
             healthy,
             FaultKind::stop,
             "broker(4)",
             nullptr,
             {},
             "there is no broker 4"},
        Case{"random_broker_one_alive",
             one_alive,
             FaultKind::kill,
             "random-broker",
             nullptr,
             {"b2"},
             nullptr},
        Case{"minority", healthy, FaultKind::kill, "minority", nullptr, {"b1"}, nullptr},
        Case{"majority", healthy, FaultKind::kill, "majority", nullptr, {"b1", "b2"}, nullptr},
        Case{"all_brokers",
             healthy,
             FaultKind::packets,
             "all-brokers",
             nullptr,
             {"b1", "b2", "b3"},
             nullptr},
        Case{"halves_all_nodes",
             healthy,
             FaultKind::halves,
             "all-nodes",
             nullptr,
             {"c1 b1 b2 b3"},
             nullptr},
        Case{"halves_controller_down",
             controller_down,
             FaultKind::halves,
             "all-nodes",
             nullptr,
             {"b1 b2 b3"},
             nullptr},
        Case{"isolate_leader_default_peers",
             healthy,
             FaultKind::isolate_leader,
             "leader(1)",
             nullptr,
             {"b2 b3 b1"},
             nullptr},
        Case{"controller_from_minority",
             healthy,
             FaultKind::isolate_leader,
             "controller",
             "broker(2)",
             {"c1 b2"},
             nullptr},
        Case{"one_way", healthy, FaultKind::one_way, "leader(0)", "broker(3)", {"b1 b3"}, nullptr},
        Case{"one_way_to_itself",
             healthy,
             FaultKind::one_way,
             "leader(0)",
             "broker(1)",
             {},
             "peers broker(1) match nothing"},
        Case{"halves_one_node",
             one_alive,
             FaultKind::halves,
             "broker(2)",
             nullptr,
             {},
             "halves needs at least two nodes"},
        // The quorum: `controller` and `active-controller` are the active one, c2 here.
        Case{"quorum_controller",
             quorum_of_three,
             FaultKind::kill,
             "controller",
             nullptr,
             {"c2"},
             nullptr},
        Case{"quorum_active_controller",
             quorum_of_three,
             FaultKind::kill,
             "active-controller",
             nullptr,
             {"c2"},
             nullptr},
        // The only live controller besides the active one (c3 does not answer).
        Case{"quorum_controller_follower",
             quorum_of_three,
             FaultKind::pause,
             "controller-follower",
             nullptr,
             {"c1"},
             nullptr},
        // (3-1)/2 = 1 controller: the active one alone.
        Case{"quorum_controller_minority",
             quorum_of_three,
             FaultKind::kill,
             "controller-minority",
             nullptr,
             {"c2"},
             nullptr},
        // Every controller, the one that does not answer too (a partition must cut it as well).
        Case{"quorum_all_controllers",
             quorum_of_three,
             FaultKind::kill,
             "all-controllers",
             nullptr,
             {"c1", "c2", "c3"},
             nullptr},
        // all-nodes: the live controllers and every broker.
        Case{"quorum_all_nodes",
             quorum_of_three,
             FaultKind::packets,
             "all-nodes",
             nullptr,
             {"c1", "c2", "b1", "b2", "b3"},
             nullptr},
        Case{"quorum_halves_all_nodes",
             quorum_of_three,
             FaultKind::halves,
             "all-nodes",
             nullptr,
             {"c1 c2 b1 b2 b3"},
             nullptr},
        // The active controller cut off from the other controllers, not from the brokers.
        Case{"quorum_isolate_active",
             quorum_of_three,
             FaultKind::isolate_leader,
             "active-controller",
             "all-controllers",
             {"c2 c1 c3"},
             nullptr},
        Case{"quorum_one_way_to_a_follower",
             quorum_of_three,
             FaultKind::one_way,
             "active-controller",
             "controller-follower",
             {"c2 c1"},
             nullptr},
        Case{"quorum_electing_active",
             quorum_electing,
             FaultKind::kill,
             "active-controller",
             nullptr,
             {},
             "no controller is active"},
        Case{"quorum_electing_minority",
             quorum_electing,
             FaultKind::kill,
             "controller-minority",
             nullptr,
             {},
             "no controller is active"},
        Case{"one_controller_minority",
             quorum_of_one,
             FaultKind::kill,
             "controller-minority",
             nullptr,
             {},
             "a quorum of 1 controller has no minority"},
        Case{"one_controller_follower",
             quorum_of_one,
             FaultKind::kill,
             "controller-follower",
             nullptr,
             {},
             "a quorum of one controller has no follower"},
        Case{"one_controller_active",
             quorum_of_one,
             FaultKind::kill,
             "active-controller",
             nullptr,
             {"c1"},
             nullptr},
        Case{"one_controller_down_all_controllers",
             controller_down,
             FaultKind::kill,
             "all-controllers",
             nullptr,
             {"c1"},
             nullptr}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Resolve, LeadersHitAreRecordedForTheLeadershipCheck) {
  auto r = resolve(step(FaultKind::kill, "leader(all)"), healthy(), 1);
  EXPECT_EQ(r.leaders_hit, (std::map<int, int>{{0, 1}, {1, 2}}));
  auto preferred = resolve(step(FaultKind::kill, "preferred-leader(0)"), healthy(), 1);
  EXPECT_EQ(preferred.leaders_hit, (std::map<int, int>{{0, 1}}));
  // The preferred replica of p1 (b3) is not its leader: no leadership hit.
  EXPECT_TRUE(
      resolve(step(FaultKind::kill, "preferred-leader(1)"), healthy(), 1).leaders_hit.empty());
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
        // p0 keeps b1 and b2; p1 (ISR 2,3) is left with b2 alone, below min ISR 2; p2 has no
        // leader.
        UntouchedCase{"kill_a_follower", FaultKind::kill, "broker(3)", nullptr, 2, {0}},
        UntouchedCase{
            "kill_a_follower_min_isr_1", FaultKind::kill, "broker(3)", nullptr, 1, {0, 1}},
        UntouchedCase{"kill_a_leader", FaultKind::kill, "broker(1)", nullptr, 2, {1}},
        // A link cut between b3 and b1 only: both leaders keep the controller and one follower.
        UntouchedCase{"cut_follower_from_leader",
                      FaultKind::isolate_leader,
                      "broker(3)",
                      "broker(1)",
                      2,
                      {0, 1}},
        // b2 cut from everyone, the controller included: its partition p1 is hit, p0 is not.
        UntouchedCase{"isolate_a_broker", FaultKind::isolate, "broker(2)", nullptr, 2, {0}},
        UntouchedCase{"controller_down", FaultKind::kill, "controller", nullptr, 1, {}},
        // Packet peers count as touched: p0's leader b1 is one.
        UntouchedCase{
            "packets_towards_the_leader", FaultKind::packets, "followers(0)", "leader(0)", 1, {}}),
    [](const auto& info) { return std::string(info.param.name); });

// Five controllers, c4 active: the minority is c4 and one seeded other controller, never more.
TEST(Resolve, AControllerMinorityHoldsTheActiveControllerAndSeededOthers) {
  auto s = healthy();
  s.controllers = 5;
  s.controllers_up = {1, 2, 3, 4, 5};
  s.active_controller = 4;
  std::set<std::string> seen;
  for (uint64_t v = 0; v < 40; ++v) {
    auto r = resolve(step(FaultKind::kill, "controller-minority"), s, v);
    ASSERT_EQ(r.specs.size(), 2u) << r.skipped;
    EXPECT_EQ(r.specs[0].targets, std::vector<NodeName>{"c4"});
    ASSERT_EQ(r.specs[1].targets.size(), 1u);
    EXPECT_NE(r.specs[1].targets[0], "c4");
    seen.insert(r.specs[1].targets[0]);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"c1", "c2", "c3", "c5"}));
  // Majority-side peers: the minority cut from the rest of the controllers.
  auto cut =
      resolve(step(FaultKind::isolate_leader, "controller-minority", "all-controllers"), s, 3);
  ASSERT_EQ(cut.specs.size(), 1u) << cut.skipped;
  EXPECT_EQ(cut.specs[0].targets.front(), "c4");
  EXPECT_EQ(cut.specs[0].targets.size(), 5u);
}

// During an election no controller is active: any live one is a follower.
TEST(Resolve, DuringAnElectionAControllerFollowerIsAnyLiveController) {
  std::set<std::string> seen;
  for (uint64_t v = 0; v < 20; ++v) {
    auto r = resolve(step(FaultKind::kill, "controller-follower"), quorum_electing(), v);
    ASSERT_EQ(r.specs.size(), 1u) << r.skipped;
    seen.insert(r.specs[0].targets.at(0));
  }
  EXPECT_EQ(seen, (std::set<std::string>{"c1", "c2"}));
}

// What the quorum means for the partitions a fault leaves alone: the active controller and a
// majority linked with it must be untouched.
TEST(Resolve, UntouchedPartitionsNeedTheActiveControllerAndAMajorityOfTheQuorum) {
  auto untouched = [](const char* target, const char* peers, FaultKind kind) {
    auto r = resolve(step(kind, target, peers), quorum_of_three(), 1);
    EXPECT_TRUE(r.skipped.empty()) << r.skipped;
    EXPECT_EQ(r.active_controller, "c2");
    EXPECT_EQ(r.controllers, (std::vector<std::string>{"c1", "c2", "c3"}));
    Reach reach{r.touched, r.cut, r.controllers, r.active_controller};
    return untouched_partitions(2, reach, r.partitions);
  };
  // A follower controller killed: c2 and c3 are still a majority, p0 and p1 go on.
  EXPECT_EQ(untouched("controller-follower", nullptr, FaultKind::kill), (std::vector<int>{0, 1}));
  // The active one killed, paused, or cut from the other two: nothing is left alone.
  EXPECT_TRUE(untouched("active-controller", nullptr, FaultKind::kill).empty());
  EXPECT_TRUE(untouched("active-controller", nullptr, FaultKind::pause).empty());
  EXPECT_TRUE(untouched("active-controller", "all-controllers", FaultKind::isolate_leader).empty());
  // p0's leader b1 cut from the active controller: p0 is hit, p1 is not.
  EXPECT_EQ(untouched("broker(1)", "active-controller", FaultKind::isolate_leader),
            std::vector<int>{1});
  EXPECT_EQ(untouched("broker(3)", nullptr, FaultKind::kill), std::vector<int>{0});
  // Without an active controller at injection, no partition is known to be left alone.
  Reach none{{}, {}, {"c1", "c2", "c3"}, ""};
  EXPECT_TRUE(untouched_partitions(1, none, healthy().partitions).empty());
}

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
  // controller-change: another active controller, or the same one at a new epoch; not an
  // election still under way.
  auto quorum = quorum_of_three();
  auto electing = quorum_electing();
  auto moved = quorum;
  moved.active_controller = 1;
  moved.controller_epoch = 6;
  auto reelected = quorum;
  reelected.controller_epoch = 7;
  EXPECT_TRUE(trigger_fired(t("controller-change"), quorum, moved));
  EXPECT_TRUE(trigger_fired(t("controller-change"), quorum, reelected));
  EXPECT_TRUE(trigger_fired(t("controller-change"), electing, moved));
  EXPECT_FALSE(trigger_fired(t("controller-change"), quorum, electing));
  EXPECT_FALSE(trigger_fired(t("controller-change"), quorum, quorum));
  EXPECT_EQ(t("controller-change").str(), "controller-change");
  EXPECT_FALSE(parse_trigger("controller-change(0)"));
}

}  // namespace
}  // namespace faultline::chaos
