#include "faultline/chaos/runner/run_metrics.h"

namespace faultline::chaos {

RunMetrics::RunMetrics(prometheus::Registry& registry)
    : faults_(prometheus::BuildCounter()
                  .Name("faultline_faults_total")
                  .Help("Faults injected by the harness, by kind")
                  .Register(registry)),
      unavailable_(prometheus::BuildHistogram()
                       .Name("faultline_partition_unavailable_seconds")
                       .Help("Client-observed write unavailability around each fault: the longest "
                             "gap between acknowledged writes from the injection until 5 s after "
                             "the heal")
                       .Register(registry)) {}

void RunMetrics::fault_injected(const std::string& kind) {
  faults_.Add({{"kind", kind}}).Increment();
}

void RunMetrics::unavailability(const std::string& fault, double seconds) {
  // Buckets from a quick handover (tens of ms) to a failover after a long session timeout.
  static const prometheus::Histogram::BucketBoundaries buckets = {
      0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30};
  unavailable_.Add({{"fault", fault}}, buckets).Observe(seconds);
}

}  // namespace faultline::chaos
