#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each one.
#   ci/fuzz.sh --brief      20 s per target, one per core at a time (what ci/test.sh runs)
#   ci/fuzz.sh SECONDS      that long per target
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=20
[[ ${1:-} == --brief ]] || seconds=${1:-20}
build=${FAULTLINE_FUZZ_BUILD_DIR:-$PWD/build-fuzz}
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DFAULTLINE_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j"$(nproc)"
shopt -s nullglob
targets=("$build"/tests/fuzz/*_fuzz)
if ((${#targets[@]} == 0)); then
  echo "fuzz: no targets built" >&2
  exit 1
fi
# One target per core at a time: each is single-threaded, and CI waits for the slowest round.
fuzz_one() {
  local t=$1 name corpus seeds
  name=$(basename "$t")
  corpus="$build/corpus/$name"
  mkdir -p "$corpus"
  seeds=tests/fuzz/corpus/$name
  echo "fuzz: $name for ${seconds}s"
  if ! "$t" -max_total_time="$seconds" -print_final_stats=1 "$corpus" $( [[ -d $seeds ]] && echo "$seeds" ) \
    > "$build/$name.log" 2>&1; then
    tail -50 "$build/$name.log"
    echo "fuzz: $name FAILED" >&2
    return 1
  fi
  echo "fuzz: $name $(grep -E "stat::number_of_executed_units" "$build/$name.log" || true)"
}
status=0
running=0
for t in "${targets[@]}"; do
  if ((running >= $(nproc))); then
    wait -n || status=1
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
while ((running > 0)); do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
