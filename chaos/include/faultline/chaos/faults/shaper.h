// The pure core of faultline-shaper, the userspace stand-in for netem on kernels without sch_netem.
//
// faultline-shaper runs in a *receiver's* namespace and reads packets from an NFQUEUE (a prerouting
// rule in the run's table sends what arrives from the faulted node there; why at the receiver: see
// the packets fault in backends.cpp). For each packet it asks ShaperPolicy what to do; packets wait
// in a ReleaseQueue and get their ACCEPT verdict at their release time, in release-time order.
//
// Semantics follow netem's on the sender's egress:
// - delay/jitter: release = arrival + delay + uniform(-jitter, +jitter); jitter can reorder packets
//   (as netem does without a rate).
// - loss: dropped with probability loss_pct.
// - duplicate: a copy is re-sent at the same release through a raw socket to the packet's own
//   destination (this node), so it arrives over loopback; it carries a mark the rule skips.
// - reorder: with probability reorder_pct a packet skips the delay (sent at once) while the others
//   wait; like netem this only means something with a delay.
// - corrupt: dropped and counted as corrupted. netem flips a bit and the receiver's checksum check
//   drops the packet; here the IPv4 header checksum has already been verified before prerouting,
//   and damaging the payload would not be caught on veth (CHECKSUM_PARTIAL packets are trusted), so
//   corrupted bytes would reach the application. Dropping is what the receiver would have done.
// All randomness from one seeded std::mt19937_64 (the seed comes from the command line).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <queue>
#include <random>
#include <vector>

#include "faultline/chaos/faults/spec.h"

namespace faultline::chaos {

struct ShaperDecision {
  bool drop = false;
  bool duplicate = false;
  bool corrupt = false;
  std::chrono::nanoseconds hold{0};  // time to wait before the verdict
};

class ShaperPolicy {
 public:
  ShaperPolicy(const PacketParams& params, uint64_t seed) : params_(params), rng_(seed) {}
  ShaperDecision decide();

 private:
  bool chance(double pct);
  PacketParams params_;
  std::mt19937_64 rng_;
};

// Held packets ordered by release time; ties keep arrival order.
class ReleaseQueue {
 public:
  using Clock = std::chrono::steady_clock;
  struct Held {
    Clock::time_point release;
    uint64_t seq;
    uint32_t packet_id;
    bool duplicate;
    std::vector<uint8_t> payload;  // kept only when the packet must be copied
  };
  void push(Held h) {
    h.seq = next_seq_++;
    heap_.push(std::move(h));
  }
  bool empty() const { return heap_.empty(); }
  size_t size() const { return heap_.size(); }
  std::optional<Clock::time_point> next_release() const {
    if (heap_.empty())
      return std::nullopt;
    return heap_.top().release;
  }
  // Pops every packet due at `now`, in order.
  std::vector<Held> pop_due(Clock::time_point now);
  std::vector<Held> pop_all();

 private:
  struct Later {
    bool operator()(const Held& a, const Held& b) const {
      return a.release != b.release ? a.release > b.release : a.seq > b.seq;
    }
  };
  std::priority_queue<Held, std::vector<Held>, Later> heap_;
  uint64_t next_seq_ = 0;
};

// Fills in the TCP/UDP checksum of an IPv4 packet. Queued packets may carry only the partial
// (pseudo-header) checksum that offload would complete; a duplicate re-sent from userspace gets
// no offload, so it must carry the full one. False for other protocols or truncated packets.
bool recompute_l4_checksum(std::vector<uint8_t>& packet);

// The command line of faultline-shaper for these parameters (without the program name).
std::vector<std::string> shaper_arguments(const PacketParams& p, uint16_t queue, uint64_t seed,
                                          uint32_t reinject_mark, int ready_fd);

}  // namespace faultline::chaos
