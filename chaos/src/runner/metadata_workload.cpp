#include "metadata_workload.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <future>
#include <set>
#include <sstream>

#include "faultline/chaos/controller_quorum.h"
#include "faultline/cluster/controller/controller.h"

namespace faultline::chaos {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// Records per page of a metadata-log read (the request's own default).
constexpr uint32_t kPageRecords = 4096;
// DescribeQuorum's bound per controller, for finding the active one and for convergence.
constexpr std::chrono::milliseconds kDescribeTimeout{500};
// Evidence in to_json: the tail of the longest linearizable prefix is what leads to the failure.
constexpr size_t kPrefixTail = 20;

std::string controller_names(const std::vector<int>& controllers) {
  std::vector<std::string> names;
  names.reserve(controllers.size());
  for (int c : controllers)
    names.push_back(fmt::format("c{}", c));
  return names.empty() ? "none" : fmt::format("{}", fmt::join(names, " "));
}

}  // namespace

// ---- decisions --------------------------------------------------------------------------------

std::vector<std::string> marker_values(std::span<const cluster::MetadataEntry> entries) {
  std::vector<std::string> out;
  for (const auto& entry : entries) {
    const auto* change = std::get_if<cluster::ConfigChanged>(&entry.record);
    if (change != nullptr && change->key == cluster::kMarkerKey)
      out.push_back(change->value);
  }
  return out;
}

std::vector<std::string> MetadataLogRead::markers() const {
  std::vector<std::string> out;
  for (const auto& m : snapshot_markers)
    out.push_back(m.value);
  for (auto& v : marker_values(entries))
    out.push_back(std::move(v));
  return out;
}

checker::Outcome marker_write_outcome(const cluster::CallResult& result) {
  // Without maybe_sent the connection was never made: the request was not written.
  if (result.error)
    return result.maybe_sent ? checker::Outcome::info : checker::Outcome::fail;
  if (!std::holds_alternative<cluster::SetConfigResponse>(result.response))
    return checker::Outcome::info;
  return cluster::response_error(result.response) == cluster::errc::none ? checker::Outcome::ok
                                                                         : checker::Outcome::info;
}

std::string call_error(const cluster::CallResult& result) {
  if (result.error)
    return result.error.message();
  return std::string(cluster::errc_name(cluster::response_error(result.response)));
}

QuorumConvergence assess_convergence(
    const std::vector<std::optional<cluster::DescribeQuorumResponse>>& answers) {
  QuorumConvergence c;
  auto answered = [&](size_t i) { return answers[i] && answers[i]->error == cluster::errc::none; };
  for (size_t i = 0; i < answers.size(); ++i)
    if (answered(i))
      c.commit_offset = std::max(c.commit_offset, answers[i]->commit_offset);
  std::set<int64_t> epochs;
  int leaders = 0;
  for (size_t i = 0; i < answers.size(); ++i) {
    const int controller = static_cast<int>(i) + 1;
    if (!answered(i)) {
      c.behind.push_back(controller);
      if (c.why_not.empty())
        c.why_not = fmt::format("c{} did not answer", controller);
      continue;
    }
    const auto& a = *answers[i];
    epochs.insert(a.epoch);
    leaders += a.role == "leader" ? 1 : 0;
    if (a.commit_offset == c.commit_offset) {
      c.caught_up.push_back(controller);
    } else {
      c.behind.push_back(controller);
      if (c.why_not.empty())
        c.why_not = fmt::format("c{} has committed up to {}, another voter up to {}", controller,
                                a.commit_offset, c.commit_offset);
    }
    if (a.last_offset != a.commit_offset && c.why_not.empty())
      c.why_not = fmt::format("c{} has records past its commit offset ({} > {})", controller,
                              a.last_offset, a.commit_offset);
  }
  if (answers.empty() && c.why_not.empty())
    c.why_not = "no controllers";
  if (c.why_not.empty() && epochs.size() != 1)
    c.why_not = fmt::format("the voters are in {} different epochs", epochs.size());
  if (c.why_not.empty() && leaders != 1)
    c.why_not = fmt::format("{} voters call themselves leader", leaders);
  c.converged = c.why_not.empty();
  return c;
}

namespace {

// The entries of `read` at offsets `from` up to `to` (inclusive): entries are contiguous after
// the snapshot offset.
std::span<const cluster::MetadataEntry> entries_between(const MetadataLogRead& read, int64_t from,
                                                        int64_t to) {
  const int64_t first = read.snapshot_offset.value() + 1;
  const int64_t begin = std::max<int64_t>(from - first, 0);
  const int64_t end = std::min<int64_t>(to - first + 1, static_cast<int64_t>(read.entries.size()));
  if (begin >= end)
    return {};
  return std::span(read.entries)
      .subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin));
}

}  // namespace

bool final_logs_agree(const std::vector<MetadataLogRead>& logs) {
  for (size_t i = 1; i < logs.size(); ++i) {
    const MetadataLogRead& a = logs[0];
    const MetadataLogRead& b = logs[i];
    // The offsets both hold as records: after both snapshots, up to the shorter log's end.
    const int64_t from = std::max(a.snapshot_offset, b.snapshot_offset).value() + 1;
    const int64_t to = std::min(a.snapshot_offset.value() + static_cast<int64_t>(a.entries.size()),
                                b.snapshot_offset.value() + static_cast<int64_t>(b.entries.size()));
    auto common_a = entries_between(a, from, to);
    auto common_b = entries_between(b, from, to);
    if (!std::equal(common_a.begin(), common_a.end(), common_b.begin(), common_b.end()))
      return false;
    if (a.markers() != b.markers())
      return false;
  }
  return true;
}

checker::History without_unobserved_unknown_appends(const checker::History& history) {
  std::set<checker::Value> read;
  for (const auto& op : history.ops)
    if (op.f == checker::Function::read && op.outcome == checker::Outcome::ok)
      read.insert(op.values.begin(), op.values.end());
  checker::History out;
  out.version = history.version;
  out.workload = history.workload;
  out.acks = history.acks;
  out.nemesis = history.nemesis;
  for (const auto& op : history.ops) {
    if (op.f == checker::Function::append && op.outcome == checker::Outcome::info &&
        !read.contains(op.value))
      continue;
    out.ops.push_back(op);
    out.ops.back().index = out.ops.size() - 1;
  }
  return out;
}

nlohmann::json MetadataLogResult::to_json() const {
  return {{"verdict", std::string(checker::to_string(verdict))},
          {"valid", valid()},
          {"summary", summary},
          {"writes_acknowledged", writes_acknowledged},
          {"writes_unknown", writes_unknown},
          {"writes_failed", writes_failed},
          {"reads", reads},
          {"final_voters_read", final_voters_read},
          {"non_converged_voters", non_converged_voters},
          {"anomalies", anomalies},
          {"vacuity", vacuity},
          {"checker", checker}};
}

MetadataLogResult judge_metadata_log(const checker::History& history,
                                     const MetadataFinalRead& final_read,
                                     const checker::LinearizabilityOptions& options) {
  MetadataLogResult r;
  for (const auto& op : history.ops) {
    if (op.f == checker::Function::append) {
      ++(op.outcome == checker::Outcome::ok     ? r.writes_acknowledged
         : op.outcome == checker::Outcome::fail ? r.writes_failed
                                                : r.writes_unknown);
    } else if (op.f == checker::Function::read && op.outcome == checker::Outcome::ok &&
               !op.final_read) {
      ++r.reads;
    }
  }
  r.final_voters_read = final_read.voters_read;
  r.non_converged_voters = final_read.non_converged;

  const checker::History reduced = without_unobserved_unknown_appends(history);
  const auto checked = checker::check_linearizable(reduced, checker::ModelKind::log, options);
  r.verdict = checked.verdict;
  r.checker = checked.to_json(reduced);
  if (r.checker.contains("failing_partition")) {
    auto& failing = r.checker["failing_partition"];
    auto& prefix = failing["longest_linearizable_prefix"];
    if (prefix.is_array() && prefix.size() > kPrefixTail) {
      failing["longest_linearizable_prefix_length"] = prefix.size();
      prefix.erase(prefix.begin(), prefix.end() - static_cast<std::ptrdiff_t>(kPrefixTail));
    }
    // The log a read that cannot be placed returned is the evidence; the checker names the op.
    if (failing.contains("cannot_place") && failing["cannot_place"].value("f", "") == "read") {
      const auto i = failing["cannot_place"].value("op", size_t{0});
      if (i < reduced.ops.size()) {
        nlohmann::json values = nlohmann::json::array();
        for (const auto& v : reduced.ops[i].values)
          values.push_back(checker::format_value(v));
        failing["cannot_place"]["values"] = std::move(values);
      }
    }
  }

  if (!final_read.logs_agree)
    r.anomalies.push_back("the controllers' final logs disagree");
  if (!final_read.non_converged.empty())
    r.anomalies.push_back(fmt::format("{} never reached the quorum's commit offset ({})",
                                      controller_names(final_read.non_converged),
                                      final_read.why_not_converged));
  if (!final_read.failed_reads.empty())
    r.anomalies.push_back(
        fmt::format("the final read of {} failed", controller_names(final_read.failed_reads)));
  if (r.writes_acknowledged == 0)
    r.vacuity.push_back("no metadata write was acknowledged");
  if (final_read.voters_read.empty())
    r.vacuity.push_back("no controller's log was read at the end");

  r.summary = fmt::format(
      "metadata log: {}: {} writes acknowledged, {} unknown, {} failed; {} reads; final read of "
      "{}",
      r.invalid() ? "invalid"
      : r.valid() ? "valid"
                  : "unknown",
      r.writes_acknowledged, r.writes_unknown, r.writes_failed, r.reads,
      controller_names(r.final_voters_read));
  if (checked.verdict != checker::Verdict::valid)
    r.summary += "; checker " + checked.summary();
  for (const auto& a : r.anomalies)
    r.summary += "; " + a;
  for (const auto& v : r.vacuity)
    r.summary += "; proves nothing: " + v;
  return r;
}

// ---- the shell --------------------------------------------------------------------------------

namespace {

// A coroutine with its parameters by value (a capturing lambda's frame would outlive the lambda).
asio::awaitable<cluster::CallResult> call_once(cluster::ClientPool& pool,
                                               cluster::Endpoint endpoint, cluster::Request request,
                                               std::chrono::milliseconds timeout) {
  co_return co_await pool.get(endpoint).call_request(std::move(request), timeout);
}

}  // namespace

// Requests to single controllers from any thread, served by one io thread with one multiplexed
// connection per controller (reconnected on demand after a controller restarts), and the quorum
// client for DescribeQuorum.
class MetadataWorkload::Calls {
 public:
  explicit Calls(std::vector<cluster::Endpoint> controllers)
      : controllers_(controllers),
        work_(asio::make_work_guard(io_)),
        pool_(io_),
        quorum_(std::move(controllers)) {
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Calls() {
    asio::post(io_, [this] { pool_.close_all(); });
    work_.reset();
    io_.stop();
    thread_.join();
  }

  cluster::CallResult call(size_t controller, cluster::Request request,
                           std::chrono::milliseconds timeout) {
    return asio::co_spawn(io_,
                          call_once(pool_, controllers_[controller], std::move(request), timeout),
                          asio::use_future)
        .get();
  }
  // Callers serialise (QuorumClient::describe is for one thread at a time).
  QuorumLook describe() { return quorum_.describe(kDescribeTimeout); }

 private:
  std::vector<cluster::Endpoint> controllers_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  cluster::ClientPool pool_;
  QuorumClient quorum_;
  std::thread thread_;
};

MetadataWorkload::MetadataWorkload() = default;

MetadataWorkload::~MetadataWorkload() {
  request_stop();
  for (auto& t : threads_)
    t.join();
}

std::error_code MetadataWorkload::start(std::vector<cluster::Endpoint> controllers,
                                        const std::filesystem::path& history,
                                        MetadataWorkloadOptions options) {
  auto recorder =
      checker::HistoryRecorder::open(history.string(), kMetadataLogWorkload, options.history_clock);
  if (!recorder)
    return recorder.error();
  history_ = std::move(recorder).value();
  history_path_ = history;
  controllers_ = std::move(controllers);
  options_ = options;
  calls_ = std::make_unique<Calls>(controllers_);
  started_ = true;
  spdlog::info(
      "event=metadata_workload_start controllers={} writers={} write_interval_ms={} "
      "read_interval_ms={} history={}",
      controllers_.size(), options_.writers, options_.write_interval.count(),
      options_.read_interval.count(), history.string());
  for (int w = 0; w < options_.writers; ++w)
    threads_.emplace_back([this, w] { write_loop(w); });
  threads_.emplace_back([this] { read_loop(); });
  return {};
}

void MetadataWorkload::request_stop() {
  {
    std::lock_guard lock(stop_mu_);  // so no pause_until() misses the wake-up
    stopping_ = true;
  }
  stop_cv_.notify_all();
}

bool MetadataWorkload::pause_until(Clock::time_point until) {
  std::unique_lock lock(stop_mu_);
  return !stop_cv_.wait_until(lock, until, [this] { return stopping_.load(); });
}

std::optional<size_t> MetadataWorkload::active_controller() {
  std::lock_guard lock(active_mu_);
  if (!active_) {
    QuorumLook look = calls_->describe();
    if (look.active > 0)
      active_ = static_cast<size_t>(look.active - 1);
  }
  return active_;
}

void MetadataWorkload::forget_active(size_t controller) {
  std::lock_guard lock(active_mu_);
  if (active_ == controller)
    active_.reset();
}

void MetadataWorkload::learn_active(size_t controller) {
  std::lock_guard lock(active_mu_);
  active_ = controller;
}

void MetadataWorkload::write_loop(int writer) {
  int64_t process = writer;
  for (int64_t n = 0; !stopping_;) {
    const auto started = Clock::now();
    if (auto target = active_controller()) {
      const std::string value = fmt::format("w{}-{}", writer, n++);
      checker::OpFields invocation;
      invocation.value = value;
      auto op = history_->invoke(checker::ProcessId{process}, checker::Function::append,
                                 std::move(invocation));
      cluster::CallResult result =
          calls_->call(*target, cluster::SetConfigRequest{std::string(cluster::kMarkerKey), value},
                       options_.request_timeout);
      const checker::Outcome outcome = marker_write_outcome(result);
      checker::OpFields fields;
      if (outcome != checker::Outcome::ok)
        fields.error = call_error(result);
      if (op)
        (void)history_->complete(*op, outcome, std::move(fields));
      if (outcome != checker::Outcome::ok) {
        spdlog::debug(
            "event=metadata_write_not_acknowledged controller=c{} value={} outcome={} "
            "error=\"{}\"",
            *target + 1, value, outcome == checker::Outcome::fail ? "fail" : "info",
            call_error(result));
        forget_active(*target);
      }
      if (outcome == checker::Outcome::info)
        process += options_.writers;
    }
    if (!pause_until(started + options_.write_interval))
      break;
  }
}

std::optional<MetadataLogRead> MetadataWorkload::read_log(size_t controller, bool any_voter,
                                                          std::string& error) {
  MetadataLogRead log;
  cluster::FetchMetadataLogRequest request;
  request.max_records = kPageRecords;
  request.max_wait_ms = 0;
  request.any_voter = any_voter;
  while (true) {
    cluster::CallResult result = calls_->call(controller, request, options_.request_timeout);
    const auto* page = std::get_if<cluster::FetchMetadataLogResponse>(&result.response);
    if (result.error || page == nullptr || page->error != cluster::errc::none) {
      error = fmt::format("c{}: {}", controller + 1, call_error(result));
      return std::nullopt;
    }
    if (!page->snapshot.empty()) {
      // Only the first page can start before the log (the next ones continue its entries).
      std::string why;
      auto snapshot = cluster::decode_metadata_snapshot(page->snapshot, &why);
      if (!snapshot || !log.entries.empty()) {
        error = fmt::format("c{}: bad snapshot: {}", controller + 1,
                            snapshot ? "after the log's first page" : why);
        return std::nullopt;
      }
      log.snapshot_offset = snapshot->last_offset;
      log.snapshot_markers = snapshot->image.marker_history();
    }
    log.entries.insert(log.entries.end(), page->entries.begin(), page->entries.end());
    if (page->entries.size() < kPageRecords)
      return log;
    request.from = page->entries.back().offset.next();
  }
}

void MetadataWorkload::read_loop() {
  const checker::ProcessId process{kMetadataReaderProcess};
  while (!stopping_) {
    const auto started = Clock::now();
    // Only the active controller answers without any_voter: its committed log is current. The
    // one believed active first, then the others in order.
    std::vector<size_t> order;
    {
      std::lock_guard lock(active_mu_);
      if (active_)
        order.push_back(*active_);
    }
    for (size_t i = 0; i < controllers_.size(); ++i)
      if (order.empty() || order.front() != i)
        order.push_back(i);
    auto op = history_->invoke(process, checker::Function::read);
    std::vector<std::string> errors;
    std::optional<MetadataLogRead> log;
    for (size_t i : order) {
      std::string error;
      log = read_log(i, /*any_voter=*/false, error);
      if (log) {
        learn_active(i);
        break;
      }
      errors.push_back(std::move(error));
    }
    if (op) {
      checker::OpFields fields;
      if (log) {
        for (auto& v : log->markers())
          fields.values.emplace_back(std::move(v));
      } else {
        fields.error = fmt::format("no controller served the read ({})", fmt::join(errors, "; "));
      }
      // A read changes nothing: one that got no log certainly had no effect.
      (void)history_->complete(*op, log ? checker::Outcome::ok : checker::Outcome::fail,
                               std::move(fields));
    }
    if (!pause_until(started + options_.read_interval))
      break;
  }
}

void MetadataWorkload::final_reads() {
  const auto deadline = Clock::now() + options_.convergence_timeout;
  QuorumConvergence convergence;
  while (true) {
    QuorumLook look = calls_->describe();
    convergence = assess_convergence(look.answers);
    if (convergence.converged || Clock::now() >= deadline)
      break;
    std::this_thread::sleep_for(100ms);
  }
  final_.converged = convergence.converged;
  final_.why_not_converged = convergence.why_not;
  final_.non_converged = convergence.behind;
  if (convergence.converged) {
    spdlog::info("event=metadata_quorum_converged commit_offset={}", convergence.commit_offset);
  } else {
    spdlog::warn("event=metadata_quorum_not_converged commit_offset={} behind=\"{}\" why=\"{}\"",
                 convergence.commit_offset, controller_names(convergence.behind),
                 convergence.why_not);
  }
  // A voter behind the others would be a stale read: reported, not read.
  std::vector<MetadataLogRead> logs;
  for (int controller : convergence.caught_up) {
    const size_t i = static_cast<size_t>(controller - 1);
    checker::OpFields invocation;
    invocation.final_read = true;
    auto op = history_->invoke(checker::ProcessId{kMetadataFinalReaderProcess + controller},
                               checker::Function::read, std::move(invocation));
    std::string error;
    auto log = read_log(i, /*any_voter=*/true, error);
    checker::OpFields fields;
    fields.final_read = true;
    if (log) {
      for (auto& v : log->markers())
        fields.values.emplace_back(std::move(v));
      final_.voters_read.push_back(controller);
      logs.push_back(*log);
      final_logs_.emplace_back(controller, std::move(*log));
    } else {
      fields.error = error;
      final_.failed_reads.push_back(controller);
      spdlog::warn("event=metadata_final_read_failed controller=c{} error=\"{}\"", controller,
                   error);
    }
    if (op)
      (void)history_->complete(*op, log ? checker::Outcome::ok : checker::Outcome::fail,
                               std::move(fields));
  }
  final_.logs_agree = final_logs_agree(logs);
}

void MetadataWorkload::stop() {
  if (!started_ || stopped_)
    return;
  stopped_ = true;
  request_stop();
  for (auto& t : threads_)
    t.join();
  threads_.clear();
  final_reads();
  calls_.reset();
  history_.reset();  // closes the file
  spdlog::info("event=metadata_workload_stop voters_read=\"{}\" non_converged=\"{}\"",
               controller_names(final_.voters_read), controller_names(final_.non_converged));
}

MetadataLogResult MetadataWorkload::check() const {
  std::ifstream in(history_path_);
  std::stringstream text;
  text << in.rdbuf();
  auto history = checker::parse_jsonl(text.str(), history_path_.string());
  if (!history) {
    MetadataLogResult r;
    r.summary = "metadata log: the history does not parse: " + history.error().to_string();
    r.anomalies.push_back(r.summary);
    return r;
  }
  checker::LinearizabilityOptions options;
  options.deadline = Clock::now() + options_.check_budget;
  return judge_metadata_log(*history, final_, options);
}

}  // namespace faultline::chaos
