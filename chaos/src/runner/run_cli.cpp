#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "faultline/chaos/runner/runner.h"
#include "faultline/chaos/runner/shrink.h"

namespace faultline::chaos {

void add_run_commands(CLI::App& app, int& exit_code) {
  struct Options {
    std::string scenario = "leader-kill";
    uint64_t seed = 1;
    int duration_s = 0;
    std::string out;
    std::string replay_dir;
    uint16_t metrics_port = 0;
    bool prometheus = false;
    std::vector<size_t> only_steps;
    std::string client;
    std::string cluster_definition;
    int max_runs = 24;
  };
  auto o = std::make_shared<Options>();

  auto* run = app.add_subcommand("run", "run a scenario: cluster, workload, faults, verdict");
  run->add_option("--scenario", o->scenario, "a built-in name or a TOML file");
  run->add_option("--seed", o->seed, "root seed of every random choice");
  run->add_option("--duration", o->duration_s, "seconds of workload (overrides the scenario)");
  run->add_option("--out", o->out, "run directory (default faultline-runs/<scenario>-<seed>)");
  run->add_option("--metrics-port", o->metrics_port,
                  "serve faultline_faults_total and faultline_partition_unavailable_seconds");
  run->add_flag(
      "--prometheus", o->prometheus,
      "run Prometheus (/usr/bin/prometheus) scraping every process into <out>/prometheus");
  run->add_option(
         "--only-steps", o->only_steps,
         "inject only these steps of the planned schedule (0-based lines of schedule.jsonl)")
      ->delimiter(',');
  run->add_option("--client", o->client,
                  "the workload's client, overriding the scenario's: faultline or librdkafka")
      ->check(CLI::IsMember({"faultline", "librdkafka"}));
  run->add_option("--cluster-definition", o->cluster_definition,
                  "run the cluster this TOML file defines (chaos/definitions/) instead of the "
                  "built-in mini-cluster; the workload is then librdkafka's");
  run->callback([o, &exit_code] {
    std::string text;
    std::optional<Scenario> s;
    ScenarioError error;
    if (auto builtin = builtin_scenario_toml(o->scenario)) {
      text = *builtin;
      s = parse_scenario(text, "<built-in " + o->scenario + ">", error);
    } else {
      std::ifstream in(o->scenario);
      if (!in) {
        std::cerr << o->scenario
                  << ": no such built-in scenario or file (see `faultline scenarios`)\n";
        exit_code = 2;
        return;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
      s = parse_scenario(text, o->scenario, error);
    }
    if (!s) {
      std::cerr << error.str() << "\n";
      exit_code = 2;
      return;
    }
    RunOptions ro;
    ro.seed = o->seed;
    if (o->duration_s > 0)
      ro.duration = std::chrono::seconds(o->duration_s);
    ro.out_dir = o->out;
    ro.metrics_port = o->metrics_port;
    ro.prometheus = o->prometheus;
    if (!o->only_steps.empty())
      ro.only_steps = o->only_steps;
    if (!o->client.empty())
      ro.client = o->client == "librdkafka" ? WorkloadClientKind::librdkafka
                                            : WorkloadClientKind::faultline;
    ro.cluster_definition = o->cluster_definition;
    exit_code = run_scenario(*s, text, ro, std::cout);
  });

  auto* scenarios = app.add_subcommand("scenarios", "list the built-in scenarios");
  auto show = std::make_shared<std::string>();
  scenarios->add_option("--show", *show, "print a built-in's TOML (save it, edit it, run it)");
  scenarios->callback([&exit_code, show] {
    if (!show->empty()) {
      auto text = builtin_scenario_toml(*show);
      if (!text) {
        std::cerr << *show << ": no such built-in scenario (see `faultline scenarios`)\n";
        exit_code = 2;
        return;
      }
      std::cout << *text;
      exit_code = 0;
      return;
    }
    const auto names = builtin_scenario_names();
    size_t width = 0;
    for (const auto& name : names)
      width = std::max(width, name.size());
    for (const auto& name : names) {
      auto s = builtin_scenario(name);
      fmt::print("{:{}} {:8} {}\n", name, width, s->expect_valid ? "valid" : "invalid",
                 s->description);
    }
    exit_code = 0;
  });

  auto* shrink = app.add_subcommand(
      "shrink", "cut a failing run's fault schedule down to the fewest steps that still fail");
  shrink->add_option("dir", o->replay_dir, "the failing run's directory")->required();
  shrink->add_option("--max-runs", o->max_runs, "runs at most (each a whole run; default 24)")
      ->check(CLI::Range(2, 10000));
  shrink->callback([o, &exit_code] {
    exit_code = shrink_run(o->replay_dir, ShrinkOptions{o->max_runs}, std::cout);
  });

  auto* replay =
      app.add_subcommand("replay", "run a recorded run again (same scenario, seed, schedule)");
  replay->add_option("dir", o->replay_dir, "a run directory")->required();
  replay->callback([o, &exit_code] { exit_code = replay_run(o->replay_dir, std::cout); });
}

}  // namespace faultline::chaos
