#include "faultline/cluster/kafka/metadata_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <map>
#include <string_view>
#include <system_error>
#include <utility>

namespace faultline::cluster {

namespace {

using Clock = std::chrono::steady_clock;

// Kafka's socket.request.max.bytes default: a larger size prefix is a broken stream, not metadata.
constexpr int32_t kMaxResponseBytes = 100 << 20;
constexpr const char* kClientId = "faultline-metadata";

// The outcome of one socket step: ok, or the call that failed and why.
struct IoStatus {
  const char* call = "";
  std::error_code error;
  bool ok() const { return !error; }
};

IoStatus failed(const char* call, int err = errno) {
  return {call, std::error_code(err, std::system_category())};
}
IoStatus failed(const char* call, std::errc e) {
  return {call, std::make_error_code(e)};
}

// An owned socket descriptor, closed on destruction.
class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { reset(); }

  int fd() const { return fd_; }

 private:
  void reset() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }
  int fd_;
};

int poll_timeout_ms(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, INT_MAX));
}

// Until `fd` is ready for `events` or the deadline passes. An error or hang-up counts as ready:
// the call that follows reports it.
IoStatus wait_for(int fd, short events, Clock::time_point deadline, const char* call) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, poll_timeout_ms(deadline));
    if (n > 0)
      return {};
    if (n == 0)
      return failed(call, std::errc::timed_out);
    if (errno != EINTR)
      return failed("poll");
  }
}

// A non-blocking connect to one resolved address, bounded by the deadline.
IoStatus connect_to(const addrinfo& address, Clock::time_point deadline, Socket& out) {
  Socket s(::socket(address.ai_family, address.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    address.ai_protocol));
  if (s.fd() < 0)
    return failed("socket");
  if (::connect(s.fd(), address.ai_addr, address.ai_addrlen) != 0) {
    if (errno != EINPROGRESS)
      return failed("connect");
    if (IoStatus st = wait_for(s.fd(), POLLOUT, deadline, "connect"); !st.ok())
      return st;
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      return failed("getsockopt");
    if (err != 0)
      return failed("connect", err);
  }
  // Requests are small and answered one at a time: Nagle would only add latency.
  const int one = 1;
  ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  out = std::move(s);
  return {};
}

IoStatus resolve(const Endpoint& to, std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(to.host.c_str(), std::to_string(to.port).c_str(), &hints, &found);
  if (rc == EAI_SYSTEM)
    return failed("getaddrinfo");
  if (rc != 0) {
    spdlog::debug("event=kafka_metadata_resolve_failed broker={} error=\"{}\"", to.str(),
                  ::gai_strerror(rc));
    return failed("getaddrinfo", std::errc::host_unreachable);
  }
  out.reset(found);
  return {};
}

int32_t read_be32(const char* p) {
  uint32_t u = 0;
  for (int i = 0; i < 4; ++i)
    u = (u << 8) | static_cast<unsigned char>(p[i]);
  return static_cast<int32_t>(u);
}

// The Metadata answer in a response frame body, if it is the answer to `header`.
std::optional<kafka::MetadataResponse> decode_answer(const kafka::RequestHeader& header,
                                                     std::span<const char> frame_body) {
  if (kafka::decode_response_correlation(frame_body) != header.correlation_id)
    return std::nullopt;
  kafka::MetadataResponse out;
  if (!kafka::decode_metadata_response(header.api_version, frame_body.subspan(sizeof(int32_t)),
                                       out))
    return std::nullopt;
  return out;
}

// Port 0 when the answer's port does not fit one (a broken answer; never connected to).
Endpoint endpoint_of(const kafka::MetadataBroker& broker) {
  const bool valid = broker.port > 0 && broker.port <= UINT16_MAX;
  return {broker.host, valid ? static_cast<uint16_t>(broker.port) : uint16_t{0}};
}

void log_failure(const Endpoint& broker, const IoStatus& status) {
  spdlog::debug("event=kafka_metadata_attempt_failed broker={} call={} error=\"{}\"", broker.str(),
                status.call, status.error.message());
}

}  // namespace

// ---- one connection ----------------------------------------------------------------------------

class KafkaMetadataClient::Connection {
 public:
  // Tries every address `to` resolves to until one connects.
  static IoStatus open(const Endpoint& to, Deadline deadline, std::unique_ptr<Connection>& out) {
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(nullptr, &::freeaddrinfo);
    if (IoStatus st = resolve(to, addresses); !st.ok())
      return st;
    IoStatus status = failed("getaddrinfo", std::errc::host_unreachable);  // resolved to nothing
    for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
      Socket s;
      status = connect_to(*a, deadline, s);
      if (status.ok()) {
        out.reset(new Connection(std::move(s), to));
        return status;
      }
    }
    return status;
  }

  const Endpoint& endpoint() const { return endpoint_; }

  IoStatus send_all(std::string_view bytes, Deadline deadline) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(socket_.fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n >= 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (IoStatus st = wait_for(socket_.fd(), POLLOUT, deadline, "send"); !st.ok())
          return st;
      } else if (errno != EINTR) {
        return failed("send");
      }
    }
    return {};
  }

  // One response frame: its i32 size, then the body that many bytes long.
  IoStatus receive_frame(std::string& body, Deadline deadline) {
    char size_bytes[sizeof(int32_t)];
    if (IoStatus st = receive_exact(size_bytes, sizeof size_bytes, deadline); !st.ok())
      return st;
    const int32_t size = read_be32(size_bytes);
    if (size < static_cast<int32_t>(sizeof(int32_t)) || size > kMaxResponseBytes)
      return failed("recv", std::errc::bad_message);
    body.resize(static_cast<size_t>(size));
    return receive_exact(body.data(), body.size(), deadline);
  }

 private:
  Connection(Socket socket, Endpoint endpoint)
      : socket_(std::move(socket)), endpoint_(std::move(endpoint)) {}

  IoStatus receive_exact(char* out, size_t size, Deadline deadline) {
    size_t got = 0;
    while (got < size) {
      const ssize_t n = ::recv(socket_.fd(), out + got, size - got, 0);
      if (n > 0) {
        got += static_cast<size_t>(n);
      } else if (n == 0) {
        return failed("recv", std::errc::connection_reset);  // closed by the broker
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (IoStatus st = wait_for(socket_.fd(), POLLIN, deadline, "recv"); !st.ok())
          return st;
      } else if (errno != EINTR) {
        return failed("recv");
      }
    }
    return {};
  }

  Socket socket_;
  Endpoint endpoint_;
};

// ---- the client --------------------------------------------------------------------------------

KafkaMetadataClient::KafkaMetadataClient(std::vector<Endpoint> bootstrap,
                                         std::chrono::milliseconds timeout)
    : bootstrap_(std::move(bootstrap)), timeout_(timeout) {}

KafkaMetadataClient::~KafkaMetadataClient() = default;

std::optional<Endpoint> KafkaMetadataClient::connected_to() const {
  if (!connection_)
    return std::nullopt;
  return connection_->endpoint();
}

std::optional<kafka::MetadataResponse> KafkaMetadataClient::fetch(
    std::optional<std::vector<std::string>> topics) {
  const kafka::MetadataRequest request{std::move(topics), /*allow_auto_topic_creation=*/false};
  // The open connection may have been closed while idle (Kafka's connections.max.idle.ms): then
  // its broker is still among the candidates, reached on a fresh connection.
  if (connection_) {
    if (auto answer = ask(request, Clock::now() + timeout_))
      return answer;
  }
  const std::vector<Endpoint> known = candidates();
  for (size_t i = 0; i < known.size(); ++i) {
    const size_t k = (next_candidate_ + i) % known.size();
    const Deadline deadline = Clock::now() + timeout_;
    if (!connect(known[k], deadline))
      continue;
    if (auto answer = ask(request, deadline)) {
      // When this broker fails, the search starts with the one after it, not with a broker that
      // may be down (a blackholed one costs a whole timeout).
      next_candidate_ = k + 1;
      return answer;
    }
  }
  return std::nullopt;
}

bool KafkaMetadataClient::connect(const Endpoint& to, Deadline deadline) {
  connection_.reset();
  if (IoStatus status = Connection::open(to, deadline, connection_); !status.ok()) {
    log_failure(to, status);
    connection_.reset();
    return false;
  }
  spdlog::debug("event=kafka_metadata_connected broker={}", to.str());
  return true;
}

std::optional<kafka::MetadataResponse> KafkaMetadataClient::ask(
    const kafka::MetadataRequest& request, Deadline deadline) {
  const kafka::RequestHeader header{static_cast<int16_t>(kafka::ApiKey::metadata), kMetadataVersion,
                                    static_cast<int32_t>(++requests_sent_ & INT32_MAX), kClientId};
  std::string body;
  IoStatus status = connection_->send_all(kafka::encode_request(header, request), deadline);
  if (status.ok())
    status = connection_->receive_frame(body, deadline);
  std::optional<kafka::MetadataResponse> answer;
  if (status.ok()) {
    answer = decode_answer(header, body);
    if (!answer)
      status = failed("decode_metadata_response", std::errc::bad_message);
  }
  if (!status.ok()) {
    log_failure(connection_->endpoint(), status);
    connection_.reset();
    return std::nullopt;
  }
  learn(*answer);
  return answer;
}

std::vector<Endpoint> KafkaMetadataClient::candidates() const {
  std::vector<Endpoint> out = bootstrap_;
  for (const Endpoint& e : learned_)
    if (std::find(out.begin(), out.end(), e) == out.end())
      out.push_back(e);
  return out;
}

void KafkaMetadataClient::learn(const kafka::MetadataResponse& answer) {
  learned_.clear();
  for (const kafka::MetadataBroker& broker : answer.brokers)
    if (Endpoint e = endpoint_of(broker); e.port != 0)
      learned_.push_back(std::move(e));
}

// ---- conversion --------------------------------------------------------------------------------

namespace {

std::vector<BrokerMetadata> brokers_of(const std::vector<kafka::MetadataBroker>& listed,
                                       int expected_brokers) {
  std::map<BrokerId, BrokerMetadata> by_id;
  for (const kafka::MetadataBroker& b : listed) {
    BrokerMetadata& m = by_id[BrokerId{b.node_id}];
    m.id = BrokerId{b.node_id};
    m.client_endpoint = endpoint_of(b);
    m.kafka_endpoint = m.client_endpoint;
  }
  for (int32_t id = 1; id <= expected_brokers; ++id) {
    BrokerMetadata absent;
    absent.id = BrokerId{id};
    absent.fenced = true;
    by_id.try_emplace(absent.id, std::move(absent));
  }
  std::vector<BrokerMetadata> out;
  out.reserve(by_id.size());
  for (auto& [id, m] : by_id)
    out.push_back(std::move(m));
  return out;
}

ReplicaList replica_list(const std::vector<int32_t>& ids) {
  ReplicaList out;
  out.reserve(static_cast<uint32_t>(ids.size()));
  for (int32_t id : ids)
    out.push_back(BrokerId{id});
  return out;
}

PartitionMetadata partition_of(const std::string& topic, const kafka::MetadataPartition& p) {
  PartitionMetadata out;
  out.tp = {topic, PartitionIndex{p.index}};
  out.error = static_cast<errc>(p.error_code);
  out.leader = BrokerId{p.leader_id};
  out.leader_epoch = LeaderEpoch{p.leader_epoch};
  out.replicas = replica_list(p.replica_nodes);
  out.isr = replica_list(p.isr_nodes);
  return out;
}

void append_partitions(const kafka::MetadataTopic& topic, std::vector<PartitionMetadata>& out) {
  if (topic.error_code != 0 && topic.partitions.empty()) {
    PartitionMetadata pm;
    pm.tp = {topic.name, PartitionIndex{0}};
    pm.error = static_cast<errc>(topic.error_code);
    out.push_back(std::move(pm));
    return;
  }
  for (const kafka::MetadataPartition& p : topic.partitions)
    out.push_back(partition_of(topic.name, p));
}

}  // namespace

MetadataResponse from_kafka_metadata(const kafka::MetadataResponse& kafka, int expected_brokers) {
  MetadataResponse out;
  out.brokers = brokers_of(kafka.brokers, expected_brokers);
  for (const kafka::MetadataTopic& topic : kafka.topics)
    append_partitions(topic, out.partitions);
  // Kafka lists partitions in no particular order; the cluster's answers are by topic and index.
  std::stable_sort(
      out.partitions.begin(), out.partitions.end(),
      [](const PartitionMetadata& a, const PartitionMetadata& b) { return a.tp < b.tp; });
  return out;
}

}  // namespace faultline::cluster
