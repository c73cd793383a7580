// The broker process: partition logs, replication (leader and follower sides), the client and
// internal listeners, registration/heartbeats/metadata pulls against the controller, controlled
// shutdown on SIGTERM, and Prometheus metrics.
#pragma once

#include "faultline/cluster/config.h"

namespace faultline::cluster {

// Runs until stopped: SIGTERM triggers a controlled shutdown (ARCHITECTURE.md §2 item 13), SIGINT a
// plain stop. Returns the process exit code.
int run_broker_process(const BrokerConfig& config);

}  // namespace faultline::cluster
