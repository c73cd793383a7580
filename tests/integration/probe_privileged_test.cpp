// faultline-probe end to end (ARCHITECTURE.md §4): a real cluster in namespaces, the probe in the
// `probe` namespace, faults from the injector. What a user would notice:
//   - a leader that clients cannot reach (its client link cut, the cluster link fine) loses every
//     partition it leads within a bound set by the probe's settings, no acknowledged write is lost,
//     and once healed it is promoted and leads its preferred partitions again;
//   - cutting the probe itself off demotes nobody (the vantage-point guard);
//   - a probe or two lost to a blip demotes nobody (hysteresis);
//   - a broker with a throttled disk is demoted, and promoted once the disk is healed;
//   - without the probe the same gray failure keeps those partitions unwritable for the whole
//     fault (the reason the probe exists), measured and printed.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "child_process.h"
#include "faultline_test_support.h"
#include "probe_rig.h"

namespace faultline::testing {
namespace {

using namespace std::chrono_literals;
using chaos::ClusterShape;
using cluster::BrokerId;

constexpr int kPartitions = 6;
constexpr auto kInterval = 100ms;
constexpr int kFailuresToDemote = 3;  // K
constexpr auto kRecoveryHold = 2000ms;

ClusterShape probed_shape() {
  ClusterShape s;
  s.brokers = 3;
  s.binaries_dir = binary_dir();
  s.probe = true;
  s.probe_interval = std::chrono::duration_cast<std::chrono::milliseconds>(kInterval);
  s.probe_args = {"--failures-to-demote",   std::to_string(kFailuresToDemote),
                  "--successes-to-promote", "5",
                  "--recovery-hold-ms",     std::to_string(kRecoveryHold.count())};
  return s;
}

std::string run_id(const std::string& what) {
  static int n = 0;
  return fmt::format("probe-{}-{}-{}", what, ::getpid(), n++);
}

// K failed probes (the first may start up to one interval after the cut, each gives up after the
// probe timeout, 3/4 interval), the controller's demotion, and slack for a shared 2-core machine.
constexpr auto kDemotionBound = kInterval * (kFailuresToDemote + 1) + kInterval * 3 / 4 + 2500ms;

class ProbePrivileged : public ::testing::Test {
 protected:
  void TearDown() override {
    // FAULTLINE_KEEP_LOGS=DIR keeps every process's log and the probe's decisions for a look.
    if (const char* keep = std::getenv("FAULTLINE_KEEP_LOGS"); keep != nullptr && rig_) {
      std::error_code ec;
      auto to = std::filesystem::path(keep) /
                ::testing::UnitTest::GetInstance()->current_test_info()->name();
      std::filesystem::create_directories(to, ec);
      std::filesystem::copy(logs_.path(), to,
                            std::filesystem::copy_options::recursive |
                                std::filesystem::copy_options::overwrite_existing,
                            ec);
    }
    if (HasFailure() && rig_) {
      std::string log = rig_->probe_log();
      if (log.size() > 6000)
        log = "...\n" + log.substr(log.size() - 6000);
      std::printf("--- probe log (tail)\n%s\n", log.c_str());
    }
    rig_.reset();
  }
  ProbeRig& up(const ClusterShape& shape, const std::string& what) {
    rig_ = std::make_unique<ProbeRig>(shape, run_id(what), logs_.path(), kPartitions);
    return *rig_;
  }
  TempDir logs_{"faultline-probe-test"};
  std::unique_ptr<ProbeRig> rig_;
};

TEST_F(ProbePrivileged, UnreachableLeaderIsDemotedInTimeLosesNothingAndComesBack) {
  FAULTLINE_REQUIRE_ROOT();
  ProbeRig& rig = up(probed_shape(), "gray");
  const BrokerId gray = rig.leader_of(0);
  ASSERT_NE(gray, cluster::kNoBroker);
  const std::vector<int> led = rig.led_by(gray);
  const std::vector<int> preferred = rig.preferred_by(gray);
  ASSERT_FALSE(led.empty());
  Producers producers(rig.harness().client_config(), kPartitions);
  std::this_thread::sleep_for(500ms);

  const auto cut_at = Clock::now();
  auto cut = rig.cut_link(chaos::ClusterHarness::broker_node(gray.value()), "ext");
  ASSERT_FALSE(cut.error) << cut.error.message();
  auto writable = rig.wait_writable_elsewhere(led, gray, 20s);
  ASSERT_EQ(writable.size(), led.size())
      << "some partitions of broker " << gray.value() << " never became writable elsewhere";
  Clock::duration worst{};
  for (auto& [p, at] : writable)
    worst = std::max(worst, at - cut_at);
  std::printf(
      "gray failure with the probe: all %zu partitions of broker %d writable elsewhere "
      "%.3f s after the cut (bound %.3f s)\n",
      led.size(), gray.value(), seconds(worst), seconds(kDemotionBound));
  EXPECT_LE(worst, kDemotionBound);
  EXPECT_TRUE(rig.led_by(gray).empty());
  EXPECT_EQ(rig.demoted(gray), true);
  auto demotions = rig.decisions("demote", gray);
  ASSERT_EQ(demotions.size(), 1u);
  EXPECT_EQ(demotions[0]["reason"], "unreachable");
  EXPECT_GE(demotions[0]["evidence"]["failure_streak"].get<int>(), kFailuresToDemote);

  // Producers as an application runs them write to those partitions again too: after the send
  // stuck on the cut leader (request timeout 1 s, + 1 s for acks=all) and a metadata refresh that
  // may ask the cut broker first (1 s).
  constexpr auto kClientBound = kDemotionBound + 3s;
  std::this_thread::sleep_until(cut_at + kClientBound + 1s);
  for (int p : led) {
    auto gap = producers.longest_gap(p, cut_at - 1s, Clock::now());
    EXPECT_LT(gap, kClientBound) << "producers did not get to write to partition " << p;
    std::printf("  partition %d: producers (1 s request timeout) could not write for %.3f s\n", p,
                seconds(gap));
  }

  const auto healed_at = Clock::now();
  ASSERT_FALSE(rig.heal(cut.id).error);
  ASSERT_TRUE(wait_until([&] { return !rig.decisions("promote", gray).empty(); }, 20s))
      << "broker " << gray.value() << " was not promoted after the heal";
  EXPECT_EQ(rig.demoted(gray), false);
  EXPECT_GE(Clock::now() - healed_at, kRecoveryHold - 200ms) << "promoted before the hold";
  // Promotion runs a preferred election: the broker leads its preferred partitions again.
  EXPECT_TRUE(wait_until(
      [&] {
        auto now_led = rig.led_by(gray);
        return std::all_of(preferred.begin(), preferred.end(), [&](int p) {
          return std::find(now_led.begin(), now_led.end(), p) != now_led.end();
        });
      },
      10s))
      << "preferred leadership did not return to broker " << gray.value();
  std::printf("promoted %.3f s after the heal\n", seconds(Clock::now() - healed_at));

  std::this_thread::sleep_for(500ms);
  producers.stop();
  auto acks = producers.acks();
  EXPECT_GT(acks.size(), 100u) << "the workload barely ran";
  cluster::SyncClient reader(rig.harness().client_config());
  auto lost = lost_writes(reader, acks, kPartitions);
  EXPECT_TRUE(lost.empty()) << lost.size() << " acknowledged writes lost, first " << lost.front();
  auto metrics = rig.probe_metrics();
  EXPECT_GE(
      metric_value(metrics,
                   R"(faultline_health_decisions_total{action="demote",reason="unreachable"})")
          .value_or(0),
      1);
  EXPECT_EQ(
      metric_value(metrics, fmt::format(R"(faultline_probe_up{{broker="{}"}})", gray.value())), 1);
}

TEST_F(ProbePrivileged, CuttingTheProbeOffDemotesNobody) {
  FAULTLINE_REQUIRE_ROOT();
  ProbeRig& rig = up(probed_shape(), "vantage");
  auto cut = rig.cut_link(chaos::ClusterHarness::kProbeNode, "ext");
  ASSERT_FALSE(cut.error) << cut.error.message();
  // Thirty rounds with every broker failing: K of them would demote one without the guard.
  std::this_thread::sleep_for(kInterval * 30);
  EXPECT_TRUE(rig.demoted_brokers().empty());
  ASSERT_FALSE(rig.heal(cut.id).error);
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(rig.demoted_brokers().empty());
  int demotions = 0, suspect = 0;
  for (const auto& d : rig.decisions()) {
    demotions += d.value("type", "") == "decision";
    suspect += d.value("type", "") == "vantage_point_suspect";
  }
  EXPECT_EQ(demotions, 0);
  EXPECT_GE(suspect, 1) << "the probe never noticed it was cut off";
  EXPECT_GE(
      metric_value(rig.probe_metrics(), R"(faultline_probe_rounds_total{vantage_point="suspect"})")
          .value_or(0),
      20);
}

TEST_F(ProbePrivileged, ALostProbeOrTwoDemoteNobody) {
  FAULTLINE_REQUIRE_ROOT();
  ProbeRig& rig = up(probed_shape(), "blip");
  const BrokerId leader = rig.leader_of(0);
  const std::string series =
      fmt::format(R"(faultline_probe_failures_total{{broker="{}"}})", leader.value());
  // The counter of a broker appears with its first failure: none yet is 0.
  const double failures_before = metric_value(rig.probe_metrics(), series).value_or(0);
  // A blip of about one probing interval: one or two probes fail, fewer than K.
  auto cut = rig.cut_link(chaos::ClusterHarness::broker_node(leader.value()), "ext");
  ASSERT_FALSE(cut.error);
  std::this_thread::sleep_for(kInterval);
  ASSERT_FALSE(rig.heal(cut.id).error);
  std::this_thread::sleep_for(1500ms);
  const double failed = metric_value(rig.probe_metrics(), series).value_or(-1) - failures_before;
  EXPECT_GE(failed, 1) << "the blip was not seen: the test proves nothing";
  ASSERT_LT(failed, kFailuresToDemote) << "the blip lasted K probes (machine too loaded?)";
  EXPECT_TRUE(rig.decisions("demote", leader).empty());
  EXPECT_EQ(rig.demoted(leader), false);
  EXPECT_EQ(rig.leader_of(0), leader);
}

TEST_F(ProbePrivileged, ThrottledDiskIsDemotedAndPromotedWhenHealed) {
  FAULTLINE_REQUIRE_ROOT();
  ClusterShape shape = probed_shape();
  shape.disks = true;
  ProbeRig& rig = up(shape, "disk");
  const BrokerId slow = rig.leader_of(0);
  const auto led = rig.led_by(slow);
  Producers producers(rig.harness().client_config(), kPartitions);
  std::this_thread::sleep_for(1s);

  chaos::DiskParams limits;
  limits.write_iops = 10;
  limits.write_bytes_per_second = 1 << 20;
  const auto throttled_at = Clock::now();
  auto throttle = rig.inject({chaos::FaultKind::disk_throttle,
                              {chaos::ClusterHarness::broker_node(slow.value())},
                              limits});
  ASSERT_FALSE(throttle.error) << throttle.error.message();
  ASSERT_TRUE(wait_until([&] { return !rig.decisions("demote", slow).empty(); }, 40s))
      << "broker " << slow.value() << " with a throttled disk was not demoted";
  auto demotion = rig.decisions("demote", slow).front();
  std::printf(
      "throttled disk: broker %d demoted %.3f s after the throttle, reason %s, "
      "fsync median %.1f ms vs threshold %.1f ms\n",
      slow.value(), seconds(Clock::now() - throttled_at),
      demotion["reason"].get<std::string>().c_str(),
      demotion["evidence"]["broker_fsync_median_us"].get<double>() / 1000.0,
      demotion["evidence"]["fsync_threshold_us"].get<double>() / 1000.0);
  // Slow, not unreachable: the broker's log fsyncs run on a flusher thread, so its io thread
  // goes on answering the probes while its disk crawls.
  EXPECT_EQ(demotion["reason"], "slow_storage");
  EXPECT_EQ(rig.demoted(slow), true);
  EXPECT_TRUE(wait_until([&] { return rig.led_by(slow).empty(); }, 5s));

  const auto healed_at = Clock::now();
  ASSERT_FALSE(rig.heal(throttle.id).error);
  ASSERT_TRUE(wait_until([&] { return !rig.decisions("promote", slow).empty(); }, 40s))
      << "broker " << slow.value() << " was not promoted after its disk was healed";
  std::printf("healed disk: broker %d promoted %.3f s after the heal\n", slow.value(),
              seconds(Clock::now() - healed_at));
  EXPECT_EQ(rig.demoted(slow), false);

  producers.stop();
  cluster::SyncClient reader(rig.harness().client_config());
  auto lost = lost_writes(reader, producers.acks(), kPartitions);
  EXPECT_TRUE(lost.empty()) << lost.size() << " acknowledged writes lost, first " << lost.front();
  (void)led;
}

// The same fault, judged by the storage path alone: reachability practically never demotes here
// (K = 1000), so only the canary -> BrokerHealth -> StorageReportReader -> storage outlier path
// can. The broker is under load, as a leader is: a throttle on an idle disk is never felt (the
// canary's one write per interval stays inside the budget), and the canary's fsyncs queue behind
// the broker's own log flushes in the same throttled cgroup.
TEST_F(ProbePrivileged, ThrottledDiskIsCaughtByTheStorageCanary) {
  FAULTLINE_REQUIRE_ROOT();
  ClusterShape shape = probed_shape();
  shape.disks = true;
  shape.probe_args = {"--failures-to-demote", "1000", "--recovery-hold-ms",
                      std::to_string(kRecoveryHold.count())};
  ProbeRig& rig = up(shape, "canary");
  const BrokerId slow = rig.leader_of(0);
  Producers producers(rig.harness().client_config(), kPartitions);
  std::this_thread::sleep_for(5s);  // every broker's window filled with healthy samples
  for (const auto& d : rig.decisions())
    EXPECT_NE(d.value("type", ""), "decision") << "healthy disks judged slow: " << d.dump();

  chaos::DiskParams limits;
  limits.write_iops = 10;
  limits.write_bytes_per_second = 1 << 20;
  const auto throttled_at = Clock::now();
  auto throttle = rig.inject({chaos::FaultKind::disk_throttle,
                              {chaos::ClusterHarness::broker_node(slow.value())},
                              limits});
  ASSERT_FALSE(throttle.error) << throttle.error.message();
  ASSERT_TRUE(wait_until([&] { return !rig.decisions("demote", slow).empty(); }, 40s))
      << "broker " << slow.value() << " with a throttled disk was not demoted";
  auto demotion = rig.decisions("demote", slow).front();
  const double median_ms = demotion["evidence"]["broker_fsync_median_us"].get<double>() / 1000.0;
  const double threshold_ms = demotion["evidence"]["fsync_threshold_us"].get<double>() / 1000.0;
  std::printf(
      "throttled disk, storage path: broker %d demoted %.3f s after the throttle, "
      "canary median %.1f ms, cluster median %.1f ms, threshold %.1f ms\n",
      slow.value(), seconds(Clock::now() - throttled_at), median_ms,
      demotion["evidence"]["cluster_fsync_median_us"].get<double>() / 1000.0, threshold_ms);
  EXPECT_EQ(demotion["reason"], "slow_storage");
  EXPECT_GT(median_ms, threshold_ms);
  EXPECT_EQ(rig.demoted(slow), true);
  EXPECT_EQ(
      metric_value(rig.probe_metrics(),
                   R"(faultline_health_decisions_total{action="demote",reason="slow_storage"})"),
      1);

  const auto healed_at = Clock::now();
  ASSERT_FALSE(rig.heal(throttle.id).error);
  ASSERT_TRUE(wait_until([&] { return !rig.decisions("promote", slow).empty(); }, 40s))
      << "broker " << slow.value() << " was not promoted after its disk was healed";
  std::printf("healed disk, storage path: broker %d promoted %.3f s after the heal\n", slow.value(),
              seconds(Clock::now() - healed_at));
  for (const auto& d : rig.decisions())
    if (d.value("type", "") == "decision") {
      EXPECT_EQ(d["broker"], slow.value()) << d.dump();
    }
}

TEST_F(ProbePrivileged, WithoutTheProbeTheGrayFailureLastsTheWholeFault) {
  FAULTLINE_REQUIRE_ROOT();
  ClusterShape shape = probed_shape();
  shape.probe = false;
  ProbeRig& rig = up(shape, "noprobe");
  const BrokerId gray = rig.leader_of(0);
  const auto led = rig.led_by(gray);
  ASSERT_FALSE(led.empty());
  cluster::SyncClient client(rig.fast_client_config());
  std::map<int, Clock::time_point> last_ok;
  auto write_all = [&](int n) {
    for (int p : led) {
      client.controller_metadata();  // leaders as the controller has them, at once
      if (client.send(ProbeRig::tp(p), {"noprobe-" + std::to_string(n)}, cluster::Acks::all)
              .acknowledged())
        last_ok[p] = Clock::now();
    }
  };
  write_all(0);
  ASSERT_EQ(last_ok.size(), led.size());

  constexpr auto kFault = 5s;
  const auto cut_at = Clock::now();
  auto cut = rig.cut_link(chaos::ClusterHarness::broker_node(gray.value()), "ext");
  ASSERT_FALSE(cut.error);
  int during_ok = 0, attempts = 0;
  while (Clock::now() - cut_at < kFault) {
    for (int p : led) {
      client.controller_metadata();
      ++attempts;
      during_ok += client
                       .send(ProbeRig::tp(p), {"noprobe-during-" + std::to_string(attempts)},
                             cluster::Acks::all)
                       .acknowledged();
    }
  }
  EXPECT_EQ(during_ok, 0) << "writes to the gray leader's partitions succeeded during the fault";
  EXPECT_GT(attempts, 2);
  EXPECT_EQ(rig.led_by(gray), led) << "leadership moved without a probe";
  EXPECT_TRUE(rig.demoted_brokers().empty());

  ASSERT_FALSE(rig.heal(cut.id).error);
  const auto healed_at = Clock::now();
  std::map<int, Clock::time_point> first_ok;
  ASSERT_TRUE(wait_until(
      [&] {
        for (int p : led) {
          if (first_ok.contains(p))
            continue;
          client.controller_metadata();
          if (client.send(ProbeRig::tp(p), {"noprobe-after"}, cluster::Acks::all).acknowledged())
            first_ok[p] = Clock::now();
        }
        return first_ok.size() == led.size();
      },
      20s));
  for (int p : led) {
    auto unavailable = first_ok[p] - last_ok[p];
    std::printf(
        "gray failure without the probe: partition %d unwritable for %.3f s "
        "(fault %.3f s)\n",
        p, seconds(unavailable), seconds(healed_at - cut_at));
    EXPECT_GE(unavailable, healed_at - cut_at - 100ms);
  }
}

}  // namespace
}  // namespace faultline::testing
