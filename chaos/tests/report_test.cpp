// report.html from a synthetic run: what a reader of the page would look for.
#include <faultline/chaos/runner/report.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "report_fixture.h"

namespace faultline::chaos {
namespace {

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + 1))
    ++n;
  return n;
}

// The text of the SVG element with the given id.
std::string svg_by_id(const std::string& html, const std::string& id) {
  auto start = html.find("<svg id=\"" + id + "\"");
  if (start == std::string::npos)
    return "";
  auto end = html.find("</svg>", start);
  return html.substr(start, end == std::string::npos ? std::string::npos : end + 6 - start);
}

TEST(RunReport, EveryFaultIsABandInTheTimelineAndShadedBehindEveryOtherPlot) {
  const auto run = test::make_synthetic_run(false);
  const auto html = render_run_report(run.input());
  const auto faults = svg_by_id(html, "faults-plot");
  ASSERT_FALSE(faults.empty());
  EXPECT_EQ(count(faults, "class=\"fault-band\""), 2u);
  EXPECT_NE(
      faults.find(
          R"(data-fault="kill-leader" data-target="b1" data-start-s="3.000" data-end-s="6.000")"),
      std::string::npos);
  EXPECT_NE(
      faults.find(
          R"(data-fault="pause-leader" data-target="b2" data-start-s="10.000" data-end-s="13.000")"),
      std::string::npos);
  for (const char* id : {"leaders-plot", "latency-plot", "throughput-plot"}) {
    const auto svg = svg_by_id(html, id);
    ASSERT_FALSE(svg.empty()) << id;
    EXPECT_EQ(count(svg, "class=\"fault-shade\""), 2u) << id;
  }
  // faults.jsonl records are placed on the history's clock (the records were written 1 ms before
  // the history's events) and drawn under the windows.
  EXPECT_EQ(count(faults, "class=\"fault-record\""), 2u);
  EXPECT_NE(html.find("<td>inject</td><td>kill</td><td>b1</td><td>3.000s</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>heal</td><td>pause</td><td>b2</td><td>13.000s</td>"), std::string::npos);
  // The faults table joins the verdict's client-observed unavailability.
  EXPECT_NE(html.find("<td>kill-leader</td><td>b1</td><td>3.000s</td><td>6.000s</td><td>true</"
                      "td><td>signal</td><td>1002 ms</td>"),
            std::string::npos);
}

TEST(RunReport, OneLeaderSeriesPerPartitionWithEveryLeaderAndEpoch) {
  const auto html = render_run_report(test::make_synthetic_run(false).input());
  const auto leaders = svg_by_id(html, "leaders-plot");
  EXPECT_EQ(count(leaders, "class=\"leader-lane\""), 2u);
  auto lane = [&](int p) {
    auto start = leaders.find(fmt::format("class=\"leader-lane\" data-partition=\"{}\"", p));
    return start == std::string::npos ? std::string()
                                      : leaders.substr(start, leaders.find("</g>", start) - start);
  };
  const auto p0 = lane(0), p1 = lane(1);
  EXPECT_EQ(count(p0, "class=\"leader-seg\""), 3u);
  EXPECT_NE(p0.find(R"(data-leader="1" data-epoch="1")"), std::string::npos);
  EXPECT_NE(p0.find(R"(data-leader="2" data-epoch="2")"), std::string::npos);
  EXPECT_NE(p0.find(R"(data-leader="3" data-epoch="3")"), std::string::npos);
  EXPECT_EQ(count(p1, "class=\"leader-seg\""), 2u);
  EXPECT_NE(p1.find(R"(data-leader="1" data-epoch="2")"), std::string::npos);
  // Hovering a segment says who led when.
  EXPECT_NE(p0.find("partition 0: leader b2, epoch 2, 4.000s"), std::string::npos);
}

TEST(RunReport, ALeaderNotYetRecordedIsShownAsUnknown) {
  // A history whose initial leaders were never recorded (only the changes the faults caused).
  auto run = test::make_synthetic_run(false);
  std::erase_if(run.events, [](const checker::Event& e) {
    return e.type == checker::EventType::nemesis &&
           e.nemesis == checker::NemesisKind::leader_change && e.epoch == checker::LeaderEpoch{1};
  });
  const auto leaders = svg_by_id(render_run_report(run.input()), "leaders-plot");
  EXPECT_EQ(count(leaders, "class=\"leader-lane\""), 2u);
  EXPECT_EQ(count(leaders, "class=\"leader-unknown\""), 2u);
  EXPECT_NE(leaders.find("partition 0: no leader change recorded before 4.000s"),
            std::string::npos);
  EXPECT_NE(leaders.find("partition 1: no leader change recorded before 11.500s"),
            std::string::npos);
  EXPECT_NE(leaders.find("leader not recorded"), std::string::npos);
}

// A run on a controller quorum: the watcher's controller-change notes become one lane of the
// active controller, apart from the partitions' leaders; a run without them has no such lane.
TEST(RunReport, TheActiveControllerIsALaneOfItsOwn) {
  auto run = test::make_synthetic_run(false);
  EXPECT_TRUE(svg_by_id(render_run_report(run.input()), "controllers-plot").empty());
  auto note = [](double t, const char* target) {
    checker::Event e;
    e.type = checker::EventType::nemesis;
    e.nemesis = checker::NemesisKind::note;
    e.time = std::chrono::nanoseconds(static_cast<int64_t>(t * 1e9));
    e.fault = "controller-change";
    e.target = target;
    return e;
  };
  run.events.push_back(note(0.01, "c1 epoch 1"));
  run.events.push_back(note(4.5, "c3 epoch 2"));
  run.events.push_back(note(5.0, "skipped: not a controller change"));
  std::stable_sort(run.events.begin(), run.events.end(),
                   [](const auto& a, const auto& b) { return a.time < b.time; });
  const auto html = render_run_report(run.input());
  const auto lane = svg_by_id(html, "controllers-plot");
  ASSERT_FALSE(lane.empty());
  EXPECT_EQ(count(lane, "class=\"controller-seg\""), 2u);
  EXPECT_NE(lane.find(R"(data-controller="c1" data-epoch="1")"), std::string::npos);
  EXPECT_NE(lane.find("controller c3 active, epoch 2, 4.500s"), std::string::npos);
  EXPECT_EQ(count(lane, "class=\"fault-shade\""), 2u);
}

// The metadata-log workload's verdict (a quorum run) is a line of the page; a run without one
// has no such line.
TEST(RunReport, TheMetadataLogVerdictIsShownWhenTheRunHadOne) {
  auto run = test::make_synthetic_run(false);
  auto input = run.input();
  EXPECT_EQ(render_run_report(input).find("id=\"metadata-log\""), std::string::npos);
  input.verdict["metadata_log"] = {
      {"summary",
       "metadata log: invalid: 40 writes acknowledged, 2 unknown, 0 failed; 9 reads; "
       "final read of c1, c2, c3; the controllers' final logs disagree"}};
  const auto html = render_run_report(input);
  const auto at = html.find("<p id=\"metadata-log\">");
  ASSERT_NE(at, std::string::npos);
  EXPECT_NE(html.find("the controllers&#39; final logs disagree", at), std::string::npos)
      << html.substr(at, 300);
}

TEST(RunReport, LatencyAndThroughputSeriesCoverTheRun) {
  const auto html = render_run_report(test::make_synthetic_run(false).input());
  const auto latency = svg_by_id(html, "latency-plot");
  for (const char* s : {"latency-p50", "latency-p99", "latency-max"})
    EXPECT_NE(latency.find(fmt::format("data-series=\"{}\"", s)), std::string::npos) << s;
  // The kill's stalled sends (up to 1 s) put the axis into seconds; normal acks are milliseconds.
  EXPECT_NE(latency.find(">1 ms<"), std::string::npos);
  EXPECT_NE(latency.find(">1 s<"), std::string::npos);
  const auto throughput = svg_by_id(html, "throughput-plot");
  for (const char* s : {"acks", "failures", "unknown"})
    EXPECT_NE(throughput.find(fmt::format("data-series=\"{}\"", s)), std::string::npos) << s;
  // Step lines: two points per bucket; 19.33 s of history (the final read ends it) in 250 ms
  // buckets.
  std::smatch match;
  const std::string acks_series = throughput.substr(throughput.find("data-series=\"acks\""));
  ASSERT_TRUE(std::regex_search(acks_series, match, std::regex("points=\"([^\"]*)\"")));
  const auto points = count(match[1].str(), ",");
  EXPECT_EQ(points, 2u * 78);
}

TEST(RunReport, AnomaliesAreListedWithTheCheckersEvidence) {
  const auto run = test::make_synthetic_run(true);
  ASSERT_GE(run.lost_value, 0);
  const auto html = render_run_report(run.input());
  EXPECT_NE(html.find("class=\"verdict invalid\""), std::string::npos);
  const auto row = html.find("<tr class=\"anomaly\" data-kind=\"lost-write\">");
  ASSERT_NE(row, std::string::npos);
  const auto row_text = html.substr(row, html.find("</tr>", row) - row);
  // The lost value, the send that acknowledged it (with its history line), and the checker's
  // explanation and elections.
  EXPECT_NE(row_text.find(std::to_string(run.lost_value)), std::string::npos);
  EXPECT_NE(row_text.find("class=\"evidence\""), std::string::npos);
  EXPECT_NE(row_text.find("process 0 send ok invoked"), std::string::npos);
  EXPECT_NE(row_text.find("(history.jsonl line "), std::string::npos);
  std::string explanation;
  for (const auto& a : run.verdict["checker"]["details"])
    if (a["kind"] == "lost-write")
      explanation = a["explanation"].get<std::string>();
  ASSERT_FALSE(explanation.empty());
  EXPECT_NE(row_text.find(explanation), std::string::npos) << explanation;
  EXPECT_NE(row_text.find("leader-change at"), std::string::npos);
  EXPECT_NE(html.find("<td>lost-write</td><td>1</td>"), std::string::npos);
  // The evidence is marked on the timeline too.
  EXPECT_GE(count(svg_by_id(html, "faults-plot"), "class=\"anomaly-mark\""), 1u);
  EXPECT_EQ(html.find("id=\"no-anomalies\""), std::string::npos);
}

TEST(RunReport, AValidRunSaysItHasNoAnomalies) {
  const auto html = render_run_report(test::make_synthetic_run(false).input());
  EXPECT_NE(html.find("class=\"verdict valid\""), std::string::npos);
  EXPECT_NE(html.find("id=\"no-anomalies\""), std::string::npos);
  EXPECT_EQ(html.find("<tr class=\"anomaly\""), std::string::npos);
}

TEST(RunReport, SelfContainedWithRelativeLinksToEveryFile) {
  const auto run = test::make_synthetic_run(true);
  const auto html = render_run_report(run.input());
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  EXPECT_EQ(html.find(" src="), std::string::npos);
  for (const auto& f : run.files)
    EXPECT_NE(html.find(fmt::format("<a href=\"./{}\">{}</a>", f, f)), std::string::npos) << f;
}

TEST(RunReport, UntrustedTextIsEscaped) {
  auto run = test::make_synthetic_run(false);
  for (auto& e : run.events)
    if (e.type == checker::EventType::nemesis && e.fault == "kill-leader")
      e.target = "<script>x</script>";
  run.files.push_back("logs/we\"ird <name>.log");
  const auto html = render_run_report(run.input());
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;x&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("href=\"./logs/we%22ird%20%3Cname%3E.log\""), std::string::npos);
}

TEST(RunReport, AWindowNeverHealedRunsToTheEndAndMissingPartsAreSaid) {
  auto run = test::make_synthetic_run(false);
  std::erase_if(run.events, [](const checker::Event& e) {
    return e.type == checker::EventType::nemesis && e.nemesis == checker::NemesisKind::fault_stop &&
           e.fault == "pause-leader";
  });
  auto in = run.input();
  in.verdict = nullptr;
  in.problems.push_back("verdict.json: missing");
  const auto html = render_run_report(in);
  EXPECT_NE(html.find("not healed before the history ended"), std::string::npos);
  EXPECT_NE(html.find("class=\"verdict none\""), std::string::npos);
  EXPECT_NE(html.find("verdict.json: missing"), std::string::npos);

  RunReportInput empty;
  const auto bare = render_run_report(empty);
  EXPECT_NE(bare.find("id=\"faults-plot\""), std::string::npos);
  EXPECT_NE(bare.find("no history"), std::string::npos);
}

TEST(RunReport, StaysSmallForAHundredThousandOps) {
  // ~100k sends over 150 s (two producers, back to back).
  const auto run = test::make_synthetic_run(false, 150.0, std::chrono::milliseconds(0));
  ASSERT_GE(run.sends, 90'000u);
  const auto start = std::chrono::steady_clock::now();
  const auto html = render_run_report(run.input());
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(html.size(), 400u << 10) << html.size();
  EXPECT_LT(took, std::chrono::seconds(2));
  const auto throughput = svg_by_id(html, "throughput-plot");
  const std::string acks_series = throughput.substr(throughput.find("data-series=\"acks\""));
  std::smatch match;
  ASSERT_TRUE(std::regex_search(acks_series, match, std::regex("points=\"([^\"]*)\"")));
  EXPECT_LE(count(match[1].str(), ","), 2 * kMaxReportBuckets);
}

TEST(RunReport, WrittenFromARunDirectory) {
  const auto dir =
      std::filesystem::temp_directory_path() / fmt::format("report-test-{}", ::getpid());
  std::filesystem::remove_all(dir);
  const auto run = test::make_synthetic_run(true);
  run.write_to(dir);
  ASSERT_FALSE(write_run_report(dir));
  std::ifstream f(dir / "report.html");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string html = ss.str();
  EXPECT_EQ(count(svg_by_id(html, "faults-plot"), "class=\"fault-band\""), 2u);
  EXPECT_EQ(count(svg_by_id(html, "leaders-plot"), "class=\"leader-lane\""), 2u);
  EXPECT_NE(html.find("<tr class=\"anomaly\" data-kind=\"lost-write\">"), std::string::npos);
  for (const auto& name : run.files)
    EXPECT_NE(html.find(fmt::format("href=\"./{}\"", name)), std::string::npos) << name;
  EXPECT_FALSE(std::filesystem::exists(dir / "report.html.tmp"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace faultline::chaos
