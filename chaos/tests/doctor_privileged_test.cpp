// Privileged: `faultline doctor` on this host (ARCHITECTURE.md §10) finds the minimum, reports the
// NFQUEUE shaper for packet faults (no sch_netem here) and leaves no scratch namespace behind.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "faultline/chaos/doctor.h"
#include "faultline/chaos/netns.h"
#include "faultline_test_support.h"

namespace faultline::chaos {
namespace {
namespace fs = std::filesystem;

TEST(DoctorPrivileged, ReportsThisHostAndCleansUp) {
  FAULTLINE_REQUIRE_ROOT();
  const fs::path state_root =
      fs::temp_directory_path() / fmt::format("fl-doctor-test-{}", ::getpid());
  ::setenv("FAULTLINE_STATE_ROOT", state_root.c_str(), 1);
  // Only doctors' scratch namespaces matter: other tests may run in parallel.
  auto scratch = [] {
    std::vector<std::string> out;
    for (const auto& n : list_netns()) {
      if (n.ends_with("-doctor"))
        out.push_back(n);
    }
    return out;
  };
  const auto scratch_before = scratch();

  std::ostringstream out;
  EXPECT_EQ(run_doctor(out), 0) << out.str();
  const DoctorResult r = probe_host();
  EXPECT_TRUE(r.caps.netns && r.caps.veth && r.caps.bridge && r.caps.nftables) << out.str();
  EXPECT_TRUE(r.caps.loop);
  // Whatever the kernel offers, packet faults must have a backend here: netem or the shaper.
  bool packets = false;
  for (const auto& b : choose_backends(r.caps)) {
    if (b.fault == "packets")
      packets = b.backend.has_value();
  }
  EXPECT_TRUE(packets) << out.str();
  EXPECT_NE(out.str().find("packets"), std::string::npos);

  EXPECT_EQ(scratch(), scratch_before);
  EXPECT_TRUE(fs::is_empty(state_root)) << "scratch journal left behind";
  ::unsetenv("FAULTLINE_STATE_ROOT");
  fs::remove_all(state_root);
}

}  // namespace
}  // namespace faultline::chaos
