// The Kafka gateway against a fake broker: what each Kafka request becomes in the cluster's own
// API, and how the answers come back (error codes, metadata, the Fetch long-poll, KIP-74 budget).
#include "broker/kafka_gateway.h"

#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include "faultline/cluster/kafka/records.h"
#include "faultline/cluster/log/record_batch.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;

// Answers like a broker leading partitions 0 and 1 of "t": produce assigns offsets; fetch serves
// what `logs` holds; a wait_for_any "delivers" `arriving` into the log.
class FakeBroker : public KafkaBackend {
 public:
  std::map<int, std::string> logs;  // internal batches per partition
  std::map<int, std::string> arriving;
  std::map<int, errc> produce_errors;
  std::vector<Request> seen;
  int waits = 0;

  asio::awaitable<Response> handle(Request request, ListenerKind listener) override {
    EXPECT_EQ(listener, ListenerKind::client);
    seen.push_back(request);
    if (auto* p = std::get_if<ProduceRequest>(&request)) {
      ProduceResponse r;
      r.error = produce_errors.count(p->tp.partition.value())
                    ? produce_errors[p->tp.partition.value()]
                    : errc::none;
      r.base_offset = Offset{100};
      co_return r;
    }
    if (auto* f = std::get_if<FetchRequest>(&request)) {
      FetchResponse r;
      r.high_watermark = 10;
      r.log_start_offset = 0;
      if (f->tp.partition.value() > 1) {
        r.error = errc::not_leader_or_follower;
        co_return r;
      }
      std::string& log = logs[f->tp.partition.value()];
      r.records = SharedBytes(log.substr(0, static_cast<size_t>(f->max_bytes)));
      co_return r;
    }
    if (auto* l = std::get_if<ListOffsetsRequest>(&request)) {
      ListOffsetsResponse r;
      r.offset = l->which == OffsetSpec::earliest ? 0 : 10;
      co_return r;
    }
    MetadataResponse m;
    for (int id = 1; id <= 3; ++id) {
      BrokerMetadata b;
      b.id = BrokerId{id};
      b.fenced = id == 3;
      b.kafka_endpoint = Endpoint{"198.18.0." + std::to_string(id), 9093};
      m.brokers.push_back(b);
    }
    for (int p = 0; p < 2; ++p) {
      PartitionMetadata pm;
      pm.tp = {"t", PartitionIndex{p}};
      pm.leader = p == 0 ? BrokerId{1} : kNoBroker;
      pm.error = p == 0 ? errc::none : errc::leader_not_available;
      pm.leader_epoch = LeaderEpoch{4};
      pm.replicas = ReplicaList{BrokerId{1}, BrokerId{2}, BrokerId{3}};
      pm.isr = ReplicaList{BrokerId{1}, BrokerId{2}};
      m.partitions.push_back(pm);
    }
    co_return m;
  }

  std::vector<std::tuple<std::string, int32_t, int32_t>> created;
  errc create_error = errc::none;
  asio::awaitable<errc> create_topic(std::string name, int32_t partitions,
                                     int32_t replication_factor) override {
    created.emplace_back(name, partitions, replication_factor);
    co_return create_error;
  }

  asio::awaitable<void> wait_for_any(const std::vector<TopicPartition>& tps,
                                     std::chrono::milliseconds max_wait) override {
    ++waits;
    for (auto& [p, bytes] : arriving)
      logs[p] += bytes;
    arriving.clear();
    co_return;
  }
};

template <typename T>
T run(KafkaGateway& gateway, kafka::Request request) {
  asio::io_context io;
  std::optional<kafka::Response> out;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { out = co_await gateway.handle(std::move(request)); },
      asio::detached);
  io.run();
  EXPECT_TRUE(out);
  return out ? std::get<T>(*out) : T{};
}

// An internal batch of `values` stamped at `base`.
std::string internal_batch(int64_t base, const std::vector<std::string>& values) {
  BatchBuilder b(1700000000000);
  for (const auto& v : values)
    b.add(std::nullopt, v);
  std::string batch = b.finish();
  stamp_batch(std::span<char>(batch.data(), batch.size()), Offset{base}, LeaderEpoch{4});
  return batch;
}

std::string kafka_records(const std::vector<std::string>& values) {
  std::string kafka;
  EXPECT_EQ(kafka::to_kafka_batches(internal_batch(0, values), kafka), 0);
  return kafka;
}

TEST(KafkaErrors, LocalCodesBecomeWhatAClientMayConclude) {
  struct Case {
    errc in;
    int16_t out;
  };
  for (auto [in, out] : std::vector<Case>{
           {errc::none, 0},
           {errc::not_leader_or_follower, 6},
           {errc::not_enough_replicas, 19},
           {errc::not_enough_replicas_after_append, 20},
           {errc::fenced_leader_epoch, 74},
           {errc::offset_out_of_range, 1},
           {errc::request_timed_out, 7},
           {errc::unknown_topic_or_partition, 3},
           {errc::storage_error, 56},
           // The outcome of the append is unknown: a timeout, which clients report as "possibly
           // persisted", never NOT_LEADER_OR_FOLLOWER (a definite, retriable failure).
           {errc::leadership_lost_after_append, 7},
           {errc::io_error, 7},
           {errc::shutting_down, 6},
           {errc::malformed_frame, 2},
           {static_cast<errc>(1999), -1},
       })
    EXPECT_EQ(to_kafka_error(in), out) << errc_name(in);
}

TEST(KafkaMetadata, FencedBrokersAreLeftOutAndTheirReplicasListedOffline) {
  FakeBroker broker;
  KafkaGateway gateway(broker);
  auto md = run<kafka::MetadataResponse>(gateway, kafka::MetadataRequest{});
  ASSERT_EQ(md.brokers.size(), 2u);
  EXPECT_EQ(md.brokers[0].host, "198.18.0.1");
  EXPECT_EQ(md.brokers[0].port, 9093);
  EXPECT_EQ(md.controller_id, 1) << "an available broker, which forwards admin requests";
  ASSERT_EQ(md.topics.size(), 1u);
  ASSERT_EQ(md.topics[0].partitions.size(), 2u);
  const auto& p0 = md.topics[0].partitions[0];
  EXPECT_EQ(p0.leader_id, 1);
  EXPECT_EQ(p0.leader_epoch, 4);
  EXPECT_EQ(p0.replica_nodes, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(p0.isr_nodes, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(p0.offline_replicas, (std::vector<int32_t>{3}));
  EXPECT_EQ(md.topics[0].partitions[1].error_code, 5);  // LEADER_NOT_AVAILABLE
  EXPECT_EQ(md.topics[0].partitions[1].leader_id, -1);
}

TEST(KafkaMetadata, AnEmptyTopicListMeansNoneAndAnUnknownTopicIsNamed) {
  FakeBroker broker;
  KafkaGateway gateway(broker);
  kafka::MetadataRequest none;
  none.topics = std::vector<std::string>{};
  EXPECT_TRUE(run<kafka::MetadataResponse>(gateway, none).topics.empty());

  MetadataResponse cluster;
  PartitionMetadata missing;
  missing.tp = {"nope", PartitionIndex{0}};
  missing.error = errc::unknown_topic_or_partition;
  cluster.partitions.push_back(missing);
  auto md = to_kafka_metadata(cluster, std::vector<std::string>{"nope"});
  ASSERT_EQ(md.topics.size(), 1u);
  EXPECT_EQ(md.topics[0].name, "nope");
  EXPECT_EQ(md.topics[0].error_code, 3);
  EXPECT_TRUE(md.topics[0].partitions.empty());
}

TEST(KafkaProduce, EachPartitionIsOneProduceOfTheBrokerWithItsOwnAnswer) {
  FakeBroker broker;
  broker.produce_errors[1] = errc::not_enough_replicas;
  KafkaGateway gateway(broker);
  kafka::ProduceRequest req;
  req.acks = -1;
  req.timeout_ms = 1500;
  req.topics.push_back({"t", {{0, kafka_records({"a", "b"})}, {1, kafka_records({"c"})}}});
  auto resp = run<kafka::ProduceResponse>(gateway, req);
  ASSERT_EQ(resp.topics.size(), 1u);
  ASSERT_EQ(resp.topics[0].partitions.size(), 2u);
  EXPECT_EQ(resp.topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(resp.topics[0].partitions[0].base_offset, 100);
  EXPECT_EQ(resp.topics[0].partitions[1].error_code, 19);
  EXPECT_EQ(resp.topics[0].partitions[1].base_offset, -1);
  ASSERT_EQ(broker.seen.size(), 2u);
  const auto& first = std::get<ProduceRequest>(broker.seen[0]);
  EXPECT_EQ(first.acks, Acks::all);
  EXPECT_EQ(first.timeout_ms, 1500);
  std::vector<Record> records;
  ASSERT_EQ(decode_records(first.batch, records), errc::none);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].value, "b");
}

TEST(KafkaProduce, BadRecordsAndBadAcksAreRefusedWithoutReachingTheLog) {
  FakeBroker broker;
  KafkaGateway gateway(broker);
  kafka::ProduceRequest req;
  req.topics.push_back({"t", {{0, "not a record batch at all, too short"}}});
  auto resp = run<kafka::ProduceResponse>(gateway, req);
  EXPECT_EQ(resp.topics[0].partitions[0].error_code, 2);  // CORRUPT_MESSAGE
  req.topics[0].partitions[0].records = kafka_records({"x"});
  req.acks = 2;
  resp = run<kafka::ProduceResponse>(gateway, req);
  EXPECT_EQ(resp.topics[0].partitions[0].error_code, 42);  // INVALID_REQUEST
  EXPECT_TRUE(broker.seen.empty());
}

TEST(KafkaProduce, AcksZeroGetsNoAnswer) {
  FakeBroker broker;
  KafkaGateway gateway(broker);
  kafka::ProduceRequest req;
  req.acks = 0;
  req.topics.push_back({"t", {{0, kafka_records({"a"})}}});
  asio::io_context io;
  bool answered = true;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { answered = (co_await gateway.handle(req)).has_value(); },
      asio::detached);
  io.run();
  EXPECT_FALSE(answered);
  ASSERT_EQ(broker.seen.size(), 1u);
  EXPECT_EQ(std::get<ProduceRequest>(broker.seen[0]).acks, Acks::none);
}

TEST(KafkaFetch, AnEmptyFetchWaitsForAnyPartitionThenReadsAgain) {
  FakeBroker broker;
  broker.arriving[1] = internal_batch(0, {"late"});
  KafkaGateway gateway(broker);
  kafka::FetchRequest req;
  req.max_wait_ms = 500;
  req.topics.push_back({"t", {{0, -1, 0, -1, 1 << 20}, {1, -1, 0, -1, 1 << 20}}});
  auto resp = run<kafka::FetchResponse>(gateway, req);
  EXPECT_EQ(broker.waits, 1);
  ASSERT_EQ(resp.topics[0].partitions.size(), 2u);
  EXPECT_TRUE(resp.topics[0].partitions[0].records.empty());
  const auto& p1 = resp.topics[0].partitions[1];
  EXPECT_EQ(p1.high_watermark, 10);
  EXPECT_EQ(p1.last_stable_offset, 10);
  std::string internal;
  int32_t count = 0;
  ASSERT_EQ(kafka::to_internal_batch(p1.records, internal, count), 0);
  EXPECT_EQ(count, 1);
}

TEST(KafkaFetch, DataOrAnErrorAnswersAtOnceAndTheBudgetCapsLaterPartitions) {
  FakeBroker broker;
  broker.logs[0] = internal_batch(0, {std::string(300, 'a')});
  broker.logs[1] = internal_batch(0, {std::string(300, 'b')});
  KafkaGateway gateway(broker);
  kafka::FetchRequest req;
  req.max_wait_ms = 500;
  req.max_bytes = 100;  // smaller than the first batch: KIP-74 serves it whole anyway
  req.topics.push_back(
      {"t", {{0, -1, 0, -1, 1 << 20}, {1, -1, 0, -1, 1 << 20}, {2, -1, 0, -1, 1 << 20}}});
  auto resp = run<kafka::FetchResponse>(gateway, req);
  EXPECT_EQ(broker.waits, 0);
  EXPECT_FALSE(resp.topics[0].partitions[0].records.empty());
  EXPECT_TRUE(resp.topics[0].partitions[1].records.empty());  // over the budget
  EXPECT_EQ(resp.topics[0].partitions[2].error_code, 6);
}

TEST(KafkaFetch, AFollowerFetchIsRefusedOnTheClientListener) {
  FakeBroker broker;
  KafkaGateway gateway(broker);
  kafka::FetchRequest req;
  req.replica_id = 2;
  req.topics.push_back({"t", {{0, -1, 0, -1, 1 << 20}}});
  auto resp = run<kafka::FetchResponse>(gateway, req);
  EXPECT_EQ(resp.topics[0].partitions[0].error_code, 42);
  EXPECT_TRUE(broker.seen.empty());
}

TEST(KafkaListOffsets, LatestIsTheHighWatermarkAndTimestampsAreRefused) {
  FakeBroker broker;
  KafkaGateway gateway(broker);
  kafka::ListOffsetsRequest req;
  req.topics.push_back({"t", {{0, -1, -1}, {0, -1, -2}, {0, -1, 1700000000000}}});
  auto resp = run<kafka::ListOffsetsResponse>(gateway, req);
  ASSERT_EQ(resp.topics[0].partitions.size(), 3u);
  EXPECT_EQ(resp.topics[0].partitions[0].offset, 10);
  EXPECT_EQ(std::get<ListOffsetsRequest>(broker.seen[0]).which, OffsetSpec::high_watermark);
  EXPECT_EQ(resp.topics[0].partitions[1].offset, 0);
  EXPECT_EQ(resp.topics[0].partitions[2].error_code, 42);
}

TEST(KafkaCreateTopics, WhatTheControllerCanDoIsForwardedAndTheRestRefusedWithAReason) {
  FakeBroker broker;
  KafkaGateway gateway(broker);
  kafka::CreateTopicsRequest req;
  req.topics = {{"ok", 6, 3, 0, 0},
                {"placed", 3, 3, 3, 0},
                {"configured", 3, 3, 0, 1},
                {"default-size", -1, 3, 0, 0},
                {"default-rf", 3, -1, 0, 0}};
  auto resp = run<kafka::CreateTopicsResponse>(gateway, req);
  ASSERT_EQ(resp.topics.size(), 5u);
  EXPECT_EQ(resp.topics[0].error_code, 0);
  EXPECT_EQ(resp.topics[1].error_code, 39);  // INVALID_REPLICA_ASSIGNMENT
  EXPECT_EQ(resp.topics[2].error_code, 40);  // INVALID_CONFIG
  EXPECT_EQ(resp.topics[3].error_code, 37);  // INVALID_PARTITIONS
  EXPECT_EQ(resp.topics[4].error_code, 38);  // INVALID_REPLICATION_FACTOR
  for (size_t i = 1; i < 5; ++i)
    EXPECT_TRUE(resp.topics[i].error_message) << i;
  ASSERT_EQ(broker.created.size(), 1u);
  EXPECT_EQ(broker.created[0], std::make_tuple(std::string("ok"), 6, 3));

  broker.create_error = errc::topic_already_exists;
  req.topics = {{"ok", 6, 3, 0, 0}};
  EXPECT_EQ(run<kafka::CreateTopicsResponse>(gateway, req).topics[0].error_code, 36);
  broker.create_error = errc::network_exception;  // the controller is unreachable
  EXPECT_EQ(run<kafka::CreateTopicsResponse>(gateway, req).topics[0].error_code, 7);
  req.validate_only = true;
  EXPECT_EQ(run<kafka::CreateTopicsResponse>(gateway, req).topics[0].error_code, 42);
  EXPECT_EQ(broker.created.size(), 3u);
}

}  // namespace
}  // namespace faultline::cluster
