// The durable log of one partition replica on one broker (ARCHITECTURE.md §2.6-7).
//
// Disk layout, all in one directory per partition:
//   <20-digit base offset>.log    segment: record batches back to back, exactly as replicated
//   <20-digit base offset>.index  sparse offset index of that segment: big-endian pairs
//                                 (offset - base u32, file position u32), one per
//                                 index_interval_bytes of batches, so read() seeks instead of
//                                 scanning the segment from its start
//   leader-epoch-checkpoint       every leader epoch held and its start offset (text, Kafka's
//                                 format), replaced atomically on change
//   hw-checkpoint                 the last high watermark the broker checkpointed (text)
//
// Descriptors: the segment files are reached through an OpenFileCache shared by the process's
// logs (LogConfig::files), which bounds how many are open; a closed one is opened again on use.
//
// Durability: batches are written with pwrite; fsync per batch when fsync_every_batch, otherwise
// on flush(), on a segment roll and on truncation. Epoch and HW checkpoints are always
// written to a temp file, fsynced and renamed. The epoch checkpoint is written before the batch
// that opens a new epoch, so the history never misses an epoch held in the log.
//
// Recovery (open): the last segment is scanned batch by batch with full validation (sizes, CRC,
// offsets in sequence); the first torn or corrupt batch and everything after it are cut off
// (kill -9 or power loss mid-write); its index is rebuilt. Older segments were fsynced when they
// rolled and are trusted; their index is rebuilt if missing or short. Epoch entries beyond the
// log end are dropped, epochs found in the recovered segment but missing from the checkpoint are
// added (as Kafka's segment recovery does), and a missing or unreadable epoch checkpoint is
// rebuilt from the batches.
//
// Threading: every method may be called from any thread; one internal reader-writer lock
// serialises appends and truncation against reads. The per-batch fsync runs under the shared
// lock, after the write, so fetches are not held up by the leader's fsync. Reads copy bytes
// out, so nothing returned refers to the log's buffers.
//
// Errors: std::errc values (system category, errno of the failing call, which is also logged) for
// I/O failures; cluster errc values for protocol-level refusals.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "faultline/cluster/errc.h"
#include "faultline/cluster/log/leader_epoch_cache.h"
#include "faultline/cluster/log/open_file_cache.h"
#include "faultline/cluster/shared_bytes.h"
#include "faultline/cluster/types.h"

namespace faultline::cluster {

struct LogConfig {
  // A new segment starts when the next batch would grow the active one past this (a larger batch
  // gets a segment of its own). Capped at 1 GiB so that index positions fit in 32 bits.
  uint64_t segment_bytes = 64 << 20;
  // fsync after every append (Kafka's flush.messages=1); otherwise callers flush().
  bool fsync_every_batch = false;
  // Bytes of batches between two offset-index entries (Kafka's index.interval.bytes).
  size_t index_interval_bytes = 4096;
  // The descriptors of the log's segment files, shared by every log of a process so that the
  // process holds a bounded number open however many partitions it has. Null: the log keeps a
  // small cache of its own.
  std::shared_ptr<OpenFileCache> files;
};

namespace log_detail {
struct Segment;
}

class PartitionLog {
 public:
  // Opens the log in `dir` (created if missing) and recovers it. On failure returns nullptr and
  // sets ec.
  static std::unique_ptr<PartitionLog> open(std::filesystem::path dir, LogConfig cfg,
                                            std::error_code& ec);
  ~PartitionLog();
  PartitionLog(const PartitionLog&) = delete;
  PartitionLog& operator=(const PartitionLog&) = delete;

  // Leader append of one batch the caller validated: writes it with base_offset = log end and
  // partition_leader_epoch = epoch stamped in (both outside the CRC; the stamped header is a copy,
  // the caller's bytes are written as they are, so a batch shared with a request frame is never
  // copied), records `epoch` in the epoch history if it is new. Returns the base offset. An epoch
  // below the latest one is refused with errc::fenced_leader_epoch (a deposed leader must not
  // write).
  Offset append_as_leader(std::span<const char> batch, LeaderEpoch epoch, std::error_code& ec);

  // Follower append of one or more complete batches copied from the leader, offsets and epochs
  // already assigned. The first must start exactly at the log end (else
  // errc::offset_out_of_range); they must be contiguous, valid and of non-decreasing epochs no
  // lower than the latest one held (else errc::corrupt_message; nothing is written). New epochs
  // are recorded with their first batch's base offset.
  std::error_code append_as_follower(std::span<const char> batches);

  // Whole batches, starting with the one containing `from`, in offset order, stopping before the
  // first batch whose base offset is >= upper_exclusive (the high watermark, for consumers) or
  // that would take the result past max_bytes. The first batch is returned even if larger than
  // max_bytes, so a reader always makes progress. from == log end: empty. from beyond the log end
  // or before its start: errc::offset_out_of_range. The bytes are read once, into a buffer of
  // their own that a fetch answer then refers to (shared_bytes.h).
  SharedBytes read(Offset from, size_t max_bytes, Offset upper_exclusive,
                   std::error_code& ec) const;

  Offset log_start_offset() const;
  // Offset the next appended record gets (LEO).
  Offset log_end_offset() const;

  // Removes every record at or after new_end. new_end is a batch boundary in normal use; if it
  // falls inside a batch, that whole batch goes too (the log end becomes its base offset).
  // Later segments are deleted, the index and the epoch history cut back; all of it fsynced.
  // new_end >= log end is a no-op.
  std::error_code truncate_to(Offset new_end);

  // fsync of the active segment and its index. Holds the lock only to duplicate the descriptors,
  // so a caller may flush on a thread of its own while appends go on.
  std::error_code flush();

  // Latest leader epoch of the log's records; -1 when there are none.
  LeaderEpoch latest_epoch() const;
  // OffsetsForLeaderEpoch answer (KIP-101/279); see LeaderEpochCache::end_offset_for for the
  // exact table, which is Kafka's LeaderEpochFileCache.endOffsetFor.
  std::pair<LeaderEpoch, Offset> end_offset_for_epoch(LeaderEpoch requested) const;
  std::vector<EpochEntry> epoch_entries() const;

  // The last checkpointed high watermark (0 when none), clamped to the log end at open as Kafka
  // does (a HW past the log end would be a promise the log cannot keep).
  Offset high_watermark_checkpoint() const;
  std::error_code write_high_watermark_checkpoint(Offset hw);

  // Duration of the fsync of the last append, when fsync_every_batch (feeds
  // faultline_storage_fsync_seconds and the storage probe).
  std::optional<std::chrono::nanoseconds> last_fsync_duration() const;

  const std::filesystem::path& dir() const { return dir_; }
  size_t segment_count() const;

 private:
  PartitionLog(std::filesystem::path dir, LogConfig cfg);
  std::error_code recover();
  std::error_code add_segment(Offset base);
  // Appends the batch made of `head` followed by `rest` (one write).
  std::error_code append_locked(std::span<const char> head, std::span<const char> rest, Offset base,
                                Offset next);
  std::error_code roll_locked();
  std::error_code persist_epochs(const LeaderEpochCache& cache);
  std::error_code sync_after_append(std::unique_lock<std::shared_mutex>& lock);
  static std::error_code sync_segment(const log_detail::Segment& seg);
  size_t segment_index_for(Offset offset) const;
  // Makes the log's bounds readable without the lock; called under the exclusive lock (or before
  // the log is shared) whenever they change.
  void publish_bounds();

  std::filesystem::path dir_;
  LogConfig cfg_;
  mutable std::shared_mutex mu_;
  std::vector<std::unique_ptr<log_detail::Segment>> segments_;  // by base offset, never empty
  Offset log_end_{0};
  // log_start_offset() and log_end_offset() read these without the lock: a leader asks for both
  // of every partition a follower's long-poll carries, tens of thousands of times a second.
  std::atomic<int64_t> start_published_{0};
  std::atomic<int64_t> end_published_{0};
  LeaderEpochCache epochs_;
  // Serializes the checkpoint's writers; separate, so a checkpoint fsync never stalls appends or
  // reads. Readers of the value take no lock: the flush loop compares it for every partition.
  std::mutex hw_mu_;
  std::atomic<int64_t> hw_checkpoint_{0};
  std::atomic<int64_t> last_fsync_ns_{-1};  // -1: no fsync'd append yet
};

}  // namespace faultline::cluster
