// The invariant pass: does the cluster's own timeline (what the controller published, recorded as
// partition-state / cluster-state / process-exit events) and the brokers' acknowledgements keep
// the rules of leader election? The Kafka check (kafka.h) judges the data the clients saw; this
// pass judges the leadership that produced it, so a run can be invalid even when no write was
// lost yet (two leaders acknowledging in one epoch, a demoted broker kept as leader, ...).
//
// Pure and O(n log n) in events: one sweep over the timeline in time order plus a few hash maps.
#pragma once

#include <faultline/checker/history.h>

#include <array>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace faultline::checker {

enum class InvariantKind : uint8_t {
  leader_not_in_isr,  // a leader outside its ISR, and not from an unclean election
  epoch_regression,   // a partition's leader epoch went down, or its leader changed without a bump
  split_brain_ack,    // two brokers acknowledged sends for the same (partition, epoch)
  zombie_ack,         // acks=all ack at an epoch the timeline had already ended before the send
  demoted_leader,     // a demoted broker kept leading although a healthy ISR member was there
  unhanded_shutdown,  // a broker exited gracefully while still leading (no handover)
  not_recovered,      // after the last heal a partition never got a leader with a full ISR
  fenced_leader,      // a fenced broker kept leading
};
inline constexpr std::size_t kInvariantKinds = 8;
std::string_view to_string(InvariantKind k) noexcept;  // "leader-not-in-isr", ...

struct InvariantViolation {
  InvariantKind kind = InvariantKind::leader_not_in_isr;
  std::optional<PartitionId> partition;
  std::optional<LeaderEpoch> epoch;
  std::vector<BrokerId> brokers;     // the leader(s) or acknowledging broker(s) involved
  std::vector<std::size_t> lines;    // history lines that show it, in the order of the explanation
  std::chrono::nanoseconds from{0};  // when the bad state began (or the event)
  std::optional<std::chrono::nanoseconds> until;  // when it ended; none: lasted to the end
  std::string explanation;                        // one line
};

struct InvariantOptions {
  // How long each transient condition may last before it is a violation. The timeline is the
  // runner's view of the controller, so a state and the fix that follows it may be recorded a
  // little apart; these are the allowances for that (and for the controller's own reaction).
  std::chrono::nanoseconds priority_grace = std::chrono::milliseconds(1500);  // demoted_leader
  std::chrono::nanoseconds shutdown_grace = std::chrono::milliseconds(500);   // unhanded_shutdown
  std::chrono::nanoseconds fence_grace = std::chrono::milliseconds(1000);     // fenced_leader
  // not_recovered: checked only when set (normally the time of the last heal).
  std::optional<std::chrono::nanoseconds> recovery_from;
  std::chrono::nanoseconds recovery_bound = std::chrono::seconds(30);
  // zombie_ack applies to acks=all only; a history whose header does not say acks is checked
  // for it only with this set.
  bool assume_acks_all = false;
  // Evidence kept per kind; counts stay exact beyond it.
  std::size_t max_violations_per_kind = 100;
};

struct InvariantResult {
  bool valid = true;
  std::size_t partition_states = 0;
  std::size_t cluster_states = 0;
  std::size_t process_exits = 0;
  std::size_t acks_with_leader = 0;  // send acks that named their broker (split_brain_ack, zombie)
  std::array<std::size_t, kInvariantKinds> counts{};
  std::vector<InvariantViolation> violations;  // by kind, then time
  // What could not be checked and why (no timeline, acks unknown, history too short ...): an
  // invariant that was not checked is not a pass.
  std::vector<std::string> unchecked;

  std::size_t count(InvariantKind k) const { return counts[static_cast<std::size_t>(k)]; }
  nlohmann::json to_json() const;
  std::string summary() const;
};

InvariantResult check_invariants(const History& history, const InvariantOptions& options = {});

}  // namespace faultline::checker
