// Which controller the harness takes for the active one, from the answers of DescribeQuorum: the
// leader of the highest epoch, so a deposed leader that has not noticed yet is not followed.
#include "faultline/chaos/controller_quorum.h"

#include <gtest/gtest.h>

namespace faultline::chaos {
namespace {

using Answer = std::optional<cluster::DescribeQuorumResponse>;

Answer answer(int32_t node_id, const char* role, int32_t leader, int64_t epoch) {
  cluster::DescribeQuorumResponse r;
  r.node_id = node_id;
  r.role = role;
  r.leader = leader;
  r.epoch = epoch;
  return r;
}

TEST(QuorumLook, TheActiveControllerIsTheLeaderOfTheHighestEpoch) {
  // c1 was cut off as leader at epoch 3 and still believes it leads; c2 leads at epoch 4.
  auto look = summarize(
      {answer(0, "leader", 0, 3), answer(1, "leader", 1, 4), answer(2, "follower", 1, 4)});
  EXPECT_EQ(look.active, 2);
  EXPECT_EQ(look.epoch, 4);
  EXPECT_EQ(look.up, (std::set<int>{1, 2, 3}));
  ASSERT_NE(look.active_answer(), nullptr);
  EXPECT_EQ(look.active_answer()->node_id, 1);
}

TEST(QuorumLook, FollowersNamingALeaderDoNotMakeItActive) {
  // The leader itself did not answer: only what a leader says of itself counts.
  auto look = summarize({answer(0, "follower", 2, 6), std::nullopt, answer(1, "candidate", -1, 7)});
  EXPECT_EQ(look.active, 0);
  EXPECT_EQ(look.epoch, -1);
  EXPECT_EQ(look.up, (std::set<int>{1, 3}));
  EXPECT_EQ(look.active_answer(), nullptr);
}

TEST(QuorumLook, AnErrorAnswerIsNoAnswer) {
  auto refused = answer(0, "leader", 0, 9);
  refused->error = cluster::errc::invalid_request;
  auto look = summarize({refused, answer(1, "leader", 1, 2)});
  EXPECT_EQ(look.up, std::set<int>{2});
  EXPECT_EQ(look.active, 2);
  EXPECT_FALSE(look.answers[0]);
}

TEST(QuorumLook, ALoneControllerLeadsItsQuorumOfOne) {
  auto look = summarize({answer(0, "leader", 0, 1)});
  EXPECT_EQ(look.active, 1);
  EXPECT_EQ(summarize({std::nullopt}).active, 0);
  EXPECT_TRUE(summarize({}).up.empty());
}

}  // namespace
}  // namespace faultline::chaos
