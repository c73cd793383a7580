// Table-driven tests of the election rules (ARCHITECTURE.md §2 items 11-17).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "faultline/cluster/controller/elections.h"

namespace faultline::cluster {
namespace {

constexpr BrokerStatus kAlive{true, false, false, false};
constexpr BrokerStatus kFenced{true, true, false, false};
constexpr BrokerStatus kShutting{true, false, true, false};
constexpr BrokerStatus kDemoted{true, false, false, true};
constexpr BrokerStatus kUnregistered{false, true, false, false};

const TopicPartition kTp{"orders", PartitionIndex{0}};

struct Case {
  std::string name;
  ReplicaList replicas;
  ReplicaList isr;
  int32_t leader;
  std::map<int32_t, BrokerStatus> status;  // brokers 1..6 not listed are alive
  errc expected_error;
  int32_t expected_leader;  // only checked when a change is expected
  ReplicaList expected_isr;
};

PartitionState state_of(const Case& c) {
  PartitionState p;
  p.replicas = c.replicas;
  p.isr = c.isr;
  p.leader = BrokerId{c.leader};
  p.leader_epoch = LeaderEpoch{7};
  p.partition_epoch = PartitionEpoch{20};
  return p;
}

ClusterView view_of(const Case& c) {
  ClusterView view;
  for (int32_t b = 1; b <= 6; ++b) {
    auto it = c.status.find(b);
    view.set(BrokerId{b}, it == c.status.end() ? kAlive : it->second);
  }
  return view;
}

// The epoch rules every change obeys (item 10): partition epoch +1, leader epoch +1 iff the
// leader changed.
void expect_change(const Case& c, const PartitionState& before, const ElectionResult& r) {
  SCOPED_TRACE(c.name);
  ASSERT_EQ(r.error, c.expected_error) << errc_name(r.error);
  if (c.expected_error != errc::none) {
    EXPECT_FALSE(r.changed());
    return;
  }
  ASSERT_TRUE(r.changed());
  const PartitionChanged& ch = *r.change;
  EXPECT_EQ(ch.tp, kTp);
  EXPECT_EQ(ch.leader, BrokerId{c.expected_leader});
  EXPECT_EQ(ch.isr, c.expected_isr) << fmt::format("{}", ch.isr);
  EXPECT_EQ(ch.partition_epoch, before.partition_epoch.next());
  bool leader_changed = ch.leader != before.leader;
  EXPECT_EQ(r.leader_changed, leader_changed);
  EXPECT_EQ(ch.leader_epoch, leader_changed ? before.leader_epoch.next() : before.leader_epoch);
}

TEST(OfflineElection, Table) {
  // clang-format off
  const std::vector<Case> cases = {
    // name                                                      replicas   isr        leader status                                   expected
    {"follower fenced leaves the ISR, leader stays",             {1, 2, 3}, {1, 2, 3}, 1,  {{3, kFenced}},                           errc::none, 1, {1, 2}},
    {"leader fenced: next replica in assignment order",          {1, 2, 3}, {1, 2, 3}, 1,  {{1, kFenced}},                           errc::none, 2, {2, 3}},
    {"skips replicas outside the ISR",                           {1, 2, 3}, {1, 3},    1,  {{1, kFenced}},                           errc::none, 3, {3}},
    {"assignment order, not ISR order",                          {3, 1, 2}, {2, 1, 3}, 3,  {{3, kFenced}},                           errc::none, 1, {2, 1}},
    {"unregistered leader counts as gone",                       {1, 2, 3}, {1, 2, 3}, 1,  {{1, kUnregistered}},                     errc::none, 2, {2, 3}},
    {"demoted replica is passed over",                           {1, 2, 3}, {1, 2, 3}, 1,  {{1, kFenced}, {2, kDemoted}},            errc::none, 3, {2, 3}},
    {"all non-demoted fenced: demoted leads",                    {1, 2, 3}, {1, 2, 3}, 1,  {{1, kFenced}, {2, kDemoted}, {3, kFenced}}, errc::none, 2, {2}},
    {"only ISR member demoted still leads",                      {1, 2, 3}, {2},       2,  {{2, kDemoted}},                          errc::election_not_needed, 0, {}},
    {"demoted leader yields to an alive non-demoted ISR member", {1, 2, 3}, {1, 2, 3}, 1,  {{1, kDemoted}, {3, kFenced}},            errc::none, 2, {1, 2}},
    {"no ISR member alive: offline, ISR keeps the leader",       {1, 2, 3}, {1},       1,  {{1, kFenced}},                           errc::none, -1, {1}},
    {"ISR members fail together: the old leader is kept",        {1, 2, 3}, {2, 3},    3,  {{2, kFenced}, {3, kFenced}},             errc::none, -1, {3}},
    {"offline partition comes back with its last ISR member",    {1, 2, 3}, {2},       -1, {},                                       errc::none, 2, {2}},
    {"offline and the last member still away: nothing to do",    {1, 2, 3}, {2},       -1, {{2, kFenced}},                           errc::election_not_needed, 0, {}},
    {"nothing failed",                                           {1, 2, 3}, {1, 2, 3}, 1,  {},                                       errc::election_not_needed, 0, {}},
    {"controlled shutdown of the leader",                        {1, 2, 3}, {1, 2, 3}, 1,  {{1, kShutting}},                         errc::none, 2, {2, 3}},
    {"controlled shutdown of a follower",                        {1, 2, 3}, {1, 2, 3}, 1,  {{2, kShutting}},                         errc::none, 1, {1, 3}},
    {"controlled shutdown of the only ISR member: leaderless",   {1, 2, 3}, {1},       1,  {{1, kShutting}},                         errc::none, -1, {1}},
  };
  // clang-format on
  for (const Case& c : cases) {
    PartitionState p = state_of(c);
    expect_change(c, p, elect_offline(kTp, p, view_of(c)));
  }
}

TEST(OfflineElection, ControlledShutdownCarriesItsReason) {
  Case c{"", {1, 2, 3}, {1, 2, 3}, 1, {{1, kShutting}}, errc::none, 2, {2, 3}};
  PartitionState p = state_of(c);
  auto r = elect_controlled_shutdown(kTp, p, view_of(c));
  ASSERT_TRUE(r.changed());
  EXPECT_EQ(r.change->reason, ElectionReason::controlled_shutdown);
  EXPECT_EQ(elect_offline(kTp, p, view_of(c)).change->reason, ElectionReason::offline);
}

TEST(AcceptableLeader, Table) {
  struct Row {
    std::string name;
    int32_t broker;
    ReplicaList isr;
    std::map<int32_t, BrokerStatus> status;
    bool acceptable;
  };
  const std::vector<Row> rows = {
      {"alive", 1, {1, 2}, {}, true},
      {"fenced", 1, {1, 2}, {{1, kFenced}}, false},
      {"shutting down", 1, {1, 2}, {{1, kShutting}}, false},
      {"unregistered", 1, {1, 2}, {{1, kUnregistered}}, false},
      {"demoted with a normal alternative", 1, {1, 2}, {{1, kDemoted}}, false},
      {"demoted, alternative fenced", 1, {1, 2}, {{1, kDemoted}, {2, kFenced}}, true},
      {"demoted, alternative demoted too", 1, {1, 2}, {{1, kDemoted}, {2, kDemoted}}, true},
  };
  for (const Row& row : rows) {
    Case c{row.name, {1, 2, 3}, row.isr, 1, row.status, errc::none, 0, {}};
    EXPECT_EQ(is_acceptable_leader(BrokerId{row.broker}, state_of(c), view_of(c)), row.acceptable)
        << row.name;
  }
}

TEST(PreferredElection, Table) {
  // clang-format off
  const std::vector<Case> cases = {
    {"moves back to the preferred leader", {1, 2, 3}, {1, 2, 3}, 2,  {},                errc::none, 1, {1, 2, 3}},
    {"already led by it",                  {1, 2, 3}, {1, 2, 3}, 1,  {},                errc::election_not_needed, 0, {}},
    {"preferred not in ISR",               {1, 2, 3}, {2, 3},    2,  {},                errc::preferred_leader_not_available, 0, {}},
    {"preferred fenced",                   {1, 2, 3}, {1, 2, 3}, 2,  {{1, kFenced}},    errc::preferred_leader_not_available, 0, {}},
    {"preferred shutting down",            {1, 2, 3}, {1, 2, 3}, 2,  {{1, kShutting}},  errc::preferred_leader_not_available, 0, {}},
    {"never onto a demoted broker",        {1, 2, 3}, {1, 2, 3}, 2,  {{1, kDemoted}},   errc::preferred_leader_not_available, 0, {}},
    {"from offline",                       {1, 2, 3}, {1},       -1, {},                errc::none, 1, {1}},
  };
  // clang-format on
  for (const Case& c : cases) {
    PartitionState p = state_of(c);
    expect_change(c, p, elect_preferred(kTp, p, view_of(c)));
  }
}

TEST(UncleanElection, Table) {
  // clang-format off
  const std::vector<Case> cases = {
    {"first alive replica, ISR becomes just it",            {1, 2, 3}, {1},    -1, {{1, kFenced}},                           errc::none, 2, {2}},
    {"non-demoted first",                                   {1, 2, 3}, {1},    -1, {{1, kFenced}, {2, kDemoted}},            errc::none, 3, {3}},
    {"only a demoted replica is alive",                     {1, 2, 3}, {1},    -1, {{1, kFenced}, {2, kDemoted}, {3, kFenced}}, errc::none, 2, {2}},
    {"no replica alive",                                    {1, 2, 3}, {1},    -1, {{1, kFenced}, {2, kFenced}, {3, kFenced}},  errc::eligible_leaders_not_available, 0, {}},
    {"leader alive: nothing to do",                         {1, 2, 3}, {1, 2}, 1,  {},                                       errc::election_not_needed, 0, {}},
    {"an ISR member is alive: clean choice, no data loss",  {1, 2, 3}, {1, 3}, -1, {{1, kFenced}},                           errc::none, 3, {3}},
  };
  // clang-format on
  for (const Case& c : cases) {
    PartitionState p = state_of(c);
    expect_change(c, p, elect_unclean(kTp, p, view_of(c)));
  }
}

TEST(UncleanElection, MarksTheLeaderRecoveringOnlyWhenUnclean) {
  Case unclean{"", {1, 2, 3}, {1}, -1, {{1, kFenced}}, errc::none, 2, {2}};
  auto r = elect_unclean(kTp, state_of(unclean), view_of(unclean));
  ASSERT_TRUE(r.changed());
  EXPECT_EQ(r.change->reason, ElectionReason::unclean);
  EXPECT_EQ(r.change->leader_recovery, LeaderRecovery::recovering);

  PartitionState p = state_of(unclean);
  apply_partition_change(p, *r.change);
  EXPECT_EQ(p.unclean_elections, 1);

  Case clean{"", {1, 2, 3}, {1, 3}, -1, {{1, kFenced}}, errc::none, 3, {3}};
  auto c = elect_unclean(kTp, state_of(clean), view_of(clean));
  ASSERT_TRUE(c.changed());
  EXPECT_EQ(c.change->reason, ElectionReason::offline);
  EXPECT_EQ(c.change->leader_recovery, LeaderRecovery::recovered);
}

TEST(DemotionElection, Table) {
  // clang-format off
  const std::vector<Case> cases = {
    {"leadership moves, demoted broker stays in the ISR", {1, 2, 3}, {1, 2, 3}, 1, {{1, kDemoted}},                errc::none, 2, {1, 2, 3}},
    {"skips fenced ISR members",                          {1, 2, 3}, {1, 2, 3}, 1, {{1, kDemoted}, {2, kFenced}},  errc::none, 3, {1, 2, 3}},
    {"skips replicas outside the ISR",                    {1, 2, 3}, {1, 3},    1, {{1, kDemoted}},                errc::none, 3, {1, 3}},
    {"only ISR member: keeps leading",                    {1, 2, 3}, {1},       1, {{1, kDemoted}},                errc::eligible_leaders_not_available, 0, {}},
    {"every alternative demoted: keeps leading",          {1, 2, 3}, {1, 2, 3}, 1, {{1, kDemoted}, {2, kDemoted}, {3, kDemoted}}, errc::eligible_leaders_not_available, 0, {}},
    {"leader not demoted",                                {1, 2, 3}, {1, 2, 3}, 1, {{2, kDemoted}},                errc::election_not_needed, 0, {}},
  };
  // clang-format on
  for (const Case& c : cases) {
    PartitionState p = state_of(c);
    expect_change(c, p, elect_for_demotion(kTp, p, view_of(c)));
  }
}

TEST(Reassignment, StartTable) {
  struct Row {
    std::string name;
    ReplicaList target;
    errc error;
    int32_t leader;
    ReplicaList isr;
    ReplicaList replicas;
    ReplicaList adding;
    ReplicaList removing;
  };
  // From replicas [1,2,3], ISR [1,2,3], leader 1.
  // clang-format off
  const std::vector<Row> rows = {
    // name                                   target     error                               leader isr        replicas            adding     removing
    {"move to new brokers: add first",        {4, 5, 6}, errc::none,                         1, {1, 2, 3}, {4, 5, 6, 1, 2, 3}, {4, 5, 6}, {1, 2, 3}},
    {"replace one follower",                  {1, 2, 4}, errc::none,                         1, {1, 2, 3}, {1, 2, 4, 3},       {4},       {3}},
    {"reorder only: done at once",            {3, 2, 1}, errc::none,                         1, {1, 2, 3}, {3, 2, 1},          {},        {}},
    {"drop a follower: done at once",         {1, 2},    errc::none,                         1, {1, 2},    {1, 2},             {},        {}},
    {"drop the leader: re-elected at once",   {2, 3},    errc::none,                         2, {2, 3},    {2, 3},             {},        {}},
    {"same list",                             {1, 2, 3}, errc::election_not_needed,          0, {},        {},                 {},        {}},
    {"empty",                                 {},        errc::invalid_replica_assignment,   0, {},        {},                 {},        {}},
    {"duplicate",                             {1, 1, 2}, errc::invalid_replica_assignment,   0, {},        {},                 {},        {}},
    {"unregistered broker",                   {1, 2, 9}, errc::invalid_replica_assignment,   0, {},        {},                 {},        {}},
  };
  // clang-format on
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    Case c{row.name, {1, 2, 3}, {1, 2, 3}, 1, {}, errc::none, 0, {}};
    PartitionState p = state_of(c);
    auto r = start_reassignment(kTp, p, row.target, view_of(c));
    ASSERT_EQ(r.error, row.error) << errc_name(r.error);
    if (row.error != errc::none)
      continue;
    ASSERT_TRUE(r.changed());
    EXPECT_EQ(r.change->leader, BrokerId{row.leader});
    EXPECT_EQ(r.change->isr, row.isr);
    EXPECT_EQ(r.change->replicas, row.replicas);
    EXPECT_EQ(r.change->adding, row.adding);
    EXPECT_EQ(r.change->removing, row.removing);
    EXPECT_EQ(r.change->reason, ElectionReason::reassignment);
    EXPECT_EQ(r.change->partition_epoch, p.partition_epoch.next());
  }
}

TEST(Reassignment, AdvanceWaitsForTheNewReplicasThenDropsTheOld) {
  Case c{"", {1, 2, 3}, {1, 2, 3}, 1, {}, errc::none, 0, {}};
  PartitionState p = state_of(c);
  ClusterView view = view_of(c);
  EXPECT_EQ(advance_reassignment(kTp, p, view).error, errc::no_reassignment_in_progress);

  auto started = start_reassignment(kTp, p, ReplicaList{4, 5, 1}, view);
  ASSERT_TRUE(started.changed());
  apply_partition_change(p, *started.change);
  EXPECT_TRUE(p.reassigning());

  // 4 caught up, 5 not yet: keep waiting with every replica in place.
  p.isr = ReplicaList{1, 2, 3, 4};
  EXPECT_EQ(advance_reassignment(kTp, p, view).error, errc::election_not_needed);

  p.isr = ReplicaList{1, 2, 3, 4, 5};
  auto done = advance_reassignment(kTp, p, view);
  ASSERT_TRUE(done.changed());
  EXPECT_EQ(done.change->replicas, (ReplicaList{4, 5, 1}));
  EXPECT_EQ(done.change->isr, (ReplicaList{1, 4, 5}));
  EXPECT_EQ(done.change->leader, BrokerId{1});  // still a replica: keeps leading
  EXPECT_TRUE(done.change->adding.empty());
  EXPECT_TRUE(done.change->removing.empty());
}

TEST(Reassignment, RemovedLeaderIsReplacedInTargetOrder) {
  Case c{"", {1, 2, 3}, {1, 2, 3}, 1, {}, errc::none, 0, {}};
  PartitionState p = state_of(c);
  ClusterView view = view_of(c);
  auto started = start_reassignment(kTp, p, ReplicaList{5, 4}, view);
  apply_partition_change(p, *started.change);
  p.isr = ReplicaList{1, 2, 3, 4, 5};
  auto done = advance_reassignment(kTp, p, view);
  ASSERT_TRUE(done.changed());
  EXPECT_EQ(done.change->leader, BrokerId{5});
  EXPECT_EQ(done.change->isr, (ReplicaList{4, 5}));
  EXPECT_EQ(done.change->leader_epoch, p.leader_epoch.next());
}

// ---- auto rebalance (needs a whole image) ----

MetadataImage image_with(int brokers, std::vector<ReplicaList> partitions) {
  MetadataImage image;
  int64_t offset = 0;
  auto apply = [&](MetadataRecord r) {
    ASSERT_FALSE(image.apply({MetadataOffset{offset++}, std::move(r)}));
  };
  for (int32_t b = 1; b <= brokers; ++b) {
    BrokerEpoch epoch{offset};
    apply(BrokerRegistered{BrokerId{b}, epoch, 1, {}, {}, std::nullopt, {}});
    apply(BrokerUnfenced{BrokerId{b}, epoch});
  }
  apply(TopicCreated{"t", std::move(partitions)});
  return image;
}

void set_leader(MetadataImage& image, int32_t partition, int32_t leader) {
  const PartitionState& p = image.partition(PartitionRef{0, partition});
  auto change = make_partition_change({"t", PartitionIndex{partition}}, p, BrokerId{leader}, p.isr,
                                      ElectionReason::offline);
  ASSERT_FALSE(image.apply({image.next_offset(), change}));
}

TEST(AutoRebalance, SelectsOnlyImbalancedBrokersAboveTheThreshold) {
  // Broker 1 is preferred for partitions 0-3, broker 2 for 4-7.
  std::vector<ReplicaList> parts;
  for (int i = 0; i < 4; ++i)
    parts.push_back({1, 2, 3});
  for (int i = 0; i < 4; ++i)
    parts.push_back({2, 1, 3});
  MetadataImage image = image_with(3, parts);
  set_leader(image, 0, 2);  // broker 1: 1/4 = 25 % not led by it
  set_leader(image, 4, 1);  // broker 2: 1/4
  set_leader(image, 5, 1);  // broker 2: 2/4 = 50 %
  ClusterView view = ClusterView::from(image);
  EXPECT_DOUBLE_EQ(leader_imbalance_ratio(image, BrokerId{1}), 0.25);
  EXPECT_DOUBLE_EQ(leader_imbalance_ratio(image, BrokerId{2}), 0.5);
  EXPECT_DOUBLE_EQ(leader_imbalance_ratio(image, BrokerId{3}), 0.0);

  auto at_30 = select_rebalance(image, view, 30, 100);
  EXPECT_EQ(at_30, (std::vector<PartitionRef>{{0, 4}, {0, 5}}));
  auto at_10 = select_rebalance(image, view, 10, 100);
  EXPECT_EQ(at_10.size(), 3u);
  auto capped = select_rebalance(image, view, 10, 2);
  EXPECT_EQ(capped.size(), 2u);
  EXPECT_TRUE(select_rebalance(image, view, 50, 100).empty());  // 50 % is not above 50 %
}

TEST(AutoRebalance, LeavesADemotedPreferredLeaderAlone) {
  std::vector<ReplicaList> parts(4, ReplicaList{1, 2, 3});
  MetadataImage image = image_with(3, parts);
  for (int p = 0; p < 4; ++p)
    set_leader(image, p, 2);
  ASSERT_FALSE(image.apply({image.next_offset(), BrokerPriorityChanged{BrokerId{1}, true, "op"}}));
  ClusterView view = ClusterView::from(image);
  EXPECT_TRUE(select_rebalance(image, view, 10, 100).empty());
}

TEST(ClusterView, UnknownBrokersAreUnregistered) {
  ClusterView view;
  view.set(BrokerId{3}, kAlive);
  view.set(BrokerId{1}, kDemoted);
  EXPECT_TRUE(view.alive(BrokerId{3}));
  EXPECT_TRUE(view.demoted(BrokerId{1}));
  EXPECT_FALSE(view.status(BrokerId{2}).registered);
  EXPECT_FALSE(view.alive(BrokerId{2}));
  view.set(BrokerId{3}, kFenced);
  EXPECT_FALSE(view.alive(BrokerId{3}));
}

}  // namespace
}  // namespace faultline::cluster
