// `faultline check`: the checker's command line (ARCHITECTURE.md §5, §7), as a library function the
// `faultline` main wires in.
//
//   faultline check --model kafka|cas-register|kv|log --format jsonl|jepsen-etcd|porcupine-kv
//                   [--json] [--html FILE] [--deadline SECONDS] FILE...
//
// One line per file, `FILE: valid|invalid|unknown ...` (or one JSON object per file with --json).
// Exit status: 2 if any input is unreadable (file, line and why on stderr), else 1 if any history
// is invalid, else 3 if any verdict is unknown (a linearizability deadline, or a Kafka history
// that proves nothing: verdict.h), else 0. Kafka histories also get the invariant pass.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace faultline::checker {

enum class CheckExit : int { valid = 0, invalid = 1, unreadable = 2, unknown = 3 };

struct CheckCommand {
  std::string model = "kafka";
  std::string format = "jsonl";
  bool json = false;
  std::string html_file;
  std::optional<std::chrono::duration<double>> deadline;
  std::vector<std::string> files;
};

// Runs the checks; the thin I/O shell behind the subcommand (testable without CLI11).
CheckExit run_check(const CheckCommand& command, std::ostream& out, std::ostream& err);

// Adds the `check` subcommand to `app`; when it runs, `exit_code` receives its exit status.
void add_check_command(CLI::App& app, int& exit_code);

}  // namespace faultline::checker
