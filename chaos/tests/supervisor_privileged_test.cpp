// Privileged: the supervisor starts processes inside namespaces with their output captured,
// signals reach them, and nothing (not even a zombie) is left behind.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "faultline/chaos/journal.h"
#include "faultline/chaos/naming.h"
#include "faultline/chaos/netns.h"
#include "faultline/chaos/supervisor.h"
#include "faultline/chaos/topology.h"
#include "faultline_test_support.h"
#include "test_listener.h"

namespace faultline::chaos {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// 'R', 'S', 'T' (stopped), 'Z' (zombie), or 0 when there is no such process.
char state_of(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close == std::string::npos ? 0 : stat[close + 2];
}

char wait_state(pid_t pid, char want) {
  char s = 0;
  for (int i = 0; i < 500 && (s = state_of(pid)) != want; ++i)
    std::this_thread::sleep_for(5ms);
  return s;
}

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string run = fmt::format(
        "test-sup-{}-{}", ::getpid(), std::chrono::steady_clock::now().time_since_epoch().count());
    dir_ = fs::temp_directory_path() / fmt::format("fl-sup-test-{}", ::getpid());
    prefix_ = run_prefix(run);
    netns_ = netns_name(prefix_, "p1");
    std::error_code ec;
    journal_ = Journal::open(dir_ / "state", run, prefix_, ec);
    ASSERT_FALSE(ec) << ec.message();
  }
  void TearDown() override {
    if (!netns_.empty())
      delete_netns(netns_);
    journal_.reset();
    fs::remove_all(dir_);
  }
  fs::path dir_;
  std::string prefix_;
  std::string netns_;
  std::unique_ptr<Journal> journal_;
};

TEST_F(SupervisorTest, RunsInTheNamespaceWithLogsCaptured) {
  FAULTLINE_REQUIRE_ROOT();
  ASSERT_FALSE(create_netns(netns_));
  Supervisor sup(journal_.get(), dir_ / "logs");
  ProcessSpec spec{
      "p1",
      {"/bin/sh", "-c", "readlink /proc/self/ns/net; echo \"v=$FL_VALUE\"; echo oops >&2"},
      {{"FL_VALUE", "42"}},
      netns_,
      std::nullopt};
  ASSERT_FALSE(sup.start(spec));
  ASSERT_FALSE(sup.wait_exit("p1", 10s));
  auto status = sup.exit_status("p1");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);

  struct stat ns_stat {};
  ASSERT_EQ(::stat(("/run/netns/" + netns_).c_str(), &ns_stat), 0);
  const std::string out = slurp(sup.stdout_path("p1"));
  EXPECT_NE(out.find(fmt::format("net:[{}]", ns_stat.st_ino)), std::string::npos) << out;
  EXPECT_NE(out.find("v=42"), std::string::npos) << out;
  EXPECT_EQ(slurp(sup.stderr_path("p1")), "oops\n");
  // Journaled with its pid, then marked removed once reaped.
  std::error_code ec;
  EXPECT_TRUE(outstanding(read_journal(journal_->dir(), ec)).empty());
}

TEST_F(SupervisorTest, SignalsWaitReadyRestartAndNoZombie) {
  FAULTLINE_REQUIRE_ROOT();
  ASSERT_FALSE(create_netns(netns_));
  // Loopback is down in a bare namespace; the listener binds 127.0.0.1 after we bring it up.
  ASSERT_FALSE(loopback_up(netns_));
  Supervisor sup(journal_.get(), dir_ / "logs");
  ProcessSpec spec{
      "srv", {"/proc/self/exe"}, {{testing::kListenEnv, "127.0.0.1:7001"}}, netns_, std::nullopt};
  ASSERT_FALSE(sup.start(spec));
  EXPECT_EQ(sup.start(spec), std::errc::file_exists);
  ASSERT_FALSE(sup.wait_ready("srv", {"127.0.0.1", 7001}, 10s));
  // Reachable from its namespace only: the root namespace's 127.0.0.1 is another loopback.
  EXPECT_TRUE(tcp_connect_once("", {"127.0.0.1", 7001}, 200ms));
  const pid_t pid = *sup.pid("srv");

  ASSERT_FALSE(sup.signal("srv", SIGSTOP));
  EXPECT_EQ(wait_state(pid, 'T'), 'T');
  ASSERT_FALSE(sup.signal("srv", SIGCONT));
  EXPECT_NE(wait_state(pid, 'S'), 'T');
  EXPECT_TRUE(sup.is_running("srv"));

  ASSERT_FALSE(sup.restart("srv"));
  const pid_t pid2 = *sup.pid("srv");
  EXPECT_NE(pid2, pid);
  EXPECT_EQ(state_of(pid), 0) << "old process reaped, not a zombie";
  ASSERT_FALSE(sup.wait_ready("srv", {"127.0.0.1", 7001}, 10s));

  ASSERT_FALSE(sup.signal("srv", SIGKILL));
  ASSERT_FALSE(sup.wait_exit("srv", 10s));
  EXPECT_EQ(sup.exit_status("srv")->signal, SIGKILL);
  EXPECT_FALSE(sup.is_running("srv"));
  EXPECT_EQ(state_of(pid2), 0);
  EXPECT_EQ(sup.signal("srv", SIGTERM), std::errc::no_such_process);
}

TEST_F(SupervisorTest, JoinsTheCgroupBeforeExec) {
  FAULTLINE_REQUIRE_ROOT();
  // Any hierarchy will do to see the join happen before exec; v1 pids here, v2 elsewhere.
  fs::path root = fs::exists("/sys/fs/cgroup/pids/cgroup.procs") ? fs::path("/sys/fs/cgroup/pids")
                                                                 : fs::path("/sys/fs/cgroup");
  const fs::path cgroup = root / (prefix_ + "-sup");
  ASSERT_TRUE(fs::create_directory(cgroup));
  {
    Supervisor sup(journal_.get(), dir_ / "logs");
    ASSERT_FALSE(sup.start({"cg", {"/bin/cat", "/proc/self/cgroup"}, {}, std::nullopt, cgroup}));
    ASSERT_FALSE(sup.wait_exit("cg", 10s));
    const std::string out = slurp(sup.stdout_path("cg"));
    EXPECT_NE(out.find("/" + prefix_ + "-sup"), std::string::npos) << out;
  }
  EXPECT_EQ(::rmdir(cgroup.c_str()), 0);
}

TEST_F(SupervisorTest, WaitReadyFailsFastWhenTheProcessDies) {
  FAULTLINE_REQUIRE_ROOT();
  Supervisor sup(nullptr, dir_ / "logs");
  ASSERT_FALSE(sup.start({"dies", {"/bin/sh", "-c", "exit 3"}, {}, std::nullopt, std::nullopt}));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(sup.wait_ready("dies", {"127.0.0.1", 1}, 20s), std::errc::no_such_process);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(sup.exit_status("dies")->code, 3);
}

TEST_F(SupervisorTest, StartFailuresAreErrorsNotExceptions) {
  FAULTLINE_REQUIRE_ROOT();
  Supervisor sup(journal_.get(), dir_ / "logs");
  EXPECT_TRUE(sup.start({"x", {"/no/such/binary"}, {}, std::nullopt, std::nullopt}));
  EXPECT_TRUE(sup.start({"y", {"/bin/true"}, {}, std::string("no-such-netns-fl"), std::nullopt}));
  EXPECT_FALSE(sup.is_running("x"));
  std::error_code ec;
  EXPECT_TRUE(outstanding(read_journal(journal_->dir(), ec)).empty());
}

TEST_F(SupervisorTest, DestructorKillsAndReapsEverything) {
  FAULTLINE_REQUIRE_ROOT();
  pid_t a = 0, b = 0;
  {
    Supervisor sup(journal_.get(), dir_ / "logs");
    ASSERT_FALSE(sup.start({"a", {"sleep", "300"}, {}, std::nullopt, std::nullopt}));
    ASSERT_FALSE(sup.start(
        {"b", {"/bin/sh", "-c", "trap '' TERM; sleep 300"}, {}, std::nullopt, std::nullopt}));
    a = *sup.pid("a");
    b = *sup.pid("b");
    ASSERT_FALSE(sup.signal("b", SIGSTOP));
  }
  EXPECT_EQ(state_of(a), 0);
  EXPECT_EQ(state_of(b), 0);
  std::error_code ec;
  EXPECT_TRUE(outstanding(read_journal(journal_->dir(), ec)).empty());
}

}  // namespace
}  // namespace faultline::chaos
