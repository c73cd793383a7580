#!/usr/bin/env bash
# ci/nightly.sh's contract with CI, without running a cluster: usage errors exit 2 before anything
# is built or run, and the report turns run results into the table and JUnit a CI page shows (a
# mismatch is a failure carrying its replay command, and makes the matrix fail).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

expect_usage() {  # args... -> exit 2 and the reason on stderr
  local status=0
  bash "$src/ci/nightly.sh" "$@" >"$tmp/out" 2>"$tmp/err" || status=$?
  [[ $status -eq 2 ]] || fail "nightly.sh $* exited $status, not 2"
  grep -q "nightly.sh: " "$tmp/err" || fail "nightly.sh $*: no reason on stderr"
}
expect_usage --bogus
grep -q "unknown argument '--bogus'" "$tmp/err" || fail "--bogus not named"
expect_usage --seeds 0
expect_usage --seeds
expect_usage --duration 1.5
expect_usage --first-seed x

# Two runs as nightly.sh records them: one that matched (verdict.json without a "failover" summary:
# the p99 comes from its faults), one negative control that came out valid (with the summary, in
# seconds, as faultline run writes it; it wins over the per-fault figures).
mk_run() {  # name verdict expected failover faults
  local dir=$tmp/runs/$1
  mkdir -p "$dir"
  cat >"$dir/verdict.json" <<JSON
{"scenario":"${1%-seed7}","verdict":"$2","expected":"$3",$4 "faults":[$5],
 "checker":{"anomalies":{"lost-write":0}},"replay":"faultline replay $dir"}
JSON
  echo "verdict: $2 (expected $3)" >"$dir/console.log"
}
kill_leader() { echo "{\"fault\":\"kill-leader\",\"injected\":true,\"unavailable_ms\":$1}"; }
mk_run leader-kill-seed7 valid valid "" "$(kill_leader 1043.2),$(kill_leader 1101.7),$(kill_leader 980)"
mk_run neg-acks1-leader-kill-seed7 valid invalid \
  '"failover":{"kill-leader-lagging":{"count":2,"p50_s":0.9,"p99_s":2.4,"max_s":2.4}},' \
  '{"fault":"kill-leader-lagging","injected":true,"unavailable_ms":2200}'
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
echo "nightly_test: ok"
