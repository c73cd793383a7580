#include "faultline/cluster/wire/codec.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <type_traits>

namespace faultline::cluster {
namespace {

// std::byteswap is C++23; the wire is big-endian.
template <typename U>
constexpr U to_big_endian(U u) {
  if constexpr (sizeof(U) == 1 || std::endian::native == std::endian::big) {
    return u;
  } else if constexpr (sizeof(U) == 2) {
    return __builtin_bswap16(u);
  } else if constexpr (sizeof(U) == 4) {
    return __builtin_bswap32(u);
  } else {
    return __builtin_bswap64(u);
  }
}

// ---- writing -----------------------------------------------------------------------------------

class Writer {
 public:
  // With `attachments`, long SharedBytes fields are referenced there instead of copied.
  explicit Writer(std::string& out, std::vector<OutFrame::Attachment>* attachments = nullptr)
      : out_(out), attachments_(attachments) {}

  template <typename T>
  requires std::is_integral_v<T>
  void integer(T v) {
    using U = std::make_unsigned_t<T>;
    auto u = static_cast<U>(v);
    u = to_big_endian(u);
    char bytes[sizeof(T)];
    std::memcpy(bytes, &u, sizeof(T));
    out_.append(bytes, sizeof(T));
  }
  void bytes(std::string_view s) {
    integer(static_cast<int32_t>(s.size()));
    out_.append(s);
  }
  void shared(const SharedBytes& b) {
    if (attachments_ == nullptr || b.size() < OutFrame::kAttachMinBytes) {
      bytes(b.view());
      return;
    }
    integer(static_cast<int32_t>(b.size()));
    attachments_->push_back({out_.size(), b});
    attached_ += b.size();
  }
  // Bytes written so far, attached ones included.
  size_t position() const { return out_.size() + attached_; }
  // Overwrites 4 bytes at `at`, an offset in the copied bytes taken before any attachment.
  void patch_u32(size_t at, uint32_t v) {
    v = to_big_endian(v);
    std::memcpy(out_.data() + at, &v, sizeof v);
  }

 private:
  std::string& out_;
  std::vector<OutFrame::Attachment>* attachments_;
  size_t attached_ = 0;
};

// ---- reading -----------------------------------------------------------------------------------

// A bounds-checked cursor. The first failed read makes every later one fail too, so decoders read
// straight through and check ok() once.
class Reader {
 public:
  explicit Reader(std::span<const char> in) : in_(in) {}
  // Reads `frame`; SharedBytes fields become slices of it rather than copies.
  explicit Reader(const SharedBytes& frame) : in_(frame.span()), frame_(&frame) {}

  template <typename T>
  requires std::is_integral_v<T>
  bool integer(T& v) {
    if (!take(sizeof(T)))
      return false;
    using U = std::make_unsigned_t<T>;
    U u;
    std::memcpy(&u, in_.data() + pos_ - sizeof(T), sizeof(T));
    u = to_big_endian(u);
    v = static_cast<T>(u);
    return true;
  }
  bool bytes(std::string& s) {
    int32_t n = 0;
    if (!integer(n) || n < 0 || static_cast<size_t>(n) > remaining())
      return fail();
    s.assign(in_.data() + pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }
  bool shared(SharedBytes& b) {
    int32_t n = 0;
    if (!integer(n) || n < 0 || static_cast<size_t>(n) > remaining())
      return fail();
    const auto len = static_cast<size_t>(n);
    b = frame_ != nullptr ? frame_->slice(pos_, len)
                          : SharedBytes(std::string(in_.data() + pos_, len));
    pos_ += len;
    return true;
  }
  // A count of elements that take at least `min_element_bytes` each.
  bool count(uint32_t& n, size_t min_element_bytes) {
    int32_t c = 0;
    if (!integer(c) || c < 0)
      return fail();
    if (static_cast<size_t>(c) > remaining() / std::max<size_t>(min_element_bytes, 1))
      return fail();
    n = static_cast<uint32_t>(c);
    return true;
  }
  size_t remaining() const { return ok_ ? in_.size() - pos_ : 0; }
  bool ok() const { return ok_; }
  bool fail() { return ok_ = false; }

 private:
  bool take(size_t n) {
    if (!ok_ || in_.size() - pos_ < n)
      return fail();
    pos_ += n;
    return true;
  }
  std::span<const char> in_;
  const SharedBytes* frame_ = nullptr;
  size_t pos_ = 0;
  bool ok_ = true;
};

// ---- field codecs ------------------------------------------------------------------------------

template <typename T>
struct is_named_type : std::false_type {};
template <typename T, typename Tag>
struct is_named_type<named_type<T, Tag>> : std::true_type {};
template <typename T>
struct is_optional : std::false_type {};
template <typename T>
struct is_optional<std::optional<T>> : std::true_type {};
template <typename T>
struct is_vector : std::false_type {};
template <typename T>
struct is_vector<std::vector<T>> : std::true_type {};

template <typename T>
concept Message = requires(T& t) {
  T::fields(t);
};

template <typename T>
void put(Writer& w, const T& v);
template <typename T>
bool get(Reader& r, T& v);

template <typename T>
void put(Writer& w, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    w.integer<uint8_t>(v ? 1 : 0);
  } else if constexpr (std::is_integral_v<T>) {
    w.integer(v);
  } else if constexpr (std::is_enum_v<T>) {
    w.integer(static_cast<std::underlying_type_t<T>>(v));
  } else if constexpr (is_named_type<T>::value) {
    w.integer(v.value());
  } else if constexpr (std::is_same_v<T, std::string>) {
    w.bytes(v);
  } else if constexpr (std::is_same_v<T, SharedBytes>) {
    w.shared(v);
  } else if constexpr (std::is_same_v<T, Endpoint>) {
    w.bytes(v.host);
    w.integer(v.port);
  } else if constexpr (std::is_same_v<T, TopicPartition>) {
    w.bytes(v.topic);
    w.integer(v.partition.value());
  } else if constexpr (std::is_same_v<T, ReplicaList>) {
    w.integer(static_cast<int32_t>(v.size()));
    for (BrokerId id : v)
      w.integer(id.value());
  } else if constexpr (std::is_same_v<T, MetadataEntry>) {
    // The metadata log's own framing (with its CRC) travels as an opaque byte string.
    std::vector<uint8_t> frame;
    encode_metadata_entry(v, frame);
    w.bytes(std::string_view(reinterpret_cast<const char*>(frame.data()), frame.size()));
  } else if constexpr (std::is_same_v<T, std::vector<uint8_t>>) {
    // The same bytes as the generic vector below (count, then one byte each), in one copy.
    w.bytes(std::string_view(reinterpret_cast<const char*>(v.data()), v.size()));
  } else if constexpr (is_optional<T>::value) {
    put(w, v.has_value());
    if (v)
      put(w, *v);
  } else if constexpr (is_vector<T>::value) {
    w.integer(static_cast<int32_t>(v.size()));
    for (const auto& e : v)
      put(w, e);
  } else {
    static_assert(Message<T>, "no wire encoding for this type");
    std::apply([&](const auto&... f) { (put(w, f), ...); }, T::fields(v));
  }
}

template <typename T>
bool get(Reader& r, T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    uint8_t b = 0;
    if (!r.integer(b) || b > 1)
      return r.fail();
    v = b == 1;
    return true;
  } else if constexpr (std::is_integral_v<T>) {
    return r.integer(v);
  } else if constexpr (std::is_enum_v<T>) {
    // Enum values are not range-checked here: the handlers treat an unknown value as a bad
    // request, and errc values from a newer peer must survive a round trip.
    std::underlying_type_t<T> u{};
    if (!r.integer(u))
      return false;
    v = static_cast<T>(u);
    return true;
  } else if constexpr (is_named_type<T>::value) {
    typename T::value_type u{};
    if (!r.integer(u))
      return false;
    v = T{u};
    return true;
  } else if constexpr (std::is_same_v<T, std::string>) {
    return r.bytes(v);
  } else if constexpr (std::is_same_v<T, SharedBytes>) {
    return r.shared(v);
  } else if constexpr (std::is_same_v<T, Endpoint>) {
    return r.bytes(v.host) && r.integer(v.port);
  } else if constexpr (std::is_same_v<T, TopicPartition>) {
    int32_t p = 0;
    if (!r.bytes(v.topic) || !r.integer(p))
      return false;
    v.partition = PartitionIndex{p};
    return true;
  } else if constexpr (std::is_same_v<T, ReplicaList>) {
    uint32_t n = 0;
    if (!r.count(n, sizeof(int32_t)))
      return false;
    v.clear();
    for (uint32_t i = 0; i < n; ++i) {
      int32_t id = 0;
      if (!r.integer(id))
        return false;
      v.push_back(BrokerId{id});
    }
    return true;
  } else if constexpr (std::is_same_v<T, MetadataEntry>) {
    std::string frame;
    if (!r.bytes(frame))
      return false;
    auto decoded = decode_metadata_entry(
        std::span(reinterpret_cast<const uint8_t*>(frame.data()), frame.size()));
    if (decoded.status != DecodeStatus::ok || decoded.consumed != frame.size())
      return r.fail();
    v = std::move(decoded.entry);
    return true;
  } else if constexpr (std::is_same_v<T, std::vector<uint8_t>>) {
    std::string bytes;
    if (!r.bytes(bytes))
      return false;
    v.assign(bytes.begin(), bytes.end());
    return true;
  } else if constexpr (is_optional<T>::value) {
    bool present = false;
    if (!get(r, present))
      return false;
    if (!present) {
      v.reset();
      return true;
    }
    v.emplace();
    return get(r, *v);
  } else if constexpr (is_vector<T>::value) {
    uint32_t n = 0;
    if (!r.count(n, 1))
      return false;
    v.clear();
    v.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      if (!get(r, v.emplace_back()))
        return false;
    }
    return true;
  } else {
    return std::apply([&](auto&... f) { return (get(r, f) && ...); }, T::fields(v)) && r.ok();
  }
}

// Builds the variant alternative with index `key` and decodes it.
template <typename Variant, size_t... I>
bool decode_alternative(Reader& r, size_t key, Variant& out, std::index_sequence<I...>) {
  bool ok = false;
  ((key == I ? (out.template emplace<I>(), ok = get(r, std::get<I>(out))) : false), ...);
  return ok;
}

template <typename Variant>
bool decode_variant(Reader& r, size_t key, Variant& out) {
  if (key >= std::variant_size_v<Variant>)
    return false;
  return decode_alternative(r, key, out, std::make_index_sequence<std::variant_size_v<Variant>>{});
}

constexpr size_t kRequestHeaderBytes = 2 + 2 + 4;
constexpr size_t kResponseHeaderBytes = 4 + 2;
// No frame is shorter than a header with an empty body; a response's header is the shorter one.
constexpr size_t kMinFrameBytes = std::min(kRequestHeaderBytes, kResponseHeaderBytes);

template <typename Header, typename Body>
void encode_frame(const Header& write_header, const Body& body, Writer& w) {
  size_t at = w.position();
  w.integer<uint32_t>(0);
  write_header(w);
  std::visit([&](const auto& m) { put(w, m); }, body);
  w.patch_u32(at, static_cast<uint32_t>(w.position() - at - kFrameSizeBytes));
}

void write_request_header(Writer& w, int32_t correlation_id, const Request& request) {
  w.integer(api_key(request));
  w.integer(kApiVersion);
  w.integer(correlation_id);
}

void write_response_header(Writer& w, int32_t correlation_id, const Response& response) {
  w.integer(correlation_id);
  w.integer(api_key(response));
}

DecodedRequest decode_request_from(Reader& r) {
  DecodedRequest out;
  if (!r.integer(out.header.api_key) || !r.integer(out.header.api_version) ||
      !r.integer(out.header.correlation_id)) {
    out.error = errc::malformed_frame;
    return out;
  }
  if (out.header.api_key < 0 ||
      static_cast<size_t>(out.header.api_key) >= std::variant_size_v<Request> ||
      out.header.api_version != kApiVersion) {
    out.error = errc::unsupported_version;
    return out;
  }
  if (!decode_variant(r, static_cast<size_t>(out.header.api_key), out.request) || !r.ok() ||
      r.remaining() != 0) {
    out.error = errc::malformed_frame;
  }
  return out;
}

DecodedResponse decode_response_from(Reader& r) {
  DecodedResponse out;
  ApiKey key = 0;
  if (!r.integer(out.correlation_id) || !r.integer(key) ||
      !decode_variant(r, static_cast<size_t>(static_cast<uint16_t>(key)), out.response) ||
      !r.ok() || r.remaining() != 0) {
    out.error = errc::malformed_frame;
  }
  return out;
}

constexpr std::array<std::string_view, std::variant_size_v<Request>> kApiNames = {
    "Produce",
    "Fetch",
    "ListOffsets",
    "OffsetForLeaderEpoch",
    "Metadata",
    "ApiVersions",
    "BrokerRegistration",
    "BrokerHeartbeat",
    "FetchMetadataLog",
    "AlterPartition",
    "CreateTopic",
    "ElectLeaders",
    "DemoteBroker",
    "PromoteBroker",
    "Reassign",
    "SetConfig",
    "BrokerHealth",
    "ReplicaFetch",
    "QuorumVote",
    "QuorumAppend",
    "DescribeQuorum",
    "QuorumInstallSnapshot",
    "AlterPartitions"};

}  // namespace

std::string_view api_name(ApiKey key) noexcept {
  return key >= 0 && static_cast<size_t>(key) < kApiNames.size() ? kApiNames[key] : "Unknown";
}

Response error_response_for(const Request& request, errc error) {
  Response out;
  [&]<size_t... I>(std::index_sequence<I...>) {
    // The alternative at the request's index answers it; the fold stops there.
    (void)((request.index() == I && (out.emplace<I>().error = error, true)) || ...);
  }
  (std::make_index_sequence<std::variant_size_v<Response>>{});
  return out;
}

errc response_error(const Response& response) noexcept {
  return std::visit([](const auto& r) { return r.error; }, response);
}

void encode_request(int32_t correlation_id, const Request& request, std::string& out) {
  Writer w(out);
  encode_frame([&](Writer& h) { write_request_header(h, correlation_id, request); }, request, w);
}

void encode_response(int32_t correlation_id, const Response& response, std::string& out) {
  Writer w(out);
  encode_frame([&](Writer& h) { write_response_header(h, correlation_id, response); }, response, w);
}

void encode_request(int32_t correlation_id, const Request& request, OutFrame& out) {
  Writer w(out.head, &out.attachments);
  encode_frame([&](Writer& h) { write_request_header(h, correlation_id, request); }, request, w);
}

void encode_response(int32_t correlation_id, const Response& response, OutFrame& out) {
  Writer w(out.head, &out.attachments);
  encode_frame([&](Writer& h) { write_response_header(h, correlation_id, response); }, response, w);
}

size_t OutFrame::size() const {
  size_t n = head.size();
  for (const Attachment& a : attachments)
    n += a.bytes.size();
  return n;
}

std::string OutFrame::flatten() const {
  std::string out;
  out.reserve(size());
  for_each_piece([&](std::span<const char> piece) { out.append(piece.data(), piece.size()); });
  return out;
}

errc decode_frame_size(std::span<const char, kFrameSizeBytes> prefix, uint32_t max_bytes,
                       uint32_t& size) {
  Reader r(prefix);
  r.integer(size);
  if (size > max_bytes)
    return errc::frame_too_large;
  if (size < kMinFrameBytes)
    return errc::malformed_frame;
  return errc::none;
}

DecodedRequest decode_request(std::span<const char> frame) {
  Reader r(frame);
  return decode_request_from(r);
}

DecodedRequest decode_request(const SharedBytes& frame) {
  Reader r(frame);
  return decode_request_from(r);
}

DecodedResponse decode_response(std::span<const char> frame) {
  Reader r(frame);
  return decode_response_from(r);
}

DecodedResponse decode_response(const SharedBytes& frame) {
  Reader r(frame);
  return decode_response_from(r);
}

}  // namespace faultline::cluster
