// faultline-lazyfs's model without FUSE: what a writer sees, what fsync makes durable, what a
// power loss or a torn write leaves, and the seeded fault decisions.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "faultline/chaos/storage/lazy_cache.h"
#include "faultline/chaos/storage/lazy_faults.h"

namespace {

using namespace faultline::chaos::storage;

// A backing file in memory.
class StringSink final : public ByteSink {
 public:
  explicit StringSink(std::string initial = {}) : data(std::move(initial)) {}
  std::error_code write_at(uint64_t offset, std::string_view bytes) override {
    if (data.size() < offset + bytes.size())
      data.resize(offset + bytes.size(), '\0');
    data.replace(offset, bytes.size(), bytes);
    return {};
  }
  std::error_code truncate(uint64_t size) override {
    data.resize(size, '\0');
    return {};
  }
  std::string data;
};

// The whole visible file: backing overlaid with the changes.
std::string visible(const FileChanges& c, const std::string& backing) {
  std::string buf(c.visible_size(backing.size()) + 8, 'X');
  std::string copy = backing;
  copy.resize(buf.size(), '\0');
  buf = copy;
  const size_t n = c.overlay(0, {buf.data(), buf.size()}, backing.size());
  return buf.substr(0, n);
}

struct Op {
  char kind;  // 'w' write, 't' truncate
  uint64_t at;
  std::string bytes;
};

struct OverlayCase {
  const char* name;
  std::string backing;
  std::vector<Op> ops;
  std::string expected;
};

class OverlayTest : public ::testing::TestWithParam<OverlayCase> {};

TEST_P(OverlayTest, ReadsWhatApplyingWouldWrite) {
  const auto& tc = GetParam();
  FileChanges c;
  WriteSeq seq = 1;
  for (const auto& op : tc.ops) {
    if (op.kind == 'w')
      c.write(seq++, op.at, op.bytes);
    else
      c.truncate(seq++, op.at);
  }
  EXPECT_EQ(visible(c, tc.backing), tc.expected);
  StringSink sink(tc.backing);
  ASSERT_FALSE(c.apply(sink));
  EXPECT_EQ(sink.data, tc.expected) << "fsync must make durable exactly what was visible";
  EXPECT_EQ(c.visible_size(tc.backing.size()), tc.expected.size());
}

INSTANTIATE_TEST_SUITE_P(
    Table, OverlayTest,
    ::testing::Values(
        OverlayCase{"nothing", "abc", {}, "abc"},
        OverlayCase{"append", "abc", {{'w', 3, "def"}}, "abcdef"},
        OverlayCase{"overwrite_middle", "abcdef", {{'w', 2, "XY"}}, "abXYef"},
        OverlayCase{"hole", "ab", {{'w', 4, "Z"}}, std::string("ab\0\0Z", 5)},
        OverlayCase{"later_write_wins", "", {{'w', 0, "aaaa"}, {'w', 1, "bb"}}, "abba"},
        OverlayCase{"truncate_shrinks", "abcdef", {{'t', 2, ""}}, "ab"},
        OverlayCase{"truncate_then_grow_reads_zeros",
                    "abcdef",
                    {{'t', 2, ""}, {'w', 4, "Z"}},
                    std::string("ab\0\0Z", 5)},
        OverlayCase{
            "write_then_truncate_drops_its_tail", "", {{'w', 0, "hello"}, {'t', 3, ""}}, "hel"},
        OverlayCase{"truncate_extends", "ab", {{'t', 4, ""}}, std::string("ab\0\0", 4)}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(FileChanges, OverlayOfAWindowPastTheEndReadsNothing) {
  FileChanges c;
  c.write(1, 0, "abc");
  std::string buf(4, '\0');
  EXPECT_EQ(c.overlay(10, {buf.data(), buf.size()}, 0), 0u);
  EXPECT_EQ(c.overlay(1, {buf.data(), buf.size()}, 0), 2u);
  EXPECT_EQ(buf.substr(0, 2), "bc");
}

TEST(LazyCache, LoseUnsyncedKeepsOnlyWhatFsyncTook) {
  LazyCache cache;
  StringSink disk;
  cache.write("/log", 0, "synced;");
  auto durable = cache.take("/log");  // fsync
  ASSERT_TRUE(durable);
  ASSERT_FALSE(durable->apply(disk));
  cache.write("/log", 7, "lost");
  cache.write("/other", 0, "lost too");
  EXPECT_EQ(cache.pending_bytes(), 12u);
  EXPECT_EQ(cache.lose_unsynced(), 12u);
  EXPECT_EQ(cache.find("/log"), nullptr);
  EXPECT_EQ(disk.data, "synced;");
}

TEST(LazyCache, RenameMovesChangesAndDropsTheReplacedFile) {
  LazyCache cache;
  cache.write("/d/tmp", 0, "new");
  cache.write("/d/cur", 0, "old");
  cache.rename("/d/tmp", "/d/cur");
  ASSERT_NE(cache.find("/d/cur"), nullptr);
  EXPECT_EQ(cache.find("/d/tmp"), nullptr);
  EXPECT_EQ(visible(*cache.find("/d/cur"), ""), "new");
  cache.rename("/d", "/e");  // a directory: everything under it
  EXPECT_NE(cache.find("/e/cur"), nullptr);
  EXPECT_EQ(cache.find("/d/cur"), nullptr);
  cache.write("/ee", 0, "x");  // a sibling sharing the prefix is not under /e
  cache.unlink("/e");
  EXPECT_EQ(cache.find("/e/cur"), nullptr);
  EXPECT_NE(cache.find("/ee"), nullptr);
}

TEST(LazyCache, TornWriteKeepsAPrefixOfTheNewestWriteOnly) {
  LazyCache cache;
  cache.write("/a", 0, "first-");
  cache.write("/b", 0, "other");
  cache.write("/a", 6, "0123456789");  // the newest
  auto torn = cache.take_torn_newest(30);
  ASSERT_TRUE(torn);
  EXPECT_EQ(torn->path, "/a");
  EXPECT_EQ(torn->write_bytes, 10u);
  EXPECT_EQ(torn->kept_bytes, 3u);
  StringSink disk;
  ASSERT_FALSE(torn->changes.apply(disk));
  EXPECT_EQ(disk.data, "first-012");
  EXPECT_EQ(cache.find("/a"), nullptr);
  EXPECT_NE(cache.find("/b"), nullptr) << "other files keep their pending writes";
}

TEST(LazyCache, TornWriteWithNothingPendingIsNothing) {
  LazyCache cache;
  cache.truncate("/a", 0);
  EXPECT_FALSE(cache.take_torn_newest(50));
}

TEST(TornPrefix, NeverTheWholeWrite) {
  EXPECT_EQ(torn_prefix_bytes(0, 50), 0u);
  EXPECT_EQ(torn_prefix_bytes(1, 50), 1u);
  EXPECT_EQ(torn_prefix_bytes(10, 100), 9u);
  EXPECT_EQ(torn_prefix_bytes(10, 0), 0u);
  EXPECT_EQ(torn_prefix_bytes(4096, 50), 2048u);
}

TEST(StorageFaults, NoRuleNoError) {
  StorageFaults f(1);
  EXPECT_EQ(f.decide_error(IoOp::write, "/x"), 0);
  EXPECT_EQ(f.fsync_delay().count(), 0);
}

struct ErrorCase {
  const char* name;
  ErrorRule rule;
  IoOp op;
  std::string path;
  int expected;
};

class ErrorRuleTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ErrorRuleTest, MatchesByOpAndPath) {
  const auto& tc = GetParam();
  StorageFaults f(7);
  f.set_error(tc.rule);
  EXPECT_EQ(f.decide_error(tc.op, tc.path), tc.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ErrorRuleTest,
    ::testing::Values(ErrorCase{"any_op", ErrorRule{}, IoOp::read, "/x", EIO},
                      ErrorCase{"op_matches", ErrorRule{EIO, IoOp::fsync}, IoOp::fsync, "/x", EIO},
                      ErrorCase{"op_differs", ErrorRule{EIO, IoOp::fsync}, IoOp::write, "/x", 0},
                      ErrorCase{"enospc", ErrorRule{ENOSPC, IoOp::write}, IoOp::write, "/x",
                                ENOSPC},
                      ErrorCase{"glob_crosses_slash", ErrorRule{EIO, std::nullopt, 100, 0, "*.log"},
                                IoOp::write, "/t-0/00000.log", EIO},
                      ErrorCase{"glob_misses", ErrorRule{EIO, std::nullopt, 100, 0, "*.log"},
                                IoOp::write, "/t-0/00000.index", 0},
                      ErrorCase{"rate_zero", ErrorRule{EIO, std::nullopt, 0}, IoOp::write, "/x", 0},
                      ErrorCase{"after_ops_first_passes", ErrorRule{EIO, std::nullopt, 100, 1},
                                IoOp::write, "/x", 0}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(StorageFaults, AfterOpsCountsOnlyMatchingOps) {
  StorageFaults f(3);
  f.set_error(ErrorRule{EIO, IoOp::write, 100, 2, "*"});
  EXPECT_EQ(f.decide_error(IoOp::read, "/x"), 0);
  EXPECT_EQ(f.decide_error(IoOp::write, "/x"), 0);
  EXPECT_EQ(f.decide_error(IoOp::write, "/x"), 0);
  EXPECT_EQ(f.decide_error(IoOp::write, "/x"), EIO);
  EXPECT_EQ(f.errors_injected(), 1u);
}

TEST(StorageFaults, RateIsRoughlyHonouredAndASeedReplays) {
  auto run = [](uint64_t seed) {
    StorageFaults f(seed);
    f.set_error(ErrorRule{EIO, std::nullopt, 25, 0, "*"});
    std::string pattern;
    for (int i = 0; i < 4000; ++i)
      pattern += f.decide_error(IoOp::write, "/x") == 0 ? '.' : 'E';
    return pattern;
  };
  const auto a = run(11);
  EXPECT_EQ(a, run(11));
  EXPECT_NE(a, run(12));
  const auto errors = std::count(a.begin(), a.end(), 'E');
  EXPECT_NEAR(static_cast<double>(errors) / 4000.0, 0.25, 0.03);
}

TEST(StorageFaults, SlowFsyncStaysWithinDelayPlusJitterAndHealClears) {
  StorageFaults f(5);
  f.set_slow_fsync(SlowFsync{std::chrono::milliseconds(20), std::chrono::milliseconds(10)});
  int64_t lo = 1000, hi = 0;
  for (int i = 0; i < 500; ++i) {
    const auto d = f.fsync_delay().count();
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_EQ(lo, 20);
  EXPECT_EQ(hi, 30);
  f.set_error(ErrorRule{});
  f.heal();
  EXPECT_EQ(f.fsync_delay().count(), 0);
  EXPECT_EQ(f.decide_error(IoOp::write, "/x"), 0);
}

struct CommandCase {
  const char* line;
  bool ok;
};

class ControlParseTest : public ::testing::TestWithParam<CommandCase> {};

TEST_P(ControlParseTest, ParsesAndRoundTrips) {
  const auto& tc = GetParam();
  std::string why;
  auto cmd = parse_control_command(tc.line, &why);
  ASSERT_EQ(cmd.has_value(), tc.ok) << tc.line << ": " << why;
  if (!cmd)
    return;
  auto again = parse_control_command(render_control_command(*cmd), &why);
  ASSERT_TRUE(again) << render_control_command(*cmd) << ": " << why;
  EXPECT_EQ(*again, *cmd);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ControlParseTest,
    ::testing::Values(CommandCase{"lose-unsynced", true}, CommandCase{"  heal  ", true},
                      CommandCase{"sync", true}, CommandCase{"seed 42", true},
                      CommandCase{"torn-write", true}, CommandCase{"torn-write keep_pct=10", true},
                      CommandCase{"torn-write keep_pct=101", false}, CommandCase{"error", true},
                      CommandCase{"error errno=ENOSPC op=write rate_pct=5 after_ops=3 path=*.log",
                                  true},
                      CommandCase{"error errno=EPERM", false}, CommandCase{"error op=open", false},
                      CommandCase{"error rate=5", false},
                      CommandCase{"slow-fsync delay_ms=50 jitter_ms=10", true},
                      CommandCase{"slow-fsync jitter_ms=10", false},
                      CommandCase{"slow-fsync delay_ms=-1", false}, CommandCase{"heal now", false},
                      CommandCase{"seed", false}, CommandCase{"", false},
                      CommandCase{"explode", false}));

TEST(ControlParse, ErrorDefaultsAreEioOnAnyOpAlways) {
  auto cmd = parse_control_command("error", nullptr);
  ASSERT_TRUE(cmd);
  EXPECT_EQ(std::get<ErrorRule>(*cmd), ErrorRule{});
}

}  // namespace
