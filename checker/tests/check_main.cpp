// A stand-in for the `faultline` main, for trying `check` by hand before the lead wires it in:
//   build-checker/checker/checker_check check --model kafka history.jsonl
#include <faultline/checker/cli.h>

int main(int argc, char** argv) {
  CLI::App app("faultline (checker only)");
  app.require_subcommand(1);
  int exit_code = 0;
  faultline::checker::add_check_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;  // a usage error is exit 2, like unreadable input
  }
  return exit_code;
}
