// The metadata-log workload against three real faultline-controller processes on loopback: the
// active controller is killed with SIGKILL mid-run and restarted, and still every acknowledged
// marker write is read back, in one order, from every controller.
#include <gtest/gtest.h>

#include <iostream>

#include "child_process.h"
#include "controller_quorum.h"
#include "runner/metadata_workload.h"

namespace faultline::chaos {
namespace {

using namespace std::chrono_literals;

class MetadataWorkloadIntegration : public ::testing::Test {
 protected:
  // Every voter's log when a test fails.
  void TearDown() override {
    if (!HasFailure())
      return;
    for (int i = 0; i < quorum_.size(); ++i)
      std::cerr << "---- controller " << i << "\n" << quorum_.process(i).log();
  }

  testing::TempDir dir_{"faultline-metadata-workload"};
  testing::ControllerQuorum quorum_{dir_.path(), {}};
};

TEST_F(MetadataWorkloadIntegration, ReadsEveryAcknowledgedWriteBackAfterTheActiveControllerDies) {
  auto first = quorum_.wait_for_leader(10s);
  ASSERT_TRUE(first);
  MetadataWorkload workload;
  ASSERT_FALSE(workload.start(quorum_.endpoint_list(), dir_.path() / "metadata-history.jsonl"));
  std::this_thread::sleep_for(1200ms);

  quorum_.process(*first).kill_and_reap();
  auto second = quorum_.wait_for_leader(10s, {*first});
  ASSERT_TRUE(second);
  std::this_thread::sleep_for(800ms);  // writes the dead voter will have to catch up on
  quorum_.start(*first);
  std::this_thread::sleep_for(1500ms);
  workload.stop();

  const MetadataLogResult r = workload.check();
  std::cout << r.summary << "\n";
  EXPECT_EQ(r.verdict, checker::Verdict::valid) << r.summary << "\n" << r.checker.dump(2);
  EXPECT_TRUE(r.valid()) << r.summary;
  // Two writers at 10 writes/s each for ~3.5 s, less the election.
  EXPECT_GE(r.writes_acknowledged, 30) << r.summary;
  EXPECT_GE(r.reads, 4) << r.summary;
  EXPECT_EQ(r.final_voters_read, (std::vector<int>{1, 2, 3})) << r.summary;
  EXPECT_TRUE(r.non_converged_voters.empty()) << r.summary;
  EXPECT_TRUE(workload.final_read().converged) << workload.final_read().why_not_converged;

  // The three committed logs are the same records at the same offsets, from the same terms, and
  // hold at least every acknowledged write.
  const auto& logs = workload.final_logs();
  ASSERT_EQ(logs.size(), 3u);
  for (size_t i = 1; i < logs.size(); ++i)
    EXPECT_EQ(logs[i].second.entries, logs[0].second.entries)
        << "c" << logs[i].first << " vs c" << logs[0].first;
  const auto markers = logs[0].second.markers();
  EXPECT_GE(static_cast<int64_t>(markers.size()), r.writes_acknowledged);
  // Both writers got through, before and after the failover.
  bool w0 = false, w1 = false;
  for (const auto& m : markers) {
    w0 = w0 || m.rfind("w0-", 0) == 0;
    w1 = w1 || m.rfind("w1-", 0) == 0;
  }
  EXPECT_TRUE(w0 && w1);
}

}  // namespace
}  // namespace faultline::chaos
