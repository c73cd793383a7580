#include "faultline/chaos/faults/partition.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace faultline::chaos {

PartitionPlan plan_groups(std::vector<std::vector<NodeName>> groups) {
  PartitionPlan plan;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (size_t h = 0; h < groups.size(); ++h) {
      if (g == h)
        continue;
      for (const auto& a : groups[g]) {
        for (const auto& b : groups[h])
          plan.blocks.insert({a, b});
      }
    }
  }
  plan.groups = std::move(groups);
  return plan;
}

PartitionPlan plan_isolate(const NodeName& node, const std::vector<NodeName>& all) {
  std::vector<NodeName> rest;
  std::copy_if(all.begin(), all.end(), std::back_inserter(rest),
               [&](const NodeName& n) { return n != node; });
  return plan_groups({{node}, rest});
}

PartitionPlan plan_halves(const std::vector<NodeName>& ordered) {
  const auto first = (ordered.size() + 1) / 2;
  return plan_groups({{ordered.begin(), ordered.begin() + static_cast<ptrdiff_t>(first)},
                      {ordered.begin() + static_cast<ptrdiff_t>(first), ordered.end()}});
}

PartitionPlan plan_majorities_ring(const std::vector<NodeName>& ring) {
  PartitionPlan plan;
  const auto n = static_cast<ptrdiff_t>(ring.size());
  const ptrdiff_t majority = n / 2 + 1;
  for (ptrdiff_t i = 0; i < n; ++i) {
    std::set<NodeName> hears;
    std::vector<NodeName> group;
    for (ptrdiff_t k = 0; k < majority; ++k) {
      const auto& peer = ring[static_cast<size_t>(((i - majority / 2 + k) % n + n) % n)];
      hears.insert(peer);
      group.push_back(peer);
    }
    for (const auto& other : ring) {
      if (hears.count(other) == 0)
        plan.blocks.insert({other, ring[static_cast<size_t>(i)]});
    }
    plan.groups.push_back(std::move(group));  // the majority node i hears
  }
  return plan;
}

PartitionPlan plan_bridge(const std::vector<NodeName>& ordered) {
  const auto mid = ordered.size() / 2;
  std::vector<NodeName> left(ordered.begin(), ordered.begin() + static_cast<ptrdiff_t>(mid));
  std::vector<NodeName> right(ordered.begin() + static_cast<ptrdiff_t>(mid) + 1, ordered.end());
  auto plan = plan_groups({left, right});
  // The bridge node belongs to both sides.
  plan.groups[0].push_back(ordered[mid]);
  plan.groups[1].insert(plan.groups[1].begin(), ordered[mid]);
  return plan;
}

PartitionPlan plan_one_way(const NodeName& from, const NodeName& to) {
  PartitionPlan plan;
  plan.blocks.insert({from, to});
  plan.groups = {{from}, {to}};
  return plan;
}

PartitionPlan plan_isolate_leader(const NodeName& leader, const std::vector<NodeName>& followers) {
  PartitionPlan plan;
  for (const auto& f : followers) {
    plan.blocks.insert({leader, f});
    plan.blocks.insert({f, leader});
  }
  plan.groups = {{leader}, followers};
  return plan;
}

PartitionPlan plan_partition(const FaultSpec& spec, const std::vector<NodeName>& all) {
  const auto& t = spec.targets;
  const auto& nodes = t.empty() ? all : t;
  switch (spec.kind) {
    case FaultKind::isolate:
      return plan_isolate(t.at(0), all);
    case FaultKind::halves:
      return plan_halves(nodes);
    case FaultKind::majorities_ring:
      return plan_majorities_ring(nodes);
    case FaultKind::bridge:
      return plan_bridge(nodes);
    case FaultKind::one_way:
      return plan_one_way(t.at(0), t.at(1));
    case FaultKind::isolate_leader:
      return plan_isolate_leader(t.at(0), std::vector<NodeName>(t.begin() + 1, t.end()));
    default:
      return {};
  }
}

std::map<NodeName, NodeDrops> drops_per_node(const PartitionPlan& plan) {
  std::map<NodeName, NodeDrops> out;
  for (const auto& [from, to] : plan.blocks) {
    out[from].drop_to.insert(to);
    out[to].drop_from.insert(from);
  }
  return out;
}

std::string nft_table_name(const std::string& run_prefix, uint64_t fault_id) {
  std::string name = fmt::format("{}_f{}", run_prefix, fault_id);
  for (auto& c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!ok)
      c = '_';
  }
  if (name.empty() || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z'))) {
    name = "fl_" + name;
  }
  return name;
}

namespace {

std::vector<std::string> addresses_of(const std::set<NodeName>& peers,
                                      const std::map<NodeName, std::vector<std::string>>& addrs) {
  std::set<std::string> out;
  for (const auto& p : peers) {
    if (auto it = addrs.find(p); it != addrs.end())
      out.insert(it->second.begin(), it->second.end());
  }
  return {out.begin(), out.end()};
}

}  // namespace

std::string render_partition_ruleset(
    const std::string& table, const NodeDrops& drops,
    const std::map<NodeName, std::vector<std::string>>& addresses) {
  const auto from = addresses_of(drops.drop_from, addresses);
  const auto to = addresses_of(drops.drop_to, addresses);
  if (from.empty() && to.empty())
    return {};
  // Priority -10: before any ordinary filter chain a node might have, so nothing accepts first.
  std::string text = fmt::format(
      "add table inet {0}\n"
      "add chain inet {0} input {{ type filter hook input priority -10; policy accept; }}\n"
      "add chain inet {0} output {{ type filter hook output priority -10; policy accept; }}\n",
      table);
  if (!from.empty()) {
    text += fmt::format("add rule inet {} input ip saddr {{ {} }} drop\n", table,
                        fmt::join(from, ", "));
  }
  if (!to.empty()) {
    text +=
        fmt::format("add rule inet {} output ip daddr {{ {} }} drop\n", table, fmt::join(to, ", "));
  }
  return text;
}

std::string render_shaper_ruleset(const std::string& table, const std::string& interface,
                                  const std::vector<std::string>& sender_addresses, uint16_t queue,
                                  uint32_t reinject_mark) {
  std::string match = fmt::format("iifname \"{}\" meta mark != {:#x}", interface, reinject_mark);
  if (!sender_addresses.empty()) {
    match += fmt::format(" ip saddr {{ {} }}", fmt::join(sender_addresses, ", "));
  }
  // prerouting at the receiver: the packet is already orphaned from the sender's socket (see the
  // packets fault), and it is queued before routing decides anything.
  return fmt::format(
      "add table inet {0}\n"
      "add chain inet {0} pre {{ type filter hook prerouting priority 0; policy accept; }}\n"
      "add rule inet {0} pre {1} queue num {2} bypass\n",
      table, match, queue);
}

}  // namespace faultline::chaos
