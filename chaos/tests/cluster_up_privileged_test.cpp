// `faultline cluster up|status|down` end to end, as a user runs it: the real harness binary,
// brokers in namespaces, faults injected by separate `faultline fault` invocations, and nothing
// left behind afterwards (also when the harness itself is killed with SIGKILL).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "child_process.h"
#include "faultline/chaos/controller_quorum.h"
#include "faultline/cluster/client/client.h"
#include "faultline_test_support.h"

namespace faultline::chaos {
namespace {

using namespace std::chrono_literals;
using faultline::testing::binary_dir;
using faultline::testing::ChildProcess;
using faultline::testing::TempDir;

// Runs `faultline ARGS...` to completion; returns its exit code and output.
std::pair<int, std::string> faultline(const TempDir& dir, std::vector<std::string> args) {
  static int n = 0;
  args.insert(args.begin(), (binary_dir() / "faultline").string());
  auto log = dir.path() / ("cmd-" + std::to_string(n++) + ".log");
  ChildProcess p(args, log);
  int code = p.wait_for(60s);
  return {code, p.log()};
}

std::vector<std::string> namespaces_with(const std::string& prefix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
    auto name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0)
      out.push_back(name);
  }
  return out;
}

// Alive and not a zombie (an orphan killed with its harness waits for init to reap it).
bool running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line))
    return false;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

// Everything of a run that lives in the kernel outside its namespaces: host links, mounts, loop
// devices backed by its images, blkio cgroups. Empty when the run left nothing behind.
std::vector<std::string> host_leftovers(const std::string& prefix, const std::string& run_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/sys/class/net", ec)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0)
      out.push_back("link " + e.path().filename().string());
  }
  std::ifstream mounts("/proc/mounts");
  for (std::string line; std::getline(mounts, line);) {
    if (line.find(run_dir) != std::string::npos)
      out.push_back("mount " + line);
  }
  for (const auto& e : std::filesystem::directory_iterator("/sys/block", ec)) {
    std::ifstream backing(e.path() / "loop" / "backing_file");
    std::string file;
    if (std::getline(backing, file) && file.find(run_dir) != std::string::npos)
      out.push_back("loop " + e.path().filename().string() + " " + file);
  }
  for (const auto& root : {"/sys/fs/cgroup/blkio", "/sys/fs/cgroup"}) {
    for (const auto& e : std::filesystem::directory_iterator(root, ec)) {
      if (e.path().filename().string().rfind(prefix, 0) == 0)
        out.push_back("cgroup " + e.path().string());
    }
  }
  return out;
}

struct UpCluster {
  std::filesystem::path run_dir;
  std::string prefix;
  cluster::ClientConfig config;
};

// Starts `faultline cluster up` and waits for its summary line.
std::optional<UpCluster> start_up(ChildProcess& harness, const TempDir& dir,
                                  std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {(binary_dir() / "faultline").string(),
                                   "cluster",
                                   "up",
                                   "--brokers",
                                   "3",
                                   "--session-timeout-ms",
                                   "2000",
                                   "--heartbeat-interval-ms",
                                   "200"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  harness = ChildProcess(argv, dir.path() / "up.log");
  std::smatch m;
  std::regex run_line("cluster up: run (\\S+) \\(3 brokers[^)]*\\) in (\\S+)");
  for (int i = 0; i < 300; ++i) {
    std::string log = harness.log();
    if (std::regex_search(log, m, run_line))
      break;
    if (harness.wait_for(0ms) != -1)
      return std::nullopt;
    std::this_thread::sleep_for(50ms);
  }
  if (m.empty())
    return std::nullopt;
  UpCluster up;
  up.run_dir = m[2].str();
  std::ifstream in(up.run_dir / "cluster.json");
  auto j = nlohmann::json::parse(in);
  up.prefix = j.at("prefix").get<std::string>();
  cluster::parse_endpoints(j.at("controller").get<std::string>(), up.config.controllers);
  for (const auto& b : j.at("bootstrap")) {
    cluster::Endpoint ep;
    cluster::parse_endpoint(b.get<std::string>(), ep);
    up.config.bootstrap.push_back(ep);
  }
  up.config.request_timeout = 2s;
  up.config.delivery_timeout = 10s;
  up.config.retry_backoff = 50ms;
  return up;
}

TEST(ClusterUp, ServesKillsThroughTheRunDirectoryAndLeavesNothingBehind) {
  FAULTLINE_REQUIRE_ROOT();
  TempDir dir("faultline-up");
  ChildProcess harness;
  auto up = start_up(harness, dir);
  ASSERT_TRUE(up) << harness.log();
  EXPECT_EQ(namespaces_with(up->prefix).size(), 6u) << "c1, b1-b3, clients, probe";

  cluster::TopicPartition tp{"t", cluster::PartitionIndex{0}};
  {
    cluster::SyncClient client(up->config);
    ASSERT_EQ(client.create_topic("t", 1, 3).error, cluster::errc::none);
    auto leader = client.wait_for_leader(
        tp, 10s, [](const cluster::PartitionMetadata& p) { return p.isr.size() == 3; });
    ASSERT_TRUE(leader);
    ASSERT_TRUE(client.send(tp, {"before"}, cluster::Acks::all).acknowledged());

    // Another process kills the leader through the run directory; the harness's cluster fails over.
    auto node = "b" + std::to_string(leader->leader.value());
    auto [code, out] =
        faultline(dir, {"fault", "inject", "--run", up->run_dir.string(), "kill", node});
    ASSERT_EQ(code, 0) << out;
    ASSERT_TRUE(client.wait_for_leader(
        tp, 15s, [&](const cluster::PartitionMetadata& p) { return p.leader != leader->leader; }));
    EXPECT_TRUE(client.send(tp, {"after"}, cluster::Acks::all).acknowledged());
    auto [status_code, status] =
        faultline(dir, {"cluster", "status", "--run", up->run_dir.string()});
    EXPECT_EQ(status_code, 0);
    EXPECT_NE(status.find(node), std::string::npos);
    auto records = client.read_all(tp);
    ASSERT_TRUE(records);
    EXPECT_EQ(records->size(), 2u);
  }

  auto [down_code, down] = faultline(dir, {"cluster", "down", "--run", up->run_dir.string()});
  EXPECT_EQ(down_code, 0) << down;
  EXPECT_EQ(harness.wait_for(30s), 0) << harness.log();
  EXPECT_TRUE(namespaces_with(up->prefix).empty());
  // `cluster down` keeps the run directory (data, logs) for the user; a test removes its own.
  std::filesystem::remove_all(up->run_dir);
}

// A quorum of three controllers: the brokers, the clients and cluster.json know all three; kill -9
// of the active one (its pid from processes.json, as another tool would find it) and the other
// two elect a new one within a few election timeouts, which serves admin requests.
TEST(ClusterUp, AQuorumOfThreeElectsAnotherControllerWhenTheActiveOneIsKilled) {
  FAULTLINE_REQUIRE_ROOT();
  TempDir dir("faultline-up-quorum");
  ChildProcess harness;
  auto up = start_up(harness, dir, {"--controllers", "3"});
  ASSERT_TRUE(up) << harness.log();
  EXPECT_NE(harness.log().find("3 controllers"), std::string::npos) << harness.log();
  EXPECT_EQ(namespaces_with(up->prefix).size(), 8u) << "c1-c3, b1-b3, clients, probe";
  ASSERT_EQ(up->config.controllers.size(), 3u) << "cluster.json lists every controller";

  QuorumClient quorum(up->config.controllers);
  QuorumLook before = quorum.describe(1s);
  ASSERT_GT(before.active, 0) << "cluster up returned without an active controller";
  EXPECT_EQ(before.up, (std::set<int>{1, 2, 3}));
  const std::string active = "c" + std::to_string(before.active);
  auto [status_code, status] = faultline(dir, {"cluster", "status", "--run", up->run_dir.string()});
  EXPECT_EQ(status_code, 0) << status;
  EXPECT_NE(status.find("controller quorum: active " + active), std::string::npos) << status;
  EXPECT_NE(status.find("replication "), std::string::npos) << status;

  std::ifstream pids_in(up->run_dir / "processes.json");
  auto pids = nlohmann::json::parse(pids_in);
  ASSERT_TRUE(pids.contains(active) && pids[active].is_number()) << pids.dump();
  ASSERT_EQ(::kill(pids[active].get<pid_t>(), SIGKILL), 0);
  const auto killed = std::chrono::steady_clock::now();
  QuorumLook after;
  while (std::chrono::steady_clock::now() - killed < 5s) {
    after = quorum.describe(200ms);
    if (after.active > 0 && after.active != before.active)
      break;
    std::this_thread::sleep_for(20ms);
  }
  const double elected_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  ASSERT_GT(after.active, 0) << "no controller active 5 s after the kill";
  EXPECT_NE(after.active, before.active);
  EXPECT_GT(after.epoch, before.epoch);
  EXPECT_FALSE(after.up.count(before.active)) << "the killed controller still answers";
  RecordProperty("controller_elected_after_s", std::to_string(elected_s));

  // The new active controller serves admin requests; the brokers follow it.
  cluster::SyncClient client(up->config);
  cluster::TopicPartition tp{"after-failover", cluster::PartitionIndex{0}};
  ASSERT_EQ(client.create_topic(tp.topic, 1, 3).error, cluster::errc::none);
  auto leader = client.wait_for_leader(
      tp, 10s, [](const cluster::PartitionMetadata& p) { return p.isr.size() == 3; });
  ASSERT_TRUE(leader) << "the topic got no leader with a full ISR from the new controller";
  EXPECT_TRUE(client.send(tp, {"hello"}, cluster::Acks::all).acknowledged());

  // With one of three controllers still dead, the partition's leader is killed too: the two
  // remaining controllers elect another leader from the ISR, and the acknowledged write is there.
  const std::string leader_name = "b" + std::to_string(leader->leader.value());
  ASSERT_TRUE(pids.contains(leader_name) && pids[leader_name].is_number()) << pids.dump();
  ASSERT_EQ(::kill(pids[leader_name].get<pid_t>(), SIGKILL), 0);
  auto next = client.wait_for_leader(tp, 15s, [&](const cluster::PartitionMetadata& p) {
    return p.leader != leader->leader && p.leader != cluster::kNoBroker;
  });
  ASSERT_TRUE(next) << "no new partition leader while a controller is dead";
  // The new leader's high watermark reaches the write once the surviving follower fetches.
  cluster::PollResult polled;
  for (auto until = std::chrono::steady_clock::now() + 10s;
       polled.records.empty() && std::chrono::steady_clock::now() < until;)
    polled = client.poll(tp, cluster::Offset{0}, 1 << 20, 500ms);
  ASSERT_EQ(polled.records.size(), 1u) << cluster::errc_name(polled.error);
  EXPECT_EQ(polled.records[0].value, "hello");

  auto [down_code, down] = faultline(dir, {"cluster", "down", "--run", up->run_dir.string()});
  EXPECT_EQ(down_code, 0) << down;
  EXPECT_EQ(harness.wait_for(30s), 0) << harness.log();
  EXPECT_TRUE(namespaces_with(up->prefix).empty());
  // `cluster down` keeps the run directory (data, logs) for the user; a test removes its own.
  std::filesystem::remove_all(up->run_dir);
}

TEST(ClusterUp, CleanRemovesARunWhoseHarnessWasKilledWithFaultsActive) {
  FAULTLINE_REQUIRE_ROOT();
  TempDir dir("faultline-up");
  ChildProcess harness;
  auto up = start_up(harness, dir, {"--disks"});
  ASSERT_TRUE(up) << harness.log();
  auto run = up->run_dir.string();
  // One fault of each resource kind: nft tables, a link down, a blkio limit, the NFQUEUE shaper.
  ASSERT_EQ(faultline(dir, {"fault", "inject", "--run", run, "isolate", "b1"}).first, 0);
  ASSERT_EQ(
      faultline(dir, {"fault", "inject", "--run", run, "cut-link", "b2", "--interface", "ext"})
          .first,
      0);
  auto [disk_code, disk_out] = faultline(
      dir, {"fault", "inject", "--run", run, "disk-throttle", "b3", "--write-bps", "1000000"});
  ASSERT_EQ(disk_code, 0) << disk_out;
  auto [packets_code, packets_out] = faultline(
      dir,
      {"fault", "inject", "--run", run, "packets", "b3", "--interface", "int", "--delay-ms", "20"});
  ASSERT_EQ(packets_code, 0) << packets_out;
  ASSERT_FALSE(host_leftovers(up->prefix, run).empty()) << "no disks: the test proves little";
  std::ifstream pids_in(up->run_dir / "processes.json");
  auto pids = nlohmann::json::parse(pids_in);  // before clean removes the run's directory
  harness.signal(SIGKILL);
  harness.wait_for(10s);
  ASSERT_FALSE(namespaces_with(up->prefix).empty()) << "nothing to clean: the test proves nothing";

  auto [code, out] = faultline(dir, {"clean"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(namespaces_with(up->prefix).empty()) << out;
  auto left = host_leftovers(up->prefix, run);
  EXPECT_TRUE(left.empty()) << ::testing::PrintToString(left) << "\n" << out;
  // The broker processes died with the harness (or were killed by clean).
  for (const auto& [node, pid] : pids.items()) {
    if (pid.is_number()) {
      EXPECT_FALSE(running(pid.get<pid_t>())) << node << " survived";
    }
  }
  auto [again_code, again] = faultline(dir, {"clean"});
  EXPECT_EQ(again_code, 0) << "clean is idempotent: " << again;
}

}  // namespace
}  // namespace faultline::chaos
