// What the runner and the CLI drive: inject a FaultSpec, heal by id, heal everything; every step
// logged to faults.jsonl. Also the cleaners `faultline clean` needs for the resource kinds the
// fault backends record.
#pragma once

#include <chrono>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "faultline/chaos/faults/fault.h"

namespace faultline::chaos {

// faults.jsonl: one JSON object per line, appended with a single write(2) so concurrent writers
// never interleave within a line. Fields: id, kind, targets, params, phase ("inject"|"heal"),
// monotonic_ns (steady clock), wall_time (UTC, ISO 8601 with ms), verified, backend, details,
// error (message, absent when ok).
class FaultLog {
 public:
  struct Record {
    FaultId id = 0;
    FaultSpec spec;
    std::string phase;  // "inject" | "heal"
    bool verified = false;
    std::string backend;
    nlohmann::json details = nlohmann::json::object();
    std::error_code error;
  };
  explicit FaultLog(std::filesystem::path path) : path_(std::move(path)) {}
  std::error_code append(const Record& r);
  // The line for `r` at the given instants (pure: used by append and by tests).
  static nlohmann::json to_json(const Record& r, std::chrono::steady_clock::time_point mono,
                                std::chrono::system_clock::time_point wall);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Not thread-safe: one owner drives it (the runner's nemesis or a CLI command).
class FaultInjector {
 public:
  struct Outcome {
    FaultId id = 0;
    std::error_code error;  // inject/heal failed (the fault is then healed again, best effort)
    bool verified = false;
    std::string backend;
  };
  // `log` may be null (no faults.jsonl).
  FaultInjector(FaultContext ctx, FaultLog* log) : ctx_(std::move(ctx)), log_(log) {}
  // Faults keep a reference to the context held here: not copyable or movable.
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  // Validates, journals, applies, verifies (if `verify`), logs. A one-off is not kept as active.
  // If applying fails midway, what was applied is healed before returning the error.
  Outcome inject(const FaultSpec& spec, bool verify = true);
  // Same, with a caller-chosen id (the CLI persists ids across invocations).
  Outcome inject_with_id(FaultId id, const FaultSpec& spec, bool verify = true);
  Outcome heal(FaultId id, bool verify = true);
  // Newest first; returns the first error but tries every fault.
  std::error_code heal_all(bool verify = true);

  ActiveFaults& active() { return active_; }
  const FaultContext& context() const { return ctx_; }

 private:
  void log(FaultId id, const FaultSpec& spec, const char* phase, const Outcome& o,
           const nlohmann::json& details);
  FaultContext ctx_;
  FaultLog* log_;
  ActiveFaults active_;
};

// Resource kinds the fault backends record ("nft-table", "iptables-chain", "qdisc", "link-down",
// "shaper", "io-throttle", "io-cgroup", "disk-mount", "loop-device", "disk-image") and how to undo
// one from its recorded details. Idempotent: a resource already gone is success. For clean.h's
// registry:
//   for (auto& kind : fault_resource_kinds()) register_cleaner(kind, clean_fault_resource);
std::vector<std::string> fault_resource_kinds();
std::error_code clean_fault_resource(const std::string& kind, const nlohmann::json& details);

}  // namespace faultline::chaos
