// `faultline shrink DIR`: a failing run's fault schedule cut down to a minimal one that still
// fails (ARCHITECTURE.md §3, "Shrinking"). The search is Zeller's delta debugging (ddmin) over the
// indices of the planned steps, pure and table-tested here; `shrink_run` is the I/O around it:
// each attempt is a whole `faultline run` of the same scenario and seed with only some steps.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace faultline::chaos {

using StepSet = std::vector<size_t>;  // indices into a run's schedule, ascending

struct DdminResult {
  StepSet minimal;         // still fails; 1-minimal unless `exhausted`
  int tests = 0;           // calls of the predicate (each a run)
  bool exhausted = false;  // stopped at max_tests before the search ended
};

// Smallest subset of `failing` (which fails) for which `fails` still holds, removing chunks then
// single steps until no single step can go. Never calls `fails` twice on one subset, nor on
// `failing` itself or the empty set; at most `max_tests` calls.
DdminResult ddmin(const StepSet& failing, const std::function<bool(const StepSet&)>& fails,
                  int max_tests);

struct PlannedStep;

// The scenario `original` (TOML text) with its nemesis replaced by `steps` at their planned
// times: a `concurrent` group whose steps carry absolute `after_s`, kinds, targets, peers,
// triggers, holds and every parameter. Parsed and planned again, it gives the same steps.
std::string minimal_scenario_toml(const std::string& original,
                                  const std::vector<PlannedStep>& steps,
                                  std::chrono::seconds duration, uint64_t seed);

struct ShrinkOptions {
  int max_runs = 24;
};

// Shrinks the failing run in `dir` (run.json, verdict.json): attempts in <dir>/shrink/attempt-N,
// the minimal scenario in <dir>/shrink/minimal.toml. Exit codes: 0 shrunk (or nothing to remove),
// 1 the failure did not reproduce with every step, 2 `dir` is not a failing run, 3/4 as `run`.
int shrink_run(const std::filesystem::path& dir, const ShrinkOptions& options, std::ostream& out);

}  // namespace faultline::chaos
