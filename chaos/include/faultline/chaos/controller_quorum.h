// The controller quorum as the harness sees it from outside: every controller asked
// DescribeQuorum at once (cluster/include/faultline/cluster/wire/messages.h), and which one is
// active. The harness waits for an active controller before it calls the cluster up, the run's
// watcher fills the snapshot's quorum from it (selectors such as `active-controller`, the
// `controller-change` trigger and events), and `faultline cluster status` prints it.
//
// summarize() is the decision (pure, tested); QuorumClient is the I/O around it.
//
// Controllers are named by their position in the list given, 1-based: the harness lists c1..cN in
// order, so index K is node cK (its --node-id is K-1).
#pragma once

#include <asio.hpp>
#include <chrono>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "faultline/cluster/config.h"
#include "faultline/cluster/net/rpc.h"
#include "faultline/cluster/wire/messages.h"

namespace faultline::chaos {

// One look at the quorum.
struct QuorumLook {
  // answers[K-1]: controller K's answer; nullopt when it did not answer in time (down, paused,
  // cut off) or answered with an error.
  std::vector<std::optional<cluster::DescribeQuorumResponse>> answers;
  std::set<int> up;    // the controllers that answered
  int active = 0;      // the active controller; 0 when none answered as leader
  int64_t epoch = -1;  // its epoch (Raft term); -1 without one

  // The active controller's own answer (it alone knows each voter's replication), or nullptr.
  const cluster::DescribeQuorumResponse* active_answer() const {
    return active > 0 ? &*answers[static_cast<size_t>(active - 1)] : nullptr;
  }
};

// Which controllers answered and which one is active: among the answers whose role is "leader",
// the one with the highest epoch (a deposed leader cut off from the quorum may still believe it
// leads, at an older epoch, until it notices).
QuorumLook summarize(std::vector<std::optional<cluster::DescribeQuorumResponse>> answers);

// Asks every controller DescribeQuorum in parallel, each bounded by the timeout, on its own io
// thread with one connection per controller. Threading: describe() may be called from any thread,
// also concurrently (the connections are only touched on the io thread).
class QuorumClient {
 public:
  explicit QuorumClient(std::vector<cluster::Endpoint> controllers);
  ~QuorumClient();
  QuorumClient(const QuorumClient&) = delete;
  QuorumClient& operator=(const QuorumClient&) = delete;

  // Returns after every controller answered or `timeout` passed.
  QuorumLook describe(std::chrono::milliseconds timeout);
  size_t size() const { return controllers_.size(); }

 private:
  std::vector<cluster::Endpoint> controllers_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  cluster::ClientPool pool_;
  std::thread thread_;
};

}  // namespace faultline::chaos
