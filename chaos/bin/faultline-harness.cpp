// `faultline-harness`: the harness's whole command line (ARCHITECTURE.md §7). Users type
// `faultline`, which runs `check` itself and execs this binary, with the same arguments, for every
// other command (chaos/bin/faultline.cpp). Each component registers its own subcommands; this file
// only assembles them and maps the outcome to an exit code.
#include <spdlog/cfg/env.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "faultline/chaos/cli.h"
#include "faultline/chaos/cluster_cli.h"
#include "faultline/chaos/faults/adapters.h"
#include "faultline/chaos/faults/cli.h"
#include "faultline/chaos/runner/runner.h"
#include "faultline/checker/cli.h"
#include "faultline/cluster/client/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"faultline: chaos testing of partition leader election"};
  app.require_subcommand(1);
  int exit_code = 0;
  // Commands print their results on stdout; diagnostics go to stderr, warnings and up unless
  // SPDLOG_LEVEL says otherwise (SPDLOG_LEVEL=debug shows every produce attempt, every fault step).
  spdlog::set_default_logger(spdlog::stderr_color_mt("faultline"));
  spdlog::set_level(spdlog::level::warn);
  spdlog::cfg::load_env_levels();
  // `clean` must know how to remove every kind of resource a fault journals.
  faultline::chaos::register_fault_cleaners();
  faultline::chaos::add_run_commands(app, exit_code);
  faultline::chaos::add_chaos_commands(app, exit_code);
  faultline::chaos::add_fault_commands(app, exit_code);
  faultline::cluster::add_client_commands(app, exit_code);
  faultline::chaos::add_cluster_commands(app, exit_code);
  faultline::checker::add_check_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Usage errors are exit 2 (ARCHITECTURE.md §7), help is 0.
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return exit_code;
}
