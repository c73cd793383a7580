// Leader-side replication rules (ARCHITECTURE.md §2 items 3-5): high watermark, min ISR, ISR shrink
// and expand, the single in-flight AlterPartition, and acks=all outcomes.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "faultline/cluster/replication/partition_replication.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;

constexpr BrokerId kLeader{1};
constexpr BrokerId kF2{2};
constexpr BrokerId kF3{3};

struct Fixture {
  explicit Fixture(int min_isr = 1, ReplicaList isr = {1, 2, 3}, Offset leo = Offset{0},
                   Offset epoch_start = Offset{0})
      : t0(ReplicationTime{} + 1h),
        rep({kLeader, LeaderEpoch{5}, PartitionEpoch{10}, {1, 2, 3}, isr, epoch_start},
            {min_isr, 30s}, leo, Offset{0}, t0) {}
  ReplicationTime t0;
  PartitionReplication rep;
};

TEST(HighWatermark, IsTheMinimumLogEndOverTheIsr) {
  Fixture f;
  f.rep.on_leader_append(Offset{10});
  EXPECT_EQ(f.rep.high_watermark(), Offset{0}) << "followers not heard from yet";
  EXPECT_FALSE(f.rep.on_follower_fetch(kF2, Offset{10}, f.t0));
  EXPECT_TRUE(f.rep.on_follower_fetch(kF3, Offset{4}, f.t0));
  EXPECT_EQ(f.rep.high_watermark(), Offset{4});
  EXPECT_TRUE(f.rep.on_follower_fetch(kF3, Offset{10}, f.t0));
  EXPECT_EQ(f.rep.high_watermark(), Offset{10});
}

TEST(HighWatermark, NeverMovesBackwards) {
  Fixture f;
  f.rep.on_leader_append(Offset{10});
  f.rep.on_follower_fetch(kF2, Offset{8}, f.t0);
  f.rep.on_follower_fetch(kF3, Offset{8}, f.t0);
  ASSERT_EQ(f.rep.high_watermark(), Offset{8});
  // A follower that truncated and fetches from lower down does not pull the HW back.
  EXPECT_FALSE(f.rep.on_follower_fetch(kF3, Offset{3}, f.t0));
  EXPECT_EQ(f.rep.high_watermark(), Offset{8});
  // Nor does a new ISR without it.
  f.rep.on_metadata_update(ReplicaList{1, 2}, PartitionEpoch{11}, ReplicaList{1, 2, 3});
  EXPECT_EQ(f.rep.high_watermark(), Offset{8});
}

TEST(HighWatermark, FrozenWhileTheIsrIsBelowMinInsync) {
  Fixture f(/*min_isr=*/2, ReplicaList{1});
  f.rep.on_leader_append(Offset{10});
  EXPECT_EQ(f.rep.high_watermark(), Offset{0});
  // Once a second member is in the ISR, the HW follows the slowest of the two.
  f.rep.on_follower_fetch(kF2, Offset{6}, f.t0);
  f.rep.on_metadata_update(ReplicaList{1, 2}, PartitionEpoch{11}, ReplicaList{1, 2, 3});
  EXPECT_EQ(f.rep.high_watermark(), Offset{6});
}

TEST(HighWatermark, LeaderAloneInTheIsrAdvancesOnAppend) {
  Fixture f(1, ReplicaList{1});
  f.rep.on_leader_append(Offset{7});
  EXPECT_EQ(f.rep.high_watermark(), Offset{7});
  EXPECT_EQ(f.rep.check_produce(Acks::all), errc::none);
}

TEST(HighWatermark, FollowerHighWatermarkIsCappedByItsLog) {
  EXPECT_EQ(follower_high_watermark(Offset{10}, Offset{4}), Offset{4});
  EXPECT_EQ(follower_high_watermark(Offset{3}, Offset{4}), Offset{3});
}

TEST(IsrShrink, FollowersThatDoNotCatchUpWithinTheLagLeave) {
  Fixture f;
  f.rep.on_leader_append(Offset{100});
  // 2 keeps up, 3 fetches but stays behind.
  for (auto t = 0s; t <= 40s; t += 5s) {
    f.rep.on_follower_fetch(kF2, Offset{100}, f.t0 + t);
    f.rep.on_follower_fetch(kF3, Offset{50}, f.t0 + t);
  }
  EXPECT_TRUE(f.rep.isr_shrink_candidates(f.t0 + 29s).empty()) << "within replica.lag.time.max";
  EXPECT_EQ(f.rep.isr_shrink_candidates(f.t0 + 31s), (ReplicaList{kF3}));
}

TEST(IsrShrink, AFollowerTrailingAMovingLogEndIsStillCaughtUp) {
  Fixture f;
  // The leader appends 10 records between fetches; the follower always reaches the log end the
  // leader had at its previous fetch, never the current one.
  int64_t leo = 0;
  for (auto t = 0s; t <= 60s; t += 1s) {
    f.rep.on_follower_fetch(kF2, Offset{leo}, f.t0 + t);
    f.rep.on_follower_fetch(kF3, Offset{leo}, f.t0 + t);
    leo += 10;
    f.rep.on_leader_append(Offset{leo});
  }
  EXPECT_TRUE(f.rep.isr_shrink_candidates(f.t0 + 61s).empty());
}

TEST(IsrExpand, NeedsTheHighWatermarkAndTheLeaderEpochStart) {
  Fixture f(1, ReplicaList{1, 2}, Offset{20}, /*epoch_start=*/Offset{15});
  f.rep.on_follower_fetch(kF2, Offset{12}, f.t0);
  ASSERT_EQ(f.rep.high_watermark(), Offset{12});
  f.rep.on_follower_fetch(kF3, Offset{12}, f.t0);  // reached the HW, not the epoch start
  EXPECT_TRUE(f.rep.isr_expand_candidates().empty());
  f.rep.on_follower_fetch(kF2, Offset{20}, f.t0);
  ASSERT_EQ(f.rep.high_watermark(), Offset{20});
  f.rep.on_follower_fetch(kF3, Offset{16}, f.t0);  // epoch start passed, HW not reached
  EXPECT_TRUE(f.rep.isr_expand_candidates().empty());
  f.rep.on_follower_fetch(kF3, Offset{20}, f.t0);
  EXPECT_EQ(f.rep.isr_expand_candidates(), (ReplicaList{kF3}));
}

// A broker in controlled shutdown keeps fetching until it stops, so it looks caught up; the
// controller refuses it, and a proposal naming it would hold the HW to its progress while in
// flight and keep a due shrink from landing.
TEST(IsrExpand, LeavesOutBrokersTheMetadataShowsIneligible) {
  Fixture f(1, ReplicaList{1, 2});
  f.rep.on_leader_append(Offset{8});
  f.rep.on_follower_fetch(kF2, Offset{8}, f.t0);
  f.rep.on_follower_fetch(kF3, Offset{8}, f.t0);
  EXPECT_EQ(f.rep.isr_expand_candidates(), (ReplicaList{kF3}));
  EXPECT_TRUE(f.rep.isr_expand_candidates(ReplicaList{kF3}).empty());
  EXPECT_FALSE(f.rep.propose_isr_change(f.t0, ReplicaList{kF3}).has_value())
      << "nothing to propose while 3 is ineligible";
  EXPECT_FALSE(f.rep.alter_partition_in_flight());
  // Eligible again (e.g. restarted and unfenced): proposed as before.
  auto proposal = f.rep.propose_isr_change(f.t0, ReplicaList{});
  ASSERT_TRUE(proposal.has_value());
  EXPECT_EQ(proposal->proposed_isr, (ReplicaList{1, 2, 3}));
}

TEST(IsrExpand, AnIneligibleBrokerDoesNotHoldBackADueShrink) {
  Fixture f;  // ISR 1, 2, 3
  f.rep.on_leader_append(Offset{10});
  f.rep.on_follower_fetch(kF2, Offset{10}, f.t0 + 31s);
  auto proposal = f.rep.propose_isr_change(f.t0 + 31s, ReplicaList{kF3});
  ASSERT_TRUE(proposal.has_value());
  EXPECT_EQ(proposal->proposed_isr, (ReplicaList{1, 2})) << "3 lagged: shrunk, ineligible or not";
}

TEST(AlterPartition, OneRequestInFlightAndFencingWaitsForMetadata) {
  Fixture f(1, ReplicaList{1, 2});
  f.rep.on_leader_append(Offset{5});
  f.rep.on_follower_fetch(kF2, Offset{5}, f.t0);
  f.rep.on_follower_fetch(kF3, Offset{5}, f.t0);
  auto proposal = f.rep.propose_isr_change(f.t0);
  ASSERT_TRUE(proposal.has_value());
  EXPECT_EQ(proposal->proposed_isr, (ReplicaList{1, 2, 3}));
  EXPECT_EQ(proposal->leader_epoch, LeaderEpoch{5});
  EXPECT_EQ(proposal->partition_epoch, PartitionEpoch{10});
  EXPECT_FALSE(f.rep.propose_isr_change(f.t0).has_value()) << "second request while in flight";

  f.rep.on_alter_partition_result(*proposal, errc::invalid_update_version, {}, PartitionEpoch{});
  EXPECT_FALSE(f.rep.propose_isr_change(f.t0).has_value()) << "retried with a stale epoch";
  f.rep.on_metadata_update(ReplicaList{1, 2}, PartitionEpoch{11}, ReplicaList{1, 2, 3});
  auto again = f.rep.propose_isr_change(f.t0);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->partition_epoch, PartitionEpoch{11});

  f.rep.on_alter_partition_result(*again, errc::none, ReplicaList{1, 2, 3}, PartitionEpoch{12});
  EXPECT_EQ(f.rep.isr(), (ReplicaList{1, 2, 3}));
  EXPECT_EQ(f.rep.partition_epoch(), PartitionEpoch{12});
  EXPECT_FALSE(f.rep.alter_partition_in_flight());
  EXPECT_FALSE(f.rep.propose_isr_change(f.t0).has_value()) << "nothing left to change";
}

TEST(AlterPartition, ARejectedProposalIsRetriedOnlyAfterABackoff) {
  Fixture f(1, ReplicaList{1, 2});
  f.rep.on_follower_fetch(kF3, Offset{0}, f.t0);
  auto proposal = f.rep.propose_isr_change(f.t0);
  ASSERT_TRUE(proposal.has_value());
  // E.g. the controller refuses 3 because it is fenced; the leader must not spin on it.
  f.rep.on_alter_partition_result(*proposal, errc::invalid_request, {}, PartitionEpoch{});
  EXPECT_FALSE(f.rep.propose_isr_change(f.t0 + 100ms).has_value());
  auto retry = f.rep.propose_isr_change(f.t0 + 500ms);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->proposed_isr, (ReplicaList{1, 2, 3}));
}

// changing_isr() keeps a partition on the broker's ISR watch list (checked every 50 ms rather than
// at the slower sweeps): from the proposal until its outcome, through a retry's backoff and a
// fenced proposal's wait for metadata.
TEST(AlterPartition, ChangingIsrCoversEveryStateBetweenAProposalAndItsOutcome) {
  Fixture f(1, ReplicaList{1, 2});
  EXPECT_FALSE(f.rep.changing_isr());
  f.rep.on_follower_fetch(kF3, Offset{0}, f.t0);
  auto proposal = f.rep.propose_isr_change(f.t0);
  ASSERT_TRUE(proposal.has_value());
  EXPECT_TRUE(f.rep.changing_isr()) << "in flight";
  f.rep.on_alter_partition_result(*proposal, errc::invalid_request, {}, PartitionEpoch{});
  EXPECT_TRUE(f.rep.changing_isr()) << "refused: a retry is due after the backoff";
  EXPECT_FALSE(f.rep.propose_isr_change(f.t0 + 100ms).has_value());
  EXPECT_TRUE(f.rep.changing_isr()) << "still backing off";
  auto retry = f.rep.propose_isr_change(f.t0 + 500ms);
  ASSERT_TRUE(retry.has_value());
  f.rep.on_alter_partition_result(*retry, errc::invalid_update_version, {}, PartitionEpoch{});
  EXPECT_TRUE(f.rep.changing_isr()) << "fenced: waiting for the metadata log";
  f.rep.on_metadata_update(ReplicaList{1, 2, 3}, PartitionEpoch{11}, ReplicaList{1, 2, 3});
  EXPECT_FALSE(f.rep.changing_isr()) << "the metadata decided";
  EXPECT_FALSE(f.rep.propose_isr_change(f.t0 + 600ms).has_value());

  Fixture g(1, ReplicaList{1, 2});
  g.rep.on_follower_fetch(kF3, Offset{0}, g.t0);
  auto expand = g.rep.propose_isr_change(g.t0);
  ASSERT_TRUE(expand.has_value());
  g.rep.on_alter_partition_result(*expand, errc::none, ReplicaList{1, 2, 3}, PartitionEpoch{11});
  EXPECT_FALSE(g.rep.changing_isr()) << "committed";
}

TEST(AlterPartition, PendingShrinkStillHoldsTheHighWatermarkBack) {
  Fixture f;
  f.rep.on_leader_append(Offset{10});
  f.rep.on_follower_fetch(kF2, Offset{10}, f.t0 + 31s);
  f.rep.on_follower_fetch(kF3, Offset{2}, f.t0 + 31s);
  auto proposal = f.rep.propose_isr_change(f.t0 + 31s);
  ASSERT_TRUE(proposal.has_value());
  EXPECT_EQ(proposal->proposed_isr, (ReplicaList{1, 2}));
  // Until the controller commits the shrink, 3 may still be elected: the HW must wait for it.
  EXPECT_EQ(f.rep.high_watermark(), Offset{2});
  f.rep.on_alter_partition_result(*proposal, errc::none, ReplicaList{1, 2}, PartitionEpoch{11});
  EXPECT_EQ(f.rep.high_watermark(), Offset{10});
}

// A controller committed the expansion and lost leadership before answering; the broker retried
// at the new active controller and pulled the committed change from its metadata log before that
// retry's answer (INVALID_UPDATE_VERSION: the partition epoch moved) came back.
struct Overtaken {
  Fixture f{1, ReplicaList{1, 2}};
  std::optional<IsrChangeProposal> expand;

  Overtaken() {
    f.rep.on_leader_append(Offset{5});
    f.rep.on_follower_fetch(kF2, Offset{5}, f.t0);
    f.rep.on_follower_fetch(kF3, Offset{5}, f.t0);
    expand = f.rep.propose_isr_change(f.t0);
    f.rep.on_metadata_update(ReplicaList{1, 2, 3}, PartitionEpoch{11}, ReplicaList{1, 2, 3});
  }
  // 3 stops fetching: a shrink falls due.
  std::optional<IsrChangeProposal> shrink_due() {
    f.rep.on_follower_fetch(kF2, Offset{5}, f.t0 + 31s);
    return f.rep.propose_isr_change(f.t0 + 31s);
  }
};

TEST(AlterPartition, AnAnswerTheMetadataOvertookDoesNotWaitForMetadataAgain) {
  Overtaken o;
  ASSERT_TRUE(o.expand.has_value());
  EXPECT_FALSE(o.f.rep.on_alter_partition_result(*o.expand, errc::invalid_update_version, {},
                                                 PartitionEpoch{}));
  EXPECT_EQ(o.f.rep.isr(), (ReplicaList{1, 2, 3}));
  EXPECT_EQ(o.f.rep.partition_epoch(), PartitionEpoch{11});
  auto shrink = o.shrink_due();
  ASSERT_TRUE(shrink.has_value()) << "the leader waits for a metadata update that already came";
  EXPECT_EQ(shrink->proposed_isr, (ReplicaList{1, 2}));
  EXPECT_EQ(shrink->partition_epoch, PartitionEpoch{11});
}

TEST(AlterPartition, ALateAnswerLeavesTheNewerProposalInFlight) {
  for (errc late :
       {errc::none, errc::invalid_update_version, errc::not_controller, errc::request_timed_out}) {
    SCOPED_TRACE(errc_name(late));
    Overtaken o;
    ASSERT_TRUE(o.expand.has_value());
    auto shrink = o.shrink_due();
    ASSERT_TRUE(shrink.has_value());
    EXPECT_FALSE(o.f.rep.on_alter_partition_result(*o.expand, late, ReplicaList{1, 2, 3},
                                                   PartitionEpoch{11}));
    EXPECT_TRUE(o.f.rep.alter_partition_in_flight());
    EXPECT_FALSE(o.f.rep.propose_isr_change(o.f.t0 + 31s).has_value()) << "two in flight";
    EXPECT_TRUE(o.f.rep.on_alter_partition_result(*shrink, errc::none, ReplicaList{1, 2},
                                                  PartitionEpoch{12}));
    EXPECT_EQ(o.f.rep.isr(), (ReplicaList{1, 2}));
    EXPECT_EQ(o.f.rep.partition_epoch(), PartitionEpoch{12});
  }
}

TEST(AcksAll, Outcomes) {
  struct Row {
    std::string name;
    int min_isr;
    ReplicaList isr;
    errc up_front;
  };
  const std::vector<Row> rows = {
      {"ISR at the minimum", 2, {1, 2}, errc::none},
      {"ISR below the minimum", 3, {1, 2}, errc::not_enough_replicas},
      {"min 1, leader alone", 1, {1}, errc::none},
  };
  for (const Row& row : rows) {
    Fixture f(row.min_isr, row.isr);
    EXPECT_EQ(f.rep.check_produce(Acks::all), row.up_front) << row.name;
    EXPECT_EQ(f.rep.check_produce(Acks::leader), errc::none) << row.name << ": acks=1 never waits";
  }
}

TEST(AcksAll, CompletesWhenTheHighWatermarkPassesTheBatch) {
  Fixture f(2, ReplicaList{1, 2});
  f.rep.on_leader_append(Offset{5});  // batch 0..4
  f.rep.add_pending_produce(1, Offset{4});
  f.rep.on_leader_append(Offset{9});  // batch 5..8
  f.rep.add_pending_produce(2, Offset{8});
  f.rep.on_follower_fetch(kF2, Offset{4}, f.t0);
  EXPECT_TRUE(f.rep.take_completed_produces().empty()) << "HW 4 does not pass offset 4";
  f.rep.on_follower_fetch(kF2, Offset{5}, f.t0);
  auto done = f.rep.take_completed_produces();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].request_id, 1u);
  EXPECT_EQ(done[0].error, errc::none);
  EXPECT_EQ(f.rep.pending_produces(), 1u);
}

TEST(AcksAll, IsrFallingBelowTheMinimumMeanwhileIsNotEnoughReplicasAfterAppend) {
  Fixture f(2, ReplicaList{1, 2});
  f.rep.on_leader_append(Offset{5});
  f.rep.add_pending_produce(7, Offset{4});
  f.rep.on_metadata_update(ReplicaList{1}, PartitionEpoch{11}, ReplicaList{1, 2, 3});
  auto done = f.rep.take_completed_produces();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].request_id, 7u);
  EXPECT_EQ(done[0].error, errc::not_enough_replicas_after_append);
  EXPECT_EQ(f.rep.check_produce(Acks::all), errc::not_enough_replicas);
}

TEST(AcksAll, LosingLeadershipAbandonsPendingProduces) {
  Fixture f(1, ReplicaList{1, 2});
  f.rep.on_leader_append(Offset{5});
  f.rep.add_pending_produce(1, Offset{4});
  auto done = f.rep.abandon_pending_produces();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].error, errc::leadership_lost_after_append);
  EXPECT_EQ(f.rep.pending_produces(), 0u);
}

TEST(Followers, ReassignmentAddsAndRemovesTrackedFollowers) {
  Fixture f;
  f.rep.on_metadata_update(ReplicaList{1, 2}, PartitionEpoch{11}, ReplicaList{1, 2, 4});
  EXPECT_EQ(f.rep.follower(kF3), nullptr);
  ASSERT_NE(f.rep.follower(BrokerId{4}), nullptr);
  EXPECT_EQ(f.rep.follower(BrokerId{4})->log_end_offset, Offset{-1});
  EXPECT_FALSE(f.rep.on_follower_fetch(kF3, Offset{0}, f.t0)) << "not a replica any more";
}

// Random appends, fetches, ISR changes and produces; after every step the high watermark obeys
// item 4 and every acks=all request is answered exactly once, and ok only once the HW passed it.
TEST(ReplicationModel, RandomRunsKeepTheHighWatermarkRules) {
  std::mt19937_64 rng(42);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  Fixture f(/*min_isr=*/2);
  ReplicationTime now = f.t0;
  int64_t leo = 0;
  std::map<int32_t, int64_t> follower_leo{{2, 0}, {3, 0}};
  std::map<uint64_t, int64_t> pending;  // request id -> last offset
  uint64_t next_id = 1;
  int64_t last_hw = 0;
  int ok = 0;
  int after_append = 0;
  for (int step = 0; step < 5000; ++step) {
    now += std::chrono::milliseconds(pick(2000));
    switch (pick(6)) {
      case 0:
      case 1: {
        if (f.rep.check_produce(Acks::all) != errc::none)
          break;
        leo += 1 + pick(5);
        f.rep.on_leader_append(Offset{leo});
        f.rep.add_pending_produce(next_id, Offset{leo - 1});
        pending[next_id++] = leo - 1;
        break;
      }
      case 2:
      case 3: {
        int32_t b = 2 + pick(2);
        // Usually progress, sometimes a truncation after which it fetches from lower down.
        int64_t& fl = follower_leo[b];
        fl = pick(10) == 0 ? std::max<int64_t>(0, fl - pick(3)) : std::min(leo, fl + pick(8));
        f.rep.on_follower_fetch(BrokerId{b}, Offset{fl}, now);
        break;
      }
      case 4:
        if (auto proposal = f.rep.propose_isr_change(now)) {
          f.rep.on_alter_partition_result(*proposal, errc::none, proposal->proposed_isr,
                                          proposal->partition_epoch.next());
        }
        break;
      case 5: {  // the controller removed a follower (it was fenced)
        ReplicaList isr;
        for (BrokerId b : f.rep.isr()) {
          if (b == kLeader || pick(3) != 0)
            isr.push_back(b);
        }
        f.rep.on_metadata_update(isr, f.rep.partition_epoch().next(), ReplicaList{1, 2, 3});
        break;
      }
    }
    int64_t hw = f.rep.high_watermark().value();
    ASSERT_GE(hw, last_hw) << "step " << step;
    ASSERT_LE(hw, leo) << "step " << step;
    if (hw > last_hw) {
      ASSERT_GE(static_cast<int>(f.rep.isr().size()), 2) << "HW moved below min ISR, step " << step;
      for (BrokerId b : f.rep.isr()) {
        if (b != kLeader) {
          ASSERT_GE(follower_leo[b.value()], hw) << "step " << step;
        }
      }
    }
    last_hw = hw;
    for (const ProduceCompletion& c : f.rep.take_completed_produces()) {
      auto it = pending.find(c.request_id);
      ASSERT_NE(it, pending.end()) << "answered twice or never asked: " << c.request_id;
      if (c.error == errc::none) {
        ASSERT_LT(it->second, hw);
        ++ok;
      } else {
        ASSERT_EQ(c.error, errc::not_enough_replicas_after_append);
        ++after_append;
      }
      pending.erase(it);
    }
  }
  EXPECT_GT(ok, 100);
  EXPECT_GT(after_append, 10);
}

}  // namespace
}  // namespace faultline::cluster
