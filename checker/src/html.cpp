#include <faultline/checker/html.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_map>

namespace faultline::checker {

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

namespace {

std::string escape(std::string_view s) {
  return html_escape(s);
}

struct Bar {
  ProcessId process;
  std::chrono::nanoseconds start{0};
  std::optional<std::chrono::nanoseconds> end;  // nullopt: unknown outcome, runs to the end
  std::string label;
  std::string css;  // prefix | stuck | other | unknown
  std::string tooltip;
};

struct Mark {
  std::chrono::nanoseconds time{0};
  std::string label;
};

// Rows per process, time left to right. Bars carry their label; hovering shows the tooltip.
std::string timeline_svg(const std::vector<Bar>& bars, const std::vector<Mark>& marks) {
  if (bars.empty())
    return "<p>No operations to draw.</p>";
  std::map<int64_t, int> rows;
  auto t0 = bars.front().start, t1 = bars.front().start;
  for (const auto& b : bars) {
    rows.emplace(b.process.value(), 0);
    t0 = std::min(t0, b.start);
    t1 = std::max(t1, b.end.value_or(b.start));
  }
  for (const auto& m : marks)
    t1 = std::max(t1, m.time);
  int row = 0;
  for (auto& [p, r] : rows)
    r = row++;
  const double width = std::clamp<double>(static_cast<double>(bars.size()) * 40.0, 900.0, 20000.0);
  const double left = 90, row_h = 28, top = 24;
  const double span = std::max<double>(1.0, static_cast<double>((t1 - t0).count()));
  auto x = [&](std::chrono::nanoseconds t) {
    return left + (static_cast<double>((t - t0).count()) / span) * (width - left - 10);
  };
  const double height = top + row_h * static_cast<double>(rows.size()) + 10;
  std::string svg = fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{:.0f}' height='{:.0f}' "
      "font-family='monospace' font-size='11'>\n",
      width, height);
  for (const auto& [p, r] : rows) {
    svg += fmt::format("<text x='4' y='{:.0f}'>process {}</text>\n", top + r * row_h + 17, p);
    svg += fmt::format("<line x1='{:.0f}' x2='{:.0f}' y1='{:.0f}' y2='{:.0f}' class='row'/>\n",
                       left, width - 10, top + r * row_h + row_h, top + r * row_h + row_h);
  }
  for (const auto& m : marks) {
    svg += fmt::format(
        "<line x1='{0:.1f}' x2='{0:.1f}' y1='12' y2='{1:.0f}' "
        "class='mark'><title>{2}</title></line>"
        "<text x='{0:.1f}' y='10' class='marktext'>{2}</text>\n",
        x(m.time), height, escape(m.label));
  }
  for (const auto& b : bars) {
    const double x0 = x(b.start);
    const double x1 = std::max(x0 + 3, b.end ? x(*b.end) : width - 10);
    const double y = top + rows[b.process.value()] * row_h + 4;
    svg += fmt::format(
        "<g class='{}'><title>{}</title><rect x='{:.1f}' y='{:.0f}' width='{:.1f}' height='20' "
        "rx='3'/><text x='{:.1f}' y='{:.0f}'>{}</text></g>\n",
        b.css, escape(b.tooltip), x0, y, x1 - x0, x0 + 3, y + 14, escape(b.label));
  }
  svg += "</svg>\n";
  return svg;
}

std::string describe(const Operation& op) {
  std::string s =
      fmt::format("{} {}", to_string(op.f),
                  op.f == Function::cas
                      ? fmt::format("[{} {}]", format_value(op.expected), format_value(op.value))
                      : format_value(op.value));
  if (op.key)
    s += fmt::format(" key={}", *op.key);
  if (op.outcome != Outcome::ok)
    s += op.outcome == Outcome::fail ? " (fail)" : " (unknown)";
  return s;
}

std::string tooltip(const Operation& op) {
  return fmt::format("{} | process {} | line {} | invoked t={}{}", describe(op), op.process,
                     op.invoke_line, op.invoke_time.count(),
                     op.complete_time ? fmt::format(", completed t={}", op.complete_time->count())
                                      : std::string(", never completed"));
}

std::string page(std::string_view title, std::string_view body) {
  return fmt::format(R"(<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{0}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
.scroll {{ overflow-x: auto; border: 1px solid #ccc; }}
.row {{ stroke: #eee; }}
.mark {{ stroke: #c60; stroke-dasharray: 4 3; }}
.marktext {{ fill: #c60; font-size: 9px; }}
.prefix rect {{ fill: #bfe3bf; stroke: #2a7a2a; }}
.stuck rect {{ fill: #f4a4a4; stroke: #b00; stroke-width: 2; }}
.other rect {{ fill: #e4e4e4; stroke: #999; }}
.unknown rect {{ fill: #fff3c4; stroke: #b90; stroke-dasharray: 3 2; }}
.evidence rect {{ fill: #f8c8a0; stroke: #a50; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: left; }}
.valid {{ color: #2a7a2a; }} .invalid {{ color: #b00; }} .unknownv {{ color: #b90; }}
</style></head><body>
<h1>{0}</h1>
{1}
</body></html>
)",
                     escape(title), body);
}

}  // namespace

std::string render_linearizability_html(const History& h, const LinearizabilityResult& r,
                                        std::string_view title) {
  std::string body = fmt::format("<p class='{}'><b>{}</b> — {}</p>\n",
                                 r.verdict == Verdict::unknown ? "unknownv" : to_string(r.verdict),
                                 to_string(r.verdict), escape(r.summary()));
  if (!r.failing)
    return page(title, body);
  const auto& f = *r.failing;
  std::unordered_map<std::size_t, std::size_t> order;  // op -> position in the prefix
  for (std::size_t i = 0; i < f.longest_prefix.size(); ++i)
    order.emplace(f.longest_prefix[i], i + 1);
  std::vector<Bar> bars;
  for (std::size_t i : f.ops) {
    const Operation& op = h.ops[i];
    Bar b{
        op.process,   op.invoke_time, op.outcome == Outcome::info ? std::nullopt : op.complete_time,
        describe(op), "other",        tooltip(op)};
    if (auto it = order.find(i); it != order.end()) {
      b.css = "prefix";
      b.label = fmt::format("#{} {}", it->second, b.label);
    } else if (f.stuck_op && *f.stuck_op == i) {
      b.css = "stuck";
    } else if (op.outcome == Outcome::info) {
      b.css = "unknown";
    }
    bars.push_back(std::move(b));
  }
  body += fmt::format(
      "<h2>Failing partition: key \"{}\" ({} ops)</h2>\n<p>Green: the longest linearizable prefix "
      "(numbered in linearization order, {} ops). Red: the operation that cannot be placed. "
      "Yellow, dashed: unknown outcome. Grey: not reached. Time t: nanoseconds for JSONL "
      "histories, line numbers for the oracle formats. Hover for details.</p>\n",
      escape(f.key), f.ops.size(), f.longest_prefix.size());
  if (f.stuck_op) {
    body += fmt::format("<p>Cannot place: <b>{}</b></p>\n", escape(tooltip(h.ops[*f.stuck_op])));
  }
  body += "<div class='scroll'>" + timeline_svg(bars, {}) + "</div>\n";
  return page(title, body);
}

std::string render_kafka_html(const History& h, const KafkaResult& r, std::string_view title) {
  std::string body = fmt::format("<p class='{0}'><b>{0}</b></p>\n<pre>{1}</pre>\n",
                                 r.valid ? "valid" : "invalid", escape(r.summary()));
  auto table = [&](const std::vector<KafkaAnomaly>& list, std::string_view heading) {
    if (list.empty())
      return;
    body += fmt::format(
        "<h2>{}</h2>\n<table><tr><th>#</th><th>anomaly</th><th>partition</th>"
        "<th>values</th><th>offsets</th><th>explanation</th></tr>\n",
        heading);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const auto& a = list[i];
      std::vector<int64_t> offsets;
      for (auto o : a.offsets)
        offsets.push_back(o.value());
      body += fmt::format(
          "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", i + 1,
          to_string(a.kind), a.partition, fmt::join(a.values, " "), fmt::join(offsets, " "),
          escape(a.explanation));
    }
    body += "</table>\n";
  };
  table(r.anomalies, "Anomalies");
  table(r.expected_loss, "Expected loss (partitions with an unclean election)");
  // The operations involved in the first anomalies, with the nemesis around them.
  std::vector<Bar> bars;
  std::vector<bool> drawn(h.ops.size(), false);
  std::size_t n = 0;
  for (const auto& a : r.anomalies) {
    if (++n > 50)
      break;
    for (const auto& e : a.ops) {
      if (drawn[e.op])
        continue;
      drawn[e.op] = true;
      const Operation& op = h.ops[e.op];
      bars.push_back(Bar{
          op.process, op.invoke_time, op.outcome == Outcome::info ? std::nullopt : op.complete_time,
          fmt::format("{} {}", to_string(op.f), e.value ? std::to_string(*e.value) : std::string()),
          "evidence", fmt::format("{}: {}", to_string(a.kind), a.explanation)});
    }
  }
  if (!bars.empty()) {
    std::sort(bars.begin(), bars.end(),
              [](const Bar& a, const Bar& b) { return a.start < b.start; });
    const auto from = bars.front().start;
    auto to = from;
    for (const auto& b : bars)
      to = std::max(to, b.end.value_or(b.start));
    std::vector<Mark> marks;
    for (const auto& ev : h.nemesis) {
      if (ev.time < from || ev.time > to)
        continue;
      std::string label(to_string(ev.kind));
      if (ev.partition)
        label += fmt::format(" p{}", *ev.partition);
      if (ev.epoch)
        label += fmt::format(" e{}", *ev.epoch);
      if (!ev.fault.empty())
        label += " " + ev.fault;
      marks.push_back(Mark{ev.time, label});
    }
    body += "<h2>Operations involved</h2>\n<div class='scroll'>" + timeline_svg(bars, marks) +
            "</div>\n";
  }
  return page(title, body);
}

}  // namespace faultline::checker
