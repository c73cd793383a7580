// faultline-lazyfs mounted for real (root, /dev/fuse) under a file workload: what was fsynced
// survives lose-unsynced and what was not is gone, errors come at the configured rate, a torn
// write keeps a prefix, slow fsyncs are slow, heal passes through; and a harness killed with
// kill -9 while its lazyfs mounts carry faults leaves nothing after `faultline clean`.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <regex>

#include "child_process.h"
#include "faultline/chaos/faults/storage.h"
#include "faultline_test_support.h"

namespace faultline::chaos {
namespace {

using namespace std::chrono_literals;
using faultline::testing::binary_dir;
using faultline::testing::ChildProcess;
using faultline::testing::TempDir;
namespace fs = std::filesystem;

// A lazyfs over <tmp>/back mounted at <tmp>/mnt for one test.
class Mounted {
 public:
  explicit Mounted(uint64_t seed = 1) : dir_("lazyfs-test") {
    fs::create_directories(back());
    fs::create_directories(mnt());
    daemon_ =
        ChildProcess({(binary_dir() / "faultline-lazyfs").string(), "--backing", back().string(),
                      "--mount", mnt().string(), "--seed", std::to_string(seed)},
                     dir_.path() / "lazyfs.log");
    for (int i = 0; i < 500 && !is_lazyfs_mounted(mnt()); ++i)
      std::this_thread::sleep_for(10ms);
  }
  ~Mounted() { stop(); }
  // SIGTERM: the daemon unmounts itself, like a clean shutdown.
  void stop() {
    if (daemon_.running()) {
      daemon_.signal(SIGTERM);
      daemon_.wait_for(5s);
    }
    ::umount2(mnt().c_str(), MNT_DETACH);
  }
  fs::path back() const { return dir_.path() / "back"; }
  fs::path mnt() const { return dir_.path() / "mnt"; }
  bool mounted() const { return is_lazyfs_mounted(mnt()); }
  void command(const std::string& line) const {
    ASSERT_FALSE(lazyfs_command(mnt() / kLazyFsControlFile, line)) << line;
  }
  nlohmann::json status() const { return lazyfs_status(mnt() / kLazyFsControlFile).value(); }
  std::string log() const { return daemon_.log(); }

 private:
  TempDir dir_;
  ChildProcess daemon_;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// An open file of the workload; every call reports errno as a value.
class File {
 public:
  File(const fs::path& p, int flags = O_RDWR | O_CREAT) : fd_(::open(p.c_str(), flags, 0644)) {}
  ~File() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  int write(const std::string& s) {
    return ::write(fd_, s.data(), s.size()) == static_cast<ssize_t>(s.size()) ? 0 : errno;
  }
  int fsync() { return ::fsync(fd_) == 0 ? 0 : errno; }

 private:
  int fd_;
};

TEST(LazyFs, FsyncedSurvivesLoseUnsyncedAndTheRestIsGone) {
  Mounted m;
  ASSERT_TRUE(m.mounted()) << m.log();
  {
    File f(m.mnt() / "log");
    ASSERT_TRUE(f.ok());
    ASSERT_EQ(f.write("durable;"), 0);
    ASSERT_EQ(f.fsync(), 0);
    ASSERT_EQ(f.write("volatile;"), 0);
    File g(m.mnt() / "never-synced");
    ASSERT_EQ(g.write("gone"), 0);
  }
  EXPECT_EQ(slurp(m.mnt() / "log"), "durable;volatile;") << "the writer sees its own writes";
  EXPECT_EQ(slurp(m.back() / "log"), "durable;") << "only fsync reaches the backing file";
  m.command("lose-unsynced");
  EXPECT_EQ(slurp(m.mnt() / "log"), "durable;");
  EXPECT_EQ(fs::file_size(m.mnt() / "log"), 8u);
  EXPECT_TRUE(fs::exists(m.mnt() / "never-synced")) << "names are durable when made";
  EXPECT_EQ(slurp(m.mnt() / "never-synced"), "");
  EXPECT_EQ(m.status()["lost_bytes"], 13);
}

TEST(LazyFs, RenamedTempFileKeepsOnlyWhatWasFsyncedBeforeTheRename) {
  Mounted m;
  ASSERT_TRUE(m.mounted()) << m.log();
  {
    File t(m.mnt() / "ckpt.tmp", O_WRONLY | O_CREAT | O_TRUNC);
    ASSERT_EQ(t.write("42"), 0);
    ASSERT_EQ(t.fsync(), 0);
  }
  fs::rename(m.mnt() / "ckpt.tmp", m.mnt() / "ckpt");
  {
    File u(m.mnt() / "ckpt2.tmp", O_WRONLY | O_CREAT | O_TRUNC);
    ASSERT_EQ(u.write("43"), 0);  // no fsync: the classic zero-length file after a crash
  }
  fs::rename(m.mnt() / "ckpt2.tmp", m.mnt() / "ckpt2");
  m.command("lose-unsynced");
  EXPECT_EQ(slurp(m.mnt() / "ckpt"), "42");
  EXPECT_EQ(slurp(m.mnt() / "ckpt2"), "");
}

TEST(LazyFs, EioOnWritesAtTheConfiguredRate) {
  Mounted m(7);
  ASSERT_TRUE(m.mounted()) << m.log();
  m.command("error errno=EIO op=write rate_pct=30");
  File f(m.mnt() / "data");
  int failed = 0;
  constexpr int kWrites = 600;
  for (int i = 0; i < kWrites; ++i) {
    const int e = f.write("x");
    ASSERT_TRUE(e == 0 || e == EIO) << e;
    failed += e == EIO ? 1 : 0;
  }
  EXPECT_NEAR(static_cast<double>(failed) / kWrites, 0.30, 0.07);
  EXPECT_EQ(m.status()["faults"]["errors_injected"], failed);
  EXPECT_EQ(f.fsync(), 0) << "only writes were asked to fail";
}

TEST(LazyFs, EnospcOnWriteAfterNOpsAndOnlyOnMatchingPaths) {
  Mounted m;
  ASSERT_TRUE(m.mounted()) << m.log();
  m.command("error errno=ENOSPC op=write after_ops=3 path=*.log");
  File log(m.mnt() / "00.log");
  File index(m.mnt() / "00.index");
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(log.write("ok"), 0) << i;
  EXPECT_EQ(log.write("full"), ENOSPC);
  EXPECT_EQ(index.write("other path"), 0);
}

TEST(LazyFs, FailedFsyncReportsEioAndDropsTheUnsyncedData) {
  Mounted m;
  ASSERT_TRUE(m.mounted()) << m.log();
  File f(m.mnt() / "seg");
  ASSERT_EQ(f.write("a"), 0);
  ASSERT_EQ(f.fsync(), 0);
  m.command("error errno=EIO op=fsync");
  ASSERT_EQ(f.write("b"), 0);
  EXPECT_EQ(f.fsync(), EIO);
  EXPECT_EQ(slurp(m.mnt() / "seg"), "a") << "a failed writeback loses the pages, as Linux does";
}

TEST(LazyFs, TornWriteKeepsAPrefixOfTheLastWrite) {
  Mounted m;
  ASSERT_TRUE(m.mounted()) << m.log();
  const std::string record(1000, 'r');
  {
    File f(m.mnt() / "seg");
    ASSERT_EQ(f.write("header;"), 0);
    ASSERT_EQ(f.fsync(), 0);
    ASSERT_EQ(f.write(record), 0);
  }
  m.command("torn-write keep_pct=25");
  m.command("lose-unsynced");
  EXPECT_EQ(slurp(m.mnt() / "seg"), "header;" + record.substr(0, 250));
  EXPECT_EQ(m.status()["torn_writes"], 1);
}

TEST(LazyFs, SlowFsyncIsDelayedWithinDelayPlusJitterThenHealed) {
  Mounted m;
  ASSERT_TRUE(m.mounted()) << m.log();
  m.command("slow-fsync delay_ms=60 jitter_ms=20");
  File f(m.mnt() / "seg");
  std::vector<double> ms;
  for (int i = 0; i < 8; ++i) {
    ASSERT_EQ(f.write("x"), 0);
    const auto start = std::chrono::steady_clock::now();
    ASSERT_EQ(f.fsync(), 0);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("slow-fsync 60+[0,20] ms: min %.1f ms, median %.1f ms, max %.1f ms\n", ms.front(),
              ms[ms.size() / 2], ms.back());
  EXPECT_GE(ms.front(), 60.0);
  // One FUSE round trip on a loaded 2-core host can take tens of milliseconds on its own.
  EXPECT_LT(ms[ms.size() / 2], 80.0 + 150.0);
  m.command("heal");
  ASSERT_EQ(f.write("y"), 0);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(f.fsync(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 50ms);
}

TEST(LazyFs, HealedPassesDataThrough) {
  Mounted m;
  ASSERT_TRUE(m.mounted()) << m.log();
  m.command("error errno=EIO op=any");
  {
    File f(m.mnt() / "d");
    EXPECT_EQ(f.write("x"), EIO);
  }
  m.command("heal");
  {
    File f(m.mnt() / "d");
    ASSERT_EQ(f.write("after heal"), 0);
    ASSERT_EQ(f.fsync(), 0);
  }
  EXPECT_EQ(slurp(m.mnt() / "d"), "after heal");
  EXPECT_EQ(slurp(m.back() / "d"), "after heal");
  EXPECT_FALSE(m.status()["faults"].contains("error"));
}

TEST(LazyFs, BadCommandIsRefused) {
  Mounted m;
  ASSERT_TRUE(m.mounted()) << m.log();
  EXPECT_EQ(lazyfs_command(m.mnt() / kLazyFsControlFile, "explode"),
            std::error_code(EINVAL, std::generic_category()));
}

TEST(LazyFs, ACleanUnmountWritesBackWhatIsPending) {
  Mounted m;
  ASSERT_TRUE(m.mounted()) << m.log();
  {
    File f(m.mnt() / "d");
    ASSERT_EQ(f.write("pending"), 0);
  }
  EXPECT_EQ(slurp(m.back() / "d"), "");
  m.stop();
  EXPECT_FALSE(m.mounted());
  EXPECT_EQ(slurp(m.back() / "d"), "pending");
}

// `faultline cluster up --brokers 1 --lazyfs`, a disk-error fault on b1, kill -9 of the harness,
// then `faultline clean`: no lazyfs mount and no lazyfs daemon of that run is left.
TEST(LazyFsCrash, KilledHarnessThenCleanLeavesNoMountAndNoDaemon) {
  TempDir dir("lazyfs-crash");
  ChildProcess harness(
      {(binary_dir() / "faultline").string(), "cluster", "up", "--brokers", "1", "--lazyfs"},
      dir.path() / "harness.log");
  std::string run, run_id;
  for (int i = 0; i < 600 && run.empty(); ++i) {
    std::smatch match;
    const auto log = harness.log();
    if (std::regex_search(log, match, std::regex("cluster up: run (\\S+) .* in (\\S+)"))) {
      run_id = match[1];
      run = match[2];
    } else {
      std::this_thread::sleep_for(100ms);
    }
  }
  ASSERT_FALSE(run.empty()) << harness.log();
  const fs::path mount_point = fs::path(run) / "data" / "b1";
  ASSERT_TRUE(is_lazyfs_mounted(mount_point)) << harness.log();
  ChildProcess inject({(binary_dir() / "faultline").string(), "fault", "inject", "--run", run,
                       "disk-error", "b1", "--param", "errno=EIO", "--param", "rate_pct=50"},
                      dir.path() / "inject.log");
  ASSERT_EQ(inject.wait_for(30s), 0) << inject.log();
  harness.signal(SIGKILL);
  harness.wait_for(10s);
  ChildProcess clean({(binary_dir() / "faultline").string(), "clean", "--run", run_id},
                     dir.path() / "clean.log");
  EXPECT_EQ(clean.wait_for(60s), 0) << clean.log();
  EXPECT_FALSE(is_lazyfs_mounted(mount_point));
  std::ifstream mountinfo("/proc/self/mountinfo");
  const std::string mounts((std::istreambuf_iterator<char>(mountinfo)), {});
  EXPECT_EQ(mounts.find(run), std::string::npos) << "a mount of the run is left";
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::ifstream in(e.path() / "cmdline", std::ios::binary);
    const std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    EXPECT_FALSE(cmdline.find("faultline-lazyfs") != std::string::npos &&
                 cmdline.find(run) != std::string::npos)
        << "daemon left: " << e.path();
  }
}

}  // namespace
}  // namespace faultline::chaos
