// What the run's workload needs from a client library: one synchronous send and one poll of a
// partition of the run's topic, each ending the way the history records it. The workload owns
// the history; a client only says what happened, so every implementation (faultline's own
// client, librdkafka) is judged by the same checker on the same terms.
//
// Threading: one client per workload thread (producer, consumer, final reader); a client is not
// shared. The factory is called from those threads concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "faultline/checker/history.h"
#include "faultline/cluster/client/client.h"

namespace faultline::chaos {

struct SendOutcome {
  // ok: acknowledged; fail: certainly not appended; info: may have been appended.
  checker::Outcome outcome = checker::Outcome::info;
  std::optional<int64_t> offset;        // ok: where the value was appended
  std::optional<int32_t> leader_epoch;  // ok: the epoch it was acknowledged under, if known
  std::optional<int32_t> leader;        // ok: the broker that acknowledged it, if known
  std::string error;                    // fail/info: the client's name for what went wrong
};

struct PollOutcome {
  std::string error;                                     // empty: ok
  std::vector<std::pair<int64_t, std::string>> records;  // (offset, value), in offset order
};

class WorkloadClient {
 public:
  virtual ~WorkloadClient() = default;
  // Sends `value` to `partition` of the run's topic and waits for its outcome.
  virtual SendOutcome send(int partition, const std::string& value, bool acks_all) = 0;
  // Records of `partition` from offset `from` on; waits up to `max_wait` for some. With
  // `final_read`, reads everything up to the partition's current end (high watermark) or reports
  // an error: an ok final read with no records says the log ends at `from`.
  virtual PollOutcome poll(int partition, int64_t from, std::chrono::milliseconds max_wait,
                           bool final_read) = 0;
};

using WorkloadClientFactory = std::function<std::unique_ptr<WorkloadClient>()>;

// faultline's own client (cluster::SyncClient) on the brokers' client listener.
class FaultlineWorkloadClient final : public WorkloadClient {
 public:
  FaultlineWorkloadClient(cluster::ClientConfig config, std::string topic);
  SendOutcome send(int partition, const std::string& value, bool acks_all) override;
  PollOutcome poll(int partition, int64_t from, std::chrono::milliseconds max_wait,
                   bool final_read) override;

 private:
  cluster::SyncClient client_;
  std::string topic_;
};

// The outcome of a faultline send as the history records it: acknowledged → ok, a definite
// failure → fail, anything else → info (cluster/client/client.h).
SendOutcome faultline_send_outcome(const cluster::SendResult& r);

}  // namespace faultline::chaos
