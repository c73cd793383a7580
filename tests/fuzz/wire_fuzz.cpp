// Arbitrary bytes as request and response frame bodies: the decoders must never read out of
// bounds, allocate from an unchecked length, or crash; whatever decodes must re-encode to the same
// bytes (the codec has one encoding per message).
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "faultline/cluster/wire/codec.h"

using namespace faultline::cluster;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const char> frame(reinterpret_cast<const char*>(data), size);
  if (auto req = decode_request(frame); req.error == errc::none) {
    std::string again;
    encode_request(req.header.correlation_id, req.request, again);
    if (again.substr(kFrameSizeBytes) != std::string(frame.begin(), frame.end()))
      std::abort();
  }
  if (auto resp = decode_response(frame); resp.error == errc::none) {
    std::string again;
    encode_response(resp.correlation_id, resp.response, again);
    if (again.substr(kFrameSizeBytes) != std::string(frame.begin(), frame.end()))
      std::abort();
  }
  return 0;
}
