// RaftNode: one voter of the controller quorum (ARCHITECTURE.md §2 item 18) as a pure state
// machine — leader election with pre-vote, replication of the metadata log, commit by majority,
// and the term as the controller epoch that fences a deposed active controller.
//
// The replicated log *is* the metadata log: entry k is the MetadataEntry at offset k, stamped with
// the term of the leader that created it. Nothing here touches a socket, a file or a clock: time
// comes in as arguments, randomness from a seed, and what must be persisted or sent goes out in
// a RaftReady. The shell (ControllerService and faultline-controller) drives it:
//
//   1. Feed it events: tick(now) every few ms, on_vote / on_append for requests from peers
//      (their return value is the response), on_vote_response / on_append_response for answers
//      to what it sent, on_unreachable when a send failed, propose() for the leader's new records.
//   2. After every event call take_ready() and, in this order: persist `hard_state` (fsync),
//      truncate the log after `truncate_after` and append `append` (fsync), and only then send
//      `messages` and the response of the event — a vote or an acknowledgement must never be
//      ahead of disk. Finally apply everything up to `commit` (it only ever grows).
//
// Protocol (Raft, Ongaro 2014, with the thesis's pre-vote and check-quorum; KRaft's KIP-595 and
// KIP-996 are the same ideas):
//  - A follower that has heard nothing from a leader for its election timeout (randomised per
//    round in [election_timeout, 2 * election_timeout)) becomes a pre-candidate and asks every
//    voter for a pre-vote at term + 1 without changing its own term. A voter grants a pre-vote
//    when the candidate's log is at least as up to date as its own and it has not heard from a
//    leader within its election timeout. Only with a majority of pre-votes does the node become a
//    candidate: term + 1, a vote for itself (persisted), vote requests to every voter.
//  - A real vote is granted once per term, to a candidate whose log is at least as up to date
//    (last term, then last offset). A node that has heard from a leader within election_timeout
//    ignores vote requests altogether (it neither grants nor adopts their term): a voter that was
//    merely cut off cannot depose a healthy leader when it comes back.
//  - Any message with a higher term (except an ignored vote request and pre-vote traffic) makes
//    the node a follower of that term. Messages with a lower term are refused with the current
//    term, which is how a deposed leader learns it was deposed. One piece of pre-vote traffic does
//    count: a refused pre-vote from a higher term, else a pre-candidate with the better log but an
//    older term could never learn the term it must win in.
//  - The leader sends AppendRequests with at most max_entries_per_append entries, one request in
//    flight per follower, and an empty one every heartbeat_interval. A follower refuses an append
//    whose (prev_offset, prev_term) it does not hold and answers with its last offset as a hint;
//    it truncates a conflicting suffix only where the leader's entries differ.
//  - Commit: the highest offset held by a majority whose entry has the leader's current term
//    (earlier terms commit with it). A leader that has not heard from a majority within
//    election_timeout steps down (check-quorum), so a leader cut into a minority stops acting.
//  - Read lease: a leader may serve reads from its own state (no round trip) while a majority,
//    itself included, acknowledged an append of its term *sent* less than election_timeout ago.
//    Each of them then refuses every (pre-)vote until at least election_timeout after that send
//    (leader stickiness, above), so no other leader can exist yet: a leader cut off or paused
//    stops serving reads on its own, before anyone could be elected in its place. A node that
//    starts also refuses votes for its first election_timeout, since it has forgotten when it last
//    heard from a leader. The times are one host's steady clock.
//  - Snapshots (the thesis's chapter 5, KRaft's metadata snapshots): the shell saves the state as
//  of
//    a committed offset and calls compact(offset); the entries up to it leave the log, and the
//    snapshot's (offset, term) takes the place of the last one. A follower that needs an entry
//    the leader no longer holds gets an InstallSnapshotRequest instead of an append; the shell
//    attaches the snapshot's bytes when it sends it. On receipt, a follower whose log already
//    holds that point (or has committed past it) keeps its log; any other throws its log away,
//    and its Ready carries `install_snapshot`: the shell persists the snapshot before anything
//    else of that Ready. Entries at or below the snapshot point are committed, so every leader
//    holds them: an append whose prev_offset lies there always matches.
//  - A single-voter quorum elects itself at construction.
//  - A new leader's first proposal should be an entry of its own term (the shell appends a
//    ControllerElected record): until one commits, entries of earlier terms cannot.
//
// Threading: none; the shell serialises calls.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <unordered_map>
#include <variant>
#include <vector>

#include "faultline/cluster/controller/metadata.h"
#include "faultline/cluster/errc.h"

namespace faultline::cluster {

using RaftClock = std::chrono::steady_clock;
using RaftTime = RaftClock::time_point;
using ControllerNodeId = int32_t;
inline constexpr ControllerNodeId kNoNode = -1;

struct RaftConfig {
  ControllerNodeId id = 0;
  std::vector<ControllerNodeId> voters{0};           // every voter, this node included
  std::chrono::milliseconds election_timeout{1000};  // controller.quorum.election.timeout.ms
  std::chrono::milliseconds heartbeat_interval{100};
  size_t max_entries_per_append = 2048;
  bool pre_vote = true;  // off only to show, in tests, what pre-vote prevents
};

// What must survive a restart besides the log (KRaft's quorum-state file).
struct RaftHardState {
  int64_t term = 0;
  ControllerNodeId voted_for = kNoNode;
  friend bool operator==(const RaftHardState&, const RaftHardState&) = default;
};

struct VoteRequest {
  int64_t term = 0;  // the term the candidate asks for (current + 1 for a pre-vote)
  ControllerNodeId candidate = kNoNode;
  MetadataOffset last_offset{-1};
  int64_t last_term = 0;
  bool pre_vote = false;
  friend bool operator==(const VoteRequest&, const VoteRequest&) = default;
};
struct VoteResponse {
  int64_t term = 0;  // the voter's current term
  bool granted = false;
  bool pre_vote = false;
  friend bool operator==(const VoteResponse&, const VoteResponse&) = default;
};
struct AppendRequest {
  int64_t term = 0;
  ControllerNodeId leader = kNoNode;
  MetadataOffset prev_offset{-1};  // the entry just before `entries` (-1: none)
  int64_t prev_term = 0;           // its term (0 when prev_offset is -1)
  std::vector<MetadataEntry> entries;
  MetadataOffset commit_offset{-1};
  friend bool operator==(const AppendRequest&, const AppendRequest&) = default;
};
struct AppendResponse {
  int64_t term = 0;
  bool success = false;
  // success: the last offset known to match the leader's log (prev_offset + entries);
  // refusal: the follower's last offset, where the leader may retry from.
  MetadataOffset match_offset{-1};
  friend bool operator==(const AppendResponse&, const AppendResponse&) = default;
};

// Where the log starts after compaction: the last offset a snapshot covers and its term (-1 / 0:
// no snapshot, the log starts at offset 0).
struct RaftSnapshotPoint {
  MetadataOffset offset{-1};
  int64_t term = 0;
  friend bool operator==(const RaftSnapshotPoint&, const RaftSnapshotPoint&) = default;
};

// The leader's snapshot for a follower that is behind its log start. RaftNode leaves `data` empty:
// the shell owns the snapshot's bytes and attaches them when it sends the message. The answer is
// an AppendResponse (success, match_offset = last_offset).
struct InstallSnapshotRequest {
  int64_t term = 0;
  ControllerNodeId leader = kNoNode;
  RaftSnapshotPoint snapshot;
  std::vector<uint8_t> data;
  friend bool operator==(const InstallSnapshotRequest&, const InstallSnapshotRequest&) = default;
};

using RaftMessage = std::variant<VoteRequest, AppendRequest, InstallSnapshotRequest>;
struct RaftOutgoing {
  ControllerNodeId to = kNoNode;
  RaftMessage message;
};

// What the shell must do after an event, in field order (see the top of this file).
struct RaftReady {
  std::optional<RaftHardState> hard_state;  // changed: persist before anything else
  // A leader's snapshot replaced the whole log: persist the snapshot just received, then start
  // the log empty after its offset (before truncate_after and append, which then apply to it).
  std::optional<RaftSnapshotPoint> install_snapshot;
  std::optional<MetadataOffset> truncate_after;  // drop persisted entries with offset > this
  std::vector<MetadataEntry> append;             // then persist these
  std::vector<RaftOutgoing> messages;            // then send these
  MetadataOffset commit{-1};                     // then apply up to here (never decreases)
  bool empty() const {
    return !hard_state && !install_snapshot && !truncate_after && append.empty() &&
           messages.empty();
  }
};

enum class RaftRole : uint8_t { follower, pre_candidate, candidate, leader };
std::string_view to_string(RaftRole role) noexcept;

// The leader's view of one voter, for DescribeQuorum and metrics.
struct VoterProgress {
  ControllerNodeId id = kNoNode;
  MetadataOffset match_offset{-1};       // highest offset known replicated there (-1: unknown)
  std::optional<RaftTime> last_contact;  // last answer from it (the leader itself: now)
};

class RaftNode {
 public:
  // `log` is what the shell persisted after its snapshot `snapshot` (contiguous from
  // snapshot.offset + 1, terms non-decreasing and not below the snapshot's), `state` its persisted
  // hard state. `seed` drives the election timeout jitter. Throws std::invalid_argument for a
  // config or a persisted state that cannot be right.
  RaftNode(RaftConfig config, RaftHardState state, RaftSnapshotPoint snapshot,
           std::vector<MetadataEntry> log, uint64_t seed, RaftTime now);
  // Without a snapshot: the log starts at offset 0.
  RaftNode(RaftConfig config, RaftHardState state, std::vector<MetadataEntry> log, uint64_t seed,
           RaftTime now)
      : RaftNode(std::move(config), state, RaftSnapshotPoint{}, std::move(log), seed, now) {}

  // Election timeouts (pre-vote, then vote), heartbeats and retries of lost appends, check-quorum.
  void tick(RaftTime now);

  VoteResponse on_vote(const VoteRequest& request, RaftTime now);
  AppendResponse on_append(const AppendRequest& request, RaftTime now);
  // The answer is an AppendResponse for the leader's on_append_response.
  AppendResponse on_install_snapshot(const InstallSnapshotRequest& request, RaftTime now);
  void on_vote_response(ControllerNodeId from, const VoteResponse& response, RaftTime now);
  void on_append_response(ControllerNodeId from, const AppendResponse& response, RaftTime now,
                          std::optional<RaftTime> sent = std::nullopt);
  // `sent`: when the shell sent the request this answers; only an answer with it extends the
  // read lease (the shell knows it; a bare answer could be a duplicate of an old request).
  // An append to `peer` got no answer (connection refused, timeout): another may be sent at the
  // next heartbeat. Harmless for any other message.
  void on_unreachable(ControllerNodeId peer, RaftTime now);

  // Leader only: appends the entries (their offsets must continue the log; their term is set to
  // the current term here) and replicates them. errc::not_controller when not the leader,
  // errc::invalid_request when the offsets do not continue the log.
  errc propose(std::span<const MetadataEntry> entries, RaftTime now);

  // The shell has saved a snapshot of the state as of `through` (committed, and past the current
  // snapshot point): the entries up to it leave the log. errc::invalid_request otherwise.
  errc compact(MetadataOffset through);

  RaftReady take_ready();

  RaftRole role() const { return role_; }
  bool is_leader() const { return role_ == RaftRole::leader; }
  // Leader with a read lease at `now` (top of this file): no other leader can exist, so what it
  // has committed is everything committed.
  bool has_read_lease(RaftTime now) const;
  int64_t term() const { return state_.term; }
  ControllerNodeId id() const { return config_.id; }
  ControllerNodeId leader() const { return leader_; }  // kNoNode when unknown
  const RaftHardState& hard_state() const { return state_; }
  MetadataOffset commit_offset() const { return commit_; }
  MetadataOffset last_offset() const {
    return MetadataOffset{snapshot_.offset.value() + static_cast<int64_t>(log_.size())};
  }
  int64_t last_term() const { return log_.empty() ? snapshot_.term : log_.back().term; }
  // Term of the entry at `offset`: the snapshot's at its point, 0 for -1, for an offset past the
  // end or one compacted away.
  int64_t term_at(MetadataOffset offset) const;
  // The entries after the snapshot point, from snapshot().offset + 1 to last_offset().
  std::span<const MetadataEntry> log() const { return log_; }
  const RaftSnapshotPoint& snapshot() const { return snapshot_; }
  const RaftConfig& config() const { return config_; }
  // Every voter's progress as this node knows it (meaningful on the leader).
  std::vector<VoterProgress> progress(RaftTime now) const;

 private:
  struct Peer {
    MetadataOffset match{-1};
    MetadataOffset next{0};  // next offset to send
    bool in_flight = false;
    MetadataOffset in_flight_last{-1};  // prev_offset + entries of the request in flight
    RaftTime last_sent{};
    std::optional<RaftTime> last_contact;
    // When the latest request of this term it answered was sent (the read lease).
    std::optional<RaftTime> acked_sent;
  };

  size_t majority() const { return config_.voters.size() / 2 + 1; }
  bool is_voter(ControllerNodeId id) const;
  void reset_election_timer(RaftTime now);
  void become_follower(int64_t term, ControllerNodeId leader, RaftTime now);
  void become_pre_candidate(RaftTime now);
  void become_candidate(RaftTime now);
  void become_leader(RaftTime now);
  void broadcast_vote(bool pre_vote);
  bool log_up_to_date(MetadataOffset last_offset, int64_t last_term) const;
  void send_append(ControllerNodeId to, RaftTime now);
  void send_snapshot(ControllerNodeId to, RaftTime now);
  bool accept_leader(int64_t term, ControllerNodeId leader, RaftTime now);
  size_t index_of(MetadataOffset offset) const {
    return static_cast<size_t>(offset.value() - snapshot_.offset.value() - 1);
  }
  void advance_commit();
  void set_hard_state(RaftHardState state);
  bool leader_recently_seen(RaftTime now) const;

  bool may_vote_for(int64_t term, ControllerNodeId candidate) const;
  VoteResponse on_pre_vote(const VoteRequest& request, RaftTime now) const;
  void count_vote(ControllerNodeId from, RaftTime now);
  bool holds(MetadataOffset offset, int64_t term) const;
  void accept_entries(const AppendRequest& request);
  void truncate_log_after(MetadataOffset keep);
  MetadataOffset retry_point(const Peer& peer, MetadataOffset hint) const;
  void check_quorum(RaftTime now);
  void send_heartbeats(RaftTime now);
  std::chrono::milliseconds append_retry_timeout() const;

  RaftConfig config_;
  RaftHardState state_;
  RaftSnapshotPoint snapshot_;
  std::vector<MetadataEntry> log_;  // log_[i] is the entry at snapshot_.offset + 1 + i
  MetadataOffset commit_{-1};
  RaftRole role_ = RaftRole::follower;
  ControllerNodeId leader_ = kNoNode;
  std::mt19937_64 rng_;
  RaftTime election_deadline_{};
  std::optional<RaftTime> last_leader_contact_;
  std::vector<ControllerNodeId> votes_;               // granted (pre-)votes of the current round
  std::unordered_map<ControllerNodeId, Peer> peers_;  // the leader's replication state
  // When this node last became leader: check-quorum gives its followers an election timeout.
  RaftTime leader_since_{};
  RaftReady ready_;
};

}  // namespace faultline::cluster
