// The invariant pass over the cluster's timeline: each invariant fires on a bad timeline and stays
// silent on the good ones next to it (the controller's legitimate moves, late but in-grace fixes).
#include <faultline/checker/invariants.h>
#include <gtest/gtest.h>

#include <functional>

#include "history_builder.h"

namespace faultline::checker {
namespace {

using namespace std::chrono_literals;
using testing::HistoryBuilder;
using K = InvariantKind;

std::vector<K> kinds(const InvariantResult& r) {
  std::vector<K> out;
  for (const auto& v : r.violations)
    out.push_back(v.kind);
  return out;
}

InvariantResult check(const HistoryBuilder& b, InvariantOptions o = {}) {
  return check_invariants(b.history(), o);
}

// ---- no timeline: nothing to judge, and the result says so ----

TEST(Invariants, NoTimelineIsNotAViolationButIsReportedUnchecked) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  auto r = check(b);
  EXPECT_TRUE(r.valid);
  EXPECT_EQ(r.partition_states, 0u);
  ASSERT_FALSE(r.unchecked.empty());
  EXPECT_NE(r.unchecked[0].find("no partition-state events"), std::string::npos);
  EXPECT_TRUE(check_invariants(History{}).valid);
}

// ---- a. leader_not_in_isr ----

TEST(Invariants, LeaderOutsideItsIsrFires) {
  HistoryBuilder b;
  b.partition_state(0, 1, 3, {1, 2}, {1, 2, 3});
  auto r = check(b);
  ASSERT_EQ(kinds(r), std::vector<K>{K::leader_not_in_isr});
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.violations[0].brokers, HistoryBuilder::brokers({3}));
  EXPECT_EQ(r.violations[0].lines, std::vector<std::size_t>{2});
  EXPECT_NE(r.violations[0].explanation.find("leader 3 is not in its ISR [1,2]"),
            std::string::npos);
}

TEST(Invariants, LeaderInIsrUncleanLeaderOrNoLeaderIsSilent) {
  HistoryBuilder b;
  b.partition_state(0, 1, 1, {1, 2}, {1, 2, 3});
  b.partition_state(1, 4, 3, {1}, {1, 2, 3}, /*unclean=*/true);
  b.partition_state(2, 2, -1, {}, {1, 2, 3});
  auto r = check(b);
  EXPECT_TRUE(r.valid) << r.summary();
}

// ---- b. epoch_regression ----

TEST(Invariants, EpochGoingDownFires) {
  HistoryBuilder b;
  b.partition_state(0, 5, 1, {1, 2}, {1, 2});
  b.partition_state(0, 4, 1, {1, 2}, {1, 2});
  auto r = check(b);
  ASSERT_EQ(kinds(r), std::vector<K>{K::epoch_regression});
  EXPECT_EQ(r.violations[0].lines, (std::vector<std::size_t>{2, 3}));
  EXPECT_NE(r.violations[0].explanation.find("from 5 to 4"), std::string::npos);
}

TEST(Invariants, LeaderChangeWithoutEpochBumpFires) {
  HistoryBuilder b;
  b.partition_state(0, 5, 1, {1, 2}, {1, 2});
  b.partition_state(0, 5, 2, {1, 2}, {1, 2});
  auto r = check(b);
  ASSERT_EQ(kinds(r), std::vector<K>{K::epoch_regression});
  EXPECT_EQ(r.violations[0].brokers, HistoryBuilder::brokers({1, 2}));
}

TEST(Invariants, IsrChangesAtOneEpochAndBumpsThroughNoLeaderAreSilent) {
  HistoryBuilder b;
  b.partition_state(0, 5, 1, {1, 2}, {1, 2});
  b.partition_state(0, 5, 1, {1}, {1, 2});   // ISR shrink: same epoch
  b.partition_state(0, 6, -1, {1}, {1, 2});  // offline
  b.partition_state(0, 7, 1, {1}, {1, 2});   // back
  b.partition_state(1, 1, 2, {2}, {2});      // another partition, its own epochs
  EXPECT_TRUE(check(b).valid) << check(b).summary();
}

// ---- c. split_brain_ack ----

TEST(Invariants, TwoBrokersAckingOneEpochFiresOnce) {
  HistoryBuilder b;
  b.send_acked(1, 0, 100, 0, 3, 1);
  b.send_acked(2, 0, 101, 0, 3, 2);
  b.send_acked(2, 0, 102, 1, 3, 2);  // same pair again: still one split brain
  auto r = check(b);
  ASSERT_EQ(kinds(r), std::vector<K>{K::split_brain_ack});
  EXPECT_EQ(r.count(K::split_brain_ack), 1u);
  EXPECT_EQ(r.violations[0].epoch, LeaderEpoch(3));
  EXPECT_EQ(r.violations[0].brokers, HistoryBuilder::brokers({1, 2}));
  EXPECT_EQ(r.violations[0].lines, (std::vector<std::size_t>{3, 5}));
}

TEST(Invariants, AcksByOneBrokerPerEpochAreSilent) {
  HistoryBuilder b;
  b.send_acked(1, 0, 100, 0, 3, 1);
  b.send_acked(1, 0, 101, 1, 3, 1);
  b.send_acked(1, 0, 102, 2, 4, 2);     // next epoch, next leader
  b.send_acked(1, 1, 103, 0, 3, 2);     // other partition, same epoch number
  b.send(1, 0, 104, EventType::ok, 3);  // no epoch/leader: not judged
  auto r = check(b);
  EXPECT_TRUE(r.valid) << r.summary();
  EXPECT_EQ(r.acks_with_leader, 4u);
}

// ---- d. zombie_ack ----

HistoryBuilder leadership_moved_then_old_leader_acks(Acks acks) {
  HistoryBuilder b;
  b.set_acks(acks);
  b.partition_state(0, 1, 1, {1, 2}, {1, 2});
  b.partition_state(0, 2, 2, {2}, {1, 2});
  b.send_acked(1, 0, 100, 0, 1, 1);  // sent after epoch 2 was published, acked at epoch 1
  return b;
}

TEST(Invariants, AckAtAnEpochEndedBeforeTheSendFiresUnderAcksAll) {
  auto r = check(leadership_moved_then_old_leader_acks(Acks::all));
  ASSERT_EQ(kinds(r), std::vector<K>{K::zombie_ack});
  const auto& v = r.violations[0];
  EXPECT_EQ(v.epoch, LeaderEpoch(1));
  EXPECT_EQ(v.brokers, HistoryBuilder::brokers({1}));
  EXPECT_EQ(v.lines, (std::vector<std::size_t>{3, 4, 5}));  // the state, the invoke, the ack
  EXPECT_NE(v.explanation.find("already at epoch 2 (leader 2)"), std::string::npos);
}

TEST(Invariants, AcksWithoutALeaderEpochLeaveBothAckChecksUncheckedAndSayWhy) {
  // What a client that reports no epoch (librdkafka 2.0) records: the same zombie situation,
  // acknowledged without an epoch, cannot be judged, and the result says so.
  HistoryBuilder b;
  b.set_acks(Acks::all);
  b.partition_state(0, 1, 1, {1, 2}, {1, 2});
  b.partition_state(0, 2, 2, {2}, {1, 2});
  b.send(1, 0, 100, EventType::ok, 0);
  auto r = check(b);
  EXPECT_TRUE(r.valid);
  std::string all;
  for (const auto& u : r.unchecked)
    all += u + "\n";
  EXPECT_NE(all.find("split-brain-ack was not checked"), std::string::npos) << all;
  EXPECT_NE(all.find("no send ack names its leader epoch: zombie-ack was not checked"),
            std::string::npos)
      << all;
  // With an epoch the zombie check runs (and fires), and the note is gone.
  auto judged = check(leadership_moved_then_old_leader_acks(Acks::all));
  for (const auto& u : judged.unchecked)
    EXPECT_EQ(u.find("zombie-ack"), std::string::npos) << u;
}

TEST(Invariants, ZombieAckNeedsAcksAllOrTheOption) {
  auto one = check(leadership_moved_then_old_leader_acks(Acks::one));
  EXPECT_TRUE(one.valid);
  auto unknown = check(leadership_moved_then_old_leader_acks(Acks::unknown));
  EXPECT_TRUE(unknown.valid);
  bool noted = false;
  for (const auto& u : unknown.unchecked)
    noted |= u.find("zombie-ack not checked") != std::string::npos;
  EXPECT_TRUE(noted);
  InvariantOptions o;
  o.assume_acks_all = true;
  EXPECT_EQ(kinds(check(leadership_moved_then_old_leader_acks(Acks::unknown), o)),
            std::vector<K>{K::zombie_ack});
}

TEST(Invariants, AckInFlightAcrossTheElectionIsSilent) {
  HistoryBuilder b;
  b.set_acks(Acks::all);
  b.partition_state(0, 1, 1, {1, 2}, {1, 2});
  auto send = b.invoke(1, Function::send, 0, int64_t{100});  // sent while epoch 1 was current
  b.partition_state(0, 2, 2, {2}, {1, 2});
  auto& ack = b.complete(send, EventType::ok);
  ack.offset = Offset(0);
  ack.epoch = LeaderEpoch(1);
  ack.leader = BrokerId(1);
  EXPECT_TRUE(check(b).valid) << check(b).summary();
}

TEST(Invariants, LateAckOfTheOnlyIsrMemberOfALeaderlessPartitionIsSilent) {
  // Fenced with nobody else in sync, the controller sets leader -1 and keeps broker 1 in the
  // ISR: its late ack at epoch 1 loses nothing, since only it can lead again.
  HistoryBuilder b;
  b.set_acks(Acks::all);
  b.partition_state(0, 1, 1, {1}, {1, 2});
  b.partition_state(0, 2, -1, {1}, {1, 2});
  b.send_acked(1, 0, 100, 0, 1, 1);
  EXPECT_TRUE(check(b).valid) << check(b).summary();
  // ... but when another broker is the one kept, the late ack is a zombie's.
  HistoryBuilder c;
  c.set_acks(Acks::all);
  c.partition_state(0, 1, 1, {1, 2}, {1, 2});
  c.partition_state(0, 2, -1, {2}, {1, 2});
  c.send_acked(1, 0, 100, 0, 1, 1);
  EXPECT_EQ(kinds(check(c)), std::vector<K>{K::zombie_ack});
}

// ---- e. demoted_leader ----

TEST(Invariants, DemotedLeaderKeptPastTheGraceFires) {
  HistoryBuilder b;
  b.cluster_state({1, 2, 3});
  b.partition_state(0, 1, 1, {1, 2}, {1, 2, 3});
  b.cluster_state({1, 2, 3}, {}, {1});  // broker 1 demoted
  b.advance(2s);
  b.partition_state(0, 2, 2, {1, 2}, {1, 2, 3});
  auto r = check(b);
  ASSERT_EQ(kinds(r), std::vector<K>{K::demoted_leader});
  const auto& v = r.violations[0];
  EXPECT_EQ(v.brokers, HistoryBuilder::brokers({1}));
  EXPECT_EQ(v.lines, (std::vector<std::size_t>{3, 4, 5}));  // state, demotion, the fix
  ASSERT_TRUE(v.until.has_value());
  EXPECT_NE(v.explanation.find("ISR member 2"), std::string::npos) << v.explanation;
}

TEST(Invariants, DemotedLeaderMovedWithinTheGraceIsSilent) {
  HistoryBuilder b;
  b.cluster_state({1, 2, 3});
  b.partition_state(0, 1, 1, {1, 2}, {1, 2, 3});
  b.cluster_state({1, 2, 3}, {}, {1});
  b.advance(1s);
  b.partition_state(0, 2, 2, {1, 2}, {1, 2, 3});
  b.advance(10s);
  b.cluster_state({1, 2, 3});
  EXPECT_TRUE(check(b).valid) << check(b).summary();
}

TEST(Invariants, DemotedLeaderWithNoHealthyAlternativeIsSilent) {
  // The controller keeps a demoted leader when every other ISR member is fenced, shutting down,
  // demoted too, or not alive at all: leading demoted beats not leading.
  for (auto make :
       std::vector<std::function<void(HistoryBuilder&)>>{[](HistoryBuilder& b) {
                                                           b.cluster_state({1, 3}, {2}, {1});
                                                         },
                                                         [](HistoryBuilder& b) {
                                                           b.cluster_state({1, 2, 3}, {}, {1}, {2});
                                                         },
                                                         [](HistoryBuilder& b) {
                                                           b.cluster_state({1, 2, 3}, {}, {1, 2});
                                                         },
                                                         [](HistoryBuilder& b) {
                                                           b.cluster_state({1, 3}, {}, {1});
                                                         }}) {
    HistoryBuilder b;
    b.partition_state(0, 1, 1, {1, 2}, {1, 2, 3});
    make(b);
    b.advance(5s);
    b.cluster_state({1, 2, 3}, {}, {});
    EXPECT_TRUE(check(b).valid) << check(b).summary();
  }
}

TEST(Invariants, DemotedLeaderToTheEndOfTheHistoryFires) {
  HistoryBuilder b;
  b.cluster_state({1, 2}, {}, {1});
  b.partition_state(0, 1, 1, {1, 2}, {1, 2});
  b.advance(3s);
  b.send(1, 0, 100, EventType::ok, 0);
  auto r = check(b);
  ASSERT_EQ(kinds(r), std::vector<K>{K::demoted_leader});
  EXPECT_FALSE(r.violations[0].until.has_value());
}

// ---- f. unhanded_shutdown ----

TEST(Invariants, GracefulExitStillLeadingFiresLateAndNever) {
  HistoryBuilder b;
  b.partition_state(0, 1, 1, {1, 2}, {1, 2});
  b.partition_state(1, 1, 1, {1, 2}, {1, 2});
  b.partition_state(2, 1, 2, {1, 2}, {1, 2});  // led by another broker: not concerned
  b.process_exit(1, /*graceful=*/true);
  b.advance(1s);
  b.partition_state(0, 2, 2, {2}, {1, 2});  // moved, but 1 s after the exit
  b.advance(1s);
  b.send(1, 2, 100, EventType::ok, 0);
  auto r = check(b);
  ASSERT_EQ(kinds(r), (std::vector<K>{K::unhanded_shutdown, K::unhanded_shutdown}));
  EXPECT_EQ(r.violations[0].partition, PartitionId(0));
  EXPECT_TRUE(r.violations[0].until.has_value());
  EXPECT_EQ(r.violations[0].lines, (std::vector<std::size_t>{2, 5, 6}));
  EXPECT_EQ(r.violations[1].partition, PartitionId(1));
  EXPECT_FALSE(r.violations[1].until.has_value());
}

TEST(Invariants, HandoverBeforeOrJustAfterTheExitAndCrashesAreSilent) {
  HistoryBuilder b;
  b.partition_state(0, 1, 1, {1, 2}, {1, 2});
  b.partition_state(1, 1, 1, {1, 2}, {1, 2});
  b.partition_state(2, 1, 3, {3, 2}, {3, 2});
  b.partition_state(0, 2, 2, {2}, {1, 2});  // handed over before the exit
  b.process_exit(1, /*graceful=*/true);
  b.advance(200ms);
  b.partition_state(1, 2, -1, {1}, {1, 2});  // no one else in sync: leaderless counts as moved
  b.process_exit(3, /*graceful=*/false);     // a crash is the fencing rule's business
  b.advance(5s);
  b.send(1, 0, 100, EventType::ok, 0);
  EXPECT_TRUE(check(b).valid) << check(b).summary();
}

// ---- g. not_recovered ----

TEST(Invariants, PartitionNotBackToAFullIsrWithinTheBoundFires) {
  HistoryBuilder b;
  b.partition_state(0, 1, -1, {1}, {1, 2, 3});
  b.partition_state(1, 1, 2, {2}, {1, 2, 3});
  b.advance(1s);
  const auto heal = b.now();
  b.advance(1s);
  b.partition_state(0, 2, 1, {3, 1, 2}, {1, 2, 3});  // back, ISR order aside
  b.partition_state(1, 1, 2, {2, 3}, {1, 2, 3});     // still missing broker 1
  b.advance(40s);
  b.send(1, 0, 100, EventType::ok, 0);
  InvariantOptions o;
  o.recovery_from = heal;
  o.recovery_bound = 30s;
  auto r = check(b, o);
  ASSERT_EQ(kinds(r), std::vector<K>{K::not_recovered});
  EXPECT_EQ(r.violations[0].partition, PartitionId(1));
  EXPECT_NE(r.violations[0].explanation.find("leader 2, isr [2,3], replicas [1,2,3]"),
            std::string::npos)
      << r.violations[0].explanation;
}

TEST(Invariants, RecoveryIsCheckedOnlyWithAHealTimeAndEnoughHistory) {
  HistoryBuilder b;
  b.partition_state(0, 1, 1, {1, 2}, {1, 2});  // healthy before the heal: counts
  b.partition_state(1, 1, -1, {}, {1, 2});
  b.advance(1s);
  const auto heal = b.now();
  b.advance(5s);
  b.send(1, 0, 100, EventType::ok, 0);
  EXPECT_TRUE(check(b).valid);  // no recovery_from: not checked
  InvariantOptions o;
  o.recovery_from = heal;
  o.recovery_bound = 30s;
  auto r = check(b, o);
  EXPECT_TRUE(r.valid) << r.summary();  // partition 1: the history ended before the bound
  bool noted = false;
  for (const auto& u : r.unchecked)
    noted |= u.find("partition 1 had not recovered") != std::string::npos;
  EXPECT_TRUE(noted) << r.summary();
}

// ---- h. fenced_leader ----

TEST(Invariants, FencedLeaderPastTheGraceFires) {
  HistoryBuilder b;
  b.partition_state(0, 1, 1, {1, 2}, {1, 2});
  b.cluster_state({2}, {1});  // broker 1 fenced
  b.advance(1500ms);
  b.partition_state(0, 2, 2, {2}, {1, 2});
  auto r = check(b);
  ASSERT_EQ(kinds(r), std::vector<K>{K::fenced_leader});
  EXPECT_EQ(r.violations[0].brokers, HistoryBuilder::brokers({1}));
  EXPECT_EQ(r.violations[0].lines, (std::vector<std::size_t>{2, 3, 4}));
}

TEST(Invariants, FencedLeaderEvenAsTheLastIsrMemberFires) {
  // The controller never keeps a fenced leader: with no one else in sync it sets leader -1.
  HistoryBuilder b;
  b.partition_state(0, 1, 1, {1}, {1, 2});
  b.cluster_state({2}, {1});
  b.advance(3s);
  b.send(1, 0, 100, EventType::ok, 0);
  EXPECT_EQ(kinds(check(b)), std::vector<K>{K::fenced_leader});
}

TEST(Invariants, FencingFollowedByReelectionOrNoLeaderIsSilent) {
  HistoryBuilder b;
  b.partition_state(0, 1, 1, {1, 2}, {1, 2});
  b.partition_state(1, 1, 1, {1}, {1, 2});
  b.cluster_state({2}, {1});
  b.advance(300ms);
  b.partition_state(0, 2, 2, {2}, {1, 2});
  b.partition_state(1, 2, -1, {1}, {1, 2});  // the controller's offline state
  b.advance(10s);
  b.cluster_state({1, 2});
  b.partition_state(1, 3, 1, {1}, {1, 2});
  EXPECT_TRUE(check(b).valid) << check(b).summary();
}

// ---- output ----

TEST(Invariants, JsonAndSummaryCarryTheEvidence) {
  HistoryBuilder b;
  b.partition_state(0, 1, 3, {1, 2}, {1, 2, 3});
  auto r = check(b);
  auto j = r.to_json();
  EXPECT_EQ(j["valid"], false);
  EXPECT_EQ(j["violations"]["leader-not-in-isr"], 1);
  EXPECT_EQ(j["details"][0]["kind"], "leader-not-in-isr");
  EXPECT_EQ(j["details"][0]["partition"], 0);
  EXPECT_EQ(j["details"][0]["epoch"], 1);
  EXPECT_EQ(j["details"][0]["lines"], nlohmann::json::array({2}));
  EXPECT_TRUE(j["details"][0]["until_ns"].is_null());
  EXPECT_NE(r.summary().find("leader-not-in-isr (lines 2)"), std::string::npos) << r.summary();
}

TEST(Invariants, EvidenceIsCappedButCountsAreExact) {
  HistoryBuilder b;
  for (int p = 0; p < 5; ++p)
    b.partition_state(p, 1, 9, {1}, {1});
  InvariantOptions o;
  o.max_violations_per_kind = 2;
  auto r = check(b, o);
  EXPECT_EQ(r.count(K::leader_not_in_isr), 5u);
  EXPECT_EQ(r.violations.size(), 2u);
}

}  // namespace
}  // namespace faultline::checker
