#!/usr/bin/env bash
# The demo (README): install, build, run the default scenario (leader-kill: kill -9 the leader of a
# partition repeatedly while producers and a consumer run, in network namespaces), and print the
# verdict, the report and where the run's files are. Needs root (namespaces).
#   sudo ./ci/demo.sh [SCENARIO] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${FAULTLINE_BUILD_DIR:-$root/build}
scenario=${1:-leader-kill}
duration=${2:-30}

if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh: needs root (network namespaces): sudo ./ci/demo.sh" >&2
  exit 3
fi
./ci/install-deps.sh
echo "== configure and build ($build)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target faultline faultline-broker faultline-controller \
  faultline-shaper faultline-probe

out=$(mktemp -d /tmp/faultline-demo-XXXXXX)
echo "== faultline run --scenario $scenario --duration $duration (the cluster in namespaces)"
status=0
"$build/bin/faultline" run --scenario "$scenario" --duration "$duration" --seed "$RANDOM" \
  --out "$out/run" || status=$?
echo "== run directory: $out/run"
echo "   verdict.json  the verdict, the checker's counts and evidence, failover per fault"
echo "   history.jsonl every operation the clients saw; faults.jsonl every fault; logs/ per process"
if [[ -f $out/run/report.html ]]; then
  echo "== report: $out/run/report.html (fault windows, leaders, latency, throughput, anomalies)"
fi
exit $status
