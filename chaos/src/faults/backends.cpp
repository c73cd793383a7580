// The Fault implementations: nftables partitions, link down, netem / NFQUEUE shaper, tbf, cgroup
// I/O throttles and supervisor signals. Each records its resources before creating them.
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "faultline/chaos/faults/disk.h"
#include "faultline/chaos/faults/fault.h"
#include "faultline/chaos/faults/partition.h"
#include "faultline/chaos/faults/process.h"
#include "faultline/chaos/faults/shaper.h"
#include "faultline/chaos/faults/storage.h"
#include "kernel.h"

namespace faultline::chaos {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace kernel {

// Finds faultline-shaper processes in `netns` serving `queue` (by /proc scan, so a harness that
// crashed before learning the pid can still be cleaned up).
std::vector<pid_t> find_shapers(const std::string& netns, uint16_t queue) {
  std::vector<pid_t> out;
  struct stat ns_stat {};
  if (::stat(("/run/netns/" + netns).c_str(), &ns_stat) != 0)
    return out;
  const std::string want_queue = fmt::format("--queue{}{}", '\0', queue);
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit))
      continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    if (cmdline.find("faultline-shaper") == std::string::npos)
      continue;
    if (cmdline.find(want_queue + '\0') == std::string::npos)
      continue;
    struct stat proc_ns {};
    if (::stat((entry.path() / "ns/net").c_str(), &proc_ns) != 0)
      continue;
    if (proc_ns.st_ino == ns_stat.st_ino && proc_ns.st_dev == ns_stat.st_dev) {
      out.push_back(static_cast<pid_t>(std::stol(name)));
    }
  }
  return out;
}

std::error_code stop_shapers(const std::string& netns, uint16_t queue) {
  for (pid_t pid : find_shapers(netns, queue)) {
    ::kill(pid, SIGTERM);
    // It releases its held packets and exits; give it up to a second, then SIGKILL.
    for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i) {
      if (::waitpid(pid, nullptr, WNOHANG) == pid)
        break;
      std::this_thread::sleep_for(10ms);
    }
    if (::kill(pid, 0) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  return {};
}

}  // namespace kernel

namespace {

// A port nothing listens on: a connect is answered by RST when the path is open, and times out
// when the path drops packets.
constexpr uint16_t kProbePort = 9;
constexpr auto kProbeTimeout = 300ms;

std::string probe_address(const FaultNode& node) {
  if (auto it = node.addresses.find("int"); it != node.addresses.end())
    return it->second;
  return node.addresses.empty() ? std::string() : node.addresses.begin()->second;
}

std::string res_name(const std::string& netns, const std::string& what) {
  return netns + "/" + what;
}

// ---------------------------------------------------------------- partitions (nftables)

class PartitionFault final : public Fault {
 public:
  PartitionFault(FaultId id, const FaultSpec& spec, const FaultContext& ctx)
      : ctx_(ctx), table_(nft_table_name(ctx.topology->run_prefix, id)) {
    plan_ = plan_partition(spec, ctx.topology->names());
    drops_ = drops_per_node(plan_);
  }

  std::error_code inject() override {
    const auto addresses = ctx_.topology->addresses();
    for (const auto& [node_name, drops] : drops_) {
      const auto* node = ctx_.topology->find(node_name);
      const auto text = render_partition_ruleset(table_, drops, addresses);
      if (text.empty())
        continue;
      if (auto ec = ctx_.recorder->will_create("nft-table", res_name(node->netns, table_),
                                               {{"netns", node->netns}, {"table", table_}})) {
        return ec;
      }
      if (auto ec = kernel::nft_run(node->netns, text))
        return ec;
    }
    return {};
  }

  std::error_code heal() override {
    // Deleting a table with base chains waits for the kernel's RCU grace period (~15-20 ms), so
    // the nodes are healed in parallel: heal latency is one deletion, not one per node.
    std::vector<std::pair<std::string, std::future<std::error_code>>> deletions;
    for (const auto& [node_name, drops] : drops_) {
      const auto* node = ctx_.topology->find(node_name);
      deletions.emplace_back(node->netns,
                             std::async(std::launch::async, [netns = node->netns, this] {
                               return kernel::nft_delete_table_if_exists(netns, table_);
                             }));
    }
    std::error_code first;
    for (auto& [netns, f] : deletions) {
      if (auto ec = f.get()) {
        if (!first)
          first = ec;
        continue;
      }
      ctx_.recorder->removed("nft-table", res_name(netns, table_));
    }
    return first;
  }

  std::error_code verify() override { return check(true); }
  std::error_code verify_healed() override { return check(false); }

  std::string backend() const override { return "nftables"; }
  nlohmann::json details() const override {
    return {{"table", table_}, {"groups", plan_.groups}, {"blocks", plan_.blocks.size()}};
  }

 private:
  // Probes up to four blocked paths in parallel (each probe is a connect with a short timeout).
  std::error_code check(bool expect_blocked) {
    std::vector<std::future<kernel::Reach>> probes;
    for (const auto& [from, to] : plan_.blocks) {
      if (probes.size() == 4)
        break;
      const auto* a = ctx_.topology->find(from);
      const auto* b = ctx_.topology->find(to);
      const auto addr = probe_address(*b);
      if (addr.empty())
        continue;
      probes.push_back(std::async(std::launch::async, [netns = a->netns, addr] {
        return kernel::tcp_probe(netns, addr, kProbePort, kProbeTimeout);
      }));
    }
    for (auto& p : probes) {
      const bool blocked = p.get() == kernel::Reach::unreachable;
      if (blocked != expect_blocked)
        return fault_errc::verify_failed;
    }
    return {};
  }

  const FaultContext& ctx_;
  std::string table_;
  PartitionPlan plan_;
  std::map<NodeName, NodeDrops> drops_;
};

// ---------------------------------------------------------------- link down

class LinkFault final : public Fault {
 public:
  LinkFault(const FaultSpec& spec, const FaultContext& ctx)
      : ctx_(ctx),
        node_(*ctx.topology->find(spec.targets.at(0))),
        ifname_(std::get<LinkParams>(spec.params).interface) {}

  std::error_code inject() override {
    if (auto ec = ctx_.recorder->will_create("link-down", res_name(node_.netns, ifname_),
                                             {{"netns", node_.netns}, {"interface", ifname_}})) {
      return ec;
    }
    return kernel::set_link_up(node_.netns, ifname_, false);
  }
  std::error_code heal() override {
    auto ec = kernel::set_link_up(node_.netns, ifname_, true);
    if (ec == fault_errc::unknown_target)
      ec.clear();  // namespace or link already gone
    if (!ec)
      ctx_.recorder->removed("link-down", res_name(node_.netns, ifname_));
    return ec;
  }
  std::error_code verify() override { return expect(false); }
  std::error_code verify_healed() override { return expect(true); }
  std::string backend() const override { return "link-down"; }
  nlohmann::json details() const override { return {{"interface", ifname_}}; }

 private:
  std::error_code expect(bool want_up) {
    bool up = false;
    if (auto ec = kernel::link_is_up(node_.netns, ifname_, up))
      return ec;
    return up == want_up ? std::error_code{} : make_error_code(fault_errc::verify_failed);
  }
  const FaultContext& ctx_;
  FaultNode node_;
  std::string ifname_;
};

// ---------------------------------------------------------------- packets: netem or NFQUEUE

// fork, enter the namespace, exec the shaper; waits for its "ready" byte.
std::error_code spawn_shaper(const fs::path& binary, const std::string& netns,
                             const std::vector<std::string>& args_without_fd,
                             const fs::path& log_path, pid_t& pid_out) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0)
    return {errno, std::generic_category()};
  std::vector<std::string> args{binary.string()};
  args.insert(args.end(), args_without_fd.begin(), args_without_fd.end());
  args.push_back("--ready-fd");
  args.push_back(std::to_string(ready[1]));
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string ns_path = "/run/netns/" + netns;
  const int ns_fd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns_fd < 0) {
    ::close(ready[0]);
    ::close(ready[1]);
    return fault_errc::unknown_target;
  }
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    ::setsid();  // survives the CLI that started it; heal/clean stop it
    if (::setns(ns_fd, CLONE_NEWNET) != 0)
      ::_exit(126);
    if (log_fd >= 0) {
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
    }
    ::fcntl(ready[1], F_SETFD, 0);  // the ready fd must survive exec
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(ns_fd);
  if (log_fd >= 0)
    ::close(log_fd);
  ::close(ready[1]);
  if (pid < 0) {
    ::close(ready[0]);
    return {errno, std::generic_category()};
  }
  pollfd pfd{ready[0], POLLIN, 0};
  char byte = 0;
  const bool ok = ::poll(&pfd, 1, 3000) == 1 && ::read(ready[0], &byte, 1) == 1;
  ::close(ready[0]);
  if (!ok) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    spdlog::warn("event=fault_shaper_start_failed netns={} log={}", netns, log_path.string());
    return fault_errc::kernel_error;
  }
  pid_out = pid;
  return {};
}

// The userspace backend shapes at the *receivers*: for a fault on node X's interface I, every peer
// P (the given peers, or every node with an address on I's network) runs a shaper on its ingress
// for packets from X (`iifname I ip saddr X`). Same effect on the X -> P path as netem on X's
// egress, but the packets are held after the veth has orphaned them: held on X's egress they would
// still count against X's TCP Small Queues budget (netem orphans them itself; NFQUEUE does not),
// which capped a TCP stream at about two packets per delay.
class PacketFault final : public Fault {
 public:
  PacketFault(FaultId id, const FaultSpec& spec, const FaultContext& ctx)
      : id_(id),
        ctx_(ctx),
        node_(*ctx.topology->find(spec.targets.at(0))),
        params_(std::get<PacketParams>(spec.params)),
        table_(nft_table_name(ctx.topology->run_prefix, id)),
        queue_(static_cast<uint16_t>(id % 65000 + 1)) {
    for (const auto& n : ctx.topology->nodes) {
      if (n.name == node_.name || !n.addresses.count(params_.interface))
        continue;
      if (!params_.peers.empty() &&
          std::find(params_.peers.begin(), params_.peers.end(), n.name) == params_.peers.end()) {
        continue;
      }
      receivers_.push_back(n);
    }
  }

  std::error_code inject() override {
    if (!force_shaper()) {
      if (auto ec = ctx_.recorder->will_create(
              "qdisc", res_name(node_.netns, params_.interface),
              {{"netns", node_.netns}, {"interface", params_.interface}, {"kind", "netem"}})) {
        return ec;
      }
      auto ec = kernel::add_netem(node_.netns, params_.interface, params_);
      if (!ec) {
        backend_ = "netem";
        return {};
      }
      ctx_.recorder->removed("qdisc", res_name(node_.netns, params_.interface));
      if (ec != fault_errc::backend_unavailable)
        return ec;
      spdlog::info(
          "event=fault_backend_fallback id={} from=netem to=nfqueue reason=\"kernel has "
          "no sch_netem\"",
          id_);
    }
    backend_ = "nfqueue";
    if (receivers_.empty())
      return fault_errc::unknown_target;
    for (const auto& r : receivers_) {
      if (auto ec = inject_shaper(r))
        return ec;
    }
    return {};
  }

  std::error_code heal() override {
    // Both backends, so that a heal rebuilt from the spec alone (CLI, clean) is complete. Rule
    // first: with it gone no new packets queue, then the shaper releases what it holds.
    std::error_code first;
    for (const auto& r : receivers_) {
      if (auto ec = kernel::nft_delete_table_if_exists(r.netns, table_); ec) {
        if (!first)
          first = ec;
      } else {
        ctx_.recorder->removed("nft-table", res_name(r.netns, table_));
      }
      if (auto ec = kernel::remove_iptables_chain(r.netns, table_); ec) {
        if (!first)
          first = ec;
      } else {
        ctx_.recorder->removed("iptables-chain", res_name(r.netns, table_));
      }
      kernel::stop_shapers(r.netns, queue_);
      ctx_.recorder->removed("shaper", res_name(r.netns, fmt::format("q{}", queue_)));
    }
    if (auto ec = kernel::delete_root_qdisc(node_.netns, params_.interface, "netem"); ec) {
      if (!first)
        first = ec;
    } else {
      ctx_.recorder->removed("qdisc", res_name(node_.netns, params_.interface));
    }
    return first;
  }

  std::error_code verify() override {
    if (backend_ == "netem") {
      std::string kind;
      if (auto ec = kernel::root_qdisc_kind(node_.netns, params_.interface, kind))
        return ec;
      if (kind != "netem")
        return fault_errc::verify_failed;
    } else {
      for (const auto& r : receivers_) {
        const bool rule = queue_rule_ == "nft" ? kernel::nft_table_exists(r.netns, table_)
                                               : kernel::iptables_chain_exists(r.netns, table_);
        if (kernel::find_shapers(r.netns, queue_).empty() || !rule) {
          return fault_errc::verify_failed;
        }
      }
    }
    return verify_delay();
  }

  std::error_code verify_healed() override {
    std::string kind;
    (void)kernel::root_qdisc_kind(node_.netns, params_.interface, kind);
    if (kind == "netem")
      return fault_errc::verify_failed;
    for (const auto& r : receivers_) {
      if (!kernel::find_shapers(r.netns, queue_).empty() ||
          kernel::nft_table_exists(r.netns, table_) ||
          kernel::iptables_chain_exists(r.netns, table_)) {
        return fault_errc::verify_failed;
      }
    }
    return {};
  }

  std::string backend() const override { return backend_; }
  nlohmann::json details() const override {
    nlohmann::json d{{"interface", params_.interface}};
    if (backend_ == "nfqueue") {
      d["queue"] = queue_;
      d["table"] = table_;
      d["queue_rule"] = queue_rule_;
      std::vector<std::string> at;
      for (const auto& r : receivers_)
        at.push_back(r.name);
      d["shaped_at"] = at;
    }
    return d;
  }

 private:
  static bool force_shaper() {
    const char* v = std::getenv("FAULTLINE_FORCE_SHAPER");
    return v != nullptr && std::string(v) == "1";
  }

  std::vector<std::string> sender_addresses() const {
    // Only the address on the shaped interface: traffic X sends from its other interface is not
    // part of this fault (netem on X's `int` does not see X's `ext` traffic either).
    return {node_.addresses.at(params_.interface)};
  }

  std::error_code inject_shaper(const FaultNode& receiver) {
    if (ctx_.shaper_binary.empty() || !fs::exists(ctx_.shaper_binary)) {
      spdlog::warn("event=fault_shaper_missing path={}", ctx_.shaper_binary.string());
      return fault_errc::backend_unavailable;
    }
    if (auto ec = ctx_.recorder->will_create("shaper",
                                             res_name(receiver.netns, fmt::format("q{}", queue_)),
                                             {{"netns", receiver.netns}, {"queue", queue_}})) {
      return ec;
    }
    // One RNG stream per (fault, receiver), all from the run's seed.
    const uint64_t seed =
        ctx_.seed ^ (id_ * 0x9e3779b97f4a7c15ULL) ^ std::hash<std::string>{}(receiver.name);
    auto args = shaper_arguments(params_, queue_, seed, kReinjectMark, -1);
    args.resize(args.size() - 2);  // spawn_shaper adds its own --ready-fd
    const auto log = (ctx_.run_dir.empty() ? fs::temp_directory_path() : ctx_.run_dir) /
                     fmt::format("shaper-f{}-{}.log", id_, receiver.name);
    pid_t pid = 0;
    if (auto ec = spawn_shaper(ctx_.shaper_binary, receiver.netns, args, log, pid))
      return ec;
    if (queue_rule_ == "nft" && nft_queue_missing.load())
      queue_rule_ = "iptables";
    if (queue_rule_ == "nft") {
      if (auto ec = ctx_.recorder->will_create("nft-table", res_name(receiver.netns, table_),
                                               {{"netns", receiver.netns}, {"table", table_}})) {
        return ec;
      }
      std::string nft_error;
      auto ec = kernel::nft_run(receiver.netns,
                                render_shaper_ruleset(table_, params_.interface, sender_addresses(),
                                                      queue_, kReinjectMark),
                                &nft_error);
      if (!ec)
        return {};
      ctx_.recorder->removed("nft-table", res_name(receiver.netns, table_));
      // No nft `queue` expression in this kernel (nft_queue missing): the same rule through
      // iptables-nft, whose NFQUEUE target is the xt module. The kernel does not change during a
      // process: later faults go straight there (a failed nft attempt costs tens of ms per node).
      spdlog::info("event=fault_queue_rule_fallback id={} from=nft to=iptables", id_);
      nft_queue_missing = true;
      queue_rule_ = "iptables";
    }
    if (auto ec = ctx_.recorder->will_create("iptables-chain", res_name(receiver.netns, table_),
                                             {{"netns", receiver.netns}, {"chain", table_}})) {
      return ec;
    }
    return kernel::add_iptables_queue_chain(receiver.netns, table_, params_.interface,
                                            sender_addresses(), queue_, kReinjectMark);
  }

  // With a delay: a connect's SYN -> RST exchange to a receiver must take at least the delay
  // minus jitter (halved for slack). Tried a few times because loss may eat the probe.
  std::error_code verify_delay() {
    if (params_.delay.count() == 0 || params_.reorder_pct > 50 || receivers_.empty())
      return {};
    const auto& peer = receivers_.front();
    const auto floor = (params_.delay - params_.jitter) / 2;
    const auto timeout =
        std::chrono::duration_cast<std::chrono::milliseconds>(params_.delay + params_.jitter) * 3 +
        200ms;
    for (int attempt = 0; attempt < 3; ++attempt) {
      const auto start = std::chrono::steady_clock::now();
      const auto reach =
          kernel::tcp_probe(node_.netns, peer.addresses.at(params_.interface), kProbePort, timeout);
      const auto rtt = std::chrono::steady_clock::now() - start;
      if (reach == kernel::Reach::reachable) {
        return rtt >= floor ? std::error_code{} : make_error_code(fault_errc::verify_failed);
      }
    }
    return params_.loss_pct > 0 ? std::error_code{} : make_error_code(fault_errc::verify_failed);
  }

  static constexpr uint32_t kReinjectMark = 0xfa17;
  static inline std::atomic<bool> nft_queue_missing{false};
  FaultId id_;
  const FaultContext& ctx_;
  FaultNode node_;
  PacketParams params_;
  std::string table_;
  uint16_t queue_;
  std::vector<FaultNode> receivers_;
  std::string backend_ = "nfqueue";
  std::string queue_rule_ = "nft";  // or "iptables" (see inject_shaper)
};

// ---------------------------------------------------------------- rate (tbf)

class RateFault final : public Fault {
 public:
  RateFault(const FaultSpec& spec, const FaultContext& ctx)
      : ctx_(ctx),
        node_(*ctx.topology->find(spec.targets.at(0))),
        params_(std::get<RateParams>(spec.params)) {}

  std::error_code inject() override {
    if (auto ec = ctx_.recorder->will_create(
            "qdisc", res_name(node_.netns, params_.interface),
            {{"netns", node_.netns}, {"interface", params_.interface}, {"kind", "tbf"}})) {
      return ec;
    }
    return kernel::add_tbf(node_.netns, params_.interface, params_);
  }
  std::error_code heal() override {
    auto ec = kernel::delete_root_qdisc(node_.netns, params_.interface, "tbf");
    if (!ec)
      ctx_.recorder->removed("qdisc", res_name(node_.netns, params_.interface));
    return ec;
  }
  std::error_code verify() override { return expect(true); }
  std::error_code verify_healed() override { return expect(false); }
  std::string backend() const override { return "tbf"; }
  nlohmann::json details() const override { return {{"interface", params_.interface}}; }

 private:
  std::error_code expect(bool present) {
    std::string kind;
    if (auto ec = kernel::root_qdisc_kind(node_.netns, params_.interface, kind))
      return ec;
    return (kind == "tbf") == present ? std::error_code{}
                                      : make_error_code(fault_errc::verify_failed);
  }
  const FaultContext& ctx_;
  FaultNode node_;
  RateParams params_;
};

// ---------------------------------------------------------------- disk (cgroup I/O limits)

class DiskFault final : public Fault {
 public:
  DiskFault(const FaultSpec& spec, const FaultContext& ctx)
      : ctx_(ctx),
        node_(*ctx.topology->find(spec.targets.at(0))),
        limits_(std::get<DiskParams>(spec.params)) {}

  std::error_code inject() override {
    const auto name = resource();
    if (auto ec = ctx_.recorder->will_create(
            "io-throttle", name,
            {{"cgroup", node_.blkio_cgroup->string()}, {"device", *node_.block_device}})) {
      return ec;
    }
    return set_io_limits(*node_.blkio_cgroup, *node_.block_device, limits_);
  }
  std::error_code heal() override {
    auto ec = clear_io_limits(*node_.blkio_cgroup, *node_.block_device);
    if (!ec)
      ctx_.recorder->removed("io-throttle", resource());
    return ec;
  }
  std::error_code verify() override {
    return has_io_limits(*node_.blkio_cgroup, *node_.block_device)
               ? std::error_code{}
               : make_error_code(fault_errc::verify_failed);
  }
  std::error_code verify_healed() override {
    return has_io_limits(*node_.blkio_cgroup, *node_.block_device)
               ? make_error_code(fault_errc::verify_failed)
               : std::error_code{};
  }
  std::string backend() const override {
    return detect_cgroup_io() == CgroupIo::v2_io ? "io.max" : "blkio-v1";
  }
  nlohmann::json details() const override {
    return {{"cgroup", node_.blkio_cgroup->string()}, {"device", *node_.block_device}};
  }

 private:
  std::string resource() const { return node_.blkio_cgroup->string() + "@" + *node_.block_device; }
  const FaultContext& ctx_;
  FaultNode node_;
  DiskParams limits_;
};

}  // namespace

// ---------------------------------------------------------------- topology, factory, registry

const FaultNode* FaultTopology::find(const NodeName& name) const {
  for (const auto& n : nodes) {
    if (n.name == name)
      return &n;
  }
  return nullptr;
}

std::vector<NodeName> FaultTopology::names() const {
  std::vector<NodeName> out;
  for (const auto& n : nodes)
    out.push_back(n.name);
  return out;
}

std::map<NodeName, std::vector<std::string>> FaultTopology::addresses() const {
  std::map<NodeName, std::vector<std::string>> out;
  for (const auto& n : nodes) {
    for (const auto& [ifname, addr] : n.addresses)
      out[n.name].push_back(addr);
  }
  return out;
}

std::unique_ptr<Fault> make_fault(FaultId id, const FaultSpec& spec, const FaultContext& ctx,
                                  std::error_code& ec) {
  ec.clear();
  if (auto v = validate(spec)) {
    ec = v;
    return nullptr;
  }
  if (ctx.topology == nullptr) {
    ec = fault_errc::invalid_spec;
    return nullptr;
  }
  for (const auto& t : spec.targets) {
    const auto* node = ctx.topology->find(t);
    if (node == nullptr) {
      ec = fault_errc::unknown_target;
      return nullptr;
    }
    // Faults only ever act inside namespaces of this run.
    const auto cls = fault_class(spec.kind);
    if ((cls == FaultClass::partition || cls == FaultClass::packets) &&
        (node->netns.empty() || node->netns.rfind(ctx.topology->run_prefix, 0) != 0)) {
      ec = fault_errc::not_owned;
      return nullptr;
    }
  }
  if (fault_class(spec.kind) != FaultClass::process && ctx.recorder == nullptr) {
    ec = fault_errc::invalid_spec;
    return nullptr;
  }
  switch (spec.kind) {
    case FaultKind::cut_link:
      return std::make_unique<LinkFault>(spec, ctx);
    case FaultKind::packets:
      return std::make_unique<PacketFault>(id, spec, ctx);
    case FaultKind::rate:
      return std::make_unique<RateFault>(spec, ctx);
    case FaultKind::disk_throttle:
    case FaultKind::disk_stall: {
      const auto* node = ctx.topology->find(spec.targets.at(0));
      if (!node->block_device || !node->blkio_cgroup) {
        ec = fault_errc::backend_unavailable;  // the node has no disk of its own
        return nullptr;
      }
      if (node->blkio_cgroup->filename().string().rfind(ctx.topology->run_prefix, 0) != 0) {
        ec = fault_errc::not_owned;
        return nullptr;
      }
      return std::make_unique<DiskFault>(spec, ctx);
    }
    default:
      break;
  }
  if (fault_class(spec.kind) == FaultClass::storage)
    return make_storage_fault(id, spec, ctx, ec);
  if (fault_class(spec.kind) == FaultClass::partition) {
    return std::make_unique<PartitionFault>(id, spec, ctx);
  }
  if (ctx.processes == nullptr) {
    ec = fault_errc::backend_unavailable;
    return nullptr;
  }
  return make_process_fault(spec, *ctx.processes);
}

void ActiveFaults::add(FaultId id, FaultSpec spec, std::unique_ptr<Fault> fault) {
  next_id_ = std::max(next_id_, id + 1);
  entries_.push_back(Entry{id, std::move(spec), std::move(fault)});
}

ActiveFaults::Entry* ActiveFaults::find(FaultId id) {
  for (auto& e : entries_) {
    if (e.id == id)
      return &e;
  }
  return nullptr;
}

std::error_code ActiveFaults::heal(FaultId id) {
  auto it =
      std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.id == id; });
  if (it == entries_.end())
    return fault_errc::not_found;
  auto ec = it->fault->heal();
  if (!ec)
    entries_.erase(it);
  return ec;
}

void ActiveFaults::erase(FaultId id) {
  std::erase_if(entries_, [&](const Entry& e) { return e.id == id; });
}

std::error_code ActiveFaults::heal_all() {
  std::error_code first;
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (auto ec = it->fault->heal(); ec && !first)
      first = ec;
  }
  if (!first)
    entries_.clear();
  return first;
}

std::vector<FaultId> ActiveFaults::ids() const {
  std::vector<FaultId> out;
  for (const auto& e : entries_)
    out.push_back(e.id);
  return out;
}

}  // namespace faultline::chaos
