#include "faultline/cluster/config.h"

#include <charconv>

namespace faultline::cluster {

bool parse_endpoint(std::string_view text, Endpoint& out) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return false;
  unsigned port = 0;
  auto digits = text.substr(colon + 1);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc{} || ptr != digits.data() + digits.size() || port > 65535) return false;
  out.host = std::string(text.substr(0, colon));
  out.port = static_cast<uint16_t>(port);
  return true;
}

}  // namespace faultline::cluster
