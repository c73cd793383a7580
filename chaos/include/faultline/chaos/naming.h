// Names and addresses of a run's kernel resources (ARCHITECTURE.md §1).
//
// Every resource a run creates carries the run's prefix ("fl" + 5 base36 characters derived from
// the run id), so runs never collide and `faultline clean` can recognise leftovers. Interface names
// must fit the kernel's IFNAMSIZ (15 characters); namespace names have no such limit but stay short
// for `ip netns` users. Addresses come from 198.18.0.0/15, one /24 per bridge. All functions here
// are pure.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace faultline::chaos {

inline constexpr size_t kMaxInterfaceName = 15;  // IFNAMSIZ - 1
inline constexpr size_t kPrefixLength = 7;       // "fl" + 5 base36 chars

// The kind of a node decides which networks it joins: controllers `int` only, brokers both,
// clients `ext` only. The probe joins both, but on `int` it only has routes to the controllers
// (their admin API): it sees brokers from the client network, exactly as clients do.
enum class NodeRole { controller, broker, clients, probe };

enum class Network { internal, external };  // bridge "int" / bridge "ext"

std::string_view role_name(NodeRole role);
std::string_view network_name(Network net);  // "int" / "ext": also the interface name in a node
bool role_joins(NodeRole role, Network net);

// "fl" + 5 base36 characters of a stable hash of the run id (FNV-1a: same id -> same prefix on
// every host, so `clean --run ID` can find the resources again).
std::string run_prefix(std::string_view run_id);
// True for strings of the form produced by run_prefix (used to refuse touching foreign resources).
bool is_run_prefix(std::string_view s);

// The interface group (IFLA_GROUP) of the run's host-side links and bridges: the prefix's base36
// digits read as a number, plus one, so distinct prefixes never share a group and group 0 (every
// host link's default) is never used. One RTM_DELLINK by group removes all of them in a single
// kernel batch. nullopt when s is not a run prefix.
std::optional<uint32_t> link_group(std::string_view prefix);

// A node's short id inside the run: "c1" (controller 1), "b3" (broker 3), "cl" (clients), "pr".
std::string node_id(NodeRole role, int index);

// Network namespace of a node: "<prefix>-<node_id>", e.g. "flk3x9a-b1".
std::string netns_name(std::string_view prefix, std::string_view node_id);
// Host-side veth end of a node's interface: "<prefix><node_id><i|e>", e.g. "flk3x9ab1i".
std::string host_veth_name(std::string_view prefix, std::string_view node_id, Network net);
// Bridge in the root namespace: "<prefix>-int" / "<prefix>-ext".
std::string bridge_name(std::string_view prefix, Network net);

struct Ipv4 {
  uint32_t host_order = 0;
  std::string str() const;
  friend auto operator<=>(const Ipv4&, const Ipv4&) = default;
};
std::optional<Ipv4> parse_ipv4(std::string_view dotted);

// Address plan: one /24 per bridge, both inside 198.18.0.0/15. The root namespace (the harness)
// takes .1 on both; controllers .2-.9, brokers .10+id (id 1..239), clients .250, probe .251.
struct AddressPlan {
  Ipv4 internal_subnet{0xC6120100};  // 198.18.1.0/24
  Ipv4 external_subnet{0xC6120200};  // 198.18.2.0/24
  static constexpr uint8_t kPrefixLen = 24;

  // The n-th of the 256 pairs of /24s in 198.18.0.0/15 (int = 2n, ext = 2n + 1): for runs that
  // share the root namespace at the same time (parallel tests, two clusters in one VM), since
  // both bridges' subnets are routed in the root namespace.
  static std::optional<AddressPlan> slot(int n);

  Ipv4 subnet(Network net) const {
    return net == Network::internal ? internal_subnet : external_subnet;
  }
  Ipv4 root_address(Network net) const;
  // Address of node (role, index) on `net`; errc::invalid_argument when the role is not on that
  // network or the index does not fit the plan.
  std::optional<Ipv4> node_address(NodeRole role, int index, Network net) const;
};

// Both subnets must be distinct /24s inside 198.18.0.0/15 (never routed, RFC 2544).
std::error_code validate(const AddressPlan& plan);

// The address plan for a new run, given the IPv4 addresses already assigned in the root
// namespace (other runs' bridges): the default plan when neither of its subnets holds one of
// them, else the first slot whose subnets are both free; nullopt when every slot is taken.
std::optional<AddressPlan> pick_free_plan(const std::vector<Ipv4>& in_use);

}  // namespace faultline::chaos
