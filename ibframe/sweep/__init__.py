"""Parameter sweeps on Dask: every parameter set × every recording replayed as one task, results in one DataFrame.

    python -m ibframe.sweep config/ma_cross.yaml --param fast=3:6 --param slow=20:40:5 \\
        --recordings 'recordings/*.jsonl.gz' --fills simulated --out var/sweep.parquet

    from ibframe.sweep import sweep
    df = sweep("config/ma_cross.yaml", {"fast": "3:6", "slow": [20, 30, 40]}, "recordings/*.jsonl.gz")

The parts, each owning one thing:
    grid.py     `--param` value syntax (a:b, a:b:step, 3,5,8) and the grid's points
    plan.py     config + grid + recordings -> checked TaskSpecs and the sweep's metadata
    sources.py  recordings found on the client, shipped once, opened once per worker
    task.py     one task: the per-set config, the replay (ibframe.replay), its rows, errors as rows
    figures.py  P&L, drawdown, the Sharpe-style ratio, TCA for one strategy
    cluster.py  LocalCluster or --scheduler, warming workers, progress, collecting rows
    results.py  the typed DataFrame and Parquet with metadata
    cli.py      the command line

Owns: the Python API, `sweep()`. A sweep runs the same replay as `ibframe.replay.replay` (each task's orders
equal a local replay's, byte for byte), so it inherits replay's guarantees and its fill model.
Must never: hold a strategy's logic, change a recording, or talk to a broker.
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..config import RunConfig
from .cli import main
from .cluster import ClusterError, connect
from .grid import Grid, ParamError, make_grid, parse_param, parse_values
from .plan import DEFAULT_SAMPLE_EVERY, Plan, TaskSpec, make_plan
from .results import COLUMNS, read_metadata
from .sources import SourceError
from .task import run_task

__all__ = ["COLUMNS", "ClusterError", "DEFAULT_SAMPLE_EVERY", "Grid", "ParamError", "Plan", "SourceError", "TaskSpec",
           "main", "make_grid", "make_plan", "parse_param", "parse_values", "read_metadata", "run_plan", "run_task",
           "sweep"]


def sweep(config: str | Path | RunConfig, params: dict, recordings, fills: str = "simulated", client=None, *,
          workers: int | None = None, sample_every: float = DEFAULT_SAMPLE_EVERY, keep_orders: bool = False,
          out: str | Path | None = None, progress: bool | None = None) -> pd.DataFrame:
    """Replay every parameter set of `params` over every recording; one row per strategy per task.

    config: a strategy YAML or a loaded RunConfig. params: {name: values}, values as on the command line
    ("3:10", "20:60:10", "3,5,8") or a list; a name is `param` (one strategy) or `strategy.param`.
    recordings: a path, a glob or a list of them. fills: "simulated" (default: the strategy's orders filled
    against the recorded quotes) or "recorded" (the recorded broker answers: right only for the orders the
    live run sent). client: a distributed.Client; None starts a LocalCluster of `workers` processes (default
    one per core, one thread each) and closes it at the end. out: also write Parquet there.
    A task that fails has ok=False and its error_type / error in its rows; the others complete.
    The frame's `attrs['ibframe']` holds the sweep's metadata and the recordings' headers (the Parquet file has
    them as key-value metadata: read_metadata(path)).
    """
    plan = make_plan(config, params, recordings, fills=fills, sample_every=sample_every, keep_orders=keep_orders)
    if client is None:
        with connect(workers=workers) as local:
            return run_plan(plan, local, out=out, progress=progress)
    return run_plan(plan, client, out=out, progress=progress)


def run_plan(plan: Plan, client, *, out: str | Path | None = None, progress: bool | None = None) -> pd.DataFrame:
    """Every task of a checked plan on `client`, as one DataFrame (and Parquet at `out`); see sweep()."""
    from . import cluster, results
    started = time.monotonic()
    rows = cluster.run(plan, client, progress)
    meta = plan.metadata()
    meta.update({"elapsed_s": round(time.monotonic() - started, 3),
                 "failed_tasks": len({r["task"] for r in rows if not r.get("ok")})})
    df = results.frame(rows, plan.grid.names, {**meta, "recordings": results.recordings_meta(plan.recordings)})
    if out is not None:
        results.write(df, out, meta, plan.recordings)
    return df
