#include "faultline/chaos/faults/shaper.h"

#include <fmt/format.h>

namespace faultline::chaos {

bool ShaperPolicy::chance(double pct) {
  if (pct <= 0)
    return false;
  return std::uniform_real_distribution<double>(0.0, 100.0)(rng_) < pct;
}

ShaperDecision ShaperPolicy::decide() {
  ShaperDecision d;
  // Draw every stream every time so one parameter's value does not shift the others' sequences.
  const bool lost = chance(params_.loss_pct);
  const bool dup = chance(params_.duplicate_pct);
  const bool corrupt = chance(params_.corrupt_pct);
  const bool skip_delay = chance(params_.reorder_pct);
  auto hold = std::chrono::duration_cast<std::chrono::nanoseconds>(params_.delay);
  if (params_.jitter.count() > 0) {
    const auto j = std::chrono::duration_cast<std::chrono::nanoseconds>(params_.jitter).count();
    hold += std::chrono::nanoseconds(std::uniform_int_distribution<int64_t>(-j, j)(rng_));
  }
  d.drop = lost;
  d.duplicate = !lost && dup;
  d.corrupt = !lost && corrupt;
  d.hold = skip_delay ? std::chrono::nanoseconds(0) : std::max(hold, std::chrono::nanoseconds(0));
  return d;
}

std::vector<ReleaseQueue::Held> ReleaseQueue::pop_due(Clock::time_point now) {
  std::vector<Held> out;
  while (!heap_.empty() && heap_.top().release <= now) {
    out.push_back(heap_.top());
    heap_.pop();
  }
  return out;
}

std::vector<ReleaseQueue::Held> ReleaseQueue::pop_all() {
  std::vector<Held> out;
  while (!heap_.empty()) {
    out.push_back(heap_.top());
    heap_.pop();
  }
  return out;
}

bool recompute_l4_checksum(std::vector<uint8_t>& pkt) {
  if (pkt.size() < 20 || (pkt[0] >> 4) != 4)
    return false;
  const size_t ihl = static_cast<size_t>(pkt[0] & 0x0f) * 4;
  const size_t total = (static_cast<size_t>(pkt[2]) << 8) | pkt[3];
  if (ihl < 20 || total > pkt.size() || total < ihl)
    return false;
  const uint8_t proto = pkt[9];
  const size_t len = total - ihl;
  size_t field = 0;
  if (proto == 6) {
    field = 16;
  } else if (proto == 17) {
    field = 6;
  } else {
    return false;
  }
  if (len < field + 2)
    return false;
  pkt[ihl + field] = 0;
  pkt[ihl + field + 1] = 0;
  uint32_t sum = 0;
  for (size_t i = 12; i < 20; i += 2)
    sum += (static_cast<uint32_t>(pkt[i]) << 8) | pkt[i + 1];
  sum += proto;
  sum += static_cast<uint32_t>(len);
  for (size_t i = 0; i + 1 < len; i += 2) {
    sum += (static_cast<uint32_t>(pkt[ihl + i]) << 8) | pkt[ihl + i + 1];
  }
  if (len & 1)
    sum += static_cast<uint32_t>(pkt[ihl + len - 1]) << 8;
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  uint16_t checksum = static_cast<uint16_t>(~sum);
  if (proto == 17 && checksum == 0)
    checksum = 0xffff;  // 0 means "no checksum" for UDP
  pkt[ihl + field] = static_cast<uint8_t>(checksum >> 8);
  pkt[ihl + field + 1] = static_cast<uint8_t>(checksum & 0xff);
  return true;
}

std::vector<std::string> shaper_arguments(const PacketParams& p, uint16_t queue, uint64_t seed,
                                          uint32_t reinject_mark, int ready_fd) {
  return {"--queue",         std::to_string(queue),
          "--delay-us",      std::to_string(p.delay.count()),
          "--jitter-us",     std::to_string(p.jitter.count()),
          "--loss-pct",      fmt::format("{}", p.loss_pct),
          "--duplicate-pct", fmt::format("{}", p.duplicate_pct),
          "--reorder-pct",   fmt::format("{}", p.reorder_pct),
          "--corrupt-pct",   fmt::format("{}", p.corrupt_pct),
          "--seed",          std::to_string(seed),
          "--mark",          std::to_string(reinject_mark),
          "--ready-fd",      std::to_string(ready_fd)};
}

}  // namespace faultline::chaos
