// The workload's client seam: how each client library's answers become history outcomes, the
// `[workload] client` key, and what the checker makes of a history written through a client that
// cannot report leader epochs (librdkafka 2.0).
#include "runner/workload_client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "faultline/chaos/runner/scenario.h"
#include "faultline/chaos/runner/schedule.h"
#include "faultline/chaos/runner/shrink.h"
#include "faultline/checker/recorder.h"
#include "faultline/checker/verdict.h"
#include "runner/rdkafka_client.h"
#include "runner/workload.h"

namespace faultline::chaos {
namespace {

using namespace std::chrono_literals;
using checker::Outcome;

// ---- librdkafka delivery reports ----

struct Report {
  rd_kafka_resp_err_t err;
  rd_kafka_msg_status_t status;
  Outcome expected;
};

TEST(DeliveryOutcome, ByErrorAndPersistenceStatus) {
  constexpr auto kNot = RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
  constexpr auto kMaybe = RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED;
  constexpr auto kPersisted = RD_KAFKA_MSG_STATUS_PERSISTED;
  const Report table[] = {
      // No error: acknowledged, whatever the status says.
      {RD_KAFKA_RESP_ERR_NO_ERROR, kPersisted, Outcome::ok},
      {RD_KAFKA_RESP_ERR_NO_ERROR, kMaybe, Outcome::ok},
      {RD_KAFKA_RESP_ERR_NO_ERROR, kNot, Outcome::ok},
      // Refused up front, or timed out in the queue before any request: nothing written.
      {RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, kNot, Outcome::fail},
      {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, kNot, Outcome::fail},
      {RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, kNot, Outcome::fail},
      {RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, kNot, Outcome::fail},
      // Written, maybe: after the append, a request timeout, a connection lost mid-request.
      {RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, kMaybe, Outcome::info},
      {RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, kMaybe, Outcome::info},
      {RD_KAFKA_RESP_ERR__TIMED_OUT, kMaybe, Outcome::info},
      {RD_KAFKA_RESP_ERR__TRANSPORT, kMaybe, Outcome::info},
      {RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, kMaybe, Outcome::info},
      // An error on a message librdkafka knows was written: it is in the log.
      {RD_KAFKA_RESP_ERR__TIMED_OUT, kPersisted, Outcome::ok},
  };
  for (const auto& r : table)
    EXPECT_EQ(delivery_outcome(r.err, r.status), r.expected)
        << rd_kafka_err2name(r.err) << " status " << r.status;
  // A status this build does not know is not a definite failure.
  EXPECT_EQ(delivery_outcome(RD_KAFKA_RESP_ERR__TRANSPORT, static_cast<rd_kafka_msg_status_t>(7)),
            Outcome::info);
}

TEST(DeliveryOutcome, AcknowledgedSendHasOffsetAndBrokerButNoEpoch) {
  auto ok = delivery_send_outcome(RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_MSG_STATUS_PERSISTED, 41, 2);
  EXPECT_EQ(ok.outcome, Outcome::ok);
  EXPECT_EQ(ok.offset, 41);
  EXPECT_EQ(ok.leader, 2);
  EXPECT_FALSE(ok.leader_epoch);  // librdkafka 2.0 does not expose it
  EXPECT_EQ(ok.error, "");

  auto unknown = delivery_send_outcome(RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_MSG_STATUS_PERSISTED,
                                       RD_KAFKA_OFFSET_INVALID, -1);
  EXPECT_EQ(unknown.outcome, Outcome::ok);
  EXPECT_FALSE(unknown.offset);
  EXPECT_FALSE(unknown.leader);

  auto info = delivery_send_outcome(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                                    RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED, 7, 1);
  EXPECT_EQ(info.outcome, Outcome::info);
  EXPECT_EQ(info.error, "NOT_ENOUGH_REPLICAS_AFTER_APPEND");
  EXPECT_FALSE(info.offset);  // only an acknowledgement says where the value is
  EXPECT_FALSE(info.leader);

  auto fail = delivery_send_outcome(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
                                    RD_KAFKA_MSG_STATUS_NOT_PERSISTED, -1, -1);
  EXPECT_EQ(fail.outcome, Outcome::fail);
  EXPECT_EQ(fail.error, "_MSG_TIMED_OUT");
}

// ---- faultline's own client ----

TEST(FaultlineSendOutcome, AcknowledgedDefiniteAndUnknown) {
  cluster::SendResult acked;
  acked.base_offset = cluster::Offset{12};
  acked.leader_epoch = cluster::LeaderEpoch{4};
  acked.leader = cluster::BrokerId{3};
  auto ok = faultline_send_outcome(acked);
  EXPECT_EQ(ok.outcome, Outcome::ok);
  EXPECT_EQ(ok.offset, 12);
  EXPECT_EQ(ok.leader_epoch, 4);
  EXPECT_EQ(ok.leader, 3);

  cluster::SendResult refused;
  refused.error = cluster::errc::not_enough_replicas;
  refused.definite = true;
  auto fail = faultline_send_outcome(refused);
  EXPECT_EQ(fail.outcome, Outcome::fail);
  EXPECT_EQ(fail.error, cluster::errc_name(cluster::errc::not_enough_replicas));
  EXPECT_FALSE(fail.offset);

  cluster::SendResult maybe = refused;
  maybe.definite = false;
  EXPECT_EQ(faultline_send_outcome(maybe).outcome, Outcome::info);
}

// ---- [workload] client ----

TEST(ScenarioClient, DefaultsToFaultlineAndReadsLibrdkafka) {
  ScenarioError error;
  auto plain = parse_scenario("name = \"x\"\n[workload]\npartitions = 2\n", "x.toml", error);
  ASSERT_TRUE(plain) << error.str();
  EXPECT_EQ(plain->workload.client, WorkloadClientKind::faultline);

  auto kafka =
      parse_scenario("name = \"x\"\n[workload]\nclient = \"librdkafka\"\n", "x.toml", error);
  ASSERT_TRUE(kafka) << error.str();
  EXPECT_EQ(kafka->workload.client, WorkloadClientKind::librdkafka);

  auto named =
      parse_scenario("name = \"x\"\n[workload]\nclient = \"faultline\"\n", "x.toml", error);
  ASSERT_TRUE(named) << error.str();
  EXPECT_EQ(named->workload.client, WorkloadClientKind::faultline);

  for (const auto& name : builtin_scenario_names())
    EXPECT_EQ(builtin_scenario(name)->workload.client, WorkloadClientKind::faultline) << name;
}

TEST(ScenarioClient, AnUnknownClientIsAnErrorAtItsLine) {
  ScenarioError error;
  EXPECT_FALSE(parse_scenario("name = \"x\"\n[workload]\npartitions = 2\nclient = \"kafka-go\"\n",
                              "s.toml", error));
  EXPECT_EQ(error.file, "s.toml");
  EXPECT_EQ(error.line, 4);
  EXPECT_EQ(error.str(),
            "s.toml:4: workload.client: \"kafka-go\" is not \"faultline\" or \"librdkafka\"");

  EXPECT_FALSE(parse_scenario("name = \"x\"\n[workload]\nclient = 1\n", "s.toml", error));
  EXPECT_EQ(error.str(), "s.toml:3: client: expected a string");
}

TEST(ScenarioClient, AShrunkScenarioKeepsItsClient) {
  const std::string text =
      "name = \"x\"\nduration_s = 20\n[workload]\nclient = \"librdkafka\"\n[nemesis]\n"
      "repeat = { fault = \"kill\", target = \"leader(0)\", hold_s = 2 }\nevery_s = 5\n";
  ScenarioError error;
  auto s = parse_scenario(text, "x.toml", error);
  ASSERT_TRUE(s) << error.str();
  auto plan = make_schedule(*s, 1);
  ASSERT_FALSE(plan.empty());
  auto shrunk = parse_scenario(minimal_scenario_toml(text, {plan[0]}, 20s, 1), "min.toml", error);
  ASSERT_TRUE(shrunk) << error.str();
  EXPECT_EQ(shrunk->workload.client, WorkloadClientKind::librdkafka);
}

// ---- RdKafkaWorkloadClient without a cluster ----

TEST(RdKafkaClient, BootstrapListAndConfigurationCheck) {
  EXPECT_EQ(kafka_bootstrap_list({{"198.18.2.11", 9094}, {"198.18.2.12", 9094}}),
            "198.18.2.11:9094,198.18.2.12:9094");
  EXPECT_EQ(kafka_bootstrap_list({}), "");
  RdKafkaConfig c;
  c.bootstrap = "127.0.0.1:1";
  c.topic = "faultline";
  EXPECT_EQ(RdKafkaWorkloadClient::check(c), std::nullopt);
  c.bootstrap.clear();
  EXPECT_TRUE(RdKafkaWorkloadClient::check(c));
  c.bootstrap = "127.0.0.1:1";
  c.request_timeout = 0ms;  // below socket.timeout.ms's minimum
  EXPECT_TRUE(RdKafkaWorkloadClient::check(c));
}

// Nothing listens on 127.0.0.1:1: a send never reaches a broker and so certainly failed, and a
// final read must say it could not read, never "the log ends here" (an empty ok).
TEST(RdKafkaClient, UnreachableClusterFailsSendsAndFinalReads) {
  RdKafkaConfig c;
  c.bootstrap = "127.0.0.1:1";
  c.topic = "faultline";
  c.request_timeout = 300ms;
  c.delivery_timeout = 600ms;
  c.final_read_timeout = 600ms;
  RdKafkaWorkloadClient client(c);
  auto sent = client.send(0, "1", true);
  EXPECT_EQ(sent.outcome, Outcome::fail) << sent.error;
  EXPECT_EQ(sent.error, "_MSG_TIMED_OUT");

  auto final_read = client.poll(0, 0, 0ms, true);
  EXPECT_NE(final_read.error, "");
  EXPECT_TRUE(final_read.records.empty());
  auto polled = client.poll(0, 0, 100ms, false);  // nothing to read is not an error here
  EXPECT_TRUE(polled.records.empty());
}

// ---- the workload through the seam ----

// A one-broker in-memory log: acknowledges every send at the next offset, by broker 1, with or
// without an epoch, and reads back up to the end.
class MemoryLog {
 public:
  explicit MemoryLog(bool with_epoch) : with_epoch_(with_epoch) {}
  SendOutcome append(int partition, const std::string& value) {
    std::lock_guard lock(mu_);
    auto& log = logs_[partition];
    log.push_back(value);
    SendOutcome out{Outcome::ok, static_cast<int64_t>(log.size() - 1), std::nullopt, 1, ""};
    if (with_epoch_)
      out.leader_epoch = 0;
    return out;
  }
  PollOutcome read(int partition, int64_t from) {
    std::lock_guard lock(mu_);
    PollOutcome out;
    const auto& log = logs_[partition];
    for (auto o = from; o < static_cast<int64_t>(log.size()); ++o)
      out.records.emplace_back(o, log[o]);
    return out;
  }

 private:
  bool with_epoch_;
  std::mutex mu_;
  std::map<int, std::vector<std::string>> logs_;
};

class MemoryClient final : public WorkloadClient {
 public:
  explicit MemoryClient(MemoryLog& log) : log_(log) {}
  SendOutcome send(int partition, const std::string& value, bool) override {
    return log_.append(partition, value);
  }
  PollOutcome poll(int partition, int64_t from, std::chrono::milliseconds, bool) override {
    return log_.read(partition, from);
  }

 private:
  MemoryLog& log_;
};

checker::History run_workload(MemoryLog& log, const std::filesystem::path& file) {
  {
    auto recorder = checker::HistoryRecorder::open(
        file.string(), checker::HistoryHeader{"kafka", checker::Acks::all});
    EXPECT_TRUE(recorder);
    WorkloadShape shape;
    shape.partitions = 2;
    shape.rate_per_s = 200;
    Workload workload(
        shape, [&log] { return std::make_unique<MemoryClient>(log); }, 1, **recorder);
    workload.start();
    std::this_thread::sleep_for(200ms);
    workload.stop();
    workload.final_read();
    EXPECT_GT(workload.counts().ok.load(), 0);
  }
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  auto history = checker::parse_jsonl(text.str(), file.string());
  EXPECT_TRUE(history) << history.error().to_string();
  return std::move(*history);
}

TEST(WorkloadClientSeam, SendsRecordOffsetEpochAndBrokerAsTheClientReportsThem) {
  const auto dir = std::filesystem::temp_directory_path() / "faultline-workload-client-test";
  std::filesystem::create_directories(dir);
  MemoryLog with(true), without(false);
  auto a = run_workload(with, dir / "with-epoch.jsonl");
  auto b = run_workload(without, dir / "without-epoch.jsonl");
  for (const auto* h : {&a, &b}) {
    size_t acked = 0;
    for (const auto& op : h->ops) {
      if (op.f != checker::Function::send || op.outcome != Outcome::ok)
        continue;
      ++acked;
      EXPECT_TRUE(op.offset);
      EXPECT_EQ(op.leader, checker::BrokerId{1});
      EXPECT_EQ(op.epoch.has_value(), h == &a);
    }
    EXPECT_GT(acked, 0u);
  }
  std::filesystem::remove_all(dir);
}

// What the checker does with acknowledgements without an epoch: the same data verdict, and the
// acknowledgement checks that need the epoch are reported as not checked, not as anomalies.
TEST(WorkloadClientSeam, AcksWithoutEpochAreValidAndTheirChecksListedAsUnchecked) {
  const auto dir = std::filesystem::temp_directory_path() / "faultline-workload-client-verdict";
  std::filesystem::create_directories(dir);
  MemoryLog with(true), without(false);
  auto a = checker::judge_kafka(run_workload(with, dir / "a.jsonl"));
  auto b = checker::judge_kafka(run_workload(without, dir / "b.jsonl"));
  EXPECT_EQ(a.verdict, checker::Verdict::valid) << a.summary();
  EXPECT_EQ(b.verdict, checker::Verdict::valid) << b.summary();
  EXPECT_GT(a.invariants.acks_with_leader, 0u);
  EXPECT_EQ(b.invariants.acks_with_leader, 0u);
  auto mentions_split_brain = [](const checker::InvariantResult& r) {
    for (const auto& why : r.unchecked)
      if (why.find("split-brain-ack") != std::string::npos)
        return true;
    return false;
  };
  EXPECT_FALSE(mentions_split_brain(a.invariants));
  EXPECT_TRUE(mentions_split_brain(b.invariants));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace faultline::chaos
