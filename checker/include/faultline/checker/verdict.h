// The verdict of a Kafka history: the data check (kafka.h), the invariant pass over the cluster's
// timeline (invariants.h), and the rule that a history which proves nothing is not "valid".
//
// valid   = no anomaly, no violated invariant, and the history could have shown a loss;
// invalid = an anomaly or a violated invariant (wins over unknown: real loss is never excused);
// unknown = nothing wrong found, but vacuity_reasons() says why that proves nothing.
#pragma once

#include <faultline/checker/history.h>
#include <faultline/checker/invariants.h>
#include <faultline/checker/kafka.h>
#include <faultline/checker/linearizability.h>  // Verdict

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace faultline::checker {

// Why a Kafka history cannot show data loss, one line each, partitions in order; empty when it
// can. "empty history: no operations"; "no acknowledged send"; "partition 2: nothing
// acknowledged" (written to, never acknowledged); "partition 1: no final read" (acknowledged
// sends, no `final` poll of it); "partition 1: the final read stopped at offset 40, acknowledged
// up to 52" (no poll reached the highest acknowledged offset). An acknowledged offset missing
// below what was read is not here: that is a lost write (kafka.h).
std::vector<std::string> vacuity_reasons(const History& history);

struct KafkaVerdict {
  Verdict verdict = Verdict::valid;
  KafkaResult kafka;
  InvariantResult invariants;
  std::vector<std::string> vacuity;  // vacuity_reasons(); decides only when nothing is invalid

  // kafka.to_json() plus "verdict" ("valid" | "invalid" | "unknown"), "invariants"
  // (InvariantResult::to_json()) and "vacuity" (the reasons); "valid" is true only for valid.
  nlohmann::json to_json() const;
  std::string summary() const;
};

// Runs check_kafka with unseen_needs_end_of_log set, check_invariants and vacuity_reasons.
KafkaVerdict judge_kafka(const History& history, const KafkaOptions& kafka_options = {},
                         const InvariantOptions& invariant_options = {});

}  // namespace faultline::checker
