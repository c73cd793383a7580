// Frame encoding and defensive decoding of the wire protocol (messages.h).
//
// Decoding never trusts a length: every read is bounds-checked against the frame, every count is
// bounded by the bytes left (an element takes at least one byte), and a frame must be consumed
// exactly. A frame that fails any check is reported as malformed_frame; the server closes that
// connection and nothing else (ARCHITECTURE.md §2 item 1).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "faultline/cluster/shared_bytes.h"
#include "faultline/cluster/wire/messages.h"

namespace faultline::cluster {

// Frames larger than this are refused before any allocation (Kafka's socket.request.max.bytes).
inline constexpr uint32_t kMaxFrameBytes = 100u << 20;
inline constexpr size_t kFrameSizeBytes = 4;

struct RequestHeader {
  ApiKey api_key = 0;
  int16_t api_version = 0;
  int32_t correlation_id = 0;
};

// Appends a whole frame (size prefix included) to `out`.
void encode_request(int32_t correlation_id, const Request& request, std::string& out);
void encode_response(int32_t correlation_id, const Response& response, std::string& out);

// A frame whose large byte fields (record batches) are referenced, not copied: `head` holds every
// other byte, and each attachment goes at its offset in `head`. Written with one gather write.
struct OutFrame {
  // Byte fields at least this long are attached; shorter ones are cheaper to copy than to gather.
  static constexpr size_t kAttachMinBytes = 4096;
  struct Attachment {
    size_t at = 0;  // offset in `head` where these bytes go
    SharedBytes bytes;
  };
  std::string head;
  std::vector<Attachment> attachments;  // in order of `at`

  size_t size() const;
  // Calls `piece(std::span<const char>)` for each contiguous piece of the frame, in order.
  template <typename Piece>
  void for_each_piece(Piece&& piece) const {
    size_t from = 0;
    for (const Attachment& a : attachments) {
      if (a.at > from)
        piece(std::span<const char>(head).subspan(from, a.at - from));
      piece(a.bytes.span());
      from = a.at;
    }
    if (head.size() > from)
      piece(std::span<const char>(head).subspan(from));
  }
  std::string flatten() const;  // the frame as one string (tests, tools)
};
void encode_request(int32_t correlation_id, const Request& request, OutFrame& out);
void encode_response(int32_t correlation_id, const Response& response, OutFrame& out);

// Reads the size prefix of a frame: frame_too_large above `max_bytes`, malformed_frame below the
// smallest header.
errc decode_frame_size(std::span<const char, kFrameSizeBytes> prefix, uint32_t max_bytes,
                       uint32_t& size);

struct DecodedRequest {
  errc error = errc::none;  // malformed_frame, unsupported_version (header still valid)
  RequestHeader header;
  Request request;
};
// Decodes a frame body (after the size prefix). With unsupported_version or an unknown api key the
// header is valid and the caller may answer with an error; with malformed_frame it must close.
// Byte fields are copied out of `frame`.
DecodedRequest decode_request(std::span<const char> frame);
// The same, with the SharedBytes fields (batches, records) sharing the frame's storage.
DecodedRequest decode_request(const SharedBytes& frame);

struct DecodedResponse {
  errc error = errc::none;  // malformed_frame
  int32_t correlation_id = 0;
  Response response;
};
DecodedResponse decode_response(std::span<const char> frame);
DecodedResponse decode_response(const SharedBytes& frame);

}  // namespace faultline::cluster
