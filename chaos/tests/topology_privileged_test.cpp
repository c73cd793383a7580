// Privileged: builds real topologies in network namespaces and checks what a user would notice —
// who can reach whom, that teardown and `clean` leave nothing, even after the harness is killed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "faultline/chaos/clean.h"
#include "faultline/chaos/journal.h"
#include "faultline/chaos/netns.h"
#include "faultline/chaos/supervisor.h"
#include "faultline/chaos/topology.h"
#include "faultline_test_support.h"
#include "test_listener.h"

namespace faultline::chaos {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uint16_t kPort = 9092;

std::string unique_run_id(const std::string& what) {
  return fmt::format("test-{}-{}-{}", what, ::getpid(),
                     std::chrono::steady_clock::now().time_since_epoch().count());
}

// Listens on addr:port inside netns; the socket keeps the namespace it was created in, so the
// test thread can own it from the root namespace.
int listen_in(const std::string& netns, const std::string& addr, uint16_t port) {
  int fd = -1;
  auto ec = run_in_netns(netns, [&]() -> std::error_code {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    ::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || ::listen(fd, 16) != 0) {
      return {errno, std::system_category()};
    }
    return {};
  });
  EXPECT_FALSE(ec) << ec.message();
  return fd;
}

std::vector<std::string> with_prefix(const std::vector<std::string>& names,
                                     const std::string& prefix) {
  std::vector<std::string> out;
  std::copy_if(names.begin(), names.end(), std::back_inserter(out),
               [&](const std::string& n) { return n.rfind(prefix, 0) == 0; });
  return out;
}

bool process_alive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat))
    return false;
  const char state = stat[stat.rfind(')') + 2];
  return state != 'Z' && state != 'X';
}

std::vector<std::string> links_now() {
  std::error_code ec;
  auto links = list_links(ec);
  EXPECT_FALSE(ec) << ec.message();
  return links;
}

// The host's own names: everything but faultline runs' (which other tests, running in parallel,
// may be creating and removing right now).
std::vector<std::string> host_owned(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  std::copy_if(names.begin(), names.end(), std::back_inserter(out),
               [](const std::string& n) { return !is_run_prefix(n.substr(0, kPrefixLength)); });
  return out;
}

class TopologyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    state_root_ = fs::temp_directory_path() / fmt::format("fl-topo-test-{}", ::getpid());
    host_netns_ = host_owned(list_netns());
    host_links_ = host_owned(links_now());
  }
  void TearDown() override {
    // The host's own namespaces and links are exactly as before.
    EXPECT_EQ(host_owned(list_netns()), host_netns_);
    EXPECT_EQ(host_owned(links_now()), host_links_);
    fs::remove_all(state_root_);
  }
  fs::path state_root_;
  std::vector<std::string> host_netns_;
  std::vector<std::string> host_links_;
};

TEST_F(TopologyTest, NodesReachWhatTheirNetworksAllowAndTeardownLeavesNothing) {
  FAULTLINE_REQUIRE_ROOT();
  const std::string run = unique_run_id("reach");
  const std::string prefix = run_prefix(run);
  std::error_code ec;
  auto journal = Journal::open(state_root_, run, prefix, ec);
  ASSERT_FALSE(ec) << ec.message();
  TopologySpec spec;
  spec.brokers = 2;
  // Our own subnets: the root namespace routes every bridge's /24, and other tests may have a
  // topology up at the same time.
  spec.addresses = *AddressPlan::slot(16 + ::getpid() % 200);
  auto topo = Topology::create(spec, *journal, ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_EQ(topo->nodes().size(), 5u);

  const NodeInfo* b1 = topo->find("b1");
  const NodeInfo* c1 = topo->find("c1");
  const NodeInfo* cl = topo->find("cl");
  const NodeInfo* pr = topo->find("pr");
  ASSERT_TRUE(b1 && c1 && cl && pr);
  int int_fd = listen_in(b1->netns, b1->int_address->str(), kPort);
  int ext_fd = listen_in(b1->netns, b1->ext_address->str(), kPort);
  int admin_fd = listen_in(c1->netns, c1->int_address->str(), kPort);
  const TcpEndpoint c1_int{c1->int_address->str(), kPort};

  const TcpEndpoint b1_int{b1->int_address->str(), kPort};
  const TcpEndpoint b1_ext{b1->ext_address->str(), kPort};
  EXPECT_FALSE(tcp_connect_once(c1->netns, b1_int, 2s)) << "controller -> broker int";
  EXPECT_FALSE(tcp_connect_once(cl->netns, b1_ext, 2s)) << "clients -> broker ext";
  EXPECT_FALSE(tcp_connect_once(pr->netns, b1_ext, 2s)) << "probe -> broker ext";
  EXPECT_FALSE(tcp_connect_once(topo->find("b2")->netns, b1_int, 2s)) << "broker -> broker int";
  EXPECT_FALSE(tcp_connect_once("", b1_int, 2s)) << "harness -> broker int";
  // Clients have no route to the cluster network, nor the controller to the client network.
  EXPECT_TRUE(tcp_connect_once(cl->netns, b1_int, 500ms)) << "clients must not reach broker int";
  EXPECT_TRUE(tcp_connect_once(pr->netns, b1_int, 500ms)) << "probe must not reach broker int";
  // The probe's one way into the cluster network: the controllers' admin API.
  EXPECT_FALSE(tcp_connect_once(pr->netns, c1_int, 2s)) << "probe -> controller";
  EXPECT_TRUE(tcp_connect_once(cl->netns, c1_int, 500ms)) << "clients must not reach controller";
  EXPECT_TRUE(tcp_connect_once(c1->netns, b1_ext, 500ms)) << "controller must not reach ext";
  ::close(int_fd);
  ::close(ext_fd);
  ::close(admin_fd);

  EXPECT_EQ(with_prefix(list_netns(), prefix).size(), 5u);
  // bridges + veths (brokers 2 each, controller, clients, probe 2)
  EXPECT_EQ(with_prefix(links_now(), prefix).size(), 2u + 2 * 2 + 1 + 1 + 2);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(topo->teardown());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);  // generous; the bench measures it
  EXPECT_TRUE(with_prefix(list_netns(), prefix).empty());
  EXPECT_TRUE(with_prefix(links_now(), prefix).empty());
  EXPECT_TRUE(outstanding(read_journal(journal->dir(), ec)).empty());
}

// A controller quorum: every controller reaches every other one (Raft) and every broker's
// internal listener, the probe reaches each controller (and still no broker's int), clients none.
TEST_F(TopologyTest, AQuorumOfControllersReachesEachOtherTheBrokersAndTheProbe) {
  FAULTLINE_REQUIRE_ROOT();
  const std::string run = unique_run_id("quorum");
  std::error_code ec;
  auto journal = Journal::open(state_root_, run, run_prefix(run), ec);
  ASSERT_FALSE(ec) << ec.message();
  TopologySpec spec;
  spec.controllers = 3;
  spec.brokers = 2;
  spec.addresses = *AddressPlan::slot(16 + (::getpid() + 100) % 200);
  auto topo = Topology::create(spec, *journal, ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_EQ(topo->nodes().size(), 7u);
  std::vector<const NodeInfo*> controllers, brokers;
  for (const auto& n : topo->nodes()) {
    if (n.role == NodeRole::controller)
      controllers.push_back(&n);
    if (n.role == NodeRole::broker)
      brokers.push_back(&n);
  }
  ASSERT_EQ(controllers.size(), 3u);
  std::vector<int> fds;
  for (const auto* n : controllers)
    fds.push_back(listen_in(n->netns, n->int_address->str(), kPort));
  for (const auto* n : brokers)
    fds.push_back(listen_in(n->netns, n->int_address->str(), kPort));
  const NodeInfo* pr = topo->find("pr");
  const NodeInfo* cl = topo->find("cl");
  for (const auto* c : controllers) {
    const TcpEndpoint at{c->int_address->str(), kPort};
    for (const auto* other : controllers)
      if (other != c) {
        EXPECT_FALSE(tcp_connect_once(other->netns, at, 2s)) << other->id << " -> " << c->id;
      }
    for (const auto* b : brokers)
      EXPECT_FALSE(tcp_connect_once(b->netns, at, 2s)) << b->id << " -> " << c->id;
    for (const auto* b : brokers)
      EXPECT_FALSE(tcp_connect_once(c->netns, {b->int_address->str(), kPort}, 2s))
          << c->id << " -> " << b->id;
    EXPECT_FALSE(tcp_connect_once(pr->netns, at, 2s)) << "probe -> " << c->id;
    EXPECT_TRUE(tcp_connect_once(cl->netns, at, 500ms)) << "clients must not reach " << c->id;
  }
  EXPECT_TRUE(tcp_connect_once(pr->netns, {brokers[0]->int_address->str(), kPort}, 500ms))
      << "probe must not reach broker int";
  for (int fd : fds)
    ::close(fd);
  EXPECT_FALSE(topo->teardown());
}

TEST_F(TopologyTest, FailedBuildRollsBackWhatItMade) {
  FAULTLINE_REQUIRE_ROOT();
  const std::string run = unique_run_id("rollback");
  const std::string prefix = run_prefix(run);
  std::error_code ec;
  auto journal = Journal::open(state_root_, run, prefix, ec);
  ASSERT_FALSE(ec);
  // A namespace with the name of the second node already exists: creation fails half-way.
  const std::string squatter = netns_name(prefix, "b1");
  ASSERT_FALSE(create_netns(squatter));
  TopologySpec spec;
  spec.brokers = 1;
  auto topo = Topology::create(spec, *journal, ec);
  EXPECT_EQ(topo, nullptr);
  EXPECT_TRUE(ec);
  EXPECT_TRUE(netns_exists(squatter)) << "rollback removes only what the topology made";
  EXPECT_FALSE(delete_netns(squatter));
  EXPECT_TRUE(with_prefix(list_netns(), prefix).empty());
  EXPECT_TRUE(with_prefix(links_now(), prefix).empty());
}

// The crash test: a child harness builds a topology with processes and is killed with SIGKILL;
// `clean` must then remove every namespace, link and process of that run.
constexpr const char* kCrashEnv = "FAULTLINE_TEST_CRASH_HARNESS";

[[noreturn]] void crash_harness(const std::string& arg) {
  // arg: state_root|run_id|ready_fd
  auto a = arg.find('|'), b = arg.rfind('|');
  const fs::path state_root = arg.substr(0, a);
  const std::string run = arg.substr(a + 1, b - a - 1);
  const int ready_fd = std::stoi(arg.substr(b + 1));
  ::fcntl(ready_fd, F_SETFD, FD_CLOEXEC);  // node processes must not hold the test's pipe open
  std::error_code ec;
  auto journal = Journal::open(state_root, run, run_prefix(run), ec);
  if (ec)
    std::_Exit(10);
  TopologySpec spec;
  spec.brokers = 2;
  auto topo = Topology::create(spec, *journal, ec);
  if (ec)
    std::_Exit(11);
  Supervisor sup(journal.get(), state_root / "logs");
  for (const auto& node : topo->nodes()) {
    if (node.role != NodeRole::broker)
      continue;
    ProcessSpec p{node.id,
                  {"/proc/self/exe"},
                  {{testing::kListenEnv, node.int_address->str() + ":9092"}},
                  node.netns,
                  std::nullopt};
    if (sup.start(p))
      std::_Exit(12);
    if (sup.wait_ready(node.id, {node.int_address->str(), 9092}, 10s))
      std::_Exit(13);
  }
  std::string pids;
  for (const auto& name : sup.names())
    pids += std::to_string(*sup.pid(name)) + " ";
  // A journaled process without PDEATHSIG (as if started from a thread that outlived nothing):
  // it survives the harness, so only the journal lets clean find it.
  if (journal->intend(resource_kind::process, "orphan", ""))
    std::_Exit(15);
  pid_t orphan = ::fork();
  if (orphan == 0) {
    ::execl("/bin/sleep", "sleep", "300", nullptr);
    std::_Exit(1);
  }
  nlohmann::json details = {{"pid", orphan}};
  if (auto st = process_start_time(orphan))
    details["start_time"] = *st;
  if (journal->created(resource_kind::process, "orphan", "", details))
    std::_Exit(16);
  // Until it has exec'd, the fork still shares the harness lock: wait so the test's liveness
  // checks see only the harness.
  for (std::string comm; comm != "sleep\n";) {
    std::ifstream in("/proc/" + std::to_string(orphan) + "/comm");
    comm.assign(std::istreambuf_iterator<char>(in), {});
  }
  pids += std::to_string(orphan);
  if (::write(ready_fd, pids.data(), pids.size()) < 0)
    std::_Exit(14);
  ::close(ready_fd);
  for (;;)
    ::pause();
}

const bool kCrashMode = [] {
  if (const char* arg = std::getenv(kCrashEnv))
    crash_harness(arg);
  return false;
}();

TEST_F(TopologyTest, CleanRemovesEverythingAfterTheHarnessIsKilled) {
  FAULTLINE_REQUIRE_ROOT();
  const std::string run = unique_run_id("crash");
  const std::string prefix = run_prefix(run);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  pid_t harness = ::fork();
  ASSERT_GE(harness, 0);
  if (harness == 0) {
    ::close(pipe_fds[0]);
    const std::string arg = fmt::format("{}|{}|{}", state_root_.string(), run, pipe_fds[1]);
    ::setenv(kCrashEnv, arg.c_str(), 1);
    ::execl("/proc/self/exe", "crash-harness", nullptr);
    std::_Exit(99);
  }
  ::close(pipe_fds[1]);
  char buf[256] = {};
  // Bounded wait: a harness that hangs must fail the test, not hang it.
  pollfd ready{pipe_fds[0], POLLIN, 0};
  ssize_t n = ::poll(&ready, 1, 60'000) == 1 ? ::read(pipe_fds[0], buf, sizeof(buf) - 1) : 0;
  if (n <= 0)
    ::kill(harness, SIGKILL);
  ::close(pipe_fds[0]);
  ASSERT_GT(n, 0) << "crash harness failed before it was ready";
  std::vector<pid_t> processes;
  for (std::istringstream in(buf); !in.eof();) {
    pid_t p = 0;
    if (in >> p)
      processes.push_back(p);
  }
  ASSERT_EQ(processes.size(), 3u);  // two supervised brokers and the orphan
  EXPECT_EQ(with_prefix(list_netns(), prefix).size(), 5u);
  EXPECT_TRUE(harness_alive(state_root_ / run));

  ASSERT_EQ(::kill(harness, SIGKILL), 0);
  ASSERT_EQ(::waitpid(harness, nullptr, 0), harness);
  EXPECT_FALSE(harness_alive(state_root_ / run));
  EXPECT_FALSE(with_prefix(list_netns(), prefix).empty()) << "the kernel does not clean for us";

  std::ostringstream out;
  CleanOptions options;
  options.state_root = state_root_;
  EXPECT_EQ(run_clean(options, out), 0) << out.str();
  EXPECT_TRUE(with_prefix(list_netns(), prefix).empty()) << out.str();
  EXPECT_TRUE(with_prefix(links_now(), prefix).empty()) << out.str();
  for (pid_t p : processes) {
    // Reparented to init, which may leave a zombie for a moment: a zombie has no start time
    // that matches a running process any more, so check the state, not just kill(p, 0).
    EXPECT_FALSE(process_alive(p)) << "process " << p << " survived";
  }
  EXPECT_FALSE(fs::exists(state_root_ / run)) << "a fully cleaned run leaves no state dir";
  // Idempotent: a second clean finds nothing and succeeds.
  std::ostringstream again;
  EXPECT_EQ(run_clean(options, again), 0);
}

TEST_F(TopologyTest, CleanRefusesALiveRun) {
  FAULTLINE_REQUIRE_ROOT();
  const std::string run = unique_run_id("live");
  std::error_code ec;
  auto journal = Journal::open(state_root_, run, run_prefix(run), ec);
  ASSERT_FALSE(ec);
  const std::string ns = netns_name(journal->prefix(), "x");
  ASSERT_FALSE(journal->intend(resource_kind::netns, ns));
  ASSERT_FALSE(create_netns(ns));
  CleanOptions options;
  options.state_root = state_root_;
  auto report = clean(options);
  EXPECT_EQ(report.runs_skipped_live, std::vector<std::string>{run});
  EXPECT_TRUE(netns_exists(ns));
  journal.reset();  // the harness "dies"
  report = clean(options);
  EXPECT_EQ(report.runs_cleaned, std::vector<std::string>{run});
  EXPECT_FALSE(netns_exists(ns));
}

}  // namespace
}  // namespace faultline::chaos
