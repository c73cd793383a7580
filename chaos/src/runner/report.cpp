#include "faultline/chaos/runner/report.h"

#include <faultline/checker/html.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string_view>

namespace faultline::chaos {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// ---------------------------------------------------------------- small helpers

std::string esc(std::string_view s) {
  return checker::html_escape(s);
}

// A relative href for a run-directory path: every byte outside the unreserved set and '/' is
// percent-encoded, so a file name can neither leave the attribute nor become a scheme.
std::string href(std::string_view path) {
  std::string out;
  for (unsigned char c : path) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  // "./" keeps a name such as "a:b" from being read as a scheme.
  return "./" + out;
}

std::string str(const json& j, const char* key, std::string fallback = "") {
  if (!j.is_object())
    return fallback;
  auto it = j.find(key);
  if (it == j.end() || it->is_null())
    return fallback;
  if (it->is_string())
    return it->get<std::string>();
  return it->dump();
}

double num(const json& j, const char* key, double fallback = 0) {
  if (!j.is_object())
    return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

double seconds(std::chrono::nanoseconds t) {
  return std::chrono::duration<double>(t).count();
}

std::string fmt_s(double s) {
  return fmt::format("{:.3f}s", s);
}

// Short lists of values in a table cell: the first few, then how many more.
std::string join_capped(const json& arr, std::size_t cap) {
  if (!arr.is_array())
    return "";
  std::string out;
  std::size_t i = 0;
  for (const auto& v : arr) {
    if (i == cap) {
      out += fmt::format(" … (+{})", arr.size() - cap);
      break;
    }
    if (i++)
      out += ", ";
    out += v.is_string() ? v.get<std::string>() : v.dump();
  }
  return out;
}

const char* broker_colour(int broker) {
  static const char* palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
                                  "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79"};
  if (broker < 1)
    return "#c7c7c7";
  return palette[(broker - 1) % 10];
}

const char* fault_colour(std::string_view fault) {
  auto has = [&](std::string_view w) { return fault.find(w) != std::string_view::npos; };
  if (has("lagging"))
    return "#e45756";
  if (has("kill"))
    return "#e45756";
  if (has("pause"))
    return "#f58518";
  if (has("stop") || has("restart") || has("shutdown"))
    return "#b279a2";
  if (has("netem") || has("packet") || has("delay"))
    return "#54a24b";
  if (has("disk") || has("throttle"))
    return "#9d755d";
  if (has("isolate") || has("partition") || has("cut") || has("halves") || has("ring") ||
      has("bridge") || has("link"))
    return "#4c78a8";
  return "#bab0ac";
}

// A "nice" step for about `target` ticks over [0, span].
double nice_step(double span, int target) {
  if (span <= 0)
    return 1;
  double raw = span / target;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= m * mag)
      return m * mag;
  return 10 * mag;
}

// ---------------------------------------------------------------- what the page draws

struct Window {  // one schedule step: fault-start .. fault-stop in the history
  double start = 0, end = 0;
  bool open = false;  // never stopped (the history ended first)
  std::string fault, target;
};

struct FaultRecordView {  // one faults.jsonl record, placed on the history's clock if possible
  json record;
  std::optional<double> at;  // seconds on the history's clock
  int step = -1;             // index of its window, when matched
};

struct LeaderSegment {
  double start = 0, end = 0;
  int leader = -1, epoch = -1;
  bool unclean = false;
};

// The active controller from `start` on, from the watcher's "controller-change" notes.
struct ControllerSegment {
  double start = 0, end = 0;
  int controller = 0;  // K of node cK
  long long epoch = -1;
};

struct Bucket {
  std::size_t acks = 0, fails = 0, unknown = 0;
  std::vector<double> latency_ms;  // acknowledged sends completing in the bucket
};

struct Model {
  double end = 1;  // seconds: the right edge of every plot
  std::vector<Window> windows;
  std::vector<FaultRecordView> records;
  bool records_placed = false;
  std::map<int, std::vector<LeaderSegment>> leaders;  // partition -> segments
  std::vector<ControllerSegment> controllers;
  std::vector<std::pair<double, int>> unclean;  // (time, partition)
  double bucket = 1;                            // seconds
  std::vector<Bucket> buckets;
  std::optional<double> final_read;
  std::vector<std::pair<double, std::string>> anomaly_marks;  // (time, kind)
  std::set<int> brokers;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty() || !out.empty())
    out.push_back(cur);
  return out;
}

// faults.jsonl carries the host's monotonic clock; the history counts from its own start. The
// runner writes a step's inject records just before its fault-start event and its heal records
// just before its fault-stop, so matching records to steps (by their targets, in order) gives the
// offset between the clocks: the largest (record - event) difference, which puts every record at
// or just before the event that followed it.
void place_fault_records(Model& m) {
  std::size_t r = 0;
  const auto& recs = m.records;
  std::vector<int> step_of(recs.size(), -1);
  for (std::size_t w = 0; w < m.windows.size(); ++w) {
    const auto want = split(m.windows[w].target, ',');
    // Inject records of this step: consecutive ones whose first targets (one record per
    // target) or whose whole target list (one record for the step) spell the window's target.
    std::vector<std::string> firsts;
    std::size_t begin = r;
    bool matched = false;
    while (r < recs.size() && str(recs[r].record, "phase") == "inject") {
      const auto& t = recs[r].record["targets"];
      std::vector<std::string> all;
      if (t.is_array())
        for (const auto& x : t)
          if (x.is_string())
            all.push_back(x.get<std::string>());
      ++r;
      if (r == begin + 1 && all == want) {
        matched = true;
        break;
      }
      if (!all.empty())
        firsts.push_back(all.front());
      if (firsts == want) {
        matched = true;
        break;
      }
    }
    if (!matched)
      return;
    for (std::size_t i = begin; i < r; ++i)
      step_of[i] = static_cast<int>(w);
    while (r < recs.size() && str(recs[r].record, "phase") == "heal")
      step_of[r++] = static_cast<int>(w);
  }
  if (r != recs.size() || recs.empty())
    return;
  std::optional<double> offset;
  for (std::size_t i = 0; i < recs.size(); ++i) {
    const auto& w = m.windows[step_of[i]];
    const double mono = num(recs[i].record, "monotonic_ns", NAN) / 1e9;
    if (std::isnan(mono))
      return;
    const bool heal = str(recs[i].record, "phase") == "heal";
    const double event = heal ? w.end : w.start;
    if (heal && w.open)
      continue;
    offset = std::max(offset.value_or(-INFINITY), mono - event);
  }
  if (!offset)
    return;
  for (std::size_t i = 0; i < recs.size(); ++i) {
    m.records[i].step = step_of[i];
    m.records[i].at = num(recs[i].record, "monotonic_ns") / 1e9 - *offset;
  }
  m.records_placed = true;
}

Model build_model(const RunReportInput& in) {
  Model m;
  double end = 0;
  for (const auto& f : in.faults)
    m.records.push_back({f, std::nullopt, -1});
  if (in.history) {
    const auto& h = *in.history;
    for (const auto& op : h.ops) {
      end = std::max(end, seconds(op.complete_time.value_or(op.invoke_time)));
      if (op.final_read && (!m.final_read || seconds(op.invoke_time) < *m.final_read))
        m.final_read = seconds(op.invoke_time);
    }
    for (const auto& n : h.nemesis)
      end = std::max(end, seconds(n.time));
  }
  m.end = std::max(end, 1.0);

  if (in.history) {
    const auto& h = *in.history;
    // Fault windows: a stop closes the most recent open start of the same fault and target.
    for (const auto& n : h.nemesis) {
      const double t = seconds(n.time);
      if (n.kind == checker::NemesisKind::fault_start) {
        m.windows.push_back({t, m.end, true, n.fault, n.target});
      } else if (n.kind == checker::NemesisKind::fault_stop) {
        for (auto it = m.windows.rbegin(); it != m.windows.rend(); ++it) {
          if (it->open && it->fault == n.fault && it->target == n.target) {
            it->end = t;
            it->open = false;
            break;
          }
        }
      } else if (n.kind == checker::NemesisKind::note && n.fault == "controller-change") {
        // target: "cK epoch E"
        ControllerSegment seg{t, m.end};
        if (std::sscanf(n.target.c_str(), "c%d epoch %lld", &seg.controller, &seg.epoch) != 2)
          continue;
        if (!m.controllers.empty())
          m.controllers.back().end = t;
        m.controllers.push_back(seg);
      } else if (n.kind == checker::NemesisKind::leader_change ||
                 n.kind == checker::NemesisKind::unclean_election) {
        if (!n.partition)
          continue;
        const int p = n.partition->value();
        const bool unclean = n.kind == checker::NemesisKind::unclean_election;
        if (unclean)
          m.unclean.emplace_back(t, p);
        auto& segs = m.leaders[p];
        const int leader = n.leader ? n.leader->value() : -1;
        const int epoch = n.epoch ? n.epoch->value() : -1;
        if (!segs.empty() && segs.back().epoch == epoch && segs.back().leader == leader) {
          segs.back().unclean |= unclean;  // the unclean event and its leader change: one segment
          continue;
        }
        if (!segs.empty())
          segs.back().end = t;
        segs.push_back({t, m.end, leader, epoch, unclean});
        if (leader > 0)
          m.brokers.insert(leader);
      }
    }

    // Before a partition's first recorded leader change its leader is unknown to the page (a
    // history may start after the first election): drawn as such rather than left blank.
    for (const auto& op : h.ops)
      if (op.partition)
        m.leaders.try_emplace(op.partition->value());
    for (auto& [p, segs] : m.leaders) {
      const double first = segs.empty() ? m.end : segs.front().start;
      if (first > 0)
        segs.insert(segs.begin(), LeaderSegment{0, first, -1, -1, false});
    }

    // Buckets: the smallest step of at least 250 ms that keeps their number bounded.
    m.bucket = 0.25;
    for (double b :
         {0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0}) {
      m.bucket = b;
      if (std::ceil(m.end / b) <= double(kMaxReportBuckets))
        break;
    }
    const std::size_t n =
        std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(m.end / m.bucket)));
    m.buckets.resize(n);
    auto bucket_of = [&](double t) {
      return std::min(n - 1, static_cast<std::size_t>(std::max(0.0, t) / m.bucket));
    };
    for (const auto& op : h.ops) {
      if (op.f != checker::Function::send)
        continue;
      const double t = seconds(op.complete_time.value_or(op.invoke_time));
      auto& b = m.buckets[bucket_of(t)];
      if (op.outcome == checker::Outcome::ok) {
        ++b.acks;
        if (op.complete_time)
          b.latency_ms.push_back(
              std::chrono::duration<double, std::milli>(*op.complete_time - op.invoke_time)
                  .count());
      } else if (op.outcome == checker::Outcome::fail) {
        ++b.fails;
      } else {
        ++b.unknown;
      }
    }
  }

  // Where the checker's evidence sits in time.
  const json* details = nullptr;
  if (in.verdict.is_object() && in.verdict.contains("checker") && in.verdict["checker"].is_object())
    if (auto it = in.verdict["checker"].find("details");
        it != in.verdict["checker"].end() && it->is_array())
      details = &*it;
  if (details) {
    for (const auto& a : *details) {
      if (!a.contains("ops") || !a["ops"].is_array())
        continue;
      for (const auto& op : a["ops"]) {
        if (m.anomaly_marks.size() >= 1000)
          break;
        m.anomaly_marks.emplace_back(num(op, "invoke_ns") / 1e9, str(a, "kind"));
      }
    }
  }
  place_fault_records(m);
  return m;
}

// ---------------------------------------------------------------- SVG

constexpr double kWidth = 1000, kLeft = 78, kRight = 18;
constexpr double kPlotWidth = kWidth - kLeft - kRight;

struct Svg {
  std::string s;
  template <typename... Args>
  void add(fmt::format_string<Args...> f, Args&&... args) {
    fmt::format_to(std::back_inserter(s), f, std::forward<Args>(args)...);
  }
};

double xpos(const Model& m, double t) {
  return kLeft + std::clamp(t / m.end, 0.0, 1.0) * kPlotWidth;
}

void time_axis(Svg& svg, const Model& m, double top, double bottom) {
  const double step = nice_step(m.end, 10);
  for (double t = 0; t <= m.end + 1e-9; t += step) {
    const double x = xpos(m, t);
    svg.add(R"(<line class="grid" x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}"/>)", x, top, x,
            bottom);
    svg.add(R"(<text class="tick" x="{:.1f}" y="{:.1f}" text-anchor="middle">{}s</text>)", x,
            bottom + 13, step < 1 ? fmt::format("{:.1f}", t) : fmt::format("{:.0f}", t));
  }
}

// The fault windows repeated behind a plot, so its curves can be read against them.
void fault_shades(Svg& svg, const Model& m, double top, double bottom) {
  for (const auto& w : m.windows) {
    const double x1 = xpos(m, w.start), x2 = std::max(xpos(m, w.end), x1 + 1);
    svg.add(
        R"(<rect class="fault-shade" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"><title>{} {} {}–{}</title></rect>)",
        x1, top, x2 - x1, bottom - top, fault_colour(w.fault), esc(w.fault), esc(w.target),
        fmt_s(w.start), fmt_s(w.end));
  }
  if (m.final_read) {
    const double x = xpos(m, *m.final_read);
    svg.add(
        R"(<line class="final-read" x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}"><title>final read from {}</title></line>)",
        x, top, x, bottom, fmt_s(*m.final_read));
  }
}

std::string faults_plot(const Model& m) {
  Svg svg;
  const double top = 8, label_rows = 3, row = 14;
  const double bands_top = top + label_rows * row + 4;
  // Record bars in lanes, reusing a lane once its previous bar has ended.
  std::vector<double> lane_end;
  std::vector<int> lane_of(m.records.size(), -1);
  std::map<int64_t, std::size_t> inject_of;  // fault id -> record index
  if (m.records_placed) {
    for (std::size_t i = 0; i < m.records.size(); ++i) {
      const auto& r = m.records[i].record;
      if (str(r, "phase") != "inject")
        continue;
      const double start = *m.records[i].at;
      double stop = start;
      for (std::size_t j = i + 1; j < m.records.size(); ++j)
        if (str(m.records[j].record, "phase") == "heal" &&
            r.value("id", -1) == m.records[j].record.value("id", -2)) {
          stop = *m.records[j].at;
          break;
        }
      std::size_t lane = 0;
      while (lane < lane_end.size() && lane_end[lane] > start)
        ++lane;
      if (lane == lane_end.size())
        lane_end.push_back(0);
      lane_end[lane] = std::max(stop, start + m.end / 200);
      lane_of[i] = static_cast<int>(lane);
      inject_of[r.value("id", int64_t{-1})] = i;
    }
  }
  const double bar_h = 10;
  const double bars_top = bands_top + 6;
  const double bars_bottom =
      bars_top + std::max<double>(1, static_cast<double>(lane_end.size())) * (bar_h + 3);
  const double marks_top = bars_bottom + 4;
  const double bottom = marks_top + 14;
  const double height = bottom + 22;
  svg.add(
      R"(<svg id="faults-plot" class="plot" viewBox="0 0 {} {:.0f}" width="{}" height="{:.0f}" role="img" aria-label="fault windows over time">)",
      kWidth, height, kWidth, height);
  svg.add(R"(<rect class="frame" x="{}" y="{:.1f}" width="{}" height="{:.1f}"/>)", kLeft, bands_top,
          kPlotWidth, bottom - bands_top);
  time_axis(svg, m, bands_top, bottom);
  for (std::size_t i = 0; i < m.windows.size(); ++i) {
    const auto& w = m.windows[i];
    const double x1 = xpos(m, w.start), x2 = std::max(xpos(m, w.end), x1 + 1);
    svg.add(
        R"(<rect class="fault-band" data-fault="{}" data-target="{}" data-start-s="{:.3f}" data-end-s="{:.3f}" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"><title>{} {}: {} – {}{}</title></rect>)",
        esc(w.fault), esc(w.target), w.start, w.end, x1, bands_top, x2 - x1, bottom - bands_top,
        fault_colour(w.fault), esc(w.fault), esc(w.target), fmt_s(w.start), fmt_s(w.end),
        w.open ? " (not healed before the history ended)" : "");
    const double ly =
        top + static_cast<double>(i % static_cast<std::size_t>(label_rows)) * row + 10;
    svg.add(R"(<text class="band-label" x="{:.1f}" y="{:.1f}">{} {}</text>)", x1 + 2, ly,
            esc(w.fault), esc(w.target));
    svg.add(
        R"(<line class="band-tick" x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="{}"/>)",
        x1, ly + 2, x1, bands_top, fault_colour(w.fault));
  }
  if (m.records_placed) {
    svg.add(R"(<text class="axis-label" x="{}" y="{:.1f}" text-anchor="end">injected</text>)",
            kLeft - 6, bars_top + 9);
    for (std::size_t i = 0; i < m.records.size(); ++i) {
      if (lane_of[i] < 0)
        continue;
      const auto& r = m.records[i].record;
      const double start = *m.records[i].at;
      double stop = start;
      bool healed = false;
      for (std::size_t j = i + 1; j < m.records.size(); ++j)
        if (str(m.records[j].record, "phase") == "heal" &&
            r.value("id", -1) == m.records[j].record.value("id", -2)) {
          stop = *m.records[j].at;
          healed = true;
          break;
        }
      const double x1 = xpos(m, start), x2 = std::max(xpos(m, stop), x1 + 2);
      const double y = bars_top + lane_of[i] * (bar_h + 3);
      const bool failed = r.contains("error");
      svg.add(
          R"(<rect class="fault-record" data-id="{}" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{}" fill="{}" stroke="{}"><title>#{} {} {} via {}{}: {}{}</title></rect>)",
          esc(str(r, "id")), x1, y, x2 - x1, bar_h,
          failed ? "#ffffff" : fault_colour(str(r, "kind")), failed ? "#d62728" : "none",
          esc(str(r, "id")), esc(str(r, "kind")), esc(join_capped(r["targets"], 8)),
          esc(str(r, "backend", "?")), str(r, "verified") == "true" ? ", verified" : "",
          healed ? fmt_s(start) + " – " + fmt_s(stop) : "at " + fmt_s(start),
          failed ? " FAILED: " + esc(str(r, "error")) : "");
    }
  }
  svg.add(R"(<text class="axis-label" x="{}" y="{:.1f}" text-anchor="end">anomalies</text>)",
          kLeft - 6, marks_top + 10);
  for (const auto& [t, kind] : m.anomaly_marks) {
    const double x = xpos(m, t);
    svg.add(
        R"(<line class="anomaly-mark" x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}"><title>{} at {}</title></line>)",
        x, marks_top, x, marks_top + 12, esc(kind), fmt_s(t));
  }
  if (m.final_read) {
    const double x = xpos(m, *m.final_read);
    svg.add(
        R"(<line class="final-read" x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}"><title>final read from {}</title></line>)",
        x, bands_top, x, bottom, fmt_s(*m.final_read));
  }
  svg.add("</svg>");
  return svg.s;
}

std::string leaders_plot(const Model& m) {
  Svg svg;
  const double top = 8, lane_h = 22, gap = 4;
  const double n = std::max<double>(1, static_cast<double>(m.leaders.size()));
  const double bottom = top + n * (lane_h + gap);
  const double height = bottom + 22;
  svg.add(
      R"(<svg id="leaders-plot" class="plot" viewBox="0 0 {} {:.0f}" width="{}" height="{:.0f}" role="img" aria-label="leader of each partition over time">)",
      kWidth, height, kWidth, height);
  svg.add(R"(<rect class="frame" x="{}" y="{}" width="{}" height="{:.1f}"/>)", kLeft, top,
          kPlotWidth, bottom - top);
  fault_shades(svg, m, top, bottom);
  time_axis(svg, m, top, bottom);
  double y = top + gap / 2;
  for (const auto& [p, segs] : m.leaders) {
    svg.add(R"(<g class="leader-lane" data-partition="{}">)", p);
    svg.add(R"(<text class="axis-label" x="{}" y="{:.1f}" text-anchor="end">p{}</text>)", kLeft - 6,
            y + 15, p);
    for (const auto& s : segs) {
      const double x1 = xpos(m, s.start), x2 = std::max(xpos(m, s.end), x1 + 1);
      if (s.leader < 0) {
        svg.add(
            R"(<rect class="leader-unknown" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{}"><title>partition {}: no leader change recorded before {}</title></rect>)",
            x1, y, x2 - x1, lane_h, p, fmt_s(s.end));
        if (x2 - x1 >= 90)
          svg.add(R"(<text class="unknown-label" x="{:.1f}" y="{:.1f}">leader not recorded</text>)",
                  x1 + 4, y + 15);
        continue;
      }
      svg.add(
          R"(<rect class="leader-seg" data-leader="{}" data-epoch="{}" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{}" fill="{}"{}><title>partition {}: leader b{}, epoch {}, {} – {}{}</title></rect>)",
          s.leader, s.epoch, x1, y, x2 - x1, lane_h, broker_colour(s.leader),
          s.unclean ? R"( stroke="#d62728" stroke-width="2")" : "", p, s.leader, s.epoch,
          fmt_s(s.start), fmt_s(s.end), s.unclean ? " (unclean election)" : "");
      const double w = x2 - x1;
      if (w >= 60)
        svg.add(R"(<text class="seg-label" x="{:.1f}" y="{:.1f}">b{} e{}</text>)", x1 + 4, y + 15,
                s.leader, s.epoch);
      else if (w >= 22)
        svg.add(R"(<text class="seg-label" x="{:.1f}" y="{:.1f}">b{}</text>)", x1 + 3, y + 15,
                s.leader);
    }
    svg.add("</g>");
    y += lane_h + gap;
  }
  if (m.leaders.empty())
    svg.add(R"(<text class="empty" x="{:.1f}" y="{:.1f}">no partitions in the history</text>)",
            kLeft + 10, top + 17);
  for (const auto& [t, p] : m.unclean) {
    double ly = top + gap / 2;
    for (const auto& [q, _] : m.leaders) {
      if (q == p)
        break;
      ly += lane_h + gap;
    }
    const double x = xpos(m, t);
    svg.add(
        R"(<path class="unclean-mark" d="M{:.1f},{:.1f} l-5,-7 h10 z"><title>unclean election on partition {} at {}</title></path>)",
        x, ly, p, fmt_s(t));
  }
  svg.add("</svg>");
  return svg.s;
}

// One lane: which controller of the quorum was active, from each election the watcher saw to
// the next (the gap before a new one is the election itself).
std::string controllers_plot(const Model& m) {
  Svg svg;
  const double top = 8, lane_h = 22, bottom = top + lane_h + 4, height = bottom + 22;
  svg.add(
      R"(<svg id="controllers-plot" class="plot" viewBox="0 0 {} {:.0f}" width="{}" height="{:.0f}" role="img" aria-label="active controller over time">)",
      kWidth, height, kWidth, height);
  svg.add(R"(<rect class="frame" x="{}" y="{}" width="{}" height="{:.1f}"/>)", kLeft, top,
          kPlotWidth, bottom - top);
  fault_shades(svg, m, top, bottom);
  time_axis(svg, m, top, bottom);
  const double y = top + 2;
  svg.add(R"(<text class="axis-label" x="{}" y="{:.1f}" text-anchor="end">active</text>)",
          kLeft - 6, y + 15);
  for (const auto& s : m.controllers) {
    const double x1 = xpos(m, s.start), x2 = std::max(xpos(m, s.end), x1 + 1);
    svg.add(
        R"(<rect class="controller-seg" data-controller="c{}" data-epoch="{}" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{}" fill="{}"><title>controller c{} active, epoch {}, {} – {}</title></rect>)",
        s.controller, s.epoch, x1, y, x2 - x1, lane_h, broker_colour(s.controller), s.controller,
        s.epoch, fmt_s(s.start), fmt_s(s.end));
    if (x2 - x1 >= 60)
      svg.add(R"(<text class="seg-label" x="{:.1f}" y="{:.1f}">c{} e{}</text>)", x1 + 4, y + 15,
              s.controller, s.epoch);
  }
  svg.add("</svg>");
  return svg.s;
}

// Nearest-rank percentile (q in (0, 1]) of a non-empty sample; reorders it.
double percentile(std::vector<double>& v, double q) {
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  const std::size_t k = std::clamp<std::size_t>(rank, 1, v.size()) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

std::string latency_plot(const Model& m) {
  Svg svg;
  const double top = 8, bottom = 218, height = bottom + 22;
  svg.add(
      R"(<svg id="latency-plot" class="plot" viewBox="0 0 {} {:.0f}" width="{}" height="{:.0f}" role="img" aria-label="write latency over time">)",
      kWidth, height, kWidth, height);
  svg.add(R"(<rect class="frame" x="{}" y="{}" width="{}" height="{}"/>)", kLeft, top, kPlotWidth,
          bottom - top);
  fault_shades(svg, m, top, bottom);
  time_axis(svg, m, top, bottom);
  // p50, p99 and max per bucket; a bucket without acknowledged writes breaks the lines.
  struct Point {
    double p50, p99, max;
  };
  std::vector<std::optional<Point>> pts(m.buckets.size());
  double lo = INFINITY, hi = 0;
  for (std::size_t i = 0; i < m.buckets.size(); ++i) {
    auto v = m.buckets[i].latency_ms;
    if (v.empty())
      continue;
    Point p{percentile(v, 0.5), percentile(v, 0.99), *std::max_element(v.begin(), v.end())};
    pts[i] = p;
    lo = std::min(lo, std::max(p.p50, 0.01));
    hi = std::max(hi, p.max);
  }
  if (hi <= 0) {
    svg.add(R"(<text class="empty" x="{:.1f}" y="{:.1f}">no acknowledged writes</text>)",
            kLeft + 10, top + 20);
    svg.add("</svg>");
    return svg.s;
  }
  // Logarithmic: a failover turns milliseconds into seconds.
  const double dlo = std::floor(std::log10(lo)), dhi = std::max(dlo + 1, std::ceil(std::log10(hi)));
  auto ypos = [&](double ms) {
    const double f = (std::log10(std::max(ms, std::pow(10.0, dlo))) - dlo) / (dhi - dlo);
    return bottom - f * (bottom - top);
  };
  for (double d = dlo; d <= dhi; d += 1) {
    const double ms = std::pow(10.0, d), y = ypos(ms);
    svg.add(R"(<line class="grid" x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}"/>)", kLeft, y,
            kLeft + kPlotWidth, y);
    svg.add(R"(<text class="tick" x="{}" y="{:.1f}" text-anchor="end">{}</text>)", kLeft - 4, y + 4,
            ms >= 1000 ? fmt::format("{:g} s", ms / 1000) : fmt::format("{:g} ms", ms));
  }
  auto series = [&](const char* name, const char* colour, const char* extra, auto get) {
    std::string points;
    auto flush = [&] {
      if (!points.empty())
        svg.add(
            R"(<polyline class="series" data-series="{}" fill="none" stroke="{}"{} points="{}"/>)",
            name, colour, extra, points);
      points.clear();
    };
    for (std::size_t i = 0; i < pts.size(); ++i) {
      if (!pts[i]) {
        flush();
        continue;
      }
      const double x = xpos(m, (static_cast<double>(i) + 0.5) * m.bucket);
      points += fmt::format("{}{:.1f},{:.1f}", points.empty() ? "" : " ", x, ypos(get(*pts[i])));
      if (i + 1 == pts.size() || !pts[i + 1]) {
        // A single isolated bucket still shows as a short dash.
        if (points.find(' ') == std::string::npos)
          points += fmt::format(" {:.1f},{:.1f}", x + 2, ypos(get(*pts[i])));
      }
    }
    flush();
  };
  series("latency-max", "#bbbbbb", R"( stroke-dasharray="2,2")",
         [](const Point& p) { return p.max; });
  series("latency-p99", "#d62728", "", [](const Point& p) { return p.p99; });
  series("latency-p50", "#1f77b4", "", [](const Point& p) { return p.p50; });
  svg.add("</svg>");
  return svg.s;
}

std::string throughput_plot(const Model& m) {
  Svg svg;
  const double top = 8, bottom = 188, height = bottom + 22;
  svg.add(
      R"(<svg id="throughput-plot" class="plot" viewBox="0 0 {} {:.0f}" width="{}" height="{:.0f}" role="img" aria-label="write throughput over time">)",
      kWidth, height, kWidth, height);
  svg.add(R"(<rect class="frame" x="{}" y="{}" width="{}" height="{}"/>)", kLeft, top, kPlotWidth,
          bottom - top);
  fault_shades(svg, m, top, bottom);
  time_axis(svg, m, top, bottom);
  double peak = 0;
  for (const auto& b : m.buckets)
    peak = std::max({peak, double(b.acks), double(b.fails), double(b.unknown)});
  peak /= m.bucket;
  if (m.buckets.empty()) {
    svg.add(R"(<text class="empty" x="{:.1f}" y="{:.1f}">no history</text>)", kLeft + 10, top + 20);
    svg.add("</svg>");
    return svg.s;
  }
  const double step = nice_step(std::max(peak, 1.0), 4);
  const double ymax = std::max(step, std::ceil(std::max(peak, 1.0) / step) * step);
  auto ypos = [&](double rate) { return bottom - rate / ymax * (bottom - top); };
  for (double v = 0; v <= ymax + 1e-9; v += step) {
    svg.add(R"(<line class="grid" x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}"/>)", kLeft, ypos(v),
            kLeft + kPlotWidth, ypos(v));
    svg.add(R"(<text class="tick" x="{}" y="{:.1f}" text-anchor="end">{:g}/s</text>)", kLeft - 4,
            ypos(v) + 4, v);
  }
  // Step lines: one flat segment per bucket, so an outage reads as a drop to zero.
  auto series = [&](const char* name, const char* colour, auto get) {
    std::string points;
    for (std::size_t i = 0; i < m.buckets.size(); ++i) {
      const double rate = double(get(m.buckets[i])) / m.bucket;
      const double x1 = xpos(m, static_cast<double>(i) * m.bucket);
      const double x2 = xpos(m, static_cast<double>(i + 1) * m.bucket);
      points += fmt::format("{}{:.1f},{:.1f} {:.1f},{:.1f}", points.empty() ? "" : " ", x1,
                            ypos(rate), x2, ypos(rate));
    }
    svg.add(R"(<polyline class="series" data-series="{}" fill="none" stroke="{}" points="{}"/>)",
            name, colour, points);
  };
  series("acks", "#2ca02c", [](const Bucket& b) { return b.acks; });
  series("unknown", "#ff7f0e", [](const Bucket& b) { return b.unknown; });
  series("failures", "#d62728", [](const Bucket& b) { return b.fails; });
  svg.add("</svg>");
  return svg.s;
}

// ---------------------------------------------------------------- tables

std::string evidence_cell(const json& a) {
  std::string out;
  if (a.contains("explanation"))
    out += "<p>" + esc(str(a, "explanation")) + "</p>";
  if (a.contains("ops") && a["ops"].is_array() && !a["ops"].empty()) {
    out += "<ul class=\"ops\">";
    std::size_t shown = 0;
    for (const auto& op : a["ops"]) {
      if (shown++ == 20) {
        out += fmt::format("<li>… {} more in verdict.json</li>", a["ops"].size() - 20);
        break;
      }
      std::string line =
          fmt::format("process {} {} {} invoked {}", str(op, "process"), esc(str(op, "f")),
                      esc(str(op, "type")), fmt_s(num(op, "invoke_ns") / 1e9));
      if (op.contains("complete_ns"))
        line += ", completed " + fmt_s(num(op, "complete_ns") / 1e9);
      if (op.contains("offset"))
        line += ", offset " + esc(str(op, "offset"));
      if (op.contains("value"))
        line += ", value " + esc(str(op, "value"));
      if (op.contains("epoch"))
        line += ", epoch " + esc(str(op, "epoch"));
      if (num(op, "line") > 0)
        line += " (history.jsonl line " + esc(str(op, "line")) + ")";
      out += "<li>" + line + "</li>";
    }
    out += "</ul>";
  }
  if (a.contains("elections") && a["elections"].is_array() && !a["elections"].empty()) {
    out += "<ul class=\"elections\">";
    for (const auto& e : a["elections"])
      out += fmt::format("<li>{} at {}: leader b{}, epoch {}</li>", esc(str(e, "event")),
                         fmt_s(num(e, "time_ns") / 1e9), esc(str(e, "leader", "?")),
                         esc(str(e, "epoch", "?")));
    out += "</ul>";
  }
  return out;
}

std::string anomaly_table(const json& details, const char* row_class) {
  std::string out =
      "<table class=\"anomalies\"><tr><th>anomaly</th><th>partition</th><th>values</th>"
      "<th>offsets</th><th>evidence</th></tr>";
  for (const auto& a : details) {
    out += fmt::format(
        "<tr class=\"{}\" data-kind=\"{}\"><td "
        "class=\"kind\">{}</td><td>{}</td><td>{}</td><td>{}</td><td "
        "class=\"evidence\">{}</td></tr>",
        row_class, esc(str(a, "kind")), esc(str(a, "kind")), esc(str(a, "partition")),
        esc(join_capped(a.value("values", json::array()), 12)),
        esc(join_capped(a.value("offsets", json::array()), 12)), evidence_cell(a));
  }
  return out + "</table>";
}

const char* kStyle = R"css(
body{font-family:sans-serif;margin:16px 24px;color:#222;background:#fff;max-width:1060px}
h1{font-size:20px;margin:0 0 6px} h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid #ddd}
.verdict{display:inline-block;padding:2px 8px;border-radius:3px;color:#fff;font-weight:bold}
.valid{background:#2ca02c}.invalid{background:#d62728}.none{background:#7f7f7f}
table{border-collapse:collapse;font-size:12px;margin:4px 0}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4} td.evidence p{margin:0 0 3px} td.evidence ul{margin:0;padding-left:16px}
.plot{display:block;width:100%;height:auto;max-width:1000px}
.plot text{font-family:sans-serif;font-size:11px;fill:#333}
.plot .frame{fill:none;stroke:#999}
.plot .grid{stroke:#e6e6e6}
.plot .fault-band{fill-opacity:.28}
.plot .fault-shade{fill-opacity:.16}
.plot .fault-record{fill-opacity:.85}
.plot .band-tick{stroke-width:1}
.plot .series{stroke-width:1.6;fill:none}
.plot .seg-label{fill:#fff;font-weight:bold}
.plot .anomaly-mark{stroke:#d62728;stroke-width:2}
.plot .unclean-mark{fill:#d62728}
.plot .leader-unknown{fill:#eeeeee;stroke:#cccccc;stroke-dasharray:3,3}
.plot .unknown-label{fill:#888;font-style:italic}
.plot .final-read{stroke:#555;stroke-dasharray:4,3}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:12px;height:10px;margin-right:4px;vertical-align:middle}
.problems{color:#a00} code{font-size:12px}
)css";

std::string legend(const std::vector<std::pair<std::string, std::string>>& items) {
  std::string out = "<div class=\"legend\">";
  for (const auto& [colour, label] : items)
    out += fmt::format("<span><i style=\"background:{}\"></i>{}</span>", colour, esc(label));
  return out + "</div>";
}

}  // namespace

std::string render_run_report(const RunReportInput& in) {
  const Model m = build_model(in);
  const json& v = in.verdict;
  const json checker = v.is_object() && v.contains("checker") ? v["checker"] : json::object();
  const std::string scenario = str(v, "scenario", str(in.run, "scenario", "?"));
  const std::string seed = str(v, "seed", str(in.run, "seed", "?"));
  const std::string verdict = str(v, "verdict", "");

  Svg page;  // not only SVG: the same formatted appends build the whole page
  page.s.reserve(64 << 10);
  page.add(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>faultline {} seed {}</title><style>{}</style></head><body>\n",
      esc(scenario), esc(seed), kStyle);
  page.add("<h1>faultline run: {} (seed {})</h1>\n", esc(scenario), esc(seed));
  if (v.is_object()) {
    const bool matches = v.value("matches_expectation", false);
    page.add(
        "<p>verdict <span id=\"verdict\" class=\"verdict {}\">{}</span> expected {} — {}.</p>\n",
        verdict == "valid" ? "valid" : "invalid", esc(verdict), esc(str(v, "expected", "?")),
        matches ? "as expected" : "<b>not as expected</b>");
    page.add(
        "<p>{} operations; {} acknowledged sends, {} failed, {} unknown; {} polls. Lost {}, unseen "
        "{}, "
        "duplicates {}.</p>\n",
        esc(str(checker, "ops", "?")), esc(str(checker, "acked", "?")),
        esc(str(checker, "failed", "?")), esc(str(checker, "unknown", "?")),
        esc(str(checker, "polls", "?")), esc(str(checker, "lost", "?")),
        esc(str(checker, "unseen", "?")), esc(str(checker, "duplicates", "?")));
    if (v.contains("replay"))
      page.add("<p>replay: <code>{}</code></p>\n", esc(str(v, "replay")));
  } else {
    page.add(
        "<p>verdict <span id=\"verdict\" class=\"verdict none\">none</span> (no verdict.json: the "
        "run did not "
        "finish)</p>\n");
  }
  if (!in.problems.empty()) {
    page.add("<ul class=\"problems\">");
    for (const auto& p : in.problems)
      page.add("<li>{}</li>", esc(p));
    page.add("</ul>\n");
  }
  page.add("<p>Time is seconds since the history started; plots aggregate per {:g} s bucket.</p>\n",
           m.bucket);

  // ---- plots
  page.add("<h2>Faults</h2>\n");
  {
    std::vector<std::pair<std::string, std::string>> items;
    std::set<std::string> seen;
    for (const auto& w : m.windows)
      if (seen.insert(w.fault).second)
        items.emplace_back(fault_colour(w.fault), w.fault);
    items.emplace_back("#d62728", "anomaly evidence (op invoked)");
    page.add("{}\n", legend(items));
  }
  page.add("{}\n", faults_plot(m));
  page.add("<h2>Leader of each partition</h2>\n");
  {
    std::vector<std::pair<std::string, std::string>> items;
    for (int b : m.brokers)
      items.emplace_back(broker_colour(b), fmt::format("broker b{}", b));
    if (!m.unclean.empty())
      items.emplace_back("#d62728", "unclean election");
    page.add("{}\n", legend(items));
  }
  page.add("{}\n", leaders_plot(m));
  page.add(
      "<p>As the harness saw them: leader changes are recorded from the controller's metadata "
      "(polled every ~100 ms), each with its leader epoch.</p>\n");
  if (!m.controllers.empty()) {
    page.add("<h2>Active controller</h2>\n{}\n", controllers_plot(m));
    page.add(
        "<p>The controller of the quorum that answered DescribeQuorum as leader at the highest "
        "epoch (looked at every ~50 ms), from each election to the next.</p>\n");
  }
  if (v.is_object() && v.contains("metadata_log") && v["metadata_log"].is_object())
    page.add("<p id=\"metadata-log\">{} (metadata-history.jsonl).</p>\n",
             esc(str(v["metadata_log"], "summary", "metadata log: no summary")));
  page.add("<h2>Write latency (acknowledged sends)</h2>\n{}\n{}\n",
           legend({{"#1f77b4", "p50"}, {"#d62728", "p99"}, {"#bbbbbb", "max"}}), latency_plot(m));
  page.add("<h2>Write throughput</h2>\n{}\n{}\n",
           legend({{"#2ca02c", "acknowledged/s"},
                   {"#ff7f0e", "unknown outcome/s"},
                   {"#d62728", "failed/s"}}),
           throughput_plot(m));

  // ---- faults table: the windows joined with the verdict's per-fault results (same order)
  page.add("<h2>Faults injected</h2>\n");
  const json vf =
      v.is_object() && v.contains("faults") && v["faults"].is_array() ? v["faults"] : json::array();
  page.add(
      "<table "
      "id=\"faults-table\"><tr><th>#</th><th>fault</th><th>target</th><th>from</th><th>to</th>"
      "<th>injected</th><th>backend</th><th>client-observed unavailability</th><th>leader moved "
      "after</th></tr>");
  for (std::size_t i = 0; i < m.windows.size(); ++i) {
    const auto& w = m.windows[i];
    const json r = i < vf.size() && str(vf[i], "fault") == w.fault ? vf[i] : json::object();
    page.add(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</"
        "td><td>{}</td></tr>",
        i + 1, esc(w.fault), esc(w.target), fmt_s(w.start), w.open ? "not healed" : fmt_s(w.end),
        esc(str(r, "injected", "?")), esc(str(r, "backend", "?")),
        r.contains("unavailable_ms") ? fmt::format("{:.0f} ms", num(r, "unavailable_ms")) : "?",
        r.contains("leader_moved_after_ms") && r["leader_moved_after_ms"].is_number()
            ? fmt::format("{:.0f} ms", num(r, "leader_moved_after_ms"))
            : "–");
  }
  page.add("</table>\n");
  if (!m.records.empty()) {
    page.add(
        "<details><summary>faults.jsonl: {} "
        "records</summary><table><tr><th>id</th><th>phase</th><th>kind</th>"
        "<th>targets</th><th>when</th><th>backend</th><th>verified</th><th>error</th></tr>",
        m.records.size());
    for (const auto& r : m.records) {
      page.add(
          "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</"
          "td><td>{}</td></tr>",
          esc(str(r.record, "id")), esc(str(r.record, "phase")), esc(str(r.record, "kind")),
          esc(join_capped(r.record.value("targets", json::array()), 8)),
          r.at ? fmt_s(*r.at) : esc(str(r.record, "wall_time")), esc(str(r.record, "backend")),
          esc(str(r.record, "verified")), esc(str(r.record, "error")));
    }
    page.add("</table></details>\n");
  }

  // ---- anomalies
  page.add("<h2>Anomalies</h2>\n");
  const json counts = checker.value("anomalies", json::object());
  const json details = checker.value("details", json::array());
  if (!v.is_object()) {
    page.add("<p>No verdict.</p>\n");
  } else if (counts.empty() && details.empty()) {
    page.add(
        "<p id=\"no-anomalies\">None: every acknowledged write was read back, in one order.</p>\n");
  } else {
    std::size_t total = 0;
    page.add("<table id=\"anomaly-counts\"><tr><th>anomaly</th><th>count</th></tr>");
    for (const auto& [name, n] : counts.items()) {
      page.add("<tr><td>{}</td><td>{}</td></tr>", esc(name), esc(n.dump()));
      if (n.is_number_unsigned())
        total += n.get<std::size_t>();
    }
    page.add("</table>\n");
    if (details.size() < total)
      page.add("<p>Evidence for {} of {} (the checker keeps a bounded number per kind).</p>\n",
               details.size(), total);
    page.add("{}\n", anomaly_table(details, "anomaly"));
  }
  if (checker.contains("expected_loss") && checker["expected_loss"].is_object()) {
    const json el = checker["expected_loss"].value("details", json::array());
    if (!el.empty()) {
      page.add("<h2>Expected loss (partitions with an unclean election: {})</h2>\n",
               esc(join_capped(checker.value("unclean_partitions", json::array()), 64)));
      page.add("{}\n", anomaly_table(el, "expected-anomaly"));
    }
  }

  // ---- files
  page.add("<h2>Files</h2>\n<ul id=\"files\">");
  for (const auto& f : in.files)
    page.add("<li><a href=\"{}\">{}</a></li>", esc(href(f)), esc(f));
  page.add("</ul>\n");
  if (in.run.contains("scenario_text"))
    page.add("<details><summary>scenario as run</summary><pre>{}</pre></details>\n",
             esc(str(in.run, "scenario_text")));
  page.add("</body></html>\n");
  return page.s;
}

RunReportInput read_run_report_input(const fs::path& dir) {
  RunReportInput in;
  auto slurp = [](const fs::path& p) -> std::optional<std::string> {
    std::ifstream f(p, std::ios::binary);
    if (!f)
      return std::nullopt;
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  auto parse = [&](const char* name) -> json {
    auto text = slurp(dir / name);
    if (!text)
      return nullptr;
    try {
      return json::parse(*text);
    } catch (const json::exception& e) {
      in.problems.push_back(fmt::format("{}: {}", name, e.what()));
      return nullptr;
    }
  };
  if (auto run = parse("run.json"); run.is_object())
    in.run = std::move(run);
  in.verdict = parse("verdict.json");
  if (auto text = slurp(dir / "faults.jsonl")) {
    std::istringstream lines(*text);
    std::string line;
    for (std::size_t n = 1; std::getline(lines, line); ++n) {
      if (line.empty())
        continue;
      try {
        in.faults.push_back(json::parse(line));
      } catch (const json::exception& e) {
        in.problems.push_back(fmt::format("faults.jsonl:{}: {}", n, e.what()));
      }
    }
  }
  if (auto text = slurp(dir / "history.jsonl")) {
    auto h = checker::parse_jsonl(*text, "history.jsonl");
    if (h)
      in.history = std::move(*h);
    else
      in.problems.push_back(h.error().to_string());
  } else {
    in.problems.push_back("history.jsonl: missing");
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file(ec) && e.path().filename() != "report.html" &&
        e.path().filename().string().find(".tmp") == std::string::npos)
      in.files.push_back(e.path().filename().string());
  if (fs::is_directory(dir / "logs", ec))
    for (const auto& e : fs::recursive_directory_iterator(dir / "logs", ec))
      if (e.is_regular_file(ec))
        in.files.push_back(fs::relative(e.path(), dir, ec).generic_string());
  std::sort(in.files.begin(), in.files.end());
  return in;
}

std::error_code write_run_report(const fs::path& dir) {
  const std::string html = render_run_report(read_run_report_input(dir));
  const fs::path tmp = dir / "report.html.tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f)
      return {errno ? errno : EIO, std::generic_category()};
    f << html;
    f.flush();
    if (!f)
      return {errno ? errno : EIO, std::generic_category()};
  }
  std::error_code ec;
  fs::rename(tmp, dir / "report.html", ec);
  return ec;
}

}  // namespace faultline::chaos
