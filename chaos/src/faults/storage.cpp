// Storage faults: commands to each target's faultline-lazyfs, plus a kill -9 of its broker for the
// crash kinds; and the lazyfs mount the harness puts under each broker's data directory.
#include "faultline/chaos/faults/storage.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <thread>

#include "faultline/chaos/faults/process.h"
#include "faultline/chaos/storage/lazy_faults.h"
#include "faultline/chaos/supervisor.h"

namespace faultline::chaos {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr auto kMountTimeout = 5s;
constexpr auto kKillTimeout = 2s;

std::error_code errno_code() {
  return {errno, std::generic_category()};
}

// Mount points in mountinfo escape spaces and the like as octal (\040).
std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The pids of faultline-lazyfs daemons serving `mount_point` (a /proc scan: a crashed harness
// never learnt them).
std::vector<pid_t> find_lazyfs_daemons(const fs::path& mount_point) {
  std::vector<pid_t> out;
  const std::string want = std::string("--mount") + '\0' + mount_point.string() + '\0';
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const auto name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit))
      continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    const std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    if (cmdline.find("faultline-lazyfs") != std::string::npos &&
        cmdline.find(want) != std::string::npos)
      out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

std::error_code unmount_lazy(const fs::path& mount_point) {
  if (::umount2(mount_point.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
    return errno_code();
  return {};
}

}  // namespace

// ---------------------------------------------------------------- control file

std::error_code lazyfs_command(const fs::path& control, const std::string& line) {
  const int fd = ::open(control.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return errno_code();
  const std::string text = line + "\n";
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int saved = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    return {n < 0 ? saved : EIO, std::generic_category()};
  return {};
}

std::optional<nlohmann::json> lazyfs_status(const fs::path& control) {
  std::ifstream in(control);
  if (!in)
    return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

bool is_lazyfs_mounted(const fs::path& mount_point) {
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    // "<id> <parent> <dev> <root> <mount point> <options> ... - <fstype> <source> <options>"
    std::istringstream words(line);
    std::string id, parent, dev, root, point;
    words >> id >> parent >> dev >> root >> point;
    const auto dash = line.find(" - ");
    if (dash == std::string::npos || unescape_mountinfo(point) != mount_point.string())
      continue;
    if (line.compare(dash + 3, 12, "fuse.lazyfs ") == 0)
      return true;
  }
  return false;
}

// ---------------------------------------------------------------- the mount

std::optional<LazyFsMount> LazyFsMount::create(Supervisor& supervisor, ResourceRecorder& recorder,
                                               const fs::path& binary,
                                               const std::string& process_name,
                                               const fs::path& backing, const fs::path& mount_point,
                                               uint64_t seed, std::error_code& ec) {
  fs::create_directories(backing, ec);
  if (!ec)
    fs::create_directories(mount_point, ec);
  if (ec)
    return std::nullopt;
  if ((ec =
           recorder.will_create("fuse-mount", mount_point.string(),
                                {{"path", mount_point.string()}, {"backing", backing.string()}}))) {
    return std::nullopt;
  }
  LazyFsMount m;
  m.supervisor_ = &supervisor;
  m.recorder_ = &recorder;
  m.process_name_ = process_name;
  m.mount_point_ = mount_point;
  m.live_ = true;
  ProcessSpec spec{process_name,
                   {binary.string(), "--backing", backing.string(), "--mount", mount_point.string(),
                    "--seed", std::to_string(seed)},
                   {},
                   std::nullopt,
                   std::nullopt};
  if ((ec = supervisor.start(spec)))
    return std::nullopt;  // m's destructor unmounts whatever got mounted
  const auto deadline = std::chrono::steady_clock::now() + kMountTimeout;
  while (!is_lazyfs_mounted(mount_point)) {
    if (!supervisor.is_running(process_name) || std::chrono::steady_clock::now() > deadline) {
      spdlog::error("event=lazyfs_mount_failed mount={} log={}", mount_point.string(),
                    supervisor.stderr_path(process_name).string());
      ec = std::make_error_code(std::errc::timed_out);
      return std::nullopt;
    }
    std::this_thread::sleep_for(10ms);
  }
  return std::optional<LazyFsMount>(std::move(m));
}

LazyFsMount::LazyFsMount(LazyFsMount&& other) noexcept
    : supervisor_(other.supervisor_),
      recorder_(other.recorder_),
      process_name_(std::move(other.process_name_)),
      mount_point_(std::move(other.mount_point_)),
      live_(std::exchange(other.live_, false)) {}

LazyFsMount::~LazyFsMount() {
  (void)remove();
}

std::error_code LazyFsMount::remove() {
  if (!live_)
    return {};
  // SIGTERM first: the daemon then unmounts itself (after writing back what is pending); the lazy
  // unmount covers a daemon that was killed instead.
  (void)supervisor_->stop(process_name_, 2s);
  auto ec = unmount_lazy(mount_point_);
  if (!ec) {
    recorder_->removed("fuse-mount", mount_point_.string());
    live_ = false;
  }
  return ec;
}

std::error_code clean_storage_resource(const std::string& kind, const nlohmann::json& d) {
  if (kind == "fuse-mount") {
    const fs::path mount_point = d.at("path").get<std::string>();
    for (pid_t pid : find_lazyfs_daemons(mount_point)) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, WNOHANG);
    }
    return unmount_lazy(mount_point);
  }
  if (kind == "lazyfs-fault") {
    const fs::path control = d.at("control").get<std::string>();
    (void)lazyfs_command(control, "heal");  // a dead or unmounted lazyfs has nothing to heal
    return {};
  }
  return fault_errc::unknown_kind;
}

// ---------------------------------------------------------------- the faults

namespace {

// The lazyfs command that sets a disk-error or slow-fsync fault.
std::string fault_command(const FaultParams& params) {
  using namespace storage;
  if (const auto* e = std::get_if<DiskErrorParams>(&params)) {
    bool any = false;
    ErrorRule rule{*parse_errno_name(e->error), parse_io_op(e->op, any), e->rate_pct, e->after_ops,
                   e->path};
    return render_control_command(rule);
  }
  const auto& s = std::get<SlowFsyncParams>(params);
  return render_control_command(SlowFsync{s.delay, s.jitter});
}

class StorageFault final : public Fault {
 public:
  StorageFault(FaultId id, const FaultSpec& spec, const FaultContext& ctx)
      : id_(id), spec_(spec), ctx_(ctx) {
    for (const auto& t : spec.targets)
      nodes_.push_back(*ctx.topology->find(t));
  }

  std::error_code inject() override {
    for (const auto& n : nodes_) {
      if (auto ec = ctx_.recorder->will_create("lazyfs-fault", resource(n),
                                               {{"control", n.lazyfs_control->string()}})) {
        return ec;
      }
    }
    return crash() ? inject_crash() : inject_mode();
  }

  std::error_code heal() override {
    std::error_code first;
    for (const auto& n : nodes_) {
      auto ec = crash() ? restart(n) : lazyfs_command(*n.lazyfs_control, "heal");
      if (!ec && restart_on_heal())
        ec = kill_and_restart(n);
      if (ec && !first)
        first = ec;
      if (!ec)
        ctx_.recorder->removed("lazyfs-fault", resource(n));
    }
    return first;
  }

  std::error_code verify() override {
    for (const auto& n : nodes_) {
      auto status = lazyfs_status(*n.lazyfs_control);
      if (!status)
        return fault_errc::verify_failed;
      const bool ok = crash() ? (*status)["pending_bytes"] == 0 && !running(n)
                              : status->at("faults").contains(mode_key());
      if (!ok)
        return fault_errc::verify_failed;
    }
    return {};
  }

  std::error_code verify_healed() override {
    for (const auto& n : nodes_) {
      auto status = lazyfs_status(*n.lazyfs_control);
      if (!status)
        return fault_errc::verify_failed;
      const bool ok = crash() ? running(n) : !status->at("faults").contains(mode_key());
      if (!ok)
        return fault_errc::verify_failed;
    }
    return {};
  }

  std::string backend() const override { return "lazyfs"; }
  nlohmann::json details() const override { return details_; }

 private:
  bool crash() const {
    return spec_.kind == FaultKind::power_loss || spec_.kind == FaultKind::torn_write;
  }
  std::string mode_key() const {
    return spec_.kind == FaultKind::disk_error ? "error" : "slow_fsync";
  }
  std::string resource(const FaultNode& n) const {
    return n.lazyfs_control->string() + "#f" + std::to_string(id_);
  }
  bool running(const FaultNode& n) const {
    const auto pid = ctx_.processes != nullptr ? ctx_.processes->pid(n.name) : std::nullopt;
    const auto state = pid ? process_state(*pid) : std::nullopt;
    return state && *state != 'Z';
  }

  // Every target dies first, then every target's disk loses what was not fsynced: a power loss
  // of several brokers at once, not one after the other.
  std::error_code inject_crash() {
    if (ctx_.processes == nullptr)
      return fault_errc::backend_unavailable;
    for (const auto& n : nodes_) {
      if (!ctx_.processes->pid(n.name))
        continue;
      if (auto ec = ctx_.processes->signal(n.name, SIGKILL))
        return ec;
      if (auto ec = ctx_.processes->wait_exit(n.name, kKillTimeout))
        return ec;
    }
    for (const auto& n : nodes_) {
      if (spec_.kind == FaultKind::torn_write) {
        const auto keep = std::get<TornWriteParams>(spec_.params).keep_pct;
        if (auto ec =
                lazyfs_command(*n.lazyfs_control, render_control_command(storage::TornWrite{keep})))
          return ec;
      }
      const auto before = lazyfs_status(*n.lazyfs_control);
      if (auto ec = lazyfs_command(*n.lazyfs_control, "lose-unsynced"))
        return ec;
      const auto after = lazyfs_status(*n.lazyfs_control);
      if (before && after) {
        details_[n.name] = {{"lost_bytes", (*after)["lost_bytes"].get<uint64_t>() -
                                               (*before)["lost_bytes"].get<uint64_t>()},
                            {"torn_writes", (*after)["torn_writes"]}};
      }
    }
    return {};
  }

  std::error_code inject_mode() {
    for (const auto& n : nodes_) {
      // One stream of decisions per (run seed, fault, node): a seed replays the same errors.
      const uint64_t seed =
          ctx_.seed ^ (id_ * 0x9e3779b97f4a7c15ULL) ^ std::hash<std::string>{}(n.name);
      if (auto ec = lazyfs_command(*n.lazyfs_control, "seed " + std::to_string(seed)))
        return ec;
      if (auto ec = lazyfs_command(*n.lazyfs_control, fault_command(spec_.params)))
        return ec;
    }
    return {};
  }

  bool restart_on_heal() const {
    const auto* e = std::get_if<DiskErrorParams>(&spec_.params);
    return e != nullptr && e->restart_on_heal;
  }

  std::error_code kill_and_restart(const FaultNode& n) {
    // Without process control (`cluster down` heals right before it stops every process) there
    // is nothing to restart.
    if (ctx_.processes == nullptr)
      return {};
    if (running(n)) {
      if (auto ec = ctx_.processes->signal(n.name, SIGKILL))
        return ec;
      if (auto ec = ctx_.processes->wait_exit(n.name, kKillTimeout))
        return ec;
    }
    return ctx_.processes->start(n.name);
  }

  std::error_code restart(const FaultNode& n) {
    if (ctx_.processes == nullptr)
      return fault_errc::backend_unavailable;
    if (running(n))
      return {};
    return ctx_.processes->start(n.name);
  }

  FaultId id_;
  FaultSpec spec_;
  const FaultContext& ctx_;
  std::vector<FaultNode> nodes_;
  nlohmann::json details_ = nlohmann::json::object();
};

}  // namespace

std::unique_ptr<Fault> make_storage_fault(FaultId id, const FaultSpec& spec,
                                          const FaultContext& ctx, std::error_code& ec) {
  for (const auto& t : spec.targets) {
    if (!ctx.topology->find(t)->lazyfs_control) {
      ec = fault_errc::backend_unavailable;  // the node's data dir is not a lazyfs
      return nullptr;
    }
  }
  return std::make_unique<StorageFault>(id, spec, ctx);
}

}  // namespace faultline::chaos
