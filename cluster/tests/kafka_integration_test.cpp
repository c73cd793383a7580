// Real Kafka clients against the mini-cluster's Kafka-protocol listener (cluster/src/broker/
// kafka_server.h): kcat produces and consumes, a librdkafka producer keeps writing through a
// leader kill, and bad frames close one connection while the broker keeps serving.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <thread>

#include "local_cluster.h"

namespace faultline::cluster {
namespace {

using namespace std::chrono_literals;
using testing::LocalCluster;

// Runs a shell command; its standard output, and its exit status in `status`.
std::string run(const std::string& command, int& status) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    status = -1;
    return out;
  }
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0)
    out.append(buf, n);
  status = ::pclose(pipe);
  return out;
}

void create_topic(LocalCluster& cluster, const std::string& topic, int partitions) {
  SyncClient admin(cluster.client_config());
  ASSERT_EQ(admin.create_topic(topic, partitions, 3).error, errc::none);
  for (int p = 0; p < partitions; ++p)
    ASSERT_TRUE(admin.wait_for_leader({topic, PartitionIndex{p}}, 10s,
                                      [](const auto& m) { return m.isr.size() == 3; }))
        << "partition " << p << " has no leader with a full ISR";
}

// A librdkafka handle with the given settings (aborts the test on a bad setting).
struct RdKafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using RdKafka = std::unique_ptr<rd_kafka_t, RdKafkaDeleter>;

RdKafka make_client(rd_kafka_type_t type,
                    const std::vector<std::pair<std::string, std::string>>& settings) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      ADD_FAILURE() << k << "=" << v << ": " << err;
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  EXPECT_NE(rk, nullptr) << err;
  return RdKafka(rk);
}

// A synchronous librdkafka producer: one message in flight, its delivery report read back.
class SyncProducer {
 public:
  struct Delivery {
    rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
    int64_t offset = -1;
    int32_t broker = -1;
  };
  explicit SyncProducer(const std::string& bootstrap) : rk_(make_producer(bootstrap, this)) {}

  Delivery send(const std::string& topic, int32_t partition, const std::string& value) {
    done_ = false;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk_.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
      return {e, -1, -1};
    while (!done_)
      rd_kafka_poll(rk_.get(), 50);
    return last_;
  }

 private:
  static RdKafka make_producer(const std::string& bootstrap, SyncProducer* self) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    for (auto [k, v] : std::vector<std::pair<const char*, std::string>>{
             {"bootstrap.servers", bootstrap},
             {"acks", "all"},
             {"linger.ms", "0"},
             {"message.timeout.ms", "20000"},
             {"request.timeout.ms", "3000"},
             {"topic.metadata.refresh.interval.ms", "1000"}})
      rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err);
    rd_kafka_conf_set_opaque(conf, self);
    rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
      auto* p = static_cast<SyncProducer*>(opaque);
      p->last_ = {m->err, m->offset, rd_kafka_message_broker_id(m)};
      p->done_ = true;
    });
    return RdKafka(rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err));
  }

  RdKafka rk_;
  bool done_ = false;
  Delivery last_;
};

// Every value of `partition` from the beginning, read with librdkafka's simple consumer until
// `expected` values came back or 20 s passed.
std::vector<std::string> consume_all(const std::string& bootstrap, const std::string& topic,
                                     int32_t partition, size_t expected) {
  auto rk = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap}});
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk.get(), topic.c_str(), nullptr);
  std::vector<std::string> values;
  EXPECT_EQ(rd_kafka_consume_start(rkt, partition, RD_KAFKA_OFFSET_BEGINNING), 0);
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (values.size() < expected && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consume(rkt, partition, 200);
    if (m == nullptr)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
      values.emplace_back(static_cast<const char*>(m->payload), m->len);
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consume_stop(rkt, partition);
  rd_kafka_topic_destroy(rkt);
  return values;
}

TEST(KafkaListener, KcatProducesWithAcksAllAndConsumesFromExplicitPartitions) {
  LocalCluster cluster;
  create_topic(cluster, "kcat", 3);
  const std::string bootstrap = cluster.kafka_bootstrap();
  std::map<int, std::vector<std::string>> sent;
  for (int i = 0; i < 1000; ++i)
    sent[i % 3].push_back("value-" + std::to_string(i));
  for (const auto& [p, values] : sent) {
    auto file = cluster.dir() / ("input-" + std::to_string(p));
    std::ofstream(file) << fmt::format("{}\n", fmt::join(values, "\n"));
    int status = 0;
    std::string out = run(fmt::format("kcat -P -b {} -t kcat -p {} -X acks=all -l {} 2>&1",
                                      bootstrap, p, file.string()),
                          status);
    ASSERT_EQ(status, 0) << out << cluster.logs();
  }
  for (const auto& [p, values] : sent) {
    int status = 0;
    std::string out = run(fmt::format("timeout 30 kcat -C -b {} -t kcat -p {} -o beginning -e -q "
                                      "-f '%o %s\\n'",
                                      bootstrap, p),
                          status);
    ASSERT_EQ(status, 0) << out;
    std::istringstream lines(out);
    std::vector<std::string> got;
    int64_t offset = 0;
    std::string value;
    for (int64_t expected_offset = 0; lines >> offset >> value; ++expected_offset) {
      EXPECT_EQ(offset, expected_offset);
      got.push_back(value);
    }
    EXPECT_EQ(got, values) << "partition " << p;
  }
  // The same records through faultline's own client: one log behind both listeners.
  SyncClient client(cluster.client_config());
  auto r = client.poll({"kcat", PartitionIndex{1}}, Offset{0}, 1 << 20, 0ms);
  ASSERT_EQ(r.error, errc::none);
  ASSERT_FALSE(r.records.empty());
  EXPECT_EQ(r.records.front().value, sent[1].front());
}

TEST(KafkaListener, LibrdkafkaProducerKeepsWritingThroughALeaderKillAndLosesNothing) {
  LocalCluster cluster;
  create_topic(cluster, "rd", 1);
  const std::string bootstrap = cluster.kafka_bootstrap();
  SyncProducer producer(bootstrap);
  std::vector<std::string> acked;
  int n = 0;
  auto send = [&] {
    std::string value = "v" + std::to_string(n++);
    auto d = producer.send("rd", 0, value);
    if (d.error == RD_KAFKA_RESP_ERR_NO_ERROR)
      acked.push_back(value);
    return d;
  };
  for (int i = 0; i < 50; ++i)
    ASSERT_EQ(send().error, RD_KAFKA_RESP_ERR_NO_ERROR);
  SyncClient admin(cluster.client_config());
  auto leader = admin.wait_for_leader({"rd", PartitionIndex{0}}, 5s);
  ASSERT_TRUE(leader);
  const int32_t old_leader = leader->leader.value();
  cluster.broker(old_leader).kill_and_reap();
  // Writes continue once librdkafka has refreshed its metadata: acknowledged by another broker.
  std::set<int32_t> acked_by_others;
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (acked_by_others.size() < 1 || acked.size() < 150) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no writes after the kill";
    auto d = send();
    if (d.error == RD_KAFKA_RESP_ERR_NO_ERROR && d.broker != old_leader)
      acked_by_others.insert(d.broker);
  }
  auto values = consume_all(bootstrap, "rd", 0, acked.size());
  std::set<std::string> read(values.begin(), values.end());
  for (const auto& v : acked)
    EXPECT_TRUE(read.contains(v)) << v << " was acknowledged, then lost";
}

TEST(KafkaListener, LibrdkafkaAdminCreatesATopicThroughAnyBroker) {
  LocalCluster cluster;
  auto rk = make_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", cluster.kafka_bootstrap()}});
  rd_kafka_NewTopic_t* topic = rd_kafka_NewTopic_new("admin-made", 4, 3, nullptr, 0);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk.get());
  rd_kafka_CreateTopics(rk.get(), &topic, 1, nullptr, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 15000);
  ASSERT_NE(event, nullptr) << "no CreateTopics result";
  ASSERT_EQ(rd_kafka_event_error(event), RD_KAFKA_RESP_ERR_NO_ERROR)
      << rd_kafka_event_error_string(event);
  size_t n = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(rd_kafka_topic_result_error(results[0]), RD_KAFKA_RESP_ERR_NO_ERROR)
      << rd_kafka_topic_result_error_string(results[0]);
  rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy(topic);
  // The controller placed it: four partitions, three replicas each, writable with acks=all.
  SyncClient admin(cluster.client_config());
  for (int p = 0; p < 4; ++p)
    EXPECT_TRUE(admin.wait_for_leader({"admin-made", PartitionIndex{p}}, 10s, [](const auto& m) {
      return m.replicas.size() == 3;
    })) << p;
  SyncProducer producer(cluster.kafka_bootstrap());
  EXPECT_EQ(producer.send("admin-made", 3, "x").error, RD_KAFKA_RESP_ERR_NO_ERROR);
}

// A raw TCP connection to a Kafka listener.
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }
  void send(const std::string& bytes) { (void)!::write(fd_, bytes.data(), bytes.size()); }
  // The next answer frame's body, or nullopt when the broker closed the connection.
  std::optional<std::string> receive() {
    std::string size = read_exactly(4);
    if (size.size() < 4)
      return std::nullopt;
    uint32_t n = (uint32_t(uint8_t(size[0])) << 24) | (uint32_t(uint8_t(size[1])) << 16) |
                 (uint32_t(uint8_t(size[2])) << 8) | uint32_t(uint8_t(size[3]));
    std::string body = read_exactly(n);
    if (body.size() < n)
      return std::nullopt;
    return body;
  }

 private:
  std::string read_exactly(size_t n) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::read(fd_, out.data() + got, n - got);
      if (r <= 0)
        break;
      got += static_cast<size_t>(r);
    }
    out.resize(got);
    return out;
  }
  int fd_;
  bool connected_ = false;
};

// A request frame: size, api key, version, correlation id, client id "t", then `body`.
std::string frame(int16_t key, int16_t version, int32_t correlation, const std::string& body) {
  std::string h;
  auto be16 = [&](int16_t v) {
    h += char(v >> 8);
    h += char(v & 0xff);
  };
  auto be32 = [&](int32_t v) {
    for (int s = 24; s >= 0; s -= 8)
      h += char((v >> s) & 0xff);
  };
  be16(key);
  be16(version);
  be32(correlation);
  be16(1);
  h += 't';
  h += body;
  std::string out;
  uint32_t n = static_cast<uint32_t>(h.size());
  for (int s = 24; s >= 0; s -= 8)
    out += char((n >> s) & 0xff);
  return out + h;
}

int32_t correlation_of(const std::string& body) {
  return int32_t((uint32_t(uint8_t(body[0])) << 24) | (uint32_t(uint8_t(body[1])) << 16) |
                 (uint32_t(uint8_t(body[2])) << 8) | uint32_t(uint8_t(body[3])));
}

TEST(KafkaListener, BadFramesCloseOneConnectionAndTheBrokerKeepsServing) {
  LocalCluster cluster;
  uint16_t port = 0;
  {
    std::string first = cluster.kafka_bootstrap().substr(0, cluster.kafka_bootstrap().find(','));
    port = static_cast<uint16_t>(std::stoi(first.substr(first.find(':') + 1)));
  }
  RawConnection idle(port);  // stays open and idle throughout: other connections' faults spare it
  ASSERT_TRUE(idle.connected());
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"garbage header", std::string("\x00\x00\x00\x03\x01\x02\x03", 7)},
      {"size over the limit", std::string("\x7f\xff\xff\xff", 4)},
      {"unknown api key", frame(9999, 0, 1, "")},
      {"unsupported Produce version", frame(0, 99, 2, "")},
      {"truncated Metadata body", frame(3, 1, 3, std::string("\x00\x00\x00\x05\x00", 5))},
  };
  for (const auto& [why, bytes] : bad) {
    RawConnection c(port);
    ASSERT_TRUE(c.connected());
    c.send(bytes);
    EXPECT_FALSE(c.receive()) << why << ": the connection should have been closed";
  }
  // ApiVersions of a version not served: answered (v0 body, UNSUPPORTED_VERSION) so clients retry.
  RawConnection c(port);
  c.send(frame(18, 99, 42, std::string(1, '\0')));  // header v2: an empty tagged-field section
  auto answer = c.receive();
  ASSERT_TRUE(answer);
  EXPECT_EQ(correlation_of(*answer), 42);
  ASSERT_GE(answer->size(), 6u);
  EXPECT_EQ((uint8_t((*answer)[4]) << 8) | uint8_t((*answer)[5]), 35);
  // The idle connection and new ones are still served.
  for (RawConnection* conn : {&idle, &c}) {
    conn->send(frame(18, 0, 7, ""));
    auto ok = conn->receive();
    ASSERT_TRUE(ok);
    EXPECT_EQ(correlation_of(*ok), 7);
    EXPECT_EQ((uint8_t((*ok)[4]) << 8) | uint8_t((*ok)[5]), 0);
  }
  int status = 0;
  std::string listing = run("kcat -L -b " + cluster.kafka_bootstrap() + " 2>&1", status);
  EXPECT_EQ(status, 0) << listing;
  EXPECT_NE(listing.find("3 brokers"), std::string::npos) << listing;
}

}  // namespace
}  // namespace faultline::cluster
