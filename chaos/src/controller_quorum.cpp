#include "faultline/chaos/controller_quorum.h"

#include <future>

namespace faultline::chaos {

namespace {

using Answer = std::optional<cluster::DescribeQuorumResponse>;

// A coroutine with its parameters by value (a capturing lambda's frame would outlive the lambda).
asio::awaitable<Answer> ask(cluster::ClientPool& pool, cluster::Endpoint endpoint,
                            std::chrono::milliseconds timeout) {
  cluster::CallResult r =
      co_await pool.get(endpoint).call(cluster::DescribeQuorumRequest{}, timeout);
  if (r.error)
    co_return std::nullopt;
  auto* answer = std::get_if<cluster::DescribeQuorumResponse>(&r.response);
  if (answer == nullptr)
    co_return std::nullopt;
  co_return *answer;
}

}  // namespace

QuorumLook summarize(std::vector<std::optional<cluster::DescribeQuorumResponse>> answers) {
  QuorumLook look;
  look.answers = std::move(answers);
  for (size_t i = 0; i < look.answers.size(); ++i) {
    auto& a = look.answers[i];
    if (a && a->error != cluster::errc::none)
      a.reset();
    if (!a)
      continue;
    const int index = static_cast<int>(i) + 1;
    look.up.insert(index);
    if (a->role == "leader" && a->epoch > look.epoch) {
      look.active = index;
      look.epoch = a->epoch;
    }
  }
  return look;
}

QuorumClient::QuorumClient(std::vector<cluster::Endpoint> controllers)
    : controllers_(std::move(controllers)), work_(asio::make_work_guard(io_)), pool_(io_) {
  thread_ = std::thread([this] { io_.run(); });
}

QuorumClient::~QuorumClient() {
  asio::post(io_, [this] { pool_.close_all(); });
  work_.reset();
  io_.stop();
  thread_.join();
}

QuorumLook QuorumClient::describe(std::chrono::milliseconds timeout) {
  std::vector<std::future<Answer>> pending;
  for (const auto& endpoint : controllers_)
    pending.push_back(asio::co_spawn(io_, ask(pool_, endpoint, timeout), asio::use_future));
  std::vector<Answer> answers;
  answers.reserve(pending.size());
  for (auto& f : pending)
    answers.push_back(f.get());
  return summarize(std::move(answers));
}

}  // namespace faultline::chaos
