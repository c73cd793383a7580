// Pure cores of the backends: the shaper's per-packet decisions and release order, faults.jsonl
// lines, /proc stat parsing, the fault topology file and the active-fault registry.
#include <gtest/gtest.h>

#include "faultline/chaos/faults/cli.h"
#include "faultline/chaos/faults/injector.h"
#include "faultline/chaos/faults/process.h"
#include "faultline/chaos/faults/shaper.h"

namespace faultline::chaos {
namespace {

using namespace std::chrono_literals;

struct ShareCase {
  const char* name;
  PacketParams params;
  double drop, duplicate, corrupt, immediate;  // expected shares
};

TEST(ShaperPolicy, SharesMatchTheParameters) {
  auto make = [](double loss, double dup, double corrupt, double reorder) {
    PacketParams p;
    p.delay = 10ms;
    p.loss_pct = loss;
    p.duplicate_pct = dup;
    p.corrupt_pct = corrupt;
    p.reorder_pct = reorder;
    return p;
  };
  const std::vector<ShareCase> cases{
      {"nothing", make(0, 0, 0, 0), 0, 0, 0, 0},
      {"loss 30", make(30, 0, 0, 0), 0.30, 0, 0, 0},
      {"dup 10", make(0, 10, 0, 0), 0, 0.10, 0, 0},
      {"corrupt 5", make(0, 0, 5, 0), 0, 0, 0.05, 0},
      {"reorder 25", make(0, 0, 0, 25), 0, 0, 0, 0.25},
      {"loss all", make(100, 50, 0, 0), 1.0, 0, 0, 0},
  };
  for (const auto& c : cases) {
    ShaperPolicy policy(c.params, 7);
    const int n = 20000;
    int drop = 0, dup = 0, corrupt = 0, immediate = 0;
    for (int i = 0; i < n; ++i) {
      auto d = policy.decide();
      drop += d.drop;
      dup += d.duplicate;
      corrupt += d.corrupt;
      if (!d.drop)
        immediate += d.hold.count() == 0;
    }
    EXPECT_NEAR(drop / double(n), c.drop, 0.015) << c.name;
    EXPECT_NEAR(dup / double(n), c.duplicate * (1 - c.drop), 0.015) << c.name;
    EXPECT_NEAR(corrupt / double(n), c.corrupt, 0.015) << c.name;
    EXPECT_NEAR(immediate / double(n), c.immediate * (1 - c.drop), 0.015) << c.name;
  }
}

TEST(ShaperPolicy, JitterStaysWithinBoundsAndSeedReplays) {
  PacketParams p;
  p.delay = 50ms;
  p.jitter = 10ms;
  ShaperPolicy a(p, 99), b(p, 99), c(p, 100);
  bool differs = false;
  std::chrono::nanoseconds lo = 1h, hi = 0ns;
  for (int i = 0; i < 5000; ++i) {
    auto da = a.decide(), db = b.decide(), dc = c.decide();
    EXPECT_EQ(da.hold, db.hold);
    differs |= da.hold != dc.hold;
    lo = std::min(lo, da.hold);
    hi = std::max(hi, da.hold);
  }
  EXPECT_TRUE(differs);
  EXPECT_GE(lo, 40ms);
  EXPECT_LE(hi, 60ms);
  EXPECT_LT(lo, 41ms);  // the whole range is used
  EXPECT_GT(hi, 59ms);
}

TEST(ReleaseQueue, ReleasesByTimeThenArrival) {
  ReleaseQueue q;
  const auto t0 = ReleaseQueue::Clock::now();
  q.push({t0 + 30ms, 0, 1, false, {}});
  q.push({t0 + 10ms, 0, 2, false, {}});
  q.push({t0 + 10ms, 0, 3, false, {}});
  q.push({t0 + 50ms, 0, 4, false, {}});
  EXPECT_EQ(q.next_release(), t0 + 10ms);
  std::vector<uint32_t> ids;
  for (auto& h : q.pop_due(t0 + 30ms))
    ids.push_back(h.packet_id);
  EXPECT_EQ(ids, (std::vector<uint32_t>{2, 3, 1}));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.pop_all().at(0).packet_id, 4u);
  EXPECT_FALSE(q.next_release().has_value());
}

// Sum over pseudo header and segment folds to 0xffff when the checksum is right.
uint16_t verify_sum(const std::vector<uint8_t>& p) {
  const size_t ihl = (p[0] & 0x0f) * 4u, len = p.size() - ihl;
  uint32_t sum = p[9] + static_cast<uint32_t>(len);
  for (size_t i = 12; i < 20; i += 2)
    sum += (p[i] << 8) | p[i + 1];
  for (size_t i = 0; i + 1 < len; i += 2)
    sum += (p[ihl + i] << 8) | p[ihl + i + 1];
  if (len & 1)
    sum += p[ihl + len - 1] << 8;
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

TEST(Shaper, RecomputesTcpAndUdpChecksums) {
  for (uint8_t proto : {uint8_t{6}, uint8_t{17}}) {
    for (size_t payload : {0u, 1u, 13u, 100u}) {
      const size_t l4 = (proto == 6 ? 20 : 8) + payload;
      std::vector<uint8_t> p(20 + l4, 0);
      p[0] = 0x45;
      p[2] = static_cast<uint8_t>((20 + l4) >> 8);
      p[3] = static_cast<uint8_t>((20 + l4) & 0xff);
      p[9] = proto;
      const uint8_t src[4] = {198, 18, 200, 1}, dst[4] = {198, 18, 200, 2};
      std::copy(src, src + 4, p.begin() + 12);
      std::copy(dst, dst + 4, p.begin() + 16);
      for (size_t i = 20; i < p.size(); ++i)
        p[i] = static_cast<uint8_t>(i * 7);
      ASSERT_TRUE(recompute_l4_checksum(p));
      EXPECT_EQ(verify_sum(p), 0xffff) << int(proto) << " payload " << payload;
    }
  }
  std::vector<uint8_t> icmp(28, 0);
  icmp[0] = 0x45;
  icmp[3] = 28;
  icmp[9] = 1;
  EXPECT_FALSE(recompute_l4_checksum(icmp));
  std::vector<uint8_t> truncated(20, 0);
  truncated[0] = 0x45;
  truncated[3] = 200;
  truncated[9] = 17;
  EXPECT_FALSE(recompute_l4_checksum(truncated));
}

TEST(Shaper, ArgumentsCarryEveryParameter) {
  PacketParams p;
  p.delay = 50ms;
  p.jitter = 5ms;
  p.loss_pct = 2.5;
  auto args = shaper_arguments(p, 7, 42, 0xfa17, 3);
  auto value = [&](const std::string& flag) {
    auto it = std::find(args.begin(), args.end(), flag);
    return it == args.end() || it + 1 == args.end() ? std::string("?") : *(it + 1);
  };
  EXPECT_EQ(value("--queue"), "7");
  EXPECT_EQ(value("--delay-us"), "50000");
  EXPECT_EQ(value("--jitter-us"), "5000");
  EXPECT_EQ(value("--loss-pct"), "2.5");
  EXPECT_EQ(value("--seed"), "42");
  EXPECT_EQ(value("--ready-fd"), "3");
}

TEST(FaultLog, LineHasEveryField) {
  FaultLog::Record r{3,          {FaultKind::one_way, {"b1", "b2"}, NoParams{}},
                     "inject",   true,
                     "nftables", {{"table", "flx_f3"}},
                     {}};
  const auto wall =
      std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123));
  const auto mono = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(987654321));
  auto j = FaultLog::to_json(r, mono, wall);
  EXPECT_EQ(j["id"], 3);
  EXPECT_EQ(j["kind"], "one-way");
  EXPECT_EQ(j["targets"], nlohmann::json({"b1", "b2"}));
  EXPECT_EQ(j["phase"], "inject");
  EXPECT_EQ(j["monotonic_ns"], 987654321);
  EXPECT_EQ(j["wall_time"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["verified"], true);
  EXPECT_EQ(j["backend"], "nftables");
  EXPECT_FALSE(j.contains("error"));
  r.error = fault_errc::verify_failed;
  EXPECT_EQ(FaultLog::to_json(r, mono, wall)["error"],
            make_error_code(fault_errc::verify_failed).message());
}

TEST(ProcessState, ParsesStateAfterTheCommand) {
  EXPECT_EQ(parse_stat_state("123 (faultline-broker) T 1 123"), 'T');
  EXPECT_EQ(parse_stat_state("123 (a) b) (c) S 1 123"), 'S');
  EXPECT_FALSE(parse_stat_state("garbage").has_value());
}

TEST(FaultTopologyFile, RoundTrips) {
  FaultTopology t{
      "flabcde",
      {FaultNode{"b1",
                 "flabcde-b1",
                 {{"int", "198.18.1.11"}, {"ext", "198.18.2.11"}},
                 "7:3",
                 std::filesystem::path("/sys/fs/cgroup/blkio/flabcde-b1"),
                 {}},
       FaultNode{"c1", "flabcde-c1", {{"int", "198.18.1.2"}}, std::nullopt, std::nullopt, {}}}};
  auto back = fault_topology_from_json(fault_topology_to_json(t));
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->nodes.size(), 2u);
  EXPECT_EQ(back->run_prefix, "flabcde");
  EXPECT_EQ(back->nodes[0].addresses, t.nodes[0].addresses);
  EXPECT_EQ(back->nodes[0].block_device, "7:3");
  EXPECT_EQ(back->nodes[0].blkio_cgroup, t.nodes[0].blkio_cgroup);
  EXPECT_FALSE(back->nodes[1].block_device.has_value());
  EXPECT_EQ(back->addresses()["b1"].size(), 2u);
  EXPECT_FALSE(fault_topology_from_json(nlohmann::json{{"nodes", 1}}).has_value());
}

// A fault that counts calls, to check the registry's bookkeeping without a kernel.
class CountingFault final : public Fault {
 public:
  explicit CountingFault(int& heals, bool fail = false) : heals_(heals), fail_(fail) {}
  std::error_code inject() override { return {}; }
  std::error_code heal() override {
    ++heals_;
    return fail_ ? make_error_code(fault_errc::kernel_error) : std::error_code{};
  }
  std::error_code verify() override { return {}; }
  std::error_code verify_healed() override { return {}; }
  std::string backend() const override { return "test"; }

 private:
  int& heals_;
  bool fail_;
};

TEST(ActiveFaults, HealByIdAndAll) {
  ActiveFaults active;
  int heals = 0;
  const auto a = active.next_id();
  active.add(a, {}, std::make_unique<CountingFault>(heals));
  const auto b = active.next_id();
  active.add(b, {}, std::make_unique<CountingFault>(heals, /*fail=*/true));
  EXPECT_NE(a, b);
  EXPECT_EQ(active.heal(a + b + 100), fault_errc::not_found);
  EXPECT_FALSE(active.heal(a));
  EXPECT_EQ(active.size(), 1u);
  // A heal that fails keeps the fault so it can be retried.
  EXPECT_EQ(active.heal_all(), fault_errc::kernel_error);
  EXPECT_EQ(active.size(), 1u);
  EXPECT_EQ(heals, 2);
}

}  // namespace
}  // namespace faultline::chaos
