#!/usr/bin/env bash
# The nightly chaos matrix (ARCHITECTURE.md §8): every built-in scenario × N seeds through
# `faultline run`, one after another (each run owns the machine's cores while its faults play).
# Writes into the output directory:
#   summary.txt, summary.md  the table: scenario, seed, result, verdict, expected, failover p99, duration
#   junit.xml                one testcase per run (classname faultline.<scenario>, name seed-<N>);
#                            a failure carries the replay command
#   runs/<scenario>-seed<N>/ each failing run's directory (verdict.json, history.jsonl, logs/ ...),
#                            with console.log and replay.txt; passing runs are removed unless --keep-all
#   doctor.txt, results.jsonl
#   matrix.json              the whole matrix and this shard, for `nightly_report.py merge`
# Exits 0 when every run's verdict matched its scenario's expectation, 1 when any did not (or a run
# failed to produce a verdict), 2 on a usage error, 3 when not root. Needs root (namespaces).
#
# --shard K/N runs every Nth run of the matrix from the Kth (the matrix flattened scenario by
# scenario, seeds ascending), so N machines share one matrix; each shard's output stands alone, and
# `python3 ci/nightly_report.py merge OUT SHARD_DIR...` makes one summary and JUnit of them
# (.github/workflows/nightly.yml does both). Every shard of a matrix needs the same --first-seed.
# --list prints the runs instead, `<scenario> <seed>` a line, without root, building or running.
#
#   sudo ./ci/nightly.sh [--seeds N] [--first-seed N] [--scenarios a,b] [--duration S]
#                        [--out DIR] [--keep-all] [--no-build] [--client librdkafka]
#                        [--cluster-definition FILE] [--shard K/N] [--list]
# FAULTLINE_BUILD_DIR selects the build directory (default ./build), as in ci/test.sh.
set -euo pipefail
caller=$PWD  # relative --out and scenario files are the caller's
cd "$(dirname "$0")/.."
root=$PWD
build=${FAULTLINE_BUILD_DIR:-$root/build}

# A run at a scenario's own 30 s takes 33-35 s on the project's 2-core machine (cluster set-up,
# heal, final read and check add 3-5 s), so 5 seeds of 13 built-ins took about 38 minutes; every
# built-in × 5 seeds now takes longer than one machine's night, which is what --shard is for.
seeds=5
first_seed=$(date -u +%Y%m%d)00  # a new set of seeds every night; the table says which
scenarios=""
duration=""
out=""
keep_all=0
build_first=1
client=""
definition=""
shard=1/1
list=0

usage() {
  cat <<EOF
usage: ci/nightly.sh [options]   (as root)
  --seeds N          seeds per scenario (default $seeds)
  --first-seed N     seeds are N, N+1 ... (default <UTC date>00: $first_seed)
  --scenarios a,b    built-ins (faultline scenarios) or TOML files (default: every built-in)
  --duration S       seconds of workload per run (default: each scenario's own, 30 s)
  --out DIR          output directory (default nightly-runs/<UTC time>)
  --keep-all         keep passing runs' directories too
  --no-build         use the binaries already in \$FAULTLINE_BUILD_DIR (default ./build)
  --client C         every run's workload client: faultline or librdkafka (default: the scenario's)
  --cluster-definition FILE
                     run another Kafka-API cluster from this definition (chaos/definitions/)
  --shard K/N        only every Nth run of the matrix from the Kth (1 <= K <= N), for N machines
                     sharing it; give every shard the same --first-seed, merge their outputs with
                     python3 ci/nightly_report.py merge OUT DIR...
  --list             print the runs, '<scenario> <seed>' a line, and exit: no root, no build
                     (without the binary, --scenarios names are taken as built-ins unchecked)
EOF
}
die_usage() {
  echo "nightly.sh: $1" >&2
  usage >&2
  exit 2
}
positive_int() { [[ $1 =~ ^[0-9]+$ && $1 -gt 0 ]]; }

while (($#)); do
  case $1 in
    --seeds) (($# >= 2)) || die_usage "--seeds needs a number"; seeds=$2; shift 2 ;;
    --first-seed) (($# >= 2)) || die_usage "--first-seed needs a number"; first_seed=$2; shift 2 ;;
    --scenarios) (($# >= 2)) || die_usage "--scenarios needs a list"; scenarios=$2; shift 2 ;;
    --duration) (($# >= 2)) || die_usage "--duration needs seconds"; duration=$2; shift 2 ;;
    --out) (($# >= 2)) || die_usage "--out needs a directory"; out=$2; shift 2 ;;
    --keep-all) keep_all=1; shift ;;
    --no-build) build_first=0; shift ;;
    --client) (($# >= 2)) || die_usage "--client needs faultline or librdkafka"; client=$2; shift 2 ;;
    --cluster-definition)
      (($# >= 2)) || die_usage "--cluster-definition needs a file"
      definition=$(cd "$caller" && realpath "$2"); shift 2 ;;
    --shard) (($# >= 2)) || die_usage "--shard needs K/N"; shard=$2; shift 2 ;;
    --list) list=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
done
positive_int "$seeds" || die_usage "--seeds: '$seeds' is not a positive integer"
[[ $first_seed =~ ^[0-9]+$ ]] || die_usage "--first-seed: '$first_seed' is not a number"
[[ -z $duration ]] || positive_int "$duration" || die_usage "--duration: '$duration' is not a positive integer"
[[ -z $client || $client == faultline || $client == librdkafka ]] ||
  die_usage "--client: '$client' is not faultline or librdkafka"
{ [[ $shard =~ ^([1-9][0-9]{0,5})/([1-9][0-9]{0,5})$ ]] &&
  ((BASH_REMATCH[1] <= BASH_REMATCH[2])); } ||
  die_usage "--shard: '$shard' is not K/N with 1 <= K <= N"
# What every run gets besides scenario and seed; nightly.sh and faultline run name these options
# alike, so matrix.json keeps them for rerunning a run that no shard recorded.
run_options=(${duration:+--duration "$duration"} ${client:+--client "$client"}
             ${definition:+--cluster-definition "$definition"})
faultline=$build/bin/faultline

if ((!list)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "nightly.sh: needs root (network namespaces): sudo ./ci/nightly.sh" >&2
    exit 3
  fi
  if ((build_first)); then
    echo "== configure and build ($build)"
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j"$(nproc)" --target faultline faultline-broker faultline-controller \
      faultline-shaper faultline-probe
  fi
  [[ -x $faultline ]] || { echo "nightly.sh: $faultline is not built (drop --no-build)" >&2; exit 2; }
elif [[ ! -x $faultline && -z $scenarios ]]; then
  echo "nightly.sh: --list needs $faultline to list the built-ins" \
    "(build it, or name them with --scenarios)" >&2
  exit 2
fi

# The matrix: every built-in unless --scenarios names some (built-ins or TOML files).
builtins=()
[[ ! -x $faultline ]] || mapfile -t builtins < <("$faultline" scenarios | awk '{print $1}')
if [[ -z $scenarios ]]; then
  matrix=("${builtins[@]}")
else
  IFS=, read -r -a matrix <<<"$scenarios"
  declare -A named=()
  for i in "${!matrix[@]}"; do
    s=${matrix[i]}
    [[ -n $s ]] || die_usage "--scenarios: an empty name in '$scenarios'"
    # A run's directory, and its identity when shards are merged, is <name>-seed<N>.
    name=$(basename "$s" .toml)
    [[ -z ${named[$name]:-} ]] || die_usage "--scenarios: more than one scenario named '$name'"
    named[$name]=1
    [[ " ${builtins[*]} " == *" $s "* ]] && continue
    [[ $s == /* ]] || s=$caller/$s
    if [[ -f $s ]]; then
      matrix[i]=$s
      continue
    fi
    # Only --list gets here without the binary; it lists what it is given rather than need a build.
    [[ ! -x $faultline ]] && continue
    die_usage "--scenarios: '${matrix[i]}' is neither a built-in (faultline scenarios) nor a file"
  done
fi
((${#matrix[@]})) || die_usage "no scenarios"
matrix_runs=$((${#matrix[@]} * seeds))
# Which runs this shard makes, in order; nightly_report.py holds the one definition, which `merge`
# uses to find runs no shard recorded.
plan=(python3 ci/nightly_report.py plan --seeds "$seeds" --first-seed "$first_seed" --shard "$shard")
for option in "${run_options[@]}"; do
  plan+=("--nightly-arg=$option")
done
if ((list)); then
  exec "${plan[@]}" -- "${matrix[@]}"
fi

out=${out:-$root/nightly-runs/$(date -u +%Y%m%dT%H%M%SZ)}
[[ $out == /* ]] || out=$caller/$out
mkdir -p "$out/runs"
out=$(cd "$out" && pwd)
results=$out/results.jsonl
[[ ! -e $results ]] || die_usage "--out: $out already holds a matrix (results.jsonl); pick a new directory"
# An empty results.jsonl from the start: a shard stopped before its first result still merges.
: >"$results"
runs=()
planned=$("${plan[@]}" --matrix-json "$out/matrix.json" -- "${matrix[@]}")
[[ -z $planned ]] || mapfile -t runs <<<"$planned"
"$faultline" doctor >"$out/doctor.txt" 2>&1 || true

total=${#runs[@]}
estimate_min=$(((total * (${duration:-30} + 5) + 59) / 60))
what="${#matrix[@]} scenarios × $seeds seeds"
if [[ $shard == 1/1 ]]; then
  what="$what (first seed $first_seed)"
else
  what="shard $shard: $total of $matrix_runs runs ($what, first seed $first_seed)"
fi
echo "== nightly: $what ${duration:+at ${duration}s each }-> $out (about $estimate_min min)"

interrupted=0
run_pid=""
trap 'interrupted=1; [[ -z $run_pid ]] || kill -TERM "$run_pid" 2>/dev/null || true' INT TERM

n=0
for run in "${runs[@]}"; do
  ((interrupted)) && break
  scenario=${run% *}
  seed=${run##* }
  n=$((n + 1))
  name=$(basename "$scenario" .toml)-seed$seed
  dir=$out/runs/$name
  args=(run --scenario "$scenario" --seed "$seed" "${run_options[@]}")
  # A run that hangs is stopped (SIGTERM makes faultline heal and tear down) well after its
  # workload should have ended.
  limit=$((${duration:-30} * 4 + 180))
  attempts=0
  while :; do
    attempts=$((attempts + 1))
    rm -rf "$dir"
    mkdir -p "$dir"
    started=$EPOCHREALTIME
    # In the background so that Ctrl-C (trapped below) can stop the run cleanly: timeout passes
    # the SIGTERM on, and faultline heals and tears down before it exits.
    timeout --signal=TERM --kill-after=60 "$limit" "$faultline" "${args[@]}" --out "$dir" \
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
    # Another harness on this host holding the same names/addresses is not this run's failure:
    # try once more (a CI runner has no such neighbour).
    if ((status == 4 && attempts < 2)) && ((!interrupted)) &&
      grep -qE 'File exists|Address already in use' "$dir/console.log"; then
      echo "   $name: harness conflict with another run on this host; retrying in 15 s"
      sleep 15
      continue
    fi
    break
  done
  ((interrupted)) && { echo "   $name: interrupted (its directory is left as it is)"; break; }
  rerun="faultline ${args[*]} --out $dir-rerun"
  line=$(python3 ci/nightly_report.py record "$results" --scenario "$(basename "$scenario" .toml)" \
    --seed "$seed" --exit "$status" --seconds "$seconds" --dir "$dir" --log "$dir/console.log" \
    --rerun "$rerun" --attempts "$attempts")
  printf '[%d/%d] %-24s seed %-12s %s\n' "$n" "$total" "$(basename "$scenario" .toml)" "$seed" "$line"
  if ((status == 0)); then
    ((keep_all)) || rm -rf "$dir"
  else
    {
      [[ -f $dir/run.json ]] && echo "$faultline replay $dir"
      echo "$faultline ${args[*]} --out $dir-rerun"
    } >"$dir/replay.txt"
    tail -5 "$dir/console.log" | sed 's/^/     | /'
  fi
done

echo
echo "== summary ($out/summary.txt, summary.md, junit.xml)"
status=0
python3 ci/nightly_report.py render "$results" "$out" || status=1
# render fails a matrix without runs; a shard has none when there are more shards than runs.
((total)) || status=0
if ((interrupted)); then
  echo "nightly.sh: interrupted after $((n - 1)) of $total runs" >&2
  exit 130
fi
exit $status
