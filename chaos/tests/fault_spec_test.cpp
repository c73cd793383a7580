// Pure parts of the fault backends: spec validation and JSON, partition geometry, nft text.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "faultline/chaos/faults/errc.h"
#include "faultline/chaos/faults/partition.h"
#include "faultline/chaos/faults/spec.h"

namespace faultline::chaos {
namespace {

using namespace std::chrono_literals;

const std::vector<NodeName> kFive{"b-1", "b-2", "b-3", "b-4", "b-5"};

TEST(FaultKind, NamesRoundTrip) {
  for (auto k : {FaultKind::kill,           FaultKind::pause,
                 FaultKind::stop,           FaultKind::restart,
                 FaultKind::kill_restart,   FaultKind::isolate,
                 FaultKind::halves,         FaultKind::majorities_ring,
                 FaultKind::bridge,         FaultKind::one_way,
                 FaultKind::isolate_leader, FaultKind::cut_link,
                 FaultKind::packets,        FaultKind::rate,
                 FaultKind::disk_throttle,  FaultKind::disk_stall,
                 FaultKind::power_loss,     FaultKind::torn_write,
                 FaultKind::disk_error,     FaultKind::slow_fsync}) {
    auto parsed = parse_fault_kind(to_string(k));
    ASSERT_TRUE(parsed.has_value()) << to_string(k);
    EXPECT_EQ(*parsed, k);
  }
  EXPECT_FALSE(parse_fault_kind("explode").has_value());
  EXPECT_TRUE(is_one_off(FaultKind::kill_restart));
  EXPECT_FALSE(is_one_off(FaultKind::pause));
}

struct ValidationCase {
  const char* name;
  FaultSpec spec;
  bool valid;
};

PacketParams delay(std::chrono::microseconds d, std::chrono::microseconds j = 0us) {
  PacketParams p;
  p.delay = d;
  p.jitter = j;
  return p;
}

TEST(FaultSpec, Validation) {
  PacketParams reorder_without_delay;
  reorder_without_delay.reorder_pct = 10;
  reorder_without_delay.loss_pct = 1;
  PacketParams loss_over_100;
  loss_over_100.loss_pct = 101;
  PacketParams loss_only;
  loss_only.loss_pct = 5;
  RateParams slow;
  slow.bytes_per_second = 125000;
  RateParams too_slow;
  too_slow.bytes_per_second = 10;
  const std::vector<ValidationCase> cases{
      {"kill one", {FaultKind::kill, {"b-1"}, NoParams{}}, true},
      {"kill nobody", {FaultKind::kill, {}, NoParams{}}, false},
      {"duplicate target", {FaultKind::isolate, {"b-1", "b-1"}, NoParams{}}, false},
      {"one-way two", {FaultKind::one_way, {"b-1", "b-2"}, NoParams{}}, true},
      {"one-way three", {FaultKind::one_way, {"b-1", "b-2", "b-3"}, NoParams{}}, false},
      {"isolate-leader alone", {FaultKind::isolate_leader, {"b-1"}, NoParams{}}, false},
      {"ring of two", {FaultKind::majorities_ring, {"b-1", "b-2"}, NoParams{}}, false},
      {"ring of all", {FaultKind::majorities_ring, {}, NoParams{}}, true},
      {"wrong params", {FaultKind::kill, {"b-1"}, PacketParams{}}, false},
      {"delay", {FaultKind::packets, {"b-1"}, delay(50ms)}, true},
      {"jitter > delay", {FaultKind::packets, {"b-1"}, delay(5ms, 10ms)}, false},
      {"no effect", {FaultKind::packets, {"b-1"}, PacketParams{}}, false},
      {"reorder w/o delay", {FaultKind::packets, {"b-1"}, reorder_without_delay}, false},
      {"loss > 100", {FaultKind::packets, {"b-1"}, loss_over_100}, false},
      {"loss only", {FaultKind::packets, {"b-1"}, loss_only}, true},
      {"rate", {FaultKind::rate, {"b-1"}, slow}, true},
      {"rate too low", {FaultKind::rate, {"b-1"}, too_slow}, false},
      {"disk without limit", {FaultKind::disk_throttle, {"b-1"}, DiskParams{}}, false},
      {"stall", {FaultKind::disk_stall, {"b-1"}, stall_limits()}, true},
      {"power loss of two", {FaultKind::power_loss, {"b-1", "b-2"}, NoParams{}}, true},
      {"power loss of nobody", {FaultKind::power_loss, {}, NoParams{}}, false},
      {"torn 30%", {FaultKind::torn_write, {"b-1"}, TornWriteParams{30}}, true},
      {"torn 120%", {FaultKind::torn_write, {"b-1"}, TornWriteParams{120}}, false},
      {"eio", {FaultKind::disk_error, {"b-1"}, DiskErrorParams{}}, true},
      {"enospc on writes to logs",
       {FaultKind::disk_error, {"b-1"}, DiskErrorParams{"ENOSPC", "write", 50, 10, "*.log"}},
       true},
      {"eperm", {FaultKind::disk_error, {"b-1"}, DiskErrorParams{"EPERM"}}, false},
      {"op open", {FaultKind::disk_error, {"b-1"}, DiskErrorParams{"EIO", "open"}}, false},
      {"rate 0", {FaultKind::disk_error, {"b-1"}, DiskErrorParams{"EIO", "any", 0}}, false},
      {"path with space",
       {FaultKind::disk_error, {"b-1"}, DiskErrorParams{"EIO", "any", 100, 0, "a b"}},
       false},
      {"slow fsync", {FaultKind::slow_fsync, {"b-1"}, SlowFsyncParams{50ms, 10ms}}, true},
      {"slow fsync of nothing", {FaultKind::slow_fsync, {"b-1"}, SlowFsyncParams{0ms, 0ms}}, false},
      {"slow fsync above a minute",
       {FaultKind::slow_fsync, {"b-1"}, SlowFsyncParams{60s, 1ms}},
       false},
  };
  for (const auto& c : cases) {
    std::string why;
    auto ec = validate(c.spec, &why);
    EXPECT_EQ(!ec, c.valid) << c.name << ": " << why;
    if (ec) {
      EXPECT_EQ(ec, fault_errc::invalid_spec) << c.name;
      EXPECT_FALSE(why.empty()) << c.name;
    }
  }
}

TEST(FaultSpec, JsonRoundTrip) {
  PacketParams p;
  p.interface = "int";
  p.peers = {"b-2", "b-3"};
  p.delay = 50ms;
  p.jitter = 5ms;
  p.loss_pct = 2.5;
  p.reorder_pct = 10;
  const std::vector<FaultSpec> specs{
      {FaultKind::packets, {"b-1"}, p},
      {FaultKind::one_way, {"b-1", "b-2"}, NoParams{}},
      {FaultKind::cut_link, {"b-3"}, LinkParams{"ext"}},
      {FaultKind::rate, {"b-1"}, RateParams{"int", 125000, 16000, 20ms}},
      {FaultKind::disk_throttle, {"b-1"}, DiskParams{1 << 20, 2 << 20, 100, 200}},
      {FaultKind::power_loss, {"b-1", "b-2", "b-3"}, NoParams{}},
      {FaultKind::torn_write, {"b-1"}, TornWriteParams{12.5}},
      {FaultKind::disk_error, {"b-1"}, DiskErrorParams{"ENOSPC", "fsync", 25, 3, "*.log", false}},
      {FaultKind::slow_fsync, {"b-2"}, SlowFsyncParams{200ms, 50ms}},
  };
  for (const auto& spec : specs) {
    const auto text = to_json(spec).dump();
    auto back = fault_spec_from_json(nlohmann::json::parse(text));
    ASSERT_TRUE(back.has_value()) << text;
    EXPECT_EQ(*back, spec) << text;
  }
  std::string why;
  EXPECT_FALSE(fault_spec_from_json(nlohmann::json{{"kind", "nope"}}, &why).has_value());
  EXPECT_NE(why.find("nope"), std::string::npos);
  EXPECT_FALSE(
      fault_spec_from_json(nlohmann::json{{"kind", "packets"}, {"params", {{"delay_us", "x"}}}})
          .has_value());
}

// The JSON names the scenario language and `fault inject --param` use for the storage kinds.
TEST(FaultSpec, StorageParamNamesAndDefaults) {
  auto spec = fault_spec_from_json(nlohmann::json::parse(
      R"({"kind":"disk-error","targets":["b1"],"params":{"errno":"ENOSPC","op":"write",
          "rate_pct":20,"after_ops":5,"path":"*.log","restart_on_heal":false}})"));
  ASSERT_TRUE(spec);
  EXPECT_EQ(std::get<DiskErrorParams>(spec->params),
            (DiskErrorParams{"ENOSPC", "write", 20, 5, "*.log", false}));
  auto slow = fault_spec_from_json(
      nlohmann::json::parse(R"({"kind":"slow-fsync","targets":["b1"],"params":{"delay_ms":40}})"));
  ASSERT_TRUE(slow);
  EXPECT_EQ(std::get<SlowFsyncParams>(slow->params), (SlowFsyncParams{40ms, 0ms}));
  EXPECT_EQ(std::get<DiskErrorParams>(default_params(FaultKind::disk_error)), DiskErrorParams{});
  EXPECT_EQ(fault_class(FaultKind::power_loss), FaultClass::storage);
  EXPECT_EQ(to_json(FaultSpec{FaultKind::torn_write, {"b1"}, TornWriteParams{}})["params"],
            (nlohmann::json{{"keep_pct", 50.0}}));
}

// Reachability matrix as strings, row = from, "." = reaches, "x" = blocked; self always ".".
std::vector<std::string> matrix(const PartitionPlan& plan, const std::vector<NodeName>& nodes) {
  std::vector<std::string> rows;
  for (const auto& a : nodes) {
    std::string row;
    for (const auto& b : nodes)
      row += plan.can_reach(a, b) ? '.' : 'x';
    rows.push_back(row);
  }
  return rows;
}

TEST(Partition, Shapes) {
  struct Case {
    const char* name;
    PartitionPlan plan;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases{
      {"isolate b-2", plan_isolate("b-2", kFive), {".x...", "x.xxx", ".x...", ".x...", ".x..."}},
      {"halves 3/2", plan_halves(kFive), {"...xx", "...xx", "...xx", "xxx..", "xxx.."}},
      // n=5, majority 3: each node hears itself and its two ring neighbours.
      {"ring", plan_majorities_ring(kFive), {"..xx.", "...xx", "x...x", "xx...", ".xx.."}},
      // b-3 is the bridge: b-1,b-2 | b-3 | b-4,b-5.
      {"bridge", plan_bridge(kFive), {"...xx", "...xx", ".....", "xx...", "xx..."}},
      {"one-way b-1 -> b-2",
       plan_one_way("b-1", "b-2"),
       {".x...", ".....", ".....", ".....", "....."}},
      {"leader b-1 from b-2,b-3",
       plan_isolate_leader("b-1", {"b-2", "b-3"}),
       {".xx..", "x....", "x....", ".....", "....."}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(matrix(c.plan, kFive), c.expected) << c.name;
  }
}

TEST(Partition, MajoritiesRingProperties) {
  for (size_t n = 3; n <= 9; ++n) {
    std::vector<NodeName> nodes;
    for (size_t i = 0; i < n; ++i)
      nodes.push_back("n" + std::to_string(i));
    auto plan = plan_majorities_ring(nodes);
    std::set<std::set<NodeName>> majorities;
    for (const auto& me : nodes) {
      std::set<NodeName> heard;
      for (const auto& other : nodes) {
        if (plan.can_reach(other, me))
          heard.insert(other);
      }
      EXPECT_GT(heard.size() * 2, n) << "n=" << n << " node " << me << " hears a minority";
      EXPECT_TRUE(heard.count(me));
      majorities.insert(heard);
    }
    if (n >= 4) {
      EXPECT_EQ(majorities.size(), n) << "n=" << n << ": majorities must all differ";
    }
  }
}

TEST(Partition, PlanFromSpecUsesAllNodesWhenNoTargets) {
  auto plan = plan_partition(FaultSpec{FaultKind::halves, {}, NoParams{}}, kFive);
  EXPECT_FALSE(plan.can_reach("b-1", "b-5"));
  EXPECT_TRUE(plan.can_reach("b-1", "b-3"));
  auto iso = plan_partition(FaultSpec{FaultKind::isolate, {"b-5"}, NoParams{}}, kFive);
  EXPECT_EQ(iso.blocks.size(), 8u);
}

TEST(Partition, DropsAndRuleset) {
  auto drops = drops_per_node(plan_one_way("b-1", "b-2"));
  ASSERT_EQ(drops.size(), 2u);
  EXPECT_EQ(drops["b-1"].drop_to, std::set<NodeName>{"b-2"});
  EXPECT_TRUE(drops["b-1"].drop_from.empty());
  EXPECT_EQ(drops["b-2"].drop_from, std::set<NodeName>{"b-1"});
  EXPECT_TRUE(drops["b-2"].drop_to.empty());

  std::map<NodeName, std::vector<std::string>> addrs{{"b-1", {"198.18.0.11", "198.18.1.11"}},
                                                     {"b-2", {"198.18.0.12"}}};
  const auto table = nft_table_name("fl-t1", 7);
  EXPECT_EQ(table, "fl_t1_f7");
  const auto b1 = render_partition_ruleset(table, drops["b-1"], addrs);
  EXPECT_NE(b1.find("add table inet fl_t1_f7"), std::string::npos);
  EXPECT_NE(b1.find("output ip daddr { 198.18.0.12 } drop"), std::string::npos) << b1;
  EXPECT_EQ(b1.find("saddr"), std::string::npos) << b1;
  const auto b2 = render_partition_ruleset(table, drops["b-2"], addrs);
  EXPECT_NE(b2.find("input ip saddr { 198.18.0.11, 198.18.1.11 } drop"), std::string::npos) << b2;
  EXPECT_EQ(render_partition_ruleset(table, NodeDrops{}, addrs), "");
  EXPECT_EQ(nft_table_name("9x", 1), "fl_9x_f1");
}

TEST(Partition, ShaperRuleset) {
  const auto text = render_shaper_ruleset("fl_f3", "int", {"198.18.0.11"}, 3, 0xfa17);
  EXPECT_NE(text.find("hook prerouting"), std::string::npos) << text;
  EXPECT_NE(text.find("iifname \"int\""), std::string::npos) << text;
  EXPECT_NE(text.find("meta mark != 0xfa17"), std::string::npos) << text;
  EXPECT_NE(text.find("ip saddr { 198.18.0.11 } queue num 3 bypass"), std::string::npos) << text;
  const auto all = render_shaper_ruleset("fl_f3", "int", {}, 3, 0xfa17);
  EXPECT_EQ(all.find("saddr"), std::string::npos) << all;
}

}  // namespace
}  // namespace faultline::chaos
