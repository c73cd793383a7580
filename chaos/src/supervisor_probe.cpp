// The parts of the supervisor that need no Boost.Process: readiness connects and /proc reading.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "faultline/chaos/netns.h"
#include "faultline/chaos/supervisor.h"

namespace faultline::chaos {

namespace {
std::error_code connect_here(const TcpEndpoint& endpoint, std::chrono::milliseconds timeout) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(endpoint.port);
  if (::inet_pton(AF_INET, endpoint.address.c_str(), &sa.sin_addr) != 1) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return {errno, std::system_category()};
  std::error_code ec;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    if (errno != EINPROGRESS) {
      ec = {errno, std::system_category()};
    } else {
      pollfd p{fd, POLLOUT, 0};
      int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
      if (n == 0) {
        ec = std::make_error_code(std::errc::timed_out);
      } else if (n < 0) {
        ec = {errno, std::system_category()};
      } else {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0)
          ec = {err, std::system_category()};
      }
    }
  }
  ::close(fd);
  return ec;
}
}  // namespace

std::error_code tcp_connect_once(const std::string& netns, const TcpEndpoint& endpoint,
                                 std::chrono::milliseconds timeout) {
  if (netns.empty())
    return connect_here(endpoint, timeout);
  return run_in_netns(netns, [&] { return connect_here(endpoint, timeout); });
}

std::optional<uint64_t> process_start_time(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!in || !std::getline(in, line))
    return std::nullopt;
  // comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos)
    return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  // Field 3 (state) is the first after ')'; starttime is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field))
      return std::nullopt;
  }
  try {
    return std::stoull(field);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace faultline::chaos
