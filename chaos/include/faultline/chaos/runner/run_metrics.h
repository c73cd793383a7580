// The harness's own Prometheus metrics during `faultline run` (ARCHITECTURE.md §6): how many faults
// of each kind were injected, and the client-observed write unavailability each one caused.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

namespace faultline::chaos {

class RunMetrics {
 public:
  explicit RunMetrics(prometheus::Registry& registry);
  // faultline_faults_total{kind}
  void fault_injected(const std::string& kind);
  // faultline_partition_unavailable_seconds{fault}
  void unavailability(const std::string& fault, double seconds);

 private:
  prometheus::Family<prometheus::Counter>& faults_;
  prometheus::Family<prometheus::Histogram>& unavailable_;
};

}  // namespace faultline::chaos
