// The controller state machine: registration, liveness, placement, AlterPartition fencing,
// controlled shutdown, priority, reassignment and replay (ARCHITECTURE.md §2 items 8-17).
#include "faultline/cluster/controller/controller.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <variant>

#include "faultline/cluster/controller/metadata_store.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;

ControllerConfig test_config() {
  ControllerConfig c;
  c.session_timeout = 1000ms;
  c.leader_imbalance_check_interval = 300s;
  c.leader_imbalance_per_broker_percentage = 10;
  c.rebalance_batch_cap = 1000;
  return c;
}

class ControllerTest : public ::testing::Test {
 protected:
  ControllerTest() : t0_(ControllerTime{} + 1h), now_(t0_), controller_(test_config(), t0_) {}

  // The shell's part: persist and publish everything decided so far.
  void commit() {
    auto fresh = controller_.take_new_records();
    persisted_.insert(persisted_.end(), fresh.begin(), fresh.end());
    if (!fresh.empty())
      controller_.mark_durable(fresh.back().offset);
  }

  BrokerEpoch register_broker(int32_t id, uint64_t incarnation = 1) {
    auto r = controller_.register_broker(
        {BrokerId{id}, incarnation, {"10.0.0.1", static_cast<uint16_t>(9000 + id)}, {}, {}, {}},
        now_);
    EXPECT_EQ(r.error, errc::none);
    epochs_[id] = r.broker_epoch;
    commit();
    return r.broker_epoch;
  }

  // A heartbeat from a broker that has applied everything committed.
  HeartbeatResult heartbeat(int32_t id, bool want_shutdown = false) {
    auto r = controller_.heartbeat(
        {BrokerId{id}, epochs_[id], controller_.durable_offset(), want_shutdown}, now_);
    commit();
    return r;
  }

  void bring_up(int brokers) {
    for (int32_t b = 1; b <= brokers; ++b)
      register_broker(b);
    for (int32_t b = 1; b <= brokers; ++b)
      EXPECT_FALSE(heartbeat(b).fenced);
  }

  void heartbeat_all_but(std::set<int32_t> silent) {
    for (const auto& [id, epoch] : epochs_) {
      if (!silent.contains(id))
        heartbeat(id);
    }
  }

  // Time passes as with the shell's ticker: 100 ms steps, a heartbeat from every broker not in
  // `silent`, then a tick.
  void run_for(std::chrono::milliseconds duration, std::set<int32_t> silent = {}) {
    for (ControllerTime end = now_ + duration; now_ < end;) {
      now_ += 100ms;
      heartbeat_all_but(silent);
      controller_.tick(now_);
      commit();
    }
  }

  const PartitionState& partition(const std::string& topic, int32_t p) {
    const PartitionState* s = controller_.image().partition({topic, PartitionIndex{p}});
    EXPECT_NE(s, nullptr);
    return *s;
  }

  ControllerTime t0_;
  ControllerTime now_;
  Controller controller_;
  std::map<int32_t, BrokerEpoch> epochs_;
  std::vector<MetadataEntry> persisted_;
};

TEST_F(ControllerTest, RegistrationGivesAFreshEpochPerStartAndStartsFenced) {
  BrokerEpoch first = register_broker(1, 100);
  EXPECT_TRUE(controller_.image().broker(BrokerId{1})->fenced);
  // A retry of the same start keeps its epoch and records nothing.
  auto before = controller_.image().applied_offset();
  auto retry = controller_.register_broker({BrokerId{1}, 100, {}, {}, {}, {}}, now_);
  EXPECT_EQ(retry.broker_epoch, first);
  EXPECT_EQ(controller_.image().applied_offset(), before);
  // A restart gets a newer epoch; the old one is refused from then on.
  BrokerEpoch second = register_broker(1, 101);
  EXPECT_GT(second, first);
  auto stale = controller_.heartbeat({BrokerId{1}, first, MetadataOffset{100}, false}, now_);
  EXPECT_EQ(stale.error, errc::stale_broker_epoch);
  auto unknown = controller_.heartbeat({BrokerId{7}, first, MetadataOffset{0}, false}, now_);
  EXPECT_EQ(unknown.error, errc::broker_id_not_registered);
}

TEST_F(ControllerTest, UnfencedOnlyOnceCaughtUpWithMetadata) {
  register_broker(1);
  BrokerEpoch epoch = register_broker(2);
  // Broker 2 has applied nothing yet: its own registration is still ahead of it.
  auto behind = controller_.heartbeat({BrokerId{2}, epoch, MetadataOffset{0}, false}, now_);
  EXPECT_TRUE(behind.fenced);
  auto caught_up =
      controller_.heartbeat({BrokerId{2}, epoch, MetadataOffset{epoch.value()}, false}, now_);
  EXPECT_FALSE(caught_up.fenced);
  EXPECT_FALSE(controller_.image().broker(BrokerId{2})->fenced);
}

TEST_F(ControllerTest, AControllerStallDoesNotFenceBrokersItDidNotListenTo) {
  bring_up(3);
  controller_.create_topic("t", 3, 3, now_);
  commit();
  now_ += 5s;  // the controller was paused: no ticks, heartbeats unread
  controller_.tick(now_);
  for (int32_t b = 1; b <= 3; ++b)
    EXPECT_FALSE(controller_.image().broker(BrokerId{b})->fenced);
  // Brokers that still do not call in are fenced half a session later.
  run_for(500ms, {1});
  EXPECT_FALSE(controller_.image().broker(BrokerId{1})->fenced);
  run_for(100ms, {1});
  EXPECT_TRUE(controller_.image().broker(BrokerId{1})->fenced);
  EXPECT_FALSE(controller_.image().broker(BrokerId{2})->fenced);
}

TEST_F(ControllerTest, PlacementIsRoundRobinWithARotatingStart) {
  bring_up(5);
  auto a = controller_.create_topic("a", 10, 3, now_);
  ASSERT_EQ(a.error, errc::none);
  std::map<int32_t, int> leaders;
  std::map<int32_t, int> replicas;
  for (const auto& list : a.assignment) {
    ASSERT_EQ(list.size(), 3u);
    std::set<BrokerId> distinct(list.begin(), list.end());
    EXPECT_EQ(distinct.size(), 3u) << fmt::format("{}", list);
    ++leaders[list.front().value()];
    for (BrokerId b : list)
      ++replicas[b.value()];
  }
  for (int32_t b = 1; b <= 5; ++b) {
    EXPECT_EQ(leaders[b], 2) << b;
    EXPECT_EQ(replicas[b], 6) << b;
  }
  // Initial state: leader = preferred replica, ISR = all replicas.
  EXPECT_EQ(partition("a", 3).leader, a.assignment[3].front());
  EXPECT_EQ(partition("a", 3).isr, a.assignment[3]);

  auto b = controller_.create_topic("b", 1, 3, now_);
  auto c = controller_.create_topic("c", 1, 3, now_);
  EXPECT_NE(a.assignment[0].front(), b.assignment[0].front());
  EXPECT_NE(b.assignment[0].front(), c.assignment[0].front());

  EXPECT_EQ(controller_.create_topic("a", 1, 1, now_).error, errc::topic_already_exists);
  EXPECT_EQ(controller_.create_topic("d", 1, 6, now_).error, errc::invalid_replication_factor);
  EXPECT_EQ(controller_.create_topic("d", 0, 1, now_).error, errc::invalid_partitions);
  EXPECT_EQ(controller_.create_topic("bad/name", 1, 1, now_).error, errc::invalid_request);
}

TEST_F(ControllerTest, PlacementUsesOnlyUnfencedBrokers) {
  bring_up(3);
  register_broker(4);  // registered, never caught up: fenced
  auto r = controller_.create_topic("t", 6, 3, now_);
  ASSERT_EQ(r.error, errc::none);
  for (const auto& list : r.assignment)
    EXPECT_FALSE(list.contains(BrokerId{4}));
  EXPECT_EQ(controller_.create_topic("u", 1, 4, now_).error, errc::invalid_replication_factor);
}

TEST_F(ControllerTest, SessionTimeoutFencesAndFailsPartitionsOver) {
  bring_up(3);
  controller_.create_topic("t", 6, 3, now_);
  commit();
  controller_.take_election_events();
  std::vector<PartitionRef> led_by_1 = controller_.image().partitions_led_by(BrokerId{1});
  ASSERT_EQ(led_by_1.size(), 2u);

  ControllerTime last_heartbeat_of_1 = now_;
  run_for(1000ms, {1});
  EXPECT_FALSE(controller_.image().broker(BrokerId{1})->fenced)
      << "fenced before its session ended";
  run_for(100ms, {1});  // 1.1 s since broker 1's last heartbeat
  EXPECT_TRUE(controller_.image().broker(BrokerId{1})->fenced);
  EXPECT_TRUE(controller_.image().partitions_led_by(BrokerId{1}).empty());
  for (PartitionRef ref : controller_.image().partitions_with_replica(BrokerId{1})) {
    const PartitionState& p = controller_.image().partition(ref);
    EXPECT_FALSE(p.isr.contains(BrokerId{1}));
    EXPECT_NE(p.leader, kNoBroker);
  }
  auto events = controller_.take_election_events();
  ASSERT_EQ(events.size(), 2u);
  for (const auto& e : events) {
    EXPECT_EQ(e.reason, ElectionReason::offline);
    EXPECT_EQ(e.previous_leader, BrokerId{1});
    EXPECT_EQ(e.triggered_at, last_heartbeat_of_1 + 1000ms);
  }

  // Back from a pause with the same epoch: it stays fenced until it has applied its own fencing
  // (and so knows it lost its leaderships).
  MetadataOffset fenced_at{-1};
  for (const auto& e : persisted_) {
    if (std::holds_alternative<BrokerFenced>(e.record))
      fenced_at = e.offset;
  }
  auto behind = controller_.heartbeat(
      {BrokerId{1}, epochs_[1], MetadataOffset{fenced_at.value() - 1}, false}, now_);
  EXPECT_TRUE(behind.fenced);
  auto current = controller_.heartbeat({BrokerId{1}, epochs_[1], fenced_at, false}, now_);
  EXPECT_FALSE(current.fenced);
}

TEST_F(ControllerTest, BrokersExpiringTogetherCauseOneElectionPerPartition) {
  bring_up(3);
  controller_.create_topic("t", 6, 3, now_);
  commit();
  controller_.take_election_events();
  run_for(1100ms, {1, 2});
  std::map<std::string, int> elections;
  for (const auto& e : controller_.take_election_events())
    ++elections[fmt::format("{}", e.tp)];
  for (const auto& [tp, n] : elections)
    EXPECT_EQ(n, 1) << tp;
  for (int32_t p = 0; p < 6; ++p)
    EXPECT_EQ(partition("t", p).leader, BrokerId{3});
}

TEST_F(ControllerTest, RestartedBrokerIsFencedAtOnceAndComesBackToItsOfflinePartitions) {
  bring_up(2);
  controller_.create_topic("solo", 1, 1, now_);  // on one broker only
  commit();
  BrokerId owner = partition("solo", 0).leader;
  int32_t id = owner.value();
  BrokerEpoch old_epoch = epochs_[id];

  register_broker(id, 2);  // restarted before its session expired
  EXPECT_GT(epochs_[id], old_epoch);
  EXPECT_TRUE(controller_.image().broker(owner)->fenced);
  EXPECT_EQ(partition("solo", 0).leader, kNoBroker);
  EXPECT_EQ(partition("solo", 0).isr, (ReplicaList{owner}));  // it keeps the last ISR seat
  EXPECT_EQ(controller_.image().offline_partition_count(), 1u);

  EXPECT_FALSE(heartbeat(id).fenced);
  EXPECT_EQ(partition("solo", 0).leader, owner);
  EXPECT_EQ(controller_.image().offline_partition_count(), 0u);
  auto events = controller_.take_election_events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().reason, ElectionReason::broker_returned);
}

TEST_F(ControllerTest, AnOfflineLogDirFencesTheBrokerUntilItRestarts) {
  bring_up(3);
  controller_.create_topic("t", 6, 3, now_);
  commit();
  controller_.take_election_events();
  ASSERT_FALSE(controller_.image().partitions_led_by(BrokerId{1}).empty());

  // Its heartbeat says the log directory failed: out of every ISR, leaderships elsewhere, at once
  // (no session timeout to wait for).
  auto r = controller_.heartbeat(
      {BrokerId{1}, epochs_[1], controller_.durable_offset(), false, /*log_dir_offline=*/true},
      now_);
  commit();
  EXPECT_TRUE(r.fenced);
  EXPECT_TRUE(controller_.image().partitions_led_by(BrokerId{1}).empty());
  for (PartitionRef ref : controller_.image().partitions_with_replica(BrokerId{1})) {
    const PartitionState& p = controller_.image().partition(ref);
    EXPECT_FALSE(p.isr.contains(BrokerId{1}));
    EXPECT_NE(p.leader, kNoBroker);
  }
  auto events = controller_.take_election_events();
  ASSERT_EQ(events.size(), 2u);
  for (const auto& e : events) {
    EXPECT_EQ(e.reason, ElectionReason::offline);
    EXPECT_EQ(e.previous_leader, BrokerId{1});
  }

  // Still offline: it stays fenced however caught up it is, and nothing is elected again.
  for (int i = 0; i < 3; ++i) {
    auto again = controller_.heartbeat(
        {BrokerId{1}, epochs_[1], controller_.durable_offset(), false, true}, now_);
    commit();
    EXPECT_TRUE(again.fenced);
  }
  EXPECT_TRUE(controller_.take_election_events().empty());

  // Restarted with its recovered logs: a new registration, unfenced once caught up.
  register_broker(1, 2);
  EXPECT_FALSE(heartbeat(1).fenced);
}

TEST_F(ControllerTest, AlterPartitionIsFencedByEpochs) {
  bring_up(3);
  controller_.create_topic("t", 1, 3, now_);
  commit();
  const PartitionState p = partition("t", 0);
  int32_t leader = p.leader.value();
  int32_t follower = p.replicas[1].value();
  ReplicaList shrunk;
  for (BrokerId b : p.isr) {
    if (b != BrokerId{follower})
      shrunk.push_back(b);
  }
  auto request = [&](auto edit) {
    AlterPartitionRequest r{{"t", PartitionIndex{0}},
                            BrokerId{leader},
                            epochs_[leader],
                            partition("t", 0).leader_epoch,
                            partition("t", 0).partition_epoch,
                            shrunk};
    edit(r);
    return controller_.alter_partition(r, now_).error;
  };
  struct Row {
    std::string name;
    std::function<void(AlterPartitionRequest&)> edit;
    errc expected;
  };
  const std::vector<Row> rows = {
      {"stale leader epoch",
       [](auto& r) { r.leader_epoch = LeaderEpoch{r.leader_epoch.value() - 1}; },
       errc::fenced_leader_epoch},
      {"newer leader epoch", [](auto& r) { r.leader_epoch = r.leader_epoch.next(); },
       errc::unknown_leader_epoch},
      {"stale partition epoch",
       [](auto& r) { r.partition_epoch = PartitionEpoch{r.partition_epoch.value() - 1}; },
       errc::invalid_update_version},
      {"not the leader",
       [&](auto& r) {
         r.leader = BrokerId{follower};
         r.leader_broker_epoch = epochs_[follower];
       },
       errc::not_leader_or_follower},
      {"stale broker epoch", [](auto& r) { r.leader_broker_epoch = BrokerEpoch{-5}; },
       errc::stale_broker_epoch},
      {"ISR without the leader", [&](auto& r) { r.proposed_isr = ReplicaList{BrokerId{follower}}; },
       errc::invalid_request},
      {"ISR with a non-replica", [&](auto& r) { r.proposed_isr.push_back(BrokerId{9}); },
       errc::invalid_request},
      {"unknown partition", [](auto& r) { r.tp.partition = PartitionIndex{5}; },
       errc::unknown_topic_or_partition},
  };
  for (const Row& row : rows)
    EXPECT_EQ(request(row.edit), row.expected) << row.name;
  EXPECT_EQ(partition("t", 0).partition_epoch, p.partition_epoch)
      << "a rejected request changed state";

  AlterPartitionRequest ok{{"t", PartitionIndex{0}}, BrokerId{leader},  epochs_[leader],
                           p.leader_epoch,           p.partition_epoch, shrunk};
  auto result = controller_.alter_partition(ok, now_);
  ASSERT_EQ(result.error, errc::none);
  EXPECT_EQ(result.state.isr, shrunk);
  EXPECT_EQ(result.state.partition_epoch, p.partition_epoch.next());
  EXPECT_EQ(result.state.leader_epoch, p.leader_epoch);
  // The same request again is now stale.
  EXPECT_EQ(controller_.alter_partition(ok, now_).error, errc::invalid_update_version);

  // Expanding with a fenced broker is refused.
  run_for(1100ms, {follower});
  commit();
  ASSERT_TRUE(controller_.image().broker(BrokerId{follower})->fenced);
  const PartitionState& q = partition("t", 0);
  ReplicaList grown = q.isr;
  grown.push_back(BrokerId{follower});
  AlterPartitionRequest expand{{"t", PartitionIndex{0}},  q.leader,
                               epochs_[q.leader.value()], q.leader_epoch,
                               q.partition_epoch,         grown};
  EXPECT_EQ(controller_.alter_partition(expand, now_).error, errc::invalid_request);
}

TEST_F(ControllerTest, ControlledShutdownMovesLeadershipThenWaitsForTheOthers) {
  bring_up(3);
  controller_.create_topic("t", 6, 3, now_);
  controller_.create_topic("solo", 1, 1, now_);
  commit();
  int32_t solo_owner = partition("solo", 0).leader.value();
  int32_t id = solo_owner;  // shut down the broker that alone holds "solo"

  auto first =
      controller_.heartbeat({BrokerId{id}, epochs_[id], controller_.durable_offset(), true}, now_);
  commit();
  EXPECT_TRUE(first.shutting_down);
  EXPECT_FALSE(first.shutdown_allowed) << "others have not applied the moves yet";
  EXPECT_TRUE(controller_.image().partitions_led_by(BrokerId{id}).empty());
  for (PartitionRef ref : controller_.image().partitions_with_replica(BrokerId{id})) {
    const PartitionState& p = controller_.image().partition(ref);
    if (controller_.image().topic_partition(ref).topic == "solo") {
      EXPECT_EQ(p.leader, kNoBroker);  // its only ISR member left: leaderless
      EXPECT_EQ(p.isr, (ReplicaList{BrokerId{id}}));
    } else {
      EXPECT_FALSE(p.isr.contains(BrokerId{id}));
      EXPECT_NE(p.leader, kNoBroker);
    }
  }
  // Leadership is not handed back to a broker on its way out.
  EXPECT_EQ(controller_.create_topic("later", 3, 3, now_).error, errc::invalid_replication_factor);

  heartbeat_all_but({id});  // the others catch up with the moves
  auto done = heartbeat(id, true);
  EXPECT_TRUE(done.shutdown_allowed);
  EXPECT_TRUE(controller_.image().broker(BrokerId{id})->fenced);
}

TEST_F(ControllerTest, DemoteMovesLeadershipAndPromoteBringsItBack) {
  bring_up(3);
  controller_.create_topic("t", 9, 3, now_);
  commit();
  controller_.take_election_events();
  ASSERT_EQ(controller_.image().partitions_led_by(BrokerId{2}).size(), 3u);

  EXPECT_EQ(controller_.demote(BrokerId{2}, "network-health", now_), errc::none);
  commit();
  EXPECT_TRUE(controller_.image().partitions_led_by(BrokerId{2}).empty());
  for (PartitionRef ref : controller_.image().partitions_with_replica(BrokerId{2})) {
    EXPECT_TRUE(controller_.image().partition(ref).isr.contains(BrokerId{2}))
        << "a demoted broker stays in the ISR";
  }
  EXPECT_EQ(controller_.take_election_events().size(), 3u);

  // Preferred elections and the auto rebalance leave it alone.
  auto results = controller_.elect_leaders(ElectionType::preferred, {}, now_);
  size_t not_available = std::count_if(results.begin(), results.end(), [](const auto& r) {
    return r.error == errc::preferred_leader_not_available;
  });
  EXPECT_EQ(not_available, 3u);
  run_for(301s);
  EXPECT_TRUE(controller_.image().partitions_led_by(BrokerId{2}).empty());

  EXPECT_EQ(controller_.promote(BrokerId{2}, now_), errc::none);
  commit();
  EXPECT_EQ(controller_.image().partitions_led_by(BrokerId{2}).size(), 3u);
  EXPECT_FALSE(controller_.image().broker(BrokerId{2})->demoted);
  EXPECT_EQ(controller_.demote(BrokerId{9}, "x", now_), errc::broker_id_not_registered);
}

TEST_F(ControllerTest, AllNonDemotedFencedThenTheDemotedBrokerLeads) {
  bring_up(3);
  controller_.create_topic("t", 3, 3, now_);
  controller_.demote(BrokerId{3}, "storage-health", now_);
  commit();
  run_for(1100ms, {1, 2});
  for (int32_t p = 0; p < 3; ++p)
    EXPECT_EQ(partition("t", p).leader, BrokerId{3}) << p;
}

TEST_F(ControllerTest, ADemotedLeaderHandsOverOnceANormalBrokerJoinsTheIsr) {
  bring_up(2);
  controller_.create_topic("t", 1, 2, now_);
  commit();
  const PartitionState p = partition("t", 0);
  BrokerId leader = p.leader;
  BrokerId follower = p.replicas[1];
  // The follower drops out of the ISR, then the leader is demoted: nobody else can lead.
  ASSERT_EQ(controller_
                .alter_partition({{"t", PartitionIndex{0}},
                                  leader,
                                  epochs_[leader.value()],
                                  p.leader_epoch,
                                  p.partition_epoch,
                                  ReplicaList{leader}},
                                 now_)
                .error,
            errc::none);
  controller_.demote(leader, "operator", now_);
  ASSERT_EQ(partition("t", 0).leader, leader) << "only ISR member demoted: still leads";
  // The follower catches up and the leader adds it back: leadership moves to it.
  const PartitionState q = partition("t", 0);
  ASSERT_EQ(controller_
                .alter_partition({{"t", PartitionIndex{0}},
                                  leader,
                                  epochs_[leader.value()],
                                  q.leader_epoch,
                                  q.partition_epoch,
                                  ReplicaList{leader, follower}},
                                 now_)
                .error,
            errc::none);
  EXPECT_EQ(partition("t", 0).leader, follower);
  EXPECT_EQ(partition("t", 0).isr, (ReplicaList{leader, follower}));
}

TEST_F(ControllerTest, UncleanElectionOnlyWhenEnabledOrAsked) {
  bring_up(3);
  controller_.create_topic("t", 1, 3, now_);
  commit();
  // Shrink the ISR to the leader, then lose the leader.
  const PartitionState p = partition("t", 0);
  int32_t leader = p.leader.value();
  ASSERT_EQ(controller_
                .alter_partition({{"t", PartitionIndex{0}},
                                  p.leader,
                                  epochs_[leader],
                                  p.leader_epoch,
                                  p.partition_epoch,
                                  ReplicaList{p.leader}},
                                 now_)
                .error,
            errc::none);
  run_for(1100ms, {leader});
  commit();
  EXPECT_EQ(partition("t", 0).leader, kNoBroker);

  EXPECT_EQ(controller_.set_config(std::string(kUncleanLeaderElectionKey), "maybe", now_),
            errc::invalid_config);
  EXPECT_EQ(controller_.set_config(std::string(kUncleanLeaderElectionKey), "true", now_),
            errc::none);
  commit();
  const PartitionState& after = partition("t", 0);
  EXPECT_NE(after.leader, kNoBroker);
  EXPECT_EQ(after.isr, (ReplicaList{after.leader}));
  EXPECT_EQ(after.unclean_elections, 1);
  EXPECT_EQ(after.leader_recovery, LeaderRecovery::recovering);
}

TEST_F(ControllerTest, AdminUncleanElectionIgnoresTheConfig) {
  bring_up(2);
  controller_.create_topic("t", 1, 2, now_);
  commit();
  const PartitionState p = partition("t", 0);
  int32_t leader = p.leader.value();
  controller_.alter_partition({{"t", PartitionIndex{0}},
                               p.leader,
                               epochs_[leader],
                               p.leader_epoch,
                               p.partition_epoch,
                               ReplicaList{p.leader}},
                              now_);
  run_for(1100ms, {leader});
  ASSERT_EQ(partition("t", 0).leader, kNoBroker);
  TopicPartition tp{"t", PartitionIndex{0}};
  auto r = controller_.elect_leaders(ElectionType::unclean, std::span(&tp, 1), now_);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].error, errc::none);
  EXPECT_NE(partition("t", 0).leader, kNoBroker);
  TopicPartition missing{"nope", PartitionIndex{0}};
  EXPECT_EQ(
      controller_.elect_leaders(ElectionType::preferred, std::span(&missing, 1), now_)[0].error,
      errc::unknown_topic_or_partition);
}

TEST_F(ControllerTest, ReassignmentCompletesWhenTheNewReplicaJoinsTheIsr) {
  bring_up(4);
  controller_.create_topic("t", 1, 3, now_);
  commit();
  const PartitionState p = partition("t", 0);
  ReplicaList target;
  BrokerId newcomer = kNoBroker;
  for (int32_t b = 1; b <= 4; ++b) {
    if (!p.replicas.contains(BrokerId{b}))
      newcomer = BrokerId{b};
  }
  // Replace the preferred leader with the newcomer.
  target.push_back(newcomer);
  target.push_back(p.replicas[1]);
  target.push_back(p.replicas[2]);
  ASSERT_EQ(controller_.reassign({"t", PartitionIndex{0}}, target, now_), errc::none);
  const PartitionState moving = partition("t", 0);
  EXPECT_EQ(moving.adding, (ReplicaList{newcomer}));
  EXPECT_EQ(moving.removing, (ReplicaList{p.replicas[0]}));
  EXPECT_EQ(moving.leader, p.leader);

  ReplicaList grown = moving.isr;
  grown.push_back(newcomer);
  int32_t leader = moving.leader.value();
  auto r = controller_.alter_partition({{"t", PartitionIndex{0}},
                                        moving.leader,
                                        epochs_[leader],
                                        moving.leader_epoch,
                                        moving.partition_epoch,
                                        grown},
                                       now_);
  ASSERT_EQ(r.error, errc::none);
  const PartitionState& done = partition("t", 0);
  EXPECT_EQ(done.replicas, target);
  EXPECT_FALSE(done.reassigning());
  EXPECT_FALSE(done.isr.contains(p.replicas[0]));
  EXPECT_NE(done.leader, p.replicas[0]) << "the removed leader was re-elected away";
  EXPECT_TRUE(done.isr.contains(done.leader));
}

TEST_F(ControllerTest, AutoRebalanceReturnsLeadershipToThePreferredReplica) {
  bring_up(3);
  controller_.create_topic("t", 6, 3, now_);
  commit();
  // Broker 1 restarts: fenced, then back, but out of every ISR and leading nothing.
  register_broker(1, 2);
  heartbeat(1);
  ASSERT_TRUE(controller_.image().partitions_led_by(BrokerId{1}).empty());
  // The leaders add it back to their ISRs.
  for (PartitionRef ref : controller_.image().partitions_with_replica(BrokerId{1})) {
    const PartitionState p = controller_.image().partition(ref);
    ReplicaList grown = p.isr;
    grown.push_back(BrokerId{1});
    ASSERT_EQ(
        controller_
            .alter_partition({controller_.image().topic_partition(ref), p.leader,
                              epochs_[p.leader.value()], p.leader_epoch, p.partition_epoch, grown},
                             now_)
            .error,
        errc::none);
  }
  controller_.tick(now_ + 500ms);  // within every session, and the rebalance is not due yet
  EXPECT_TRUE(controller_.image().partitions_led_by(BrokerId{1}).empty());
  run_for(301s);
  EXPECT_EQ(controller_.image().partitions_led_by(BrokerId{1}).size(), 2u);
  auto events = controller_.take_election_events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().reason, ElectionReason::auto_rebalance);
}

// Random faults and admin calls against the controller, checking after every step the invariants
// clients rely on. One seeded generator: a failure names the step and replays exactly.
TEST_F(ControllerTest, RandomOperationsKeepThePartitionInvariants) {
  std::mt19937_64 rng(20261124);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  constexpr int kBrokers = 5;
  bring_up(kBrokers);
  ASSERT_EQ(controller_.create_topic("a", 16, 3, now_).error, errc::none);
  ASSERT_EQ(controller_.create_topic("b", 8, 2, now_).error, errc::none);
  commit();

  std::set<int32_t> silent;    // crashed, paused or cut off: no heartbeats
  std::set<int32_t> shutting;  // asked for a controlled shutdown
  std::map<int32_t, uint64_t> incarnation;
  auto pass_time = [&](std::chrono::milliseconds duration) {
    for (ControllerTime end = now_ + duration; now_ < end;) {
      now_ += 100ms;
      for (int32_t b = 1; b <= kBrokers; ++b) {
        if (silent.contains(b))
          continue;
        auto r = controller_.heartbeat(
            {BrokerId{b}, epochs_[b], controller_.durable_offset(), shutting.contains(b)}, now_);
        commit();
        if (r.shutdown_allowed) {  // the process exits
          shutting.erase(b);
          silent.insert(b);
        }
      }
      controller_.tick(now_);
      commit();
    }
  };

  struct Seen {
    BrokerId leader;
    LeaderEpoch leader_epoch;
    PartitionEpoch partition_epoch;
  };
  std::map<std::pair<uint32_t, int32_t>, Seen> seen;
  auto check = [&](int step) {
    const MetadataImage& image = controller_.image();
    ClusterView view = ClusterView::from(image);
    ASSERT_EQ(image.offline_partition_count(), image.offline_partitions().size());
    for (uint32_t t = 0; t < image.topics().size(); ++t) {
      const auto& partitions = image.topics()[t].partitions;
      for (int32_t i = 0; i < static_cast<int32_t>(partitions.size()); ++i) {
        const PartitionState& p = partitions[static_cast<size_t>(i)];
        std::string where =
            fmt::format("step {} partition {}-{} leader {} isr {} replicas {}", step,
                        image.topics()[t].name, i, p.leader, p.isr, p.replicas);
        ASSERT_FALSE(p.isr.empty()) << where;
        for (uint32_t k = 0; k < p.isr.size(); ++k) {
          ASSERT_TRUE(p.replicas.contains(p.isr[k])) << where;
          ASSERT_EQ(std::count(p.isr.begin(), p.isr.end(), p.isr[k]), 1) << where;
        }
        bool normal_alive_in_isr = std::any_of(p.isr.begin(), p.isr.end(), [&](BrokerId b) {
          return view.alive(b) && !view.demoted(b);
        });
        if (p.leader == kNoBroker) {
          ASSERT_TRUE(
              std::none_of(p.isr.begin(), p.isr.end(), [&](BrokerId b) { return view.alive(b); }))
              << "offline although an ISR member could lead: " << where;
        } else {
          ASSERT_TRUE(p.isr.contains(p.leader)) << where;
          ASSERT_TRUE(view.alive(p.leader)) << "leader fenced or shutting down: " << where;
          ASSERT_TRUE(!view.demoted(p.leader) || !normal_alive_in_isr)
              << "demoted leader although a normal ISR member is alive: " << where;
        }
        auto [it, fresh] =
            seen.try_emplace({t, i}, Seen{p.leader, p.leader_epoch, p.partition_epoch});
        if (!fresh) {
          ASSERT_GE(p.partition_epoch, it->second.partition_epoch) << where;
          ASSERT_GE(p.leader_epoch, it->second.leader_epoch) << where;
          if (p.leader != it->second.leader) {
            ASSERT_GT(p.leader_epoch, it->second.leader_epoch) << where;
            ASSERT_GT(p.partition_epoch, it->second.partition_epoch) << where;
          }
          it->second = Seen{p.leader, p.leader_epoch, p.partition_epoch};
        }
      }
    }
  };

  // A leader shrinks or expands its ISR: mostly towards the replicas that are alive, as a real
  // leader would, sometimes arbitrarily (the controller must refuse what is not allowed).
  auto alter_random_isr = [&] {
    const auto& topics = controller_.image().topics();
    auto t = static_cast<uint32_t>(pick(static_cast<int>(topics.size())));
    int32_t i = pick(static_cast<int>(topics[t].partitions.size()));
    const PartitionState p = topics[t].partitions[static_cast<size_t>(i)];
    if (p.leader == kNoBroker || silent.contains(p.leader.value()))
      return;
    ClusterView view = ClusterView::from(controller_.image());
    bool realistic = pick(5) != 0;
    ReplicaList isr{p.leader};
    for (BrokerId r : p.replicas) {
      if (r != p.leader && (realistic ? view.alive(r) : pick(2) == 0))
        isr.push_back(r);
    }
    controller_.alter_partition({{topics[t].name, PartitionIndex{i}},
                                 p.leader,
                                 epochs_[p.leader.value()],
                                 p.leader_epoch,
                                 p.partition_epoch,
                                 isr},
                                now_);
  };

  for (int step = 0; step < 1500; ++step) {
    int32_t b = 1 + pick(kBrokers);
    switch (pick(10)) {
      case 0:
        silent.insert(b);
        break;
      case 1:  // back from a pause or a partition, same process
        if (!shutting.contains(b))
          silent.erase(b);
        break;
      case 2:  // restarted process
        silent.erase(b);
        shutting.erase(b);
        register_broker(b, ++incarnation[b] + 1);
        break;
      case 3:
        if (!silent.contains(b))
          shutting.insert(b);
        break;
      case 4:
        controller_.demote(BrokerId{b}, "chaos", now_);
        break;
      case 5:
        controller_.promote(BrokerId{b}, now_);
        break;
      case 6:
        for (int k = 0; k < 3; ++k)
          alter_random_isr();
        break;
      case 7: {
        TopicPartition tp{pick(2) == 0 ? "a" : "b", PartitionIndex{pick(8)}};
        controller_.elect_leaders(pick(3) == 0 ? ElectionType::unclean : ElectionType::preferred,
                                  std::span(&tp, 1), now_);
        break;
      }
      case 8:
        controller_.set_config(std::string(kUncleanLeaderElectionKey),
                               pick(4) == 0 ? "true" : "false", now_);
        break;
      case 9: {
        std::vector<int32_t> brokers{1, 2, 3, 4, 5};
        std::shuffle(brokers.begin(), brokers.end(), rng);
        ReplicaList target{brokers[0], brokers[1], brokers[2]};
        controller_.reassign({"a", PartitionIndex{pick(16)}}, target, now_);
        break;
      }
    }
    for (int k = 0; k < 4; ++k)
      alter_random_isr();
    commit();
    check(step);
    if (HasFatalFailure())
      return;
    pass_time(100ms * (1 + pick(15)));
    check(step);
    if (HasFatalFailure())
      return;
  }

  // The run must have exercised what it claims to, or passing proves little.
  std::map<ElectionReason, int> changes;
  for (const auto& e : persisted_) {
    if (const auto* c = std::get_if<PartitionChanged>(&e.record))
      ++changes[c->reason];
  }
  for (ElectionReason r :
       {ElectionReason::none, ElectionReason::offline, ElectionReason::controlled_shutdown,
        ElectionReason::unclean, ElectionReason::demotion, ElectionReason::promotion,
        ElectionReason::broker_returned, ElectionReason::reassignment}) {
    EXPECT_GT(changes[r], 10) << election_reason_name(r);
  }

  Controller replayed(test_config(), now_);
  ASSERT_FALSE(replayed.replay(persisted_, now_));
  EXPECT_TRUE(replayed.image() == controller_.image());
}

TEST_F(ControllerTest, BrokersOnlySeeDurableRecords) {
  register_broker(1);
  MetadataOffset durable = controller_.durable_offset();
  controller_.register_broker({BrokerId{2}, 1, {}, {}, {}, {}}, now_);  // not committed
  auto visible = controller_.records_since(MetadataOffset{0}, 100);
  ASSERT_FALSE(visible.empty());
  EXPECT_EQ(visible.back().offset, durable);
  commit();
  EXPECT_EQ(controller_.records_since(MetadataOffset{0}, 100).size(),
            static_cast<size_t>(controller_.durable_offset().value() + 1));
  EXPECT_EQ(controller_.records_since(MetadataOffset{1}, 1).size(), 1u);
  EXPECT_TRUE(controller_.records_since(controller_.durable_offset().next(), 10).empty());
}

TEST_F(ControllerTest, ReplayThroughTheStoreGivesAnIdenticalImage) {
  bring_up(4);
  controller_.create_topic("t", 12, 3, now_);
  controller_.demote(BrokerId{3}, "operator", now_);
  commit();
  run_for(1100ms, {2});
  controller_.set_config(std::string(kAutoLeaderRebalanceKey), "false", now_);
  commit();

  char tmpl[] = "/tmp/faultline-controller-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::filesystem::path dir = tmpl;
  {
    auto store = MetadataStore::open(dir / "metadata.log");
    ASSERT_FALSE(store.error);
    ASSERT_FALSE(store.store->append(persisted_));
  }
  auto reopened = MetadataStore::open(dir / "metadata.log");
  ASSERT_FALSE(reopened.error);
  Controller restarted(test_config(), now_);
  ASSERT_FALSE(restarted.replay(reopened.records, now_));
  std::filesystem::remove_all(dir);

  EXPECT_TRUE(restarted.image() == controller_.image());
  EXPECT_TRUE(restarted.image().broker(BrokerId{3})->demoted) << "priority survives a restart";
  EXPECT_FALSE(restarted.auto_rebalance_enabled());
  // The restarted controller gives every broker a fresh session instead of fencing at once.
  for (auto t = 100ms; t <= 1000ms; t += 100ms)
    restarted.tick(now_ + t);
  EXPECT_FALSE(restarted.image().broker(BrokerId{1})->fenced);
  restarted.tick(now_ + 1100ms);
  EXPECT_TRUE(restarted.image().broker(BrokerId{1})->fenced);
  // New records continue the log.
  auto fresh = restarted.take_new_records();
  ASSERT_FALSE(fresh.empty());
  EXPECT_EQ(fresh.front().offset, controller_.image().applied_offset().next());
}

}  // namespace
}  // namespace faultline::cluster
