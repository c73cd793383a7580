#include "faultline/chaos/runner/run_metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <sstream>

namespace faultline::chaos {
namespace {

std::string scrape(prometheus::Registry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return out.str();
}

TEST(RunMetrics, FaultsAndUnavailabilityAreExportedUnderTheirContractNames) {
  prometheus::Registry registry;
  RunMetrics metrics(registry);
  metrics.fault_injected("kill-leader");
  metrics.fault_injected("kill-leader");
  metrics.fault_injected("pause-leader");
  metrics.unavailability("kill-leader", 1.2);
  metrics.unavailability("kill-leader", 0.04);
  std::string text = scrape(registry);
  EXPECT_NE(text.find("faultline_faults_total{kind=\"kill-leader\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("faultline_faults_total{kind=\"pause-leader\"} 1"), std::string::npos);
  EXPECT_NE(text.find("faultline_partition_unavailable_seconds_count{fault=\"kill-leader\"} 2"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          "faultline_partition_unavailable_seconds_bucket{fault=\"kill-leader\",le=\"0.05\"} 1"),
      std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          "faultline_partition_unavailable_seconds_bucket{fault=\"kill-leader\",le=\"1.5\"} 2"),
      std::string::npos);
}

}  // namespace
}  // namespace faultline::chaos
