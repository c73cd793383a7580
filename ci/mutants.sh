#!/usr/bin/env bash
# Mutation testing of the harness: does an ordinary chaos scenario catch a cluster with a planted
# bug (cluster/README.md, "Planted bugs")? Builds the binaries with -DFAULTLINE_MUTANTS=ON into
# build-mutants/, then for each mutant runs the scenarios one after another with FAULTLINE_MUTANT
# exported (the harness's brokers and controller inherit it) and stops at the first scenario whose
# verdict is invalid: that scenario caught the mutant. Prints one line per mutant: the catching
# scenario, the anomalies in its verdict.json and the run's wall time, or MISSED.
#
#   sudo ./ci/mutants.sh [--mutants x,y] [--scenarios a,b] [--seed S] [--duration D] [--out DIR]
#                        [--no-build]
# Scenarios default to every built-in (`faultline scenarios`) except the negative controls (neg-*).
# FAULTLINE_MUTANTS_BUILD_DIR selects the mutant build directory (default ./build-mutants).
# Exits 0 when every mutant was caught, 1 when any was missed, 2 on a usage error, 3 when not root.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
root=$PWD
build=${FAULTLINE_MUTANTS_BUILD_DIR:-$root/build-mutants}

mutants=""
scenarios=""
seed=1
duration=30
out=""
build_first=1

usage() {
  cat <<EOF
usage: ci/mutants.sh [options]   (as root)
  --mutants x,y     mutants to try (default: every one, faultline-broker --list-mutants)
  --scenarios a,b   built-in scenarios, in order (default: every built-in but neg-*)
  --seed S          the seed of every run (default $seed)
  --duration D      seconds of workload per run (default $duration)
  --out DIR         output directory (default mutant-runs/<UTC time>)
  --no-build        use the binaries already in \$FAULTLINE_MUTANTS_BUILD_DIR (default build-mutants/)
EOF
}
die_usage() {
  echo "mutants.sh: $1" >&2
  usage >&2
  exit 2
}
positive_int() { [[ $1 =~ ^[0-9]+$ && $1 -gt 0 ]]; }

while (($#)); do
  case $1 in
    --mutants) (($# >= 2)) || die_usage "--mutants needs a list"; mutants=$2; shift 2 ;;
    --scenarios) (($# >= 2)) || die_usage "--scenarios needs a list"; scenarios=$2; shift 2 ;;
    --seed) (($# >= 2)) || die_usage "--seed needs a number"; seed=$2; shift 2 ;;
    --duration) (($# >= 2)) || die_usage "--duration needs seconds"; duration=$2; shift 2 ;;
    --out) (($# >= 2)) || die_usage "--out needs a directory"; out=$2; shift 2 ;;
    --no-build) build_first=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
done
[[ $seed =~ ^[0-9]+$ ]] || die_usage "--seed: '$seed' is not a number"
positive_int "$duration" || die_usage "--duration: '$duration' is not a positive integer"

if [[ $(id -u) -ne 0 ]]; then
  # Not through sudo from here: sudo would drop FAULTLINE_MUTANT from the environment.
  echo "mutants.sh: needs root (network namespaces): sudo ./ci/mutants.sh" >&2
  exit 3
fi

if ((build_first)); then
  echo "== configure and build ($build, -DFAULTLINE_MUTANTS=ON)"
  launcher=()
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFAULTLINE_MUTANTS=ON \
    "${launcher[@]}" >/dev/null
  cmake --build "$build" -j"$(nproc)" --target faultline faultline-broker faultline-controller \
    faultline-shaper faultline-probe
fi
faultline=$build/bin/faultline
broker=$build/bin/faultline-broker
[[ -x $faultline && -x $broker ]] || {
  echo "mutants.sh: $build/bin is not built (drop --no-build)" >&2
  exit 2
}

mapfile -t known_mutants < <("$broker" --list-mutants 2>/dev/null) || true
((${#known_mutants[@]})) || { echo "mutants.sh: $broker lists no mutants (not a mutant build?)" >&2; exit 2; }
if [[ -z $mutants ]]; then
  chosen=("${known_mutants[@]}")
else
  IFS=, read -r -a chosen <<<"$mutants"
  for m in "${chosen[@]}"; do
    [[ " ${known_mutants[*]} " == *" $m "* ]] || die_usage "--mutants: no mutant '$m' (${known_mutants[*]})"
  done
fi

mapfile -t builtins < <("$faultline" scenarios | awk '{print $1}')
if [[ -z $scenarios ]]; then
  matrix=()
  for s in "${builtins[@]}"; do
    [[ $s == neg-* ]] || matrix+=("$s")
  done
else
  IFS=, read -r -a matrix <<<"$scenarios"
  for s in "${matrix[@]}"; do
    [[ " ${builtins[*]} " == *" $s "* ]] || die_usage "--scenarios: '$s' is not a built-in (faultline scenarios)"
  done
fi
((${#matrix[@]})) || die_usage "no scenarios"

out=${out:-$root/mutant-runs/$(date -u +%Y%m%dT%H%M%SZ)}
[[ $out == /* ]] || out=$caller/$out
mkdir -p "$out"
out=$(cd "$out" && pwd)
echo "== ${#chosen[@]} mutants × up to ${#matrix[@]} scenarios (seed $seed, ${duration}s each) -> $out"

interrupted=0
run_pid=""
trap 'interrupted=1; [[ -z $run_pid ]] || kill -TERM "$run_pid" 2>/dev/null || true' INT TERM

# run_one MUTANT SCENARIO DIR: one `faultline run` with the mutant exported; sets status, seconds.
run_one() {
  local mutant=$1 scenario=$2 dir=$3 attempts=0
  local limit=$((duration * 4 + 180))
  while :; do
    attempts=$((attempts + 1))
    rm -rf "$dir"
    mkdir -p "$dir"
    local started=$EPOCHREALTIME
    FAULTLINE_MUTANT=$mutant timeout --signal=TERM --kill-after=60 "$limit" "$faultline" run \
      --scenario "$scenario" --seed "$seed" --duration "$duration" --out "$dir" \
      >"$dir/console.log" 2>&1 </dev/null &
    run_pid=$!
    status=0
    wait "$run_pid" || status=$?
    while kill -0 "$run_pid" 2>/dev/null; do  # wait was cut short by a trapped signal
      status=0
      wait "$run_pid" || status=$?
    done
    run_pid=""
    seconds=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    if ((status == 4 && attempts < 2)) && ((!interrupted)) &&
      grep -qE 'File exists|Address already in use' "$dir/console.log"; then
      sleep 15  # another harness on this host holds the same names; not this run's failure
      continue
    fi
    return 0
  done
}

# verdict_summary DIR: "invalid|anomaly=n,..." from DIR/verdict.json ("-|" when there is none).
verdict_summary() {
  python3 - "$1/verdict.json" <<'EOF'
import json, sys
try:
    v = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("-|")
    sys.exit(0)
anomalies = {k: n for k, n in (v.get("anomalies") or {}).items() if n}
print(v.get("verdict", "-") + "|" + ",".join(f"{k}={n}" for k, n in sorted(anomalies.items())))
EOF
}

# Whether the processes of the run in DIR logged the mutant as enabled.
mutant_reached() {
  grep -rqs "event=mutant_enabled mutant=$2\b" "$1/logs"
}

table=$out/mutants.txt
row() { printf '%-30s  %-24s  %8s  %s\n' "$@"; }
row mutant "caught by" seconds "anomalies (note)" >"$table"
row ------------------------------ ------------------------ -------- ---------------- >>"$table"
missed=0
for mutant in "${chosen[@]}"; do
  ((interrupted)) && break
  caught="" anomalies="" took="" note=""
  for scenario in "${matrix[@]}"; do
    ((interrupted)) && break
    dir=$out/$mutant/$scenario
    run_one "$mutant" "$scenario" "$dir"
    ((interrupted)) && break
    IFS='|' read -r verdict found <<<"$(verdict_summary "$dir")"
    mutant_reached "$dir" "$mutant" || note="${note:+$note; }not in the $scenario logs"
    printf '   %-30s %-26s exit %d, verdict %s%s, %ss\n' "$mutant" "$scenario" "$status" "$verdict" \
      "${found:+ ($found)}" "$seconds"
    if ((status == 1)) && [[ $verdict == invalid ]]; then
      caught=$scenario anomalies=${found:--} took=$seconds
      break
    fi
    ((status == 0 || status == 1)) || note="${note:+$note; }$scenario exit $status"
  done
  ((interrupted)) && break
  if [[ -z $caught ]]; then
    missed=$((missed + 1))
    caught=MISSED anomalies=- took=-
  fi
  row "$mutant" "$caught" "$took" "$anomalies${note:+ ($note)}" >>"$table"
done

echo
cat "$table"
if ((interrupted)); then
  echo "mutants.sh: interrupted" >&2
  exit 130
fi
((missed == 0)) || { echo "mutants.sh: $missed mutant(s) missed" >&2; exit 1; }
