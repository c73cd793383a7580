// The metadata-log workload's decisions: which records are markers, how a write ended, when the
// quorum has converged, whether the final logs agree, and what the log model says about
// histories written with the workload's own recorder.
#include "runner/metadata_workload.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "child_process.h"
#include "faultline/cluster/controller/controller.h"

namespace faultline::chaos {
namespace {

using checker::Outcome;
using checker::Verdict;
using cluster::errc;

cluster::MetadataEntry entry(int64_t offset, cluster::MetadataRecord record, int64_t term = 1) {
  return {cluster::MetadataOffset{offset}, std::move(record), term};
}
cluster::MetadataEntry marker(int64_t offset, std::string value, int64_t term = 1) {
  return entry(offset, cluster::ConfigChanged{std::string(cluster::kMarkerKey), std::move(value)},
               term);
}

// ---- marker_values --------------------------------------------------------------------------

TEST(MarkerValues, KeepsOnlyMarkersInOffsetOrder) {
  cluster::ControllerElected elected;
  elected.controller = 0;
  elected.epoch = 1;
  std::vector<cluster::MetadataEntry> log = {
      entry(0, elected),
      marker(1, "w0-0"),
      entry(2, cluster::ConfigChanged{"unclean.leader.election.enable", "true"}),
      marker(3, "w1-0"),
      entry(4, cluster::BrokerFenced{cluster::BrokerId{2}, cluster::BrokerEpoch{4}}),
      marker(5, "w0-1"),
  };
  EXPECT_EQ(marker_values(log), (std::vector<std::string>{"w0-0", "w1-0", "w0-1"}));
}

TEST(MarkerValues, EmptyWithoutMarkers) {
  std::vector<cluster::MetadataEntry> log = {
      entry(0, cluster::ConfigChanged{"auto.leader.rebalance.enable", "false"})};
  EXPECT_TRUE(marker_values(log).empty());
  EXPECT_TRUE(marker_values({}).empty());
}

TEST(MarkerValues, AValueThatLooksLikeAMarkerUnderAnotherKeyIsNotOne) {
  std::vector<cluster::MetadataEntry> log = {
      entry(0, cluster::ConfigChanged{"faultline.marker2", "w0-0"}), marker(1, "w0-1")};
  EXPECT_EQ(marker_values(log), (std::vector<std::string>{"w0-1"}));
}

// ---- marker_write_outcome -------------------------------------------------------------------

cluster::CallResult answered(errc error) {
  cluster::CallResult r;
  cluster::SetConfigResponse resp;
  resp.error = error;
  r.response = resp;
  return r;
}
cluster::CallResult transport(std::error_code error, bool maybe_sent) {
  cluster::CallResult r;
  r.error = error;
  r.maybe_sent = maybe_sent;
  return r;
}

struct OutcomeCase {
  std::string name;
  cluster::CallResult result;
  Outcome expected;
};

TEST(MarkerWriteOutcome, Table) {
  cluster::CallResult other_kind;
  other_kind.response = cluster::MetadataResponse{};
  const std::vector<OutcomeCase> cases = {
      {"committed and answered", answered(errc::none), Outcome::ok},
      // Also the answer of a controller that appended and then lost leadership.
      {"not_controller", answered(errc::not_controller), Outcome::info},
      {"any other answered error", answered(errc::invalid_request), Outcome::info},
      {"timed out after sending", transport(asio::error::timed_out, true), Outcome::info},
      {"connection lost mid-request", transport(asio::error::connection_reset, true),
       Outcome::info},
      {"never connected", transport(asio::error::connection_refused, false), Outcome::fail},
      {"connect timed out", transport(asio::error::timed_out, false), Outcome::fail},
      {"an answer of another kind", other_kind, Outcome::info},
  };
  for (const auto& c : cases)
    EXPECT_EQ(marker_write_outcome(c.result), c.expected) << c.name;
}

TEST(CallError, NamesTheAnswerOrTheTransportError) {
  EXPECT_EQ(call_error(answered(errc::not_controller)), "NOT_CONTROLLER");
  EXPECT_NE(call_error(transport(asio::error::connection_refused, false)).find("refused"),
            std::string::npos);
}

// ---- assess_convergence ---------------------------------------------------------------------

using Answer = std::optional<cluster::DescribeQuorumResponse>;

Answer voter(int32_t id, std::string role, int64_t epoch, int64_t commit, int64_t last = -2) {
  cluster::DescribeQuorumResponse d;
  d.node_id = id;
  d.role = std::move(role);
  d.epoch = epoch;
  d.commit_offset = commit;
  d.last_offset = last == -2 ? commit : last;
  return d;
}

struct ConvergenceCase {
  std::string name;
  std::vector<Answer> answers;
  bool converged;
  std::vector<int> caught_up;
  std::vector<int> behind;
};

TEST(AssessConvergence, Table) {
  Answer refused = voter(2, "follower", 3, 40);
  refused->error = errc::not_controller;
  const std::vector<ConvergenceCase> cases = {
      {"all at one commit offset",
       {voter(0, "follower", 3, 40), voter(1, "leader", 3, 40), voter(2, "follower", 3, 40)},
       true,
       {1, 2, 3},
       {}},
      {"one voter behind",
       {voter(0, "follower", 3, 40), voter(1, "leader", 3, 40), voter(2, "follower", 3, 31)},
       false,
       {1, 2},
       {3}},
      {"one voter silent",
       {voter(0, "follower", 3, 40), std::nullopt, voter(2, "leader", 3, 40)},
       false,
       {1, 3},
       {2}},
      {"an answer with an error counts as none",
       {voter(0, "leader", 3, 40), voter(1, "follower", 3, 40), refused},
       false,
       {1, 2},
       {3}},
      // The new leader's first record is not committed yet: it may not know the commit of the
      // records acknowledged before it, so its commit offset says nothing yet.
      {"records past the commit offset",
       {voter(0, "follower", 4, 40), voter(1, "leader", 4, 40, 41), voter(2, "follower", 4, 40)},
       false,
       {1, 2, 3},
       {}},
      {"two epochs",
       {voter(0, "follower", 4, 40), voter(1, "leader", 4, 40), voter(2, "follower", 3, 40)},
       false,
       {1, 2, 3},
       {}},
      {"no leader",
       {voter(0, "follower", 4, 40), voter(1, "candidate", 4, 40), voter(2, "follower", 4, 40)},
       false,
       {1, 2, 3},
       {}},
      {"one voter alone", {voter(0, "leader", 1, 7)}, true, {1}, {}},
      {"nobody answered", {std::nullopt, std::nullopt, std::nullopt}, false, {}, {1, 2, 3}},
      {"no controllers", {}, false, {}, {}},
  };
  for (const auto& c : cases) {
    auto r = assess_convergence(c.answers);
    EXPECT_EQ(r.converged, c.converged) << c.name << ": " << r.why_not;
    EXPECT_EQ(r.caught_up, c.caught_up) << c.name;
    EXPECT_EQ(r.behind, c.behind) << c.name;
    EXPECT_EQ(r.why_not.empty(), c.converged) << c.name;
  }
}

TEST(AssessConvergence, ReportsTheHighestCommitOffsetAndWhy) {
  auto r = assess_convergence(
      {voter(0, "leader", 3, 52), voter(1, "follower", 3, 52), voter(2, "follower", 3, 40)});
  EXPECT_EQ(r.commit_offset, 52);
  EXPECT_NE(r.why_not.find("c3"), std::string::npos) << r.why_not;
}

// ---- final_logs_agree -----------------------------------------------------------------------

TEST(FinalLogsAgree, Table) {
  const MetadataLogRead base{{marker(0, "a"), marker(1, "b")}, cluster::MetadataOffset{-1}, {}};
  auto longer = base;
  longer.entries.push_back(
      entry(2, cluster::BrokerFenced{cluster::BrokerId{1}, cluster::BrokerEpoch{4}}));
  auto with_marker = base;
  with_marker.entries.push_back(marker(2, "c"));
  const MetadataLogRead swapped{{marker(0, "b"), marker(1, "a")}, cluster::MetadataOffset{-1}, {}};
  const MetadataLogRead other_term{
      {marker(0, "a"), marker(1, "b", 2)}, cluster::MetadataOffset{-1}, {}};
  // Compacted through offset 0: the first marker survives in the snapshot only.
  const MetadataLogRead compacted{{marker(1, "b")},
                                  cluster::MetadataOffset{0},
                                  {cluster::MarkerWrite{cluster::MetadataOffset{0}, "a"}}};
  const MetadataLogRead compacted_other{{marker(1, "b")},
                                        cluster::MetadataOffset{0},
                                        {cluster::MarkerWrite{cluster::MetadataOffset{0}, "z"}}};
  const MetadataLogRead compacted_all{{},
                                      cluster::MetadataOffset{1},
                                      {cluster::MarkerWrite{cluster::MetadataOffset{0}, "a"},
                                       cluster::MarkerWrite{cluster::MetadataOffset{1}, "b"}}};

  EXPECT_TRUE(final_logs_agree({}));
  EXPECT_TRUE(final_logs_agree({base}));
  EXPECT_TRUE(final_logs_agree({base, base, base}));
  // A broker's change committed between two final reads.
  EXPECT_TRUE(final_logs_agree({base, longer}));
  EXPECT_FALSE(final_logs_agree({base, with_marker})) << "a marker only one voter has";
  EXPECT_FALSE(final_logs_agree({base, swapped})) << "the same markers in another order";
  EXPECT_FALSE(final_logs_agree({base, base, other_term})) << "the same record from another term";
  EXPECT_TRUE(final_logs_agree({base, compacted, longer, compacted_all}));
  EXPECT_FALSE(final_logs_agree({compacted, compacted_other})) << "a snapshot with another marker";
  EXPECT_FALSE(final_logs_agree({compacted_all, with_marker})) << "a marker past a snapshot";
  EXPECT_FALSE(final_logs_agree({compacted, other_term})) << "a record past one snapshot differs";
}

// ---- histories through the recorder, judged by the log model ---------------------------------

checker::Operation op(checker::Function f, Outcome outcome, checker::Value value,
                      std::vector<checker::Value> values = {}) {
  checker::Operation o;
  o.f = f;
  o.outcome = outcome;
  o.value = std::move(value);
  o.values = std::move(values);
  return o;
}

TEST(WithoutUnobservedUnknownAppends, DropsOnlyUnknownAppendsNoReadReturned) {
  using F = checker::Function;
  checker::History h;
  h.ops = {op(F::append, Outcome::info, "seen"),   op(F::append, Outcome::info, "unseen"),
           op(F::append, Outcome::ok, "acked"),    op(F::append, Outcome::fail, "failed"),
           op(F::read, Outcome::ok, {}, {"seen"}), op(F::read, Outcome::fail, {}, {}),
           op(F::append, Outcome::info, "late")};
  // A read that failed returns nothing, even if it carried values.
  h.ops[5].values = {"late"};
  for (size_t i = 0; i < h.ops.size(); ++i)
    h.ops[i].index = i;
  auto r = without_unobserved_unknown_appends(h);
  std::vector<checker::Value> kept;
  for (const auto& o : r.ops)
    kept.push_back(o.f == F::read ? checker::Value{"read"} : o.value);
  EXPECT_EQ(kept, (std::vector<checker::Value>{"seen", "acked", "failed", "read", "read"}));
  for (size_t i = 0; i < r.ops.size(); ++i)
    EXPECT_EQ(r.ops[i].index, i);
}

// Writes a history with the workload's recorder on a manual clock (1 µs per event).
class HistoryBuilder {
 public:
  HistoryBuilder() {
    auto r =
        checker::HistoryRecorder::open((dir_.path() / "h.jsonl").string(), kMetadataLogWorkload,
                                       [this] { return std::chrono::nanoseconds(now_ += 1000); });
    EXPECT_TRUE(r);
    recorder_ = std::move(r).value();
  }

  checker::HistoryRecorder::OpHandle invoke_append(int64_t process, const std::string& value) {
    checker::OpFields f;
    f.value = value;
    return recorder_->invoke(checker::ProcessId{process}, checker::Function::append, std::move(f))
        .value();
  }
  checker::HistoryRecorder::OpHandle invoke_read(int64_t process, bool final_read = false) {
    checker::OpFields f;
    f.final_read = final_read;
    return recorder_->invoke(checker::ProcessId{process}, checker::Function::read, std::move(f))
        .value();
  }
  void complete(const checker::HistoryRecorder::OpHandle& op, Outcome outcome) {
    ASSERT_FALSE(recorder_->complete(op, outcome));
  }
  void complete_read(const checker::HistoryRecorder::OpHandle& op,
                     const std::vector<std::string>& log, bool final_read = false) {
    checker::OpFields f;
    for (const auto& v : log)
      f.values.emplace_back(v);
    f.final_read = final_read;
    ASSERT_FALSE(recorder_->complete(op, Outcome::ok, std::move(f)));
  }
  // A complete append, then a complete read.
  void append(int64_t process, const std::string& value, Outcome outcome = Outcome::ok) {
    complete(invoke_append(process, value), outcome);
  }
  void read(const std::vector<std::string>& log) {
    complete_read(invoke_read(kMetadataReaderProcess), log);
  }
  void final_read(int controller, const std::vector<std::string>& log) {
    complete_read(invoke_read(kMetadataFinalReaderProcess + controller, true), log, true);
  }

  checker::History history() {
    recorder_.reset();
    std::ifstream in(dir_.path() / "h.jsonl");
    std::stringstream text;
    text << in.rdbuf();
    auto h = checker::parse_jsonl(text.str());
    EXPECT_TRUE(h) << h.error().to_string();
    return std::move(h).value();
  }

 private:
  testing::TempDir dir_{"faultline-metadata-history"};
  int64_t now_ = 0;
  std::unique_ptr<checker::HistoryRecorder> recorder_;
};

MetadataFinalRead all_three_read() {
  MetadataFinalRead f;
  f.converged = true;
  f.voters_read = {1, 2, 3};
  return f;
}

TEST(JudgeMetadataLog, ACorrectRunIsValid) {
  HistoryBuilder b;
  b.append(0, "w0-0");
  // Two writes in flight at once, read while in flight: either order may be seen.
  auto x = b.invoke_append(0, "w0-1");
  auto y = b.invoke_append(1, "w1-0");
  auto during = b.invoke_read(kMetadataReaderProcess);
  b.complete_read(during, {"w0-0", "w1-0"});
  b.complete(y, Outcome::ok);
  b.complete(x, Outcome::ok);
  // A write with an unknown outcome that did take effect, and one that did not.
  b.append(1, "w1-1", Outcome::info);
  b.append(3, "w1-2", Outcome::info);
  // A write that certainly failed and is never seen.
  b.append(0, "w0-2", Outcome::fail);
  b.read({"w0-0", "w1-0", "w0-1", "w1-1"});
  for (int c : {1, 2, 3})
    b.final_read(c, {"w0-0", "w1-0", "w0-1", "w1-1"});

  auto r = judge_metadata_log(b.history(), all_three_read());
  EXPECT_EQ(r.verdict, Verdict::valid) << r.summary;
  EXPECT_TRUE(r.valid()) << r.summary;
  EXPECT_FALSE(r.invalid());
  EXPECT_EQ(r.writes_acknowledged, 3);
  EXPECT_EQ(r.writes_unknown, 2);
  EXPECT_EQ(r.writes_failed, 1);
  EXPECT_EQ(r.reads, 2);
  EXPECT_EQ(r.final_voters_read, (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(r.anomalies.empty());
  EXPECT_TRUE(r.vacuity.empty());
  EXPECT_NE(r.summary.find("valid"), std::string::npos);
  EXPECT_EQ(r.to_json()["writes_acknowledged"], 3);
}

TEST(JudgeMetadataLog, AnAcknowledgedWriteMissingFromALaterReadIsInvalid) {
  HistoryBuilder b;
  b.append(0, "w0-0");
  b.append(1, "w1-0");
  b.read({"w0-0"});  // w1-0 was acknowledged before this read began
  for (int c : {1, 2, 3})
    b.final_read(c, {"w0-0", "w1-0"});
  auto r = judge_metadata_log(b.history(), all_three_read());
  EXPECT_EQ(r.verdict, Verdict::invalid) << r.summary;
  EXPECT_TRUE(r.invalid());
  // The evidence: the read that cannot be placed, with the log it returned.
  const auto& stuck = r.checker["failing_partition"]["cannot_place"];
  EXPECT_EQ(stuck["f"], "read") << r.checker.dump();
  EXPECT_EQ(stuck["values"], nlohmann::json::array({"\"w0-0\""})) << r.checker.dump();
}

TEST(JudgeMetadataLog, KeepsOnlyTheTailOfALongLinearizablePrefix) {
  HistoryBuilder b;
  std::vector<std::string> log;
  for (int i = 0; i < 30; ++i) {
    log.push_back(fmt::format("w0-{}", i));
    b.append(0, log.back());
  }
  log.pop_back();
  b.read(log);
  auto r = judge_metadata_log(b.history(), all_three_read());
  ASSERT_EQ(r.verdict, Verdict::invalid) << r.summary;
  const auto& failing = r.checker["failing_partition"];
  EXPECT_EQ(failing["longest_linearizable_prefix"].size(), 20u);
  EXPECT_EQ(failing["longest_linearizable_prefix_length"], 30);
  EXPECT_EQ(failing["longest_linearizable_prefix"].back()["value"], "\"w0-29\"");
}

TEST(JudgeMetadataLog, AnAcknowledgedWriteMissingFromOneFinalReadIsInvalid) {
  HistoryBuilder b;
  b.append(0, "w0-0");
  b.append(1, "w1-0");
  b.final_read(1, {"w0-0", "w1-0"});
  b.final_read(2, {"w0-0"});
  b.final_read(3, {"w0-0", "w1-0"});
  auto r = judge_metadata_log(b.history(), all_three_read());
  EXPECT_EQ(r.verdict, Verdict::invalid) << r.summary;
}

TEST(JudgeMetadataLog, FinalReadsInDifferentOrdersAreInvalid) {
  HistoryBuilder b;
  // Concurrent writes: either order alone would do, but not both.
  auto x = b.invoke_append(0, "w0-0");
  auto y = b.invoke_append(1, "w1-0");
  b.complete(x, Outcome::ok);
  b.complete(y, Outcome::ok);
  b.final_read(1, {"w0-0", "w1-0"});
  b.final_read(2, {"w1-0", "w0-0"});
  auto r = judge_metadata_log(b.history(), all_three_read());
  EXPECT_EQ(r.verdict, Verdict::invalid) << r.summary;
}

TEST(JudgeMetadataLog, AFailedWriteThatWasReadIsInvalid) {
  HistoryBuilder b;
  b.append(0, "w0-0", Outcome::fail);
  b.read({"w0-0"});
  auto r = judge_metadata_log(b.history(), all_three_read());
  EXPECT_EQ(r.verdict, Verdict::invalid) << r.summary;
}

TEST(JudgeMetadataLog, AValueWrittenOnceAndReadTwiceIsInvalid) {
  HistoryBuilder b;
  b.append(0, "w0-0", Outcome::info);
  b.read({"w0-0", "w0-0"});
  auto r = judge_metadata_log(b.history(), all_three_read());
  EXPECT_EQ(r.verdict, Verdict::invalid) << r.summary;
}

TEST(JudgeMetadataLog, TheFinalReadsFactsMakeItInvalidOrVacuous) {
  {
    HistoryBuilder b;
    b.append(0, "w0-0");
    b.final_read(1, {"w0-0"});
    b.final_read(2, {"w0-0"});
    MetadataFinalRead f;
    f.voters_read = {1, 2};
    f.non_converged = {3};
    f.why_not_converged = "c3 has committed up to 4, another voter up to 9";
    auto r = judge_metadata_log(b.history(), f);
    EXPECT_EQ(r.verdict, Verdict::valid) << r.summary;  // the history itself is fine
    EXPECT_TRUE(r.invalid());
    EXPECT_EQ(r.non_converged_voters, (std::vector<int>{3}));
    EXPECT_NE(r.summary.find("c3 never reached"), std::string::npos) << r.summary;
  }
  {
    HistoryBuilder b;
    b.append(0, "w0-0");
    b.final_read(1, {"w0-0"});
    MetadataFinalRead f = all_three_read();
    f.logs_agree = false;
    EXPECT_TRUE(judge_metadata_log(b.history(), f).invalid());
  }
  {
    HistoryBuilder b;
    b.append(0, "w0-0", Outcome::info);
    b.read({});
    MetadataFinalRead f;
    auto r = judge_metadata_log(b.history(), f);
    EXPECT_FALSE(r.invalid());
    EXPECT_FALSE(r.valid());
    EXPECT_EQ(r.vacuity.size(), 2u) << r.summary;
  }
}

}  // namespace
}  // namespace faultline::chaos
