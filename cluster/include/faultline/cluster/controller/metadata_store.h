// MetadataStore: the controller's metadata log on disk (one append-only file of CRC-framed
// records, see metadata.h). Appends are fsync'd before they return, so a record the controller
// has acknowledged survives a crash. Opening replays the file and cuts off a torn tail (a partial
// or corrupt last write), which is what a crash in the middle of an append leaves.
//
// With snapshots (raft.h) the file holds the records after the latest snapshot: compaction rewrites
// it without the records the snapshot covers, and a follower that installs a leader's snapshot
// starts it empty. The snapshot itself is a separate file (save_metadata_snapshot below), written
// first: a crash between the two leaves records the snapshot already covers, which
// align_to_snapshot() drops at the next start.
//
// Threading: none. Owns its file descriptor (RAII, move-only).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <system_error>
#include <vector>

#include "faultline/cluster/controller/metadata.h"
#include "faultline/cluster/controller/raft.h"

namespace faultline::cluster {

class MetadataStore;

struct MetadataStoreOpenResult {
  std::error_code error;  // std::system_category errno of the failing call
  std::unique_ptr<MetadataStore> store;
  std::vector<MetadataEntry> records;  // contiguous (from 0 unless the log was compacted)
  uint64_t dropped_tail_bytes = 0;     // torn tail cut off at open
};

class MetadataStore {
 public:
  // Opens (creating it and its directory if needed) the log file at `file`.
  static MetadataStoreOpenResult open(const std::filesystem::path& file);

  MetadataStore(const MetadataStore&) = delete;
  MetadataStore& operator=(const MetadataStore&) = delete;
  ~MetadataStore();

  // Appends the records (whose offsets must continue the file's) and fsyncs. After an error the
  // file may end in a partial frame: stop using the store (reopening cuts the torn tail).
  std::error_code append(std::span<const MetadataEntry> records);
  // Drops every record after `offset` (-1: all) and fsyncs: a controller quorum follower whose
  // uncommitted tail conflicts with the active controller's log (raft.h).
  std::error_code truncate_after(MetadataOffset offset);
  // Drops the records up to `offset` (rewritten to a new file, renamed over the old one): they are
  // in a snapshot now. The store then continues after max(offset, last_offset()).
  std::error_code compact_through(MetadataOffset offset);
  // Makes the store continue the snapshot through `offset` (-1: none) at start-up: records it
  // covers are dropped, an empty store takes offset + 1 as its next offset, and a store that
  // starts past offset + 1 (records missing between the snapshot and the log) is corrupt
  // (errc::corrupt_message).
  std::error_code align_to_snapshot(MetadataOffset offset);
  // A leader's snapshot through `offset` replaces everything: empties the file (fsync'd) and
  // continues at offset + 1.
  std::error_code reset_after(MetadataOffset offset);
  MetadataOffset first_offset() const { return base_; }  // of the first record held (or next)
  MetadataOffset last_offset() const { return last_offset_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MetadataStore(int fd, std::filesystem::path path, MetadataOffset last_offset);
  int fd_ = -1;
  std::filesystem::path path_;
  MetadataOffset last_offset_{-1};
  MetadataOffset base_{0};        // offset of starts_[0]
  std::vector<uint64_t> starts_;  // file position of each record, by offset - base_
  uint64_t end_ = 0;              // file position after the last record
  std::vector<uint8_t> buffer_;
};

// The quorum state file (<data_dir>/quorum-state, KRaft's name): the Raft term and vote, which must
// be on disk before a vote or an append is acknowledged. Replaced atomically (write, fsync,
// rename, fsync the directory). A missing file is term 0 with no vote.
struct QuorumStateLoad {
  std::error_code error;
  RaftHardState state;
};
QuorumStateLoad load_quorum_state(const std::filesystem::path& file);
std::error_code save_quorum_state(const std::filesystem::path& file, const RaftHardState& state);

// The snapshot file (<data_dir>/metadata.snapshot): the bytes of encode_metadata_snapshot
// (metadata.h), replaced atomically like the quorum state. A missing file loads as no bytes (and
// no error); the bytes check themselves when decoded.
struct SnapshotFileLoad {
  std::error_code error;
  std::vector<uint8_t> bytes;
};
SnapshotFileLoad load_metadata_snapshot(const std::filesystem::path& file);
std::error_code save_metadata_snapshot(const std::filesystem::path& file,
                                       std::span<const uint8_t> bytes);

}  // namespace faultline::cluster
