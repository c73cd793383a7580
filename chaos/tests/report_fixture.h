// A small synthetic run directory for the report tests: two partitions on three brokers, a
// leader kill (b1, 3–6 s) and a leader pause (b2, 10–13 s) with the leader changes they cause,
// two producers whose sends stall or fail in the fault windows, and a final read. With
// `lose_write`, the final read skips one acknowledged value, so the real checker finds a lost
// write (and a poll skip) and the verdict carries its evidence.
#pragma once

#include <faultline/chaos/runner/report.h>
#include <faultline/checker/history.h>
#include <faultline/checker/kafka.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace faultline::chaos::test {

struct SyntheticRun {
  std::vector<checker::Event> events;
  nlohmann::json run;
  nlohmann::json verdict;
  std::vector<nlohmann::json> faults;
  std::vector<std::string> files{"faults.jsonl",   "history.jsonl",  "junit.xml", "logs/b1.stderr",
                                 "logs/b1.stdout", "logs/c1.stdout", "run.json",  "verdict.json"};
  int64_t lost_value = -1;  // the value the final read skips (lose_write)
  std::size_t sends = 0;

  // history.jsonl as the recorder would have written it (the checker's own serialiser).
  std::string history_text() const {
    std::string text = checker::history_header_line("kafka") + "\n";
    for (const auto& e : events)
      text += checker::to_jsonl_line(e) + "\n";
    return text;
  }

  RunReportInput input() const {
    RunReportInput in;
    in.run = run;
    in.verdict = verdict;
    in.faults = faults;
    auto h = checker::parse_jsonl(history_text(), "history.jsonl");
    if (h)
      in.history = std::move(*h);
    in.files = files;
    return in;
  }

  // Writes the files a real run leaves (history.jsonl through the checker's own serialiser).
  void write_to(const std::filesystem::path& dir) const {
    std::filesystem::create_directories(dir / "logs");
    std::ofstream(dir / "run.json") << run.dump(2);
    std::ofstream(dir / "verdict.json") << verdict.dump(2);
    std::ofstream(dir / "junit.xml") << "<testsuite/>\n";
    {
      std::ofstream f(dir / "faults.jsonl");
      for (const auto& r : faults)
        f << r.dump() << "\n";
    }
    std::ofstream(dir / "history.jsonl") << history_text();
    for (const char* log : {"logs/b1.stdout", "logs/b1.stderr", "logs/c1.stdout"})
      std::ofstream(dir / log) << "event=started\n";
  }
};

inline SyntheticRun make_synthetic_run(
    bool lose_write, double seconds_of_work = 19.0,
    std::chrono::milliseconds pace = std::chrono::milliseconds(5)) {
  using namespace std::chrono;
  using checker::Event;
  using checker::EventType;
  SyntheticRun run;
  auto ns = [](double s) { return nanoseconds(static_cast<int64_t>(s * 1e9)); };
  std::vector<Event> ev;
  auto nemesis = [&](checker::NemesisKind k, double t) {
    Event e;
    e.type = EventType::nemesis;
    e.nemesis = k;
    e.time = ns(t);
    return e;
  };
  auto leader = [&](double t, int p, int epoch, int broker) {
    Event e = nemesis(checker::NemesisKind::leader_change, t);
    e.partition = checker::PartitionId{p};
    e.epoch = checker::LeaderEpoch{epoch};
    e.leader = checker::BrokerId{broker};
    ev.push_back(e);
  };
  auto fault = [&](double from, double to, const char* name, const char* target) {
    Event start = nemesis(checker::NemesisKind::fault_start, from);
    start.fault = name;
    start.target = target;
    Event stop = start;
    stop.nemesis = checker::NemesisKind::fault_stop;
    stop.time = ns(to);
    ev.push_back(start);
    ev.push_back(stop);
  };
  leader(0.05, 0, 1, 1);
  leader(0.05, 1, 1, 2);
  fault(3.0, 6.0, "kill-leader", "b1");
  leader(4.0, 0, 2, 2);
  fault(10.0, 13.0, "pause-leader", "b2");
  leader(11.2, 0, 3, 3);
  leader(11.5, 1, 2, 1);

  // Producer p sends to partition p: 2 ms acks, except while its leader is down.
  std::map<int, std::vector<std::pair<int64_t, int64_t>>> acked;  // partition -> (offset, value)
  for (int p = 0; p < 2; ++p) {
    int64_t next_offset = 0, n = 0;
    for (double t = 0.2; t < seconds_of_work;) {
      const int64_t value = int64_t(p) * 1'000'000'000 + n++;
      Event inv;
      inv.type = EventType::invoke;
      inv.process = checker::ProcessId{p};
      inv.f = checker::Function::send;
      inv.time = ns(t);
      inv.partition = checker::PartitionId{p};
      inv.value = value;
      Event done = inv;
      // p0's sends in its outage are retried into the new leader (acknowledged at 4.0 s, up to
      // 1 s late); p1's fail fast, then time out (unknown) just before its new leader.
      double end = t + 0.002 + 0.0005 * double(n % 4);
      if (p == 0 && t >= 3.0 && t < 4.0)
        end = 4.0;
      if (p == 1 && t >= 10.0 && t < 11.0) {
        done.type = EventType::fail;
        done.error = "NOT_LEADER_OR_FOLLOWER";
        end = t + 0.02;
      } else if (p == 1 && t >= 11.0 && t < 11.5) {
        done.type = EventType::info;
        done.error = "request timed out";
        end = 11.5;
      } else {
        done.type = EventType::ok;
        done.offset = checker::Offset{next_offset};
        done.epoch = checker::LeaderEpoch{1};
        acked[p].emplace_back(next_offset++, value);
        ++run.sends;
      }
      done.time = ns(end);
      ev.push_back(inv);
      ev.push_back(done);
      t = end + duration<double>(pace).count();
    }
  }
  // The final read: everything acknowledged, in order (minus one value with lose_write).
  double t = seconds_of_work + 0.3;
  for (int p = 0; p < 2; ++p) {
    Event inv;
    inv.type = EventType::invoke;
    inv.process = checker::ProcessId{1000};
    inv.f = checker::Function::poll;
    inv.time = ns(t);
    inv.partition = checker::PartitionId{p};
    inv.final_read = true;
    Event done = inv;
    done.type = EventType::ok;
    done.time = ns(t + 0.01);
    const auto& recs = acked[p];
    for (std::size_t i = 0; i < recs.size(); ++i) {
      if (lose_write && p == 0 && i == recs.size() / 2) {
        run.lost_value = recs[i].second;
        continue;
      }
      done.records.push_back({checker::Offset{recs[i].first}, recs[i].second});
    }
    ev.push_back(inv);
    ev.push_back(done);
    t += 0.02;
  }
  std::stable_sort(ev.begin(), ev.end(),
                   [](const Event& a, const Event& b) { return a.time < b.time; });
  run.events = ev;

  auto history = checker::parse_jsonl(run.history_text(), "history.jsonl");
  const auto result = checker::check_kafka(*history);
  run.run = {{"scenario", "synthetic"},
             {"seed", 7},
             {"duration_s", 20},
             {"scenario_text", "name = \"synthetic\"\n"}};
  run.verdict = {{"scenario", "synthetic"},
                 {"seed", 7},
                 {"expected", "valid"},
                 {"verdict", result.valid ? "valid" : "invalid"},
                 {"matches_expectation", result.valid},
                 {"checker", result.to_json()},
                 {"faults",
                  {{{"fault", "kill-leader"},
                    {"target", "b1"},
                    {"at_s", 2.9},
                    {"injected", true},
                    {"backend", "signal"},
                    {"unavailable_ms", 1002.0}},
                   {{"fault", "pause-leader"},
                    {"target", "b2"},
                    {"at_s", 9.9},
                    {"injected", true},
                    {"backend", "signal"},
                    {"unavailable_ms", 1520.0}}}},
                 {"timings_s", {{"setup", 1.0}, {"workload", 20.0}}},
                 {"replay", "faultline replay /tmp/synthetic-run"}};
  // faults.jsonl on the host's monotonic clock: the history started at 5000 s of uptime, and
  // each record was written 1 ms before the history's event that follows it.
  const double base = 5000;
  auto record = [&](int id, const char* kind, const char* target, const char* phase, double t) {
    run.faults.push_back({{"id", id},
                          {"kind", kind},
                          {"targets", {target}},
                          {"params", nlohmann::json::object()},
                          {"phase", phase},
                          {"monotonic_ns", int64_t((base + t - 0.001) * 1e9)},
                          {"wall_time", "2024-01-01T00:00:00.000Z"},
                          {"verified", true},
                          {"backend", "signal"},
                          {"details", nlohmann::json::object()}});
  };
  record(1, "kill", "b1", "inject", 3.0);
  record(1, "kill", "b1", "heal", 6.0);
  record(2, "pause", "b2", "inject", 10.0);
  record(2, "pause", "b2", "heal", 13.0);
  return run;
}

}  // namespace faultline::chaos::test
