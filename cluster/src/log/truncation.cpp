#include "faultline/cluster/log/truncation.h"

#include <algorithm>

namespace faultline::cluster {

TruncationDecision follower_truncation(LeaderEpoch leader_epoch, Offset leader_end,
                                       LeaderEpoch own_epoch, Offset own_end_for_that_epoch,
                                       Offset own_log_end) {
  if (leader_end.value() < 0)
    return {std::min(Offset{0}, own_log_end), true};
  if (leader_epoch == kNoLeaderEpoch || own_end_for_that_epoch.value() < 0)
    return {std::min(leader_end, own_log_end), true};
  if (own_epoch != leader_epoch)
    return {std::min(own_end_for_that_epoch, own_log_end), false};
  return {std::min({leader_end, own_end_for_that_epoch, own_log_end}), true};
}

Offset follower_truncation_offset(LeaderEpoch diverging_epoch, Offset diverging_end_offset,
                                  LeaderEpoch own_epoch, Offset own_end_for_that_epoch,
                                  Offset own_log_end) {
  return follower_truncation(diverging_epoch, diverging_end_offset, own_epoch,
                             own_end_for_that_epoch, own_log_end)
      .truncate_to;
}

}  // namespace faultline::cluster
