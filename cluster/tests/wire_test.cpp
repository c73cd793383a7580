#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "faultline/cluster/wire/codec.h"

namespace faultline::cluster {
namespace {

std::span<const char> body(const std::string& frame) {
  return std::span<const char>(frame).subspan(kFrameSizeBytes);
}

ProduceRequest sample_produce() {
  ProduceRequest r;
  r.tp = {"orders", PartitionIndex{3}};
  r.acks = Acks::all;
  r.timeout_ms = 1500;
  r.batch = SharedBytes(std::string("\x00\x01\x02 batch bytes", 15));
  return r;
}

FetchMetadataLogResponse sample_metadata_log() {
  FetchMetadataLogResponse r;
  r.durable_offset = MetadataOffset{7};
  r.entries.push_back({MetadataOffset{6}, BrokerRegistered{BrokerId{2},
                                                           BrokerEpoch{6},
                                                           42,
                                                           Endpoint{"198.18.0.2", 9093},
                                                           Endpoint{"198.19.0.2", 9092},
                                                           std::nullopt,
                                                           {}}});
  r.entries.push_back(
      {MetadataOffset{7}, TopicCreated{"orders", {ReplicaList{1, 2, 3}, ReplicaList{2, 3, 1}}}});
  r.snapshot = {1, 2, 3, 0, 255};
  return r;
}

ReplicaFetchRequest sample_replica_fetch() {
  ReplicaFetchRequest r;
  r.replica_id = 3;
  r.broker_epoch = 12;
  r.max_wait_ms = 500;
  r.max_bytes = 16 << 20;
  r.partition_max_bytes = 1 << 20;
  r.partitions.push_back({{"orders", PartitionIndex{0}}, 4, 100, 3, 90});
  r.partitions.push_back({{"orders", PartitionIndex{7}}, 2, 0, -1, -1});
  return r;
}

ReplicaFetchResponse sample_replica_fetch_response() {
  ReplicaFetchResponse r;
  ReplicaFetchPartitionResponse data;
  data.tp = {"orders", PartitionIndex{0}};
  data.high_watermark = 95;
  data.log_start_offset = 0;
  data.log_end_offset = 120;
  data.records = SharedBytes(std::string("\x00batch\x01", 7));
  ReplicaFetchPartitionResponse diverged;
  diverged.tp = {"orders", PartitionIndex{7}};
  diverged.diverging = DivergingEpoch{1, 40};
  ReplicaFetchPartitionResponse fenced;
  fenced.tp = {"orders", PartitionIndex{9}};
  fenced.error = errc::fenced_leader_epoch;
  r.partitions = {data, diverged, fenced};
  return r;
}

TEST(Wire, EveryRequestRoundTrips) {
  std::vector<Request> requests = {
      sample_produce(),
      FetchRequest{2, 17, {"t", PartitionIndex{0}}, 4, 100, 3, 1 << 20, 500},
      ListOffsetsRequest{{"t", PartitionIndex{1}}, OffsetSpec::high_watermark},
      OffsetForLeaderEpochRequest{{"t", PartitionIndex{1}}, 5, 4},
      MetadataRequest{{"a", "b"}, 41, 500},
      ApiVersionsRequest{},
      BrokerRegistrationRequest{BrokerId{3}, 99, {"198.18.0.3", 9093}, {"198.19.0.3", 9092}, {}},
      BrokerHeartbeatRequest{BrokerId{3}, BrokerEpoch{12}, MetadataOffset{40}, true, 8123,
                             "fsync: Input/output error"},
      FetchMetadataLogRequest{MetadataOffset{41}, 4096, 500},
      AlterPartitionRequestMsg(AlterPartitionRequest{{"t", PartitionIndex{0}},
                                                     BrokerId{1},
                                                     BrokerEpoch{5},
                                                     LeaderEpoch{2},
                                                     PartitionEpoch{9},
                                                     ReplicaList{1, 2}}),
      CreateTopicRequest{"orders", 6, 3},
      ElectLeadersRequest{ElectionType::unclean, {{"t", PartitionIndex{0}}}},
      DemoteBrokerRequest{BrokerId{2}, "unreachable from clients"},
      PromoteBrokerRequest{BrokerId{2}},
      ReassignRequest{{"t", PartitionIndex{0}}, ReplicaList{4, 5, 6}},
      SetConfigRequest{"unclean.leader.election.enable", "true"},
      BrokerHealthRequest{},
      sample_replica_fetch(),
      QuorumVoteRequest(VoteRequest{7, 2, MetadataOffset{41}, 6, true}),
      QuorumAppendRequest(AppendRequest{
          7,
          2,
          MetadataOffset{40},
          6,
          {MetadataEntry{MetadataOffset{41}, ConfigChanged{"faultline.marker", "w1-1"}, 7}},
          MetadataOffset{40}}),
      DescribeQuorumRequest{},
      QuorumInstallSnapshotRequest{7, 2, MetadataOffset{99}, 6, {0x46, 0x4c, 0x00, 0xff, 0x7f}},
      AlterPartitionsRequest{
          {AlterPartitionRequestMsg(AlterPartitionRequest{{"t", PartitionIndex{0}},
                                                          BrokerId{1},
                                                          BrokerEpoch{3},
                                                          LeaderEpoch{2},
                                                          PartitionEpoch{5},
                                                          ReplicaList{1, 2}}),
           AlterPartitionRequestMsg(AlterPartitionRequest{{"u", PartitionIndex{7}},
                                                          BrokerId{1},
                                                          BrokerEpoch{3},
                                                          LeaderEpoch{0},
                                                          PartitionEpoch{1},
                                                          ReplicaList{1, 3, 2}})}},
  };
  ASSERT_EQ(requests.size(), std::variant_size_v<Request>) << "a request type has no test";
  for (const auto& request : requests) {
    std::string frame;
    encode_request(77, request, frame);
    auto decoded = decode_request(body(frame));
    ASSERT_EQ(decoded.error, errc::none) << api_name(api_key(request));
    EXPECT_EQ(decoded.header.correlation_id, 77);
    EXPECT_EQ(decoded.request.index(), request.index());
    std::string again;
    encode_request(77, decoded.request, again);
    EXPECT_EQ(again, frame) << api_name(api_key(request));
  }
}

TEST(Wire, ResponsesCarryTheirFields) {
  FetchResponse fetch;
  fetch.high_watermark = 10;
  fetch.diverging = DivergingEpoch{3, 120};
  fetch.records = SharedBytes("records");
  MetadataResponse md;
  md.controller = {"198.18.0.10", 9090};
  md.brokers.push_back(
      {BrokerId{1}, {"c", 1}, {"i", 2}, false, true, "slow disk", 250000, "", true, {}});
  PartitionMetadata pm;
  pm.tp = {"t", PartitionIndex{2}};
  pm.leader = BrokerId{1};
  pm.isr = ReplicaList{1, 3};
  md.partitions.push_back(pm);

  BrokerHealthResponse health;
  health.broker_id = BrokerId{2};
  health.canary_run = 0x1234'5678'9abcULL;
  health.canary_interval_ms = 200;
  health.samples = {{41, 900, 250'000}, {42, 1'200, 50'000}};
  health.pending_seq = 43;
  health.pending_us = 3'000'000;
  health.canary_error = "fsync: Input/output error";

  ProduceResponse produce;
  produce.base_offset = Offset{120};
  produce.leader_epoch = LeaderEpoch{7};

  for (const Response& r :
       std::vector<Response>{produce, fetch, md, sample_metadata_log(), health}) {
    std::string frame;
    encode_response(5, r, frame);
    auto decoded = decode_response(body(frame));
    ASSERT_EQ(decoded.error, errc::none);
    EXPECT_EQ(decoded.correlation_id, 5);
    std::string again;
    encode_response(5, decoded.response, again);
    EXPECT_EQ(again, frame);
  }
  std::string frame;
  encode_response(1, fetch, frame);
  auto f = std::get<FetchResponse>(decode_response(body(frame)).response);
  ASSERT_TRUE(f.diverging);
  EXPECT_EQ(f.diverging->end_offset, 120);
  EXPECT_EQ(f.records, "records");

  frame.clear();
  encode_response(1, produce, frame);
  auto pr = std::get<ProduceResponse>(decode_response(body(frame)).response);
  EXPECT_EQ(pr.base_offset, Offset{120});
  EXPECT_EQ(pr.leader_epoch, LeaderEpoch{7}) << "the epoch the leader acknowledged under";

  frame.clear();
  encode_response(1, md, frame);
  auto mr = std::get<MetadataResponse>(decode_response(body(frame)).response);
  ASSERT_EQ(mr.brokers.size(), 1u);
  EXPECT_TRUE(mr.brokers[0].shutting_down);
  EXPECT_TRUE(mr.brokers[0].demoted);

  DescribeQuorumResponse quorum;
  quorum.node_id = 1;
  quorum.role = "leader";
  quorum.leader = 1;
  quorum.epoch = 7;
  quorum.commit_offset = 40;
  quorum.last_offset = 41;
  quorum.voters = {{0, {"198.18.1.2", 9090}, 40, 12}, {1, {"198.18.1.3", 9090}, 41, 0}};
  frame.clear();
  encode_response(1, quorum, frame);
  auto q = std::get<DescribeQuorumResponse>(decode_response(body(frame)).response);
  EXPECT_EQ(q.role, "leader");
  EXPECT_EQ(q.epoch, 7);
  ASSERT_EQ(q.voters.size(), 2u);
  EXPECT_EQ(q.voters[0].endpoint, (Endpoint{"198.18.1.2", 9090}));
  EXPECT_EQ(q.voters[0].last_contact_ms, 12);

  frame.clear();
  encode_response(1, sample_metadata_log(), frame);
  auto m = std::get<FetchMetadataLogResponse>(decode_response(body(frame)).response);
  ASSERT_EQ(m.entries.size(), 2u);
  EXPECT_EQ(m.entries[1], sample_metadata_log().entries[1]);

  frame.clear();
  encode_response(1, health, frame);
  auto h = std::get<BrokerHealthResponse>(decode_response(body(frame)).response);
  EXPECT_EQ(h.broker_id, BrokerId{2});
  EXPECT_EQ(h.canary_run, health.canary_run);
  ASSERT_EQ(h.samples.size(), 2u);
  EXPECT_EQ(h.samples[1].seq, 42);
  EXPECT_EQ(h.samples[1].latency_us, 1'200);
  EXPECT_EQ(h.samples[1].age_us, 50'000);
  EXPECT_EQ(h.pending_us, 3'000'000);
  EXPECT_EQ(h.canary_error, health.canary_error);
  // A sample count larger than the bytes left is refused before anything is allocated.
  std::string b(body(frame).begin(), body(frame).end());
  const size_t count_at = 6 + 2 + 4 + 8 + 4;  // header, error, broker, run, interval
  b[count_at] = 0x7f;
  EXPECT_EQ(decode_response(b).error, errc::malformed_frame);
}

TEST(Wire, ReplicaFetchCarriesEveryPartition) {
  std::string frame;
  encode_request(3, sample_replica_fetch(), frame);
  auto req = decode_request(body(frame));
  ASSERT_EQ(req.error, errc::none);
  EXPECT_EQ(api_name(req.header.api_key), "ReplicaFetch");
  const auto& r = std::get<ReplicaFetchRequest>(req.request);
  EXPECT_EQ(r.replica_id, 3);
  EXPECT_EQ(r.broker_epoch, 12);
  EXPECT_EQ(r.max_wait_ms, 500);
  EXPECT_EQ(r.partition_max_bytes, 1 << 20);
  ASSERT_EQ(r.partitions.size(), 2u);
  EXPECT_EQ(r.partitions[0].tp, (TopicPartition{"orders", PartitionIndex{0}}));
  EXPECT_EQ(r.partitions[0].current_leader_epoch, 4);
  EXPECT_EQ(r.partitions[0].fetch_offset, 100);
  EXPECT_EQ(r.partitions[0].last_fetched_epoch, 3);
  EXPECT_EQ(r.partitions[0].known_high_watermark, 90);
  EXPECT_EQ(r.partitions[1].tp.partition, PartitionIndex{7});
  EXPECT_EQ(r.partitions[1].last_fetched_epoch, -1);

  frame.clear();
  encode_response(3, sample_replica_fetch_response(), frame);
  auto resp = decode_response(body(frame));
  ASSERT_EQ(resp.error, errc::none);
  const auto& a = std::get<ReplicaFetchResponse>(resp.response);
  ASSERT_EQ(a.partitions.size(), 3u);
  EXPECT_EQ(a.partitions[0].high_watermark, 95);
  EXPECT_EQ(a.partitions[0].log_end_offset, 120);
  EXPECT_EQ(a.partitions[0].records, std::string("\x00batch\x01", 7));
  EXPECT_FALSE(a.partitions[0].diverging);
  ASSERT_TRUE(a.partitions[1].diverging);
  EXPECT_EQ(a.partitions[1].diverging->epoch, 1);
  EXPECT_EQ(a.partitions[1].diverging->end_offset, 40);
  EXPECT_EQ(a.partitions[2].error, errc::fenced_leader_epoch);

  // Every cut of either frame is refused, and so is a trailing byte.
  for (bool request : {true, false}) {
    frame.clear();
    if (request) {
      encode_request(3, sample_replica_fetch(), frame);
    } else {
      encode_response(3, sample_replica_fetch_response(), frame);
    }
    auto full = body(frame);
    for (size_t n = 0; n < full.size(); ++n) {
      auto error =
          request ? decode_request(full.first(n)).error : decode_response(full.first(n)).error;
      EXPECT_NE(error, errc::none) << (request ? "request" : "response") << " cut at " << n;
    }
    std::string longer(full.begin(), full.end());
    longer.push_back('x');
    EXPECT_EQ(request ? decode_request(longer).error : decode_response(longer).error,
              errc::malformed_frame);
  }
}

// Batches from the attachment threshold up are referenced by the frame, not copied into it, and
// the frame's bytes are exactly those of the copying encoder.
TEST(Wire, LargeBatchesAreAttachedToTheFrameNotCopied) {
  ReplicaFetchResponse resp;
  const SharedBytes big(std::string(OutFrame::kAttachMinBytes, 'b'));
  const SharedBytes bigger(std::string(3 * OutFrame::kAttachMinBytes + 5, 'c'));
  resp.partitions.resize(3);
  resp.partitions[0].records = big;
  resp.partitions[1].records = SharedBytes(std::string(OutFrame::kAttachMinBytes - 1, 's'));
  resp.partitions[2].records = bigger;
  OutFrame frame;
  encode_response(5, resp, frame);
  ASSERT_EQ(frame.attachments.size(), 2u) << "the batch below the threshold is copied";
  EXPECT_EQ(frame.attachments[0].bytes.data(), big.data());
  EXPECT_EQ(frame.attachments[1].bytes.data(), bigger.data());
  EXPECT_LT(frame.head.size(), OutFrame::kAttachMinBytes + 200);
  std::string copied;
  encode_response(5, resp, copied);
  EXPECT_EQ(frame.size(), copied.size());
  EXPECT_EQ(frame.flatten(), copied);
}

// Decoding a shared frame gives batches that are slices of it: no copy, and they keep the frame's
// storage alive after the frame itself is gone.
TEST(Wire, BatchesDecodedFromASharedFrameAreSlicesOfIt) {
  ProduceRequest req = sample_produce();
  req.batch = SharedBytes(std::string(10000, 'x'));
  std::string encoded;
  encode_request(8, req, encoded);
  auto frame = std::make_optional(SharedBytes(encoded.substr(kFrameSizeBytes)));
  DecodedRequest decoded = decode_request(*frame);
  ASSERT_EQ(decoded.error, errc::none);
  const SharedBytes batch = std::get<ProduceRequest>(decoded.request).batch;
  EXPECT_GE(batch.data(), frame->data());
  EXPECT_LE(batch.data() + batch.size(), frame->data() + frame->size());
  frame.reset();
  decoded = {};
  EXPECT_EQ(batch, std::string(10000, 'x'));
  // The copying decoder gives the same bytes in storage of their own.
  DecodedRequest copied = decode_request(body(encoded));
  const SharedBytes own = std::get<ProduceRequest>(copied.request).batch;
  EXPECT_EQ(own, batch);
  EXPECT_NE(own.data(), batch.data());
}

TEST(Wire, ReplicaFetchPartitionCountIsBoundedByTheFrame) {
  std::string frame;
  encode_request(1, sample_replica_fetch(), frame);
  std::string b(body(frame).begin(), body(frame).end());
  const size_t count_at = 8 + 4 + 8 + 4 + 4 + 4;  // header, replica, epoch, wait, max, part max
  ASSERT_EQ(b[count_at + 3], 2);
  b[count_at] = 0x7f;  // two billion partitions in a frame of a hundred bytes
  EXPECT_EQ(decode_request(b).error, errc::malformed_frame);
  b[count_at] = 0;
  b[count_at + 3] = 3;  // one more partition than the frame holds
  EXPECT_EQ(decode_request(b).error, errc::malformed_frame);
}

TEST(Wire, EveryTruncationAndTrailingByteIsMalformed) {
  std::string frame;
  encode_request(1, sample_produce(), frame);
  auto full = body(frame);
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_NE(decode_request(full.first(n)).error, errc::none) << "cut at " << n;
  }
  std::string longer(full.begin(), full.end());
  longer.push_back('x');
  EXPECT_EQ(decode_request(longer).error, errc::malformed_frame);
}

TEST(Wire, LengthsLargerThanTheFrameAreRefusedWithoutAllocating) {
  std::string frame;
  MetadataRequest req{{"x"}};
  encode_request(1, req, frame);
  // The topic count (right after the 8-byte header) claims two billion entries.
  std::string b(body(frame).begin(), body(frame).end());
  b[8] = 0x7f;
  EXPECT_EQ(decode_request(b).error, errc::malformed_frame);
}

TEST(Wire, UnknownApiKeysAndVersionsAreNamed) {
  std::string frame;
  encode_request(9, ApiVersionsRequest{}, frame);
  std::string b(body(frame).begin(), body(frame).end());
  b[0] = 0x70;  // api key 0x7005
  auto d = decode_request(b);
  EXPECT_EQ(d.error, errc::unsupported_version);
  EXPECT_EQ(d.header.correlation_id, 9);
  b[0] = 0;
  b[3] = 1;  // version 1
  EXPECT_EQ(decode_request(b).error, errc::unsupported_version);
}

TEST(Wire, FrameSizePrefixIsBounded) {
  uint32_t size = 0;
  std::array<char, 4> huge{0x7f, 0, 0, 0};
  EXPECT_EQ(decode_frame_size(huge, kMaxFrameBytes, size), errc::frame_too_large);
  std::array<char, 4> tiny{0, 0, 0, 2};
  EXPECT_EQ(decode_frame_size(tiny, kMaxFrameBytes, size), errc::malformed_frame);
  std::array<char, 4> fine{0, 0, 1, 0};
  EXPECT_EQ(decode_frame_size(fine, kMaxFrameBytes, size), errc::none);
  EXPECT_EQ(size, 256u);
}

TEST(Wire, ErrorResponsesMatchTheirRequest) {
  Request req = CreateTopicRequest{"t", 1, 1};
  Response resp = error_response_for(req, errc::not_controller);
  EXPECT_TRUE(std::holds_alternative<CreateTopicResponse>(resp));
  EXPECT_EQ(response_error(resp), errc::not_controller);
}

}  // namespace
}  // namespace faultline::cluster
