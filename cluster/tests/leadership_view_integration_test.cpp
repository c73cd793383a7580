// What the harness sees of leadership, with real processes on loopback: the epoch an acknowledged
// write was accepted under (from the leader's answer, not the client's cache) and the controller's
// metadata watch (answered on a change, or after the wait when nothing changes).
#include <gtest/gtest.h>

#include <future>

#include "local_cluster.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::LocalCluster;

const TopicPartition kTp{"events", PartitionIndex{0}};

PartitionMetadata create_and_wait(SyncClient& client) {
  auto created = client.create_topic(kTp.topic, 1, 3);
  EXPECT_EQ(created.error, errc::none) << errc_name(created.error);
  auto leader = client.wait_for_leader(
      kTp, 10s, [](const PartitionMetadata& m) { return m.isr.size() == 3; });
  EXPECT_TRUE(leader);
  return leader.value_or(PartitionMetadata{});
}

std::optional<PartitionMetadata> partition_in(const MetadataResponse& md) {
  for (const auto& p : md.partitions) {
    if (p.tp == kTp)
      return p;
  }
  return std::nullopt;
}

TEST(LeadershipView, AnAcknowledgedSendReportsTheEpochOfTheLeaderThatAnswered) {
  LocalCluster cluster;
  SyncClient admin(cluster.client_config());
  SyncClient producer(cluster.client_config());
  PartitionMetadata first = create_and_wait(admin);

  SendResult before = producer.send(kTp, {"a"}, Acks::all);
  ASSERT_TRUE(before.acknowledged()) << errc_name(before.error);
  EXPECT_EQ(before.leader, first.leader);
  EXPECT_EQ(before.leader_epoch, first.leader_epoch);

  // Leadership moves away and back behind the producer's back: its cache still names the same
  // broker, with the epoch of two leader changes ago.
  ASSERT_EQ(admin.demote(first.leader, "test"), errc::none);
  ASSERT_TRUE(admin.wait_for_leader(
      kTp, 10s, [&](const PartitionMetadata& m) { return m.leader != first.leader; }));
  ASSERT_EQ(admin.promote(first.leader), errc::none);
  auto back = admin.wait_for_leader(kTp, 10s, [&](const PartitionMetadata& m) {
    return m.leader == first.leader && m.leader_epoch > first.leader_epoch;
  });
  ASSERT_TRUE(back) << cluster.logs();

  SendResult after = producer.send(kTp, {"b"}, Acks::all);
  ASSERT_TRUE(after.acknowledged()) << errc_name(after.error);
  EXPECT_EQ(after.leader, first.leader) << "the broker that answered";
  EXPECT_EQ(after.leader_epoch, back->leader_epoch) << "the epoch it acknowledged under";
  EXPECT_GT(after.leader_epoch, before.leader_epoch);
}

TEST(LeadershipView, AWatchAnswersSoonAfterALeaderChange) {
  LocalCluster cluster;
  SyncClient admin(cluster.client_config());
  PartitionMetadata first = create_and_wait(admin);
  auto md = admin.controller_metadata();
  ASSERT_TRUE(md);

  // A watcher of its own follows every change until it sees the new leader.
  auto watched = std::async(std::launch::async, [&, seen = md->metadata_offset] {
    SyncClient watcher(cluster.client_config());
    int64_t offset = seen;
    while (true) {
      auto next = watcher.watch_metadata(offset, 10s);
      if (!next || next->metadata_offset == offset)
        return std::make_pair(next, Clock::now());
      offset = next->metadata_offset;
      auto p = partition_in(*next);
      if (p && p->leader != first.leader)
        return std::make_pair(next, Clock::now());
    }
  });
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(admin.demote(first.leader, "test"), errc::none);
  auto demoted_at = Clock::now();

  ASSERT_EQ(watched.wait_for(5s), std::future_status::ready) << "the watch never answered";
  auto [latest, answered_at] = watched.get();
  ASSERT_TRUE(latest);
  auto p = partition_in(*latest);
  ASSERT_TRUE(p);
  EXPECT_NE(p->leader, first.leader);
  EXPECT_GT(p->leader_epoch, first.leader_epoch);
  EXPECT_LT(answered_at - demoted_at, 100ms) << "the watch answered late";
  for (const auto& b : latest->brokers) {
    EXPECT_EQ(b.demoted, b.id == first.leader);
    EXPECT_FALSE(b.shutting_down);
  }
}

TEST(LeadershipView, AWatchWithNothingNewAnswersAfterTheWait) {
  LocalCluster cluster;
  SyncClient admin(cluster.client_config());
  create_and_wait(admin);
  auto md = admin.controller_metadata();
  ASSERT_TRUE(md);

  auto stale = admin.watch_metadata(md->metadata_offset - 1, 5s);
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->metadata_offset, md->metadata_offset) << "an older offset is answered at once";

  auto started = Clock::now();
  auto same = admin.watch_metadata(md->metadata_offset, 600ms);
  auto waited = Clock::now() - started;
  ASSERT_TRUE(same);
  EXPECT_EQ(same->metadata_offset, md->metadata_offset);
  EXPECT_GE(waited, 600ms);
  EXPECT_LT(waited, 1500ms);
  ASSERT_EQ(same->partitions.size(), 1u);
  EXPECT_EQ(same->partitions[0].isr.size(), 3u);
}

TEST(LeadershipView, TheControllerShowsABrokerInControlledShutdown) {
  LocalCluster cluster;
  SyncClient admin(cluster.client_config());
  create_and_wait(admin);
  auto md = admin.controller_metadata();
  ASSERT_TRUE(md);
  for (const auto& b : md->brokers)
    EXPECT_FALSE(b.shutting_down);

  cluster.broker(2).signal(SIGTERM);
  bool seen = false;
  int64_t offset = md->metadata_offset;
  auto deadline = Clock::now() + 10s;
  while (!seen && Clock::now() < deadline) {
    auto next = admin.watch_metadata(offset, 2s);
    if (!next)
      break;
    offset = next->metadata_offset;
    for (const auto& b : next->brokers)
      seen = seen || (b.id == BrokerId{2} && b.shutting_down);
  }
  EXPECT_TRUE(seen) << cluster.logs();
}

}  // namespace
}  // namespace faultline::cluster
