"""`python -m ibframe.bench [--quick] [--json FILE] [--repeat N] [--case NAME]`: run the benchmarks, print one table.

Owns: running every part of every case in its own process (ibframe.bench.worker), interleaving the
repeats, collecting the results into rows (median, min, max), printing the table with the machine it
ran on, and writing the same as JSON. Progress goes to stderr, the table to stdout.
Must never: run two measurements at the same time, or drop a failed run silently (it is listed).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from . import CASES, CaseResult

DEFAULT_REPEATS = 5
QUICK_REPEATS = 2


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    try:
        from importlib import metadata
        ibapi_version = metadata.version("ibapi-stable")
    except Exception:
        ibapi_version = "?"
    return {"nproc": os.cpu_count(), "cpu": model or platform.processor() or "?",
            "python": platform.python_version(), "ibapi": ibapi_version, "platform": platform.platform()}


def run_part(case: str, part: str, quick: bool, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "ibframe.bench.worker", case, part] + (["--quick"] if quick else [])
    try:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"values": {}, "verified": False, "detail": f"no result within {timeout:g}s"}
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"values": {}, "verified": False, "detail": f"worker exited {done.returncode} without a result"}


def run_case(name: str, quick: bool, repeat: int | None) -> CaseResult:
    mod = importlib.import_module(f"ibframe.bench.{name}")
    parts = mod.parts(quick)
    default = repeat or (QUICK_REPEATS if quick else DEFAULT_REPEATS)
    counts = {p: repeat or (getattr(mod, "repeats", lambda *_: None)(p, quick) or default) for p in parts}
    runs: dict[str, list[dict]] = {p: [] for p in parts}
    result = CaseResult(name, mod.TITLE)
    for i in range(max(counts.values())):
        for part in parts:
            if i >= counts[part]:
                continue
            started = time.monotonic()
            out = run_part(name, part, quick, timeout=180 if quick else 1200)
            runs[part].append(out)
            shown = ", ".join(f"{k} {_fmt(v, 0 if abs(v) >= 1000 else 2)}" for k, v in out.get("values", {}).items())
            status = "ok" if out.get("verified") else f"FAILED: {out.get('detail', '')[:300]}"
            print(f"  {name} {part} run {i + 1}/{counts[part]}: {shown} ({time.monotonic() - started:.1f}s) {status}",
                  file=sys.stderr, flush=True)
            if not out.get("verified"):
                result.failures.append(f"{part} run {i + 1}: {out.get('detail', '')}")
    result.rows = mod.rows(runs, quick)
    return result


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def table(results: list[CaseResult], info: dict, quick: bool) -> str:
    width = max([len(r.label) for c in results for r in c.rows] + [40])
    lines = [f"ibframe benchmarks{' (--quick)' if quick else ''}: {info['nproc']} CPUs, {info['cpu']}, "
             f"Python {info['python']}, ibapi {info['ibapi']}",
             "",
             f"{'#':<3}{'measurement':<{width}}  {'median':>12} {'min':>12} {'max':>12}  {'unit':<7} {'check':<6} note"]
    for number, case in enumerate(results, 1):
        lines.append(f"{number:<3}{case.title}")
        for row in case.rows:
            lines.append(f"{'':<3}{row.label:<{width}}  {_fmt(row.median, row.digits):>12} "
                         f"{_fmt(row.low, row.digits):>12} {_fmt(row.high, row.digits):>12}  {row.unit:<7} "
                         f"{'ok' if row.verified else 'FAILED':<6} {row.note}".rstrip())
        for failure in case.failures:
            lines.append(f"{'':<3}failed run: {failure[:200]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ibframe bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and 2 runs per part (a few minutes)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--repeat", type=int, help="runs per part (default 5, 2 with --quick; the stock client 3)")
    p.add_argument("--case", action="append", choices=CASES, help="run only this case (repeatable)")
    args = p.parse_args(argv)
    info = machine()
    results = []
    for name in args.case or CASES:
        print(f"{name} ...", file=sys.stderr, flush=True)
        results.append(run_case(name, args.quick, args.repeat))
    print(table(results, info, args.quick))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "quick": args.quick,
                       "cases": [{"name": c.name, "title": c.title, "rows": [r.as_dict() for r in c.rows],
                                  "failures": c.failures} for c in results]}, fh, indent=2)
    ok = all(r.verified for c in results for r in c.rows) and not any(c.failures for c in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
