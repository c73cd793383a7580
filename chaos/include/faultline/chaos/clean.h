// `faultline clean`: removes the leftovers of runs whose harness is gone (or of one given run) by
// replaying their journals newest first, then sweeping namespaces and links that carry a dead run's
// prefix. Idempotent: a resource that is already gone counts as removed.
//
// Kinds are removed by cleaners looked up by the record's kind. topo registers netns, link,
// bridge, process, mount, cgroup and file; fault backends register theirs (nft tables, qdiscs,
// loop devices ...) with register_cleaner() before run_clean() is called.
#pragma once

#include <filesystem>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "faultline/chaos/journal.h"

namespace faultline::chaos {

// Removes one outstanding resource; must treat "already gone" as success.
using Cleaner = std::function<std::error_code(const OutstandingResource&)>;
// Registers (or replaces) the cleaner of a kind. Thread-safe.
void register_cleaner(std::string kind, Cleaner cleaner);
std::optional<Cleaner> find_cleaner(const std::string& kind);

struct CleanOptions {
  std::filesystem::path state_root = default_state_root();
  std::optional<std::string> run_id;  // only this run (a live run is still refused)
  bool dry_run = false;               // report what would be removed, remove nothing
};

struct CleanReport {
  std::vector<std::string> runs_cleaned;
  std::vector<std::string> runs_skipped_live;
  std::vector<std::string> removed;  // "kind netns/name"
  std::vector<std::string> failed;   // "kind netns/name: why"
};

// Cleans one run directory (its harness must not be alive). Removes the directory when nothing
// is left.
CleanReport clean_run(const std::filesystem::path& run_dir, bool dry_run = false);
CleanReport clean(const CleanOptions& options);

// CLI entry: prints the report; returns 0 when everything was removed, 1 when something failed,
// 2 when a given run does not exist.
int run_clean(const CleanOptions& options, std::ostream& out);

}  // namespace faultline::chaos
