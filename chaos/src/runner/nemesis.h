// The nemesis: carries out a run's schedule against the live cluster. Each planned step is
// resolved (schedule.h) when it is due, from the watcher's latest snapshot; triggered steps are
// armed at their planned time and injected when the cluster does what they wait for. Every step
// is recorded in the history (fault_start/fault_stop) and in faults.jsonl by the injector.
//
// Threading: run() must be called on the thread that brought the cluster up (restarted processes
// belong to it); it returns when every step has been healed, or, once interrupted, after healing
// what is active.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "cluster_view.h"
#include "faultline/chaos/faults/injector.h"
#include "faultline/chaos/runner/run_metrics.h"
#include "faultline/chaos/runner/schedule.h"
#include "faultline/checker/recorder.h"

namespace faultline::chaos {

// What became of one planned step.
struct StepOutcome {
  using Clock = std::chrono::steady_clock;
  PlannedStep planned;
  Resolution resolution;
  bool injected = false;  // every spec of the step was injected
  std::string error;      // the first inject error
  std::string backend;
  Clock::time_point injected_at{};
  Clock::time_point healed_at{};
  Clock::duration resolve_and_inject{};  // the harness's own time for the step (not the hold)
  std::vector<FaultInjector::Outcome> faults;
};

class Nemesis {
 public:
  using Clock = std::chrono::steady_clock;
  struct Hooks {
    std::function<bool()> interrupted = [] { return false; };
    std::function<void()> tick = [] {};                                       // while waiting
    std::function<void(const std::string&)> say = [](const std::string&) {};  // a console line
    std::function<void()> after_heal = [] {};  // processes may have changed
  };

  Nemesis(std::vector<PlannedStep> schedule, FaultInjector& injector, ClusterWatcher& watcher,
          checker::HistoryRecorder& history, RunMetrics& metrics, Hooks hooks);

  // Runs the schedule with `start` as time zero.
  void run(Clock::time_point start);

  // Injected steps in injection order (the history's fault windows are in the same order).
  const std::vector<StepOutcome>& injected() const { return injected_; }
  const std::vector<StepOutcome>& skipped() const { return skipped_; }
  Clock::time_point last_heal() const { return last_heal_; }
  // What is active now, for the progress line.
  std::string active() const;

 private:
  struct Armed {
    size_t step;
    ClusterSnapshot armed;
    Clock::time_point deadline;
  };
  struct Active {
    size_t outcome;  // index in injected_
    Clock::time_point heal_at;
  };

  void inject(const PlannedStep& p, Clock::time_point now);
  void heal(Active a);
  void skip(const PlannedStep& p, std::string why);
  void record_exits(const FaultSpec& spec);
  void check_triggers(Clock::time_point now);
  void heal_due(Clock::time_point now, bool all);
  checker::NemesisFields fields(const StepOutcome& o) const;

  std::vector<PlannedStep> schedule_;
  FaultInjector& injector_;
  ClusterWatcher& watcher_;
  checker::HistoryRecorder& history_;
  RunMetrics& metrics_;
  Hooks hooks_;
  std::vector<StepOutcome> injected_;
  std::vector<StepOutcome> skipped_;
  std::vector<Armed> armed_;
  std::vector<Active> active_;
  Clock::time_point start_{};
  Clock::time_point last_heal_{};
};

}  // namespace faultline::chaos
