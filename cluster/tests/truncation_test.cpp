// Epoch-based follower truncation (ARCHITECTURE.md §2.6): the leader's OffsetsForLeaderEpoch answer
// (LeaderEpochCache::end_offset_for) and the follower's decision (follower_truncation), tested as
// tables and replayed on the divergence scenarios of KIP-101 and KIP-279.
#include "faultline/cluster/log/truncation.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "faultline/cluster/log/leader_epoch_cache.h"

namespace faultline::cluster {
namespace {

using Answer = std::pair<LeaderEpoch, Offset>;
constexpr Answer kUndefined{LeaderEpoch{-1}, Offset{-1}};

LeaderEpochCache cache_of(std::vector<std::pair<int32_t, int64_t>> entries) {
  LeaderEpochCache c;
  for (auto [epoch, start] : entries)
    c.assign(LeaderEpoch{epoch}, Offset{start});
  return c;
}

TEST(LeaderEpochCache, EndOffsetForFollowsKafkasTable) {
  // Epochs 2 @ 10, 4 @ 20, 7 @ 35; log end 50.
  const auto cache = cache_of({{2, 10}, {4, 20}, {7, 35}});
  const Offset leo{50};
  struct Row {
    int32_t requested;
    Answer expected;
    const char* why;
  };
  const std::vector<Row> rows = {
      {-1, kUndefined, "undefined request"},
      {0, {LeaderEpoch{0}, Offset{10}}, "older than the first epoch: requested, first start"},
      {1, {LeaderEpoch{1}, Offset{10}}, "older than the first epoch: requested, first start"},
      {2, {LeaderEpoch{2}, Offset{20}}, "known epoch: ends where the next starts"},
      {3, {LeaderEpoch{2}, Offset{20}}, "unknown epoch between: floor epoch, next start"},
      {4, {LeaderEpoch{4}, Offset{35}}, "known epoch"},
      {6, {LeaderEpoch{4}, Offset{35}}, "gap: floor epoch"},
      {7, {LeaderEpoch{7}, Offset{50}}, "latest epoch: log end"},
      {9, {LeaderEpoch{7}, Offset{50}}, "newer than the latest: latest and log end (see header)"},
  };
  for (const auto& r : rows)
    EXPECT_EQ(cache.end_offset_for(LeaderEpoch{r.requested}, leo), r.expected)
        << "requested " << r.requested << ": " << r.why;
  EXPECT_EQ(LeaderEpochCache{}.end_offset_for(LeaderEpoch{3}, Offset{0}), kUndefined)
      << "empty history";
}

TEST(LeaderEpochCache, AssignKeepsTheHistoryIncreasing) {
  LeaderEpochCache c;
  EXPECT_TRUE(c.assign(LeaderEpoch{1}, Offset{0}));
  EXPECT_FALSE(c.assign(LeaderEpoch{1}, Offset{5})) << "same epoch continues";
  EXPECT_TRUE(c.assign(LeaderEpoch{3}, Offset{10}));
  EXPECT_EQ(c.latest_epoch(), LeaderEpoch{3});
  // An epoch starting where another started replaces it (that epoch held no records).
  EXPECT_TRUE(c.assign(LeaderEpoch{4}, Offset{10}));
  EXPECT_EQ(c.entries(),
            (std::vector<EpochEntry>{{LeaderEpoch{1}, Offset{0}}, {LeaderEpoch{4}, Offset{10}}}));
  EXPECT_FALSE(c.assign(LeaderEpoch{-1}, Offset{20}));
}

TEST(LeaderEpochCache, TruncateFromEndDropsEpochsStartingAtOrAfterTheEnd) {
  auto c = cache_of({{1, 0}, {2, 10}, {3, 20}});
  EXPECT_FALSE(c.truncate_from_end(Offset{25}));
  EXPECT_TRUE(c.truncate_from_end(Offset{20}));
  EXPECT_EQ(c.latest_epoch(), LeaderEpoch{2});
  EXPECT_TRUE(c.truncate_from_end(Offset{3}));
  EXPECT_EQ(c.entries(), (std::vector<EpochEntry>{{LeaderEpoch{1}, Offset{0}}}));
}

TEST(LeaderEpochCache, SerializesInKafkasCheckpointFormat) {
  const auto c = cache_of({{0, 0}, {3, 17}});
  EXPECT_EQ(c.serialize(), "0\n2\n0 0\n3 17\n");
  EXPECT_EQ(LeaderEpochCache::parse(c.serialize()), c);
  EXPECT_EQ(LeaderEpochCache::parse("0\n0\n"), LeaderEpochCache{});
  for (const char* bad : {"", "1\n0\n", "0\n2\n0 0\n", "0\n1\n0 0\nx", "0\n2\n3 5\n2 9\n",
                          "0\n2\n1 5\n2 5\n", "0\n1\n-1 0\n", "0\n1\n0 0", "0\n1\n0  0\n"})
    EXPECT_FALSE(LeaderEpochCache::parse(bad).has_value()) << bad;
}

TEST(FollowerTruncation, DecisionTable) {
  struct Row {
    int32_t leader_epoch;
    int64_t leader_end;
    int32_t own_epoch;
    int64_t own_end;
    int64_t own_leo;
    TruncationDecision expected;
    const char* why;
  };
  const std::vector<Row> rows = {
      {3, 40, 3, 50, 60, {Offset{40}, true}, "leader's epoch ends first"},
      {3, 50, 3, 40, 60, {Offset{40}, true}, "our epoch ends first"},
      {3, 50, 3, 50, 45, {Offset{45}, true}, "nothing to drop beyond our LEO"},
      {3, 50, 3, 50, 50, {Offset{50}, true}, "logs agree: no truncation"},
      {3, 40, 2, 30, 60, {Offset{30}, false}, "KIP-279: we never saw epoch 3; re-ask"},
      {3, 40, 2, 30, 20, {Offset{20}, false}, "KIP-279 intermediate step bounded by LEO"},
      {-1, -1, -1, -1, 60, {Offset{0}, true}, "leader knows nothing: nothing is vouched for"},
      {5, -1, 5, 60, 60, {Offset{0}, true}, "undefined end offset: truncate fully, never to HW"},
      {-1, 30, -1, -1, 60, {Offset{30}, true}, "pre-KIP-279 answer without epoch"},
      {3, 30, -1, -1, 60, {Offset{30}, true}, "we hold no epoch <= leader's: its end offset"},
      {3, 80, -1, -1, 60, {Offset{60}, true}, "... bounded by our LEO"},
  };
  for (const auto& r : rows) {
    const auto got =
        follower_truncation(LeaderEpoch{r.leader_epoch}, Offset{r.leader_end},
                            LeaderEpoch{r.own_epoch}, Offset{r.own_end}, Offset{r.own_leo});
    EXPECT_EQ(got, r.expected) << r.why;
    EXPECT_EQ(
        follower_truncation_offset(LeaderEpoch{r.leader_epoch}, Offset{r.leader_end},
                                   LeaderEpoch{r.own_epoch}, Offset{r.own_end}, Offset{r.own_leo}),
        r.expected.truncate_to)
        << r.why;
  }
}

// A replica's log reduced to what truncation looks at: the epoch of each offset.
struct Replica {
  std::vector<int32_t> epochs;  // epochs[offset]
  LeaderEpochCache history() const {
    LeaderEpochCache c;
    for (size_t o = 0; o < epochs.size(); ++o)
      c.assign(LeaderEpoch{epochs[o]}, Offset{static_cast<int64_t>(o)});
    return c;
  }
  Offset leo() const { return Offset{static_cast<int64_t>(epochs.size())}; }
  Answer end_offset_for(LeaderEpoch e) const { return history().end_offset_for(e, leo()); }
};

// The follower's side of the exchange, repeated until complete as the broker does.
Offset reconcile(Replica& follower, const Replica& leader) {
  for (int round = 0; round < 10; ++round) {
    const auto [leader_epoch, leader_end] =
        leader.end_offset_for(follower.history().latest_epoch());
    const auto [own_epoch, own_end] = follower.end_offset_for(leader_epoch);
    const auto d =
        follower_truncation(leader_epoch, leader_end, own_epoch, own_end, follower.leo());
    follower.epochs.resize(static_cast<size_t>(d.truncate_to.value()));
    if (d.complete)
      return d.truncate_to;
  }
  ADD_FAILURE() << "truncation did not converge";
  return follower.leo();
}

TEST(KipScenarios, Kip101Scenario1NoLossOfAReplicatedMessage) {
  // A (leader, epoch 0) and B both hold m1, m2; B's HW is still 1 when it restarts. Truncating
  // to its HW would drop m2, which B must keep: if A dies next, B leads and m2 must be there.
  Replica a{{0, 0}};
  Replica b{{0, 0}};
  EXPECT_EQ(reconcile(b, a), Offset{2});
  EXPECT_EQ(b.epochs.size(), 2u) << "m2 kept";
}

TEST(KipScenarios, Kip101Scenario2DivergentLogsAreRepaired) {
  // A (epoch 0) has m1, m2; B only m1. Both crash; B returns first, leads in epoch 1 and writes
  // m3 at offset 1. A returns as follower: its m2 at offset 1 must go.
  Replica b{{0, 1}};
  Replica a{{0, 0}};
  EXPECT_EQ(reconcile(a, b), Offset{1});
  EXPECT_EQ(a.epochs, (std::vector<int32_t>{0}));
}

TEST(KipScenarios, Kip279FastLeaderChangesDoNotLeaveDivergence) {
  // A leads epoch 0 with m0, m1; B has m0. A dies; B leads epoch 1 and writes m2 at offset 1,
  // then dies before anyone copies it. A returns and leads epoch 2, writing m3 at offset 2.
  // B comes back as follower with [0:e0, 1:e1]; A holds [0:e0, 1:e0, 2:e2].
  // Pre-KIP-279, A answered "epoch 1 ends at 2" and B kept its m2 at offset 1: divergence.
  Replica a{{0, 0, 2}};
  Replica b{{0, 1}};
  const auto first = a.end_offset_for(LeaderEpoch{1});
  EXPECT_EQ(first, (Answer{LeaderEpoch{0}, Offset{2}})) << "A's floor epoch for 1 is 0";
  EXPECT_EQ(reconcile(b, a), Offset{1});
  EXPECT_EQ(b.epochs, (std::vector<int32_t>{0})) << "B's m2 (epoch 1) is gone";
}

TEST(KipScenarios, NewLeaderThatHasNotWrittenInItsEpochYet) {
  // B led epoch 3 and wrote offsets 5..7 that A never copied; A leads epoch 4 but has appended
  // nothing yet, so its history ends with epoch 2. B must drop 5..7 and nothing else.
  Replica a{{1, 1, 1, 2, 2}};
  Replica b{{1, 1, 1, 2, 2, 3, 3, 3}};
  EXPECT_EQ(reconcile(b, a), Offset{5});
}

TEST(KipScenarios, UncleanLeaderWithAnEmptyLog) {
  // An empty replica was elected uncleanly: everything the follower holds is gone from the
  // partition, and keeping any of it (e.g. up to the follower's HW) would diverge.
  Replica a{{}};
  Replica b{{0, 0, 1}};
  EXPECT_EQ(reconcile(b, a), Offset{0});
  EXPECT_TRUE(b.epochs.empty());
}

}  // namespace
}  // namespace faultline::cluster
