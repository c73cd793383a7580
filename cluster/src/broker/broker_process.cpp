#include "faultline/cluster/server/broker_process.h"

#include <spdlog/spdlog.h>

#include <asio.hpp>
#include <csignal>

#include "broker/broker.h"

#ifdef FAULTLINE_MUTANTS
#include "faultline/cluster/mutants.h"
#endif

namespace faultline::cluster {

int run_broker_process(const BrokerConfig& config) {
  asio::io_context io;
  MetricsEndpoint metrics(config.internal_listener.host, config.metrics_port);
  Broker broker(io, config, metrics);
  if (!broker.start())
    return 1;
  asio::signal_set signals(io, SIGTERM, SIGINT);
  std::function<void(const std::error_code&, int)> on_signal;
  on_signal = [&](const std::error_code& ec, int sig) {
    if (ec)
      return;
#ifdef FAULTLINE_MUTANTS
    // Mutant exit-without-handover: SIGTERM stops the broker at once, without asking the
    // controller to move its leadership first (clients wait a whole session timeout).
    if (sig == SIGTERM && mutant_active(Mutant::exit_without_handover)) {
      spdlog::info("event=stopping signal={}", sig);
      broker.stop();
      return;
    }
#endif
    if (sig == SIGTERM) {
      // Controlled shutdown: leave every ISR and hand leadership over before exiting.
      broker.begin_controlled_shutdown();
      signals.async_wait(on_signal);
    } else {
      spdlog::info("event=stopping signal={}", sig);
      broker.stop();
    }
  };
  signals.async_wait(on_signal);
  io.run();
  spdlog::info("event=broker_stopped broker={}", config.broker_id);
  return 0;
}

}  // namespace faultline::cluster
