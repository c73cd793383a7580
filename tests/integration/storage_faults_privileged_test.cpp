// Storage faults against a real cluster (brokers' data dirs on faultline-lazyfs), as a user would
// notice them:
//   - a power loss of every replica at once loses acknowledged acks=all writes when the brokers
//     never fsync (the negative control: replication cannot cover a correlated loss), and loses
//     none when they fsync every batch;
//   - EIO on the leader's log takes its log directory offline: leadership moves to another
//     broker, writes go on there, and nothing acknowledged is lost; healed, the broker restarts,
//     recovers and is back in the ISR.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>

#include "child_process.h"
#include "faultline_test_support.h"
#include "probe_rig.h"

namespace faultline::testing {
namespace {

using namespace std::chrono_literals;
using chaos::ClusterShape;
using chaos::FaultKind;
using chaos::FaultSpec;

ClusterShape lazy_shape(const std::string& flush_policy) {
  ClusterShape s;
  s.brokers = 3;
  s.binaries_dir = binary_dir();
  s.lazyfs = true;
  s.flush_policy = flush_policy;
  s.storage_canary_interval = std::chrono::milliseconds(0);  // only the logs touch the disk
  return s;
}

std::string run_id(const std::string& what) {
  static int n = 0;
  return fmt::format("storage-{}-{}-{}", what, ::getpid(), n++);
}

// Sends `count` values from `first` in batches of 10 with acks=all; returns the acknowledged ones.
std::set<std::string> produce(cluster::SyncClient& client, int first, int count) {
  std::set<std::string> acked;
  for (int i = first; i < first + count; i += 10) {
    std::vector<std::string> values;
    for (int v = i; v < std::min(i + 10, first + count); ++v)
      values.push_back(std::to_string(v));
    auto r = client.send(ProbeRig::tp(0), values, cluster::Acks::all);
    if (r.acknowledged())
      acked.insert(values.begin(), values.end());
  }
  return acked;
}

std::set<std::string> read_back(cluster::SyncClient& client) {
  std::set<std::string> out;
  if (auto records = client.read_all(ProbeRig::tp(0)))
    for (const auto& r : *records)
      if (r.value)
        out.insert(*r.value);
  return out;
}

size_t lost(const std::set<std::string>& acked, const std::set<std::string>& read) {
  size_t n = 0;
  for (const auto& v : acked)
    n += read.contains(v) ? 0 : 1;
  return n;
}

cluster::ClientConfig client_config(ProbeRig& rig) {
  auto c = rig.harness().client_config();
  c.request_timeout = 2000ms;
  return c;
}

// Power loss of all three brokers, then restart; how many acknowledged writes are gone.
size_t acknowledged_lost_after_total_power_loss(const std::string& flush_policy) {
  TempDir logs("storage-logs");
  ProbeRig rig(lazy_shape(flush_policy), run_id("power"), logs.path(), 1);
  cluster::SyncClient client(client_config(rig));
  const auto acked = produce(client, 0, 200);
  EXPECT_EQ(acked.size(), 200u);
  auto o = rig.inject(FaultSpec{FaultKind::power_loss, {"b1", "b2", "b3"}, chaos::NoParams{}});
  EXPECT_FALSE(o.error) << o.error.message();
  EXPECT_TRUE(o.verified);
  auto healed = rig.heal(o.id);
  EXPECT_FALSE(healed.error) << healed.error.message();
  EXPECT_TRUE(client.wait_for_leader(ProbeRig::tp(0), 20s));
  // The restarted brokers need a moment to re-form the ISR and the high watermark: read until
  // nothing acknowledged is missing, or give up after a while (the negative control's case).
  size_t missing = acked.size();
  for (auto deadline = std::chrono::steady_clock::now() + 6s;
       missing > 0 && std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(250ms)) {
    missing = lost(acked, read_back(client));
  }
  return missing;
}

TEST(StorageFaults, AllReplicasPowerLossWithFlushNeverLosesAcknowledgedWrites) {
  EXPECT_GT(acknowledged_lost_after_total_power_loss("never"), 0u)
      << "nothing was fsynced, so a power loss of every replica must lose acknowledged writes";
}

TEST(StorageFaults, AllReplicasPowerLossWithFsyncPerBatchLosesNothing) {
  EXPECT_EQ(acknowledged_lost_after_total_power_loss("every-batch"), 0u);
}

TEST(StorageFaults, EioOnTheLeadersLogMovesLeadershipAndLosesNothing) {
  TempDir logs("storage-logs");
  ProbeRig rig(lazy_shape(""), run_id("eio"), logs.path(), 1);
  cluster::SyncClient client(client_config(rig));
  auto acked = produce(client, 0, 50);
  ASSERT_EQ(acked.size(), 50u);
  const auto old_leader = rig.leader_of(0);
  ASSERT_NE(old_leader, cluster::kNoBroker);
  const auto node = fmt::format("b{}", old_leader.value());
  chaos::DiskErrorParams eio;
  eio.op = "write";
  eio.path = "*.log";
  auto o = rig.inject(FaultSpec{FaultKind::disk_error, {node}, eio});
  ASSERT_FALSE(o.error) << o.error.message();
  // The next append fails on the leader: its log directory goes offline, the controller fences
  // it and elects another leader; the client retries there.
  const auto after = produce(client, 50, 50);
  acked.insert(after.begin(), after.end());
  const auto moved = client.wait_for_leader(ProbeRig::tp(0), 10s, [&](const auto& m) {
    return m.leader != old_leader && m.leader != cluster::kNoBroker;
  });
  EXPECT_TRUE(moved) << "leadership stayed on the broker whose log failed";
  EXPECT_GE(after.size(), 40u) << "writes did not go on elsewhere";
  auto healed = rig.heal(o.id);  // heal + restart: it recovers its log and rejoins
  EXPECT_FALSE(healed.error) << healed.error.message();
  EXPECT_TRUE(client.wait_for_leader(ProbeRig::tp(0), 20s, [&](const auto& m) {
    return m.isr.size() == 3u;
  })) << "the restarted broker did not rejoin the ISR";
  EXPECT_EQ(lost(acked, read_back(client)), 0u);
}

}  // namespace
}  // namespace faultline::testing
