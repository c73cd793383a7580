// Delta debugging (Zeller and Hildebrandt, "Simplifying and Isolating Failure-Inducing Input",
// 2002): try halves, then complements of finer and finer chunks, until the failing set is
// 1-minimal. Pure: the predicate is the only effect.
#include <algorithm>
#include <optional>
#include <set>

#include "faultline/chaos/runner/shrink.h"

namespace faultline::chaos {
namespace {

// `s` in `n` contiguous chunks of nearly equal size (n ≤ |s|).
std::vector<StepSet> split(const StepSet& s, size_t n) {
  std::vector<StepSet> chunks;
  size_t start = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t size = (s.size() - start) / (n - i);
    chunks.emplace_back(s.begin() + static_cast<ptrdiff_t>(start),
                        s.begin() + static_cast<ptrdiff_t>(start + size));
    start += size;
  }
  return chunks;
}

StepSet without(const StepSet& s, const StepSet& chunk) {
  StepSet out;
  std::set_difference(s.begin(), s.end(), chunk.begin(), chunk.end(), std::back_inserter(out));
  return out;
}

}  // namespace

DdminResult ddmin(const StepSet& failing, const std::function<bool(const StepSet&)>& fails,
                  int max_tests) {
  DdminResult r;
  r.minimal = failing;
  std::sort(r.minimal.begin(), r.minimal.end());
  std::set<StepSet> tested{r.minimal};
  // nullopt: out of tests. A subset tested before passed (a failing one became `minimal`).
  auto test = [&](const StepSet& s) -> std::optional<bool> {
    if (s.empty() || tested.count(s))
      return false;
    if (r.tests >= max_tests) {
      r.exhausted = true;
      return std::nullopt;
    }
    tested.insert(s);
    ++r.tests;
    return fails(s);
  };
  size_t n = 2;
  while (r.minimal.size() >= 2) {
    const auto chunks = split(r.minimal, std::min(n, r.minimal.size()));
    std::optional<StepSet> smaller;
    size_t next_n = 2;
    for (const auto& chunk : chunks) {
      auto f = test(chunk);
      if (!f)
        return r;
      if (*f) {
        smaller = chunk;
        break;
      }
    }
    if (!smaller) {
      for (const auto& chunk : chunks) {
        const StepSet rest = without(r.minimal, chunk);
        auto f = test(rest);
        if (!f)
          return r;
        if (*f) {
          smaller = rest;
          next_n = std::max<size_t>(chunks.size() - 1, 2);
          break;
        }
      }
    }
    if (smaller) {
      r.minimal = *smaller;
      n = next_n;
      continue;
    }
    if (chunks.size() >= r.minimal.size())
      break;  // every single step is needed
    n = std::min(chunks.size() * 2, r.minimal.size());
  }
  return r;
}

}  // namespace faultline::chaos
