// Tests of the controller quorum's Raft state machine (raft.h): table tests of each rule, then a
// seeded simulation of 3 and 5 voters over a lossy, reordering, partitioning network with crashes,
// checked against Raft's safety properties after every event.
#include "faultline/cluster/controller/raft.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <ostream>
#include <queue>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

namespace faultline::cluster {

void PrintTo(RaftRole role, std::ostream* os) {
  *os << to_string(role);
}

namespace {

using std::chrono::milliseconds;

constexpr milliseconds kElectionTimeout{1000};
constexpr milliseconds kHeartbeat{100};

RaftTime at(int64_t ms) {
  return RaftTime{} + milliseconds(ms);
}

MetadataEntry entry(int64_t offset, int64_t term, std::string value = "v") {
  return MetadataEntry{MetadataOffset{offset}, ConfigChanged{"k", std::move(value)}, term};
}

// A log whose entry i has terms[i].
std::vector<MetadataEntry> log_of(const std::vector<int64_t>& terms) {
  std::vector<MetadataEntry> log;
  for (size_t i = 0; i < terms.size(); ++i)
    log.push_back(entry(static_cast<int64_t>(i), terms[i]));
  return log;
}

std::vector<int64_t> terms_of(std::span<const MetadataEntry> log) {
  std::vector<int64_t> terms;
  for (const MetadataEntry& e : log)
    terms.push_back(e.term);
  return terms;
}

std::vector<int64_t> offsets_of(const std::vector<MetadataEntry>& entries) {
  std::vector<int64_t> offsets;
  for (const MetadataEntry& e : entries)
    offsets.push_back(e.offset.value());
  return offsets;
}

RaftConfig config_for(ControllerNodeId id, std::vector<ControllerNodeId> voters,
                      bool pre_vote = true) {
  RaftConfig config;
  config.id = id;
  config.voters = std::move(voters);
  config.election_timeout = kElectionTimeout;
  config.heartbeat_interval = kHeartbeat;
  config.pre_vote = pre_vote;
  return config;
}

template <typename T>
std::vector<T> messages_of(const RaftReady& ready) {
  std::vector<T> out;
  for (const RaftOutgoing& m : ready.messages) {
    if (const T* t = std::get_if<T>(&m.message))
      out.push_back(*t);
  }
  return out;
}

std::vector<ControllerNodeId> recipients(const RaftReady& ready) {
  std::vector<ControllerNodeId> to;
  for (const RaftOutgoing& m : ready.messages)
    to.push_back(m.to);
  std::sort(to.begin(), to.end());
  return to;
}

// Drives `node` (a follower whose election deadline has passed at `now`) through pre-vote and
// vote with every other voter granting, and drops what that produced.
void win_election(RaftNode& node, RaftTime now) {
  node.tick(now);
  ASSERT_EQ(node.role(), RaftRole::pre_candidate);
  for (ControllerNodeId v : node.config().voters)
    if (v != node.id() && node.role() == RaftRole::pre_candidate)
      node.on_vote_response(v, VoteResponse{node.term(), true, true}, now);
  ASSERT_EQ(node.role(), RaftRole::candidate);
  for (ControllerNodeId v : node.config().voters)
    if (v != node.id() && node.role() == RaftRole::candidate)
      node.on_vote_response(v, VoteResponse{node.term(), true, false}, now);
  ASSERT_TRUE(node.is_leader());
  node.take_ready();
}

// Node 0 made leader of `voters` at term `term` with `log`, at at(2000) (past any deadline).
std::unique_ptr<RaftNode> make_leader(std::vector<ControllerNodeId> voters,
                                      std::vector<int64_t> log_terms, int64_t term,
                                      size_t max_entries = 2048) {
  RaftConfig config = config_for(0, std::move(voters));
  config.max_entries_per_append = max_entries;
  auto node = std::make_unique<RaftNode>(config, RaftHardState{term - 1, kNoNode},
                                         log_of(log_terms), 1, at(0));
  win_election(*node, at(2000));
  return node;
}

// Every follower answers the leader's announcement: all hold its log up to `match`.
void answer_announcements(RaftNode& leader, MetadataOffset match, RaftTime now) {
  for (ControllerNodeId v : leader.config().voters)
    if (v != leader.id())
      leader.on_append_response(v, AppendResponse{leader.term(), true, match}, now);
  leader.take_ready();
}

// Node 1 of {0, 1, 2}; when `leader_seen_ms` is set, it heard from leader 0 (at its own term) then.
std::unique_ptr<RaftNode> make_voter(std::vector<int64_t> log_terms, RaftHardState state,
                                     std::optional<int64_t> leader_seen_ms = std::nullopt) {
  // Started an election timeout before 0, so its refusal of votes after a start is over by then.
  auto node = std::make_unique<RaftNode>(config_for(1, {0, 1, 2}), state, log_of(log_terms), 1,
                                         at(0) - kElectionTimeout);
  if (leader_seen_ms) {
    AppendRequest heartbeat{state.term,        0,  node->last_offset(),
                            node->last_term(), {}, MetadataOffset{-1}};
    EXPECT_TRUE(node->on_append(heartbeat, at(*leader_seen_ms)).success);
  }
  node->take_ready();
  return node;
}

// ---- construction ---------------------------------------------------------------------------

TEST(RaftNode, StartsAsFollowerOfItsPersistedTerm) {
  RaftNode node(config_for(1, {0, 1, 2}), RaftHardState{4, 2}, log_of({1, 3}), 1, at(0));
  EXPECT_EQ(node.role(), RaftRole::follower);
  EXPECT_EQ(node.term(), 4);
  EXPECT_EQ(node.hard_state(), (RaftHardState{4, 2}));
  EXPECT_EQ(node.leader(), kNoNode);
  EXPECT_EQ(node.last_offset(), MetadataOffset{1});
  EXPECT_EQ(node.last_term(), 3);
  EXPECT_EQ(node.term_at(MetadataOffset{0}), 1);
  EXPECT_EQ(node.term_at(MetadataOffset{-1}), 0);
  EXPECT_EQ(node.term_at(MetadataOffset{2}), 0);
  EXPECT_EQ(node.commit_offset(), MetadataOffset{-1});
  RaftReady ready = node.take_ready();
  EXPECT_TRUE(ready.empty());
  EXPECT_EQ(ready.commit, MetadataOffset{-1});
}

TEST(RaftNode, RefusesACorruptPersistedState) {
  auto build = [](RaftConfig config, RaftHardState state, std::vector<MetadataEntry> log) {
    RaftNode node(std::move(config), state, std::move(log), 1, at(0));
  };
  EXPECT_THROW(build(config_for(3, {0, 1, 2}), {1, kNoNode}, {}), std::invalid_argument);
  EXPECT_THROW(build(config_for(0, {0, 0, 1}), {1, kNoNode}, {}), std::invalid_argument);
  EXPECT_THROW(build(config_for(0, {0, 1, 2}), {1, kNoNode}, {entry(0, 1), entry(2, 1)}),
               std::invalid_argument);
  EXPECT_THROW(build(config_for(0, {0, 1, 2}), {1, kNoNode}, {entry(1, 1)}), std::invalid_argument);
  EXPECT_THROW(build(config_for(0, {0, 1, 2}), {3, kNoNode}, log_of({2, 1})),
               std::invalid_argument);
  EXPECT_THROW(build(config_for(0, {0, 1, 2}), {1, kNoNode}, log_of({1, 2})),
               std::invalid_argument);
}

TEST(RaftNode, RoleNames) {
  EXPECT_EQ(to_string(RaftRole::follower), "follower");
  EXPECT_EQ(to_string(RaftRole::pre_candidate), "pre_candidate");
  EXPECT_EQ(to_string(RaftRole::candidate), "candidate");
  EXPECT_EQ(to_string(RaftRole::leader), "leader");
}

TEST(RaftNode, TakeReadyHandsOverOnceButAlwaysCarriesTheCommit) {
  RaftNode node(config_for(0, {0}), RaftHardState{}, {}, 1, at(0));
  ASSERT_EQ(node.propose(std::vector{entry(0, 0)}, at(0)), errc::none);
  RaftReady first = node.take_ready();
  EXPECT_TRUE(first.hard_state);
  EXPECT_EQ(first.append.size(), 1u);
  EXPECT_EQ(first.commit, MetadataOffset{0});
  RaftReady second = node.take_ready();
  EXPECT_TRUE(second.empty());
  EXPECT_EQ(second.commit, MetadataOffset{0});
}

// ---- single voter ---------------------------------------------------------------------------

TEST(RaftSingleVoter, ElectsItselfAtConstructionAndCommitsOnPropose) {
  RaftNode node(config_for(7, {7}), RaftHardState{}, {}, 1, at(0));
  EXPECT_TRUE(node.is_leader());
  EXPECT_EQ(node.leader(), 7);
  EXPECT_EQ(node.term(), 1);
  RaftReady elected = node.take_ready();
  EXPECT_EQ(elected.hard_state, (RaftHardState{1, 7}));
  EXPECT_TRUE(elected.messages.empty());

  ASSERT_EQ(node.propose(std::vector{entry(0, 0), entry(1, 0)}, at(5)), errc::none);
  RaftReady proposed = node.take_ready();
  EXPECT_EQ(terms_of(proposed.append), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(proposed.commit, MetadataOffset{1});
  EXPECT_EQ(node.commit_offset(), MetadataOffset{1});
}

TEST(RaftSingleVoter, RestartTakesANewTermAndCommitsOldEntriesWithItsFirstOwn) {
  RaftNode node(config_for(0, {0}), RaftHardState{1, 0}, log_of({1, 1}), 1, at(0));
  EXPECT_TRUE(node.is_leader());
  EXPECT_EQ(node.term(), 2);
  EXPECT_EQ(node.take_ready().hard_state, (RaftHardState{2, 0}));
  // Entries of term 1 are not counted on their own (the shell proposes ControllerElected first).
  EXPECT_EQ(node.commit_offset(), MetadataOffset{-1});
  ASSERT_EQ(node.propose(std::vector{entry(2, 0)}, at(1)), errc::none);
  EXPECT_EQ(node.commit_offset(), MetadataOffset{2});
}

// ---- elections ------------------------------------------------------------------------------

TEST(RaftElection, PreVoteThenVoteThenLeaderAnnouncesItself) {
  RaftNode node(config_for(0, {0, 1, 2}), RaftHardState{1, kNoNode}, log_of({1, 1}), 1, at(0));
  node.tick(at(999));
  EXPECT_EQ(node.role(), RaftRole::follower);
  EXPECT_TRUE(node.take_ready().empty());

  node.tick(at(2000));
  EXPECT_EQ(node.role(), RaftRole::pre_candidate);
  EXPECT_EQ(node.term(), 1);  // a pre-vote changes no term
  RaftReady pre = node.take_ready();
  EXPECT_FALSE(pre.hard_state);
  EXPECT_EQ(recipients(pre), (std::vector<ControllerNodeId>{1, 2}));
  for (const VoteRequest& r : messages_of<VoteRequest>(pre))
    EXPECT_EQ(r, (VoteRequest{2, 0, MetadataOffset{1}, 1, true}));

  node.on_vote_response(1, VoteResponse{1, true, true}, at(2001));
  EXPECT_EQ(node.role(), RaftRole::candidate);
  EXPECT_EQ(node.term(), 2);
  RaftReady vote = node.take_ready();
  EXPECT_EQ(vote.hard_state, (RaftHardState{2, 0}));  // its own vote, persisted
  EXPECT_EQ(recipients(vote), (std::vector<ControllerNodeId>{1, 2}));
  for (const VoteRequest& r : messages_of<VoteRequest>(vote))
    EXPECT_EQ(r, (VoteRequest{2, 0, MetadataOffset{1}, 1, false}));

  node.on_vote_response(2, VoteResponse{2, true, false}, at(2002));
  EXPECT_TRUE(node.is_leader());
  EXPECT_EQ(node.leader(), 0);
  RaftReady lead = node.take_ready();
  EXPECT_FALSE(lead.hard_state);
  EXPECT_EQ(recipients(lead), (std::vector<ControllerNodeId>{1, 2}));
  AppendRequest announce{2, 0, MetadataOffset{1}, 1, {}, MetadataOffset{-1}};
  for (const AppendRequest& r : messages_of<AppendRequest>(lead))
    EXPECT_EQ(r, announce);
}

TEST(RaftElection, RefusedPreVotesAtItsTermNeverRaiseIt) {
  RaftNode node(config_for(0, {0, 1, 2}), RaftHardState{3, kNoNode}, {}, 1, at(0));
  for (int64_t round = 1; round <= 5; ++round) {
    node.tick(at(round * 2000));
    ASSERT_EQ(node.role(), RaftRole::pre_candidate);
    node.on_vote_response(1, VoteResponse{3, false, true}, at(round * 2000 + 1));
    node.on_vote_response(2, VoteResponse{3, false, true}, at(round * 2000 + 1));
    EXPECT_EQ(node.role(), RaftRole::pre_candidate);
    EXPECT_EQ(node.term(), 3);
    EXPECT_FALSE(node.take_ready().hard_state);
  }
}

// a holds the better log but missed term 2, which y spent voting for a third node. y refuses a's
// pre-vote for term 2 (it voted in it) and a refuses y's (stale log): only by adopting the term
// of y's refusal can a ask for term 3 and win.
TEST(RaftElection, PreCandidateBehindInTermAdoptsTheTermOfARefusal) {
  RaftNode a(config_for(0, {0, 1, 2}), RaftHardState{1, kNoNode}, log_of({1, 1}), 1, at(0));
  RaftNode y(config_for(1, {0, 1, 2}), RaftHardState{2, 2}, log_of({1}), 2, at(0));
  auto pre_vote_round = [&](int64_t ms) {
    a.tick(at(ms));
    EXPECT_EQ(a.role(), RaftRole::pre_candidate);
    for (const VoteRequest& r : messages_of<VoteRequest>(a.take_ready()))
      a.on_vote_response(1, y.on_vote(r, at(ms)), at(ms));
  };
  pre_vote_round(2000);
  EXPECT_EQ(a.role(), RaftRole::follower);
  EXPECT_EQ(a.take_ready().hard_state, (RaftHardState{2, kNoNode}));
  EXPECT_EQ(y.term(), 2);
  pre_vote_round(4000);
  EXPECT_EQ(a.role(), RaftRole::candidate);
  EXPECT_EQ(a.term(), 3);
  // A granted pre-vote carries the voter's lower term: no reason to step down for it.
  RaftNode b(config_for(0, {0, 1, 2}), RaftHardState{1, kNoNode}, {}, 1, at(0));
  b.tick(at(2000));
  b.on_vote_response(1, VoteResponse{2, true, true}, at(2001));
  EXPECT_EQ(b.role(), RaftRole::candidate);
  EXPECT_EQ(b.term(), 2);
}

TEST(RaftElection, WithoutPreVoteATimeoutStartsARealElection) {
  RaftNode node(config_for(0, {0, 1, 2}, false), RaftHardState{3, kNoNode}, {}, 1, at(0));
  node.tick(at(2000));
  EXPECT_EQ(node.role(), RaftRole::candidate);
  EXPECT_EQ(node.term(), 4);
  RaftReady ready = node.take_ready();
  EXPECT_EQ(ready.hard_state, (RaftHardState{4, 0}));
  for (const VoteRequest& r : messages_of<VoteRequest>(ready))
    EXPECT_FALSE(r.pre_vote);
}

TEST(RaftElection, CandidateStepsDownOnAHigherTermOrALeaderOfItsTerm) {
  RaftNode node(config_for(0, {0, 1, 2}, false), RaftHardState{3, kNoNode}, {}, 1, at(0));
  node.tick(at(2000));
  ASSERT_EQ(node.role(), RaftRole::candidate);
  node.on_vote_response(1, VoteResponse{6, false, false}, at(2001));
  EXPECT_EQ(node.role(), RaftRole::follower);
  EXPECT_EQ(node.take_ready().hard_state, (RaftHardState{6, kNoNode}));

  node.tick(at(5000));
  ASSERT_EQ(node.role(), RaftRole::candidate);
  ASSERT_EQ(node.term(), 7);
  EXPECT_TRUE(
      node.on_append(AppendRequest{7, 2, MetadataOffset{-1}, 0, {}, MetadataOffset{-1}}, at(5001))
          .success);
  EXPECT_EQ(node.role(), RaftRole::follower);
  EXPECT_EQ(node.leader(), 2);
  EXPECT_EQ(node.hard_state(), (RaftHardState{7, 0}));  // its vote in term 7 stands
}

TEST(RaftElection, TimeoutIsRandomisedInOneToTwoElectionTimeouts) {
  std::vector<int64_t> fired_at;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    RaftNode node(config_for(0, {0, 1, 2}), RaftHardState{}, {}, seed, at(0));
    int64_t ms = 0;
    while (node.role() == RaftRole::follower && ms < 3000)
      node.tick(at(++ms));
    EXPECT_GE(ms, kElectionTimeout.count()) << "seed " << seed;
    EXPECT_LT(ms, 2 * kElectionTimeout.count()) << "seed " << seed;
    fired_at.push_back(ms);
  }
  std::sort(fired_at.begin(), fired_at.end());
  // Twenty draws from 1000 values: equal ones would mean the seed is not used.
  EXPECT_GE(std::unique(fired_at.begin(), fired_at.end()) - fired_at.begin(), 15);
}

// ---- vote granting --------------------------------------------------------------------------

struct VoteCase {
  std::string name;
  std::vector<int64_t> voter_log;  // terms of the voter's entries
  RaftHardState voter_state;
  std::optional<int64_t> leader_seen_ms;  // when the voter last heard from leader 0
  int64_t now_ms;
  VoteRequest request;
  VoteResponse expected;
  std::optional<RaftHardState> persisted;  // take_ready().hard_state after the request
};

void check_vote(const VoteCase& c) {
  SCOPED_TRACE(c.name);
  auto voter = make_voter(c.voter_log, c.voter_state, c.leader_seen_ms);
  EXPECT_EQ(voter->on_vote(c.request, at(c.now_ms)), c.expected);
  EXPECT_EQ(voter->take_ready().hard_state, c.persisted);
  EXPECT_EQ(voter->term(), c.persisted ? c.persisted->term : c.voter_state.term);
}

TEST(RaftVote, Table) {
  const RaftHardState term2{2, kNoNode};
  const MetadataOffset o0{0}, o1{1}, o2{2}, o3{3}, o9{9}, none{-1};
  // The voter's log is [t1, t1, t2] unless said otherwise: last offset 2, last term 2.
  // clang-format off
  const std::vector<VoteCase> cases = {
    // name                                                     log        state      seen  now   request {term, cand, last off, last term}  expected            persisted
    {"longer log, same last term: granted",                     {1, 1, 2}, term2,     {},   10,   {3, 0, o3, 2},  {3, true, false},  RaftHardState{3, 0}},
    {"identical log: granted",                                  {1, 1, 2}, term2,     {},   10,   {3, 0, o2, 2},  {3, true, false},  RaftHardState{3, 0}},
    {"higher last term beats a longer log",                     {1, 1, 2}, {3, -1},   {},   10,   {4, 0, o0, 3},  {4, true, false},  RaftHardState{4, 0}},
    {"shorter log, same last term: refused, term adopted",      {1, 1, 2}, term2,     {},   10,   {3, 0, o1, 2},  {3, false, false}, RaftHardState{3, -1}},
    {"lower last term, longer log: refused, term adopted",      {1, 1, 2}, term2,     {},   10,   {3, 0, o9, 1},  {3, false, false}, RaftHardState{3, -1}},
    {"lower term: refused with the voter's term",               {1, 1, 2}, term2,     {},   10,   {1, 0, o9, 1},  {2, false, false}, std::nullopt},
    {"same term, no vote yet: granted",                         {1, 1, 2}, term2,     {},   10,   {2, 0, o2, 2},  {2, true, false},  RaftHardState{2, 0}},
    {"same term, voted for another (also after a restart)",     {1, 1, 2}, {2, 2},    {},   10,   {2, 0, o2, 2},  {2, false, false}, std::nullopt},
    {"same term, voted for this candidate: granted again",      {1, 1, 2}, {2, 0},    {},   10,   {2, 0, o2, 2},  {2, true, false},  std::nullopt},
    {"candidate is not a voter",                                {1, 1, 2}, term2,     {},   10,   {3, 7, o3, 2},  {2, false, false}, std::nullopt},
    {"empty logs: granted",                                     {},        {0, -1},   {},   10,   {1, 0, none, 0},{1, true, false},  RaftHardState{1, 0}},
    {"leader heard 500 ms ago: ignored, term not adopted",      {1, 1, 2}, term2,     1000, 1500, {3, 2, o3, 2},  {2, false, false}, std::nullopt},
    {"leader heard 999 ms ago: still ignored",                  {1, 1, 2}, term2,     1000, 1999, {3, 2, o3, 2},  {2, false, false}, std::nullopt},
    {"leader silent for a full election timeout: granted",      {1, 1, 2}, term2,     1000, 2000, {3, 2, o3, 2},  {3, true, false},  RaftHardState{3, 2}},
    {"same term, its leader known: refused",                    {1, 1, 2}, term2,     1000, 1500, {2, 2, o2, 2},  {2, false, false}, std::nullopt},
  };
  // clang-format on
  for (const VoteCase& c : cases)
    check_vote(c);
}

TEST(RaftVote, OneVotePerTerm) {
  auto voter = make_voter({1}, {1, kNoNode});
  const MetadataOffset last{0};
  EXPECT_TRUE(voter->on_vote({3, 0, last, 1}, at(10)).granted);
  EXPECT_EQ(voter->take_ready().hard_state, (RaftHardState{3, 0}));
  EXPECT_FALSE(voter->on_vote({3, 2, last, 1}, at(11)).granted);
  EXPECT_TRUE(voter->on_vote({3, 0, last, 1}, at(12)).granted);  // a retried request
  EXPECT_TRUE(voter->take_ready().empty());
  EXPECT_TRUE(voter->on_vote({4, 2, last, 1}, at(13)).granted);
  EXPECT_EQ(voter->take_ready().hard_state, (RaftHardState{4, 2}));
  // What it persisted is what a restarted voter remembers.
  RaftNode restarted(config_for(1, {0, 1, 2}), voter->hard_state(), log_of({1}), 2, at(20));
  EXPECT_FALSE(restarted.on_vote({4, 0, last, 1}, at(21)).granted);
}

TEST(RaftPreVote, Table) {
  const RaftHardState term2{2, kNoNode};
  const MetadataOffset o1{1}, o2{2}, o3{3};
  // clang-format off
  const std::vector<VoteCase> cases = {
    // name                                                log        state    seen  now   request {term, cand, off, term, pre}   expected          persisted
    {"up to date, no leader: granted, nothing persisted",  {1, 1, 2}, term2,   {},   10,   {3, 0, o2, 2, true},  {2, true, true},   std::nullopt},
    {"longer log: granted",                                {1, 1, 2}, term2,   {},   10,   {3, 0, o3, 2, true},  {2, true, true},   std::nullopt},
    {"stale log: refused",                                 {1, 1, 2}, term2,   {},   10,   {3, 0, o1, 2, true},  {2, false, true},  std::nullopt},
    {"lower last term: refused",                           {1, 1, 2}, term2,   {},   10,   {3, 0, o3, 1, true},  {2, false, true},  std::nullopt},
    {"term not above the voter's: refused",                {1, 1, 2}, term2,   {},   10,   {1, 0, o3, 2, true},  {2, false, true},  std::nullopt},
    {"voter already voted in that term for another",       {1, 1, 2}, {2, 2},  {},   10,   {2, 0, o3, 2, true},  {2, false, true},  std::nullopt},
    {"leader heard 100 ms ago: refused",                   {1, 1, 2}, term2,   1000, 1100, {3, 2, o3, 2, true},  {2, false, true},  std::nullopt},
    {"leader silent for an election timeout: granted",     {1, 1, 2}, term2,   1000, 2000, {3, 2, o3, 2, true},  {2, true, true},   std::nullopt},
  };
  // clang-format on
  for (const VoteCase& c : cases)
    check_vote(c);
}

TEST(RaftPreVote, LeaderRefusesPreVotesAndIgnoresVotesWhileItLeads) {
  auto leader = make_leader({0, 1, 2}, {1}, 2);
  EXPECT_EQ(leader->on_vote({3, 1, MetadataOffset{5}, 2, true}, at(2001)),
            (VoteResponse{2, false, true}));
  EXPECT_EQ(leader->on_vote({3, 1, MetadataOffset{5}, 2, false}, at(2002)),
            (VoteResponse{2, false, false}));
  EXPECT_TRUE(leader->is_leader());
  EXPECT_EQ(leader->term(), 2);
}

// ---- stale and newer terms ------------------------------------------------------------------

TEST(RaftTerms, StaleMessagesAreRefusedWithTheCurrentTerm) {
  auto follower = make_voter({1, 5}, {5, kNoNode});
  AppendRequest stale{4, 0, MetadataOffset{1}, 5, {entry(2, 4)}, MetadataOffset{2}};
  EXPECT_EQ(follower->on_append(stale, at(10)), (AppendResponse{5, false, MetadataOffset{1}}));
  EXPECT_EQ(follower->last_offset(), MetadataOffset{1});
  EXPECT_EQ(follower->commit_offset(), MetadataOffset{-1});
  EXPECT_EQ(follower->leader(), kNoNode);
  EXPECT_TRUE(follower->take_ready().empty());

  auto leader = make_leader({0, 1, 2}, {1}, 3);
  leader->on_append_response(1, AppendResponse{2, true, MetadataOffset{0}}, at(2001));
  leader->on_vote_response(1, VoteResponse{2, false, false}, at(2001));
  EXPECT_TRUE(leader->is_leader());
  EXPECT_EQ(leader->progress(at(2001))[1].match_offset, MetadataOffset{-1});
}

TEST(RaftTerms, AHigherTermMakesAFollower) {
  auto leader = make_leader({0, 1, 2}, {1}, 3);
  leader->on_append_response(2, AppendResponse{8, false, MetadataOffset{0}}, at(2001));
  EXPECT_EQ(leader->role(), RaftRole::follower);
  EXPECT_EQ(leader->leader(), kNoNode);
  EXPECT_EQ(leader->take_ready().hard_state, (RaftHardState{8, kNoNode}));
  EXPECT_EQ(leader->propose(std::vector{entry(1, 0)}, at(2002)), errc::not_controller);

  auto follower = make_voter({1}, {1, 0});
  AppendRequest newer{4, 2, MetadataOffset{0}, 1, {}, MetadataOffset{-1}};
  EXPECT_TRUE(follower->on_append(newer, at(10)).success);
  EXPECT_EQ(follower->leader(), 2);
  EXPECT_EQ(follower->take_ready().hard_state, (RaftHardState{4, kNoNode}));
}

// ---- log matching ---------------------------------------------------------------------------

struct AppendCase {
  std::string name;
  int64_t prev_offset;
  int64_t prev_term;
  std::vector<std::pair<int64_t, int64_t>> entries;  // {offset, term}
  AppendResponse expected;
  std::optional<MetadataOffset> truncate_after;
  std::vector<int64_t> appended;   // offsets handed to the shell
  std::vector<int64_t> log_after;  // terms
};

TEST(RaftLogMatching, Table) {
  auto ok = [](int64_t match) { return AppendResponse{3, true, MetadataOffset{match}}; };
  const AppendResponse refused{3, false, MetadataOffset{2}};  // hint: the follower's last offset
  using T = std::optional<MetadataOffset>;
  // The follower holds [t1, t1, t2]; the leader is at term 3.
  // clang-format off
  const std::vector<AppendCase> cases = {
    // name                                                     prev  term entries                  expected  truncate           appended  log after
    {"gap: prev past the end, refused with a hint",             4,    3,   {{5, 3}},                refused,  T{},               {},       {1, 1, 2}},
    {"prev held with another term: refused",                    2,    3,   {{3, 3}},                refused,  T{},               {},       {1, 1, 2}},
    {"heartbeat at the end",                                    2,    2,   {},                      ok(2),    T{},               {},       {1, 1, 2}},
    {"new entries after the end",                               2,    2,   {{3, 3}, {4, 3}},        ok(4),    T{},               {3, 4},   {1, 1, 2, 3, 3}},
    {"conflicting suffix cut at the first difference",          0,    1,   {{1, 1}, {2, 3}},        ok(2),    MetadataOffset{1}, {2},      {1, 1, 3}},
    {"everything differs from the start",                       -1,   0,   {{0, 3}},                ok(0),    MetadataOffset{-1},{0},      {3}},
    {"duplicate of held entries: nothing truncated",            -1,   0,   {{0, 1}, {1, 1}},        ok(1),    T{},               {},       {1, 1, 2}},
    {"stale heartbeat inside the log: nothing truncated",       0,    1,   {},                      ok(0),    T{},               {},       {1, 1, 2}},
    {"overlap then new: only the new one appended",             1,    1,   {{2, 2}, {3, 3}},        ok(3),    T{},               {3},      {1, 1, 2, 3}},
    {"entries not contiguous: refused",                         2,    2,   {{3, 3}, {5, 3}},        refused,  T{},               {},       {1, 1, 2}},
  };
  // clang-format on
  for (const AppendCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto follower = make_voter({1, 1, 2}, {3, kNoNode});
    AppendRequest request{3, 0, MetadataOffset{c.prev_offset}, c.prev_term, {}, MetadataOffset{-1}};
    for (auto [offset, term] : c.entries)
      request.entries.push_back(entry(offset, term, "from-leader"));
    EXPECT_EQ(follower->on_append(request, at(10)), c.expected);
    RaftReady ready = follower->take_ready();
    EXPECT_EQ(ready.truncate_after, c.truncate_after);
    EXPECT_EQ(offsets_of(ready.append), c.appended);
    EXPECT_EQ(terms_of(follower->log()), c.log_after);
    EXPECT_EQ(follower->leader(), 0);  // even a refused append comes from the leader
  }
}

TEST(RaftLogMatching, EventsBetweenTwoReadiesMergeIntoOneTruncation) {
  auto follower = make_voter({1, 1, 1, 1}, {2, kNoNode});
  auto append = [&](int64_t prev, int64_t prev_term, std::vector<MetadataEntry> entries) {
    AppendRequest r{2, 0, MetadataOffset{prev}, prev_term, std::move(entries), MetadataOffset{-1}};
    return follower->on_append(r, at(10)).success;
  };
  ASSERT_TRUE(append(1, 1, {entry(2, 2), entry(3, 2), entry(4, 2)}));
  ASSERT_TRUE(append(0, 1, {entry(1, 1), entry(2, 2), entry(3, 2), entry(4, 2), entry(5, 2)}));
  // A leader of term 3 disagrees from offset 3 on, before the shell took the first two Readies.
  follower->on_append({3, 0, MetadataOffset{2}, 2, {entry(3, 3)}, MetadataOffset{-1}}, at(11));
  RaftReady ready = follower->take_ready();
  EXPECT_EQ(ready.truncate_after, MetadataOffset{1});
  EXPECT_EQ(offsets_of(ready.append), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(terms_of(ready.append), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(terms_of(follower->log()), (std::vector<int64_t>{1, 1, 2, 3}));
}

// ---- commit ---------------------------------------------------------------------------------

TEST(RaftCommit, FollowerCommitsOnlyWhatTheAppendVerified) {
  auto follower = make_voter({1, 1, 1, 1}, {1, kNoNode});
  auto append = [&](int64_t prev, std::vector<MetadataEntry> entries, int64_t commit) {
    AppendRequest r{1, 0, MetadataOffset{prev}, 1, std::move(entries), MetadataOffset{commit}};
    EXPECT_TRUE(follower->on_append(r, at(10)).success);
    return follower->take_ready().commit;
  };
  // Offsets 2 and 3 may still be a deposed leader's: the leader's commit 3 proves only up to 1.
  EXPECT_EQ(append(1, {}, 3), MetadataOffset{1});
  EXPECT_EQ(append(3, {}, 3), MetadataOffset{3});
  EXPECT_EQ(append(0, {}, 0), MetadataOffset{3});  // a reordered old append: never decreases
  EXPECT_EQ(append(3, {entry(4, 1)}, 10), MetadataOffset{4});
  EXPECT_EQ(follower->commit_offset(), MetadataOffset{4});
}

TEST(RaftCommit, LeaderCommitsWhatAMajorityHolds) {
  for (size_t voters : {3u, 5u}) {
    SCOPED_TRACE(voters);
    std::vector<ControllerNodeId> ids;
    for (size_t i = 0; i < voters; ++i)
      ids.push_back(static_cast<ControllerNodeId>(i));
    auto leader = make_leader(ids, {}, 1);
    answer_announcements(*leader, MetadataOffset{-1}, at(2001));
    ASSERT_EQ(leader->propose(std::vector{entry(0, 0), entry(1, 0)}, at(2001)), errc::none);
    RaftReady ready = leader->take_ready();
    EXPECT_EQ(terms_of(ready.append), (std::vector<int64_t>{1, 1}));
    EXPECT_EQ(messages_of<AppendRequest>(ready).size(), voters - 1);
    EXPECT_EQ(ready.commit, MetadataOffset{-1});
    size_t acks_needed = voters / 2;  // the leader holds its own log
    for (size_t i = 1; i <= acks_needed; ++i) {
      EXPECT_EQ(leader->commit_offset(), MetadataOffset{-1});
      leader->on_append_response(static_cast<ControllerNodeId>(i),
                                 AppendResponse{1, true, MetadataOffset{1}}, at(2002));
    }
    EXPECT_EQ(leader->commit_offset(), MetadataOffset{1});
    EXPECT_EQ(leader->take_ready().commit, MetadataOffset{1});
    // The next heartbeat tells the followers.
    leader->on_append_response(static_cast<ControllerNodeId>(voters - 1),
                               AppendResponse{1, true, MetadataOffset{1}}, at(2003));
    leader->tick(at(2200));
    for (const AppendRequest& r : messages_of<AppendRequest>(leader->take_ready()))
      EXPECT_EQ(r.commit_offset, MetadataOffset{1});
  }
}

// Figure 8 of the Raft paper: S1 leads term 4 with the term-2 entry at offset 1 now on a majority
// (S1, S2, S3). It must not count it: S5, with a term-3 entry there, can still win an election
// with the votes of S2, S3 and S4 and overwrite it. Once S1's own term-4 entry is on a majority,
// S5 can no longer win and both commit.
TEST(RaftCommit, Figure8OnlyCurrentTermEntriesCommitByCounting) {
  auto s1 = make_leader({0, 1, 2, 3, 4}, {1, 2}, 4);
  s1->on_append_response(1, AppendResponse{4, true, MetadataOffset{1}}, at(2001));
  s1->on_append_response(2, AppendResponse{4, true, MetadataOffset{1}}, at(2001));
  EXPECT_EQ(s1->commit_offset(), MetadataOffset{-1});

  RaftNode s3(config_for(2, {0, 1, 2, 3, 4}), RaftHardState{4, 0}, log_of({1, 2}), 1, at(0));
  EXPECT_TRUE(s3.on_vote({5, 4, MetadataOffset{1}, 3}, at(5000)).granted)
      << "S5's term-3 entry is more up to date than the majority-held term-2 one";

  ASSERT_EQ(s1->propose(std::vector{entry(2, 0)}, at(2002)), errc::none);
  s1->on_append_response(1, AppendResponse{4, true, MetadataOffset{2}}, at(2003));
  EXPECT_EQ(s1->commit_offset(), MetadataOffset{-1});
  s1->on_append_response(2, AppendResponse{4, true, MetadataOffset{2}}, at(2003));
  EXPECT_EQ(s1->commit_offset(), MetadataOffset{2});

  RaftNode s3_after(config_for(2, {0, 1, 2, 3, 4}), RaftHardState{4, 0}, log_of({1, 2, 4}), 1,
                    at(0));
  EXPECT_FALSE(s3_after.on_vote({5, 4, MetadataOffset{1}, 3}, at(5000)).granted);
}

// ---- the leader's replication ---------------------------------------------------------------

TEST(RaftReplication, OneAppendInFlightPerFollower) {
  auto leader = make_leader({0, 1, 2}, {}, 1);
  answer_announcements(*leader, MetadataOffset{-1}, at(2001));
  ASSERT_EQ(leader->propose(std::vector{entry(0, 0)}, at(2002)), errc::none);
  EXPECT_EQ(recipients(leader->take_ready()), (std::vector<ControllerNodeId>{1, 2}));
  ASSERT_EQ(leader->propose(std::vector{entry(1, 0)}, at(2003)), errc::none);
  EXPECT_TRUE(leader->take_ready().messages.empty());
  leader->tick(at(2200));  // a heartbeat does not overtake the request in flight either
  EXPECT_TRUE(leader->take_ready().messages.empty());

  leader->on_append_response(1, {1, true, MetadataOffset{0}}, at(2210));
  RaftReady next = leader->take_ready();
  ASSERT_EQ(recipients(next), (std::vector<ControllerNodeId>{1}));
  auto sent = messages_of<AppendRequest>(next);
  EXPECT_EQ(sent[0].prev_offset, MetadataOffset{0});
  EXPECT_EQ(offsets_of(sent[0].entries), (std::vector<int64_t>{1}));
  EXPECT_EQ(sent[0].commit_offset, MetadataOffset{0});

  // The same answer again (a duplicate) is not the answer to the request now in flight.
  leader->on_append_response(1, {1, true, MetadataOffset{0}}, at(2211));
  EXPECT_TRUE(leader->take_ready().messages.empty());
}

TEST(RaftReplication, AppendsCarryAtMostMaxEntries) {
  auto leader = make_leader({0, 1, 2}, {}, 1, /*max_entries=*/2);
  leader->on_append_response(1, {1, true, MetadataOffset{-1}}, at(2001));
  std::vector<MetadataEntry> five;
  for (int64_t i = 0; i < 5; ++i)
    five.push_back(entry(i, 0));
  ASSERT_EQ(leader->propose(five, at(2002)), errc::none);
  std::vector<std::vector<int64_t>> batches;
  for (RaftReady ready = leader->take_ready(); !ready.messages.empty();
       ready = leader->take_ready()) {
    auto sent = messages_of<AppendRequest>(ready);
    ASSERT_EQ(sent.size(), 1u);
    batches.push_back(offsets_of(sent[0].entries));
    MetadataOffset last{sent[0].prev_offset.value() + static_cast<int64_t>(sent[0].entries.size())};
    leader->on_append_response(1, {1, true, last}, at(2003));
  }
  EXPECT_EQ(batches, (std::vector<std::vector<int64_t>>{{0, 1}, {2, 3}, {4}}));
}

TEST(RaftReplication, HeartbeatsEveryIntervalAndRetriesLostAppends) {
  auto leader = make_leader({0, 1, 2}, {}, 1);  // announced at 2000
  answer_announcements(*leader, MetadataOffset{-1}, at(2010));
  leader->tick(at(2099));
  EXPECT_TRUE(leader->take_ready().messages.empty());
  leader->tick(at(2100));
  RaftReady beat = leader->take_ready();
  EXPECT_EQ(recipients(beat), (std::vector<ControllerNodeId>{1, 2}));
  for (const AppendRequest& r : messages_of<AppendRequest>(beat))
    EXPECT_TRUE(r.entries.empty());

  // Neither heartbeat is answered: nothing more until the retry, well inside a follower's
  // election timeout, so a single lost message does not start an election.
  const int64_t retry_at = 2100 + kElectionTimeout.count() / 2;
  for (int64_t ms = 2101; ms < retry_at; ms += 7) {
    leader->tick(at(ms));
    EXPECT_TRUE(leader->take_ready().messages.empty()) << "at " << ms;
  }
  leader->tick(at(retry_at));
  EXPECT_EQ(recipients(leader->take_ready()), (std::vector<ControllerNodeId>{1, 2}));
  EXPECT_TRUE(leader->is_leader());
}

TEST(RaftReplication, UnreachableFollowerIsRetriedAtTheNextHeartbeat) {
  auto leader = make_leader({0, 1, 2}, {}, 1);  // announced at 2000
  leader->on_unreachable(1, at(2001));
  EXPECT_TRUE(leader->take_ready().messages.empty());
  leader->tick(at(2050));
  EXPECT_TRUE(leader->take_ready().messages.empty());
  leader->tick(at(2100));
  EXPECT_EQ(recipients(leader->take_ready()), (std::vector<ControllerNodeId>{1}));
}

TEST(RaftReplication, RefusalMovesTheProbeBack) {
  // The leader holds [t1, t1, t1, t2, t2] and leads term 3; its first probe is at prev_offset 4.
  auto leader = make_leader({0, 1, 2}, {1, 1, 1, 2, 2}, 3);
  // Follower 1 is short (ends at 1): the next probe continues from its end.
  leader->on_append_response(1, {3, false, MetadataOffset{1}}, at(2001));
  auto to_1 = messages_of<AppendRequest>(leader->take_ready());
  ASSERT_EQ(to_1.size(), 1u);
  EXPECT_EQ(to_1[0].prev_offset, MetadataOffset{1});
  EXPECT_EQ(to_1[0].prev_term, 1);
  EXPECT_EQ(offsets_of(to_1[0].entries), (std::vector<int64_t>{2, 3, 4}));
  // Follower 2 holds offset 4 with another term: the leader's term-2 run is skipped in one step.
  leader->on_append_response(2, {3, false, MetadataOffset{6}}, at(2001));
  auto to_2 = messages_of<AppendRequest>(leader->take_ready());
  ASSERT_EQ(to_2.size(), 1u);
  EXPECT_EQ(to_2[0].prev_offset, MetadataOffset{2});
  EXPECT_EQ(offsets_of(to_2[0].entries), (std::vector<int64_t>{3, 4}));
  // Accepted: match is what the follower verified, and the probe never goes below it again.
  leader->on_append_response(2, {3, true, MetadataOffset{4}}, at(2002));
  EXPECT_EQ(leader->progress(at(2002))[2].match_offset, MetadataOffset{4});
  leader->on_append_response(2, {3, false, MetadataOffset{0}}, at(2003));  // reordered, stale
  leader->tick(at(2200));
  std::vector<MetadataOffset> probes_to_2;
  for (const RaftOutgoing& m : leader->take_ready().messages) {
    if (m.to == 2) {
      probes_to_2.push_back(std::get<AppendRequest>(m.message).prev_offset);
    }
  }
  EXPECT_EQ(probes_to_2, (std::vector<MetadataOffset>{MetadataOffset{4}}));
}

TEST(RaftReplication, ProgressReportsMatchAndContact) {
  auto leader = make_leader({0, 1, 2}, {1, 1}, 2);
  leader->on_append_response(2, {2, true, MetadataOffset{1}}, at(2100));
  auto progress = leader->progress(at(2500));
  ASSERT_EQ(progress.size(), 3u);
  EXPECT_EQ(progress[0].id, 0);
  EXPECT_EQ(progress[0].match_offset, MetadataOffset{1});
  EXPECT_EQ(progress[0].last_contact, at(2500));
  EXPECT_EQ(progress[1].match_offset, MetadataOffset{-1});
  EXPECT_EQ(progress[1].last_contact, std::nullopt);
  EXPECT_EQ(progress[2].match_offset, MetadataOffset{1});
  EXPECT_EQ(progress[2].last_contact, at(2100));
}

// ---- check-quorum ---------------------------------------------------------------------------

struct QuorumCase {
  std::string name;
  std::vector<std::pair<ControllerNodeId, int64_t>> answers;  // {from, at ms}
  int64_t tick_ms;
  bool still_leader;
};

TEST(RaftCheckQuorum, Table) {
  // Elected at 2000 in {0, 1, 2}; election timeout 1000 ms.
  // clang-format off
  const std::vector<QuorumCase> cases = {
    {"no answer yet, within the first election timeout",  {},                      2999, true},
    {"no answer for an election timeout: steps down",     {},                      3000, false},
    {"one follower answering is a majority",               {{1, 2600}},            3599, true},
    {"that follower silent for an election timeout",       {{1, 2600}},            3600, false},
    {"answers from both, one recent enough",               {{1, 2100}, {2, 2900}}, 3899, true},
    {"answers from both, both too old",                    {{1, 2100}, {2, 2900}}, 3900, false},
  };
  // clang-format on
  for (const QuorumCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto leader = make_leader({0, 1, 2}, {}, 1);
    for (auto [from, ms] : c.answers)
      leader->on_append_response(from, {1, true, MetadataOffset{-1}}, at(ms));
    leader->tick(at(c.tick_ms));
    EXPECT_EQ(leader->is_leader(), c.still_leader);
    EXPECT_EQ(leader->term(), 1);  // stepping down is not a new term
    EXPECT_EQ(leader->leader(), c.still_leader ? 0 : kNoNode);
    EXPECT_EQ(leader->propose(std::vector{entry(0, 0)}, at(c.tick_ms)),
              c.still_leader ? errc::none : errc::not_controller);
  }
}

// ---- propose --------------------------------------------------------------------------------

// ---- read lease ------------------------------------------------------------------------------

TEST(RaftReadLease, RunsAnElectionTimeoutFromTheSendOfWhatAMajorityAnswered) {
  auto leader = make_leader({0, 1, 2}, {1}, 2);  // leader since at(2000)
  const MetadataOffset last = leader->last_offset();
  EXPECT_FALSE(leader->has_read_lease(at(2000))) << "no answer yet: itself is not a majority";
  // An answer without the time its request was sent could be a duplicate of an old request.
  leader->on_append_response(1, AppendResponse{2, true, last}, at(2010));
  EXPECT_FALSE(leader->has_read_lease(at(2010)));
  // Sent at 2005, answered at 2050: the lease runs from the send, not from the answer.
  leader->on_append_response(1, AppendResponse{2, true, last}, at(2050), at(2005));
  EXPECT_TRUE(leader->has_read_lease(at(2050)));
  EXPECT_TRUE(leader->has_read_lease(at(2005) + kElectionTimeout - milliseconds(1)));
  EXPECT_FALSE(leader->has_read_lease(at(2005) + kElectionTimeout));
  // A refusal in its term (a follower still catching up) took it as leader too.
  leader->on_append_response(2, AppendResponse{2, false, MetadataOffset{-1}}, at(2600), at(2590));
  EXPECT_TRUE(leader->has_read_lease(at(2590) + kElectionTimeout - milliseconds(1)));
  EXPECT_FALSE(leader->has_read_lease(at(2590) + kElectionTimeout));
}

TEST(RaftReadLease, AnswersToRequestsOfAnEarlierLeadershipOrAHigherTermGiveNone) {
  auto leader = make_leader({0, 1, 2}, {1}, 2);  // leader since at(2000)
  leader->on_append_response(1, AppendResponse{2, true, leader->last_offset()}, at(2010), at(1990));
  EXPECT_FALSE(leader->has_read_lease(at(2010))) << "sent before it led";
  leader->on_append_response(2, AppendResponse{5, false, MetadataOffset{0}}, at(2020), at(2015));
  EXPECT_FALSE(leader->is_leader());
  EXPECT_FALSE(leader->has_read_lease(at(2020)));
}

TEST(RaftReadLease, ASingleVoterAlwaysHoldsItAndAFollowerNever) {
  RaftNode single(config_for(0, {0}), {}, {}, 1, at(0));
  ASSERT_TRUE(single.is_leader());
  EXPECT_TRUE(single.has_read_lease(at(100000)));
  auto follower = make_voter({1}, {1, kNoNode}, 1000);
  EXPECT_FALSE(follower->has_read_lease(at(1000)));
}

// What makes the lease safe after a restart: a voter that starts has forgotten when it last heard
// from a leader, so it refuses (pre-)votes for its first election timeout.
TEST(RaftReadLease, AStartedVoterVotesForNobodyWithinAnElectionTimeout) {
  RaftNode voter(config_for(1, {0, 1, 2}), {1, kNoNode}, log_of({1}), 1, at(5000));
  const VoteRequest pre{2, 2, MetadataOffset{0}, 1, true};
  const VoteRequest real{2, 2, MetadataOffset{0}, 1, false};
  EXPECT_FALSE(voter.on_vote(pre, at(5999)).granted);
  EXPECT_FALSE(voter.on_vote(real, at(5999)).granted);
  EXPECT_EQ(voter.term(), 1) << "nor adopts the term";
  EXPECT_TRUE(voter.on_vote(pre, at(6000)).granted);
  EXPECT_TRUE(voter.on_vote(real, at(6000)).granted);
}

TEST(RaftPropose, Table) {
  struct Case {
    std::string name;
    bool leader;
    std::vector<int64_t> offsets;
    errc expected;
  };
  // The log holds offsets 0 and 1.
  const std::vector<Case> cases = {
      {"on a follower", false, {2}, errc::not_controller},
      {"continues the log", true, {2, 3}, errc::none},
      {"leaves a gap", true, {3}, errc::invalid_request},
      {"overwrites", true, {1}, errc::invalid_request},
      {"hole inside the batch", true, {2, 4}, errc::invalid_request},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::unique_ptr<RaftNode> node =
        c.leader ? make_leader({0, 1, 2}, {1, 1}, 2) : make_voter({1, 1}, {2, kNoNode});
    std::vector<MetadataEntry> entries;
    for (int64_t o : c.offsets)
      entries.push_back(entry(o, 99));
    EXPECT_EQ(node->propose(entries, at(2001)), c.expected);
    RaftReady ready = node->take_ready();
    if (c.expected != errc::none) {
      EXPECT_TRUE(ready.empty());
      EXPECT_EQ(node->last_offset(), MetadataOffset{1});
      continue;
    }
    // The term is the leader's, whatever the caller put there.
    EXPECT_EQ(terms_of(ready.append), (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(terms_of(node->log()), (std::vector<int64_t>{1, 1, 2, 2}));
  }
}

// ---- snapshots and compaction ---------------------------------------------------------------

// Entries `first`.. with the given terms.
std::vector<MetadataEntry> entries_from(int64_t first, const std::vector<int64_t>& terms) {
  std::vector<MetadataEntry> out;
  for (size_t i = 0; i < terms.size(); ++i)
    out.push_back(entry(first + static_cast<int64_t>(i), terms[i]));
  return out;
}

TEST(RaftCompact, OnlyCommittedEntriesPastTheSnapshotPoint) {
  auto leader = make_leader({0, 1, 2}, {1, 1, 1, 1}, 2);
  answer_announcements(*leader, MetadataOffset{3}, at(2001));
  ASSERT_EQ(leader->propose(std::vector{entry(4, 0)}, at(2002)), errc::none);
  leader->on_append_response(1, {2, true, MetadataOffset{4}}, at(2003));
  ASSERT_EQ(leader->commit_offset(), MetadataOffset{4});
  ASSERT_EQ(leader->propose(std::vector{entry(5, 0)}, at(2004)), errc::none);
  leader->take_ready();

  struct Case {
    int64_t through;
    errc expected;
  };
  for (Case c : {Case{5, errc::invalid_request},  // not committed yet
                 Case{-1, errc::invalid_request}, Case{2, errc::none},
                 Case{2, errc::invalid_request},  // not past the snapshot point
                 Case{4, errc::none}}) {
    EXPECT_EQ(leader->compact(MetadataOffset{c.through}), c.expected) << "through " << c.through;
  }
  EXPECT_EQ(leader->snapshot(), (RaftSnapshotPoint{MetadataOffset{4}, 2}));
  EXPECT_EQ(offsets_of({leader->log().begin(), leader->log().end()}), (std::vector<int64_t>{5}));
  EXPECT_EQ(leader->last_offset(), MetadataOffset{5});
  EXPECT_EQ(leader->term_at(MetadataOffset{4}), 2);
  EXPECT_EQ(leader->term_at(MetadataOffset{3}), 0) << "compacted away";
  EXPECT_TRUE(leader->take_ready().empty()) << "the shell made the snapshot: nothing to persist";
}

TEST(RaftCompact, AFollowerBehindTheLogStartIsSentTheSnapshotThenAppends) {
  auto leader = make_leader({0, 1, 2}, {1, 1, 1}, 2);
  leader->on_append_response(1, {2, true, MetadataOffset{2}}, at(2001));
  ASSERT_EQ(leader->propose(std::vector{entry(3, 0), entry(4, 0)}, at(2002)), errc::none);
  leader->on_append_response(1, {2, true, MetadataOffset{4}}, at(2003));
  ASSERT_EQ(leader->compact(MetadataOffset{3}), errc::none);
  leader->take_ready();

  // Node 2 answers its announcement: it holds nothing.
  leader->on_append_response(2, {2, false, MetadataOffset{-1}}, at(2004));
  RaftReady ready = leader->take_ready();
  auto snapshots = messages_of<InstallSnapshotRequest>(ready);
  ASSERT_EQ(snapshots.size(), 1u);
  EXPECT_EQ(recipients(ready), (std::vector<ControllerNodeId>{2}));
  EXPECT_EQ(snapshots[0].snapshot, (RaftSnapshotPoint{MetadataOffset{3}, 2}));
  EXPECT_EQ(snapshots[0].term, 2);
  EXPECT_TRUE(snapshots[0].data.empty()) << "the shell attaches the bytes";

  leader->tick(at(2050));  // one request in flight: no second snapshot before its answer
  EXPECT_TRUE(messages_of<InstallSnapshotRequest>(leader->take_ready()).empty());

  leader->on_append_response(2, {2, true, MetadataOffset{3}}, at(2060));
  auto appends = messages_of<AppendRequest>(leader->take_ready());
  ASSERT_EQ(appends.size(), 1u);
  EXPECT_EQ(appends[0].prev_offset, MetadataOffset{3});
  EXPECT_EQ(appends[0].prev_term, 2);
  EXPECT_EQ(offsets_of(appends[0].entries), (std::vector<int64_t>{4}));
}

TEST(RaftInstallSnapshot, Table) {
  struct Case {
    const char* name;
    std::vector<int64_t> log_terms;  // the follower's log from offset 0, all of term <= 3
    int64_t commit;                  // committed there before the snapshot arrives
    RaftSnapshotPoint point;
    int64_t request_term;
    bool success;
    bool installed;  // Ready carries install_snapshot and the log is emptied
    int64_t last_offset_after;
    int64_t commit_after;
  };
  const RaftSnapshotPoint at5{MetadataOffset{5}, 3};
  const std::vector<Case> cases{
      {"empty log: install", {}, -1, at5, 3, true, true, 5, 5},
      {"shorter log: install", {1, 1}, 1, at5, 3, true, true, 5, 5},
      {"conflicting entry at the point: install",
       {1, 1, 1, 1, 1, 2, 2},
       1,
       at5,
       3,
       true,
       true,
       5,
       5},
      {"holds the point: keeps its log", {1, 1, 3, 3, 3, 3, 3}, 1, at5, 3, true, false, 6, 5},
      {"committed past the point: nothing to do",
       {1, 1, 3, 3, 3, 3, 3},
       6,
       at5,
       3,
       true,
       false,
       6,
       6},
      {"stale leader: refused", {1, 1}, 1, at5, 2, false, false, 1, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto follower = make_voter(c.log_terms, RaftHardState{3, kNoNode});
    if (c.commit >= 0) {
      AppendRequest commit{
          3, 0, follower->last_offset(), follower->last_term(), {}, MetadataOffset{c.commit}};
      ASSERT_TRUE(follower->on_append(commit, at(100)).success);
      ASSERT_EQ(follower->commit_offset(), MetadataOffset{c.commit});
      follower->take_ready();
    }
    AppendResponse answer = follower->on_install_snapshot(
        InstallSnapshotRequest{c.request_term, 0, c.point, {}}, at(200));
    EXPECT_EQ(answer.success, c.success);
    EXPECT_EQ(answer.term, 3);
    if (c.success) {
      EXPECT_EQ(answer.match_offset, c.point.offset);
    }
    RaftReady ready = follower->take_ready();
    EXPECT_EQ(ready.install_snapshot.has_value(), c.installed);
    if (c.installed) {
      EXPECT_EQ(*ready.install_snapshot, c.point);
      EXPECT_EQ(follower->snapshot(), c.point);
      EXPECT_TRUE(follower->log().empty());
      EXPECT_EQ(follower->last_term(), c.point.term);
    }
    EXPECT_EQ(follower->last_offset(), MetadataOffset{c.last_offset_after});
    EXPECT_EQ(follower->commit_offset(), MetadataOffset{c.commit_after});
    EXPECT_EQ(ready.commit, MetadataOffset{c.commit_after});
  }
}

TEST(RaftInstallSnapshot, AppendsInTheSameReadyFollowTheSnapshot) {
  auto follower = make_voter({1, 1, 2}, RaftHardState{3, kNoNode});
  const RaftSnapshotPoint point{MetadataOffset{5}, 3};
  ASSERT_TRUE(follower->on_install_snapshot({3, 0, point, {}}, at(100)).success);
  AppendRequest next{3, 0, MetadataOffset{5}, 3, entries_from(6, {3, 3}), MetadataOffset{6}};
  ASSERT_TRUE(follower->on_append(next, at(110)).success);
  RaftReady ready = follower->take_ready();
  ASSERT_TRUE(ready.install_snapshot);
  EXPECT_FALSE(ready.truncate_after) << "the snapshot already emptied the log";
  EXPECT_EQ(offsets_of(ready.append), (std::vector<int64_t>{6, 7}));
  EXPECT_EQ(ready.commit, MetadataOffset{6});
}

TEST(RaftInstallSnapshot, AppendsReachingBelowTheSnapshotMatchThere) {
  // Restarted with a snapshot through 3 (term 2) and entries 4..5 after it.
  RaftNode follower(config_for(1, {0, 1, 2}), RaftHardState{2, kNoNode},
                    RaftSnapshotPoint{MetadataOffset{3}, 2}, entries_from(4, {2, 2}), 1,
                    at(0) - kElectionTimeout);
  EXPECT_EQ(follower.commit_offset(), MetadataOffset{3}) << "a snapshot holds committed state";
  EXPECT_EQ(follower.last_offset(), MetadataOffset{5});
  // A retried append from offset 1: the compacted part is committed, so it matches; the entries
  // the log holds are skipped and the new one appended.
  AppendRequest retried{
      2, 0, MetadataOffset{1}, 1, entries_from(2, {2, 2, 2, 2, 2}), MetadataOffset{6}};
  AppendResponse answer = follower.on_append(retried, at(10));
  EXPECT_TRUE(answer.success);
  EXPECT_EQ(answer.match_offset, MetadataOffset{6});
  RaftReady ready = follower.take_ready();
  EXPECT_EQ(offsets_of(ready.append), (std::vector<int64_t>{6}));
  EXPECT_FALSE(ready.truncate_after);
  EXPECT_EQ(follower.commit_offset(), MetadataOffset{6});
}

TEST(RaftInstallSnapshot, RestartValidatesTheLogAgainstItsSnapshot) {
  auto make = [](RaftSnapshotPoint point, std::vector<MetadataEntry> log) {
    return RaftNode(config_for(1, {0, 1, 2}), RaftHardState{3, kNoNode}, point, std::move(log), 1,
                    at(0));
  };
  EXPECT_NO_THROW(make({MetadataOffset{3}, 2}, entries_from(4, {2, 3})));
  EXPECT_THROW(make({MetadataOffset{3}, 2}, entries_from(5, {2})), std::invalid_argument)
      << "a hole after the snapshot";
  EXPECT_THROW(make({MetadataOffset{3}, 2}, entries_from(3, {2})), std::invalid_argument)
      << "overlaps the snapshot";
  EXPECT_THROW(make({MetadataOffset{3}, 2}, entries_from(4, {1})), std::invalid_argument)
      << "a term below the snapshot's";
  EXPECT_THROW(make({MetadataOffset{3}, 4}, {}), std::invalid_argument)
      << "a snapshot term past the hard state";
  EXPECT_THROW(make({MetadataOffset{3}, 0}, {}), std::invalid_argument);
}

// ---- simulation -----------------------------------------------------------------------------
// A fake network of RaftNodes driven like the shell drives them: after every event the Ready is
// persisted to a fake disk, then messages are sent, then the commit applied. A crashed node loses
// everything but its disk, and may crash halfway through persisting a Ready.

using SimMessage =
    std::variant<VoteRequest, AppendRequest, InstallSnapshotRequest, VoteResponse, AppendResponse>;

template <typename... F>
struct overloaded : F... {
  using F::operator()...;
};
template <typename... F>
overloaded(F...) -> overloaded<F...>;

struct SimOptions {
  size_t voters = 3;
  bool pre_vote = true;
  milliseconds election_timeout{50};
  milliseconds heartbeat_interval{10};
  size_t max_entries_per_append = 4;  // small, so catching up takes several round trips
  double drop = 0;
  double duplicate = 0;
  double slow = 0;  // share of messages held back by slow_delay: later ones overtake them
  milliseconds min_delay{1};
  milliseconds max_delay{5};
  milliseconds slow_delay{60};
  double unreachable_notice = 0.5;  // appends lost on a cut link that the sender is told about
  // Whether a new leader proposes a record of its own term at once, as the shell does. Without it
  // entries of earlier terms sit on a majority uncommitted: Figure 8's window stays open.
  bool propose_on_election = true;
  // Chance per node and millisecond that it snapshots what it applied and compacts its log, as
  // the shell does every so many records. Followers behind a leader's snapshot then need one.
  double compact = 0;
};

struct SimStats {
  int64_t elections = 0;
  int64_t committed = 0;
  int64_t truncations = 0;
  int64_t crashes = 0;
  int64_t crashes_mid_ready = 0;
  int64_t messages = 0;
  int64_t lease_checks = 0;  // events after which a leader held its read lease
  int64_t compactions = 0;
  int64_t snapshots_installed = 0;
};

class SimCluster {
 public:
  SimCluster(SimOptions options, uint64_t seed) : options_(options), rng_(seed) {
    nodes_.resize(options.voters);
    cut_.assign(options.voters, std::vector<bool>(options.voters, false));
    for (size_t i = 0; i < nodes_.size(); ++i)
      restart(static_cast<ControllerNodeId>(i));
  }

  // One millisecond: what is due is delivered, then every running node ticks.
  void step() {
    now_ += milliseconds(1);
    while (!in_transit_.empty() && in_transit_.top().deliver_at <= now_) {
      Envelope e = in_transit_.top();
      in_transit_.pop();
      deliver(e);
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].raft) {
        nodes_[i].raft->tick(now_);
        after_event(static_cast<ControllerNodeId>(i));
      }
      if (nodes_[i].raft && std::bernoulli_distribution(options_.compact)(rng_))
        compact(static_cast<ControllerNodeId>(i));
    }
    check_leader_completeness();
  }
  void run_for(milliseconds duration) {
    for (auto end = now_ + duration; now_ < end && violation_.empty();)
      step();
  }
  // Steps until `done` holds (true) or `limit` has passed (false).
  bool run_until(const std::function<bool()>& done, milliseconds limit) {
    for (auto end = now_ + limit; now_ < end && violation_.empty(); step()) {
      if (done())
        return true;
    }
    return done();
  }

  // ---- faults
  void cut(ControllerNodeId from, ControllerNodeId to) { cut_[from][to] = true; }
  void isolate(ControllerNodeId id) {
    for (size_t other = 0; other < nodes_.size(); ++other) {
      cut_[id][other] = cut_[other][id] = static_cast<size_t>(id) != other;
    }
  }
  void partition(const std::vector<bool>& side) {
    for (size_t a = 0; a < nodes_.size(); ++a)
      for (size_t b = 0; b < nodes_.size(); ++b)
        cut_[a][b] = side[a] != side[b];
  }
  void heal() { cut_.assign(nodes_.size(), std::vector<bool>(nodes_.size(), false)); }
  void set_loss(double drop, double duplicate) {
    options_.drop = drop;
    options_.duplicate = duplicate;
  }
  void crash(ControllerNodeId id, bool mid_ready) {
    SimNode& n = nodes_[id];
    if (!n.raft)
      return;
    ++stats_.crashes;
    if (mid_ready) {
      n.crash_in_next_ready = true;  // at its next non-empty Ready
    } else {
      n.raft.reset();
    }
  }
  // A restarted node is rebuilt from its disk: the hard state and log its Readies persisted.
  void restart(ControllerNodeId id) {
    SimNode& n = nodes_[id];
    if (n.raft)
      return;
    RaftConfig config;
    config.id = id;
    config.voters.clear();
    for (size_t i = 0; i < nodes_.size(); ++i)
      config.voters.push_back(static_cast<ControllerNodeId>(i));
    config.election_timeout = options_.election_timeout;
    config.heartbeat_interval = options_.heartbeat_interval;
    config.max_entries_per_append = options_.max_entries_per_append;
    config.pre_vote = options_.pre_vote;
    std::vector<MetadataEntry> after_snapshot(
        n.disk_log.begin() + (n.disk_snapshot.offset.value() + 1), n.disk_log.end());
    n.raft = std::make_unique<RaftNode>(config, n.disk_state, n.disk_snapshot,
                                        std::move(after_snapshot), rng_(), now_);
    n.applied = MetadataOffset{-1};
    n.crash_in_next_ready = false;
    n.led_term = 0;
    after_event(id);
  }
  bool up(ControllerNodeId id) const { return nodes_[id].raft != nullptr; }
  void heal_everything() {
    heal();
    for (size_t i = 0; i < nodes_.size(); ++i) {
      nodes_[i].crash_in_next_ready = false;
      restart(static_cast<ControllerNodeId>(i));
    }
  }

  // ---- observation
  const RaftNode& node(ControllerNodeId id) const { return *nodes_[id].raft; }
  size_t size() const { return nodes_.size(); }
  // The running leader with the highest term (a deposed one may not know it yet).
  std::optional<ControllerNodeId> leader() const {
    std::optional<ControllerNodeId> best;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const auto& raft = nodes_[i].raft;
      if (raft && raft->is_leader() && (!best || raft->term() > node(*best).term()))
        best = static_cast<ControllerNodeId>(i);
    }
    return best;
  }
  // Proposes `count` new records on `id`; their values are unique across the run.
  errc propose(ControllerNodeId id, size_t count, const std::string& tag = "p") {
    RaftNode& raft = *nodes_[id].raft;
    std::vector<MetadataEntry> entries;
    for (size_t i = 0; i < count; ++i)
      entries.push_back(
          MetadataEntry{MetadataOffset{raft.last_offset().value() + 1 + static_cast<int64_t>(i)},
                        ConfigChanged{"k", tag + std::to_string(next_value_++)}, 0});
    errc result = raft.propose(entries, now_);
    after_event(id);
    return result;
  }
  // Whether an entry tagged `tag` is committed and applied by every running node.
  bool applied_everywhere(const std::string& tag) const {
    for (size_t k = 0; k < committed_.size(); ++k) {
      if (value_of(committed_[k]).rfind(tag, 0) != 0)
        continue;
      return std::all_of(nodes_.begin(), nodes_.end(), [&](const SimNode& n) {
        return !n.raft || n.applied.value() >= static_cast<int64_t>(k);
      });
    }
    return false;
  }
  // One line per node, for failure messages.
  std::string describe() const {
    std::string out;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const SimNode& n = nodes_[i];
      out += "\n  node " + std::to_string(i) + ": ";
      if (!n.raft) {
        out += "down";
        continue;
      }
      const RaftNode& r = *n.raft;
      out += std::string(to_string(r.role())) + " term " + std::to_string(r.term()) + " vote " +
             std::to_string(r.hard_state().voted_for) + " leader " + std::to_string(r.leader()) +
             " last " + std::to_string(r.last_offset().value()) + "@" +
             std::to_string(r.last_term()) + " commit " + std::to_string(r.commit_offset().value());
    }
    return out;
  }
  const std::string& violation() const { return violation_; }
  const SimStats& stats() const { return stats_; }
  RaftTime now() const { return now_; }

 private:
  struct Envelope {
    RaftTime deliver_at;
    uint64_t sequence;
    ControllerNodeId from;
    ControllerNodeId to;
    SimMessage message;
    // An InstallSnapshotRequest's data: the committed prefix the sender's snapshot stands for.
    std::vector<MetadataEntry> snapshot_prefix;
    RaftTime sent_at;
    std::optional<RaftTime> answers_sent;  // an answer: when its request was sent
    bool operator>(const Envelope& other) const {
      return std::tie(deliver_at, sequence) > std::tie(other.deliver_at, other.sequence);
    }
  };
  struct SimNode {
    std::unique_ptr<RaftNode> raft;  // null while crashed
    RaftHardState disk_state;
    // The fake disk keeps the whole log; entries up to disk_snapshot stand for the snapshot (the
    // state they built) and are not handed to a restarted RaftNode.
    RaftSnapshotPoint disk_snapshot;
    std::vector<MetadataEntry> disk_log;
    std::vector<uint64_t> disk_prefix_hash;  // [k]: hash of disk_log[0..k]
    MetadataOffset applied{-1};              // by the running incarnation
    MetadataOffset ever_applied{-1};         // by any incarnation
    bool crash_in_next_ready = false;
    int64_t led_term = 0;             // term in which it was last seen leading
    size_t completeness_checked = 0;  // committed_ entries checked against its log
  };

  static const std::string& value_of(const MetadataEntry& e) {
    return std::get<ConfigChanged>(e.record).value;
  }
  static bool same_entry(const MetadataEntry& a, const MetadataEntry& b) {
    return a.offset == b.offset && a.term == b.term && value_of(a) == value_of(b);
  }

  void fail(const std::string& what) {
    if (violation_.empty())
      violation_ = "at " + std::to_string((now_ - RaftTime{}) / milliseconds(1)) + " ms: " + what;
  }

  void send(ControllerNodeId from, ControllerNodeId to, SimMessage message,
            std::optional<RaftTime> answers_sent = std::nullopt) {
    std::vector<MetadataEntry> prefix;
    if (const auto* install = std::get_if<InstallSnapshotRequest>(&message)) {
      const auto& log = nodes_[from].disk_log;
      prefix.assign(log.begin(), log.begin() + (install->snapshot.offset.value() + 1));
    }
    std::uniform_real_distribution<double> chance(0, 1);
    if (chance(rng_) < options_.drop)
      return;
    int copies = chance(rng_) < options_.duplicate ? 2 : 1;
    for (int i = 0; i < copies; ++i) {
      milliseconds delay{std::uniform_int_distribution<int64_t>(options_.min_delay.count(),
                                                                options_.max_delay.count())(rng_)};
      if (chance(rng_) < options_.slow)
        delay += options_.slow_delay;
      in_transit_.push(
          Envelope{now_ + delay, sequence_++, from, to, message, prefix, now_, answers_sent});
      ++stats_.messages;
    }
  }

  void deliver(const Envelope& e) {
    SimNode& to = nodes_[e.to];
    if (!to.raft || cut_[e.from][e.to]) {
      bool append = std::holds_alternative<AppendRequest>(e.message) ||
                    std::holds_alternative<InstallSnapshotRequest>(e.message);
      std::uniform_real_distribution<double> chance(0, 1);
      if (append && nodes_[e.from].raft && chance(rng_) < options_.unreachable_notice) {
        nodes_[e.from].raft->on_unreachable(e.to, now_);
        after_event(e.from);
      }
      return;
    }
    RaftNode& raft = *to.raft;
    std::visit(overloaded{
                   [&](const VoteRequest& r) {
                     VoteResponse answer = raft.on_vote(r, now_);
                     if (after_event(e.to))
                       send(e.to, e.from, answer);
                   },
                   [&](const AppendRequest& r) {
                     AppendResponse answer = raft.on_append(r, now_);
                     if (after_event(e.to))
                       send(e.to, e.from, answer, e.sent_at);
                   },
                   [&](const InstallSnapshotRequest& r) {
                     arriving_snapshot_ = &e.snapshot_prefix;
                     AppendResponse answer = raft.on_install_snapshot(r, now_);
                     bool sent = after_event(e.to);
                     arriving_snapshot_ = nullptr;
                     if (sent)
                       send(e.to, e.from, answer, e.sent_at);
                   },
                   [&](const VoteResponse& r) {
                     raft.on_vote_response(e.from, r, now_);
                     after_event(e.to);
                   },
                   [&](const AppendResponse& r) {
                     raft.on_append_response(e.from, r, now_, e.answers_sent);
                     after_event(e.to);
                   },
               },
               e.message);
  }

  // What the shell does after every event. False when the node crashed while doing it.
  bool after_event(ControllerNodeId id) {
    SimNode& n = nodes_[id];
    RaftReady ready = n.raft->take_ready();
    if (n.crash_in_next_ready && !ready.empty()) {
      crash_while_persisting(id, std::move(ready));
      return false;
    }
    persist(id, ready);
    for (RaftOutgoing& m : ready.messages) {
      std::visit([&](auto& request) { send(id, m.to, std::move(request)); }, m.message);
    }
    apply(id, ready.commit);
    observe_leadership(id);
    check_read_leases();
    return true;
  }

  // Read lease safety: while a leader holds its lease, no leader of a later term exists (it could
  // have committed what the lease holder would not show).
  void check_read_leases() {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const auto& holder = nodes_[i].raft;
      if (!holder || !holder->has_read_lease(now_))
        continue;
      ++stats_.lease_checks;
      for (size_t j = 0; j < nodes_.size(); ++j) {
        const auto& other = nodes_[j].raft;
        if (j != i && other && other->is_leader() && other->term() > holder->term())
          fail("node " + std::to_string(i) + " holds a read lease in term " +
               std::to_string(holder->term()) + " while node " + std::to_string(j) +
               " leads term " + std::to_string(other->term()));
      }
    }
  }

  // Power lost somewhere in the middle of the persisting steps; nothing is sent.
  void crash_while_persisting(ControllerNodeId id, RaftReady ready) {
    SimNode& n = nodes_[id];
    ++stats_.crashes_mid_ready;
    int reached = std::uniform_int_distribution<int>(0, 2)(rng_);
    if (reached >= 1 && ready.hard_state)
      persist_hard_state(id, *ready.hard_state);
    if (reached >= 2) {
      size_t kept = std::uniform_int_distribution<size_t>(0, ready.append.size())(rng_);
      ready.append.resize(kept);
      ready.hard_state.reset();
      persist(id, ready);
    }
    n.raft.reset();
  }

  void persist_hard_state(ControllerNodeId id, const RaftHardState& state) {
    SimNode& n = nodes_[id];
    const RaftHardState& old = n.disk_state;
    bool same_term_same_vote =
        state.term == old.term && (old.voted_for == kNoNode || old.voted_for == state.voted_for);
    if (state.term < old.term || (state.term == old.term && !same_term_same_vote))
      fail("node " + std::to_string(id) + " changed its vote or went back a term");
    n.disk_state = state;
  }

  void persist(ControllerNodeId id, const RaftReady& ready) {
    SimNode& n = nodes_[id];
    if (ready.hard_state)
      persist_hard_state(id, *ready.hard_state);
    if (ready.install_snapshot)
      install_snapshot(id, *ready.install_snapshot);
    if (ready.truncate_after)
      truncate(id, *ready.truncate_after);
    for (const MetadataEntry& e : ready.append)
      append(id, e);
    if (!n.raft || n.crash_in_next_ready)
      return;
    std::span<const MetadataEntry> in_memory = n.raft->log();
    if (n.raft->snapshot() != n.disk_snapshot ||
        in_memory.size() + static_cast<size_t>(n.disk_snapshot.offset.value() + 1) !=
            n.disk_log.size() ||
        (!in_memory.empty() && !same_entry(in_memory.back(), n.disk_log.back())))
      fail("node " + std::to_string(id) + " log differs from what its Readies persisted");
  }

  // The shell's part of a compaction: a snapshot of what the node applied.
  void compact(ControllerNodeId id) {
    SimNode& n = nodes_[id];
    if (n.applied <= n.disk_snapshot.offset)
      return;
    if (n.raft->compact(n.applied) != errc::none) {
      fail("node " + std::to_string(id) + " refused to compact what it applied");
      return;
    }
    n.disk_snapshot = n.raft->snapshot();
    ++stats_.compactions;
    if (n.disk_snapshot.term != n.disk_log[static_cast<size_t>(n.applied.value())].term)
      fail("node " + std::to_string(id) + " snapshot point has the wrong term");
  }

  // A leader's snapshot replaces the whole disk log. It may hold committed entries only, and
  // nothing this node applied may change.
  void install_snapshot(ControllerNodeId id, RaftSnapshotPoint point) {
    SimNode& n = nodes_[id];
    if (arriving_snapshot_ == nullptr) {
      fail("node " + std::to_string(id) + " installs a snapshot nobody sent");
      return;
    }
    ++stats_.snapshots_installed;
    const std::vector<MetadataEntry>& prefix = *arriving_snapshot_;
    if (prefix.size() != static_cast<size_t>(point.offset.value() + 1) ||
        prefix.back().term != point.term)
      fail("node " + std::to_string(id) + " got a snapshot whose point is not its data's end");
    for (size_t k = 0; k < prefix.size(); ++k) {
      if (k >= committed_.size() || !same_entry(prefix[k], committed_[k])) {
        fail("node " + std::to_string(id) + " installs a snapshot with uncommitted offset " +
             std::to_string(k));
        return;
      }
    }
    n.disk_log.clear();
    n.disk_prefix_hash.clear();
    for (const MetadataEntry& e : prefix)
      append(id, e);
    n.disk_snapshot = point;
  }

  void truncate(ControllerNodeId id, MetadataOffset keep) {
    SimNode& n = nodes_[id];
    size_t first_dropped = static_cast<size_t>(keep.value() + 1);
    if (first_dropped >= n.disk_log.size())
      return;
    ++stats_.truncations;
    // State Machine Safety across restarts: nothing any incarnation applied is ever removed,
    // nor any committed entry this node holds.
    if (keep < n.ever_applied)
      fail("node " + std::to_string(id) + " truncates below what it applied");
    if (first_dropped < committed_.size() &&
        same_entry(n.disk_log[first_dropped], committed_[first_dropped]))
      fail("node " + std::to_string(id) + " truncates committed offset " +
           std::to_string(first_dropped));
    n.disk_log.resize(first_dropped);
    n.disk_prefix_hash.resize(first_dropped);
  }

  // Log Matching: an (offset, term) pair names one entry and one history before it, across every
  // log and every moment of the run.
  void append(ControllerNodeId id, const MetadataEntry& e) {
    SimNode& n = nodes_[id];
    if (e.offset.value() != static_cast<int64_t>(n.disk_log.size())) {
      fail("node " + std::to_string(id) + " was asked to persist a non-contiguous entry");
      return;
    }
    uint64_t previous = n.disk_prefix_hash.empty() ? 0 : n.disk_prefix_hash.back();
    uint64_t hash = mix(previous ^ mix(static_cast<uint64_t>(e.term) * 0x9e3779b97f4a7c15ULL ^
                                       std::hash<std::string>{}(value_of(e))));
    auto [it, inserted] = history_.try_emplace({e.offset.value(), e.term}, hash);
    if (!inserted && it->second != hash)
      fail("log matching: offset " + std::to_string(e.offset.value()) + " term " +
           std::to_string(e.term) + " on node " + std::to_string(id) + " has another history");
    n.disk_log.push_back(e);
    n.disk_prefix_hash.push_back(hash);
  }
  static uint64_t mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }

  // State Machine Safety: every node applies the same entry at each offset, and never less
  // than before within an incarnation.
  void apply(ControllerNodeId id, MetadataOffset commit) {
    SimNode& n = nodes_[id];
    if (commit < n.applied)
      fail("node " + std::to_string(id) + " commit went back");
    if (commit.value() >= static_cast<int64_t>(n.disk_log.size()))
      fail("node " + std::to_string(id) + " commits past its persisted log");
    // An installed snapshot moves the commit over entries this incarnation never applied one by
    // one; apply() checks them against the committed history all the same.
    for (int64_t k = n.applied.value() + 1; k <= commit.value() && violation_.empty(); ++k) {
      const MetadataEntry& e = n.disk_log[static_cast<size_t>(k)];
      if (static_cast<size_t>(k) < committed_.size()) {
        if (!same_entry(e, committed_[static_cast<size_t>(k)]))
          fail("node " + std::to_string(id) + " applies another entry at " + std::to_string(k));
      } else {
        committed_.push_back(e);
        committed_in_term_.push_back(n.raft->term());
        ++stats_.committed;
      }
    }
    n.applied = std::max(n.applied, commit);
    n.ever_applied = std::max(n.ever_applied, commit);
  }

  // Election Safety, plus what the shell does on winning: a record of its own term first.
  void observe_leadership(ControllerNodeId id) {
    SimNode& n = nodes_[id];
    if (!n.raft || !n.raft->is_leader() || n.led_term == n.raft->term())
      return;
    int64_t term = n.raft->term();
    n.led_term = term;
    n.completeness_checked = 0;
    auto [it, inserted] = leader_of_term_.try_emplace(term, id);
    if (!inserted && it->second != id) {
      fail("two leaders in term " + std::to_string(term) + ": " + std::to_string(it->second) +
           " and " + std::to_string(id));
      return;
    }
    ++stats_.elections;
    check_leader_completeness();
    if (options_.propose_on_election)
      propose(id, 1, "elected-");
  }

  // Leader Completeness: a leader of term T holds every entry committed in a term before T.
  void check_leader_completeness() {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      SimNode& n = nodes_[i];
      if (!n.raft || !n.raft->is_leader())
        continue;
      std::span<const MetadataEntry> log = n.raft->log();
      const auto base = static_cast<size_t>(n.raft->snapshot().offset.value() + 1);
      for (; n.completeness_checked < committed_.size(); ++n.completeness_checked) {
        size_t k = n.completeness_checked;
        // Up to its snapshot point the node holds committed state: checked when it was made.
        if (committed_in_term_[k] >= n.raft->term() || k < base)
          continue;
        if (k - base >= log.size() || !same_entry(log[k - base], committed_[k]))
          fail("leader " + std::to_string(i) + " of term " + std::to_string(n.raft->term()) +
               " lacks committed offset " + std::to_string(k));
      }
    }
  }

  SimOptions options_;
  std::mt19937_64 rng_;
  RaftTime now_{};
  std::vector<SimNode> nodes_;
  std::vector<std::vector<bool>> cut_;  // [from][to]
  std::priority_queue<Envelope, std::vector<Envelope>, std::greater<>> in_transit_;
  uint64_t sequence_ = 0;
  uint64_t next_value_ = 0;
  std::vector<MetadataEntry> committed_;    // the one committed history
  std::vector<int64_t> committed_in_term_;  // term of the node that first applied each entry
  std::map<std::pair<int64_t, int64_t>, uint64_t> history_;  // {offset, term} -> prefix hash
  std::map<int64_t, ControllerNodeId> leader_of_term_;
  const std::vector<MetadataEntry>* arriving_snapshot_ = nullptr;  // during on_install_snapshot
  std::string violation_;
  SimStats stats_;
};

// ---- disruptive rejoining voter -------------------------------------------------------------

struct RejoinCase {
  bool pre_vote;
  bool expect_term_bumped_while_away;
  bool expect_leader_deposed;
};

TEST(RaftSimulation, DisruptiveRejoiningVoter) {
  for (const RejoinCase& c : {RejoinCase{true, false, false}, RejoinCase{false, true, true}}) {
    SCOPED_TRACE(c.pre_vote ? "with pre-vote" : "without pre-vote");
    SimOptions options;
    options.pre_vote = c.pre_vote;
    SimCluster sim(options, 7);
    sim.run_for(milliseconds(500));
    std::optional<ControllerNodeId> leader = sim.leader();
    ASSERT_TRUE(leader);
    const int64_t term = sim.node(*leader).term();
    const ControllerNodeId away = (*leader + 1) % 3;
    ASSERT_EQ(sim.node(away).leader(), *leader);

    sim.isolate(away);
    bool deposed = false;
    auto watch = [&](milliseconds duration) {
      for (auto end = sim.now() + duration; sim.now() < end;) {
        sim.step();
        deposed = deposed || !sim.node(*leader).is_leader() || sim.node(*leader).term() != term;
      }
    };
    watch(20 * options.election_timeout);
    EXPECT_FALSE(deposed) << "the majority side keeps its leader";
    EXPECT_EQ(sim.node(away).term() > term, c.expect_term_bumped_while_away)
        << "term " << sim.node(away).term() << " vs " << term;

    sim.heal();
    watch(20 * options.election_timeout);
    EXPECT_EQ(deposed, c.expect_leader_deposed);
    if (!c.expect_leader_deposed) {
      EXPECT_EQ(sim.node(away).leader(), *leader) << "it rejoined as a follower";
      EXPECT_EQ(sim.node(away).term(), term);
    }
    ASSERT_EQ(sim.violation(), "");
  }
}

// Figure 8 of the Raft paper on three simulated nodes, new leaders proposing nothing of their
// own: an entry of an old term copied onto a majority by a later leader is still not committed,
// because a node holding a newer conflicting entry can yet win and overwrite it, and does.
TEST(RaftSimulation, Figure8EntryOfAnOldTermOnAMajorityIsNotCommitted) {
  SimOptions options;
  options.propose_on_election = false;
  SimCluster sim(options, 11);
  const milliseconds patience = 40 * options.election_timeout;
  ASSERT_TRUE(sim.run_until([&] { return sim.leader().has_value(); }, patience));
  const ControllerNodeId a = *sim.leader();
  sim.propose(a, 1, "base-");
  ASSERT_TRUE(sim.run_until([&] { return sim.applied_everywhere("base-"); }, patience));
  const MetadataOffset k = sim.node(a).last_offset().next();

  // a appends (k, t1) on its own.
  sim.isolate(a);
  ASSERT_EQ(sim.propose(a, 1, "old-"), errc::none);
  const int64_t t1 = sim.node(a).term();
  // The other two elect x, which appends a conflicting (k, t2) on its own.
  ControllerNodeId x = a;
  ASSERT_TRUE(sim.run_until(
      [&] {
        x = sim.leader().value_or(a);
        return x != a;
      },
      patience));
  sim.isolate(x);
  ASSERT_EQ(sim.propose(x, 1, "new-"), errc::none);
  const int64_t t2 = sim.node(x).term();
  const ControllerNodeId y = 3 - a - x;

  // a and y: a's log is the more up to date, a leads a term above t2 and copies (k, t1) to y.
  sim.heal();
  sim.isolate(x);
  ASSERT_TRUE(sim.run_until([&] { return sim.node(a).is_leader() && sim.node(y).term_at(k) == t1; },
                            patience))
      << sim.describe();
  EXPECT_GT(sim.node(a).term(), t2);
  sim.run_for(10 * options.heartbeat_interval);
  EXPECT_LT(sim.node(a).commit_offset(), k) << "(k, t1) is on a majority, but of an old term";
  EXPECT_LT(sim.node(y).commit_offset(), k);

  // x comes back while a is away: its (k, t2) beats y's (k, t1), so it wins and overwrites.
  sim.heal();
  sim.isolate(a);
  ASSERT_TRUE(sim.run_until([&] { return sim.node(x).is_leader(); }, patience)) << sim.describe();
  ASSERT_EQ(sim.propose(x, 1, "x-"), errc::none);
  sim.heal();
  ASSERT_TRUE(sim.run_until([&] { return sim.applied_everywhere("x-"); }, patience))
      << sim.describe();
  for (ControllerNodeId id : {a, x, y})
    EXPECT_EQ(sim.node(id).term_at(k), t2) << "node " << id;
  ASSERT_EQ(sim.violation(), "");
}

// ---- randomised schedules -------------------------------------------------------------------

// One random fault, undone by a later one: partitions of every shape, one-way cuts, crashes
// (some in the middle of persisting a Ready) and restarts.
void inject_random_fault(SimCluster& sim, std::mt19937_64& rng) {
  auto pick = [&] {
    return static_cast<ControllerNodeId>(
        std::uniform_int_distribution<size_t>(0, sim.size() - 1)(rng));
  };
  switch (std::uniform_int_distribution<int>(0, 6)(rng)) {
    case 0:
    case 1:
      sim.heal();
      break;
    case 2:
      sim.isolate(pick());
      break;
    case 3: {
      std::vector<bool> side(sim.size());
      for (size_t i = 0; i < side.size(); ++i)
        side[i] = std::bernoulli_distribution(0.5)(rng);
      sim.partition(side);
      break;
    }
    case 4:
      sim.cut(pick(), pick());
      break;
    case 5:
      sim.crash(pick(), std::bernoulli_distribution(0.5)(rng));
      break;
    case 6:
      sim.restart(pick());
      break;
  }
}

// Proposals mostly on a node that believes it leads (a deposed leader cut off with a minority
// too: that is how logs diverge), sometimes on any node (which must refuse unless it leads).
// Returns what went wrong, if anything.
std::string propose_somewhere(SimCluster& sim, std::mt19937_64& rng) {
  std::vector<ControllerNodeId> candidates;
  for (size_t i = 0; i < sim.size(); ++i) {
    auto id = static_cast<ControllerNodeId>(i);
    if (sim.up(id) && (sim.node(id).is_leader() || std::bernoulli_distribution(0.2)(rng)))
      candidates.push_back(id);
  }
  if (candidates.empty())
    return {};
  ControllerNodeId id =
      candidates[std::uniform_int_distribution<size_t>(0, candidates.size() - 1)(rng)];
  bool leads = sim.node(id).is_leader();
  errc result = sim.propose(id, std::uniform_int_distribution<size_t>(1, 3)(rng));
  if (result != (leads ? errc::none : errc::not_controller))
    return "propose on node " + std::to_string(id) + " answered " + std::string(errc_name(result));
  return {};
}

struct ScheduleResult {
  std::string violation;
  bool recovered = false;
  milliseconds recovery{0};
  std::string state;  // of every node at the end
};

ScheduleResult run_schedule(size_t voters, uint64_t seed, int chaos_steps, SimStats& total) {
  SimOptions options;
  options.voters = voters;
  options.drop = 0.05;
  options.duplicate = 0.03;
  options.slow = 0.05;
  options.propose_on_election = seed % 2 == 0;
  // Half the schedules compact logs now and then, so lagging voters are sent snapshots.
  options.compact = seed % 4 == 1 || seed % 4 == 2 ? 0.002 : 0;
  SimCluster sim(options, seed);
  std::mt19937_64 rng(seed ^ 0x5eed);
  ScheduleResult result;
  for (int step = 0; step < chaos_steps && sim.violation().empty(); ++step) {
    if (std::bernoulli_distribution(0.004)(rng))
      inject_random_fault(sim, rng);
    if (std::bernoulli_distribution(0.03)(rng))
      result.violation = propose_somewhere(sim, rng);
    if (!result.violation.empty())
      return result;
    sim.step();
  }
  // Liveness: healed for good (messages still reordered), a leader must be elected and commit,
  // in half of the schedules with a minority of the voters left down: a majority is enough.
  sim.heal_everything();
  sim.set_loss(0, 0);
  if (seed % 4 < 2) {
    std::vector<ControllerNodeId> ids(voters);
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    for (size_t i = 0; i < (voters - 1) / 2; ++i)
      sim.crash(ids[i], false);
  }
  const RaftTime healed = sim.now();
  const auto limit = 40 * options.election_timeout;
  std::optional<std::pair<ControllerNodeId, int64_t>> proposed_on;
  while (sim.violation().empty() && sim.now() - healed < limit) {
    if (sim.applied_everywhere("final-")) {
      result.recovered = true;
      result.recovery = std::chrono::duration_cast<milliseconds>(sim.now() - healed);
      break;
    }
    std::optional<ControllerNodeId> leader = sim.leader();
    if (leader && (!proposed_on || *proposed_on != std::pair{*leader, sim.node(*leader).term()})) {
      proposed_on = std::pair{*leader, sim.node(*leader).term()};
      sim.propose(*leader, 1, "final-");
    }
    sim.step();
  }
  result.violation = sim.violation();
  result.state = sim.describe();
  const SimStats& s = sim.stats();
  total.elections += s.elections;
  total.committed += s.committed;
  total.truncations += s.truncations;
  total.crashes += s.crashes;
  total.crashes_mid_ready += s.crashes_mid_ready;
  total.messages += s.messages;
  total.lease_checks += s.lease_checks;
  total.compactions += s.compactions;
  total.snapshots_installed += s.snapshots_installed;
  return result;
}

TEST(RaftSimulation, RandomSchedulesKeepRaftSafeAndRecover) {
  constexpr int kSchedulesPerSize = 100;
  constexpr int kChaosSteps = 3000;  // milliseconds: 60 election timeouts
  SimStats total;
  milliseconds slowest_recovery{0};
  for (size_t voters : {3u, 5u}) {
    for (uint64_t seed = 1; seed <= kSchedulesPerSize; ++seed) {
      ScheduleResult r = run_schedule(voters, seed, kChaosSteps, total);
      ASSERT_EQ(r.violation, "") << "voters=" << voters << " seed=" << seed;
      ASSERT_TRUE(r.recovered) << "no commit after healing: voters=" << voters << " seed=" << seed
                               << r.state;
      slowest_recovery = std::max(slowest_recovery, r.recovery);
    }
  }
  // The schedules must actually exercise what is checked.
  EXPECT_GT(total.elections, 4 * kSchedulesPerSize);
  EXPECT_GT(total.committed, 50 * kSchedulesPerSize);
  EXPECT_GT(total.truncations, kSchedulesPerSize / 4);
  EXPECT_GT(total.crashes_mid_ready, kSchedulesPerSize / 4);
  EXPECT_GT(total.lease_checks, 1000 * kSchedulesPerSize);
  EXPECT_GT(total.compactions, kSchedulesPerSize);
  EXPECT_GT(total.snapshots_installed, kSchedulesPerSize / 10);
  std::printf(
      "simulation: %lld elections, %lld entries committed, %lld truncations, %lld crashes "
      "(%lld mid-Ready), %lld messages, %lld events under a read lease, %lld compactions, %lld "
      "snapshots installed; slowest recovery %lld ms\n",
      static_cast<long long>(total.elections), static_cast<long long>(total.committed),
      static_cast<long long>(total.truncations), static_cast<long long>(total.crashes),
      static_cast<long long>(total.crashes_mid_ready), static_cast<long long>(total.messages),
      static_cast<long long>(total.lease_checks), static_cast<long long>(total.compactions),
      static_cast<long long>(total.snapshots_installed),
      static_cast<long long>(slowest_recovery.count()));
}

}  // namespace
}  // namespace faultline::cluster
