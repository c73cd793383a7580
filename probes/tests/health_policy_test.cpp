// The health policy on recorded observation sequences. Reachability timelines are written one
// string per broker, one character per round (1 s apart):
//   '.' probe succeeded   'x' probe failed   '-' no probe of that broker this round
// and the expected decisions as "r<round> <action> <broker> <reason>".
#include "faultline/probes/health_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

// Readable broker ids in gtest failure messages (found by ADL next to the type).
namespace faultline::cluster {
void PrintTo(BrokerId b, std::ostream* os) {
  *os << "broker " << b.value();
}
}  // namespace faultline::cluster

namespace faultline::probes {
void PrintTo(Action a, std::ostream* os) {
  *os << to_string(a);
}
void PrintTo(Reason r, std::ostream* os) {
  *os << to_string(r);
}
void PrintTo(HeldBack h, std::ostream* os) {
  *os << to_string(h);
}
void PrintTo(const Decision& d, std::ostream* os) {
  *os << d.to_string();
}

namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr TimePoint kStart = TimePoint{} + 1h;
constexpr auto kInterval = 1s;

TimePoint at_round(size_t r) {
  return kStart + kInterval * static_cast<int64_t>(r);
}

std::vector<BrokerId> brokers(int32_t n) {
  std::vector<BrokerId> ids;
  for (int32_t b = 1; b <= n; ++b)
    ids.emplace_back(b);
  return ids;
}

std::string describe(size_t round, const Decision& d) {
  return fmt::format("r{} {} {} {}", round, to_string(d.action), d.broker, to_string(d.reason));
}

ProbeRound reach_round(size_t r, const std::map<int32_t, std::string>& timeline) {
  ProbeRound round{.now = at_round(r), .reachability = {}, .storage = {}};
  for (const auto& [broker, row] : timeline) {
    if (r >= row.size() || row[r] == '-')
      continue;
    const bool ok = row[r] == '.';
    round.reachability.push_back(
        {BrokerId{broker}, ok, ok ? 800us : 500ms, ok ? "" : "connect: timed out", at_round(r)});
  }
  return round;
}

// Plays the timeline through the policy; returns every decision, described.
std::vector<std::string> play(HealthPolicy& policy, const std::map<int32_t, std::string>& timeline,
                              size_t first_round = 0) {
  size_t rounds = 0;
  for (const auto& [broker, row] : timeline)
    rounds = std::max(rounds, row.size());
  std::vector<std::string> seen;
  for (size_t r = 0; r < rounds; ++r) {
    for (const auto& d : policy.step(reach_round(first_round + r, timeline)).decisions)
      seen.push_back(describe(first_round + r, d));
  }
  return seen;
}

HealthConfig config(int32_t k, int32_t m, std::chrono::milliseconds hold) {
  HealthConfig c;
  c.failures_to_demote = k;
  c.successes_to_promote = m;
  c.recovery_hold = hold;
  return c;
}

// ---- reachability hysteresis ---------------------------------------------------------------

struct ReachCase {
  const char* name;
  HealthConfig config;
  std::map<int32_t, std::string> timeline;  // broker -> rounds
  std::vector<std::string> expected;
};

class ReachabilityTest : public ::testing::TestWithParam<ReachCase> {};

TEST_P(ReachabilityTest, DecisionsMatchTheTimeline) {
  const auto& c = GetParam();
  HealthPolicy policy(c.config, brokers(3));
  EXPECT_EQ(play(policy, c.timeline), c.expected);
}

const HealthConfig kK3M3Hold5 = config(3, 3, 5s);

INSTANTIATE_TEST_SUITE_P(
    Hysteresis, ReachabilityTest,
    ::testing::Values(
        ReachCase{"k_minus_1_failures_decide_nothing",
                  kK3M3Hold5,
                  {{1, "xx.........."}, {2, "............"}, {3, "............"}},
                  {}},
        ReachCase{"k_failures_demote",
                  kK3M3Hold5,
                  {{1, "..xxx"}, {2, "....."}, {3, "....."}},
                  {"r4 demote 1 unreachable"}},
        ReachCase{"single_dropped_probe_decides_nothing",
                  kK3M3Hold5,
                  {{1, "....x......"}, {2, "..........."}, {3, "..........."}},
                  {}},
        ReachCase{"one_failure_per_broker_spread_out_decides_nothing",
                  kK3M3Hold5,
                  {{1, "x....x....x"}, {2, "..x....x..."}, {3, "....x....x."}},
                  {}},
        // A probe that never ran is no evidence either way: it neither breaks nor extends a streak.
        ReachCase{"missing_probe_neither_breaks_nor_counts",
                  kK3M3Hold5,
                  {{1, "xx-x"}, {2, "...."}, {3, "...."}},
                  {"r3 demote 1 unreachable"}},
        ReachCase{
            "alternating_results_never_demote",
            kK3M3Hold5,
            {{1, "x.x.x.x.x.x.x.x.x.x."}, {2, "...................."}, {3, "...................."}},
            {}},
        ReachCase{"two_failures_then_success_restart_the_count",
                  kK3M3Hold5,
                  {{1, "xx.xx.xx.xx."}, {2, "............"}, {3, "............"}},
                  {}},
        // Demoted at r2 (t=2 s); 3 successes by r5, but the hold of 5 s since the last bad sign
        // (the demotion at r2) ends at r7.
        ReachCase{"recovery_waits_for_the_hold_time",
                  kK3M3Hold5,
                  {{1, "xxx........."}, {2, "............"}, {3, "............"}},
                  {"r2 demote 1 unreachable", "r7 promote 1 recovered"}},
        // With a 1 s hold the M successes are what binds: the 5th success is at r7.
        ReachCase{"recovery_waits_for_m_successes",
                  config(3, 5, 1s),
                  {{1, "xxx........."}, {2, "............"}, {3, "............"}},
                  {"r2 demote 1 unreachable", "r7 promote 1 recovered"}},
        // A failure during recovery restarts the hold (r7 + 5 s).
        ReachCase{
            "failure_during_recovery_restarts_it",
            kK3M3Hold5,
            {{1, "xxx....x............"}, {2, "...................."}, {3, "...................."}},
            {"r2 demote 1 unreachable", "r12 promote 1 recovered"}},
        ReachCase{"flapping_demoted_broker_stays_demoted",
                  kK3M3Hold5,
                  {{1, "xxx.x.x.x.x.x.x.x.x.x.x.x"},
                   {2, "........................."},
                   {3, "........................."}},
                  {"r2 demote 1 unreachable"}},
        ReachCase{
            "fails_again_after_promotion_is_demoted_again",
            kK3M3Hold5,
            {{1, "xxx.......xxx"}, {2, "............."}, {3, "............."}},
            {"r2 demote 1 unreachable", "r7 promote 1 recovered", "r12 demote 1 unreachable"}},
        // The promotion due at r7 waits: at r7 every probe failed, so the prober trusts nothing
        // it sees that round; the failure does not count against broker 1 either.
        ReachCase{"no_promotion_in_a_round_the_prober_cannot_trust",
                  kK3M3Hold5,
                  {{1, "xxx....x.."}, {2, ".......x.."}, {3, ".......x.."}},
                  {"r2 demote 1 unreachable", "r8 promote 1 recovered"}},
        ReachCase{"k_equals_1_demotes_on_first_failure",
                  config(1, 1, 0s),
                  {{1, ".x."}, {2, "..."}, {3, "..."}},
                  {"r1 demote 1 unreachable", "r2 promote 1 recovered"}}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- cap and last broker ----------------------------------------------------------------------

TEST(HealthPolicyCap, DemotesAtMostMaxDemotedAndTheWorstFirst) {
  auto c = kK3M3Hold5;
  c.max_demoted = 1;
  HealthPolicy policy(c, brokers(5));
  // Broker 2 starts failing one round before broker 1: it has the longer streak when both qualify.
  std::map<int32_t, std::string> timeline = {
      {1, ".xxxxx"}, {2, "xxxxxx"}, {3, "......"}, {4, "......"}, {5, "......"}};
  EXPECT_THAT(play(policy, timeline), ElementsAre("r2 demote 2 unreachable"));
  EXPECT_THAT(policy.demoted_by_policy(), ElementsAre(BrokerId{2}));

  // Broker 1 is held back, with the reason, every round while the cap is full.
  auto out = policy.step(reach_round(6, {{1, "------x"}, {2, "------x"}, {3, "------."}}));
  ASSERT_EQ(out.held.size(), 1u);
  EXPECT_EQ(out.held[0].broker, BrokerId{1});
  EXPECT_EQ(out.held[0].why, HeldBack::cap_reached);
  EXPECT_THAT(out.held[0].to_string(), HasSubstr("why=cap_reached"));
}

TEST(HealthPolicyCap, APromotionFreesTheSlotForTheNextSickBroker) {
  auto c = kK3M3Hold5;
  c.max_demoted = 1;
  HealthPolicy policy(c, brokers(4));
  // Broker 1 recovers from r3; broker 3 fails from r3 on and waits for the slot.
  std::map<int32_t, std::string> timeline = {
      {1, "xxx.........."}, {2, "............."}, {3, "...xxxxxxxxxx"}, {4, "............."}};
  EXPECT_THAT(
      play(policy, timeline),
      ElementsAre("r2 demote 1 unreachable", "r7 promote 1 recovered", "r7 demote 3 unreachable"));
}

TEST(HealthPolicyCap, OperatorDemotionsCountAgainstTheCap) {
  auto c = kK3M3Hold5;
  c.max_demoted = 1;
  HealthPolicy policy(c, brokers(3));
  const std::vector<BrokerId> operator_demoted = {BrokerId{3}};
  policy.set_demoted_elsewhere(operator_demoted, at_round(0));
  EXPECT_THAT(play(policy, {{1, "xxxxx"}, {2, "....."}, {3, "....."}}), IsEmpty());

  // The operator promotes broker 3: the slot is free and broker 1 is demoted at once.
  EXPECT_THAT(policy.set_demoted_elsewhere({}, at_round(5)), IsEmpty());  // not the policy's
  EXPECT_THAT(play(policy, {{1, "x"}, {2, "."}, {3, "."}}, 5),
              ElementsAre("r5 demote 1 unreachable"));
}

TEST(HealthPolicyCap, NeverDemotesTheLastNonDemotedBroker) {
  auto c = kK3M3Hold5;
  c.max_demoted = 5;
  HealthPolicy policy(c, brokers(2));
  // Broker 1 is demoted; then broker 2 fails while broker 1 is no longer probed (one failure a
  // round stays under vantage_min_failures, so the guard stays quiet).
  auto seen = play(policy, {{1, "xxx------"}, {2, "...xxxxxx"}});
  EXPECT_THAT(seen, ElementsAre("r2 demote 1 unreachable"));
  auto out = policy.step(reach_round(9, {{2, "---------x"}}));
  EXPECT_THAT(out.decisions, IsEmpty());
  ASSERT_EQ(out.held.size(), 1u);
  EXPECT_EQ(out.held[0].broker, BrokerId{2});
  EXPECT_EQ(out.held[0].why, HeldBack::last_healthy_broker);
}

TEST(HealthPolicyCap, CapZeroDecidesNothing) {
  auto c = kK3M3Hold5;
  c.max_demoted = 0;
  HealthPolicy policy(c, brokers(3));
  EXPECT_THAT(play(policy, {{1, "xxxxxx"}, {2, "......"}, {3, "......"}}), IsEmpty());
}

// ---- vantage-point guard ------------------------------------------------------------------------

TEST(HealthPolicyVantage, EveryBrokerFailingAtOnceDemotesNobody) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));
  std::map<int32_t, std::string> timeline = {
      {1, "xxxxxxxxxx"}, {2, "xxxxxxxxxx"}, {3, "xxxxxxxxxx"}};
  for (size_t r = 0; r < 10; ++r) {
    auto out = policy.step(reach_round(r, timeline));
    EXPECT_THAT(out.decisions, IsEmpty()) << "round " << r;
    EXPECT_TRUE(out.vantage_point_suspect) << "round " << r;
    EXPECT_EQ(out.failed_this_round, 3);
  }
  for (const auto& h : policy.health())
    EXPECT_FALSE(h.unreachable) << h.broker.value();
}

TEST(HealthPolicyVantage, FailureStreaksRestartAfterTheProberWasCutOff) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));
  // Broker 1 fails twice, then the prober loses its link for three rounds (everyone fails), then
  // broker 1 fails once more: 2 + 1 failures seen from a working vantage point is still < K.
  EXPECT_THAT(play(policy, {{1, "xxxxxx..."}, {2, "..xxx...."}, {3, "..xxx...."}}), IsEmpty());
  // Without the outage in between, the same three failures of broker 1 demote it.
  HealthPolicy control(kK3M3Hold5, brokers(3));
  EXPECT_THAT(play(control, {{1, "xxx"}, {2, "..."}, {3, "..."}}),
              ElementsAre("r2 demote 1 unreachable"));
}

TEST(HealthPolicyVantage, OnlyTheBrokersProbedThisRoundCount) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));
  // Only two brokers were probed this round, and both failed: that is "all of them".
  auto out = policy.step(reach_round(0, {{1, "x"}, {2, "x"}, {3, "-"}}));
  EXPECT_TRUE(out.vantage_point_suspect);
  EXPECT_EQ(out.probed_this_round, 2);
}

struct FractionCase {
  double fraction;
  int32_t failing_of_4;
  bool guard;
};

class VantageFractionTest : public ::testing::TestWithParam<FractionCase> {};

TEST_P(VantageFractionTest, GuardFiresAtTheConfiguredFraction) {
  auto c = kK3M3Hold5;
  c.vantage_guard_fraction = GetParam().fraction;
  c.max_demoted = 4;
  HealthPolicy policy(c, brokers(4));
  std::map<int32_t, std::string> timeline;
  for (int32_t b = 1; b <= 4; ++b)
    timeline[b] = b <= GetParam().failing_of_4 ? "xxx" : "...";
  RoundOutcome last;
  size_t demoted = 0;
  for (size_t r = 0; r < 3; ++r) {
    last = policy.step(reach_round(r, timeline));
    demoted += last.decisions.size();
  }
  EXPECT_EQ(last.vantage_point_suspect, GetParam().guard);
  // With the guard quiet, every failing broker is demoted (the cap is high enough).
  EXPECT_EQ(demoted, GetParam().guard ? 0u : static_cast<size_t>(GetParam().failing_of_4));
}

INSTANTIATE_TEST_SUITE_P(Fractions, VantageFractionTest,
                         ::testing::Values(FractionCase{1.0, 3, false}, FractionCase{1.0, 4, true},
                                           FractionCase{0.75, 3, true},
                                           FractionCase{0.75, 2, false}, FractionCase{0.5, 2, true},
                                           FractionCase{0.5, 1, false}));

// ---- storage ------------------------------------------------------------------------------------

// Feeds `rounds` rounds in which every broker reports one sample of the given latency and every
// reachability probe succeeds. Returns the decisions, described.
std::vector<std::string> play_storage(HealthPolicy& policy,
                                      const std::map<int32_t, std::chrono::microseconds>& latency,
                                      size_t first_round, size_t rounds) {
  std::vector<std::string> seen;
  for (size_t r = first_round; r < first_round + rounds; ++r) {
    ProbeRound round{.now = at_round(r), .reachability = {}, .storage = {}};
    for (const auto& [broker, l] : latency) {
      round.reachability.push_back({BrokerId{broker}, true, 700us, "", at_round(r)});
      round.storage.push_back({BrokerId{broker}, l, at_round(r), ""});
    }
    for (const auto& d : policy.step(round).decisions)
      seen.push_back(describe(r, d));
  }
  return seen;
}

struct StorageCase {
  const char* name;
  std::map<int32_t, std::chrono::microseconds> latency;
  std::vector<std::string> expected;
};

class StorageOutlierTest : public ::testing::TestWithParam<StorageCase> {};

TEST_P(StorageOutlierTest, OnlyARealOutlierIsDemoted) {
  HealthConfig c = kK3M3Hold5;  // window 20, 5 samples to judge, factor 5, floor 20 ms
  c.max_demoted = 2;
  HealthPolicy policy(c, brokers(static_cast<int32_t>(GetParam().latency.size())));
  EXPECT_EQ(play_storage(policy, GetParam().latency, 0, 10), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Outliers, StorageOutlierTest,
    ::testing::Values(
        // Judged from the 5th sample (r4) on.
        StorageCase{"one_broker_10x_the_median",
                    {{1, 5ms}, {2, 5ms}, {3, 50ms}},
                    {"r4 demote 3 slow_storage"}},
        StorageCase{"everyone_equally_slow", {{1, 200ms}, {2, 200ms}, {3, 200ms}}, {}},
        StorageCase{"ten_times_but_under_the_floor", {{1, 500us}, {2, 500us}, {3, 5ms}}, {}},
        StorageCase{"four_times_the_median_is_not_enough", {{1, 10ms}, {2, 10ms}, {3, 40ms}}, {}},
        StorageCase{"two_brokers_one_slow", {{1, 4ms}, {2, 400ms}}, {"r4 demote 2 slow_storage"}},
        StorageCase{"slowest_first_when_two_are_slow",
                    {{1, 5ms}, {2, 100ms}, {3, 5ms}, {4, 300ms}, {5, 5ms}},
                    {"r4 demote 4 slow_storage", "r4 demote 2 slow_storage"}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(HealthPolicyStorage, DemotionCarriesTheNumbers) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));
  std::vector<Decision> decisions;
  for (size_t r = 0; r < 5; ++r) {
    ProbeRound round{.now = at_round(r), .reachability = {}, .storage = {}};
    round.storage = {{BrokerId{1}, 4ms, at_round(r), ""},
                     {BrokerId{2}, 6ms, at_round(r), ""},
                     {BrokerId{3}, 60ms, at_round(r), ""}};
    for (auto& d : policy.step(round).decisions)
      decisions.push_back(d);
  }
  ASSERT_EQ(decisions.size(), 1u);
  const Evidence& e = decisions[0].evidence;
  EXPECT_EQ(decisions[0].reason, Reason::slow_storage);
  EXPECT_EQ(controller_reason(decisions[0].reason), "storage-health");
  EXPECT_EQ(e.broker_fsync_median, 60ms);
  EXPECT_EQ(e.cluster_fsync_median, 6ms);
  EXPECT_EQ(e.fsync_threshold, 30ms);  // max(20 ms floor, 5 x 6 ms)
  EXPECT_EQ(e.storage_samples, 5);
  EXPECT_EQ(e.decided_at, at_round(4));

  auto j = decisions[0].to_json();
  EXPECT_EQ(j["action"], "demote");
  EXPECT_EQ(j["broker"], 3);
  EXPECT_EQ(j["reason"], "slow_storage");
  EXPECT_EQ(j["evidence"]["broker_fsync_median_us"], 60000);
  EXPECT_EQ(j["evidence"]["fsync_threshold_us"], 30000);
  EXPECT_THAT(decisions[0].to_string(),
              HasSubstr("demote broker=3 reason=slow_storage failure_streak=0"));
  EXPECT_THAT(decisions[0].to_string(), HasSubstr("fsync_median_ms=60.000 samples=5"));
}

// Rounds of storage reports where broker 3's canary fails ('x') or succeeds ('.') at 5 ms; brokers
// 1 and 2 are healthy throughout.
std::vector<std::string> play_canary_errors(HealthPolicy& policy, const std::string& broker3,
                                            std::vector<Decision>* decisions = nullptr) {
  std::vector<std::string> seen;
  for (size_t r = 0; r < broker3.size(); ++r) {
    ProbeRound round{.now = at_round(r), .reachability = {}, .storage = {}};
    for (int32_t b = 1; b <= 3; ++b) {
      round.reachability.push_back({BrokerId{b}, true, 700us, "", at_round(r)});
      if (b == 3 && broker3[r] == 'x')
        round.storage.push_back({BrokerId{b}, 0us, at_round(r), "fsync: Input/output error"});
      else
        round.storage.push_back({BrokerId{b}, 5ms, at_round(r), ""});
    }
    for (const auto& d : policy.step(round).decisions) {
      seen.push_back(describe(r, d));
      if (decisions)
        decisions->push_back(d);
    }
  }
  return seen;
}

TEST(HealthPolicyStorage, ACanaryThatKeepsFailingIsDemotedAndPromotedOnceItWrites) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));  // 5 failed reports in a row, 5 s hold
  std::vector<Decision> decisions;
  EXPECT_THAT(play_canary_errors(policy, "......xxxxxxxx.............", &decisions),
              ElementsAre("r10 demote 3 slow_storage", "r18 promote 3 recovered"));
  ASSERT_FALSE(decisions.empty());
  EXPECT_EQ(decisions[0].evidence.storage_error_streak, 5);
  EXPECT_EQ(decisions[0].evidence.storage_error, "fsync: Input/output error");
  EXPECT_THAT(decisions[0].to_string(), HasSubstr("storage_error=\"fsync: Input/output error\""));
}

TEST(HealthPolicyStorage, AFewFailedCanaryWritesDoNothing) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));
  EXPECT_THAT(play_canary_errors(policy, "..xxxx.xxxx..x.xxxx......"), IsEmpty());
}

TEST(HealthPolicyStorage, AFewSlowSamplesDoNotMoveTheMedian) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));
  std::vector<std::string> seen;
  for (size_t r = 0; r < 20; ++r) {
    ProbeRound round{.now = at_round(r), .reachability = {}, .storage = {}};
    // Broker 3 hiccups on 4 of 20 samples, each 100x slower.
    auto b3 = (r % 5 == 2) ? 500ms : 5ms;
    round.storage = {{BrokerId{1}, 5ms, at_round(r), ""},
                     {BrokerId{2}, 5ms, at_round(r), ""},
                     {BrokerId{3}, b3, at_round(r), ""}};
    for (const auto& d : policy.step(round).decisions)
      seen.push_back(describe(r, d));
  }
  EXPECT_THAT(seen, IsEmpty());
}

TEST(HealthPolicyStorage, HealedDiskIsPromotedAfterTheHold) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));
  auto seen = play_storage(policy, {{1, 5ms}, {2, 5ms}, {3, 80ms}}, 0, 10);
  EXPECT_THAT(seen, ElementsAre("r4 demote 3 slow_storage"));
  // Healed at r10: the window median falls back once half of the 20 samples are fast (r19); the
  // hold of 5 s after the last slow verdict (r18) ends at r23.
  seen = play_storage(policy, {{1, 5ms}, {2, 5ms}, {3, 5ms}}, 10, 20);
  EXPECT_THAT(seen, ElementsAre("r23 promote 3 recovered"));
}

TEST(HealthPolicyStorage, TooFewSamplesOrBrokersJudgeNothing) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));
  // Four samples each: one short of storage_min_samples.
  EXPECT_THAT(play_storage(policy, {{1, 5ms}, {2, 5ms}, {3, 500ms}}, 0, 4), IsEmpty());
  // Only broker 3 reports: nothing to compare it with.
  HealthPolicy lonely(kK3M3Hold5, brokers(3));
  EXPECT_THAT(play_storage(lonely, {{3, 500ms}}, 0, 10), IsEmpty());
}

TEST(HealthPolicyStorage, OldSamplesAgeOut) {
  auto c = kK3M3Hold5;
  c.storage_max_age = 3s;  // fewer than storage_min_samples rounds fit in the window
  HealthPolicy policy(c, brokers(3));
  EXPECT_THAT(play_storage(policy, {{1, 5ms}, {2, 5ms}, {3, 500ms}}, 0, 10), IsEmpty());
}

// ---- ownership, failures of the controller, bookkeeping --------------------------------------

TEST(HealthPolicyOwnership, NeverPromotesSomeoneElsesDemotion) {
  HealthPolicy policy(config(3, 1, 0s), brokers(3));
  const std::vector<BrokerId> operator_demoted = {BrokerId{2}};
  policy.set_demoted_elsewhere(operator_demoted, at_round(0));
  EXPECT_THAT(play(policy, {{1, "........"}, {2, "........"}, {3, "........"}}), IsEmpty());
  // The controller also lists the policy's own demotion: it stays the policy's to undo.
  auto c = kK3M3Hold5;
  c.max_demoted = 2;
  HealthPolicy own(c, brokers(3));
  EXPECT_THAT(play(own, {{1, "xxx"}, {2, "..."}, {3, "..."}}),
              ElementsAre("r2 demote 1 unreachable"));
  const std::vector<BrokerId> listed = {BrokerId{1}, BrokerId{2}};
  own.set_demoted_elsewhere(listed, at_round(3));
  EXPECT_THAT(play(own, {{1, "........"}, {2, "........"}, {3, "........"}}, 3),
              ElementsAre("r7 promote 1 recovered"));
}

TEST(HealthPolicyOwnership, AnOperatorPromotionOfItsDemotionIsRespectedForTheHold) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));
  std::map<int32_t, std::string> failing = {{1, "xxx"}, {2, "..."}, {3, "..."}};
  EXPECT_THAT(play(policy, failing), ElementsAre("r2 demote 1 unreachable"));
  const std::vector<BrokerId> listed = {BrokerId{1}};
  EXPECT_THAT(policy.set_demoted_elsewhere(listed, at_round(3)), IsEmpty());  // as decided

  // The operator promotes broker 1 although it still fails: the policy lets go of its demotion
  // and holds back for recovery_hold (5 rounds), then demotes it again.
  EXPECT_THAT(policy.set_demoted_elsewhere({}, at_round(3)), ElementsAre(BrokerId{1}));
  EXPECT_THAT(policy.demoted_by_policy(), IsEmpty());
  std::vector<std::string> seen;
  std::vector<HeldBack> held;
  for (size_t r = 3; r < 10; ++r) {
    auto out =
        policy.step(reach_round(r, {{1, "xxxxxxxxxx"}, {2, ".........."}, {3, ".........."}}));
    for (const auto& d : out.decisions)
      seen.push_back(describe(r, d));
    for (const auto& h : out.held)
      held.push_back(h.why);
  }
  EXPECT_THAT(seen, ElementsAre("r8 demote 1 unreachable"));
  EXPECT_THAT(held, ElementsAre(HeldBack::promoted_by_operator, HeldBack::promoted_by_operator,
                                HeldBack::promoted_by_operator, HeldBack::promoted_by_operator,
                                HeldBack::promoted_by_operator));
  // Promoted again once healthy, as usual.
  const std::string healthy_from_r10 = std::string(10, '-') + std::string(10, '.');
  EXPECT_THAT(
      play(policy, {{1, healthy_from_r10}, {2, healthy_from_r10}, {3, healthy_from_r10}}, 10),
      ElementsAre("r14 promote 1 recovered"));
}

TEST(HealthPolicyOwnership, AnAdoptedDemotionIsPromotedAfterTheHoldAndCountsAgainstTheCap) {
  // A restarted prober finds broker 1 demoted for network-health by its predecessor.
  HealthPolicy policy(config(3, 3, 5s), brokers(3));
  policy.adopt_demotion(BrokerId{1}, Reason::unreachable, at_round(0));
  const std::vector<BrokerId> listed = {BrokerId{1}};
  policy.set_demoted_elsewhere(listed, at_round(0));  // listed: it stays the policy's
  EXPECT_THAT(policy.demoted_by_policy(), ElementsAre(BrokerId{1}));
  // Broker 2 fails meanwhile: the cap (1) is taken by the adopted demotion until it is promoted.
  std::vector<std::string> seen;
  std::map<int32_t, std::string> timeline = {{1, "........"}, {2, "xxxxxxxx"}, {3, "........"}};
  for (size_t r = 0; r < 8; ++r) {
    auto out = policy.step(reach_round(r, timeline));
    for (const auto& d : out.decisions)
      seen.push_back(describe(r, d));
    if (r == 3) {
      ASSERT_EQ(out.held.size(), 1u);
      EXPECT_EQ(out.held[0].why, HeldBack::cap_reached);
    }
  }
  EXPECT_THAT(seen, ElementsAre("r5 promote 1 recovered", "r5 demote 2 unreachable"));
}

TEST(HealthPolicyOwnership, FailedDemotionIsRetriedNextRound) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));
  std::map<int32_t, std::string> timeline = {{1, "xxxx"}, {2, "...."}, {3, "...."}};
  std::vector<std::string> seen;
  for (size_t r = 0; r < 4; ++r) {
    for (const auto& d : policy.step(reach_round(r, timeline)).decisions) {
      seen.push_back(describe(r, d));
      if (r == 2)
        policy.decision_failed(d);  // the controller was unreachable
    }
  }
  EXPECT_THAT(seen, ElementsAre("r2 demote 1 unreachable", "r3 demote 1 unreachable"));
  EXPECT_THAT(policy.demoted_by_policy(), ElementsAre(BrokerId{1}));
}

TEST(HealthPolicyOwnership, FailedPromotionIsRetriedNextRound) {
  HealthPolicy policy(config(3, 1, 1s), brokers(3));
  std::map<int32_t, std::string> timeline = {{1, "xxx...."}, {2, "......."}, {3, "......."}};
  std::vector<std::string> seen;
  for (size_t r = 0; r < 7; ++r) {
    for (const auto& d : policy.step(reach_round(r, timeline)).decisions) {
      seen.push_back(describe(r, d));
      if (d.action == Action::promote && r == 3)
        policy.decision_failed(d);
    }
  }
  EXPECT_THAT(seen, ElementsAre("r2 demote 1 unreachable", "r3 promote 1 recovered",
                                "r4 promote 1 recovered"));
  EXPECT_THAT(policy.demoted_by_policy(), IsEmpty());
}

TEST(HealthPolicyBookkeeping, UnknownBrokersAndStaleObservationsAreIgnored) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));
  ProbeRound round{.now = at_round(5), .reachability = {}, .storage = {}};
  round.reachability.push_back({BrokerId{1}, true, 1ms, "", at_round(5)});
  policy.step(round);
  // Three late failures of broker 1 from before its last success, and one for a stranger.
  round.now = at_round(6);
  round.reachability = {{BrokerId{1}, false, 1s, "timeout", at_round(2)},
                        {BrokerId{1}, false, 1s, "timeout", at_round(3)},
                        {BrokerId{1}, false, 1s, "timeout", at_round(4)},
                        {BrokerId{9}, false, 1s, "timeout", at_round(6)}};
  auto out = policy.step(round);
  EXPECT_EQ(out.ignored_observations, 4);
  EXPECT_THAT(out.decisions, IsEmpty());
  EXPECT_EQ(policy.health()[0].failure_streak, 0);
}

TEST(HealthPolicyBookkeeping, UnreachableEvidenceAndLogLine) {
  HealthPolicy policy(kK3M3Hold5, brokers(3));
  std::vector<Decision> decisions;
  std::map<int32_t, std::string> timeline = {{1, ".xxx"}, {2, "...."}, {3, "...."}};
  for (size_t r = 0; r < 4; ++r)
    for (auto& d : policy.step(reach_round(r, timeline)).decisions)
      decisions.push_back(d);
  ASSERT_EQ(decisions.size(), 1u);
  const auto& d = decisions[0];
  EXPECT_EQ(controller_reason(d.reason), "network-health");
  EXPECT_EQ(d.evidence.failure_streak, 3);
  EXPECT_EQ(d.evidence.streak_started_at, at_round(1));
  EXPECT_EQ(d.evidence.last_error, "connect: timed out");
  EXPECT_EQ(d.evidence.last_latency, 500ms);
  EXPECT_EQ(d.to_string(),
            "demote broker=1 reason=unreachable failure_streak=3 success_streak=0 "
            "streak_for_ms=2000.0 last_latency_ms=500.000 last_error=\"connect: timed out\" "
            "demoted_for_ms=0.0 since_unhealthy_ms=0.0");
  auto j = d.to_json();
  EXPECT_EQ(
      j["evidence"]["streak_started_at_ns"],
      std::chrono::duration_cast<std::chrono::nanoseconds>(at_round(1).time_since_epoch()).count());
  EXPECT_EQ(j["evidence"]["failure_streak"], 3);
}

TEST(HealthPolicyConfig, RejectsNonsense) {
  struct Bad {
    const char* what;
    void (*mutate)(HealthConfig&);
  };
  const Bad bad[] = {
      {"failures_to_demote", [](HealthConfig& c) { c.failures_to_demote = 0; }},
      {"successes_to_promote", [](HealthConfig& c) { c.successes_to_promote = 0; }},
      {"recovery_hold", [](HealthConfig& c) { c.recovery_hold = -1ms; }},
      {"storage_outlier_factor", [](HealthConfig& c) { c.storage_outlier_factor = 0.5; }},
      {"storage_min_samples", [](HealthConfig& c) { c.storage_min_samples = 50; }},
      {"storage_min_brokers", [](HealthConfig& c) { c.storage_min_brokers = 1; }},
      {"vantage_guard_fraction", [](HealthConfig& c) { c.vantage_guard_fraction = 0; }},
      {"max_demoted", [](HealthConfig& c) { c.max_demoted = -1; }},
  };
  EXPECT_EQ(HealthConfig{}.validate(), "");
  for (const auto& b : bad) {
    HealthConfig c;
    b.mutate(c);
    EXPECT_THAT(c.validate(), HasSubstr(b.what));
    EXPECT_THROW(HealthPolicy(c, brokers(3)), std::invalid_argument) << b.what;
  }
  EXPECT_THROW(HealthPolicy(HealthConfig{}, std::vector<BrokerId>{}), std::invalid_argument);
  EXPECT_THROW(HealthPolicy(HealthConfig{}, std::vector<BrokerId>{BrokerId{1}, BrokerId{1}}),
               std::invalid_argument);
}

// ---- invariants under random input -----------------------------------------------------------

// Random probe results (with bursts of whole-cluster failures and slow disks) must never break the
// policy's guarantees, whatever the seed.
TEST(HealthPolicyInvariants, HoldUnderRandomObservations) {
  for (uint64_t seed : {1u, 2u, 3u, 42u}) {
    std::mt19937_64 rng(seed);
    HealthConfig c = config(2, 2, 3s);
    c.max_demoted = 2;
    const int32_t n = 5;
    HealthPolicy policy(c, brokers(n));
    std::set<int32_t> demoted;
    std::map<int32_t, TimePoint> demoted_at;
    std::vector<double> fail_p(n + 1, 0.05);
    int demotions = 0, promotions = 0, suspect_rounds = 0;
    for (size_t r = 0; r < 3000; ++r) {
      if (r % 100 == 0)
        for (int32_t b = 1; b <= n; ++b)
          fail_p[b] = std::uniform_real_distribution<>(0, 0.9)(rng);
      const bool outage = std::bernoulli_distribution(0.02)(rng);
      ProbeRound round{.now = at_round(r), .reachability = {}, .storage = {}};
      for (int32_t b = 1; b <= n; ++b) {
        bool ok = !outage && !std::bernoulli_distribution(fail_p[b])(rng);
        round.reachability.push_back({BrokerId{b}, ok, 1ms, ok ? "" : "x", at_round(r)});
        auto l = std::chrono::microseconds(
            std::uniform_int_distribution<int64_t>(1000, fail_p[b] > 0.6 ? 400'000 : 8000)(rng));
        round.storage.push_back({BrokerId{b}, l, at_round(r), ""});
      }
      auto out = policy.step(round);
      if (out.vantage_point_suspect) {
        ++suspect_rounds;
        EXPECT_THAT(out.decisions, IsEmpty()) << "seed " << seed << " round " << r;
      }
      for (const auto& d : out.decisions) {
        const int32_t b = d.broker.value();
        if (d.action == Action::demote) {
          ASSERT_FALSE(demoted.contains(b));
          demoted.insert(b);
          demoted_at[b] = round.now;
          ++demotions;
        } else {
          ++promotions;
          ASSERT_TRUE(demoted.contains(b)) << "promoted a broker it had not demoted";
          EXPECT_GE(round.now - demoted_at[b], c.recovery_hold);
          demoted.erase(b);
        }
      }
      ASSERT_LE(demoted.size(), static_cast<size_t>(c.max_demoted));
      ASSERT_LT(demoted.size(), static_cast<size_t>(n));
      std::vector<BrokerId> expected;
      for (int32_t b : demoted)
        expected.emplace_back(b);
      ASSERT_EQ(policy.demoted_by_policy(), expected);
    }
    // The run exercised what it checks.
    EXPECT_GT(demotions, 10) << "seed " << seed;
    EXPECT_GT(promotions, 10) << "seed " << seed;
    EXPECT_GT(suspect_rounds, 10) << "seed " << seed;
  }
}

}  // namespace
}  // namespace faultline::probes
