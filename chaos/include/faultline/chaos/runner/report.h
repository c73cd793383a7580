// report.html: one self-contained page per run directory (ARCHITECTURE.md §6) — the fault windows
// as shaded bands over time, the leader of every partition over time, write latency and throughput
// over time, the checker's anomalies with their evidence, and relative links to the run's files
// and process logs. Plots are inline SVG drawn here; the page has no scripts, no external fonts
// or stylesheets and no network references, so it opens from a CI artifact or a copied directory.
//
// Rendering is a pure function of the parsed run directory; reading and writing are thin shells.
// Size stays bounded for long runs: operations are aggregated per time bucket (at most
// kMaxReportBuckets of them), and the anomaly evidence is the checker's, already capped per kind.
#pragma once

#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "faultline/checker/history.h"

namespace faultline::chaos {

inline constexpr std::size_t kMaxReportBuckets = 240;

// What a run directory holds, parsed. Missing or unreadable parts are allowed: the report says
// what it could not read (`problems`) and draws the rest.
struct RunReportInput {
  nlohmann::json run = nlohmann::json::object();  // run.json: scenario, seed, duration_s, ...
  nlohmann::json verdict;                         // verdict.json (null: no verdict)
  std::vector<nlohmann::json> faults;             // faults.jsonl, one record per line
  std::optional<checker::History> history;        // history.jsonl
  std::vector<std::string> files;                 // run-dir-relative paths to link, sorted
  std::vector<std::string> problems;              // "history.jsonl:12: ..." and the like
};

// The whole page. Pure: no I/O, deterministic for a given input.
std::string render_run_report(const RunReportInput& input);

// Reads run.json, verdict.json, faults.jsonl, history.jsonl and the list of files (top-level
// files and everything under logs/) of a run directory.
RunReportInput read_run_report_input(const std::filesystem::path& dir);

// Renders <dir> and writes <dir>/report.html (through a temporary file and a rename, so a reader
// never sees half a page). Returns the error of the write, if any.
std::error_code write_run_report(const std::filesystem::path& dir);

}  // namespace faultline::chaos
