// What the prober sees, as plain values: the input of the health policy (health_policy.h).
//
// The I/O shell (the reachability prober in the `probe` namespace and the reader of each broker's
// storage reports) turns sockets and metrics into these records; nothing here touches a clock or a
// socket, so a recorded sequence of rounds replays to the same decisions.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "faultline/cluster/types.h"

namespace faultline::probes {

using cluster::BrokerId;
// The policy works on monotonic time only: wall-clock jumps must never demote or promote anyone.
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// One reachability probe of one broker's client (`ext`) listener: connect plus a cheap request.
struct ReachabilityObservation {
  BrokerId broker;
  bool ok = false;
  // Time to the answer when ok; time until the prober gave up when not.
  std::chrono::microseconds latency{0};
  // Why the probe failed ("connect: ECONNREFUSED", "timeout" ...); empty when ok.
  std::string error;
  TimePoint at{};
};

// One append+fsync latency sample, measured by the broker on its own canary file and reported to
// the prober. A broker whose fsync is stuck should report the time the pending fsync has taken so
// far: a fully stalled disk then shows up as slow instead of going silent.
// A canary that fails (EIO, ENOSPC, a read-only remount) reports its error instead: each answer
// that carries one is an observation with `error` set (and no latency).
struct StorageObservation {
  BrokerId broker;
  std::chrono::microseconds append_fsync_latency{0};
  TimePoint at{};
  std::string error;
};

// Everything learnt in one probing interval. The prober probes every broker once per round, so a
// round is also the unit of the vantage-point guard: "how many brokers failed at the same time".
struct ProbeRound {
  TimePoint now{};
  // At most one per broker is expected; a broker absent from a round (a probe that never ran, e.g.
  // the prober was busy) is neither a success nor a failure.
  std::vector<ReachabilityObservation> reachability;
  // Storage samples that arrived since the previous round, any number per broker.
  std::vector<StorageObservation> storage;
};

}  // namespace faultline::probes
