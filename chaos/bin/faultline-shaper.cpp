// faultline-shaper: netem's delay/jitter/loss/duplicate/reorder/corrupt in userspace, on NFQUEUE.
//
// Started by the packets fault inside a node's namespace; an nft rule in the run's table sends the
// shaped traffic to queue N (with `bypass`, so traffic flows if this process dies).
// Single-threaded: one loop waits for either a queued packet or the next release time. See shaper.h
// for semantics. Signals: SIGTERM/SIGINT release every held packet (ACCEPT) and exit 0.
#include <arpa/inet.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <vector>

#include "faultline/chaos/faults/shaper.h"

using faultline::chaos::PacketParams;
using faultline::chaos::ReleaseQueue;
using faultline::chaos::ShaperPolicy;

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop = true;
}

struct State {
  nfq_q_handle* queue = nullptr;
  ShaperPolicy* policy = nullptr;
  ReleaseQueue held;
  int raw_fd = -1;
  uint64_t received = 0, dropped = 0, duplicated = 0, corrupted = 0;
};

void send_copy(int raw_fd, const std::vector<uint8_t>& packet) {
  if (packet.size() < 20)
    return;
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  std::memcpy(&dst.sin_addr, packet.data() + 16, 4);
  // A failure (e.g. a GSO super-packet above the MTU) only loses the duplicate.
  (void)::sendto(raw_fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&dst),
                 sizeof dst);
}

void release(State& s, ReleaseQueue::Held& h) {
  nfq_set_verdict(s.queue, h.packet_id, NF_ACCEPT, 0, nullptr);
  if (h.duplicate)
    send_copy(s.raw_fd, h.payload);
}

int on_packet(nfq_q_handle* qh, nfgenmsg*, nfq_data* nfa, void* data) {
  auto& s = *static_cast<State*>(data);
  auto* hdr = nfq_get_msg_packet_hdr(nfa);
  if (hdr == nullptr)
    return 0;
  const uint32_t id = ntohl(hdr->packet_id);
  ++s.received;
  const auto d = s.policy->decide();
  if (d.drop || d.corrupt) {
    // A corrupted packet is one the receiver's checksum check would drop (see shaper.h).
    ++(d.drop ? s.dropped : s.corrupted);
    return nfq_set_verdict(qh, id, NF_DROP, 0, nullptr);
  }
  ReleaseQueue::Held h{ReleaseQueue::Clock::now() + d.hold, 0, id, d.duplicate, {}};
  if (d.duplicate) {
    unsigned char* payload = nullptr;
    const int len = nfq_get_payload(nfa, &payload);
    if (len > 0)
      h.payload.assign(payload, payload + len);
    faultline::chaos::recompute_l4_checksum(h.payload);
    ++s.duplicated;
  }
  if (d.hold.count() == 0 && s.held.empty()) {
    release(s, h);  // fast path: nothing ahead of it
    return 0;
  }
  s.held.push(std::move(h));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"faultline-shaper: netem-like packet faults on an NFQUEUE"};
  uint16_t queue_num = 0;
  int64_t delay_us = 0, jitter_us = 0;
  PacketParams params;
  uint64_t seed = 0;
  uint32_t mark = 0xfa17;
  int ready_fd = -1;
  app.add_option("--queue", queue_num)->required();
  app.add_option("--delay-us", delay_us);
  app.add_option("--jitter-us", jitter_us);
  app.add_option("--loss-pct", params.loss_pct);
  app.add_option("--duplicate-pct", params.duplicate_pct);
  app.add_option("--reorder-pct", params.reorder_pct);
  app.add_option("--corrupt-pct", params.corrupt_pct);
  app.add_option("--seed", seed);
  app.add_option("--mark", mark, "mark of re-sent duplicates (the nft rule skips it)");
  app.add_option("--ready-fd", ready_fd, "write one byte here once the queue is bound");
  CLI11_PARSE(app, argc, argv);
  params.delay = std::chrono::microseconds(delay_us);
  params.jitter = std::chrono::microseconds(jitter_us);

  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);

  ShaperPolicy policy(params, seed);
  State state;
  state.policy = &policy;
  state.raw_fd = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (state.raw_fd >= 0) {
    ::setsockopt(state.raw_fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
  }

  nfq_handle* h = nfq_open();
  if (h == nullptr) {
    std::perror("nfq_open");
    return 2;
  }
  state.queue = nfq_create_queue(h, queue_num, &on_packet, &state);
  if (state.queue == nullptr) {
    std::perror("nfq_create_queue");
    nfq_close(h);
    return 2;
  }
  nfq_set_mode(state.queue, NFQNL_COPY_PACKET, 0xffff);
  // Held packets stay in the kernel queue: make it deep enough for delay x rate; when it is full
  // anyway, let packets through (fail open) rather than drop them as a fault nobody asked for.
  nfq_set_queue_maxlen(state.queue, 100000);
  nfq_set_queue_flags(state.queue, NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO,
                      NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO);
  const int fd = nfq_fd(h);
  int rcvbuf = 8 << 20;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  ::setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);

  if (ready_fd >= 0) {
    const char byte = 'r';
    (void)::write(ready_fd, &byte, 1);
    ::close(ready_fd);
  }

  std::vector<char> buf(0x10000 + 4096);
  while (!g_stop) {
    const auto now = ReleaseQueue::Clock::now();
    for (auto& held : state.held.pop_due(now))
      release(state, held);
    timespec timeout{0, 200'000'000};  // wake up now and then to notice signals
    if (auto next = state.held.next_release()) {
      const auto wait = std::max(std::chrono::nanoseconds(0), *next - ReleaseQueue::Clock::now());
      if (wait < std::chrono::milliseconds(200)) {
        timeout.tv_sec = 0;
        timeout.tv_nsec = static_cast<long>(wait.count());
      }
    }
    pollfd pfd{fd, POLLIN, 0};
    const int n = ::ppoll(&pfd, 1, &timeout, nullptr);
    if (n <= 0)
      continue;
    // Drain what is there without blocking, then go back to releasing.
    for (int i = 0; i < 256; ++i) {
      const ssize_t len = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
      if (len <= 0)
        break;
      nfq_handle_packet(h, buf.data(), static_cast<int>(len));
    }
  }
  for (auto& held : state.held.pop_all())
    release(state, held);
  std::fprintf(stderr,
               "event=shaper_exit queue=%u received=%llu dropped=%llu duplicated=%llu "
               "corrupted=%llu\n",
               queue_num, static_cast<unsigned long long>(state.received),
               static_cast<unsigned long long>(state.dropped),
               static_cast<unsigned long long>(state.duplicated),
               static_cast<unsigned long long>(state.corrupted));
  nfq_destroy_queue(state.queue);
  nfq_close(h);
  if (state.raw_fd >= 0)
    ::close(state.raw_fd);
  return 0;
}
