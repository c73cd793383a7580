#include "faultline/probes/storage_reports.h"

#include <fmt/format.h>

#include <algorithm>

namespace faultline::probes {

using std::chrono::microseconds;

StorageReportReader::Result StorageReportReader::read(BrokerId broker,
                                                      const cluster::BrokerHealthResponse& answer,
                                                      TimePoint received_at) {
  Result result;
  if (answer.canary_interval_ms <= 0) {
    // The broker runs no canary; a failed log directory still reports itself (one failed
    // observation per answer, as a failing canary does).
    if (!answer.canary_error.empty())
      result.observations.push_back({broker, microseconds{0}, received_at, answer.canary_error});
    return result;
  }
  // Numbers that cannot be true are not judged at all (a broker bug must not demote anyone).
  int64_t previous_seq = 0;
  for (const auto& s : answer.samples) {
    if (s.seq <= previous_seq || s.latency_us < 0 || s.age_us < 0) {
      result.problem = fmt::format("inconsistent sample seq={} latency_us={} age_us={}", s.seq,
                                   s.latency_us, s.age_us);
      return result;
    }
    previous_seq = s.seq;
  }
  if (answer.pending_us < 0 || answer.pending_seq < 0 ||
      (answer.pending_seq != 0 && answer.pending_seq <= previous_seq)) {
    result.problem = fmt::format("inconsistent pending sample seq={} pending_us={}",
                                 answer.pending_seq, answer.pending_us);
    return result;
  }

  BrokerState& st = brokers_[broker];
  if (st.canary_run != answer.canary_run) {
    // The broker restarted (or this is its first answer): its sequence numbers start over.
    TimePoint last_at = st.last_at;
    st = BrokerState{};
    st.canary_run = answer.canary_run;
    st.last_at = last_at;
  }
  const microseconds interval = std::chrono::milliseconds(answer.canary_interval_ms);
  auto emit = [&](microseconds latency, TimePoint at, std::string error = {}) {
    at = std::max(at, st.last_at);
    st.last_at = at;
    result.observations.push_back({broker, latency, at, std::move(error)});
  };
  // The slots that came due while sample `seq` (started at `started`) had been running for
  // `running`, beyond those already passed on.
  auto emit_overrun_slots = [&](int64_t seq, TimePoint started, microseconds running) {
    const int64_t slots = running / interval;
    int64_t from = st.overrun_seq == seq ? st.overrun_slots : 0;
    for (int64_t k = from + 1; k <= slots; ++k)
      emit(interval * k, started + interval * k);
    if (slots > from) {
      st.overrun_seq = seq;
      st.overrun_slots = slots;
    }
  };

  for (const auto& s : answer.samples) {
    if (s.seq <= st.last_seq)
      continue;
    const microseconds latency{s.latency_us};
    const TimePoint completed = received_at - microseconds{s.age_us};
    emit_overrun_slots(s.seq, completed - latency, latency);
    emit(latency, completed);
    st.last_seq = s.seq;
  }
  if (answer.pending_seq > st.last_seq && answer.pending_us > 0) {
    const microseconds pending{answer.pending_us};
    emit_overrun_slots(answer.pending_seq, received_at - pending, pending);
  }
  // The canary's latest sample failed (it keeps the error until one succeeds): one failed
  // observation per answer, so the streak grows at the probing rate while the disk refuses.
  if (!answer.canary_error.empty())
    emit(microseconds{0}, received_at, answer.canary_error);
  return result;
}

}  // namespace faultline::probes
