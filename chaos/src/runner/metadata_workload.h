// The metadata-log workload: a Jepsen-style check of the controller quorum itself (ARCHITECTURE.md
// §2 item 18). Writer processes append unique values to the metadata log through the key with no
// effect (`faultline.marker`, one ConfigChanged record per acknowledged write); a reader reads the
// active controller's committed log during the run; after the writes stop and the voters agree on
// one commit offset, every controller's own committed log is read once. The history (f `append` /
// `read`, a read's `values` being every marker in offset order) is judged by the linearizability
// engine's `log` model (ARCHITECTURE.md §5): every acknowledged write is read back, in one order,
// from every controller.
//
// Why a write gets exactly one attempt at one controller (not the client's rotation, which moves
// on after NOT_CONTROLLER or a timeout): the active controller answers only once the record is
// committed, and answers NOT_CONTROLLER also when it lost leadership after appending, so a retry
// could append the same value twice and the log model would rightly call that a double append.
// The workload instead follows the active controller itself and starts a new operation with a new
// value at the next one.
//
// The decisions (how a write ended, the markers of a log, whether the quorum has converged, what
// the result says) are the pure functions below; MetadataWorkload is the thin shell of threads
// and requests around them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "faultline/checker/history.h"
#include "faultline/checker/linearizability.h"
#include "faultline/checker/recorder.h"
#include "faultline/cluster/config.h"
#include "faultline/cluster/controller/metadata.h"
#include "faultline/cluster/net/rpc.h"
#include "faultline/cluster/wire/messages.h"

namespace faultline::chaos {

// The history header's workload name.
inline constexpr const char* kMetadataLogWorkload = "metadata-log";

// Process ids in the history (ARCHITECTURE.md §5 keeps 100000+ for readers, 200000+ for the final
// read): writers start at 0, and a writer whose write ended unknown continues as a new process
// (`writer + writers * k`), since a process with an operation that may still take effect is never
// reused; the reader during the run; controller K's final read (K 1-based).
inline constexpr int64_t kMetadataReaderProcess = 100000;
inline constexpr int64_t kMetadataFinalReaderProcess = 200000;

// ---- decisions (pure) -------------------------------------------------------------------------

// The values of the marker records (ConfigChanged with key faultline.marker) among `entries`, in
// the order given; every other record is skipped.
std::vector<std::string> marker_values(std::span<const cluster::MetadataEntry> entries);

// A controller's committed metadata log as read back. When the controller had compacted its log
// past the start of the read, the answer began with its snapshot: the marker writes up to the
// snapshot's offset survive in it as image state (metadata.h), and `entries` continue it.
struct MetadataLogRead {
  std::vector<cluster::MetadataEntry> entries;
  cluster::MetadataOffset snapshot_offset{-1};  // -1: no snapshot, entries from offset 0
  std::vector<cluster::MarkerWrite> snapshot_markers;
  // Every marker value in log order: the snapshot's, then those among the entries.
  std::vector<std::string> markers() const;
};

// How a marker write ended, from its single attempt at one controller:
//   ok    the controller answered without error (it answers once the record is committed);
//   fail  the request never left this process (no connection), so nothing was appended;
//   info  anything else. An answered NOT_CONTROLLER is unknown too: the controller gives it both
//         before deciding and after appending when it lost leadership before the commit.
checker::Outcome marker_write_outcome(const cluster::CallResult& result);
// The error a non-ok write or read is recorded with ("NOT_CONTROLLER", "Connection refused", ...).
std::string call_error(const cluster::CallResult& result);

// Whether the voters agree on the committed metadata log, from one DescribeQuorum answer per
// controller (nullopt: no answer). Controllers are named 1-based, by position in the list.
struct QuorumConvergence {
  // Every voter answered in one epoch with one leader, all with the same commit offset and
  // nothing uncommitted (last == commit). The last condition is what makes a follower's committed
  // log a linearizable read: a voter that just won an election has appended its term's first
  // record but may not yet know the commit of the acknowledged records before it.
  bool converged = false;
  int64_t commit_offset = -1;  // the highest commit offset any voter reported
  std::vector<int> caught_up;  // the voters at that commit offset
  std::vector<int> behind;     // the others: a lower commit offset, or no answer
  std::string why_not;         // when not converged, the first reason
};
QuorumConvergence assess_convergence(
    const std::vector<std::optional<cluster::DescribeQuorumResponse>>& answers);

// True when the final logs agree: identical records at every offset both hold (offset, term and
// record; a snapshot's records are compared through its markers only) and the same marker values.
// They may differ in length only by records committed between the reads (brokers' changes), never
// by a marker: the writes had stopped.
bool final_logs_agree(const std::vector<MetadataLogRead>& logs);

// The history the log model is asked about: `history` without the appends of unknown outcome
// whose value no read returned. Sound: such an append can only be linearized after every read,
// where it changes nothing any operation saw, so the verdict is the same with or without it;
// left in, the search tries it at every step of every backtrack, which turns a run with a few
// writes cut off by a failover into minutes and gigabytes. Ops keep their invocation lines.
checker::History without_unobserved_unknown_appends(const checker::History& history);

// What the workload saw at the end, besides the history.
struct MetadataFinalRead {
  bool converged = false;
  std::string why_not_converged;
  std::vector<int> voters_read;    // controllers whose committed log was read at the end
  std::vector<int> non_converged;  // controllers never at the quorum's commit offset
  std::vector<int> failed_reads;   // controllers whose final read failed
  bool logs_agree = true;          // final_logs_agree() over the final reads
};

struct MetadataLogResult {
  checker::Verdict verdict = checker::Verdict::unknown;  // the log model's verdict
  std::string summary;
  int64_t writes_acknowledged = 0;
  int64_t writes_unknown = 0;
  int64_t writes_failed = 0;
  int64_t reads = 0;  // reads during the run that returned a log
  std::vector<int> final_voters_read;
  std::vector<int> non_converged_voters;
  // Failures besides the checker's: the final logs disagree, a voter never converged, a final
  // read failed. Each makes the result invalid.
  std::vector<std::string> anomalies;
  // Why the run proves nothing about the metadata log (no acknowledged write, nothing read at
  // the end).
  std::vector<std::string> vacuity;
  nlohmann::json checker;  // LinearizabilityResult::to_json

  bool invalid() const { return verdict == checker::Verdict::invalid || !anomalies.empty(); }
  bool valid() const {
    return verdict == checker::Verdict::valid && anomalies.empty() && vacuity.empty();
  }
  nlohmann::json to_json() const;
};

// The result for a recorded history: counts, the log model's verdict and the final read's facts.
MetadataLogResult judge_metadata_log(const checker::History& history,
                                     const MetadataFinalRead& final_read,
                                     const checker::LinearizabilityOptions& options = {});

// ---- the workload -----------------------------------------------------------------------------

struct MetadataWorkloadOptions {
  std::chrono::milliseconds write_interval{100};  // per writer, between write starts
  std::chrono::milliseconds read_interval{500};   // between read starts
  int writers = 2;
  std::chrono::milliseconds request_timeout{2000};  // one write, one page of a read
  // How long stop() waits for every voter to reach one commit offset before the final reads.
  std::chrono::milliseconds convergence_timeout{10000};
  // check() gives up with verdict unknown after this.
  std::chrono::seconds check_budget{60};
  // The history's time_ns; empty: since the history was opened. The runner passes its own run
  // clock so the two histories line up with each other and with faults.jsonl.
  checker::HistoryRecorder::Clock history_clock;
};

// Lifecycle: start() opens the history and starts `writers` writer threads and one reader
// thread; stop() stops them, waits for convergence, reads every converged controller once and
// closes the history; check() judges the file (after stop()). Not restartable. The destructor
// stops a running workload without the final reads.
//
// Threading: start/stop/check from one thread. The writers and the reader share one io thread
// (one connection per controller) and the hint of which controller is active.
class MetadataWorkload {
 public:
  MetadataWorkload();
  ~MetadataWorkload();
  MetadataWorkload(const MetadataWorkload&) = delete;
  MetadataWorkload& operator=(const MetadataWorkload&) = delete;

  // The error of creating the history file (nothing started then).
  std::error_code start(std::vector<cluster::Endpoint> controllers,
                        const std::filesystem::path& history, MetadataWorkloadOptions options = {});
  void stop();
  MetadataLogResult check() const;

  const MetadataFinalRead& final_read() const { return final_; }
  // The final reads' logs by controller (1-based), for tests and reports.
  const std::vector<std::pair<int, MetadataLogRead>>& final_logs() const { return final_logs_; }

 private:
  class Calls;  // the io thread and its connections (metadata_workload.cpp)

  void write_loop(int writer);
  void read_loop();
  void final_reads();
  // The controller (0-based) believed active: the hint, else the one DescribeQuorum names leader.
  std::optional<size_t> active_controller();
  void forget_active(size_t controller);
  void learn_active(size_t controller);
  // A controller's committed log, page by page; nullopt with `error` when a page failed.
  std::optional<MetadataLogRead> read_log(size_t controller, bool any_voter, std::string& error);
  void request_stop();
  // Sleeps until `until` or stop(); false when stopping.
  bool pause_until(std::chrono::steady_clock::time_point until);

  std::vector<cluster::Endpoint> controllers_;
  std::filesystem::path history_path_;
  MetadataWorkloadOptions options_;
  std::unique_ptr<checker::HistoryRecorder> history_;
  std::unique_ptr<Calls> calls_;
  std::vector<std::thread> threads_;
  bool started_ = false, stopped_ = false;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  std::atomic<bool> stopping_{false};

  std::mutex active_mu_;  // also serialises DescribeQuorum looks
  std::optional<size_t> active_;

  MetadataFinalRead final_;
  std::vector<std::pair<int, MetadataLogRead>> final_logs_;
};

}  // namespace faultline::chaos
