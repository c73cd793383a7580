// The Kafka Metadata client (kafka/metadata_client.h) against the mini-cluster's Kafka listener: it
// sees what faultline's own client sees, follows a leader kill to the new leader and epoch, and
// answers from another broker when the first bootstrap broker or the connected one is dead.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "faultline/cluster/kafka/metadata_client.h"
#include "local_cluster.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
using testing::LocalCluster;

constexpr int kBrokers = 3;

std::vector<Endpoint> kafka_endpoints(const LocalCluster& cluster) {
  std::vector<Endpoint> out;
  const std::string list = cluster.kafka_bootstrap();
  for (size_t start = 0; start <= list.size();) {
    const size_t comma = std::min(list.find(',', start), list.size());
    Endpoint e;
    EXPECT_TRUE(parse_endpoint(std::string_view(list).substr(start, comma - start), e)) << list;
    out.push_back(e);
    start = comma + 1;
  }
  return out;
}

void create_topic(LocalCluster& cluster, const std::string& topic, int partitions) {
  SyncClient admin(cluster.client_config());
  ASSERT_EQ(admin.create_topic(topic, partitions, 3).error, errc::none);
  for (int p = 0; p < partitions; ++p)
    ASSERT_TRUE(admin.wait_for_leader({topic, PartitionIndex{p}}, 10s,
                                      [](const auto& m) { return m.isr.size() == 3; }))
        << "partition " << p << " has no leader with a full ISR";
}

// The partitions of `topic`, one line each, so that a mismatch prints readably.
std::vector<std::string> describe(const std::vector<PartitionMetadata>& partitions,
                                  const std::string& topic) {
  std::vector<std::string> out;
  for (const PartitionMetadata& p : partitions)
    if (p.tp.topic == topic)
      out.push_back(fmt::format("{}-{} error={} leader={} epoch={} replicas={} isr={}", topic,
                                p.tp.partition, errc_name(p.error), p.leader, p.leader_epoch,
                                p.replicas, p.isr));
  return out;
}

const PartitionMetadata* find(const MetadataResponse& m, const TopicPartition& tp) {
  for (const PartitionMetadata& p : m.partitions)
    if (p.tp == tp)
      return &p;
  return nullptr;
}

const BrokerMetadata* find(const MetadataResponse& m, BrokerId id) {
  for (const BrokerMetadata& b : m.brokers)
    if (b.id == id)
      return &b;
  return nullptr;
}

TEST(KafkaMetadataClient, SeesWhatFaultlinesOwnClientSees) {
  LocalCluster cluster;
  create_topic(cluster, "watched", 3);
  const std::vector<Endpoint> bootstrap = kafka_endpoints(cluster);
  KafkaMetadataClient client(bootstrap, 2s);
  SyncClient admin(cluster.client_config());

  // The brokers apply the controller's metadata a moment after it commits: compare until both
  // agree, and show the last of both when they never do.
  std::vector<std::string> kafka_view;
  std::vector<std::string> own_view;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  std::optional<kafka::MetadataResponse> answer;
  for (;;) {
    answer = client.fetch(std::vector<std::string>{"watched"});
    ASSERT_TRUE(answer) << "no broker answered";
    const auto own = admin.controller_metadata();
    ASSERT_TRUE(own);
    kafka_view = describe(from_kafka_metadata(*answer, kBrokers).partitions, "watched");
    own_view = describe(own->partitions, "watched");
    if (kafka_view == own_view || std::chrono::steady_clock::now() > deadline)
      break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(kafka_view, own_view);
  EXPECT_EQ(kafka_view.size(), 3u);

  ASSERT_EQ(answer->brokers.size(), 3u);
  std::set<int32_t> ids;
  for (const kafka::MetadataBroker& b : answer->brokers) {
    ids.insert(b.node_id);
    EXPECT_EQ((Endpoint{b.host, static_cast<uint16_t>(b.port)}), bootstrap.at(b.node_id - 1));
  }
  EXPECT_EQ(ids, (std::set<int32_t>{1, 2, 3}));
  for (const BrokerMetadata& b : from_kafka_metadata(*answer, kBrokers).brokers)
    EXPECT_FALSE(b.fenced) << b.id.value();

  // Every topic when asked for none in particular; an unknown one is reported, not created.
  const auto all = client.fetch(std::nullopt);
  ASSERT_TRUE(all);
  EXPECT_EQ(describe(from_kafka_metadata(*all, kBrokers).partitions, "watched").size(), 3u);
  const auto unknown = client.fetch(std::vector<std::string>{"nobody-made-this"});
  ASSERT_TRUE(unknown);
  ASSERT_EQ(unknown->topics.size(), 1u);
  EXPECT_EQ(unknown->topics[0].error_code, static_cast<int16_t>(errc::unknown_topic_or_partition));
}

TEST(KafkaMetadataClient, FollowsALeaderKillToTheNewLeaderAndEpoch) {
  LocalCluster cluster;
  create_topic(cluster, "failover", 1);
  const TopicPartition tp{"failover", PartitionIndex{0}};
  KafkaMetadataClient client(kafka_endpoints(cluster), 2s);
  SyncClient admin(cluster.client_config());
  const auto before = admin.wait_for_leader(tp, 5s);
  ASSERT_TRUE(before);
  const BrokerId killed = before->leader;
  ASSERT_TRUE(client.fetch(std::vector<std::string>{"failover"}));

  cluster.broker(killed.value()).kill_and_reap();
  std::optional<MetadataResponse> after;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (const auto answer = client.fetch(std::vector<std::string>{"failover"})) {
      const MetadataResponse view = from_kafka_metadata(*answer, kBrokers);
      const PartitionMetadata* p = find(view, tp);
      if (p != nullptr && p->leader != kNoBroker && p->leader != killed) {
        after = view;
        break;
      }
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(after) << "no other leader within 15 s\n" << cluster.logs();
  const PartitionMetadata& p = *find(*after, tp);
  EXPECT_GT(p.leader_epoch.value(), before->leader_epoch.value());
  EXPECT_FALSE(p.isr.contains(killed)) << fmt::format("{}", p.isr);
  // The controller fences the dead broker before it elects a new leader, so the answer that
  // shows the new leader no longer lists it.
  ASSERT_TRUE(find(*after, killed));
  EXPECT_TRUE(find(*after, killed)->fenced);
  for (BrokerId id : {BrokerId{1}, BrokerId{2}, BrokerId{3}}) {
    if (id != killed) {
      EXPECT_FALSE(find(*after, id)->fenced) << id.value();
    }
  }
}

TEST(KafkaMetadataClient, AnswersFromAnotherBrokerWhenOneIsDead) {
  LocalCluster cluster;
  create_topic(cluster, "spare", 1);
  const std::vector<Endpoint> bootstrap = kafka_endpoints(cluster);
  cluster.broker(1).kill_and_reap();  // the first bootstrap broker

  KafkaMetadataClient client(bootstrap, 2s);
  const auto first = client.fetch(std::vector<std::string>{"spare"});
  ASSERT_TRUE(first) << "no answer with the first bootstrap broker dead";
  ASSERT_TRUE(client.connected_to());
  EXPECT_NE(*client.connected_to(), bootstrap[0]);

  // The connection is kept while its broker answers ...
  const Endpoint connected = *client.connected_to();
  ASSERT_TRUE(client.fetch(std::vector<std::string>{"spare"}));
  EXPECT_EQ(client.connected_to(), connected);

  // ... and replaced at once when it dies: the last broker alive answers.
  cluster.broker(connected == bootstrap[1] ? 2 : 3).kill_and_reap();
  const auto last = client.fetch(std::vector<std::string>{"spare"});
  ASSERT_TRUE(last) << "no answer from the one broker left";
  ASSERT_TRUE(client.connected_to());
  EXPECT_EQ(*client.connected_to(), connected == bootstrap[1] ? bootstrap[2] : bootstrap[1]);
}

}  // namespace
}  // namespace faultline::cluster
