// The built-in scenarios, as TOML: they go through the same parser as users' files, and
// `faultline scenarios --show NAME` prints exactly this text.
#include <fmt/format.h>

#include <map>

#include "faultline/chaos/runner/scenario.h"

namespace faultline::chaos {

namespace {

const std::map<std::string_view, std::string_view>& builtins() {
  static const std::map<std::string_view, std::string_view> b = {
      {"leader-kill", R"toml(name = "leader-kill"
description = "kill -9 the leader of a seeded partition, restart it 3 s later; every round"
expect = "valid"
[nemesis]
every_s = 6
jitter_s = 1.5
repeat = { fault = "kill", target = "leader(any)", hold_s = 3 }
)toml"},
      {"controlled-shutdown", R"toml(name = "controlled-shutdown"
description = "SIGTERM a partition's leader (controlled shutdown: leadership handed over first), restart it later"
expect = "valid"
[nemesis]
every_s = 6
jitter_s = 1.5
repeat = { fault = "stop", target = "leader(any)", hold_s = 3 }
)toml"},
      {"leader-pause", R"toml(name = "leader-pause"
description = "SIGSTOP a partition's leader for longer than the session timeout, then SIGCONT"
expect = "valid"
[nemesis]
every_s = 6
jitter_s = 1.5
repeat = { fault = "pause", target = "leader(any)", hold_s = 4 }
)toml"},
      {"controller-kill", R"toml(name = "controller-kill"
description = "kill -9 the controller, restart it later; brokers keep serving"
expect = "valid"
[nemesis]
every_s = 6
jitter_s = 1.5
repeat = { fault = "kill", target = "controller", hold_s = 3 }
)toml"},
      {"active-controller-kill", R"toml(name = "active-controller-kill"
description = "3 controllers: kill -9 the active controller, restart it 4 s later; the others elect a new one and the brokers follow it"
expect = "valid"
[cluster]
controllers = 3
metadata_snapshot_records = 50
[nemesis]
every_s = 8
jitter_s = 2
repeat = { fault = "kill", target = "active-controller", hold_s = 4 }
)toml"},
      {"controller-quorum-partition", R"toml(name = "controller-quorum-partition"
description = "3 controllers: cut the active controller off from the other two (not from the brokers); it must step down and a new one be elected"
expect = "valid"
[cluster]
controllers = 3
metadata_snapshot_records = 50
[nemesis]
every_s = 9
jitter_s = 2
repeat = { fault = "isolate-leader", target = "active-controller", peers = "all-controllers", hold_s = 5 }
)toml"},
      {"controller-pause", R"toml(name = "controller-pause"
description = "3 controllers: SIGSTOP the active controller for 3 election timeouts, then SIGCONT; it must come back as a follower"
expect = "valid"
[cluster]
controllers = 3
metadata_snapshot_records = 50
controller_election_timeout_ms = 1000
[nemesis]
every_s = 8
jitter_s = 2
repeat = { fault = "pause", target = "active-controller", hold_s = 3 }
)toml"},
      {"controller-and-leader-kill", R"toml(name = "controller-and-leader-kill"
description = "3 controllers: kill -9 the active controller and a partition's leader together; the new controller fences the broker and elects a new leader"
expect = "valid"
[cluster]
controllers = 3
metadata_snapshot_records = 50
[nemesis]
every_s = 9
jitter_s = 2
repeat.concurrent = [
  { fault = "kill", target = "active-controller", hold_s = 4 },
  { fault = "kill", target = "leader(any)", hold_s = 4 },
]
)toml"},
      {"isolate-leader", R"toml(name = "isolate-leader"
description = "cut a partition's leader off from its followers but not from the controller (Jepsen 2013)"
expect = "valid"
[cluster]
min_insync_replicas = 2
[nemesis]
every_s = 6
jitter_s = 1.5
repeat = { fault = "isolate-leader", target = "leader(any)", hold_s = 4 }
)toml"},
      {"double-failover", R"toml(name = "double-failover"
description = "kill -9 a partition's leader, then its next leader the moment it is elected; restart both"
expect = "valid"
[nemesis]
every_s = 7
jitter_s = 1.75
repeat.sequence = [
  { fault = "kill", target = "leader(any)", hold_s = 4 },
  { on = "leader-change(any)", within_s = 5, fault = "kill", target = "leader(any)", hold_s = 4 },
]
)toml"},
      {"rolling-restart", R"toml(name = "rolling-restart"
description = "graceful restart (controlled shutdown, start again) of every broker in turn"
expect = "valid"
[nemesis]
every_s = 12
repeat.sequence = [
  { fault = "restart", target = "broker(1)" },
  { after_s = 4, fault = "restart", target = "broker(2)" },
  { after_s = 4, fault = "restart", target = "broker(3)" },
]
)toml"},
      {"partition-halves", R"toml(name = "partition-halves"
description = "random halves, majorities ring or bridge over the controller and brokers"
expect = "valid"
[nemesis]
every_s = 7
jitter_s = 1.75
mix = [
  { fault = "halves", target = "all-nodes", hold_s = 4 },
  { fault = "majorities-ring", target = "all-nodes", hold_s = 4 },
  { fault = "bridge", target = "all-nodes", hold_s = 4 },
]
)toml"},
      {"cluster-netem", R"toml(name = "cluster-netem"
description = "delay 20 +- 10 ms and 2 % loss on every broker's cluster interface (NFQUEUE shaper where no netem)"
expect = "valid"
[nemesis]
every_s = 6
jitter_s = 1.5
repeat = { fault = "packets", target = "all-brokers", interface = "int", delay_us = 20000, jitter_us = 10000, loss_pct = 2, hold_s = 4 }
)toml"},
      {"disk-throttle-leader", R"toml(name = "disk-throttle-leader"
description = "throttle a partition leader's disk hard (256 KiB/s, 20 IOPS), then lift it"
expect = "valid"
[cluster]
disks = true
[nemesis]
every_s = 6
jitter_s = 1.5
repeat = { fault = "disk-throttle", target = "leader(any)", read_bytes_per_second = 262144, write_bytes_per_second = 262144, read_iops = 20, write_iops = 20, hold_s = 4 }
)toml"},
      {"neg-acks1-leader-kill", R"toml(name = "neg-acks1-leader-kill"
description = "negative control: acks=1, a leader killed while its followers lag 50 ms: loses acknowledged writes"
expect = "invalid"
[cluster]
min_insync_replicas = 1
[workload]
acks = "1"
producers = 2
[nemesis]
every_s = 5
jitter_s = 1.25
repeat.sequence = [
  { fault = "packets", target = "followers(any)", interface = "int", delay_us = 50000, hold_s = 3.5 },
  { after_s = 0.5, fault = "kill", target = "leader(any)", hold_s = 3 },
]
)toml"},
      {"preferred-rebalance", R"toml(name = "preferred-rebalance"
description = "kill a preferred leader, restart it; auto rebalance must return every partition to its preferred leader"
expect = "valid"
[cluster]
leader_imbalance_check_interval_s = 2
[workload]
partitions = 3
[nemesis]
every_s = 12
jitter_s = 3
repeat = { fault = "kill", target = "preferred-leader(any)", hold_s = 4 }
[checks]
leader_moved_within_s = 8
preferred_leaders_within_s = 15
)toml"},
      {"gray-failure-external", R"toml(name = "gray-failure-external"
description = "cut a leader's ext link only (clients lose it, the cluster does not); the probe must get it demoted, then promoted"
expect = "valid"
[cluster]
probe = true
probe_interval_ms = 200
probe_recovery_hold_ms = 3000
[workload]
partitions = 3
[nemesis]
every_s = 12
jitter_s = 3
repeat = { fault = "cut-link", target = "leader(any)", interface = "ext", hold_s = 5 }
[checks]
leader_moved_within_s = "probe"
preferred_leaders_within_s = 15
)toml"},
      {"slow-disk-demotion", R"toml(name = "slow-disk-demotion"
description = "throttle a leader's disk hard; the probe must get it demoted, then promoted when the disk is healed"
expect = "valid"
[cluster]
disks = true
probe = true
probe_interval_ms = 200
probe_recovery_hold_ms = 3000
[workload]
partitions = 3
[nemesis]
every_s = 12
jitter_s = 3
repeat = { fault = "disk-throttle", target = "leader(any)", read_bytes_per_second = 262144, write_bytes_per_second = 262144, read_iops = 20, write_iops = 20, hold_s = 7 }
[checks]
leader_moved_within_s = "probe"
preferred_leaders_within_s = 20
)toml"},
      {"neg-unclean-isolated-leader", R"toml(name = "neg-unclean-isolated-leader"
description = "negative control: unclean election on, min.insync.replicas=1, a leader acks alone while isolated, then dies: loses acknowledged writes"
expect = "invalid"
[cluster]
min_insync_replicas = 1
unclean_leader_election = true
replica_lag_time_max_ms = 1000
[nemesis]
every_s = 10
jitter_s = 2.5
repeat.sequence = [
  { fault = "isolate-leader", target = "leader(any)", hold_s = 9 },
  { after_s = 4.5, fault = "kill", target = "leader(any)", hold_s = 4.5 },
]
)toml"},
      {"lagging-follower-leader-kill", R"toml(name = "lagging-follower-leader-kill"
description = "delay a partition's followers 100 ms so the leader has an unreplicated tail, then kill -9 the leader: acks=all keeps every acknowledged write"
expect = "valid"
[nemesis]
every_s = 10
jitter_s = 2
repeat.sequence = [
  { fault = "packets", target = "followers(any)", interface = "int", delay_us = 100000, jitter_us = 20000, hold_s = 6 },
  { after_s = 2, fault = "kill", target = "leader(any)", hold_s = 3 },
]
)toml"},
      {"leader-and-follower-kill", R"toml(name = "leader-and-follower-kill"
description = "kill -9 a partition's leader and one of its followers together; the partition waits for a replica, nothing acknowledged is lost"
expect = "valid"
[nemesis]
every_s = 9
jitter_s = 2
repeat.concurrent = [
  { fault = "kill", target = "leader(any)", hold_s = 4 },
  { fault = "kill", target = "follower(any)", hold_s = 3 },
]
)toml"},
      {"isolate-leader-then-kill", R"toml(name = "isolate-leader-then-kill"
description = "cut a leader off from its followers until it shrinks its ISR, then kill it; unclean election off: valid"
expect = "valid"
[cluster]
replica_lag_time_max_ms = 1000
[nemesis]
every_s = 10
jitter_s = 2
repeat.sequence = [
  { fault = "isolate-leader", target = "leader(any)", hold_s = 6 },
  { after_s = 3, fault = "kill", target = "leader(any)", hold_s = 2.5 },
]
)toml"},
      {"kill-new-leader-on-election", R"toml(name = "kill-new-leader-on-election"
description = "controlled shutdown of a leader, then kill -9 the new leader the moment it is elected"
expect = "valid"
[nemesis]
every_s = 9
jitter_s = 2
repeat.sequence = [
  { fault = "stop", target = "leader(any)", hold_s = 5 },
  { on = "leader-change(any)", within_s = 4, fault = "kill", target = "leader(any)", hold_s = 2 },
]
)toml"},
      {"controller-minority-partition", R"toml(name = "controller-minority-partition"
description = "cut the controller off from a minority of the brokers (they are fenced, leadership leaves them), then heal"
expect = "valid"
[nemesis]
every_s = 9
jitter_s = 2
repeat = { fault = "isolate-leader", target = "controller", peers = "minority", hold_s = 5 }
)toml"},
      {"follower-cut-from-leader", R"toml(name = "follower-cut-from-leader"
description = "cut one follower of a partition off from its leader for 6 s: the leader drops it from the ISR within replica.lag.time.max and writes go on"
expect = "valid"
[cluster]
replica_lag_time_max_ms = 1000
[nemesis]
every_s = 10
jitter_s = 2
repeat = { fault = "isolate-leader", target = "follower(any)", peers = "leader(any)", hold_s = 6 }
)toml"},
      {"out-of-sync-follower-leader-kill", R"toml(name = "out-of-sync-follower-leader-kill"
description = "delay one follower's traffic to its leader 1.5 s so it falls out of the ISR, then kill -9 the leader: the new leader comes from the ISR"
expect = "valid"
[cluster]
replica_lag_time_max_ms = 1000
[nemesis]
every_s = 12
jitter_s = 2
repeat.sequence = [
  { fault = "packets", target = "follower(any)", peers = "leader(any)", interface = "int", delay_us = 1500000, hold_s = 8 },
  { after_s = 4, fault = "kill", target = "leader(any)", hold_s = 3 },
]
)toml"},
      {"kill-leader-on-follower-rejoin", R"toml(name = "kill-leader-on-follower-rejoin"
description = "delay one follower's traffic to its leader 1.5 s so it falls out of the ISR, lift the delay, and kill -9 the leader the moment a replica rejoins the ISR: it rejoined with every acknowledged write"
expect = "valid"
[cluster]
replica_lag_time_max_ms = 1000
[nemesis]
every_s = 10
jitter_s = 2
repeat.sequence = [
  { fault = "packets", target = "follower(any)", peers = "leader(any)", interface = "int", delay_us = 1500000, hold_s = 5 },
  { after_s = 2.5, on = "isr-expand(any)", within_s = 4, fault = "kill", target = "leader(any)", hold_s = 3 },
]
)toml"},
      {"leader-cut-from-controller-and-follower",
       R"toml(name = "leader-cut-from-controller-and-follower"
description = "cut a leader off from the controller and from one follower: it cannot shrink its ISR alone, it is fenced, and a replica with every acknowledged write leads"
expect = "valid"
[nemesis]
every_s = 10
jitter_s = 2
repeat.concurrent = [
  { fault = "isolate-leader", target = "leader(any)", peers = "follower(any)", hold_s = 6 },
  { fault = "isolate-leader", target = "leader(any)", peers = "controller", hold_s = 6 },
]
)toml"},
      {"leader-power-loss", R"toml(name = "leader-power-loss"
description = "power loss of a partition's leader (kill -9 and every un-fsynced write gone), brokers never fsync: replication covers one loss"
expect = "valid"
[cluster]
lazyfs = true
flush_policy = "never"
[nemesis]
every_s = 8
jitter_s = 2
repeat = { fault = "power-loss", target = "leader(any)", hold_s = 4 }
)toml"},
      {"neg-all-replicas-power-loss", R"toml(name = "neg-all-replicas-power-loss"
description = "negative control: every broker loses power at once while none fsyncs: acknowledged writes are lost, as in Kafka"
expect = "invalid"
[cluster]
lazyfs = true
flush_policy = "never"
[nemesis]
every_s = 8
jitter_s = 2
repeat = { fault = "power-loss", target = "all-brokers", hold_s = 4 }
)toml"},
      {"all-replicas-power-loss-fsync", R"toml(name = "all-replicas-power-loss-fsync"
description = "every broker loses power at once, but each fsyncs every batch before acknowledging: nothing acknowledged is lost"
expect = "valid"
[cluster]
lazyfs = true
flush_policy = "every-batch"
[nemesis]
every_s = 8
jitter_s = 2
repeat = { fault = "power-loss", target = "all-brokers", hold_s = 4 }
)toml"},
      {"leader-disk-errors", R"toml(name = "leader-disk-errors"
description = "EIO on every write of a partition leader's log: its log directory goes offline, leadership moves, nothing is lost"
expect = "valid"
[cluster]
lazyfs = true
[nemesis]
every_s = 8
jitter_s = 2
repeat = { fault = "disk-error", target = "leader(any)", errno = "EIO", op = "write", hold_s = 4 }
)toml"},
      {"torn-tail-restart", R"toml(name = "torn-tail-restart"
description = "a leader dies with its newest un-fsynced write torn; it must truncate the torn tail on restart and rejoin"
expect = "valid"
[cluster]
lazyfs = true
flush_policy = "never"
[nemesis]
every_s = 8
jitter_s = 2
repeat = { fault = "torn-write", target = "leader(any)", hold_s = 4 }
)toml"},
      {"nemesis-mix", R"toml(name = "nemesis-mix"
description = "a seeded draw every round from kills, pauses, graceful and hard restarts, partitions and packet faults"
expect = "valid"
[nemesis]
every_s = 5
jitter_s = 2
mix = [
  { fault = "kill", target = "leader(any)", hold_s = 3 },
  { fault = "pause", target = "leader(any)", hold_s = 4 },
  { fault = "stop", target = "leader(any)", hold_s = 3 },
  { fault = "restart", target = "random-broker" },
  { fault = "kill", target = "controller", hold_s = 2 },
  { fault = "isolate-leader", target = "leader(any)", hold_s = 4 },
  { fault = "halves", target = "all-nodes", hold_s = 4 },
  { fault = "packets", target = "all-brokers", interface = "int", delay_us = 30000, jitter_us = 10000, loss_pct = 3, hold_s = 4 },
  { sequence = [
      { fault = "packets", target = "followers(any)", interface = "int", delay_us = 80000, hold_s = 4 },
      { after_s = 1.5, fault = "kill", target = "leader(any)", hold_s = 2.5 } ] },
]
)toml"},
  };
  return b;
}

}  // namespace

std::vector<std::string> builtin_scenario_names() {
  std::vector<std::string> out;
  for (const auto& [name, text] : builtins())
    out.emplace_back(name);
  return out;
}

std::optional<std::string> builtin_scenario_toml(std::string_view name) {
  auto it = builtins().find(name);
  if (it == builtins().end())
    return std::nullopt;
  return std::string(it->second);
}

std::optional<Scenario> builtin_scenario(std::string_view name) {
  auto text = builtin_scenario_toml(name);
  if (!text)
    return std::nullopt;
  ScenarioError ignored;
  return parse_scenario(*text, fmt::format("<built-in {}>", name), ignored);
}

}  // namespace faultline::chaos
