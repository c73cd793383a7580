// Loopback ports for integration tests that start real processes.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <random>
#include <set>
#include <stdexcept>

namespace faultline::testing {

// A port below the kernel's ephemeral range (ip_local_port_range starts at 32768), free now and
// not handed out before by this process. An ephemeral port, once released, can be taken as the
// source port of any outgoing connection (a broker dialling the controller) before the process
// meant to listen on it binds; below the range only listeners take ports.
inline uint16_t free_port() {
  static std::set<uint16_t> given;
  static std::mt19937 rng{std::random_device{}()};
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const auto port = static_cast<uint16_t>(std::uniform_int_distribution<int>(20000, 32000)(rng));
    if (given.contains(port))
      continue;
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (!free)
      continue;
    given.insert(port);
    return port;
  }
  throw std::runtime_error("no free port in 20000..32000");
}

}  // namespace faultline::testing
