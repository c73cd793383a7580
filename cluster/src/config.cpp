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
  if (text.substr(0, kInterval.size()) != kInterval)
    return false;
  const auto digits = text.substr(kInterval.size());
  int64_t ms = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ms);
  if (ec != std::errc{} || ptr != digits.data() + digits.size() || ms <= 0)
    return false;
  config.flush_every_batch = false;
  config.flush_never = false;
  config.flush_interval = milliseconds(ms);
  return true;
}

bool parse_endpoint(std::string_view text, Endpoint& out) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    return false;
  unsigned port = 0;
  auto digits = text.substr(colon + 1);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc{} || ptr != digits.data() + digits.size() || port > 65535)
    return false;
  out.host = std::string(text.substr(0, colon));
  out.port = static_cast<uint16_t>(port);
  return true;
}

namespace {

std::vector<std::string_view> split_commas(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos)
      comma = text.size();
    parts.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return parts;
}

}  // namespace

bool parse_quorum_voters(std::string_view text, std::vector<QuorumVoter>& out) {
  std::vector<QuorumVoter> voters;
  for (std::string_view part : split_commas(text)) {
    auto at = part.find('@');
    if (at == std::string_view::npos || at == 0)
      return false;
    QuorumVoter v;
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + at, v.id);
    if (ec != std::errc{} || ptr != part.data() + at || v.id < 0)
      return false;
    if (!parse_endpoint(part.substr(at + 1), v.endpoint))
      return false;
    for (const QuorumVoter& other : voters) {
      if (other.id == v.id)
        return false;
    }
    voters.push_back(std::move(v));
  }
  out = std::move(voters);
  return true;
}

bool parse_endpoints(std::string_view text, std::vector<Endpoint>& out) {
  std::vector<Endpoint> endpoints;
  for (std::string_view part : split_commas(text)) {
    if (auto at = part.find('@'); at != std::string_view::npos)
      part.remove_prefix(at + 1);
    Endpoint e;
    if (!parse_endpoint(part, e))
      return false;
    endpoints.push_back(std::move(e));
  }
  out = std::move(endpoints);
  return true;
}

}  // namespace faultline::cluster
