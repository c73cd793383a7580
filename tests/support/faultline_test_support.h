// Shared helpers for faultline's tests.
//
// Privileged tests (namespaces, cgroups, loop devices) call FAULTLINE_REQUIRE_ROOT() first. When
// the process is not root they skip with a reason, unless FAULTLINE_REQUIRE_PRIVILEGED=1 is set (as
// ci/test.sh does): then the missing privilege is a failure, so CI can never pass by skipping.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace faultline::testing {

inline bool privileged_required() {
  const char* v = std::getenv("FAULTLINE_REQUIRE_PRIVILEGED");
  return v != nullptr && std::string(v) == "1";
}

}  // namespace faultline::testing

#define FAULTLINE_REQUIRE_ROOT()                                                 \
  do {                                                                           \
    if (::geteuid() != 0) {                                                      \
      if (::faultline::testing::privileged_required()) {                         \
        FAIL() << "privileged test needs root (FAULTLINE_REQUIRE_PRIVILEGED=1)"; \
      }                                                                          \
      GTEST_SKIP() << "needs root: run as root or via sudo ./ci/test.sh";        \
    }                                                                            \
  } while (0)
