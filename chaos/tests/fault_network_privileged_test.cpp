// Network and disk fault backends against real namespaces, nftables, NFQUEUE, tbf, loop devices and
// cgroups. Each test builds its own tiny topology with a unique prefix: a hub namespace holding a
// bridge and three node namespaces (a, b, c) with one veth "int" each, 198.18.200.0/24. Nothing is
// created in the root namespace. The fixture asserts that nothing is left behind.
//
// The topology is built with iproute2 here because topo's topology API was not available when these
// tests were written; the faults under test use only libnl/libnftables.
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
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "faultline/chaos/faults/cli.h"
#include "faultline/chaos/faults/disk.h"
#include "faultline/chaos/faults/injector.h"
#include "faultline/chaos/faults/partition.h"
#include "faultline/chaos/faults/process.h"
#include "faultline/chaos/journal.h"
#include "faultline_test_support.h"
#include "faults/kernel.h"

namespace faultline::chaos {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Journals what a test creates in a run directory under the default state root (/run/faultline
// unless FAULTLINE_STATE_ROOT says otherwise), as a harness does: a test process killed midway
// leaves a run whose namespaces, loop devices, mounts and cgroups `faultline clean` removes. It
// also keeps what is live, so that a test can assert it removed everything it made.
class TestJournal final : public ResourceRecorder {
 public:
  explicit TestJournal(const std::string& prefix) {
    std::error_code ec;
    journal_ = Journal::open(default_state_root(), prefix, prefix, ec);
    if (!journal_)
      ADD_FAILURE() << "journal under " << default_state_root() << ": " << ec.message();
  }
  // A test that removed everything leaves no run directory; one that did not leaves its journal
  // for `faultline clean`.
  ~TestJournal() override {
    if (!journal_)
      return;
    const fs::path dir = journal_->dir();
    journal_.reset();
    if (live.empty())
      fs::remove_all(dir);
  }
  TestJournal(const TestJournal&) = delete;
  TestJournal& operator=(const TestJournal&) = delete;

  std::error_code will_create(const std::string& kind, const std::string& name,
                              const nlohmann::json& details) override {
    if (!journal_)
      return std::make_error_code(std::errc::bad_file_descriptor);
    if (auto ec = journal_->intend(kind, name, {}, details))
      return ec;
    live.insert(kind + ":" + name);
    return {};
  }
  void removed(const std::string& kind, const std::string& name) override {
    if (journal_)
      (void)journal_->removed(kind, name, {});
    live.erase(kind + ":" + name);
  }
  // What the journal still lists as outstanding, as `faultline clean` would read it.
  size_t outstanding_in_journal() const {
    std::error_code ec;
    return journal_ ? outstanding(read_journal(journal_->dir(), ec)).size() : 0;
  }
  std::set<std::string> live;

 private:
  std::unique_ptr<Journal> journal_;
};

int sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

fs::path shaper_path() {
  // Next to the test binary's build tree: build/bin/faultline-shaper (or the scratch build).
  for (fs::path p : {fs::path("bin/faultline-shaper"), fs::path("../bin/faultline-shaper"),
                     fs::read_symlink("/proc/self/exe").parent_path() / "faultline-shaper",
                     fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "bin" /
                         "faultline-shaper"}) {
    if (fs::exists(p))
      return fs::absolute(p);
  }
  return {};
}

class NetworkFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    FAULTLINE_REQUIRE_ROOT();
    prefix_ = fmt::format("flft{}", ::getpid() % 100000);
    topo_.run_prefix = prefix_;
    recorder_ = std::make_unique<TestJournal>(prefix_);
    const std::string hub = prefix_ + "-hub";
    ASSERT_FALSE(recorder_->will_create(std::string(resource_kind::netns), hub, {}));
    ASSERT_EQ(sh("ip netns add " + hub), 0);
    created_.push_back(hub);
    ASSERT_EQ(
        sh(fmt::format("ip -n {} link add br0 type bridge && ip -n {} link set br0 up", hub, hub)),
        0);
    int i = 1;
    for (const char* n : {"a", "b", "c"}) {
      const std::string ns = prefix_ + "-" + n;
      ASSERT_FALSE(recorder_->will_create(std::string(resource_kind::netns), ns, {}));
      ASSERT_EQ(sh("ip netns add " + ns), 0);
      created_.push_back(ns);
      const std::string addr = fmt::format("198.18.200.{}", i++);
      ASSERT_EQ(sh(fmt::format("ip -n {0} link add v-{1} type veth peer name int netns {2} && "
                               "ip -n {0} link set v-{1} master br0 up && "
                               "ip -n {2} addr add {3}/24 dev int && ip -n {2} link set int up && "
                               "ip -n {2} link set lo up",
                               hub, n, ns, addr)),
                0);
      topo_.nodes.push_back(FaultNode{n, ns, {{"int", addr}}, std::nullopt, std::nullopt, {}});
    }
    ctx_.topology = &topo_;
    ctx_.recorder = recorder_.get();
    ctx_.shaper_binary = shaper_path();
    ctx_.run_dir = fs::temp_directory_path() / (prefix_ + "-logs");  // shaper logs
    fs::create_directories(ctx_.run_dir);
    ctx_.seed = 42;
    // Bridges take a moment to forward (no STP: forward delay is 0 on a fresh bridge).
    for (int tries = 0; tries < 50 && !reaches("a", "c"); ++tries)
      std::this_thread::sleep_for(20ms);
  }

  void TearDown() override {
    for (const auto& ns : created_) {
      sh("ip netns del " + ns);
      if (!fs::exists("/run/netns/" + ns))
        recorder_->removed(std::string(resource_kind::netns), ns);
    }
    for (const auto& ns : created_) {
      EXPECT_FALSE(fs::exists("/run/netns/" + ns)) << ns << " left behind";
    }
    if (!ctx_.run_dir.empty())
      fs::remove_all(ctx_.run_dir);
    if (recorder_) {
      EXPECT_TRUE(recorder_->live.empty())
          << "recorded resources not removed: " << *recorder_->live.begin();
      EXPECT_EQ(recorder_->outstanding_in_journal(), 0u);
    }
  }

  const FaultNode& node(const std::string& n) { return *topo_.find(n); }
  bool reaches(const std::string& from, const std::string& to,
               std::chrono::milliseconds timeout = 300ms) {
    return kernel::tcp_probe(node(from).netns, node(to).addresses.at("int"), 9, timeout) ==
           kernel::Reach::reachable;
  }

  // A UDP socket bound inside `n`'s namespace (the socket keeps its namespace afterwards).
  int udp_socket(const std::string& n, uint16_t port) {
    int fd = -1;
    kernel::in_netns(node(n).netns, [&]() -> std::error_code {
      fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(port);
      ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
      // Room for every datagram of a burst, so only the fault loses packets.
      int rcvbuf = 4 << 20;
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
      return {};
    });
    return fd;
  }
  // Sends `count` datagrams from `from` to `to`; returns how many arrived within `wait`.
  int udp_delivered(const std::string& from, const std::string& to, int count,
                    std::chrono::milliseconds wait = 500ms) {
    const int rx = udp_socket(to, 4500);
    const int tx = udp_socket(from, 0);
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(4500);
    ::inet_pton(AF_INET, node(to).addresses.at("int").c_str(), &dst.sin_addr);
    for (int i = 0; i < count; ++i) {
      ::sendto(tx, &i, sizeof i, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
      if (i % 20 == 19)
        std::this_thread::sleep_for(1ms);  // stay within socket buffers
    }
    int got = 0;
    const auto deadline = Clock::now() + wait;
    while (Clock::now() < deadline) {
      pollfd pfd{rx, POLLIN, 0};
      if (::poll(&pfd, 1, 50) == 1) {
        int v;
        while (::recv(rx, &v, sizeof v, MSG_DONTWAIT) > 0)
          ++got;
      }
    }
    ::close(rx);
    ::close(tx);
    return got;
  }
  // Median TCP connect (SYN -> RST) time from `from` to `to`.
  std::chrono::microseconds median_rtt(const std::string& from, const std::string& to, int n = 7) {
    std::vector<std::chrono::microseconds> samples;
    for (int i = 0; i < n; ++i) {
      const auto start = Clock::now();
      if (reaches(from, to, 2000ms)) {
        samples.push_back(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start));
      }
    }
    if (samples.empty())
      return std::chrono::microseconds::max();
    std::sort(samples.begin(), samples.end());
    return samples[samples.size() / 2];
  }
  // Bytes/s a TCP stream from `from` to `to` achieves in `duration`.
  double tcp_throughput(const std::string& from, const std::string& to,
                        std::chrono::milliseconds duration) {
    int listener = -1, client = -1;
    kernel::in_netns(node(to).netns, [&]() -> std::error_code {
      listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(5001);
      ::bind(listener, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
      ::listen(listener, 1);
      return {};
    });
    kernel::in_netns(node(from).netns, [&]() -> std::error_code {
      client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      return {};
    });
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(5001);
    ::inet_pton(AF_INET, node(to).addresses.at("int").c_str(), &dst.sin_addr);
    EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&dst), sizeof dst), 0);
    const int server = ::accept(listener, nullptr, nullptr);
    std::atomic<uint64_t> received{0};
    std::atomic<bool> done{false};
    std::thread reader([&] {
      std::vector<char> buf(65536);
      while (!done) {
        pollfd pfd{server, POLLIN, 0};
        if (::poll(&pfd, 1, 50) == 1) {
          auto n = ::recv(server, buf.data(), buf.size(), MSG_DONTWAIT);
          if (n > 0)
            received += static_cast<uint64_t>(n);
        }
      }
    });
    std::vector<char> chunk(16384, 'x');
    const auto start = Clock::now();
    while (Clock::now() - start < duration) {
      pollfd pfd{client, POLLOUT, 0};
      if (::poll(&pfd, 1, 50) == 1)
        ::send(client, chunk.data(), chunk.size(), MSG_DONTWAIT);
    }
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    const double rate = static_cast<double>(received.load()) / secs;
    done = true;
    reader.join();
    ::close(client);
    ::close(server);
    ::close(listener);
    return rate;
  }

  std::string prefix_;
  FaultTopology topo_;
  std::unique_ptr<TestJournal> recorder_;
  FaultContext ctx_;
  std::vector<std::string> created_;
};

TEST_F(NetworkFaults, IsolateDropsBothDirectionsOnlyForThatNodeAndHealRestores) {
  ASSERT_TRUE(reaches("a", "b"));
  FaultInjector injector(ctx_, nullptr);
  auto out = injector.inject({FaultKind::isolate, {"a"}, NoParams{}});
  ASSERT_FALSE(out.error) << out.error.message();
  EXPECT_TRUE(out.verified);
  EXPECT_EQ(out.backend, "nftables");
  EXPECT_FALSE(reaches("a", "b"));
  EXPECT_FALSE(reaches("b", "a"));
  EXPECT_FALSE(reaches("c", "a"));
  EXPECT_TRUE(reaches("b", "c"));
  EXPECT_TRUE(reaches("c", "b"));
  const auto table = nft_table_name(prefix_, out.id);
  EXPECT_TRUE(kernel::nft_table_exists(node("a").netns, table));

  auto healed = injector.heal(out.id);
  ASSERT_FALSE(healed.error) << healed.error.message();
  EXPECT_TRUE(healed.verified);
  EXPECT_TRUE(reaches("a", "b"));
  EXPECT_TRUE(reaches("c", "a"));
  for (const char* n : {"a", "b", "c"}) {
    EXPECT_FALSE(kernel::nft_table_exists(node(n).netns, table)) << n;
  }
  // Healing again is harmless; an unknown id is reported.
  EXPECT_EQ(injector.heal(out.id).error, fault_errc::not_found);
}

TEST_F(NetworkFaults, OneWayBlocksOnlyOneDirectionOfDatagrams) {
  FaultInjector injector(ctx_, nullptr);
  auto out = injector.inject({FaultKind::one_way, {"a", "b"}, NoParams{}});
  ASSERT_FALSE(out.error) << out.error.message();
  EXPECT_TRUE(out.verified);
  EXPECT_EQ(udp_delivered("a", "b", 20), 0);
  EXPECT_EQ(udp_delivered("b", "a", 20), 20);
  EXPECT_EQ(udp_delivered("a", "c", 20), 20);
  // TCP needs both directions: a's SYN is lost, and b's connect dies on a's lost SYN-ACK/RST.
  EXPECT_FALSE(reaches("a", "b"));
  EXPECT_FALSE(reaches("b", "a"));
  ASSERT_FALSE(injector.heal(out.id).error);
  EXPECT_EQ(udp_delivered("a", "b", 20), 20);
}

TEST_F(NetworkFaults, CutLinkTakesTheInterfaceDownAndHealBringsItBack) {
  FaultInjector injector(ctx_, nullptr);
  auto out = injector.inject({FaultKind::cut_link, {"b"}, LinkParams{"int"}});
  ASSERT_FALSE(out.error) << out.error.message();
  EXPECT_TRUE(out.verified);
  EXPECT_FALSE(reaches("a", "b"));
  auto healed = injector.heal(out.id);
  ASSERT_FALSE(healed.error);
  EXPECT_TRUE(healed.verified);
  bool ok = false;
  for (int i = 0; i < 50 && !(ok = reaches("a", "b")); ++i)
    std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(ok);
}

// This kernel has no sch_netem (ARCHITECTURE.md §10), so the test checks whichever case the machine
// is: with netem the qdisc is installed and removed; without it the backend says so with a distinct
// error (the injector then falls back to the shaper) and leaves no half-made qdisc behind.
TEST_F(NetworkFaults, NetemIsUsedWhereAvailableAndRefusedCleanlyWhereNot) {
  PacketParams p;
  p.delay = 10ms;
  auto ec = kernel::add_netem(node("a").netns, "int", p);
  std::string kind;
  if (ec == fault_errc::backend_unavailable) {
    ASSERT_FALSE(kernel::root_qdisc_kind(node("a").netns, "int", kind));
    EXPECT_NE(kind, "netem");
    return;
  }
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_FALSE(kernel::root_qdisc_kind(node("a").netns, "int", kind));
  EXPECT_EQ(kind, "netem");
  EXPECT_FALSE(kernel::delete_root_qdisc(node("a").netns, "int", "netem"));
}

TEST_F(NetworkFaults, ShaperDelayAddsTheConfiguredLatency) {
  ASSERT_FALSE(ctx_.shaper_binary.empty()) << "faultline-shaper not built";
  const auto before = median_rtt("a", "b");
  ASSERT_LT(before, 20ms);
  PacketParams p;
  p.delay = 50ms;
  p.peers = {"b"};
  FaultInjector injector(ctx_, nullptr);
  auto out = injector.inject({FaultKind::packets, {"a"}, p});
  ASSERT_FALSE(out.error) << out.error.message();
  EXPECT_TRUE(out.verified);
  const auto during = median_rtt("a", "b");
  EXPECT_GE(during, 45ms);
  EXPECT_LT(during, 150ms);
  // Only traffic to b is shaped.
  EXPECT_LT(median_rtt("a", "c"), 20ms);
  auto healed = injector.heal(out.id);
  ASSERT_FALSE(healed.error) << healed.error.message();
  EXPECT_TRUE(healed.verified);
  EXPECT_LT(median_rtt("a", "b"), 20ms);
}

TEST_F(NetworkFaults, ShaperLossDropsAboutTheConfiguredShare) {
  ASSERT_FALSE(ctx_.shaper_binary.empty()) << "faultline-shaper not built";
  PacketParams p;
  p.loss_pct = 30;
  FaultInjector injector(ctx_, nullptr);
  auto out = injector.inject({FaultKind::packets, {"a"}, p});
  ASSERT_FALSE(out.error) << out.error.message();
  const int sent = 600;
  const int got = udp_delivered("a", "b", sent, 800ms);
  const double lost = 1.0 - static_cast<double>(got) / sent;
  EXPECT_GT(lost, 0.18);
  EXPECT_LT(lost, 0.42);
  ASSERT_FALSE(injector.heal(out.id).error);
  EXPECT_EQ(udp_delivered("a", "b", 50), 50);
}

TEST_F(NetworkFaults, ShaperDuplicatesAndCorruptsAboutTheConfiguredShare) {
  ASSERT_FALSE(ctx_.shaper_binary.empty()) << "faultline-shaper not built";
  PacketParams p;
  p.duplicate_pct = 50;
  p.corrupt_pct = 20;  // corrupted packets are dropped, as the receiver's checksum check would
  FaultInjector injector(ctx_, nullptr);
  auto out = injector.inject({FaultKind::packets, {"a"}, p});
  ASSERT_FALSE(out.error) << out.error.message();
  const int sent = 400;
  const double ratio = udp_delivered("a", "b", sent, 800ms) / static_cast<double>(sent);
  // 80% survive corruption, and half of those arrive twice: 1.2 expected.
  EXPECT_GT(ratio, 1.05);
  EXPECT_LT(ratio, 1.35);
  ASSERT_FALSE(injector.heal(out.id).error);
  EXPECT_EQ(udp_delivered("a", "b", 50), 50);
}

TEST_F(NetworkFaults, TbfCapsThroughput) {
  const double rate = 250'000;  // bytes/s (2 Mbit/s)
  RateParams r;
  r.bytes_per_second = static_cast<uint64_t>(rate);
  r.burst_bytes = 16 * 1024;
  FaultInjector injector(ctx_, nullptr);
  auto out = injector.inject({FaultKind::rate, {"a"}, r});
  ASSERT_FALSE(out.error) << out.error.message();
  EXPECT_TRUE(out.verified);
  const double capped = tcp_throughput("a", "b", 1500ms);
  EXPECT_LT(capped, rate * 1.5);
  EXPECT_GT(capped, rate * 0.3);
  ASSERT_FALSE(injector.heal(out.id).error);
  EXPECT_GT(tcp_throughput("a", "b", 500ms), rate * 4);
}

// Root qdiscs of the links present in both snapshots: other runs on a shared host may add or
// remove their own links meanwhile, which is not a change to the host's links.
std::pair<std::string, std::string> common_links(const std::string& before,
                                                 const std::string& after) {
  auto parse = [](const std::string& text) {
    std::map<std::string, std::string> by_link;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      by_link[line.substr(0, line.find(' '))] += line + "\n";
    }
    return by_link;
  };
  auto b = parse(before), a = parse(after);
  std::string kept_before, kept_after;
  for (const auto& [link, lines] : b) {
    if (auto it = a.find(link); it != a.end()) {
      kept_before += lines;
      kept_after += it->second;
    }
  }
  return {kept_before, kept_after};
}

TEST_F(NetworkFaults, HostRulesetAndQdiscsUnchanged) {
  std::string nft_before, nft_after;
  ASSERT_FALSE(kernel::nft_run_here("list ruleset\n", &nft_before));
  const auto qdisc_before = kernel::qdisc_snapshot_here();
  FaultInjector injector(ctx_, nullptr);
  ASSERT_FALSE(injector.inject({FaultKind::halves, {}, NoParams{}}).error);
  RateParams r;
  r.bytes_per_second = 1'000'000;
  ASSERT_FALSE(injector.inject({FaultKind::rate, {"b"}, r}).error);
  if (!ctx_.shaper_binary.empty()) {
    PacketParams p;
    p.delay = 5ms;
    ASSERT_FALSE(injector.inject({FaultKind::packets, {"c"}, p}).error);
  }
  std::string during;
  ASSERT_FALSE(kernel::nft_run_here("list ruleset\n", &during));
  EXPECT_EQ(during, nft_before) << "a fault touched the root namespace's nftables";
  {
    auto [b, a] = common_links(qdisc_before, kernel::qdisc_snapshot_here());
    EXPECT_EQ(a, b) << "a fault touched a root-namespace qdisc";
  }
  ASSERT_FALSE(injector.heal_all());
  ASSERT_FALSE(kernel::nft_run_here("list ruleset\n", &nft_after));
  EXPECT_EQ(nft_after, nft_before);
  auto [b, a] = common_links(qdisc_before, kernel::qdisc_snapshot_here());
  EXPECT_EQ(a, b);
}

TEST_F(NetworkFaults, FaultsOutsideTheRunAreRefused) {
  FaultTopology foreign = topo_;
  foreign.nodes[0].netns = "somebody-else";
  FaultContext ctx = ctx_;
  ctx.topology = &foreign;
  std::error_code ec;
  EXPECT_EQ(make_fault(1, {FaultKind::isolate, {"a"}, NoParams{}}, ctx, ec), nullptr);
  EXPECT_EQ(ec, fault_errc::not_owned);
  EXPECT_EQ(make_fault(1, {FaultKind::isolate, {"zz"}, NoParams{}}, ctx_, ec), nullptr);
  EXPECT_EQ(ec, fault_errc::unknown_target);
}

// ---------------------------------------------------------------- disk

double direct_write_seconds(const fs::path& file, const IoCgroup* cgroup, size_t bytes) {
  int ready[2];
  EXPECT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    char c;
    (void)::read(ready[0], &c, 1);  // wait until placed in the cgroup
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_TRUNC, 0644);
    if (fd < 0)
      ::_exit(2);
    void* buf = nullptr;
    if (::posix_memalign(&buf, 4096, 65536) != 0)
      ::_exit(3);
    std::memset(buf, 'd', 65536);
    for (size_t done = 0; done < bytes; done += 65536) {
      if (::write(fd, buf, 65536) != 65536)
        ::_exit(4);
    }
    ::fsync(fd);
    ::_exit(0);
  }
  if (cgroup != nullptr) {
    EXPECT_FALSE(cgroup->add_process(pid));
  }
  const auto start = Clock::now();
  (void)::write(ready[1], "g", 1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(DiskFaults, ThrottleCapsDirectWritesOnTheLoopMount) {
  FAULTLINE_REQUIRE_ROOT();
  if (detect_cgroup_io() == CgroupIo::none)
    GTEST_SKIP() << "no cgroup I/O controller";
  const std::string prefix = fmt::format("flfd{}", ::getpid() % 100000);
  const fs::path dir = fs::temp_directory_path() / prefix;
  fs::create_directories(dir);
  TestJournal recorder(prefix);
  std::string device;
  fs::path cgroup_path;
  {
    std::error_code ec;
    auto disk = LoopDisk::create(dir / "b-1.img", dir / "b-1", 64ull << 20, &recorder, ec);
    ASSERT_TRUE(disk.has_value()) << ec.message();
    device = disk->device();
    auto cgroup = IoCgroup::create(prefix, "b-1", &recorder, ec);
    ASSERT_TRUE(cgroup.has_value()) << ec.message();
    cgroup_path = cgroup->path();

    FaultTopology topo{prefix, {FaultNode{"b-1", "", {}, disk->major_minor(), cgroup->path(), {}}}};
    FaultContext ctx{&topo, &recorder, nullptr, {}, {}, 1};
    const size_t bytes = 3 << 20;
    const double free_s = direct_write_seconds(disk->mount_point() / "f", &*cgroup, bytes);

    DiskParams limit;
    limit.write_bytes_per_second = 2 << 20;
    FaultInjector injector(ctx, nullptr);
    auto out = injector.inject({FaultKind::disk_throttle, {"b-1"}, limit});
    ASSERT_FALSE(out.error) << out.error.message();
    EXPECT_TRUE(out.verified);
    const double throttled_s = direct_write_seconds(disk->mount_point() / "f", &*cgroup, bytes);
    // 3 MiB at 2 MiB/s: about 1.5 s; unthrottled it is far faster.
    EXPECT_GT(throttled_s, 0.9) << "free: " << free_s;
    EXPECT_LT(free_s, 0.6);
    auto healed = injector.heal(out.id);
    ASSERT_FALSE(healed.error);
    EXPECT_TRUE(healed.verified);
    EXPECT_LT(direct_write_seconds(disk->mount_point() / "f", &*cgroup, bytes), 0.6);
  }
  // RAII removed everything.
  EXPECT_FALSE(fs::exists(cgroup_path));
  EXPECT_FALSE(fs::exists(dir / "b-1.img"));
  std::ifstream mounts("/proc/mounts");
  std::string all((std::istreambuf_iterator<char>(mounts)), {});
  EXPECT_EQ(all.find((dir / "b-1").string()), std::string::npos);
  EXPECT_FALSE(fs::exists(fmt::format("/sys/block/{}/loop", fs::path(device).filename().string())))
      << device << " still attached";
  EXPECT_TRUE(recorder.live.empty());
  EXPECT_EQ(recorder.outstanding_in_journal(), 0u) << "faultline clean would find leftovers";
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- process

class ChildProcesses final : public ProcessControl {
 public:
  std::optional<pid_t> pid(const NodeName&) const override {
    return child > 0 ? std::optional<pid_t>(child) : std::nullopt;
  }
  std::error_code signal(const NodeName&, int signo) override {
    return ::kill(child, signo) == 0 ? std::error_code{}
                                     : std::error_code(errno, std::generic_category());
  }
  std::error_code wait_exit(const NodeName&, std::chrono::milliseconds) override {
    ::waitpid(child, nullptr, 0);
    child = -1;
    return {};
  }
  std::error_code start(const NodeName&) override {
    child = ::fork();
    if (child == 0) {
      for (;;)
        ::pause();
    }
    return {};
  }
  ~ChildProcesses() override {
    if (child > 0) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
    }
  }
  pid_t child = -1;
};

TEST(ProcessFaults, PauseStopsAndResumeRestarts) {
  FAULTLINE_REQUIRE_ROOT();
  ChildProcesses procs;
  procs.start("b-1");
  FaultTopology topo{"flp", {FaultNode{"b-1", "", {}, std::nullopt, std::nullopt, {}}}};
  FaultContext ctx{&topo, nullptr, &procs, {}, {}, 1};
  FaultInjector injector(ctx, nullptr);
  auto out = injector.inject({FaultKind::pause, {"b-1"}, NoParams{}});
  ASSERT_FALSE(out.error);
  EXPECT_TRUE(out.verified);
  EXPECT_EQ(process_state(procs.child), 'T');
  auto healed = injector.heal(out.id);
  ASSERT_FALSE(healed.error);
  EXPECT_TRUE(healed.verified);
  EXPECT_NE(process_state(procs.child), 'T');

  const pid_t first = procs.child;
  auto kill = injector.inject({FaultKind::kill_restart, {"b-1"}, NoParams{}});
  ASSERT_FALSE(kill.error);
  EXPECT_TRUE(kill.verified);
  EXPECT_NE(procs.child, first);
  EXPECT_TRUE(injector.active().ids().empty()) << "one-offs are not kept active";
}

}  // namespace
}  // namespace faultline::chaos

namespace faultline::chaos {
namespace {

// The `fault` CLI logic across "invocations": inject, list, heal by id, heal --all, with the state
// in a run directory and the resources in its journal.
TEST_F(NetworkFaults, CliInjectListHealAcrossInvocations) {
  const fs::path run_dir = fs::temp_directory_path() / (prefix_ + "-run");
  fs::create_directories(run_dir);
  std::ofstream(run_dir / "journal.jsonl").flush();  // as `cluster up`'s Journal leaves it
  ASSERT_FALSE(save_fault_topology(run_dir, topo_));
  auto loaded = load_fault_topology(run_dir);
  ASSERT_TRUE(loaded.has_value());

  std::ostringstream out;
  FaultCommand inject;
  inject.verb = FaultCommand::Verb::inject;
  inject.spec = {FaultKind::isolate, {"b"}, NoParams{}};
  ASSERT_EQ(run_fault_command(inject, *loaded, run_dir, nullptr, out), 0) << out.str();
  inject.spec = {FaultKind::one_way, {"a", "c"}, NoParams{}};
  ASSERT_EQ(run_fault_command(inject, *loaded, run_dir, nullptr, out), 0) << out.str();
  EXPECT_FALSE(reaches("a", "b"));
  EXPECT_FALSE(reaches("a", "c"));

  std::ostringstream listing;
  FaultCommand list;
  ASSERT_EQ(run_fault_command(list, *loaded, run_dir, nullptr, listing), 0);
  EXPECT_NE(listing.str().find("1\tisolate\tb"), std::string::npos) << listing.str();
  EXPECT_NE(listing.str().find("2\tone-way\ta,c"), std::string::npos) << listing.str();

  FaultCommand heal;
  heal.verb = FaultCommand::Verb::heal;
  heal.heal_id = 1;
  ASSERT_EQ(run_fault_command(heal, *loaded, run_dir, nullptr, out), 0) << out.str();
  EXPECT_TRUE(reaches("a", "b"));
  EXPECT_FALSE(reaches("a", "c"));
  EXPECT_EQ(run_fault_command(heal, *loaded, run_dir, nullptr, out), 2) << "healed twice";
  heal.heal_id.reset();
  heal.heal_all = true;
  ASSERT_EQ(run_fault_command(heal, *loaded, run_dir, nullptr, out), 0) << out.str();
  EXPECT_TRUE(reaches("a", "c"));

  // faults.jsonl: two injections and two heals, each a JSON line with the contract's fields.
  std::ifstream log(run_dir / "faults.jsonl");
  int lines = 0, heals = 0;
  for (std::string line; std::getline(log, line); ++lines) {
    auto j = nlohmann::json::parse(line);
    for (const char* field : {"id", "kind", "targets", "params", "phase", "monotonic_ns",
                              "wall_time", "verified", "backend"}) {
      EXPECT_TRUE(j.contains(field)) << field << " missing in " << line;
    }
    EXPECT_TRUE(j["verified"].get<bool>()) << line;
    heals += j["phase"] == "heal";
  }
  EXPECT_EQ(lines, 4);
  EXPECT_EQ(heals, 2);
  // The journal lists the nft tables as intended and then removed.
  std::ifstream journal(run_dir / "journal.jsonl");
  std::string text((std::istreambuf_iterator<char>(journal)), {});
  EXPECT_NE(text.find("nft-table"), std::string::npos);
  fs::remove_all(run_dir);
}

}  // namespace
}  // namespace faultline::chaos
