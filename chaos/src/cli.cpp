#include "faultline/chaos/cli.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "faultline/chaos/clean.h"
#include "faultline/chaos/doctor.h"
#include "faultline/chaos/faults/adapters.h"

namespace faultline::chaos {

void add_chaos_commands(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<CleanOptions>();
  auto run_id = std::make_shared<std::string>();
  auto state_root = std::make_shared<std::string>(options->state_root.string());
  CLI::App* clean = app.add_subcommand(
      "clean",
      "Remove every leftover (namespaces, links, processes, nft tables, ...) of crashed runs");
  clean->add_option("--run", *run_id, "Only this run id (its harness must not be alive)");
  clean->add_option("--state-root", *state_root, "Where run journals live")->capture_default_str();
  clean->add_flag("--dry-run", options->dry_run, "Report what would be removed, remove nothing");
  clean->callback([options, run_id, state_root, &exit_code] {
    options->state_root = *state_root;
    if (!run_id->empty())
      options->run_id = *run_id;
    exit_code = run_clean(*options, std::cout);
  });

  CLI::App* doctor = app.add_subcommand(
      "doctor", "Probe this host's kernel features and print the backend each fault kind uses");
  doctor->callback([&exit_code] { exit_code = run_doctor(std::cout); });
}

}  // namespace faultline::chaos
