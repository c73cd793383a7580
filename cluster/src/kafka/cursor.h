// Bounds-checked big-endian cursors over Kafka's primitive types (fixed-width integers, zigzag
// varints, i16/compact strings, i32 bytes, array counts, tagged fields), shared by the protocol
// codec and the record batch conversion. Private to cluster/src/kafka.
//
// The Reader never reads outside its span and never trusts a length: a string or byte field longer
// than what is left, or an array count larger than what is left could hold, is a failure. The
// first failure sticks, so decoders read straight through and check ok() once at the end.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace faultline::cluster::kafka::detail {

class Reader {
 public:
  explicit Reader(std::span<const char> in) : in_(in) {}

  template <typename T>
  requires std::is_integral_v<T>
  bool integer(T& v) {
    if (!take(sizeof(T)))
      return false;
    using U = std::make_unsigned_t<T>;
    U u = 0;
    for (size_t i = pos_ - sizeof(T); i < pos_; ++i)
      u = static_cast<U>((u << 8) | static_cast<unsigned char>(in_[i]));
    v = static_cast<T>(u);
    return true;
  }

  // Kafka reads any non-zero byte as true.
  bool boolean(bool& v) {
    int8_t b = 0;
    if (!integer(b))
      return false;
    v = b != 0;
    return true;
  }

  // Unsigned LEB128, at most `max_bytes` bytes; the last byte may not carry bits beyond `bits`.
  bool unsigned_varint(uint64_t& v, int bits) {
    v = 0;
    for (int shift = 0; shift < bits; shift += 7) {
      uint8_t b = 0;
      if (!integer(b))
        return false;
      if (bits - shift < 7 && (b >> (bits - shift)) != 0)
        return fail();
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0)
        return true;
    }
    return fail();
  }
  bool uvarint(uint32_t& v) {
    uint64_t u = 0;
    if (!unsigned_varint(u, 32))
      return false;
    v = static_cast<uint32_t>(u);
    return true;
  }
  // Zigzag-encoded signed varint (records' lengths and deltas).
  bool varint(int32_t& v) {
    uint64_t u = 0;
    if (!unsigned_varint(u, 32))
      return false;
    v = static_cast<int32_t>(static_cast<uint32_t>(u >> 1) ^ -static_cast<uint32_t>(u & 1));
    return true;
  }
  bool varlong(int64_t& v) {
    uint64_t u = 0;
    if (!unsigned_varint(u, 64))
      return false;
    v = static_cast<int64_t>((u >> 1) ^ -(u & 1));
    return true;
  }

  // A view of the next n bytes.
  bool view(size_t n, std::string_view& out) {
    if (!take(n))
      return false;
    out = std::string_view(in_.data() + pos_ - n, n);
    return true;
  }

  // i16 length + bytes; -1 is only accepted by nullable_string.
  bool string(std::string& s) {
    std::optional<std::string> o;
    if (!nullable_string(o) || !o)
      return fail();
    s = std::move(*o);
    return true;
  }
  bool nullable_string(std::optional<std::string>& s) {
    int16_t n = 0;
    if (!integer(n) || n < -1)
      return fail();
    return sized(n, s);
  }
  // Compact string: unsigned varint length + 1, 0 meaning null (refused here).
  bool compact_string(std::string& s) {
    uint32_t n = 0;
    std::optional<std::string> o;
    if (!uvarint(n) || n == 0 || !sized(static_cast<int64_t>(n) - 1, o))
      return fail();
    s = std::move(*o);
    return true;
  }
  // i32 length + bytes, -1 (null) read as empty.
  bool nullable_bytes(std::string& s) {
    int32_t n = 0;
    std::optional<std::string> o;
    if (!integer(n) || n < -1 || !sized(n, o))
      return fail();
    s = o ? std::move(*o) : std::string();
    return true;
  }

  // An i32 array count whose elements take at least `min_element_bytes` each; -1 (null) only for
  // nullable_count.
  bool count(uint32_t& n, size_t min_element_bytes) {
    std::optional<uint32_t> o;
    if (!nullable_count(o, min_element_bytes) || !o)
      return fail();
    n = *o;
    return true;
  }
  bool nullable_count(std::optional<uint32_t>& n, size_t min_element_bytes) {
    int32_t c = 0;
    if (!integer(c) || c < -1)
      return fail();
    if (c == -1) {
      n.reset();
      return true;
    }
    return capped(static_cast<uint32_t>(c), min_element_bytes, n);
  }
  // A zigzag-varint count (record headers).
  bool varint_count(uint32_t& n, size_t min_element_bytes) {
    int32_t c = 0;
    std::optional<uint32_t> o;
    if (!varint(c) || c < 0 || !capped(static_cast<uint32_t>(c), min_element_bytes, o))
      return fail();
    n = *o;
    return true;
  }

  // Tagged fields of a flexible message: count, then (tag, size, bytes) each. None is understood
  // by what we serve, so all are skipped.
  bool skip_tagged_fields() {
    uint32_t n = 0;
    if (!uvarint(n) || n > remaining() / 2)
      return fail();
    for (uint32_t i = 0; i < n; ++i) {
      uint32_t tag = 0;
      uint32_t size = 0;
      std::string_view ignored;
      if (!uvarint(tag) || !uvarint(size) || !view(size, ignored))
        return false;
    }
    return true;
  }

  size_t position() const { return pos_; }
  size_t remaining() const { return ok_ ? in_.size() - pos_ : 0; }
  bool ok() const { return ok_; }
  // ok() and nothing left over.
  bool done() const { return ok_ && pos_ == in_.size(); }
  bool fail() { return ok_ = false; }

 private:
  bool take(size_t n) {
    if (!ok_ || in_.size() - pos_ < n)
      return fail();
    pos_ += n;
    return true;
  }
  bool sized(int64_t n, std::optional<std::string>& s) {
    if (n == -1) {
      s.reset();
      return ok_;
    }
    std::string_view v;
    if (n < 0 || !view(static_cast<size_t>(n), v))
      return fail();
    s.emplace(v);
    return true;
  }
  bool capped(uint32_t c, size_t min_element_bytes, std::optional<uint32_t>& n) {
    if (c > remaining() / (min_element_bytes == 0 ? 1 : min_element_bytes))
      return fail();
    n = c;
    return true;
  }

  std::span<const char> in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Appends to a string; sizes of arrays and strings are the caller's to keep in range.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  template <typename T>
  requires std::is_integral_v<T>
  void integer(T v) {
    using U = std::make_unsigned_t<T>;
    auto u = static_cast<U>(v);
    char bytes[sizeof(T)];
    for (size_t i = sizeof(T); i-- > 0;) {
      bytes[i] = static_cast<char>(u & 0xFF);
      u = static_cast<U>(u >> 8);
    }
    out_.append(bytes, sizeof(T));
  }
  void boolean(bool v) { integer<int8_t>(v ? 1 : 0); }
  void unsigned_varint(uint64_t u) {
    while (u >= 0x80) {
      out_.push_back(static_cast<char>((u & 0x7F) | 0x80));
      u >>= 7;
    }
    out_.push_back(static_cast<char>(u));
  }
  void varint(int32_t v) { unsigned_varint(zigzag(v)); }
  void varlong(int64_t v) { unsigned_varint(zigzag(v)); }

  void raw(std::string_view s) { out_.append(s); }
  void string(std::string_view s) {
    integer(static_cast<int16_t>(s.size()));
    out_.append(s);
  }
  void nullable_string(const std::optional<std::string>& s) {
    if (s)
      string(*s);
    else
      integer<int16_t>(-1);
  }
  void bytes(std::string_view s) {
    integer(static_cast<int32_t>(s.size()));
    out_.append(s);
  }
  void count(size_t n) { integer(static_cast<int32_t>(n)); }
  void compact_count(size_t n) { unsigned_varint(n + 1); }
  void no_tagged_fields() { unsigned_varint(0); }

  size_t position() const { return out_.size(); }
  // Overwrites 4 bytes already written (a size or a CRC known only at the end).
  void patch_u32(size_t at, uint32_t v) {
    for (size_t i = 4; i-- > 0;) {
      out_[at + i] = static_cast<char>(v & 0xFF);
      v >>= 8;
    }
  }

  static uint64_t zigzag(int64_t v) {
    return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  }
  // Bytes taken by the zigzag varint of v.
  static size_t varint_size(int64_t v) {
    size_t n = 1;
    for (uint64_t u = zigzag(v); u >= 0x80; u >>= 7)
      ++n;
    return n;
  }

 private:
  std::string& out_;
};

}  // namespace faultline::cluster::kafka::detail
