#include "faultline/cluster/config.h"

#include <charconv>

namespace faultline::cluster {

bool parse_flush_policy(std::string_view text, BrokerConfig& config) {
  constexpr std::string_view kInterval = "interval:";
  if (text == "every-batch") {
    config.flush_every_batch = true;
    config.flush_never = false;
    return true;
  }
  if (text == "never") {
    config.flush_every_batch = false;
    config.flush_never = true;
    return true;
  }
  if (text.substr(0, kInterval.size()) != kInterval) return false;
  const auto digits = text.substr(kInterval.size());
  int64_t ms = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ms);
  if (ec != std::errc{} || ptr != digits.data() + digits.size() || ms <= 0) return false;
  config.flush_every_batch = false;
  config.flush_never = false;
  config.flush_interval = milliseconds(ms);
  return true;
}

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
