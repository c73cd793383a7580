// Test helper: lets a test binary re-exec itself as a tiny TCP listener (a stand-in for a broker).
// When FAULTLINE_TEST_LISTEN=addr:port is set, the binary accepts connections on that address
// forever before main() runs; tests start /proc/self/exe with that variable through the Supervisor.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace faultline::chaos::testing {

inline const char* kListenEnv = "FAULTLINE_TEST_LISTEN";

[[noreturn]] inline void listen_forever(const std::string& spec) {
  const auto colon = spec.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(spec.substr(colon + 1))));
  ::inet_pton(AF_INET, spec.substr(0, colon).c_str(), &sa.sin_addr);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 || ::listen(fd, 64) != 0) {
    std::perror("listener bind/listen");
    std::_Exit(3);
  }
  std::printf("listening on %s\n", spec.c_str());
  std::fflush(stdout);
  for (;;) {
    int c = ::accept(fd, nullptr, nullptr);
    if (c >= 0)
      ::close(c);
  }
}

// Evaluated during static initialisation of the including test binary.
inline const bool kListenerMode = [] {
  if (const char* spec = std::getenv(kListenEnv))
    listen_forever(spec);
  return false;
}();

}  // namespace faultline::chaos::testing
