#include <faultline/checker/recorder.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace faultline::checker {
namespace {

Event to_event(EventType type, ProcessId process, Function f, OpFields&& fields) {
  Event e;
  e.type = type;
  e.process = process;
  e.f = f;
  e.partition = fields.partition;
  e.key = std::move(fields.key);
  e.value = std::move(fields.value);
  e.expected = std::move(fields.expected);
  e.values = std::move(fields.values);
  e.offset = fields.offset;
  e.records = std::move(fields.records);
  e.epoch = fields.epoch;
  e.leader = fields.leader;
  e.final_read = fields.final_read;
  e.error = std::move(fields.error);
  return e;
}

}  // namespace

Expected<std::unique_ptr<HistoryRecorder>, std::error_code> HistoryRecorder::open(
    const std::string& path, std::string_view workload, Clock clock) {
  return open(path, HistoryHeader{std::string(workload), Acks::unknown}, std::move(clock));
}

Expected<std::unique_ptr<HistoryRecorder>, std::error_code> HistoryRecorder::open(
    const std::string& path, const HistoryHeader& header, Clock clock) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return std::error_code(errno, std::system_category());
  if (!clock) {
    const auto start = std::chrono::steady_clock::now();
    clock = [start] { return std::chrono::steady_clock::now() - start; };
  }
  std::unique_ptr<HistoryRecorder> r(new HistoryRecorder(fd, std::move(clock)));
  std::lock_guard lock(r->mu_);
  if (auto ec = r->write_line_locked(history_header_line(header.workload, header.acks)))
    return ec;
  return r;
}

HistoryRecorder::HistoryRecorder(int fd, Clock clock) : fd_(fd), clock_(std::move(clock)) {}

HistoryRecorder::~HistoryRecorder() {
  ::close(fd_);
}

std::error_code HistoryRecorder::write_line_locked(std::string line) {
  line.push_back('\n');
  // One write(2) per line; loop only for the (rare) short write so the line is never split by
  // another writer: we hold the lock.
  std::size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return {errno, std::system_category()};
    }
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Expected<HistoryRecorder::OpHandle, std::error_code> HistoryRecorder::invoke(ProcessId process,
                                                                             Function f,
                                                                             OpFields fields) {
  Event e = to_event(EventType::invoke, process, f, std::move(fields));
  std::lock_guard lock(mu_);
  e.time = clock_();
  if (auto ec = write_line_locked(to_jsonl_line(e)))
    return ec;
  OpHandle h{process, f, next_id_++};
  open_ops_.insert(h.id);
  return h;
}

std::error_code HistoryRecorder::complete(const OpHandle& op, Outcome outcome, OpFields fields) {
  const EventType type = outcome == Outcome::ok     ? EventType::ok
                         : outcome == Outcome::fail ? EventType::fail
                                                    : EventType::info;
  Event e = to_event(type, op.process, op.f, std::move(fields));
  std::lock_guard lock(mu_);
  if (open_ops_.erase(op.id) == 0)
    return std::make_error_code(std::errc::invalid_argument);
  e.time = clock_();
  return write_line_locked(to_jsonl_line(e));
}

std::error_code HistoryRecorder::nemesis(NemesisKind kind, NemesisFields fields) {
  Event e;
  e.type = EventType::nemesis;
  e.nemesis = kind;
  e.partition = fields.partition;
  e.epoch = fields.epoch;
  e.leader = fields.leader;
  e.fault = std::move(fields.fault);
  e.target = std::move(fields.target);
  e.isr = std::move(fields.isr);
  e.replicas = std::move(fields.replicas);
  e.unclean = fields.unclean;
  e.alive = std::move(fields.alive);
  e.fenced = std::move(fields.fenced);
  e.demoted = std::move(fields.demoted);
  e.shutting_down = std::move(fields.shutting_down);
  e.graceful = fields.graceful;
  std::lock_guard lock(mu_);
  e.time = clock_();
  return write_line_locked(to_jsonl_line(e));
}

}  // namespace faultline::checker
