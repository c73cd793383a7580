// Replication fetch sessions (the idea of Kafka's KIP-227): a follower's long-poll to a leader
// broker carries only the partitions whose fetch state changed, not every partition it follows.
//
// Two pure halves of one protocol (ARCHITECTURE.md §2 item 2), no I/O, no clock:
//  - FetchSessionCache (leader): one session per follower broker, holding the last fetch state of
//    each partition in it. It turns a request (full or incremental) into the full list of
//    partitions to serve, which the broker processes exactly as a sessionless request, so every
//    partition is still checked and counted for the ISR on every poll.
//  - FetchSessionBuilder (follower): remembers what the leader holds and diffs the partitions the
//    fetcher wants now against it.
//
// The known high watermark is the one field both sides change without the other sending it: when
// the leader answers a partition it records the HW it answered, and the follower records the same
// HW for it on receipt (fetch_answer_updates_session says which answers do, for both). The
// follower resends a partition whenever its real state (including the HW it actually holds, which
// is capped by its log end) differs from that record, so the leader never believes the follower
// knows a HW it does not. Anything unexpected (an RPC error, a session error, a restarted fetcher)
// drops the session and the next request is a full one.
//
// Threading: none; each object is owned by one broker's io thread (cache) or one fetcher loop
// (builder).
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "faultline/cluster/errc.h"
#include "faultline/cluster/types.h"
#include "faultline/cluster/wire/messages.h"

namespace faultline::cluster {

// The epoch after `epoch` in a session: 1, 2, ..., INT32_MAX, 1, ... (0 and -1 are reserved).
int32_t next_fetch_session_epoch(int32_t epoch) noexcept;

// Whether an answered partition makes both sides record its high watermark as the follower's
// known one: every answer without a partition error (those carry the leader's HW).
bool fetch_answer_updates_session(const ReplicaFetchPartitionResponse& answer) noexcept;

// What the leader serves for one request.
struct FetchSessionResolution {
  // none, fetch_session_id_not_found or invalid_fetch_session_epoch (then nothing is served).
  errc error = errc::none;
  int32_t session_id = 0;                     // 0: a sessionless fetch
  int32_t session_epoch = kFetchSessionless;  // the request's (pass back to on_answered)
  // Every partition of the session with the fetch state the leader holds for it (a sessionless
  // request: its own partitions, in order). In a session the list starts at a rotating position,
  // so a response budget that cannot serve every partition is shared fairly across polls.
  std::vector<ReplicaFetchPartition> partitions;
};

class FetchSessionCache {
 public:
  // `id_seed` makes session ids differ between runs of a broker (its incarnation), so a follower
  // talking to a restarted leader is unlikely to hit an id it did not open; the id check plus the
  // follower's broker epoch settle it anyway. `max_sessions` bounds the cache (one per follower
  // normally); the least recently used session goes first.
  explicit FetchSessionCache(uint64_t id_seed = 0, size_t max_sessions = 1000);

  // Sessionless (session_epoch -1): the request's partitions, nothing cached (a session of that
  // follower is dropped). Opening (epoch 0): a new session with the request's partitions replaces
  // the follower's old one. Incremental (the session's id and next epoch): `forgotten` leave, then
  // the request's partitions are added or replace their state. Unknown id, another broker epoch
  // (the follower restarted) or a wrong epoch: an error and the session is left as it was, for a
  // full request to replace.
  FetchSessionResolution resolve(const ReplicaFetchRequest& req);

  // After the answer to a resolved request is built: each answered partition's known HW becomes
  // the one answered. Ignored unless the session is still the one that request was resolved in
  // and no later request was accepted meanwhile.
  void on_answered(BrokerId follower, int32_t session_id, int32_t session_epoch,
                   const std::vector<ReplicaFetchPartitionResponse>& answers);

  void drop(BrokerId follower);
  size_t size() const { return sessions_.size(); }
  // The fetch state the leader holds for a partition of the follower's session (tests, metrics).
  const ReplicaFetchPartition* held(BrokerId follower, const TopicPartition& tp) const;
  // The partitions in the follower's session, 0 without one.
  size_t session_partitions(BrokerId follower) const;
  // The partitions held across every session (metrics; one pass over the sessions).
  size_t cached_partitions() const;
  // The follower's session id, 0 without one.
  int32_t session_id(BrokerId follower) const;

 private:
  struct Session {
    int32_t id = 0;
    int64_t broker_epoch = -1;
    int32_t next_epoch = 1;  // the epoch the next incremental request must carry
    uint64_t last_used = 0;  // for eviction
    size_t rotation = 0;     // where the next resolution starts
    std::vector<ReplicaFetchPartition> partitions;
    std::unordered_map<TopicPartition, size_t> index;  // position in `partitions`

    void upsert(const ReplicaFetchPartition& p);
    void erase(const TopicPartition& tp);
  };

  int32_t new_session_id();
  void evict_if_full();

  std::unordered_map<BrokerId, Session> sessions_;
  uint32_t next_id_;
  uint64_t uses_ = 0;
  size_t max_sessions_;
};

// The follower's half for one fetcher (one leader broker). A new fetcher (or reset()) starts
// without a session: its first request opens one.
class FetchSessionBuilder {
 public:
  // Fills req.partitions, forgotten, session_id and session_epoch from the partitions the fetcher
  // wants to fetch now (each with its current state): all of them when no session is open,
  // otherwise those the leader does not hold as they are, and `forgotten` for those it holds that
  // are no longer wanted.
  void build(const std::vector<ReplicaFetchPartition>& wanted, ReplicaFetchRequest& req);
  // The answer to the last built request: adopts the session it opened and records the HW of each
  // answered partition as the leader does. A whole-request error drops the session.
  void on_response(const ReplicaFetchResponse& resp);
  // No answer (RPC error, timeout): the leader's state is unknown, so the next request is full.
  void reset();

  // The state the leader holds for `tp` as of the last built request (nullptr: not in it). Answers
  // are checked against this, not against the (maybe incremental) request's own list.
  const ReplicaFetchPartition* sent(const TopicPartition& tp) const;
  int32_t session_id() const { return session_id_; }
  // The epoch the next request will carry (kFetchSessionOpen without a session).
  int32_t next_epoch() const { return session_id_ == 0 ? kFetchSessionOpen : next_epoch_; }

 private:
  struct Sent {
    ReplicaFetchPartition state;
    uint64_t build = 0;  // the last build that wanted it
  };
  int32_t session_id_ = 0;
  int32_t next_epoch_ = kFetchSessionOpen;
  int32_t in_flight_epoch_ = kFetchSessionless;  // of the last built request
  uint64_t builds_ = 0;
  std::unordered_map<TopicPartition, Sent> sent_;
};

}  // namespace faultline::cluster
