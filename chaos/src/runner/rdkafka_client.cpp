#include "rdkafka_client.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <utility>

namespace faultline::chaos {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// What one poll hands back at most, like faultline's 1 MiB fetch: a long final read comes back
// in several history lines instead of one huge one. Per record, the value plus a record's
// overhead in a Kafka v2 batch.
constexpr size_t kPollBytes = 1 << 20;
constexpr size_t kRecordOverhead = 64;

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
using Conf = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
using Message = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;

bool set(rd_kafka_conf_t* conf, const char* key, const std::string& value, std::string& why) {
  char err[512];
  if (rd_kafka_conf_set(conf, key, value.c_str(), err, sizeof err) == RD_KAFKA_CONF_OK)
    return true;
  why = fmt::format("librdkafka {}={}: {}", key, value, err);
  return false;
}

std::string ms(std::chrono::milliseconds d) {
  return std::to_string(d.count());
}

// librdkafka's own log lines (connection refused, broker down...) are expected during faults;
// they go to the debug log, not the run's console, unless librdkafka calls them critical.
void on_log(const rd_kafka_t*, int level, const char* facility, const char* text) {
  if (level <= 2)
    spdlog::warn("event=rdkafka_log level={} facility={} text=\"{}\"", level, facility, text);
  else
    spdlog::debug("event=rdkafka_log level={} facility={} text=\"{}\"", level, facility, text);
}

// Settings both roles share: where the cluster is and the faultline client's time budget.
bool common_conf(rd_kafka_conf_t* c, const RdKafkaConfig& config, std::string& why) {
  rd_kafka_conf_set_log_cb(c, on_log);
  return set(c, "bootstrap.servers", config.bootstrap, why) &&
         set(c, "client.id", "faultline-workload", why) &&
         // The client-side deadline of every request (a Produce's included); request.timeout.ms
         // below is only the broker's ack timeout.
         set(c, "socket.timeout.ms", ms(config.request_timeout), why) &&
         set(c, "retry.backoff.ms", ms(config.retry_backoff), why);
}

// Why no retries: without idempotence, a retried Produce whose first attempt was appended
// (a timeout after the request was written, a connection lost mid-request,
// NOT_ENOUGH_REPLICAS_AFTER_APPEND) appends the value a second time. Marking such an op `info`
// would not help: the checker finds duplicates in what the consumers read, whatever the send's
// outcome. With retries = 0 every such attempt ends the send with POSSIBLY_PERSISTED (→ info),
// and the workload's next send carries a new value, exactly like faultline's own client, which
// retries only definite failures. librdkafka still re-sends, uncounted, after errors that mean
// "not appended" (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PART, and a
// request never written): those cannot duplicate, and they keep failover as fast as its metadata
// refresh. Idempotence would allow retries, but the brokers have no producer ids.
bool producer_conf(rd_kafka_conf_t* c, const RdKafkaConfig& config, bool acks_all,
                   std::string& why) {
  return common_conf(c, config, why) && set(c, "acks", acks_all ? "all" : "1", why) &&
         set(c, "enable.idempotence", "false", why) &&
         set(c, "message.send.max.retries", "0", why) && set(c, "linger.ms", "0", why) &&
         set(c, "max.in.flight.requests.per.connection", "1", why) &&
         set(c, "request.timeout.ms", ms(config.request_timeout), why) &&
         set(c, "message.timeout.ms", ms(config.delivery_timeout), why);
}

// No group.id: partitions are consumed explicitly (the brokers serve no group coordinator), and
// nothing is ever committed. read_uncommitted: there are no transactions, and the end of the log
// the final read must reach is the high watermark (ARCHITECTURE.md §2.4), not a stable offset.
bool consumer_conf(rd_kafka_conf_t* c, const RdKafkaConfig& config, std::string& why) {
  return common_conf(c, config, why) && set(c, "auto.offset.reset", "earliest", why) &&
         set(c, "enable.partition.eof", "true", why) &&
         set(c, "enable.auto.commit", "false", why) &&
         set(c, "enable.auto.offset.store", "false", why) &&
         set(c, "auto.commit.enable", "false", why) &&
         set(c, "isolation.level", "read_uncommitted", why) &&
         // A broker answers one request per connection at a time, as Kafka does: a partition's
         // idle fetch long-poll holds up the final read's ListOffsets for as long as it waits.
         // 100 ms, like the faultline consumer's poll.
         set(c, "fetch.wait.max.ms", "100", why);
}

std::string last_error_name() {
  return rd_kafka_err2name(rd_kafka_last_error());
}
// After rd_kafka_consume returned nothing: was that just its timeout?
bool timed_out() {
  return rd_kafka_last_error() == RD_KAFKA_RESP_ERR__TIMED_OUT;
}

}  // namespace

// ---- the pure mapping ----

std::string kafka_bootstrap_list(const std::vector<cluster::Endpoint>& endpoints) {
  std::string out;
  for (const auto& e : endpoints)
    out += (out.empty() ? "" : ",") + e.str();
  return out;
}

checker::Outcome delivery_outcome(rd_kafka_resp_err_t err, rd_kafka_msg_status_t status) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
    return checker::Outcome::ok;
  switch (status) {
    case RD_KAFKA_MSG_STATUS_NOT_PERSISTED:
      return checker::Outcome::fail;
    case RD_KAFKA_MSG_STATUS_PERSISTED:
      return checker::Outcome::ok;
    case RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED:
      break;
  }
  return checker::Outcome::info;  // and any status a later librdkafka may add
}

SendOutcome delivery_send_outcome(rd_kafka_resp_err_t err, rd_kafka_msg_status_t status,
                                  int64_t offset, int32_t broker_id) {
  SendOutcome out;
  out.outcome = delivery_outcome(err, status);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    out.error = rd_kafka_err2name(err);
  if (out.outcome != checker::Outcome::ok)
    return out;
  if (offset >= 0)
    out.offset = offset;
  if (broker_id >= 0)
    out.leader = broker_id;
  return out;
}

// ---- handles ----

// An rd_kafka_t with its topic handle; the consumer's started partitions are stopped first.
struct RdKafkaWorkloadClient::Handle {
  rd_kafka_t* rk = nullptr;
  rd_kafka_topic_t* rkt = nullptr;
  std::vector<int32_t> started;
  ~Handle() {
    for (int32_t p : started)
      rd_kafka_consume_stop(rkt, p);
    if (rkt != nullptr)
      rd_kafka_topic_destroy(rkt);
    if (rk == nullptr)
      return;
    // A send waits for its report, so nothing is normally outstanding; whatever is (a report
    // that never came) is dropped rather than waited for.
    if (rd_kafka_type(rk) == RD_KAFKA_PRODUCER)
      rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(rk);
  }
};

RdKafkaWorkloadClient::RdKafkaWorkloadClient(RdKafkaConfig config) : config_(std::move(config)) {}

RdKafkaWorkloadClient::~RdKafkaWorkloadClient() = default;

std::optional<std::string> RdKafkaWorkloadClient::check(const RdKafkaConfig& config) {
  std::string why;
  for (bool acks_all : {true, false}) {
    Conf producer(rd_kafka_conf_new());
    if (!producer_conf(producer.get(), config, acks_all, why))
      return why;
  }
  Conf consumer(rd_kafka_conf_new());
  if (!consumer_conf(consumer.get(), config, why))
    return why;
  if (config.bootstrap.empty())
    return std::string("librdkafka: no bootstrap servers");
  return std::nullopt;
}

// The producer's acks is a topic setting fixed when the handle is made: another acks gets a
// new handle (the workload never mixes them; tests may).
bool RdKafkaWorkloadClient::ensure_producer(bool acks_all, std::string& why) {
  if (producer_ && producer_acks_all_ == acks_all)
    return true;
  producer_.reset();
  Conf conf(rd_kafka_conf_new());
  if (!producer_conf(conf.get(), config_, acks_all, why))
    return false;
  rd_kafka_conf_set_dr_msg_cb(conf.get(), on_delivery);
  rd_kafka_conf_set_opaque(conf.get(), this);
  char err[512];
  auto handle = std::make_unique<Handle>();
  handle->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof err);
  if (handle->rk == nullptr) {
    why = fmt::format("librdkafka producer: {}", err);
    return false;
  }
  static_cast<void>(conf.release());  // rd_kafka_new owns it now
  producer_ = std::move(handle);
  producer_acks_all_ = acks_all;
  return true;
}

bool RdKafkaWorkloadClient::ensure_consumer(std::string& why) {
  if (consumer_)
    return true;
  Conf conf(rd_kafka_conf_new());
  if (!consumer_conf(conf.get(), config_, why))
    return false;
  char err[512];
  auto handle = std::make_unique<Handle>();
  handle->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err);
  if (handle->rk == nullptr) {
    why = fmt::format("librdkafka consumer: {}", err);
    return false;
  }
  static_cast<void>(conf.release());  // rd_kafka_new owns it now
  handle->rkt = rd_kafka_topic_new(handle->rk, config_.topic.c_str(), nullptr);
  if (handle->rkt == nullptr) {
    why = fmt::format("librdkafka topic: {}", last_error_name());
    return false;
  }
  consumer_ = std::move(handle);
  return true;
}

// ---- producer ----

void RdKafkaWorkloadClient::on_delivery(rd_kafka_t*, const rd_kafka_message_t* message,
                                        void* opaque) {
  auto* self = static_cast<RdKafkaWorkloadClient*>(opaque);
  // A report for an earlier message (one whose wait gave up) is not this send's.
  if (reinterpret_cast<uint64_t>(message->_private) != self->sent_)
    return;
  self->delivered_ = Delivery{message->err, rd_kafka_message_status(message), message->offset,
                              rd_kafka_message_broker_id(message)};
}

SendOutcome RdKafkaWorkloadClient::send(int partition, const std::string& value, bool acks_all) {
  SendOutcome out;
  out.outcome = checker::Outcome::fail;  // until the message is queued, nothing can be written
  if (!ensure_producer(acks_all, out.error))
    return out;
  delivered_.reset();
  const uint64_t id = ++sent_;
  rd_kafka_resp_err_t err = rd_kafka_producev(
      producer_->rk, RD_KAFKA_V_TOPIC(config_.topic.c_str()), RD_KAFKA_V_PARTITION(partition),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(id)),
      RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    out.error = rd_kafka_err2name(err);
    return out;
  }
  // librdkafka reports every message within message.timeout.ms (plus the request in flight);
  // the margin only guards against a report that never comes.
  const auto give_up = Clock::now() + config_.delivery_timeout + config_.request_timeout + 5s;
  while (!delivered_ && Clock::now() < give_up)
    rd_kafka_poll(producer_->rk, 50);
  if (!delivered_)
    return {checker::Outcome::info, {}, {}, {}, "no delivery report"};
  return delivery_send_outcome(delivered_->err, delivered_->status, delivered_->offset,
                               delivered_->broker_id);
}

// ---- consumer ----

PollOutcome RdKafkaWorkloadClient::poll(int partition, int64_t from,
                                        std::chrono::milliseconds max_wait, bool final_read) {
  PollOutcome out;
  if (!ensure_consumer(out.error))
    return out;
  out.error = position(partition, from);
  if (!out.error.empty())
    return out;
  return final_read ? read_to_end(partition, from) : read_some(partition, from, max_wait);
}

// Starts the partition's fetcher at `from`, or moves it there when the last poll left it
// elsewhere. An error name, or empty.
std::string RdKafkaWorkloadClient::position(int partition, int64_t from) {
  if (partition < 0)
    return "_INVALID_ARG";
  if (consumer_next_.size() <= static_cast<size_t>(partition))
    consumer_next_.resize(partition + 1);
  auto& next = consumer_next_[partition];
  if (!next) {
    if (rd_kafka_consume_start(consumer_->rkt, partition, from) == -1)
      return last_error_name();
    consumer_->started.push_back(partition);
  } else if (*next != from) {
    // Synchronous: messages fetched for the old position are discarded before it returns.
    auto err = rd_kafka_seek(consumer_->rkt, partition, from,
                             static_cast<int>(config_.request_timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      return rd_kafka_err2name(err);
  }
  next = from;
  return {};
}

namespace {

enum class Taken { record, skipped, end, error };

// One consumed message into `out`. Records below `from` are skipped: after OFFSET_OUT_OF_RANGE
// (a new leader's log shorter than the position, for a while) auto.offset.reset=earliest
// restarts the fetcher at the log start, and those are not what this poll asked for.
Taken take(const rd_kafka_message_t& m, int64_t from, PollOutcome& out, size_t& bytes) {
  if (m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
    return Taken::end;
  if (m.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    out.error = rd_kafka_err2name(m.err);
    return Taken::error;
  }
  if (m.offset < from)
    return Taken::skipped;
  out.records.emplace_back(m.offset, std::string(static_cast<const char*>(m.payload), m.len));
  bytes += m.len + kRecordOverhead;
  return Taken::record;
}

}  // namespace

// Waits up to `max_wait` for the first message, then takes what is already fetched. An error
// fails the poll only when it read nothing (librdkafka's fetcher retries on its own).
PollOutcome RdKafkaWorkloadClient::read_some(int partition, int64_t from,
                                             std::chrono::milliseconds max_wait) {
  PollOutcome out;
  size_t bytes = 0;
  for (auto wait = max_wait; bytes < kPollBytes; wait = 0ms) {
    Message m(rd_kafka_consume(consumer_->rkt, partition, static_cast<int>(wait.count())));
    if (!m) {
      if (!timed_out() && out.records.empty())
        out.error = last_error_name();
      break;
    }
    const Taken taken = take(*m, from, out, bytes);
    if (taken == Taken::error && !out.records.empty())
      out.error.clear();  // keep what was read
    if (taken == Taken::end || taken == Taken::error)
      break;
  }
  if (!out.records.empty())
    consumer_next_[partition] = out.records.back().first + 1;
  return out;
}

// Reads from `from` to the high watermark as it stands when the read starts (ListOffsets). An
// ok answer with no records says `from` is the end; one that reached neither the end nor any
// record before final_read_timeout is an error, never an empty ok.
PollOutcome RdKafkaWorkloadClient::read_to_end(int partition, int64_t from) {
  PollOutcome out;
  int64_t low = 0, high = 0;
  auto err =
      rd_kafka_query_watermark_offsets(consumer_->rk, config_.topic.c_str(), partition, &low, &high,
                                       static_cast<int>(config_.request_timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    out.error = rd_kafka_err2name(err);
    return out;
  }
  const auto deadline = Clock::now() + config_.final_read_timeout;
  std::string last_error;
  size_t bytes = 0;
  int64_t next = from;
  while (next < high && bytes < kPollBytes && Clock::now() < deadline) {
    Message m(rd_kafka_consume(consumer_->rkt, partition, 100));
    if (!m) {
      if (!timed_out())
        last_error = last_error_name();
      continue;
    }
    // Errors and partition ends on the way are transient here: the fetcher goes on until the
    // deadline (the end it reports may lag the watermark just queried).
    if (take(*m, from, out, bytes) == Taken::record)
      next = out.records.back().first + 1;
    if (!out.error.empty())
      last_error = std::exchange(out.error, {});
  }
  if (!out.records.empty())
    consumer_next_[partition] = next;
  if (next < high && out.records.empty())
    out.error = last_error.empty() ? std::string("_TIMED_OUT") : last_error;
  return out;
}

}  // namespace faultline::chaos
