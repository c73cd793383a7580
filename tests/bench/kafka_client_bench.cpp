// librdkafka against the brokers' Kafka listener, side by side with faultline's own client against
// its own listener, on the same kind of mini-cluster (loopback, real processes, LocalClusterOptions
// defaults: 3 brokers, min.insync.replicas 2, session timeout 2000 ms, heartbeat 200 ms, replica
// lag 2000 ms). Every topic has RF 3; every write is acks=all with 1 KiB values.
//   BM_ProduceBurst/{librdkafka,faultline}/N    a topic of 3 partitions; each iteration sends
//       N x 100 records round-robin over the partitions and waits for every acknowledgement.
//       librdkafka: linger.ms=5, its own batching (batch.size, batch.num.messages defaults),
//       idempotence off; latency per message, produce() to delivery report. faultline: N batches
//       of 100 records in flight on `Client` (as cluster_bench's BM_ProduceAcksAll); latency per
//       batch.
//   BM_ProduceStream/{librdkafka,librdkafka_100_per_batch,faultline}/N    the same without
//       draining: librdkafka produces with at most N x 100 messages unacknowledged (linger.ms=5,
//       as it is meant to be driven; with batch.num.messages=100 too, batches of faultline's
//       size, which are sent when full instead of after the linger); faultline keeps N batches of
//       100 in flight, sending the next as one is acknowledged.
//   BM_ProduceOneInFlight/{librdkafka,faultline}    one record at a time to partition 0, each
//       waited for (librdkafka with linger.ms=0; faultline's SyncClient).
//   BM_FailoverAfterKill/{librdkafka_defaults,librdkafka_tuned,faultline}    one-in-flight writes
//       to a 1-partition topic; kill -9 of its leader; the time from the kill to this client's
//       first write acknowledged by another broker. The broker is restarted and the ISR full again
//       before the next kill. Kills: --kills=N, else FAULTLINE_BENCH_KILLS, else 20.
// What each client was told on the way (librdkafka's error events and log lines, faultline's
// failed sends) is summed up on stderr. FAULTLINE_BENCH_RDKAFKA_DEBUG=<contexts> (e.g.
// "metadata,broker,msg") sets librdkafka's `debug` in the failover runs and echoes every log line
// and each kill with a timestamp to stderr, to see what librdkafka waited for (it costs time: not
// for the figures).
// Run from the build directory (it starts build/bin/faultline-*):
//   cd build && bench/kafka_client_bench
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "local_cluster.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
using testing::LocalCluster;
using Clock = std::chrono::steady_clock;
using Settings = std::vector<std::pair<std::string, std::string>>;

constexpr size_t kRecordBytes = 1024;
constexpr int kBatchRecords = 100;
constexpr int kPartitions = 3;
// A failover not over by then is counted as unrecovered (and as this long in the percentiles).
constexpr auto kGiveUp = 60s;

// What shortens librdkafka's failover here: a dead broker's reconnect backoff grows to 10 s by
// default (reconnect.backoff.max.ms), and a broker that was down for a previous kill may be the
// next leader; retries and periodic metadata refresh come sooner. The re-query of a partition
// whose leader is down runs once a second whatever the settings.
const Settings kTunedFailover = {{"retry.backoff.ms", "10"},
                                 {"reconnect.backoff.max.ms", "100"},
                                 {"topic.metadata.refresh.interval.ms", "1000"}};

// FAULTLINE_BENCH_RDKAFKA_DEBUG: librdkafka's debug contexts, or null.
const char* rdkafka_debug() {
  return std::getenv("FAULTLINE_BENCH_RDKAFKA_DEBUG");
}

// A line on stderr stamped with the steady clock, to line up with librdkafka's echoed log.
void echo(const std::string& line) {
  std::fprintf(stderr, "%.3f %s\n",
               std::chrono::duration<double>(Clock::now().time_since_epoch()).count(),
               line.c_str());
}

std::string describe(const Settings& settings) {
  std::string out;
  for (const auto& [k, v] : settings)
    out += (out.empty() ? "" : " ") + k + "=" + v;
  return out;
}

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

double percentile(std::vector<double> v, double q) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

void report(benchmark::State& state, const std::vector<double>& latencies_ms, int64_t records,
            int64_t failed) {
  state.SetBytesProcessed(records * static_cast<int64_t>(kRecordBytes));
  state.counters["p50_ms"] = percentile(latencies_ms, 0.50);
  state.counters["p99_ms"] = percentile(latencies_ms, 0.99);
  state.counters["failed"] = static_cast<double>(failed);
}

// Creates `topic` and waits for a full ISR everywhere; the partitions' leaders ("1,2,3"), or
// nullopt when that did not happen.
std::optional<std::string> create_topic(LocalCluster& cluster, const std::string& topic,
                                        int partitions) {
  SyncClient admin(cluster.client_config());
  if (admin.create_topic(topic, partitions, 3).error != errc::none)
    return std::nullopt;
  std::string leaders;
  for (int p = 0; p < partitions; ++p) {
    auto m = admin.wait_for_leader({topic, PartitionIndex{p}}, 10s,
                                   [](const PartitionMetadata& m) { return m.isr.size() == 3; });
    if (!m)
      return std::nullopt;
    leaders += (leaders.empty() ? "" : ",") + std::to_string(m->leader.value());
  }
  return leaders;
}

// Lines a client was told, counted with digit runs folded to '#' so that like lines add up.
// Thread-safe: librdkafka logs from its own threads.
class EventCounts {
 public:
  void add(std::string line) {
    std::string folded;
    for (char c : line) {
      bool digit = std::isdigit(static_cast<unsigned char>(c)) != 0;
      if (!digit)
        folded += c;
      else if (folded.empty() || folded.back() != '#')
        folded += '#';
    }
    std::lock_guard lock(mu_);
    ++counts_[folded];
  }
  // The `top` most frequent lines, to stderr (nothing when there were none).
  void print(const std::string& title, size_t top) const {
    std::lock_guard lock(mu_);
    if (counts_.empty())
      return;
    std::vector<std::pair<int64_t, std::string>> sorted;
    for (const auto& [line, n] : counts_)
      sorted.emplace_back(n, line);
    std::sort(sorted.rbegin(), sorted.rend());
    std::fprintf(stderr, "--- %s: %zu kinds of events\n", title.c_str(), sorted.size());
    for (size_t i = 0; i < std::min(top, sorted.size()); ++i)
      std::fprintf(stderr, "%8lld x %s\n", static_cast<long long>(sorted[i].first),
                   sorted[i].second.c_str());
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, int64_t> counts_;
};

// A librdkafka producer of one topic: acks=all, idempotence off, no compression (what the Kafka
// listener serves), then `settings`. Delivery reports are served by the calling thread (produce,
// drain, send_sync); error events and log lines go to `events`. Not movable: librdkafka keeps
// `this` as its opaque.
class RdProducer {
 public:
  RdProducer(const std::string& bootstrap, std::string topic, const Settings& settings,
             EventCounts& events)
      : topic_(std::move(topic)), events_(events) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    Settings all = {{"bootstrap.servers", bootstrap},
                    {"acks", "all"},
                    {"enable.idempotence", "false"},
                    {"compression.codec", "none"}};
    all.insert(all.end(), settings.begin(), settings.end());
    char err[512];
    for (const auto& [k, v] : all) {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
        throw std::runtime_error(k + "=" + v + ": " + err);
    }
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_dr_msg_cb(conf, &RdProducer::on_delivery);
    rd_kafka_conf_set_error_cb(conf, &RdProducer::on_error);
    rd_kafka_conf_set_log_cb(conf, &RdProducer::on_log);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk_ == nullptr)
      throw std::runtime_error(std::string("rd_kafka_new: ") + err);
  }
  ~RdProducer() {
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(rk_);
  }
  RdProducer(const RdProducer&) = delete;
  RdProducer& operator=(const RdProducer&) = delete;

  // Enqueues `value` for `partition`, serving reports while librdkafka's queue is full.
  void produce(int32_t partition, const std::string& value) {
    void* enqueued = reinterpret_cast<void*>(Clock::now().time_since_epoch().count());
    for (;;) {
      rd_kafka_resp_err_t e = rd_kafka_producev(
          rk_, RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_PARTITION(partition),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(enqueued), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ++outstanding_;
        return;
      }
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        ++failed_;
        events_.add(std::string("produce() refused: ") + rd_kafka_err2name(e));
        return;
      }
      rd_kafka_poll(rk_, 10);
    }
  }
  // Serves delivery reports for up to `timeout` (returns after the first).
  void poll(std::chrono::milliseconds timeout) {
    rd_kafka_poll(rk_, static_cast<int>(timeout.count()));
  }
  // Serves delivery reports until none is outstanding.
  void drain() {
    while (outstanding_ > 0)
      poll(100ms);
  }
  int64_t outstanding() const { return outstanding_; }
  // One message, waited for: the broker that acknowledged it, or -1.
  int32_t send_sync(int32_t partition, const std::string& value) {
    last_broker_ = -1;
    produce(partition, value);
    drain();
    return last_broker_;
  }
  const std::vector<double>& latencies_ms() const { return latencies_ms_; }
  void forget_latencies() { latencies_ms_.clear(); }  // after a warm-up
  int64_t failed() const { return failed_; }

 private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<RdProducer*>(opaque);
    --self->outstanding_;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++self->failed_;
      self->events_.add(std::string("delivery failed: ") + rd_kafka_err2name(m->err));
      return;
    }
    auto enqueued = Clock::time_point(Clock::duration(reinterpret_cast<intptr_t>(m->_private)));
    self->latencies_ms_.push_back(ms_between(enqueued, Clock::now()));
    self->last_broker_ = rd_kafka_message_broker_id(m);
  }
  static void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
    static_cast<RdProducer*>(opaque)->events_.add(
        std::string("error_cb ") + rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err)) + ": " +
        reason);
  }
  static void on_log(const rd_kafka_t* rk, int level, const char* fac, const char* line) {
    auto* self = static_cast<RdProducer*>(rd_kafka_opaque(rk));
    self->events_.add("log " + std::to_string(level) + " " + fac + ": " + line);
    if (self->echo_)
      echo(std::string(fac) + " " + line);
  }

  std::string topic_;
  EventCounts& events_;
  const bool echo_ = rdkafka_debug() != nullptr;
  rd_kafka_t* rk_ = nullptr;
  int64_t outstanding_ = 0;
  int64_t failed_ = 0;
  int32_t last_broker_ = -1;
  std::vector<double> latencies_ms_;
};

// A cluster with topic `topic` of `partitions` partitions, all with a full ISR, their leaders in
// the label; null (and the benchmark skipped) when it did not come up.
std::unique_ptr<LocalCluster> cluster_with_topic(benchmark::State& state, const std::string& topic,
                                                 int partitions) {
  auto cluster = std::make_unique<LocalCluster>();
  if (auto leaders = create_topic(*cluster, topic, partitions)) {
    state.SetLabel("leaders " + *leaders);
    return cluster;
  }
  state.SkipWithError("the cluster did not come up");
  return nullptr;
}

void produce_burst_librdkafka(benchmark::State& state) {
  const int records = static_cast<int>(state.range(0)) * kBatchRecords;
  auto cluster = cluster_with_topic(state, "bench", kPartitions);
  if (!cluster)
    return;
  EventCounts events;
  RdProducer producer(cluster->kafka_bootstrap(), "bench", {{"linger.ms", "5"}}, events);
  const std::string value(kRecordBytes, 'x');
  for (int p = 0; p < kPartitions; ++p)
    producer.send_sync(p, value);  // connections, metadata
  producer.forget_latencies();
  int64_t sent = 0;
  for (auto _ : state) {
    for (int i = 0; i < records; ++i)
      producer.produce(static_cast<int32_t>(sent++ % kPartitions), value);
    producer.drain();
  }
  report(state, producer.latencies_ms(), sent, producer.failed());
  events.print("BM_ProduceBurst/librdkafka/" + std::to_string(state.range(0)), 5);
}

asio::awaitable<void> send_batch(Client& client, TopicPartition tp, std::vector<std::string> values,
                                 std::vector<double>& latencies, int64_t& failed,
                                 int& outstanding) {
  auto started = Clock::now();
  SendResult r = co_await client.send(tp, std::move(values), Acks::all);
  latencies.push_back(ms_between(started, Clock::now()));
  if (!r.acknowledged())
    ++failed;
  --outstanding;
}

// One record to each partition: connections and metadata before the clock runs.
void warm_up(asio::io_context& io, Client& client) {
  std::vector<double> ignored;
  int64_t failed = 0;
  int outstanding = kPartitions;
  for (int p = 0; p < kPartitions; ++p) {
    asio::co_spawn(io,
                   send_batch(client, {"bench", PartitionIndex{p}},
                              {std::string(kRecordBytes, 'x')}, ignored, failed, outstanding),
                   asio::detached);
  }
  while (outstanding > 0)
    io.run_one();
}

void produce_burst_faultline(benchmark::State& state) {
  const int batches = static_cast<int>(state.range(0));
  auto cluster = cluster_with_topic(state, "bench", kPartitions);
  if (!cluster)
    return;
  asio::io_context io;
  Client client(io, cluster->client_config());
  const std::vector<std::string> batch(kBatchRecords, std::string(kRecordBytes, 'x'));
  std::vector<double> latencies;
  int64_t failed = 0;
  int64_t sent = 0;
  auto burst = [&](int n) {
    int outstanding = n;
    for (int i = 0; i < n; ++i) {
      TopicPartition tp{"bench", PartitionIndex{static_cast<int32_t>(sent++ % kPartitions)}};
      asio::co_spawn(io, send_batch(client, tp, batch, latencies, failed, outstanding),
                     asio::detached);
    }
    while (outstanding > 0)
      io.run_one();
  };
  warm_up(io, client);
  for (auto _ : state)
    burst(batches);
  client.close();
  io.run_for(100ms);
  report(state, latencies, sent * kBatchRecords, failed);
}

// As librdkafka is meant to be driven: produce without draining, at most `window` messages
// unacknowledged. One iteration: 100 more records enqueued.
void produce_stream_librdkafka(benchmark::State& state, const Settings& settings) {
  const int64_t window = state.range(0) * kBatchRecords;
  auto cluster = cluster_with_topic(state, "bench", kPartitions);
  if (!cluster)
    return;
  EventCounts events;
  RdProducer producer(cluster->kafka_bootstrap(), "bench", settings, events);
  const std::string value(kRecordBytes, 'x');
  for (int p = 0; p < kPartitions; ++p)
    producer.send_sync(p, value);
  producer.forget_latencies();
  int64_t sent = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatchRecords; ++i) {
      while (producer.outstanding() >= window)
        producer.poll(100ms);
      producer.produce(static_cast<int32_t>(sent++ % kPartitions), value);
    }
  }
  const auto acked = static_cast<int64_t>(producer.latencies_ms().size());
  producer.drain();
  report(state, producer.latencies_ms(), acked, producer.failed());
  events.print(
      "BM_ProduceStream/librdkafka/" + std::to_string(state.range(0)) + " " + describe(settings),
      5);
}

// faultline's client kept at `batches` sends of 100 records in flight. One iteration: until one
// more batch is acknowledged.
void produce_stream_faultline(benchmark::State& state) {
  const int batches = static_cast<int>(state.range(0));
  auto cluster = cluster_with_topic(state, "bench", kPartitions);
  if (!cluster)
    return;
  asio::io_context io;
  Client client(io, cluster->client_config());
  const std::vector<std::string> batch(kBatchRecords, std::string(kRecordBytes, 'x'));
  std::vector<double> latencies;
  int64_t failed = 0;
  int64_t sent = 0;
  int outstanding = 0;
  warm_up(io, client);
  auto top_up = [&] {
    for (; outstanding < batches; ++outstanding) {
      TopicPartition tp{"bench", PartitionIndex{static_cast<int32_t>(sent++ % kPartitions)}};
      asio::co_spawn(io, send_batch(client, tp, batch, latencies, failed, outstanding),
                     asio::detached);
    }
  };
  for (auto _ : state) {
    const size_t done = latencies.size();
    top_up();
    while (latencies.size() == done)
      io.run_one();
  }
  const auto acked = static_cast<int64_t>(latencies.size());
  while (outstanding > 0)
    io.run_one();
  client.close();
  io.run_for(100ms);
  report(state, latencies, acked * kBatchRecords, failed);
}

void produce_one_in_flight_librdkafka(benchmark::State& state) {
  auto cluster = cluster_with_topic(state, "bench", kPartitions);
  if (!cluster)
    return;
  EventCounts events;
  RdProducer producer(cluster->kafka_bootstrap(), "bench", {{"linger.ms", "0"}}, events);
  const std::string value(kRecordBytes, 'x');
  producer.send_sync(0, value);
  producer.forget_latencies();
  int64_t sent = 0;
  for (auto _ : state) {
    producer.send_sync(0, value);
    ++sent;
  }
  report(state, producer.latencies_ms(), sent, producer.failed());
  events.print("BM_ProduceOneInFlight/librdkafka", 5);
}

void produce_one_in_flight_faultline(benchmark::State& state) {
  auto cluster = cluster_with_topic(state, "bench", kPartitions);
  if (!cluster)
    return;
  SyncClient client(cluster->client_config());
  const TopicPartition tp{"bench", PartitionIndex{0}};
  const std::string value(kRecordBytes, 'x');
  client.send(tp, {value}, Acks::all);
  std::vector<double> latencies;
  int64_t failed = 0;
  for (auto _ : state) {
    auto started = Clock::now();
    if (!client.send(tp, {value}, Acks::all).acknowledged())
      ++failed;
    latencies.push_back(ms_between(started, Clock::now()));
  }
  report(state, latencies, static_cast<int64_t>(latencies.size()), failed);
}

// Writes one at a time on its own thread and records which broker acknowledged each write.
class SteadyWriter {
 public:
  using SendOne = std::function<int32_t()>;  // the acknowledging broker, or -1

  explicit SteadyWriter(SendOne send) : send_(std::move(send)), thread_([this] { run(); }) {}
  ~SteadyWriter() {
    stop_ = true;
    thread_.join();
  }
  SteadyWriter(const SteadyWriter&) = delete;
  SteadyWriter& operator=(const SteadyWriter&) = delete;

  // Until `n` more writes than now were acknowledged; false after `timeout`.
  bool wait_for_acks(size_t n, Clock::duration timeout) const {
    const size_t target = acked() + n;
    for (auto deadline = Clock::now() + timeout; acked() < target;) {
      if (Clock::now() > deadline)
        return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }
  // When the first write acknowledged by a broker other than `excluded` completed after `since`;
  // nullopt after `timeout`.
  std::optional<Clock::time_point> first_ack_elsewhere(Clock::time_point since, int32_t excluded,
                                                       Clock::duration timeout) const {
    for (auto deadline = since + timeout; Clock::now() < deadline;) {
      {
        std::lock_guard lock(mu_);
        auto after = std::partition_point(acks_.begin(), acks_.end(),
                                          [&](const Ack& a) { return a.at <= since; });
        auto it =
            std::find_if(after, acks_.end(), [&](const Ack& a) { return a.broker != excluded; });
        if (it != acks_.end())
          return it->at;
      }
      std::this_thread::sleep_for(1ms);
    }
    return std::nullopt;
  }

 private:
  struct Ack {
    Clock::time_point at;
    int32_t broker;
  };
  size_t acked() const {
    std::lock_guard lock(mu_);
    return acks_.size();
  }
  void run() {
    while (!stop_) {
      int32_t broker = send_();
      if (broker < 0)
        continue;
      std::lock_guard lock(mu_);
      acks_.push_back({Clock::now(), broker});
    }
  }

  SendOne send_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<Ack> acks_;
  std::thread thread_;  // last: starts once the rest exists
};

// Per iteration: kill -9 the leader of `tp` while `writer` writes, time until the writer has a
// write acknowledged elsewhere, restart the broker and wait for the full ISR.
void kill_leaders(benchmark::State& state, LocalCluster& cluster, const SteadyWriter& writer,
                  const TopicPartition& tp) {
  SyncClient admin(cluster.client_config());
  std::vector<double> samples_ms;
  int unrecovered = 0;
  for (auto _ : state) {
    auto leader = admin.wait_for_leader(tp, 10s);
    if (!leader || !writer.wait_for_acks(20, 30s)) {
      state.SkipWithError("no steady writes before the kill");
      return;
    }
    const int32_t id = leader->leader.value();
    const auto killed_at = Clock::now();
    if (rdkafka_debug() != nullptr)
      echo("KILL broker " + std::to_string(id));
    cluster.broker(id).kill_and_reap();
    auto resumed = writer.first_ack_elsewhere(killed_at, id, kGiveUp);
    unrecovered += resumed ? 0 : 1;
    samples_ms.push_back(ms_between(killed_at, resumed.value_or(killed_at + kGiveUp)));
    state.SetIterationTime(samples_ms.back() / 1000);
    cluster.start_broker(id);
    if (!admin.wait_for_leader(tp, 30s, [](const auto& p) { return p.isr.size() == 3; })) {
      state.SkipWithError("the ISR did not fill up again");
      return;
    }
  }
  state.counters["p50_ms"] = percentile(samples_ms, 0.50);
  state.counters["p99_ms"] = percentile(samples_ms, 0.99);
  state.counters["max_ms"] = percentile(samples_ms, 1.0);
  state.counters["unrecovered"] = unrecovered;
}

void failover_librdkafka(benchmark::State& state, const std::string& title, Settings settings) {
  auto cluster = cluster_with_topic(state, "failover", 1);
  if (!cluster)
    return;
  if (const char* debug = rdkafka_debug())
    settings.emplace_back("debug", debug);
  settings.emplace_back("linger.ms", "0");
  EventCounts events;
  RdProducer producer(cluster->kafka_bootstrap(), "failover", settings, events);
  const std::string value(kRecordBytes, 'x');
  SteadyWriter writer([&] { return producer.send_sync(0, value); });
  kill_leaders(state, *cluster, writer, {"failover", PartitionIndex{0}});
  state.counters["failed"] = static_cast<double>(producer.failed());
  events.print(title, 25);
}

void failover_faultline(benchmark::State& state) {
  auto cluster = cluster_with_topic(state, "failover", 1);
  if (!cluster)
    return;
  const TopicPartition tp{"failover", PartitionIndex{0}};
  SyncClient client(cluster->client_config());
  EventCounts events;
  std::atomic<int64_t> failed = 0;
  const std::string value(kRecordBytes, 'x');
  SteadyWriter writer([&]() -> int32_t {
    SendResult r = client.send(tp, {value}, Acks::all);
    if (r.acknowledged())
      return r.leader.value();
    ++failed;
    events.add(std::string("send not acknowledged: ") + std::string(errc_name(r.error)) +
               (r.definite ? " (failed)" : " (unknown outcome)"));
    return -1;
  });
  kill_leaders(state, *cluster, writer, tp);
  state.counters["failed"] = static_cast<double>(failed.load());
  events.print("BM_FailoverAfterKill/faultline", 25);
}

using Bench = std::function<void(benchmark::State&)>;

// Each of `group` at 1, 4 and 16 batches, side by side.
void register_produce(const std::vector<std::pair<std::string, Bench>>& group) {
  for (int batches : {1, 4, 16}) {
    for (const auto& [name, bench] : group)
      benchmark::RegisterBenchmark(name.c_str(), bench)
          ->Arg(batches)
          ->MinTime(5.0)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
  }
}

void register_benchmarks(int kills) {
  register_produce({{"BM_ProduceBurst/librdkafka", produce_burst_librdkafka},
                    {"BM_ProduceBurst/faultline", produce_burst_faultline}});
  register_produce(
      {{"BM_ProduceStream/librdkafka",
        [](benchmark::State& s) {
          produce_stream_librdkafka(s, {{"linger.ms", "5"}});
        }},
       {"BM_ProduceStream/librdkafka_100_per_batch",
        [](benchmark::State& s) {
          produce_stream_librdkafka(s, {{"linger.ms", "5"}, {"batch.num.messages", "100"}});
        }},
       {"BM_ProduceStream/faultline", produce_stream_faultline}});
  benchmark::RegisterBenchmark("BM_ProduceOneInFlight/librdkafka", produce_one_in_flight_librdkafka)
      ->MinTime(5.0)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_ProduceOneInFlight/faultline", produce_one_in_flight_faultline)
      ->MinTime(5.0)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  for (const auto& [name, settings] :
       {std::pair{"BM_FailoverAfterKill/librdkafka_defaults", Settings{}},
        std::pair{"BM_FailoverAfterKill/librdkafka_tuned", kTunedFailover}})
    benchmark::RegisterBenchmark(name, failover_librdkafka, std::string(name), settings)
        ->Iterations(kills)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_FailoverAfterKill/faultline", failover_faultline)
      ->Iterations(kills)
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

void add_context() {
  const testing::LocalClusterOptions o;
  benchmark::AddCustomContext(
      "cluster", fmt::format("{} brokers, RF 3, min.insync.replicas {}, session timeout {} ms, "
                             "heartbeat {} ms, replica lag {} ms",
                             o.brokers, o.min_insync_replicas, o.session_timeout_ms,
                             o.heartbeat_interval_ms, o.replica_lag_time_max_ms));
  benchmark::AddCustomContext(
      "librdkafka",
      std::string(rd_kafka_version_str()) +
          ", acks=all enable.idempotence=false compression.codec=none; burst and stream: "
          "linger.ms=5; one in flight and failover: linger.ms=0; failover tuned: " +
          describe(kTunedFailover) + ", defaults otherwise");
  benchmark::AddCustomContext("faultline client",
                              "LocalCluster::client_config(): request timeout 3000 ms, delivery "
                              "timeout 15000 ms, retry backoff 50 ms");
}

// --kills=N (taken out of argv before Google Benchmark reads it), else FAULTLINE_BENCH_KILLS.
int kills_from(int& argc, char** argv) {
  int kills = 20;
  if (const char* env = std::getenv("FAULTLINE_BENCH_KILLS"))
    kills = std::atoi(env);
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.starts_with("--kills="))
      kills = std::atoi(arg.substr(8).data());
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  return std::max(1, kills);
}

}  // namespace
}  // namespace faultline::cluster

int main(int argc, char** argv) {
  using namespace faultline::cluster;
  register_benchmarks(kills_from(argc, argv));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  add_context();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
