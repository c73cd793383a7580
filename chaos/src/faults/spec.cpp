#include "faultline/chaos/faults/spec.h"

#include <array>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "faultline/chaos/faults/errc.h"

namespace faultline::chaos {

namespace {

class FaultCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "faultline.chaos.fault"; }
  std::string message(int ev) const override {
    switch (static_cast<fault_errc>(ev)) {
      case fault_errc::ok:
        return "ok";
      case fault_errc::invalid_spec:
        return "invalid fault specification";
      case fault_errc::unknown_kind:
        return "unknown fault kind";
      case fault_errc::unknown_target:
        return "target is not a node of this run";
      case fault_errc::backend_unavailable:
        return "fault backend not available on this host";
      case fault_errc::kernel_error:
        return "kernel operation failed";
      case fault_errc::verify_failed:
        return "fault injected but its effect was not observed";
      case fault_errc::not_found:
        return "no such active fault";
      case fault_errc::not_owned:
        return "resource is not owned by this run";
    }
    return "unknown fault error";
  }
};

constexpr std::array<std::pair<FaultKind, std::string_view>, 20> kKindNames{{
    {FaultKind::kill, "kill"},
    {FaultKind::pause, "pause"},
    {FaultKind::stop, "stop"},
    {FaultKind::restart, "restart"},
    {FaultKind::kill_restart, "kill-restart"},
    {FaultKind::isolate, "isolate"},
    {FaultKind::halves, "halves"},
    {FaultKind::majorities_ring, "majorities-ring"},
    {FaultKind::bridge, "bridge"},
    {FaultKind::one_way, "one-way"},
    {FaultKind::isolate_leader, "isolate-leader"},
    {FaultKind::cut_link, "cut-link"},
    {FaultKind::packets, "packets"},
    {FaultKind::rate, "rate"},
    {FaultKind::disk_throttle, "disk-throttle"},
    {FaultKind::disk_stall, "disk-stall"},
    {FaultKind::power_loss, "power-loss"},
    {FaultKind::torn_write, "torn-write"},
    {FaultKind::disk_error, "disk-error"},
    {FaultKind::slow_fsync, "slow-fsync"},
}};

std::error_code invalid(std::string* why, std::string reason) {
  if (why != nullptr)
    *why = std::move(reason);
  return fault_errc::invalid_spec;
}

bool valid_pct(double p) {
  return p >= 0.0 && p <= 100.0;
}

std::error_code validate_storage(const FaultParams& params, std::string* why) {
  if (const auto* t = std::get_if<TornWriteParams>(&params)) {
    if (!valid_pct(t->keep_pct))
      return invalid(why, "keep_pct must be within 0..100");
  }
  if (const auto* e = std::get_if<DiskErrorParams>(&params)) {
    if (e->error != "EIO" && e->error != "ENOSPC")
      return invalid(why, "error must be EIO or ENOSPC");
    if (e->op != "read" && e->op != "write" && e->op != "fsync" && e->op != "any")
      return invalid(why, "op must be read, write, fsync or any");
    if (!valid_pct(e->rate_pct) || e->rate_pct == 0)
      return invalid(why, "rate_pct must be within (0..100]");
    // The path goes to lazyfs's control file as one word.
    if (e->path.empty() || e->path.find_first_of(" \t\n") != std::string::npos)
      return invalid(why, "path must be a glob without spaces");
  }
  if (const auto* s = std::get_if<SlowFsyncParams>(&params)) {
    if (s->delay.count() < 0 || s->jitter.count() < 0)
      return invalid(why, "negative delay/jitter");
    if (s->delay + s->jitter > std::chrono::seconds(60))
      return invalid(why, "delay + jitter above 60 s");
    if (s->delay.count() == 0 && s->jitter.count() == 0)
      return invalid(why, "slow-fsync without any delay");
  }
  return {};
}

}  // namespace

const std::error_category& fault_category() noexcept {
  static const FaultCategory category;
  return category;
}

std::string_view to_string(FaultKind k) noexcept {
  for (const auto& [kind, name] : kKindNames) {
    if (kind == k)
      return name;
  }
  return "?";
}

std::optional<FaultKind> parse_fault_kind(std::string_view s) noexcept {
  for (const auto& [kind, name] : kKindNames) {
    if (name == s)
      return kind;
  }
  return std::nullopt;
}

FaultClass fault_class(FaultKind k) noexcept {
  switch (k) {
    case FaultKind::kill:
    case FaultKind::pause:
    case FaultKind::stop:
    case FaultKind::restart:
    case FaultKind::kill_restart:
      return FaultClass::process;
    case FaultKind::isolate:
    case FaultKind::halves:
    case FaultKind::majorities_ring:
    case FaultKind::bridge:
    case FaultKind::one_way:
    case FaultKind::isolate_leader:
    case FaultKind::cut_link:
      return FaultClass::partition;
    case FaultKind::packets:
    case FaultKind::rate:
      return FaultClass::packets;
    case FaultKind::disk_throttle:
    case FaultKind::disk_stall:
      return FaultClass::disk;
    case FaultKind::power_loss:
    case FaultKind::torn_write:
    case FaultKind::disk_error:
    case FaultKind::slow_fsync:
      return FaultClass::storage;
  }
  return FaultClass::process;
}

bool is_one_off(FaultKind k) noexcept {
  return k == FaultKind::restart || k == FaultKind::kill_restart;
}

DiskParams stall_limits() noexcept {
  // blkio rejects 0 ("no limit" is how 0 reads), so stall is the smallest useful non-zero limit.
  return DiskParams{.read_bytes_per_second = 4096,
                    .write_bytes_per_second = 4096,
                    .read_iops = 1,
                    .write_iops = 1};
}

FaultParams default_params(FaultKind k) {
  switch (k) {
    case FaultKind::cut_link:
      return LinkParams{};
    case FaultKind::packets:
      return PacketParams{};
    case FaultKind::rate:
      return RateParams{};
    case FaultKind::disk_throttle:
      return DiskParams{};
    case FaultKind::disk_stall:
      return stall_limits();
    case FaultKind::torn_write:
      return TornWriteParams{};
    case FaultKind::disk_error:
      return DiskErrorParams{};
    case FaultKind::slow_fsync:
      return SlowFsyncParams{};
    default:
      return NoParams{};
  }
}

std::error_code validate(const FaultSpec& spec, std::string* why) {
  const auto n = spec.targets.size();
  if (default_params(spec.kind).index() != spec.params.index()) {
    return invalid(why, "parameters do not match the fault kind");
  }
  std::set<NodeName> distinct(spec.targets.begin(), spec.targets.end());
  if (distinct.size() != n)
    return invalid(why, "a target is named twice");
  for (const auto& t : spec.targets) {
    if (t.empty())
      return invalid(why, "empty target name");
  }
  switch (spec.kind) {
    case FaultKind::one_way:
      if (n != 2)
        return invalid(why, "one-way needs exactly two targets: FROM TO");
      break;
    case FaultKind::isolate_leader:
      if (n < 2)
        return invalid(why, "isolate-leader needs the leader and at least one follower");
      break;
    case FaultKind::halves:
      if (n != 0 && n < 2)
        return invalid(why, "halves needs at least two nodes");
      break;
    case FaultKind::majorities_ring:
      if (n != 0 && n < 3)
        return invalid(why, "a majorities ring needs at least three nodes");
      break;
    case FaultKind::bridge:
      if (n != 0 && n < 3)
        return invalid(why, "a bridge needs at least three nodes");
      break;
    default:
      if (n < 1)
        return invalid(why, "the fault needs a target");
      break;
  }
  if (const auto* p = std::get_if<PacketParams>(&spec.params)) {
    if (p->interface.empty())
      return invalid(why, "interface missing");
    if (p->delay.count() < 0 || p->jitter.count() < 0)
      return invalid(why, "negative delay/jitter");
    if (p->jitter > p->delay)
      return invalid(why, "jitter larger than delay");
    if (p->delay > std::chrono::seconds(60))
      return invalid(why, "delay above 60 s");
    if (!valid_pct(p->loss_pct) || !valid_pct(p->duplicate_pct) || !valid_pct(p->reorder_pct) ||
        !valid_pct(p->corrupt_pct)) {
      return invalid(why, "percentages must be within 0..100");
    }
    if (p->reorder_pct > 0 && p->delay.count() == 0) {
      // netem's rule: reordering is "send some at once while the rest wait", so it needs a delay.
      return invalid(why, "reorder needs a delay");
    }
    if (p->delay.count() == 0 && p->loss_pct == 0 && p->duplicate_pct == 0 && p->corrupt_pct == 0) {
      return invalid(why, "packets fault without any effect");
    }
  }
  if (const auto* r = std::get_if<RateParams>(&spec.params)) {
    if (r->interface.empty())
      return invalid(why, "interface missing");
    if (r->bytes_per_second < 1000)
      return invalid(why, "rate below 1000 bytes/s");
    if (r->burst_bytes < 1600)
      return invalid(why, "burst below one MTU-sized packet");
    if (r->latency.count() <= 0)
      return invalid(why, "latency must be positive");
  }
  if (const auto* l = std::get_if<LinkParams>(&spec.params)) {
    if (l->interface.empty())
      return invalid(why, "interface missing");
  }
  if (const auto* d = std::get_if<DiskParams>(&spec.params)) {
    if (d->read_bytes_per_second == 0 && d->write_bytes_per_second == 0 && d->read_iops == 0 &&
        d->write_iops == 0) {
      return invalid(why, "disk throttle without any limit");
    }
  }
  return validate_storage(spec.params, why);
}

nlohmann::json to_json(const FaultSpec& spec) {
  nlohmann::json params = nlohmann::json::object();
  std::visit(
      [&](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, LinkParams>) {
          params["interface"] = p.interface;
        } else if constexpr (std::is_same_v<T, PacketParams>) {
          params["interface"] = p.interface;
          params["peers"] = p.peers;
          params["delay_us"] = p.delay.count();
          params["jitter_us"] = p.jitter.count();
          params["loss_pct"] = p.loss_pct;
          params["duplicate_pct"] = p.duplicate_pct;
          params["reorder_pct"] = p.reorder_pct;
          params["corrupt_pct"] = p.corrupt_pct;
        } else if constexpr (std::is_same_v<T, RateParams>) {
          params["interface"] = p.interface;
          params["bytes_per_second"] = p.bytes_per_second;
          params["burst_bytes"] = p.burst_bytes;
          params["latency_ms"] = p.latency.count();
        } else if constexpr (std::is_same_v<T, DiskParams>) {
          params["read_bytes_per_second"] = p.read_bytes_per_second;
          params["write_bytes_per_second"] = p.write_bytes_per_second;
          params["read_iops"] = p.read_iops;
          params["write_iops"] = p.write_iops;
        } else if constexpr (std::is_same_v<T, TornWriteParams>) {
          params["keep_pct"] = p.keep_pct;
        } else if constexpr (std::is_same_v<T, DiskErrorParams>) {
          params["errno"] = p.error;
          params["op"] = p.op;
          params["rate_pct"] = p.rate_pct;
          params["after_ops"] = p.after_ops;
          params["path"] = p.path;
          params["restart_on_heal"] = p.restart_on_heal;
        } else if constexpr (std::is_same_v<T, SlowFsyncParams>) {
          params["delay_ms"] = p.delay.count();
          params["jitter_ms"] = p.jitter.count();
        }
      },
      spec.params);
  return {{"kind", to_string(spec.kind)}, {"targets", spec.targets}, {"params", params}};
}

std::optional<FaultSpec> fault_spec_from_json(const nlohmann::json& j, std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<FaultSpec> {
    if (why != nullptr)
      *why = std::move(reason);
    return std::nullopt;
  };
  if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string())
    return fail("no kind");
  const auto kind = parse_fault_kind(j["kind"].get<std::string>());
  if (!kind)
    return fail("unknown kind " + j["kind"].get<std::string>());
  FaultSpec spec{.kind = *kind, .targets = {}, .params = default_params(*kind)};
  try {
    if (j.contains("targets"))
      spec.targets = j["targets"].get<std::vector<NodeName>>();
    const nlohmann::json params = j.value("params", nlohmann::json::object());
    std::visit(
        [&](auto& p) {
          using T = std::decay_t<decltype(p)>;
          if constexpr (std::is_same_v<T, LinkParams>) {
            p.interface = params.value("interface", p.interface);
          } else if constexpr (std::is_same_v<T, PacketParams>) {
            p.interface = params.value("interface", p.interface);
            p.peers = params.value("peers", p.peers);
            p.delay = std::chrono::microseconds(params.value("delay_us", int64_t{0}));
            p.jitter = std::chrono::microseconds(params.value("jitter_us", int64_t{0}));
            p.loss_pct = params.value("loss_pct", 0.0);
            p.duplicate_pct = params.value("duplicate_pct", 0.0);
            p.reorder_pct = params.value("reorder_pct", 0.0);
            p.corrupt_pct = params.value("corrupt_pct", 0.0);
          } else if constexpr (std::is_same_v<T, RateParams>) {
            p.interface = params.value("interface", p.interface);
            p.bytes_per_second = params.value("bytes_per_second", p.bytes_per_second);
            p.burst_bytes = params.value("burst_bytes", p.burst_bytes);
            p.latency = std::chrono::milliseconds(params.value("latency_ms", p.latency.count()));
          } else if constexpr (std::is_same_v<T, DiskParams>) {
            p.read_bytes_per_second =
                params.value("read_bytes_per_second", p.read_bytes_per_second);
            p.write_bytes_per_second =
                params.value("write_bytes_per_second", p.write_bytes_per_second);
            p.read_iops = params.value("read_iops", p.read_iops);
            p.write_iops = params.value("write_iops", p.write_iops);
          } else if constexpr (std::is_same_v<T, TornWriteParams>) {
            p.keep_pct = params.value("keep_pct", p.keep_pct);
          } else if constexpr (std::is_same_v<T, DiskErrorParams>) {
            p.error = params.value("errno", p.error);
            p.op = params.value("op", p.op);
            p.rate_pct = params.value("rate_pct", p.rate_pct);
            p.after_ops = params.value("after_ops", p.after_ops);
            p.path = params.value("path", p.path);
            p.restart_on_heal = params.value("restart_on_heal", p.restart_on_heal);
          } else if constexpr (std::is_same_v<T, SlowFsyncParams>) {
            p.delay = std::chrono::milliseconds(params.value("delay_ms", p.delay.count()));
            p.jitter = std::chrono::milliseconds(params.value("jitter_ms", p.jitter.count()));
          }
        },
        spec.params);
  } catch (const nlohmann::json::exception& e) {
    return fail(std::string("bad parameter: ") + e.what());
  }
  return spec;
}

}  // namespace faultline::chaos
