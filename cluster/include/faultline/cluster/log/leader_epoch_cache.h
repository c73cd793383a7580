// The leader-epoch history of one partition log: for every leader epoch the log holds records of,
// the offset of its first record (ARCHITECTURE.md §2.6, Kafka's LeaderEpochFileCache). Followers
// use it to find where their log diverges from the leader's (KIP-101, KIP-279) instead of
// truncating to their high watermark.
//
// Pure value type: no I/O. PartitionLog persists it as the `leader-epoch-checkpoint` text file
// (Kafka's format: a version line "0", a count line, then one "epoch start_offset" line per entry).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faultline/cluster/types.h"

namespace faultline::cluster {

struct EpochEntry {
  LeaderEpoch epoch;
  Offset start_offset;
  friend bool operator==(const EpochEntry&, const EpochEntry&) = default;
};

class LeaderEpochCache {
 public:
  LeaderEpochCache() = default;
  explicit LeaderEpochCache(std::vector<EpochEntry> entries) : entries_(std::move(entries)) {}

  // Records that `epoch` starts at `start`. A repeat of the latest epoch is a no-op. As in Kafka,
  // entries that conflict with the new one (an epoch >= it, or a start offset >= start) are
  // removed first, so the history stays strictly increasing in both epoch and offset. Returns
  // whether anything changed (the caller then persists).
  bool assign(LeaderEpoch epoch, Offset start);

  // Drops every entry whose start offset is >= end (the log was truncated to end). Returns
  // whether anything changed.
  bool truncate_from_end(Offset end);

  // Drops everything (the log was emptied).
  void clear() { entries_.clear(); }

  // KIP-101/KIP-279 OffsetsForLeaderEpoch answer for a log ending at `log_end`:
  // the largest epoch <= requested that this log knows, and the end offset of that epoch, i.e. the
  // start offset of the next larger known epoch, or log_end when it is the latest. Exactly Kafka's
  // LeaderEpochFileCache.endOffsetFor, except where marked (*):
  //   requested == -1, or the history is empty           -> {-1, -1}
  //   requested == latest epoch                          -> {requested, log_end}
  //   requested < the first known epoch                  -> {requested, first entry's start}
  //        (the data of older epochs is gone; the follower replicates from our first offset)
  //   first <= requested < latest                        -> {floor epoch, start of next epoch}
  // (*)requested > latest epoch                          -> {latest, log_end}
  //   Kafka answers {-1, -1} there because its new leader records its epoch at LEO the moment it
  //   becomes leader, so the case cannot arise for a valid request. Our log learns an epoch only
  //   with its first append; before that, {latest, log_end} is precisely what Kafka would answer
  //   with the new epoch assigned at LEO, and it spares the follower a needless full truncation.
  std::pair<LeaderEpoch, Offset> end_offset_for(LeaderEpoch requested, Offset log_end) const;

  LeaderEpoch latest_epoch() const {
    return entries_.empty() ? kNoLeaderEpoch : entries_.back().epoch;
  }
  // Start offset of the latest epoch, or nullopt when empty.
  std::optional<Offset> latest_start() const;
  const std::vector<EpochEntry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }

  std::string serialize() const;
  // Strict parse of serialize()'s output; nullopt on anything else (wrong version, count
  // mismatch, unsorted or duplicate entries, trailing junk).
  static std::optional<LeaderEpochCache> parse(std::string_view text);

  friend bool operator==(const LeaderEpochCache&, const LeaderEpochCache&) = default;

 private:
  std::vector<EpochEntry> entries_;  // strictly increasing in epoch and start_offset
};

}  // namespace faultline::cluster
