// Planted bugs (mutants) for mutation testing of the harness: does a chaos run catch a cluster that
// is wrong in a way real Kafka/Raft implementations have been? Compiled only when CMake's
// FAULTLINE_MUTANTS option defines the FAULTLINE_MUTANTS macro (ci/mutants.sh builds such a tree in
// build-mutants/); a default build contains none of this, and every site is inside #ifdef.
//
// A broker or controller reads FAULTLINE_MUTANT=<name> once at process start and enables that one
// bug; unset or empty enables none. The table of mutants is in cluster/README.md.
//
// Threading: enable_mutant_from_environment() runs in main() before any thread starts; afterwards
// the mutant only is read.
#pragma once

#ifdef FAULTLINE_MUTANTS

#include <string_view>
#include <vector>

namespace faultline::cluster {

enum class Mutant {
  none,
  // controller: elections, fencing
  elect_outside_isr,
  ignore_demotion,
  no_epoch_bump_on_planned_move,
  fenced_stays_in_isr,
  // leader: replication, high watermark, ISR
  early_ack,
  hw_on_leader_append,
  hw_max_of_isr,
  isr_rejoin_early,
  isr_never_shrinks,
  shrink_without_controller,
  // broker: data path, fencing, shutdown, recovery
  consume_above_hw,
  no_divergence_truncation,
  zombie_leader,
  exit_without_handover,
  truncate_to_hw_on_restart,
};

// Every mutant's name ("early-ack", ...), in the order of the enum.
std::vector<std::string_view> mutant_names();

// Reads FAULTLINE_MUTANT and enables the mutant it names (logged). False, and nothing enabled,
// when it names no mutant: a typo must not pass for a healthy run.
bool enable_mutant_from_environment();

// Whether `m` is this process's mutant.
bool mutant_active(Mutant m) noexcept;

}  // namespace faultline::cluster

#endif  // FAULTLINE_MUTANTS
