// Gray-failure failover with faultline-probe (ARCHITECTURE.md §4, §9), as root: a 3-broker cluster
// in namespaces, the probe at a given interval (K = 3 failed probes to demote). Each trial cuts the
// client (`ext`) link of a partition leader and measures the time until every partition it led
// acknowledges an acks=all write on another broker (a client that learns leaders from the
// controller, so the figure is the probe's and the cluster's, not a client's refresh policy),
// then heals and waits for the promotion and the preferred leaders. Each cut lands at a random
// (seeded) point of the probe's round. Also the probe's CPU cost:
// utime+stime from /proc over an idle stretch, per broker probed.
//
//   sudo ./build/bench/probe_failover_bench [--trials 20] [--intervals 100,1000] [--cpu-seconds 60]
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "child_process.h"
#include "probe_rig.h"

namespace {

using namespace faultline;
using namespace faultline::testing;
using namespace std::chrono_literals;

std::filesystem::path binaries() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return self.parent_path().parent_path() / "bin";
}

// utime + stime of `pid`, in seconds.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; rest >> field; ++i) {
    if (i == 14 || i == 15)
      ticks += std::stod(field);
    if (i == 15)
      break;
  }
  return ticks / double(::sysconf(_SC_CLK_TCK));
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  size_t i = size_t(std::ceil(q * double(v.size())));
  return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
}

int run(int interval_ms, int trials, int cpu_window_s) {
  chaos::ClusterShape shape;
  shape.brokers = 3;
  shape.binaries_dir = binaries();
  shape.probe = true;
  shape.probe_interval = std::chrono::milliseconds(interval_ms);
  shape.probe_args = {"--failures-to-demote", "3",   "--successes-to-promote", "3",
                      "--recovery-hold-ms",   "1000"};
  TempDir logs("faultline-probe-bench");
  std::unique_ptr<ProbeRig> rig;
  try {
    rig = std::make_unique<ProbeRig>(
        shape, fmt::format("probe-bench-{}-{}", interval_ms, ::getpid()), logs.path(), 6);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::vector<double> times;
  // The cut lands at a random point of the probe's round (seeded: the same sequence every run);
  // right after a promotion it would otherwise always land just after a round started.
  std::mt19937_64 rng(uint64_t(interval_ms) * 7919);
  std::uniform_int_distribution<int> phase_us(0, interval_ms * 1000 - 1);
  for (int t = 0; t < trials; ++t) {
    std::this_thread::sleep_for(std::chrono::microseconds(phase_us(rng)));
    const cluster::BrokerId leader = rig->leader_of(t % 6);
    const auto led = rig->led_by(leader);
    const auto preferred = rig->preferred_by(leader);
    const size_t promotions = rig->decisions("promote", leader).size();
    const auto cut_at = Clock::now();
    auto cut = rig->cut_link(chaos::ClusterHarness::broker_node(leader.value()), "ext");
    if (cut.error) {
      std::fprintf(stderr, "cut failed: %s\n", cut.error.message().c_str());
      return 1;
    }
    auto writable = rig->wait_writable_elsewhere(led, leader, 30s);
    Clock::duration worst{};
    for (auto& [p, at] : writable)
      worst = std::max(worst, at - cut_at);
    if (writable.size() != led.size()) {
      std::fprintf(stderr, "trial %d: partitions of broker %d never writable elsewhere\n", t,
                   leader.value());
      return 1;
    }
    times.push_back(seconds(worst));
    rig->heal(cut.id);
    bool back = wait_until(
        [&] {
          if (rig->decisions("promote", leader).size() <= promotions)
            return false;
          auto now_led = rig->led_by(leader);
          return std::all_of(preferred.begin(), preferred.end(), [&](int p) {
            return std::find(now_led.begin(), now_led.end(), p) != now_led.end();
          });
        },
        30s, 20ms);
    if (!back) {
      std::fprintf(stderr, "trial %d: broker %d not promoted back\n", t, leader.value());
      return 1;
    }
    std::fprintf(stderr,
                 "interval %d ms trial %d: broker %d, %zu partitions writable elsewhere "
                 "after %.3f s\n",
                 interval_ms, t, leader.value(), led.size(), times.back());
  }
  std::this_thread::sleep_for(2s);
  auto pid = rig->probe_pid();
  double cpu_per_broker_pct = -1;
  if (pid) {
    const double before = cpu_seconds(*pid);
    std::this_thread::sleep_for(std::chrono::seconds(cpu_window_s));
    const double used = cpu_seconds(*pid) - before;
    cpu_per_broker_pct = 100.0 * used / double(cpu_window_s) / double(shape.brokers);
  }
  std::printf(
      "probe interval %5d ms, K=3, %d trials: cut leader's ext -> all its partitions "
      "writable elsewhere p50 %.3f s  p99 %.3f s  max %.3f s | probe CPU %.3f%% of a core "
      "per broker (%d s idle)\n",
      interval_ms, trials, percentile(times, 0.5), percentile(times, 0.99),
      *std::max_element(times.begin(), times.end()), cpu_per_broker_pct, cpu_window_s);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int trials = 20, cpu_window_s = 60;
  std::vector<int> intervals = {100, 1000};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--trials") {
      trials = std::stoi(value);
    } else if (flag == "--cpu-seconds") {
      cpu_window_s = std::stoi(value);
    } else if (flag == "--intervals") {
      intervals.clear();
      std::stringstream ss(value);
      for (std::string item; std::getline(ss, item, ',');)
        intervals.push_back(std::stoi(item));
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);  // the harness's own lines
  if (::geteuid() != 0) {
    std::fprintf(stderr, "probe_failover_bench needs root (namespaces)\n");
    return 2;
  }
  for (int interval : intervals)
    if (int rc = run(interval, trials, cpu_window_s); rc != 0)
      return rc;
  return 0;
}
