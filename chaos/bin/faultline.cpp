// `faultline`: the command users type (ARCHITECTURE.md §7). `check` runs in this process, which
// links the checker and nothing else, so checking a small history costs a few milliseconds.
// Every other command replaces this process (execv: same pid, signals and exit code) with
// faultline-harness from this binary's directory, which links the cluster, the fault backends and
// their shared libraries (libcurl, librdkafka, libnftables, libnl ...): loading those alone costs
// 15-50 ms, more than a whole check of a small history.
#include <malloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "faultline/checker/cli.h"

namespace {

// The harness next to this binary (the build's bin/ or an installed prefix's).
std::filesystem::path harness_path() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (ec ? std::filesystem::path(".") : self.parent_path()) / "faultline-harness";
}

int check(int argc, char** argv) {
  // A check builds and frees large tables phase after phase (parse, index, search per key). By
  // default glibc serves each block over 128 KiB with its own mmap and returns freed heap tops to
  // the kernel, so every phase page-faults its memory in again; a short-lived process is better
  // off keeping what it got.
  ::mallopt(M_MMAP_THRESHOLD, 256 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 512 << 20);
  ::mallopt(M_TOP_PAD, 16 << 20);
  CLI::App app{"faultline: chaos testing of partition leader election"};
  app.require_subcommand(1);
  int exit_code = 0;
  faultline::checker::add_check_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Usage errors are exit 2 (ARCHITECTURE.md §7), help is 0.
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "check")
    return check(argc, argv);
  const auto harness = harness_path();
  ::execv(harness.c_str(), argv);
  std::fprintf(stderr, "faultline: cannot run %s: %s\n", harness.c_str(), std::strerror(errno));
  return 4;  // a harness failure (ARCHITECTURE.md §7)
}
