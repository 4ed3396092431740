"""`python -m ibframe.sweep CONFIG --param NAME=VALUES … --recordings GLOB` (also `ibframe sweep`): the command line.

Owns: the options, their errors as one `error: …` line (exit code 2: nothing ran), the lines printed around a
sweep (what will run, the dashboard, a summary of the best parameter sets, where the results went) and the exit
codes: 0 every task ran, 1 some tasks failed (their rows say why), 2 nothing ran, 130 interrupted.
Must never: hold sweep logic (ibframe.sweep does it), or print a traceback for a user's mistake.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..config import ConfigError, parse_duration
from ..config.types import check_file_to_write

SHOWN = 5                               # best parameter sets printed after a sweep


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ibframe sweep",
        description="Replay recordings under every combination of strategy parameters, each (parameter set, "
                    "recording) one Dask task; results to Parquet.",
        epilog="VALUES: a:b (whole numbers a to b, both included), a:b:step (e.g. 20:60:10 or 0.5:2:0.5), a list "
               "3,5,8, or one value. NAME: the parameter (fast) when the config has one strategy, "
               "STRATEGY.NAME (ma-cross.fast) when it has several.")
    p.add_argument("config", help="strategy YAML (its gateway, sim, duration and record keys are ignored)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUES", required=True,
                   help="a parameter and its values (repeat for each parameter; the grid is every combination)")
    p.add_argument("--recordings", nargs="+", required=True, metavar="GLOB",
                   help="recordings to replay (quote globs: 'var/*.jsonl.gz'; several allowed)")
    p.add_argument("--fills", choices=("simulated", "recorded"), default="simulated",
                   help="simulated (default): fill each set's orders against the recorded quotes; recorded: feed "
                        "back the recorded broker answers (they match only the orders the live run sent)")
    p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   help="run on this existing Dask cluster (default: a LocalCluster on this machine)")
    p.add_argument("--workers", type=int, metavar="N", help="LocalCluster worker processes (default: one per core)")
    p.add_argument("--timeout", default="10s", metavar="DURATION",
                   help="how long to wait for --scheduler to answer (default 10s)")
    p.add_argument("--sample-every", default="5s", metavar="DURATION",
                   help="recorded time between equity samples for drawdown and the Sharpe-style ratio (default 5s)")
    p.add_argument("--out", default="var/sweep.parquet", metavar="PATH",
                   help="results file (Parquet; default var/sweep.parquet, its folder made when missing)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_logging()
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))            # strategies importable from the project folder, as ibframe.run
    from . import ParamError, SourceError, make_plan, run_plan
    from .cluster import ClusterError, connect, dashboard_line
    try:
        timeout, sample_every = parse_duration(args.timeout), parse_duration(args.sample_every)
        if args.scheduler and args.workers is not None:
            raise ParamError("--workers sizes the local cluster; with --scheduler the cluster's own workers run the "
                             "tasks (start more with `dask worker ADDRESS`)")
        if args.workers is not None and args.workers < 1:
            raise ParamError(f"--workers {args.workers}: give at least 1")
        check_file_to_write(args.out, "sweep.parquet")
        plan = make_plan(args.config, args.param, args.recordings, fills=args.fills, sample_every=sample_every)
    except (ConfigError, ParamError, SourceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"sweep: {len(plan.grid)} parameter set{'s' * (len(plan.grid) != 1)} × {len(plan.recordings)} "
          f"recording{'s' * (len(plan.recordings) != 1)} = {len(plan.tasks)} tasks ({plan.fills} fills); "
          f"{', '.join(f'{n}: {_values(v)}' for n, v in plan.grid.describe().items())}", flush=True)
    try:
        with connect(args.scheduler, args.workers, timeout) as client:
            workers = len(client.scheduler_info().get("workers", {}))
            where = args.scheduler or "a LocalCluster on this machine"
            print(f"cluster: {where}, {workers} worker{'s' * (workers != 1)}", flush=True)
            print(dashboard_line(client), flush=True)
            df = run_plan(plan, client, out=args.out)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: the sweep's tasks were cancelled; no results written", file=sys.stderr)
        return 130
    meta = df.attrs["ibframe"]
    print("\n".join(summary(df, plan.grid.names)))
    print(f"results: {args.out} ({len(df)} rows, {len(plan.tasks)} tasks in {meta['elapsed_s']:.1f}s); read them "
          f"with pandas.read_parquet({str(args.out)!r})")
    return 1 if meta["failed_tasks"] else 0


def _quiet_logging() -> None:
    """Warnings and errors on stderr (Dask's INFO chatter about its scheduler and nannies left out); the sweep's
    own progress lines at INFO."""
    root = logging.getLogger()
    if any(getattr(h, "ibframe_sweep", False) for h in root.handlers):
        return                                          # main() called again in this process (tests)
    form = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler = logging.StreamHandler()
    handler.ibframe_sweep = True
    handler.setLevel(logging.WARNING)
    handler.setFormatter(form)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    own = logging.getLogger("ibframe.sweep")
    own.setLevel(logging.INFO)
    own.propagate = False
    progress = logging.StreamHandler()
    progress.setFormatter(form)
    own.addHandler(progress)


def summary(df, names) -> list[str]:
    """The best parameter sets by P&L (summed over recordings and strategies), and the failures."""
    lines = []
    ok = df[df["ok"].fillna(False)]
    failed = df[~df["ok"].fillna(False)].drop_duplicates("task")
    if len(ok):
        params = [f"param_{n}" for n in names]
        per_set = (ok.groupby("set_id", sort=False)
                   .agg(**{p: (p, "first") for p in params}, pnl=("pnl", "sum"), orders=("orders", "sum"),
                        max_drawdown=("max_drawdown", "max"), sharpe=("sharpe", "mean"))
                   .sort_values("pnl", ascending=False))
        lines.append(f"best {min(SHOWN, len(per_set))} of {len(per_set)} parameter sets by P&L (summed over "
                     f"recordings):")
        for _, r in per_set.head(SHOWN).iterrows():
            values = ", ".join(f"{n}={r[f'param_{n}']}" for n in names)
            lines.append(f"   {values}: P&L {r['pnl']:+.2f}, {int(r['orders'])} orders, max drawdown "
                         f"{r['max_drawdown']:.2f}, Sharpe-style {_number(r['sharpe'])}")
    if len(failed):
        lines.append(f"{len(failed)} task{'s' * (len(failed) != 1)} failed (ok == False in the results), e.g.:")
        for _, r in failed.head(3).iterrows():
            lines.append(f"   task {r['task']} ({r['recording']}): {r['error_type']}: {r['error']}")
    return lines


def _values(values: list) -> str:
    shown = ",".join(str(v) for v in values[:8])
    return shown + (f",… ({len(values)} values)" if len(values) > 8 else "")


def _number(value) -> str:
    return "n/a" if value != value else f"{value:+.3f}"
