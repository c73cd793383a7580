#include "faultline/chaos/faults/injector.h"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <linux/loop.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "faultline/chaos/faults/disk.h"
#include "faultline/chaos/faults/storage.h"
#include "kernel.h"

namespace faultline::chaos {

namespace fs = std::filesystem;

nlohmann::json FaultLog::to_json(const Record& r, std::chrono::steady_clock::time_point mono,
                                 std::chrono::system_clock::time_point wall) {
  const auto spec = chaos::to_json(r.spec);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch());
  const auto secs = std::chrono::floor<std::chrono::seconds>(wall);
  nlohmann::json j{
      {"id", r.id},
      {"kind", spec["kind"]},
      {"targets", spec["targets"]},
      {"params", spec["params"]},
      {"phase", r.phase},
      {"monotonic_ns",
       std::chrono::duration_cast<std::chrono::nanoseconds>(mono.time_since_epoch()).count()},
      {"wall_time", fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", secs, ms.count() % 1000)},
      {"verified", r.verified},
      {"backend", r.backend},
      {"details", r.details},
  };
  if (r.error)
    j["error"] = r.error.message();
  return j;
}

std::error_code FaultLog::append(const Record& r) {
  const auto line =
      to_json(r, std::chrono::steady_clock::now(), std::chrono::system_clock::now()).dump() + "\n";
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return {errno, std::generic_category()};
  const auto written = ::write(fd, line.data(), line.size());
  const int err = errno;
  ::close(fd);
  if (written != static_cast<ssize_t>(line.size()))
    return {err, std::generic_category()};
  return {};
}

void FaultInjector::log(FaultId id, const FaultSpec& spec, const char* phase, const Outcome& o,
                        const nlohmann::json& details) {
  spdlog::info("event=fault_{} id={} kind={} targets={} backend={} verified={} error=\"{}\"", phase,
               id, to_string(spec.kind), fmt::join(spec.targets, ","), o.backend, o.verified,
               o.error ? o.error.message() : "");
  if (log_ == nullptr)
    return;
  if (auto ec = log_->append({id, spec, phase, o.verified, o.backend, details, o.error})) {
    spdlog::warn("event=fault_log_write_failed path={} error=\"{}\"", log_->path().string(),
                 ec.message());
  }
}

FaultInjector::Outcome FaultInjector::inject(const FaultSpec& spec, bool verify) {
  return inject_with_id(active_.next_id(), spec, verify);
}

FaultInjector::Outcome FaultInjector::inject_with_id(FaultId id, const FaultSpec& spec,
                                                     bool verify) {
  Outcome out{id, {}, false, {}};
  auto fault = make_fault(id, spec, ctx_, out.error);
  if (!fault) {
    log(id, spec, "inject", out, {});
    return out;
  }
  out.error = fault->inject();
  out.backend = fault->backend();
  if (out.error) {
    // Leave nothing half-applied.
    (void)fault->heal();
    log(id, spec, "inject", out, fault->details());
    return out;
  }
  if (verify)
    out.verified = !fault->verify();
  log(id, spec, "inject", out, fault->details());
  if (!is_one_off(spec.kind))
    active_.add(id, spec, std::move(fault));
  return out;
}

FaultInjector::Outcome FaultInjector::heal(FaultId id, bool verify) {
  Outcome out{id, {}, false, {}};
  auto* entry = active_.find(id);
  if (entry == nullptr) {
    out.error = fault_errc::not_found;
    return out;
  }
  const auto spec = entry->spec;
  out.backend = entry->fault->backend();
  const auto details = entry->fault->details();
  out.error = entry->fault->heal();
  if (!out.error && verify)
    out.verified = !entry->fault->verify_healed();
  if (!out.error)
    active_.erase(id);
  log(id, spec, "heal", out, details);
  return out;
}

std::error_code FaultInjector::heal_all(bool verify) {
  std::error_code first;
  auto ids = active_.ids();
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    if (auto o = heal(*it, verify); o.error && !first)
      first = o.error;
  }
  return first;
}

std::vector<std::string> fault_resource_kinds() {
  return {"nft-table", "iptables-chain", "qdisc",       "link-down",  "shaper",     "io-throttle",
          "io-cgroup", "disk-mount",     "loop-device", "disk-image", "fuse-mount", "lazyfs-fault"};
}

std::error_code clean_fault_resource(const std::string& kind, const nlohmann::json& d) {
  try {
    if (kind == "nft-table") {
      return kernel::nft_delete_table_if_exists(d.at("netns").get<std::string>(),
                                                d.at("table").get<std::string>());
    }
    if (kind == "iptables-chain") {
      const auto netns = d.at("netns").get<std::string>();
      if (!fs::exists("/run/netns/" + netns))
        return {};
      return kernel::remove_iptables_chain(netns, d.at("chain").get<std::string>());
    }
    if (kind == "qdisc") {
      const auto netns = d.at("netns").get<std::string>();
      if (!fs::exists("/run/netns/" + netns))
        return {};
      return kernel::delete_root_qdisc(netns, d.at("interface").get<std::string>(),
                                       d.at("kind").get<std::string>());
    }
    if (kind == "link-down") {
      const auto netns = d.at("netns").get<std::string>();
      if (!fs::exists("/run/netns/" + netns))
        return {};
      auto ec = kernel::set_link_up(netns, d.at("interface").get<std::string>(), true);
      return ec == fault_errc::unknown_target ? std::error_code{} : ec;
    }
    if (kind == "shaper") {
      return kernel::stop_shapers(d.at("netns").get<std::string>(), d.at("queue").get<uint16_t>());
    }
    if (kind == "io-throttle") {
      return clear_io_limits(d.at("cgroup").get<std::string>(), d.at("device").get<std::string>());
    }
    if (kind == "io-cgroup") {
      const fs::path path = d.at("path").get<std::string>();
      if (!fs::exists(path))
        return {};
      std::ifstream procs(path / "cgroup.procs");
      for (std::string pid; std::getline(procs, pid);) {
        std::ofstream(path.parent_path() / "cgroup.procs") << pid;
      }
      if (::rmdir(path.c_str()) != 0 && errno != ENOENT)
        return {errno, std::generic_category()};
      return {};
    }
    if (kind == "disk-mount") {
      const auto path = d.at("path").get<std::string>();
      if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
        return {errno, std::generic_category()};
      }
      return {};
    }
    if (kind == "loop-device") {
      const auto dev = d.at("device").get<std::string>();
      const int fd = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
      if (fd < 0)
        return {};
      // Only detach it if it still holds our image (the number may have been reused since).
      loop_info64 info{};
      const bool ours = ::ioctl(fd, LOOP_GET_STATUS64, &info) == 0 &&
                        std::string(reinterpret_cast<char*>(info.lo_file_name)) ==
                            d.value("image", std::string());
      if (ours)
        ::ioctl(fd, LOOP_CLR_FD);
      ::close(fd);
      return {};
    }
    if (kind == "fuse-mount" || kind == "lazyfs-fault")
      return clean_storage_resource(kind, d);
    if (kind == "disk-image") {
      std::error_code ec;
      fs::remove(d.at("path").get<std::string>(), ec);
      return {};
    }
  } catch (const nlohmann::json::exception& e) {
    spdlog::warn("event=fault_clean_bad_record kind={} error=\"{}\"", kind, e.what());
    return fault_errc::invalid_spec;
  }
  return fault_errc::unknown_kind;
}

}  // namespace faultline::chaos
