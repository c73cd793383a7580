// The client library's metadata refresh (client.h) against a fake broker on loopback: sends to
// many partitions whose leaders are not known yet share one Metadata request instead of asking
// once each (at 100k partitions each answer is megabytes).
#include <gtest/gtest.h>

#include <asio.hpp>
#include <atomic>
#include <thread>

#include "faultline/cluster/client/client.h"
#include "faultline/cluster/net/rpc.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
using asio::awaitable;

// Leads every partition of topic "t" (broker 1, at its own port) and acknowledges every produce.
// Metadata answers are held for `metadata_delay`, so concurrent senders overlap.
class FakeBroker final : public RequestHandler {
 public:
  FakeBroker(asio::io_context& io, int partitions) : io_(io), partitions_(partitions) {}

  awaitable<Response> handle(Request request, ListenerKind) override {
    if (std::holds_alternative<MetadataRequest>(request)) {
      ++metadata_requests;
      asio::steady_timer delay(io_, 100ms);
      co_await delay.async_wait(use_tuple);
      MetadataResponse md;
      BrokerMetadata self;
      self.id = BrokerId{1};
      self.client_endpoint = self.internal_endpoint = {"127.0.0.1", port};
      md.brokers.push_back(self);
      for (int p = 0; p < partitions_; ++p) {
        PartitionMetadata pm;
        pm.tp = {"t", PartitionIndex{p}};
        pm.leader = BrokerId{1};
        pm.leader_epoch = LeaderEpoch{1};
        pm.replicas = pm.isr = ReplicaList{BrokerId{1}};
        md.partitions.push_back(pm);
      }
      co_return md;
    }
    if (std::holds_alternative<ProduceRequest>(request)) {
      ++produces;
      ProduceResponse r;
      r.base_offset = Offset{0};
      r.leader_epoch = LeaderEpoch{1};
      co_return r;
    }
    co_return error_response_for(request, errc::invalid_request);
  }

  uint16_t port = 0;
  std::atomic<int> metadata_requests{0};
  std::atomic<int> produces{0};

 private:
  asio::io_context& io_;
  int partitions_;
};

// A coroutine function, not a capturing lambda, so its frame owns what it uses; the arguments of
// send() are named objects (GCC 12 mishandles braced temporaries passed to a coroutine).
awaitable<void> send_one(Client& client, int partition, int& acknowledged, int& finished) {
  TopicPartition tp{"t", PartitionIndex{partition}};
  std::vector<std::string> values(1, "v");
  SendResult r = co_await client.send(std::move(tp), std::move(values), Acks::all);
  if (r.acknowledged())
    ++acknowledged;
  ++finished;
}

TEST(ClientMetadata, ConcurrentSendsToUnknownLeadersShareOneMetadataRequest) {
  constexpr int kPartitions = 50;
  asio::io_context server_io;
  auto work = asio::make_work_guard(server_io);
  FakeBroker broker(server_io, kPartitions);
  RpcServer server(server_io, {"127.0.0.1", 0}, ListenerKind::client, broker);
  broker.port = server.port();
  server.start();
  std::thread server_thread([&] { server_io.run(); });

  asio::io_context io;
  ClientConfig config;
  config.bootstrap = {{"127.0.0.1", server.port()}};
  Client client(io, config);
  int acknowledged = 0;
  int finished = 0;
  for (int p = 0; p < kPartitions; ++p) {
    asio::co_spawn(io, send_one(client, p, acknowledged, finished), asio::detached);
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (finished < kPartitions && std::chrono::steady_clock::now() < deadline)
    io.run_one_for(100ms);
  client.close();
  io.run_for(50ms);
  // The server belongs to the thread that runs its io_context (rpc.h): stopping it from this
  // thread raced that thread's changes to its connection map and crashed about one run in 100.
  asio::post(server_io, [&] {
    server.stop();
    server_io.stop();
  });
  server_thread.join();
  work.reset();

  EXPECT_EQ(acknowledged, kPartitions);
  EXPECT_EQ(broker.produces.load(), kPartitions);
  EXPECT_EQ(broker.metadata_requests.load(), 1) << "one refresh for the whole topic";
}

}  // namespace
}  // namespace faultline::cluster
