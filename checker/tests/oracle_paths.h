// Where the public oracle histories are: checker/tests/oracles/porcupine (Porcupine's test data,
// MIT, copied with its LICENSE.md and README.md) in the source tree named by
// $FAULTLINE_SOURCE_DIR, else in the source tree this test was built from.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace faultline::checker::testing {

inline std::filesystem::path oracle_dir() {
  const char* env = std::getenv("FAULTLINE_SOURCE_DIR");
  std::filesystem::path source = env && *env ? env : FAULTLINE_DEFAULT_SOURCE_DIR;
  return source / "checker" / "tests" / "oracles" / "porcupine";
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace faultline::checker::testing
