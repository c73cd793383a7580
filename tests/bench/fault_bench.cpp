// Fault backend costs (ARCHITECTURE.md §9): inject+heal latency per fault kind (target <= 10 ms
// each way) and the NFQUEUE shaper's throughput and CPU at 0 ms and 50 ms delay. Needs root; builds
// its own two-namespace topology (hub namespace with a bridge, nodes a and b) and removes it at
// exit. Run once: build/bench/fault_bench
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "faultline/chaos/faults/disk.h"
#include "faultline/chaos/faults/injector.h"
#include "faultline/chaos/faults/partition.h"

namespace fs = std::filesystem;
using namespace faultline::chaos;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

class NullRecorder final : public ResourceRecorder {
 public:
  std::error_code will_create(const std::string&, const std::string&,
                              const nlohmann::json&) override {
    return {};
  }
  void removed(const std::string&, const std::string&) override {}
};

int sh(const std::string& cmd) {
  return std::system((cmd + " >/dev/null 2>&1").c_str());
}

// Two nodes on a bridge inside a hub namespace; torn down by the destructor.
struct BenchTopology {
  std::string prefix = fmt::format("flfb{}", ::getpid() % 100000);
  FaultTopology topo;
  NullRecorder recorder;
  FaultContext ctx;
  bool ok = false;

  BenchTopology() {
    if (::geteuid() != 0)
      return;
    const auto hub = prefix + "-hub";
    ok = sh("ip netns add " + hub) == 0 &&
         sh(fmt::format("ip -n {0} link add br0 type bridge && ip -n {0} link set br0 up", hub)) ==
             0;
    int i = 1;
    for (const char* n : {"a", "b"}) {
      const auto ns = prefix + "-" + n;
      const auto addr = fmt::format("198.18.201.{}", i++);
      ok = ok && sh("ip netns add " + ns) == 0 &&
           sh(fmt::format(
               "ip -n {0} link add v-{1} type veth peer name int netns {2} && "
               "ip -n {0} link set v-{1} master br0 up && ip -n {2} addr add {3}/24 dev int "
               "&& ip -n {2} link set int up && ip -n {2} link set lo up",
               hub, n, ns, addr)) == 0;
      topo.nodes.push_back(FaultNode{n, ns, {{"int", addr}}, std::nullopt, std::nullopt, {}});
    }
    topo.run_prefix = prefix;
    ctx.topology = &topo;
    ctx.recorder = &recorder;
    ctx.shaper_binary =
        fs::read_symlink("/proc/self/exe").parent_path().parent_path() / "bin" / "faultline-shaper";
    if (!fs::exists(ctx.shaper_binary)) {
      ctx.shaper_binary = fs::read_symlink("/proc/self/exe").parent_path() / "faultline-shaper";
    }
    ctx.run_dir = fs::temp_directory_path();
    std::this_thread::sleep_for(200ms);
  }
  ~BenchTopology() {
    for (const char* n : {"a", "b", "hub"})
      sh(fmt::format("ip netns del {}-{}", prefix, n));
  }
};

BenchTopology& topology() {
  static BenchTopology t;
  return t;
}

void inject_heal(benchmark::State& state, FaultSpec spec) {
  auto& t = topology();
  if (!t.ok) {
    state.SkipWithError("needs root (namespaces)");
    return;
  }
  FaultInjector injector(t.ctx, nullptr);
  double inject_ns = 0, heal_ns = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    auto o = injector.inject(spec, /*verify=*/false);
    const auto t1 = Clock::now();
    if (o.error) {
      state.SkipWithError(o.error.message().c_str());
      return;
    }
    injector.heal(o.id, /*verify=*/false);
    const auto t2 = Clock::now();
    inject_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    heal_ns += std::chrono::duration<double, std::nano>(t2 - t1).count();
  }
  state.counters["inject_ms"] = inject_ns / 1e6 / static_cast<double>(state.iterations());
  state.counters["heal_ms"] = heal_ns / 1e6 / static_cast<double>(state.iterations());
}

void BM_Isolate(benchmark::State& s) {
  inject_heal(s, {FaultKind::isolate, {"a"}, NoParams{}});
}
void BM_OneWay(benchmark::State& s) {
  inject_heal(s, {FaultKind::one_way, {"a", "b"}, NoParams{}});
}
void BM_CutLink(benchmark::State& s) {
  inject_heal(s, {FaultKind::cut_link, {"a"}, LinkParams{"int"}});
}
void BM_Rate(benchmark::State& s) {
  RateParams r;
  r.bytes_per_second = 1'000'000;
  inject_heal(s, {FaultKind::rate, {"a"}, r});
}
void BM_PacketsShaper(benchmark::State& s) {
  PacketParams p;
  p.delay = 10ms;
  inject_heal(s, {FaultKind::packets, {"a"}, p});
}

class ChildControl final : public ProcessControl {
 public:
  pid_t child = -1;
  std::optional<pid_t> pid(const NodeName&) const override { return child; }
  std::error_code signal(const NodeName&, int signo) override {
    ::kill(child, signo);
    return {};
  }
  std::error_code wait_exit(const NodeName&, std::chrono::milliseconds) override { return {}; }
  std::error_code start(const NodeName&) override { return {}; }
};

void BM_Pause(benchmark::State& state) {
  ChildControl procs;
  procs.child = ::fork();
  if (procs.child == 0) {
    for (;;)
      ::pause();
  }
  FaultTopology topo{"flfb", {FaultNode{"a", "", {}, std::nullopt, std::nullopt, {}}}};
  FaultContext ctx{&topo, nullptr, &procs, {}, {}, 1};
  FaultInjector injector(ctx, nullptr);
  for (auto _ : state) {
    auto o = injector.inject({FaultKind::pause, {"a"}, NoParams{}}, false);
    injector.heal(o.id, false);
  }
  ::kill(procs.child, SIGKILL);
  ::waitpid(procs.child, nullptr, 0);
}

void BM_DiskThrottle(benchmark::State& state) {
  if (::geteuid() != 0 || detect_cgroup_io() == CgroupIo::none) {
    state.SkipWithError("needs root and a cgroup I/O controller");
    return;
  }
  const std::string prefix = fmt::format("flfbd{}", ::getpid() % 100000);
  const auto dir = fs::temp_directory_path() / prefix;
  fs::create_directories(dir);
  NullRecorder rec;
  std::error_code ec;
  {
    auto disk = LoopDisk::create(dir / "d.img", dir / "mnt", 32 << 20, &rec, ec);
    auto cg = IoCgroup::create(prefix, "a", &rec, ec);
    if (!disk || !cg) {
      state.SkipWithError("loop disk / cgroup setup failed");
    } else {
      FaultTopology topo{prefix, {FaultNode{"a", "", {}, disk->major_minor(), cg->path(), {}}}};
      FaultContext ctx{&topo, &rec, nullptr, {}, {}, 1};
      FaultInjector injector(ctx, nullptr);
      for (auto _ : state) {
        auto o = injector.inject({FaultKind::disk_stall, {"a"}, stall_limits()}, false);
        injector.heal(o.id, false);
      }
    }
  }
  fs::remove_all(dir);
}

// Bytes/s of one TCP stream a -> b for `duration`, and the shaper's CPU share meanwhile.
void BM_ShaperThroughput(benchmark::State& state) {
  auto& t = topology();
  if (!t.ok) {
    state.SkipWithError("needs root (namespaces)");
    return;
  }
  const int delay_ms = static_cast<int>(state.range(0));  // -1: no shaper (baseline)
  FaultInjector injector(t.ctx, nullptr);
  std::optional<FaultId> id;
  if (delay_ms >= 0) {
    PacketParams p;
    p.delay = std::chrono::milliseconds(delay_ms);
    p.loss_pct = delay_ms == 0 ? 0.0001 : 0;  // a no-op fault must still have an effect to be valid
    auto o = injector.inject({FaultKind::packets, {"a"}, p}, false);
    if (o.error) {
      state.SkipWithError(o.error.message().c_str());
      return;
    }
    id = o.id;
  }
  auto shaper_ticks = [] {
    uint64_t ticks = 0;
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::ifstream cmd(e.path() / "cmdline");
      std::string c((std::istreambuf_iterator<char>(cmd)), {});
      if (c.find("faultline-shaper") == std::string::npos)
        continue;
      std::ifstream st(e.path() / "stat");
      std::string line;
      std::getline(st, line);
      std::istringstream rest(line.substr(line.rfind(')') + 2));
      std::string f;
      std::vector<std::string> fields;
      while (rest >> f)
        fields.push_back(f);
      if (fields.size() > 12)
        ticks += std::stoull(fields[11]) + std::stoull(fields[12]);
    }
    return ticks;
  };
  int listener = -1, client = -1;
  faultline::chaos::FaultNode& b = t.topo.nodes[1];
  auto in_ns = [](const std::string& ns, auto fn) {
    std::thread th([&] {
      int fd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY);
      ::setns(fd, CLONE_NEWNET);
      ::close(fd);
      fn();
    });
    th.join();
  };
  in_ns(b.netns, [&] {
    listener = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(5002);
    ::bind(listener, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    ::listen(listener, 1);
  });
  in_ns(t.topo.nodes[0].netns, [&] { client = ::socket(AF_INET, SOCK_STREAM, 0); });
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(5002);
  ::inet_pton(AF_INET, b.addresses["int"].c_str(), &dst.sin_addr);
  ::connect(client, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
  const int server = ::accept(listener, nullptr, nullptr);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> received{0};
  std::thread reader([&] {
    std::vector<char> buf(1 << 16);
    while (!done) {
      pollfd pfd{server, POLLIN, 0};
      if (::poll(&pfd, 1, 50) == 1) {
        auto n = ::recv(server, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n > 0)
          received += static_cast<uint64_t>(n);
      }
    }
  });
  std::vector<char> chunk(1 << 16, 'x');
  double secs = 0;
  uint64_t ticks = 0;
  for (auto _ : state) {
    const auto ticks0 = shaper_ticks();
    const auto start = Clock::now();
    const auto bytes0 = received.load();
    while (Clock::now() - start < 1500ms) {
      pollfd pfd{client, POLLOUT, 0};
      if (::poll(&pfd, 1, 20) == 1)
        ::send(client, chunk.data(), chunk.size(), MSG_DONTWAIT);
    }
    secs += std::chrono::duration<double>(Clock::now() - start).count();
    ticks += shaper_ticks() - ticks0;
    state.SetBytesProcessed(state.bytes_processed() +
                            static_cast<int64_t>(received.load() - bytes0));
  }
  done = true;
  reader.join();
  ::close(client);
  ::close(server);
  ::close(listener);
  state.counters["MB_per_s"] = static_cast<double>(state.bytes_processed()) / secs / 1e6;
  state.counters["shaper_cpu_pct"] =
      100.0 * static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK)) / secs;
  if (id)
    injector.heal(*id, false);
}

}  // namespace

BENCHMARK(BM_Isolate)->Iterations(20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_OneWay)->Iterations(20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CutLink)->Iterations(20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Rate)->Iterations(20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PacketsShaper)->Iterations(10)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Pause)->Iterations(50)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DiskThrottle)->Iterations(20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ShaperThroughput)
    ->Arg(-1)
    ->Arg(0)
    ->Arg(50)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
