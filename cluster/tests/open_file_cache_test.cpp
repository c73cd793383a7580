// The logs' descriptor cache (open_file_cache.h): a bounded number of descriptors, a lease that
// keeps its descriptor open through an eviction, no file created by a reopen, and partition logs
// that stay correct when their files are closed and opened again under them.
#include "faultline/cluster/log/open_file_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "faultline/cluster/log/partition_log.h"
#include "faultline/cluster/log/record_batch.h"

namespace faultline::cluster {
namespace {

namespace fsys = std::filesystem;
using faultline::testing::TempDir;

size_t open_descriptors() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : fsys::directory_iterator("/proc/self/fd"))
    ++n;
  return n;
}

bool descriptor_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

std::vector<OpenFileCache::File> create_files(const std::shared_ptr<OpenFileCache>& cache,
                                              const fsys::path& dir, int n) {
  std::vector<OpenFileCache::File> files(n);
  for (int i = 0; i < n; ++i) {
    EXPECT_FALSE(OpenFileCache::create(cache, dir / ("f" + std::to_string(i)), files[i]));
  }
  return files;
}

TEST(OpenFileCache, HoldsAtMostItsCapacityAndReopensWhatItClosed) {
  TempDir dir;
  auto cache = std::make_shared<OpenFileCache>(3);
  const size_t before = open_descriptors();
  auto files = create_files(cache, dir.path(), 10);
  EXPECT_EQ(cache->held(), 3u);
  EXPECT_EQ(open_descriptors(), before + 3);
  EXPECT_EQ(cache->evictions(), 7u);
  EXPECT_EQ(cache->reopens(), 0u);

  // What was written through a descriptor since closed is there when the file is opened again.
  for (int i = 0; i < 10; ++i) {
    OpenFileCache::Lease lease;
    ASSERT_FALSE(files[i].open(lease));
    const std::string text = "file " + std::to_string(i);
    ASSERT_EQ(::pwrite(lease.fd(), text.data(), text.size(), 0), ssize_t(text.size()));
  }
  for (int i = 0; i < 10; ++i) {
    OpenFileCache::Lease lease;
    ASSERT_FALSE(files[i].open(lease));
    char buf[16] = {};
    ASSERT_GT(::pread(lease.fd(), buf, sizeof buf, 0), 0);
    EXPECT_EQ(std::string(buf), "file " + std::to_string(i));
  }
  EXPECT_EQ(cache->held(), 3u);
  EXPECT_GT(cache->reopens(), 0u);
  EXPECT_EQ(open_descriptors(), before + 3);
}

TEST(OpenFileCache, TheMostRecentlyUsedStayOpen) {
  TempDir dir;
  auto cache = std::make_shared<OpenFileCache>(2);
  auto files = create_files(cache, dir.path(), 3);  // holds f1, f2
  OpenFileCache::Lease lease;
  ASSERT_FALSE(files[1].open(lease));  // f1 now the most recent, f2 the least
  lease = {};
  ASSERT_FALSE(files[0].open(lease));  // reopened; evicts f2
  EXPECT_EQ(cache->reopens(), 1u);
  ASSERT_FALSE(files[1].open(lease));  // still held: no reopen
  EXPECT_EQ(cache->reopens(), 1u);
  ASSERT_FALSE(files[2].open(lease));
  EXPECT_EQ(cache->reopens(), 2u);
}

TEST(OpenFileCache, ALeaseKeepsItsDescriptorOpenThroughAnEviction) {
  TempDir dir;
  auto cache = std::make_shared<OpenFileCache>(1);
  auto files = create_files(cache, dir.path(), 1);
  OpenFileCache::Lease held;
  ASSERT_FALSE(files[0].open(held));
  const int fd = held.fd();
  OpenFileCache::File other;
  ASSERT_FALSE(OpenFileCache::create(cache, dir.path() / "other", other));  // evicts files[0]
  EXPECT_EQ(cache->evictions(), 1u);
  EXPECT_TRUE(descriptor_open(fd));  // not closed under its holder
  EXPECT_EQ(::pwrite(fd, "x", 1, 0), 1);
  held = {};
  EXPECT_FALSE(descriptor_open(fd));  // closed with the last lease
}

TEST(OpenFileCache, AFileRemovedBehindItIsAnErrorNotANewEmptyFile) {
  TempDir dir;
  auto cache = std::make_shared<OpenFileCache>(1);
  auto files = create_files(cache, dir.path(), 2);  // files[0] evicted
  fsys::remove(dir.path() / "f0");
  OpenFileCache::Lease lease;
  const auto ec = files[0].open(lease);
  EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
  EXPECT_FALSE(fsys::exists(dir.path() / "f0"));
}

TEST(OpenFileCache, DestroyingAFileClosesItsDescriptor) {
  TempDir dir;
  auto cache = std::make_shared<OpenFileCache>(8);
  const size_t before = open_descriptors();
  {
    auto files = create_files(cache, dir.path(), 4);
    EXPECT_EQ(open_descriptors(), before + 4);
  }
  EXPECT_EQ(cache->held(), 0u);
  EXPECT_EQ(open_descriptors(), before);
}

TEST(OpenFileCache, CapacityForALimitLeavesTheReserve) {
  EXPECT_EQ(OpenFileCache::capacity_for_limit(20000, 4096), 15904u);
  EXPECT_EQ(OpenFileCache::capacity_for_limit(1024, 256), 768u);
  EXPECT_EQ(OpenFileCache::capacity_for_limit(100, 256), 1u);
}

std::string batch_of(int tag) {
  BatchBuilder b(1000 + tag);
  b.add("k", "value-" + std::to_string(tag), 0);
  return b.finish();
}

// Many partition logs sharing four descriptors: appends, rolls, flushes, reads, truncation and a
// reopen all see every record, and the process holds no more than the cache's capacity.
TEST(OpenFileCache, ManyLogsShareAFewDescriptors) {
  TempDir dir;
  LogConfig cfg;
  cfg.files = std::make_shared<OpenFileCache>(4);
  cfg.segment_bytes = 400;  // a roll every few batches
  constexpr int kLogs = 20;
  constexpr int kBatches = 12;
  const size_t before = open_descriptors();
  std::vector<std::unique_ptr<PartitionLog>> logs;
  std::error_code ec;
  for (int i = 0; i < kLogs; ++i) {
    logs.push_back(PartitionLog::open(dir.path() / std::to_string(i), cfg, ec));
    ASSERT_FALSE(ec) << ec.message();
  }
  for (int b = 0; b < kBatches; ++b) {
    for (int i = 0; i < kLogs; ++i) {
      logs[i]->append_as_leader(batch_of(b), LeaderEpoch{1}, ec);
      ASSERT_FALSE(ec) << ec.message();
      if (b % 4 == 3) {
        ASSERT_FALSE(logs[i]->flush());
      }
    }
  }
  EXPECT_LE(open_descriptors(), before + 4);
  EXPECT_GT(logs[0]->segment_count(), 2u);
  for (int i = 0; i < kLogs; ++i) {
    ASSERT_FALSE(logs[i]->truncate_to(Offset{kBatches - 2}));
    const SharedBytes bytes = logs[i]->read(Offset{0}, 1 << 20, Offset{kBatches}, ec);
    ASSERT_FALSE(ec) << ec.message();
    std::vector<Record> records;
    ASSERT_EQ(decode_records(bytes, records), errc::none);
    ASSERT_EQ(records.size(), size_t(kBatches - 2)) << "log " << i;
    EXPECT_EQ(records.back().value, "value-" + std::to_string(kBatches - 3));
  }
  logs.clear();
  EXPECT_EQ(open_descriptors(), before);
  for (int i = 0; i < kLogs; ++i) {
    auto again = PartitionLog::open(dir.path() / std::to_string(i), cfg, ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(again->log_end_offset(), Offset{kBatches - 2});
  }
  EXPECT_GT(cfg.files->reopens(), 0u);
}

// Readers and writers of different logs on several threads, through a cache far smaller than the
// files: no descriptor closed under a reader or writer (which would show as EBADF or as bytes of
// another file), every record read back.
TEST(OpenFileCache, ConcurrentLogsThroughATinyCache) {
  TempDir dir;
  LogConfig cfg;
  cfg.files = std::make_shared<OpenFileCache>(2);
  constexpr int kLogs = 8;
  constexpr int kBatches = 200;
  std::vector<std::unique_ptr<PartitionLog>> logs;
  std::error_code ec;
  for (int i = 0; i < kLogs; ++i) {
    logs.push_back(PartitionLog::open(dir.path() / std::to_string(i), cfg, ec));
    ASSERT_FALSE(ec);
  }
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < kLogs; ++i) {
    threads.emplace_back([&, i] {
      std::error_code e;
      for (int b = 0; b < kBatches; ++b) {
        logs[i]->append_as_leader(batch_of(b), LeaderEpoch{1}, e);
        const SharedBytes bytes = logs[i]->read(Offset{b}, 1 << 16, Offset{b + 1}, e);
        std::vector<Record> records;
        if (e || decode_records(bytes, records) != errc::none || records.size() != 1 ||
            records[0].value != "value-" + std::to_string(b))
          ++failures;
        if (b % 50 == 0 && logs[i]->flush())
          ++failures;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(cfg.files->held(), 2u);
}

}  // namespace
}  // namespace faultline::cluster
