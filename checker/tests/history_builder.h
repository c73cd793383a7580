// Test helpers: build histories in memory, event by event, with a clock that ticks 1 µs per event
// (plus whatever advance() adds, for timelines measured in milliseconds).
#pragma once

#include <faultline/checker/history.h>

#include <cassert>
#include <string>
#include <utility>
#include <vector>

namespace faultline::checker::testing {

class HistoryBuilder {
 public:
  // Starts an operation; returns its event index for complete().
  std::size_t invoke(int64_t process, Function f, std::optional<int32_t> partition = std::nullopt,
                     Value value = {}) {
    Event e;
    e.type = EventType::invoke;
    e.process = ProcessId(process);
    e.f = f;
    if (partition)
      e.partition = PartitionId(*partition);
    e.value = std::move(value);
    return push(std::move(e));
  }
  Event& complete(std::size_t invoke_event, EventType type) {
    Event e;
    e.type = type;
    e.process = events_[invoke_event].process;
    e.f = events_[invoke_event].f;
    e.partition = events_[invoke_event].partition;
    return events_[push(std::move(e))];
  }

  void send(int64_t process, int32_t partition, int64_t value, EventType type,
            std::optional<int64_t> offset = std::nullopt) {
    auto i = invoke(process, Function::send, partition, value);
    auto& c = complete(i, type);
    if (offset)
      c.offset = Offset(*offset);
  }
  void poll(int64_t process, int32_t partition, std::vector<std::pair<int64_t, int64_t>> records,
            bool final_read = false) {
    auto i = invoke(process, Function::poll, partition);
    complete_poll(i, std::move(records), final_read);
  }
  void complete_poll(std::size_t invoke_event, std::vector<std::pair<int64_t, int64_t>> records,
                     bool final_read = false) {
    auto& c = complete(invoke_event, EventType::ok);
    for (auto [o, v] : records)
      c.records.push_back(Record{Offset(o), v});
    c.final_read = final_read;
  }
  void seek(int64_t process, int32_t partition, int64_t offset) {
    auto i = invoke(process, Function::seek, partition);
    events_[i].offset = Offset(offset);
    complete(i, EventType::ok).offset = Offset(offset);
  }
  void nemesis(NemesisKind kind, std::optional<int32_t> partition = std::nullopt,
               std::optional<int32_t> epoch = std::nullopt,
               std::optional<int32_t> leader = std::nullopt) {
    Event e;
    e.type = EventType::nemesis;
    e.nemesis = kind;
    if (partition)
      e.partition = PartitionId(*partition);
    if (epoch)
      e.epoch = LeaderEpoch(*epoch);
    if (leader)
      e.leader = BrokerId(*leader);
    push(std::move(e));
  }

  // A send acknowledged by `leader` at `epoch`, as the broker's produce response says.
  void send_acked(int64_t process, int32_t partition, int64_t value, int64_t offset, int32_t epoch,
                  int32_t leader) {
    auto i = invoke(process, Function::send, partition, value);
    auto& c = complete(i, EventType::ok);
    c.offset = Offset(offset);
    c.epoch = LeaderEpoch(epoch);
    c.leader = BrokerId(leader);
  }
  static std::vector<BrokerId> brokers(std::initializer_list<int32_t> ids) {
    std::vector<BrokerId> out;
    for (int32_t id : ids)
      out.emplace_back(id);
    return out;
  }
  void partition_state(int32_t partition, int32_t epoch, int32_t leader,
                       std::initializer_list<int32_t> isr, std::initializer_list<int32_t> replicas,
                       bool unclean = false) {
    Event e;
    e.type = EventType::nemesis;
    e.nemesis = NemesisKind::partition_state;
    e.partition = PartitionId(partition);
    e.epoch = LeaderEpoch(epoch);
    e.leader = BrokerId(leader);
    e.isr = brokers(isr);
    e.replicas = brokers(replicas);
    e.unclean = unclean;
    push(std::move(e));
  }
  void cluster_state(std::initializer_list<int32_t> alive,
                     std::initializer_list<int32_t> fenced = {},
                     std::initializer_list<int32_t> demoted = {},
                     std::initializer_list<int32_t> shutting_down = {}) {
    Event e;
    e.type = EventType::nemesis;
    e.nemesis = NemesisKind::cluster_state;
    e.alive = brokers(alive);
    e.fenced = brokers(fenced);
    e.demoted = brokers(demoted);
    e.shutting_down = brokers(shutting_down);
    push(std::move(e));
  }
  void process_exit(int32_t broker, bool graceful) {
    Event e;
    e.type = EventType::nemesis;
    e.nemesis = NemesisKind::process_exit;
    e.leader = BrokerId(broker);
    e.graceful = graceful;
    push(std::move(e));
  }
  // Moves the clock forward: the next event is `d` later than it would have been.
  void advance(std::chrono::nanoseconds d) { offset_ += d; }
  std::chrono::nanoseconds now() const {
    return offset_ + std::chrono::microseconds(events_.size());
  }
  void set_acks(Acks acks) { acks_ = acks; }

  std::vector<Event>& events() { return events_; }

  History history() const {
    auto h = build_history(events_);
    assert(h.has_value());
    h->acks = acks_;
    return std::move(h).value();
  }
  std::string jsonl(std::string_view workload = "kafka") const {
    std::string out = history_header_line(workload, acks_) + "\n";
    for (const auto& e : events_)
      out += to_jsonl_line(e) + "\n";
    return out;
  }

 private:
  std::size_t push(Event e) {
    e.time = offset_ + std::chrono::microseconds(events_.size() + 1);
    e.line = events_.size() + 2;  // after the header
    events_.push_back(std::move(e));
    return events_.size() - 1;
  }
  std::vector<Event> events_;
  std::chrono::nanoseconds offset_{0};
  Acks acks_ = Acks::unknown;
};

}  // namespace faultline::checker::testing
