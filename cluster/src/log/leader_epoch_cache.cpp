#include "faultline/cluster/log/leader_epoch_cache.h"

#include <algorithm>
#include <charconv>

namespace faultline::cluster {

bool LeaderEpochCache::assign(LeaderEpoch epoch, Offset start) {
  if (epoch.value() < 0 || start.value() < 0)
    return false;
  if (!entries_.empty() && entries_.back().epoch == epoch)
    return false;
  std::erase_if(entries_,
                [&](const EpochEntry& e) { return e.epoch >= epoch || e.start_offset >= start; });
  entries_.push_back({epoch, start});
  return true;
}

bool LeaderEpochCache::truncate_from_end(Offset end) {
  const auto removed =
      std::erase_if(entries_, [&](const EpochEntry& e) { return e.start_offset >= end; });
  return removed > 0;
}

std::optional<Offset> LeaderEpochCache::latest_start() const {
  if (entries_.empty())
    return std::nullopt;
  return entries_.back().start_offset;
}

std::pair<LeaderEpoch, Offset> LeaderEpochCache::end_offset_for(LeaderEpoch requested,
                                                                Offset log_end) const {
  constexpr std::pair<LeaderEpoch, Offset> kUndefined{LeaderEpoch{-1}, Offset{-1}};
  if (requested == kNoLeaderEpoch || entries_.empty())
    return kUndefined;
  if (requested >= entries_.back().epoch)
    return {entries_.back().epoch, log_end};  // == latest: Kafka; > latest: see header (*)
  // First entry with epoch > requested (exists: requested < latest).
  const auto higher =
      std::upper_bound(entries_.begin(), entries_.end(), requested,
                       [](LeaderEpoch r, const EpochEntry& e) { return r < e.epoch; });
  if (higher == entries_.begin())
    return {requested, higher->start_offset};
  return {std::prev(higher)->epoch, higher->start_offset};
}

std::string LeaderEpochCache::serialize() const {
  std::string out = "0\n" + std::to_string(entries_.size()) + "\n";
  for (const auto& e : entries_)
    out += std::to_string(e.epoch.value()) + " " + std::to_string(e.start_offset.value()) + "\n";
  return out;
}

namespace {

// Reads one base-10 integer followed by `sep` from the front of `text`.
template <typename T>
bool take(std::string_view& text, T& value, char sep) {
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr == text.data() + text.size() || *ptr != sep)
    return false;
  text.remove_prefix(static_cast<size_t>(ptr - text.data()) + 1);
  return true;
}

}  // namespace

std::optional<LeaderEpochCache> LeaderEpochCache::parse(std::string_view text) {
  int version = -1;
  size_t count = 0;
  if (!take(text, version, '\n') || version != 0 || !take(text, count, '\n'))
    return std::nullopt;
  std::vector<EpochEntry> entries;
  for (size_t i = 0; i < count; ++i) {
    int32_t epoch = 0;
    int64_t start = 0;
    if (!take(text, epoch, ' ') || !take(text, start, '\n') || epoch < 0 || start < 0)
      return std::nullopt;
    if (!entries.empty() &&
        (epoch <= entries.back().epoch.value() || start <= entries.back().start_offset.value()))
      return std::nullopt;
    entries.push_back({LeaderEpoch{epoch}, Offset{start}});
  }
  if (!text.empty())
    return std::nullopt;
  return LeaderEpochCache(std::move(entries));
}

}  // namespace faultline::cluster
