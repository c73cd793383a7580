#include <faultline/checker/cli.h>
#include <faultline/checker/formats.h>
#include <faultline/checker/html.h>
#include <faultline/checker/kafka.h>
#include <faultline/checker/linearizability.h>
#include <faultline/checker/verdict.h>
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

namespace faultline::checker {
namespace {

struct FileOutcome {
  CheckExit exit = CheckExit::valid;
  std::string line;  // the one-line verdict
  nlohmann::json json;
  std::string html;  // when drawn
};

struct ReadError {
  std::string why;
};

Expected<std::string, ReadError> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return ReadError{fmt::format("{}: cannot open: {}", path, std::strerror(errno))};
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad())
    return ReadError{fmt::format("{}: cannot read: {}", path, std::strerror(errno))};
  return ss.str();
}

std::string anomaly_counts(const KafkaResult& r) {
  std::string out;
  for (std::size_t k = 0; k < kKafkaAnomalyKinds; ++k) {
    if (!r.counts[k])
      continue;
    out += fmt::format("{}{} {}", out.empty() ? "" : ", ",
                       to_string(static_cast<KafkaAnomalyKind>(k)), r.counts[k]);
  }
  return out;
}

std::string violation_counts(const InvariantResult& r) {
  std::string out;
  for (std::size_t k = 0; k < kInvariantKinds; ++k) {
    if (!r.counts[k])
      continue;
    out += fmt::format("{}{} {}", out.empty() ? "" : ", ", to_string(static_cast<InvariantKind>(k)),
                       r.counts[k]);
  }
  return out;
}

CheckExit exit_for(Verdict v) {
  return v == Verdict::valid     ? CheckExit::valid
         : v == Verdict::invalid ? CheckExit::invalid
                                 : CheckExit::unknown;
}

// The one line of a Kafka verdict, with the evidence a reader needs first: the anomaly and
// violation counts (invalid), the first violations, or why the history proves nothing (unknown).
std::string kafka_line(const std::string& file, const KafkaVerdict& v) {
  const KafkaResult& r = v.kafka;
  std::string line =
      fmt::format("{}: {} ({} ops, {} acked", file, to_string(v.verdict), r.ops, r.sends_acked);
  if (!r.valid)
    line += ": " + anomaly_counts(r);
  if (!v.invariants.valid)
    line += fmt::format("{}invariants: {}", r.valid ? ": " : "; ", violation_counts(v.invariants));
  line += ")";
  if (!r.unclean_partitions.empty()) {
    line += fmt::format(" expected loss on unclean partition(s) {}",
                        fmt::join(r.unclean_partitions, ","));
  }
  for (std::size_t i = 0; i < v.invariants.violations.size() && i < 5; ++i) {
    const auto& x = v.invariants.violations[i];
    line += fmt::format("\n  {} (lines {}): {}", to_string(x.kind), fmt::join(x.lines, ","),
                        x.explanation);
  }
  if (v.verdict == Verdict::unknown)
    line += fmt::format(": proves nothing: {}", fmt::join(v.vacuity, "; "));
  return line;
}

FileOutcome check_one(const CheckCommand& cmd, const std::string& file, const std::string& text,
                      std::ostream& err, bool want_html) {
  FileOutcome out;
  Expected<History, ParseError> parsed = ParseError{};
  if (cmd.format == "jsonl") {
    parsed = parse_jsonl(text, file);
  } else if (cmd.format == "jepsen-etcd") {
    parsed = parse_jepsen_etcd(text, file);
  } else {
    parsed = parse_porcupine_kv(text, file);
  }
  if (!parsed) {
    err << parsed.error().to_string() << "\n";
    out.exit = CheckExit::unreadable;
    out.line = fmt::format("{}: unreadable", file);
    out.json = {{"file", file}, {"verdict", "unreadable"}, {"error", parsed.error().to_string()}};
    return out;
  }
  const History& h = *parsed;
  if (cmd.model == "kafka") {
    const KafkaVerdict v = judge_kafka(h);
    out.exit = exit_for(v.verdict);
    out.line = kafka_line(file, v);
    out.json = v.to_json();
    if (want_html)
      out.html = render_kafka_html(h, v.kafka, file);
  } else {
    const ModelKind model = cmd.model == "cas-register" ? ModelKind::cas_register
                            : cmd.model == "kv"         ? ModelKind::kv
                                                        : ModelKind::log;
    LinearizabilityOptions options;
    if (cmd.deadline) {
      options.deadline =
          std::chrono::steady_clock::now() +
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(*cmd.deadline);
    }
    const LinearizabilityResult r = check_linearizable(h, model, options);
    out.exit = exit_for(r.verdict);
    out.line = fmt::format("{}: {}", file, r.summary());
    if (r.verdict == Verdict::unknown)
      out.line += " (deadline reached)";
    out.json = r.to_json(h);
    if (want_html)
      out.html = render_linearizability_html(h, r, file);
  }
  out.json["file"] = file;
  return out;
}

// Which input formats each model reads.
bool compatible(const std::string& model, const std::string& format) {
  if (format == "jsonl")
    return true;
  if (format == "jepsen-etcd")
    return model == "cas-register";
  if (format == "porcupine-kv")
    return model == "kv";
  return false;
}

}  // namespace

CheckExit run_check(const CheckCommand& cmd, std::ostream& out, std::ostream& err) {
  if (!compatible(cmd.model, cmd.format)) {
    err << fmt::format("faultline check: format {} does not hold {} histories\n", cmd.format,
                       cmd.model);
    return CheckExit::unreadable;
  }
  bool any_unreadable = false, any_invalid = false, any_unknown = false;
  std::string html;
  bool html_is_failure = false;
  for (const auto& file : cmd.files) {
    auto text = read_whole_file(file);
    if (!text) {
      err << text.error().why << "\n";
      out << (cmd.json ? nlohmann::json{{"file", file},
                                        {"verdict", "unreadable"},
                                        {"error", text.error().why}}
                             .dump()
                       : fmt::format("{}: unreadable", file))
          << "\n";
      any_unreadable = true;
      continue;
    }
    // Draw the first invalid history (or the first one at all if every history is valid).
    const bool want_html = !cmd.html_file.empty() && !html_is_failure;
    FileOutcome r = check_one(cmd, file, *text, err, want_html);
    out << (cmd.json ? r.json.dump() : r.line) << "\n";
    any_unreadable |= r.exit == CheckExit::unreadable;
    any_invalid |= r.exit == CheckExit::invalid;
    any_unknown |= r.exit == CheckExit::unknown;
    if (!r.html.empty() && (html.empty() || r.exit == CheckExit::invalid)) {
      html = std::move(r.html);
      html_is_failure = r.exit == CheckExit::invalid;
    }
  }
  if (!cmd.html_file.empty() && !html.empty()) {
    std::ofstream f(cmd.html_file, std::ios::binary | std::ios::trunc);
    f << html;
    if (!f) {
      err << fmt::format("{}: cannot write: {}\n", cmd.html_file, std::strerror(errno));
      any_unreadable = true;
    }
  }
  if (any_unreadable)
    return CheckExit::unreadable;
  if (any_invalid)
    return CheckExit::invalid;
  if (any_unknown)
    return CheckExit::unknown;
  return CheckExit::valid;
}

void add_check_command(CLI::App& app, int& exit_code) {
  auto cmd = std::make_shared<CheckCommand>();
  auto deadline_seconds = std::make_shared<double>(0.0);
  CLI::App* sub =
      app.add_subcommand("check", "Check recorded histories (Kafka log or linearizability)");
  sub->add_option("--model", cmd->model, "kafka, cas-register, kv or log")
      ->check(CLI::IsMember({"kafka", "cas-register", "kv", "log"}))
      ->capture_default_str();
  sub->add_option("--format", cmd->format, "jsonl, jepsen-etcd or porcupine-kv")
      ->check(CLI::IsMember({"jsonl", "jepsen-etcd", "porcupine-kv"}))
      ->capture_default_str();
  sub->add_flag("--json", cmd->json, "print the full result of each file as one JSON line");
  sub->add_option("--html", cmd->html_file, "draw the failing partition into this HTML file");
  sub->add_option("--deadline", *deadline_seconds,
                  "give up after SECONDS per file (linearizability): verdict unknown, exit 3")
      ->check(CLI::PositiveNumber);
  sub->add_option("files", cmd->files, "history files")->required();
  sub->callback([cmd, deadline_seconds, &exit_code] {
    if (*deadline_seconds > 0)
      cmd->deadline = std::chrono::duration<double>(*deadline_seconds);
    exit_code = static_cast<int>(run_check(*cmd, std::cout, std::cerr));
  });
}

}  // namespace faultline::checker
