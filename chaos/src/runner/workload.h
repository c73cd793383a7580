// The run's workload: producers that send unique values to the topic's partitions (each producer
// process to one partition, `producers` of them per partition) and a consumer
// that reads them back, every operation recorded in the history (ok / fail / info), then a final
// read of every partition from offset 0 to its end. Which client library does the talking is the
// factory's business (workload_client.h); the history is the same whatever it is.
//
// Threading: start() spawns the producer and consumer threads, each with its own client from the
// factory, stop() joins them; the final read runs on the caller's thread. Acknowledgement times
// are kept per partition for the client-observed unavailability around each fault.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "faultline/chaos/runner/scenario.h"
#include "faultline/checker/recorder.h"
#include "workload_client.h"

namespace faultline::chaos {

inline constexpr const char* kRunTopic = "faultline";

class Workload {
 public:
  using Clock = std::chrono::steady_clock;
  struct Counts {
    std::atomic<int64_t> ok{0}, fail{0}, info{0};
  };

  Workload(WorkloadShape shape, WorkloadClientFactory clients, uint64_t seed,
           checker::HistoryRecorder& history);
  ~Workload();
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  void start();
  void stop();
  // Reads every partition from offset 0 until a read returns nothing new.
  void final_read();

  const Counts& counts() const { return counts_; }
  // The longest stretch without an acknowledged write to any of `partitions` (all when empty)
  // within [from, to], in milliseconds: the worst partition's.
  double longest_gap_ms(const std::vector<int>& partitions, Clock::time_point from,
                        Clock::time_point to) const;

 private:
  void produce(int process, int partition, uint64_t seed);
  void record_send(const checker::HistoryRecorder::OpHandle& op, int partition, int64_t value,
                   const SendOutcome& r);
  void poll_all(int process, WorkloadClient& client, std::vector<int64_t>& next, bool final_read);
  std::string value_text(int64_t value) const;

  WorkloadShape shape_;
  WorkloadClientFactory clients_;
  uint64_t seed_;
  checker::HistoryRecorder& history_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  Counts counts_;
  mutable std::mutex mu_;
  std::map<int, std::vector<Clock::time_point>> acks_;  // per partition
};

}  // namespace faultline::chaos
