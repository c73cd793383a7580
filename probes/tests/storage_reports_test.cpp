// StorageReportReader: successive BrokerHealth answers -> storage observations for the policy.
#include "faultline/probes/storage_reports.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace faultline::probes {
namespace {

using namespace std::chrono_literals;
using cluster::BrokerHealthResponse;
using cluster::StorageSample;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr TimePoint kT0 = TimePoint{} + 1h;
const BrokerId kBroker{2};

BrokerHealthResponse answer(std::vector<StorageSample> samples, int64_t pending_seq = 0,
                            int64_t pending_us = 0, uint64_t run = 7) {
  BrokerHealthResponse r;
  r.broker_id = kBroker;
  r.canary_run = run;
  r.canary_interval_ms = 200;
  r.samples = std::move(samples);
  r.pending_seq = pending_seq;
  r.pending_us = pending_us;
  return r;
}

std::vector<int64_t> latencies_ms(const StorageReportReader::Result& r) {
  std::vector<int64_t> out;
  for (const auto& o : r.observations)
    out.push_back(o.append_fsync_latency.count() / 1000);
  return out;
}

bool in_time_order(const std::vector<StorageObservation>& obs) {
  for (size_t i = 1; i < obs.size(); ++i)
    if (obs[i].at < obs[i - 1].at)
      return false;
  return true;
}

TEST(StorageReports, EachSampleIsPassedOnOnceAtTheTimeItCompleted) {
  StorageReportReader reader;
  auto first = reader.read(kBroker, answer({{1, 1'000, 400'000}, {2, 2'000, 200'000}}), kT0);
  ASSERT_EQ(first.observations.size(), 2u);
  EXPECT_TRUE(first.problem.empty());
  EXPECT_EQ(first.observations[0].broker, kBroker);
  EXPECT_EQ(first.observations[0].append_fsync_latency, 1ms);
  EXPECT_EQ(first.observations[0].at, kT0 - 400ms);
  EXPECT_EQ(first.observations[1].at, kT0 - 200ms);
  // The next answer repeats samples 1-2 (the broker keeps its last few) and adds 3.
  auto second =
      reader.read(kBroker, answer({{1, 1'000, 500'000}, {2, 2'000, 300'000}, {3, 3'000, 100'000}}),
                  kT0 + 100ms);
  ASSERT_EQ(second.observations.size(), 1u);
  EXPECT_EQ(second.observations[0].append_fsync_latency, 3ms);
  EXPECT_THAT(reader.read(kBroker, answer({{3, 3'000, 150'000}}), kT0 + 150ms).observations,
              IsEmpty());
}

TEST(StorageReports, AStuckFsyncYieldsOneSlowSamplePerSlotItOverran) {
  StorageReportReader reader;
  reader.read(kBroker, answer({{1, 1'000, 1'050'000}}), kT0);
  // Sample 2 has been pending 1.1 s at a 200 ms interval: 5 slots came due meanwhile.
  auto r1 = reader.read(kBroker, answer({{1, 1'000, 1'150'000}}, 2, 1'100'000), kT0 + 100ms);
  EXPECT_THAT(latencies_ms(r1), ElementsAre(200, 400, 600, 800, 1000));
  EXPECT_EQ(r1.observations[0].at, kT0 + 100ms - 1100ms + 200ms);
  // Still pending 0.4 s later: two more slots, the first five are not repeated.
  auto r2 = reader.read(kBroker, answer({{1, 1'000, 1'550'000}}, 2, 1'500'000), kT0 + 500ms);
  EXPECT_THAT(latencies_ms(r2), ElementsAre(1200, 1400));
  // It completes after 1.65 s: the slot at 1.6 s, then the sample itself.
  auto r3 = reader.read(
      kBroker, answer({{1, 1'000, 1'800'000}, {2, 1'650'000, 100'000}}, 3, 50'000), kT0 + 750ms);
  EXPECT_THAT(latencies_ms(r3), ElementsAre(1600, 1650));
  EXPECT_TRUE(in_time_order(r1.observations));
  EXPECT_LE(r2.observations.back().at, r3.observations.front().at);
}

TEST(StorageReports, ALateSampleNeverSeenPendingCountsItsSlotsToo) {
  // The same samples whatever the prober's timing: a 650 ms fsync at 200 ms is slots 200, 400,
  // 600 and the sample.
  StorageReportReader reader;
  auto r = reader.read(kBroker, answer({{1, 650'000, 10'000}}), kT0);
  EXPECT_THAT(latencies_ms(r), ElementsAre(200, 400, 600, 650));
  EXPECT_TRUE(in_time_order(r.observations));
  EXPECT_EQ(r.observations.back().at, kT0 - 10ms);
}

TEST(StorageReports, FastSamplesAndShortPendingAddNothingExtra) {
  StorageReportReader reader;
  auto r = reader.read(kBroker, answer({{1, 199'000, 300'000}}, 2, 150'000), kT0);
  EXPECT_THAT(latencies_ms(r), ElementsAre(199));
}

TEST(StorageReports, ARestartedBrokerStartsItsSequenceOver) {
  StorageReportReader reader;
  reader.read(kBroker, answer({{40, 1'000, 10'000}, {41, 1'000, 5'000}}, 0, 0, 7), kT0);
  auto again = reader.read(kBroker, answer({{1, 2'000, 10'000}}, 0, 0, 8), kT0 + 1s);
  EXPECT_THAT(latencies_ms(again), ElementsAre(2));
}

TEST(StorageReports, BrokersAreTrackedApart) {
  StorageReportReader reader;
  reader.read(BrokerId{1}, answer({{1, 1'000, 10'000}}), kT0);
  auto other = reader.read(BrokerId{3}, answer({{1, 5'000, 10'000}}), kT0);
  ASSERT_EQ(other.observations.size(), 1u);
  EXPECT_EQ(other.observations[0].broker, BrokerId{3});
}

TEST(StorageReports, NumbersThatCannotBeTrueAreNotJudged) {
  StorageReportReader reader;
  auto backwards = reader.read(kBroker, answer({{5, 1'000, 0}, {4, 1'000, 0}}), kT0);
  EXPECT_THAT(backwards.observations, IsEmpty());
  EXPECT_THAT(backwards.problem, ::testing::HasSubstr("seq=4"));
  EXPECT_FALSE(reader.read(kBroker, answer({{1, -5, 0}}), kT0).problem.empty());
  EXPECT_FALSE(reader.read(kBroker, answer({{1, 5, -1}}), kT0).problem.empty());
  EXPECT_FALSE(reader.read(kBroker, answer({{3, 5, 0}}, 2, 100), kT0).problem.empty());
  // Nothing was remembered from the bad answers: a good one is read in full.
  EXPECT_THAT(latencies_ms(reader.read(kBroker, answer({{1, 3'000, 0}}), kT0)), ElementsAre(3));
}

TEST(StorageReports, AFailingCanaryIsOneFailedObservationPerAnswer) {
  StorageReportReader reader;
  (void)reader.read(kBroker, answer({{1, 1'000, 0}}), kT0);
  // Sample 1 is all the broker has; its writes fail since.
  auto failing = answer({{1, 1'000, 400'000}});
  failing.canary_error = "write: Input/output error";
  for (int i = 1; i <= 3; ++i) {
    auto r = reader.read(kBroker, failing, kT0 + i * 200ms);
    ASSERT_EQ(r.observations.size(), 1u);
    EXPECT_EQ(r.observations[0].error, "write: Input/output error");
    EXPECT_EQ(r.observations[0].at, kT0 + i * 200ms);
  }
  // It recovers: a new sample, no error.
  auto r = reader.read(kBroker, answer({{1, 1'000, 1'000'000}, {5, 2'000, 0}}), kT0 + 1s);
  ASSERT_EQ(r.observations.size(), 1u);
  EXPECT_EQ(r.observations[0].error, "");
  EXPECT_EQ(r.observations[0].append_fsync_latency, 2ms);
}

TEST(StorageReports, AnOfflineLogDirectoryIsAStorageFailureWithOrWithoutACanary) {
  StorageReportReader reader;
  auto no_canary = answer({});
  no_canary.canary_interval_ms = 0;
  no_canary.canary_error = "log directory offline";
  for (int i = 1; i <= 2; ++i) {
    auto r = reader.read(kBroker, no_canary, kT0 + i * 200ms);
    ASSERT_EQ(r.observations.size(), 1u);
    EXPECT_EQ(r.observations[0].error, "log directory offline");
  }
  auto with_canary = answer({{1, 1'000, 0}});
  with_canary.canary_error = "log directory offline";
  auto r = reader.read(BrokerId{3}, with_canary, kT0);
  ASSERT_EQ(r.observations.size(), 2u);
  EXPECT_EQ(r.observations[1].error, "log directory offline");
}

TEST(StorageReports, ABrokerWithoutCanaryReportsNothing) {
  StorageReportReader reader;
  auto a = answer({});
  a.canary_interval_ms = 0;
  auto r = reader.read(kBroker, a, kT0);
  EXPECT_THAT(r.observations, IsEmpty());
  EXPECT_TRUE(r.problem.empty());
}

}  // namespace
}  // namespace faultline::probes
