// The planted bugs' registry (mutants.h). Empty unless FAULTLINE_MUTANTS is defined.
#ifdef FAULTLINE_MUTANTS

#include "faultline/cluster/mutants.h"

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <utility>

namespace faultline::cluster {
namespace {

constexpr std::array<std::pair<Mutant, std::string_view>, 15> kMutants{{
    {Mutant::elect_outside_isr, "elect-outside-isr"},
    {Mutant::ignore_demotion, "ignore-demotion"},
    {Mutant::no_epoch_bump_on_planned_move, "no-epoch-bump-on-planned-move"},
    {Mutant::fenced_stays_in_isr, "fenced-stays-in-isr"},
    {Mutant::early_ack, "early-ack"},
    {Mutant::hw_on_leader_append, "hw-on-leader-append"},
    {Mutant::hw_max_of_isr, "hw-max-of-isr"},
    {Mutant::isr_rejoin_early, "isr-rejoin-early"},
    {Mutant::isr_never_shrinks, "isr-never-shrinks"},
    {Mutant::shrink_without_controller, "shrink-without-controller"},
    {Mutant::consume_above_hw, "consume-above-hw"},
    {Mutant::no_divergence_truncation, "no-divergence-truncation"},
    {Mutant::zombie_leader, "zombie-leader"},
    {Mutant::exit_without_handover, "exit-without-handover"},
    {Mutant::truncate_to_hw_on_restart, "truncate-to-hw-on-restart"},
}};

std::atomic<Mutant> g_active{Mutant::none};

}  // namespace

std::vector<std::string_view> mutant_names() {
  std::vector<std::string_view> names;
  for (const auto& [m, name] : kMutants)
    names.push_back(name);
  return names;
}

bool enable_mutant_from_environment() {
  const char* value = std::getenv("FAULTLINE_MUTANT");
  if (value == nullptr || *value == '\0')
    return true;
  for (const auto& [m, name] : kMutants) {
    if (name == value) {
      g_active.store(m, std::memory_order_relaxed);
      spdlog::warn("event=mutant_enabled mutant={}", name);
      return true;
    }
  }
  spdlog::error("event=unknown_mutant mutant=\"{}\"", value);
  return false;
}

bool mutant_active(Mutant m) noexcept {
  return g_active.load(std::memory_order_relaxed) == m;
}

}  // namespace faultline::cluster

#endif  // FAULTLINE_MUTANTS
