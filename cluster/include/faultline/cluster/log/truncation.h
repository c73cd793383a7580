// Where a follower truncates its log after asking the leader for the end offset of its latest
// epoch (ARCHITECTURE.md §2.6; Kafka KIP-101 and KIP-279, AbstractFetcherThread's truncation
// logic).
//
// Protocol: the follower sends its latest epoch E; the leader answers with
// end_offset_for_epoch(E) = (leader_epoch, leader_end): the largest epoch <= E it knows and where
// that epoch ends in the leader's log. The follower looks the same leader_epoch up in its own
// log, (own_epoch, own_end) = its own end_offset_for_epoch(leader_epoch), and calls this.
//
// Pure functions, no I/O.
#pragma once

#include "faultline/cluster/types.h"

namespace faultline::cluster {

struct TruncationDecision {
  Offset truncate_to;
  // false: the follower did not know the epoch the leader answered with, so `truncate_to` is an
  // intermediate point; after truncating, the follower asks again with its (now smaller) latest
  // epoch (KIP-279). true: the logs agree below `truncate_to`; start fetching there.
  bool complete = true;
  friend bool operator==(const TruncationDecision&, const TruncationDecision&) = default;
};

// Cases, in order:
// 1. leader_end == -1: the leader holds no epoch <= ours (its log is empty, or we sent -1 because
//    ours is). Nothing we have is vouched for by the leader, so truncate to 0 (everything; the log
//    clamps to its start). Kafka falls back to the follower's fetch offset, historically its
//    high watermark; KIP-101 exists because the local HW is no promise: a follower's HW lags the
//    leader's (truncating to it can drop acknowledged records that only this replica still holds
//    once it becomes leader: KIP-101 scenario 1), and records below it can still differ from the
//    new leader's after an unclean election. So never the HW.
// 2. leader_epoch == -1 but leader_end known (a pre-KIP-279 answer): min(leader_end, own LEO).
// 3. We know no epoch <= leader_epoch (own_end == -1): min(leader_end, own LEO).
// 4. own_epoch != leader_epoch (we never saw the leader's epoch; KIP-279): our records after our
//    end of own_epoch cannot be the leader's; truncate to min(own_end, own LEO), not complete.
// 5. Otherwise: min(leader_end, own_end, own LEO), complete.
TruncationDecision follower_truncation(LeaderEpoch leader_epoch, Offset leader_end,
                                       LeaderEpoch own_epoch, Offset own_end_for_that_epoch,
                                       Offset own_log_end);

// The offset of follower_truncation(): the broker truncates there, and asks again when the
// answer was not complete (it then sends a smaller epoch, so the exchange terminates).
Offset follower_truncation_offset(LeaderEpoch diverging_epoch, Offset diverging_end_offset,
                                  LeaderEpoch own_epoch, Offset own_end_for_that_epoch,
                                  Offset own_log_end);

}  // namespace faultline::cluster
