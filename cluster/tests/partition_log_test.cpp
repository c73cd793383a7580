// The on-disk partition log (partition_log.h): appends, reads, segment rolls, the offset index,
// the leader-epoch history, truncation, checkpoints, and recovery after a crash mid-write.
#include "faultline/cluster/log/partition_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "faultline/cluster/log/record_batch.h"

namespace faultline::cluster {
namespace {

namespace fsys = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fsys::temp_directory_path() / "faultline-log-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fsys::remove_all(path_); }
  const fsys::path& path() const { return path_; }

 private:
  fsys::path path_;
};

// A batch of `n` records whose values name their batch and position ("b<tag>-<i>").
std::string make_batch(int tag, int n, size_t value_bytes = 8) {
  BatchBuilder b(1000 + tag);
  for (int i = 0; i < n; ++i) {
    std::string value = "b" + std::to_string(tag) + "-" + std::to_string(i);
    value.resize(std::max(value.size(), value_bytes), '.');
    b.add("k" + std::to_string(i), value, i);
  }
  return b.finish();
}

std::vector<Record> decode(std::span<const char> bytes) {
  std::vector<Record> out;
  EXPECT_EQ(decode_records(bytes, out), errc::none);
  return out;
}

std::unique_ptr<PartitionLog> open_log(const fsys::path& dir, LogConfig cfg = {}) {
  std::error_code ec;
  auto log = PartitionLog::open(dir, cfg, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_NE(log, nullptr);
  return log;
}

Offset append(PartitionLog& log, const std::string& batch, int32_t epoch) {
  std::error_code ec;
  const Offset base = log.append_as_leader(batch, LeaderEpoch{epoch}, ec);
  EXPECT_FALSE(ec) << ec.message();
  return base;
}

std::string read_all(const PartitionLog& log, Offset from = Offset{0}) {
  std::error_code ec;
  auto bytes = log.read(from, size_t{1} << 30, log.log_end_offset(), ec);
  EXPECT_FALSE(ec) << ec.message();
  return bytes.str();
}

std::vector<fsys::path> files_with(const fsys::path& dir, const std::string& ext) {
  std::vector<fsys::path> out;
  for (const auto& e : fsys::directory_iterator(dir))
    if (e.path().extension() == ext)
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

void append_raw(const fsys::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary | std::ios::app) << bytes;
}

std::string slurp(const fsys::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Small segments and a dense index so that a few dozen batches exercise rolls and seeks.
LogConfig small_segments() {
  LogConfig cfg;
  cfg.segment_bytes = 600;
  cfg.index_interval_bytes = 150;
  return cfg;
}

TEST(PartitionLog, AssignsOffsetsAndEpochsOnLeaderAppend) {
  TempDir dir;
  auto log = open_log(dir.path());
  EXPECT_EQ(log->log_start_offset(), Offset{0});
  EXPECT_EQ(log->log_end_offset(), Offset{0});
  EXPECT_EQ(log->latest_epoch(), LeaderEpoch{-1});
  EXPECT_EQ(append(*log, make_batch(0, 3), 1), Offset{0});
  EXPECT_EQ(append(*log, make_batch(1, 2), 1), Offset{3});
  EXPECT_EQ(log->log_end_offset(), Offset{5});
  const auto records = decode(read_all(*log));
  ASSERT_EQ(records.size(), 5u);
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(records[i].offset, Offset{i});
    EXPECT_EQ(records[i].leader_epoch, LeaderEpoch{1});
  }
  EXPECT_EQ(records[3].value, "b1-0....");
}

TEST(PartitionLog, ReadsAcrossSegmentRollsFromEveryOffset) {
  TempDir dir;
  auto log = open_log(dir.path(), small_segments());
  std::vector<std::string> values;
  for (int b = 0; b < 40; ++b) {
    append(*log, make_batch(b, 1 + b % 4), 2);
    for (int i = 0; i < 1 + b % 4; ++i)
      values.push_back("b" + std::to_string(b) + "-" + std::to_string(i));
  }
  ASSERT_GT(log->segment_count(), 5u);
  EXPECT_EQ(files_with(dir.path(), ".log").size(), log->segment_count());
  const int64_t leo = log->log_end_offset().value();
  ASSERT_EQ(leo, static_cast<int64_t>(values.size()));
  for (int64_t from = 0; from < leo; ++from) {
    const auto records = decode(read_all(*log, Offset{from}));
    ASSERT_FALSE(records.empty()) << from;
    // The batch containing `from` comes first: it starts at or before from.
    EXPECT_LE(records.front().offset.value(), from);
    EXPECT_EQ(records.back().offset.value(), leo - 1) << from;
    for (const auto& r : records)
      EXPECT_EQ(r.value->substr(0, r.value->find('.')), values[r.offset.value()]);
  }
}

TEST(PartitionLog, ReadFromTheMiddleOfABatchReturnsThatWholeBatch) {
  TempDir dir;
  auto log = open_log(dir.path());
  append(*log, make_batch(0, 5), 1);
  append(*log, make_batch(1, 5), 1);
  std::error_code ec;
  const auto records = decode(log->read(Offset{7}, 1, Offset{10}, ec));
  ASSERT_FALSE(ec);
  ASSERT_EQ(records.size(), 5u) << "one batch, although larger than max_bytes";
  EXPECT_EQ(records.front().offset, Offset{5});
}

TEST(PartitionLog, ReadStopsAtTheUpperBoundAndTheByteBudget) {
  TempDir dir;
  auto log = open_log(dir.path());
  const std::string batch = make_batch(0, 2);
  for (int i = 0; i < 10; ++i)
    append(*log, batch, 1);  // offsets 2i, 2i+1
  std::error_code ec;
  // High watermark at 6: a consumer sees offsets 0..5 and nothing at or after 6.
  auto records = decode(log->read(Offset{0}, 1 << 20, Offset{6}, ec));
  ASSERT_FALSE(ec);
  ASSERT_EQ(records.size(), 6u);
  EXPECT_EQ(records.back().offset, Offset{5});
  EXPECT_TRUE(log->read(Offset{6}, 1 << 20, Offset{6}, ec).empty());
  EXPECT_FALSE(ec);
  // Budget of two and a half batches: two batches.
  records = decode(log->read(Offset{4}, batch.size() * 5 / 2, Offset{20}, ec));
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(records.front().offset, Offset{4});
}

TEST(PartitionLog, ReadOutsideTheLogIsOffsetOutOfRange) {
  TempDir dir;
  auto log = open_log(dir.path());
  append(*log, make_batch(0, 3), 1);
  std::error_code ec;
  EXPECT_TRUE(log->read(Offset{3}, 100, Offset{3}, ec).empty()) << "at the log end: nothing yet";
  EXPECT_FALSE(ec);
  log->read(Offset{4}, 100, Offset{10}, ec);
  EXPECT_EQ(ec, errc::offset_out_of_range);
  log->read(Offset{-1}, 100, Offset{10}, ec);
  EXPECT_EQ(ec, errc::offset_out_of_range);
}

TEST(PartitionLog, ReopenAfterCleanCloseKeepsEverything) {
  TempDir dir;
  std::string before;
  std::vector<EpochEntry> epochs;
  {
    auto log = open_log(dir.path(), small_segments());
    for (int b = 0; b < 30; ++b)
      append(*log, make_batch(b, 3), b < 10 ? 1 : (b < 20 ? 3 : 4));
    ASSERT_FALSE(log->flush());
    before = read_all(*log);
    epochs = log->epoch_entries();
    ASSERT_EQ(epochs.size(), 3u);
  }
  auto log = open_log(dir.path(), small_segments());
  EXPECT_EQ(log->log_end_offset(), Offset{90});
  EXPECT_EQ(log->epoch_entries(), epochs);
  EXPECT_EQ(log->latest_epoch(), LeaderEpoch{4});
  EXPECT_EQ(read_all(*log), before);
  EXPECT_EQ(append(*log, make_batch(99, 1), 4), Offset{90});
}

TEST(PartitionLog, RecoveryCutsATornTailAtTheLastGoodBatch) {
  const std::vector<std::pair<const char*, std::string>> tails = {
      {"garbage", std::string(100, '\x5A')},
      {"half a batch", make_batch(7, 4).substr(0, 40)},
      {"a batch minus its last byte",
       [] {
         auto b = make_batch(7, 4);
         b.pop_back();
         return b;
       }()},
      {"a batch with a bad crc",
       [] {
         auto b = make_batch(7, 4);
         b.back() ^= 1;
         return b;
       }()},
      {"a batch at the wrong offset", make_batch(7, 4)},  // base offset 0, expected 6
  };
  for (const auto& [what, tail] : tails) {
    SCOPED_TRACE(what);
    TempDir dir;
    std::string good;
    {
      auto log = open_log(dir.path());
      append(*log, make_batch(0, 3), 1);
      append(*log, make_batch(1, 3), 1);
      good = read_all(*log);
    }
    const auto segment = files_with(dir.path(), ".log").back();
    append_raw(segment, tail);
    auto log = open_log(dir.path());
    EXPECT_EQ(log->log_end_offset(), Offset{6});
    EXPECT_EQ(read_all(*log), good);
    EXPECT_EQ(fsys::file_size(segment), good.size()) << "the torn bytes are gone from disk";
    EXPECT_EQ(append(*log, make_batch(2, 2), 1), Offset{6});
    const auto records = decode(read_all(*log));
    ASSERT_EQ(records.size(), 8u);
    EXPECT_EQ(records.back().value, "b2-1....");
  }
}

TEST(PartitionLog, RecoveryDropsEpochsBeyondTheRecoveredEnd) {
  TempDir dir;
  {
    auto log = open_log(dir.path());
    append(*log, make_batch(0, 3), 1);
    append(*log, make_batch(1, 3), 5);  // epoch 5 starts at 3
  }
  const auto segment = files_with(dir.path(), ".log").back();
  // Crash before the epoch-5 batch reached the disk: its bytes are torn.
  const std::string bytes = slurp(segment);
  fsys::resize_file(segment, bytes.size() - 10);
  auto log = open_log(dir.path());
  EXPECT_EQ(log->log_end_offset(), Offset{3});
  EXPECT_EQ(log->epoch_entries(), (std::vector<EpochEntry>{{LeaderEpoch{1}, Offset{0}}}));
  EXPECT_EQ(slurp(dir.path() / "leader-epoch-checkpoint"), "0\n1\n1 0\n");
}

TEST(PartitionLog, MissingEpochCheckpointIsRebuiltFromTheBatches) {
  TempDir dir;
  std::vector<EpochEntry> epochs;
  {
    auto log = open_log(dir.path(), small_segments());
    for (int b = 0; b < 30; ++b)
      append(*log, make_batch(b, 2), 1 + b / 7);
    epochs = log->epoch_entries();
    ASSERT_EQ(epochs.size(), 5u);
  }
  fsys::remove(dir.path() / "leader-epoch-checkpoint");
  auto log = open_log(dir.path(), small_segments());
  EXPECT_EQ(log->epoch_entries(), epochs);
  EXPECT_TRUE(fsys::exists(dir.path() / "leader-epoch-checkpoint"));
}

TEST(PartitionLog, DeletedOrShortIndexIsRebuilt) {
  TempDir dir;
  std::string all;
  {
    auto log = open_log(dir.path(), small_segments());
    for (int b = 0; b < 40; ++b)
      append(*log, make_batch(b, 2), 1);
    all = read_all(*log);
  }
  const auto indexes = files_with(dir.path(), ".index");
  ASSERT_GE(indexes.size(), 3u);
  const std::string first = slurp(indexes[0]);
  const std::string second = slurp(indexes[1]);
  ASSERT_GE(first.size(), 16u) << "the test needs indexed segments";
  fsys::remove(indexes[0]);
  fsys::resize_file(indexes[1], second.size() - 8);
  auto log = open_log(dir.path(), small_segments());
  EXPECT_EQ(slurp(indexes[0]), first);
  EXPECT_EQ(slurp(indexes[1]), second);
  EXPECT_EQ(read_all(*log), all);
  for (int64_t from = 0; from < 80; from += 3)
    EXPECT_EQ(decode(read_all(*log, Offset{from})).back().offset, Offset{79});
}

TEST(PartitionLog, IndexPointingIntoTheMiddleOfABatchIsRebuilt) {
  TempDir dir;
  {
    auto log = open_log(dir.path(), small_segments());
    for (int b = 0; b < 40; ++b)
      append(*log, make_batch(b, 2), 1);
  }
  const auto index = files_with(dir.path(), ".index").front();
  std::string bytes = slurp(index);
  const std::string original = bytes;
  ASSERT_GE(bytes.size(), 8u);
  bytes[bytes.size() - 1] = static_cast<char>(bytes[bytes.size() - 1] + 1);  // position + 1
  std::ofstream(index, std::ios::binary | std::ios::trunc) << bytes;
  auto log = open_log(dir.path(), small_segments());
  EXPECT_EQ(slurp(index), original);
}

TEST(PartitionLog, FollowerAppendKeepsLeaderOffsetsAndRecordsEpochs) {
  TempDir leader_dir;
  TempDir follower_dir;
  auto leader = open_log(leader_dir.path(), small_segments());
  auto follower = open_log(follower_dir.path(), small_segments());
  for (int b = 0; b < 12; ++b)
    append(*leader, make_batch(b, 3), b < 4 ? 2 : 6);
  // The follower fetches in small chunks, as replication does.
  while (follower->log_end_offset() < leader->log_end_offset()) {
    std::error_code ec;
    const auto chunk = leader->read(follower->log_end_offset(), 400, leader->log_end_offset(), ec);
    ASSERT_FALSE(ec);
    ASSERT_FALSE(follower->append_as_follower(chunk));
  }
  EXPECT_EQ(read_all(*follower), read_all(*leader));
  EXPECT_EQ(follower->epoch_entries(), leader->epoch_entries());
  EXPECT_EQ(follower->epoch_entries(),
            (std::vector<EpochEntry>{{LeaderEpoch{2}, Offset{0}}, {LeaderEpoch{6}, Offset{12}}}));
}

TEST(PartitionLog, FollowerAppendRefusesGapsOverlapsAndDamage) {
  TempDir dir;
  auto log = open_log(dir.path());
  std::string b0 = make_batch(0, 3);
  stamp_batch(b0, Offset{0}, LeaderEpoch{2});
  std::string b1 = make_batch(1, 3);
  stamp_batch(b1, Offset{3}, LeaderEpoch{2});
  EXPECT_EQ(log->append_as_follower(b1), errc::offset_out_of_range) << "gap";
  ASSERT_FALSE(log->append_as_follower(b0));
  EXPECT_EQ(log->append_as_follower(b0), errc::offset_out_of_range) << "overlap";
  std::string b2 = make_batch(2, 1);
  stamp_batch(b2, Offset{7}, LeaderEpoch{2});
  EXPECT_EQ(log->append_as_follower(b1 + b2), errc::corrupt_message) << "hole between batches";
  std::string damaged = b1;
  damaged[70] ^= 1;
  EXPECT_EQ(log->append_as_follower(damaged), errc::corrupt_message);
  std::string old_epoch = b1;
  stamp_batch(old_epoch, Offset{3}, LeaderEpoch{1});
  EXPECT_EQ(log->append_as_follower(old_epoch), errc::corrupt_message) << "epoch went back";
  EXPECT_EQ(log->log_end_offset(), Offset{3}) << "nothing of the refused appends was written";
  EXPECT_FALSE(log->append_as_follower({}));
}

TEST(PartitionLog, LeaderAppendWithAStaleEpochIsFenced) {
  TempDir dir;
  auto log = open_log(dir.path());
  append(*log, make_batch(0, 1), 5);
  std::error_code ec;
  log->append_as_leader(make_batch(1, 1), LeaderEpoch{4}, ec);
  EXPECT_EQ(ec, errc::fenced_leader_epoch);
  EXPECT_EQ(log->log_end_offset(), Offset{1});
}

TEST(PartitionLog, EndOffsetForEpochAnswersFromTheLog) {
  TempDir dir;
  auto log = open_log(dir.path());
  EXPECT_EQ(log->end_offset_for_epoch(LeaderEpoch{0}), (std::pair{LeaderEpoch{-1}, Offset{-1}}));
  append(*log, make_batch(0, 4), 1);  // 0..3 epoch 1
  append(*log, make_batch(1, 4), 3);  // 4..7 epoch 3
  append(*log, make_batch(2, 2), 3);  // 8..9
  append(*log, make_batch(3, 2), 4);  // 10..11 epoch 4
  EXPECT_EQ(log->end_offset_for_epoch(LeaderEpoch{0}), (std::pair{LeaderEpoch{0}, Offset{0}}));
  EXPECT_EQ(log->end_offset_for_epoch(LeaderEpoch{1}), (std::pair{LeaderEpoch{1}, Offset{4}}));
  EXPECT_EQ(log->end_offset_for_epoch(LeaderEpoch{2}), (std::pair{LeaderEpoch{1}, Offset{4}}));
  EXPECT_EQ(log->end_offset_for_epoch(LeaderEpoch{3}), (std::pair{LeaderEpoch{3}, Offset{10}}));
  EXPECT_EQ(log->end_offset_for_epoch(LeaderEpoch{4}), (std::pair{LeaderEpoch{4}, Offset{12}}));
  EXPECT_EQ(log->end_offset_for_epoch(LeaderEpoch{9}), (std::pair{LeaderEpoch{4}, Offset{12}}));
}

TEST(PartitionLog, TruncateToDropsRecordsSegmentsAndEpochs) {
  TempDir dir;
  auto log = open_log(dir.path(), small_segments());
  for (int b = 0; b < 30; ++b)
    append(*log, make_batch(b, 2), b < 20 ? 1 : 2);  // epoch 2 starts at 40
  const size_t segments_before = log->segment_count();
  ASSERT_GT(segments_before, 4u);
  const std::string prefix = [&] {
    std::error_code ec;
    return log->read(Offset{0}, 1 << 20, Offset{14}, ec).str();
  }();

  ASSERT_FALSE(log->truncate_to(Offset{60})) << "at the end: nothing to do";
  EXPECT_EQ(log->log_end_offset(), Offset{60});
  ASSERT_FALSE(log->truncate_to(Offset{41})) << "inside a batch: the batch goes";
  EXPECT_EQ(log->log_end_offset(), Offset{40});
  EXPECT_EQ(log->latest_epoch(), LeaderEpoch{1}) << "epoch 2 started at 40 and is gone";
  ASSERT_FALSE(log->truncate_to(Offset{14}));
  EXPECT_EQ(log->log_end_offset(), Offset{14});
  EXPECT_LT(log->segment_count(), segments_before);
  EXPECT_EQ(files_with(dir.path(), ".log").size(), log->segment_count());
  EXPECT_EQ(read_all(*log), prefix);
  std::error_code ec;
  log->read(Offset{15}, 100, Offset{100}, ec);
  EXPECT_EQ(ec, errc::offset_out_of_range);

  // Appends continue from the new end, in a new epoch, and all of it survives a reopen.
  EXPECT_EQ(append(*log, make_batch(50, 3), 7), Offset{14});
  const std::string after = read_all(*log);
  log.reset();
  log = open_log(dir.path(), small_segments());
  EXPECT_EQ(log->log_end_offset(), Offset{17});
  EXPECT_EQ(read_all(*log), after);
  EXPECT_EQ(log->epoch_entries(),
            (std::vector<EpochEntry>{{LeaderEpoch{1}, Offset{0}}, {LeaderEpoch{7}, Offset{14}}}));
}

TEST(PartitionLog, TruncateToZeroEmptiesTheLog) {
  TempDir dir;
  auto log = open_log(dir.path(), small_segments());
  for (int b = 0; b < 20; ++b)
    append(*log, make_batch(b, 2), 3);
  ASSERT_FALSE(log->truncate_to(Offset{0}));
  EXPECT_EQ(log->log_end_offset(), Offset{0});
  EXPECT_EQ(log->latest_epoch(), LeaderEpoch{-1});
  EXPECT_EQ(log->segment_count(), 1u);
  EXPECT_TRUE(read_all(*log).empty());
  EXPECT_EQ(append(*log, make_batch(0, 1), 4), Offset{0});
}

TEST(PartitionLog, TruncatedLogMatchesAFreshLogWithTheSameAppends) {
  // Differential check of truncation at every offset: the index, the segments and the tail must
  // behave exactly as if the dropped records had never been written. (Each roll fsyncs: a few
  // cut points, chosen at the start, middle and end of segments, keep this quick.)
  for (const int64_t cut : {0, 5, 14, 23, 33, 39}) {
    SCOPED_TRACE(cut);
    TempDir a_dir;
    TempDir b_dir;
    auto a = open_log(a_dir.path(), small_segments());
    auto b = open_log(b_dir.path(), small_segments());
    for (int i = 0; i < 20; ++i)
      append(*a, make_batch(i, 2), 1);
    ASSERT_FALSE(a->truncate_to(Offset{cut}));
    for (int i = 0; i < cut / 2; ++i)
      append(*b, make_batch(i, 2), 1);
    for (int i = 100; i < 110; ++i) {
      append(*a, make_batch(i, 2), 2);
      append(*b, make_batch(i, 2), 2);
    }
    EXPECT_EQ(read_all(*a), read_all(*b));
    EXPECT_EQ(a->epoch_entries(), b->epoch_entries());
    a.reset();
    a = open_log(a_dir.path(), small_segments());
    EXPECT_EQ(read_all(*a), read_all(*b));
  }
}

TEST(PartitionLog, HighWatermarkCheckpointRoundTrips) {
  TempDir dir;
  {
    auto log = open_log(dir.path());
    EXPECT_EQ(log->high_watermark_checkpoint(), Offset{0});
    append(*log, make_batch(0, 10), 1);
    ASSERT_FALSE(log->write_high_watermark_checkpoint(Offset{7}));
    EXPECT_EQ(log->high_watermark_checkpoint(), Offset{7});
  }
  {
    auto log = open_log(dir.path());
    EXPECT_EQ(log->high_watermark_checkpoint(), Offset{7});
    ASSERT_FALSE(log->write_high_watermark_checkpoint(Offset{10}));
  }
  // A checkpoint beyond the log end (the tail was lost) is clamped to it.
  const auto segment = files_with(dir.path(), ".log").back();
  fsys::resize_file(segment, 0);
  auto log = open_log(dir.path());
  EXPECT_EQ(log->log_end_offset(), Offset{0});
  EXPECT_EQ(log->high_watermark_checkpoint(), Offset{0});
  EXPECT_FALSE(fsys::exists(dir.path() / "hw-checkpoint.tmp"));
}

TEST(PartitionLog, FsyncEveryBatchReportsTheFsyncDuration) {
  TempDir dir;
  LogConfig cfg;
  {
    auto log = open_log(dir.path(), cfg);
    append(*log, make_batch(0, 1), 1);
    EXPECT_FALSE(log->last_fsync_duration().has_value());
  }
  cfg.fsync_every_batch = true;
  auto log = open_log(dir.path(), cfg);
  append(*log, make_batch(1, 1), 1);
  ASSERT_TRUE(log->last_fsync_duration().has_value());
  EXPECT_GE(log->last_fsync_duration()->count(), 0);
}

TEST(PartitionLog, RandomisedCrashPointsRecoverToABatchBoundary) {
  // Cut the segment file at random byte positions (a crash at any point of a write) and check
  // that recovery lands exactly on the last batch that fits entirely.
  std::mt19937_64 rng(20261124);
  TempDir dir;
  std::vector<std::pair<uint64_t, int64_t>> boundaries;  // (file bytes, log end) after each batch
  std::string full;
  {
    auto log = open_log(dir.path());
    for (int b = 0; b < 25; ++b) {
      append(*log, make_batch(b, 1 + b % 5, 20), 1);
      boundaries.emplace_back(fsys::file_size(files_with(dir.path(), ".log").back()),
                              log->log_end_offset().value());
    }
  }
  const auto segment = files_with(dir.path(), ".log").back();
  full = slurp(segment);
  for (int trial = 0; trial < 30; ++trial) {
    const uint64_t cut = std::uniform_int_distribution<uint64_t>(0, full.size())(rng);
    std::ofstream(segment, std::ios::binary | std::ios::trunc) << full.substr(0, cut);
    int64_t expected = 0;
    for (auto [bytes, leo] : boundaries)
      if (bytes <= cut)
        expected = leo;
    auto log = open_log(dir.path());
    EXPECT_EQ(log->log_end_offset(), Offset{expected}) << "cut at byte " << cut;
  }
}

TEST(PartitionLog, ReadersSeeAConsistentPrefixWhileTheLeaderAppends) {
  // A broker serves fetches while producing: every read must return whole, valid batches with
  // contiguous offsets, whatever the writer is doing (rolls and fsyncs included).
  TempDir dir;
  LogConfig cfg = small_segments();
  cfg.fsync_every_batch = true;
  auto log = open_log(dir.path(), cfg);
  constexpr int kBatches = 50;
  std::atomic<bool> writer_done{false};
  std::atomic<int> bad_reads{0};
  std::atomic<int> reads{0};
  auto reader = [&] {
    while (!writer_done.load()) {
      std::error_code ec;
      const Offset leo = log->log_end_offset();
      const SharedBytes bytes = log->read(Offset{0}, size_t{1} << 20, leo, ec);
      std::vector<Record> records;
      if (ec || decode_records(bytes, records) != errc::none)
        ++bad_reads;
      for (size_t i = 0; i < records.size(); ++i)
        if (records[i].offset != Offset{static_cast<int64_t>(i)})
          ++bad_reads;
      ++reads;
    }
  };
  std::thread r1(reader);
  std::thread r2(reader);
  for (int b = 0; b < kBatches; ++b) {
    std::error_code ec;
    log->append_as_leader(make_batch(b, 2), LeaderEpoch{1}, ec);
    ASSERT_FALSE(ec);
  }
  writer_done = true;
  r1.join();
  r2.join();
  EXPECT_EQ(bad_reads.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(log->log_end_offset(), Offset{2 * kBatches});
}

TEST(PartitionLog, OpenFailsCleanlyOnAnUnusableDirectory) {
  TempDir dir;
  const auto file = dir.path() / "not-a-dir";
  std::ofstream(file) << "x";
  std::error_code ec;
  EXPECT_EQ(PartitionLog::open(file / "log", {}, ec), nullptr);
  EXPECT_TRUE(ec);
}

}  // namespace
}  // namespace faultline::cluster
