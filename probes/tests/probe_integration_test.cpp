// faultline-probe against a real cluster on loopback (no namespaces): the process probes, reads the
// brokers' storage canaries, demotes through the controller, logs and exports what it did, and
// stops cleanly on SIGTERM. A broker "clients cannot reach" is one the probe is pointed at on a
// port where nothing listens; the broker itself stays healthy, as in a gray failure.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>

#include "child_process.h"
#include "local_cluster.h"
#include "scrape.h"

namespace faultline::probes {
namespace {

using namespace std::chrono_literals;
using faultline::testing::binary_dir;
using faultline::testing::ChildProcess;
using faultline::testing::free_port;
using faultline::testing::LocalCluster;
using faultline::testing::metric_value;
using faultline::testing::TempDir;
using faultline::testing::wait_until;

struct Probe {
  ChildProcess process;
  uint16_t metrics_port = 0;
  std::filesystem::path decisions;

  std::string metrics() const {
    return faultline::testing::http_get("127.0.0.1", metrics_port, "/metrics");
  }
  std::vector<nlohmann::json> lines() const {
    std::vector<nlohmann::json> out;
    std::ifstream in(decisions);
    for (std::string line; std::getline(in, line);)
      out.push_back(nlohmann::json::parse(line));
    return out;
  }
};

// Starts faultline-probe against `targets` ("1=127.0.0.1:P,...").
std::unique_ptr<Probe> start_probe(const TempDir& dir, LocalCluster& cluster,
                                   const std::string& targets) {
  auto p = std::make_unique<Probe>();
  p->metrics_port = free_port();
  p->decisions = dir.path() / "decisions.jsonl";
  p->process = ChildProcess(
      {(binary_dir() / "faultline-probe").string(), "--brokers", targets, "--controller",
       cluster.client_config().controllers.at(0).str(), "--interval-ms", "100",
       "--failures-to-demote", "3", "--recovery-hold-ms", "1000", "--metrics-host", "127.0.0.1",
       "--metrics-port", std::to_string(p->metrics_port), "--decisions", p->decisions.string()},
      dir.path() / "probe.log");
  return p;
}

std::string target(int id, const cluster::Endpoint& ep) {
  return std::to_string(id) + "=" + ep.str();
}

TEST(ProbeProcess, DemotesABrokerClientsCannotReachAndReadsEveryCanary) {
  TempDir dir("faultline-probe");
  LocalCluster cluster;
  cluster::SyncClient admin(cluster.client_config());
  ASSERT_EQ(admin.create_topic("t", 3, 3).error, cluster::errc::none);
  for (int p = 0; p < 3; ++p) {
    ASSERT_TRUE(admin.wait_for_leader({"t", cluster::PartitionIndex{p}}, 10s,
                                      [](const auto& m) { return m.isr.size() == 3; }));
  }
  const cluster::Endpoint nowhere{"127.0.0.1", free_port()};
  auto probe = start_probe(dir, cluster,
                           target(1, cluster.client_endpoint(1)) + "," + target(2, nowhere) + "," +
                               target(3, cluster.client_endpoint(3)));

  ASSERT_TRUE(wait_until(
      [&] {
        auto md = admin.controller_metadata();
        return md && std::any_of(md->brokers.begin(), md->brokers.end(), [](const auto& b) {
                 return b.id == cluster::BrokerId{2} && b.demoted;
               });
      },
      10s))
      << probe->process.log();
  auto md = admin.controller_metadata();
  ASSERT_TRUE(md);
  for (const auto& b : md->brokers) {
    if (b.id == cluster::BrokerId{2}) {
      EXPECT_EQ(b.demotion_reason, "network-health");
    } else {
      EXPECT_FALSE(b.demoted);
    }
  }
  ASSERT_TRUE(wait_until(
      [&] {
        auto m = admin.controller_metadata();
        return m && std::none_of(m->partitions.begin(), m->partitions.end(),
                                 [](const auto& p) { return p.leader == cluster::BrokerId{2}; });
      },
      5s));

  // The probe writes its line once the controller answered: that can come after the metadata
  // above already showed the demotion.
  ASSERT_TRUE(wait_until([&] { return !probe->lines().empty(); }, 5s)) << probe->process.log();
  auto lines = probe->lines();
  ASSERT_EQ(lines.size(), 1u) << probe->process.log();
  EXPECT_EQ(lines[0]["type"], "decision");
  EXPECT_EQ(lines[0]["action"], "demote");
  EXPECT_EQ(lines[0]["broker"], 2);
  EXPECT_EQ(lines[0]["reason"], "unreachable");
  EXPECT_EQ(lines[0]["controller"], "ok");
  EXPECT_GE(lines[0]["evidence"]["failure_streak"].get<int>(), 3);
  EXPECT_NE(lines[0]["evidence"]["last_error"].get<std::string>(), "");
  std::string log = probe->process.log();
  EXPECT_NE(log.find("event=health_decision demote broker=2 reason=unreachable"), std::string::npos)
      << log;

  // The metrics say the same, and the healthy brokers' canaries were read (fast local disk).
  std::string metrics = probe->metrics();
  EXPECT_EQ(metric_value(metrics, R"(faultline_probe_up{broker="2"})"), 0) << metrics;
  EXPECT_EQ(metric_value(metrics, R"(faultline_probe_up{broker="1"})"), 1);
  EXPECT_EQ(
      metric_value(metrics,
                   R"(faultline_health_decisions_total{action="demote",reason="unreachable"})"),
      1);
  EXPECT_EQ(metric_value(metrics, R"(faultline_health_demoted{broker="2"})"), 1);
  for (const char* b : {"1", "3"}) {
    auto fsync = metric_value(
        metrics, std::string("faultline_probe_storage_fsync_seconds{broker=\"") + b + "\"}");
    ASSERT_TRUE(fsync) << "no canary read from broker " << b << "\n" << metrics;
    EXPECT_GT(*fsync, 0);
    EXPECT_LT(*fsync, 1.0);
  }

  // Every broker's heartbeats carry its storage canary to the controller, which shows it.
  ASSERT_TRUE(wait_until(
      [&] {
        auto m = admin.controller_metadata();
        return m && std::all_of(m->brokers.begin(), m->brokers.end(),
                                [](const auto& b) { return b.storage_canary_us >= 0; });
      },
      5s));
  auto with_canaries = admin.controller_metadata();  // kept: the loop walks into it
  ASSERT_TRUE(with_canaries);
  for (const auto& b : with_canaries->brokers) {
    EXPECT_LT(b.storage_canary_us, 1'000'000) << "broker " << b.id.value();
    EXPECT_EQ(b.storage_canary_error, "");
  }

  // An operator promotes the broker the probe demoted, although clients still cannot reach it:
  // the probe lets go of its demotion, keeps off for its recovery hold (1 s), then demotes again.
  const auto promoted_at = std::chrono::steady_clock::now();
  ASSERT_EQ(admin.promote(cluster::BrokerId{2}), cluster::errc::none);
  ASSERT_TRUE(wait_until(
      [&] {
        auto l = probe->lines();
        return std::any_of(l.begin(), l.end(),
                           [](const auto& j) { return j["type"] == "promoted_elsewhere"; });
      },
      5s))
      << probe->process.log();
  // Lines after the first demotion: promoted_elsewhere, held (promoted_by_operator), demote.
  auto after_first = [&] {
    auto l = probe->lines();
    return std::vector<nlohmann::json>(l.begin() + 1, l.end());
  };
  auto demoted_again = [&] {
    auto l = after_first();
    return std::any_of(l.begin(), l.end(), [](const auto& j) { return j["type"] == "decision"; });
  };
  ASSERT_TRUE(wait_until(demoted_again, 10s)) << probe->process.log();
  const auto redemoted_after = std::chrono::steady_clock::now() - promoted_at;
  std::vector<std::string> kinds;
  for (const auto& j : after_first()) {
    EXPECT_EQ(j["broker"], 2) << j.dump();
    kinds.push_back(j["type"].get<std::string>() +
                    (j.contains("why") ? ":" + j["why"].get<std::string>() : "") +
                    (j.contains("action") ? ":" + j["action"].get<std::string>() : ""));
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"promoted_elsewhere", "held:promoted_by_operator",
                                             "decision:demote"}));
  EXPECT_GE(redemoted_after, 1s) << "the operator's promotion was overridden within the hold";
  EXPECT_NE(probe->process.log().find("event=promoted_elsewhere broker=2"), std::string::npos);

  // SIGTERM: a clean exit, promptly.
  probe->process.signal(SIGTERM);
  EXPECT_EQ(probe->process.wait_for(3s), 0);
  EXPECT_NE(probe->process.log().find("event=probe_stopped"), std::string::npos);
}

TEST(ProbeProcess, AProbeThatReachesNoBrokerDemotesNobody) {
  TempDir dir("faultline-probe");
  LocalCluster cluster;
  std::string targets;
  for (int id = 1; id <= 3; ++id) {
    targets += (id > 1 ? "," : "") + target(id, {"127.0.0.1", free_port()});
  }
  auto probe = start_probe(dir, cluster, targets);
  ASSERT_TRUE(wait_until(
      [&] {
        return metric_value(probe->metrics(),
                            R"(faultline_probe_rounds_total{vantage_point="suspect"})")
                   .value_or(0) >= 15;
      },
      10s))
      << probe->process.log();
  cluster::SyncClient admin(cluster.client_config());
  auto md = admin.controller_metadata();
  ASSERT_TRUE(md);
  for (const auto& b : md->brokers)
    EXPECT_FALSE(b.demoted) << "broker " << b.id.value();
  auto lines = probe->lines();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0]["type"], "vantage_point_suspect");
  for (const auto& l : lines)
    EXPECT_NE(l["type"], "decision");
}

TEST(ProbeProcess, RefusesNonsenseOnTheCommandLine) {
  TempDir dir("faultline-probe");
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), (binary_dir() / "faultline-probe").string());
    ChildProcess p(args, dir.path() / "usage.log");
    return p.wait_for(5s);
  };
  EXPECT_EQ(run({"--brokers", "1=127.0.0.1:1", "--controller", "127.0.0.1:2", "--interval-ms",
                 "100", "--probe-timeout-ms", "100"}),
            2);  // a probe must give up before the next round
  EXPECT_EQ(run({"--brokers", "1=127.0.0.1:1,1=127.0.0.1:2", "--controller", "127.0.0.1:2"}), 2);
  EXPECT_EQ(run({"--brokers", "x=127.0.0.1:1", "--controller", "127.0.0.1:2"}), 2);
  EXPECT_EQ(run({"--brokers", "1=127.0.0.1:1", "--controller", "127.0.0.1:2,"}), 2);
  EXPECT_EQ(run({"--brokers", "1=127.0.0.1:1", "--controller", "127.0.0.1:2,127.0.0.1:0"}), 2);
  EXPECT_EQ(run({"--brokers", "1=127.0.0.1:1", "--controller", "127.0.0.1:2",
                 "--failures-to-demote", "0"}),
            2);
}

}  // namespace
}  // namespace faultline::probes
