// The fault decisions of faultline-lazyfs and the commands that set them, as pure values.
//
// StorageFaults answers, per operation, "fail it with which errno?" and "delay this fsync by how
// long?" from the active rules and one seeded generator, so a seed replays the same decisions for
// the same sequence of operations. parse_control_command() reads one line written to the control
// file (`/.faultline-ctl` in the mount): `lose-unsynced`, `torn-write [keep_pct=50]`,
// `error [errno=EIO|ENOSPC] [op=read|write|fsync|any] [rate_pct=100] [after_ops=0] [path=GLOB]`,
// `slow-fsync delay_ms=N [jitter_ms=M]`, `heal`, `sync`, `seed N`. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <variant>

namespace faultline::chaos::storage {

enum class IoOp { read, write, fsync };

std::string_view to_string(IoOp op) noexcept;

// Fail matching operations with `error_number`. An operation matches when its kind is `op` (any
// when unset) and its path (relative to the mount root, "/x/y") matches `path_glob` (fnmatch,
// `*` also crosses `/`). The first `after_ops` matching operations pass; after that each fails
// with probability rate_pct / 100.
struct ErrorRule {
  int error_number = 5;  // EIO
  std::optional<IoOp> op;
  double rate_pct = 100;
  uint64_t after_ops = 0;
  std::string path_glob = "*";
  friend bool operator==(const ErrorRule&, const ErrorRule&) = default;
};

// fsync takes delay + uniform[0, jitter] longer.
struct SlowFsync {
  std::chrono::milliseconds delay{0};
  std::chrono::milliseconds jitter{0};
  friend bool operator==(const SlowFsync&, const SlowFsync&) = default;
};

class StorageFaults {
 public:
  explicit StorageFaults(uint64_t seed) : rng_(seed) {}
  void set_error(ErrorRule rule);
  void set_slow_fsync(SlowFsync slow) { slow_ = slow; }
  void reseed(uint64_t seed) { rng_.seed(seed); }
  // Pass-through again: no error rule, no delay.
  void heal();
  // 0: go on; else the errno to answer. Counts the operation against after_ops.
  int decide_error(IoOp op, std::string_view path);
  std::chrono::milliseconds fsync_delay();
  const std::optional<ErrorRule>& error_rule() const { return error_; }
  const std::optional<SlowFsync>& slow_fsync() const { return slow_; }
  uint64_t errors_injected() const { return errors_injected_; }
  nlohmann::json status() const;

 private:
  std::mt19937_64 rng_;
  std::optional<ErrorRule> error_;
  std::optional<SlowFsync> slow_;
  uint64_t matched_ops_ = 0;
  uint64_t errors_injected_ = 0;
};

// The control file's commands.
struct LoseUnsynced {
  friend bool operator==(const LoseUnsynced&, const LoseUnsynced&) = default;
};
struct TornWrite {
  double keep_pct = 50;
  friend bool operator==(const TornWrite&, const TornWrite&) = default;
};
struct Heal {
  friend bool operator==(const Heal&, const Heal&) = default;
};
// Make every pending change durable (what sync(2) would do).
struct SyncAll {
  friend bool operator==(const SyncAll&, const SyncAll&) = default;
};
struct Reseed {
  uint64_t seed = 0;
  friend bool operator==(const Reseed&, const Reseed&) = default;
};
using ControlCommand =
    std::variant<LoseUnsynced, TornWrite, ErrorRule, SlowFsync, Heal, SyncAll, Reseed>;

// nullopt and `why` set when the line is not a valid command.
std::optional<ControlCommand> parse_control_command(std::string_view line, std::string* why);
// The line parse_control_command reads back as `c` (what the harness writes).
std::string render_control_command(const ControlCommand& c);

// "EIO" / "ENOSPC" <-> errno.
std::optional<int> parse_errno_name(std::string_view name) noexcept;
std::string_view errno_name(int error_number) noexcept;
std::optional<IoOp> parse_io_op(std::string_view name, bool& any) noexcept;

}  // namespace faultline::chaos::storage
