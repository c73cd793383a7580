// Error codes of the cluster: Kafka's protocol errors (same names and numeric values as Kafka's,
// so a future Kafka-wire listener maps them one to one) plus a few local ones.
#pragma once

#include <cstdint>
#include <string_view>
#include <system_error>

namespace faultline::cluster {

enum class errc : int16_t {
  none = 0,
  unknown_server_error = -1,
  offset_out_of_range = 1,
  corrupt_message = 2,
  unknown_topic_or_partition = 3,
  invalid_fetch_size = 4,
  leader_not_available = 5,
  not_leader_or_follower = 6,
  request_timed_out = 7,
  broker_not_available = 8,
  replica_not_available = 9,
  message_too_large = 10,
  network_exception = 13,
  not_controller = 41,
  invalid_request = 42,
  topic_already_exists = 36,
  invalid_partitions = 37,
  invalid_replication_factor = 38,
  invalid_replica_assignment = 39,
  invalid_config = 40,
  not_enough_replicas = 19,
  not_enough_replicas_after_append = 20,
  stale_broker_epoch = 77,
  fenced_leader_epoch = 74,
  unknown_leader_epoch = 75,
  election_not_needed = 84,
  preferred_leader_not_available = 80,
  eligible_leaders_not_available = 83,
  no_reassignment_in_progress = 85,
  invalid_update_version = 95,  // AlterPartition with a stale partition epoch
  fenced_instance = 82,
  broker_id_not_registered = 102,
  inconsistent_cluster_id = 104,
  unsupported_version = 35,
  // Replication fetch sessions (replication/fetch_session.h): the leader holds no session of that
  // id for the follower, or the request's session epoch is not the next one. The follower opens a
  // new session with a full request.
  fetch_session_id_not_found = 70,
  invalid_fetch_session_epoch = 71,
  // KAFKA_STORAGE_ERROR: the partition's log directory is offline on this broker. Answered before
  // any append is tried, so the client may refresh its metadata and retry elsewhere.
  storage_error = 56,
  // local (not on the wire as Kafka codes)
  malformed_frame = 1001,
  frame_too_large = 1002,
  io_error = 1003,
  shutting_down = 1004,
  // The leader appended the batch, then lost leadership before it committed: it may survive on the
  // new leader or be truncated. Kafka answers NOT_LEADER_OR_FOLLOWER here, which invites a blind
  // retry and a duplicate; a distinct code lets the client report the outcome as unknown.
  leadership_lost_after_append = 1005,
};

const std::error_category& cluster_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), cluster_category()};
}

// Kafka's upper-case name of the error, e.g. "NOT_LEADER_OR_FOLLOWER".
std::string_view errc_name(errc e) noexcept;

// True when a client should refresh metadata and retry (the leader moved or is moving).
bool is_retriable(errc e) noexcept;

}  // namespace faultline::cluster

template <>
struct std::is_error_code_enum<faultline::cluster::errc> : std::true_type {};
