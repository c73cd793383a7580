// faultline-probe's Prometheus metrics (ARCHITECTURE.md §6): what it saw of every broker and what
// it decided. Names start with faultline_ and carry their unit.
//
// Threading: prometheus-cpp metrics are thread-safe; the exposer serves scrapes on its own threads.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>

#include "faultline/probes/decision.h"

namespace faultline::probes {

class ProbeMetrics {
 public:
  explicit ProbeMetrics(prometheus::Registry& registry);

  // faultline_probe_up{broker} (1/0, the latest probe), faultline_probe_latency_seconds{broker}
  // (a histogram of successful probes: connect + BrokerHealth round trip) and
  // faultline_probe_failures_total{broker}.
  void probe(BrokerId broker, bool ok, std::chrono::microseconds latency);
  // faultline_probe_storage_fsync_seconds{broker}: the broker's latest canary sample as read.
  void storage(BrokerId broker, std::chrono::microseconds latency);
  // faultline_health_decisions_total{action,reason}: decisions the controller carried out.
  void decision(const Decision& d);
  // faultline_health_decision_failures_total{action}: refused or unreachable controller.
  void decision_failed(const Decision& d);
  // faultline_health_demoted{broker}: 1 while this prober has the broker demoted.
  void demoted(BrokerId broker, bool demoted);
  // faultline_probe_rounds_total{vantage_point="ok"|"suspect"}.
  void round(bool vantage_point_suspect);

 private:
  prometheus::Family<prometheus::Gauge>& up_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Counter>& failures_;
  prometheus::Family<prometheus::Gauge>& storage_;
  prometheus::Family<prometheus::Counter>& decisions_;
  prometheus::Family<prometheus::Counter>& decision_failures_;
  prometheus::Family<prometheus::Gauge>& demoted_;
  prometheus::Family<prometheus::Counter>& rounds_;
};

}  // namespace faultline::probes
