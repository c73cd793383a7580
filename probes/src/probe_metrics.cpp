#include "probe_metrics.h"

#include <string>

namespace faultline::probes {

namespace {

std::string label(BrokerId b) {
  return std::to_string(b.value());
}

// 100 µs .. 5 s: a probe on a quiet network answers in well under a millisecond; a timed out one
// is not observed at all (faultline_probe_up says so).
prometheus::Histogram::BucketBoundaries probe_buckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0};
}

}  // namespace

ProbeMetrics::ProbeMetrics(prometheus::Registry& registry)
    : up_(prometheus::BuildGauge()
              .Name("faultline_probe_up")
              .Help("1 when the latest probe of the broker's client listener succeeded")
              .Register(registry)),
      latency_(prometheus::BuildHistogram()
                   .Name("faultline_probe_latency_seconds")
                   .Help("Connect + BrokerHealth round trip of successful probes")
                   .Register(registry)),
      failures_(prometheus::BuildCounter()
                    .Name("faultline_probe_failures_total")
                    .Help("Failed probes of the broker's client listener")
                    .Register(registry)),
      storage_(prometheus::BuildGauge()
                   .Name("faultline_probe_storage_fsync_seconds")
                   .Help("The broker's latest storage canary append+fsync latency, as read")
                   .Register(registry)),
      decisions_(prometheus::BuildCounter()
                     .Name("faultline_health_decisions_total")
                     .Help("Demotions and promotions the controller carried out, by reason")
                     .Register(registry)),
      decision_failures_(prometheus::BuildCounter()
                             .Name("faultline_health_decision_failures_total")
                             .Help("Decisions the controller refused or never received")
                             .Register(registry)),
      demoted_(prometheus::BuildGauge()
                   .Name("faultline_health_demoted")
                   .Help("1 while this prober has the broker demoted")
                   .Register(registry)),
      rounds_(prometheus::BuildCounter()
                  .Name("faultline_probe_rounds_total")
                  .Help("Probing rounds; vantage_point=suspect when so many brokers failed at "
                        "once that the prober blamed itself and decided nothing")
                  .Register(registry)) {}

void ProbeMetrics::probe(BrokerId broker, bool ok, std::chrono::microseconds latency) {
  up_.Add({{"broker", label(broker)}}).Set(ok ? 1 : 0);
  auto& failures = failures_.Add({{"broker", label(broker)}});  // present from the first round
  if (!ok)
    failures.Increment();
  if (ok) {
    latency_.Add({{"broker", label(broker)}}, probe_buckets())
        .Observe(std::chrono::duration<double>(latency).count());
  }
}

void ProbeMetrics::storage(BrokerId broker, std::chrono::microseconds latency) {
  storage_.Add({{"broker", label(broker)}}).Set(std::chrono::duration<double>(latency).count());
}

void ProbeMetrics::decision(const Decision& d) {
  decisions_
      .Add({{"action", std::string(to_string(d.action))},
            {"reason", std::string(to_string(d.reason))}})
      .Increment();
}

void ProbeMetrics::decision_failed(const Decision& d) {
  decision_failures_.Add({{"action", std::string(to_string(d.action))}}).Increment();
}

void ProbeMetrics::demoted(BrokerId broker, bool demoted) {
  demoted_.Add({{"broker", label(broker)}}).Set(demoted ? 1 : 0);
}

void ProbeMetrics::round(bool vantage_point_suspect) {
  rounds_.Add({{"vantage_point", vantage_point_suspect ? "suspect" : "ok"}}).Increment();
}

}  // namespace faultline::probes
