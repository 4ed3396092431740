"""Case 12: parameter sweeps — the same tasks on a Dask LocalCluster(2 workers) and in a sequential loop.

Owns: one sweep plan (config/ma_cross.yaml over recordings/ma_cross.jsonl.gz, simulated fills; a grid of 200
parameter sets, 20 with --quick) run two ways, each its own part (so each in a fresh process):
"sequential" — `ibframe.sweep.run_task` for every task in a loop in this one process; "dask" — the same tasks
through `ibframe.sweep.cluster` on LocalCluster(n_workers=2, threads_per_worker=1, processes=True): its start,
the warm-up (the first task once per worker, its rows dropped), then the tasks. Measured: tasks per second of
each (the speed-up is their ratio, run for run), and per task where the time goes — start-up (the recording from
the worker's cache, the config, the replayed set-up until the strategies start), replay (play and stop), figures
— and, for Dask, the overhead per task beyond those (scheduling, moving rows back) = wall × workers / tasks −
(start-up + replay + figures).
Must never: count a run where a task failed, or where the two ways' orders differ (both parts write the digest
of every task's orders; the speed-up row is verified only when they are equal).
"""
from __future__ import annotations

import hashlib
import statistics
import sys
import time
from pathlib import Path

from . import Row, all_verified, values

TITLE = "parameter sweep (ibframe.sweep): LocalCluster(2 workers) vs a sequential loop, recorded ma_cross"
ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "ma_cross.yaml"
RECORDING = ROOT / "recordings" / "ma_cross.jsonl.gz"
WORKERS = 2


def grid(quick: bool) -> dict:
    """200 parameter sets (fast 3..12 × slow 20..58 step 2); 20 with --quick (fast 3..6 × slow 20..40 step 5)."""
    return {"fast": "3:6", "slow": "20:40:5"} if quick else {"fast": "3:12", "slow": "20:58:2"}


def parts(quick: bool) -> list[str]:
    return ["sequential", "dask"]


def repeats(part: str, quick: bool) -> int:
    return 1 if quick else 2                     # a full run of both parts takes about two and a half minutes


def _plan(quick: bool):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))            # config/ma_cross.yaml's strategies.ma_cross
    from ..sweep import make_plan
    return make_plan(CONFIG, grid(quick), str(RECORDING), fills="simulated")


def _figures(rows: list[dict], wall: float, workers: int) -> dict:
    n = len(rows)
    per_task = [r["startup_s"] + r["replay_s"] + r["figures_s"] for r in rows]
    return {"tasks_per_s": n / wall, "wall_s": wall,
            "startup_ms": statistics.median(r["startup_s"] for r in rows) * 1e3,
            "replay_ms": statistics.median(r["replay_s"] for r in rows) * 1e3,
            "figures_ms": statistics.median(r["figures_s"] for r in rows) * 1e3,
            "overhead_ms": max(0.0, wall * workers / n - statistics.mean(per_task)) * 1e3}


def _digest(rows: list[dict]) -> str:
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: r["task"]):
        h.update(f"{r['task']}:{r['orders_digest']};".encode())
    return h.hexdigest()


def run(part: str, quick: bool) -> dict:
    from ..sweep.task import run_task
    plan = _plan(quick)
    if part == "sequential":
        started = time.perf_counter()
        rows = [row for spec in plan.tasks for row in run_task(spec, plan.cfg, None)]
        result = _figures(rows, time.perf_counter() - started, 1)
    else:
        from ..sweep import cluster
        begun = time.perf_counter()
        timings: dict = {}
        with cluster.connect(workers=WORKERS) as client:
            ready = time.perf_counter()
            rows = cluster.run(plan, client, progress=False, timings=timings)
            done = time.perf_counter()
        result = _figures(rows, timings["tasks_s"], WORKERS)
        result.update({"cluster_start_s": ready - begun, "plugin_s": timings["plugin_s"], "ship_s": timings["ship_s"],
                       "warm_up_s": timings["warm_up_s"], "whole_s": done - begun})
    failed = [r for r in rows if not r.get("ok")]
    ok = not failed and len(rows) == len(plan.tasks)
    detail = (f"{len(rows)} rows for {len(plan.tasks)} tasks, {len(failed)} failed"
              + (f": {failed[0]['error_type']}: {failed[0]['error']}" if failed else ""))
    return {"values": result, "verified": ok, "detail": detail, "digest": _digest(rows)}


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    n = 20 if quick else 200
    seq, dask = runs.get("sequential", []), runs.get("dask", [])
    same = bool(seq and dask) and len({r.get("digest") for r in seq + dask}) == 1
    speedups = [d["values"]["tasks_per_s"] / s["values"]["tasks_per_s"] for s, d in zip(seq, dask)
                if s.get("verified") and d.get("verified")]
    out = [Row(f"sequential loop, one process: {n} tasks", "tasks/s", values(seq, "tasks_per_s"), all_verified(seq),
               digits=2),
           Row(f"LocalCluster({WORKERS} workers × 1 thread): {n} tasks, after start and warm-up", "tasks/s",
               values(dask, "tasks_per_s"), all_verified(dask), digits=2),
           Row("speed-up, Dask / sequential (same orders, task for task)", "x", speedups,
               all_verified(seq) and all_verified(dask) and same, digits=2),
           Row("LocalCluster start (scheduler, 2 worker processes)", "s", values(dask, "cluster_start_s"),
               all_verified(dask), digits=2),
           Row("worker plugin: ibframe's replay path imported on every worker (once)", "s", values(dask, "plugin_s"),
               all_verified(dask), digits=2),
           Row("shipping the config and the recording to every worker (once)", "s", values(dask, "ship_s"),
               all_verified(dask), digits=3),
           Row("warm-up (the first task once per worker, in parallel)", "s", values(dask, "warm_up_s"),
               all_verified(dask), digits=2)]
    for label, key in (("start-up (recording from cache, config, replayed set-up)", "startup_ms"),
                       ("replay (play and stop)", "replay_ms"), ("figures (P&L, drawdown, TCA)", "figures_ms")):
        out.append(Row(f"per task, sequential: {label}, median", "ms", values(seq, key), all_verified(seq), digits=1))
        out.append(Row(f"per task, Dask: {label}, median", "ms", values(dask, key), all_verified(dask), digits=1))
    out.append(Row("per task, Dask: overhead beyond the task (scheduling, rows back)", "ms",
                   values(dask, "overhead_ms"), all_verified(dask), digits=1))
    return out
