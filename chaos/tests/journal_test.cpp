#include "faultline/chaos/journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace faultline::chaos {
namespace {
namespace fs = std::filesystem;

std::string line(std::string kind, std::string name, std::string state, std::string netns = "",
                 nlohmann::json details = nlohmann::json::object()) {
  JournalRecord r;
  r.kind = kind;
  r.name = name;
  r.netns = netns;
  r.state = *parse_state(state);
  r.details = details;
  return r.to_json().dump() + "\n";
}

std::vector<std::string> names(const std::vector<OutstandingResource>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs)
    out.push_back(r.kind + ":" + r.name);
  return out;
}

TEST(Replay, OutstandingInReverseCreationOrder) {
  const std::string text =
      line("bridge", "fl1-int", "intended") + line("bridge", "fl1-int", "created") +
      line("netns", "fl1-b1", "intended") + line("netns", "fl1-b1", "created") +
      line("link", "fl1b1i", "intended") + line("link", "fl1b1i", "created") +
      line("process", "b1", "intended", "fl1-b1") +
      line("process", "b1", "created", "fl1-b1", {{"pid", 42}});
  auto rs = outstanding(parse_journal(text));
  EXPECT_EQ(names(rs), (std::vector<std::string>{"process:b1", "link:fl1b1i", "netns:fl1-b1",
                                                 "bridge:fl1-int"}));
  EXPECT_EQ(rs[0].state, ResourceState::created);
  EXPECT_EQ(rs[0].details.value("pid", 0), 42);  // details of created merged into the intention
  EXPECT_EQ(rs[0].netns, "fl1-b1");
}

TEST(Replay, RemovedResourcesAreGoneAndIntendedOnesStay) {
  const std::string text = line("netns", "a", "intended") + line("netns", "a", "created") +
                           line("netns", "b", "intended") + line("netns", "a", "removed");
  auto rs = outstanding(parse_journal(text));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].name, "b");
  // Intended but never confirmed: the harness may have died between journal and kernel call.
  EXPECT_EQ(rs[0].state, ResourceState::intended);
}

TEST(Replay, SameNameInDifferentNamespacesAreDifferentResources) {
  const std::string text = line("nft-table", "t", "created", "ns1") +
                           line("nft-table", "t", "created", "ns2") +
                           line("nft-table", "t", "removed", "ns1");
  auto rs = outstanding(parse_journal(text));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].netns, "ns2");
}

TEST(Replay, RecreatedAfterRemovalIsOutstandingAgainAtItsNewPosition) {
  const std::string text = line("process", "b1", "created", "", {{"pid", 1}}) +
                           line("netns", "x", "created") + line("process", "b1", "removed") +
                           line("process", "b1", "created", "", {{"pid", 2}});
  auto rs = outstanding(parse_journal(text));
  EXPECT_EQ(names(rs), (std::vector<std::string>{"process:b1", "netns:x"}));
  EXPECT_EQ(rs[0].details.value("pid", 0), 2);
}

TEST(Parse, TornLastLineAndGarbageAreSkipped) {
  std::string text = line("netns", "a", "created") + "not json\n" + R"({"kind":"netns"})" + "\n" +
                     line("netns", "b", "created");
  text += line("netns", "c", "created").substr(0, 20);  // crash mid-write: no newline
  size_t skipped = 0;
  auto records = parse_journal(text, &skipped);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].name, "a");
  EXPECT_EQ(records[1].name, "b");
  EXPECT_EQ(skipped, 2u);
  EXPECT_LT(records[0].seq, records[1].seq);
}

class JournalFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("fl-journal-test-" + std::to_string(::getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  fs::path root_;
};

TEST_F(JournalFiles, WritesReadableRecordsAndMeta) {
  std::error_code ec;
  auto j = Journal::open(root_, "run1", "fl00001", ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_FALSE(j->intend(resource_kind::netns, "fl00001-b1"));
  ASSERT_FALSE(j->created(resource_kind::netns, "fl00001-b1"));
  ASSERT_FALSE(j->intend(resource_kind::process, "b1", "fl00001-b1", {{"argv0", "x"}}));
  auto records = read_journal(root_ / "run1", ec);
  ASSERT_FALSE(ec);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[2].details.value("argv0", ""), "x");
  auto meta = read_meta(root_ / "run1");
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->prefix, "fl00001");
  EXPECT_EQ(meta->harness_pid, ::getpid());
}

TEST_F(JournalFiles, LockTellsALiveHarnessFromADeadOne) {
  std::error_code ec;
  auto j = Journal::open(root_, "run2", "fl00002", ec);
  ASSERT_FALSE(ec);
  EXPECT_TRUE(harness_alive(root_ / "run2"));
  // A second harness cannot take over a live run.
  auto second = Journal::open(root_, "run2", "fl00002", ec);
  EXPECT_EQ(second, nullptr);
  EXPECT_EQ(ec, std::errc::device_or_resource_busy);
  j.reset();
  EXPECT_FALSE(harness_alive(root_ / "run2"));
  EXPECT_FALSE(harness_alive(root_ / "no-such-run"));
}

TEST_F(JournalFiles, RemovalsAppendedFromOutsideAreReplayed) {
  std::error_code ec;
  {
    auto j = Journal::open(root_, "run3", "fl00003", ec);
    ASSERT_FALSE(ec);
    ASSERT_FALSE(j->created(resource_kind::file, "/tmp/x"));
    ASSERT_FALSE(j->created(resource_kind::file, "/tmp/y"));
  }
  JournalRecord done;
  done.kind = "file";
  done.name = "/tmp/y";
  done.state = ResourceState::removed;
  ASSERT_FALSE(append_record(root_ / "run3", done));
  auto rs = outstanding(read_journal(root_ / "run3", ec));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].name, "/tmp/x");
}

TEST(StateRoot, EnvironmentOverridesTheDefault) {
  ::setenv("FAULTLINE_STATE_ROOT", "/tmp/fl-state-x", 1);
  EXPECT_EQ(default_state_root(), fs::path("/tmp/fl-state-x"));
  ::unsetenv("FAULTLINE_STATE_ROOT");
  EXPECT_EQ(default_state_root(), fs::path("/run/faultline"));
}

}  // namespace
}  // namespace faultline::chaos
