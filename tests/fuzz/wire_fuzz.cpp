// Arbitrary bytes as request and response frame bodies: the decoders must never read out of
// bounds, allocate from an unchecked length, or crash; whatever decodes must re-encode to the same
// bytes (the codec has one encoding per message), both through the copying path (a span in, one
// string out) and the sharing one the servers use (batches sliced from the frame, attached to an
// OutFrame instead of copied).
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "faultline/cluster/wire/codec.h"

using namespace faultline::cluster;

namespace {

void require(bool ok) {
  if (!ok)
    std::abort();
}

// The frame body (after the size prefix) of an encoded frame.
std::string_view body_of(std::string_view frame) {
  return frame.substr(kFrameSizeBytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const char> frame(reinterpret_cast<const char*>(data), size);
  const std::string_view input(frame.data(), frame.size());
  const SharedBytes shared{std::string(input)};
  if (auto req = decode_request(frame); req.error == errc::none) {
    std::string again;
    encode_request(req.header.correlation_id, req.request, again);
    require(body_of(again) == input);
    auto sliced = decode_request(shared);
    require(sliced.error == errc::none);
    OutFrame out;
    encode_request(sliced.header.correlation_id, sliced.request, out);
    require(out.size() == again.size() && out.flatten() == again);
  }
  if (auto resp = decode_response(frame); resp.error == errc::none) {
    std::string again;
    encode_response(resp.correlation_id, resp.response, again);
    require(body_of(again) == input);
    auto sliced = decode_response(shared);
    require(sliced.error == errc::none);
    OutFrame out;
    encode_response(sliced.correlation_id, sliced.response, out);
    require(out.size() == again.size() && out.flatten() == again);
  }
  return 0;
}
