#include "broker/kafka_gateway.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

#include "faultline/cluster/kafka/records.h"

namespace faultline::cluster {

using asio::awaitable;

namespace {

constexpr int16_t kInvalidRequest = static_cast<int16_t>(errc::invalid_request);
constexpr int16_t kUnknownTopic = static_cast<int16_t>(errc::unknown_topic_or_partition);

// Not a coroutine: the Request is built and moved into handle()'s frame here, so no temporary
// Request lives across a co_await in a caller's frame (which GCC 12 miscompiles; see rpc.h).
template <typename Message>
awaitable<Response> call(KafkaBackend& backend, Message message) {
  return backend.handle(Request(std::move(message)), ListenerKind::client);
}

// Runs `tasks` concurrently on the caller's executor and returns when all have finished (Asio
// 1.22 has no ranged parallel_group).
struct Countdown {
  size_t left;
  asio::steady_timer done;
};
awaitable<void> run_counted(std::shared_ptr<Countdown> state, awaitable<void> task) {
  try {
    co_await std::move(task);
  } catch (const std::exception& e) {
    spdlog::error("event=kafka_task_failed error=\"{}\"", e.what());
  }
  if (--state->left == 0)
    state->done.cancel();
}
awaitable<void> run_all(std::vector<awaitable<void>> tasks) {
  auto executor = co_await asio::this_coro::executor;
  auto state = std::make_shared<Countdown>(
      Countdown{tasks.size(), asio::steady_timer(executor, asio::steady_timer::time_point::max())});
  for (auto& task : tasks)
    asio::co_spawn(executor, run_counted(state, std::move(task)), asio::detached);
  if (state->left > 0)
    co_await state->done.async_wait(use_tuple);
}

kafka::MetadataPartition to_kafka_partition(const PartitionMetadata& pm,
                                            const std::set<BrokerId>& available) {
  kafka::MetadataPartition out;
  out.index = pm.tp.partition.value();
  out.error_code = to_kafka_error(pm.error);
  out.leader_id = pm.leader.value();
  out.leader_epoch = pm.leader_epoch.value();
  for (BrokerId r : pm.replicas) {
    out.replica_nodes.push_back(r.value());
    if (!available.contains(r))
      out.offline_replicas.push_back(r.value());
  }
  for (BrokerId r : pm.isr)
    out.isr_nodes.push_back(r.value());
  return out;
}

awaitable<void> fill_produce(kafka::ProducePartitionResponse& out,
                             awaitable<kafka::ProducePartitionResponse> task) {
  out = co_await std::move(task);
}

}  // namespace

int16_t to_kafka_error(errc e) noexcept {
  switch (e) {
    case errc::leadership_lost_after_append:
    case errc::io_error:
      return static_cast<int16_t>(errc::request_timed_out);
    case errc::shutting_down:
      return static_cast<int16_t>(errc::not_leader_or_follower);
    case errc::malformed_frame:
    case errc::frame_too_large:
      return static_cast<int16_t>(errc::corrupt_message);
    default:
      break;
  }
  auto code = static_cast<int16_t>(e);
  // Any other local code (1000 and up) has no Kafka meaning.
  return code >= 1000 ? static_cast<int16_t>(errc::unknown_server_error) : code;
}

kafka::MetadataResponse to_kafka_metadata(const MetadataResponse& cluster,
                                          const std::optional<std::vector<std::string>>& topics) {
  kafka::MetadataResponse out;
  out.cluster_id = "faultline";
  std::set<BrokerId> available;
  for (const auto& b : cluster.brokers) {
    if (b.fenced || !b.kafka_endpoint)
      continue;
    available.insert(b.id);
    out.brokers.push_back({b.id.value(), b.kafka_endpoint->host, b.kafka_endpoint->port, {}});
  }
  // Kafka clients send admin requests (CreateTopics) to the "controller" named here. Every broker
  // forwards them to the real controller, so any available one will do (KRaft, whose controllers
  // clients cannot reach, names a live broker the same way).
  if (!out.brokers.empty())
    out.controller_id = out.brokers.front().node_id;
  std::map<std::string, kafka::MetadataTopic> by_name;
  for (const auto& pm : cluster.partitions) {
    auto& topic = by_name[pm.tp.topic];
    topic.name = pm.tp.topic;
    if (pm.error == errc::unknown_topic_or_partition) {
      topic.error_code = kUnknownTopic;
      continue;
    }
    topic.partitions.push_back(to_kafka_partition(pm, available));
  }
  if (topics) {
    for (const auto& name : *topics) {
      auto it = by_name.find(name);
      if (it != by_name.end()) {
        out.topics.push_back(std::move(it->second));
        by_name.erase(it);
      } else {
        out.topics.push_back({kUnknownTopic, name, false, {}});
      }
    }
  } else {
    for (auto& [name, topic] : by_name)
      out.topics.push_back(std::move(topic));
  }
  for (auto& t : out.topics)
    std::sort(t.partitions.begin(), t.partitions.end(),
              [](const auto& a, const auto& b) { return a.index < b.index; });
  return out;
}

awaitable<std::optional<kafka::Response>> KafkaGateway::handle(kafka::Request request) {
  if (std::holds_alternative<kafka::ApiVersionsRequest>(request)) {
    kafka::ApiVersionsResponse resp;
    auto apis = kafka::supported_apis();
    resp.api_keys.assign(apis.begin(), apis.end());
    co_return resp;
  }
  if (auto* r = std::get_if<kafka::MetadataRequest>(&request))
    co_return co_await metadata(std::move(*r));
  if (auto* r = std::get_if<kafka::ProduceRequest>(&request)) {
    bool answer = r->acks != 0;
    auto resp = co_await produce(std::move(*r));
    if (!answer)
      co_return std::nullopt;
    co_return resp;
  }
  if (auto* r = std::get_if<kafka::FetchRequest>(&request))
    co_return co_await fetch(std::move(*r));
  if (auto* r = std::get_if<kafka::CreateTopicsRequest>(&request))
    co_return co_await create_topics(std::move(*r));
  auto& r = std::get<kafka::ListOffsetsRequest>(request);
  co_return co_await list_offsets(std::move(r));
}

awaitable<kafka::MetadataResponse> KafkaGateway::metadata(kafka::MetadataRequest req) {
  MetadataRequest internal;
  // The cluster's "no topics" means all of them; Kafka's empty list means none.
  bool none = req.topics && req.topics->empty();
  if (req.topics)
    internal.topics = *req.topics;
  Response r = co_await call(backend_, std::move(internal));
  auto out = to_kafka_metadata(std::get<MetadataResponse>(r), req.topics);
  if (none)
    out.topics.clear();
  co_return out;
}

awaitable<kafka::ProduceResponse> KafkaGateway::produce(kafka::ProduceRequest req) {
  Acks acks = req.acks == 0 ? Acks::none : req.acks == 1 ? Acks::leader : Acks::all;
  const bool valid_acks = req.acks == 0 || req.acks == 1 || req.acks == -1;
  kafka::ProduceResponse resp;
  resp.topics.resize(req.topics.size());
  for (size_t t = 0; t < req.topics.size(); ++t) {
    resp.topics[t].name = req.topics[t].name;
    for (const auto& part : req.topics[t].partitions) {
      kafka::ProducePartitionResponse pr;
      pr.index = part.index;
      if (!valid_acks)
        pr.error_code = static_cast<int16_t>(errc::invalid_request);
      resp.topics[t].partitions.push_back(pr);
    }
  }
  if (!valid_acks)
    co_return resp;
  // resp is fully sized before any task starts: each task writes its own element.
  std::vector<awaitable<void>> tasks;
  for (size_t t = 0; t < req.topics.size(); ++t)
    for (size_t i = 0; i < req.topics[t].partitions.size(); ++i)
      tasks.push_back(
          fill_produce(resp.topics[t].partitions[i],
                       produce_one(req.topics[t].name, std::move(req.topics[t].partitions[i]), acks,
                                   req.timeout_ms)));
  co_await run_all(std::move(tasks));
  co_return resp;
}

awaitable<kafka::ProducePartitionResponse> KafkaGateway::produce_one(std::string topic,
                                                                     kafka::ProducePartition part,
                                                                     Acks acks,
                                                                     int32_t timeout_ms) {
  kafka::ProducePartitionResponse out;
  out.index = part.index;
  ProduceRequest internal;
  internal.tp = {std::move(topic), PartitionIndex{part.index}};
  internal.acks = acks;
  internal.timeout_ms = std::max(timeout_ms, 1);
  int32_t records = 0;
  std::string batch;
  out.error_code = kafka::to_internal_batch(part.records, batch, records);
  if (out.error_code != 0)
    co_return out;
  internal.batch = SharedBytes(std::move(batch));
  Response r = co_await call(backend_, std::move(internal));
  const auto& pr = std::get<ProduceResponse>(r);
  out.error_code = to_kafka_error(pr.error);
  if (pr.error == errc::none)
    out.base_offset = pr.base_offset.value();
  co_return out;
}

awaitable<kafka::FetchResponse> KafkaGateway::fetch(kafka::FetchRequest req) {
  kafka::FetchResponse resp;
  size_t bytes = co_await fetch_pass(req, resp);
  bool any_error = false;
  for (const auto& t : resp.topics)
    for (const auto& p : t.partitions)
      any_error = any_error || p.error_code != 0;
  if (bytes > 0 || any_error || req.max_wait_ms <= 0 || req.replica_id >= 0)
    co_return resp;
  std::vector<TopicPartition> tps;
  for (const auto& t : req.topics)
    for (const auto& p : t.partitions)
      tps.push_back({t.name, PartitionIndex{p.index}});
  co_await backend_.wait_for_any(tps, std::chrono::milliseconds(req.max_wait_ms));
  resp = kafka::FetchResponse{};
  co_await fetch_pass(req, resp);
  co_return resp;
}

awaitable<size_t> KafkaGateway::fetch_pass(const kafka::FetchRequest& req,
                                           kafka::FetchResponse& resp) {
  size_t total = 0;
  for (const auto& topic : req.topics) {
    kafka::FetchTopicResponse tr;
    tr.name = topic.name;
    for (const auto& part : topic.partitions) {
      kafka::FetchPartitionResponse pr;
      pr.index = part.index;
      if (req.replica_id >= 0) {
        pr.error_code = kInvalidRequest;
        tr.partitions.push_back(std::move(pr));
        continue;
      }
      FetchRequest internal;
      internal.tp = {topic.name, PartitionIndex{part.index}};
      internal.current_leader_epoch = part.current_leader_epoch;
      internal.fetch_offset = part.fetch_offset;
      // KIP-74: the first partition with data is served whole even past the request's budget;
      // a partition past the budget is still asked, for its errors and high watermark.
      int64_t budget = static_cast<int64_t>(req.max_bytes) - static_cast<int64_t>(total);
      const bool over_budget = total > 0 && budget <= 0;
      internal.max_bytes =
          total == 0 || over_budget
              ? std::max(part.partition_max_bytes, 1)
              : static_cast<int32_t>(std::min<int64_t>(budget, part.partition_max_bytes));
      Response r = co_await call(backend_, std::move(internal));
      const auto& fr = std::get<FetchResponse>(r);
      pr.error_code = to_kafka_error(fr.error);
      pr.high_watermark = fr.high_watermark;
      pr.last_stable_offset = fr.high_watermark;  // no transactions: everything below the HW
      pr.log_start_offset = fr.log_start_offset;
      if (fr.error == errc::none && !fr.records.empty() && !over_budget) {
        int16_t e = kafka::to_kafka_batches(fr.records, pr.records);
        if (e != 0)
          pr.error_code = e;
        total += pr.records.size();
      }
      tr.partitions.push_back(std::move(pr));
    }
    resp.topics.push_back(std::move(tr));
  }
  co_return total;
}

awaitable<kafka::ListOffsetsResponse> KafkaGateway::list_offsets(kafka::ListOffsetsRequest req) {
  kafka::ListOffsetsResponse resp;
  for (const auto& topic : req.topics) {
    kafka::ListOffsetsTopicResponse tr;
    tr.name = topic.name;
    for (const auto& part : topic.partitions) {
      kafka::ListOffsetsPartitionResponse pr;
      pr.index = part.index;
      ListOffsetsRequest internal;
      internal.tp = {topic.name, PartitionIndex{part.index}};
      if (part.timestamp == -2) {
        internal.which = OffsetSpec::earliest;
      } else if (part.timestamp == -1) {
        // A consumer's "latest" is the high watermark: records above it are not readable yet.
        internal.which = OffsetSpec::high_watermark;
      } else {
        pr.error_code = kInvalidRequest;  // no time index: offsets by timestamp are not served
        tr.partitions.push_back(pr);
        continue;
      }
      Response r = co_await call(backend_, std::move(internal));
      const auto& lr = std::get<ListOffsetsResponse>(r);
      pr.error_code = to_kafka_error(lr.error);
      pr.offset = lr.error == errc::none ? lr.offset : -1;
      tr.partitions.push_back(pr);
    }
    resp.topics.push_back(std::move(tr));
  }
  co_return resp;
}

namespace {

// Why the cluster cannot create `t` as asked, as a Kafka error and message; nullopt if it can.
std::optional<kafka::CreateTopicResult> refuse(const kafka::CreatableTopic& t, bool validate_only) {
  auto no = [&](errc e, std::string why) {
    return kafka::CreateTopicResult{t.name, static_cast<int16_t>(e), std::move(why)};
  };
  if (t.assignments > 0)
    return no(errc::invalid_replica_assignment,
              "explicit replica assignments are not supported: the controller places replicas");
  if (t.configs > 0)
    return no(errc::invalid_config,
              "topic configs are not supported: the cluster's settings apply to every topic");
  if (t.num_partitions < 1)
    return no(errc::invalid_partitions, "give num_partitions (>= 1)");
  if (t.replication_factor < 1)
    return no(errc::invalid_replication_factor, "give replication_factor (>= 1)");
  if (validate_only)
    return no(errc::invalid_request, "validate_only is not supported");
  return std::nullopt;
}

}  // namespace

awaitable<kafka::CreateTopicsResponse> KafkaGateway::create_topics(kafka::CreateTopicsRequest req) {
  kafka::CreateTopicsResponse resp;
  for (const auto& t : req.topics) {
    if (auto refused = refuse(t, req.validate_only)) {
      resp.topics.push_back(std::move(*refused));
      continue;
    }
    errc e = co_await backend_.create_topic(t.name, t.num_partitions, t.replication_factor);
    // An unreachable controller: the client may retry, as after Kafka's own request timeout.
    int16_t code = e == errc::network_exception ? static_cast<int16_t>(errc::request_timed_out)
                                                : to_kafka_error(e);
    resp.topics.push_back({t.name, code, std::nullopt});
  }
  co_return resp;
}

}  // namespace faultline::cluster
