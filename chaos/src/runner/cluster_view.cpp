#include "cluster_view.h"

#include <fmt/format.h>

#include <algorithm>
#include <thread>

namespace faultline::chaos {

using namespace std::chrono_literals;

ClusterWatcher::ClusterWatcher(cluster::ClientConfig config, int brokers,
                               checker::HistoryRecorder& history)
    : brokers_(brokers), history_(history) {
  // A dead controller must not hold the view for the client's whole request timeout.
  config.request_timeout = 500ms;
  client_ = std::make_unique<cluster::SyncClient>(config);
  // The watch answers as soon as the controller commits a change, else after the wait.
  fetch_ = [this](int64_t seen) { return client_->watch_metadata(seen, 250ms); };
  fetch_now_ = [this] { return client_->controller_metadata(); };
  snapshot_.brokers = brokers;
  snapshot_.controllers = static_cast<int>(config.controllers.size());
  if (!config.controllers.empty())
    quorum_ = std::make_unique<QuorumClient>(config.controllers);
}

ClusterWatcher::ClusterWatcher(std::vector<cluster::Endpoint> kafka_bootstrap, int brokers,
                               checker::HistoryRecorder& history)
    : brokers_(brokers), history_(history) {
  kafka_ = std::make_unique<cluster::KafkaMetadataClient>(std::move(kafka_bootstrap), 500ms);
  fetch_now_ = [this]() -> std::optional<cluster::MetadataResponse> {
    auto md = kafka_->fetch(std::nullopt);
    if (!md)
      return std::nullopt;
    return cluster::from_kafka_metadata(*md, brokers_);
  };
  // Kafka has no metadata watch: look every 50 ms.
  fetch_ = [this](int64_t) {
    std::this_thread::sleep_for(50ms);
    return fetch_now_();
  };
  snapshot_.brokers = brokers;
}

ClusterWatcher::~ClusterWatcher() {
  stop();
}

void ClusterWatcher::start() {
  stop_ = false;
  thread_ = std::thread([this] { loop(); });
  if (quorum_)
    quorum_thread_ = std::thread([this] { quorum_loop(); });
}

void ClusterWatcher::stop() {
  stop_ = true;
  if (thread_.joinable())
    thread_.join();
  if (quorum_thread_.joinable())
    quorum_thread_.join();
}

void ClusterWatcher::loop() {
  while (!stop_) {
    auto md = fetch_(seen_offset_);
    apply(md);
    if (!md)
      std::this_thread::sleep_for(50ms);
  }
}

void ClusterWatcher::quorum_loop() {
  while (!stop_) {
    apply_quorum(quorum_->describe(kQuorumTimeout));
    std::this_thread::sleep_for(50ms);
  }
}

void ClusterWatcher::refresh() {
  if (quorum_)
    apply_quorum(quorum_->describe(kQuorumTimeout));
  apply(fetch_now_());
}

ClusterSnapshot ClusterWatcher::snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

ClusterSnapshot ClusterWatcher::snapshot_with_active_controller(
    std::chrono::milliseconds patience) {
  const auto deadline = Clock::now() + patience;
  ClusterSnapshot s = snapshot();
  while (quorum_ && s.controllers > 1 && s.active_controller == 0 && Clock::now() < deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    apply_quorum(
        quorum_->describe(std::clamp(left, std::chrono::milliseconds(1), kPatientQuorumTimeout)));
    s = snapshot();
    if (s.active_controller == 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(50ms);  // an election under way: give it a moment
  }
  return s;
}

std::vector<ClusterWatcher::LeaderSample> ClusterWatcher::leaders() const {
  std::lock_guard lock(mu_);
  return leaders_;
}

std::vector<ClusterWatcher::ControllerSample> ClusterWatcher::controllers() const {
  std::lock_guard lock(mu_);
  return controller_samples_;
}

std::optional<cluster::MetadataResponse> ClusterWatcher::metadata() const {
  std::lock_guard lock(mu_);
  return metadata_;
}

void ClusterWatcher::apply(const std::optional<cluster::MetadataResponse>& md) {
  std::lock_guard lock(mu_);
  if (!md || md->error != cluster::errc::none) {
    // Brokers and partitions keep their last known state while the controller is away.
    snapshot_.controller_up = false;
    return;
  }
  metadata_ = md;
  seen_offset_ = md->metadata_offset;
  ClusterSnapshot next;
  next.brokers = brokers_;
  // The quorum is the other thread's: carried over.
  next.controllers = snapshot_.controllers;
  next.active_controller = snapshot_.active_controller;
  next.controller_epoch = snapshot_.controller_epoch;
  next.controllers_up = snapshot_.controllers_up;
  for (const auto& b : md->brokers) {
    (b.fenced ? next.fenced : next.alive).insert(b.id.value());
    if (b.demoted)
      next.demoted.insert(b.id.value());
  }
  for (const auto& p : md->partitions) {
    PartitionView v;
    v.leader = p.leader == cluster::kNoBroker ? -1 : p.leader.value();
    v.epoch = p.leader_epoch.value();
    for (auto r : p.replicas)
      v.replicas.push_back(r.value());
    for (auto r : p.isr)
      v.isr.push_back(r.value());
    next.partitions[p.tp.partition.value()] = v;
    record_partition(p, v);
  }
  record_brokers(*md);
  snapshot_ = std::move(next);
}

// Elections into the history (the checker names them around a lost write) and into the leader
// timeline (the leadership checks).
void ClusterWatcher::record_partition(const cluster::PartitionMetadata& p,
                                      const PartitionView& view) {
  const int idx = p.tp.partition.value();
  const int leader = p.leader == cluster::kNoBroker ? -1 : p.leader.value();
  auto last = std::find_if(leaders_.rbegin(), leaders_.rend(),
                           [&](const LeaderSample& s) { return s.partition == idx; });
  if (last == leaders_.rend() || last->leader != leader || last->epoch != p.leader_epoch.value())
    leaders_.push_back({Clock::now(), idx, leader, p.leader_epoch.value()});
  // Epoch -1 until seen, so the first leader (epoch 0) is recorded too.
  auto& [epoch, unclean] = seen_.try_emplace(idx, -1, 0).first->second;
  checker::NemesisFields f;
  f.partition = checker::PartitionId{idx};
  f.epoch = checker::LeaderEpoch{p.leader_epoch.value()};
  f.leader = checker::BrokerId{leader};
  if (p.unclean_elections > unclean) {
    history_.nemesis(checker::NemesisKind::unclean_election, f);
    unclean_epoch_[idx] = p.leader_epoch.value();
  }
  if (auto it = recorded_.find(idx); it == recorded_.end() || it->second != view) {
    checker::NemesisFields state = f;
    for (int b : view.isr)
      state.isr.push_back(checker::BrokerId{b});
    for (int b : view.replicas)
      state.replicas.push_back(checker::BrokerId{b});
    auto u = unclean_epoch_.find(idx);
    state.unclean = u != unclean_epoch_.end() && u->second == p.leader_epoch.value();
    history_.nemesis(checker::NemesisKind::partition_state, state);
    recorded_[idx] = view;
  }
  if (p.leader_epoch.value() != epoch && leader >= 0) {
    history_.nemesis(checker::NemesisKind::leader_change, f);
    epoch = p.leader_epoch.value();
  }
  unclean = p.unclean_elections;
}

// The quorum into the snapshot; a new active controller (or epoch) into the history and the
// controller timeline. A look without a leader (an election under way) is a sample too, so the
// timeline shows how long the cluster had no active controller; the history records elections.
void ClusterWatcher::apply_quorum(const QuorumLook& look) {
  std::lock_guard lock(mu_);
  snapshot_.controllers_up = look.up;
  snapshot_.active_controller = look.active;
  snapshot_.controller_epoch = look.epoch;
  if (!controller_samples_.empty() && controller_samples_.back().active == look.active &&
      controller_samples_.back().epoch == look.epoch)
    return;
  controller_samples_.push_back({Clock::now(), look.active, look.epoch});
  if (look.active == 0)
    return;
  checker::NemesisFields f;
  f.fault = "controller-change";
  f.target = fmt::format("{} epoch {}", controller_node(look.active), look.epoch);
  history_.nemesis(checker::NemesisKind::note, f);
}

}  // namespace faultline::chaos

namespace faultline::chaos {

// Broker liveness into the history whenever it changes (cluster-state).
void ClusterWatcher::record_brokers(const cluster::MetadataResponse& md) {
  checker::NemesisFields f;
  for (const auto& b : md.brokers) {
    const checker::BrokerId id{b.id.value()};
    (b.fenced ? f.fenced : f.alive).push_back(id);
    if (b.demoted)
      f.demoted.push_back(id);
    if (b.shutting_down)
      f.shutting_down.push_back(id);
  }
  auto same = [](const checker::NemesisFields& a, const checker::NemesisFields& b) {
    return a.alive == b.alive && a.fenced == b.fenced && a.demoted == b.demoted &&
           a.shutting_down == b.shutting_down;
  };
  if (recorded_brokers_ && same(*recorded_brokers_, f))
    return;
  history_.nemesis(checker::NemesisKind::cluster_state, f);
  recorded_brokers_ = f;
}

}  // namespace faultline::chaos
