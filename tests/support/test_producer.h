// A background producer for integration tests: sends unique values one at a time to a partition
// and records each outcome (ok / fail / info) with when it completed, so a test can check that no
// acknowledged write was lost and measure how long writes were unavailable around a fault.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "faultline/cluster/client/client.h"

namespace faultline::testing {

class TestProducer {
 public:
  using Clock = std::chrono::steady_clock;
  struct Outcome {
    std::string value;
    cluster::SendResult result;
    Clock::time_point started;
    Clock::time_point completed;
  };

  TestProducer(cluster::ClientConfig config, cluster::TopicPartition tp, cluster::Acks acks,
               std::string prefix = "value-")
      : client_(std::move(config)), tp_(std::move(tp)), acks_(acks), prefix_(std::move(prefix)) {
    thread_ = std::thread([this] { run(); });
  }
  ~TestProducer() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
  }

  int acknowledged_count() const { return acked_.load(); }
  // Blocks until `n` more writes than now were acknowledged (or `timeout` passes).
  bool wait_for_more(int n, std::chrono::milliseconds timeout) const {
    int target = acked_.load() + n;
    auto deadline = Clock::now() + timeout;
    while (acked_.load() < target) {
      if (Clock::now() > deadline)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  // After stop(): every outcome in order.
  const std::vector<Outcome>& outcomes() const { return outcomes_; }
  std::vector<std::string> values(bool acknowledged) const {
    std::vector<std::string> out;
    for (const auto& o : outcomes_) {
      if (o.result.acknowledged() == acknowledged)
        out.push_back(o.value);
    }
    return out;
  }
  std::vector<Outcome> definite_failures() const {
    std::vector<Outcome> out;
    for (const auto& o : outcomes_) {
      if (!o.result.acknowledged() && o.result.definite)
        out.push_back(o);
    }
    return out;
  }
  // The longest time between two consecutive acknowledgements within [from, to]: the write
  // unavailability a client saw around a fault in that window.
  std::chrono::milliseconds longest_gap(Clock::time_point from, Clock::time_point to) const {
    Clock::time_point last = from;
    Clock::duration longest{};
    for (const auto& o : outcomes_) {
      if (!o.result.acknowledged() || o.completed < from)
        continue;
      if (o.completed > to)
        break;
      longest = std::max(longest, o.completed - last);
      last = o.completed;
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(longest);
  }

 private:
  void run() {
    for (int i = 0; !stop_; ++i) {
      Outcome o;
      o.value = prefix_ + std::to_string(i);
      o.started = Clock::now();
      std::vector<std::string> batch{o.value};
      o.result = client_.send(tp_, std::move(batch), acks_);
      o.completed = Clock::now();
      if (o.result.acknowledged())
        ++acked_;
      outcomes_.push_back(std::move(o));
    }
  }

  cluster::SyncClient client_;
  cluster::TopicPartition tp_;
  cluster::Acks acks_;
  std::string prefix_;
  std::atomic<bool> stop_{false};
  std::atomic<int> acked_{0};
  std::vector<Outcome> outcomes_;  // written by the thread only; read after stop()
  std::thread thread_;
};

}  // namespace faultline::testing
