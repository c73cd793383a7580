#include "faultline/chaos/doctor.h"

#include <gtest/gtest.h>

#include <map>

namespace faultline::chaos {
namespace {

std::map<std::string, std::string> backends(const HostCapabilities& caps) {
  std::map<std::string, std::string> out;
  for (const auto& b : choose_backends(caps))
    out[b.fault] = b.backend.value_or("-");
  return out;
}

HostCapabilities this_host() {  // ARCHITECTURE.md §10: everything but sch_netem
  HostCapabilities c;
  c.netns = c.veth = c.bridge = c.nftables = c.nfqueue = c.tbf = true;
  c.cgroup_v1_blkio = c.loop = c.fuse = true;
  return c;
}

TEST(ChooseBackends, HostWithoutNetemUsesTheNfqueueShaper) {
  auto b = backends(this_host());
  EXPECT_EQ(b["process"], "signal");
  EXPECT_EQ(b["partition"], "nftables");
  EXPECT_EQ(b["link-cut"], "link-down");
  EXPECT_EQ(b["packets"], "nfqueue");
  auto caps = this_host();
  caps.nft_queue = true;
  auto packets_note = [](const HostCapabilities& c) {
    for (const auto& b : choose_backends(c)) {
      if (b.fault == "packets")
        return b.note;
    }
    return std::string();
  };
  // The note tells which kind of rule queues the packets.
  EXPECT_NE(packets_note(caps).find("nft queue"), std::string::npos);
  EXPECT_NE(packets_note(this_host()).find("iptables NFQUEUE"), std::string::npos);
  EXPECT_EQ(b["rate"], "tbf");
  EXPECT_EQ(b["disk"], "blkio-v1");
  EXPECT_TRUE(minimum_met(this_host()));
}

TEST(ChooseBackends, StockKernelUsesNetem) {
  auto caps = this_host();
  caps.netem = true;
  EXPECT_EQ(backends(caps)["packets"], "netem");
}

TEST(ChooseBackends, TableOfFallbacks) {
  struct Case {
    const char* what;
    void (*change)(HostCapabilities&);
    const char* fault;
    const char* backend;
  } cases[] = {
      {"no netem, no nfqueue", [](HostCapabilities& c) { c.nfqueue = false; }, "packets", "-"},
      {"no tbf: shaper paces", [](HostCapabilities& c) { c.tbf = false; }, "rate", "nfqueue"},
      {"no tbf, netem",
       [](HostCapabilities& c) {
         c.tbf = false;
         c.netem = true;
       },
       "rate", "netem"},
      {"cgroup v2 only",
       [](HostCapabilities& c) {
         c.cgroup_v1_blkio = false;
         c.cgroup_v2_io = true;
       },
       "disk", "io.max"},
      {"both cgroups: v1 as the disk backend", [](HostCapabilities& c) { c.cgroup_v2_io = true; },
       "disk", "blkio-v1"},
      {"no io controller", [](HostCapabilities& c) { c.cgroup_v1_blkio = false; }, "disk", "-"},
      {"no loop devices", [](HostCapabilities& c) { c.loop = false; }, "disk", "-"},
      {"no nftables", [](HostCapabilities& c) { c.nftables = false; }, "partition", "-"},
      {"no nftables: shaper cannot queue", [](HostCapabilities& c) { c.nftables = false; },
       "packets", "-"},
      {"no bridge: no nodes", [](HostCapabilities& c) { c.bridge = false; }, "link-cut", "-"},
      {"no fuse", [](HostCapabilities& c) { c.fuse = false; }, "disk-errors", "-"},
  };
  for (const auto& c : cases) {
    auto caps = this_host();
    c.change(caps);
    EXPECT_EQ(backends(caps)[c.fault], c.backend) << c.what;
  }
}

TEST(MinimumMet, NeedsNetnsVethBridgeAndNftables) {
  EXPECT_FALSE(minimum_met(HostCapabilities{}));
  for (auto drop : {&HostCapabilities::netns, &HostCapabilities::veth, &HostCapabilities::bridge,
                    &HostCapabilities::nftables}) {
    auto caps = this_host();
    caps.*drop = false;
    EXPECT_FALSE(minimum_met(caps));
  }
  auto caps = this_host();
  caps.nfqueue = caps.tbf = caps.loop = caps.fuse = caps.cgroup_v1_blkio = false;
  EXPECT_TRUE(minimum_met(caps));  // degraded, but a run can start
}

}  // namespace
}  // namespace faultline::chaos
