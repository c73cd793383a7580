// Where the project's executables are: next to the running one (build/bin/ holds faultline,
// faultline-controller, -broker, -probe, -shaper and -lazyfs together), so a harness started from
// any directory finds the processes it starts.
#pragma once

#include <filesystem>
#include <string_view>

namespace faultline::chaos {

// The directory of the running executable (the current directory when it cannot be read).
std::filesystem::path binaries_dir();
// binaries_dir() / name.
std::filesystem::path sibling_binary(std::string_view name);

}  // namespace faultline::chaos
