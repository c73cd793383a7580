#!/usr/bin/env bash
# Whole-process time of `faultline check` on the public oracle histories (issue 17: a checker that
# starts in milliseconds): `faultline` (links the checker only, runs check itself) side by side
# with `faultline-harness check` (the same checker in the binary that links every library of the
# harness), alternating, one process per measurement. Prints per history the median wall time
# and minor page faults of each, and their ratio.
#   tests/bench/check_startup.sh [--reps N] [PORCUPINE_ORACLE_DIR]
# FAULTLINE_BUILD_DIR selects the build (default build/). Porcupine's own times for the same
# files are in the oracle directory's README.md (Go, measured on this project's machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=11
if [[ ${1:-} == --reps ]]; then reps=$2; shift 2; fi
oracles=${1:-checker/tests/oracles/porcupine}
bin=${FAULTLINE_BUILD_DIR:-build}/bin
for b in faultline faultline-harness; do
  [[ -x $bin/$b ]] || { echo "check_startup.sh: build first ($bin/$b missing)" >&2; exit 2; }
done
[[ -d $oracles/kv ]] || { echo "check_startup.sh: no oracle histories in $oracles" >&2; exit 2; }

# Minor page faults of one whole process (GNU time; a check's exit 1 for an invalid history is
# not an error here).
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
faults() {
  /usr/bin/time -f '%R' -o "$tmp" "$@" >/dev/null 2>&1 || true
  tail -1 "$tmp"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Wall time of one process in ms, to 0.1 ms (GNU time prints hundredths of a second only).
wall_ms() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null 2>&1 || true
  end=$(date +%s%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f\n", (b - a) / 1e6 }'
}

printf '%-14s %12s %12s %7s %14s %14s\n' history "lean ms" "harness ms" ratio "lean faults" "harness faults"
while read -r name model format file; do
  lean=() full=()
  for ((i = 0; i < reps; i++)); do
    lean+=("$(wall_ms "$bin/faultline" check --model "$model" --format "$format" $oracles/$file)")
    full+=("$(wall_ms "$bin/faultline-harness" check --model "$model" --format "$format" $oracles/$file)")
  done
  lean_f=$(faults "$bin/faultline" check --model "$model" --format "$format" $oracles/$file)
  full_f=$(faults "$bin/faultline-harness" check --model "$model" --format "$format" $oracles/$file)
  l=$(printf '%s\n' "${lean[@]}" | median)
  f=$(printf '%s\n' "${full[@]}" | median)
  printf '%-14s %12s %12s %7s %14s %14s\n' "$name" "$l" "$f" \
    "$(awk -v l="$l" -v f="$f" 'BEGIN { printf "%.1fx", f / l }')" "$lean_f" "$full_f"
done <<'LIST'
etcd-all     cas-register jepsen-etcd  jepsen/etcd_*.log
etcd_007     cas-register jepsen-etcd  jepsen/etcd_007.log
kv-c01-ok    kv           porcupine-kv kv/c01-ok.txt
kv-c01-bad   kv           porcupine-kv kv/c01-bad.txt
kv-c10-ok    kv           porcupine-kv kv/c10-ok.txt
kv-c10-bad   kv           porcupine-kv kv/c10-bad.txt
kv-c50-ok    kv           porcupine-kv kv/c50-ok.txt
kv-c50-bad   kv           porcupine-kv kv/c50-bad.txt
LIST
