// `faultline check` through CLI11, as the `faultline` main will run it: output lines, exit codes.
#include <faultline/checker/cli.h>
#include <faultline/checker/html.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "history_builder.h"
#include "oracle_paths.h"

namespace faultline::checker {
namespace {

namespace fs = std::filesystem;

struct Run {
  int exit_code = -1;
  std::string out;
  std::string err;
};

Run run(std::vector<std::string> args) {
  CLI::App app("faultline");
  int exit_code = -1;
  add_check_command(app, exit_code);
  args.insert(args.begin(), "faultline");
  std::vector<const char*> argv;
  for (const auto& a : args)
    argv.push_back(a.c_str());
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    exit_code = 100 + e.get_exit_code();
  }
  Run r;
  r.out = ::testing::internal::GetCapturedStdout();
  r.err = ::testing::internal::GetCapturedStderr();
  r.exit_code = exit_code;
  return r;
}

class CheckCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("faultline-cli-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  fs::path dir_;
};

std::string kafka_history(bool lose_a_write) {
  testing::HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::ok, 1);
  b.send(1, 0, 102, EventType::ok, 2);
  if (lose_a_write) {
    b.poll(2, 0, {{0, 100}});
    b.seek(2, 0, 2);
    b.poll(2, 0, {{2, 102}});
  } else {
    b.poll(2, 0, {{0, 100}, {1, 101}, {2, 102}}, /*final_read=*/true);
  }
  return b.jsonl();
}

TEST_F(CheckCli, EmptyHistoryIsUnknownAndExitsThree) {
  const auto file = write("empty.jsonl", testing::HistoryBuilder().jsonl());
  auto r = run({"check", "--model", "kafka", file});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_EQ(r.out.rfind(file + ": unknown", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("proves nothing: empty history: no operations"), std::string::npos) << r.out;
}

TEST_F(CheckCli, PartitionWithNothingAcknowledgedIsUnknownAndNamed) {
  testing::HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 1, 200, EventType::info);  // written to partition 1, never acknowledged
  b.poll(2, 0, {{0, 100}}, /*final_read=*/true);
  const auto file = write("p1.jsonl", b.jsonl());
  auto r = run({"check", "--model", "kafka", file});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("unknown"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("partition 1: nothing acknowledged"), std::string::npos) << r.out;
  auto j = nlohmann::json::parse(run({"check", "--json", "--model", "kafka", file}).out);
  EXPECT_EQ(j["verdict"], "unknown");
  EXPECT_EQ(j["valid"], false);
  EXPECT_EQ(j["vacuity"], nlohmann::json::array({"partition 1: nothing acknowledged"}));
}

TEST_F(CheckCli, LossWinsOverAnUnfinishedFinalRead) {
  testing::HistoryBuilder b;
  b.send(1, 0, 100, EventType::ok, 0);
  b.send(1, 0, 101, EventType::ok, 1);
  b.send(1, 0, 102, EventType::ok, 2);
  b.send(1, 0, 103, EventType::ok, 3);
  b.poll(2, 0, {{0, 100}, {2, 102}}, /*final_read=*/true);  // 101 lost; 103 not reached
  const auto file = write("lossy.jsonl", b.jsonl());
  auto r = run({"check", "--model", "kafka", file});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("invalid"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lost-write 1"), std::string::npos) << r.out;
}

TEST_F(CheckCli, InvariantViolationsMakeAKafkaHistoryInvalidWithEvidence) {
  testing::HistoryBuilder b;
  b.partition_state(0, 1, 1, {1, 2}, {1, 2});
  b.send_acked(1, 0, 100, 0, 1, 1);
  b.send_acked(3, 0, 101, 1, 1, 2);  // a second broker acknowledges in epoch 1
  b.poll(2, 0, {{0, 100}, {1, 101}}, /*final_read=*/true);
  const auto file = write("split.jsonl", b.jsonl());
  auto r = run({"check", "--model", "kafka", file});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("invariants: split-brain-ack 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("two leaders in one epoch"), std::string::npos) << r.out;
  auto j = nlohmann::json::parse(run({"check", "--json", "--model", "kafka", file}).out);
  EXPECT_EQ(j["verdict"], "invalid");
  EXPECT_EQ(j["invariants"]["violations"]["split-brain-ack"], 1);
  EXPECT_EQ(j["invariants"]["details"][0]["brokers"], nlohmann::json::array({1, 2}));
}

TEST(HtmlEscape, EveryCharacterThatCouldEndTextOrAnAttributeIsEscaped) {
  EXPECT_EQ(html_escape(R"(<a href="x" title='y'>&</a>)"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
  EXPECT_EQ(html_escape("plain text 123"), "plain text 123");
  EXPECT_EQ(html_escape(""), "");
}

TEST_F(CheckCli, ValidKafkaHistoryExitsZero) {
  const auto file = write("ok.jsonl", kafka_history(false));
  auto r = run({"check", "--model", "kafka", file});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind(file + ": valid", 0), 0u) << r.out;
}

TEST_F(CheckCli, LostWriteExitsOneAndNamesTheAnomaly) {
  const auto ok = write("ok.jsonl", kafka_history(false));
  const auto bad = write("bad.jsonl", kafka_history(true));
  auto r = run({"check", "--model", "kafka", "--format", "jsonl", ok, bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find(ok + ": valid"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(bad + ": invalid"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lost-write 1"), std::string::npos) << r.out;
}

TEST_F(CheckCli, JsonPrintsTheFullResult) {
  const auto bad = write("bad.jsonl", kafka_history(true));
  auto r = run({"check", "--json", bad});
  EXPECT_EQ(r.exit_code, 1);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["valid"], false);
  EXPECT_EQ(j["lost"], 1);
  EXPECT_EQ(j["anomalies"]["lost-write"], 1);
  EXPECT_EQ(j["details"][0]["values"][0], 101);
  EXPECT_EQ(j["details"][0]["ops"][0]["process"], 1);
}

TEST_F(CheckCli, KafkaHtmlListsTheAnomalyAndItsOperations) {
  const auto bad = write("bad.jsonl", kafka_history(true));
  const auto html = (dir_ / "kafka.html").string();
  auto r = run({"check", "--html", html, bad});
  EXPECT_EQ(r.exit_code, 1);
  const auto page = testing::read_file(html);
  EXPECT_NE(page.find("lost-write"), std::string::npos);
  EXPECT_NE(page.find("value 101 was acknowledged at offset 1"), std::string::npos);
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_NE(page.find("process 1"), std::string::npos);  // the producer's row on the timeline
}

TEST_F(CheckCli, UnreadableInputExitsTwoWithFileLineAndWhy) {
  const auto bad = write("broken.jsonl", kafka_history(false) + "{\"type\":\"ok\"\n");
  const auto missing = (dir_ / "missing.jsonl").string();
  auto r = run({"check", bad, missing});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(bad + ":"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not valid JSON"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(missing + ": cannot open"), std::string::npos) << r.err;
}

TEST_F(CheckCli, FormatMustSuitTheModel) {
  const auto file = write("ok.jsonl", kafka_history(false));
  auto r = run({"check", "--model", "kafka", "--format", "jepsen-etcd", file});
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(CheckCli, UnknownModelIsAUsageError) {
  auto r = run({"check", "--model", "zookeeper", "x"});
  EXPECT_GE(r.exit_code, 100);  // CLI11 rejects it before the command runs
}

TEST_F(CheckCli, EtcdOracleVerdictsAndHtml) {
  const auto dir = testing::oracle_dir() / "jepsen";
  const auto html = (dir_ / "view.html").string();
  auto r = run({"check", "--model", "cas-register", "--format", "jepsen-etcd", "--html", html,
                (dir / "etcd_002.log").string(), (dir / "etcd_000.log").string()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.out.find("etcd_002.log: valid"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("etcd_000.log: invalid"), std::string::npos) << r.out;
  const auto page = testing::read_file(html);
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_NE(page.find("Cannot place"), std::string::npos);
  EXPECT_NE(page.find("etcd_000.log"), std::string::npos);          // it draws the failing file
  EXPECT_EQ(page.find("http://"), page.find("http://www.w3.org"));  // no network resources
}

TEST_F(CheckCli, DeadlineGivesUnknownAndExitThree) {
  // A microsecond is over before the first key's search starts.
  auto r = run({"check", "--model", "kv", "--format", "porcupine-kv", "--deadline", "0.000001",
                (testing::oracle_dir() / "kv" / "c50-ok.txt").string()});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("unknown"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace faultline::checker
