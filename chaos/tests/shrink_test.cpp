// Delta debugging over a schedule's steps, with predicates standing in for runs: the minimal
// failing set is found, every step of it is needed, and the run budget is respected.
#include "faultline/chaos/runner/shrink.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "faultline/chaos/runner/scenario.h"
#include "faultline/chaos/runner/schedule.h"

namespace faultline::chaos {
namespace {

StepSet range(size_t n) {
  StepSet s(n);
  std::iota(s.begin(), s.end(), 0);
  return s;
}

bool contains_all(const StepSet& s, const StepSet& needed) {
  return std::includes(s.begin(), s.end(), needed.begin(), needed.end());
}

struct Case {
  const char* name;
  size_t steps;
  StepSet needed;  // the run fails iff every one of these steps is in it
};

class Ddmin : public ::testing::TestWithParam<Case> {};

TEST_P(Ddmin, FindsExactlyTheStepsTheFailureNeeds) {
  const auto& c = GetParam();
  std::set<StepSet> seen;
  auto fails = [&](const StepSet& s) {
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
    EXPECT_TRUE(seen.insert(s).second) << "the same subset was run twice";
    EXPECT_FALSE(s.empty());
    return contains_all(s, c.needed);
  };
  auto r = ddmin(range(c.steps), fails, 1000);
  EXPECT_EQ(r.minimal, c.needed);
  EXPECT_FALSE(r.exhausted);
  EXPECT_EQ(r.tests, static_cast<int>(seen.size()));
  // Delta debugging's bound for a single failure-inducing step: O(log n) runs.
  if (c.needed.size() == 1) {
    EXPECT_LE(r.tests, 2 * static_cast<int>(std::log2(c.steps)) + 2);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Schedules, Ddmin,
    ::testing::Values(Case{"one_of_two", 2, {1}}, Case{"first_of_eight", 8, {0}},
                      Case{"last_of_nine", 9, {8}}, Case{"pair_far_apart", 12, {2, 9}},
                      Case{"pair_adjacent", 7, {3, 4}}, Case{"three_of_twenty", 20, {1, 10, 19}},
                      Case{"all_needed", 4, {0, 1, 2, 3}}, Case{"single_step_run", 1, {0}}),
    [](const auto& info) { return std::string(info.param.name); });

// The minimal scenario is a scenario: parsed and planned again it gives the kept steps, at their
// times, with their targets, triggers, holds and parameters (the runner injects exactly those).
TEST(MinimalScenario, PlansTheKeptStepsAgain) {
  for (const char* name : {"nemesis-mix", "kill-leader-on-follower-rejoin", "leader-disk-errors",
                           "rolling-restart", "partition-halves"}) {
    const std::string text = *builtin_scenario_toml(name);
    ScenarioError error;
    auto s = parse_scenario(text, name, error);
    ASSERT_TRUE(s) << error.str();
    s->duration = std::chrono::seconds(60);
    const auto schedule = make_schedule(*s, 7);
    ASSERT_GE(schedule.size(), 2u) << name;
    const std::vector<PlannedStep> kept{schedule[1], schedule.back()};
    const std::string minimal = minimal_scenario_toml(text, kept, s->duration, 7);
    auto again = parse_scenario(minimal, "minimal.toml", error);
    ASSERT_TRUE(again) << name << ": " << error.str() << "\n" << minimal;
    EXPECT_EQ(again->name, std::string(name) + "-shrunk");
    EXPECT_EQ(again->duration, s->duration);
    EXPECT_EQ(again->cluster.replica_lag_time_max, s->cluster.replica_lag_time_max);
    const auto replanned = make_schedule(*again, 1);
    ASSERT_EQ(replanned.size(), kept.size()) << minimal;
    for (size_t i = 0; i < kept.size(); ++i) {
      EXPECT_EQ(replanned[i].at, kept[i].at) << minimal;
      EXPECT_EQ(replanned[i].step.kind, kept[i].step.kind);
      EXPECT_EQ(replanned[i].step.target.str(), kept[i].step.target.str());
      EXPECT_EQ(replanned[i].step.hold, kept[i].step.hold);
      EXPECT_EQ(replanned[i].step.params, kept[i].step.params) << minimal;
      EXPECT_EQ(replanned[i].step.on.has_value(), kept[i].step.on.has_value());
    }
  }
}

TEST(Ddmin, StopsAtTheRunBudgetWithAFailingSet) {
  int calls = 0;
  auto fails = [&](const StepSet& s) {
    ++calls;
    return contains_all(s, {3, 17, 29});
  };
  auto r = ddmin(range(32), fails, 5);
  EXPECT_TRUE(r.exhausted);
  EXPECT_EQ(r.tests, 5);
  EXPECT_EQ(calls, 5);
  EXPECT_TRUE(contains_all(r.minimal, {3, 17, 29})) << "what it returns must still fail";
}

TEST(Ddmin, AFailureThatNeedsNoParticularStepKeepsOne) {
  // Any non-empty schedule fails (the bug shows with any fault): one step is enough.
  auto r = ddmin(
      range(6), [](const StepSet& s) { return !s.empty(); }, 100);
  EXPECT_EQ(r.minimal.size(), 1u);
}

}  // namespace
}  // namespace faultline::chaos
