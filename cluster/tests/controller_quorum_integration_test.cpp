// The controller quorum with real faultline-controller processes on loopback: one active
// controller, failover after kill -9 and SIGSTOP, committed metadata surviving it, a deposed
// controller stepping down, and no active controller without a majority.
#include <gtest/gtest.h>

#include <csignal>
#include <thread>

#include "child_process.h"
#include "controller_quorum.h"
#include "faultline/cluster/client/client.h"

namespace faultline::testing {
namespace {

using namespace std::chrono_literals;
using cluster::errc;

class ControllerQuorumTest : public ::testing::Test {
 protected:
  cluster::ClientConfig admin_config(std::chrono::milliseconds timeout = 3s) const {
    cluster::ClientConfig c;
    c.controllers = quorum_.endpoint_list();
    c.request_timeout = timeout;
    return c;
  }
  // Dumps every voter's log when a test fails.
  void TearDown() override {
    if (!HasFailure())
      return;
    for (int i = 0; i < quorum_.size(); ++i)
      std::cerr << "---- controller " << i << "\n" << quorum_.process(i).log();
  }
  // The committed metadata log as the active controller serves it to brokers.
  std::vector<cluster::MetadataEntry> committed_log(int voter) {
    cluster::FetchMetadataLogRequest req;
    req.from = cluster::MetadataOffset{0};
    auto res = quorum_.call(voter, req, 1s);
    if (auto* r = std::get_if<cluster::FetchMetadataLogResponse>(&res.response))
      return r->entries;
    return {};
  }

  TempDir dir_{"faultline-quorum"};
  ControllerQuorum quorum_{dir_.path(), {}};
};

TEST_F(ControllerQuorumTest, ElectsOneActiveControllerThatEveryVoterFollows) {
  auto leader = quorum_.wait_for_leader(10s);
  ASSERT_TRUE(leader);
  // Give the followers a heartbeat to learn of it.
  std::this_thread::sleep_for(200ms);
  int leaders = 0;
  int64_t epoch = -1;
  for (int i = 0; i < quorum_.size(); ++i) {
    auto d = quorum_.describe(i);
    ASSERT_TRUE(d) << "voter " << i;
    leaders += d->role == "leader" ? 1 : 0;
    EXPECT_EQ(d->leader, *leader) << "voter " << i;
    if (epoch < 0)
      epoch = d->epoch;
    EXPECT_EQ(d->epoch, epoch) << "voter " << i;
    EXPECT_EQ(d->voters.size(), 3u);
  }
  EXPECT_EQ(leaders, 1);
  // The others refuse broker and admin requests, naming no data: NOT_CONTROLLER.
  for (int i = 0; i < quorum_.size(); ++i) {
    if (i == *leader)
      continue;
    cluster::ClientConfig c;
    c.controllers = {quorum_.endpoint(i)};
    c.request_timeout = 1s;
    cluster::SyncClient follower_only(c);
    EXPECT_EQ(follower_only.set_config("auto.leader.rebalance.enable", "false"),
              errc::not_controller);
  }
}

TEST_F(ControllerQuorumTest, KillOfTheActiveControllerElectsAnotherThatKeepsCommittedRecords) {
  auto first = quorum_.wait_for_leader(10s);
  ASSERT_TRUE(first);
  cluster::SyncClient admin(admin_config());
  ASSERT_EQ(admin.set_config("unclean.leader.election.enable", "true"), errc::none);
  auto before = quorum_.describe(*first);
  ASSERT_TRUE(before);

  quorum_.process(*first).kill_and_reap();
  auto started = std::chrono::steady_clock::now();
  auto second = quorum_.wait_for_leader(10s, {*first});
  ASSERT_TRUE(second);
  auto failover = std::chrono::steady_clock::now() - started;
  EXPECT_NE(*second, *first);
  auto after = quorum_.describe(*second);
  ASSERT_TRUE(after);
  EXPECT_GT(after->epoch, before->epoch);
  // Election timeout 500 ms (randomised up to 1 s), pre-vote and vote: well within 5 s.
  EXPECT_LT(failover, 5s);

  // The acknowledged config change is in the new active controller's committed log, after its
  // own ControllerElected record for the new epoch.
  auto log = committed_log(*second);
  bool config_seen = false, elected_seen = false;
  for (const auto& e : log) {
    if (auto* c = std::get_if<cluster::ConfigChanged>(&e.record))
      config_seen |= c->key == "unclean.leader.election.enable" && c->value == "true";
    if (auto* c = std::get_if<cluster::ControllerElected>(&e.record))
      elected_seen |= c->controller == *second && c->epoch == after->epoch;
  }
  EXPECT_TRUE(config_seen);
  EXPECT_TRUE(elected_seen);
  // Admin requests follow the new active controller.
  EXPECT_EQ(admin.set_config("auto.leader.rebalance.enable", "false"), errc::none);

  // The killed voter comes back as a follower and catches up.
  quorum_.start(*first);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  bool caught_up = false;
  while (!caught_up && std::chrono::steady_clock::now() < deadline) {
    auto back = quorum_.describe(*first);
    auto lead = quorum_.describe(*second);
    caught_up = back && lead && back->role == "follower" && back->leader == *second &&
                back->last_offset == lead->last_offset &&
                back->commit_offset == lead->commit_offset;
    if (!caught_up)
      std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(caught_up);
}

// Snapshots every 20 records: a voter that was down while the others compacted their logs past
// its end is sent the active controller's snapshot, and then serves the same committed state
// (the markers written while it was away included) as the others, also after its own restart.
class ControllerQuorumSnapshotTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (!HasFailure())
      return;
    for (int i = 0; i < snapshots_.size(); ++i)
      std::cerr << "---- controller " << i << "\n" << snapshots_.process(i).log();
  }
  // A voter's committed log read as the harness reads it (any voter answers).
  struct Read {
    std::vector<std::string> markers;  // the snapshot's, then the entries'
    cluster::MetadataOffset snapshot_offset{-1};
    cluster::MetadataOffset first_entry{-1};
  };
  std::optional<Read> read_voter(int voter) {
    cluster::FetchMetadataLogRequest req;
    req.from = cluster::MetadataOffset{0};
    req.max_records = 100000;
    req.any_voter = true;
    auto res = snapshots_.call(voter, req, 2s);
    auto* r = std::get_if<cluster::FetchMetadataLogResponse>(&res.response);
    if (res.error || r == nullptr || r->error != errc::none)
      return std::nullopt;
    Read read;
    if (!r->snapshot.empty()) {
      auto snapshot = cluster::decode_metadata_snapshot(r->snapshot);
      if (!snapshot)
        return std::nullopt;
      read.snapshot_offset = snapshot->last_offset;
      for (const auto& m : snapshot->image.marker_history())
        read.markers.push_back(m.value);
    }
    for (const auto& e : r->entries) {
      if (auto* c = std::get_if<cluster::ConfigChanged>(&e.record);
          c && c->key == cluster::kMarkerKey)
        read.markers.push_back(c->value);
    }
    if (!r->entries.empty())
      read.first_entry = r->entries.front().offset;
    return read;
  }
  bool caught_up(int voter, int leader, std::chrono::milliseconds within) {
    auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      auto back = snapshots_.describe(voter);
      auto lead = snapshots_.describe(leader);
      if (back && lead && back->leader == leader && back->commit_offset == lead->commit_offset &&
          back->last_offset == lead->last_offset)
        return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  TempDir snapshot_dir_{"faultline-quorum-snapshots"};
  ControllerQuorum snapshots_{snapshot_dir_.path(), [] {
                                ControllerQuorumOptions o;
                                o.snapshot_records = 20;
                                return o;
                              }()};
};

TEST_F(ControllerQuorumSnapshotTest, AVoterBehindTheCompactedLogIsSentTheSnapshot) {
  auto leader = snapshots_.wait_for_leader(10s);
  ASSERT_TRUE(leader);
  cluster::ClientConfig config;
  config.controllers = snapshots_.endpoint_list();
  config.request_timeout = 3s;
  cluster::SyncClient admin(config);
  std::vector<std::string> written;
  auto write = [&](int n, const std::string& tag) {
    for (int i = 0; i < n; ++i) {
      written.push_back(tag + std::to_string(i));
      ASSERT_EQ(admin.set_config(std::string(cluster::kMarkerKey), written.back()), errc::none);
    }
  };
  write(5, "before-");
  const int away = (*leader + 1) % snapshots_.size();
  ASSERT_TRUE(caught_up(away, *leader, 5s));
  snapshots_.process(away).kill_and_reap();
  write(60, "while-away-");  // three snapshots' worth: the others compact past its end

  auto lead = read_voter(*leader);
  ASSERT_TRUE(lead);
  EXPECT_GE(lead->snapshot_offset.value(), 40) << "the active controller compacted its log";
  EXPECT_EQ(lead->first_entry, lead->snapshot_offset.next());
  EXPECT_EQ(lead->markers, written) << "every acknowledged marker, the compacted ones included";

  snapshots_.start(away);
  ASSERT_TRUE(caught_up(away, *leader, 10s));
  EXPECT_TRUE(std::filesystem::exists(snapshots_.data(away) / "metadata.snapshot"));
  EXPECT_NE(snapshots_.process(away).log().find("event=metadata_snapshot_installed"),
            std::string::npos);
  auto back = read_voter(away);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->markers, written);

  // Restarted from its own snapshot and compacted log, it still serves the same state.
  write(3, "after-");
  ASSERT_TRUE(caught_up(away, *leader, 5s));
  snapshots_.process(away).kill_and_reap();
  snapshots_.start(away);
  ASSERT_TRUE(caught_up(away, *leader, 10s));
  back = read_voter(away);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->markers, written);
}

TEST_F(ControllerQuorumTest, PausedActiveControllerIsReplacedAndStepsDownWhenResumed) {
  auto first = quorum_.wait_for_leader(10s);
  ASSERT_TRUE(first);
  quorum_.process(*first).signal(SIGSTOP);
  auto second = quorum_.wait_for_leader(10s, {*first});
  ASSERT_TRUE(second);
  EXPECT_NE(*second, *first);
  cluster::SyncClient admin(admin_config(6s));
  EXPECT_EQ(admin.set_config("auto.leader.rebalance.enable", "false"), errc::none);

  quorum_.process(*first).signal(SIGCONT);
  // The deposed controller learns the new epoch from the first message it sees and refuses
  // broker requests from then on.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  std::optional<cluster::DescribeQuorumResponse> old;
  while (std::chrono::steady_clock::now() < deadline) {
    old = quorum_.describe(*first);
    if (old && old->role == "follower" && old->leader == *second)
      break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(old);
  EXPECT_EQ(old->role, "follower");
  EXPECT_EQ(old->leader, *second);
  cluster::ClientConfig c;
  c.controllers = {quorum_.endpoint(*first)};
  c.request_timeout = 1s;
  cluster::SyncClient deposed(c);
  EXPECT_EQ(deposed.set_config("auto.leader.rebalance.enable", "true"), errc::not_controller);
}

// A read that reached the active controller while it was paused, and is handled when it resumes
// after another was elected and committed more: the answer is NOT_CONTROLLER, never the log as it
// stood before the pause. (Here the resumed process usually runs its check-quorum tick before the
// request and steps down; the read lease, raft_test's RaftReadLease, covers the other order.)
TEST_F(ControllerQuorumTest, APausedControllerNeverAnswersAReadWithWhatItsSuccessorOvertook) {
  auto first = quorum_.wait_for_leader(10s);
  ASSERT_TRUE(first);
  cluster::SyncClient admin(admin_config(6s));
  ASSERT_EQ(admin.set_config("auto.leader.rebalance.enable", "true"), errc::none);
  const size_t before = committed_log(*first).size();
  ASSERT_GT(before, 0u);

  quorum_.process(*first).signal(SIGSTOP);
  auto second = quorum_.wait_for_leader(10s, {*first});
  ASSERT_TRUE(second);
  ASSERT_EQ(admin.set_config("auto.leader.rebalance.enable", "false"), errc::none);
  const size_t overtaken = committed_log(*second).size();
  ASSERT_GT(overtaken, before);

  // The request waits in the paused process's socket until SIGCONT.
  cluster::CallResult result;
  std::thread reader([&] {
    cluster::FetchMetadataLogRequest req;
    req.from = cluster::MetadataOffset{0};
    result = quorum_.call(*first, req, 5s);
  });
  std::this_thread::sleep_for(300ms);
  quorum_.process(*first).signal(SIGCONT);
  reader.join();
  ASSERT_FALSE(result.error) << result.error.message();
  const auto* answer = std::get_if<cluster::FetchMetadataLogResponse>(&result.response);
  ASSERT_NE(answer, nullptr);
  if (answer->error == errc::none) {
    EXPECT_GE(answer->entries.size(), overtaken)
        << "the resumed controller answered with the log as it stood before its pause";
  } else {
    EXPECT_EQ(answer->error, errc::not_controller);
  }
}

TEST_F(ControllerQuorumTest, NoActiveControllerWithoutAMajority) {
  auto first = quorum_.wait_for_leader(10s);
  ASSERT_TRUE(first);
  int survivor = (*first + 1) % quorum_.size();
  for (int i = 0; i < quorum_.size(); ++i)
    if (i != survivor)
      quorum_.process(i).kill_and_reap();
  // The survivor campaigns but cannot win; with pre-vote it does not even raise its term.
  std::this_thread::sleep_for(2500ms);
  auto d = quorum_.describe(survivor);
  ASSERT_TRUE(d);
  EXPECT_NE(d->role, "leader");
  cluster::SyncClient admin(admin_config(1s));
  EXPECT_NE(admin.set_config("auto.leader.rebalance.enable", "false"), errc::none);
  auto epoch = d->epoch;
  std::this_thread::sleep_for(1500ms);
  auto later = quorum_.describe(survivor);
  ASSERT_TRUE(later);
  EXPECT_EQ(later->epoch, epoch) << "pre-vote keeps a lone voter from inflating its term";
}

}  // namespace
}  // namespace faultline::testing
