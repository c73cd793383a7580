// libFuzzer target: the JSONL history parser must never crash, hang or throw on any input, and
// whatever it accepts must survive a write/read round trip.
#include <faultline/checker/history.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = faultline::checker::parse_jsonl(text, "fuzz");
  if (!parsed) {
    // An error always says why.
    if (parsed.error().why.empty())
      std::abort();
    return 0;
  }
  // Each single line, parsed as an event, must serialise back to something that parses.
  std::size_t pos = text.find('\n');
  while (pos != std::string_view::npos && pos + 1 < text.size()) {
    const std::size_t end = text.find('\n', pos + 1);
    const auto line = text.substr(pos + 1, end == std::string_view::npos ? end : end - pos - 1);
    if (auto e = faultline::checker::parse_event_line(line)) {
      // Written back, it parses to the same event: to_jsonl_line is a fixed point.
      const std::string written = faultline::checker::to_jsonl_line(*e);
      auto again = faultline::checker::parse_event_line(written);
      if (!again || faultline::checker::to_jsonl_line(*again) != written)
        std::abort();
    }
    pos = end;
  }
  return 0;
}
