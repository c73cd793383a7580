#!/usr/bin/env bash
# The test command (README): install dependencies, configure, build, run every test.
# Exits non-zero on any failure, and on any skipped privileged test.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${FAULTLINE_BUILD_DIR:-$root/build}
jobs=$(nproc)

./ci/install-deps.sh

echo "== format (clang-format, .clang-format)"
# Every C++ source the repository tracks is formatted; a diff is printed for each that is not.
if ! git ls-files '*.cpp' '*.h' | xargs clang-format-14 --dry-run --Werror; then
  echo "ci/test.sh: run: git ls-files '*.cpp' '*.h' | xargs clang-format-14 -i" >&2
  exit 1
fi

echo "== configure and build ($build)"
# Line tables only (-g1: backtraces and addr2line still work) and lld: a quarter less compile time
# than full debug info, and much faster links of the ~90 executables.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld >/dev/null

echo "== clang-tidy (ci/tidy.sh, .clang-tidy), in the background at the lowest CPU priority"
# About 10 CPU-minutes; it needs only the configured compile commands. At nice 19 it takes the CPU
# the build leaves idle (links, the last long compiles) and then runs beside the unit and
# integration tests; it is waited for before the privileged ones: beside those (two scenario runs
# at a time, each judged on failover time) it made timing checks fail.
FAULTLINE_BUILD_DIR=$build nice -n 19 ./ci/tidy.sh >"$build/tidy-summary.log" 2>&1 &
tidy_pid=$!
trap 'kill "$tidy_pid" 2>/dev/null || true' EXIT

cmake --build "$build" -j"$jobs"

export FAULTLINE_REQUIRE_PRIVILEGED=1
export FAULTLINE_SOURCE_DIR=$root
export FAULTLINE_BUILD_DIR=$build

status=0
echo "== unit tests"
ctest --test-dir "$build" -L '^unit$' -j"$jobs" --output-on-failure --timeout 300 || status=1
echo "== integration tests (real processes)"
ctest --test-dir "$build" -L '^integration$' --output-on-failure --timeout 600 || status=1
echo "== clang-tidy (waiting for it to finish)"
wait "$tidy_pid" || status=1
cat "$build/tidy-summary.log"
echo "== privileged tests (namespaces, cgroups, loop devices)"
privileged_log=$build/privileged-tests.log
host_before=$(./ci/leftovers.sh "$build/bin/faultline")
# Two at a time: a scenario run mostly waits on its own clock, and each run has its own namespaces,
# addresses and cgroups. Tests that judge disk latency or the probe's timing run alone afterwards:
# another run's fsyncs and CPU would skew exactly what they measure.
timing='Probe|DiskFaults|disk_|gray_failure|SlowFsync|Prometheus|Reproduces'
ctest --test-dir "$build" -L '^privileged$' -E "$timing" -j2 --output-on-failure --timeout 600 2>&1 |
  tee "$privileged_log" || status=1
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
echo "== privileged tests that judge timing, one at a time"
ctest --test-dir "$build" -L '^privileged$' -R "$timing" --output-on-failure --timeout 600 2>&1 |
  tee -a "$privileged_log" || status=1
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
# Tests leave nothing behind: no namespace, link, nft table, cgroup, loop device, mount, process or
# journaled resource that was not on this host before them.
left=$(comm -13 <(echo "$host_before") <(./ci/leftovers.sh "$build/bin/faultline"))
if [[ -n $left ]]; then
  echo "ci/test.sh: the privileged tests left these behind (faultline clean; see ci/leftovers.sh):" >&2
  echo "$left" >&2
  status=1
fi
# A skipped privileged test is a test that did not run: CI runs as root, so it is a failure.
if grep -q '(Skipped)' "$privileged_log"; then
  echo "ci/test.sh: a privileged test was skipped" >&2
  status=1
fi

echo "== fuzz (libFuzzer, brief)"
./ci/fuzz.sh --brief || status=1

if [[ $status -ne 0 ]]; then
  echo "ci/test.sh: FAILED" >&2
fi
exit $status
