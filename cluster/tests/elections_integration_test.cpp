// Elections beyond failover (ARCHITECTURE.md §2 items 13-16) with real processes on loopback:
// controlled shutdown, demotion and promotion (leadership priority), unclean election, and the
// admin API being refused on the client listener.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "local_cluster.h"
#include "test_producer.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
using testing::LocalCluster;
using testing::LocalClusterOptions;
using testing::TestProducer;

const TopicPartition kTp{"events", PartitionIndex{0}};

void create_and_wait(SyncClient& client, const std::string& topic, int partitions, int rf) {
  auto created = client.create_topic(topic, partitions, rf);
  ASSERT_EQ(created.error, errc::none) << errc_name(created.error);
  for (int p = 0; p < partitions; ++p) {
    ASSERT_TRUE(client.wait_for_leader(
        {topic, PartitionIndex{p}}, 10s,
        [&](const PartitionMetadata& m) { return static_cast<int>(m.isr.size()) == rf; }));
  }
}

std::map<int, int> leaders_of(SyncClient& client, const std::string& topic) {
  std::map<int, int> out;
  if (auto md = client.controller_metadata()) {
    for (const auto& p : md->partitions) {
      if (p.tp.topic == topic)
        out[p.tp.partition.value()] = p.leader.value();
    }
  }
  return out;
}

// Waits until `pred(leaders)` holds for the topic's partition leaders.
bool wait_for_leaders(SyncClient& client, const std::string& topic,
                      const std::function<bool(const std::map<int, int>&)>& pred,
                      std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred(leaders_of(client, topic)))
      return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

void expect_every_ack_read_once(SyncClient& client, const TestProducer& producer) {
  auto records = client.read_all(kTp);
  ASSERT_TRUE(records);
  std::multiset<std::string> seen;
  for (const auto& r : *records)
    seen.insert(r.value.value_or(""));
  for (const auto& v : producer.values(true))
    EXPECT_EQ(seen.count(v), 1u) << v;
  for (const auto& o : producer.definite_failures())
    EXPECT_EQ(seen.count(o.value), 0u) << o.value;
}

TEST(ElectionsIntegration, RollingControlledRestartLosesNothingAndMovesLeadershipQuickly) {
  LocalCluster cluster;
  SyncClient admin(cluster.client_config());
  create_and_wait(admin, "events", 1, 3);
  TestProducer producer(cluster.client_config(), kTp, Acks::all);
  ASSERT_TRUE(producer.wait_for_more(20, 20s));
  std::vector<std::chrono::milliseconds> gaps;
  for (int id = 1; id <= 3; ++id) {
    bool led = admin.wait_for_leader(kTp, 5s)->leader.value() == id;
    auto before = std::chrono::steady_clock::now();
    cluster.broker(id).signal(SIGTERM);
    // It exits by itself once it leads nothing and the others know it.
    int status = cluster.broker(id).wait_for(20s);
    ASSERT_EQ(status, 0) << "broker " << id << " did not finish its controlled shutdown\n"
                         << cluster.logs();
    ASSERT_TRUE(producer.wait_for_more(20, 20s));
    if (led)
      gaps.push_back(producer.longest_gap(before, std::chrono::steady_clock::now()));
    cluster.start_broker(id);
    ASSERT_TRUE(admin.wait_for_leader(kTp, 20s, [](const PartitionMetadata& p) {
      return p.isr.size() == 3;
    })) << cluster.logs();
  }
  producer.stop();
  expect_every_ack_read_once(admin, producer);
  // A controlled move is a handover, not a failure detection: far below the session timeout
  // (2 s here). The figures themselves come from the benchmark; this bound only catches a move
  // that waited for fencing.
  for (auto gap : gaps)
    EXPECT_LT(gap, 1500ms) << "a controlled move took " << gap.count() << " ms";
  EXPECT_FALSE(gaps.empty()) << "no stopped broker was leading: nothing was measured";
}

TEST(ElectionsIntegration, DemotionMovesLeadershipOffAndPromotionBringsItBack) {
  LocalCluster cluster;
  SyncClient admin(cluster.client_config());
  create_and_wait(admin, "events", 3, 3);  // preferred leaders 1, 2, 3 (round robin)
  auto preferred = leaders_of(admin, "events");
  ASSERT_EQ(preferred.size(), 3u);

  // Demote 2 and 3: the one broker left with full priority leads every partition, and the demoted
  // brokers stay in the ISR as followers.
  TestProducer producer(cluster.client_config(), kTp, Acks::all);
  ASSERT_TRUE(producer.wait_for_more(10, 20s));
  ASSERT_EQ(admin.demote(BrokerId{2}, "test"), errc::none);
  ASSERT_EQ(admin.demote(BrokerId{3}, "test"), errc::none);
  ASSERT_TRUE(wait_for_leaders(
      admin, "events",
      [](const std::map<int, int>& l) {
        return l.size() == 3 && l.at(0) == 1 && l.at(1) == 1 && l.at(2) == 1;
      },
      10s))
      << cluster.logs();
  auto md = admin.controller_metadata();
  ASSERT_TRUE(md);
  for (const auto& p : md->partitions)
    EXPECT_EQ(p.isr.size(), 3u) << "demotion shrank the ISR";

  // A preferred election never puts leadership back on a demoted broker.
  admin.elect_leaders(ElectionType::preferred, {});
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(leaders_of(admin, "events").at(1), 1);

  // Promotion returns each broker's preferred partitions to it.
  ASSERT_EQ(admin.promote(BrokerId{2}), errc::none);
  ASSERT_EQ(admin.promote(BrokerId{3}), errc::none);
  ASSERT_TRUE(wait_for_leaders(
      admin, "events", [&](const std::map<int, int>& l) { return l == preferred; }, 10s))
      << cluster.logs();

  // Now demote the leader of the partition being written to, with writes running.
  int leader = leaders_of(admin, "events").at(0);
  ASSERT_TRUE(producer.wait_for_more(10, 20s));
  auto before = std::chrono::steady_clock::now();
  ASSERT_EQ(admin.demote(BrokerId{leader}, "unreachable from clients"), errc::none);
  ASSERT_TRUE(wait_for_leaders(
      admin, "events", [&](const std::map<int, int>& l) { return l.at(0) != leader; }, 10s));
  ASSERT_TRUE(producer.wait_for_more(20, 20s));
  auto gap = producer.longest_gap(before, std::chrono::steady_clock::now());
  producer.stop();
  EXPECT_LT(gap, 1500ms) << "writes stalled while leadership moved off the demoted broker";
  md = admin.controller_metadata();
  bool shown = false;
  for (const auto& b : md->brokers) {
    if (b.id.value() == leader)
      shown = b.demoted && b.demotion_reason == "unreachable from clients";
  }
  EXPECT_TRUE(shown) << "the demotion and its reason are in the metadata";
  expect_every_ack_read_once(admin, producer);
}

TEST(ElectionsIntegration, AnUncleanElectionIsRecordedInThePartitionMetadata) {
  LocalClusterOptions options;
  options.min_insync_replicas = 1;
  options.replica_lag_time_max_ms = 500;
  LocalCluster cluster(options);
  SyncClient admin(cluster.client_config());
  create_and_wait(admin, "events", 1, 3);
  int leader = admin.wait_for_leader(kTp, 5s)->leader.value();
  // Followers paused: the leader shrinks the ISR to itself, then dies. No clean leader remains.
  for (int id = 1; id <= 3; ++id) {
    if (id != leader)
      cluster.broker(id).signal(SIGSTOP);
  }
  ASSERT_TRUE(admin.wait_for_leader(kTp, 10s, [](const PartitionMetadata& p) {
    return p.isr.size() == 1;
  })) << cluster.logs();
  ASSERT_TRUE(admin.send(kTp, {"only-on-the-old-leader"}, Acks::all).acknowledged());
  cluster.broker(leader).signal(SIGKILL);
  cluster.broker(leader).wait_for(5s);
  for (int id = 1; id <= 3; ++id) {
    if (id != leader)
      cluster.broker(id).signal(SIGCONT);
  }
  // Offline: the only ISR member is gone and unclean election is off.
  std::this_thread::sleep_for(3s);
  auto md = admin.controller_metadata();
  ASSERT_TRUE(md);
  EXPECT_EQ(md->partitions.at(0).leader, kNoBroker) << "a clean leader appeared from nowhere";

  auto r = admin.elect_leaders(ElectionType::unclean, {kTp});
  ASSERT_EQ(r.error, errc::none);
  ASSERT_TRUE(admin.wait_for_leader(kTp, 10s)) << cluster.logs();
  md = admin.controller_metadata();
  ASSERT_TRUE(md);
  const auto& p = md->partitions.at(0);
  EXPECT_NE(p.leader.value(), leader);
  EXPECT_EQ(p.unclean_elections, 1) << "the checker needs to know this loss was expected";
  // The election leaves the new leader alone in the ISR. The other follower holds the same log,
  // so it may already be back in the ISR when this reads it (a CI run under load saw that); the
  // dead old leader, whose acknowledged write the election gave up, is not.
  EXPECT_TRUE(p.isr.contains(p.leader)) << "the new leader is in its ISR";
  EXPECT_FALSE(p.isr.contains(BrokerId{leader})) << "the dead leader is still in the ISR";
}

TEST(ElectionsIntegration, AdminRequestsAreRefusedOnTheClientListener) {
  LocalCluster cluster;
  SyncClient admin(cluster.client_config());
  create_and_wait(admin, "events", 1, 3);
  // A client that mistakes a broker's client listener for the controller.
  ClientConfig wrong = cluster.client_config();
  wrong.controllers = {wrong.bootstrap.at(0)};
  SyncClient confused(wrong);
  EXPECT_NE(confused.demote(BrokerId{1}, "nope"), errc::none);
  EXPECT_NE(confused.create_topic("sneaky", 1, 1).error, errc::none);
  EXPECT_NE(confused.elect_leaders(ElectionType::unclean, {kTp}).error, errc::none);
  auto md = admin.controller_metadata();
  ASSERT_TRUE(md);
  for (const auto& b : md->brokers)
    EXPECT_FALSE(b.demoted);
  EXPECT_EQ(md->partitions.size(), 1u);
}

}  // namespace
}  // namespace faultline::cluster
