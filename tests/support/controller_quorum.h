// A controller quorum on loopback for integration tests: N faultline-controller processes
// (voters 0..N-1) with fixed ports, so a killed voter restarts where its peers expect it. Each is
// killed and reaped on destruction; the data lives under the directory the caller owns.
#pragma once

#include <asio.hpp>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "faultline/cluster/net/rpc.h"
#include "faultline/cluster/wire/messages.h"
#include "local_ports.h"

namespace faultline::testing {

struct ControllerQuorumOptions {
  int voters = 3;
  int election_timeout_ms = 500;
  int heartbeat_ms = 50;
  int session_timeout_ms = 2000;
  int min_insync_replicas = 2;
  bool unclean_leader_election = false;
  int snapshot_records = 0;  // --metadata-snapshot-records; 0: the controller's default
};

class ControllerQuorum {
 public:
  ControllerQuorum(std::filesystem::path dir, ControllerQuorumOptions options)
      : dir_(std::move(dir)), options_(options) {
    for (int i = 0; i < options_.voters; ++i)
      ports_.push_back(free_port());
    processes_.resize(static_cast<size_t>(options_.voters));
    for (int i = 0; i < options_.voters; ++i)
      start(i);
  }

  int size() const { return options_.voters; }
  cluster::Endpoint endpoint(int i) const { return {"127.0.0.1", ports_[static_cast<size_t>(i)]}; }
  // "h:p,h:p,..." as brokers and clients take it.
  std::string endpoints() const {
    std::string out;
    for (int i = 0; i < size(); ++i)
      out += (i ? "," : "") + endpoint(i).str();
    return out;
  }
  std::vector<cluster::Endpoint> endpoint_list() const {
    std::vector<cluster::Endpoint> out;
    for (int i = 0; i < size(); ++i)
      out.push_back(endpoint(i));
    return out;
  }
  std::filesystem::path log(int i) const {
    return dir_ / ("controller-" + std::to_string(i) + ".log");
  }
  std::filesystem::path data(int i) const { return dir_ / ("controller-" + std::to_string(i)); }

  void start(int i) {
    std::string quorum;
    for (int v = 0; v < size(); ++v)
      quorum += (v ? "," : "") + std::to_string(v) + "@" + endpoint(v).str();
    std::vector<std::string> argv = {(binary_dir() / "faultline-controller").string(),
                                     "--data-dir",
                                     data(i).string(),
                                     "--listen",
                                     endpoint(i).str(),
                                     "--node-id",
                                     std::to_string(i),
                                     "--quorum",
                                     quorum,
                                     "--quorum-election-timeout-ms",
                                     std::to_string(options_.election_timeout_ms),
                                     "--quorum-heartbeat-ms",
                                     std::to_string(options_.heartbeat_ms),
                                     "--session-timeout-ms",
                                     std::to_string(options_.session_timeout_ms),
                                     "--min-insync-replicas",
                                     std::to_string(options_.min_insync_replicas)};
    if (options_.unclean_leader_election)
      argv.push_back("--unclean-leader-election");
    if (options_.snapshot_records > 0) {
      argv.push_back("--metadata-snapshot-records");
      argv.push_back(std::to_string(options_.snapshot_records));
    }
    processes_[static_cast<size_t>(i)] = ChildProcess(std::move(argv), log(i));
  }
  ChildProcess& process(int i) { return processes_[static_cast<size_t>(i)]; }
  const ChildProcess& process(int i) const { return processes_[static_cast<size_t>(i)]; }

  // One request to voter `i` on a connection of its own, from the calling thread.
  cluster::CallResult call(int i, cluster::Request request,
                           std::chrono::milliseconds timeout) const {
    asio::io_context io;
    cluster::RpcClient client(io, endpoint(i));
    cluster::CallResult out;
    out.error = std::make_error_code(std::errc::timed_out);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          out = co_await client.call_request(std::move(request), timeout);
          client.close();
        },
        asio::detached);
    io.run_for(timeout + std::chrono::milliseconds(200));
    return out;
  }

  // The voter's own view of the quorum; nullopt when it does not answer within `timeout`.
  std::optional<cluster::DescribeQuorumResponse> describe(
      int i, std::chrono::milliseconds timeout = std::chrono::milliseconds(300)) const {
    auto res = call(i, cluster::DescribeQuorumRequest{}, timeout);
    if (res.error)
      return std::nullopt;
    if (auto* d = std::get_if<cluster::DescribeQuorumResponse>(&res.response))
      return *d;
    return std::nullopt;
  }

  // The voter every answering voter agrees leads in the highest epoch any of them reports, once
  // it calls itself leader; nullopt until then or after `timeout`. `skip`: voters not to ask
  // (paused ones would only cost their timeout).
  std::optional<int> wait_for_leader(std::chrono::milliseconds timeout,
                                     std::vector<int> skip = {}) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto leader = agreed_leader(skip))
        return leader;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::nullopt;
  }

  std::optional<int> agreed_leader(const std::vector<int>& skip = {}) const {
    std::optional<int> leader;
    int64_t epoch = -1;
    for (int i = 0; i < size(); ++i) {
      if (std::find(skip.begin(), skip.end(), i) != skip.end())
        continue;
      auto d = describe(i);
      if (!d)
        continue;
      if (d->epoch > epoch) {
        epoch = d->epoch;
        leader = d->role == "leader" ? std::optional<int>(d->node_id) : std::nullopt;
      } else if (d->epoch == epoch && d->role == "leader") {
        leader = d->node_id;
      }
    }
    return leader;
  }

 private:
  std::filesystem::path dir_;
  ControllerQuorumOptions options_;
  std::vector<uint16_t> ports_;
  std::vector<ChildProcess> processes_;
};

}  // namespace faultline::testing
