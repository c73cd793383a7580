#include "faultline/chaos/naming.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace faultline::chaos {

std::string_view role_name(NodeRole role) {
  switch (role) {
    case NodeRole::controller:
      return "controller";
    case NodeRole::broker:
      return "broker";
    case NodeRole::clients:
      return "clients";
    case NodeRole::probe:
      return "probe";
  }
  return "?";
}

std::string_view network_name(Network net) {
  return net == Network::internal ? "int" : "ext";
}

bool role_joins(NodeRole role, Network net) {
  switch (role) {
    case NodeRole::controller:
      return net == Network::internal;
    case NodeRole::broker:
    case NodeRole::probe:  // on int only to reach the controllers (see Topology)
      return true;
    case NodeRole::clients:
      return net == Network::external;
  }
  return false;
}

std::string run_prefix(std::string_view run_id) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64
  for (unsigned char c : run_id) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string out = "fl";
  for (int i = 0; i < 5; ++i) {
    out.push_back(kDigits[h % 36]);
    h /= 36;
  }
  return out;
}

bool is_run_prefix(std::string_view s) {
  if (s.size() != kPrefixLength || s.substr(0, 2) != "fl")
    return false;
  for (char c : s.substr(2)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')))
      return false;
  }
  return true;
}

std::optional<uint32_t> link_group(std::string_view prefix) {
  if (!is_run_prefix(prefix))
    return std::nullopt;
  uint32_t value = 0;
  for (char c : prefix.substr(2))
    value = value * 36 + static_cast<uint32_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  return value + 1;
}

std::string node_id(NodeRole role, int index) {
  switch (role) {
    case NodeRole::controller:
      return fmt::format("c{}", index);
    case NodeRole::broker:
      return fmt::format("b{}", index);
    case NodeRole::clients:
      return "cl";
    case NodeRole::probe:
      return "pr";
  }
  return "?";
}

std::string netns_name(std::string_view prefix, std::string_view node) {
  return fmt::format("{}-{}", prefix, node);
}

std::string host_veth_name(std::string_view prefix, std::string_view node, Network net) {
  return fmt::format("{}{}{}", prefix, node, net == Network::internal ? 'i' : 'e');
}

std::string bridge_name(std::string_view prefix, Network net) {
  return fmt::format("{}-{}", prefix, network_name(net));
}

std::string Ipv4::str() const {
  return fmt::format("{}.{}.{}.{}", host_order >> 24, (host_order >> 16) & 0xff,
                     (host_order >> 8) & 0xff, host_order & 0xff);
}

std::optional<Ipv4> parse_ipv4(std::string_view s) {
  uint32_t value = 0;
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (s.empty() || s.front() != '.')
        return std::nullopt;
      s.remove_prefix(1);
    }
    unsigned part = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), part);
    if (ec != std::errc() || ptr == s.data() || part > 255 ||
        (ptr - s.data() > 1 && s.front() == '0')) {
      return std::nullopt;
    }
    s.remove_prefix(static_cast<size_t>(ptr - s.data()));
    value = (value << 8) | part;
  }
  if (!s.empty())
    return std::nullopt;
  return Ipv4{value};
}

std::optional<AddressPlan> AddressPlan::slot(int n) {
  if (n < 0 || n > 255)
    return std::nullopt;
  AddressPlan plan;
  plan.internal_subnet = Ipv4{0xC6120000u + static_cast<uint32_t>(n) * 512};
  plan.external_subnet = Ipv4{plan.internal_subnet.host_order + 256};
  return plan;
}

Ipv4 AddressPlan::root_address(Network net) const {
  return Ipv4{subnet(net).host_order + 1};
}

std::optional<Ipv4> AddressPlan::node_address(NodeRole role, int index, Network net) const {
  if (!role_joins(role, net))
    return std::nullopt;
  uint32_t host = 0;
  switch (role) {
    case NodeRole::controller:
      if (index < 1 || index > 8)
        return std::nullopt;
      host = 1 + static_cast<uint32_t>(index);
      break;
    case NodeRole::broker:
      if (index < 1 || index > 239)
        return std::nullopt;
      host = 10 + static_cast<uint32_t>(index);
      break;
    case NodeRole::clients:
      host = 250;
      break;
    case NodeRole::probe:
      host = 251;
      break;
  }
  return Ipv4{subnet(net).host_order + host};
}

std::optional<AddressPlan> pick_free_plan(const std::vector<Ipv4>& in_use) {
  auto taken = [&](Ipv4 subnet) {
    return std::any_of(in_use.begin(), in_use.end(),
                       [&](Ipv4 a) { return (a.host_order & 0xFFFFFF00u) == subnet.host_order; });
  };
  auto free = [&](const AddressPlan& p) {
    return !taken(p.internal_subnet) && !taken(p.external_subnet);
  };
  if (AddressPlan plan; free(plan))
    return plan;
  for (int n = 0; n < 256; ++n) {
    if (auto plan = AddressPlan::slot(n); free(*plan))
      return plan;
  }
  return std::nullopt;
}

std::error_code validate(const AddressPlan& plan) {
  constexpr uint32_t kTestNet = 0xC6120000;  // 198.18.0.0/15
  auto inside = [](Ipv4 a) {
    return (a.host_order & 0xFFFE0000u) == kTestNet && (a.host_order & 0xFF) == 0;
  };
  if (!inside(plan.internal_subnet) || !inside(plan.external_subnet) ||
      plan.internal_subnet == plan.external_subnet) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  return {};
}

}  // namespace faultline::chaos
