// The Kafka-log checker: one small history per anomaly, valid histories that must stay valid, and
// property tests over a simulated correct log with and without injected bugs.
#include <faultline/checker/kafka.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "history_builder.h"
#include "simulated_log.h"

namespace faultline::checker {
namespace {

using testing::HistoryBuilder;
using K = KafkaAnomalyKind;

// The kinds found, one entry per anomaly, sorted: what a user reads in the report.
std::vector<K> kinds(const KafkaResult& r) {
  std::vector<K> out;
  for (const auto& a : r.anomalies)
    out.push_back(a.kind);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(KafkaChecker, LostWriteBelowTheHighestReadOffset) {
  HistoryBuilder b;
  b.nemesis(NemesisKind::leader_change, 0, 1, 1);
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::ok, 1);
  b.nemesis(NemesisKind::leader_change, 0, 2, 2);
  b.send(1, 0, 102, EventType::ok, 2);
  b.poll(2, 0, {{0, 100}});
  b.seek(3, 0, 2);
  b.poll(3, 0, {{2, 102}});
  auto r = check_kafka(b.history());
  EXPECT_FALSE(r.valid);
  ASSERT_EQ(kinds(r), std::vector<K>{K::lost_write});
  const auto& a = r.anomalies[0];
  EXPECT_EQ(a.values, std::vector<int64_t>{101});
  EXPECT_EQ(a.offsets, std::vector<Offset>{Offset(1)});
  ASSERT_EQ(a.ops.size(), 1u);
  EXPECT_EQ(a.ops[0].process, ProcessId(1));
  // The election before the ack (epoch 1) and the one after it (epoch 2) are the evidence.
  ASSERT_EQ(a.elections.size(), 2u);
  EXPECT_EQ(a.elections[0].epoch, LeaderEpoch(1));
  EXPECT_EQ(a.elections[1].epoch, LeaderEpoch(2));
  EXPECT_EQ(r.to_json()["lost"], 1);
}

TEST(KafkaChecker, UnseenAfterTheFinalReadAll) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::ok, 1);
  b.poll(2, 0, {{0, 100}}, /*final_read=*/true);
  auto r = check_kafka(b.history());
  ASSERT_EQ(kinds(r), std::vector<K>{K::unseen});
  EXPECT_EQ(r.anomalies[0].values, std::vector<int64_t>{101});
  // When the final read must show the end of the log, an empty last poll does.
  b.poll(2, 0, {}, /*final_read=*/true);
  KafkaOptions o;
  o.unseen_needs_end_of_log = true;
  ASSERT_EQ(kinds(check_kafka(b.history(), o)), std::vector<K>{K::unseen});
}

// A final read that stopped with records still coming (a deadline, a 1 MiB poll) did not show
// the log ends there: the tail is unproven (verdict unknown, verdict.h), not unseen.
TEST(KafkaChecker, FinalReadThatDidNotReachTheEndLeavesTheTailUnjudged) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::ok, 1);
  b.poll(2, 0, {{0, 100}}, /*final_read=*/true);
  KafkaOptions o;
  o.unseen_needs_end_of_log = true;
  auto r = check_kafka(b.history(), o);
  EXPECT_TRUE(r.valid);
  EXPECT_TRUE(kinds(r).empty());
}

// The runner may record the controller's partition-state instead of leader-change events: an
// unclean one marks the partition, and new epochs are the elections around a lost write.
TEST(KafkaChecker, PartitionStateEventsCountAsElections) {
  HistoryBuilder b;
  b.partition_state(0, 1, 1, {1, 2}, {1, 2});
  b.send(1, 0, 100, EventType::ok, 0);
  b.partition_state(0, 1, 1, {1}, {1, 2});  // ISR change: not an election
  b.partition_state(0, 2, 2, {2}, {1, 2}, /*unclean=*/true);
  b.send(1, 0, 101, EventType::ok, 1);
  b.poll(2, 0, {{1, 101}}, /*final_read=*/true);
  auto r = check_kafka(b.history());
  ASSERT_EQ(kinds(r), std::vector<K>{K::lost_write});
  EXPECT_EQ(r.unclean_partitions, std::vector<PartitionId>{PartitionId(0)});
  ASSERT_EQ(r.anomalies[0].elections.size(), 2u);
  EXPECT_EQ(r.anomalies[0].elections[0].epoch, LeaderEpoch(1));
  EXPECT_EQ(r.anomalies[0].elections[1].epoch, LeaderEpoch(2));
  EXPECT_TRUE(r.anomalies[0].elections[1].unclean);
}

TEST(KafkaChecker, UnreadTailWithoutFinalReadIsNotAnAnomaly) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::ok, 1);
  b.poll(2, 0, {{0, 100}});
  EXPECT_TRUE(check_kafka(b.history()).valid);
}

TEST(KafkaChecker, Duplicate) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.poll(2, 0, {{0, 100}, {1, 100}});
  auto r = check_kafka(b.history());
  ASSERT_EQ(kinds(r), std::vector<K>{K::duplicate});
  EXPECT_EQ(r.anomalies[0].offsets, (std::vector<Offset>{Offset(0), Offset(1)}));
}

TEST(KafkaChecker, InconsistentOffsetsBetweenConcurrentReads) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::ok, 1);
  // Two concurrent polls disagree about offset 1 (so neither read happened strictly after the
  // other: no uncommitted read can be inferred).
  auto p2 = b.invoke(2, Function::poll, 0);
  auto p3 = b.invoke(3, Function::poll, 0);
  b.complete_poll(p2, {{0, 100}, {1, 101}});
  b.complete_poll(p3, {{0, 100}, {1, 999}});
  auto r = check_kafka(b.history());
  ASSERT_EQ(kinds(r), std::vector<K>{K::inconsistent_offsets});
  EXPECT_EQ(r.anomalies[0].offsets, std::vector<Offset>{Offset(1)});
  EXPECT_EQ(r.anomalies[0].values, (std::vector<int64_t>{101, 999}));
}

TEST(KafkaChecker, UncommittedReadAlsoShowsAsInconsistentOffset) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.poll(2, 0, {{0, 100}, {1, 555}});  // 555 was never acknowledged...
  b.poll(3, 0, {{0, 100}, {1, 101}});  // ... and later offset 1 holds something else.
  b.send(1, 0, 101, EventType::ok, 1);
  auto r = check_kafka(b.history());
  // A value that vanished from its offset is by nature also a disagreement about that offset.
  ASSERT_EQ(kinds(r), (std::vector<K>{K::inconsistent_offsets, K::uncommitted_read}));
  const auto& u = r.anomalies[1];
  EXPECT_EQ(u.kind, K::uncommitted_read);
  EXPECT_EQ(u.values, (std::vector<int64_t>{555, 101}));
}

TEST(KafkaChecker, NonmonotonicPoll) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::ok, 1);
  b.poll(2, 0, {{0, 100}, {1, 101}});
  b.poll(2, 0, {{0, 100}});
  auto r = check_kafka(b.history());
  ASSERT_EQ(kinds(r), std::vector<K>{K::nonmonotonic_poll});
  EXPECT_EQ(r.anomalies[0].offsets, (std::vector<Offset>{Offset(1), Offset(0)}));
}

TEST(KafkaChecker, PollSkip) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::ok, 1);
  b.send(1, 0, 102, EventType::ok, 2);
  b.poll(2, 0, {{0, 100}, {1, 101}, {2, 102}});
  b.poll(3, 0, {{0, 100}});
  b.poll(3, 0, {{2, 102}});
  auto r = check_kafka(b.history());
  ASSERT_EQ(kinds(r), std::vector<K>{K::poll_skip});
  EXPECT_EQ(r.anomalies[0].ops[0].process, ProcessId(3));
}

TEST(KafkaChecker, NonmonotonicSend) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 1);
  b.send(1, 0, 101, EventType::ok, 0);
  b.poll(2, 0, {{0, 101}, {1, 100}});
  auto r = check_kafka(b.history());
  ASSERT_EQ(kinds(r), std::vector<K>{K::nonmonotonic_send});
  EXPECT_EQ(r.anomalies[0].values, (std::vector<int64_t>{100, 101}));
}

TEST(KafkaChecker, AbortedRead) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::fail);
  b.poll(2, 0, {{0, 100}});
  auto r = check_kafka(b.history());
  ASSERT_EQ(kinds(r), std::vector<K>{K::aborted_read});
}

TEST(KafkaChecker, UnknownSendsAreNeitherLostNorRequired) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::info);  // timed out, never read: fine
  b.send(1, 0, 101, EventType::ok, 0);
  b.invoke(4, Function::send, 0, int64_t{102});  // crashed client: still open at the end
  b.send(5, 0, 103, EventType::info);            // timed out but did land: fine too
  b.poll(2, 0, {{0, 101}, {1, 103}}, true);
  auto r = check_kafka(b.history());
  EXPECT_TRUE(r.valid) << r.summary();
  EXPECT_EQ(r.sends_unknown, 3u);
}

TEST(KafkaChecker, ValidWithLeaderChangesRetriesAndSeeks) {
  HistoryBuilder b;
  b.nemesis(NemesisKind::fault_start);
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::fail);  // NOT_LEADER: retried as a new value
  b.nemesis(NemesisKind::leader_change, 0, 2, 3);
  b.send(1, 0, 102, EventType::ok, 1);
  b.send(2, 1, 200, EventType::ok, 0);
  b.poll(3, 0, {{0, 100}});
  b.nemesis(NemesisKind::fault_stop);
  b.poll(3, 0, {{1, 102}});
  b.seek(3, 0, 0);
  b.poll(3, 0, {{0, 100}, {1, 102}});
  b.poll(4, 1, {{0, 200}}, true);
  b.poll(5, 0, {{0, 100}, {1, 102}}, true);
  auto r = check_kafka(b.history());
  EXPECT_TRUE(r.valid) << r.summary();
  EXPECT_EQ(r.sends_acked, 3u);
}

TEST(KafkaChecker, UncleanElectionLossIsStillALostWrite) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::ok, 1);
  b.nemesis(NemesisKind::unclean_election, 0, 5, 2);
  b.send(1, 0, 102, EventType::ok, 1);  // offset 1 reused after truncation
  b.poll(2, 0, {{0, 100}, {1, 102}}, true);
  auto r = check_kafka(b.history());
  EXPECT_FALSE(r.valid) << r.summary();
  EXPECT_EQ(r.counts[static_cast<std::size_t>(K::lost_write)], 1u);
  EXPECT_EQ(r.unclean_partitions, std::vector<PartitionId>{PartitionId(0)});
  EXPECT_TRUE(r.expected_loss.empty());
  EXPECT_NE(r.summary().find("unclean election on partition(s) 0"), std::string::npos);
}

TEST(KafkaChecker, UncleanElectionLossCanBeDeclaredExpected) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::ok, 1);
  b.nemesis(NemesisKind::unclean_election, 0, 5, 2);
  b.send(1, 0, 102, EventType::ok, 1);  // offset 1 reused after truncation
  b.poll(2, 0, {{0, 100}, {1, 102}}, true);
  KafkaOptions options;
  options.unclean_loss_is_expected = true;
  auto r = check_kafka(b.history(), options);
  EXPECT_TRUE(r.valid) << r.summary();
  EXPECT_TRUE(r.anomalies.empty());
  EXPECT_EQ(r.unclean_partitions, std::vector<PartitionId>{PartitionId(0)});
  ASSERT_FALSE(r.expected_loss.empty());
  EXPECT_EQ(r.expected_counts[static_cast<std::size_t>(K::lost_write)], 1u);
  EXPECT_NE(r.summary().find("unclean election"), std::string::npos);
}

TEST(KafkaChecker, EvidenceIsBoundedButCountsAreExact) {
  HistoryBuilder b;
  for (int64_t v = 0; v < 50; ++v)
    b.send(1, 0, v, EventType::ok, v);
  b.poll(2, 0, {{49, 49}}, true);
  KafkaOptions options;
  options.max_anomalies_per_kind = 5;
  auto r = check_kafka(b.history(), options);
  EXPECT_EQ(r.count(K::lost_write), 49u);
  EXPECT_EQ(r.anomalies.size(), 5u);
}

// --- properties over a simulated correct log ---

History simulated(uint64_t seed, const testing::SimulationOptions& o = {}) {
  auto h = build_history(testing::simulate_kafka(seed, o));
  EXPECT_TRUE(h.has_value());
  return std::move(h).value();
}

TEST(KafkaProperty, SimulatedCorrectLogsAreValid) {
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    auto r = check_kafka(simulated(seed));
    ASSERT_TRUE(r.valid) << "seed " << seed << "\n" << r.summary();
  }
}

TEST(KafkaProperty, RemovingOneAcknowledgedWriteIsCaught) {
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    auto h = simulated(seed);
    std::mt19937_64 rng(seed);
    std::vector<int64_t> acked;
    for (const auto& op : h.ops) {
      if (op.f == Function::send && op.outcome == Outcome::ok)
        acked.push_back(std::get<int64_t>(op.value));
    }
    if (acked.empty())
      continue;
    const int64_t lost = acked[rng() % acked.size()];
    for (auto& op : h.ops) {
      std::erase_if(op.records, [&](const Record& r) { return r.value == lost; });
    }
    auto r = check_kafka(h);
    ASSERT_FALSE(r.valid) << "seed " << seed << " lost value " << lost;
  }
}

TEST(KafkaProperty, DuplicatedValueIsCaught) {
  testing::SimulationOptions o;
  o.duplicate_one_value = true;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    auto r = check_kafka(simulated(seed, o));
    ASSERT_GT(r.count(K::duplicate), 0u) << "seed " << seed;
  }
}

TEST(KafkaProperty, TwoReorderedReadsAreCaught) {
  int mutated = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    auto h = simulated(seed);
    std::mt19937_64 rng(seed);
    std::vector<std::size_t> candidates;
    for (const auto& op : h.ops) {
      if (op.f == Function::poll && op.records.size() >= 2)
        candidates.push_back(op.index);
    }
    if (candidates.empty())
      continue;
    auto& records = h.ops[candidates[rng() % candidates.size()]].records;
    const std::size_t i = rng() % (records.size() - 1);
    std::swap(records[i], records[i + 1]);
    ++mutated;
    auto r = check_kafka(h);
    ASSERT_FALSE(r.valid) << "seed " << seed;
    ASSERT_GT(r.count(K::nonmonotonic_poll), 0u) << "seed " << seed;
  }
  EXPECT_GT(mutated, 250);
}

}  // namespace
}  // namespace faultline::checker
