#include "faultline/chaos/naming.h"

#include <gtest/gtest.h>

#include <set>

namespace faultline::chaos {
namespace {

TEST(RunPrefix, IsStableShortAndRecognisable) {
  const std::string p = run_prefix("run-2026-11-24-001");
  EXPECT_EQ(p.size(), kPrefixLength);
  EXPECT_EQ(p.substr(0, 2), "fl");
  EXPECT_TRUE(is_run_prefix(p));
  EXPECT_EQ(p, run_prefix("run-2026-11-24-001"));  // clean --run ID recomputes it
}

TEST(RunPrefix, DistinctRunsGetDistinctPrefixes) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i)
    seen.insert(run_prefix("run-" + std::to_string(i)));
  EXPECT_EQ(seen.size(), 2000u);
}

TEST(RunPrefix, RecognisesOnlyItsOwnShape) {
  struct Case {
    std::string s;
    bool ok;
  } cases[] = {{"fl0az9k", true},   {"flABCDE", false}, {"fl0az9", false}, {"xx0az9k", false},
               {"fl0az9kk", false}, {"fl-az9k", false}, {"", false}};
  for (const auto& c : cases)
    EXPECT_EQ(is_run_prefix(c.s), c.ok) << c.s;
}

TEST(Names, FitTheKernelLimitAtTheLargestNode) {
  const std::string p = run_prefix("x");
  for (auto net : {Network::internal, Network::external}) {
    EXPECT_LE(host_veth_name(p, node_id(NodeRole::broker, 239), net).size(), kMaxInterfaceName);
    EXPECT_LE(bridge_name(p, net).size(), kMaxInterfaceName);
  }
  EXPECT_EQ(host_veth_name("fl00000", "b1", Network::internal), "fl00000b1i");
  EXPECT_EQ(host_veth_name("fl00000", "cl", Network::external), "fl00000cle");
  EXPECT_EQ(bridge_name("fl00000", Network::internal), "fl00000-int");
  EXPECT_EQ(netns_name("fl00000", "c1"), "fl00000-c1");
}

TEST(LinkGroup, OnePerPrefixNeverTheDefault) {
  EXPECT_EQ(link_group("fl00000"), 1u);
  EXPECT_EQ(link_group("fl00001"), 2u);
  EXPECT_EQ(link_group("fl00010"), 37u);
  EXPECT_EQ(link_group("flzzzzz"), 36u * 36 * 36 * 36 * 36);
  EXPECT_FALSE(link_group("eth0"));
  std::set<uint32_t> groups;
  for (int i = 0; i < 2000; ++i)
    groups.insert(*link_group(run_prefix("run-" + std::to_string(i))));
  EXPECT_EQ(groups.size(), 2000u);
}

TEST(Names, NodeIdsPerRole) {
  EXPECT_EQ(node_id(NodeRole::controller, 2), "c2");
  EXPECT_EQ(node_id(NodeRole::broker, 12), "b12");
  EXPECT_EQ(node_id(NodeRole::clients, 0), "cl");
  EXPECT_EQ(node_id(NodeRole::probe, 0), "pr");
}

TEST(Roles, JoinTheRightNetworks) {
  EXPECT_TRUE(role_joins(NodeRole::controller, Network::internal));
  EXPECT_FALSE(role_joins(NodeRole::controller, Network::external));
  EXPECT_TRUE(role_joins(NodeRole::broker, Network::internal));
  EXPECT_TRUE(role_joins(NodeRole::broker, Network::external));
  EXPECT_FALSE(role_joins(NodeRole::clients, Network::internal));
  EXPECT_TRUE(role_joins(NodeRole::probe, Network::internal));  // controllers' admin API only
  EXPECT_TRUE(role_joins(NodeRole::probe, Network::external));
}

TEST(Ipv4, ParsesAndPrints) {
  EXPECT_EQ(parse_ipv4("198.18.1.11")->str(), "198.18.1.11");
  EXPECT_EQ(parse_ipv4("0.0.0.0")->host_order, 0u);
  for (const char* bad :
       {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3", "01.2.3.4", "1.2.3.4 ", "a.b.c.d"}) {
    EXPECT_FALSE(parse_ipv4(bad)) << bad;
  }
}

TEST(AddressPlan, DefaultsFollowTheDesign) {
  AddressPlan plan;
  EXPECT_FALSE(validate(plan));
  EXPECT_EQ(plan.root_address(Network::internal).str(), "198.18.1.1");
  EXPECT_EQ(plan.root_address(Network::external).str(), "198.18.2.1");
  EXPECT_EQ(plan.node_address(NodeRole::controller, 1, Network::internal)->str(), "198.18.1.2");
  EXPECT_EQ(plan.node_address(NodeRole::broker, 1, Network::internal)->str(), "198.18.1.11");
  EXPECT_EQ(plan.node_address(NodeRole::broker, 1, Network::external)->str(), "198.18.2.11");
  EXPECT_EQ(plan.node_address(NodeRole::clients, 0, Network::external)->str(), "198.18.2.250");
  EXPECT_EQ(plan.node_address(NodeRole::probe, 0, Network::external)->str(), "198.18.2.251");
  EXPECT_EQ(plan.node_address(NodeRole::probe, 0, Network::internal)->str(), "198.18.1.251");
}

TEST(AddressPlan, RefusesWhatDoesNotFit) {
  AddressPlan plan;
  EXPECT_FALSE(plan.node_address(NodeRole::clients, 0, Network::internal));
  EXPECT_FALSE(plan.node_address(NodeRole::controller, 1, Network::external));
  EXPECT_FALSE(plan.node_address(NodeRole::broker, 0, Network::internal));
  EXPECT_FALSE(plan.node_address(NodeRole::broker, 240, Network::internal));
  EXPECT_FALSE(plan.node_address(NodeRole::controller, 9, Network::internal));
  EXPECT_TRUE(plan.node_address(NodeRole::broker, 239, Network::internal));
}

TEST(AddressPlan, SlotsAreDistinctValidPairs) {
  std::set<uint32_t> subnets;
  for (int n = 0; n < 256; ++n) {
    auto plan = AddressPlan::slot(n);
    ASSERT_TRUE(plan);
    EXPECT_FALSE(validate(*plan)) << n;
    subnets.insert(plan->internal_subnet.host_order);
    subnets.insert(plan->external_subnet.host_order);
  }
  EXPECT_EQ(subnets.size(), 512u);
  EXPECT_EQ(AddressPlan::slot(255)->external_subnet.str(), "198.19.255.0");
  EXPECT_FALSE(AddressPlan::slot(256));
  EXPECT_FALSE(AddressPlan::slot(-1));
}

TEST(AddressPlan, ConfigurableBaseMustStayInTheTestRange) {
  AddressPlan plan;
  plan.internal_subnet = *parse_ipv4("198.19.7.0");
  plan.external_subnet = *parse_ipv4("198.19.8.0");
  EXPECT_FALSE(validate(plan));
  EXPECT_EQ(plan.node_address(NodeRole::broker, 2, Network::external)->str(), "198.19.8.12");

  AddressPlan outside = plan;
  outside.internal_subnet = *parse_ipv4("10.0.1.0");
  EXPECT_TRUE(validate(outside));
  AddressPlan same = plan;
  same.external_subnet = same.internal_subnet;
  EXPECT_TRUE(validate(same));
  AddressPlan unaligned = plan;
  unaligned.external_subnet = *parse_ipv4("198.19.8.5");
  EXPECT_TRUE(validate(unaligned));
}

TEST(AddressPlan, PickFreePlanAvoidsSubnetsInUse) {
  // Nothing in use: the documented default plan (198.18.1.0/24 + 198.18.2.0/24).
  auto alone = pick_free_plan({});
  ASSERT_TRUE(alone);
  EXPECT_EQ(alone->internal_subnet.str(), "198.18.1.0");
  EXPECT_EQ(alone->external_subnet.str(), "198.18.2.0");
  // A run on the default plan: the next run takes a slot that overlaps neither of its subnets.
  std::vector<Ipv4> in_use{*parse_ipv4("198.18.1.1"), *parse_ipv4("198.18.2.1"),
                           *parse_ipv4("10.0.0.5")};
  auto second = pick_free_plan(in_use);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->internal_subnet.str(), "198.18.4.0");  // slots 0 and 1 overlap 1.0 and 2.0
  EXPECT_EQ(second->external_subnet.str(), "198.18.5.0");
  in_use.push_back(second->root_address(Network::internal));
  auto third = pick_free_plan(in_use);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->internal_subnet.str(), "198.18.6.0");
  // Every slot taken: nothing.
  std::vector<Ipv4> everything;
  for (int n = 0; n < 256; ++n)
    everything.push_back(AddressPlan::slot(n)->root_address(Network::internal));
  EXPECT_FALSE(pick_free_plan(everything));
}

}  // namespace
}  // namespace faultline::chaos
