// Big-endian loads and stores on raw byte buffers (the batch format and the index files). Callers
// check bounds; these only move bytes, without alignment assumptions.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

namespace faultline::cluster::be {

template <typename T>
inline T load(const char* p) {
  using U = std::make_unsigned_t<T>;
  U v = 0;
  for (size_t i = 0; i < sizeof(T); ++i)
    v = static_cast<U>((v << 8) | static_cast<unsigned char>(p[i]));
  return static_cast<T>(v);
}

template <typename T>
inline void store(char* p, T value) {
  using U = std::make_unsigned_t<T>;
  auto v = static_cast<U>(value);
  for (size_t i = sizeof(T); i-- > 0;) {
    p[i] = static_cast<char>(v & 0xFF);
    v = static_cast<U>(v >> 8);
  }
}

template <typename T>
inline void append(std::string& out, T value) {
  char tmp[sizeof(T)];
  store<T>(tmp, value);
  out.append(tmp, sizeof(T));
}

}  // namespace faultline::cluster::be
