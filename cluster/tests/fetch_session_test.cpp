// Replication fetch sessions (replication/fetch_session.h; ARCHITECTURE.md §2 item 2): the
// leader's cache, the follower's builder, and the two together against the rule that matters —
// after every request the leader serves exactly the partitions, with exactly the states
// (known high watermark included), that a sessionless request would have carried.
#include "faultline/cluster/replication/fetch_session.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace faultline::cluster {
namespace {

const BrokerId kFollower{2};
constexpr int64_t kBrokerEpoch = 40;

TopicPartition tp(int32_t i) {
  return {"orders", PartitionIndex{i}};
}

ReplicaFetchPartition part(int32_t i, int64_t fetch_offset = 0, int64_t known_hw = 0,
                           int32_t leader_epoch = 3) {
  return {tp(i), leader_epoch, fetch_offset, leader_epoch, known_hw};
}

ReplicaFetchRequest request(int32_t session_id, int32_t session_epoch,
                            std::vector<ReplicaFetchPartition> partitions,
                            std::vector<TopicPartition> forgotten = {}) {
  ReplicaFetchRequest r;
  r.replica_id = kFollower.value();
  r.broker_epoch = kBrokerEpoch;
  r.session_id = session_id;
  r.session_epoch = session_epoch;
  r.partitions = std::move(partitions);
  r.forgotten = std::move(forgotten);
  return r;
}

// The served partitions keyed by partition (their order rotates).
std::map<TopicPartition, ReplicaFetchPartition> by_tp(const std::vector<ReplicaFetchPartition>& v) {
  std::map<TopicPartition, ReplicaFetchPartition> m;
  for (const auto& p : v)
    EXPECT_TRUE(m.emplace(p.tp, p).second) << "served twice: " << fmt::format("{}", p.tp);
  return m;
}

ReplicaFetchPartitionResponse answer(int32_t i, int64_t high_watermark, errc error = errc::none) {
  ReplicaFetchPartitionResponse a;
  a.tp = tp(i);
  a.error = error;
  a.high_watermark = error == errc::none ? high_watermark : -1;
  return a;
}

// ---- leader: FetchSessionCache -----------------------------------------------------------------

TEST(FetchSessionCache, OpeningServesEveryPartitionAndNamesTheSession) {
  FetchSessionCache cache(7);
  auto r = cache.resolve(request(0, kFetchSessionOpen, {part(0, 10, 5), part(1, 20, 20)}));
  ASSERT_EQ(r.error, errc::none);
  EXPECT_NE(r.session_id, 0);
  EXPECT_EQ(cache.session_id(kFollower), r.session_id);
  EXPECT_EQ(r.partitions, (std::vector{part(0, 10, 5), part(1, 20, 20)}));
  EXPECT_EQ(cache.session_partitions(kFollower), 2u);
}

TEST(FetchSessionCache, SessionlessFetchServesTheRequestAndKeepsNothing) {
  FetchSessionCache cache;
  auto open = cache.resolve(request(0, kFetchSessionOpen, {part(0)}));
  auto r = cache.resolve(request(0, kFetchSessionless, {part(1, 4), part(2, 9)}));
  ASSERT_EQ(r.error, errc::none);
  EXPECT_EQ(r.session_id, 0);
  EXPECT_EQ(r.partitions, (std::vector{part(1, 4), part(2, 9)}));
  EXPECT_EQ(cache.size(), 0u);  // the follower left its session
  EXPECT_EQ(cache.resolve(request(open.session_id, 1, {})).error, errc::fetch_session_id_not_found);
}

TEST(FetchSessionCache, IncrementalRequestUpsertsAndServesTheWholeSession) {
  FetchSessionCache cache;
  auto open =
      cache.resolve(request(0, kFetchSessionOpen, {part(0, 10, 5), part(1, 20, 20), part(2)}));
  // Partition 1 moved on, partition 3 joined, the others are as the leader holds them.
  auto r = cache.resolve(request(open.session_id, 1, {part(1, 25, 20), part(3, 7, 7)}));
  ASSERT_EQ(r.error, errc::none);
  EXPECT_EQ(r.session_id, open.session_id);
  EXPECT_EQ(r.session_epoch, 1);
  EXPECT_EQ(by_tp(r.partitions), by_tp({part(0, 10, 5), part(1, 25, 20), part(2), part(3, 7, 7)}));
  // An empty incremental request (an idle follower) still serves, and so checks, every partition.
  auto idle = cache.resolve(request(open.session_id, 2, {}));
  ASSERT_EQ(idle.error, errc::none);
  EXPECT_EQ(by_tp(idle.partitions), by_tp(r.partitions));
}

TEST(FetchSessionCache, ForgottenPartitionsLeaveTheSession) {
  FetchSessionCache cache;
  auto open = cache.resolve(request(0, kFetchSessionOpen, {part(0), part(1), part(2), part(3)}));
  auto r = cache.resolve(request(open.session_id, 1, {}, {tp(0), tp(2), tp(9)}));  // 9: unknown
  ASSERT_EQ(r.error, errc::none);
  EXPECT_EQ(by_tp(r.partitions), by_tp({part(1), part(3)}));
  EXPECT_EQ(cache.held(kFollower, tp(0)), nullptr);
  // Forgotten and sent again in one request (left and came back): it stays, with the new state.
  r = cache.resolve(request(open.session_id, 2, {part(1, 50)}, {tp(1)}));
  EXPECT_EQ(by_tp(r.partitions), by_tp({part(1, 50), part(3)}));
  // Forgotten, then added back by a later request.
  cache.resolve(request(open.session_id, 3, {}, {tp(3)}));
  r = cache.resolve(request(open.session_id, 4, {part(3, 8)}));
  EXPECT_EQ(by_tp(r.partitions), by_tp({part(1, 50), part(3, 8)}));
}

// What faultline_fetch_session_partitions exports: every session's partitions, summed.
TEST(FetchSessionCache, CachedPartitionsSumEverySession) {
  FetchSessionCache cache;
  EXPECT_EQ(cache.cached_partitions(), 0u);
  auto open = cache.resolve(request(0, kFetchSessionOpen, {part(0), part(1), part(2)}));
  ReplicaFetchRequest other = request(0, kFetchSessionOpen, {part(0), part(5)});
  other.replica_id = 3;
  cache.resolve(other);
  EXPECT_EQ(cache.cached_partitions(), 5u);
  cache.resolve(request(open.session_id, 1, {part(7)}, {tp(0), tp(1)}));  // +1, -2
  EXPECT_EQ(cache.cached_partitions(), 4u);
  cache.drop(kFollower);
  EXPECT_EQ(cache.cached_partitions(), 2u);
}

TEST(FetchSessionCache, RefusedRequestsServeNothingAndLeaveTheSessionForAFullReopen) {
  struct Case {
    std::string name;
    int32_t session_id_delta;  // added to the open session's id
    int32_t session_epoch;
    int64_t broker_epoch;
    int32_t replica_id;
    errc expected;
  };
  const std::vector<Case> cases = {
      {"unknown id", 1, 1, kBrokerEpoch, kFollower.value(), errc::fetch_session_id_not_found},
      {"another follower's id", 0, 1, kBrokerEpoch, 5, errc::fetch_session_id_not_found},
      {"follower restarted", 0, 1, kBrokerEpoch + 1, kFollower.value(),
       errc::fetch_session_id_not_found},
      {"epoch replayed", 0, 0 + 2, kBrokerEpoch, kFollower.value(),
       errc::invalid_fetch_session_epoch},  // next is 1 after opening; 2 skips one
      {"epoch far ahead", 0, 1000, kBrokerEpoch, kFollower.value(),
       errc::invalid_fetch_session_epoch},
      {"epoch below zero", 0, -7, kBrokerEpoch, kFollower.value(),
       errc::invalid_fetch_session_epoch},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    FetchSessionCache cache;
    auto open = cache.resolve(request(0, kFetchSessionOpen, {part(0, 10, 10), part(1)}));
    auto bad =
        request(open.session_id + c.session_id_delta, c.session_epoch, {part(0, 99)}, {tp(1)});
    bad.broker_epoch = c.broker_epoch;
    bad.replica_id = c.replica_id;
    auto r = cache.resolve(bad);
    EXPECT_EQ(r.error, c.expected) << errc_name(r.error);
    EXPECT_TRUE(r.partitions.empty());
    // The refused request changed nothing: the session still holds what it held.
    ASSERT_NE(cache.held(kFollower, tp(0)), nullptr);
    EXPECT_EQ(*cache.held(kFollower, tp(0)), part(0, 10, 10));
    EXPECT_EQ(cache.session_partitions(kFollower), 2u);
    // The follower's answer to a refusal: a full request, which opens a new session.
    auto reopen = cache.resolve(request(0, kFetchSessionOpen, {part(0, 11, 10)}));
    ASSERT_EQ(reopen.error, errc::none);
    EXPECT_NE(reopen.session_id, open.session_id);
    EXPECT_EQ(reopen.partitions, (std::vector{part(0, 11, 10)}));
    EXPECT_EQ(cache.resolve(request(reopen.session_id, 1, {})).partitions,
              (std::vector{part(0, 11, 10)}));
  }
}

TEST(FetchSessionCache, ANewFullRequestReplacesTheFollowersSession) {
  FetchSessionCache cache;
  auto first = cache.resolve(request(0, kFetchSessionOpen, {part(0), part(1)}));
  cache.resolve(request(first.session_id, 1, {}));
  auto second = cache.resolve(request(0, kFetchSessionOpen, {part(2)}));
  EXPECT_NE(second.session_id, first.session_id);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.resolve(request(first.session_id, 2, {})).error,
            errc::fetch_session_id_not_found);
  auto r = cache.resolve(request(second.session_id, 1, {}));
  ASSERT_EQ(r.error, errc::none);
  EXPECT_EQ(r.partitions, (std::vector{part(2)}));
}

TEST(FetchSessionCache, AnsweredHighWatermarksBecomeTheKnownOnes) {
  FetchSessionCache cache;
  auto open = cache.resolve(
      request(0, kFetchSessionOpen, {part(0, 10, 5), part(1, 10, 5), part(2, 10, 5)}));
  // Partition 0 answered HW 10, partition 1 a partition error (no HW), partition 2 not answered.
  cache.on_answered(kFollower, open.session_id, open.session_epoch,
                    {answer(0, 10), answer(1, 0, errc::fenced_leader_epoch)});
  EXPECT_EQ(cache.held(kFollower, tp(0))->known_high_watermark, 10);
  EXPECT_EQ(cache.held(kFollower, tp(1))->known_high_watermark, 5);
  EXPECT_EQ(cache.held(kFollower, tp(2))->known_high_watermark, 5);
  auto r = cache.resolve(request(open.session_id, 1, {}));
  EXPECT_EQ(by_tp(r.partitions).at(tp(0)).known_high_watermark, 10);

  // An answer the session has moved past (a later request was accepted, or the session was
  // replaced while the poll waited) records nothing: that follower will never see it.
  cache.resolve(request(open.session_id, 2, {}));
  cache.on_answered(kFollower, open.session_id, 1, {answer(2, 99)});  // answer to epoch 1
  EXPECT_EQ(cache.held(kFollower, tp(2))->known_high_watermark, 5);
  auto reopened = cache.resolve(request(0, kFetchSessionOpen, {part(2, 10, 5)}));
  cache.on_answered(kFollower, open.session_id, 2, {answer(2, 99)});
  EXPECT_EQ(cache.held(kFollower, tp(2))->known_high_watermark, 5);
  cache.on_answered(kFollower, reopened.session_id, reopened.session_epoch, {answer(2, 12)});
  EXPECT_EQ(cache.held(kFollower, tp(2))->known_high_watermark, 12);
  // Sessionless answers touch nothing.
  cache.on_answered(kFollower, 0, kFetchSessionless, {answer(2, 77)});
  EXPECT_EQ(cache.held(kFollower, tp(2))->known_high_watermark, 12);
}

TEST(FetchSessionCache, ServedOrderRotatesSoABudgetIsSharedFairly) {
  FetchSessionCache cache;
  std::vector<ReplicaFetchPartition> parts;
  for (int32_t i = 0; i < 5; ++i)
    parts.push_back(part(i));
  auto open = cache.resolve(request(0, kFetchSessionOpen, parts));
  std::vector<TopicPartition> firsts{open.partitions.front().tp};
  for (int32_t epoch = 1; epoch <= 4; ++epoch) {
    auto r = cache.resolve(request(open.session_id, epoch, {}));
    EXPECT_EQ(by_tp(r.partitions).size(), 5u);
    firsts.push_back(r.partitions.front().tp);
  }
  std::sort(firsts.begin(), firsts.end());
  EXPECT_EQ(std::unique(firsts.begin(), firsts.end()), firsts.end())
      << "every partition leads once";
}

TEST(FetchSessionCache, IsBoundedAndEvictsTheLeastRecentlyUsed) {
  FetchSessionCache cache(0, 2);
  auto open_for = [&](int32_t follower) {
    auto r = request(0, kFetchSessionOpen, {part(0)});
    r.replica_id = follower;
    return cache.resolve(r).session_id;
  };
  int32_t s1 = open_for(1);
  int32_t s2 = open_for(2);
  auto use1 = request(s1, 1, {});
  use1.replica_id = 1;
  ASSERT_EQ(cache.resolve(use1).error, errc::none);  // 2 is now the least recently used
  open_for(3);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.session_id(BrokerId{1}), s1);
  EXPECT_EQ(cache.session_id(BrokerId{2}), 0);
  EXPECT_NE(s2, 0);
}

TEST(FetchSessionCache, EpochsSkipTheReservedValuesWhenTheyWrap) {
  struct Case {
    int32_t epoch, next;
  };
  for (auto [epoch, next] : std::vector<Case>{
           {kFetchSessionOpen, 1}, {1, 2}, {41, 42}, {INT32_MAX, 1}, {kFetchSessionless, 1}}) {
    EXPECT_EQ(next_fetch_session_epoch(epoch), next) << epoch;
  }
}

// ---- follower: FetchSessionBuilder -------------------------------------------------------------

ReplicaFetchResponse opened(int32_t session_id, std::vector<ReplicaFetchPartitionResponse> a = {}) {
  ReplicaFetchResponse r;
  r.session_id = session_id;
  r.partitions = std::move(a);
  return r;
}

TEST(FetchSessionBuilder, OpensWithEverythingThenSendsOnlyChanges) {
  FetchSessionBuilder b;
  ReplicaFetchRequest req;
  b.build({part(0, 10, 10), part(1, 20, 20), part(2, 30, 30)}, req);
  EXPECT_EQ(req.session_id, 0);
  EXPECT_EQ(req.session_epoch, kFetchSessionOpen);
  EXPECT_EQ(req.partitions.size(), 3u);
  EXPECT_TRUE(req.forgotten.empty());
  b.on_response(opened(77));
  EXPECT_EQ(b.session_id(), 77);

  struct Step {
    std::string name;
    std::vector<ReplicaFetchPartition> wanted;
    std::vector<ReplicaFetchPartition> sent;
    std::vector<TopicPartition> forgotten;
  };
  const std::vector<Step> steps = {
      {"idle", {part(0, 10, 10), part(1, 20, 20), part(2, 30, 30)}, {}, {}},
      {"one appended", {part(0, 10, 10), part(1, 25, 20), part(2, 30, 30)}, {part(1, 25, 20)}, {}},
      {"new leader epoch",
       {part(0, 10, 10, 4), part(1, 25, 20), part(2, 30, 30)},
       {part(0, 10, 10, 4)},
       {}},
      {"one in backoff", {part(0, 10, 10, 4), part(2, 30, 30)}, {}, {tp(1)}},
      {"back, and one new",
       {part(0, 10, 10, 4), part(1, 25, 20), part(2, 30, 30), part(3)},
       {part(1, 25, 20), part(3)},
       {}},
  };
  int32_t epoch = 1;
  for (const auto& s : steps) {
    SCOPED_TRACE(s.name);
    b.build(s.wanted, req);
    EXPECT_EQ(req.session_id, 77);
    EXPECT_EQ(req.session_epoch, epoch);
    EXPECT_EQ(req.partitions, s.sent);
    EXPECT_EQ(req.forgotten, s.forgotten);
    for (const auto& w : s.wanted) {
      ASSERT_NE(b.sent(w.tp), nullptr);
      EXPECT_EQ(*b.sent(w.tp), w);
    }
    b.on_response(opened(77));
    ++epoch;
  }
  EXPECT_EQ(b.sent(tp(9)), nullptr);
}

TEST(FetchSessionBuilder, RecordsTheAnsweredHighWatermarkAsTheLeaderDoes) {
  FetchSessionBuilder b;
  ReplicaFetchRequest req;
  b.build({part(0, 10, 5), part(1, 10, 5), part(2, 10, 5)}, req);
  // HW 10 for partition 0 (the follower holds 10 afterwards: nothing to resend), HW 12 for
  // partition 1 although the follower's log ends at 10 (it holds min(12, 10) = 10: resend, so the
  // leader learns it and keeps answering), an error for partition 2 (nothing recorded).
  b.on_response(
      opened(5, {answer(0, 10), answer(1, 12), answer(2, 0, errc::not_leader_or_follower)}));
  EXPECT_EQ(b.sent(tp(0))->known_high_watermark, 10);
  EXPECT_EQ(b.sent(tp(1))->known_high_watermark, 12);
  EXPECT_EQ(b.sent(tp(2))->known_high_watermark, 5);
  b.build({part(0, 10, 10), part(1, 10, 10), part(2, 10, 5)}, req);
  EXPECT_EQ(req.partitions, (std::vector{part(1, 10, 10)}));
}

TEST(FetchSessionBuilder, AnyFailureMakesTheNextRequestFull) {
  struct Case {
    std::string name;
    std::function<void(FetchSessionBuilder&)> fail;
  };
  auto answered = [](errc e, int32_t session_id) {
    return [=](FetchSessionBuilder& b) {
      ReplicaFetchResponse r;
      r.error = e;
      r.session_id = session_id;
      b.on_response(r);
    };
  };
  const std::vector<Case> cases = {
      {"no answer", [](FetchSessionBuilder& b) { b.reset(); }},
      {"unknown session", answered(errc::fetch_session_id_not_found, 0)},
      {"wrong epoch", answered(errc::invalid_fetch_session_epoch, 0)},
      {"storage error", answered(errc::storage_error, 0)},
      {"another session's answer", answered(errc::none, 12)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    FetchSessionBuilder b;
    ReplicaFetchRequest req;
    b.build({part(0), part(1)}, req);
    b.on_response(opened(9));
    b.build({part(0), part(1, 3)}, req);
    ASSERT_EQ(req.session_epoch, 1);
    c.fail(b);
    EXPECT_EQ(b.session_id(), 0);
    b.build({part(0), part(1, 3)}, req);
    EXPECT_EQ(req.session_id, 0);
    EXPECT_EQ(req.session_epoch, kFetchSessionOpen);
    EXPECT_EQ(req.partitions, (std::vector{part(0), part(1, 3)}));
    EXPECT_TRUE(req.forgotten.empty());
  }
}

TEST(FetchSessionBuilder, ALeaderWithoutSessionsGetsFullRequestsEveryTime) {
  FetchSessionBuilder b;
  ReplicaFetchRequest req;
  for (int i = 0; i < 3; ++i) {
    b.build({part(0), part(1)}, req);
    EXPECT_EQ(req.session_epoch, kFetchSessionOpen);
    EXPECT_EQ(req.partitions.size(), 2u);
    b.on_response(opened(0));  // answered, but no session kept
  }
}

// ---- both halves
// ---------------------------------------------------------------------------------

// A follower and a leader exchange requests for a while: partitions append, change epochs, go into
// backoff and come back, the leader's HW moves, answers are lost (the follower resets), arrive for
// a replaced session, or are not applied. After every request the leader must serve exactly what
// the follower wanted, known HW included: otherwise it could skip telling it of a new HW.
TEST(FetchSession, LeaderAlwaysServesWhatASessionlessRequestWouldCarry) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(seed);
    std::mt19937_64 rng(seed);
    auto chance = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
    constexpr int32_t kPartitions = 12;
    struct Follower {
      int64_t log_end = 0, known_hw = 0;
      int32_t epoch = 1;
      bool wanted = true;
    };
    std::vector<Follower> f(kPartitions);
    std::vector<int64_t> leader_hw(kPartitions, 0), leader_end(kPartitions, 0);
    FetchSessionCache cache(seed);
    FetchSessionBuilder builder;

    for (int round = 0; round < 400; ++round) {
      // The world moves.
      for (int32_t i = 0; i < kPartitions; ++i) {
        if (chance(20))
          leader_end[i] += 1 + static_cast<int64_t>(rng() % 3);
        if (chance(30))
          leader_hw[i] = std::min(leader_end[i], std::max(leader_hw[i], f[i].log_end));
        if (chance(3))
          ++f[i].epoch;
        if (chance(5))
          f[i].wanted = !f[i].wanted;  // backoff, or moved to another fetcher, and back
      }
      std::vector<ReplicaFetchPartition> wanted;
      for (int32_t i = 0; i < kPartitions; ++i) {
        if (f[i].wanted)
          wanted.push_back({tp(i), f[i].epoch, f[i].log_end, f[i].epoch, f[i].known_hw});
      }
      if (wanted.empty())
        continue;
      ReplicaFetchRequest req;
      req.replica_id = kFollower.value();
      req.broker_epoch = kBrokerEpoch;
      builder.build(wanted, req);
      auto wire = req;
      if (chance(3))
        cache.resolve(request(0, kFetchSessionOpen, {part(0)}));  // a stale full request races
      auto served = cache.resolve(wire);
      ReplicaFetchResponse resp;
      resp.session_id = served.session_id;
      if (served.error != errc::none) {
        resp.error = served.error;
        builder.on_response(resp);
        continue;
      }
      // The invariant.
      ASSERT_EQ(by_tp(served.partitions), by_tp(wanted)) << "round " << round;

      // The leader answers records, a new HW, or an error; the follower applies some.
      for (const auto& p : served.partitions) {
        int32_t i = p.tp.partition.value();
        ReplicaFetchPartitionResponse a;
        a.tp = p.tp;
        if (chance(5)) {
          a.error = errc::not_leader_or_follower;
        } else {
          a.high_watermark = leader_hw[i];
          a.log_end_offset = std::min(leader_end[i], p.fetch_offset + 1 + int64_t(rng() % 4));
          if (a.log_end_offset <= p.fetch_offset && a.high_watermark == p.known_high_watermark)
            continue;  // nothing to say
        }
        resp.partitions.push_back(a);
      }
      cache.on_answered(kFollower, served.session_id, served.session_epoch, resp.partitions);
      if (chance(4)) {
        builder.reset();  // the answer was lost on the way back
        continue;
      }
      builder.on_response(resp);
      for (const auto& a : resp.partitions) {
        int32_t i = a.tp.partition.value();
        if (a.error != errc::none) {
          f[i].wanted = false;  // backoff
          continue;
        }
        if (chance(5))
          continue;  // dropped by the follower (its state moved meanwhile)
        f[i].log_end = std::max(f[i].log_end, a.log_end_offset);
        f[i].known_hw = std::min(a.high_watermark, f[i].log_end);
      }
    }
  }
}

}  // namespace
}  // namespace faultline::cluster
