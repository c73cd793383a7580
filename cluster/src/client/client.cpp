#include "faultline/cluster/client/client.h"

#include <spdlog/spdlog.h>

#include <future>

namespace faultline::cluster {

using asio::awaitable;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Errors after which the batch was certainly not appended: the send may be retried.
bool refused_before_append(errc e) {
  switch (e) {
    case errc::not_leader_or_follower:
    case errc::leader_not_available:
    case errc::unknown_topic_or_partition:
    case errc::fenced_leader_epoch:
    case errc::unknown_leader_epoch:
    case errc::not_enough_replicas:
    case errc::broker_not_available:
    case errc::network_exception:
    case errc::storage_error:  // the log directory was offline before the append: not written
      return true;
    default:
      return false;
  }
}

// Errors after which the batch may be in the log (and may yet commit).
bool outcome_unknown(errc e) {
  return e == errc::request_timed_out || e == errc::not_enough_replicas_after_append ||
         e == errc::leadership_lost_after_append || e == errc::io_error ||
         e == errc::unknown_server_error;
}

errc as_errc(const std::error_code& ec) {
  return ec.category() == cluster_category() ? static_cast<errc>(ec.value())
                                             : errc::network_exception;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Client::Client(asio::io_context& io, ClientConfig config)
    : io_(io),
      config_(std::move(config)),
      pool_(io),
      controllers_(io, pool_, config_.controllers) {}

awaitable<void> Client::sleep(std::chrono::milliseconds d) {
  asio::steady_timer t(io_, d);
  co_await t.async_wait(use_tuple);
}

void Client::learn(const MetadataResponse& md) {
  for (const auto& b : md.brokers)
    brokers_[b.id] = b.client_endpoint;
  for (const auto& p : md.partitions) {
    if (p.error == errc::none || p.error == errc::leader_not_available)
      leaders_[p.tp] = p;
  }
}

std::optional<PartitionMetadata> Client::cached(const TopicPartition& tp) const {
  auto it = leaders_.find(tp);
  if (it == leaders_.end())
    return std::nullopt;
  return it->second;
}

awaitable<std::optional<MetadataResponse>> Client::metadata(std::vector<std::string> topics) {
  // Any broker answers from its metadata image; try the bootstrap list, then every broker we know.
  std::vector<Endpoint> candidates = config_.bootstrap;
  for (const auto& [id, ep] : brokers_) {
    if (std::find(candidates.begin(), candidates.end(), ep) == candidates.end())
      candidates.push_back(ep);
  }
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Endpoint& ep = candidates[(next_bootstrap_ + i) % candidates.size()];
    MetadataRequest req;
    req.topics = topics;
    CallResult res = co_await pool_.get(ep).call(std::move(req), config_.request_timeout);
    if (res.error)
      continue;
    auto& md = std::get<MetadataResponse>(res.response);
    next_bootstrap_ = (next_bootstrap_ + i) % candidates.size();
    learn(md);
    co_return md;
  }
  // Every broker unreachable from here: the controller knows the metadata too.
  co_return co_await controller_metadata();
}

// Sends to many partitions of a topic whose leaders are unknown share one metadata request, as
// Kafka's producer does: at 100k partitions an answer is megabytes, and a hundred of them at once
// time out on the broker that encodes them.
awaitable<void> Client::refresh_topic(std::string topic) {
  auto in_flight = refreshing_.find(topic);
  if (in_flight != refreshing_.end()) {
    std::shared_ptr<asio::steady_timer> done = in_flight->second;
    co_await done->async_wait(use_tuple);
    co_return;
  }
  auto done = std::make_shared<asio::steady_timer>(io_, asio::steady_timer::time_point::max());
  refreshing_[topic] = done;
  std::vector<std::string> topics{topic};
  co_await metadata(std::move(topics));
  refreshing_.erase(topic);
  done->cancel();
}

awaitable<std::optional<MetadataResponse>> Client::controller_metadata() {
  MetadataRequest req;
  CallResult res = co_await call_controller(std::move(req));
  if (res.error)
    co_return std::nullopt;
  auto& md = std::get<MetadataResponse>(res.response);
  learn(md);
  co_return md;
}

awaitable<CallResult> Client::call_leader(const TopicPartition& tp, Request request,
                                          std::chrono::milliseconds timeout,
                                          PartitionMetadata& leader) {
  auto it = leaders_.find(tp);
  if (it == leaders_.end() || it->second.leader == kNoBroker) {
    co_await refresh_topic(tp.topic);
    it = leaders_.find(tp);
  }
  CallResult none;
  if (it == leaders_.end() || it->second.leader == kNoBroker) {
    none.error = make_error_code(it == leaders_.end() ? errc::unknown_topic_or_partition
                                                      : errc::leader_not_available);
    co_return none;
  }
  leader = it->second;
  auto b = brokers_.find(leader.leader);
  if (b == brokers_.end()) {
    none.error = make_error_code(errc::broker_not_available);
    co_return none;
  }
  co_return co_await pool_.get(b->second).call_request(std::move(request), timeout);
}

awaitable<CallResult> Client::call_controller(Request request,
                                              std::chrono::milliseconds extra_wait) {
  co_return co_await controllers_.call_request(std::move(request),
                                               config_.request_timeout + extra_wait, extra_wait);
}

awaitable<std::optional<MetadataResponse>> Client::watch_metadata(
    int64_t seen_offset, std::chrono::milliseconds max_wait) {
  MetadataRequest req;
  req.seen_metadata_offset = seen_offset;
  req.max_wait_ms = static_cast<int32_t>(std::max<int64_t>(max_wait.count(), 0));
  CallResult res = co_await call_controller(std::move(req), max_wait);
  if (res.error)
    co_return std::nullopt;
  auto& md = std::get<MetadataResponse>(res.response);
  learn(md);
  co_return md;
}

awaitable<SendResult> Client::send(TopicPartition tp, std::vector<std::string> values, Acks acks) {
  auto deadline = Clock::now() + config_.delivery_timeout;
  BatchBuilder builder(now_ms());
  for (const auto& v : values)
    builder.add(std::nullopt, v);
  const SharedBytes batch(builder.finish());  // retries resend it without a copy
  SendResult result;
  while (true) {
    ++result.attempts;
    ProduceRequest req;
    req.tp = tp;
    req.acks = acks;
    req.timeout_ms = static_cast<int32_t>(config_.request_timeout.count());
    req.batch = batch;
    PartitionMetadata leader;
    // The broker waits up to timeout_ms for acks=all; allow the answer a little longer to arrive.
    CallResult res = co_await call_leader(tp, std::move(req), config_.request_timeout + 1s, leader);
    // The broker that answered, and the epoch it answered under (-1 without an answer).
    result.leader = leader.leader;
    result.leader_epoch = LeaderEpoch{-1};
    spdlog::debug(
        "event=send_attempt tp={} attempt={} leader={} transport=\"{}\" maybe_sent={} "
        "error={}",
        tp, result.attempts, leader.leader, res.error.message(), res.maybe_sent,
        res.error ? "-" : errc_name(response_error(res.response)));
    errc e;
    if (res.error) {
      e = as_errc(res.error);
      if (res.maybe_sent) {
        result.error = e == errc::network_exception && res.error == asio::error::timed_out
                           ? errc::request_timed_out
                           : e;
        result.definite = false;
        // The leader did not answer: ask for metadata before the next send, as Kafka's producer
        // does after a request timeout. A leader that clients cannot reach (its client network
        // is cut, ARCHITECTURE.md §3) answers nothing, not even NOT_LEADER once leadership moved.
        leaders_.erase(tp);
        co_return result;
      }
    } else {
      const auto& r = std::get<ProduceResponse>(res.response);
      result.leader_epoch = r.leader_epoch;
      e = r.error;
      if (e == errc::none) {
        result.error = errc::none;
        result.base_offset = r.base_offset;
        // acks=0 promises nothing, so its outcome stays unknown even when the leader answered.
        result.definite = acks != Acks::none;
        co_return result;
      }
      if (outcome_unknown(e)) {
        result.error = e;
        result.definite = false;
        co_return result;
      }
    }
    result.error = e;
    if (!refused_before_append(e) || Clock::now() + config_.retry_backoff >= deadline) {
      co_return result;  // definite failure
    }
    leaders_.erase(tp);  // the leader moved (or is moving): ask again before the next attempt
    co_await sleep(config_.retry_backoff);
  }
}

awaitable<PollResult> Client::poll(TopicPartition tp, Offset from, int32_t max_bytes,
                                   std::chrono::milliseconds max_wait) {
  PollResult out;
  FetchRequest req;
  req.tp = tp;
  req.fetch_offset = from.value();
  req.max_bytes = max_bytes;
  req.max_wait_ms = static_cast<int32_t>(max_wait.count());
  if (auto c = cached(tp))
    req.current_leader_epoch = c->leader_epoch.value();
  PartitionMetadata leader;
  CallResult res =
      co_await call_leader(tp, std::move(req), config_.request_timeout + max_wait, leader);
  out.leader = leader.leader;
  out.leader_epoch = leader.leader_epoch;
  if (res.error) {
    out.error = as_errc(res.error);
  } else {
    auto& r = std::get<FetchResponse>(res.response);
    out.error = r.error;
    out.high_watermark = r.high_watermark;
    if (r.error == errc::none) {
      errc e =
          decode_records(std::span<const char>(r.records.data(), r.records.size()), out.records);
      // A batch may start below `from`: drop the records before it.
      std::erase_if(out.records, [&](const Record& rec) { return rec.offset < from; });
      if (e != errc::none)
        out.error = e;
    }
  }
  if (out.error != errc::none && out.error != errc::offset_out_of_range)
    leaders_.erase(tp);
  co_return out;
}

// A retry after NOT_CONTROLLER or no answer may meet this call's own topic (see client.h): the
// controller's TOPIC_ALREADY_EXISTS is returned as it is.
awaitable<CreateTopicResponse> Client::create_topic(std::string name, int32_t partitions,
                                                    int32_t replication_factor) {
  CreateTopicRequest req;
  req.name = std::move(name);
  req.partitions = partitions;
  req.replication_factor = replication_factor;
  CallResult res = co_await call_controller(std::move(req));
  CreateTopicResponse out;
  if (res.error) {
    out.error = as_errc(res.error);
    co_return out;
  }
  co_return std::get<CreateTopicResponse>(std::move(res.response));
}

awaitable<ElectLeadersResponse> Client::elect_leaders(ElectionType type,
                                                      std::vector<TopicPartition> partitions) {
  ElectLeadersRequest req;
  req.type = type;
  req.partitions = std::move(partitions);
  CallResult res = co_await call_controller(std::move(req));
  ElectLeadersResponse out;
  if (res.error) {
    out.error = as_errc(res.error);
    co_return out;
  }
  co_return std::get<ElectLeadersResponse>(std::move(res.response));
}

awaitable<errc> Client::demote(BrokerId broker, std::string reason) {
  DemoteBrokerRequest req;
  req.broker = broker;
  req.reason = std::move(reason);
  CallResult res = co_await call_controller(std::move(req));
  co_return res.error ? as_errc(res.error) : response_error(res.response);
}

awaitable<errc> Client::promote(BrokerId broker) {
  PromoteBrokerRequest req;
  req.broker = broker;
  CallResult res = co_await call_controller(req);
  co_return res.error ? as_errc(res.error) : response_error(res.response);
}

awaitable<errc> Client::reassign(TopicPartition tp, ReplicaList replicas) {
  ReassignRequest req;
  req.tp = std::move(tp);
  req.replicas = std::move(replicas);
  CallResult res = co_await call_controller(std::move(req));
  co_return res.error ? as_errc(res.error) : response_error(res.response);
}

awaitable<errc> Client::set_config(std::string key, std::string value) {
  SetConfigRequest req;
  req.key = std::move(key);
  req.value = std::move(value);
  CallResult res = co_await call_controller(std::move(req));
  co_return res.error ? as_errc(res.error) : response_error(res.response);
}

// ---- SyncClient --------------------------------------------------------------------------------

SyncClient::SyncClient(ClientConfig config)
    : work_(asio::make_work_guard(io_)), client_(io_, std::move(config)) {
  thread_ = std::thread([this] { io_.run(); });
}

SyncClient::~SyncClient() {
  asio::post(io_, [this] { client_.close(); });
  work_.reset();
  io_.stop();
  thread_.join();
}

template <typename T>
T SyncClient::run(asio::awaitable<T> op) {
  return asio::co_spawn(io_, std::move(op), asio::use_future).get();
}

SendResult SyncClient::send(const TopicPartition& tp, std::vector<std::string> values, Acks acks) {
  return run(client_.send(tp, std::move(values), acks));
}
PollResult SyncClient::poll(const TopicPartition& tp, Offset from, int32_t max_bytes,
                            std::chrono::milliseconds max_wait) {
  return run(client_.poll(tp, from, max_bytes, max_wait));
}
std::optional<MetadataResponse> SyncClient::metadata(std::vector<std::string> topics) {
  return run(client_.metadata(std::move(topics)));
}
std::optional<MetadataResponse> SyncClient::watch_metadata(int64_t seen_offset,
                                                           std::chrono::milliseconds max_wait) {
  return run(client_.watch_metadata(seen_offset, max_wait));
}

std::optional<MetadataResponse> SyncClient::controller_metadata() {
  return run(client_.controller_metadata());
}
CreateTopicResponse SyncClient::create_topic(const std::string& name, int32_t partitions,
                                             int32_t replication_factor) {
  return run(client_.create_topic(name, partitions, replication_factor));
}
ElectLeadersResponse SyncClient::elect_leaders(ElectionType type,
                                               std::vector<TopicPartition> partitions) {
  return run(client_.elect_leaders(type, std::move(partitions)));
}
errc SyncClient::demote(BrokerId broker, const std::string& reason) {
  return run(client_.demote(broker, reason));
}
errc SyncClient::promote(BrokerId broker) {
  return run(client_.promote(broker));
}
errc SyncClient::reassign(const TopicPartition& tp, const ReplicaList& replicas) {
  return run(client_.reassign(tp, replicas));
}
errc SyncClient::set_config(const std::string& key, const std::string& value) {
  return run(client_.set_config(key, value));
}

std::optional<PartitionMetadata> SyncClient::wait_for_leader(
    const TopicPartition& tp, std::chrono::milliseconds timeout,
    const std::function<bool(const PartitionMetadata&)>& accept) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (auto md = metadata({tp.topic})) {
      for (const auto& p : md->partitions) {
        if (p.tp == tp && p.leader != kNoBroker && (!accept || accept(p)))
          return p;
      }
    }
    if (Clock::now() >= deadline)
      return std::nullopt;
    std::this_thread::sleep_for(50ms);
  }
}

std::optional<std::vector<Record>> SyncClient::read_all(const TopicPartition& tp, Offset from) {
  std::vector<Record> out;
  int64_t end = -1;
  Offset next = from;
  for (int attempts = 0; attempts < 200; ++attempts) {
    PollResult r = poll(tp, next, 1 << 20);
    if (r.error != errc::none) {
      std::this_thread::sleep_for(50ms);
      continue;
    }
    if (end < 0)
      end = r.high_watermark;
    for (auto& rec : r.records) {
      if (rec.offset.value() >= end)
        break;
      next = Offset{rec.offset.value() + 1};
      out.push_back(std::move(rec));
    }
    if (next.value() >= end)
      return out;
  }
  return std::nullopt;
}

}  // namespace faultline::cluster
