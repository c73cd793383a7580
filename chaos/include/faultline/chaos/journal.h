// The crash-safe resource journal of a run.
//
// Every kernel resource the harness creates (namespace, link, bridge, nft table, qdisc, cgroup,
// loop device, mount, process, file) is written here — appended and fsync'd — *before* it is
// created, and marked removed after it is gone. When the harness dies (kill -9 included),
// `faultline clean` replays the journal and removes whatever is still listed, newest first.
//
// Layout: <state root>/<run id>/ holds journal.jsonl (one JSON object per line), meta.json (run id,
// prefix, harness pid) and harness.lock. The live harness holds an exclusive flock on harness.lock
// for the lifetime of its Journal; a run whose lock can be taken has no live harness.
// The state root is /run/faultline unless FAULTLINE_STATE_ROOT (or an explicit path) says
// otherwise.
//
// Thread-safety: a Journal may be used from several threads (appends are serialised).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace faultline::chaos {

// Resource kinds written by topology, supervisor and clean. Fault backends add their own kinds
// (e.g. "nft-table", "link-down", "qdisc", "loop") and register a cleaner for them (clean.h).
namespace resource_kind {
inline constexpr std::string_view netns = "netns";
inline constexpr std::string_view link = "link";
inline constexpr std::string_view bridge = "bridge";
inline constexpr std::string_view process = "process";
inline constexpr std::string_view mount = "mount";
inline constexpr std::string_view cgroup = "cgroup";
inline constexpr std::string_view file = "file";
}  // namespace resource_kind

enum class ResourceState { intended, created, removed };
std::string_view state_name(ResourceState s);
std::optional<ResourceState> parse_state(std::string_view s);

// One journal line. (kind, netns, name) identifies a resource; details are kind-specific
// (a process: pid and start_time; a link: ifindex ...).
struct JournalRecord {
  uint64_t seq = 0;  // line number order; creation order of the resources
  std::string kind;
  std::string name;
  std::string netns;  // empty: the root namespace
  nlohmann::json details = nlohmann::json::object();
  ResourceState state = ResourceState::intended;

  nlohmann::json to_json() const;
  static std::optional<JournalRecord> from_json(const nlohmann::json& j);
};

// A resource the journal says may still exist, with its latest state and merged details.
struct OutstandingResource {
  std::string kind;
  std::string name;
  std::string netns;
  nlohmann::json details;
  ResourceState state;  // intended (maybe never made) or created
  uint64_t first_seq;   // when it was first announced
};

// Parses journal.jsonl text. A torn last line (the harness died mid-write) is ignored; other
// malformed lines are skipped and counted in *skipped when given.
std::vector<JournalRecord> parse_journal(std::string_view text, size_t* skipped = nullptr);

// Folds records into the resources still outstanding, in reverse creation order (the order in
// which they must be removed: processes before namespaces, links before bridges). Pure.
std::vector<OutstandingResource> outstanding(const std::vector<JournalRecord>& records);

std::filesystem::path default_state_root();  // $FAULTLINE_STATE_ROOT or /run/faultline

struct RunMeta {
  std::string run_id;
  std::string prefix;
  int64_t harness_pid = 0;
};

class Journal {
 public:
  // Creates <state_root>/<run_id>/, writes meta.json and takes the harness lock. Fails with
  // errc::device_or_resource_busy when another live harness holds the run.
  static std::unique_ptr<Journal> open(const std::filesystem::path& state_root,
                                       const std::string& run_id, const std::string& prefix,
                                       std::error_code& ec);
  ~Journal();  // releases the lock; the files stay for `clean`
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends and fsyncs one line. Call intend() before creating, created() after (details may
  // add facts known only then, e.g. a pid), removed() after removal.
  std::error_code intend(std::string_view kind, std::string_view name, std::string_view netns = {},
                         nlohmann::json details = nlohmann::json::object());
  std::error_code created(std::string_view kind, std::string_view name, std::string_view netns = {},
                          nlohmann::json details = nlohmann::json::object());
  std::error_code removed(std::string_view kind, std::string_view name,
                          std::string_view netns = {});

  const std::filesystem::path& dir() const { return dir_; }
  const std::string& run_id() const { return run_id_; }
  const std::string& prefix() const { return prefix_; }

 private:
  Journal(std::filesystem::path dir, std::string run_id, std::string prefix, int journal_fd,
          int lock_fd);
  std::error_code append(std::string_view kind, std::string_view name, std::string_view netns,
                         nlohmann::json details, ResourceState state);

  std::filesystem::path dir_;
  std::string run_id_;
  std::string prefix_;
  int journal_fd_;
  int lock_fd_;
  uint64_t next_seq_ = 0;
  std::mutex mu_;
};

// Reading side, used by `clean` (and by tests).
std::filesystem::path journal_path(const std::filesystem::path& run_dir);
std::optional<RunMeta> read_meta(const std::filesystem::path& run_dir);
// True when a live harness holds the run's lock.
bool harness_alive(const std::filesystem::path& run_dir);
std::vector<JournalRecord> read_journal(const std::filesystem::path& run_dir, std::error_code& ec);
// Appends a record from outside the owning harness (clean marking removals). Not for live runs.
std::error_code append_record(const std::filesystem::path& run_dir, const JournalRecord& record);

}  // namespace faultline::chaos
