#include "faultline/chaos/storage/lazy_faults.h"

#include <fmt/format.h>
#include <fnmatch.h>

#include <cerrno>
#include <charconv>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

namespace faultline::chaos::storage {

namespace {

std::vector<std::string> split_words(std::string_view line) {
  std::istringstream in{std::string(line)};
  std::vector<std::string> words;
  for (std::string w; in >> w;)
    words.push_back(w);
  return words;
}

template <typename T>
bool parse_number(std::string_view text, T& out) {
  if constexpr (std::is_floating_point_v<T>) {
    try {
      size_t used = 0;
      out = std::stod(std::string(text), &used);
      return used == text.size();
    } catch (const std::exception&) {
      return false;
    }
  } else {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size();
  }
}

// Splits the words after the command into key=value pairs; false on a word without '='.
bool key_values(const std::vector<std::string>& words,
                std::vector<std::pair<std::string, std::string>>& out) {
  for (size_t i = 1; i < words.size(); ++i) {
    const auto eq = words[i].find('=');
    if (eq == std::string::npos)
      return false;
    out.emplace_back(words[i].substr(0, eq), words[i].substr(eq + 1));
  }
  return true;
}

std::optional<ControlCommand> fail(std::string* why, std::string reason) {
  if (why != nullptr)
    *why = std::move(reason);
  return std::nullopt;
}

std::optional<ControlCommand> parse_error_rule(
    const std::vector<std::pair<std::string, std::string>>& kv, std::string* why) {
  ErrorRule rule;
  for (const auto& [k, v] : kv) {
    bool ok = true;
    if (k == "errno") {
      auto e = parse_errno_name(v);
      ok = e.has_value();
      rule.error_number = e.value_or(EIO);
    } else if (k == "op") {
      bool any = false;
      rule.op = parse_io_op(v, any);
      ok = rule.op.has_value() || any;
    } else if (k == "rate_pct") {
      ok = parse_number(v, rule.rate_pct) && rule.rate_pct >= 0 && rule.rate_pct <= 100;
    } else if (k == "after_ops") {
      ok = parse_number(v, rule.after_ops);
    } else if (k == "path") {
      ok = !v.empty();
      rule.path_glob = v;
    } else {
      return fail(why, "error: unknown parameter " + k);
    }
    if (!ok)
      return fail(why, fmt::format("error: bad value {}={}", k, v));
  }
  return rule;
}

std::optional<ControlCommand> parse_slow_fsync(
    const std::vector<std::pair<std::string, std::string>>& kv, std::string* why) {
  SlowFsync slow;
  bool have_delay = false;
  for (const auto& [k, v] : kv) {
    int64_t ms = 0;
    if (!parse_number(v, ms) || ms < 0)
      return fail(why, fmt::format("slow-fsync: bad value {}={}", k, v));
    if (k == "delay_ms") {
      slow.delay = std::chrono::milliseconds(ms);
      have_delay = true;
    } else if (k == "jitter_ms") {
      slow.jitter = std::chrono::milliseconds(ms);
    } else {
      return fail(why, "slow-fsync: unknown parameter " + k);
    }
  }
  if (!have_delay)
    return fail(why, "slow-fsync needs delay_ms");
  return slow;
}

}  // namespace

std::string_view to_string(IoOp op) noexcept {
  switch (op) {
    case IoOp::read:
      return "read";
    case IoOp::write:
      return "write";
    case IoOp::fsync:
      return "fsync";
  }
  return "?";
}

std::optional<int> parse_errno_name(std::string_view name) noexcept {
  if (name == "EIO")
    return EIO;
  if (name == "ENOSPC")
    return ENOSPC;
  return std::nullopt;
}

std::string_view errno_name(int error_number) noexcept {
  return error_number == ENOSPC ? "ENOSPC" : "EIO";
}

std::optional<IoOp> parse_io_op(std::string_view name, bool& any) noexcept {
  any = name == "any";
  for (IoOp op : {IoOp::read, IoOp::write, IoOp::fsync}) {
    if (to_string(op) == name)
      return op;
  }
  return std::nullopt;
}

void StorageFaults::set_error(ErrorRule rule) {
  error_ = std::move(rule);
  matched_ops_ = 0;
}

void StorageFaults::heal() {
  error_.reset();
  slow_.reset();
  matched_ops_ = 0;
}

int StorageFaults::decide_error(IoOp op, std::string_view path) {
  if (!error_ || (error_->op && *error_->op != op))
    return 0;
  if (::fnmatch(error_->path_glob.c_str(), std::string(path).c_str(), 0) != 0)
    return 0;
  if (++matched_ops_ <= error_->after_ops)
    return 0;
  // Always draw, so the decisions for a seed do not depend on the rate.
  const double draw = std::uniform_real_distribution<double>(0.0, 100.0)(rng_);
  if (draw >= error_->rate_pct)
    return 0;
  ++errors_injected_;
  return error_->error_number;
}

std::chrono::milliseconds StorageFaults::fsync_delay() {
  if (!slow_)
    return std::chrono::milliseconds(0);
  const auto jitter = std::uniform_int_distribution<int64_t>(0, slow_->jitter.count())(rng_);
  return slow_->delay + std::chrono::milliseconds(jitter);
}

nlohmann::json StorageFaults::status() const {
  nlohmann::json j{{"errors_injected", errors_injected_}};
  if (error_) {
    j["error"] = {{"errno", errno_name(error_->error_number)},
                  {"op", error_->op ? to_string(*error_->op) : "any"},
                  {"rate_pct", error_->rate_pct},
                  {"after_ops", error_->after_ops},
                  {"path", error_->path_glob}};
  }
  if (slow_)
    j["slow_fsync"] = {{"delay_ms", slow_->delay.count()}, {"jitter_ms", slow_->jitter.count()}};
  return j;
}

std::optional<ControlCommand> parse_control_command(std::string_view line, std::string* why) {
  const auto words = split_words(line);
  if (words.empty())
    return fail(why, "empty command");
  std::vector<std::pair<std::string, std::string>> kv;
  const auto& cmd = words[0];
  if (cmd == "seed") {
    Reseed r;
    if (words.size() != 2 || !parse_number(words[1], r.seed))
      return fail(why, "seed needs one number");
    return r;
  }
  if (!key_values(words, kv))
    return fail(why, "parameters are key=value");
  if (cmd == "lose-unsynced" || cmd == "heal" || cmd == "sync") {
    if (!kv.empty())
      return fail(why, cmd + " takes no parameters");
    if (cmd == "heal")
      return Heal{};
    if (cmd == "sync")
      return SyncAll{};
    return LoseUnsynced{};
  }
  if (cmd == "torn-write") {
    TornWrite t;
    for (const auto& [k, v] : kv) {
      if (k != "keep_pct" || !parse_number(v, t.keep_pct) || t.keep_pct < 0 || t.keep_pct > 100)
        return fail(why, "torn-write takes keep_pct=0..100");
    }
    return t;
  }
  if (cmd == "error")
    return parse_error_rule(kv, why);
  if (cmd == "slow-fsync")
    return parse_slow_fsync(kv, why);
  return fail(why, "unknown command " + cmd);
}

std::string render_control_command(const ControlCommand& c) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, LoseUnsynced>) {
          return "lose-unsynced";
        } else if constexpr (std::is_same_v<T, TornWrite>) {
          return fmt::format("torn-write keep_pct={}", v.keep_pct);
        } else if constexpr (std::is_same_v<T, ErrorRule>) {
          return fmt::format("error errno={} op={} rate_pct={} after_ops={} path={}",
                             errno_name(v.error_number), v.op ? to_string(*v.op) : "any",
                             v.rate_pct, v.after_ops, v.path_glob);
        } else if constexpr (std::is_same_v<T, SlowFsync>) {
          return fmt::format("slow-fsync delay_ms={} jitter_ms={}", v.delay.count(),
                             v.jitter.count());
        } else if constexpr (std::is_same_v<T, Heal>) {
          return "heal";
        } else if constexpr (std::is_same_v<T, SyncAll>) {
          return "sync";
        } else {
          return fmt::format("seed {}", v.seed);
        }
      },
      c);
}

}  // namespace faultline::chaos::storage
