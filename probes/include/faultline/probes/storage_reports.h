// Turns what brokers report about their storage canary (cluster's BrokerHealthResponse: recent
// append+fsync samples and the sample in progress) into the StorageObservations the health
// policy judges (observation.h). Pure: no clock, no I/O; the prober passes the time it received
// each answer.
//
// Why more than a copy of the samples: a canary whose fsync is stuck reports nothing new until it
// returns, and a stalled disk must look slow, not silent (probes/README.md). The canary takes one
// sample per canary interval; every slot that came due while a sample was still running (in
// progress, or finished late) counts as one more sample, whose latency is how long the running
// one had been pending when that slot came due. So a broker yields about one sample per interval
// whatever its disk does, the policy's window spans a fixed time, and a fsync stuck for 10 s at a
// 200 ms interval is 50 slow samples instead of one. These slot samples depend only on what the
// broker measured, not on when the prober asked. A canary whose writes fail (EIO) reports its
// error: every such answer is one failed observation.
//
// Not thread-safe; one per prober.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "faultline/cluster/wire/messages.h"
#include "faultline/probes/observation.h"

namespace faultline::probes {

class StorageReportReader {
 public:
  struct Result {
    // New since the previous answer of this broker, in time order.
    std::vector<StorageObservation> observations;
    // Why the answer was not used (inconsistent numbers); empty when it was.
    std::string problem;
  };

  // `answer` came from `broker` at `received_at`. The broker's times are converted to the
  // prober's clock by their age at the answer (the network delay is ignored: it is tiny next to
  // the latencies that matter, and never makes a sample look slower).
  Result read(BrokerId broker, const cluster::BrokerHealthResponse& answer, TimePoint received_at);

 private:
  struct BrokerState {
    uint64_t canary_run = 0;
    int64_t last_seq = 0;       // the newest completed sample already passed on
    int64_t overrun_seq = 0;    // the sample whose overrun slots were passed on ...
    int64_t overrun_slots = 0;  // ... and how many of them
    TimePoint last_at{};        // observations leave in time order, even across answers
  };
  std::map<BrokerId, BrokerState> brokers_;
};

}  // namespace faultline::probes
