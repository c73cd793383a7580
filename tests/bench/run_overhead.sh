#!/usr/bin/env bash
# Harness overhead and failover of `faultline run` (issue: the chaos runner). As root:
#   tests/bench/run_overhead.sh [--reps N] [--duration S] [--out DIR]
# Runs leader-kill (N times, seeds 1..N) and controlled-shutdown and leader-pause (N times each)
# with the default timeouts, and prints, from each run's verdict.json: the wall time split into
# setup / workload / heal+final read / check / report (medians), the sustained acknowledged-send
# rate, and the client-observed write unavailability per fault kind (p50/p99/max over every fault
# of every run) next to ARCHITECTURE.md §9's targets.
set -euo pipefail
cd "$(dirname "$0")/../.."
reps=3
duration=30
out=${TMPDIR:-/tmp}/faultline-run-overhead
while (($#)); do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "run_overhead.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
faultline=${FAULTLINE_BUILD_DIR:-build}/bin/faultline
[[ -x $faultline ]] || { echo "run_overhead.sh: build first ($faultline missing)" >&2; exit 2; }
rm -rf "$out"
mkdir -p "$out"
for scenario in leader-kill controlled-shutdown leader-pause; do
  for ((seed = 1; seed <= reps; ++seed)); do
    dir=$out/$scenario-$seed
    /usr/bin/time -v -o "$dir.time" "$faultline" run --scenario "$scenario" --seed "$seed" \
      --duration "$duration" --out "$dir" >"$dir.log" 2>&1 ||
      { echo "run_overhead.sh: $scenario seed $seed did not match its expectation (see $dir.log)" >&2; exit 1; }
  done
done
python3 - "$out" <<'PY'
import json, pathlib, re, statistics, sys
out = pathlib.Path(sys.argv[1])
runs = {}
for v in sorted(out.glob("*/verdict.json")):
    runs.setdefault(v.parent.name.rsplit("-", 1)[0], []).append((v.parent, json.loads(v.read_text())))
def median(xs): return statistics.median(xs) if xs else float("nan")
def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, -(-int(p * 100) * len(xs) // 100) - 1))]
print("wall time split (median of runs, seconds)")
print(f"{'scenario':22} {'runs':>4} {'setup':>6} {'workload':>8} {'heal+read':>9} {'check':>6} {'report':>6} {'max RSS MiB':>11} {'acked/s':>8}")
for name, rs in runs.items():
    t = lambda k: median([r["timings_s"].get(k, float("nan")) for _, r in rs])
    rate = median([r["acked"] / r["timings_s"]["workload"] for _, r in rs])
    rss = []
    for d, _ in rs:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", (d.parent / (d.name + ".time")).read_text())
        if m: rss.append(int(m.group(1)) / 1024)
    print(f"{name:22} {len(rs):>4} {t('setup'):6.2f} {t('workload'):8.2f} {t('heal_and_final_read'):9.2f} {t('check'):6.2f} {t('report'):6.2f} {median(rss):11.0f} {rate:8.0f}")
print()
print("client-observed write unavailability per fault (every fault of every run)")
targets = {"kill-leader": "<= session timeout + 300 ms = 3.3 s", "stop-leader": "<= 100 ms",
           "pause-leader": "(no target: bounded by the session timeout)"}
print(f"{'fault':14} {'n':>3} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  target (ARCHITECTURE.md §9)")
for name, rs in runs.items():
    per = {}
    for _, r in rs:
        for f in r["faults"]:
            if f.get("injected") and "unavailable_ms" in f:
                per.setdefault(f["fault"], []).append(f["unavailable_ms"])
    for fault, xs in per.items():
        print(f"{fault:14} {len(xs):>3} {q(xs, .5):7.0f} {q(xs, .99):7.0f} {max(xs):7.0f}  {targets.get(fault, '')}")
PY
