#include <faultline/checker/verdict.h>
#include <fmt/format.h>

#include <map>

namespace faultline::checker {
namespace {

struct PartitionProof {
  bool written = false;     // a send was invoked
  std::size_t acked = 0;    // sends acknowledged
  int64_t max_acked = -1;   // highest acknowledged offset
  bool final_read = false;  // an ok poll of the final read-all phase
  int64_t max_final = -1;   // highest offset the final read returned
  int64_t max_read = -1;    // highest offset any poll returned
};

std::map<int32_t, PartitionProof> proofs(const History& h) {
  std::map<int32_t, PartitionProof> out;
  for (const Operation& op : h.ops) {
    if (!op.partition)
      continue;
    PartitionProof& p = out[op.partition->value()];
    if (op.f == Function::send) {
      p.written = true;
      if (op.outcome == Outcome::ok) {
        ++p.acked;
        if (op.offset)
          p.max_acked = std::max(p.max_acked, op.offset->value());
      }
    } else if (op.f == Function::poll && op.outcome == Outcome::ok) {
      for (const Record& r : op.records) {
        p.max_read = std::max(p.max_read, r.offset.value());
        if (op.final_read)
          p.max_final = std::max(p.max_final, r.offset.value());
      }
      p.final_read |= op.final_read;
    }
  }
  return out;
}

std::optional<std::string> partition_reason(int32_t partition, const PartitionProof& p) {
  if (p.acked == 0)
    return p.written ? std::optional(fmt::format("partition {}: nothing acknowledged", partition))
                     : std::nullopt;
  if (!p.final_read)
    return fmt::format("partition {}: no final read", partition);
  // Reads of any phase count: an acknowledged offset at or below one of them is judged (found,
  // or a lost write). Only offsets above every read are unproven.
  if (p.max_read >= p.max_acked)
    return std::nullopt;
  if (p.max_read < 0)
    return fmt::format("partition {}: the final read returned nothing, acknowledged up to {}",
                       partition, p.max_acked);
  return fmt::format("partition {}: the {} stopped at offset {}, acknowledged up to {}", partition,
                     p.max_final == p.max_read ? "final read" : "reads", p.max_read, p.max_acked);
}

}  // namespace

std::vector<std::string> vacuity_reasons(const History& history) {
  if (history.ops.empty())
    return {"empty history: no operations"};
  std::vector<std::string> reasons;
  const auto by_partition = proofs(history);
  const bool any_acked = std::any_of(by_partition.begin(), by_partition.end(),
                                     [](const auto& kv) { return kv.second.acked > 0; });
  if (!any_acked)
    reasons.emplace_back("no acknowledged send");
  for (const auto& [partition, proof] : by_partition) {
    if (auto why = partition_reason(partition, proof))
      reasons.push_back(std::move(*why));
  }
  return reasons;
}

KafkaVerdict judge_kafka(const History& history, const KafkaOptions& kafka_options,
                         const InvariantOptions& invariant_options) {
  KafkaVerdict v;
  // An unread tail is unproven, not lost, unless the final read showed the log ends below it:
  // vacuity_reasons() reports the unproven case, so the data check need not guess.
  KafkaOptions kafka = kafka_options;
  kafka.unseen_needs_end_of_log = true;
  v.kafka = check_kafka(history, kafka);
  v.invariants = check_invariants(history, invariant_options);
  v.vacuity = vacuity_reasons(history);
  if (!v.kafka.valid || !v.invariants.valid)
    v.verdict = Verdict::invalid;
  else if (!v.vacuity.empty())
    v.verdict = Verdict::unknown;
  return v;
}

nlohmann::json KafkaVerdict::to_json() const {
  nlohmann::json j = kafka.to_json();
  j["verdict"] = std::string(to_string(verdict));
  j["valid"] = verdict == Verdict::valid;
  j["invariants"] = invariants.to_json();
  j["vacuity"] = vacuity;
  return j;
}

std::string KafkaVerdict::summary() const {
  std::string out = fmt::format("verdict: {}\n", to_string(verdict));
  out += kafka.summary();
  out += invariants.summary();
  for (const auto& why : vacuity)
    out += fmt::format("  proves nothing: {}\n", why);
  return out;
}

}  // namespace faultline::checker
