// The controller lists of the command lines: --controller (one endpoint or the quorum's) and the
// quorum's voters ("id@host:port,...").
#include "faultline/cluster/config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace faultline::cluster {
namespace {

TEST(ParseEndpoints, OneEndpointStillWorks) {
  std::vector<Endpoint> out;
  ASSERT_TRUE(parse_endpoints("127.0.0.1:9090", out));
  EXPECT_EQ(out, (std::vector<Endpoint>{{"127.0.0.1", 9090}}));
}

TEST(ParseEndpoints, AListKeepsItsOrder) {
  std::vector<Endpoint> out;
  ASSERT_TRUE(parse_endpoints("198.18.1.2:9090,198.18.1.3:9091,localhost:9092", out));
  EXPECT_EQ(out, (std::vector<Endpoint>{
                     {"198.18.1.2", 9090}, {"198.18.1.3", 9091}, {"localhost", 9092}}));
}

TEST(ParseEndpoints, AVoterListIsAcceptedAsItIs) {
  std::vector<Endpoint> out;
  ASSERT_TRUE(parse_endpoints("1@10.0.0.1:9090,2@10.0.0.2:9090", out));
  EXPECT_EQ(out, (std::vector<Endpoint>{{"10.0.0.1", 9090}, {"10.0.0.2", 9090}}));
}

TEST(ParseEndpoints, MalformedInputIsRefusedAndLeavesTheOutputAlone) {
  for (std::string bad : {"", ",", "a:1,", ",a:1", "a:1,,b:2", "a", "a:", ":1", "a:1,b", "a:65536",
                          "a:x", "a:1 ,b:2"}) {
    SCOPED_TRACE(bad);
    std::vector<Endpoint> out{{"keep", 1}};
    EXPECT_FALSE(parse_endpoints(bad, out));
    EXPECT_EQ(out, (std::vector<Endpoint>{{"keep", 1}}));
  }
}

TEST(ParseQuorumVoters, IdsAndEndpointsInOrder) {
  std::vector<QuorumVoter> out;
  ASSERT_TRUE(parse_quorum_voters("1@10.0.0.1:9090,0@10.0.0.2:9091", out));
  EXPECT_EQ(out, (std::vector<QuorumVoter>{{1, {"10.0.0.1", 9090}}, {0, {"10.0.0.2", 9091}}}));
}

TEST(ParseQuorumVoters, MalformedInputIsRefused) {
  for (std::string bad : {"", "10.0.0.1:9090", "@10.0.0.1:9090", "x@10.0.0.1:9090",
                          "-1@10.0.0.1:9090", "1@10.0.0.1", "1@a:1,1@b:2", "1@a:1,", "1 @a:1"}) {
    SCOPED_TRACE(bad);
    std::vector<QuorumVoter> out;
    EXPECT_FALSE(parse_quorum_voters(bad, out));
    EXPECT_TRUE(out.empty());
  }
}

}  // namespace
}  // namespace faultline::cluster
