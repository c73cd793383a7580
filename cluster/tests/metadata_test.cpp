// The metadata log: record encoding, the MetadataImage state machine, and the on-disk store.
#include "faultline/cluster/controller/metadata.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "faultline/cluster/controller/metadata_store.h"

namespace faultline::cluster {
namespace {

std::vector<MetadataRecord> one_of_each() {
  PartitionChanged change;
  change.tp = {"orders", PartitionIndex{3}};
  change.leader = BrokerId{2};
  change.isr = {2, 3};
  change.leader_epoch = LeaderEpoch{4};
  change.partition_epoch = PartitionEpoch{9};
  change.replicas = {1, 2, 3, 4};
  change.adding = {4};
  change.removing = {1};
  change.leader_recovery = LeaderRecovery::recovering;
  change.reason = ElectionReason::unclean;
  return {
      BrokerRegistered{BrokerId{1},
                       BrokerEpoch{0},
                       0xfeedbeefcafe,
                       {"198.18.0.2", 9092},
                       {"198.18.1.2", 9093},
                       std::string("rack-a"),
                       {}},
      BrokerRegistered{BrokerId{2}, BrokerEpoch{1}, 7, {"b2", 1}, {"b2", 2}, std::nullopt, {}},
      BrokerFenced{BrokerId{1}, BrokerEpoch{0}},
      BrokerUnfenced{BrokerId{1}, BrokerEpoch{0}},
      BrokerControlledShutdown{BrokerId{2}, BrokerEpoch{1}},
      TopicCreated{"orders", {{1, 2, 3}, {2, 3, 1}, {3, 1, 2}, {1, 2, 3, 4, 5, 6, 7, 8}}},
      change,
      BrokerPriorityChanged{BrokerId{2}, true, "network-health"},
      ConfigChanged{"unclean.leader.election.enable", "true"},
  };
}

TEST(ReplicaList, GrowsPastItsInlineCapacityAndCopiesAndMoves) {
  ReplicaList list;
  for (int32_t b = 0; b < 20; ++b)
    list.push_back(BrokerId{b});
  ASSERT_EQ(list.size(), 20u);
  for (int32_t b = 0; b < 20; ++b)
    EXPECT_EQ(list[static_cast<uint32_t>(b)], BrokerId{b});
  ReplicaList copy = list;
  EXPECT_EQ(copy, list);
  ReplicaList small{1, 2};
  small = list;  // inline <- heap
  EXPECT_EQ(small, list);
  ReplicaList moved = std::move(copy);
  EXPECT_EQ(moved, list);
  EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is specified empty
  list = ReplicaList{7};      // heap <- inline
  EXPECT_EQ(list, (ReplicaList{7}));
  EXPECT_TRUE(moved.erase(BrokerId{3}));
  EXPECT_FALSE(moved.contains(BrokerId{3}));
  EXPECT_EQ(moved.size(), 19u);
  EXPECT_FALSE(moved.erase(BrokerId{3}));
  EXPECT_EQ(fmt::format("{}", ReplicaList{1, 2, 3}), "[1,2,3]");
}

std::vector<uint8_t> encode(const MetadataEntry& e) {
  std::vector<uint8_t> out;
  encode_metadata_entry(e, out);
  return out;
}

TEST(MetadataEncoding, EveryRecordRoundTrips) {
  int64_t offset = 0;
  std::vector<uint8_t> all;
  std::vector<MetadataEntry> entries;
  for (auto& r : one_of_each()) {
    entries.push_back({MetadataOffset{offset++}, r});
    encode_metadata_entry(entries.back(), all);
  }
  size_t pos = 0;
  for (const auto& expected : entries) {
    auto d = decode_metadata_entry(std::span<const uint8_t>(all).subspan(pos));
    ASSERT_EQ(d.status, DecodeStatus::ok);
    EXPECT_EQ(d.entry, expected);
    pos += d.consumed;
  }
  EXPECT_EQ(pos, all.size());
}

TEST(MetadataEncoding, EveryTruncationIsIncompleteAndEveryFlipIsRejected) {
  for (auto& r : one_of_each()) {
    auto frame = encode({MetadataOffset{5}, r});
    for (size_t n = 0; n < frame.size(); ++n) {
      // A copy of exactly n bytes, so a read past the end would be caught by sanitizers too.
      std::vector<uint8_t> prefix(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(n));
      EXPECT_EQ(decode_metadata_entry(prefix).status, DecodeStatus::incomplete) << n;
    }
    for (size_t i = 0; i < frame.size(); ++i) {
      auto bad = frame;
      bad[i] ^= 0x20;
      EXPECT_NE(decode_metadata_entry(bad).status, DecodeStatus::ok) << i;
    }
  }
}

// A frame with a valid CRC around an arbitrary payload: what a buggy or hostile peer could send.
std::vector<uint8_t> frame_of(std::vector<uint8_t> payload) {
  std::vector<uint8_t> frame(8);
  uint32_t len = static_cast<uint32_t>(payload.size());
  uint32_t crc = metadata_crc32c(payload);
  for (int i = 0; i < 4; ++i) {
    frame[i] = static_cast<uint8_t>(len >> (24 - 8 * i));
    frame[4 + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
  }
  frame.insert(frame.end(), payload.begin(), payload.end());
  return frame;
}

TEST(MetadataEncoding, WellFramedGarbageIsCorrupt) {
  std::vector<uint8_t> offset0(16, 0);  // offset 0, term 0
  auto with = [&](std::vector<uint8_t> tail) {
    auto p = offset0;
    p.insert(p.end(), tail.begin(), tail.end());
    return decode_metadata_entry(frame_of(p)).status;
  };
  EXPECT_EQ(with({99}), DecodeStatus::corrupt);  // unknown record type
  // TopicCreated "" with 2^32-1 partitions in a few bytes.
  EXPECT_EQ(with({5, 0, 0, 0xff, 0xff, 0xff, 0xff}), DecodeStatus::corrupt);
  // BrokerFenced with trailing bytes.
  EXPECT_EQ(with({2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 42}), DecodeStatus::corrupt);
  // A string longer than the payload.
  EXPECT_EQ(with({8, 0xff, 0xff, 'a'}), DecodeStatus::corrupt);
  EXPECT_EQ(with({2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}), DecodeStatus::ok);
  // Length field beyond the limit is corrupt, not "wait for 4 GiB".
  std::vector<uint8_t> huge = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
  EXPECT_EQ(decode_metadata_entry(huge).status, DecodeStatus::corrupt);
}

MetadataImage replay(const std::vector<MetadataEntry>& entries) {
  MetadataImage image;
  for (const auto& e : entries)
    EXPECT_FALSE(image.apply(e));
  return image;
}

TEST(MetadataImage, AppliesRecordsInOrderOnly) {
  MetadataImage image;
  EXPECT_EQ(image.apply({MetadataOffset{1}, ConfigChanged{"k", "v"}}),
            make_error_code(errc::invalid_request));
  EXPECT_FALSE(image.apply({MetadataOffset{0}, ConfigChanged{"k", "v"}}));
  EXPECT_EQ(image.applied_offset(), MetadataOffset{0});
  EXPECT_EQ(image.config("k"), "v");
  // A record about an unknown broker is refused and does not move the offset.
  EXPECT_EQ(image.apply({MetadataOffset{1}, BrokerFenced{BrokerId{9}, BrokerEpoch{0}}}),
            make_error_code(errc::broker_id_not_registered));
  EXPECT_EQ(image.applied_offset(), MetadataOffset{0});
}

TEST(MetadataImage, TracksBrokersTopicsAndPartitions) {
  std::vector<MetadataEntry> entries;
  int64_t o = 0;
  auto add = [&](MetadataRecord r) { entries.push_back({MetadataOffset{o++}, std::move(r)}); };
  add(BrokerRegistered{BrokerId{1}, BrokerEpoch{0}, 11, {"h1", 1}, {"h1", 2}, std::nullopt, {}});
  add(BrokerRegistered{BrokerId{2}, BrokerEpoch{1}, 22, {"h2", 1}, {"h2", 2}, std::nullopt, {}});
  add(BrokerRegistered{BrokerId{3}, BrokerEpoch{2}, 33, {"h3", 1}, {"h3", 2}, std::nullopt, {}});
  add(BrokerUnfenced{BrokerId{1}, BrokerEpoch{0}});
  add(TopicCreated{"t", {{1, 2}, {2, 3}, {3, 1}}});
  add(BrokerPriorityChanged{BrokerId{2}, true, "storage-health"});
  MetadataImage image = replay(entries);

  const BrokerState* b1 = image.broker(BrokerId{1});
  ASSERT_NE(b1, nullptr);
  EXPECT_FALSE(b1->fenced);
  EXPECT_TRUE(image.broker(BrokerId{2})->fenced);  // registered brokers start fenced
  EXPECT_TRUE(image.broker(BrokerId{2})->demoted);
  EXPECT_EQ(image.broker(BrokerId{2})->demotion_reason, "storage-health");
  EXPECT_EQ(image.partition_count(), 3u);
  const PartitionState* p1 = image.partition({"t", PartitionIndex{1}});
  ASSERT_NE(p1, nullptr);
  EXPECT_EQ(p1->leader, BrokerId{2});
  EXPECT_EQ(p1->isr, (ReplicaList{2, 3}));
  EXPECT_EQ(image.partition({"t", PartitionIndex{3}}), nullptr);
  EXPECT_EQ(image.partition({"u", PartitionIndex{0}}), nullptr);

  EXPECT_EQ(image.partitions_with_replica(BrokerId{1}),
            (std::vector<PartitionRef>{{0, 0}, {0, 2}}));
  EXPECT_EQ(image.partitions_led_by(BrokerId{3}), (std::vector<PartitionRef>{{0, 2}}));

  // A re-registration (new process start) keeps the demotion: priority is per broker id.
  entries.push_back(
      {MetadataOffset{o++},
       BrokerRegistered{
           BrokerId{2}, BrokerEpoch{o - 1}, 23, {"h2", 1}, {"h2", 2}, std::nullopt, {}}});
  ASSERT_FALSE(image.apply(entries.back()));
  EXPECT_TRUE(image.broker(BrokerId{2})->demoted);
  EXPECT_EQ(image.broker(BrokerId{2})->epoch, BrokerEpoch{6});
  // A record for the old epoch no longer applies.
  EXPECT_EQ(image.apply({MetadataOffset{o}, BrokerUnfenced{BrokerId{2}, BrokerEpoch{1}}}),
            make_error_code(errc::stale_broker_epoch));
}

TEST(MetadataImage, ReplicaIndexFollowsReassignment) {
  MetadataImage image;
  int64_t o = 0;
  auto apply = [&](MetadataRecord r) { ASSERT_FALSE(image.apply({MetadataOffset{o++}, r})); };
  for (int32_t b = 1; b <= 4; ++b) {
    apply(BrokerRegistered{BrokerId{b}, BrokerEpoch{o}, 1, {}, {}, std::nullopt, {}});
  }
  apply(TopicCreated{"t", {{1, 2, 3}}});
  PartitionChanged c;
  c.tp = {"t", PartitionIndex{0}};
  c.leader = BrokerId{2};
  c.isr = {2, 4};
  c.leader_epoch = LeaderEpoch{1};
  c.partition_epoch = PartitionEpoch{3};
  c.replicas = {2, 4};
  apply(c);
  EXPECT_TRUE(image.partitions_with_replica(BrokerId{1}).empty());
  EXPECT_TRUE(image.partitions_with_replica(BrokerId{3}).empty());
  EXPECT_EQ(image.partitions_with_replica(BrokerId{4}).size(), 1u);
  EXPECT_EQ(image.partitions_led_by(BrokerId{2}).size(), 1u);
}

TEST(MetadataImage, ReplayGivesAnIdenticalImage) {
  std::vector<MetadataEntry> entries;
  int64_t o = 0;
  for (auto& r : one_of_each()) {
    if (std::holds_alternative<PartitionChanged>(r))
      continue;  // needs 4 partitions of "orders"
    entries.push_back({MetadataOffset{o++}, r});
  }
  MetadataImage a = replay(entries);
  // Through the wire format and back.
  std::vector<uint8_t> bytes;
  for (const auto& e : entries)
    encode_metadata_entry(e, bytes);
  MetadataImage b;
  size_t pos = 0;
  while (pos < bytes.size()) {
    auto d = decode_metadata_entry(std::span<const uint8_t>(bytes).subspan(pos));
    ASSERT_EQ(d.status, DecodeStatus::ok);
    ASSERT_FALSE(b.apply(d.entry));
    pos += d.consumed;
  }
  EXPECT_EQ(a, b);
  ASSERT_FALSE(b.apply({b.next_offset(), ConfigChanged{"x", "y"}}));
  EXPECT_FALSE(a == b);
}

// ---- store ----

class MetadataStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/faultline-metadata-store-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    file_ = dir_ / "sub" / "metadata.log";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<MetadataEntry> entries(int64_t from, int64_t count) {
    std::vector<MetadataEntry> out;
    auto records = one_of_each();
    for (int64_t i = from; i < from + count; ++i) {
      out.push_back({MetadataOffset{i}, records[static_cast<size_t>(i) % records.size()]});
    }
    return out;
  }

  std::filesystem::path dir_;
  std::filesystem::path file_;
};

TEST_F(MetadataStoreTest, AppendsSurviveReopen) {
  {
    auto opened = MetadataStore::open(file_);
    ASSERT_FALSE(opened.error) << opened.error.message();
    EXPECT_TRUE(opened.records.empty());
    ASSERT_FALSE(opened.store->append(entries(0, 5)));
    ASSERT_FALSE(opened.store->append(entries(5, 4)));
    // Offsets must continue the log.
    EXPECT_EQ(opened.store->append(entries(20, 1)), make_error_code(errc::invalid_request));
  }
  auto reopened = MetadataStore::open(file_);
  ASSERT_FALSE(reopened.error);
  EXPECT_EQ(reopened.records, entries(0, 9));
  EXPECT_EQ(reopened.dropped_tail_bytes, 0u);
  EXPECT_EQ(reopened.store->last_offset(), MetadataOffset{8});
}

TEST_F(MetadataStoreTest, TornTailIsDroppedAndTheLogContinues) {
  {
    auto opened = MetadataStore::open(file_);
    ASSERT_FALSE(opened.store->append(entries(0, 6)));
  }
  auto full = std::filesystem::file_size(file_);
  std::vector<uint8_t> last;
  encode_metadata_entry(entries(5, 1)[0], last);
  // Crash in the middle of the last append: half of its frame reached the disk.
  std::filesystem::resize_file(file_, full - last.size() / 2);
  {
    auto opened = MetadataStore::open(file_);
    ASSERT_FALSE(opened.error);
    EXPECT_EQ(opened.records, entries(0, 5));
    EXPECT_EQ(opened.dropped_tail_bytes, last.size() - last.size() / 2);
    EXPECT_EQ(std::filesystem::file_size(file_), full - last.size());
    ASSERT_FALSE(opened.store->append(entries(5, 2)));
  }
  auto reopened = MetadataStore::open(file_);
  EXPECT_EQ(reopened.records, entries(0, 7));
}

TEST_F(MetadataStoreTest, GarbageAfterTheLastFrameIsDropped) {
  {
    auto opened = MetadataStore::open(file_);
    ASSERT_FALSE(opened.store->append(entries(0, 3)));
  }
  {
    std::ofstream out(file_, std::ios::app | std::ios::binary);
    const std::string garbage("\x00\x00\x00\x20garbage-that-is-not-a-frame-at-all", 38);
    out.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  auto opened = MetadataStore::open(file_);
  ASSERT_FALSE(opened.error);
  EXPECT_EQ(opened.records, entries(0, 3));
  EXPECT_GT(opened.dropped_tail_bytes, 0u);
}

TEST_F(MetadataStoreTest, CompactionKeepsTheRecordsAfterTheSnapshotAcrossReopens) {
  {
    auto opened = MetadataStore::open(file_);
    ASSERT_FALSE(opened.store->append(entries(0, 10)));
    ASSERT_FALSE(opened.store->compact_through(MetadataOffset{6}));
    EXPECT_EQ(opened.store->first_offset(), MetadataOffset{7});
    EXPECT_EQ(opened.store->last_offset(), MetadataOffset{9});
    ASSERT_FALSE(opened.store->append(entries(10, 2)));
    // Truncation counts from the new start.
    ASSERT_FALSE(opened.store->truncate_after(MetadataOffset{10}));
    EXPECT_EQ(opened.store->last_offset(), MetadataOffset{10});
  }
  auto reopened = MetadataStore::open(file_);
  ASSERT_FALSE(reopened.error);
  EXPECT_EQ(reopened.records, entries(7, 4));
  ASSERT_FALSE(reopened.store->align_to_snapshot(MetadataOffset{6}));
  EXPECT_EQ(reopened.store->first_offset(), MetadataOffset{7});
  ASSERT_FALSE(reopened.store->append(entries(11, 1)));
}

TEST_F(MetadataStoreTest, CompactingEverythingContinuesAfterTheSnapshot) {
  auto opened = MetadataStore::open(file_);
  ASSERT_FALSE(opened.store->append(entries(0, 3)));
  ASSERT_FALSE(opened.store->compact_through(MetadataOffset{5}));  // past the end: a newer snapshot
  EXPECT_EQ(opened.store->last_offset(), MetadataOffset{5});
  EXPECT_EQ(std::filesystem::file_size(file_), 0u);
  EXPECT_EQ(opened.store->append(entries(3, 1)), make_error_code(errc::invalid_request));
  ASSERT_FALSE(opened.store->append(entries(6, 1)));
}

TEST_F(MetadataStoreTest, AlignToSnapshotTable) {
  struct Case {
    const char* name;
    int64_t first, count;  // records in the file
    int64_t snapshot;
    bool corrupt;
    std::vector<int64_t> kept;  // offsets left, in a reopened store
    int64_t next;               // the offset the store then takes
  };
  const std::vector<Case> cases{
      {"no snapshot, log from 0", 0, 3, -1, false, {0, 1, 2}, 3},
      {"empty store continues the snapshot", 0, 0, 4, false, {}, 5},
      {"crash before the log was compacted", 0, 6, 3, false, {4, 5}, 6},
      {"snapshot past the whole log", 0, 3, 7, false, {}, 8},
      {"log starts right after the snapshot", 4, 2, 3, false, {4, 5}, 6},
      {"records missing after the snapshot", 6, 2, 3, true, {}, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::filesystem::remove(file_);
    {
      auto opened = MetadataStore::open(file_);
      ASSERT_FALSE(opened.error);
      if (c.first > 0) {
        ASSERT_FALSE(opened.store->reset_after(MetadataOffset{c.first - 1}));
      }
      ASSERT_FALSE(opened.store->append(entries(c.first, c.count)));
    }
    auto opened = MetadataStore::open(file_);
    ASSERT_FALSE(opened.error);
    std::error_code ec = opened.store->align_to_snapshot(MetadataOffset{c.snapshot});
    EXPECT_EQ(ec == make_error_code(errc::corrupt_message), c.corrupt) << ec.message();
    if (c.corrupt)
      continue;
    EXPECT_EQ(opened.store->last_offset().next(), MetadataOffset{c.next});
    ASSERT_FALSE(opened.store->append(entries(c.next, 1)));
    auto again = MetadataStore::open(file_);
    std::vector<int64_t> offsets;
    for (const MetadataEntry& e : again.records)
      offsets.push_back(e.offset.value());
    std::vector<int64_t> expected = c.kept;
    expected.push_back(c.next);
    EXPECT_EQ(offsets, expected);
  }
}

TEST_F(MetadataStoreTest, ResetAfterEmptiesTheLogForALeadersSnapshot) {
  auto opened = MetadataStore::open(file_);
  ASSERT_FALSE(opened.store->append(entries(0, 4)));
  ASSERT_FALSE(opened.store->reset_after(MetadataOffset{20}));
  EXPECT_EQ(std::filesystem::file_size(file_), 0u);
  ASSERT_FALSE(opened.store->append(entries(21, 2)));
  EXPECT_EQ(MetadataStore::open(file_).records, entries(21, 2));
}

TEST_F(MetadataStoreTest, SnapshotFileIsReplacedWholeAndAMissingOneIsEmpty) {
  const auto file = dir_ / "metadata.snapshot";
  auto missing = load_metadata_snapshot(file);
  EXPECT_FALSE(missing.error);
  EXPECT_TRUE(missing.bytes.empty());
  const std::vector<uint8_t> first{1, 2, 3, 4, 5}, second{9, 8};
  ASSERT_FALSE(save_metadata_snapshot(file, first));
  ASSERT_FALSE(save_metadata_snapshot(file, second));
  EXPECT_EQ(load_metadata_snapshot(file).bytes, second);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "metadata.snapshot.tmp"));
}

TEST_F(MetadataStoreTest, OpenFailsWithTheErrnoOfTheFailingCall) {
  auto opened = MetadataStore::open(dir_);  // a directory, not a file
  EXPECT_TRUE(opened.error);
  EXPECT_EQ(opened.store, nullptr);
}

}  // namespace
}  // namespace faultline::cluster
