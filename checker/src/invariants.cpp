// The invariant pass over the cluster's timeline (invariants.h). One sweep over the nemesis events
// in time order keeps the latest state of every partition and of the brokers; conditions that may
// hold briefly (a demoted or fenced leader, a leader at a graceful exit) are tracked as streaks
// that become violations only when they outlast their grace period.
#include <faultline/checker/invariants.h>
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <unordered_map>

namespace faultline::checker {
namespace {

using std::chrono::nanoseconds;

constexpr std::array<std::string_view, kInvariantKinds> kKindNames{
    "leader-not-in-isr", "epoch-regression",  "split-brain-ack", "zombie-ack",
    "demoted-leader",    "unhanded-shutdown", "not-recovered",   "fenced-leader"};

constexpr BrokerId kNoLeader{-1};

bool contains(const std::vector<BrokerId>& v, BrokerId b) {
  return std::find(v.begin(), v.end(), b) != v.end();
}

bool same_set(std::vector<BrokerId> a, std::vector<BrokerId> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  b.erase(std::unique(b.begin(), b.end()), b.end());
  return a == b;
}

std::string seconds(nanoseconds t) {
  return fmt::format("{:.3f} s", static_cast<double>(t.count()) / 1e9);
}

std::string brokers_text(const std::vector<BrokerId>& v) {
  return fmt::format("[{}]", fmt::join(v, ","));
}

BrokerId leader_of(const NemesisEvent& n) {
  return n.leader.value_or(kNoLeader);
}
int32_t epoch_of(const NemesisEvent& n) {
  return n.epoch ? n.epoch->value() : std::numeric_limits<int32_t>::min();
}

// The brokers as the latest cluster-state showed them. Like the controller (its BrokerStatus),
// a broker in controlled shutdown cannot take leadership.
struct Brokers {
  const NemesisEvent* state = nullptr;
  bool fenced(BrokerId b) const { return state != nullptr && contains(state->fenced, b); }
  bool demoted(BrokerId b) const { return state != nullptr && contains(state->demoted, b); }
  bool could_lead(BrokerId b) const {
    return state != nullptr && contains(state->alive, b) && !contains(state->fenced, b) &&
           !contains(state->shutting_down, b) && !contains(state->demoted, b);
  }
};

// A bad condition on one partition since `since`, under one leader.
struct Streak {
  nanoseconds since{0};
  std::size_t line = 0;        // the event that made it bad
  std::size_t state_line = 0;  // the partition-state it applied to
  BrokerId leader;
  LeaderEpoch epoch;
  std::optional<BrokerId> other;  // demoted_leader: the ISR member that could have led
};

// A graceful exit of the partition's leader, waiting for the leadership to move.
struct ExitWatch {
  BrokerId broker;
  nanoseconds time{0};
  std::size_t line = 0;
  std::size_t state_line = 0;
  LeaderEpoch epoch;
};

struct PartitionTrack {
  std::vector<const NemesisEvent*> states;  // by time
  std::optional<Streak> demoted;
  std::optional<Streak> fenced;
  std::optional<ExitWatch> exit_watch;
  const NemesisEvent* current() const { return states.empty() ? nullptr : states.back(); }
};

// The highest epoch the timeline showed for a partition, and where.
struct EpochMark {
  int32_t epoch = std::numeric_limits<int32_t>::min();
  std::size_t line = 0;
  nanoseconds time{0};
  BrokerId leader{-1};
  void raise(const NemesisEvent& n) {
    if (epoch_of(n) > epoch)
      *this = EpochMark{epoch_of(n), n.line, n.time, leader_of(n)};
  }
};

class InvariantChecker {
 public:
  InvariantChecker(const History& h, const InvariantOptions& o) : h_(h), o_(o) {}

  InvariantResult run() {
    end_time_ = history_end();
    sweep_timeline();
    check_split_brain();
    check_zombie_acks();
    check_recovery();
    note_unchecked();
    for (auto& list : by_kind_) {
      for (auto& v : list)
        r_.violations.push_back(std::move(v));
    }
    r_.valid = std::all_of(r_.counts.begin(), r_.counts.end(), [](auto c) { return c == 0; });
    return std::move(r_);
  }

 private:
  void add(InvariantViolation v) {
    const auto k = static_cast<std::size_t>(v.kind);
    ++r_.counts[k];
    if (by_kind_[k].size() < o_.max_violations_per_kind)
      by_kind_[k].push_back(std::move(v));
  }

  nanoseconds history_end() const {
    nanoseconds end{0};
    for (const auto& op : h_.ops)
      end = std::max(end, op.complete_time.value_or(op.invoke_time));
    if (!h_.nemesis.empty())
      end = std::max(end, h_.nemesis.back().time);
    return end;
  }

  // ---- the timeline sweep: leader_not_in_isr, epoch_regression, demoted, fenced, shutdown ----

  void sweep_timeline() {
    for (const NemesisEvent& n : h_.nemesis) {
      switch (n.kind) {
        case NemesisKind::partition_state:
          if (n.partition)
            on_partition_state(n);
          break;
        case NemesisKind::cluster_state:
          ++r_.cluster_states;
          brokers_.state = &n;
          for (auto& [p, t] : tracks_)
            evaluate_streaks(p, t, n.time, n.line);
          break;
        case NemesisKind::process_exit:
          ++r_.process_exits;
          if (n.graceful && n.leader)
            on_graceful_exit(n);
          break;
        default:
          break;
      }
    }
    for (auto& [p, t] : tracks_)
      finish_partition(p, t);
  }

  void on_partition_state(const NemesisEvent& n) {
    ++r_.partition_states;
    const int32_t p = n.partition->value();
    PartitionTrack& t = tracks_[p];
    check_leader_in_isr(n);
    if (const NemesisEvent* prev = t.current())
      check_epoch(*prev, n);
    t.states.push_back(&n);
    resolve_exit_watch(p, t, n);
    evaluate_streaks(p, t, n.time, n.line);
  }

  void check_leader_in_isr(const NemesisEvent& n) {
    const BrokerId leader = leader_of(n);
    if (leader == kNoLeader || n.unclean || contains(n.isr, leader))
      return;
    add({InvariantKind::leader_not_in_isr,
         n.partition,
         n.epoch,
         {leader},
         {n.line},
         n.time,
         std::nullopt,
         fmt::format("partition {} epoch {}: leader {} is not in its ISR {} (not an unclean "
                     "election)",
                     *n.partition, epoch_of(n), leader, brokers_text(n.isr))});
  }

  // The controller bumps the leader epoch with every leader change (to -1 included) and never
  // lowers it; ISR-only changes keep it.
  void check_epoch(const NemesisEvent& prev, const NemesisEvent& n) {
    const int32_t before = epoch_of(prev), after = epoch_of(n);
    const BrokerId old_leader = leader_of(prev), new_leader = leader_of(n);
    std::string why;
    if (after < before) {
      why =
          fmt::format("partition {}: leader epoch went from {} to {}", *n.partition, before, after);
    } else if (new_leader != kNoLeader && new_leader != old_leader && after == before) {
      why =
          fmt::format("partition {}: leader changed from {} to {} without an epoch bump (epoch {})",
                      *n.partition, old_leader, new_leader, after);
    } else {
      return;
    }
    add({InvariantKind::epoch_regression,
         n.partition,
         n.epoch,
         {old_leader, new_leader},
         {prev.line, n.line},
         n.time,
         std::nullopt,
         std::move(why)});
  }

  void on_graceful_exit(const NemesisEvent& n) {
    for (auto& [p, t] : tracks_) {
      const NemesisEvent* s = t.current();
      if (s == nullptr || leader_of(*s) != *n.leader || t.exit_watch)
        continue;
      t.exit_watch =
          ExitWatch{*n.leader, n.time, n.line, s->line, s->epoch.value_or(LeaderEpoch{})};
    }
  }

  // Leadership moved off the exited broker (to another or to none): late if after the grace.
  void resolve_exit_watch(int32_t p, PartitionTrack& t, const NemesisEvent& n) {
    if (!t.exit_watch || leader_of(n) == t.exit_watch->broker)
      return;
    close_exit_watch(p, *t.exit_watch, n.time, n.line);
    t.exit_watch.reset();
  }

  void close_exit_watch(int32_t p, const ExitWatch& w, nanoseconds now,
                        std::optional<std::size_t> end_line) {
    if (now - w.time <= o_.shutdown_grace)
      return;
    std::vector<std::size_t> lines{w.state_line, w.line};
    if (end_line)
      lines.push_back(*end_line);
    add({InvariantKind::unhanded_shutdown,
         PartitionId(p),
         w.epoch,
         {w.broker},
         std::move(lines),
         w.time,
         end_line ? std::optional(now) : std::nullopt,
         fmt::format(
             "broker {} exited gracefully at {} still leading partition {} (epoch {}); "
             "leadership moved {} (grace {})",
             w.broker, seconds(w.time), p, w.epoch,
             end_line ? fmt::format("only {} later", seconds(now - w.time))
                      : fmt::format("never, {} to the end of the history", seconds(now - w.time)),
             seconds(o_.shutdown_grace))});
  }

  // demoted_leader: the controller moves leadership off a demoted broker whenever another ISR
  // member is alive and not demoted (its elect_for_demotion rule), so that lasting is a bug.
  std::optional<BrokerId> demoted_condition(const NemesisEvent& s) const {
    const BrokerId leader = leader_of(s);
    if (leader == kNoLeader || !brokers_.demoted(leader))
      return std::nullopt;
    for (BrokerId m : s.isr) {
      if (m != leader && brokers_.could_lead(m))
        return m;
    }
    return std::nullopt;
  }

  // fenced_leader: when it fences a broker the controller re-elects among the alive ISR members
  // or, if none is left, sets the leader to -1 and keeps the fenced broker in the ISR (it has
  // everything acknowledged). A fenced broker is therefore never a legitimate leader, whatever
  // the rest of the ISR looks like; the grace only covers the two records being seen apart.
  bool fenced_condition(const NemesisEvent& s) const {
    const BrokerId leader = leader_of(s);
    return leader != kNoLeader && brokers_.fenced(leader);
  }

  void evaluate_streaks(int32_t p, PartitionTrack& t, nanoseconds now, std::size_t line) {
    const NemesisEvent* s = t.current();
    if (s == nullptr)
      return;
    const std::optional<BrokerId> other = demoted_condition(*s);
    update_streak(p, t.demoted, InvariantKind::demoted_leader, other.has_value(), *s, now, line,
                  other);
    update_streak(p, t.fenced, InvariantKind::fenced_leader, fenced_condition(*s), *s, now, line,
                  std::nullopt);
  }

  void update_streak(int32_t p, std::optional<Streak>& streak, InvariantKind kind, bool bad,
                     const NemesisEvent& s, nanoseconds now, std::size_t line,
                     std::optional<BrokerId> other) {
    if (streak && (!bad || streak->leader != leader_of(s))) {
      close_streak(p, *streak, kind, now, line);
      streak.reset();
    }
    if (bad && !streak)
      streak = Streak{now, line, s.line, leader_of(s), s.epoch.value_or(LeaderEpoch{}), other};
  }

  void close_streak(int32_t p, const Streak& s, InvariantKind kind, nanoseconds now,
                    std::optional<std::size_t> end_line) {
    const nanoseconds grace =
        kind == InvariantKind::demoted_leader ? o_.priority_grace : o_.fence_grace;
    if (now - s.since <= grace)
      return;
    std::vector<std::size_t> lines{s.state_line};
    if (s.line != s.state_line)
      lines.push_back(s.line);
    if (end_line)
      lines.push_back(*end_line);
    const std::string lasted =
        end_line ? fmt::format("for {}", seconds(now - s.since))
                 : fmt::format("for {}, to the end of the history", seconds(now - s.since));
    std::string why =
        kind == InvariantKind::demoted_leader
            ? fmt::format(
                  "demoted broker {} led partition {} (epoch {}) from {} {} while ISR "
                  "member {} was alive and not demoted (grace {})",
                  s.leader, p, s.epoch, seconds(s.since), lasted, s.other.value_or(kNoLeader),
                  seconds(grace))
            : fmt::format("fenced broker {} led partition {} (epoch {}) from {} {} (grace {})",
                          s.leader, p, s.epoch, seconds(s.since), lasted, seconds(grace));
    add({kind,
         PartitionId(p),
         s.epoch,
         {s.leader},
         std::move(lines),
         s.since,
         end_line ? std::optional(now) : std::nullopt,
         std::move(why)});
  }

  void finish_partition(int32_t p, PartitionTrack& t) {
    if (t.demoted)
      close_streak(p, *t.demoted, InvariantKind::demoted_leader, end_time_, std::nullopt);
    if (t.fenced)
      close_streak(p, *t.fenced, InvariantKind::fenced_leader, end_time_, std::nullopt);
    if (!t.exit_watch)
      return;
    if (end_time_ - t.exit_watch->time <= o_.shutdown_grace) {
      r_.unchecked.push_back(fmt::format(
          "unhanded-shutdown: the history ends {} after broker {} exited, still leading "
          "partition {}: too soon to tell",
          seconds(end_time_ - t.exit_watch->time), t.exit_watch->broker, p));
    }
    close_exit_watch(p, *t.exit_watch, end_time_, std::nullopt);
  }

  // ---- acknowledgements: split_brain_ack, zombie_ack ----

  static bool acked_send_with_epoch(const Operation& op) {
    return op.f == Function::send && op.outcome == Outcome::ok && op.partition && op.epoch;
  }

  void check_split_brain() {
    struct FirstAck {
      BrokerId broker;
      std::size_t op;
      bool reported = false;
    };
    std::unordered_map<uint64_t, FirstAck> first;  // (partition, epoch) -> first acknowledger
    for (const Operation& op : h_.ops) {
      if (!acked_send_with_epoch(op) || !op.leader)
        continue;
      ++r_.acks_with_leader;
      const uint64_t key =
          (static_cast<uint64_t>(static_cast<uint32_t>(op.partition->value())) << 32) |
          static_cast<uint32_t>(op.epoch->value());
      auto [it, inserted] = first.try_emplace(key, FirstAck{*op.leader, op.index});
      if (inserted || it->second.broker == *op.leader || it->second.reported)
        continue;
      it->second.reported = true;
      const Operation& a = h_.ops[it->second.op];
      add({InvariantKind::split_brain_ack,
           op.partition,
           op.epoch,
           {*a.leader, *op.leader},
           {a.complete_line, op.complete_line},
           a.complete_time.value_or(a.invoke_time),
           op.complete_time,
           fmt::format("partition {} epoch {}: broker {} acknowledged value {} at {} and broker {} "
                       "acknowledged value {} at {}: two leaders in one epoch",
                       *op.partition, *op.epoch, *a.leader, format_value(a.value),
                       seconds(a.complete_time.value_or(a.invoke_time)), *op.leader,
                       format_value(op.value),
                       seconds(op.complete_time.value_or(op.invoke_time)))});
    }
  }

  // Does state `n` end the leadership of broker `acker` at any lower epoch? Not if the acker
  // still leads, nor if the partition is leaderless with nobody but the acker in its ISR: the
  // controller then waits for the acker itself to come back, so its late ack loses nothing.
  static bool ends_leadership_of(const NemesisEvent& n, std::optional<BrokerId> acker) {
    if (!acker)
      return true;
    const BrokerId leader = leader_of(n);
    if (leader == *acker)
      return false;
    if (leader == kNoLeader)
      return !std::all_of(n.isr.begin(), n.isr.end(), [&](BrokerId b) { return b == *acker; });
    return true;
  }

  bool zombie_checked() const { return h_.acks == Acks::all || o_.assume_acks_all; }

  void check_zombie_acks() {
    if (!zombie_checked())
      return;
    // Per partition, per acknowledging broker (index into `ackers`, the last slot for acks that
    // do not name their broker): the highest epoch shown so far that ended its leadership.
    std::vector<BrokerId> ackers;
    for (const Operation& op : h_.ops) {
      if (acked_send_with_epoch(op) && op.leader)
        ackers.push_back(*op.leader);
    }
    std::sort(ackers.begin(), ackers.end());
    ackers.erase(std::unique(ackers.begin(), ackers.end()), ackers.end());
    std::unordered_map<int32_t, std::vector<EpochMark>> ended;
    std::size_t next = 0;  // nemesis events are by time, ops by invocation: one merge
    for (const Operation& op : h_.ops) {
      for (; next < h_.nemesis.size() && h_.nemesis[next].time < op.invoke_time; ++next)
        raise_ended_epochs(h_.nemesis[next], ackers, ended);
      if (!acked_send_with_epoch(op))
        continue;
      auto it = ended.find(op.partition->value());
      if (it == ended.end())
        continue;
      const std::size_t slot =
          op.leader
              ? static_cast<std::size_t>(
                    std::lower_bound(ackers.begin(), ackers.end(), *op.leader) - ackers.begin())
              : ackers.size();
      const EpochMark& mark = it->second[slot];
      if (mark.epoch > op.epoch->value())
        report_zombie(op, mark);
    }
  }

  void raise_ended_epochs(const NemesisEvent& n, const std::vector<BrokerId>& ackers,
                          std::unordered_map<int32_t, std::vector<EpochMark>>& ended) {
    if (n.kind != NemesisKind::partition_state || !n.partition)
      return;
    auto& marks = ended[n.partition->value()];
    marks.resize(ackers.size() + 1);
    for (std::size_t i = 0; i < ackers.size(); ++i) {
      if (ends_leadership_of(n, ackers[i]))
        marks[i].raise(n);
    }
    marks.back().raise(n);
  }

  void report_zombie(const Operation& op, const EpochMark& mark) {
    const std::string by = op.leader ? fmt::format("broker {}", *op.leader) : "an unnamed broker";
    add({InvariantKind::zombie_ack,
         op.partition,
         op.epoch,
         op.leader ? std::vector<BrokerId>{*op.leader} : std::vector<BrokerId>{},
         {mark.line, op.invoke_line, op.complete_line},
         op.invoke_time,
         op.complete_time,
         fmt::format("value {} sent at {} was acknowledged (acks=all) by {} at epoch {}, but "
                     "partition {} was already at epoch {} (leader {}) since {}",
                     format_value(op.value), seconds(op.invoke_time), by, *op.epoch, *op.partition,
                     mark.epoch, mark.leader, seconds(mark.time))});
  }

  // ---- recovery after the last heal ----

  static bool healthy(const NemesisEvent& s) {
    return leader_of(s) != kNoLeader && same_set(s.isr, s.replicas);
  }

  void check_recovery() {
    if (!o_.recovery_from)
      return;
    const nanoseconds from = *o_.recovery_from, deadline = from + o_.recovery_bound;
    for (const auto& [p, t] : tracks_) {
      // The state in force at `from` counts, then every state up to the deadline.
      auto first_after =
          std::upper_bound(t.states.begin(), t.states.end(), from,
                           [](nanoseconds time, const NemesisEvent* s) { return time < s->time; });
      auto begin = first_after == t.states.begin() ? first_after : std::prev(first_after);
      auto end =
          std::upper_bound(t.states.begin(), t.states.end(), deadline,
                           [](nanoseconds time, const NemesisEvent* s) { return time < s->time; });
      if (std::any_of(begin, end, [](const NemesisEvent* s) { return healthy(*s); }))
        continue;
      if (end_time_ < deadline) {
        r_.unchecked.push_back(fmt::format(
            "not-recovered: partition {} had not recovered when the history ended, {} after "
            "{} (bound {})",
            p, seconds(end_time_ - from), seconds(from), seconds(o_.recovery_bound)));
        continue;
      }
      report_not_recovered(p, end == t.states.begin() ? nullptr : *std::prev(end), from);
    }
  }

  void report_not_recovered(int32_t p, const NemesisEvent* last, nanoseconds from) {
    const std::string at =
        last == nullptr ? std::string("no partition-state before the deadline")
                        : fmt::format("last at epoch {}, leader {}, isr {}, replicas {} (line {})",
                                      epoch_of(*last), leader_of(*last), brokers_text(last->isr),
                                      brokers_text(last->replicas), last->line);
    add({InvariantKind::not_recovered, PartitionId(p), last ? last->epoch : std::nullopt,
         last ? std::vector<BrokerId>{leader_of(*last)} : std::vector<BrokerId>{},
         last ? std::vector<std::size_t>{last->line} : std::vector<std::size_t>{}, from,
         std::nullopt,
         fmt::format("partition {} got no leader with a full ISR within {} of {}: {}", p,
                     seconds(o_.recovery_bound), seconds(from), at)});
  }

  void note_unchecked() {
    if (r_.partition_states == 0) {
      r_.unchecked.push_back(
          "no partition-state events: leader-not-in-isr, epoch-regression, demoted-leader, "
          "fenced-leader, unhanded-shutdown, not-recovered and zombie-ack were not checked");
    } else if (r_.cluster_states == 0) {
      r_.unchecked.push_back(
          "no cluster-state events: demoted-leader and fenced-leader were not checked");
    }
    // A client that reports no leader epoch with its acks (librdkafka 2.0) leaves both
    // acknowledgement checks without their key.
    const bool any_epoch = std::any_of(h_.ops.begin(), h_.ops.end(), acked_send_with_epoch);
    if (r_.acks_with_leader == 0)
      r_.unchecked.push_back(
          "no send ack names both its broker and its leader epoch: split-brain-ack was not "
          "checked");
    if (zombie_checked() && !any_epoch)
      r_.unchecked.push_back("no send ack names its leader epoch: zombie-ack was not checked");
    if (!zombie_checked()) {
      r_.unchecked.push_back(
          fmt::format("zombie-ack not checked: it needs acks=all and the header says acks={}",
                      to_string(h_.acks)));
    }
  }

  const History& h_;
  const InvariantOptions& o_;
  InvariantResult r_;
  std::array<std::vector<InvariantViolation>, kInvariantKinds> by_kind_;
  std::map<int32_t, PartitionTrack> tracks_;  // ordered: deterministic reports
  Brokers brokers_;
  nanoseconds end_time_{0};
};

}  // namespace

std::string_view to_string(InvariantKind k) noexcept {
  return kKindNames[static_cast<std::size_t>(k)];
}

InvariantResult check_invariants(const History& history, const InvariantOptions& options) {
  return InvariantChecker(history, options).run();
}

nlohmann::json InvariantResult::to_json() const {
  using nlohmann::json;
  json j;
  j["valid"] = valid;
  j["partition_states"] = partition_states;
  j["cluster_states"] = cluster_states;
  j["process_exits"] = process_exits;
  j["acks_with_leader"] = acks_with_leader;
  json counts_json = json::object();
  for (std::size_t k = 0; k < kInvariantKinds; ++k) {
    if (counts[k])
      counts_json[std::string(kKindNames[k])] = counts[k];
  }
  j["violations"] = std::move(counts_json);
  json details = json::array();
  for (const auto& v : violations) {
    json d;
    d["kind"] = std::string(to_string(v.kind));
    if (v.partition)
      d["partition"] = v.partition->value();
    if (v.epoch)
      d["epoch"] = v.epoch->value();
    json brokers = json::array();
    for (BrokerId b : v.brokers)
      brokers.push_back(b.value());
    d["brokers"] = std::move(brokers);
    d["lines"] = v.lines;
    d["from_ns"] = v.from.count();
    d["until_ns"] = v.until ? json(v.until->count()) : json(nullptr);
    d["explanation"] = v.explanation;
    details.push_back(std::move(d));
  }
  j["details"] = std::move(details);
  j["unchecked"] = unchecked;
  return j;
}

std::string InvariantResult::summary() const {
  std::string out =
      fmt::format("invariants {}: {} partition states, {} cluster states, {} process exits\n",
                  valid ? "hold" : "violated", partition_states, cluster_states, process_exits);
  for (std::size_t k = 0; k < kInvariantKinds; ++k) {
    if (counts[k])
      out += fmt::format("  {}: {}\n", kKindNames[k], counts[k]);
  }
  for (std::size_t i = 0; i < violations.size() && i < 10; ++i) {
    const auto& v = violations[i];
    out += fmt::format("  - {} (lines {}): {}\n", to_string(v.kind), fmt::join(v.lines, ","),
                       v.explanation);
  }
  for (const auto& u : unchecked)
    out += fmt::format("  unchecked: {}\n", u);
  return out;
}

}  // namespace faultline::checker
