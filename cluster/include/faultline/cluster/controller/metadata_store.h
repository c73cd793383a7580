// MetadataStore: the controller's metadata log on disk (one append-only file of CRC-framed
// records, see metadata.h). Appends are fsync'd before they return, so a record the controller
// has acknowledged survives a crash. Opening replays the file and cuts off a torn tail (a partial
// or corrupt last write), which is what a crash in the middle of an append leaves.
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
  std::vector<MetadataEntry> records;  // contiguous from offset 0
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
  MetadataOffset last_offset() const { return last_offset_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MetadataStore(int fd, std::filesystem::path path, MetadataOffset last_offset);
  int fd_ = -1;
  std::filesystem::path path_;
  MetadataOffset last_offset_{-1};
  std::vector<uint64_t> starts_;  // file position of each record, by offset
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

}  // namespace faultline::cluster
