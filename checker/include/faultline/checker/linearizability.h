// Linearizability checking: Wing & Gong's search as improved by Lowe (a doubly linked list of
// call/return entries with O(1) lift and unlift, and a memo of (linearized set, model state) so no
// configuration is explored twice), with P-compositionality: a history of independent keys is
// linearizable iff each key's sub-history is, so keys are checked one at a time.
//
// Operations with an unknown outcome (info, or still open at the end) may or may not have taken
// effect, at any point after their invocation: they get a call entry and no return entry, so the
// search may linearize them anywhere later or never. Reads with an unknown outcome, and writes that
// certainly failed, have no effect on the state and are left out.
#pragma once

#include <faultline/checker/history.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace faultline::checker {

enum class ModelKind : uint8_t {
  cas_register,  // read / write / cas on one register per key (nil initially); fail cas = mismatch
  kv,            // get / put / append on string values per key ("" initially)
  log,           // append a value / read the whole log (empty initially)
};
std::string_view to_string(ModelKind m) noexcept;

enum class Verdict : uint8_t { valid, invalid, unknown };
std::string_view to_string(Verdict v) noexcept;

struct LinearizabilityOptions {
  bool partition_by_key = true;
  // Partitions are checked by this many threads (0: one per core); the verdict and the reported
  // partition do not depend on it.
  unsigned threads = 0;
  // Give up with Verdict::unknown at this point in time.
  std::optional<std::chrono::steady_clock::time_point> deadline;
};

// The result for one key (or for the whole history when not partitioned).
struct PartitionVerdict {
  std::string key;
  Verdict verdict = Verdict::valid;
  std::vector<std::size_t> ops;  // indices into History::ops considered for this key
  // The longest linearizable prefix the search found, in linearization order, and the op whose
  // return could not be preceded by a linearization point (the one that cannot be placed).
  std::vector<std::size_t> longest_prefix;
  std::optional<std::size_t> stuck_op;
  std::string stuck_description;  // e.g. `process 3 cas [1 4] (line 97)`
};

struct LinearizabilityResult {
  Verdict verdict = Verdict::valid;
  ModelKind model = ModelKind::cas_register;
  std::size_t ops = 0;
  std::size_t partitions = 0;
  // The smallest failing partition (fewest ops, first key on a tie), when the verdict is invalid.
  // Partitions are checked smallest first; larger ones stop once a smaller one has failed.
  std::optional<PartitionVerdict> failing;

  nlohmann::json to_json(const History& h) const;
  std::string summary() const;
};

LinearizabilityResult check_linearizable(const History& history, ModelKind model,
                                         const LinearizabilityOptions& options = {});

}  // namespace faultline::checker
