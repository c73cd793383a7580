// HistoryRecorder: how the workload writes a history while it runs.
//
// Thread-safe and append-only: every event becomes one JSON line written with a single write(2)
// on an O_APPEND descriptor as soon as it happens, so a crash of the workload loses at most the
// operations in flight, never a half-written earlier line. Timestamps are taken under the lock,
// so lines in the file are in time order and time_ns never goes backwards.
//
// Lifecycle: open() creates (truncates) the file and writes the header; the destructor closes it.
// Handles returned by invoke() must be completed at most once; an op never completed is read back
// as unknown (info), which is exactly what a crashed client means.
#pragma once

#include <faultline/checker/history.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <unordered_set>

namespace faultline::checker {

// Everything an invocation or completion may carry besides process, function and time.
struct OpFields {
  std::optional<PartitionId> partition;
  std::optional<std::string> key;
  Value value;
  Value expected;  // cas
  std::vector<Value> values;
  std::optional<Offset> offset;
  std::vector<Record> records;
  std::optional<LeaderEpoch> epoch;
  std::optional<BrokerId> leader;  // send ok: the broker that acknowledged it
  bool final_read = false;
  std::string error;
};

struct NemesisFields {
  std::optional<PartitionId> partition;
  std::optional<LeaderEpoch> epoch;
  std::optional<BrokerId> leader;
  std::string fault;
  std::string target;
  // partition_state (leader -1: the partition has none)
  std::vector<BrokerId> isr;
  std::vector<BrokerId> replicas;
  bool unclean = false;
  // cluster_state
  std::vector<BrokerId> alive;
  std::vector<BrokerId> fenced;
  std::vector<BrokerId> demoted;
  std::vector<BrokerId> shutting_down;
  // process_exit (the broker is `leader`)
  bool graceful = false;
};

// What the header line says besides the format version.
struct HistoryHeader {
  std::string workload;
  Acks acks = Acks::unknown;
};

class HistoryRecorder {
 public:
  // Monotonic time since the recorder started; replaceable in tests.
  using Clock = std::function<std::chrono::nanoseconds()>;

  struct OpHandle {
    ProcessId process;
    Function f = Function::send;
    uint64_t id = 0;
  };

  static Expected<std::unique_ptr<HistoryRecorder>, std::error_code> open(const std::string& path,
                                                                          std::string_view workload,
                                                                          Clock clock = {});
  static Expected<std::unique_ptr<HistoryRecorder>, std::error_code> open(
      const std::string& path, const HistoryHeader& header, Clock clock = {});

  ~HistoryRecorder();
  HistoryRecorder(const HistoryRecorder&) = delete;
  HistoryRecorder& operator=(const HistoryRecorder&) = delete;

  Expected<OpHandle, std::error_code> invoke(ProcessId process, Function f, OpFields fields = {});
  // outcome: ok, fail (certainly did not happen) or info (unknown). A handle completed twice is
  // rejected with std::errc::invalid_argument and nothing is written.
  std::error_code complete(const OpHandle& op, Outcome outcome, OpFields fields = {});
  std::error_code nemesis(NemesisKind kind, NemesisFields fields = {});

 private:
  HistoryRecorder(int fd, Clock clock);
  std::error_code write_line_locked(std::string line);

  int fd_;
  Clock clock_;
  std::mutex mu_;
  uint64_t next_id_ = 0;
  std::unordered_set<uint64_t> open_ops_;
};

}  // namespace faultline::checker
