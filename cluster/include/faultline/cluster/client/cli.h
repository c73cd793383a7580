// The client library on the `faultline` command line (kcat-like), so a person can poke a running
// cluster: `faultline produce`, `consume`, `topic create|describe`, `admin describe|elect|demote|
// promote|reassign|set-config`. Exit codes (ARCHITECTURE.md §7): 0 ok, 1 refused or unreachable, 2
// usage.
#pragma once

namespace CLI {
class App;
}

namespace faultline::cluster {

void add_client_commands(CLI::App& app, int& exit_code);

}  // namespace faultline::cluster
