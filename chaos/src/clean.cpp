#include "faultline/chaos/clean.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <mutex>
#include <ostream>
#include <thread>

#include "faultline/chaos/naming.h"
#include "faultline/chaos/netns.h"
#include "faultline/chaos/supervisor.h"
#include "faultline/chaos/topology.h"

namespace faultline::chaos {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::error_code errno_code() {
  return {errno, std::system_category()};
}

// Whether pid still names the journaled process: same start time (pids are recycled) and not a
// zombie (a dead orphan waits for its new parent to reap it; it holds nothing any more).
bool same_live_process(pid_t pid, std::optional<uint64_t> start_time) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat))
    return false;
  const auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size())
    return false;
  const char state = stat[close + 2];
  if (state == 'Z' || state == 'X')
    return false;
  if (!start_time)
    return true;
  auto st = process_start_time(pid);
  return st && *st == *start_time;
}

// Kills a journaled process if, and only if, the pid still names that process.
std::error_code clean_process(const OutstandingResource& r) {
  if (!r.details.contains("pid"))
    return {};  // never forked, or died with PDEATHSIG before
  const pid_t pid = r.details.value("pid", pid_t{0});
  if (pid <= 0)
    return {};
  std::optional<uint64_t> start_time;
  if (r.details.contains("start_time"))
    start_time = r.details.value("start_time", uint64_t{0});
  if (!same_live_process(pid, start_time))
    return {};
  if (::kill(pid, SIGKILL) != 0 && errno != ESRCH)
    return errno_code();
  for (auto deadline = std::chrono::steady_clock::now() + 5s;
       std::chrono::steady_clock::now() < deadline;) {
    if (!same_live_process(pid, start_time))
      return {};
    std::this_thread::sleep_for(2ms);
  }
  return std::make_error_code(std::errc::timed_out);
}

std::error_code clean_mount(const OutstandingResource& r) {
  if (::umount2(r.name.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
    return errno_code();
  return {};
}

std::error_code clean_cgroup(const OutstandingResource& r) {
  if (::rmdir(r.name.c_str()) == 0 || errno == ENOENT)
    return {};
  if (errno != EBUSY)
    return errno_code();
  // Still populated: kill what is inside, then retry while the kernel lets go of them.
  std::ifstream procs(fs::path(r.name) / "cgroup.procs");
  for (pid_t pid; procs >> pid;)
    ::kill(pid, SIGKILL);
  for (auto deadline = std::chrono::steady_clock::now() + 2s;
       std::chrono::steady_clock::now() < deadline;) {
    if (::rmdir(r.name.c_str()) == 0 || errno == ENOENT)
      return {};
    std::this_thread::sleep_for(5ms);
  }
  return errno_code();
}

std::error_code clean_file(const OutstandingResource& r) {
  std::error_code ec;
  fs::remove_all(r.name, ec);
  return ec;
}

struct Registry {
  std::mutex mu;
  std::map<std::string, Cleaner, std::less<>> cleaners;
  Registry() {
    cleaners.emplace(resource_kind::netns,
                     [](const OutstandingResource& r) { return delete_netns(r.name); });
    cleaners.emplace(resource_kind::link,
                     [](const OutstandingResource& r) { return delete_link(r.netns, r.name); });
    cleaners.emplace(resource_kind::bridge,
                     [](const OutstandingResource& r) { return delete_link(r.netns, r.name); });
    cleaners.emplace(resource_kind::process, clean_process);
    cleaners.emplace(resource_kind::mount, clean_mount);
    cleaners.emplace(resource_kind::cgroup, clean_cgroup);
    cleaners.emplace(resource_kind::file, clean_file);
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

std::string describe(const OutstandingResource& r) {
  return r.netns.empty() ? fmt::format("{} {}", r.kind, r.name)
                         : fmt::format("{} {}/{}", r.kind, r.netns, r.name);
}

// Held for the whole clean so that two cleans (or a harness restarting the run) never race.
class RunLock {
 public:
  explicit RunLock(const fs::path& run_dir) {
    fd_ = ::open((run_dir / "harness.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ >= 0 && ::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~RunLock() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

}  // namespace

void register_cleaner(std::string kind, Cleaner cleaner) {
  auto& r = registry();
  std::lock_guard lock(r.mu);
  r.cleaners[std::move(kind)] = std::move(cleaner);
}

std::optional<Cleaner> find_cleaner(const std::string& kind) {
  auto& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.cleaners.find(kind);
  if (it == r.cleaners.end())
    return std::nullopt;
  return it->second;
}

CleanReport clean_run(const fs::path& run_dir, bool dry_run) {
  CleanReport report;
  const std::string run = run_dir.filename().string();
  RunLock lock(run_dir);
  if (!lock.held()) {
    report.runs_skipped_live.push_back(run);
    return report;
  }
  std::error_code ec;
  auto records = read_journal(run_dir, ec);
  for (const auto& res : outstanding(records)) {
    const std::string what = describe(res);
    auto cleaner = find_cleaner(res.kind);
    if (!cleaner) {
      report.failed.push_back(what + ": no cleaner registered for this kind");
      continue;
    }
    if (dry_run) {
      report.removed.push_back(what);
      continue;
    }
    if (auto err = (*cleaner)(res)) {
      report.failed.push_back(fmt::format("{}: {}", what, err.message()));
      continue;
    }
    JournalRecord done;
    done.kind = res.kind;
    done.name = res.name;
    done.netns = res.netns;
    done.state = ResourceState::removed;
    (void)append_record(run_dir, done);
    report.removed.push_back(what);
  }

  // Sweep: anything carrying the dead run's prefix that the journal missed (e.g. created by a
  // tool that crashed between the kernel call and its journal line... or a journal on tmpfs lost).
  if (auto meta = read_meta(run_dir); meta && is_run_prefix(meta->prefix)) {
    for (const auto& ns : list_netns()) {
      if (!starts_with(ns, meta->prefix + "-"))
        continue;
      const std::string what = "netns " + ns + " (by prefix)";
      if (dry_run) {
        report.removed.push_back(what);
      } else if (auto err = delete_netns(ns)) {
        report.failed.push_back(fmt::format("{}: {}", what, err.message()));
      } else {
        report.removed.push_back(what);
      }
    }
    std::error_code links_ec;
    for (const auto& link : list_links(links_ec)) {
      if (!starts_with(link, meta->prefix))
        continue;
      const std::string what = "link " + link + " (by prefix)";
      if (dry_run) {
        report.removed.push_back(what);
      } else if (auto err = delete_link("", link)) {
        report.failed.push_back(fmt::format("{}: {}", what, err.message()));
      } else {
        report.removed.push_back(what);
      }
    }
  }

  if (!dry_run && report.failed.empty()) {
    fs::remove_all(run_dir, ec);
    if (ec)
      report.failed.push_back(fmt::format("run dir {}: {}", run_dir.string(), ec.message()));
  }
  report.runs_cleaned.push_back(run);
  spdlog::info("chaos.clean_run run={} removed={} failed={}", run, report.removed.size(),
               report.failed.size());
  return report;
}

CleanReport clean(const CleanOptions& options) {
  CleanReport total;
  auto merge = [&](CleanReport r) {
    auto move_into = [](auto& to, auto& from) { to.insert(to.end(), from.begin(), from.end()); };
    move_into(total.runs_cleaned, r.runs_cleaned);
    move_into(total.runs_skipped_live, r.runs_skipped_live);
    move_into(total.removed, r.removed);
    move_into(total.failed, r.failed);
  };
  if (options.run_id) {
    merge(clean_run(options.state_root / *options.run_id, options.dry_run));
    return total;
  }
  std::error_code ec;
  std::vector<fs::path> runs;
  for (const auto& entry : fs::directory_iterator(options.state_root, ec)) {
    if (entry.is_directory() && fs::exists(journal_path(entry.path())))
      runs.push_back(entry.path());
  }
  std::sort(runs.begin(), runs.end());
  for (const auto& run : runs)
    merge(clean_run(run, options.dry_run));
  return total;
}

int run_clean(const CleanOptions& options, std::ostream& out) {
  if (options.run_id && !fs::exists(journal_path(options.state_root / *options.run_id))) {
    out << "clean: no run " << *options.run_id << " under " << options.state_root.string() << "\n";
    return 2;
  }
  const auto report = clean(options);
  const char* verb = options.dry_run ? "would remove" : "removed";
  for (const auto& r : report.removed)
    out << verb << " " << r << "\n";
  for (const auto& f : report.failed)
    out << "FAILED " << f << "\n";
  for (const auto& run : report.runs_skipped_live)
    out << "skipped live run " << run << "\n";
  out << fmt::format(
      "clean: {} run(s) cleaned, {} resource(s) {}, {} failure(s), {} live run(s) skipped\n",
      report.runs_cleaned.size(), report.removed.size(), verb, report.failed.size(),
      report.runs_skipped_live.size());
  return report.failed.empty() ? 0 : 1;
}

}  // namespace faultline::chaos
