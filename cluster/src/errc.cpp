#include "faultline/cluster/errc.h"

#include <string>

namespace faultline::cluster {

std::string_view errc_name(errc e) noexcept {
  switch (e) {
    case errc::none:
      return "NONE";
    case errc::unknown_server_error:
      return "UNKNOWN_SERVER_ERROR";
    case errc::offset_out_of_range:
      return "OFFSET_OUT_OF_RANGE";
    case errc::corrupt_message:
      return "CORRUPT_MESSAGE";
    case errc::unknown_topic_or_partition:
      return "UNKNOWN_TOPIC_OR_PARTITION";
    case errc::invalid_fetch_size:
      return "INVALID_FETCH_SIZE";
    case errc::leader_not_available:
      return "LEADER_NOT_AVAILABLE";
    case errc::not_leader_or_follower:
      return "NOT_LEADER_OR_FOLLOWER";
    case errc::request_timed_out:
      return "REQUEST_TIMED_OUT";
    case errc::broker_not_available:
      return "BROKER_NOT_AVAILABLE";
    case errc::replica_not_available:
      return "REPLICA_NOT_AVAILABLE";
    case errc::message_too_large:
      return "MESSAGE_TOO_LARGE";
    case errc::network_exception:
      return "NETWORK_EXCEPTION";
    case errc::not_controller:
      return "NOT_CONTROLLER";
    case errc::invalid_request:
      return "INVALID_REQUEST";
    case errc::topic_already_exists:
      return "TOPIC_ALREADY_EXISTS";
    case errc::invalid_partitions:
      return "INVALID_PARTITIONS";
    case errc::invalid_replication_factor:
      return "INVALID_REPLICATION_FACTOR";
    case errc::invalid_replica_assignment:
      return "INVALID_REPLICA_ASSIGNMENT";
    case errc::invalid_config:
      return "INVALID_CONFIG";
    case errc::not_enough_replicas:
      return "NOT_ENOUGH_REPLICAS";
    case errc::not_enough_replicas_after_append:
      return "NOT_ENOUGH_REPLICAS_AFTER_APPEND";
    case errc::stale_broker_epoch:
      return "STALE_BROKER_EPOCH";
    case errc::fenced_leader_epoch:
      return "FENCED_LEADER_EPOCH";
    case errc::unknown_leader_epoch:
      return "UNKNOWN_LEADER_EPOCH";
    case errc::election_not_needed:
      return "ELECTION_NOT_NEEDED";
    case errc::preferred_leader_not_available:
      return "PREFERRED_LEADER_NOT_AVAILABLE";
    case errc::eligible_leaders_not_available:
      return "ELIGIBLE_LEADERS_NOT_AVAILABLE";
    case errc::no_reassignment_in_progress:
      return "NO_REASSIGNMENT_IN_PROGRESS";
    case errc::invalid_update_version:
      return "INVALID_UPDATE_VERSION";
    case errc::fenced_instance:
      return "FENCED_INSTANCE_ID";
    case errc::broker_id_not_registered:
      return "BROKER_ID_NOT_REGISTERED";
    case errc::inconsistent_cluster_id:
      return "INCONSISTENT_CLUSTER_ID";
    case errc::unsupported_version:
      return "UNSUPPORTED_VERSION";
    case errc::fetch_session_id_not_found:
      return "FETCH_SESSION_ID_NOT_FOUND";
    case errc::invalid_fetch_session_epoch:
      return "INVALID_FETCH_SESSION_EPOCH";
    case errc::malformed_frame:
      return "MALFORMED_FRAME";
    case errc::frame_too_large:
      return "FRAME_TOO_LARGE";
    case errc::io_error:
      return "IO_ERROR";
    case errc::storage_error:
      return "KAFKA_STORAGE_ERROR";
    case errc::shutting_down:
      return "SHUTTING_DOWN";
    case errc::leadership_lost_after_append:
      return "LEADERSHIP_LOST_AFTER_APPEND";
  }
  return "UNKNOWN";
}

bool is_retriable(errc e) noexcept {
  switch (e) {
    case errc::not_leader_or_follower:
    case errc::leader_not_available:
    case errc::unknown_topic_or_partition:
    case errc::fenced_leader_epoch:
    case errc::unknown_leader_epoch:
    case errc::not_enough_replicas:
    case errc::request_timed_out:
    case errc::network_exception:
    case errc::broker_not_available:
    case errc::not_controller:
    case errc::shutting_down:
      return true;
    default:
      return false;
  }
}

namespace {
class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "faultline.cluster"; }
  std::string message(int v) const override { return std::string(errc_name(static_cast<errc>(v))); }
};
}  // namespace

const std::error_category& cluster_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace faultline::cluster
