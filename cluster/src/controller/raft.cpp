#include "faultline/cluster/controller/raft.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace faultline::cluster {

std::string_view to_string(RaftRole role) noexcept {
  switch (role) {
    case RaftRole::follower:
      return "follower";
    case RaftRole::pre_candidate:
      return "pre_candidate";
    case RaftRole::candidate:
      return "candidate";
    case RaftRole::leader:
      return "leader";
  }
  return "unknown";
}

namespace {

// The shell hands over what it persisted; a log that does not continue its snapshot or has a hole,
// or a term older than its own entries, is a corrupt store, and starting from it would break log
// matching.
void validate(const RaftConfig& config, const RaftHardState& state, RaftSnapshotPoint snapshot,
              const std::vector<MetadataEntry>& log) {
  if (std::find(config.voters.begin(), config.voters.end(), config.id) == config.voters.end())
    throw std::invalid_argument("raft: this node is not one of the voters");
  std::vector<ControllerNodeId> voters = config.voters;
  std::sort(voters.begin(), voters.end());
  if (std::adjacent_find(voters.begin(), voters.end()) != voters.end())
    throw std::invalid_argument("raft: a voter is listed twice (it would count twice)");
  if (config.election_timeout.count() <= 0 || config.heartbeat_interval.count() <= 0)
    throw std::invalid_argument("raft: election timeout and heartbeat interval must be positive");
  if (config.max_entries_per_append == 0)
    throw std::invalid_argument("raft: max_entries_per_append must be at least 1");
  if (snapshot.offset.value() < -1 || snapshot.term < 0 || snapshot.term > state.term ||
      (snapshot.offset.value() == -1) != (snapshot.term == 0))
    throw std::invalid_argument("raft: the snapshot point is not one a log could have");
  int64_t previous_term = snapshot.term;
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i].offset != MetadataOffset{snapshot.offset.value() + 1 + static_cast<int64_t>(i)})
      throw std::invalid_argument("raft: persisted log does not continue its snapshot");
    if (log[i].term < previous_term || log[i].term > state.term)
      throw std::invalid_argument("raft: persisted log terms go backwards or past the hard state");
    previous_term = log[i].term;
  }
}

}  // namespace

RaftNode::RaftNode(RaftConfig config, RaftHardState state, RaftSnapshotPoint snapshot,
                   std::vector<MetadataEntry> log, uint64_t seed, RaftTime now)
    : config_(std::move(config)),
      state_(state),
      snapshot_(snapshot),
      log_(std::move(log)),
      commit_(snapshot.offset),  // a snapshot holds committed state only
      rng_(seed) {
  validate(config_, state_, snapshot_, log_);
  reset_election_timer(now);
  // When this node last heard from a leader is gone with its memory: taken as now, so it votes for
  // nobody within a lease a leader may still hold on an answer it gave before it stopped.
  last_leader_contact_ = now;
  // Nobody else could ever answer a single voter: waiting for a timeout would only delay it.
  if (config_.voters.size() == 1)
    become_candidate(now);
}

// ---- time -----------------------------------------------------------------------------------

void RaftNode::tick(RaftTime now) {
  if (role_ == RaftRole::leader) {
    check_quorum(now);
    if (role_ == RaftRole::leader)
      send_heartbeats(now);
    return;
  }
  if (now < election_deadline_)
    return;
  if (config_.pre_vote)
    become_pre_candidate(now);
  else
    become_candidate(now);
}

void RaftNode::reset_election_timer(RaftTime now) {
  // Randomised per round so that two followers that lost the same leader rarely ask at once.
  const auto timeout = config_.election_timeout.count();
  std::uniform_int_distribution<int64_t> jitter(0, timeout - 1);
  election_deadline_ = now + std::chrono::milliseconds(timeout + jitter(rng_));
}

bool RaftNode::leader_recently_seen(RaftTime now) const {
  if (role_ == RaftRole::leader)
    return true;
  return last_leader_contact_ && now - *last_leader_contact_ < config_.election_timeout;
}

// A leader cut into a minority must stop acting as the active controller before a new one can be
// elected on the other side: a new leader needs a follower's full election timeout first.
void RaftNode::check_quorum(RaftTime now) {
  if (now - leader_since_ < config_.election_timeout)
    return;
  size_t in_contact = 1;  // itself
  for (const auto& [id, peer] : peers_) {
    if (peer.last_contact && now - *peer.last_contact < config_.election_timeout)
      ++in_contact;
  }
  if (in_contact < majority())
    become_follower(state_.term, kNoNode, now);
}

bool RaftNode::has_read_lease(RaftTime now) const {
  if (role_ != RaftRole::leader)
    return false;
  size_t holding = 1;  // itself
  for (const auto& [id, peer] : peers_) {
    if (peer.acked_sent && now - *peer.acked_sent < config_.election_timeout)
      ++holding;
  }
  return holding >= majority();
}

// Short enough that one lost request or answer is retried before the follower's election timeout
// (at least election_timeout) runs out and it starts asking for pre-votes.
std::chrono::milliseconds RaftNode::append_retry_timeout() const {
  return std::max(config_.election_timeout / 2, config_.heartbeat_interval);
}

void RaftNode::send_heartbeats(RaftTime now) {
  for (ControllerNodeId id : config_.voters) {
    auto it = peers_.find(id);
    if (it == peers_.end())
      continue;
    Peer& peer = it->second;
    if (peer.in_flight && now - peer.last_sent >= append_retry_timeout())
      peer.in_flight = false;  // request or answer lost
    if (!peer.in_flight && now - peer.last_sent >= config_.heartbeat_interval)
      send_append(id, now);
  }
}

// ---- roles ----------------------------------------------------------------------------------

void RaftNode::set_hard_state(RaftHardState state) {
  if (state == state_)
    return;  // nothing to fsync
  state_ = state;
  ready_.hard_state = state;
}

void RaftNode::become_follower(int64_t term, ControllerNodeId leader, RaftTime now) {
  if (term > state_.term)
    set_hard_state({term, kNoNode});
  role_ = RaftRole::follower;
  leader_ = leader;
  if (leader != kNoNode)
    last_leader_contact_ = now;
  votes_.clear();
  peers_.clear();
  reset_election_timer(now);
}

void RaftNode::become_pre_candidate(RaftTime now) {
  role_ = RaftRole::pre_candidate;
  leader_ = kNoNode;
  votes_.assign(1, config_.id);
  reset_election_timer(now);
  broadcast_vote(true);
}

void RaftNode::become_candidate(RaftTime now) {
  role_ = RaftRole::candidate;
  leader_ = kNoNode;
  set_hard_state({state_.term + 1, config_.id});
  votes_.assign(1, config_.id);
  reset_election_timer(now);
  broadcast_vote(false);
  if (votes_.size() >= majority())
    become_leader(now);
}

void RaftNode::become_leader(RaftTime now) {
  role_ = RaftRole::leader;
  leader_ = config_.id;
  leader_since_ = now;
  votes_.clear();
  peers_.clear();
  for (ControllerNodeId id : config_.voters) {
    if (id == config_.id)
      continue;
    Peer& peer = peers_[id];
    peer.next = last_offset().next();
    // An empty append at once: it announces the leader before any follower times out, and its
    // answer tells where each follower's log stands.
    send_append(id, now);
  }
  advance_commit();
}

// ---- votes ----------------------------------------------------------------------------------

bool RaftNode::is_voter(ControllerNodeId id) const {
  return std::find(config_.voters.begin(), config_.voters.end(), id) != config_.voters.end();
}

bool RaftNode::log_up_to_date(MetadataOffset offset, int64_t term) const {
  if (term != last_term())
    return term > last_term();
  return offset >= last_offset();
}

// Whether a vote at `term` for `candidate` keeps this node's promise of one vote per term. A node
// that already follows a leader of that term has no reason to elect another one in it.
bool RaftNode::may_vote_for(int64_t term, ControllerNodeId candidate) const {
  if (term != state_.term)
    return term > state_.term;
  if (state_.voted_for != kNoNode)
    return state_.voted_for == candidate;
  return leader_ == kNoNode;
}

void RaftNode::broadcast_vote(bool pre_vote) {
  VoteRequest request;
  request.term = pre_vote ? state_.term + 1 : state_.term;
  request.candidate = config_.id;
  request.last_offset = last_offset();
  request.last_term = last_term();
  request.pre_vote = pre_vote;
  for (ControllerNodeId id : config_.voters) {
    if (id != config_.id)
      ready_.messages.push_back({id, request});
  }
}

VoteResponse RaftNode::on_vote(const VoteRequest& request, RaftTime now) {
  if (request.pre_vote)
    return on_pre_vote(request, now);
  VoteResponse refused{state_.term, false, false};
  if (request.term < state_.term || !is_voter(request.candidate))
    return refused;
  if (request.term > state_.term) {
    // Leader stickiness: a voter that was merely cut off must not depose a healthy leader.
    if (leader_recently_seen(now))
      return refused;
    become_follower(request.term, kNoNode, now);
  }
  if (!may_vote_for(request.term, request.candidate) ||
      !log_up_to_date(request.last_offset, request.last_term))
    return VoteResponse{state_.term, false, false};
  set_hard_state({state_.term, request.candidate});
  reset_election_timer(now);
  return VoteResponse{state_.term, true, false};
}

// A pre-vote asks "would you vote for me at term + 1?" and changes nothing here, so a node that
// cannot win (stale log, or a leader still around) never bumps anybody's term.
VoteResponse RaftNode::on_pre_vote(const VoteRequest& request, RaftTime now) const {
  bool granted = is_voter(request.candidate) && !leader_recently_seen(now) &&
                 may_vote_for(request.term, request.candidate) &&
                 log_up_to_date(request.last_offset, request.last_term);
  return VoteResponse{state_.term, granted, true};
}

void RaftNode::on_vote_response(ControllerNodeId from, const VoteResponse& response, RaftTime now) {
  // A refused pre-vote from a higher term is adopted too: pre-vote requests change no voter's
  // term, so without it a node with the better log but an older term (the voter's term moved on in
  // an election this node missed) could neither win nor ever learn the term it must win in.
  bool refused_pre_vote = response.pre_vote && !response.granted;
  if (response.term > state_.term && (!response.pre_vote || refused_pre_vote)) {
    become_follower(response.term, kNoNode, now);
    return;
  }
  if (!response.granted || !is_voter(from))
    return;
  // A pre-vote answer carries the voter's term, which cannot tie it to a round; a real one must
  // be for the term this node stands in.
  bool current_round = response.pre_vote
                           ? role_ == RaftRole::pre_candidate
                           : role_ == RaftRole::candidate && response.term == state_.term;
  if (current_round)
    count_vote(from, now);
}

void RaftNode::count_vote(ControllerNodeId from, RaftTime now) {
  if (std::find(votes_.begin(), votes_.end(), from) == votes_.end())
    votes_.push_back(from);
  if (votes_.size() < majority())
    return;
  if (role_ == RaftRole::pre_candidate)
    become_candidate(now);
  else
    become_leader(now);
}

// ---- replication: follower ------------------------------------------------------------------

int64_t RaftNode::term_at(MetadataOffset offset) const {
  if (offset == snapshot_.offset)
    return snapshot_.term;
  if (offset < snapshot_.offset || offset > last_offset())
    return 0;
  return log_[index_of(offset)].term;
}

bool RaftNode::holds(MetadataOffset offset, int64_t term) const {
  // Up to the snapshot point everything is committed, and every leader that can still reach this
  // node (its term is not older) holds the same committed entries.
  if (offset <= snapshot_.offset)
    return true;
  return offset <= last_offset() && term_at(offset) == term;
}

// The common part of on_append and on_install_snapshot: whether the sender may lead this node
// (false: refuse with the current term), and if so following it.
bool RaftNode::accept_leader(int64_t term, ControllerNodeId leader, RaftTime now) {
  if (term < state_.term)
    return false;
  if (term == state_.term && role_ == RaftRole::leader)
    return false;  // two leaders in a term: refuse
  if (term > state_.term || role_ != RaftRole::follower || leader_ != leader) {
    become_follower(term, leader, now);
  } else {
    last_leader_contact_ = now;
    reset_election_timer(now);
  }
  return true;
}

AppendResponse RaftNode::on_append(const AppendRequest& request, RaftTime now) {
  if (!accept_leader(request.term, request.leader, now))
    return AppendResponse{state_.term, false, last_offset()};
  bool contiguous = true;
  for (size_t i = 0; i < request.entries.size(); ++i) {
    contiguous = contiguous && request.entries[i].offset.value() ==
                                   request.prev_offset.value() + 1 + static_cast<int64_t>(i);
  }
  if (!contiguous || !holds(request.prev_offset, request.prev_term))
    return AppendResponse{state_.term, false, last_offset()};
  accept_entries(request);
  // Only what this request proved identical to the leader's log may be applied: an entry past it
  // could still be a deposed leader's leftover.
  MetadataOffset verified{request.prev_offset.value() +
                          static_cast<int64_t>(request.entries.size())};
  commit_ = std::max(commit_, std::min(request.commit_offset, verified));
  return AppendResponse{state_.term, true, verified};
}

AppendResponse RaftNode::on_install_snapshot(const InstallSnapshotRequest& request, RaftTime now) {
  if (!accept_leader(request.term, request.leader, now))
    return AppendResponse{state_.term, false, last_offset()};
  const RaftSnapshotPoint point = request.snapshot;
  // Already committed here, or this log holds the same entry there: the log up to that point is
  // the leader's, and the snapshot adds nothing (a duplicate or an overtaken request).
  if (point.offset <= commit_ || holds(point.offset, point.term)) {
    commit_ = std::max(commit_, point.offset);
    return AppendResponse{state_.term, true, point.offset};
  }
  // Everything here is either in the snapshot or conflicts with the leader's log.
  snapshot_ = point;
  log_.clear();
  commit_ = point.offset;
  ready_.append.clear();
  ready_.truncate_after.reset();
  ready_.install_snapshot = point;
  return AppendResponse{state_.term, true, point.offset};
}

// Skips the entries this log already holds: a duplicated or reordered append whose entries match
// must not cut off what a later append added after them.
void RaftNode::accept_entries(const AppendRequest& request) {
  auto first_new = std::find_if(request.entries.begin(), request.entries.end(),
                                [&](const MetadataEntry& e) { return !holds(e.offset, e.term); });
  if (first_new == request.entries.end())
    return;
  if (first_new->offset <= last_offset())
    truncate_log_after(MetadataOffset{first_new->offset.value() - 1});
  for (auto it = first_new; it != request.entries.end(); ++it) {
    log_.push_back(*it);
    ready_.append.push_back(*it);
  }
}

void RaftNode::truncate_log_after(MetadataOffset keep) {
  log_.resize(index_of(keep.next()));
  // Several events may pile up before take_ready(): entries not yet handed to the shell are
  // dropped here, and the shell truncates at the lowest point any of them asked for.
  std::erase_if(ready_.append, [&](const MetadataEntry& e) { return e.offset > keep; });
  ready_.truncate_after = ready_.truncate_after ? std::min(*ready_.truncate_after, keep) : keep;
}

// ---- replication: leader --------------------------------------------------------------------

void RaftNode::send_append(ControllerNodeId to, RaftTime now) {
  Peer& peer = peers_.at(to);
  peer.next = std::clamp(peer.next, peer.match.next(), last_offset().next());
  if (peer.next <= snapshot_.offset) {
    send_snapshot(to, now);  // what it needs next is compacted away
    return;
  }
  AppendRequest request;
  request.term = state_.term;
  request.leader = config_.id;
  request.prev_offset = MetadataOffset{peer.next.value() - 1};
  request.prev_term = term_at(request.prev_offset);
  size_t first = index_of(peer.next);
  size_t count = std::min(config_.max_entries_per_append, log_.size() - first);
  request.entries.assign(log_.begin() + static_cast<ptrdiff_t>(first),
                         log_.begin() + static_cast<ptrdiff_t>(first + count));
  request.commit_offset = commit_;
  peer.in_flight = true;
  peer.in_flight_last = MetadataOffset{request.prev_offset.value() + static_cast<int64_t>(count)};
  peer.last_sent = now;
  ready_.messages.push_back({to, std::move(request)});
}

void RaftNode::send_snapshot(ControllerNodeId to, RaftTime now) {
  Peer& peer = peers_.at(to);
  peer.in_flight = true;
  peer.in_flight_last = snapshot_.offset;  // its answer's match_offset
  peer.last_sent = now;
  ready_.messages.push_back({to, InstallSnapshotRequest{state_.term, config_.id, snapshot_, {}}});
}

void RaftNode::on_append_response(ControllerNodeId from, const AppendResponse& response,
                                  RaftTime now, std::optional<RaftTime> sent) {
  if (response.term > state_.term) {
    become_follower(response.term, kNoNode, now);
    return;
  }
  if (role_ != RaftRole::leader || response.term < state_.term)
    return;
  auto it = peers_.find(from);
  if (it == peers_.end())
    return;
  Peer& peer = it->second;
  peer.last_contact = now;
  // Success or refusal, an answer in this term means the follower took this node as its leader
  // when the request arrived, after `sent`.
  if (sent && *sent >= leader_since_)
    peer.acked_sent = std::max(peer.acked_sent.value_or(*sent), *sent);
  bool answers_in_flight = true;
  if (response.success) {
    peer.match = std::max(peer.match, std::min(response.match_offset, last_offset()));
    peer.next = std::max(peer.next, peer.match.next());
    // Any other success answers an earlier request (duplicated or overtaken): it may raise the
    // match, but the request in flight is still out, and sending again for every duplicate
    // would multiply the traffic.
    answers_in_flight = response.match_offset == peer.in_flight_last;
    advance_commit();
  } else {
    peer.next = retry_point(peer, response.match_offset);
  }
  if (!answers_in_flight)
    return;
  peer.in_flight = false;
  if (peer.next <= last_offset())
    send_append(from, now);
}

// Where to probe after a refusal. A follower shorter than the probe said where it ends; one that
// holds a different entry at prev_offset is skipped back a whole term of the leader's log at once,
// since a deposed leader's suffix is usually one term long.
MetadataOffset RaftNode::retry_point(const Peer& peer, MetadataOffset hint) const {
  MetadataOffset prev{peer.next.value() - 1};
  MetadataOffset retry = hint.next();
  if (hint >= prev && prev > snapshot_.offset) {
    int64_t conflicting = term_at(prev);
    auto first_of_term =
        std::partition_point(log_.begin(), log_.begin() + static_cast<ptrdiff_t>(index_of(prev)),
                             [&](const MetadataEntry& e) { return e.term < conflicting; });
    retry = MetadataOffset{snapshot_.offset.value() + 1 + (first_of_term - log_.begin())};
  }
  return std::clamp(retry, peer.match.next(), last_offset().next());
}

void RaftNode::on_unreachable(ControllerNodeId peer, RaftTime /*now*/) {
  if (role_ != RaftRole::leader)
    return;
  if (auto it = peers_.find(peer); it != peers_.end())
    it->second.in_flight = false;
}

void RaftNode::advance_commit() {
  if (role_ != RaftRole::leader)
    return;
  // The shell persists every Ready before anything else happens, so the leader's whole log counts.
  std::vector<MetadataOffset> matched{last_offset()};
  for (const auto& [id, peer] : peers_)
    matched.push_back(peer.match);
  std::sort(matched.begin(), matched.end(), std::greater<>());
  MetadataOffset majority_holds = matched[majority() - 1];
  // Figure 8 of the Raft paper: an entry of an earlier term held by a majority can still be
  // overwritten by a leader that never saw it, so only the current term's entries are counted.
  if (majority_holds > commit_ && term_at(majority_holds) == state_.term)
    commit_ = majority_holds;
}

errc RaftNode::propose(std::span<const MetadataEntry> entries, RaftTime now) {
  if (role_ != RaftRole::leader)
    return errc::not_controller;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].offset.value() != last_offset().value() + 1 + static_cast<int64_t>(i))
      return errc::invalid_request;
  }
  for (const MetadataEntry& entry : entries) {
    log_.push_back(entry);
    log_.back().term = state_.term;
    ready_.append.push_back(log_.back());
  }
  for (ControllerNodeId id : config_.voters) {
    auto it = peers_.find(id);
    if (it != peers_.end() && !it->second.in_flight)
      send_append(id, now);
  }
  advance_commit();
  return errc::none;
}

// ---- snapshots ------------------------------------------------------------------------------

errc RaftNode::compact(MetadataOffset through) {
  if (through <= snapshot_.offset || through > commit_)
    return errc::invalid_request;
  const RaftSnapshotPoint point{through, term_at(through)};
  log_.erase(log_.begin(), log_.begin() + static_cast<ptrdiff_t>(index_of(through.next())));
  snapshot_ = point;
  return errc::none;
}

// ---- output ---------------------------------------------------------------------------------

RaftReady RaftNode::take_ready() {
  ready_.commit = commit_;
  RaftReady ready = std::move(ready_);
  ready_ = RaftReady{};
  return ready;
}

std::vector<VoterProgress> RaftNode::progress(RaftTime now) const {
  std::vector<VoterProgress> result;
  result.reserve(config_.voters.size());
  for (ControllerNodeId id : config_.voters) {
    VoterProgress p;
    p.id = id;
    if (id == config_.id) {
      p.match_offset = last_offset();
      p.last_contact = now;
    } else if (auto it = peers_.find(id); it != peers_.end()) {
      p.match_offset = it->second.match;
      p.last_contact = it->second.last_contact;
    }
    result.push_back(p);
  }
  return result;
}

}  // namespace faultline::cluster
