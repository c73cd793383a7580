#include "faultline/chaos/binaries.h"

#include <system_error>

namespace faultline::chaos {

std::filesystem::path binaries_dir() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::current_path() : self.parent_path();
}

std::filesystem::path sibling_binary(std::string_view name) {
  return binaries_dir() / name;
}

}  // namespace faultline::chaos
