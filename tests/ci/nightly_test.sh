#!/usr/bin/env bash
# ci/nightly.sh's contract with CI, without running a cluster: usage errors exit 2 before anything
# is built or run, the report turns run results into the table and JUnit a CI page shows (a
# mismatch is a failure carrying its replay command, and makes the matrix fail), shards split the
# matrix without losing or repeating a run, and their merge reports the whole matrix once.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

expect_usage() {  # args... -> exit 2 and the reason on stderr
  local status=0
  # With no build to use, an argument that slipped through ends at "not built" (or "needs root")
  # instead of building and running the matrix as root.
  FAULTLINE_BUILD_DIR=$tmp/no-build bash "$src/ci/nightly.sh" --no-build "$@" >"$tmp/out" \
    2>"$tmp/err" || status=$?
  [[ $status -eq 2 ]] || fail "nightly.sh $* exited $status, not 2"
  grep -q "nightly.sh: " "$tmp/err" || fail "nightly.sh $*: no reason on stderr"
  ! grep -q "is not built" "$tmp/err" || fail "nightly.sh $*: not a usage error"
}
expect_usage --bogus
grep -q "unknown argument '--bogus'" "$tmp/err" || fail "--bogus not named"
expect_usage --seeds 0
expect_usage --seeds
expect_usage --duration 1.5
expect_usage --first-seed x
for bad in 0/3 4/3 x 3 1/0 -1/3 2/3/4; do
  expect_usage --shard "$bad"
  grep -qF -- "--shard: '$bad' is not K/N" "$tmp/err" || fail "--shard $bad: $(cat "$tmp/err")"
done
expect_usage --shard

# --list needs no root, build or binary when --scenarios names the scenarios: FAULTLINE_BUILD_DIR
# names no build, so a, b and c are taken as built-ins unchecked.
export FAULTLINE_BUILD_DIR=$tmp/no-build
list() {  # [K/N] -> the runs nightly.sh --list prints
  bash "$src/ci/nightly.sh" --list --scenarios a,b,c --seeds 5 --first-seed 100 ${1:+--shard "$1"}
}
list >"$tmp/all"
for s in a b c; do for seed in 100 101 102 103 104; do echo "$s $seed"; done; done >"$tmp/expected"
cmp -s "$tmp/all" "$tmp/expected" || fail "unsharded --list: $(cat "$tmp/all")"
for n in 2 3; do
  : >"$tmp/union"
  for ((k = 1; k <= n; k++)); do
    list "$k/$n" >"$tmp/shard"
    # Round-robin: shard K of N has runs K, K+N, K+2N ... of the unsharded list.
    awk -v k="$k" -v n="$n" '(NR - 1) % n == k - 1' "$tmp/all" | cmp -s - "$tmp/shard" ||
      fail "--shard $k/$n lists: $(cat "$tmp/shard")"
    cat "$tmp/shard" >>"$tmp/union"
  done
  shared=$(sort "$tmp/union" | uniq -d)
  [[ -z $shared ]] || fail "shards of $n share runs: $shared"
  cmp -s <(sort "$tmp/union") <(sort "$tmp/all") || fail "the $n shards' union is not the matrix"
done
[[ $(list 2/4 | tr '\n' ,) == "a 101,b 100,b 104,c 103," ]] || fail "--shard 2/4: $(list 2/4)"
[[ -z $(list 16/16) ]] || fail "--shard 16/16 of 15 runs: $(list 16/16)"
status=0
bash "$src/ci/nightly.sh" --list >/dev/null 2>"$tmp/err" || status=$?
[[ $status -eq 2 ]] || fail "--list without a binary or --scenarios exited $status"
grep -q "nightly.sh: --list needs" "$tmp/err" || fail "--list without a binary: $(cat "$tmp/err")"

# Two runs as nightly.sh records them: one that matched (verdict.json without a "failover" summary:
# the p99 comes from its faults), one negative control that came out valid (with the summary, in
# seconds, as faultline run writes it; it wins over the per-fault figures).
mk_run() {  # run-directory verdict expected failover faults
  local dir=$1 name
  name=$(basename "$dir")
  mkdir -p "$dir"
  cat >"$dir/verdict.json" <<JSON
{"scenario":"${name%-seed*}","verdict":"$2","expected":"$3",$4 "faults":[$5],
 "checker":{"anomalies":{"lost-write":0}},"replay":"faultline replay $dir"}
JSON
  echo "verdict: $2 (expected $3)" >"$dir/console.log"
}
kill_leader() { echo "{\"fault\":\"kill-leader\",\"injected\":true,\"unavailable_ms\":$1}"; }
mk_run "$tmp/runs/leader-kill-seed7" valid valid "" \
  "$(kill_leader 1043.2),$(kill_leader 1101.7),$(kill_leader 980)"
lagging_failover='"failover":{"kill-leader-lagging":{"count":2,"p50_s":0.9,"p99_s":2.4,"max_s":2.4}},'
lagging_fault='{"fault":"kill-leader-lagging","injected":true,"unavailable_ms":2200}'
mk_run "$tmp/runs/neg-acks1-leader-kill-seed7" valid invalid "$lagging_failover" "$lagging_fault"
report=$src/ci/nightly_report.py
python3 "$report" record "$tmp/results.jsonl" --scenario leader-kill --seed 7 --exit 0 --seconds 37.6 \
  --dir "$tmp/runs/leader-kill-seed7" --log "$tmp/runs/leader-kill-seed7/console.log" --rerun "r1" >/dev/null
python3 "$report" record "$tmp/results.jsonl" --scenario neg-acks1-leader-kill --seed 7 --exit 1 \
  --seconds 41 --dir "$tmp/runs/neg-acks1-leader-kill-seed7" \
  --log "$tmp/runs/neg-acks1-leader-kill-seed7/console.log" --rerun "r2" >/dev/null
status=0
python3 "$report" render "$tmp/results.jsonl" "$tmp" >"$tmp/table" || status=$?
[[ $status -eq 1 ]] || fail "render exited $status with a mismatch in the matrix"
grep -Eq '^leader-kill +7 +pass +valid +valid +1102 ms kill-leader +38 s$' "$tmp/summary.txt" ||
  fail "leader-kill row: $(cat "$tmp/summary.txt")"
grep -Eq '^neg-acks1-leader-kill +7 +MISMATCH +valid +invalid +2400 ms kill-leader-lagging +41 s$' \
  "$tmp/summary.txt" ||
  fail "mismatch row: $(cat "$tmp/summary.txt")"
cmp -s "$tmp/table" "$tmp/summary.txt" || fail "printed table differs from summary.txt"
python3 - "$tmp/junit.xml" "$tmp/runs/neg-acks1-leader-kill-seed7" <<'PY' || fail "junit.xml"
import sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot().find("testsuite")
cases = suite.findall("testcase")
assert [c.get("name") for c in cases] == ["seed-7", "seed-7"], cases
assert suite.get("tests") == "2" and suite.get("failures") == "1", suite.attrib
assert cases[0].find("failure") is None
failure = cases[1].find("failure")
assert cases[1].get("classname") == "faultline.neg-acks1-leader-kill"
assert failure.get("message").startswith("expected invalid, got valid"), failure.attrib
assert f"faultline replay {sys.argv[2]}" in failure.get("message"), failure.attrib
PY

# Two shards of leader-kill,neg-acks1-leader-kill × seeds 7 and 8, recorded as nightly.sh records
# them (the runs each shard lists; a passing run's directory removed): neg-acks1-leader-kill seed 8
# came out valid, a mismatch. Each shard's matrix.json is what nightly.sh writes.
shard_out() {  # K -> a shard output directory with its runs recorded
  local k=$1 dir=$tmp/shard$1 scenario seed run verdict expected code
  mkdir -p "$dir/runs"
  python3 "$report" plan --seeds 2 --first-seed 7 --shard "$k/2" --matrix-json "$dir/matrix.json" \
    -- leader-kill neg-acks1-leader-kill >/dev/null
  echo "doctor of shard $k" >"$dir/doctor.txt"
  bash "$src/ci/nightly.sh" --list --scenarios leader-kill,neg-acks1-leader-kill --seeds 2 \
    --first-seed 7 --shard "$k/2" >"$tmp/runs-$k"
  while read -r scenario seed; do
    run=$dir/runs/$scenario-seed$seed
    verdict=valid expected=valid code=0
    case $scenario-$seed in
      neg-acks1-leader-kill-7) verdict=invalid expected=invalid ;;
      neg-acks1-leader-kill-8) expected=invalid code=1 ;;
    esac
    mk_run "$run" "$verdict" "$expected" "$lagging_failover" "$lagging_fault"
    python3 "$report" record "$dir/results.jsonl" --scenario "$scenario" --seed "$seed" \
      --exit "$code" --seconds 35 --dir "$run" --log "$run/console.log" \
      --rerun "faultline run --scenario $scenario --seed $seed --out $run-rerun" >/dev/null
    ((code)) || rm -rf "$run"
  done <"$tmp/runs-$k"
}
shard_out 1
shard_out 2
status=0
python3 "$report" merge "$tmp/merged" "$tmp/shard1" "$tmp/shard2" >"$tmp/table" || status=$?
[[ $status -eq 1 ]] || fail "merge exited $status with a mismatch in shard 2"
grep -q '^4 runs, 3 passed, 1 failed, 2.3 min of runs$' "$tmp/merged/summary.txt" ||
  fail "merged totals: $(cat "$tmp/merged/summary.txt")"
grep -q 'merged from 2 of 2 shards' "$tmp/merged/summary.md" || fail "merged summary.md"
cmp -s "$tmp/table" "$tmp/merged/summary.txt" || fail "merge printed another table than summary.txt"
[[ -f $tmp/merged/runs/neg-acks1-leader-kill-seed8/verdict.json ]] || fail "failing run not copied"
[[ -f $tmp/merged/doctor-shard1.txt && -f $tmp/merged/doctor-shard2.txt ]] || fail "doctor.txt"
python3 - "$tmp/merged" <<'PY' || fail "merged junit.xml"
import sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1] + "/junit.xml").getroot().find("testsuite")
cases = [(c.get("classname"), c.get("name")) for c in suite.findall("testcase")]
assert cases == [("faultline.leader-kill", "seed-7"), ("faultline.leader-kill", "seed-8"),
                 ("faultline.neg-acks1-leader-kill", "seed-7"),
                 ("faultline.neg-acks1-leader-kill", "seed-8")], cases
assert suite.get("tests") == "4" and suite.get("failures") == "1", suite.attrib
failure = suite.findall("testcase")[3].find("failure")
assert f"{sys.argv[1]}/runs/neg-acks1-leader-kill-seed8" in failure.get("message"), failure.attrib
PY

expect_refused() {  # what out dirs... -> merge exits 2, names the reason, writes nothing
  local what=$1 out=$2 before status=0
  shift
  before=$(ls -R "$out" 2>&1 || true)
  python3 "$report" merge "$@" >/dev/null 2>"$tmp/err" || status=$?
  [[ $status -eq 2 ]] || fail "merge of $what exited $status, not 2"
  grep -q "$what" "$tmp/err" || fail "merge of $what: $(cat "$tmp/err")"
  [[ $(ls -R "$out" 2>&1 || true) == "$before" ]] || fail "merge of $what wrote into $out"
}
cp -r "$tmp/shard1" "$tmp/shard1-dup"
grep neg-acks1-leader-kill-seed8 "$tmp/shard2/results.jsonl" >>"$tmp/shard1-dup/results.jsonl"
expect_refused "recorded twice" "$tmp/merged-dup" "$tmp/shard1-dup" "$tmp/shard2"
expect_refused "given twice" "$tmp/merged-twice" "$tmp/shard1" "$tmp/shard1"
cp -r "$tmp/shard1" "$tmp/shard1-other-night"
sed -i 's/"first_seed": 7/"first_seed": 9/' "$tmp/shard1-other-night/matrix.json"
expect_refused "another matrix" "$tmp/merged-other" "$tmp/shard1-other-night" "$tmp/shard2"
expect_refused "already holds a matrix" "$tmp/merged" "$tmp/shard1" "$tmp/shard2"

# A shard that left no output (its job died before its first run): its runs are not lost from the
# table, they are NOT-RUN errors, and the matrix fails.
status=0
python3 "$report" merge "$tmp/merged-half" "$tmp/shard1" >/dev/null || status=$?
[[ $status -eq 1 ]] || fail "merge without shard 2 exited $status"
grep -q '^4 runs, 2 passed, 2 failed (2 not run)' "$tmp/merged-half/summary.txt" ||
  fail "merge without shard 2: $(cat "$tmp/merged-half/summary.txt")"
grep -q 'no output from shard 2/2' "$tmp/merged-half/summary.txt" || fail "missing shard not named"
python3 - "$tmp/merged-half/junit.xml" <<'PY' || fail "junit.xml without shard 2"
import sys, xml.etree.ElementTree as ET
suite = ET.parse(sys.argv[1]).getroot().find("testsuite")
errors = [c.get("name") for c in suite.findall("testcase") if c.find("error") is not None]
assert errors == ["seed-8", "seed-8"] and suite.get("errors") == "2", (errors, suite.attrib)
assert "--first-seed 8" in suite.findall("testcase")[1].find("error").get("message")
PY
echo "nightly_test: ok"
