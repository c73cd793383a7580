#include "faultline/chaos/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

namespace faultline::chaos {
namespace fs = std::filesystem;

namespace {
std::error_code last_errno() {
  return {errno, std::system_category()};
}

std::error_code write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return last_errno();
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

// Takes the harness lock without blocking. O_CLOEXEC matters: a child that inherited the lock fd
// would keep a crashed run looking alive.
int try_lock(const fs::path& lock_path, bool create) {
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
  if (fd < 0)
    return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}
}  // namespace

std::string_view state_name(ResourceState s) {
  switch (s) {
    case ResourceState::intended:
      return "intended";
    case ResourceState::created:
      return "created";
    case ResourceState::removed:
      return "removed";
  }
  return "?";
}

std::optional<ResourceState> parse_state(std::string_view s) {
  if (s == "intended")
    return ResourceState::intended;
  if (s == "created")
    return ResourceState::created;
  if (s == "removed")
    return ResourceState::removed;
  return std::nullopt;
}

nlohmann::json JournalRecord::to_json() const {
  return {{"seq", seq},     {"kind", kind},       {"name", name},
          {"netns", netns}, {"details", details}, {"state", state_name(state)}};
}

std::optional<JournalRecord> JournalRecord::from_json(const nlohmann::json& j) {
  if (!j.is_object())
    return std::nullopt;
  auto str = [&](const char* key) -> std::optional<std::string> {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string())
      return std::nullopt;
    return it->get<std::string>();
  };
  auto kind = str("kind");
  auto name = str("name");
  auto state_text = str("state");
  if (!kind || !name || !state_text)
    return std::nullopt;
  auto state = parse_state(*state_text);
  if (!state)
    return std::nullopt;
  JournalRecord r;
  r.kind = *kind;
  r.name = *name;
  r.netns = str("netns").value_or("");
  r.state = *state;
  if (auto it = j.find("seq"); it != j.end() && it->is_number_unsigned())
    r.seq = it->get<uint64_t>();
  if (auto it = j.find("details"); it != j.end() && it->is_object())
    r.details = *it;
  return r;
}

std::vector<JournalRecord> parse_journal(std::string_view text, size_t* skipped) {
  std::vector<JournalRecord> out;
  size_t bad = 0;
  uint64_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    // A last line without its newline was torn by a crash mid-write: it never happened.
    if (nl == std::string_view::npos)
      break;
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    ++line_no;
    if (line.empty())
      continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    auto rec = JournalRecord::from_json(j);
    if (!rec) {
      ++bad;
      continue;
    }
    // Order is the file's order, whatever the seq says (appends from clean restart at 0).
    rec->seq = line_no;
    out.push_back(std::move(*rec));
  }
  if (skipped)
    *skipped = bad;
  return out;
}

std::vector<OutstandingResource> outstanding(const std::vector<JournalRecord>& records) {
  using Key = std::tuple<std::string, std::string, std::string>;
  std::map<Key, OutstandingResource> live;
  for (const auto& r : records) {
    Key key{r.kind, r.netns, r.name};
    if (r.state == ResourceState::removed) {
      live.erase(key);
      continue;
    }
    auto it = live.find(key);
    if (it == live.end()) {
      live.emplace(key, OutstandingResource{r.kind, r.name, r.netns, r.details, r.state, r.seq});
      continue;
    }
    // A resource re-announced after removal starts over; otherwise merge (created adds a pid...).
    it->second.state = r.state;
    for (auto& [k, v] : r.details.items())
      it->second.details[k] = v;
  }
  std::vector<OutstandingResource> out;
  out.reserve(live.size());
  for (auto& [key, res] : live)
    out.push_back(std::move(res));
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.first_seq > b.first_seq; });
  return out;
}

fs::path default_state_root() {
  if (const char* env = std::getenv("FAULTLINE_STATE_ROOT"); env != nullptr && *env != '\0') {
    return env;
  }
  return "/run/faultline";
}

fs::path journal_path(const fs::path& run_dir) {
  return run_dir / "journal.jsonl";
}

std::unique_ptr<Journal> Journal::open(const fs::path& state_root, const std::string& run_id,
                                       const std::string& prefix, std::error_code& ec) {
  ec.clear();
  fs::path dir = state_root / run_id;
  fs::create_directories(dir, ec);
  if (ec)
    return nullptr;
  int lock_fd = try_lock(dir / "harness.lock", true);
  if (lock_fd < 0) {
    ec = errno == EWOULDBLOCK ? std::make_error_code(std::errc::device_or_resource_busy)
                              : last_errno();
    return nullptr;
  }
  std::string pid_text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd, 0) == 0)
    (void)write_all(lock_fd, pid_text);

  nlohmann::json meta = {{"run_id", run_id}, {"prefix", prefix}, {"harness_pid", ::getpid()}};
  {
    std::string text = meta.dump() + "\n";
    fs::path tmp = dir / "meta.json.tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, text) || ::fsync(fd) != 0) {
      ec = last_errno();
      if (fd >= 0)
        ::close(fd);
      ::close(lock_fd);
      return nullptr;
    }
    ::close(fd);
    fs::rename(tmp, dir / "meta.json", ec);
    if (ec) {
      ::close(lock_fd);
      return nullptr;
    }
  }
  int fd = ::open(journal_path(dir).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    ec = last_errno();
    ::close(lock_fd);
    return nullptr;
  }
  // The directory entries themselves must survive a crash too.
  if (int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return std::unique_ptr<Journal>(new Journal(dir, run_id, prefix, fd, lock_fd));
}

Journal::Journal(fs::path dir, std::string run_id, std::string prefix, int journal_fd, int lock_fd)
    : dir_(std::move(dir)),
      run_id_(std::move(run_id)),
      prefix_(std::move(prefix)),
      journal_fd_(journal_fd),
      lock_fd_(lock_fd) {}

Journal::~Journal() {
  ::close(journal_fd_);
  ::close(lock_fd_);
}

std::error_code Journal::append(std::string_view kind, std::string_view name,
                                std::string_view netns, nlohmann::json details,
                                ResourceState state) {
  std::lock_guard lock(mu_);
  JournalRecord r{next_seq_++,        std::string(kind),  std::string(name),
                  std::string(netns), std::move(details), state};
  std::string line = r.to_json().dump() + "\n";
  if (auto ec = write_all(journal_fd_, line))
    return ec;
  // fdatasync: the record must be on disk before the resource exists.
  if (::fdatasync(journal_fd_) != 0)
    return last_errno();
  return {};
}

std::error_code Journal::intend(std::string_view kind, std::string_view name,
                                std::string_view netns, nlohmann::json details) {
  return append(kind, name, netns, std::move(details), ResourceState::intended);
}
std::error_code Journal::created(std::string_view kind, std::string_view name,
                                 std::string_view netns, nlohmann::json details) {
  return append(kind, name, netns, std::move(details), ResourceState::created);
}
std::error_code Journal::removed(std::string_view kind, std::string_view name,
                                 std::string_view netns) {
  return append(kind, name, netns, nlohmann::json::object(), ResourceState::removed);
}

std::optional<RunMeta> read_meta(const fs::path& run_dir) {
  std::ifstream in(run_dir / "meta.json");
  if (!in)
    return std::nullopt;
  auto j = nlohmann::json::parse(in, nullptr, false);
  if (!j.is_object() || !j.contains("run_id") || !j.contains("prefix"))
    return std::nullopt;
  RunMeta m;
  m.run_id = j.value("run_id", "");
  m.prefix = j.value("prefix", "");
  m.harness_pid = j.value("harness_pid", int64_t{0});
  return m;
}

bool harness_alive(const fs::path& run_dir) {
  int fd = try_lock(run_dir / "harness.lock", false);
  if (fd >= 0) {
    ::close(fd);
    return false;
  }
  return errno == EWOULDBLOCK;
}

std::vector<JournalRecord> read_journal(const fs::path& run_dir, std::error_code& ec) {
  ec.clear();
  std::ifstream in(journal_path(run_dir), std::ios::binary);
  if (!in) {
    ec = std::make_error_code(std::errc::no_such_file_or_directory);
    return {};
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_journal(ss.str());
}

std::error_code append_record(const fs::path& run_dir, const JournalRecord& record) {
  int fd = ::open(journal_path(run_dir).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0)
    return last_errno();
  auto ec = write_all(fd, record.to_json().dump() + "\n");
  if (!ec && ::fdatasync(fd) != 0)
    ec = last_errno();
  ::close(fd);
  return ec;
}

}  // namespace faultline::chaos
