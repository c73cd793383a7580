#include "faultline/chaos/topology.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include "faultline/chaos/journal.h"
#include "faultline/chaos/netns.h"
#include "netlink_util.h"

namespace faultline::chaos {
namespace {

constexpr Network kNetworks[] = {Network::internal, Network::external};

std::error_code add_address(nl_sock* sk, int ifindex, Ipv4 address, uint8_t prefix_len,
                            std::string_view what) {
  nl::Addr addr(rtnl_addr_alloc());
  uint32_t be = htonl(address.host_order);
  nl_addr* local = nl_addr_build(AF_INET, &be, sizeof(be));
  if (!addr || !local)
    return std::make_error_code(std::errc::not_enough_memory);
  nl_addr_set_prefixlen(local, prefix_len);
  rtnl_addr_set_ifindex(addr.get(), ifindex);
  int err = rtnl_addr_set_local(addr.get(), local);
  nl_addr_put(local);
  if (err < 0)
    return nl::error(err, "rtnl_addr_set_local", what);
  if (err = rtnl_addr_add(sk, addr.get(), 0); err < 0)
    return nl::error(err, "rtnl_addr_add", what);
  return {};
}

// A host route to `to` out of interface `ifindex` (on-link, no gateway).
std::error_code add_host_route(nl_sock* sk, int ifindex, Ipv4 to, std::string_view what) {
  std::unique_ptr<rtnl_route, decltype(&rtnl_route_put)> route(rtnl_route_alloc(), &rtnl_route_put);
  uint32_t be = htonl(to.host_order);
  nl_addr* dst = nl_addr_build(AF_INET, &be, sizeof(be));
  rtnl_nexthop* hop = rtnl_route_nh_alloc();
  if (!route || !dst || !hop) {
    if (dst)
      nl_addr_put(dst);
    if (hop)
      rtnl_route_nh_free(hop);
    return std::make_error_code(std::errc::not_enough_memory);
  }
  nl_addr_set_prefixlen(dst, 32);
  rtnl_route_set_family(route.get(), AF_INET);
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_scope(route.get(), RT_SCOPE_LINK);
  rtnl_route_set_protocol(route.get(), RTPROT_STATIC);
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  int err = rtnl_route_set_dst(route.get(), dst);
  nl_addr_put(dst);
  if (err < 0) {
    rtnl_route_nh_free(hop);
    return nl::error(err, "rtnl_route_set_dst", what);
  }
  rtnl_route_nh_set_ifindex(hop, ifindex);
  rtnl_route_add_nexthop(route.get(), hop);  // the route owns it now
  if (err = rtnl_route_add(sk, route.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0)
    return nl::error(err, "rtnl_route_add", what);
  return {};
}

std::error_code link_index(nl_sock* sk, const std::string& name, int& ifindex) {
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sk, 0, name.c_str(), &raw); err < 0) {
    return nl::error(err, "rtnl_link_get_kernel", name);
  }
  nl::Link link(raw);
  ifindex = rtnl_link_get_ifindex(link.get());
  return {};
}

std::error_code set_up_by_index(nl_sock* sk, int ifindex, std::string_view what) {
  nl::Link change(rtnl_link_alloc());
  if (!change)
    return std::make_error_code(std::errc::not_enough_memory);
  rtnl_link_set_ifindex(change.get(), ifindex);
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int err = rtnl_link_add(sk, change.get(), 0); err < 0) {
    return nl::error(err, "rtnl_link_add(IFF_UP)", what);
  }
  return {};
}

}  // namespace

std::vector<NodeInfo> plan_nodes(const TopologySpec& spec, std::string_view prefix,
                                 std::error_code& ec) {
  ec = validate(spec.addresses);
  if (ec)
    return {};
  if (spec.controllers < 0 || spec.brokers < 0) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  std::vector<NodeInfo> nodes;
  auto add = [&](NodeRole role, int index) {
    NodeInfo n;
    n.id = node_id(role, index);
    n.role = role;
    n.index = index;
    n.netns = netns_name(prefix, n.id);
    if (role_joins(role, Network::internal)) {
      n.int_address = spec.addresses.node_address(role, index, Network::internal);
      if (!n.int_address)
        ec = std::make_error_code(std::errc::invalid_argument);
    }
    if (role_joins(role, Network::external)) {
      n.ext_address = spec.addresses.node_address(role, index, Network::external);
      if (!n.ext_address)
        ec = std::make_error_code(std::errc::invalid_argument);
    }
    nodes.push_back(std::move(n));
  };
  for (int i = 1; i <= spec.controllers; ++i)
    add(NodeRole::controller, i);
  for (int i = 1; i <= spec.brokers; ++i)
    add(NodeRole::broker, i);
  if (spec.clients)
    add(NodeRole::clients, 0);
  if (spec.probe)
    add(NodeRole::probe, 0);
  if (ec)
    return {};
  return nodes;
}

Topology::Topology(TopologySpec spec, Journal& journal, std::vector<NodeInfo> nodes)
    : spec_(spec), journal_(journal), prefix_(journal.prefix()), nodes_(std::move(nodes)) {}

std::unique_ptr<Topology> Topology::create(const TopologySpec& spec, Journal& journal,
                                           std::error_code& ec) {
  // The prefix is how clean recognises the run's links and namespaces (and gives the link group).
  if (!is_run_prefix(journal.prefix())) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return nullptr;
  }
  auto nodes = plan_nodes(spec, journal.prefix(), ec);
  if (ec)
    return nullptr;
  std::unique_ptr<Topology> topo(new Topology(spec, journal, std::move(nodes)));
  if ((ec = topo->build())) {
    spdlog::warn("chaos.topology_build_failed prefix={} error=\"{}\"", topo->prefix_, ec.message());
    topo->teardown();
    return nullptr;
  }
  return topo;
}

std::error_code Topology::build() {
  std::error_code ec;
  nl::Sock root = nl::connect_route(ec);
  if (ec)
    return ec;
  group_ = *link_group(prefix_);

  int bridge_index[2] = {0, 0};
  for (Network net : kNetworks) {
    const std::string name = bridge_name(prefix_, net);
    if ((ec = journal_.intend(resource_kind::bridge, name)))
      return ec;
    nl::Link br(rtnl_link_bridge_alloc());
    if (!br)
      return std::make_error_code(std::errc::not_enough_memory);
    rtnl_link_set_name(br.get(), name.c_str());
    rtnl_link_set_flags(br.get(), IFF_UP);
    rtnl_link_set_group(br.get(), group_);
    if (int err = rtnl_link_add(root.get(), br.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0) {
      return nl::error(err, "rtnl_link_add(bridge)", name);
    }
    created_.emplace_back(resource_kind::bridge, name);
    if ((ec = journal_.created(resource_kind::bridge, name)))
      return ec;
    int& index = bridge_index[net == Network::internal ? 0 : 1];
    if ((ec = link_index(root.get(), name, index)))
      return ec;
    if ((ec = add_address(root.get(), index, spec_.addresses.root_address(net),
                          AddressPlan::kPrefixLen, name)))
      return ec;
  }

  for (const NodeInfo& node : nodes_) {
    if ((ec = journal_.intend(resource_kind::netns, node.netns)))
      return ec;
    if ((ec = create_netns(node.netns)))
      return ec;
    created_.emplace_back(resource_kind::netns, node.netns);
    if ((ec = journal_.created(resource_kind::netns, node.netns)))
      return ec;
    NetnsFd ns = open_netns(node.netns, ec);
    if (ec)
      return ec;

    // The node end is created directly inside the namespace under its final name ("int"/"ext"),
    // and the host end is enslaved and up in the same request: one netlink round trip per pair.
    for (Network net : kNetworks) {
      if (!role_joins(node.role, net))
        continue;
      const std::string host = host_veth_name(prefix_, node.id, net);
      const std::string peer_name(network_name(net));
      if ((ec = journal_.intend(resource_kind::link, host, "",
                                {{"peer", peer_name}, {"peer_netns", node.netns}}))) {
        return ec;
      }
      nl::Link veth(rtnl_link_veth_alloc());
      if (!veth)
        return std::make_error_code(std::errc::not_enough_memory);
      nl::Link peer(rtnl_link_veth_get_peer(veth.get()));
      rtnl_link_set_name(veth.get(), host.c_str());
      rtnl_link_set_master(veth.get(), bridge_index[net == Network::internal ? 0 : 1]);
      rtnl_link_set_flags(veth.get(), IFF_UP);
      rtnl_link_set_group(veth.get(), group_);
      rtnl_link_set_name(peer.get(), peer_name.c_str());
      // (IFF_UP on the peer makes libnl's request fail: the node end is set up from inside.)
      rtnl_link_set_ns_fd(peer.get(), ns.get());
      if (int err = rtnl_link_add(root.get(), veth.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0) {
        return nl::error(err, "rtnl_link_add(veth)", host);
      }
      created_.emplace_back(resource_kind::link, host);
      if ((ec = journal_.created(resource_kind::link, host)))
        return ec;
    }

    ec = run_in_netns(node.netns, [&]() -> std::error_code {
      std::error_code inner;
      nl::Sock sk = nl::connect_route(inner);
      if (inner)
        return inner;
      // Loopback is always ifindex 1 in a fresh namespace; processes bind to 127.0.0.1 too.
      if ((inner = set_up_by_index(sk.get(), 1, node.netns + "/lo")))
        return inner;
      for (Network net : kNetworks) {
        if (!role_joins(node.role, net))
          continue;
        const std::string ifname(network_name(net));
        int index = static_cast<int>(::if_nametoindex(ifname.c_str()));
        if (index == 0)
          return std::error_code(errno, std::system_category());
        if ((inner = set_up_by_index(sk.get(), index, node.netns + "/" + ifname)))
          return inner;
        const Ipv4 address = net == Network::internal ? *node.int_address : *node.ext_address;
        // The probe is on the cluster network only to reach the controllers' admin API: a host
        // address and one route per controller, no subnet route, so it can never reach a
        // broker's internal listener (it must see the brokers exactly as clients do).
        const bool management_only = node.role == NodeRole::probe && net == Network::internal;
        if ((inner = add_address(sk.get(), index, address,
                                 management_only ? 32 : AddressPlan::kPrefixLen,
                                 node.netns + "/" + ifname))) {
          return inner;
        }
        if (!management_only)
          continue;
        for (const NodeInfo& other : nodes_) {
          if (other.role != NodeRole::controller)
            continue;
          if ((inner = add_host_route(sk.get(), index, *other.int_address,
                                      node.netns + "/" + ifname + " -> " + other.id))) {
            return inner;
          }
        }
      }
      return {};
    });
    if (ec)
      return ec;
  }
  spdlog::info("chaos.topology_up prefix={} nodes={}", prefix_, nodes_.size());
  return {};
}

std::error_code Topology::teardown() {
  if (torn_down_)
    return {};
  std::error_code first;
  auto note = [&](std::error_code ec) {
    if (ec && !first)
      first = ec;
  };
  // One request removes every host veth (and with it its peer) and both bridges in a single
  // kernel batch; deleting them one by one costs an RCU grace period each.
  const auto group_ec = group_ != 0 ? delete_link_group("", group_) : std::error_code{};
  note(group_ec);
  // Only what this Topology made, newest first: a name that was already taken is not ours.
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    const auto& [kind, name] = *it;
    std::error_code ec;
    if (kind == resource_kind::netns) {
      ec = delete_netns(name);
    } else if (group_ec) {
      ec = delete_link("", name);  // fallback, idempotent
    }
    note(ec);
    if (!ec)
      note(journal_.removed(kind, name));
  }
  created_.clear();
  torn_down_ = !first;
  spdlog::info("chaos.topology_down prefix={} ok={}", prefix_, !first);
  return first;
}

Topology::~Topology() {
  if (auto ec = teardown()) {
    spdlog::error("chaos.topology_teardown_failed prefix={} error=\"{}\" hint=\"faultline clean\"",
                  prefix_, ec.message());
  }
}

const NodeInfo* Topology::find(std::string_view id) const {
  for (const auto& n : nodes_) {
    if (n.id == id)
      return &n;
  }
  return nullptr;
}

std::vector<Ipv4> local_ipv4_addresses(std::error_code& ec) {
  std::vector<Ipv4> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) {
    ec = std::error_code(errno, std::system_category());
    return out;
  }
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr != nullptr && a->ifa_addr->sa_family == AF_INET)
      out.push_back(Ipv4{ntohl(reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr)});
  }
  ::freeifaddrs(list);
  return out;
}

AddressLock::AddressLock(const std::filesystem::path& state_root) {
  std::error_code ec;
  std::filesystem::create_directories(state_root, ec);
  fd_ = ::open((state_root / "addresses.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ >= 0)
    while (::flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
}

AddressLock::~AddressLock() {
  if (fd_ >= 0)
    ::close(fd_);
}

std::vector<std::string> list_links(std::error_code& ec) {
  std::vector<std::string> out;
  nl::Sock sk = nl::connect_route(ec);
  if (ec)
    return out;
  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sk.get(), AF_UNSPEC, &raw); err < 0) {
    ec = nl::error(err, "rtnl_link_alloc_cache", "links");
    return out;
  }
  nl::Cache cache(raw);
  for (nl_object* obj = nl_cache_get_first(cache.get()); obj != nullptr;
       obj = nl_cache_get_next(obj)) {
    if (const char* name = rtnl_link_get_name(reinterpret_cast<rtnl_link*>(obj)))
      out.emplace_back(name);
  }
  return out;
}

std::error_code delete_link_group(const std::string& netns, uint32_t group) {
  if (group == 0)
    return std::make_error_code(std::errc::invalid_argument);  // every host link
  auto remove = [&]() -> std::error_code {
    std::error_code ec;
    nl::Sock sk = nl::connect_route(ec);
    if (ec)
      return ec;
    nl_msg* msg = nlmsg_alloc_simple(RTM_DELLINK, NLM_F_ACK);
    if (msg == nullptr)
      return std::make_error_code(std::errc::not_enough_memory);
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    if (nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
        nla_put_u32(msg, IFLA_GROUP, group) < 0) {
      nlmsg_free(msg);
      return std::make_error_code(std::errc::not_enough_memory);
    }
    if (int err = nl_send_sync(sk.get(), msg); err < 0) {  // frees msg
      return nl::error(err, "RTM_DELLINK(IFLA_GROUP)", std::to_string(group));
    }
    return {};
  };
  if (netns.empty())
    return remove();
  if (!netns_exists(netns))
    return {};
  return run_in_netns(netns, remove);
}

std::error_code loopback_up(const std::string& netns) {
  return run_in_netns(netns, [&]() -> std::error_code {
    std::error_code ec;
    nl::Sock sk = nl::connect_route(ec);
    if (ec)
      return ec;
    return set_up_by_index(sk.get(), 1, netns + "/lo");
  });
}

std::error_code delete_link(const std::string& netns, const std::string& name) {
  auto remove = [&]() -> std::error_code {
    std::error_code ec;
    nl::Sock sk = nl::connect_route(ec);
    if (ec)
      return ec;
    nl::Link link(rtnl_link_alloc());
    if (!link)
      return std::make_error_code(std::errc::not_enough_memory);
    rtnl_link_set_name(link.get(), name.c_str());
    int err = rtnl_link_delete(sk.get(), link.get());
    if (err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND)
      return {};  // already gone
    if (err < 0)
      return nl::error(err, "rtnl_link_delete", name);
    return {};
  };
  if (netns.empty())
    return remove();
  if (!netns_exists(netns))
    return {};  // the namespace took its links with it
  return run_in_netns(netns, remove);
}

}  // namespace faultline::chaos
