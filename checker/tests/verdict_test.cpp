// The verdict of a Kafka history: why a history proves nothing (vacuity_reasons), and how the data
// check, the invariant pass and vacuity combine (invalid wins over unknown).
#include <faultline/checker/verdict.h>
#include <gtest/gtest.h>

#include "history_builder.h"
#include "simulated_log.h"

namespace faultline::checker {
namespace {

using testing::HistoryBuilder;
using Reasons = std::vector<std::string>;

TEST(Vacuity, EmptyHistoryProvesNothing) {
  EXPECT_EQ(vacuity_reasons(History{}), Reasons{"empty history: no operations"});
  EXPECT_EQ(judge_kafka(History{}).verdict, Verdict::unknown);
}

TEST(Vacuity, NoAcknowledgedSendAtAll) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::fail);
  b.send(2, 3, 101, EventType::info);
  b.poll(3, 0, {}, /*final_read=*/true);
  EXPECT_EQ(vacuity_reasons(b.history()),
            (Reasons{"no acknowledged send", "partition 0: nothing acknowledged",
                     "partition 3: nothing acknowledged"}));
}

TEST(Vacuity, PartitionWrittenButNothingAcknowledged) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 2, 101, EventType::fail);
  b.poll(2, 0, {{0, 100}}, /*final_read=*/true);
  b.poll(2, 1, {}, /*final_read=*/true);  // read but never written: nothing to prove there
  EXPECT_EQ(vacuity_reasons(b.history()), Reasons{"partition 2: nothing acknowledged"});
  EXPECT_EQ(judge_kafka(b.history()).verdict, Verdict::unknown);
}

TEST(Vacuity, AcknowledgedButNoFinalRead) {
  HistoryBuilder b;
  b.send(1, 1, 100, EventType::ok, 0);
  b.poll(2, 1, {{0, 100}});  // a read, but not the final read-all
  EXPECT_EQ(vacuity_reasons(b.history()), Reasons{"partition 1: no final read"});
}

TEST(Vacuity, FinalReadThatStoppedShortOfTheAcknowledgedOffsets) {
  HistoryBuilder b;
  for (int64_t o = 0; o <= 52; ++o)
    b.send(1, 1, 1000 + o, EventType::ok, o);
  std::vector<std::pair<int64_t, int64_t>> records;
  for (int64_t o = 0; o <= 40; ++o)
    records.emplace_back(o, 1000 + o);
  b.poll(2, 1, records, /*final_read=*/true);
  EXPECT_EQ(vacuity_reasons(b.history()),
            Reasons{"partition 1: the final read stopped at offset 40, acknowledged up to 52"});
  auto v = judge_kafka(b.history());
  EXPECT_EQ(v.verdict, Verdict::unknown);
  EXPECT_TRUE(v.kafka.valid);  // not read is not lost
  EXPECT_EQ(v.to_json()["verdict"], "unknown");
}

TEST(Vacuity, FinalReadThatReturnedNothing) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.poll(2, 0, {}, /*final_read=*/true);
  EXPECT_EQ(vacuity_reasons(b.history()),
            Reasons{"partition 0: the final read returned nothing, acknowledged up to 0"});
  // The empty final poll says the log ends before offset 0: the acknowledged value is gone.
  EXPECT_EQ(judge_kafka(b.history()).verdict, Verdict::invalid);
}

TEST(Vacuity, LossBelowTheReadIsInvalidNotUnknown) {
  HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::ok, 1);
  b.send(1, 0, 102, EventType::ok, 2);
  b.poll(2, 0, {{0, 100}, {2, 102}}, /*final_read=*/true);
  EXPECT_TRUE(vacuity_reasons(b.history()).empty());
  auto v = judge_kafka(b.history());
  EXPECT_EQ(v.verdict, Verdict::invalid);
  EXPECT_EQ(v.kafka.count(KafkaAnomalyKind::lost_write), 1u);
}

TEST(Vacuity, InvariantViolationWinsOverVacuity) {
  HistoryBuilder b;
  b.partition_state(0, 1, 3, {1}, {1, 2, 3});  // leader outside its ISR
  b.send(1, 0, 100, EventType::info);
  auto v = judge_kafka(b.history());
  EXPECT_EQ(v.verdict, Verdict::invalid);
  EXPECT_FALSE(v.vacuity.empty());
}

TEST(Vacuity, CompleteSimulatedRunsAreValid) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    testing::SimulationOptions o;
    o.steps = 2000;
    auto h = build_history(testing::simulate_kafka(seed, o));
    ASSERT_TRUE(h);
    auto v = judge_kafka(*h);
    // A partition the simulation never acknowledged anything on is honestly unknown.
    if (v.verdict == Verdict::unknown) {
      for (const auto& why : v.vacuity)
        EXPECT_NE(why.find("nothing acknowledged"), std::string::npos) << why;
    } else {
      EXPECT_EQ(v.verdict, Verdict::valid) << v.summary();
    }
  }
}

}  // namespace
}  // namespace faultline::checker
