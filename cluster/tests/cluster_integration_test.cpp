// The mini-cluster as real processes on loopback: failover, controller loss, recovery after
// kill -9, bad frames, and the acks=1 negative control. Each test asserts what a user would
// notice: acknowledged writes are still there, the leader moved, the cluster kept serving.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "local_cluster.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
using testing::LocalCluster;
using testing::LocalClusterOptions;

const TopicPartition kTp{"events", PartitionIndex{0}};

// Creates `topic` and waits until partition 0 has a leader and a full ISR.
void create_and_wait(SyncClient& client, const std::string& topic, int partitions, int rf) {
  auto created = client.create_topic(topic, partitions, rf);
  ASSERT_EQ(created.error, errc::none) << errc_name(created.error);
  auto leader = client.wait_for_leader({topic, PartitionIndex{0}}, 10s,
                                       [&](const PartitionMetadata& p) {
                                         return static_cast<int>(p.isr.size()) == rf;
                                       });
  ASSERT_TRUE(leader) << "no leader with a full ISR";
}

std::vector<std::string> values_of(const std::vector<Record>& records) {
  std::vector<std::string> out;
  for (const auto& r : records) out.push_back(r.value.value_or(""));
  return out;
}

// Sends value-0, value-1, ... one at a time until stopped; remembers what was acknowledged and
// what had an unknown outcome.
class Producer {
 public:
  Producer(ClientConfig config, Acks acks) : client_(std::move(config)), acks_(acks) {
    thread_ = std::thread([this] { run(); });
  }
  ~Producer() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int acknowledged_count() const { return acked_count_.load(); }
  std::vector<std::string> acknowledged;
  std::vector<std::string> unknown;
  std::vector<std::string> failed;

 private:
  void run() {
    for (int i = 0; !stop_; ++i) {
      std::string v = "value-" + std::to_string(i);
      auto r = client_.send(kTp, {v}, acks_);
      if (r.acknowledged()) {
        acknowledged.push_back(v);
        ++acked_count_;
      } else if (r.definite) {
        failed.push_back(v);
      } else {
        unknown.push_back(v);
      }
      std::this_thread::sleep_for(5ms);
    }
  }
  SyncClient client_;
  Acks acks_;
  std::atomic<bool> stop_{false};
  std::atomic<int> acked_count_{0};
  std::thread thread_;
};

void wait_until_acknowledged(const Producer& p, int n) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (p.acknowledged_count() < n && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
}

TEST(ClusterIntegration, LeaderKillLosesNoAcknowledgedWriteAndTheOldLeaderRejoins) {
  LocalCluster cluster;
  SyncClient admin(cluster.client_config());
  create_and_wait(admin, "events", 1, 3);
  int old_leader = admin.wait_for_leader(kTp, 5s)->leader.value();

  Producer producer(cluster.client_config(), Acks::all);
  wait_until_acknowledged(producer, 50);
  cluster.broker(old_leader).signal(SIGKILL);
  cluster.broker(old_leader).wait_for(5s);
  auto moved = admin.wait_for_leader(kTp, 15s, [&](const PartitionMetadata& p) {
    return p.leader.value() != old_leader;
  });
  ASSERT_TRUE(moved) << "leadership did not move\n" << cluster.logs();
  int before_restart = producer.acknowledged_count();
  wait_until_acknowledged(producer, before_restart + 50);
  EXPECT_GT(producer.acknowledged_count(), before_restart) << "writes did not resume";

  cluster.start_broker(old_leader);
  auto rejoined = admin.wait_for_leader(kTp, 20s, [](const PartitionMetadata& p) {
    return p.isr.size() == 3;
  });
  ASSERT_TRUE(rejoined) << "the restarted broker did not rejoin the ISR\n" << cluster.logs();
  producer.stop();

  auto records = admin.read_all(kTp);
  ASSERT_TRUE(records);
  auto read = values_of(*records);
  std::multiset<std::string> seen(read.begin(), read.end());
  for (const auto& v : producer.acknowledged) {
    EXPECT_EQ(seen.count(v), 1u) << v << " was acknowledged; read it " << seen.count(v) << " times";
  }
  for (const auto& v : producer.failed) EXPECT_EQ(seen.count(v), 0u) << v << " failed but is there";
  // Offsets are dense and every record carries the epoch of the leader that wrote it.
  for (size_t i = 0; i < records->size(); ++i) EXPECT_EQ((*records)[i].offset.value(), int64_t(i));
  EXPECT_GE(records->back().leader_epoch.value(), 1);
}

TEST(ClusterIntegration, BrokersKeepServingWhileTheControllerIsDownAndItReplaysOnRestart) {
  LocalCluster cluster;
  SyncClient client(cluster.client_config());
  create_and_wait(client, "events", 2, 3);
  ASSERT_TRUE(client.send(kTp, {"before"}, Acks::all).acknowledged());

  cluster.controller().signal(SIGKILL);
  cluster.controller().wait_for(5s);
  for (int i = 0; i < 20; ++i) {
    auto r = client.send(kTp, {"during-" + std::to_string(i)}, Acks::all);
    ASSERT_TRUE(r.acknowledged()) << errc_name(r.error) << "\n" << cluster.logs();
  }
  auto during = client.read_all(kTp);
  ASSERT_TRUE(during);
  EXPECT_EQ(during->size(), 21u);

  cluster.start_controller();
  // The replayed metadata still has the topic, its leaders and the brokers.
  std::optional<MetadataResponse> md;
  for (int i = 0; i < 100 && !md; ++i) {
    md = client.controller_metadata();
    if (!md) std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(md);
  EXPECT_EQ(md->partitions.size(), 2u);
  EXPECT_EQ(md->brokers.size(), 3u);
  create_and_wait(client, "after", 1, 3);
  EXPECT_TRUE(client.send({"after", PartitionIndex{0}}, {"x"}, Acks::all).acknowledged());
}

TEST(ClusterIntegration, EveryBrokerKilledAtOnceRecoversItsLog) {
  LocalCluster cluster;
  std::vector<std::string> acked;
  {
    SyncClient client(cluster.client_config());
    create_and_wait(client, "events", 1, 3);
    for (int i = 0; i < 100; ++i) {
      std::string v = "v" + std::to_string(i);
      if (client.send(kTp, {v}, Acks::all).acknowledged()) acked.push_back(v);
    }
  }
  ASSERT_EQ(acked.size(), 100u);
  for (int id = 1; id <= 3; ++id) cluster.broker(id).signal(SIGKILL);
  for (int id = 1; id <= 3; ++id) cluster.broker(id).wait_for(5s);
  for (int id = 1; id <= 3; ++id) cluster.start_broker(id);

  SyncClient client(cluster.client_config());
  ASSERT_TRUE(client.wait_for_leader(kTp, 20s)) << cluster.logs();
  std::optional<std::vector<Record>> records;
  for (int i = 0; i < 100; ++i) {
    records = client.read_all(kTp);
    if (records && records->size() >= acked.size()) break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(records);
  EXPECT_EQ(values_of(*records), acked);
}

TEST(ClusterIntegration, AMalformedFrameClosesOneConnectionAndTheBrokerKeepsServing) {
  LocalCluster cluster;
  SyncClient client(cluster.client_config());
  create_and_wait(client, "events", 1, 3);
  auto leader = client.wait_for_leader(kTp, 5s);
  ASSERT_TRUE(leader);
  Endpoint ep;
  for (const auto& b : client.metadata()->brokers) {
    if (b.id == leader->leader) ep = b.client_endpoint;
  }

  asio::io_context io;
  asio::ip::tcp::socket raw(io);
  raw.connect({asio::ip::make_address(ep.host), ep.port});
  const char garbage[] = {0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 1, 'j', 'u', 'n', 'k'};
  asio::write(raw, asio::buffer(garbage, sizeof garbage));
  char byte;
  std::error_code ec;
  raw.read_some(asio::buffer(&byte, 1), ec);
  EXPECT_EQ(ec, asio::error::eof) << "the broker should close the connection";

  EXPECT_TRUE(client.send(kTp, {"still-serving"}, Acks::all).acknowledged());
  EXPECT_EQ(cluster.broker(leader->leader.value()).wait_for(0ms), -1) << "the broker died";
  EXPECT_NE(cluster.logs().find("event=bad_frame"), std::string::npos) << "not logged";
}

// Negative control: acks=1 acknowledges what only the leader has. Followers paused (still in the
// ISR: the pause is shorter than replica.lag.time.max.ms), the leader acknowledges, dies, and a
// follower that never saw the writes is elected cleanly. The same with acks=all never acknowledges
// those writes.
TEST(ClusterIntegration, AcksOneLosesAcknowledgedWritesWhereAcksAllDoesNot) {
  LocalClusterOptions options;
  options.min_insync_replicas = 1;
  options.replica_lag_time_max_ms = 30000;
  // Long enough that the paused followers are not fenced (fencing would drop them from the ISR and
  // leave no clean leader at all).
  options.session_timeout_ms = 6000;
  options.heartbeat_interval_ms = 500;
  for (Acks acks : {Acks::leader, Acks::all}) {
    LocalCluster cluster(options);
    ClientConfig config = cluster.client_config();
    config.request_timeout = 500ms;  // each acks=all send waits this long, then is unknown
    config.delivery_timeout = 500ms;
    SyncClient client(config);
    create_and_wait(client, "events", 1, 3);
    ASSERT_TRUE(client.send(kTp, {"replicated"}, Acks::all).acknowledged());
    int leader = client.wait_for_leader(kTp, 5s)->leader.value();
    for (int id = 1; id <= 3; ++id) {
      if (id != leader) cluster.broker(id).signal(SIGSTOP);
    }
    std::vector<std::string> acked;
    auto paused_at = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) {
      std::string v = "only-on-leader-" + std::to_string(i);
      auto r = client.send(kTp, {v}, acks);
      if (r.acknowledged()) acked.push_back(v);
    }
    ASSERT_LT(std::chrono::steady_clock::now() - paused_at, 5s) << "the pause outlived the session";
    cluster.broker(leader).signal(SIGKILL);
    cluster.broker(leader).wait_for(5s);
    for (int id = 1; id <= 3; ++id) {
      if (id != leader) cluster.broker(id).signal(SIGCONT);
    }
    ASSERT_TRUE(client.wait_for_leader(kTp, 15s, [&](const PartitionMetadata& p) {
      return p.leader.value() != leader;
    })) << cluster.logs();
    auto records = client.read_all(kTp);
    ASSERT_TRUE(records);
    auto read = values_of(*records);
    std::set<std::string> seen(read.begin(), read.end());
    size_t lost = 0;
    for (const auto& v : acked) lost += seen.count(v) == 0;
    if (acks == Acks::leader) {
      EXPECT_EQ(acked.size(), 5u);
      EXPECT_EQ(lost, 5u) << "acks=1 writes only the dead leader had should be gone";
    } else {
      EXPECT_TRUE(acked.empty()) << "acks=all must not acknowledge what followers lack";
      EXPECT_EQ(lost, 0u);
    }
    EXPECT_EQ(seen.count("replicated"), 1u);
  }
}

}  // namespace
}  // namespace faultline::cluster
