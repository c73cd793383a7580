#!/usr/bin/env bash
# clang-tidy with the repository's .clang-tidy over every library and program source (the tests are
# left out: they cost as much time again, and gtest's macros are not what the checks are for).
# Needs a configured build directory (compile_commands.json). Exits non-zero on any finding.
#   ci/tidy.sh [REGEX]   only the sources whose path matches REGEX
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FAULTLINE_BUILD_DIR:-build}
[[ -f $build/compile_commands.json ]] || {
  echo "ci/tidy.sh: no $build/compile_commands.json: configure first (ci/test.sh does)" >&2
  exit 2
}
files=${1:-"$PWD/(chaos|checker|cluster|probes)/(src|bin)/"}
run-clang-tidy-14 -p "$build" -quiet -j "$(nproc)" "$files" >"$build/tidy.log" 2>&1 || {
  grep -E 'error:|note:' -A3 "$build/tidy.log" | sed 's/\x1b\[[0-9;]*m//g' >&2
  echo "ci/tidy.sh: clang-tidy found problems (whole output: $build/tidy.log)" >&2
  exit 1
}
echo "ci/tidy.sh: clean ($(grep -c '^clang-tidy' "$build/tidy.log") files)"
