#include "faultline/chaos/faults/cli.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "faultline/chaos/binaries.h"
#include "faultline/chaos/cluster_cli.h"
#include "faultline/chaos/faults/injector.h"
#include "faultline/chaos/journal.h"

namespace faultline::chaos {

namespace fs = std::filesystem;

namespace {

// Appends to the journal of a run whose harness lives in another process (cluster up): one line
// per record, the same format the harness writes.
class RunDirRecorder final : public ResourceRecorder {
 public:
  explicit RunDirRecorder(fs::path run_dir) : run_dir_(std::move(run_dir)) {}
  std::error_code will_create(const std::string& kind, const std::string& name,
                              const nlohmann::json& details) override {
    JournalRecord r;
    r.kind = kind;
    r.name = name;
    r.details = details;
    r.state = ResourceState::intended;
    return append_record(run_dir_, r);
  }
  void removed(const std::string& kind, const std::string& name) override {
    JournalRecord r;
    r.kind = kind;
    r.name = name;
    r.state = ResourceState::removed;
    (void)append_record(run_dir_, r);
  }

 private:
  fs::path run_dir_;
};

struct ActiveFile {
  FaultId next_id = 1;
  std::vector<std::pair<FaultId, FaultSpec>> faults;
};

fs::path active_path(const fs::path& run_dir) {
  return run_dir / "faults-active.json";
}

ActiveFile load_active(const fs::path& run_dir) {
  ActiveFile a;
  std::ifstream in(active_path(run_dir));
  if (!in)
    return a;
  try {
    const auto j = nlohmann::json::parse(in);
    a.next_id = j.value("next_id", FaultId{1});
    for (const auto& f : j.at("faults")) {
      if (auto spec = fault_spec_from_json(f.at("spec"))) {
        a.faults.emplace_back(f.at("id").get<FaultId>(), *spec);
      }
    }
  } catch (const nlohmann::json::exception&) {
  }
  return a;
}

std::error_code save_active(const fs::path& run_dir, const ActiveFile& a) {
  nlohmann::json j{{"next_id", a.next_id}, {"faults", nlohmann::json::array()}};
  for (const auto& [id, spec] : a.faults)
    j["faults"].push_back({{"id", id}, {"spec", to_json(spec)}});
  // Written beside and renamed, so a crash never leaves half a file.
  const auto tmp = active_path(run_dir).string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    if (!out)
      return std::make_error_code(std::errc::io_error);
  }
  std::error_code ec;
  fs::rename(tmp, active_path(run_dir), ec);
  return ec;
}

fs::path default_shaper_binary() {
  if (const char* env = std::getenv("FAULTLINE_SHAPER"))
    return env;
  return sibling_binary("faultline-shaper");
}

// A value as JSON when it parses as a number, else as a string ("EIO", "*.log").
nlohmann::json param_value(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    if (j.is_number() || j.is_boolean())
      return j;
  } catch (const nlohmann::json::exception&) {
  }
  return text;
}

// `--param k=v` through the same JSON schema as faults.jsonl and scenarios: one vocabulary.
bool apply_param_overrides(FaultSpec& spec, const std::vector<std::string>& params,
                           std::string& why) {
  auto j = to_json(spec);
  for (const auto& p : params) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      why = "expected key=value, got " + p;
      return false;
    }
    const auto key = p.substr(0, eq);
    if (!j["params"].contains(key)) {
      why = "no parameter " + key + " for " + std::string(to_string(spec.kind));
      return false;
    }
    j["params"][key] = param_value(p.substr(eq + 1));
  }
  auto parsed = fault_spec_from_json(j, &why);
  if (!parsed)
    return false;
  spec = *parsed;
  return true;
}

}  // namespace

int run_fault_command(const FaultCommand& cmd, const FaultTopology& topology,
                      const fs::path& run_dir, ProcessControl* processes, std::ostream& out) {
  RunDirRecorder recorder(run_dir);
  FaultLog log(run_dir / "faults.jsonl");
  FaultContext ctx{&topology, &recorder,
                   processes, default_shaper_binary(),
                   run_dir,   static_cast<uint64_t>(::getpid())};
  auto active = load_active(run_dir);

  switch (cmd.verb) {
    case FaultCommand::Verb::list: {
      if (active.faults.empty())
        out << "no active faults\n";
      for (const auto& [id, spec] : active.faults) {
        out << fmt::format("{}\t{}\t{}\t{}\n", id, to_string(spec.kind),
                           fmt::join(spec.targets, ","), to_json(spec)["params"].dump());
      }
      return 0;
    }
    case FaultCommand::Verb::inject: {
      std::string why;
      if (auto ec = validate(cmd.spec, &why)) {
        out << "invalid fault: " << why << "\n";
        return 2;
      }
      FaultInjector injector(ctx, &log);
      const FaultId id = active.next_id++;
      auto o = injector.inject_with_id(id, cmd.spec, cmd.verify);
      if (o.error) {
        out << fmt::format("fault {} {} failed: {}\n", id, to_string(cmd.spec.kind),
                           o.error.message());
        (void)save_active(run_dir, active);  // the id is used up either way
        return 1;
      }
      if (!is_one_off(cmd.spec.kind))
        active.faults.emplace_back(id, cmd.spec);
      if (auto ec = save_active(run_dir, active)) {
        out << "warning: could not save active faults: " << ec.message() << "\n";
      }
      out << fmt::format("fault {} {} injected backend={} verified={}\n", id,
                         to_string(cmd.spec.kind), o.backend, o.verified);
      return 0;
    }
    case FaultCommand::Verb::heal: {
      std::vector<std::pair<FaultId, FaultSpec>> to_heal;
      if (cmd.heal_all) {
        to_heal.assign(active.faults.rbegin(), active.faults.rend());
      } else {
        for (const auto& f : active.faults) {
          if (cmd.heal_id && f.first == *cmd.heal_id)
            to_heal.push_back(f);
        }
        if (to_heal.empty()) {
          out << "no active fault " << (cmd.heal_id ? std::to_string(*cmd.heal_id) : "") << "\n";
          return 2;
        }
      }
      int rc = 0;
      for (const auto& [id, spec] : to_heal) {
        std::error_code ec;
        auto fault = make_fault(id, spec, ctx, ec);
        if (fault)
          ec = fault->heal();
        const bool verified = !ec && cmd.verify && fault && !fault->verify_healed();
        (void)log.append({id, spec, "heal", verified, fault ? fault->backend() : "",
                          fault ? fault->details() : nlohmann::json::object(), ec});
        if (ec) {
          out << fmt::format("fault {} heal failed: {}\n", id, ec.message());
          rc = 1;
          continue;
        }
        std::erase_if(active.faults, [id = id](const auto& f) { return f.first == id; });
        out << fmt::format("fault {} healed verified={}\n", id, verified);
      }
      (void)save_active(run_dir, active);
      return rc;
    }
  }
  return 2;
}

void add_fault_commands(CLI::App& app, int& exit_code) {
  auto* fault = app.add_subcommand("fault", "inject, heal and list faults of a running cluster");
  fault->require_subcommand(1);
  struct Options {
    std::string run;
    std::string kind;
    std::vector<std::string> targets;
    std::string interface;
    std::vector<std::string> peers;
    double delay_ms = 0, jitter_ms = 0, loss = 0, duplicate = 0, reorder = 0, corrupt = 0;
    uint64_t rate = 0, burst = 32 * 1024;
    uint64_t read_bps = 0, write_bps = 0, read_iops = 0, write_iops = 0;
    std::vector<std::string> params;  // key=value, the FaultSpec JSON parameter names
    bool no_verify = false;
    std::string heal_id;
    bool all = false;
  };
  auto opts = std::make_shared<Options>();

  auto run_with = [opts, &exit_code](FaultCommand cmd) {
    const fs::path run_dir = opts->run;
    auto topo = load_fault_topology(run_dir);
    if (!topo) {
      std::cerr << "no fault topology in " << run_dir << " (is the cluster up?)\n";
      exit_code = 2;
      return;
    }
    // Process faults go to the `cluster up` harness of this run, when there is one.
    std::optional<RunDirProcessControl> processes;
    if (fs::exists(run_dir / "processes.json"))
      processes.emplace(run_dir);
    exit_code =
        run_fault_command(cmd, *topo, run_dir, processes ? &*processes : nullptr, std::cout);
  };

  auto* inject = fault->add_subcommand("inject", "inject a fault (kinds: see ARCHITECTURE.md §3)");
  inject->add_option("--run", opts->run, "run directory")->required();
  inject
      ->add_option("kind", opts->kind,
                   "kill|pause|stop|restart|kill-restart|isolate|halves|"
                   "majorities-ring|bridge|one-way|isolate-leader|cut-link|"
                   "packets|rate|disk-throttle|disk-stall|power-loss|torn-write|disk-error|"
                   "slow-fsync")
      ->required();
  inject->add_option("targets", opts->targets, "node ids (order matters for one-way, halves...)");
  inject->add_option("--interface", opts->interface,
                     "interface (cut-link: ext; packets/rate: int)");
  inject->add_option("--peer", opts->peers, "packets: only traffic to these nodes");
  inject->add_option("--delay-ms", opts->delay_ms);
  inject->add_option("--jitter-ms", opts->jitter_ms);
  inject->add_option("--loss", opts->loss, "percent");
  inject->add_option("--duplicate", opts->duplicate, "percent");
  inject->add_option("--reorder", opts->reorder, "percent");
  inject->add_option("--corrupt", opts->corrupt, "percent");
  inject->add_option("--rate", opts->rate, "bytes/s (rate)");
  inject->add_option("--burst", opts->burst, "bytes (rate)");
  inject->add_option("--read-bps", opts->read_bps);
  inject->add_option("--write-bps", opts->write_bps);
  inject->add_option("--read-iops", opts->read_iops);
  inject->add_option("--write-iops", opts->write_iops);
  inject->add_option("--param", opts->params,
                     "key=value of the fault's JSON parameters, repeatable (storage faults: "
                     "keep_pct; errno, op, rate_pct, after_ops, path; delay_ms, jitter_ms)");
  inject->add_flag("--no-verify", opts->no_verify);
  inject->callback([opts, run_with, &exit_code] {
    auto kind = parse_fault_kind(opts->kind);
    if (!kind) {
      std::cerr << "unknown fault kind " << opts->kind << "\n";
      exit_code = 2;
      return;
    }
    FaultCommand cmd;
    cmd.verb = FaultCommand::Verb::inject;
    cmd.verify = !opts->no_verify;
    cmd.spec = FaultSpec{*kind, opts->targets, default_params(*kind)};
    using std::chrono::duration_cast;
    using std::chrono::microseconds;
    std::visit(
        [&](auto& p) {
          using T = std::decay_t<decltype(p)>;
          if constexpr (std::is_same_v<T, LinkParams>) {
            if (!opts->interface.empty())
              p.interface = opts->interface;
          } else if constexpr (std::is_same_v<T, PacketParams>) {
            if (!opts->interface.empty())
              p.interface = opts->interface;
            p.peers = opts->peers;
            p.delay = duration_cast<microseconds>(
                std::chrono::duration<double, std::milli>(opts->delay_ms));
            p.jitter = duration_cast<microseconds>(
                std::chrono::duration<double, std::milli>(opts->jitter_ms));
            p.loss_pct = opts->loss;
            p.duplicate_pct = opts->duplicate;
            p.reorder_pct = opts->reorder;
            p.corrupt_pct = opts->corrupt;
          } else if constexpr (std::is_same_v<T, RateParams>) {
            if (!opts->interface.empty())
              p.interface = opts->interface;
            p.bytes_per_second = opts->rate;
            p.burst_bytes = static_cast<uint32_t>(opts->burst);
          } else if constexpr (std::is_same_v<T, DiskParams>) {
            if (opts->read_bps || opts->write_bps || opts->read_iops || opts->write_iops) {
              p = DiskParams{opts->read_bps, opts->write_bps, opts->read_iops, opts->write_iops};
            }
          }
        },
        cmd.spec.params);
    if (!opts->params.empty()) {
      std::string why;
      if (!apply_param_overrides(cmd.spec, opts->params, why)) {
        std::cerr << "--param: " << why << "\n";
        exit_code = 2;
        return;
      }
    }
    run_with(cmd);
  });

  auto* heal = fault->add_subcommand("heal", "heal one fault by id, or all of them");
  heal->add_option("--run", opts->run, "run directory")->required();
  heal->add_option("id", opts->heal_id, "fault id (from `fault inject` / `fault list`)");
  heal->add_flag("--all", opts->all, "heal every active fault, newest first");
  heal->callback([opts, run_with, &exit_code] {
    FaultCommand cmd;
    cmd.verb = FaultCommand::Verb::heal;
    cmd.heal_all = opts->all;
    if (!opts->all) {
      try {
        cmd.heal_id = std::stoull(opts->heal_id);
      } catch (const std::exception&) {
        std::cerr << "fault heal needs an ID or --all\n";
        exit_code = 2;
        return;
      }
    }
    run_with(cmd);
  });

  auto* list = fault->add_subcommand("list", "list active faults");
  list->add_option("--run", opts->run, "run directory")->required();
  list->callback([run_with] {
    FaultCommand cmd;
    cmd.verb = FaultCommand::Verb::list;
    run_with(cmd);
  });
}

}  // namespace faultline::chaos
