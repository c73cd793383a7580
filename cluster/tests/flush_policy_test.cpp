// faultline-broker --flush-policy: the three policies and what is refused.
#include <gtest/gtest.h>

#include "faultline/cluster/config.h"

namespace {

using faultline::cluster::BrokerConfig;
using faultline::cluster::parse_flush_policy;

TEST(FlushPolicy, EveryBatch) {
  BrokerConfig c;
  c.flush_never = true;
  ASSERT_TRUE(parse_flush_policy("every-batch", c));
  EXPECT_TRUE(c.flush_every_batch);
  EXPECT_FALSE(c.flush_never);
}

TEST(FlushPolicy, IntervalSetsThePeriod) {
  BrokerConfig c;
  c.flush_every_batch = true;
  ASSERT_TRUE(parse_flush_policy("interval:250", c));
  EXPECT_FALSE(c.flush_every_batch);
  EXPECT_FALSE(c.flush_never);
  EXPECT_EQ(c.flush_interval, std::chrono::milliseconds(250));
}

TEST(FlushPolicy, Never) {
  BrokerConfig c;
  ASSERT_TRUE(parse_flush_policy("never", c));
  EXPECT_TRUE(c.flush_never);
  EXPECT_FALSE(c.flush_every_batch);
}

TEST(FlushPolicy, RefusesTheRest) {
  for (const char* bad :
       {"", "interval:", "interval:0", "interval:-5", "interval:5ms", "always", "every_batch"}) {
    BrokerConfig c;
    EXPECT_FALSE(parse_flush_policy(bad, c)) << bad;
  }
}

}  // namespace
