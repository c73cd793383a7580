// Registers chaos's subcommands (`clean`, `doctor`) on the faultline CLI. The command's exit code
// is written to exit_code when it runs (ARCHITECTURE.md §7 exit codes).
#pragma once

namespace CLI {
class App;
}

namespace faultline::chaos {

void add_chaos_commands(CLI::App& app, int& exit_code);

}  // namespace faultline::chaos
