#!/usr/bin/env python3
"""The nightly matrix's bookkeeping (called by ci/nightly.sh; standard library only).

  nightly_report.py plan --seeds S --first-seed F [--shard K/N] [--matrix-json FILE]
                         [--nightly-arg=ARG ...] SCENARIO...
      prints the runs shard K of N makes, one `<scenario> <seed>` a line (without --shard, all of
      them). With --matrix-json, also writes the whole matrix and the shard there, for `merge`;
      --nightly-arg names an option of ci/nightly.sh that every run had (--duration 15 ...).
  nightly_report.py record RESULTS.jsonl --scenario S --seed N --exit CODE --seconds T
                           --dir RUN_DIR --log CONSOLE_LOG --rerun CMD [--attempts K]
      reads RUN_DIR/verdict.json (when the run got that far) and appends one result line.
  nightly_report.py render RESULTS.jsonl OUT_DIR
      writes OUT_DIR/summary.txt, OUT_DIR/summary.md and OUT_DIR/junit.xml (one testcase per
      run), prints the table, and exits 0 when every run passed, 1 otherwise.
  nightly_report.py merge OUT_DIR SHARD_DIR...
      one report for a matrix run as shards (ci/nightly.sh --shard K/N, one output directory
      each): OUT_DIR/results.jsonl holds every shard's results in the matrix's order, plus a
      NOT-RUN row for each run of the matrix (matrix.json) that no shard recorded; the run
      directories the shards kept are copied to OUT_DIR/runs/, each shard's doctor.txt to
      OUT_DIR/doctor-shard<K>.txt; then as render. Exits 2, writing nothing, when a run is
      recorded twice, the shards are of different matrices or a shard is given twice.
"""

import argparse
import json
import math
import os
import shlex
import shutil
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


def matrix_runs(scenarios, seeds, first_seed):
    """The matrix in the order ci/nightly.sh has always run it: scenario by scenario, seeds
    ascending. A run's index in this list decides its shard."""
    return [(s, first_seed + i) for s in scenarios for i in range(seeds)]


def shard_of(index, shards):
    """Round-robin rather than contiguous slices: the matrix is ordered by scenario and scenarios
    differ in length (and in how they fail), so every shard gets a mix and they end together."""
    return index % shards + 1


def run_name(scenario, seed):
    """The run's directory name under runs/, as ci/nightly.sh makes it (basename "$s" .toml)."""
    base = os.path.basename(scenario)
    if base.endswith(".toml") and base != ".toml":
        base = base[: -len(".toml")]
    return f"{base}-seed{seed}"


def shard_arg(text):
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise argparse.ArgumentTypeError(f"'{text}' is not K/N with 1 <= K <= N")
    return int(k), int(n)


def plan(a):
    k, n = a.shard
    runs = matrix_runs(a.scenarios, a.seeds, a.first_seed)
    if a.matrix_json:
        with open(a.matrix_json, "w") as f:
            json.dump({"scenarios": a.scenarios, "seeds": a.seeds, "first_seed": a.first_seed,
                       "shards": n, "shard": k, "nightly_args": a.nightly_arg or []}, f)
            f.write("\n")
    for i, (scenario, seed) in enumerate(runs):
        if shard_of(i, n) == k:
            print(scenario, seed)


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


def seconds_text(r):
    return "-" if r["seconds"] is None else f"{r['seconds']:.0f} s"


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
                     seconds_text(r)])
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
    right = {1, 6}  # numbers
    fmt = lambda row: [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
    return header, body, widths, fmt


def read_rows(results):
    if not os.path.exists(results):
        return []
    with open(results) as f:
        return [json.loads(line) for line in f if line.strip()]


def render(a):
    return render_rows(read_rows(a.results), a.out)


def render_rows(rows, out, notes=()):
    """Writes summary.txt, summary.md and junit.xml into out, prints the table; 0 when every run
    passed. notes are lines for both summaries, after the totals."""
    header, body, widths, fmt = table(rows)
    failed = [r for r in rows if r["exit"] != 0]
    not_run = sum(r["exit"] is None for r in rows)
    total_s = sum(r["seconds"] or 0 for r in rows)
    totals = (f"{len(rows)} runs, {len(rows) - len(failed)} passed, {len(failed)} failed"
              f"{f' ({not_run} not run)' if not_run else ''}, {total_s / 60:.1f} min of runs")

    text = ["  ".join(fmt(header)).rstrip(), "  ".join("-" * w for w in widths)]
    text += ["  ".join(fmt(row)).rstrip() for row in body]
    text += ["", totals, *notes]
    for r in failed:
        where = f" -> {r['dir']}" if r["dir"] else f": {r['note']}"
        text += ["", f"{r['scenario']} seed {r['seed']}: {r['outcome']}{where}"]
        if r["replay"]:
            text.append(f"  replay: {r['replay']}")
        text.append(f"  rerun:  {r['rerun']}")
    txt = "\n".join(text) + "\n"
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(txt)

    md = ["# faultline nightly", "", "| " + " | ".join(fmt(header)) + " |",
          "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    md += ["| " + " | ".join(fmt(row)) + " |" for row in body]
    md += ["", totals] + [f"{note}  " for note in notes]
    if failed:
        md += ["", "Failed runs (directories kept, with `replay.txt`):", ""]
        for r in failed:
            where = f"in `{r['dir']}`" if r["dir"] else f"({r['note']})"
            md.append(f"- {r['scenario']} seed {r['seed']}: {r['outcome']} {where}; "
                      f"`{r['replay'] or r['rerun']}`")
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")

    suites = ET.Element("testsuites", name="faultline-nightly")
    suite = ET.SubElement(suites, "testsuite", name="faultline-nightly", tests=str(len(rows)),
                          failures=str(sum(r["exit"] == 1 for r in rows)),
                          errors=str(sum(r["exit"] not in (0, 1) for r in rows)),
                          time=f"{total_s:.1f}")
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname=f"faultline.{r['scenario']}",
                             name=f"seed-{r['seed']}", time=f"{r['seconds'] or 0:.1f}")
        if r["exit"] == 0:
            continue
        if r["exit"] is None:
            el = ET.SubElement(case, "error", type="not-run",
                               message=f"NOT-RUN: {r['note']}; rerun: {r['rerun']}")
            el.text = f"rerun: {r['rerun']}"
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
    ET.ElementTree(suites).write(os.path.join(out, "junit.xml"), encoding="UTF-8",
                                 xml_declaration=True)

    sys.stdout.write(txt)
    return 1 if failed or not rows else 0


class Refused(Exception):
    """A merge that would misreport the matrix; nothing is written."""


def load_shard(d):
    if not os.path.isdir(d):
        raise Refused(f"{d}: no such directory")
    matrix_path = os.path.join(d, "matrix.json")
    results = os.path.join(d, "results.jsonl")
    if not os.path.exists(matrix_path) and not os.path.exists(results):
        raise Refused(f"{d} is not a nightly output directory (no matrix.json, no results.jsonl)")
    matrix = None
    if os.path.exists(matrix_path):
        with open(matrix_path) as f:
            matrix = json.load(f)
    # A shard that wrote its matrix.json but stopped before its first result still counts: its
    # runs come out NOT-RUN below.
    return matrix, read_rows(results)


def merge(a):
    out = os.path.abspath(a.out)
    if os.path.exists(os.path.join(out, "results.jsonl")):
        raise Refused(f"{out} already holds a matrix (results.jsonl); pick a new directory")
    shards = [(d, *load_shard(d)) for d in a.dirs]

    # Every shard must describe the same matrix (the same night: first seed included), else the
    # merged table would mix two nights or miss runs without saying so.
    matrices = [m for _, m, _ in shards if m is not None]
    matrix = None
    if matrices:
        if len(matrices) != len(shards):
            raise Refused("some shard directories have a matrix.json and some do not")
        whole = lambda m: {k: v for k, v in m.items() if k != "shard"}
        matrix = whole(matrices[0])
        by_shard = {}
        for d, m, _ in shards:
            if whole(m) != matrix:
                raise Refused(f"{d} is a shard of another matrix than {shards[0][0]} "
                              "(scenarios, seeds, first seed, shard count or options differ)")
            if m["shard"] in by_shard:
                raise Refused(f"shard {m['shard']}/{m['shards']} given twice: "
                              f"{by_shard[m['shard']]} and {d}")
            by_shard[m["shard"]] = d

    recorded = {}  # run name -> (shard directory, row)
    for d, _, rows in shards:
        for r in rows:
            name = os.path.basename(r["dir"])
            if name in recorded:
                raise Refused(f"run {r['scenario']} seed {r['seed']} recorded twice: in "
                              f"{recorded[name][0]} and {d}")
            recorded[name] = (d, r)

    notes = []
    if matrix is None:
        ordered = [recorded[name] for name in recorded]
    else:
        n = matrix["shards"]
        runs = matrix_runs(matrix["scenarios"], matrix["seeds"], matrix["first_seed"])
        planned = {run_name(s, seed) for s, seed in runs}
        for name, (d, _) in recorded.items():
            if name not in planned:
                raise Refused(f"{d} records run {name}, which its matrix.json does not have")
        notes.append(f"merged from {len(shards)} of {n} shards (ci/nightly.sh --shard K/{n}), "
                     f"first seed {matrix['first_seed']}")
        missing = sorted(set(range(1, n + 1)) - set(by_shard))
        if missing:
            notes.append("no output from shard " + ", ".join(f"{k}/{n}" for k in missing) +
                         ": its runs are NOT-RUN")
        ordered = []
        for i, (scenario, seed) in enumerate(runs):
            name = run_name(scenario, seed)
            if name in recorded:
                ordered.append(recorded[name])
                continue
            k = shard_of(i, n)
            rerun = ["ci/nightly.sh", "--scenarios", scenario, "--seeds", "1", "--first-seed",
                     str(seed), *matrix["nightly_args"]]
            ordered.append((None, {
                "scenario": name[: -len(f"-seed{seed}")], "seed": seed, "exit": None,
                "outcome": "NOT-RUN", "seconds": None, "attempts": 0, "dir": "",
                "rerun": shlex.join(rerun), "verdict": "-", "expected": "-",
                "failover_p99_ms": None, "failover_kind": "", "replay": None, "anomalies": {},
                "log_tail": "",
                "note": f"shard {k}/{n} " + ("recorded no result for it" if k in by_shard
                                             else "left no output")}))

    # The run directories a shard kept (failing runs, or all with --keep-all) move with their
    # rows, so the merged directory stands alone as an unsharded matrix's does.
    copies = []  # (row, shard's copy, merged copy)
    for d, r in ordered:
        if d is None or not r["dir"]:
            continue
        src = os.path.join(d, "runs", os.path.basename(r["dir"]))
        dst = os.path.join(out, "runs", os.path.basename(r["dir"]))
        if os.path.isdir(src):
            if os.path.exists(dst):
                raise Refused(f"{dst} already exists; pick a new directory")
            copies.append((r, src, dst))

    # Everything checked: write.
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    for r, src, dst in copies:
        shutil.copytree(src, dst, symlinks=True)
        # The commands that named the run's directory where the shard left it now name this copy.
        old = r["dir"]
        r["dir"] = dst
        r["rerun"] = r["rerun"].replace(old, dst)
        if r["replay"]:
            r["replay"] = r["replay"].replace(old, dst)
    rows = [r for _, r in ordered]
    with open(os.path.join(out, "results.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    for i, (d, m, _) in enumerate(shards):
        doctor = os.path.join(d, "doctor.txt")
        k = m["shard"] if m else i + 1
        if os.path.exists(doctor):
            shutil.copyfile(doctor, os.path.join(out, f"doctor-shard{k}.txt"))
    return render_rows(rows, out, notes)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("plan")
    pl.add_argument("--seeds", type=int, required=True)
    pl.add_argument("--first-seed", type=int, required=True)
    pl.add_argument("--shard", type=shard_arg, default=(1, 1))
    pl.add_argument("--matrix-json")
    pl.add_argument("--nightly-arg", action="append")
    pl.add_argument("scenarios", nargs="+")
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
    m = sub.add_parser("merge")
    m.add_argument("out")
    m.add_argument("dirs", nargs="+")
    a = p.parse_args()
    if a.cmd == "plan":
        plan(a)
        return 0
    if a.cmd == "record":
        record(a)
        return 0
    if a.cmd == "merge":
        try:
            return merge(a)
        except Refused as e:
            print(f"nightly_report.py merge: {e}", file=sys.stderr)
            return 2
    return render(a)


if __name__ == "__main__":
    sys.exit(main())
