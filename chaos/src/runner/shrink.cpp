// `faultline shrink DIR`: the I/O around ddmin (ddmin.cpp). Reads the failing run's scenario,
// seed and duration from run.json, re-runs subsets of its planned schedule (same seed: the same
// workload and the same planned times) and writes the smallest failing schedule as a scenario.
#include "faultline/chaos/runner/shrink.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "faultline/chaos/runner/runner.h"
#include "faultline/chaos/runner/schedule.h"

namespace faultline::chaos {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::optional<nlohmann::json> read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in)
    return std::nullopt;
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded())
    return std::nullopt;
  return j;
}

// A JSON scalar or array as a TOML inline value (fault parameters are no deeper than that).
std::string toml_value(const nlohmann::json& v) {
  if (v.is_array()) {
    std::vector<std::string> items;
    for (const auto& e : v)
      items.push_back(toml_value(e));
    return fmt::format("[{}]", fmt::join(items, ", "));
  }
  return v.dump();  // numbers, booleans, and strings (JSON escapes are valid TOML basic strings)
}

// One planned step as an inline table of a `concurrent` group: `after_s` is its planned start.
std::string step_toml(const PlannedStep& p) {
  std::vector<std::string> keys{fmt::format("after_s = {}", p.at.count() / 1000.0),
                                fmt::format("fault = \"{}\"", to_string(p.step.kind)),
                                fmt::format("target = \"{}\"", p.step.target.str())};
  if (p.step.peers)
    keys.push_back(fmt::format("peers = \"{}\"", p.step.peers->str()));
  if (p.step.on) {
    keys.push_back(fmt::format("on = \"{}\"", p.step.on->str()));
    keys.push_back(fmt::format("within_s = {}", p.step.on->within.count() / 1000.0));
  }
  if (p.step.kind != FaultKind::restart && p.step.kind != FaultKind::kill_restart)
    keys.push_back(fmt::format("hold_s = {}", p.step.hold.count() / 1000.0));
  const auto params = to_json(FaultSpec{p.step.kind, {}, p.step.params})["params"];
  for (const auto& [key, value] : params.items())
    if (key != "peers" && !value.is_object())
      keys.push_back(fmt::format("{} = {}", key, toml_value(value)));
  return fmt::format("  {{ {} }},\n", fmt::join(keys, ", "));
}

}  // namespace

std::string minimal_scenario_toml(const std::string& original,
                                  const std::vector<PlannedStep>& steps,
                                  std::chrono::seconds duration, uint64_t seed) {
  toml::table t = toml::parse(original);  // it parsed as a scenario when the run started
  const std::string name = t["name"].value_or(std::string("scenario"));
  t.erase("nemesis");
  t.insert_or_assign("name", name + "-shrunk");
  t.insert_or_assign(
      "description",
      fmt::format("{} step{} of {} (seed {}) that still fail{}, found by faultline shrink",
                  steps.size(), steps.size() == 1 ? "" : "s", name, seed,
                  steps.size() == 1 ? "s" : ""));
  t.insert_or_assign("duration_s", duration.count());
  std::ostringstream out;
  out << t << "\n\n[nemesis]\nconcurrent = [\n";
  for (const auto& p : steps)
    out << step_toml(p);
  out << "]\n";
  return out.str();
}

namespace {

std::string describe(const std::vector<PlannedStep>& schedule, const StepSet& steps) {
  std::string out;
  for (size_t i : steps) {
    const auto& p = schedule[i];
    out += fmt::format("    #{:<3} +{:>6.1f}s {} {}{}{} hold {:.1f}s\n", i, p.at.count() / 1000.0,
                       to_string(p.step.kind), p.step.target.str(),
                       p.step.peers ? " peers " + p.step.peers->str() : "",
                       p.step.on ? " on " + p.step.on->str() : "", p.step.hold.count() / 1000.0);
  }
  return out;
}

struct Failing {
  std::string verdict;  // what the failing run said ("invalid", or "valid" for a negative control)
  std::string expected;
};

}  // namespace

int shrink_run(const fs::path& dir, const ShrinkOptions& options, std::ostream& out) {
  const auto verdict = read_json(dir / "verdict.json");
  if (!fs::exists(dir / "run.json") || !verdict) {
    out << fmt::format("shrink: {}: not a finished run (needs run.json and verdict.json)\n",
                       dir.string());
    return 2;
  }
  const Failing failing{verdict->value("verdict", ""), verdict->value("expected", "")};
  if (verdict->value("matches_expectation", true) || failing.verdict == "unknown") {
    out << fmt::format(
        "shrink: the run in {} did not fail (verdict {}, expected {}): nothing to shrink\n",
        dir.string(), failing.verdict, failing.expected);
    return 2;
  }
  std::string why;
  auto recorded = read_recorded_run(dir, why);
  if (!recorded) {
    out << "shrink: " << why << "\n";
    return 2;
  }
  const std::string& text = recorded->scenario_text;
  Scenario& scenario = recorded->scenario;
  const uint64_t seed = recorded->options.seed;
  const std::chrono::seconds duration = *recorded->options.duration;
  scenario.duration = duration;
  const auto schedule = make_schedule(scenario, seed);
  StepSet all(schedule.size());
  std::iota(all.begin(), all.end(), size_t{0});
  if (recorded->options.only_steps)
    all = *recorded->options.only_steps;
  if (all.empty()) {
    out << "shrink: the run injected nothing: nothing to shrink\n";
    return 2;
  }

  const fs::path work = dir / "shrink";
  fs::create_directories(work);
  const auto started = Clock::now();
  int attempt = 0;
  bool stopped = false;  // interrupted, or the harness failed: no further runs
  out << fmt::format(
      "shrink: {} (seed {}, {} s) failed with {} steps; at most {} runs, each in {}\n",
      scenario.name, seed, duration.count(), all.size(), options.max_runs,
      (work / "attempt-N").string());
  out.flush();
  auto fails = [&](const StepSet& steps) {
    if (stopped)
      return false;
    ++attempt;
    RunOptions ro;
    ro.seed = seed;
    ro.duration = duration;
    ro.out_dir = work / fmt::format("attempt-{}", attempt);
    ro.only_steps = steps;
    const auto t0 = Clock::now();
    std::ofstream log(work / fmt::format("attempt-{}.log", attempt));
    const int code = run_scenario(scenario, text, ro, log);
    const auto v = read_json(ro.out_dir / "verdict.json");
    const std::string got = v ? v->value("verdict", "?") : "none";
    const bool still = code == 1 && got == failing.verdict;
    if (code == 4 || code == 3)
      stopped = true;
    out << fmt::format("  attempt {:>2}: {} of {} steps [{}] -> {} ({:.0f} s){}\n", attempt,
                       steps.size(), all.size(), fmt::join(steps, ","), got,
                       std::chrono::duration<double>(Clock::now() - t0).count(),
                       still       ? ", still fails"
                       : code == 4 ? ", the harness failed: stopping"
                                   : "");
    out.flush();
    return still;
  };
  // A failure that does not come back with every step cannot be shrunk by leaving steps out.
  if (!fails(all)) {
    out << (stopped ? "shrink: stopped\n"
                    : "shrink: the failure did not come back with the whole schedule (a flaky "
                      "failure: try its replay a few times, or a longer run)\n");
    return stopped ? 4 : 1;
  }
  const auto result = ddmin(all, fails, options.max_runs - 1);
  if (stopped)
    return 4;

  std::vector<PlannedStep> kept;
  for (size_t i : result.minimal)
    kept.push_back(schedule[i]);
  const fs::path minimal = work / "minimal.toml";
  std::ofstream(minimal) << minimal_scenario_toml(text, kept, duration, seed);
  const double took = std::chrono::duration<double>(Clock::now() - started).count();
  out << fmt::format(
      "\nbefore: {} steps\n{}after: {} step{}{}\n{}", all.size(), describe(schedule, all),
      result.minimal.size(), result.minimal.size() == 1 ? "" : "s",
      result.exhausted ? " (the run budget ran out: smaller may exist)" : " (each one needed)",
      describe(schedule, result.minimal));
  out << fmt::format("{} runs in {:.0f} s; minimal scenario: {}\n", attempt, took,
                     minimal.string());
  out << fmt::format("replay: faultline run --scenario {} --seed {}\n", minimal.string(), seed);
  return 0;
}

}  // namespace faultline::chaos
