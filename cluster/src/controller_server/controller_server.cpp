// The controller process: ControllerService behind the RPC listener.
//
// Threading: one io_context thread; ControllerService is only touched from it.
#include <spdlog/spdlog.h>

#include <asio.hpp>
#include <csignal>

#include "faultline/cluster/controller/controller_service.h"
#include "faultline/cluster/net/rpc.h"
#include "faultline/cluster/server/controller_process.h"
#include "faultline/cluster/wire/messages.h"

namespace faultline::cluster {

using asio::awaitable;
using asio::use_awaitable;
using namespace std::chrono_literals;

namespace {

class ControllerServer final : public RequestHandler {
 public:
  ControllerServer(asio::io_context& io, ControllerService& service, ControllerConfig config)
      : io_(io), service_(service), config_(std::move(config)) {
    service_.on_durable = [this] { wake_waiters(); };
  }

  void start() {
    server_ = std::make_unique<RpcServer>(io_, config_.listener, ListenerKind::internal, *this);
    server_->start();
    asio::co_spawn(io_, tick_loop(), asio::detached);
  }

  void stop() {
    stopping_ = true;
    if (server_) server_->stop();
    wake_waiters();
    io_.stop();
  }

  uint16_t port() const { return server_ ? server_->port() : 0; }

  awaitable<Response> handle(Request request, ListenerKind listener) override {
    auto now = ControllerClock::now();
    if (auto* r = std::get_if<BrokerRegistrationRequest>(&request)) {
      BrokerRegistration reg{r->broker,          r->incarnation, r->internal_endpoint,
                             r->client_endpoint, std::nullopt,   r->kafka_endpoint};
      auto result = service_.register_broker(reg, now);
      BrokerRegistrationResponse resp;
      resp.error = result.error;
      resp.broker_epoch = result.broker_epoch;
      co_return resp;
    }
    if (auto* r = std::get_if<BrokerHeartbeatRequest>(&request)) {
      BrokerHeartbeat hb{r->broker, r->broker_epoch, r->applied_metadata_offset, r->want_shutdown,
                         r->log_dir_offline};
      auto result = service_.heartbeat(hb, now);
      if (result.error == errc::none)
        service_.note_storage(r->broker, {r->storage_canary_us, r->storage_canary_error});
      BrokerHeartbeatResponse resp;
      resp.error = result.error;
      resp.fenced = result.fenced;
      resp.shutting_down = result.shutting_down;
      resp.shutdown_allowed = result.shutdown_allowed;
      co_return resp;
    }
    if (auto* r = std::get_if<FetchMetadataLogRequest>(&request)) {
      co_return co_await fetch_metadata(*r);
    }
    if (auto* r = std::get_if<AlterPartitionRequestMsg>(&request)) {
      AlterPartitionRequest req{r->tp,           r->leader,          r->leader_broker_epoch,
                                r->leader_epoch, r->partition_epoch, r->proposed_isr};
      auto result = service_.alter_partition(req, now);
      AlterPartitionResponse resp;
      resp.error = result.error;
      resp.leader = result.state.leader;
      resp.isr = result.state.isr;
      resp.leader_epoch = result.state.leader_epoch;
      resp.partition_epoch = result.state.partition_epoch;
      co_return resp;
    }
    if (auto* r = std::get_if<CreateTopicRequest>(&request)) {
      auto result = service_.create_topic(r->name, r->partitions, r->replication_factor, now);
      CreateTopicResponse resp;
      resp.error = result.error;
      resp.assignment = std::move(result.assignment);
      co_return resp;
    }
    if (auto* r = std::get_if<ElectLeadersRequest>(&request)) {
      auto results = service_.elect_leaders(r->type, r->partitions, now);
      ElectLeadersResponse resp;
      for (auto& pr : results) resp.results.push_back({pr.tp, pr.error});
      co_return resp;
    }
    if (auto* r = std::get_if<DemoteBrokerRequest>(&request)) {
      DemoteBrokerResponse resp;
      resp.error = service_.demote(r->broker, r->reason, now);
      co_return resp;
    }
    if (auto* r = std::get_if<PromoteBrokerRequest>(&request)) {
      PromoteBrokerResponse resp;
      resp.error = service_.promote(r->broker, now);
      co_return resp;
    }
    if (auto* r = std::get_if<ReassignRequest>(&request)) {
      ReassignResponse resp;
      resp.error = service_.reassign(r->tp, r->replicas, now);
      co_return resp;
    }
    if (auto* r = std::get_if<SetConfigRequest>(&request)) {
      SetConfigResponse resp;
      resp.error = service_.set_config(r->key, r->value, now);
      co_return resp;
    }
    if (auto* r = std::get_if<MetadataRequest>(&request)) {
      co_await watch_metadata(*r);
      co_return metadata(*r);
    }
    if (std::holds_alternative<ApiVersionsRequest>(request)) {
      co_return ApiVersionsResponse{};
    }
    // Data-path requests belong to brokers.
    co_return error_response_for(request, errc::not_leader_or_follower);
  }

 private:
  // Long-poll: answers as soon as records at or past `from` are durable, or after max_wait.
  awaitable<Response> fetch_metadata(FetchMetadataLogRequest req) {
    if (!stopping_ && service_.durable_offset() < req.from && req.max_wait_ms > 0) {
      asio::steady_timer timer(io_, std::chrono::milliseconds(req.max_wait_ms));
      waiters_.push_back(&timer);
      co_await timer.async_wait(use_tuple);
      std::erase(waiters_, &timer);
    }
    FetchMetadataLogResponse resp;
    auto records = service_.records_since(req.from, req.max_records);
    resp.entries.assign(records.begin(), records.end());
    resp.durable_offset = service_.durable_offset();
    co_return resp;
  }

  // A metadata watch: returns once the image is past the requester's offset, or after max_wait
  // (a timer woken by every durable commit; no polling).
  awaitable<void> watch_metadata(const MetadataRequest& req) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(req.max_wait_ms);
    while (!stopping_ && service_.image().applied_offset().value() <= req.seen_metadata_offset &&
           std::chrono::steady_clock::now() < deadline) {
      asio::steady_timer timer(io_, deadline);
      waiters_.push_back(&timer);
      co_await timer.async_wait(use_tuple);
      std::erase(waiters_, &timer);
    }
  }

  void wake_waiters() {
    auto waiters = std::move(waiters_);
    waiters_.clear();
    for (auto* t : waiters) t->cancel();
  }

  // Metadata as brokers answer it, from the controller's image (for admin clients).
  Response metadata(const MetadataRequest& req) {
    MetadataResponse resp;
    resp.controller = Endpoint{config_.listener.host, port()};
    const auto& image = service_.image();
    resp.metadata_offset = image.applied_offset().value();
    for (const auto& [id, b] : image.brokers()) {
      if (!b.registered) continue;
      BrokerMetadata bm;
      bm.id = id;
      bm.client_endpoint = b.client_endpoint;
      bm.internal_endpoint = b.internal_endpoint;
      bm.kafka_endpoint = b.kafka_endpoint;
      bm.fenced = b.fenced;
      bm.demoted = b.demoted;
      bm.demotion_reason = b.demotion_reason;
      bm.shutting_down = b.shutting_down;
      if (auto it = service_.storage_reports().find(id); it != service_.storage_reports().end()) {
        bm.storage_canary_us = it->second.canary_us;
        bm.storage_canary_error = it->second.error;
      }
      resp.brokers.push_back(std::move(bm));
    }
    for (const auto& t : image.topics()) {
      if (!req.topics.empty() &&
          std::find(req.topics.begin(), req.topics.end(), t.name) == req.topics.end()) {
        continue;
      }
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
    }
    return resp;
  }

  awaitable<void> tick_loop() {
    // The controller's notion of time: sessions expire on ticks, so tick often relative to the
    // session timeout (the pure Controller tolerates gaps, see controller.h).
    auto interval = std::clamp<std::chrono::milliseconds>(config_.session_timeout / 20, 10ms, 100ms);
    asio::steady_timer timer(io_);
    while (!stopping_) {
      timer.expires_after(interval);
      co_await timer.async_wait(use_tuple);
      service_.tick(ControllerClock::now());
    }
  }

  asio::io_context& io_;
  ControllerService& service_;
  ControllerConfig config_;
  std::vector<asio::steady_timer*> waiters_;  // metadata long-polls
  std::unique_ptr<RpcServer> server_;
  bool stopping_ = false;
};

}  // namespace

int run_controller_process(const ControllerConfig& config) {
  asio::io_context io;
  MetricsEndpoint metrics(config.listener.host, config.metrics_port);
  auto opened = ControllerService::open(config, metrics.registry(), ControllerClock::now());
  if (opened.error) {
    spdlog::error("event=controller_open_failed dir={} error=\"{}\"", config.data_dir.string(),
                  opened.error.message());
    return 1;
  }
  spdlog::info("event=metadata_replayed records={} dropped_tail_bytes={}", opened.replayed_records,
               opened.dropped_tail_bytes);
  ControllerServer server(io, *opened.service, config);
  try {
    server.start();
  } catch (const std::exception& e) {
    spdlog::error("event=listen_failed endpoint={} error=\"{}\"", config.listener.str(), e.what());
    return 1;
  }
  spdlog::info("event=controller_listening endpoint={}:{} metrics_port={}", config.listener.host,
               server.port(), metrics.port());
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const std::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("event=stopping signal={}", sig);
    server.stop();
  });
  io.run();
  return 0;
}

}  // namespace faultline::cluster
