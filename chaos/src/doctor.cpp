#include "faultline/chaos/doctor.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/netem.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/tc.h>
#include <nftables/libnftables.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <ostream>
#include <sstream>

#include "faultline/chaos/journal.h"
#include "faultline/chaos/naming.h"
#include "faultline/chaos/netns.h"
#include "faultline/chaos/supervisor.h"
#include "netlink_util.h"

namespace faultline::chaos {
namespace fs = std::filesystem;

std::vector<BackendChoice> choose_backends(const HostCapabilities& c) {
  std::vector<BackendChoice> out;
  const bool nodes = c.netns && c.veth && c.bridge;
  out.push_back(
      {"process", std::string("signal"), "kill -9, pause, SIGTERM, restart via the supervisor"});
  if (nodes && c.nftables) {
    out.push_back({"partition", std::string("nftables"), "drop rules in the nodes' namespaces"});
  } else {
    out.push_back({"partition", std::nullopt, "needs nftables in namespaces"});
  }
  if (nodes) {
    out.push_back(
        {"link-cut", std::string("link-down"), "whole-interface cuts (e.g. a broker's ext)"});
  } else {
    out.push_back({"link-cut", std::nullopt, "needs netns + veth + bridge"});
  }
  if (nodes && c.netem) {
    out.push_back(
        {"packets", std::string("netem"), "delay, jitter, loss, duplicate, reorder, corrupt"});
  } else if (nodes && c.nfqueue && c.nftables) {
    out.push_back({"packets", std::string("nfqueue"),
                   c.nft_queue
                       ? "sch_netem missing: userspace shaper on NFQUEUE (nft queue)"
                       : "sch_netem missing: userspace shaper on NFQUEUE (iptables NFQUEUE: "
                         "nft_queue missing)"});
  } else {
    out.push_back({"packets", std::nullopt, "needs sch_netem or NFQUEUE + nftables"});
  }
  if (nodes && c.tbf) {
    out.push_back({"rate", std::string("tbf"), "token bucket qdisc"});
  } else if (nodes && c.netem) {
    out.push_back({"rate", std::string("netem"), "netem rate"});
  } else if (nodes && c.nfqueue && c.nftables) {
    out.push_back({"rate", std::string("nfqueue"), "userspace shaper pacing"});
  } else {
    out.push_back({"rate", std::nullopt, "needs tbf, sch_netem or NFQUEUE"});
  }
  // Same preference as the disk backend: v1 blkio where it is mounted, else v2 io.max.
  if (!c.loop) {
    out.push_back({"disk", std::nullopt, "needs loop devices (/dev/loop-control)"});
  } else if (c.cgroup_v1_blkio) {
    out.push_back({"disk", std::string("blkio-v1"), "loop-mounted data dir, blkio.throttle.*"});
  } else if (c.cgroup_v2_io) {
    out.push_back({"disk", std::string("io.max"), "loop-mounted data dir, cgroup v2 io.max"});
  } else {
    out.push_back({"disk", std::nullopt, "needs cgroup v1 blkio or v2 io controller"});
  }
  if (c.fuse) {
    out.push_back(
        {"disk-errors", std::string("fuse"),
         "faultline-lazyfs under each data dir (ClusterShape::lazyfs): power-loss, torn-write, "
         "disk-error, slow-fsync"});
  } else {
    out.push_back({"disk-errors", std::nullopt,
                   "needs /dev/fuse (power-loss, torn-write, disk-error, slow-fsync)"});
  }
  return out;
}

bool minimum_met(const HostCapabilities& c) {
  return c.netns && c.veth && c.bridge && c.nftables;
}

namespace {

Probe result(std::string name, std::error_code ec, std::string ok_detail = "ok") {
  return {std::move(name), !ec, ec ? ec.message() : std::move(ok_detail)};
}

std::error_code nft_here(const std::string& commands) {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx == nullptr)
    return std::make_error_code(std::errc::not_enough_memory);
  nft_ctx_buffer_error(ctx);
  int rc = nft_run_cmd_from_buffer(ctx, commands.c_str());
  std::string err = nft_ctx_get_error_buffer(ctx) ? nft_ctx_get_error_buffer(ctx) : "";
  nft_ctx_free(ctx);
  if (rc != 0) {
    spdlog::info("chaos.doctor_nft_failed error=\"{}\"", err);
    return std::make_error_code(std::errc::operation_not_supported);
  }
  return {};
}

std::error_code add_qdisc(nl_sock* sk, int ifindex, const char* kind) {
  struct QdiscDeleter {
    void operator()(rtnl_qdisc* q) const { rtnl_qdisc_put(q); }
  };
  std::unique_ptr<rtnl_qdisc, QdiscDeleter> q(rtnl_qdisc_alloc());
  rtnl_tc_set_ifindex(TC_CAST(q.get()), ifindex);
  rtnl_tc_set_parent(TC_CAST(q.get()), TC_H_ROOT);
  if (int err = rtnl_tc_set_kind(TC_CAST(q.get()), kind); err < 0)
    return nl::error(err, "rtnl_tc_set_kind", kind);
  if (std::string_view(kind) == "netem") {
    rtnl_netem_set_delay(q.get(), 10000);  // 10 ms, in microseconds
  } else {
    rtnl_qdisc_tbf_set_limit(q.get(), 100000);
    rtnl_qdisc_tbf_set_rate(q.get(), 1000000, 10000, 0);
  }
  if (int err = rtnl_qdisc_add(sk, q.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0) {
    return nl::error(err, "rtnl_qdisc_add", kind);
  }
  return {};
}

bool file_contains_word(const fs::path& path, std::string_view word) {
  std::ifstream in(path);
  for (std::string w; in >> w;) {
    if (w == word)
      return true;
  }
  return false;
}

bool can_open(const char* path) {
  int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return false;
  ::close(fd);
  return true;
}

// The network probes, run inside the scratch namespace (so nothing touches the host's tables).
// Adds an iptables NFQUEUE rule inside ns (iptables runs as a process entered into ns).
std::error_code iptables_queue_rule(const std::string& ns, uint16_t queue,
                                    const fs::path& log_dir) {
  Supervisor sup(nullptr, log_dir);
  ProcessSpec spec{"iptables",
                   {"iptables", "-A", "OUTPUT", "-p", "udp", "-j", "NFQUEUE", "--queue-num",
                    std::to_string(queue), "--queue-bypass"},
                   {},
                   ns,
                   std::nullopt};
  if (auto ec = sup.start(spec))
    return ec;
  if (auto ec = sup.wait_exit("iptables", std::chrono::seconds(10)))
    return ec;
  auto status = sup.exit_status("iptables");
  if (!status || status->code != 0)
    return std::make_error_code(std::errc::operation_not_supported);
  return {};
}

void probe_network(const std::string& ns, const fs::path& log_dir, DoctorResult& r) {
  std::error_code ec = run_in_netns(ns, [&]() -> std::error_code {
    std::error_code e;
    nl::Sock sk = nl::connect_route(e);
    if (e)
      return e;
    {
      nl::Link veth(rtnl_link_veth_alloc());
      nl::Link peer(rtnl_link_veth_get_peer(veth.get()));
      rtnl_link_set_name(veth.get(), "fld0");
      rtnl_link_set_name(peer.get(), "fld1");
      rtnl_link_set_flags(veth.get(), IFF_UP);  // the peer is set up below (libnl rejects it here)
      int err = rtnl_link_add(sk.get(), veth.get(), NLM_F_CREATE | NLM_F_EXCL);
      e = err < 0 ? nl::error(err, "rtnl_link_add(veth)", "fld0") : std::error_code{};
      r.caps.veth = !e;
      r.probes.push_back(result("veth", e));
    }
    {
      nl::Link br(rtnl_link_bridge_alloc());
      rtnl_link_set_name(br.get(), "fldbr");
      int err = rtnl_link_add(sk.get(), br.get(), NLM_F_CREATE | NLM_F_EXCL);
      e = err < 0 ? nl::error(err, "rtnl_link_add(bridge)", "fldbr") : std::error_code{};
      r.caps.bridge = !e;
      r.probes.push_back(result("bridge", e));
    }
    const int ifindex = static_cast<int>(::if_nametoindex("fld0"));
    const int ifindex_peer = static_cast<int>(::if_nametoindex("fld1"));
    if (ifindex_peer > 0) {
      nl::Link up(rtnl_link_alloc());
      rtnl_link_set_ifindex(up.get(), ifindex_peer);
      rtnl_link_set_flags(up.get(), IFF_UP);
      rtnl_link_add(sk.get(), up.get(), 0);
    }
    if (ifindex > 0) {
      e = add_qdisc(sk.get(), ifindex, "netem");
      r.caps.netem = !e;
      r.probes.push_back(result("netem", e, "sch_netem present"));
      if (e)
        r.probes.back().detail = "kernel lacks sch_netem (" + e.message() + ")";
    } else {
      r.probes.push_back({"netem", false, "no veth to test on"});
    }
    if (ifindex_peer > 0) {
      e = add_qdisc(sk.get(), ifindex_peer, "tbf");
      r.caps.tbf = !e;
      r.probes.push_back(result("tbf", e));
    } else {
      r.probes.push_back({"tbf", false, "no veth to test on"});
    }

    e = nft_here(
        "add table inet fldoctor\n"
        "add chain inet fldoctor out { type filter hook output priority 0; }\n");
    r.caps.nftables = !e;
    r.probes.push_back(result("nftables", e));
    if (!e) {
      constexpr uint16_t kQueue = 7;
      e = nft_here(
          fmt::format("add rule inet fldoctor out meta l4proto udp queue num {} bypass\n", kQueue));
      r.caps.nft_queue = !e;
      r.probes.push_back(result("nft-queue", e, "nft queue statement"));
      if (e) {
        // Without the kernel's nft_queue, the xtables NFQUEUE target (iptables-nft) still queues.
        e = iptables_queue_rule(ns, kQueue, log_dir);
        r.probes.push_back(result("iptables-nfqueue", e, "iptables NFQUEUE target"));
      }
      if (!e) {
        nfq_handle* h = nfq_open();
        if (h == nullptr) {
          e = std::make_error_code(std::errc::operation_not_supported);
        } else {
          nfq_bind_pf(h, AF_INET);  // a no-op on current kernels; old ones need it
          nfq_q_handle* q = nfq_create_queue(
              h, kQueue, [](nfq_q_handle*, nfgenmsg*, nfq_data*, void*) { return 0; }, nullptr);
          if (q == nullptr) {
            e = std::make_error_code(std::errc::operation_not_supported);
          } else {
            nfq_destroy_queue(q);
          }
          nfq_close(h);
        }
      }
      r.caps.nfqueue = !e;
      r.probes.push_back(result("nfqueue", e, "queue rule + libnetfilter_queue bind"));
    } else {
      r.probes.push_back({"nfqueue", false, "needs nftables"});
    }
    return {};
  });
  if (ec)
    r.probes.push_back({"setns", false, ec.message()});
}

}  // namespace

DoctorResult probe_host() {
  DoctorResult r;
  // The scratch namespace is journaled like any run's, so a doctor killed mid-probe is cleaned.
  const std::string run_id = fmt::format(
      "doctor-{}-{}", ::getpid(), std::chrono::steady_clock::now().time_since_epoch().count());
  const std::string prefix = run_prefix(run_id);
  const std::string ns = netns_name(prefix, "doctor");
  std::error_code ec;
  auto journal = Journal::open(default_state_root(), run_id, prefix, ec);
  if (!ec)
    ec = journal->intend(resource_kind::netns, ns);
  if (!ec)
    ec = create_netns(ns);
  r.caps.netns = !ec;
  r.probes.push_back(result("netns", ec));
  if (r.caps.netns) {
    (void)journal->created(resource_kind::netns, ns);
    probe_network(ns, journal->dir() / "logs", r);
    // Deleting the namespace takes its links, qdiscs and nft tables with it.
    if (auto del = delete_netns(ns)) {
      r.probes.push_back({"cleanup", false, del.message() + " (run `faultline clean`)"});
    } else {
      (void)journal->removed(resource_kind::netns, ns);
    }
  } else {
    for (const char* name : {"veth", "bridge", "netem", "tbf", "nftables", "nfqueue"}) {
      r.probes.push_back({name, false, "needs a network namespace"});
    }
  }
  if (journal) {
    fs::path dir = journal->dir();
    const bool clean = !netns_exists(ns);
    journal.reset();
    if (clean)
      fs::remove_all(dir, ec);
  }

  // Not a capability but a trap: with br_netfilter, traffic between two nodes on a bridge crosses
  // the host's iptables FORWARD chain, and a DROP policy there (Docker hosts) cuts nodes off.
  {
    std::ifstream in("/proc/sys/net/bridge/bridge-nf-call-iptables");
    int value = 0;
    if (in >> value && value == 1) {
      r.probes.push_back({"bridge-nf", true,
                          "bridged traffic crosses the host's iptables FORWARD chain: it must "
                          "accept 198.18.0.0/15"});
    }
  }
  r.caps.cgroup_v1_blkio = fs::exists("/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device");
  r.probes.push_back(
      {"cgroup-v1-blkio", r.caps.cgroup_v1_blkio,
       r.caps.cgroup_v1_blkio ? "blkio.throttle.* available" : "no v1 blkio hierarchy"});
  r.caps.cgroup_v2_io = file_contains_word("/sys/fs/cgroup/cgroup.controllers", "io") ||
                        file_contains_word("/sys/fs/cgroup/unified/cgroup.controllers", "io");
  r.probes.push_back({"cgroup-v2-io", r.caps.cgroup_v2_io,
                      r.caps.cgroup_v2_io ? "io controller available" : "no v2 io controller"});
  r.caps.loop = can_open("/dev/loop-control");
  r.probes.push_back(
      {"loop", r.caps.loop, r.caps.loop ? "/dev/loop-control" : "cannot open /dev/loop-control"});
  r.caps.fuse = can_open("/dev/fuse");
  r.probes.push_back({"fuse", r.caps.fuse, r.caps.fuse ? "/dev/fuse" : "cannot open /dev/fuse"});
  return r;
}

int run_doctor(std::ostream& out) {
  const DoctorResult r = probe_host();
  out << "host capabilities:\n";
  for (const auto& p : r.probes) {
    out << fmt::format("  {:<16} {:<4} {}\n", p.name, p.ok ? "yes" : "no", p.detail);
  }
  out << "fault backends:\n";
  for (const auto& b : choose_backends(r.caps)) {
    out << fmt::format("  {:<12} {:<10} {}\n", b.fault, b.backend.value_or("-"), b.note);
  }
  if (!minimum_met(r.caps)) {
    out << "doctor: minimum not met (needs netns, veth, bridge, nftables): runs cannot start\n";
    return 3;
  }
  out << "doctor: ok\n";
  return 0;
}

}  // namespace faultline::chaos
