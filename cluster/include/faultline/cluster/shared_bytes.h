// An immutable byte string that shares its storage instead of copying it.
//
// Record batches cross a broker without a copy in user space (ARCHITECTURE.md §2.7): a frame is
// read once into a buffer of its own, the produce batch or fetched records decoded from it are
// slices of that buffer, the log writes them from there; a log read fills one buffer, the fetch
// answer refers to it, and the answer goes out in one gather write (wire/codec.h's OutFrame). A
// slice keeps its whole buffer alive, so SharedBytes is for bytes on their way somewhere, not for
// keeping a small piece of a large frame.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace faultline::cluster {

class SharedBytes {
 public:
  SharedBytes() = default;
  // Takes over the string's storage: no copy when it is moved in.
  explicit SharedBytes(std::string bytes);

  // A buffer of `size` bytes left uninitialised (no zero fill), for a reader to fill through the
  // returned span before the bytes are shared.
  static std::pair<SharedBytes, std::span<char>> allocate(size_t size);

  // `length` bytes from `offset` of these, sharing the storage. The range must lie within.
  SharedBytes slice(size_t offset, size_t length) const;

  const char* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::span<const char> span() const { return {data_, size_}; }
  std::string_view view() const { return {data_, size_}; }
  operator std::span<const char>() const { return span(); }  // NOLINT(google-explicit-constructor)
  operator std::string_view() const { return view(); }       // NOLINT(google-explicit-constructor)
  std::string str() const { return std::string(view()); }

  friend bool operator==(const SharedBytes& a, const SharedBytes& b) {
    return a.view() == b.view();
  }
  friend bool operator==(const SharedBytes& a, std::string_view b) { return a.view() == b; }

 private:
  SharedBytes(std::shared_ptr<const char> owner, const char* data, size_t size)
      : owner_(std::move(owner)), data_(data), size_(size) {}

  std::shared_ptr<const char> owner_;  // keeps the whole buffer alive; null for empty bytes
  const char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace faultline::cluster
