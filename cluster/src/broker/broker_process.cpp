#include "faultline/cluster/server/broker_process.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <asio.hpp>
#include <csignal>
#include <fstream>

#include "broker/broker.h"

#ifdef FAULTLINE_MUTANTS
#include "faultline/cluster/mutants.h"
#endif

namespace faultline::cluster {
namespace {

// A broker has two files per replica (its active segment and its index), so 100k partitions of
// RF 3 on 5 brokers have ~120k per broker. The logs' descriptor cache (log/open_file_cache.h)
// keeps only as many open as the limit allows and reopens the rest on use; the higher the limit,
// the fewer reopens. So raise it, as Kafka's operators are told to: as root (CAP_SYS_RESOURCE) to
// the kernel's fs.nr_open, otherwise to the hard limit. Logged, so a broker says what it had.
void raise_open_file_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return;
  rlim_t nr_open = 0;
  std::ifstream("/proc/sys/fs/nr_open") >> nr_open;
  if (nr_open > lim.rlim_max) {
    rlimit raised{nr_open, nr_open};
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0)
      lim = raised;
  }
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0)
      ::getrlimit(RLIMIT_NOFILE, &lim);
  }
  spdlog::info("event=open_file_limit soft={} hard={}", lim.rlim_cur, lim.rlim_max);
}

}  // namespace

int run_broker_process(const BrokerConfig& config) {
  raise_open_file_limit();
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
