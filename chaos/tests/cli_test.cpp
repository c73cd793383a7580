#include "faultline/chaos/cli.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>

namespace faultline::chaos {
namespace {
namespace fs = std::filesystem;

int run(std::vector<std::string> args) {
  CLI::App app("faultline");
  int exit_code = -1;
  add_chaos_commands(app, exit_code);
  std::reverse(args.begin(), args.end());  // CLI11 takes them last-first
  app.parse(args);
  return exit_code;
}

TEST(ChaosCli, CleanExitCodes) {
  const fs::path root = fs::temp_directory_path() / ("fl-cli-test-" + std::to_string(::getpid()));
  fs::create_directories(root);
  // Nothing to clean is success; an unknown run is a usage error (ARCHITECTURE.md §7 exit 2).
  EXPECT_EQ(run({"clean", "--state-root", root.string()}), 0);
  EXPECT_EQ(run({"clean", "--state-root", root.string(), "--run", "no-such-run"}), 2);
  EXPECT_EQ(run({"clean", "--state-root", root.string(), "--dry-run"}), 0);
  fs::remove_all(root);
}

TEST(ChaosCli, RegistersBothCommands) {
  CLI::App app("faultline");
  int exit_code = -1;
  add_chaos_commands(app, exit_code);
  EXPECT_NO_THROW(app.get_subcommand("clean"));
  EXPECT_NO_THROW(app.get_subcommand("doctor"));
  EXPECT_EQ(exit_code, -1) << "nothing runs until parsed";
}

}  // namespace
}  // namespace faultline::chaos
