// The broker's storage canary (ARCHITECTURE.md §4, probes/README.md): every interval it appends a
// small record to a file in the data dir and fsyncs it, and keeps the latency of the last few, so
// the prober can tell a broker whose disk is much slower than its peers' from a healthy one.
//
// It runs on a thread of its own: a stalled disk stalls only the canary, and the latency of the
// write in progress (`pending`) keeps growing where the prober can read it, instead of the
// canary going silent.
//
// Threading: start()/stop() from the owner's thread; report() from any thread (a short lock that
// is never held across I/O). Metrics are prometheus-cpp objects (thread-safe).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>

#include "faultline/cluster/metrics.h"
#include "faultline/cluster/wire/messages.h"

namespace faultline::cluster {

class StorageCanary {
 public:
  struct Options {
    std::filesystem::path file;
    std::chrono::milliseconds interval{1000};
    size_t record_bytes = 4096;         // one page: what a small produce batch costs
    uint64_t max_file_bytes = 1 << 20;  // then the file starts over (outside the measured part)
    size_t keep_samples = 32;           // reported per answer
  };

  StorageCanary(Options options, BrokerMetrics& metrics);
  ~StorageCanary();
  StorageCanary(const StorageCanary&) = delete;
  StorageCanary& operator=(const StorageCanary&) = delete;

  // Opens (creates) the canary file and starts the thread; the error names the failing call.
  std::error_code start();
  void stop();

  // The canary part of a BrokerHealthResponse (broker_id and error are the caller's).
  void report(BrokerHealthResponse& out) const;
  // What a heartbeat carries: the latest sample's latency, or the running sample's time so far
  // when that is longer (nullopt before the first sample); and the latest error.
  std::optional<std::chrono::microseconds> current_latency() const;
  std::string current_error() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Sample {
    int64_t seq;
    std::chrono::microseconds latency;
    Clock::time_point completed_at;
  };

  void run();
  // One append + fsync; returns the error message (empty when fine).
  std::string append_and_sync(int64_t seq);

  Options options_;
  BrokerMetrics& metrics_;
  uint64_t run_id_;
  int fd_ = -1;
  uint64_t file_bytes_ = 0;
  std::string record_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::deque<Sample> recent_;
  int64_t pending_seq_ = 0;
  Clock::time_point pending_since_{};
  std::string last_error_;
  std::thread thread_;
};

}  // namespace faultline::cluster
