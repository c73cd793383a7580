// The controller process: ControllerService behind the internal RPC listener, with its tick timer,
// metadata long-polls for brokers, Prometheus metrics and signal handling.
#pragma once

#include "faultline/cluster/config.h"

namespace faultline::cluster {

// Runs until SIGTERM/SIGINT. Returns the process exit code (0 clean stop, 1 on a start-up error).
int run_controller_process(const ControllerConfig& config);

}  // namespace faultline::cluster
