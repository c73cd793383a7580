#include "faultline/cluster/replication/fetch_session.h"

#include <algorithm>
#include <limits>

namespace faultline::cluster {

int32_t next_fetch_session_epoch(int32_t epoch) noexcept {
  return epoch <= 0 || epoch == std::numeric_limits<int32_t>::max() ? 1 : epoch + 1;
}

bool fetch_answer_updates_session(const ReplicaFetchPartitionResponse& answer) noexcept {
  return answer.error == errc::none;
}

// ---- leader ------------------------------------------------------------------------------------

void FetchSessionCache::Session::upsert(const ReplicaFetchPartition& p) {
  auto [it, added] = index.try_emplace(p.tp, partitions.size());
  if (added) {
    partitions.push_back(p);
  } else {
    partitions[it->second] = p;
  }
}

void FetchSessionCache::Session::erase(const TopicPartition& tp) {
  auto it = index.find(tp);
  if (it == index.end())
    return;
  size_t at = it->second;
  index.erase(it);
  if (at + 1 != partitions.size()) {
    partitions[at] = std::move(partitions.back());
    index[partitions[at].tp] = at;
  }
  partitions.pop_back();
}

FetchSessionCache::FetchSessionCache(uint64_t id_seed, size_t max_sessions)
    : next_id_(static_cast<uint32_t>(id_seed ^ (id_seed >> 32))),
      max_sessions_(std::max<size_t>(max_sessions, 1)) {}

int32_t FetchSessionCache::new_session_id() {
  // Positive and never 0; consecutive ids differ, so a follower's old id never names its new one.
  for (;;) {
    auto id = static_cast<int32_t>(++next_id_ & 0x7fffffffu);
    if (id != 0)
      return id;
  }
}

void FetchSessionCache::evict_if_full() {
  while (sessions_.size() >= max_sessions_) {
    auto oldest = std::min_element(sessions_.begin(), sessions_.end(), [](auto& a, auto& b) {
      return a.second.last_used < b.second.last_used;
    });
    sessions_.erase(oldest);
  }
}

FetchSessionResolution FetchSessionCache::resolve(const ReplicaFetchRequest& req) {
  FetchSessionResolution out;
  out.session_epoch = req.session_epoch;
  const BrokerId follower{req.replica_id};

  if (req.session_epoch == kFetchSessionless) {
    sessions_.erase(follower);  // a follower that stops using its session closes it
    out.partitions = req.partitions;
    return out;
  }

  if (req.session_epoch == kFetchSessionOpen) {
    sessions_.erase(follower);
    evict_if_full();
    Session& s = sessions_[follower];
    s.id = new_session_id();
    s.broker_epoch = req.broker_epoch;
    s.next_epoch = next_fetch_session_epoch(kFetchSessionOpen);
    s.last_used = ++uses_;
    s.partitions.reserve(req.partitions.size());
    for (const auto& p : req.partitions)
      s.upsert(p);
    s.rotation = 0;
    out.session_id = s.id;
    out.partitions = s.partitions;
    return out;
  }

  auto it = sessions_.find(follower);
  if (it == sessions_.end() || it->second.id != req.session_id ||
      it->second.broker_epoch != req.broker_epoch) {
    out.error = errc::fetch_session_id_not_found;
    return out;
  }
  Session& s = it->second;
  if (req.session_epoch != s.next_epoch) {
    out.error = errc::invalid_fetch_session_epoch;
    return out;
  }
  s.next_epoch = next_fetch_session_epoch(s.next_epoch);
  s.last_used = ++uses_;
  for (const auto& tp : req.forgotten)
    s.erase(tp);
  for (const auto& p : req.partitions)
    s.upsert(p);

  out.session_id = s.id;
  const size_t n = s.partitions.size();
  out.partitions.reserve(n);
  if (n > 0) {
    size_t start = ++s.rotation % n;
    out.partitions.insert(out.partitions.end(),
                          s.partitions.begin() + static_cast<std::ptrdiff_t>(start),
                          s.partitions.end());
    out.partitions.insert(out.partitions.end(), s.partitions.begin(),
                          s.partitions.begin() + static_cast<std::ptrdiff_t>(start));
  }
  return out;
}

void FetchSessionCache::on_answered(BrokerId follower, int32_t session_id, int32_t session_epoch,
                                    const std::vector<ReplicaFetchPartitionResponse>& answers) {
  if (session_id == 0)
    return;
  auto it = sessions_.find(follower);
  if (it == sessions_.end() || it->second.id != session_id ||
      it->second.next_epoch != next_fetch_session_epoch(session_epoch)) {
    return;  // replaced or moved on while the poll waited: that follower will not see this answer
  }
  Session& s = it->second;
  for (const auto& a : answers) {
    if (!fetch_answer_updates_session(a))
      continue;
    if (auto at = s.index.find(a.tp); at != s.index.end())
      s.partitions[at->second].known_high_watermark = a.high_watermark;
  }
}

void FetchSessionCache::drop(BrokerId follower) {
  sessions_.erase(follower);
}

const ReplicaFetchPartition* FetchSessionCache::held(BrokerId follower,
                                                     const TopicPartition& tp) const {
  auto it = sessions_.find(follower);
  if (it == sessions_.end())
    return nullptr;
  auto at = it->second.index.find(tp);
  return at == it->second.index.end() ? nullptr : &it->second.partitions[at->second];
}

size_t FetchSessionCache::session_partitions(BrokerId follower) const {
  auto it = sessions_.find(follower);
  return it == sessions_.end() ? 0 : it->second.partitions.size();
}

size_t FetchSessionCache::cached_partitions() const {
  size_t n = 0;
  for (const auto& [follower, session] : sessions_)
    n += session.partitions.size();
  return n;
}

int32_t FetchSessionCache::session_id(BrokerId follower) const {
  auto it = sessions_.find(follower);
  return it == sessions_.end() ? 0 : it->second.id;
}

// ---- follower ----------------------------------------------------------------------------------

void FetchSessionBuilder::build(const std::vector<ReplicaFetchPartition>& wanted,
                                ReplicaFetchRequest& req) {
  req.partitions.clear();
  req.forgotten.clear();
  const uint64_t build = ++builds_;
  const bool full = session_id_ == 0;
  if (full)
    sent_.clear();
  req.session_id = session_id_;
  req.session_epoch = full ? kFetchSessionOpen : next_epoch_;
  in_flight_epoch_ = req.session_epoch;
  sent_.reserve(wanted.size());
  for (const auto& w : wanted) {
    auto it = sent_.find(w.tp);
    if (it == sent_.end()) {
      sent_.emplace(w.tp, Sent{w, build});
    } else {
      it->second.build = build;
      if (it->second.state == w && !full)
        continue;
      it->second.state = w;
    }
    req.partitions.push_back(w);
  }
  for (auto it = sent_.begin(); it != sent_.end();) {
    if (it->second.build == build) {
      ++it;
      continue;
    }
    req.forgotten.push_back(it->first);
    it = sent_.erase(it);
  }
}

void FetchSessionBuilder::on_response(const ReplicaFetchResponse& resp) {
  if (resp.error != errc::none) {
    reset();
    return;
  }
  if (in_flight_epoch_ == kFetchSessionOpen) {
    session_id_ = resp.session_id;  // 0: the leader keeps none, so the next request is full again
    next_epoch_ = next_fetch_session_epoch(kFetchSessionOpen);
  } else if (in_flight_epoch_ != kFetchSessionless && resp.session_id == session_id_) {
    next_epoch_ = next_fetch_session_epoch(in_flight_epoch_);
  } else {
    reset();  // not the answer to the request this builder made
    return;
  }
  in_flight_epoch_ = kFetchSessionless;
  if (session_id_ == 0)
    return;
  for (const auto& a : resp.partitions) {
    if (!fetch_answer_updates_session(a))
      continue;
    if (auto it = sent_.find(a.tp); it != sent_.end())
      it->second.state.known_high_watermark = a.high_watermark;
  }
}

void FetchSessionBuilder::reset() {
  session_id_ = 0;
  next_epoch_ = kFetchSessionOpen;
  in_flight_epoch_ = kFetchSessionless;
  sent_.clear();
}

const ReplicaFetchPartition* FetchSessionBuilder::sent(const TopicPartition& tp) const {
  auto it = sent_.find(tp);
  return it == sent_.end() ? nullptr : &it->second.state;
}

}  // namespace faultline::cluster
