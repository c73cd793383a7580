// The JSONL history format: round trips, precise errors on malformed input, and the recorder.
#include <faultline/checker/history.h>
#include <faultline/checker/kafka.h>
#include <faultline/checker/recorder.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "history_builder.h"
#include "simulated_log.h"

namespace faultline::checker {
namespace {

constexpr std::string_view kHeader = R"({"faultline_history":1,"workload":"kafka"})";

std::string doc(std::initializer_list<std::string_view> lines) {
  std::string out = std::string(kHeader) + "\n";
  for (auto l : lines)
    out += std::string(l) + "\n";
  return out;
}

TEST(HistoryFormat, RoundTripsEveryFieldTheCheckersUse) {
  auto events = testing::simulate_kafka(7, {});
  testing::HistoryBuilder b;
  b.events() = events;
  b.nemesis(NemesisKind::unclean_election, 2, 9, 3);
  auto parsed = parse_jsonl(b.jsonl(), "h.jsonl");
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  auto direct = b.history();
  ASSERT_EQ(parsed->ops.size(), direct.ops.size());
  for (std::size_t i = 0; i < direct.ops.size(); ++i) {
    const auto& a = parsed->ops[i];
    const auto& d = direct.ops[i];
    EXPECT_EQ(a.process, d.process);
    EXPECT_EQ(a.f, d.f);
    EXPECT_EQ(a.outcome, d.outcome);
    EXPECT_EQ(a.value, d.value);
    EXPECT_EQ(a.offset, d.offset);
    EXPECT_EQ(a.records, d.records);
    EXPECT_EQ(a.invoke_time, d.invoke_time);
    EXPECT_EQ(a.complete_time, d.complete_time);
  }
  ASSERT_EQ(parsed->nemesis.size(), 1u);
  EXPECT_EQ(parsed->nemesis[0].kind, NemesisKind::unclean_election);
  EXPECT_EQ(parsed->nemesis[0].epoch, LeaderEpoch(9));
  EXPECT_EQ(parsed->workload, "kafka");
}

// The cluster's timeline and the acknowledging broker, exactly as checker/README.md shows them.
TEST(HistoryFormat, TimelineEventsParseAndRoundTrip) {
  const std::string text =
      "{\"faultline_history\":1,\"workload\":\"kafka\",\"acks\":\"all\"}\n"
      R"({"type":"nemesis","f":"partition-state","time_ns":1000,"partition":2,"epoch":7,"leader":3,"isr":[3,1],"replicas":[1,2,3],"unclean":false})"
      "\n"
      R"({"type":"nemesis","f":"cluster-state","time_ns":1100,"alive":[1,3],"fenced":[2],"demoted":[1],"shutting_down":[]})"
      "\n"
      R"({"type":"nemesis","f":"process-exit","time_ns":1200,"leader":2,"graceful":true})"
      "\n"
      R"({"type":"invoke","process":4,"f":"send","time_ns":1300,"partition":2,"value":17})"
      "\n"
      R"({"type":"ok","process":4,"f":"send","time_ns":1400,"offset":40,"epoch":7,"leader":3})"
      "\n"
      R"({"type":"nemesis","f":"partition-state","time_ns":1500,"partition":2,"epoch":8,"leader":-1,"isr":[],"replicas":[1,2,3],"unclean":false})"
      "\n";
  auto h = parse_jsonl(text, "t.jsonl");
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->acks, Acks::all);
  ASSERT_EQ(h->nemesis.size(), 4u);
  const NemesisEvent& p = h->nemesis[0];
  EXPECT_EQ(p.kind, NemesisKind::partition_state);
  EXPECT_EQ(p.partition, PartitionId(2));
  EXPECT_EQ(p.epoch, LeaderEpoch(7));
  EXPECT_EQ(p.leader, BrokerId(3));
  EXPECT_EQ(p.isr, testing::HistoryBuilder::brokers({3, 1}));
  EXPECT_EQ(p.replicas, testing::HistoryBuilder::brokers({1, 2, 3}));
  EXPECT_FALSE(p.unclean);
  const NemesisEvent& c = h->nemesis[1];
  EXPECT_EQ(c.kind, NemesisKind::cluster_state);
  EXPECT_EQ(c.alive, testing::HistoryBuilder::brokers({1, 3}));
  EXPECT_EQ(c.fenced, testing::HistoryBuilder::brokers({2}));
  EXPECT_EQ(c.demoted, testing::HistoryBuilder::brokers({1}));
  EXPECT_TRUE(c.shutting_down.empty());
  EXPECT_EQ(h->nemesis[2].kind, NemesisKind::process_exit);
  EXPECT_EQ(h->nemesis[2].leader, BrokerId(2));
  EXPECT_TRUE(h->nemesis[2].graceful);
  EXPECT_EQ(h->nemesis[3].leader, BrokerId(-1));
  EXPECT_TRUE(h->nemesis[3].isr.empty());
  ASSERT_EQ(h->ops.size(), 1u);
  EXPECT_EQ(h->ops[0].leader, BrokerId(3));
  EXPECT_EQ(h->ops[0].epoch, LeaderEpoch(7));

  // Written back, every line parses to the same line again (keys in the writer's order), and the
  // fields the invariant pass needs survive, the empty ISR included.
  std::size_t pos = text.find('\n') + 1;
  while (pos < text.size()) {
    const std::size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    auto e = parse_event_line(line);
    ASSERT_TRUE(e) << line;
    const std::string written = to_jsonl_line(*e);
    auto again = parse_event_line(written);
    ASSERT_TRUE(again) << written;
    EXPECT_EQ(to_jsonl_line(*again), written);
    EXPECT_EQ(again->isr, e->isr);
    EXPECT_EQ(again->replicas, e->replicas);
    EXPECT_EQ(again->alive, e->alive);
    EXPECT_EQ(again->fenced, e->fenced);
    EXPECT_EQ(again->leader, e->leader);
    EXPECT_EQ(again->graceful, e->graceful);
    if (e->nemesis == NemesisKind::partition_state && e->type == EventType::nemesis) {
      EXPECT_NE(written.find("\"isr\":["), std::string::npos) << written;
    }
    pos = end + 1;
  }
}

TEST(HistoryFormat, OldHistoriesStillParseWithAcksUnknown) {
  auto h = parse_jsonl(doc(
      {R"({"type":"nemesis","f":"leader-change","time_ns":1,"partition":0,"epoch":1,"leader":1})"}));
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->acks, Acks::unknown);
  EXPECT_TRUE(h->nemesis[0].isr.empty());
  EXPECT_EQ(history_header_line("kafka"), std::string(kHeader));
  EXPECT_EQ(history_header_line("kafka", Acks::one),
            R"({"acks":"1","faultline_history":1,"workload":"kafka"})");
}

TEST(HistoryFormat, CasAndKeyValueFields) {
  auto h = parse_jsonl(doc({
      R"({"type":"invoke","process":0,"f":"cas","time_ns":1,"value":[null,3]})",
      R"({"type":"fail","process":0,"f":"cas","time_ns":2})",
      R"({"type":"invoke","process":1,"f":"get","key":"k","time_ns":3})",
      R"({"type":"ok","process":1,"f":"get","key":"k","time_ns":4,"value":"xy"})",
  }));
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->ops[0].expected, Value{});
  EXPECT_EQ(h->ops[0].value, Value{int64_t{3}});
  EXPECT_EQ(h->ops[0].outcome, Outcome::fail);
  EXPECT_EQ(h->ops[1].value, Value{std::string("xy")});
}

TEST(HistoryFormat, EscapedAndPlainSpellingsParseAlike) {
  // The first line takes the fast scanner, the second (escapes, odd spacing) nlohmann's parser.
  auto plain = parse_event_line(
      R"({"type":"info","process":2,"f":"send","time_ns":5,"partition":1,"error":"ab","final":false})");
  auto escaped = parse_event_line(
      R"(  { "type" : "info", "process":2, "f":"send","time_ns":5,"partition":1,"error":"a\u0062" , "final":false } )");
  ASSERT_TRUE(plain) << plain.error();
  ASSERT_TRUE(escaped) << escaped.error();
  EXPECT_EQ(to_jsonl_line(*plain), to_jsonl_line(*escaped));
  EXPECT_EQ(escaped->error, "ab");
  // Integers beyond int64 are rejected by both paths.
  auto huge = parse_event_line(
      R"({"type":"invoke","process":99999999999999999999,"f":"poll","time_ns":1,"partition":0})");
  ASSERT_FALSE(huge);
  EXPECT_NE(huge.error().find("\"process\" must be an integer"), std::string::npos) << huge.error();
}

struct Malformed {
  std::string name;
  std::string text;
  std::size_t line;
  std::string why;  // a fragment of the message
};

void PrintTo(const Malformed& m, std::ostream* os) {
  *os << m.name;
}

class MalformedHistory : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedHistory, IsAnErrorWithLineNumber) {
  const auto& c = GetParam();
  auto h = parse_jsonl(c.text, "bad.jsonl");
  ASSERT_FALSE(h) << c.name;
  EXPECT_EQ(h.error().line, c.line) << h.error().to_string();
  EXPECT_NE(h.error().why.find(c.why), std::string::npos) << h.error().to_string();
  EXPECT_EQ(h.error().to_string().rfind("bad.jsonl:", 0), 0u);
}

const std::string kSendInvoke =
    R"({"type":"invoke","process":1,"f":"send","partition":0,"value":5,"time_ns":1})";

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedHistory,
    ::testing::Values(
        Malformed{"empty", "", 0, "empty history"},
        Malformed{"no header", kSendInvoke + "\n", 1, "header"},
        Malformed{"future version", "{\"faultline_history\":2}\n", 1,
                  "unsupported history version"},
        Malformed{"truncated last line", std::string(kHeader) + "\n" + kSendInvoke.substr(0, 30), 2,
                  "truncated"},
        Malformed{"not json", doc({kSendInvoke, "{oops"}), 3, "not valid JSON"},
        Malformed{"array", doc({"[1,2]"}), 2, "JSON object"},
        // Found by history_fuzz: a number JSON cannot hold is an error, not an exception.
        Malformed{
            "number out of range",
            doc({R"({"type":"invoke","process":1,"f":"send","partition":0,"value":5,"time_ns":1e999, "x":[)"}),
            2, "not valid JSON"},
        Malformed{
            "wrong type of process",
            doc({R"({"type":"invoke","process":"a","f":"send","partition":0,"value":5,"time_ns":1})"}),
            2, "\"process\" must be an integer"},
        Malformed{
            "wrong type of value",
            doc({R"({"type":"invoke","process":1,"f":"send","partition":0,"value":[1],"time_ns":1})"}),
            2, "\"value\""},
        Malformed{"missing time",
                  doc({R"({"type":"invoke","process":1,"f":"send","partition":0,"value":5})"}), 2,
                  "missing \"time_ns\""},
        Malformed{"unknown function",
                  doc({R"({"type":"invoke","process":1,"f":"frobnicate","time_ns":1})"}), 2,
                  "unknown function \"frobnicate\""},
        Malformed{"unknown type", doc({R"({"type":"maybe","process":1,"f":"send","time_ns":1})"}),
                  2, "unknown type"},
        Malformed{
            "unmatched completion",
            doc({R"({"type":"ok","process":1,"f":"send","partition":0,"time_ns":1,"offset":0})"}),
            2, "without an open invoke"},
        Malformed{"double invoke", doc({kSendInvoke, kSendInvoke}), 3, "still open"},
        Malformed{
            "completion of another function",
            doc({kSendInvoke, R"({"type":"ok","process":1,"f":"poll","partition":0,"time_ns":2})"}),
            3, "invoked send"},
        Malformed{
            "time goes backwards",
            doc({kSendInvoke,
                 R"({"type":"ok","process":1,"f":"send","partition":0,"time_ns":0,"offset":0})"}),
            3, "backwards"},
        Malformed{
            "bad record",
            doc({R"({"type":"invoke","process":1,"f":"poll","partition":0,"time_ns":1})",
                 R"({"type":"ok","process":1,"f":"poll","partition":0,"time_ns":2,"records":[[0]]})"}),
            3, "[offset, value]"},
        Malformed{"send without partition",
                  doc({R"({"type":"invoke","process":1,"f":"send","value":5,"time_ns":1})"}), 2,
                  "partition"},
        Malformed{
            "partition-state without isr",
            doc({R"({"type":"nemesis","f":"partition-state","time_ns":1,"partition":0,"epoch":1,"leader":1,"replicas":[1]})"}),
            2, "partition-state needs"},
        Malformed{
            "partition-state without leader",
            doc({R"({"type":"nemesis","f":"partition-state","time_ns":1,"partition":0,"epoch":1,"isr":[],"replicas":[1]})"}),
            2, "partition-state needs"},
        Malformed{
            "isr of strings",
            doc({R"({"type":"nemesis","f":"partition-state","time_ns":1,"partition":0,"epoch":1,"leader":1,"isr":["1"],"replicas":[1]})"}),
            2, "\"isr\" must hold integer broker ids"},
        Malformed{
            "broker id out of range",
            doc({R"({"type":"nemesis","f":"cluster-state","time_ns":1,"alive":[4294967296]})"}), 2,
            "\"alive\" must hold integer broker ids"},
        Malformed{
            "fenced not an array",
            doc({R"({"type":"nemesis","f":"cluster-state","time_ns":1,"alive":[],"fenced":2})"}), 2,
            "\"fenced\" must be an array"},
        Malformed{"cluster-state without alive",
                  doc({R"({"type":"nemesis","f":"cluster-state","time_ns":1,"fenced":[1]})"}), 2,
                  "cluster-state needs \"alive\""},
        Malformed{"process-exit without broker",
                  doc({R"({"type":"nemesis","f":"process-exit","time_ns":1,"graceful":true})"}), 2,
                  "process-exit needs \"leader\""},
        Malformed{
            "graceful not a bool",
            doc({R"({"type":"nemesis","f":"process-exit","time_ns":1,"leader":1,"graceful":1})"}),
            2, "\"graceful\" must be true or false"},
        Malformed{
            "unclean not a bool",
            doc({R"({"type":"nemesis","f":"partition-state","time_ns":1,"partition":0,"epoch":1,"leader":1,"isr":[1],"replicas":[1],"unclean":"yes"})"}),
            2, "\"unclean\" must be true or false"},
        Malformed{"unknown acks", "{\"faultline_history\":1,\"acks\":\"0\"}\n", 1,
                  "header \"acks\" must be \"all\" or \"1\""},
        Malformed{"acks as a number", "{\"faultline_history\":1,\"acks\":1}\n", 1,
                  "header \"acks\""}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (auto& ch : n) {
        if (!isalnum(static_cast<unsigned char>(ch)))
          ch = '_';
      }
      return n;
    });

TEST(HistoryFormat, OpenInvocationsAtTheEndAreUnknown) {
  auto h = parse_jsonl(doc({kSendInvoke}));
  ASSERT_TRUE(h);
  ASSERT_EQ(h->ops.size(), 1u);
  EXPECT_EQ(h->ops[0].outcome, Outcome::info);
  EXPECT_FALSE(h->ops[0].complete_time.has_value());
}

class TempFile {
 public:
  TempFile() {
    path_ = std::filesystem::temp_directory_path() /
            ("faultline-history-test-" + std::to_string(::getpid()) + ".jsonl");
  }
  ~TempFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }
  std::string read() const {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::filesystem::path path_;
};

TEST(HistoryRecorder, ConcurrentWritersProduceAParseableValidHistory) {
  TempFile file;
  auto rec = HistoryRecorder::open(file.path(), "kafka");
  ASSERT_TRUE(rec) << rec.error().message();
  auto& r = **rec;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&r, t] {
      for (int i = 0; i < kPerThread; ++i) {
        OpFields f;
        f.partition = PartitionId(t);
        f.value = int64_t{t * 1000 + i};
        auto h = r.invoke(ProcessId(t), Function::send, f);
        ASSERT_TRUE(h);
        OpFields done;
        done.offset = Offset(i);
        ASSERT_FALSE(r.complete(*h, Outcome::ok, done));
      }
    });
  }
  for (auto& th : threads)
    th.join();
  NemesisFields election;
  election.partition = PartitionId(0);
  election.epoch = LeaderEpoch(2);
  election.leader = BrokerId(1);
  ASSERT_FALSE(r.nemesis(NemesisKind::leader_change, election));
  auto h = parse_jsonl(file.read(), file.path());
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->ops.size(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(h->nemesis.size(), 1u);
  EXPECT_EQ(check_kafka(*h).sends_acked, static_cast<std::size_t>(kThreads * kPerThread));
}

TEST(HistoryRecorder, EveryOpIsOnDiskBeforeTheCallReturns) {
  TempFile file;
  auto rec = HistoryRecorder::open(file.path(), "kafka");
  ASSERT_TRUE(rec);
  OpFields f;
  f.partition = PartitionId(0);
  f.value = int64_t{42};
  auto op = (*rec)->invoke(ProcessId(3), Function::send, f);
  ASSERT_TRUE(op);
  // No close, no flush: what a crash right now would leave behind.
  auto h = parse_jsonl(file.read());
  ASSERT_TRUE(h) << h.error().to_string();
  ASSERT_EQ(h->ops.size(), 1u);
  EXPECT_EQ(h->ops[0].outcome, Outcome::info);
  EXPECT_FALSE((*rec)->complete(*op, Outcome::fail));
  EXPECT_EQ((*rec)->complete(*op, Outcome::ok), std::make_error_code(std::errc::invalid_argument));
}

TEST(HistoryRecorder, WritesTheAcksHeaderAndTimelineEvents) {
  TempFile file;
  auto rec = HistoryRecorder::open(file.path(), HistoryHeader{"kafka", Acks::all});
  ASSERT_TRUE(rec) << rec.error().message();
  auto& r = **rec;
  NemesisFields state;
  state.partition = PartitionId(1);
  state.epoch = LeaderEpoch(3);
  state.leader = BrokerId(-1);
  state.replicas = testing::HistoryBuilder::brokers({1, 2, 3});
  ASSERT_FALSE(r.nemesis(NemesisKind::partition_state, state));
  NemesisFields brokers;
  brokers.alive = testing::HistoryBuilder::brokers({1, 2});
  brokers.shutting_down = testing::HistoryBuilder::brokers({2});
  ASSERT_FALSE(r.nemesis(NemesisKind::cluster_state, brokers));
  NemesisFields exit;
  exit.leader = BrokerId(2);
  exit.graceful = true;
  ASSERT_FALSE(r.nemesis(NemesisKind::process_exit, exit));
  OpFields send;
  send.partition = PartitionId(1);
  send.value = int64_t{9};
  auto op = r.invoke(ProcessId(0), Function::send, send);
  ASSERT_TRUE(op);
  OpFields ack;
  ack.offset = Offset(0);
  ack.epoch = LeaderEpoch(4);
  ack.leader = BrokerId(1);
  ASSERT_FALSE(r.complete(*op, Outcome::ok, ack));

  auto h = parse_jsonl(file.read(), file.path());
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ(h->acks, Acks::all);
  ASSERT_EQ(h->nemesis.size(), 3u);
  EXPECT_EQ(h->nemesis[0].leader, BrokerId(-1));
  EXPECT_TRUE(h->nemesis[0].isr.empty());  // written as [] and read back: an empty ISR
  EXPECT_EQ(h->nemesis[0].replicas.size(), 3u);
  EXPECT_EQ(h->nemesis[1].shutting_down, testing::HistoryBuilder::brokers({2}));
  EXPECT_TRUE(h->nemesis[2].graceful);
  EXPECT_EQ(h->ops[0].leader, BrokerId(1));
}

TEST(HistoryRecorder, UnwritablePathIsAnError) {
  auto rec = HistoryRecorder::open("/nonexistent-dir/h.jsonl", "kafka");
  ASSERT_FALSE(rec);
  EXPECT_EQ(rec.error(), std::errc::no_such_file_or_directory);
}

}  // namespace
}  // namespace faultline::checker
