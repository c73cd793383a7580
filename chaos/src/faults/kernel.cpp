#include "kernel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/route/qdisc/netem.h>
#include <netlink/route/qdisc/tbf.h>
#include <netlink/route/tc.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <memory>
#include <thread>

#include "faultline/chaos/faults/errc.h"
#include "faultline/chaos/netns.h"

namespace faultline::chaos::kernel {

namespace {

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0)
      ::close(fd);
  }
};

struct NlSockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct NlObjDeleter {
  void operator()(void* o) const { nl_object_put(static_cast<nl_object*>(o)); }
};
struct NlCacheDeleter {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using NlSock = std::unique_ptr<nl_sock, NlSockDeleter>;
template <typename T>
using NlObj = std::unique_ptr<T, NlObjDeleter>;
using NlCache = std::unique_ptr<nl_cache, NlCacheDeleter>;

struct NftDeleter {
  void operator()(nft_ctx* c) const { nft_ctx_free(c); }
};

std::error_code nl_error(int nlerr, const char* call) {
  spdlog::warn("event=fault_kernel_error call={} error=\"{}\"", call, nl_geterror(nlerr));
  if (nlerr == -NLE_OBJ_NOTFOUND || nlerr == NLE_OBJ_NOTFOUND)
    return fault_errc::backend_unavailable;
  return fault_errc::kernel_error;
}

NlSock route_socket(std::error_code& ec) {
  NlSock sock(nl_socket_alloc());
  if (!sock) {
    ec = fault_errc::kernel_error;
    return {};
  }
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
    ec = nl_error(err, "nl_connect");
    return {};
  }
  return sock;
}

// Looked up inside the namespace (the caller's thread is already in it).
int ifindex_of(nl_sock* sock, const std::string& ifname, std::error_code& ec) {
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sock, 0, ifname.c_str(), &raw); err < 0) {
    ec = nl_error(err, "rtnl_link_get_kernel");
    if (ec == fault_errc::backend_unavailable)
      ec = fault_errc::unknown_target;
    return 0;
  }
  NlObj<rtnl_link> link(raw);
  return rtnl_link_get_ifindex(link.get());
}

NlObj<rtnl_qdisc> root_qdisc(int ifindex, const char* kind) {
  NlObj<rtnl_qdisc> q(rtnl_qdisc_alloc());
  rtnl_tc_set_ifindex(TC_CAST(q.get()), ifindex);
  rtnl_tc_set_parent(TC_CAST(q.get()), TC_H_ROOT);
  rtnl_tc_set_handle(TC_CAST(q.get()), TC_HANDLE(1, 0));
  if (kind != nullptr)
    rtnl_tc_set_kind(TC_CAST(q.get()), kind);
  return q;
}

uint32_t scaled_probability(double pct) {
  // netem expresses probabilities as a fraction of 2^32-1, like `tc` does.
  return static_cast<uint32_t>(pct / 100.0 * static_cast<double>(UINT32_MAX));
}

}  // namespace

std::error_code in_netns(const std::string& netns, const std::function<std::error_code()>& fn) {
  // topo's run_in_netns treats "" as the root namespace; faults must never act there.
  if (netns.empty() || netns.find('/') != std::string::npos)
    return fault_errc::not_owned;
  if (!netns_exists(netns))
    return fault_errc::unknown_target;
  auto ec = run_in_netns(netns, fn);
  if (ec && ec.category() != fault_category()) {
    spdlog::warn("event=fault_setns_failed netns={} error=\"{}\"", netns, ec.message());
    return fault_errc::kernel_error;
  }
  return ec;
}

std::error_code nft_run_here(const std::string& commands, std::string* output) {
  std::unique_ptr<nft_ctx, NftDeleter> ctx(nft_ctx_new(NFT_CTX_DEFAULT));
  if (!ctx)
    return fault_errc::kernel_error;
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  const int rc = nft_run_cmd_from_buffer(ctx.get(), commands.c_str());
  if (rc != 0) {
    if (output != nullptr)
      *output = nft_ctx_get_error_buffer(ctx.get());
    return fault_errc::kernel_error;
  }
  if (output != nullptr)
    *output = nft_ctx_get_output_buffer(ctx.get());
  return {};
}

std::error_code nft_run(const std::string& netns, const std::string& commands,
                        std::string* error_out) {
  return in_netns(netns, [&]() -> std::error_code {
    std::string out;
    auto ec = nft_run_here(commands, &out);
    if (ec) {
      spdlog::warn("event=fault_nft_failed netns={} error=\"{}\"", netns, out);
      if (error_out != nullptr)
        *error_out = out;
    }
    return ec;
  });
}

bool nft_table_exists(const std::string& netns, const std::string& table) {
  // Not through nft_run: a missing table is an answer here, not an error worth a warning.
  return !in_netns(netns, [&] { return nft_run_here("list table inet " + table + "\n", nullptr); });
}

std::error_code nft_delete_table_if_exists(const std::string& netns, const std::string& table) {
  auto ec = in_netns(netns, [&]() -> std::error_code {
    std::unique_ptr<nft_ctx, NftDeleter> ctx(nft_ctx_new(NFT_CTX_DEFAULT));
    if (!ctx)
      return fault_errc::kernel_error;
    nft_ctx_buffer_output(ctx.get());
    nft_ctx_buffer_error(ctx.get());
    if (nft_run_cmd_from_buffer(ctx.get(), ("list table inet " + table + "\n").c_str()) != 0) {
      return {};  // not there: nothing to heal
    }
    if (nft_run_cmd_from_buffer(ctx.get(), ("delete table inet " + table + "\n").c_str()) != 0) {
      spdlog::warn("event=fault_nft_failed netns={} error=\"{}\"", netns,
                   nft_ctx_get_error_buffer(ctx.get()));
      return fault_errc::kernel_error;
    }
    return {};
  });
  // The namespace itself is gone: so is the table.
  return ec == fault_errc::unknown_target ? std::error_code{} : ec;
}

std::error_code set_link_up(const std::string& netns, const std::string& ifname, bool up) {
  return in_netns(netns, [&]() -> std::error_code {
    std::error_code ec;
    auto sock = route_socket(ec);
    if (ec)
      return ec;
    rtnl_link* raw = nullptr;
    if (int err = rtnl_link_get_kernel(sock.get(), 0, ifname.c_str(), &raw); err < 0) {
      return nl_error(err, "rtnl_link_get_kernel") == fault_errc::backend_unavailable
                 ? make_error_code(fault_errc::unknown_target)
                 : make_error_code(fault_errc::kernel_error);
    }
    NlObj<rtnl_link> link(raw);
    NlObj<rtnl_link> change(rtnl_link_alloc());
    if (up) {
      rtnl_link_set_flags(change.get(), IFF_UP);
    } else {
      rtnl_link_unset_flags(change.get(), IFF_UP);
    }
    if (int err = rtnl_link_change(sock.get(), link.get(), change.get(), 0); err < 0) {
      return nl_error(err, "rtnl_link_change");
    }
    return {};
  });
}

std::error_code link_is_up(const std::string& netns, const std::string& ifname, bool& up) {
  return in_netns(netns, [&]() -> std::error_code {
    std::error_code ec;
    auto sock = route_socket(ec);
    if (ec)
      return ec;
    rtnl_link* raw = nullptr;
    if (int err = rtnl_link_get_kernel(sock.get(), 0, ifname.c_str(), &raw); err < 0) {
      return nl_error(err, "rtnl_link_get_kernel");
    }
    NlObj<rtnl_link> link(raw);
    up = (rtnl_link_get_flags(link.get()) & IFF_UP) != 0;
    return {};
  });
}

std::error_code add_tbf(const std::string& netns, const std::string& ifname, const RateParams& p) {
  return in_netns(netns, [&]() -> std::error_code {
    std::error_code ec;
    auto sock = route_socket(ec);
    if (ec)
      return ec;
    const int ifindex = ifindex_of(sock.get(), ifname, ec);
    if (ec)
      return ec;
    auto q = root_qdisc(ifindex, "tbf");
    rtnl_qdisc_tbf_set_rate(q.get(), static_cast<int>(p.bytes_per_second),
                            static_cast<int>(p.burst_bytes), 0);
    // Queue limit: what drains in `latency` plus one burst (tc's "latency" option does the same).
    const uint64_t limit =
        p.bytes_per_second * static_cast<uint64_t>(p.latency.count()) / 1000 + p.burst_bytes;
    rtnl_qdisc_tbf_set_limit(q.get(), static_cast<int>(std::min<uint64_t>(limit, INT_MAX)));
    if (int err = rtnl_qdisc_add(sock.get(), q.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0) {
      return nl_error(err, "rtnl_qdisc_add(tbf)");
    }
    return {};
  });
}

std::error_code add_netem(const std::string& netns, const std::string& ifname,
                          const PacketParams& p) {
  return in_netns(netns, [&]() -> std::error_code {
    std::error_code ec;
    auto sock = route_socket(ec);
    if (ec)
      return ec;
    const int ifindex = ifindex_of(sock.get(), ifname, ec);
    if (ec)
      return ec;
    auto q = root_qdisc(ifindex, "netem");
    rtnl_netem_set_limit(q.get(), 10000);
    rtnl_netem_set_delay(q.get(), static_cast<int>(p.delay.count()));
    rtnl_netem_set_jitter(q.get(), static_cast<int>(p.jitter.count()));
    rtnl_netem_set_loss(q.get(), static_cast<int>(scaled_probability(p.loss_pct)));
    rtnl_netem_set_duplicate(q.get(), static_cast<int>(scaled_probability(p.duplicate_pct)));
    rtnl_netem_set_corruption_probability(q.get(),
                                          static_cast<int>(scaled_probability(p.corrupt_pct)));
    if (p.reorder_pct > 0) {
      rtnl_netem_set_reorder_probability(q.get(),
                                         static_cast<int>(scaled_probability(p.reorder_pct)));
    }
    if (int err = rtnl_qdisc_add(sock.get(), q.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0) {
      // This kernel has no sch_netem: "Object not found" (the qdisc kind is unknown).
      return nl_error(err, "rtnl_qdisc_add(netem)");
    }
    return {};
  });
}

std::error_code root_qdisc_kind(const std::string& netns, const std::string& ifname,
                                std::string& kind) {
  return in_netns(netns, [&]() -> std::error_code {
    std::error_code ec;
    auto sock = route_socket(ec);
    if (ec)
      return ec;
    const int ifindex = ifindex_of(sock.get(), ifname, ec);
    if (ec)
      return ec;
    nl_cache* raw = nullptr;
    if (int err = rtnl_qdisc_alloc_cache(sock.get(), &raw); err < 0) {
      return nl_error(err, "rtnl_qdisc_alloc_cache");
    }
    NlCache cache(raw);
    kind.clear();
    if (rtnl_qdisc* q = rtnl_qdisc_get_by_parent(cache.get(), ifindex, TC_H_ROOT)) {
      NlObj<rtnl_qdisc> held(q);
      if (const char* k = rtnl_tc_get_kind(TC_CAST(q)))
        kind = k;
    }
    return {};
  });
}

std::error_code delete_root_qdisc(const std::string& netns, const std::string& ifname,
                                  const std::string& kind) {
  std::string current;
  if (auto ec = root_qdisc_kind(netns, ifname, current)) {
    // The interface (or namespace) is gone: nothing left to heal.
    return ec == fault_errc::unknown_target ? std::error_code{} : ec;
  }
  if (current != kind)
    return {};
  return in_netns(netns, [&]() -> std::error_code {
    std::error_code ec;
    auto sock = route_socket(ec);
    if (ec)
      return ec;
    const int ifindex = ifindex_of(sock.get(), ifname, ec);
    if (ec)
      return ec;
    auto q = root_qdisc(ifindex, nullptr);
    if (int err = rtnl_qdisc_delete(sock.get(), q.get()); err < 0) {
      return nl_error(err, "rtnl_qdisc_delete");
    }
    return {};
  });
}

int exec_in_netns(const std::string& netns, const std::vector<std::string>& argv) {
  const std::string ns_path = "/run/netns/" + netns;
  const int ns_fd = ::open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns_fd < 0)
    return -1;
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  cargv.reserve(args.size() + 1);
  for (auto& a : args)
    cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::setns(ns_fd, CLONE_NEWNET) != 0)
      ::_exit(126);
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    ::execvp(cargv[0], cargv.data());
    ::_exit(127);
  }
  ::close(ns_fd);
  if (pid < 0)
    return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::error_code add_iptables_queue_chain(const std::string& netns, const std::string& chain,
                                         const std::string& interface,
                                         const std::vector<std::string>& peer_addresses,
                                         uint16_t queue, uint32_t reinject_mark) {
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"iptables", "-w", "-t", "mangle"});
    const int rc = exec_in_netns(netns, args);
    if (rc != 0)
      spdlog::warn("event=fault_iptables_failed netns={} rc={} args=\"{}\"", netns, rc,
                   fmt::join(args, " "));
    return rc == 0;
  };
  std::vector<std::string> rule{"-A",      chain,    "-i",
                                interface, "-m",     "mark",
                                "!",       "--mark", fmt::format("{:#x}", reinject_mark)};
  if (!peer_addresses.empty()) {
    rule.push_back("-s");
    rule.push_back(fmt::format("{}", fmt::join(peer_addresses, ",")));
  }
  rule.insert(rule.end(),
              {"-j", "NFQUEUE", "--queue-num", std::to_string(queue), "--queue-bypass"});
  if (!run({"-N", chain}) || !run(rule) || !run({"-A", "PREROUTING", "-j", chain})) {
    return fault_errc::kernel_error;
  }
  return {};
}

bool iptables_chain_exists(const std::string& netns, const std::string& chain) {
  return exec_in_netns(netns, {"iptables", "-w", "-t", "mangle", "-n", "-L", chain}) == 0;
}

std::error_code remove_iptables_chain(const std::string& netns, const std::string& chain) {
  if (!iptables_chain_exists(netns, chain))
    return {};
  // Unhook first so traffic stops queueing, then empty and delete the chain.
  while (exec_in_netns(netns,
                       {"iptables", "-w", "-t", "mangle", "-D", "PREROUTING", "-j", chain}) == 0) {
  }
  exec_in_netns(netns, {"iptables", "-w", "-t", "mangle", "-F", chain});
  if (exec_in_netns(netns, {"iptables", "-w", "-t", "mangle", "-X", chain}) != 0) {
    return fault_errc::kernel_error;
  }
  return {};
}

std::string qdisc_snapshot_here() {
  std::error_code ec;
  auto sock = route_socket(ec);
  if (ec)
    return "error";
  nl_cache* raw = nullptr;
  if (rtnl_qdisc_alloc_cache(sock.get(), &raw) < 0)
    return "error";
  NlCache cache(raw);
  std::string out;
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* q = reinterpret_cast<rtnl_qdisc*>(o);
    const char* kind = rtnl_tc_get_kind(TC_CAST(q));
    out += std::to_string(rtnl_tc_get_ifindex(TC_CAST(q))) + " " +
           std::to_string(rtnl_tc_get_parent(TC_CAST(q))) + " " +
           std::to_string(rtnl_tc_get_handle(TC_CAST(q))) + " " + (kind ? kind : "?") + "\n";
  }
  return out;
}

Reach tcp_probe(const std::string& netns, const std::string& addr, uint16_t port,
                std::chrono::milliseconds timeout) {
  Reach reach = Reach::unreachable;
  in_netns(netns, [&]() -> std::error_code {
    FdCloser fd{::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    if (fd.fd < 0)
      return fault_errc::kernel_error;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (::inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1)
      return fault_errc::invalid_spec;
    int rc = ::connect(fd.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    if (rc == 0) {
      reach = Reach::reachable;
      return {};
    }
    if (errno == ECONNREFUSED) {
      reach = Reach::reachable;
      return {};
    }
    if (errno != EINPROGRESS)
      return fault_errc::kernel_error;  // e.g. ENETUNREACH: link down
    pollfd pfd{fd.fd, POLLOUT, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0 || err == ECONNREFUSED)
        reach = Reach::reachable;
    }
    return {};
  });
  return reach;
}

}  // namespace faultline::chaos::kernel
