// The verdict of every public oracle history (shared/oracles/porcupine/README.md) must match.
#include <faultline/checker/formats.h>
#include <faultline/checker/linearizability.h>
#include <gtest/gtest.h>

#include <set>

#include "oracle_paths.h"

namespace faultline::checker {
namespace {

namespace fs = std::filesystem;

// From the oracle README: the 23 linearizable etcd histories; the other 79 are not.
const std::set<int> kLinearizableEtcd{2,  5,  7,  18, 25, 31, 38, 45, 48,  49,  51, 53,
                                      56, 67, 75, 76, 80, 87, 92, 98, 100, 101, 102};

LinearizabilityOptions with_deadline(bool partition) {
  LinearizabilityOptions o;
  o.partition_by_key = partition;
  o.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  return o;
}

TEST(Oracle, EveryEtcdHistoryHasTheReadmeVerdict) {
  const fs::path dir = testing::oracle_dir() / "jepsen";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int files = 0, linearizable = 0;
  for (int n = 0; n <= 102; ++n) {
    const fs::path file = dir / fmt::format("etcd_{:03}.log", n);
    if (n == 95) {
      EXPECT_FALSE(fs::exists(file)) << "etcd_095 is left out of the oracle";
      continue;
    }
    auto h = parse_jepsen_etcd(testing::read_file(file), file.string());
    ASSERT_TRUE(h) << h.error().to_string();
    const bool expected = kLinearizableEtcd.count(n) > 0;
    // One register: partitioning by key changes nothing, so both ways must agree.
    for (bool partition : {true, false}) {
      auto r = check_linearizable(*h, ModelKind::cas_register, with_deadline(partition));
      ASSERT_NE(r.verdict, Verdict::unknown) << file;
      EXPECT_EQ(r.verdict == Verdict::valid, expected) << file << " partition=" << partition;
      if (r.verdict == Verdict::invalid) {
        ASSERT_TRUE(r.failing);
        EXPECT_TRUE(r.failing->stuck_op.has_value()) << file;
        EXPECT_LT(r.failing->longest_prefix.size(), r.failing->ops.size());
      }
    }
    linearizable += expected;
    ++files;
  }
  EXPECT_EQ(files, 102);
  EXPECT_EQ(linearizable, 23);
}

struct KvCase {
  const char* file;
  bool linearizable;
  bool also_unpartitioned;  // c50 unpartitioned is far beyond a unit test's budget
};

void PrintTo(const KvCase& c, std::ostream* os) {
  *os << c.file;
}

class OracleKv : public ::testing::TestWithParam<KvCase> {};

TEST_P(OracleKv, VerdictMatchesTheReadme) {
  const auto& c = GetParam();
  const fs::path file = testing::oracle_dir() / "kv" / c.file;
  auto h = parse_porcupine_kv(testing::read_file(file), file.string());
  ASSERT_TRUE(h) << h.error().to_string();
  auto r = check_linearizable(*h, ModelKind::kv, with_deadline(true));
  EXPECT_EQ(r.verdict, c.linearizable ? Verdict::valid : Verdict::invalid) << r.summary();
  EXPECT_GT(r.partitions, 1u);
  if (c.also_unpartitioned) {
    auto whole = check_linearizable(*h, ModelKind::kv, with_deadline(false));
    EXPECT_EQ(whole.verdict, c.linearizable ? Verdict::valid : Verdict::invalid) << whole.summary();
    EXPECT_EQ(whole.partitions, 1u);
  }
}

TEST(Oracle, ReportedPartitionDoesNotDependOnThreads) {
  const fs::path file = testing::oracle_dir() / "kv" / "c50-bad.txt";
  auto h = parse_porcupine_kv(testing::read_file(file), file.string());
  ASSERT_TRUE(h) << h.error().to_string();
  std::optional<std::string> key;
  for (unsigned threads : {1u, 2u, 7u}) {
    LinearizabilityOptions o = with_deadline(true);
    o.threads = threads;
    auto r = check_linearizable(*h, ModelKind::kv, o);
    ASSERT_EQ(r.verdict, Verdict::invalid);
    if (!key)
      key = r.failing->key;
    EXPECT_EQ(r.failing->key, *key) << threads << " threads";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Files, OracleKv,
    ::testing::Values(KvCase{"c01-ok.txt", true, true}, KvCase{"c01-bad.txt", false, true},
                      KvCase{"c10-ok.txt", true, true}, KvCase{"c10-bad.txt", false, true},
                      KvCase{"c50-ok.txt", true, false}, KvCase{"c50-bad.txt", false, false}),
    [](const auto& info) {
      std::string n = info.param.file;
      for (auto& ch : n) {
        if (!isalnum(static_cast<unsigned char>(ch)))
          ch = '_';
      }
      return n;
    });

}  // namespace
}  // namespace faultline::checker
