// The broker's log directory failure, apart from the handlers that detect it.
#include <spdlog/spdlog.h>

#include "broker/broker.h"

namespace faultline::cluster {

void Broker::mark_log_dir_offline(const TopicPartition& tp, const std::error_code& ec) {
  // Once: the first failing log decides; the others fail for the same disk.
  if (log_dir_offline_.exchange(true))
    return;
  spdlog::error("event=log_dir_offline dir={} tp={} error=\"{}\"", config_.data_dir.string(), tp,
                ec.message());
}

}  // namespace faultline::cluster
