#!/usr/bin/env python3
"""The nightly matrix's bookkeeping (called by ci/nightly.sh; standard library only).

  nightly_report.py record RESULTS.jsonl --scenario S --seed N --exit CODE --seconds T
                           --dir RUN_DIR --log CONSOLE_LOG --rerun CMD [--attempts K]
      reads RUN_DIR/verdict.json (when the run got that far) and appends one result line.
  nightly_report.py render RESULTS.jsonl OUT_DIR
      writes OUT_DIR/summary.txt, OUT_DIR/summary.md and OUT_DIR/junit.xml (one testcase per
      run), prints the table, and exits 0 when every run passed, 1 otherwise.
"""

import argparse
import json
import math
import os
import sys
import xml.etree.ElementTree as ET

# faultline run's exit codes (ARCHITECTURE.md section 7), plus timeout(1)'s.
OUTCOMES = {
    0: "pass",
    1: "MISMATCH",
    2: "USAGE",
    3: "NO-CAPABILITY",
    4: "HARNESS-FAILURE",
    124: "TIMEOUT",
    137: "TIMEOUT",
}


def nearest_rank(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def failover_p99_ms(verdict):
    """The worst p99 of client-observed write unavailability over the run's fault kinds, in ms.

    Uses verdict.json's `failover` (per kind: count, p50, p99, max; seconds) when present,
    otherwise the per-fault `unavailable_ms` of `faults`. Returns (ms or None, fault kind)."""
    failover = verdict.get("failover")
    if isinstance(failover, dict) and failover:
        worst = (None, "")
        for kind, stats in failover.items():
            if not isinstance(stats, dict) or not stats.get("count", 1):
                continue
            if "p99_ms" in stats:
                ms = float(stats["p99_ms"])
            elif "p99_s" in stats:
                ms = float(stats["p99_s"]) * 1000
            elif "p99" in stats:
                ms = float(stats["p99"]) * 1000
            else:
                continue
            if worst[0] is None or ms > worst[0]:
                worst = (ms, kind)
        return worst
    by_kind = {}
    for f in verdict.get("faults", []):
        if f.get("injected", True) and "unavailable_ms" in f:
            by_kind.setdefault(f.get("fault", "?"), []).append(float(f["unavailable_ms"]))
    worst = (None, "")
    for kind, values in by_kind.items():
        ms = nearest_rank(values, 0.99)
        if worst[0] is None or ms > worst[0]:
            worst = (ms, kind)
    return worst


def tail(path, lines):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def record(a):
    row = {
        "scenario": a.scenario,
        "seed": a.seed,
        "exit": a.exit,
        "outcome": OUTCOMES.get(a.exit, f"EXIT-{a.exit}"),
        "seconds": round(a.seconds, 1),
        "attempts": a.attempts,
        "dir": a.dir,
        "rerun": a.rerun,
        "verdict": "-",
        "expected": "-",
        "failover_p99_ms": None,
        "failover_kind": "",
        "replay": None,
        "anomalies": {},
        "log_tail": "",
    }
    verdict_path = os.path.join(a.dir, "verdict.json")
    if os.path.exists(verdict_path):
        with open(verdict_path) as f:
            v = json.load(f)
        row["scenario"] = v.get("scenario", a.scenario)  # a TOML file's own name
        if "verdict" in v:
            row["verdict"] = v["verdict"]
        elif "valid" in v:
            row["verdict"] = "valid" if v["valid"] else "invalid"
        if "expected" in v:
            row["expected"] = v["expected"]
        elif "expected_valid" in v:
            row["expected"] = "valid" if v["expected_valid"] else "invalid"
        row["failover_p99_ms"], row["failover_kind"] = failover_p99_ms(v)
        row["anomalies"] = {k: n for k, n in v.get("checker", {}).get("anomalies", {}).items() if n}
        if isinstance(v.get("replay"), str):
            row["replay"] = v["replay"]
    if a.exit != 0:
        row["log_tail"] = tail(a.log, 30)
    with open(a.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    p99 = "-" if row["failover_p99_ms"] is None else f"{row['failover_p99_ms']:.0f} ms"
    print(f"{row['outcome']}: verdict {row['verdict']}, expected {row['expected']}, "
          f"failover p99 {p99}, {row['seconds']:.0f} s")


def table(rows):
    header = ["scenario", "seed", "result", "verdict", "expected", "failover p99", "duration"]
    body = []
    for r in rows:
        if r["failover_p99_ms"] is None:
            p99 = "-"
        else:
            p99 = f"{r['failover_p99_ms']:.0f} ms {r['failover_kind']}".rstrip()
        result = r["outcome"] if r["attempts"] <= 1 else f"{r['outcome']} ({r['attempts']} tries)"
        body.append([r["scenario"], str(r["seed"]), result, r["verdict"], r["expected"], p99,
                     f"{r['seconds']:.0f} s"])
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    right = {1, 6}  # numbers
    fmt = lambda row: [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
    return header, body, widths, fmt


def render(a):
    rows = []
    if os.path.exists(a.results):
        with open(a.results) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    header, body, widths, fmt = table(rows)
    failed = [r for r in rows if r["exit"] != 0]
    total_s = sum(r["seconds"] for r in rows)
    totals = (f"{len(rows)} runs, {len(rows) - len(failed)} passed, {len(failed)} failed, "
              f"{total_s / 60:.1f} min of runs")

    text = ["  ".join(fmt(header)).rstrip(), "  ".join("-" * w for w in widths)]
    text += ["  ".join(fmt(row)).rstrip() for row in body]
    text += ["", totals]
    for r in failed:
        text += ["", f"{r['scenario']} seed {r['seed']}: {r['outcome']} -> {r['dir']}"]
        if r["replay"]:
            text.append(f"  replay: {r['replay']}")
        text.append(f"  rerun:  {r['rerun']}")
    txt = "\n".join(text) + "\n"
    with open(os.path.join(a.out, "summary.txt"), "w") as f:
        f.write(txt)

    md = ["# faultline nightly", "", "| " + " | ".join(fmt(header)) + " |",
          "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    md += ["| " + " | ".join(fmt(row)) + " |" for row in body]
    md += ["", totals]
    if failed:
        md += ["", "Failed runs (directories kept, with `replay.txt`):", ""]
        for r in failed:
            md.append(f"- {r['scenario']} seed {r['seed']}: {r['outcome']} in `{r['dir']}`; "
                      f"`{r['replay'] or r['rerun']}`")
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")

    suites = ET.Element("testsuites", name="faultline-nightly")
    suite = ET.SubElement(suites, "testsuite", name="faultline-nightly", tests=str(len(rows)),
                          failures=str(sum(r["exit"] == 1 for r in rows)),
                          errors=str(sum(r["exit"] not in (0, 1) for r in rows)),
                          time=f"{total_s:.1f}")
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname=f"faultline.{r['scenario']}",
                             name=f"seed-{r['seed']}", time=f"{r['seconds']:.1f}")
        if r["exit"] == 0:
            continue
        details = [f"run directory: {r['dir']}"]
        if r["replay"]:
            details.append(f"replay: {r['replay']}")
        details.append(f"rerun: {r['rerun']}")
        if r["anomalies"]:
            details.append("anomalies: " + ", ".join(f"{k}={n}" for k, n in sorted(r["anomalies"].items())))
        if r["log_tail"]:
            details += ["", "last lines of the run's output:", r["log_tail"]]
        if r["exit"] == 1:
            el = ET.SubElement(case, "failure", type="verdict-mismatch",
                               message=f"expected {r['expected']}, got {r['verdict']}; "
                                       f"replay: {r['replay'] or r['rerun']}")
        else:
            el = ET.SubElement(case, "error", type=r["outcome"].lower(),
                               message=f"{r['outcome']} (exit {r['exit']}); rerun: {r['rerun']}")
        el.text = "\n".join(details)
    ET.indent(suites)
    ET.ElementTree(suites).write(os.path.join(a.out, "junit.xml"), encoding="UTF-8",
                                 xml_declaration=True)

    sys.stdout.write(txt)
    return 1 if failed or not rows else 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("results")
    r.add_argument("--scenario", required=True)
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--exit", type=int, required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--dir", required=True)
    r.add_argument("--log", required=True)
    r.add_argument("--rerun", required=True)
    r.add_argument("--attempts", type=int, default=1)
    s = sub.add_parser("render")
    s.add_argument("results")
    s.add_argument("out")
    a = p.parse_args()
    if a.cmd == "record":
        record(a)
        return 0
    return render(a)


if __name__ == "__main__":
    sys.exit(main())
