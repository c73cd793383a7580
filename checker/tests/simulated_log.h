// A simulated correct Kafka log and a workload against it, producing random valid histories.
//
// Producers and consumers interleave: each process has at most one operation in flight, and an
// operation takes effect when it completes. Sends complete ok (appended at the log end), fail (not
// appended) or info (appended or not, at random: the client cannot know). Consumers poll from
// their position, sometimes seek, and sometimes crash (info), after which a fresh process takes
// over. At the end one final consumer per partition reads the whole log, then polls once more and
// finds nothing (it is at the end).
#pragma once

#include <faultline/checker/history.h>

#include <random>
#include <vector>

namespace faultline::checker::testing {

struct SimulationOptions {
  int partitions = 3;
  int producers = 4;
  int consumers = 3;
  std::size_t steps = 400;
  // Mutation: the log keeps one send twice (a broken idempotent producer).
  bool duplicate_one_value = false;
};

inline std::vector<Event> simulate_kafka(uint64_t seed, const SimulationOptions& opt) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int64_t>> log(opt.partitions);
  std::vector<Event> events;
  std::chrono::nanoseconds now{0};
  auto stamp = [&](Event e) {
    now += std::chrono::nanoseconds(1 + rng() % 1000);
    e.time = now;
    e.line = events.size() + 2;
    events.push_back(std::move(e));
  };
  struct Proc {
    int64_t id;
    bool consumer;
    int32_t partition;
    int64_t position = 0;
    std::optional<Event> pending;  // the invocation in flight
  };
  std::vector<Proc> procs;
  int64_t next_process = 0;
  for (int i = 0; i < opt.producers; ++i)
    procs.push_back({next_process++, false, 0, 0, std::nullopt});
  for (int i = 0; i < opt.consumers; ++i) {
    procs.push_back(
        {next_process++, true, static_cast<int32_t>(i % opt.partitions), 0, std::nullopt});
  }
  int64_t next_value = 1;
  bool duplicated = false;

  for (std::size_t step = 0; step < opt.steps; ++step) {
    Proc& p = procs[rng() % procs.size()];
    if (!p.pending) {
      Event e;
      e.type = EventType::invoke;
      e.process = ProcessId(p.id);
      if (p.consumer) {
        if (rng() % 10 == 0) {
          p.partition = static_cast<int32_t>(rng() % opt.partitions);
          e.f = Function::seek;
          e.offset = Offset(static_cast<int64_t>(rng() % (log[p.partition].size() + 1)));
        } else {
          e.f = Function::poll;
        }
      } else {
        e.f = Function::send;
        p.partition = static_cast<int32_t>(rng() % opt.partitions);
        e.value = next_value++;
      }
      e.partition = PartitionId(p.partition);
      p.pending = e;
      stamp(std::move(e));
      continue;
    }
    Event inv = *p.pending;
    p.pending.reset();
    Event c;
    c.process = inv.process;
    c.f = inv.f;
    c.partition = inv.partition;
    auto& plog = log[p.partition];
    const unsigned roll = static_cast<unsigned>(rng() % 10);
    if (inv.f == Function::send) {
      const int64_t value = std::get<int64_t>(inv.value);
      if (roll < 7) {
        c.type = EventType::ok;
        c.offset = Offset(static_cast<int64_t>(plog.size()));
        c.epoch = LeaderEpoch(1);
        plog.push_back(value);
        if (opt.duplicate_one_value && !duplicated) {
          plog.push_back(value);
          duplicated = true;
        }
      } else if (roll < 8) {
        c.type = EventType::fail;
        c.error = "NOT_LEADER_OR_FOLLOWER";
      } else {
        c.type = EventType::info;
        c.error = "timeout";
        if (rng() % 2)
          plog.push_back(value);
      }
    } else if (inv.f == Function::seek) {
      c.type = EventType::ok;
      c.offset = inv.offset;
      p.position = inv.offset->value();
    } else if (roll == 0) {
      // The consumer crashed mid-poll: a new process replaces it, starting from a seek.
      c.type = EventType::info;
      c.error = "crashed";
      stamp(std::move(c));
      p.id = next_process++;
      p.position = 0;
      Event s;
      s.type = EventType::invoke;
      s.process = ProcessId(p.id);
      s.f = Function::seek;
      s.partition = PartitionId(p.partition);
      s.offset = Offset(0);
      p.pending = s;
      stamp(std::move(s));
      continue;
    } else {
      c.type = EventType::ok;
      const auto n = static_cast<int64_t>(rng() % 5);
      for (int64_t k = 0; k < n && p.position < static_cast<int64_t>(plog.size()); ++k) {
        c.records.push_back(Record{Offset(p.position), plog[p.position]});
        ++p.position;
      }
    }
    stamp(std::move(c));
  }
  // Close what is still open as crashed clients would: leave the invocations open.
  // The final read-all: a fresh consumer per partition reads everything.
  for (int32_t part = 0; part < opt.partitions; ++part) {
    const int64_t id = next_process++;
    Event s;
    s.type = EventType::invoke;
    s.process = ProcessId(id);
    s.f = Function::seek;
    s.partition = PartitionId(part);
    s.offset = Offset(0);
    stamp(s);
    s.type = EventType::ok;
    stamp(s);
    Event r;
    r.type = EventType::invoke;
    r.process = ProcessId(id);
    r.f = Function::poll;
    r.partition = PartitionId(part);
    r.final_read = true;
    stamp(r);
    r.type = EventType::ok;
    for (std::size_t o = 0; o < log[part].size(); ++o) {
      r.records.push_back(Record{Offset(static_cast<int64_t>(o)), log[part][o]});
    }
    stamp(r);
    // One more poll that finds nothing: the reader is at the end of the log.
    r.type = EventType::invoke;
    r.records.clear();
    stamp(r);
    r.type = EventType::ok;
    stamp(std::move(r));
  }
  return events;
}

}  // namespace faultline::checker::testing
