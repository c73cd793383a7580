#include "workload.h"

#include <algorithm>
#include <random>

namespace faultline::chaos {

using namespace std::chrono_literals;

namespace {
// The consumer's and the final reader's process ids in the history, above every producer's
// (at most 16 per partition × 256 partitions).
constexpr int kConsumerProcess = 100000;  // + the consumer's index
constexpr int kFinalReaderProcess = 200000;
}  // namespace

Workload::Workload(WorkloadShape shape, WorkloadClientFactory clients, uint64_t seed,
                   checker::HistoryRecorder& history)
    : shape_(shape), clients_(std::move(clients)), seed_(seed), history_(history) {}

Workload::~Workload() {
  stop();
}

void Workload::start() {
  stop_ = false;
  // Each producer process sends to one partition only: a partition that cannot take writes
  // (waiting for its ISR to shrink, leaderless) holds up its own producers and no one else's, so
  // the gaps between acknowledgements measure each partition's availability on its own.
  for (int k = 0; k < shape_.producers; ++k)
    for (int partition = 0; partition < shape_.partitions; ++partition) {
      const int process = k * shape_.partitions + partition;
      threads_.emplace_back([this, process, partition] {
        produce(process, partition, seed_ + static_cast<uint64_t>(process));
      });
    }
  for (int c = 0; c < shape_.consumers; ++c)
    threads_.emplace_back([this, c] {
      auto client = clients_();
      std::vector<int64_t> next(shape_.partitions, 0);
      while (!stop_)
        poll_all(kConsumerProcess + c, *client, next, false);
    });
}

void Workload::stop() {
  stop_ = true;
  for (auto& t : threads_)
    if (t.joinable())
      t.join();
  threads_.clear();
}

std::string Workload::value_text(int64_t value) const {
  std::string text = std::to_string(value);
  // Padding after a space: the reader parses the leading number and ignores the rest.
  if (static_cast<int>(text.size()) + 1 < shape_.value_bytes)
    text += " " + std::string(shape_.value_bytes - text.size() - 1, 'x');
  return text;
}

void Workload::produce(int process, int partition, uint64_t seed) {
  auto client = clients_();
  std::mt19937_64 rng(seed);
  // A producer starts at a seeded moment within its first pace interval, so the producers of a
  // paced workload do not send in lockstep.
  const auto pace = shape_.rate_per_s > 0 ? std::chrono::nanoseconds(1s) / shape_.rate_per_s
                                          : std::chrono::nanoseconds(0);
  auto next_send = Clock::now();
  if (pace.count() > 0)
    next_send +=
        std::chrono::nanoseconds(std::uniform_int_distribution<int64_t>(0, pace.count() - 1)(rng));
  for (int64_t n = 0; !stop_; ++n) {
    if (pace.count() > 0) {
      std::this_thread::sleep_until(next_send);
      next_send += pace;
    }
    const int64_t value = int64_t(process) * 1'000'000'000 + n;  // unique across the run
    checker::OpFields in;
    in.partition = checker::PartitionId{partition};
    in.value = value;
    auto op = history_.invoke(checker::ProcessId{process}, checker::Function::send, in);
    if (!op)
      continue;
    record_send(*op, partition, value, client->send(partition, value_text(value), shape_.acks_all));
  }
}

void Workload::record_send(const checker::HistoryRecorder::OpHandle& op, int partition,
                           int64_t value, const SendOutcome& r) {
  checker::OpFields done;
  done.partition = checker::PartitionId{partition};
  done.value = value;
  if (r.outcome == checker::Outcome::ok) {
    // A client that cannot tell the epoch or the broker leaves them out; the checker then skips
    // the acknowledgement checks that need them for this op (split-brain-ack, zombie-ack).
    if (r.offset)
      done.offset = checker::Offset{*r.offset};
    if (r.leader_epoch)
      done.epoch = checker::LeaderEpoch{*r.leader_epoch};
    if (r.leader)
      done.leader = checker::BrokerId{*r.leader};
    history_.complete(op, checker::Outcome::ok, done);
    {
      std::lock_guard lock(mu_);
      acks_[partition].push_back(Clock::now());
    }
    ++counts_.ok;
    return;
  }
  done.error = r.error;
  history_.complete(op, r.outcome, done);
  ++(r.outcome == checker::Outcome::fail ? counts_.fail : counts_.info);
  std::this_thread::sleep_for(20ms);
}

void Workload::poll_all(int process, WorkloadClient& client, std::vector<int64_t>& next,
                        bool final_read) {
  for (int p = 0; p < shape_.partitions; ++p) {
    checker::OpFields in;
    in.partition = checker::PartitionId{p};
    in.final_read = final_read;
    auto op = history_.invoke(checker::ProcessId{process}, checker::Function::poll, in);
    if (!op)
      continue;
    auto r = client.poll(p, next[p], final_read ? 0ms : 100ms, final_read);
    checker::OpFields done = in;
    if (!r.error.empty()) {
      done.error = r.error;
      history_.complete(*op, checker::Outcome::fail, done);
      std::this_thread::sleep_for(20ms);
      continue;
    }
    for (const auto& [offset, text] : r.records) {
      int64_t v = 0;
      try {
        v = std::stoll(text);
      } catch (const std::exception&) {
      }
      done.records.push_back({checker::Offset{offset}, v});
      next[p] = offset + 1;
    }
    history_.complete(*op, checker::Outcome::ok, done);
  }
}

void Workload::final_read() {
  auto reader = clients_();
  std::vector<int64_t> next(shape_.partitions, 0);
  // A poll returns at most 1 MiB: keep going while records come back.
  for (int round = 0; round < 1000; ++round) {
    auto before = next;
    poll_all(kFinalReaderProcess, *reader, next, true);
    if (round > 0 && before == next)
      break;
  }
}

double Workload::longest_gap_ms(const std::vector<int>& partitions, Clock::time_point from,
                                Clock::time_point to) const {
  std::lock_guard lock(mu_);
  std::vector<int> which = partitions;
  if (which.empty())
    for (int p = 0; p < shape_.partitions; ++p)
      which.push_back(p);
  Clock::duration worst{};
  for (int p : which) {
    auto it = acks_.find(p);
    std::vector<Clock::time_point> times =
        it == acks_.end() ? std::vector<Clock::time_point>{} : it->second;
    std::sort(times.begin(), times.end());
    Clock::time_point last = from;
    for (auto t : times) {
      if (t < from)
        continue;
      if (t > to)
        break;
      worst = std::max(worst, t - last);
      last = t;
    }
    worst = std::max(worst, to - last);
  }
  return std::chrono::duration<double, std::milli>(worst).count();
}

}  // namespace faultline::chaos
