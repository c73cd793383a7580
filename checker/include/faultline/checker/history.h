// The history: what the workload's clients did and what the nemesis did, in time order.
//
// On disk a history is JSON Lines (checker/README.md documents every field): a versioned header
// line, then one Event per line. In memory the parser keeps the events and also pairs every
// invocation with its completion into an Operation, which is what the checkers consume.
#pragma once

#include <faultline/checker/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace faultline::checker {

inline constexpr int kHistoryFormatVersion = 1;

enum class EventType : uint8_t { invoke, ok, fail, info, nemesis };

// What a client operation does. send/poll belong to the Kafka workload; the others to the models
// of the linearizability checker (cas-register: read/write/cas, kv: get/put/append, log:
// append/read).
enum class Function : uint8_t { send, poll, seek, read, write, cas, get, put, append };

enum class NemesisKind : uint8_t {
  fault_start,       // a fault was injected ("fault": its kind, "target": what it hit)
  fault_stop,        // ... and healed
  leader_change,     // a partition got a new leader at a new epoch (clean election)
  unclean_election,  // a partition elected an out-of-sync replica: loss there is expected
  note,              // anything else worth showing on the timeline
  // The cluster's own timeline, as the controller published it (checked by invariants.h):
  partition_state,  // one partition changed: partition, epoch, leader (-1 none), isr, replicas,
                    // unclean
  cluster_state,    // broker liveness changed: alive, fenced, demoted, shutting_down
  process_exit,     // a broker process exited: leader = the broker, graceful = after SIGTERM
};

// The producer's acks setting, from the history header ("acks": "all" | "1"); unknown if absent.
enum class Acks : uint8_t { unknown, all, one };
std::string_view to_string(Acks a) noexcept;                 // "unknown", "all", "1"
std::optional<Acks> acks_from(std::string_view s) noexcept;  // "all" or "1" only

std::string_view to_string(EventType t) noexcept;
std::string_view to_string(Function f) noexcept;
std::string_view to_string(NemesisKind k) noexcept;
std::optional<EventType> event_type_from(std::string_view s) noexcept;
std::optional<Function> function_from(std::string_view s) noexcept;
std::optional<NemesisKind> nemesis_kind_from(std::string_view s) noexcept;

// nil (absent / register unset), an integer, or a string.
using Value = std::variant<std::monostate, int64_t, std::string>;
std::string format_value(const Value& v);

// One record returned by a poll: the value found at an offset.
struct Record {
  Offset offset;
  int64_t value = 0;
  friend bool operator==(const Record&, const Record&) = default;
};

// One line of the history.
struct Event {
  EventType type = EventType::invoke;
  ProcessId process{-1};
  Function f = Function::send;
  NemesisKind nemesis = NemesisKind::note;
  std::chrono::nanoseconds time{0};  // monotonic, since the recorder started
  std::optional<PartitionId> partition;
  std::optional<std::string> key;
  Value value;                       // send/write/put/append: written; read/get ok: returned
  Value expected;                    // cas: the value compared against
  std::vector<Value> values;         // log model: a read returns the whole log
  std::optional<Offset> offset;      // send ok: where the value landed; seek: new position
  std::vector<Record> records;       // poll ok
  std::optional<LeaderEpoch> epoch;  // send ok (if known), leader_change, unclean_election,
                                     // partition_state
  std::optional<BrokerId> leader;    // send ok (the acknowledging broker), leader_change,
                                     // unclean_election, partition_state (-1: none), process_exit
  bool final_read = false;           // poll: part of the final read-all phase
  std::vector<BrokerId> isr;         // partition_state
  std::vector<BrokerId> replicas;    // partition_state; replicas[0] is the preferred leader
  bool unclean = false;              // partition_state: this leader came from an unclean election
  std::vector<BrokerId> alive;       // cluster_state: registered and not fenced
  std::vector<BrokerId> fenced;      // cluster_state
  std::vector<BrokerId> demoted;     // cluster_state
  std::vector<BrokerId> shutting_down;  // cluster_state: controlled shutdown in progress
  bool graceful = false;  // process_exit: it exited after SIGTERM (a controlled shutdown)
  std::string error;      // fail/info: why
  std::string fault;      // nemesis: fault kind
  std::string target;     // nemesis: what the fault hit
  std::size_t line = 0;   // 1-based line in the file (0 when built in memory)
};

// Serialises one event as a single JSON line (no trailing newline).
std::string to_jsonl_line(const Event& e);
// The header line for a new history; `acks` is written unless unknown.
std::string history_header_line(std::string_view workload, Acks acks = Acks::unknown);

// How an operation ended. `info` = unknown: it may or may not have taken effect.
enum class Outcome : uint8_t { ok, fail, info };

// An invocation paired with its completion. An operation still open at the end of the history
// (the client crashed or the run stopped) has outcome info and no completion time.
struct Operation {
  std::size_t index = 0;  // position in History::ops
  ProcessId process;
  Function f = Function::send;
  Outcome outcome = Outcome::info;
  std::chrono::nanoseconds invoke_time{0};
  std::optional<std::chrono::nanoseconds> complete_time;
  std::optional<PartitionId> partition;
  std::optional<std::string> key;
  Value value;     // for writes: the invocation's value; for reads: the completion's value
  Value expected;  // cas
  std::vector<Value> values;
  std::optional<Offset> offset;
  std::vector<Record> records;
  std::optional<LeaderEpoch> epoch;
  std::optional<BrokerId> leader;  // send ok: the broker that acknowledged it
  bool final_read = false;
  std::string error;
  std::size_t invoke_line = 0;
  std::size_t complete_line = 0;
};

struct NemesisEvent {
  NemesisKind kind = NemesisKind::note;
  std::chrono::nanoseconds time{0};
  std::optional<PartitionId> partition;
  std::optional<LeaderEpoch> epoch;
  std::optional<BrokerId> leader;
  std::string fault;
  std::string target;
  std::size_t line = 0;
  // partition_state / cluster_state / process_exit (see Event); after `line` so positional
  // initialisers of the fields above keep working.
  std::vector<BrokerId> isr;
  std::vector<BrokerId> replicas;
  bool unclean = false;
  std::vector<BrokerId> alive;
  std::vector<BrokerId> fenced;
  std::vector<BrokerId> demoted;
  std::vector<BrokerId> shutting_down;
  bool graceful = false;
};

struct History {
  int version = kHistoryFormatVersion;
  std::string workload;
  Acks acks = Acks::unknown;          // from the header
  std::vector<Operation> ops;         // ordered by invocation
  std::vector<NemesisEvent> nemesis;  // ordered by time
};

// Why an input could not be read: the file, the 1-based line and the reason.
struct ParseError {
  std::string file;
  std::size_t line = 0;
  std::string why;
  std::string to_string() const;
};

// Parses one JSON line (not the header) into an Event. Pure; never throws.
Expected<Event, std::string> parse_event_line(std::string_view line);

// Pairs invocations with completions. Errors: a completion without an open invocation, a second
// invocation while the process still has one open, a completion of another function.
Expected<History, ParseError> build_history(std::vector<Event> events);

// Parses a whole JSONL history (header line first). Never throws; `file` only names the input in
// errors.
Expected<History, ParseError> parse_jsonl(std::string_view text, std::string_view file = "");

}  // namespace faultline::checker
