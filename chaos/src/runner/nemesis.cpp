#include "nemesis.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace faultline::chaos {

using namespace std::chrono_literals;

Nemesis::Nemesis(std::vector<PlannedStep> schedule, FaultInjector& injector,
                 ClusterWatcher& watcher, checker::HistoryRecorder& history, RunMetrics& metrics,
                 Hooks hooks)
    : schedule_(std::move(schedule)),
      injector_(injector),
      watcher_(watcher),
      history_(history),
      metrics_(metrics),
      hooks_(std::move(hooks)) {}

void Nemesis::run(Clock::time_point start) {
  start_ = start;
  size_t next = 0;
  while (!hooks_.interrupted()) {
    auto now = Clock::now();
    heal_due(now, false);
    // Arm every trigger due now before injecting the plain steps due at the same time: a step
    // that waits for an election must see the one its sibling is about to cause.
    size_t due_end = next;
    while (due_end < schedule_.size() && start_ + schedule_[due_end].at <= now)
      ++due_end;
    for (size_t i = next; i < due_end; ++i)
      if (schedule_[i].step.on)
        armed_.push_back({i, watcher_.snapshot(), now + schedule_[i].step.on->within});
    for (size_t i = next; i < due_end; ++i)
      if (!schedule_[i].step.on)
        inject(schedule_[i], Clock::now());
    next = due_end;
    check_triggers(Clock::now());
    if (next == schedule_.size() && armed_.empty() && active_.empty())
      break;
    hooks_.tick();
    std::this_thread::sleep_for(10ms);
  }
  heal_due(Clock::now(), true);
}

void Nemesis::check_triggers(Clock::time_point now) {
  if (armed_.empty())
    return;
  auto snapshot = watcher_.snapshot();
  std::vector<Armed> waiting;
  for (auto& a : armed_) {
    const PlannedStep& p = schedule_[a.step];
    if (trigger_fired(*p.step.on, a.armed, snapshot))
      inject(p, now);
    else if (now >= a.deadline)
      skip(p, fmt::format("trigger {} did not fire within {:.1f} s", p.step.on->str(),
                          p.step.on->within.count() / 1000.0));
    else {
      // The next look compares with this one: a change that came and went since the step was
      // armed (an ISR member dropped and re-added) still fires, on the look that saw it.
      a.armed = snapshot;
      waiting.push_back(std::move(a));
    }
  }
  armed_ = std::move(waiting);
}

void Nemesis::skip(const PlannedStep& p, std::string why) {
  StepOutcome o;
  o.planned = p;
  o.resolution.skipped = why;
  checker::NemesisFields f;
  f.fault = std::string(to_string(p.step.kind));
  f.target = fmt::format("skipped: {}", why);
  history_.nemesis(checker::NemesisKind::note, f);
  hooks_.say(fmt::format("+{:.1f}s {} {} skipped: {}",
                         std::chrono::duration<double>(Clock::now() - start_).count(),
                         to_string(p.step.kind), p.step.target.str(), why));
  skipped_.push_back(std::move(o));
}

checker::NemesisFields Nemesis::fields(const StepOutcome& o) const {
  checker::NemesisFields f;
  f.fault = std::string(to_string(o.planned.step.kind));
  f.target = o.resolution.targets_desc;
  return f;
}

namespace {

// A step whose targets depend on which controller is active.
bool aims_at_active_controller(const FaultStep& step) {
  auto needs = [](SelectorKind k) {
    return k == SelectorKind::controller || k == SelectorKind::active_controller ||
           k == SelectorKind::controller_follower || k == SelectorKind::controller_minority;
  };
  return needs(step.target.kind) || (step.peers && needs(step.peers->kind));
}

// How long a step aimed at the active controller waits for the quorum to name one before it is
// skipped: an election (about one election timeout) or a look that timed out on a loaded machine.
constexpr auto kActiveControllerPatience = std::chrono::milliseconds(2000);

}  // namespace

void Nemesis::inject(const PlannedStep& p, Clock::time_point now) {
  const auto began = Clock::now();
  ClusterSnapshot snapshot = watcher_.snapshot();
  if (aims_at_active_controller(p.step) && snapshot.controllers > 1 &&
      snapshot.active_controller == 0) {
    snapshot = watcher_.snapshot_with_active_controller(kActiveControllerPatience);
    now = Clock::now();  // the step's clocks start when it is injected, not before the wait
  }
  auto resolution = resolve(p.step, snapshot, p.variant);
  if (!resolution.skipped.empty())
    return skip(p, resolution.skipped);
  StepOutcome o;
  o.planned = p;
  o.resolution = std::move(resolution);
  o.injected_at = now;
  for (const auto& spec : o.resolution.specs) {
    auto r = injector_.inject(spec);
    if (r.error && o.error.empty())
      o.error = r.error.message();
    if (o.backend.empty())
      o.backend = r.backend;
    o.faults.push_back(r);
    if (!r.error)
      record_exits(spec);
  }
  o.injected = o.error.empty();
  o.resolve_and_inject = Clock::now() - began;
  if (o.injected)
    metrics_.fault_injected(std::string(to_string(p.step.kind)));
  history_.nemesis(checker::NemesisKind::fault_start, fields(o));
  hooks_.say(fmt::format("+{:.1f}s {} {} {}",
                         std::chrono::duration<double>(o.injected_at - start_).count(),
                         to_string(p.step.kind), o.resolution.targets_desc,
                         o.injected ? "injected" : "FAILED: " + o.error));
  injected_.push_back(std::move(o));
  // A one-off (restart) is over once injected; its window closes at once.
  active_.push_back(
      {injected_.size() - 1, is_one_off(p.step.kind) ? Clock::now() : now + p.step.hold});
}

// A broker process the fault ended, for the invariant pass (a graceful exit must have handed its
// leadership over). The injector returns once the process is gone, so now is its exit.
void Nemesis::record_exits(const FaultSpec& spec) {
  bool graceful = false;
  switch (spec.kind) {
    case FaultKind::stop:
    case FaultKind::restart:
      graceful = true;
      break;
    case FaultKind::kill:
    case FaultKind::kill_restart:
    case FaultKind::power_loss:
    case FaultKind::torn_write:
      break;
    default:
      return;
  }
  for (const auto& node : spec.targets) {
    if (node.size() < 2 || node[0] != 'b')
      continue;
    checker::NemesisFields f;
    f.leader = checker::BrokerId{std::atoi(node.c_str() + 1)};
    f.graceful = graceful;
    history_.nemesis(checker::NemesisKind::process_exit, f);
  }
}

void Nemesis::heal(Active a) {
  StepOutcome& o = injected_[a.outcome];
  // Healed in reverse; one-offs have nothing to heal.
  if (!is_one_off(o.planned.step.kind))
    for (auto it = o.faults.rbegin(); it != o.faults.rend(); ++it)
      if (!it->error)
        injector_.heal(it->id);
  o.healed_at = Clock::now();
  last_heal_ = o.healed_at;
  hooks_.after_heal();
  history_.nemesis(checker::NemesisKind::fault_stop, fields(o));
}

void Nemesis::heal_due(Clock::time_point now, bool all) {
  std::vector<Active> still;
  // Everything at once (the end, an interrupt): newest first, as faults were layered.
  if (all)
    std::reverse(active_.begin(), active_.end());
  for (const auto& a : active_) {
    if (all || a.heal_at <= now) {
      heal(a);
    } else {
      still.push_back(a);
    }
  }
  active_ = std::move(still);
}

std::string Nemesis::active() const {
  std::string out;
  for (const auto& a : active_) {
    const auto& o = injected_[a.outcome];
    if (!out.empty())
      out += "; ";
    out += fmt::format("{} {}", to_string(o.planned.step.kind), o.resolution.targets_desc);
  }
  return out.empty() ? "none" : out;
}

}  // namespace faultline::chaos
