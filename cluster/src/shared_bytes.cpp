#include "faultline/cluster/shared_bytes.h"

#include <cassert>

namespace faultline::cluster {

SharedBytes::SharedBytes(std::string bytes) {
  if (bytes.empty())
    return;
  auto holder = std::make_shared<const std::string>(std::move(bytes));
  data_ = holder->data();
  size_ = holder->size();
  owner_ = std::shared_ptr<const char>(holder, data_);
}

std::pair<SharedBytes, std::span<char>> SharedBytes::allocate(size_t size) {
  if (size == 0)
    return {};
  std::shared_ptr<char[]> buffer = std::make_shared_for_overwrite<char[]>(size);
  char* data = buffer.get();
  return {SharedBytes(std::shared_ptr<const char>(std::move(buffer), data), data, size),
          std::span<char>(data, size)};
}

SharedBytes SharedBytes::slice(size_t offset, size_t length) const {
  assert(offset <= size_ && length <= size_ - offset);
  if (length == 0)
    return {};
  return SharedBytes(owner_, data_ + offset, length);
}

}  // namespace faultline::cluster
