#include "broker/storage_canary.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace faultline::cluster {

namespace {

std::string errno_message(const char* call) {
  return std::string(call) + ": " + std::strerror(errno);
}

uint64_t random_run_id() {
  std::random_device rd;
  uint64_t id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return id == 0 ? 1 : id;
}

}  // namespace

StorageCanary::StorageCanary(Options options, BrokerMetrics& metrics)
    : options_(std::move(options)), metrics_(metrics), run_id_(random_run_id()) {
  record_.assign(options_.record_bytes, 'c');
  record_.back() = '\n';
}

StorageCanary::~StorageCanary() {
  stop();
  if (fd_ >= 0)
    ::close(fd_);
}

std::error_code StorageCanary::start() {
  fd_ = ::open(options_.file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    std::error_code ec(errno, std::generic_category());
    spdlog::error("event=storage_canary_failed call=open path={} error=\"{}\"",
                  options_.file.string(), ec.message());
    return ec;
  }
  thread_ = std::thread([this] { run(); });
  return {};
}

void StorageCanary::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

std::string StorageCanary::append_and_sync(int64_t seq) {
  // The sequence number at the front makes every record distinct (no dedup by any layer below).
  auto prefix = std::to_string(seq) + " ";
  std::memcpy(record_.data(), prefix.data(), std::min(prefix.size(), record_.size()));
  size_t done = 0;
  while (done < record_.size()) {
    ssize_t n = ::write(fd_, record_.data() + done, record_.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno_message("write");
    }
    done += static_cast<size_t>(n);
  }
  file_bytes_ += record_.size();
  if (::fsync(fd_) != 0)
    return errno_message("fsync");
  return {};
}

void StorageCanary::run() {
  int64_t seq = 0;
  auto next = Clock::now();
  while (true) {
    {
      std::unique_lock lock(mu_);
      if (wake_.wait_until(lock, next, [&] { return stopping_; }))
        return;
      pending_seq_ = ++seq;
      pending_since_ = Clock::now();
    }
    // A slot that came due while the previous sample was still running is not made up for: the
    // prober accounts for overrun slots from the latencies (probes/src/storage_reports.h).
    next = std::max(next + options_.interval, Clock::now());
    if (file_bytes_ + record_.size() > options_.max_file_bytes) {
      // Start the file over; not measured, but still `pending`, so a stall here shows too.
      if (::ftruncate(fd_, 0) == 0)
        file_bytes_ = 0;
    }
    const auto started = Clock::now();
    std::string error = append_and_sync(seq);
    const auto completed = Clock::now();
    const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(completed - started);
    {
      std::lock_guard lock(mu_);
      pending_seq_ = 0;
      if (!error.empty()) {
        // A failed sample is no latency figure; the error is reported until a sample succeeds.
        if (error != last_error_) {
          spdlog::error("event=storage_canary_failed path={} error=\"{}\"", options_.file.string(),
                        error);
        }
        last_error_ = std::move(error);
        continue;
      }
      last_error_.clear();
      recent_.push_back({seq, latency, completed});
      while (recent_.size() > options_.keep_samples)
        recent_.pop_front();
    }
    const double seconds = std::chrono::duration<double>(latency).count();
    metrics_.storage_canary.Observe(seconds);
    metrics_.storage_canary_last.Set(seconds);
  }
}

void StorageCanary::report(BrokerHealthResponse& out) const {
  const auto now = Clock::now();
  auto us = [](Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  };
  std::lock_guard lock(mu_);
  out.canary_run = run_id_;
  out.canary_interval_ms = static_cast<int32_t>(options_.interval.count());
  out.samples.clear();
  out.samples.reserve(recent_.size());
  for (const auto& s : recent_) {
    out.samples.push_back({s.seq, s.latency.count(), us(now - s.completed_at)});
  }
  out.pending_seq = pending_seq_;
  out.pending_us = pending_seq_ != 0 ? us(now - pending_since_) : 0;
  out.canary_error = last_error_;
}

std::optional<std::chrono::microseconds> StorageCanary::current_latency() const {
  std::lock_guard lock(mu_);
  std::optional<std::chrono::microseconds> latency;
  if (!recent_.empty())
    latency = recent_.back().latency;
  if (pending_seq_ != 0) {
    auto running =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - pending_since_);
    if (!latency || running > *latency)
      latency = running;
  }
  return latency;
}

std::string StorageCanary::current_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

}  // namespace faultline::cluster
