#include "probe_service.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "faultline/cluster/net/rpc.h"

namespace faultline::probes {

using asio::awaitable;
using cluster::use_tuple;
using namespace std::chrono_literals;

namespace {

// A held demotion stays held round after round; one line per broker this often is enough.
constexpr auto kHeldLogEvery = 5s;

std::vector<BrokerId> ids_of(const std::vector<BrokerTarget>& targets) {
  std::vector<BrokerId> ids;
  ids.reserve(targets.size());
  for (const auto& t : targets)
    ids.push_back(t.id);
  return ids;
}

// "host:port,host:port" for the logs.
std::string endpoints_str(const std::vector<cluster::Endpoint>& endpoints) {
  std::string out;
  for (const auto& e : endpoints)
    out += (out.empty() ? "" : ",") + e.str();
  return out;
}

cluster::ClientConfig controller_client_config(const ProbeOptions& o) {
  cluster::ClientConfig c;
  c.controllers = o.controllers;
  c.request_timeout = o.controller_timeout;
  return c;
}

int64_t monotonic_ns(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::string wall_time_now() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z",
                     fmt::gmtime(std::chrono::system_clock::to_time_t(now)), ms.count());
}

std::optional<Reason> own_reason(std::string_view controller_reason_text) {
  if (controller_reason_text == controller_reason(Reason::unreachable))
    return Reason::unreachable;
  if (controller_reason_text == controller_reason(Reason::slow_storage))
    return Reason::slow_storage;
  return std::nullopt;
}

}  // namespace

struct ProbeService::RoundState {
  explicit RoundState(asio::io_context& io, size_t n)
      : results(n), remaining(n), done(io, asio::steady_timer::time_point::max()) {}
  std::vector<std::optional<Probed>> results;
  size_t remaining;
  asio::steady_timer done;
};

ProbeService::ProbeService(asio::io_context& io, ProbeOptions options,
                           prometheus::Registry& registry)
    : io_(io),
      options_(std::move(options)),
      policy_(options_.health, ids_of(options_.brokers)),
      metrics_(registry),
      controller_(io, controller_client_config(options_)),
      tick_(io) {
  if (!options_.decisions_file.empty()) {
    decisions_.open(options_.decisions_file, std::ios::app);
    if (!decisions_) {
      throw std::runtime_error("cannot write the decisions file " +
                               options_.decisions_file.string());
    }
  }
}

void ProbeService::start() {
  std::string targets;
  for (const auto& b : options_.brokers)
    targets += fmt::format(" {}={}", b.id, b.client.str());
  spdlog::info(
      "event=probe_started interval_ms={} probe_timeout_ms={} controller={} brokers=[{} ] "
      "config={}",
      options_.interval.count(), options_.effective_probe_timeout().count(),
      endpoints_str(options_.controllers), targets, options_.health.to_json().dump());
  asio::co_spawn(io_, loop(), asio::detached);
}

void ProbeService::stop() {
  if (stopping_)
    return;
  stopping_ = true;
  tick_.cancel();
}

awaitable<void> ProbeService::loop() {
  // The first look at the controller's demotions comes before any decision: demotions left by a
  // previous run of the prober are adopted, operator demotions count against the cap.
  co_await refresh_controller_view();
  auto next = Clock::now();
  while (!stopping_) {
    // Later looks run beside the rounds, so an unreachable controller never delays probing.
    if (!refresh_in_flight_ &&
        Clock::now() - last_refresh_attempt_ >= options_.controller_refresh) {
      asio::co_spawn(io_, refresh_controller_view(), asio::detached);
    }
    ProbeRound round = co_await probe_round();
    if (stopping_)
      break;
    RoundOutcome outcome = policy_.step(round);
    co_await act_on(std::move(outcome), round.now);
    // Fixed-rate rounds; a round that overran (a slow controller) is not made up for in a burst.
    next += options_.interval;
    auto now = Clock::now();
    if (next < now) {
      spdlog::warn("event=round_late by_ms={}",
                   std::chrono::duration_cast<std::chrono::milliseconds>(now - next).count());
      next = now;
    }
    tick_.expires_at(next);
    co_await tick_.async_wait(use_tuple);
  }
  spdlog::info("event=probe_stopped demoted_by_probe={}", policy_.demoted_by_policy().size());
  controller_.close();
  io_.stop();
}

awaitable<ProbeRound> ProbeService::probe_round() {
  auto state = std::make_shared<RoundState>(io_, options_.brokers.size());
  for (size_t i = 0; i < options_.brokers.size(); ++i) {
    asio::co_spawn(io_, probe_into(state, i), asio::detached);
  }
  // Single-threaded: every probe finishing after this check cancels a wait already in place.
  while (state->remaining > 0)
    co_await state->done.async_wait(use_tuple);
  ProbeRound round;
  for (auto& r : state->results)
    note_probe(*r, round);
  round.now = Clock::now();
  co_return round;
}

awaitable<void> ProbeService::probe_into(std::shared_ptr<RoundState> round, size_t index) {
  const BrokerTarget& target = options_.brokers[index];
  // A fresh connection every time, as a client that just (re)connects would open: it tests the
  // path from the client network to the listener, not a connection that happens to be open.
  cluster::RpcClient client(io_, target.client);
  cluster::BrokerHealthRequest request;
  const auto started = Clock::now();
  cluster::CallResult result = co_await client.call(request, options_.effective_probe_timeout());
  const auto finished = Clock::now();
  client.close();

  Probed p;
  p.observation.broker = target.id;
  p.observation.at = finished;
  p.observation.latency = std::chrono::duration_cast<std::chrono::microseconds>(finished - started);
  if (result.error) {
    p.observation.error =
        result.error == asio::error::timed_out ? "timed out" : result.error.message();
  } else {
    auto& answer = std::get<cluster::BrokerHealthResponse>(result.response);
    if (answer.error != cluster::errc::none) {
      p.observation.error = fmt::format("answered {}", cluster::errc_name(answer.error));
    } else if (answer.broker_id != target.id) {
      p.observation.error = fmt::format("broker {} answered instead", answer.broker_id);
    } else {
      p.observation.ok = true;
      p.answer = std::move(answer);
    }
  }
  round->results[index] = std::move(p);
  if (--round->remaining == 0)
    round->done.cancel();
}

void ProbeService::note_probe(const Probed& p, ProbeRound& round) {
  const auto& obs = p.observation;
  metrics_.probe(obs.broker, obs.ok, obs.latency);
  // Transitions only: a broker that stays down must not fill the log every round.
  auto& last = last_error_[obs.broker];
  if (obs.error != last) {
    if (obs.ok) {
      spdlog::info("event=probe_ok broker={} latency_ms={:.3f}", obs.broker,
                   static_cast<double>(obs.latency.count()) / 1000.0);
    } else {
      spdlog::warn("event=probe_failed broker={} error=\"{}\" after_ms={:.1f}", obs.broker,
                   obs.error, static_cast<double>(obs.latency.count()) / 1000.0);
    }
    last = obs.error;
  }
  round.reachability.push_back(obs);
  if (!p.answer)
    return;
  auto read = storage_.read(obs.broker, *p.answer, obs.at);
  if (!read.problem.empty()) {
    spdlog::warn("event=storage_report_ignored broker={} problem=\"{}\"", obs.broker, read.problem);
  }
  if (!read.observations.empty()) {
    metrics_.storage(obs.broker, read.observations.back().append_fsync_latency);
  }
  for (auto& s : read.observations)
    round.storage.push_back(s);
  auto& canary_error = canary_error_[obs.broker];
  if (p.answer->canary_error != canary_error) {
    if (p.answer->canary_error.empty()) {
      spdlog::info("event=storage_canary_ok broker={}", obs.broker);
    } else {
      spdlog::warn("event=storage_canary_failing broker={} error=\"{}\"", obs.broker,
                   p.answer->canary_error);
    }
    canary_error = p.answer->canary_error;
  }
}

awaitable<void> ProbeService::act_on(RoundOutcome outcome, TimePoint now) {
  metrics_.round(outcome.vantage_point_suspect);
  if (outcome.vantage_point_suspect != vantage_suspect_) {
    if (outcome.vantage_point_suspect) {
      spdlog::warn("event=vantage_point_suspect failed={} probed={} action=decide_nothing",
                   outcome.failed_this_round, outcome.probed_this_round);
    } else {
      spdlog::info("event=vantage_point_ok failed={} probed={}", outcome.failed_this_round,
                   outcome.probed_this_round);
    }
    record({{"type", outcome.vantage_point_suspect ? "vantage_point_suspect" : "vantage_point_ok"},
            {"failed", outcome.failed_this_round},
            {"probed", outcome.probed_this_round}},
           now);
    vantage_suspect_ = outcome.vantage_point_suspect;
  }

  for (const Decision& d : outcome.decisions) {
    cluster::errc result;
    ++decisions_made_;  // before and after: a controller view that overlaps the call is stale
    if (d.action == Action::demote) {
      std::string reason(controller_reason(d.reason));
      result = co_await controller_.demote(d.broker, std::move(reason));
    } else {
      result = co_await controller_.promote(d.broker);
    }
    const bool ok = result == cluster::errc::none;
    ++decisions_made_;
    if (ok) {
      metrics_.decision(d);
      spdlog::info("event=health_decision {} controller=ok", d.to_string());
    } else {
      policy_.decision_failed(d);
      metrics_.decision_failed(d);
      spdlog::warn("event=health_decision {} controller=failed error={} retry=next_round",
                   d.to_string(), cluster::errc_name(result));
    }
    auto line = d.to_json();
    line["type"] = "decision";
    line["controller"] = ok ? "ok" : std::string(cluster::errc_name(result));
    record(std::move(line), now);
  }

  for (const HeldDemotion& h : outcome.held) {
    auto it = held_logged_at_.find(h.broker);
    if (it != held_logged_at_.end() && now - it->second < kHeldLogEvery)
      continue;
    held_logged_at_[h.broker] = now;
    spdlog::warn("event=health_{}", h.to_string());
    auto line = h.to_json();
    line["type"] = "held";
    record(std::move(line), now);
  }
  // A held demotion that is no longer wanted is logged afresh if it comes back.
  std::erase_if(held_logged_at_, [&](const auto& entry) {
    return std::none_of(outcome.held.begin(), outcome.held.end(),
                        [&](const HeldDemotion& h) { return h.broker == entry.first; });
  });

  std::set<BrokerId> demoted;
  for (BrokerId b : policy_.demoted_by_policy())
    demoted.insert(b);
  for (BrokerId b : demoted_shown_)
    if (!demoted.contains(b))
      metrics_.demoted(b, false);
  for (BrokerId b : demoted)
    if (!demoted_shown_.contains(b))
      metrics_.demoted(b, true);
  demoted_shown_ = std::move(demoted);
}

awaitable<void> ProbeService::refresh_controller_view() {
  refresh_in_flight_ = true;
  last_refresh_attempt_ = Clock::now();
  const uint64_t generation = decisions_made_;
  std::optional<cluster::MetadataResponse> md = co_await controller_.controller_metadata();
  refresh_in_flight_ = false;
  const TimePoint now = Clock::now();
  const bool reachable = md && md->error == cluster::errc::none;
  if (reachable != controller_reachable_) {
    if (reachable) {
      spdlog::info("event=controller_reachable controller={}", endpoints_str(options_.controllers));
    } else {
      spdlog::warn("event=controller_unreachable controller={} error={}",
                   endpoints_str(options_.controllers),
                   md ? cluster::errc_name(md->error) : std::string_view("no answer"));
    }
    controller_reachable_ = reachable;
  }
  // Unreachable: the policy keeps the last view. A view older than a decision carried out since
  // it was asked for would undo that decision's effect on the policy: ask again instead.
  if (!reachable)
    co_return;
  if (generation != decisions_made_) {
    last_refresh_attempt_ = {};
    co_return;
  }
  std::vector<BrokerId> demoted;
  for (const auto& b : md->brokers) {
    if (!b.demoted)
      continue;
    demoted.push_back(b.id);
    if (adopted_)
      continue;
    if (auto reason = own_reason(b.demotion_reason)) {
      policy_.adopt_demotion(b.id, *reason, now);
      spdlog::info("event=adopted_demotion broker={} reason={}", b.id, b.demotion_reason);
      record({{"type", "adopted"}, {"broker", b.id.value()}, {"reason", b.demotion_reason}}, now);
    }
  }
  adopted_ = true;
  for (BrokerId b : policy_.set_demoted_elsewhere(demoted, now)) {
    spdlog::warn(
        "event=promoted_elsewhere broker={} not_demoted_again_for_ms={}", b,
        std::chrono::duration_cast<std::chrono::milliseconds>(policy_.config().recovery_hold)
            .count());
    record({{"type", "promoted_elsewhere"}, {"broker", b.value()}}, now);
  }
}

void ProbeService::record(nlohmann::json line, TimePoint at) {
  if (!decisions_.is_open())
    return;
  line["monotonic_ns"] = monotonic_ns(at);
  line["wall_time"] = wall_time_now();
  decisions_ << line.dump() << '\n';
  decisions_.flush();
}

}  // namespace faultline::probes
