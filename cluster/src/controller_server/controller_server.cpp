// The controller process: ControllerService behind the RPC listener.
//
// Threading: one io_context thread; ControllerService is only touched from it.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio.hpp>
#include <csignal>
#include <random>

#include "faultline/cluster/controller/controller_service.h"
#include "faultline/cluster/net/rpc.h"
#include "faultline/cluster/server/controller_process.h"
#include "faultline/cluster/wire/messages.h"

namespace faultline::cluster {

using asio::awaitable;
using namespace std::chrono_literals;

namespace {

class ControllerServer final : public RequestHandler {
 public:
  ControllerServer(asio::io_context& io, ControllerService& service, ControllerConfig config)
      : io_(io), service_(service), config_(std::move(config)), peers_(io) {
    service_.on_commit = [this] { wake_waiters(); };
  }

  void start() {
    server_ = std::make_unique<RpcServer>(io_, config_.listener, ListenerKind::internal, *this);
    server_->start();
    asio::co_spawn(io_, tick_loop(), asio::detached);
    flush_outgoing();
  }

  void stop() {
    stopping_ = true;
    if (server_)
      server_->stop();
    peers_.close_all();
    wake_waiters();
    io_.stop();
  }

  uint16_t port() const { return server_ ? server_->port() : 0; }

  awaitable<Response> handle(Request request, ListenerKind /*listener*/) override {
    if (auto* r = std::get_if<QuorumVoteRequest>(&request))
      co_return on_vote(*r);
    if (auto* r = std::get_if<QuorumAppendRequest>(&request))
      co_return on_append(*r);
    if (auto* r = std::get_if<QuorumInstallSnapshotRequest>(&request))
      co_return on_install_snapshot(*r);
    if (std::holds_alternative<DescribeQuorumRequest>(request))
      co_return describe_quorum();
    if (std::holds_alternative<ApiVersionsRequest>(request))
      co_return ApiVersionsResponse{};
    if (auto* r = std::get_if<FetchMetadataLogRequest>(&request); r && r->any_voter)
      co_return committed_log(*r);
    if (!service_.active()) {
      // Brokers and admin clients move on to another voter (KRaft's NOT_CONTROLLER).
      co_return error_response_for(request, errc::not_controller);
    }
    int64_t epoch = service_.epoch();
    // A read must not be served from a commit point older than what this controller has
    // proposed: right after an election that point can lag writes the previous active controller
    // acknowledged, until this term's first record commits.
    bool read = std::holds_alternative<FetchMetadataLogRequest>(request) ||
                std::holds_alternative<MetadataRequest>(request);
    if (read && !co_await committed(epoch, service_.proposed_offset()))
      co_return error_response_for(request, errc::not_controller);
    Response response = co_await serve(std::move(request));
    flush_outgoing();  // replicate the decision's records now, not at the next tick
    // Never answer ahead of the quorum: the decision's records (and everything it read) must be
    // committed first, by this same active controller.
    if (!co_await committed(epoch, service_.proposed_offset()))
      co_return error_response_like(response, errc::not_controller);
    // A read is answered only under the read lease (raft.h): a controller cut off from the others
    // or paused may not yet know it was deposed, but it loses its lease before anyone can be
    // elected in its place, so it never answers with what a newer controller has overtaken.
    if (read && !co_await leased(epoch))
      co_return error_response_like(response, errc::not_controller);
    co_return response;
  }

 private:
  // ---- the quorum ----

  bool is_voter(ControllerNodeId id) const {
    return std::any_of(service_.voters().begin(), service_.voters().end(),
                       [&](const QuorumVoter& v) { return v.id == id; });
  }

  Response on_vote(const QuorumVoteRequest& r) {
    if (!is_voter(r.candidate))
      return error_response_for(Request(r), errc::invalid_request);
    VoteResponse v = service_.on_vote(r, ControllerClock::now());
    flush_outgoing();
    return QuorumVoteResponse{errc::none, v.term, v.granted, v.pre_vote};
  }

  Response on_append(const QuorumAppendRequest& r) {
    if (!is_voter(r.leader))
      return error_response_for(Request(r), errc::invalid_request);
    AppendResponse a = service_.on_append(r, ControllerClock::now());
    flush_outgoing();
    return QuorumAppendResponse{errc::none, a.term, a.success, a.match_offset};
  }

  Response on_install_snapshot(const QuorumInstallSnapshotRequest& r) {
    if (!is_voter(r.leader))
      return error_response_for(Request(r), errc::invalid_request);
    InstallSnapshotRequest request{r.term, r.leader, {r.last_offset, r.last_term}, r.data};
    AppendResponse a = service_.on_install_snapshot(request, ControllerClock::now());
    flush_outgoing();
    return QuorumInstallSnapshotResponse{errc::none, a.term, a.success, a.match_offset};
  }

  Response describe_quorum() const {
    const RaftNode& raft = service_.raft();
    auto now = ControllerClock::now();
    DescribeQuorumResponse resp;
    resp.node_id = raft.id();
    resp.role = std::string(to_string(raft.role()));
    resp.leader = raft.leader();
    resp.epoch = raft.term();
    resp.commit_offset = raft.commit_offset().value();
    resp.last_offset = raft.last_offset().value();
    auto progress = raft.progress(now);
    for (const QuorumVoter& v : service_.voters()) {
      QuorumVoterInfo info;
      info.id = v.id;
      info.endpoint = v.endpoint;
      auto it = std::find_if(progress.begin(), progress.end(),
                             [&](const VoterProgress& p) { return p.id == v.id; });
      if (raft.is_leader() && it != progress.end()) {
        info.match_offset = it->match_offset.value();
        if (it->last_contact) {
          info.last_contact_ms =
              std::chrono::duration_cast<std::chrono::milliseconds>(now - *it->last_contact)
                  .count();
        }
      }
      resp.voters.push_back(std::move(info));
    }
    return resp;
  }

  // Sends what the quorum produced; each answer (or failure) is fed back as an event.
  void flush_outgoing() {
    for (RaftOutgoing& m : service_.take_outgoing())
      asio::co_spawn(io_, send(std::move(m)), asio::detached);
  }

  awaitable<void> send(RaftOutgoing m) {
    const Endpoint* endpoint = nullptr;
    for (const QuorumVoter& v : service_.voters()) {
      if (v.id == m.to)
        endpoint = &v.endpoint;
    }
    if (endpoint == nullptr)
      co_return;
    bool vote = std::holds_alternative<VoteRequest>(m.message);
    Request request = to_request(std::move(m.message));
    // Half an election timeout: a lost append is retried well before followers give up on us.
    auto timeout = std::max<std::chrono::milliseconds>(config_.quorum_election_timeout / 2, 50ms);
    const auto sent = ControllerClock::now();  // the answer's read lease runs from here
    CallResult res = co_await peers_.get(*endpoint).call_request(std::move(request), timeout);
    if (stopping_)
      co_return;
    auto now = ControllerClock::now();
    const auto* vr = std::get_if<QuorumVoteResponse>(&res.response);
    std::optional<AppendResponse> ar = append_answer(res.response);
    if (!res.error && vote && vr != nullptr && vr->error == errc::none) {
      service_.on_vote_response(m.to, VoteResponse{vr->term, vr->granted, vr->pre_vote}, now);
    } else if (!res.error && !vote && ar) {
      service_.on_append_response(m.to, *ar, now, sent);
    } else {
      service_.on_unreachable(m.to, now);
    }
    flush_outgoing();
  }

  static Request to_request(RaftMessage message) {
    if (auto* v = std::get_if<VoteRequest>(&message))
      return QuorumVoteRequest(*v);
    if (auto* a = std::get_if<AppendRequest>(&message))
      return QuorumAppendRequest(std::move(*a));
    auto& s = std::get<InstallSnapshotRequest>(message);
    return QuorumInstallSnapshotRequest{s.term, s.leader, s.snapshot.offset, s.snapshot.term,
                                        std::move(s.data)};
  }

  // An append's or a snapshot's answer (both are AppendResponses to the RaftNode).
  static std::optional<AppendResponse> append_answer(const Response& response) {
    if (const auto* a = std::get_if<QuorumAppendResponse>(&response); a && a->error == errc::none)
      return AppendResponse{a->term, a->success, a->match_offset};
    if (const auto* s = std::get_if<QuorumInstallSnapshotResponse>(&response);
        s && s->error == errc::none)
      return AppendResponse{s->term, s->success, s->match_offset};
    return std::nullopt;
  }

  // Waits until `offset` is committed while this controller is still active in `epoch`; false
  // once it is not (deposed, or stepped down for want of a majority).
  awaitable<bool> committed(int64_t epoch, MetadataOffset offset) {
    while (!stopping_ && service_.active() && service_.epoch() == epoch &&
           service_.committed_offset() < offset) {
      // Woken by every commit; the period bounds how late a lost leadership is noticed.
      asio::steady_timer timer(io_, 20ms);
      waiters_.push_back(&timer);
      co_await timer.async_wait(use_tuple);
      std::erase(waiters_, &timer);
    }
    co_return !stopping_ && service_.active() && service_.epoch() == epoch &&
        service_.committed_offset() >= offset;
  }

  // Until this controller, still active in `epoch`, holds the read lease; false when it is no
  // longer active, or after an election timeout without it (cut off: check-quorum follows).
  awaitable<bool> leased(int64_t epoch) {
    const auto give_up = ControllerClock::now() + config_.quorum_election_timeout;
    auto active = [&] { return !stopping_ && service_.active() && service_.epoch() == epoch; };
    while (active() && !service_.raft().has_read_lease(ControllerClock::now()) &&
           ControllerClock::now() < give_up) {
      // The next heartbeat's answers renew it (every quorum heartbeat interval).
      asio::steady_timer timer(io_, 10ms);
      co_await timer.async_wait(use_tuple);
    }
    co_return active() && service_.raft().has_read_lease(ControllerClock::now());
  }

  // The same kind of response, carrying only `error` (the request itself has been moved on).
  static Response error_response_like(const Response& response, errc error) {
    return std::visit(
        [&](const auto& r) -> Response {
          std::decay_t<decltype(r)> fresh;
          fresh.error = error;
          return fresh;
        },
        response);
  }

  // ---- brokers and admin clients (active controller only) ----

  static AlterPartitionResponse to_response(const AlterPartitionResult& result) {
    AlterPartitionResponse resp;
    resp.error = result.error;
    resp.leader = result.state.leader;
    resp.isr = result.state.isr;
    resp.leader_epoch = result.state.leader_epoch;
    resp.partition_epoch = result.state.partition_epoch;
    return resp;
  }

  awaitable<Response> serve(Request request) {
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
      co_return to_response(service_.alter_partition(*r, now));
    }
    if (auto* r = std::get_if<AlterPartitionsRequest>(&request)) {
      std::vector<AlterPartitionRequest> requests(r->partitions.begin(), r->partitions.end());
      AlterPartitionsResponse resp;
      for (const AlterPartitionResult& result : service_.alter_partitions(requests, now))
        resp.partitions.push_back(to_response(result));
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
      for (auto& pr : results)
        resp.results.push_back({pr.tp, pr.error});
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
      if (!service_.active())
        co_return error_response_for(request, errc::not_controller);
      co_return metadata(*r);
    }
    // Data-path requests belong to brokers.
    co_return error_response_for(request, errc::not_leader_or_follower);
  }

  // A voter's committed log, active or not (FetchMetadataLogRequest::any_voter).
  // A reader behind the compacted log's start gets the snapshot first, then the log after it.
  Response committed_log(const FetchMetadataLogRequest& req) const {
    FetchMetadataLogResponse resp;
    auto log = service_.raft().log();
    const int64_t start = service_.log_start().value();  // offset of log[0]
    if (req.from.value() < start)
      resp.snapshot = service_.snapshot_bytes();
    int64_t end = std::min<int64_t>(service_.committed_offset().value() + 1 - start,
                                    static_cast<int64_t>(log.size()));
    int64_t begin = std::max<int64_t>(req.from.value() - start, 0);
    end = std::min<int64_t>(end, begin + static_cast<int64_t>(req.max_records));
    for (int64_t i = begin; i < end; ++i)
      resp.entries.push_back(log[static_cast<size_t>(i)]);
    resp.durable_offset = service_.committed_offset();
    return resp;
  }

  // Long-poll: answers as soon as records at or past `from` are committed, or after max_wait.
  awaitable<Response> fetch_metadata(FetchMetadataLogRequest req) {
    if (!stopping_ && service_.committed_offset() < req.from && req.max_wait_ms > 0) {
      asio::steady_timer timer(io_, std::chrono::milliseconds(req.max_wait_ms));
      waiters_.push_back(&timer);
      co_await timer.async_wait(use_tuple);
      std::erase(waiters_, &timer);
    }
    if (!service_.active())
      co_return error_response_for(Request(req), errc::not_controller);
    FetchMetadataLogResponse resp;
    if (req.from < service_.controller().log_start())
      resp.snapshot = service_.snapshot_bytes();
    auto records = service_.records_since(req.from, req.max_records);
    resp.entries.assign(records.begin(), records.end());
    resp.durable_offset = service_.controller().durable_offset();
    co_return resp;
  }

  // A metadata watch: returns once the image is past the requester's offset, or after max_wait
  // (a timer woken by every durable commit; no polling).
  awaitable<void> watch_metadata(const MetadataRequest& req) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(req.max_wait_ms);
    while (!stopping_ && service_.active() &&
           service_.image().applied_offset().value() <= req.seen_metadata_offset &&
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
    for (auto* t : waiters)
      t->cancel();
  }

  // Metadata as brokers answer it, from the controller's image (for admin clients).
  Response metadata(const MetadataRequest& req) {
    MetadataResponse resp;
    resp.controller = Endpoint{config_.listener.host, port()};
    const auto& image = service_.image();
    resp.metadata_offset = image.applied_offset().value();
    for (const auto& [id, b] : image.brokers()) {
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
    // The quorum's heartbeats and election timeouts run on the same ticks.
    auto interval = std::clamp<std::chrono::milliseconds>(
        std::min(config_.session_timeout / 20, config_.quorum_heartbeat_interval / 2), 5ms, 100ms);
    asio::steady_timer timer(io_);
    while (!stopping_) {
      timer.expires_after(interval);
      co_await timer.async_wait(use_tuple);
      if (stopping_)
        break;
      service_.tick(ControllerClock::now());
      flush_outgoing();
    }
  }

  asio::io_context& io_;
  ControllerService& service_;
  ControllerConfig config_;
  std::vector<asio::steady_timer*> waiters_;  // metadata long-polls and answers awaiting commit
  ClientPool peers_;                          // connections to the other voters
  std::unique_ptr<RpcServer> server_;
  bool stopping_ = false;
};

}  // namespace

int run_controller_process(const ControllerConfig& config) {
  asio::io_context io;
  MetricsEndpoint metrics(config.listener.host, config.metrics_port);
  auto opened = ControllerService::open(config, metrics.registry(), ControllerClock::now(),
                                        std::random_device{}());
  if (opened.error) {
    spdlog::error("event=controller_open_failed dir={} error=\"{}\"", config.data_dir.string(),
                  opened.error.message());
    return 1;
  }
  spdlog::info("event=metadata_replayed records={} dropped_tail_bytes={} node={} voters={}",
               opened.replayed_records, opened.dropped_tail_bytes, config.node_id,
               opened.service->voters().size());
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
    if (ec)
      return;
    spdlog::info("event=stopping signal={}", sig);
    server.stop();
  });
  io.run();
  return 0;
}

}  // namespace faultline::cluster
