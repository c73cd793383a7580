// Metadata snapshots: the MetadataImage encoded as of an offset (what replaces the log once it is
// compacted), and the marker history the image keeps so the log check survives compaction.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/cluster/controller/metadata.h"

namespace faultline::cluster {

// gtest prints these on failure instead of their bytes.
void PrintTo(const MarkerWrite& m, std::ostream* os) {
  *os << "{" << m.offset.value() << ", " << m.value << "}";
}
void PrintTo(const PartitionRef& r, std::ostream* os) {
  *os << "{" << r.topic << ", " << r.partition << "}";
}

namespace {

// A log under construction: entries at consecutive offsets, in the current term.
struct Log {
  std::vector<MetadataEntry> entries;
  int64_t term = 1;
  int64_t next() const { return static_cast<int64_t>(entries.size()); }
  void add(MetadataRecord r) { entries.push_back({MetadataOffset{next()}, std::move(r), term}); }
  // Registers broker b with its epoch = the record's offset (as the controller does).
  void add_broker(int32_t b, std::optional<std::string> rack, bool kafka) {
    std::optional<Endpoint> kafka_endpoint;
    if (kafka)
      kafka_endpoint = Endpoint{"10.0.2." + std::to_string(b), 19092};
    add(BrokerRegistered{BrokerId{b}, BrokerEpoch{next()}, 1000u + static_cast<uint32_t>(b),
                         Endpoint{"10.0.0." + std::to_string(b), 9000},
                         Endpoint{"10.0.1." + std::to_string(b), 9092}, std::move(rack),
                         kafka_endpoint});
  }
};

PartitionChanged change(std::string topic, int32_t partition, int32_t leader, ReplicaList isr,
                        int32_t leader_epoch, int32_t partition_epoch, ReplicaList replicas,
                        ElectionReason reason) {
  PartitionChanged c;
  c.tp = {std::move(topic), PartitionIndex{partition}};
  c.leader = BrokerId{leader};
  c.isr = std::move(isr);
  c.leader_epoch = LeaderEpoch{leader_epoch};
  c.partition_epoch = PartitionEpoch{partition_epoch};
  c.replicas = std::move(replicas);
  c.reason = reason;
  return c;
}

ConfigChanged marker(std::string value) {
  return {std::string(kMarkerKey), std::move(value)};
}

// Two controller terms of a five-broker cluster: racks and Kafka listeners, a demotion, a fenced
// broker, one shutting down, one never unfenced, a reassignment half done, an unclean election,
// an offline partition, configs and marker writes.
Log realistic_log() {
  Log log;
  log.add(ControllerElected{1, 1, {1, 2, 3}});
  log.add_broker(1, "rack-a", true);
  log.add_broker(2, "rack-b", true);
  log.add_broker(3, "rack-a", false);
  log.add_broker(4, "rack-c", true);
  log.add_broker(5, std::nullopt, false);  // stays fenced: never caught up
  for (int32_t b = 1; b <= 4; ++b)
    log.add(BrokerUnfenced{BrokerId{b}, BrokerEpoch{b}});
  log.add(TopicCreated{"orders", {{1, 2, 3}, {2, 3, 4}, {3, 4, 1}, {4, 1, 2}}});
  log.add(TopicCreated{"payments", {{2, 1}, {3, 2}, {1, 4}}});
  log.add(ConfigChanged{"unclean.leader.election.enable", "false"});
  log.add(marker("w0-0"));
  log.add(BrokerPriorityChanged{BrokerId{2}, true, "network-health"});
  PartitionChanged moving =
      change("orders", 0, 1, {1, 2, 3}, 0, 1, {1, 2, 4, 3}, ElectionReason::reassignment);
  moving.adding = {4};
  moving.removing = {3};
  log.add(moving);
  log.add(change("payments", 1, 3, {3}, 0, 1, {3, 2}, ElectionReason::none));
  log.add(change("orders", 1, 3, {3}, 1, 1, {2, 3, 4}, ElectionReason::demotion));
  log.add(BrokerFenced{BrokerId{3}, BrokerEpoch{3}});
  log.add(change("orders", 2, 4, {4, 1}, 1, 1, {3, 4, 1}, ElectionReason::offline));
  log.add(change("payments", 1, -1, {3}, 1, 2, {3, 2}, ElectionReason::offline));
  log.add(change("orders", 1, -1, {3}, 2, 2, {2, 3, 4}, ElectionReason::offline));
  moving.isr = {1, 2};
  moving.partition_epoch = PartitionEpoch{2};
  moving.reason = ElectionReason::offline;
  log.add(moving);

  log.term = 2;
  log.add(ControllerElected{2, 2, {1, 2, 3}});
  log.add(ConfigChanged{"unclean.leader.election.enable", "true"});
  PartitionChanged unclean = change("payments", 1, 2, {2}, 2, 3, {3, 2}, ElectionReason::unclean);
  unclean.leader_recovery = LeaderRecovery::recovering;
  log.add(unclean);
  log.add(ConfigChanged{"unclean.leader.election.enable", "false"});
  log.add(BrokerControlledShutdown{BrokerId{4}, BrokerEpoch{4}});
  log.add(change("orders", 3, 1, {1, 2}, 1, 1, {4, 1, 2}, ElectionReason::controlled_shutdown));
  log.add(marker("w1-0"));
  return log;
}

// What follows realistic_log(): a marker, the reassignment finishing (broker 3 leaves the
// partition), broker 3 coming back and leading its offline partition, a promotion, a new term.
std::vector<MetadataEntry> continuation(int64_t from) {
  Log log;
  log.entries.resize(static_cast<size_t>(from));
  log.term = 2;
  log.add(marker("w1-1"));
  log.add(change("orders", 0, 1, {1, 2, 4}, 0, 3, {1, 2, 4}, ElectionReason::reassignment));
  int64_t epoch = log.next();
  log.add(BrokerRegistered{BrokerId{3},
                           BrokerEpoch{epoch},
                           2003,
                           {"10.0.0.3", 9000},
                           {"10.0.1.3", 9092},
                           "rack-a",
                           std::nullopt});
  log.add(BrokerUnfenced{BrokerId{3}, BrokerEpoch{epoch}});
  log.add(change("orders", 1, 3, {3}, 3, 3, {2, 3, 4}, ElectionReason::broker_returned));
  log.add(BrokerPriorityChanged{BrokerId{2}, false, ""});
  log.term = 3;
  log.add(ControllerElected{3, 3, {1, 2, 3}});
  log.add(marker("w2-0"));
  return {log.entries.begin() + from, log.entries.end()};
}

MetadataImage replay(const std::vector<MetadataEntry>& entries) {
  MetadataImage image;
  for (const auto& e : entries) {
    auto ec = image.apply(e);
    EXPECT_FALSE(ec) << "offset " << e.offset.value() << ": " << ec.message();
  }
  return image;
}

std::vector<uint8_t> snapshot_of(const MetadataImage& image, int64_t last_term) {
  std::vector<uint8_t> blob;
  encode_metadata_snapshot(image, last_term, blob);
  return blob;
}

std::vector<PartitionRef> sorted(std::vector<PartitionRef> refs) {
  std::sort(refs.begin(), refs.end());
  return refs;
}

// The replica index by brute force: partitions whose replicas contain the broker.
std::vector<PartitionRef> replicas_scan(const MetadataImage& image, BrokerId broker) {
  std::vector<PartitionRef> refs;
  for (uint32_t t = 0; t < image.topics().size(); ++t) {
    const auto& partitions = image.topics()[t].partitions;
    for (size_t p = 0; p < partitions.size(); ++p) {
      if (partitions[p].replicas.contains(broker))
        refs.push_back({t, static_cast<int32_t>(p)});
    }
  }
  return refs;
}

// Every query backed by a derived index answers the same on both images (the index order may
// differ after a reassignment, so lists are compared as sets).
void expect_same_derived(const MetadataImage& original, const MetadataImage& decoded) {
  std::vector<BrokerId> ids{BrokerId{99}};  // and one nobody knows
  for (const auto& [id, b] : original.brokers())
    ids.push_back(id);
  for (BrokerId id : ids) {
    SCOPED_TRACE(testing::Message() << "broker " << id.value());
    EXPECT_EQ(sorted(decoded.partitions_with_replica(id)), replicas_scan(original, id));
    EXPECT_EQ(sorted(original.partitions_with_replica(id)), replicas_scan(original, id));
    EXPECT_EQ(sorted(decoded.partitions_led_by(id)), sorted(original.partitions_led_by(id)));
  }
  EXPECT_EQ(decoded.offline_partition_count(), original.offline_partition_count());
  EXPECT_EQ(decoded.offline_partition_count(), decoded.offline_partitions().size());
  EXPECT_EQ(decoded.partition_count(), original.partition_count());
  for (uint32_t t = 0; t < original.topics().size(); ++t) {
    const TopicState& topic = original.topics()[t];
    EXPECT_EQ(decoded.topic_index(topic.name), t);
    ASSERT_NE(decoded.topic(topic.name), nullptr);
    EXPECT_EQ(*decoded.topic(topic.name), topic);
    for (size_t p = 0; p < topic.partitions.size(); ++p) {
      TopicPartition tp{topic.name, PartitionIndex{static_cast<int32_t>(p)}};
      EXPECT_EQ(decoded.ref(tp), original.ref(tp));
      ASSERT_NE(decoded.partition(tp), nullptr);
      EXPECT_EQ(*decoded.partition(tp), topic.partitions[p]);
    }
    EXPECT_EQ(
        decoded.ref({topic.name, PartitionIndex{static_cast<int32_t>(topic.partitions.size())}}),
        std::nullopt);
  }
  EXPECT_EQ(decoded.topic_index("missing"), std::nullopt);
  EXPECT_EQ(decoded.marker_history(), original.marker_history());
  EXPECT_EQ(decoded.configs(), original.configs());
}

TEST(MetadataSnapshot, RealisticImageRoundTrips) {
  Log log = realistic_log();
  MetadataImage original = replay(log.entries);
  // The scenario really has what it claims to.
  ASSERT_EQ(original.offline_partition_count(), 1u);
  ASSERT_TRUE(original.partition({"orders", PartitionIndex{0}})->reassigning());
  ASSERT_EQ(original.partition({"payments", PartitionIndex{1}})->unclean_elections, 1);
  ASSERT_TRUE(original.broker(BrokerId{3})->fenced);
  ASSERT_TRUE(original.broker(BrokerId{4})->shutting_down);
  ASSERT_TRUE(original.broker(BrokerId{2})->demoted);
  ASSERT_EQ(original.controller_epoch(), 2);

  // Appended after whatever `out` held.
  std::vector<uint8_t> out{0xde, 0xad};
  encode_metadata_snapshot(original, log.term, out);
  ASSERT_EQ(out[0], 0xde);
  std::string error;
  auto snapshot = decode_metadata_snapshot(std::span<const uint8_t>(out).subspan(2), &error);
  ASSERT_TRUE(snapshot.has_value()) << error;
  EXPECT_EQ(snapshot->last_offset, MetadataOffset{log.next() - 1});
  EXPECT_EQ(snapshot->last_term, 2);
  EXPECT_TRUE(snapshot->image == original);
  EXPECT_EQ(snapshot->image.marker_history(),
            (std::vector<MarkerWrite>{{MetadataOffset{13}, "w0-0"}, {MetadataOffset{29}, "w1-0"}}));
  expect_same_derived(original, snapshot->image);
}

TEST(MetadataSnapshot, DecodedImageAppliesTheNextRecordsLikeTheOriginal) {
  Log log = realistic_log();
  MetadataImage original = replay(log.entries);
  auto snapshot = decode_metadata_snapshot(snapshot_of(original, log.term));
  ASSERT_TRUE(snapshot.has_value());
  MetadataImage& decoded = snapshot->image;
  for (const MetadataEntry& e : continuation(log.next())) {
    SCOPED_TRACE(testing::Message() << "offset " << e.offset.value());
    ASSERT_EQ(decoded.next_offset(), e.offset);
    ASSERT_FALSE(original.apply(e));
    ASSERT_FALSE(decoded.apply(e));
    EXPECT_TRUE(decoded == original);
    expect_same_derived(original, decoded);
  }
  // The reassignment finished: broker 3 left orders-0, in both indexes.
  EXPECT_EQ(decoded.partitions_with_replica(BrokerId{3}).size(),
            original.partitions_with_replica(BrokerId{3}).size());
  EXPECT_EQ(decoded.offline_partition_count(), 0u);
  EXPECT_EQ(decoded.marker_history().size(), 4u);
  // Refusals agree too: a record at the wrong offset and one breaking an invariant.
  MetadataEntry gap{decoded.next_offset().next(), marker("late"), 3};
  EXPECT_EQ(decoded.apply(gap), original.apply(gap));
  MetadataEntry bad{decoded.next_offset(),
                    change("orders", 2, 2, {4, 1}, 9, 9, {3, 4, 1}, ElectionReason::none), 3};
  EXPECT_EQ(decoded.apply(bad), make_error_code(errc::invalid_request));
  EXPECT_EQ(original.apply(bad), make_error_code(errc::invalid_request));
}

TEST(MetadataSnapshot, EmptyImageRoundTrips) {
  MetadataImage empty;
  auto blob = snapshot_of(empty, 0);
  EXPECT_EQ(blob.size(), kMetadataSnapshotHeaderBytes + 52);  // 16 + 20 + four empty lists
  auto snapshot = decode_metadata_snapshot(blob);
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(snapshot->last_offset, MetadataOffset{-1});
  EXPECT_EQ(snapshot->last_term, 0);
  EXPECT_TRUE(snapshot->image == empty);
  EXPECT_EQ(snapshot->image.next_offset(), MetadataOffset{0});
  MetadataEntry first{MetadataOffset{0}, TopicCreated{"t", {{1}}}, 1};
  ASSERT_FALSE(empty.apply(first));
  ASSERT_FALSE(snapshot->image.apply(first));
  EXPECT_TRUE(snapshot->image == empty);
  expect_same_derived(empty, snapshot->image);
}

TEST(MetadataSnapshot, EveryTruncationAndEveryFlippedByteIsRejected) {
  Log log = realistic_log();
  auto blob = snapshot_of(replay(log.entries), log.term);
  for (size_t n = 0; n < blob.size(); ++n) {
    // A copy of exactly n bytes, so a read past the end would be caught by sanitizers too.
    std::vector<uint8_t> prefix(blob.begin(), blob.begin() + static_cast<std::ptrdiff_t>(n));
    std::string error;
    EXPECT_FALSE(decode_metadata_snapshot(prefix, &error).has_value()) << n;
    EXPECT_FALSE(error.empty()) << n;
  }
  for (size_t i = 0; i < blob.size(); ++i) {
    for (uint8_t mask : std::initializer_list<uint8_t>{0x01, 0x80}) {
      auto bad = blob;
      bad[i] ^= mask;
      EXPECT_FALSE(decode_metadata_snapshot(bad).has_value()) << i << " ^ " << int{mask};
    }
  }
}

// ---- hand-edited blobs ----

std::vector<uint8_t> be32(int32_t v) {
  auto u = static_cast<uint32_t>(v);
  return {static_cast<uint8_t>(u >> 24), static_cast<uint8_t>(u >> 16),
          static_cast<uint8_t>(u >> 8), static_cast<uint8_t>(u)};
}
std::vector<uint8_t> be64(int64_t v) {
  auto hi = be32(static_cast<int32_t>(static_cast<uint64_t>(v) >> 32));
  auto lo = be32(static_cast<int32_t>(static_cast<uint64_t>(v)));
  hi.insert(hi.end(), lo.begin(), lo.end());
  return hi;
}
std::vector<uint8_t> str(std::string_view s) {
  std::vector<uint8_t> out(2 + s.size());
  out[0] = static_cast<uint8_t>(s.size() >> 8);
  out[1] = static_cast<uint8_t>(s.size());
  std::copy(s.begin(), s.end(), out.begin() + 2);
  return out;
}
std::vector<uint8_t> cat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}
std::vector<uint8_t> list(std::initializer_list<int32_t> ids) {
  auto out = be32(static_cast<int32_t>(ids.size()));
  for (int32_t id : ids) {
    auto b = be32(id);
    out.insert(out.end(), b.begin(), b.end());
  }
  return out;
}

// Replaces the single occurrence of `from` in `bytes` by `to` (a test failure when it is not
// exactly one: the edit would not be the one meant).
void replace_once(std::vector<uint8_t>& bytes, const std::vector<uint8_t>& from,
                  const std::vector<uint8_t>& to) {
  auto at = std::search(bytes.begin(), bytes.end(), from.begin(), from.end());
  ASSERT_NE(at, bytes.end()) << "pattern not found";
  ASSERT_EQ(std::search(at + 1, bytes.end(), from.begin(), from.end()), bytes.end())
      << "pattern not unique";
  at = bytes.erase(at, at + static_cast<std::ptrdiff_t>(from.size()));
  bytes.insert(at, to.begin(), to.end());
}

// The blob around an edited payload, with a CRC that matches it: only the decoder's own checks
// stand between the edit and the image.
std::vector<uint8_t> sealed(const std::vector<uint8_t>& payload) {
  auto blob = cat({be32(static_cast<int32_t>(kMetadataSnapshotMagic)),
                   {kMetadataSnapshotVersion},
                   be32(static_cast<int32_t>(payload.size())),
                   be32(static_cast<int32_t>(metadata_crc32c(payload)))});
  blob.insert(blob.end(), payload.begin(), payload.end());
  return blob;
}

// Brokers 101-103 (epochs 0-2), topics alpha [101,102] and bravo [102,103], configs a.key and
// b.key, markers m1 (offset 5) and m2 (offset 6).
MetadataImage small_image() {
  Log log;
  for (int32_t b = 101; b <= 103; ++b) {
    log.add(BrokerRegistered{BrokerId{b},
                             BrokerEpoch{log.next()},
                             1,
                             {"h" + std::to_string(b), 1},
                             {"c" + std::to_string(b), 2},
                             std::nullopt,
                             std::nullopt});
  }
  log.add(TopicCreated{"alpha", {{101, 102}}});
  log.add(TopicCreated{"bravo", {{102, 103}}});
  log.add(marker("m1"));
  log.add(marker("m2"));
  log.add(ConfigChanged{"a.key", "1"});
  log.add(ConfigChanged{"b.key", "2"});
  return replay(log.entries);
}

struct PayloadEdit {
  const char* name;
  std::function<void(std::vector<uint8_t>& payload)> edit;
  const char* error;  // a part of the decoder's reason; nullptr: still a valid snapshot
};

TEST(MetadataSnapshot, CrcValidPayloadsBreakingTheImageAreRejected) {
  // alpha's partition: replicas, ISR, leader.
  const auto alpha = cat({list({101, 102}), list({101, 102}), be32(101)});
  const std::vector<PayloadEdit> cases = {
      {"unchanged", [](auto&) {}, nullptr},
      {"a host renamed (the edits themselves are sound)",
       [](auto& p) { replace_once(p, str("h102"), str("h109")); }, nullptr},
      {"leader outside the ISR",
       [&](auto& p) {
         replace_once(p, alpha, cat({list({101, 102}), list({101, 102}), be32(103)}));
       },
       "leader outside the ISR"},
      {"ISR outside the replicas",
       [&](auto& p) {
         replace_once(p, alpha, cat({list({101, 102}), list({101, 103}), be32(101)}));
       },
       "ISR outside the replicas"},
      {"empty ISR",
       [&](auto& p) {
         replace_once(p, alpha, cat({list({101, 102}), list({}), be32(-1)}));
       },
       "empty ISR"},
      {"leader recovery out of range",
       [&](auto& p) {
         replace_once(p, cat({alpha, std::vector<uint8_t>(12, 0), {0}}),
                      cat({alpha, std::vector<uint8_t>(12, 0), {2}}));
       },
       "malformed"},
      {"duplicate broker id",
       [](auto& p) {
         replace_once(p, cat({be32(102), be64(1)}), cat({be32(101), be64(1)}));
       },
       "duplicate broker id 101"},
      // One image, one encoding: brokers and configs in ascending order only.
      {"brokers out of order",
       [](auto& p) {
         replace_once(p, cat({be32(102), be64(1)}), cat({be32(99), be64(1)}));
       },
       "broker id 99 out of order"},
      {"configs out of order", [](auto& p) { replace_once(p, str("b.key"), str("0.key")); },
       "config key 0.key out of order"},
      {"duplicate topic name", [](auto& p) { replace_once(p, str("bravo"), str("alpha")); },
       "duplicate topic name alpha"},
      {"duplicate config key", [](auto& p) { replace_once(p, str("b.key"), str("a.key")); },
       "duplicate config key"},
      {"last offset is not the applied offset",
       [](auto& p) { std::copy_n(be64(6).begin(), 8, p.begin()); }, "last offset"},
      {"applied offset is not the last offset",
       [](auto& p) { std::copy_n(be64(7).begin(), 8, p.begin() + 16); }, "last offset"},
      {"negative term", [](auto& p) { std::copy_n(be64(-1).begin(), 8, p.begin() + 8); },
       "negative"},
      {"markers out of order",
       [](auto& p) {
         replace_once(p, cat({be64(6), str("m2")}), cat({be64(4), str("m2")}));
       },
       "out of order"},
      {"marker beyond the image",
       [](auto& p) {
         replace_once(p, cat({be64(6), str("m2")}), cat({be64(9), str("m2")}));
       },
       "out of order"},
      {"marker history disagreeing with the config",
       [](auto& p) {
         replace_once(p, cat({be64(6), str("m2")}), cat({be64(6), str("m3")}));
       },
       "marker history"},
      {"broker count the payload cannot hold",
       [](auto& p) { std::copy_n(be32(-1).begin(), 4, p.begin() + 36); }, "malformed"},
      {"partition count the payload cannot hold",
       [](auto& p) {
         replace_once(p, cat({str("bravo"), be32(1)}), cat({str("bravo"), be32(1000)}));
       },
       "malformed"},
      {"a string longer than the payload",
       [](auto& p) {
         replace_once(p, str("m1"), {0xff, 0xff, 'm', '1'});
       },
       "malformed"},
      {"trailing bytes in the payload", [](auto& p) { p.push_back(0); }, "trailing bytes"},
      {"payload cut short", [](auto& p) { p.pop_back(); }, "malformed"},
  };
  const auto blob = snapshot_of(small_image(), 1);
  const std::vector<uint8_t> payload(blob.begin() + kMetadataSnapshotHeaderBytes, blob.end());
  ASSERT_EQ(sealed(payload), blob);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto edited = payload;
    c.edit(edited);
    std::string error;
    auto snapshot = decode_metadata_snapshot(sealed(edited), &error);
    if (c.error == nullptr) {
      EXPECT_TRUE(snapshot.has_value()) << error;
    } else {
      EXPECT_FALSE(snapshot.has_value());
      EXPECT_NE(error.find(c.error), std::string::npos) << error;
    }
  }
}

struct BlobEdit {
  const char* name;
  std::function<void(std::vector<uint8_t>& blob)> edit;
  const char* error;
};

TEST(MetadataSnapshot, BadFramesAreRejectedWithTheirReason) {
  const std::vector<BlobEdit> cases = {
      {"bad magic", [](auto& b) { b[0] ^= 0xff; }, "bad magic"},
      {"another version", [](auto& b) { b[4] = 2; }, "unsupported version 2"},
      {"trailing bytes", [](auto& b) { b.push_back(0); }, "trailing bytes after the payload"},
      {"another blob after it",
       [](auto& b) {
         auto copy = b;
         b.insert(b.end(), copy.begin(), copy.end());
       },
       "trailing bytes after the payload"},
      {"last byte missing", [](auto& b) { b.pop_back(); }, "truncated payload"},
      {"header only", [](auto& b) { b.resize(kMetadataSnapshotHeaderBytes); }, "truncated payload"},
      {"part of a header", [](auto& b) { b.resize(5); }, "truncated header"},
      {"CRC", [](auto& b) { b[12] ^= 1; }, "CRC"},
      {"payload byte", [](auto& b) { b.back() ^= 1; }, "CRC"},
  };
  const auto blob = snapshot_of(small_image(), 1);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto edited = blob;
    c.edit(edited);
    std::string error;
    EXPECT_FALSE(decode_metadata_snapshot(edited, &error).has_value());
    EXPECT_NE(error.find(c.error), std::string::npos) << error;
  }
}

// ---- marker history ----

TEST(MarkerHistory, KeepsOnlyMarkerWritesInLogOrderWithTheirOffsets) {
  const std::vector<ConfigChanged> writes = {
      {"unclean.leader.election.enable", "true"},
      marker("a"),
      {"faultline.marker2", "x"},  // another key, however alike
      marker("b"),
      marker("a"),  // a repeated value is another write
      {"auto.leader.rebalance.enable", "false"},
  };
  MetadataImage image;
  for (size_t i = 0; i < writes.size(); ++i)
    ASSERT_FALSE(image.apply({MetadataOffset{static_cast<int64_t>(i)}, writes[i]}));
  const std::vector<MarkerWrite> expected = {
      {MetadataOffset{1}, "a"}, {MetadataOffset{3}, "b"}, {MetadataOffset{4}, "a"}};
  EXPECT_EQ(image.marker_history(), expected);
  EXPECT_EQ(image.config(kMarkerKey), "a");
  // A refused record adds nothing.
  EXPECT_TRUE(image.apply({MetadataOffset{9}, marker("gap")}));
  EXPECT_EQ(image.marker_history(), expected);
  // It survives a snapshot.
  auto snapshot = decode_metadata_snapshot(snapshot_of(image, 1));
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(snapshot->image.marker_history(), expected);
}

TEST(MarkerHistory, IsPartOfTheImagesEquality) {
  // Same offset and configs, different histories.
  MetadataImage a = replay({{MetadataOffset{0}, marker("x")}, {MetadataOffset{1}, marker("y")}});
  MetadataImage b = replay({{MetadataOffset{0}, marker("y")}, {MetadataOffset{1}, marker("y")}});
  EXPECT_EQ(a.configs(), b.configs());
  EXPECT_FALSE(a == b);
}

}  // namespace
}  // namespace faultline::cluster
