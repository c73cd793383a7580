#include "broker/broker.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <filesystem>

#include "broker/kafka_server.h"
#include "broker/storage_canary.h"
#include "faultline/cluster/log/record_batch.h"
#include "faultline/cluster/log/truncation.h"
#include "faultline/cluster/replication/fetch_session.h"

#ifdef FAULTLINE_MUTANTS
#include "faultline/cluster/mutants.h"
#endif

namespace faultline::cluster {

using asio::awaitable;
using asio::use_awaitable;
using namespace std::chrono_literals;

namespace {

constexpr size_t kMetadataBatch = 4096;
constexpr auto kRetryBackoff = 50ms;
constexpr auto kIsrCheckInterval = 50ms;
// The longest gap between two ISR sweeps over every partition led here (shrinks are found by the
// sweeps); a tenth of replica.lag.time.max.ms when that is shorter. See Broker::isr_loop.
constexpr auto kMaxIsrSweepInterval = 500ms;
// Longest stretch of metadata application between two yields to the io_context: well under any
// heartbeat interval, so a 10k-partition batch never holds up a heartbeat.
constexpr auto kApplySlice = 5ms;

std::filesystem::path partition_dir(const std::filesystem::path& data_dir,
                                    const TopicPartition& tp) {
  return data_dir / fmt::format("{}-{}", tp.topic, tp.partition.value());
}
// Threads opening new partition logs together (each open creates files and fsyncs them).
constexpr size_t kLogOpeners = 8;
// ISR changes per AlterPartitions request; one request in flight per broker. The controller
// persists a request's changes with one fsync, so a broker rejoining 10k partitions costs its
// leaders a handful of requests, and heartbeats never queue behind thousands of fsyncs.
constexpr size_t kMaxAlterPartitionBatch = 2000;

// Opens the logs on up to kLogOpeners threads; stops early (leaving nullptr) once `abandon` is set.
std::vector<std::unique_ptr<PartitionLog>> open_logs_in_parallel(
    const std::filesystem::path& data_dir, const LogConfig& cfg,
    const std::vector<TopicPartition>& tps, const std::atomic<bool>& abandon,
    std::vector<std::error_code>& errors) {
  std::vector<std::unique_ptr<PartitionLog>> logs(tps.size());
  errors.assign(tps.size(), {});
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < tps.size() && !abandon; i = next++) {
      logs[i] = PartitionLog::open(partition_dir(data_dir, tps[i]), cfg, errors[i]);
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < std::min(kLogOpeners, tps.size()); ++t)
    threads.emplace_back(work);
  work();
  for (auto& t : threads)
    t.join();
  return logs;
}

// Descriptors kept for everything but log segments: client, replication and controller sockets,
// checkpoint files being replaced, the storage canary. A quarter of the limit, 128 to 4096.
size_t descriptors_not_for_logs(uint64_t limit) {
  return std::clamp<size_t>(static_cast<size_t>(limit / 4), 128, 4096);
}

size_t open_log_file_capacity(const BrokerConfig& config) {
  if (config.max_open_log_files > 0)
    return config.max_open_log_files;
  rlimit lim{};
  const uint64_t limit = ::getrlimit(RLIMIT_NOFILE, &lim) == 0 ? lim.rlim_cur : 1024;
  return OpenFileCache::capacity_for_limit(limit, descriptors_not_for_logs(limit));
}

uint64_t random_incarnation() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

Broker::Broker(asio::io_context& io, BrokerConfig config, MetricsEndpoint& metrics)
    : io_(io),
      config_(std::move(config)),
      metrics_(metrics.registry()),
      peers_(io),
      controllers_(io, peers_, config_.controllers),
      incarnation_(random_incarnation()),
      fetch_sessions_(incarnation_),
      log_files_(std::make_shared<OpenFileCache>(open_log_file_capacity(config_))) {
  spdlog::info("event=log_file_cache capacity={}", log_files_->capacity());
}

Broker::~Broker() {
  abandon_log_opening_ = true;
  if (log_opener_.joinable())
    log_opener_.join();
}

uint16_t Broker::internal_port() const {
  return internal_server_ ? internal_server_->port() : 0;
}
uint16_t Broker::client_port() const {
  return client_server_ ? client_server_->port() : 0;
}
uint16_t Broker::kafka_port() const {
  return kafka_server_ ? kafka_server_->port() : 0;
}

bool Broker::start() {
  if (config_.controllers.empty()) {
    spdlog::error("event=bad_config reason=\"no controller endpoints\"");
    return false;
  }
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec) {
    spdlog::error("event=data_dir_failed path={} error=\"{}\"", config_.data_dir.string(),
                  ec.message());
    return false;
  }
  try {
    internal_server_ =
        std::make_unique<RpcServer>(io_, config_.internal_listener, ListenerKind::internal, *this);
    client_server_ =
        std::make_unique<RpcServer>(io_, config_.client_listener, ListenerKind::client, *this);
    if (config_.kafka_listener)
      kafka_server_ = std::make_unique<KafkaServer>(io_, *config_.kafka_listener, *this);
  } catch (const std::exception& e) {
    spdlog::error("event=listen_failed error=\"{}\"", e.what());
    return false;
  }
  if (config_.storage_canary_interval.count() > 0) {
    StorageCanary::Options canary;
    canary.file = config_.data_dir / "storage-canary";
    canary.interval = config_.storage_canary_interval;
    canary_ = std::make_unique<StorageCanary>(canary, metrics_);
    if (canary_->start())
      return false;
  }
  internal_server_->start();
  client_server_->start();
  if (kafka_server_)
    kafka_server_->start();
  // Re-open the partitions found on disk: their logs recover now, before any request.
  std::vector<TopicPartition> found;
  for (const auto& entry : std::filesystem::directory_iterator(config_.data_dir, ec)) {
    if (!entry.is_directory())
      continue;
    auto name = entry.path().filename().string();
    auto dash = name.rfind('-');
    if (dash == std::string::npos || dash == 0)
      continue;
    try {
      int32_t index = std::stoi(name.substr(dash + 1));
      found.push_back({name.substr(0, dash), PartitionIndex{index}});
    } catch (const std::exception&) {
      continue;
    }
  }
  std::vector<std::error_code> errors;
  auto logs =
      open_logs_in_parallel(config_.data_dir, log_config(), found, abandon_log_opening_, errors);
  for (size_t i = 0; i < found.size(); ++i) {
    if (!logs[i]) {
      spdlog::critical("event=log_open_failed tp={} error=\"{}\"", found[i], errors[i].message());
      std::abort();
    }
    open_partition(found[i], std::move(logs[i]));
  }
  spdlog::info("event=broker_listening broker={} internal={}:{} client={}:{}", config_.broker_id,
               config_.internal_listener.host, internal_port(), config_.client_listener.host,
               client_port());
  asio::co_spawn(io_, registration_and_heartbeat_loop(), asio::detached);
  asio::co_spawn(io_, metadata_loop(), asio::detached);
  asio::co_spawn(io_, isr_loop(), asio::detached);
  asio::co_spawn(io_, flush_loop(), asio::detached);
  return true;
}

void Broker::begin_controlled_shutdown() {
  if (want_shutdown_)
    return;
  want_shutdown_ = true;
  shutdown_deadline_ = Clock::now() + config_.controlled_shutdown_timeout;
  spdlog::info("event=controlled_shutdown_requested broker={}", config_.broker_id);
  // Ask the controller now, not at the next heartbeat (up to a heartbeat interval later).
  if (heartbeat_wait_ != nullptr)
    heartbeat_wait_->cancel();
}

void Broker::stop() {
  if (stopping_)
    return;
  stopping_ = true;
  for (auto& [leader, fetcher] : fetchers_)
    ++fetcher.generation;
  for (auto& [tp, p] : partitions_) {
    if (p->replication)
      complete(p->replication->abandon_pending_produces());
    wake(*p);
    if (auto job = flush_job(*p))
      run_flush_job(*job);
  }
  if (internal_server_)
    internal_server_->stop();
  if (client_server_)
    client_server_->stop();
  if (kafka_server_)
    kafka_server_->stop();
  if (canary_)
    canary_->stop();
  abandon_log_opening_ = true;
  if (log_opener_.joinable())
    log_opener_.join();
  peers_.close_all();
  io_.stop();
}

// ---------------------------------------------------------------------------------------------
// Requests

awaitable<Response> Broker::handle(Request request, ListenerKind listener) {
  if (auto* r = std::get_if<ProduceRequest>(&request))
    co_return co_await handle_produce(std::move(*r));
  if (auto* r = std::get_if<FetchRequest>(&request))
    co_return co_await handle_fetch(std::move(*r), listener);
  if (auto* r = std::get_if<ReplicaFetchRequest>(&request))
    co_return co_await handle_replica_fetch(std::move(*r), listener);
  if (auto* r = std::get_if<ListOffsetsRequest>(&request))
    co_return handle_list_offsets(*r);
  if (auto* r = std::get_if<OffsetForLeaderEpochRequest>(&request))
    co_return handle_offset_for_leader_epoch(*r);
  if (auto* r = std::get_if<MetadataRequest>(&request))
    co_return handle_metadata(*r);
  if (std::holds_alternative<ApiVersionsRequest>(request)) {
    ApiVersionsResponse resp;
    resp.broker_id = config_.broker_id;
    co_return resp;
  }
  if (std::holds_alternative<BrokerHealthRequest>(request))
    co_return handle_broker_health();
  // Controller APIs are not served by brokers.
  co_return error_response_for(request, errc::not_controller);
}

awaitable<Response> Broker::handle_produce(ProduceRequest req) {
  auto started = Clock::now();
  ProduceResponse resp;
  Partition* p = find(req.tp);
  if (p == nullptr) {
    resp.error =
        image_.partition(req.tp) ? errc::not_leader_or_follower : errc::unknown_topic_or_partition;
    co_return resp;
  }
  // The epoch this broker holds; while it leads, the one it appends (and acknowledges) under.
  resp.leader_epoch = p->leader_epoch;
  if (!p->replication) {
    resp.error = errc::not_leader_or_follower;
    co_return resp;
  }
  if (want_shutdown_ && stopping_) {
    resp.error = errc::not_leader_or_follower;
    co_return resp;
  }
  if (log_dir_offline()) {
    resp.error = errc::storage_error;
    co_return resp;
  }
  if (auto e = p->replication->check_produce(req.acks); e != errc::none) {
    resp.error = e;
    co_return resp;
  }
  if (auto e = validate_batch(std::span<const char>(req.batch.data(), req.batch.size()));
      e != errc::none) {
    resp.error = e;
    co_return resp;
  }
  BatchView view(std::span<const char>(req.batch.data(), req.batch.size()));
  int32_t count = view.record_count();
  std::error_code ec;
  Offset base = p->log->append_as_leader(req.batch, p->leader_epoch, ec);
  if (ec) {
    spdlog::error("event=append_failed tp={} error=\"{}\"", p->tp, ec.message());
    mark_log_dir_offline(p->tp, ec);
    resp.error = errc::io_error;  // the batch may be partly written: the outcome is unknown
    co_return resp;
  }
  if (auto d = p->log->last_fsync_duration()) {
    metrics_.storage_fsync.Observe(std::chrono::duration<double>(*d).count());
  }
  p->unflushed = true;
  Offset last{base.value() + count - 1};
  resp.base_offset = base;
  p->replication->on_leader_append(p->log->log_end_offset());
  wake(*p);
  bool answer_now = req.acks != Acks::all;
#ifdef FAULTLINE_MUTANTS
  // Mutant early-ack: acks=all is acknowledged as soon as the leader has appended, like acks=1
  // (a produce path that forgets to park the request until the HW passes it).
  answer_now = answer_now || mutant_active(Mutant::early_ack);
#endif
  if (answer_now) {
    after_replication_change(*p);
    metrics_.produce_latency.Observe(std::chrono::duration<double>(Clock::now() - started).count());
    co_return resp;
  }
  uint64_t id = next_request_id_++;
  p->replication->add_pending_produce(id, last);
  asio::steady_timer timer(io_, std::chrono::milliseconds(req.timeout_ms));
  pending_[id] = PendingProduce{&timer, std::nullopt};
  after_replication_change(*p);  // a single-member ISR completes at once
  if (!pending_[id].result) {
    co_await timer.async_wait(use_tuple);
  }
  auto result = pending_[id].result;
  pending_.erase(id);
  // Timed out: the records are in the log and may yet commit; the client must treat it as unknown.
  resp.error = result.value_or(errc::request_timed_out);
  metrics_.produce_latency.Observe(std::chrono::duration<double>(Clock::now() - started).count());
  co_return resp;
}

awaitable<Response> Broker::handle_fetch(FetchRequest req, ListenerKind listener) {
  FetchResponse resp;
  bool from_follower = req.replica_id >= 0;
  if (from_follower && listener == ListenerKind::client) {
    resp.error = errc::invalid_request;  // replication never runs over the client network
    co_return resp;
  }
  if (log_dir_offline()) {
    resp.error = errc::storage_error;
    co_return resp;
  }
  Partition* p = find(req.tp);
  if (auto e = check_leader(p, req.tp, req.current_leader_epoch); e != errc::none) {
    resp.error = e;
    co_return resp;
  }
  LeaderEpoch epoch_at_start = p->leader_epoch;
  TopicPartition tp = p->tp;
  Offset fetch_offset{req.fetch_offset};

  if (from_follower) {
    resp.error = accept_follower_fetch(*p, BrokerId{req.replica_id}, fetch_offset,
                                       req.last_fetched_epoch, resp.diverging);
    if (resp.diverging) {
      resp.high_watermark = high_watermark(*p).value();
      resp.log_start_offset = p->log->log_start_offset().value();
      resp.log_end_offset = p->log->log_end_offset().value();
    }
    if (resp.error != errc::none || resp.diverging)
      co_return resp;
  }

  auto read = [&](Partition& part, std::error_code& ec) {
    Offset upper = from_follower ? part.log->log_end_offset() : high_watermark(part);
#ifdef FAULTLINE_MUTANTS
    // Mutant consume-above-hw: consumers are served up to the log end, records not yet
    // replicated included (a fetch path that uses the follower's bound for everyone).
    if (mutant_active(Mutant::consume_above_hw))
      upper = part.log->log_end_offset();
#endif
    return part.log->read(fetch_offset, static_cast<size_t>(std::max(req.max_bytes, 1)), upper, ec);
  };
  std::error_code ec;
  SharedBytes data = read(*p, ec);
  if (!ec && data.empty() && req.max_wait_ms > 0) {
    co_await wait_for_data(*p, std::chrono::milliseconds(req.max_wait_ms));
    p = find(tp);
    if (p == nullptr || !p->replication || p->leader_epoch != epoch_at_start) {
      resp.error = errc::not_leader_or_follower;
      co_return resp;
    }
    data = read(*p, ec);
  }
  if (ec) {
    resp.error = ec == make_error_code(errc::offset_out_of_range) ? errc::offset_out_of_range
                                                                  : errc::unknown_server_error;
  }
  resp.high_watermark = high_watermark(*p).value();
  resp.log_start_offset = p->log->log_start_offset().value();
  resp.log_end_offset = p->log->log_end_offset().value();
  resp.records = std::move(data);
  co_return resp;
}

errc Broker::check_leader(Partition* p, const TopicPartition& tp,
                          int32_t current_leader_epoch) const {
  if (p == nullptr || !p->replication) {
    return p == nullptr && !image_.partition(tp) ? errc::unknown_topic_or_partition
                                                 : errc::not_leader_or_follower;
  }
  if (current_leader_epoch >= 0) {
    if (LeaderEpoch{current_leader_epoch} < p->leader_epoch)
      return errc::fenced_leader_epoch;
    if (LeaderEpoch{current_leader_epoch} > p->leader_epoch)
      return errc::unknown_leader_epoch;
  }
  return errc::none;
}

errc Broker::accept_follower_fetch(Partition& p, BrokerId follower, Offset fetch_offset,
                                   int32_t last_fetched_epoch,
                                   std::optional<DivergingEpoch>& diverging) {
  // KIP-320: tell a follower where its history diverges from ours before it appends anything.
  if (last_fetched_epoch >= 0) {
    auto [epoch, end] = p.log->end_offset_for_epoch(LeaderEpoch{last_fetched_epoch});
    if (epoch != LeaderEpoch{last_fetched_epoch} || end < fetch_offset) {
      diverging = DivergingEpoch{epoch.value(), end.value()};
      return errc::none;
    }
  }
  if (fetch_offset > p.log->log_end_offset())
    return errc::offset_out_of_range;
  if (p.replication->on_follower_fetch(follower, fetch_offset, Clock::now())) {
    after_replication_change(p);
  }
  return errc::none;
}

// One long-poll for every partition a follower replicates from us. Each partition is answered as
// a single-partition follower Fetch would be; the poll ends as soon as any of them has records, a
// divergence or an error for the follower, or after max_wait_ms. The answer lists those and every
// partition whose HW differs from the one the follower holds. In a fetch session the partitions
// are the session's (the request carries only changes), each with the state the session holds.
awaitable<Response> Broker::handle_replica_fetch(ReplicaFetchRequest req, ListenerKind listener) {
  ReplicaFetchResponse resp;
  if (listener == ListenerKind::client || req.replica_id < 0) {
    resp.error = errc::invalid_request;  // replication never runs over the client network
    co_return resp;
  }
  if (log_dir_offline()) {
    resp.error = errc::storage_error;
    co_return resp;
  }
  const BrokerId follower{req.replica_id};
  FetchSessionResolution session = fetch_sessions_.resolve(req);
  publish_fetch_session_metrics(req, session);
  if (session.error != errc::none) {
    spdlog::info("event=fetch_session_refused follower={} session={} epoch={} error={}", follower,
                 req.session_id, req.session_epoch, errc_name(session.error));
    resp.error = session.error;
    co_return resp;
  }
  resp.session_id = session.session_id;
  const std::vector<ReplicaFetchPartition>& parts = session.partitions;
  const size_t n = parts.size();
  std::vector<ReplicaFetchPartitionResponse> answers(n);
  std::vector<LeaderEpoch> epochs(n);
  std::vector<char> settled(n, 0);  // an error or a divergence: answered, nothing to read
  // Looked up once: partitions are never removed, so the pointers hold across the waits.
  std::vector<Partition*> hosted(n, nullptr);
  int64_t budget = std::max(req.max_bytes, 1);
  // Reads partition i past the follower's position; true when the answer now has something for
  // the follower (records, an error, or leadership moved while the poll waited).
  auto read_one = [&](size_t i) {
    auto& a = answers[i];
    Partition* p = hosted[i];
    if (p == nullptr || !p->replication || p->leader_epoch != epochs[i]) {
      a.error = errc::not_leader_or_follower;
      settled[i] = 1;
      return true;
    }
    // Nothing new past the follower's position (the usual case for an idle partition): no read,
    // which would take the log's lock to find nothing.
    if (budget <= 0 || parts[i].fetch_offset == p->log->log_end_offset().value())
      return false;
    std::error_code ec;
    int32_t max_bytes =
        static_cast<int32_t>(std::min<int64_t>(std::max(req.partition_max_bytes, 1), budget));
    a.records = p->log->read(Offset{parts[i].fetch_offset}, static_cast<size_t>(max_bytes),
                             p->log->log_end_offset(), ec);
    if (ec) {
      a.error = ec == make_error_code(errc::offset_out_of_range) ? errc::offset_out_of_range
                                                                 : errc::unknown_server_error;
      settled[i] = 1;
      return true;
    }
    budget -= static_cast<int64_t>(a.records.size());
    // A new HW alone does not end the poll (it rides along when the answer goes): ending it would
    // cost every acks=all produce an extra round trip per follower.
    return !a.records.empty();
  };
  // The HW and log bounds partition i's answer carries.
  auto fill_bounds = [&](size_t i) {
    auto& a = answers[i];
    Partition* p = hosted[i];
    if (p != nullptr && p->log && a.error == errc::none) {
      a.high_watermark = high_watermark(*p).value();
      a.log_start_offset = p->log->log_start_offset().value();
      a.log_end_offset = p->log->log_end_offset().value();
    }
  };
  // One pass while each partition is at hand: check, count the fetch for the ISR, read, bounds. At
  // tens of thousands of partitions every extra pass costs a cache miss per partition.
  bool any = false;
  for (size_t i = 0; i < n; ++i) {
    const auto& part = parts[i];
    auto& a = answers[i];
    a.tp = part.tp;
    Partition* p = hosted[i] = find(part.tp);
    a.error = check_leader(p, part.tp, part.current_leader_epoch);
    if (a.error == errc::none) {
      epochs[i] = p->leader_epoch;
      a.error = accept_follower_fetch(*p, follower, Offset{part.fetch_offset},
                                      part.last_fetched_epoch, a.diverging);
    }
    if (a.error != errc::none || a.diverging) {
      settled[i] = 1;
      any = true;
    } else {
      any = read_one(i) || any;
    }
    fill_bounds(i);
  }
  // Appends, HW moves, leadership changes and stopping all wake a partition's waiters: until one
  // does, the bounds taken above still hold and no read would find more.
  bool woken_once = false;
  auto deadline = Clock::now() + std::chrono::milliseconds(std::max(req.max_wait_ms, 0));
  while (!any && !stopping_ && Clock::now() < deadline) {
    std::vector<Partition*> waiting;
    waiting.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (!settled[i] && hosted[i] != nullptr)
        waiting.push_back(hosted[i]);
    }
    const bool woken = co_await wait_for_any(
        waiting, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!woken)
      break;
    woken_once = true;
    for (size_t i = 0; i < n; ++i) {
      if (!settled[i])
        any = read_one(i) || any;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    auto& a = answers[i];
    if (woken_once)
      fill_bounds(i);
    if (a.error != errc::none)  // maybe errored after the first pass took its bounds
      a.high_watermark = a.log_start_offset = a.log_end_offset = -1;
    bool has_news = a.error != errc::none || a.diverging || !a.records.empty() ||
                    (a.high_watermark >= 0 && a.high_watermark != parts[i].known_high_watermark);
    if (has_news)
      resp.partitions.push_back(std::move(a));
  }
  // The session now holds, as each answered partition's known HW, the HW this answer carries (the
  // follower records the same on receipt), so an idle partition is not answered again.
  fetch_sessions_.on_answered(follower, session.session_id, session.session_epoch, resp.partitions);
  co_return resp;
}

awaitable<errc> Broker::create_topic(std::string name, int32_t partitions,
                                     int32_t replication_factor) {
  CreateTopicRequest req{std::move(name), partitions, replication_factor};
  auto res = co_await controllers_.call(std::move(req), config_.request_timeout);
  if (res.error)
    co_return errc::network_exception;
  co_return std::get<CreateTopicResponse>(res.response).error;
}

Response Broker::handle_list_offsets(const ListOffsetsRequest& req) {
  ListOffsetsResponse resp;
  Partition* p = find(req.tp);
  if (p == nullptr || !p->replication) {
    resp.error = errc::not_leader_or_follower;
    return resp;
  }
  switch (req.which) {
    case OffsetSpec::earliest:
      resp.offset = p->log->log_start_offset().value();
      break;
    case OffsetSpec::latest:
      resp.offset = p->log->log_end_offset().value();
      break;
    case OffsetSpec::high_watermark:
      resp.offset = high_watermark(*p).value();
      break;
  }
  return resp;
}

Response Broker::handle_offset_for_leader_epoch(const OffsetForLeaderEpochRequest& req) {
  OffsetForLeaderEpochResponse resp;
  Partition* p = find(req.tp);
  if (p == nullptr || !p->replication) {
    resp.error = errc::not_leader_or_follower;
    return resp;
  }
  if (req.current_leader_epoch >= 0 && LeaderEpoch{req.current_leader_epoch} != p->leader_epoch) {
    resp.error = LeaderEpoch{req.current_leader_epoch} < p->leader_epoch
                     ? errc::fenced_leader_epoch
                     : errc::unknown_leader_epoch;
    return resp;
  }
  auto [epoch, end] = p->log->end_offset_for_epoch(LeaderEpoch{req.requested_epoch});
  resp.leader_epoch = epoch.value();
  resp.end_offset = end.value();
  return resp;
}

Response Broker::handle_metadata(const MetadataRequest& req) {
  MetadataResponse resp;
  resp.controller = controllers_.followed();
  resp.metadata_offset = reconciled_offset_.value();
  for (const auto& [id, b] : image_.brokers()) {
    if (!b.registered)
      continue;
    BrokerMetadata bm;
    bm.id = id;
    bm.client_endpoint = b.client_endpoint;
    bm.internal_endpoint = b.internal_endpoint;
    bm.kafka_endpoint = b.kafka_endpoint;
    bm.fenced = b.fenced;
    bm.demoted = b.demoted;
    bm.demotion_reason = b.demotion_reason;
    bm.shutting_down = b.shutting_down;
    resp.brokers.push_back(std::move(bm));
  }
  auto add_topic = [&](const TopicState& t) {
    for (size_t i = 0; i < t.partitions.size(); ++i) {
      const auto& ps = t.partitions[i];
      PartitionMetadata pm;
      pm.tp = {t.name, PartitionIndex{static_cast<int32_t>(i)}};
      pm.leader = ps.leader;
      pm.leader_epoch = ps.leader_epoch;
      pm.partition_epoch = ps.partition_epoch;
      pm.replicas = ps.replicas;
      pm.isr = ps.isr;
      pm.unclean_elections = ps.unclean_elections;
      pm.error = ps.leader == kNoBroker ? errc::leader_not_available : errc::none;
      resp.partitions.push_back(std::move(pm));
    }
  };
  if (req.topics.empty()) {
    for (const auto& t : image_.topics())
      add_topic(t);
  } else {
    for (const auto& name : req.topics) {
      if (const auto* t = image_.topic(name)) {
        add_topic(*t);
      } else {
        PartitionMetadata pm;
        pm.tp = {name, PartitionIndex{0}};
        pm.error = errc::unknown_topic_or_partition;
        resp.partitions.push_back(std::move(pm));
      }
    }
  }
  return resp;
}

// Served on both listeners: the prober uses it on the client one as its reachability request,
// and reads the canary's figures from the answer. Nothing here touches the disk.
Response Broker::handle_broker_health() const {
  BrokerHealthResponse resp;
  resp.broker_id = config_.broker_id;
  if (canary_)
    canary_->report(resp);
  // A failed log directory is a storage failure to the health manager, whatever the canary (in
  // the data directory, not in a partition's log) last managed.
  if (log_dir_offline() && resp.canary_error.empty())
    resp.canary_error = "log directory offline (an I/O error on a partition's log)";
  return resp;
}

// ---------------------------------------------------------------------------------------------
// Loops

awaitable<void> Broker::sleep(std::chrono::milliseconds d) {
  asio::steady_timer t(io_, d);
  co_await t.async_wait(use_tuple);
}

awaitable<void> Broker::registration_and_heartbeat_loop() {
  Endpoint internal{config_.internal_listener.host, internal_port()};
  Endpoint client{config_.client_listener.host, client_port()};
  while (!stopping_) {
    if (!registered_) {
      BrokerRegistrationRequest req;
      req.broker = config_.broker_id;
      req.incarnation = incarnation_;
      req.internal_endpoint = internal;
      req.client_endpoint = client;
      if (config_.kafka_listener)
        req.kafka_endpoint = Endpoint{config_.kafka_listener->host, kafka_port()};
      auto res = co_await controllers_.call(req, 2000ms);
      if (!res.error) {
        auto& r = std::get<BrokerRegistrationResponse>(res.response);
        if (r.error == errc::none) {
          broker_epoch_ = r.broker_epoch;
          registered_ = true;
          spdlog::info("event=registered broker={} epoch={}", config_.broker_id, broker_epoch_);
          continue;
        }
        spdlog::warn("event=registration_refused error={}", errc_name(r.error));
      }
      co_await sleep(200ms);
      continue;
    }
    BrokerHeartbeatRequest req;
    req.broker = config_.broker_id;
    req.broker_epoch = broker_epoch_;
    req.applied_metadata_offset = reconciled_offset_;
    req.want_shutdown = want_shutdown_;
    req.log_dir_offline = log_dir_offline();
    if (canary_) {
      if (auto latency = canary_->current_latency())
        req.storage_canary_us = latency->count();
      req.storage_canary_error = canary_->current_error();
    }
    auto res = co_await controllers_.call(req, 2000ms);
    if (!res.error) {
      auto& r = std::get<BrokerHeartbeatResponse>(res.response);
      if (r.error == errc::stale_broker_epoch || r.error == errc::broker_id_not_registered) {
        // The controller lost or replaced our registration: register again (same incarnation).
        registered_ = false;
        continue;
      }
      if (r.error == errc::none) {
        if (fenced_ != r.fenced) {
          spdlog::info("event={} broker={}", r.fenced ? "fenced" : "unfenced", config_.broker_id);
        }
        fenced_ = r.fenced;
        if (want_shutdown_ && r.shutdown_allowed) {
          spdlog::info("event=controlled_shutdown_complete broker={}", config_.broker_id);
          stop();
          co_return;
        }
      }
    }
    if (want_shutdown_ && Clock::now() > shutdown_deadline_) {
      spdlog::warn("event=controlled_shutdown_timeout broker={}", config_.broker_id);
      stop();
      co_return;
    }
    // Heartbeat fast while fenced or shutting down: both wait on the controller's answer.
    auto interval = (fenced_ || want_shutdown_)
                        ? std::min<std::chrono::milliseconds>(config_.heartbeat_interval, 50ms)
                        : config_.heartbeat_interval;
    asio::steady_timer wait(io_, interval);  // cut short by begin_controlled_shutdown()
    heartbeat_wait_ = &wait;
    co_await wait.async_wait(use_tuple);
    heartbeat_wait_ = nullptr;
  }
}

awaitable<void> Broker::metadata_loop() {
  while (!stopping_) {
    FetchMetadataLogRequest req;
    req.from = image_.next_offset();
    req.max_records = kMetadataBatch;
    req.max_wait_ms = 500;
    // Whichever controller answers serves the same replicated log: a new active one continues
    // from the broker's own next offset. The long-poll's wait is not a sign of a dead controller.
    auto res = co_await controllers_.call(req, 3000ms, std::chrono::milliseconds(req.max_wait_ms));
    if (stopping_)
      co_return;
    if (res.error) {
      // The controller is away: keep serving with what we know (ARCHITECTURE.md §2 item 9).
      co_await sleep(100ms);
      continue;
    }
    auto& r = std::get<FetchMetadataLogResponse>(res.response);
    if (r.error != errc::none) {
      co_await sleep(100ms);
      continue;
    }
    if (!r.snapshot.empty() && !co_await on_metadata_snapshot(r.snapshot)) {
      co_await sleep(100ms);
      continue;
    }
    if (stopping_)
      co_return;
    auto slice_started = Clock::now();
    for (const auto& entry : r.entries) {
      if (entry.offset < image_.next_offset())
        continue;
      if (auto ec = image_.apply(entry)) {
        spdlog::critical("event=metadata_apply_failed offset={} error=\"{}\"", entry.offset,
                         ec.message());
        std::abort();
      }
      co_await on_metadata_entry(entry);
      reconciled_offset_ = entry.offset;
      co_await yield_if_busy(slice_started);
      if (stopping_)
        co_return;
    }
    restart_fetchers();
    if (gauges_stale_)
      update_gauges();  // a pass over every partition: only after something changed
  }
}

awaitable<void> Broker::yield_if_busy(Clock::time_point& slice_started) {
  if (Clock::now() - slice_started < kApplySlice)
    co_return;
  restart_fetchers();  // the partitions applied so far start replicating now
  co_await asio::post(io_, use_awaitable);
  slice_started = Clock::now();
}

awaitable<void> Broker::on_metadata_entry(const MetadataEntry& entry) {
  auto slice_started = Clock::now();
  if (const auto* change = std::get_if<PartitionChanged>(&entry.record)) {
    reconcile(change->tp);
  } else if (const auto* topic = std::get_if<TopicCreated>(&entry.record)) {
    co_await open_hosted(topic->name, topic->partitions.size());
    if (stopping_)
      co_return;
    for (size_t i = 0; i < topic->partitions.size(); ++i) {
      reconcile({topic->name, PartitionIndex{static_cast<int32_t>(i)}});
      co_await yield_if_busy(slice_started);
      if (stopping_)
        co_return;
    }
  } else if (std::holds_alternative<BrokerRegistered>(entry.record)) {
    // A broker's endpoints changed: followers of partitions it leads reconnect to the new ones.
    const auto& reg = std::get<BrokerRegistered>(entry.record);
    if (auto it = fetchers_.find(reg.broker); it != fetchers_.end())
      it->second.restart = true;
  }
}

awaitable<void> Broker::open_hosted(const std::string& topic, size_t partitions) {
  std::vector<TopicPartition> hosted;
  for (size_t i = 0; i < partitions; ++i) {
    TopicPartition tp{topic, PartitionIndex{static_cast<int32_t>(i)}};
    const PartitionState* state = image_.partition(tp);
    if (state != nullptr && find(tp) == nullptr &&
        (state->replicas.contains(config_.broker_id) ||
         state->adding.contains(config_.broker_id))) {
      hosted.push_back(tp);
    }
  }
  auto logs = co_await open_logs(hosted);
  if (stopping_)
    co_return;
  for (size_t i = 0; i < hosted.size(); ++i)
    open_partition(hosted[i], std::move(logs[i]));
}

awaitable<bool> Broker::on_metadata_snapshot(std::span<const uint8_t> bytes) {
  std::string why;
  auto snapshot = decode_metadata_snapshot(bytes, &why);
  if (!snapshot) {
    spdlog::error("event=metadata_snapshot_refused error=\"{}\"", why);
    co_return false;
  }
  if (snapshot->last_offset < image_.next_offset())
    co_return true;  // already past it
  spdlog::info("event=metadata_snapshot_applied from={} through={} topics={}",
               image_.applied_offset().value(), snapshot->last_offset.value(),
               snapshot->image.topics().size());
  image_ = std::move(snapshot->image);
  // Whatever changed in between (leaders, ISRs, endpoints, new topics) is only in the image now:
  // every partition is reconciled, every follower reconnects.
  auto slice_started = Clock::now();
  for (const TopicState& topic : image_.topics()) {
    co_await open_hosted(topic.name, topic.partitions.size());
    if (stopping_)
      co_return true;
    for (size_t i = 0; i < topic.partitions.size(); ++i) {
      reconcile({topic.name, PartitionIndex{static_cast<int32_t>(i)}});
      co_await yield_if_busy(slice_started);
      if (stopping_)
        co_return true;
    }
  }
  for (auto& [id, fetcher] : fetchers_)
    fetcher.restart = true;
  reconciled_offset_ = image_.applied_offset();
  co_return true;
}

// Two cadences. Every kIsrCheckInterval the partitions on the watch list are checked: those led
// here whose ISR lacks a replica (a follower that may catch up and be proposed back at once) or
// that proposed a change (answer pending, or a retry due). Every sweep interval all of them are,
// which finds the followers that fell behind (a shrink is due replica.lag.time.max after their
// last catch-up, so a sweep every tenth of it adds at most 10 % to that), and the watch list is
// rebuilt. An in-sync partition thus costs a sweep's visit, not twenty visits a second: at 50k
// partitions the 50 ms pass over every partition was a third of an idle broker's CPU.
awaitable<void> Broker::isr_loop() {
  const auto sweep_interval = std::clamp<Clock::duration>(config_.replica_lag_time_max / 10,
                                                          kIsrCheckInterval, kMaxIsrSweepInterval);
  auto next_sweep = Clock::now();
  while (!stopping_) {
    co_await sleep(kIsrCheckInterval);
    if (gauges_stale_)
      update_gauges();
    if (alter_partitions_in_flight_)
      continue;  // one batch at a time
    const auto now = Clock::now();
    const ReplicaList ineligible = isr_ineligible_brokers();
    std::vector<std::pair<TopicPartition, IsrChangeProposal>> batch;
    // Proposes p's ISR change if one is due and the batch has room; true when p stays watched.
    auto check = [&](Partition& p) {
      if (!p.replication)
        return false;
      if (batch.size() < kMaxAlterPartitionBatch) {
        if (auto proposal = p.replication->propose_isr_change(now, ineligible)) {
          batch.emplace_back(p.tp, *proposal);
          return true;
        }
      }
      return p.replication->isr().size() < p.replicas.size() || p.replication->changing_isr();
    };
    if (now >= next_sweep) {
      next_sweep = now + sweep_interval;
      isr_watch_.clear();
      for (auto& [tp, p] : partitions_) {
        if (check(*p))
          isr_watch_.insert(p.get());
      }
    } else {
      std::erase_if(isr_watch_, [&](Partition* p) { return !check(*p); });
    }
    if (batch.empty())
      continue;
    alter_partitions_in_flight_ = true;
    asio::co_spawn(io_, send_alter_partitions(std::move(batch)), asio::detached);
  }
}

// Brokers the applied metadata shows not BrokerState::isr_eligible(): the controller refuses them
// as new ISR members, so no proposal names them (a broker shutting down keeps fetching until it
// stops, and would otherwise look caught up).
ReplicaList Broker::isr_ineligible_brokers() const {
  ReplicaList out;
  for (const auto& [id, b] : image_.brokers()) {
    if (!b.isr_eligible())
      out.push_back(id);
  }
  return out;
}

// Every ISR change this broker has to propose goes in one request: the controller persists them
// with one fsync (and, in a quorum, one commit), where one request per partition would pay that
// per partition — what made a broker rejoining thousands of partitions wait tens of seconds.
awaitable<void> Broker::send_alter_partitions(
    std::vector<std::pair<TopicPartition, IsrChangeProposal>> batch) {
  AlterPartitionsRequest req;
  req.partitions.reserve(batch.size());
  for (const auto& [tp, proposal] : batch) {
    req.partitions.push_back(AlterPartitionRequest{tp, config_.broker_id, broker_epoch_,
                                                   proposal.leader_epoch, proposal.partition_epoch,
                                                   proposal.proposed_isr});
  }
  // A timeout or NOT_CONTROLLER leaves the outcome open: the changes may be committed. The next
  // proposals (after a backoff) retry them with the same partition epochs, so a committed change
  // is answered INVALID_UPDATE_VERSION, never applied twice, and the leader then takes the ISR
  // from the metadata log (PartitionReplication::on_alter_partition_result).
  auto res = co_await controllers_.call(req, 3000ms);
  alter_partitions_in_flight_ = false;
  const auto* answer = res.error ? nullptr : std::get_if<AlterPartitionsResponse>(&res.response);
  errc batch_error = errc::request_timed_out;
  if (answer != nullptr && answer->error != errc::none)
    batch_error = answer->error;
  bool answered_each =
      answer != nullptr && answer->error == errc::none && answer->partitions.size() == batch.size();
  for (size_t i = 0; i < batch.size(); ++i) {
    AlterPartitionResponse r;
    if (answered_each) {
      r = answer->partitions[i];
    } else {
      r.error = batch_error;
    }
    on_alter_partition_answer(batch[i].first, batch[i].second, r);
  }
}

void Broker::on_alter_partition_answer(const TopicPartition& tp, const IsrChangeProposal& proposal,
                                       const AlterPartitionResponse& r) {
  Partition* p = find(tp);
  if (p == nullptr || !p->replication || p->leader_epoch != proposal.leader_epoch)
    return;
  size_t before = p->replication->isr().size();
  if (!p->replication->on_alter_partition_result(proposal, r.error, r.isr, r.partition_epoch)) {
    spdlog::info("event=alter_partition_superseded tp={} error={} partition_epoch={}", tp,
                 errc_name(r.error), p->replication->partition_epoch());
    return;
  }
  size_t after = p->replication->isr().size();
  if (r.error == errc::none) {
    if (after < before)
      metrics_.isr_shrinks.Increment();
    if (after > before)
      metrics_.isr_expands.Increment();
    spdlog::info("event=isr_changed tp={} isr_size={} -> {} partition_epoch={}", tp, before, after,
                 r.partition_epoch);
  } else {
    spdlog::info("event=alter_partition_refused tp={} error={}", tp, errc_name(r.error));
  }
  after_replication_change(*p);
  gauges_stale_ = true;  // refreshed by the ISR loop: one pass for a burst of ISR changes
}

// The fsyncs and checkpoint writes run on a thread of their own: on a slow or throttled disk
// they take seconds, and the io thread must go on answering produces, fetches, heartbeats and
// health probes meanwhile (a broker whose disk is slow is slow to persist, not unreachable). One
// round at a time; the next starts a flush interval after the previous one finished.
awaitable<void> Broker::flush_loop() {
  while (!stopping_) {
    co_await sleep(config_.flush_interval);
    if (stopping_)
      co_return;
    std::vector<FlushJob> jobs;
    for (auto& [tp, p] : partitions_) {
      if (auto job = flush_job(*p))
        jobs.push_back(*job);
    }
    publish_log_file_metrics();
    if (jobs.empty())
      continue;
    asio::steady_timer done(io_, asio::steady_timer::time_point::max());
    asio::post(flusher_, [this, &jobs, &done] {
      for (const auto& job : jobs)
        run_flush_job(job);
      asio::post(io_, [&done] { done.cancel(); });
    });
    co_await done.async_wait(use_tuple);
  }
}

// Only what changed: with thousands of idle partitions, an fsync and a checkpoint rewrite for each
// every flush interval would keep the disk busy for nothing.
std::optional<Broker::FlushJob> Broker::flush_job(Partition& p) {
  if (!p.log)
    return std::nullopt;
  const bool sync = p.unflushed && !config_.flush_every_batch && !config_.flush_never;
  const Offset hw = high_watermark(p);
  p.unflushed = false;
  if (!sync && hw == p.log->high_watermark_checkpoint())
    return std::nullopt;
  return FlushJob{p.tp, p.log.get(), sync, hw};
}

void Broker::run_flush_job(const FlushJob& job) {
  if (job.sync) {
    auto started = Clock::now();
    if (auto ec = job.log->flush()) {
      spdlog::error("event=flush_failed tp={} error=\"{}\"", job.tp, ec.message());
      mark_log_dir_offline(job.tp, ec);
    }
    metrics_.storage_fsync.Observe(std::chrono::duration<double>(Clock::now() - started).count());
  }
  if (job.hw != job.log->high_watermark_checkpoint())
    job.log->write_high_watermark_checkpoint(job.hw);
}

awaitable<void> Broker::fetcher_loop(BrokerId leader_id, uint64_t generation) {
  auto current = [&]() -> Fetcher* {
    auto it = fetchers_.find(leader_id);
    return it == fetchers_.end() || it->second.generation != generation ? nullptr : &it->second;
  };
  // This loop's fetch session with the leader: a restarted fetcher (new generation) opens its own.
  FetchSessionBuilder session;
  // The fetcher's partitions, looked up once (partitions are never removed, so the pointers hold):
  // a poll visits each without a lookup by name. One that joins the fetcher restarts it (follow),
  // so this list lacks none; one that leaves it (unfollow) is skipped by its fetching_from.
  std::vector<Partition*> members;
  if (Fetcher* f = current()) {
    members.reserve(f->partitions.size());
    for (const auto& tp : f->partitions) {
      if (Partition* p = find(tp))
        members.push_back(p);
    }
  }
  std::vector<ReplicaFetchPartition> wanted;
  while (!stopping_) {
    Fetcher* f = current();
    if (f == nullptr || f->partitions.empty() || members.empty())
      co_return;
    const BrokerState* leader = image_.broker(leader_id);
    if (leader == nullptr) {
      co_await sleep(kRetryBackoff);
      continue;
    }
    ReplicaFetchRequest req;
    req.replica_id = config_.broker_id.value();
    req.broker_epoch = broker_epoch_.value();
    req.partition_max_bytes = config_.replica_fetch_max_bytes;
    req.max_bytes = std::max(config_.replica_fetch_max_bytes, 16 << 20);
    const size_t first = f->rotation % members.size();
    f->rotation += 1;
    auto now = Clock::now();
    auto wait = config_.replica_fetch_wait_max;
    wanted.clear();
    wanted.reserve(members.size());
    for (size_t k = 0; k < members.size(); ++k) {
      Partition* p = members[(first + k) % members.size()];
      if (p->fetching_from != leader_id)
        continue;  // left this fetcher since the loop started
      if (p->fetch_backoff_until > now) {
        // Come back for it when its backoff ends, not a whole long-poll later. Meanwhile it
        // leaves the session (forgotten), so the leader does not answer its error on every poll.
        wait = std::min(wait,
                        std::chrono::ceil<std::chrono::milliseconds>(p->fetch_backoff_until - now));
        continue;
      }
      ReplicaFetchPartition part;
      part.tp = p->tp;
      part.current_leader_epoch = p->leader_epoch.value();
      part.fetch_offset = p->log->log_end_offset().value();
      part.last_fetched_epoch = p->log->latest_epoch().value();
#ifdef FAULTLINE_MUTANTS
      // Mutant no-divergence-truncation: the follower never tells the leader the epoch of its
      // last record, so a divergent suffix (an old leader's unreplicated records) is never
      // truncated and the logs differ below the HW (what KIP-101/279/320 fixed).
      if (mutant_active(Mutant::no_divergence_truncation))
        part.last_fetched_epoch = -1;
#endif
      part.known_high_watermark = p->follower_high_watermark.value();
      wanted.push_back(std::move(part));
    }
    if (wanted.empty() || log_dir_offline()) {
      co_await sleep(wait);
      continue;
    }
    // Only what changed since the leader last heard of it (everything when no session is open).
    session.build(wanted, req);
    req.max_wait_ms = static_cast<int32_t>(wait.count());
    Endpoint leader_endpoint = leader->internal_endpoint;
    auto res =
        co_await peers_.get(leader_endpoint).call(req, wait + std::chrono::milliseconds(2000));
    // Restarted meanwhile (partitions added, epochs changed): the new loop asks again.
    if (current() == nullptr)
      co_return;
    if (res.error) {
      session.reset();  // the leader may or may not have applied the request: start over
      co_await sleep(kRetryBackoff);
      continue;
    }
    auto& r = std::get<ReplicaFetchResponse>(res.response);
    session.on_response(r);  // an error drops the session: the next request is a full one
    if (r.error == errc::fetch_session_id_not_found ||
        r.error == errc::invalid_fetch_session_epoch) {
      spdlog::info("event=fetch_session_reset leader={} error={}", leader_id, errc_name(r.error));
      continue;  // open a new session at once
    }
    if (r.error != errc::none) {
      co_await sleep(kRetryBackoff);
      continue;
    }
    for (const auto& answer : r.partitions) {
      // The state the leader answered for (in a session, maybe sent by an earlier request).
      const ReplicaFetchPartition* asked = session.sent(answer.tp);
      if (asked == nullptr)
        continue;
      Partition* p = find(answer.tp);
      // Only for the partition as it was asked for: still fetched from this leader, same epoch.
      if (p == nullptr || p->fetching_from != leader_id || p->replication ||
          p->leader_epoch.value() != asked->current_leader_epoch ||
          p->log->log_end_offset().value() != asked->fetch_offset) {
        continue;
      }
      apply_fetched(*p, answer);
    }
  }
}

void Broker::apply_fetched(Partition& p, const ReplicaFetchPartitionResponse& r) {
  if (r.error != errc::none) {
    // Fenced or not yet known epochs resolve through the metadata log; others are transient.
    p.fetch_backoff_until = Clock::now() + kRetryBackoff;
    return;
  }
  if (r.diverging) {
    auto [own_epoch, own_end] = p.log->end_offset_for_epoch(LeaderEpoch{r.diverging->epoch});
    Offset target =
        follower_truncation_offset(LeaderEpoch{r.diverging->epoch}, Offset{r.diverging->end_offset},
                                   own_epoch, own_end, p.log->log_end_offset());
    spdlog::info("event=truncate tp={} from={} to={} leader_epoch={} diverging_epoch={}", p.tp,
                 p.log->log_end_offset(), target, p.leader_epoch, r.diverging->epoch);
    if (auto ec = p.log->truncate_to(target)) {
      spdlog::error("event=truncate_failed tp={} error=\"{}\"", p.tp, ec.message());
      mark_log_dir_offline(p.tp, ec);
      p.fetch_backoff_until = Clock::now() + kRetryBackoff;
    }
    return;
  }
  if (!r.records.empty()) {
    if (auto ec =
            p.log->append_as_follower(std::span<const char>(r.records.data(), r.records.size()))) {
      spdlog::warn("event=follower_append_failed tp={} error=\"{}\"", p.tp, ec.message());
      mark_log_dir_offline(p.tp, ec);
      p.fetch_backoff_until = Clock::now() + kRetryBackoff;
      return;
    }
    p.unflushed = true;
  }
  p.follower_high_watermark =
      follower_high_watermark(Offset{r.high_watermark}, p.log->log_end_offset());
}

void Broker::follow(Partition& p, BrokerId leader) {
  if (p.fetching_from != leader)
    unfollow(p);
  p.fetching_from = leader;
  p.fetch_backoff_until = {};
  Fetcher& f = fetchers_[leader];
  f.partitions.insert(p.tp);
  f.restart = true;  // a new partition or a new epoch: ask now, not after the poll in flight
}

// A partition leaving a fetcher needs no restart: the answer in flight is dropped for it.
void Broker::unfollow(Partition& p) {
  if (p.fetching_from == kNoBroker)
    return;
  if (auto it = fetchers_.find(p.fetching_from); it != fetchers_.end()) {
    it->second.partitions.erase(p.tp);
  }
  p.fetching_from = kNoBroker;
}

void Broker::restart_fetchers() {
  if (stopping_)
    return;
  for (auto& [leader, f] : fetchers_) {
    if (!f.restart)
      continue;
    f.restart = false;
    uint64_t generation = ++f.generation;
    if (!f.partitions.empty())
      asio::co_spawn(io_, fetcher_loop(leader, generation), asio::detached);
  }
}

// ---------------------------------------------------------------------------------------------
// State

Broker::Partition* Broker::find(const TopicPartition& tp) {
  auto it = partitions_.find(tp);
  return it == partitions_.end() ? nullptr : it->second.get();
}

LogConfig Broker::log_config() const {
  LogConfig log_config;
  log_config.segment_bytes = config_.segment_bytes;
  log_config.fsync_every_batch = config_.flush_every_batch;
  log_config.files = log_files_;
  return log_config;
}

awaitable<std::vector<std::unique_ptr<PartitionLog>>> Broker::open_logs(
    std::vector<TopicPartition> tps) {
  std::vector<std::unique_ptr<PartitionLog>> logs;
  std::vector<std::error_code> errors;
  if (tps.empty() || stopping_)
    co_return logs;
  asio::steady_timer done(io_, asio::steady_timer::time_point::max());
  if (log_opener_.joinable())
    log_opener_.join();
  log_opener_ = std::thread([&] {
    logs = open_logs_in_parallel(config_.data_dir, log_config(), tps, abandon_log_opening_, errors);
    asio::post(io_, [&done] { done.cancel(); });
  });
  co_await done.async_wait(use_tuple);
  log_opener_.join();
  if (stopping_)
    co_return logs;  // abandoned: some are missing
  for (size_t i = 0; i < tps.size(); ++i) {
    if (!logs[i]) {
      spdlog::critical("event=log_open_failed tp={} error=\"{}\"", tps[i], errors[i].message());
      std::abort();
    }
  }
  co_return logs;
}

Broker::Partition* Broker::open_partition(const TopicPartition& tp,
                                          std::unique_ptr<PartitionLog> log) {
  if (auto* p = find(tp))
    return p;
  if (!log) {
    std::error_code ec;
    log = PartitionLog::open(partition_dir(config_.data_dir, tp), log_config(), ec);
    if (!log) {
      spdlog::critical("event=log_open_failed tp={} error=\"{}\"", tp, ec.message());
      std::abort();
    }
  }
#ifdef FAULTLINE_MUTANTS
  // Mutant truncate-to-hw-on-restart: a replica opened from disk cuts its log back to its HW
  // checkpoint, which may be behind what it acknowledged (or replicated) as leader: Kafka's
  // behaviour before KIP-101, which lost acknowledged records when the leader restarted too.
  if (mutant_active(Mutant::truncate_to_hw_on_restart) &&
      log->high_watermark_checkpoint() < log->log_end_offset()) {
    if (auto ec = log->truncate_to(log->high_watermark_checkpoint())) {
      spdlog::error("event=truncate_failed tp={} error=\"{}\"", tp, ec.message());
    }
  }
#endif
  auto p = std::make_unique<Partition>();
  p->tp = tp;
  p->follower_high_watermark = std::min(log->high_watermark_checkpoint(), log->log_end_offset());
  p->log = std::move(log);
  auto* raw = p.get();
  partitions_.emplace(tp, std::move(p));
  return raw;
}

void Broker::reconcile(const TopicPartition& tp) {
  const PartitionState* state = image_.partition(tp);
  BrokerId self = config_.broker_id;
  if (state == nullptr)
    return;
  bool hosted = state->replicas.contains(self) || state->adding.contains(self);
  Partition* p = find(tp);
  if (!hosted) {
    if (p != nullptr) {
      stop_leading(*p);
      unfollow(*p);
      p->leader = state->leader;
      wake(*p);
    }
    return;
  }
  if (p == nullptr)
    p = open_partition(tp);

  bool epoch_changed = p->leader_epoch != state->leader_epoch;
  if (state->leader == self) {
    if (!p->replication || epoch_changed) {
      become_leader(*p, *state);
    } else {
      p->replication->on_metadata_update(state->isr, state->partition_epoch, state->replicas);
    }
  } else {
#ifdef FAULTLINE_MUTANTS
    // Mutant zombie-leader: a leader that learns another broker leads now ignores the change and
    // goes on leading under its old epoch, accepting produces (the isolated "zombie" leader that
    // epoch fencing exists to stop).
    if (mutant_active(Mutant::zombie_leader) && p->replication && state->leader != kNoBroker)
      return;
#endif
    stop_leading(*p);
    if (state->leader == kNoBroker) {
      unfollow(*p);
    } else if (epoch_changed || p->fetching_from != state->leader) {
      follow(*p, state->leader);
    }
  }
  p->leader = state->leader;
  p->leader_epoch = state->leader_epoch;
  p->partition_epoch = state->partition_epoch;
  p->replicas = state->replicas;
  p->isr = state->isr;
  if (p->replication)
    after_replication_change(*p);
  wake(*p);
  gauges_stale_ = true;
}

void Broker::become_leader(Partition& p, const PartitionState& state) {
  stop_leading(p);
  unfollow(p);
  Offset leo = p.log->log_end_offset();
  LeaderAssignment assignment;
  assignment.self = config_.broker_id;
  assignment.leader_epoch = state.leader_epoch;
  assignment.partition_epoch = state.partition_epoch;
  assignment.replicas = state.replicas;
  assignment.isr = state.isr;
  assignment.leader_epoch_start_offset = leo;
  ReplicationSettings settings;
  settings.min_insync_replicas = config_.min_insync_replicas;
  settings.replica_lag_time_max = config_.replica_lag_time_max;
  Offset hw = std::min(p.follower_high_watermark, leo);
  p.replication.emplace(assignment, settings, leo, hw, Clock::now());
  p.leader_epoch = state.leader_epoch;
  spdlog::info("event=became_leader tp={} leader_epoch={} log_end={} hw={} isr_size={}", p.tp,
               state.leader_epoch, leo, hw, state.isr.size());
}

void Broker::stop_leading(Partition& p) {
  if (!p.replication)
    return;
  p.follower_high_watermark = p.replication->high_watermark();
  complete(p.replication->abandon_pending_produces());
  p.replication.reset();
  spdlog::info("event=stopped_leading tp={}", p.tp);
}

Offset Broker::high_watermark(const Partition& p) const {
  return p.replication ? p.replication->high_watermark() : p.follower_high_watermark;
}

void Broker::after_replication_change(Partition& p) {
  if (!p.replication)
    return;
  Offset hw_before = p.follower_high_watermark;
  complete(p.replication->take_completed_produces());
  if (p.replication->high_watermark() != hw_before) {
    p.follower_high_watermark = p.replication->high_watermark();
    wake(p);
  }
}

void Broker::complete(const std::vector<ProduceCompletion>& completions) {
  for (const auto& c : completions) {
    auto it = pending_.find(c.request_id);
    if (it == pending_.end())
      continue;
    it->second.result = c.error;
    it->second.timer->cancel();
  }
}

void Broker::wake(Partition& p) {
  auto waiters = std::move(p.waiters);
  p.waiters.clear();
  for (auto* t : waiters)
    t->cancel();
}

awaitable<void> Broker::wait_for_any(const std::vector<TopicPartition>& tps,
                                     std::chrono::milliseconds max_wait) {
  std::vector<Partition*> partitions;
  for (const auto& tp : tps) {
    if (Partition* p = find(tp))
      partitions.push_back(p);
  }
  co_await wait_for_any(partitions, max_wait);
}

awaitable<bool> Broker::wait_for_any(const std::vector<Partition*>& partitions,
                                     std::chrono::milliseconds max_wait) {
  asio::steady_timer timer(io_, max_wait);
  for (Partition* p : partitions)
    p->waiters.push_back(&timer);
  auto [ec] = co_await timer.async_wait(use_tuple);
  // Woken by one partition (or timed out): the others must not keep a pointer to this timer.
  for (Partition* p : partitions)
    std::erase(p->waiters, &timer);
  co_return ec == asio::error::operation_aborted;  // wake() cancels the timer
}

awaitable<void> Broker::wait_for_data(Partition& p, std::chrono::milliseconds max_wait) {
  asio::steady_timer timer(io_, max_wait);
  TopicPartition tp = p.tp;
  p.waiters.push_back(&timer);
  co_await timer.async_wait(use_tuple);
  // Still registered when the wait timed out: remove ourselves before the timer dies.
  if (Partition* again = find(tp)) {
    std::erase(again->waiters, &timer);
  }
}

void Broker::publish_log_file_metrics() {
  metrics_.log_open_files.Set(static_cast<double>(log_files_->held()));
  const uint64_t reopens = log_files_->reopens();
  metrics_.log_file_reopens.Increment(static_cast<double>(reopens - log_file_reopens_published_));
  log_file_reopens_published_ = reopens;
}

void Broker::publish_fetch_session_metrics(const ReplicaFetchRequest& req,
                                           const FetchSessionResolution& session) {
  if (session.error != errc::none) {
    metrics_.replica_fetch_session_errors.Increment();
  } else {
    if (req.session_epoch == kFetchSessionless)
      metrics_.replica_fetches_sessionless.Increment();
    else if (req.session_epoch == kFetchSessionOpen)
      metrics_.replica_fetches_full.Increment();
    else
      metrics_.replica_fetches_incremental.Increment();
    metrics_.replica_fetch_partitions_sent.Increment(static_cast<double>(req.partitions.size()));
    metrics_.replica_fetch_partitions_served.Increment(
        static_cast<double>(session.partitions.size()));
  }
  metrics_.fetch_sessions.Set(static_cast<double>(fetch_sessions_.size()));
  metrics_.fetch_session_partitions.Set(static_cast<double>(fetch_sessions_.cached_partitions()));
}

void Broker::update_gauges() {
  int leaders = 0, under_replicated = 0;
  for (auto& [tp, p] : partitions_) {
    if (!p->replication)
      continue;
    ++leaders;
    if (p->replication->isr().size() < p->replicas.size())
      ++under_replicated;
  }
  metrics_.leader_partitions.Set(leaders);
  metrics_.under_replicated_partitions.Set(under_replicated);
  gauges_stale_ = false;
}

}  // namespace faultline::cluster
