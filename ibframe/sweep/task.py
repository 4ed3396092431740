"""One sweep task: one parameter set replayed over one recording, and its rows (one per strategy).

Owns: the per-set RunConfig (the loaded config with the set's values put into its strategies' params, checked
by each strategy's `Params` first), the replay itself — `SweepRunner`, ibframe.replay's ReplayRunner plus the
equity sampler, through the steps of `ibframe.replay.runner.run_prepared` (start, play, stop): the same requests
and orders as `ibframe.replay.replay()` — the figures (ibframe.sweep.figures), the order digest, the timings
(start-up: from the task's first line until the strategies have started — the recording from the worker's
cache, the config, the replayed set-up; replay: play and stop; figures), and turning any failure into rows
that carry the error instead of raising. The WARNING lines a replay logs are counted into its rows (and kept
off the worker's terminal).
Must never: raise out of `run_task` for a failure of the task's own (a bad value, a replay that cannot set up,
a bug): that would stop a sweep over one bad set. Never print.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
import threading
import time
import traceback
from typing import Any

from ..config import ConfigError, RunConfig
from ..connection import ConnectError
from ..record import RecordingError
from ..recorded_time import recorded_time
from ..replay import ReplayError, ReplayRunner
from ..params import check_params
from ..run import RunError, load_strategy_class
from .figures import EquitySampler, strategy_figures
from .plan import TaskSpec
from .sources import RecordingRef, open_recording

EXPECTED = (ConfigError, ReplayError, RecordingError, RunError)     # failures with a message meant for the user


def run_task(spec: TaskSpec, cfg: RunConfig, data: bytes | None = None) -> list[dict]:
    """Replay `spec` and return one row per strategy of `cfg` (errors in the rows, never raised)."""
    clock = _Stopwatch()
    capture = _Capture()
    set_cfg = cfg
    logging.getLogger().addHandler(capture)
    try:
        set_cfg = config_for(cfg, spec.overrides)
        for scfg in set_cfg.strategies:               # a value the strategy's Params refuses fails here, by name
            check_params(load_strategy_class(scfg.class_path), scfg, cfg.source)
        rec = open_recording(spec.recording, data)
        runner = SweepRunner(set_cfg, rec, spec.fills, spec.sample_every)
        try:
            result = _replay(runner, spec, capture, clock)
            rows = _rows(spec, runner, result)
            clock.lap("figures_s")
        finally:
            runner.journal_dir.cleanup()
    except Exception as exc:
        clock.lap(next(n for n in ("startup_s", "replay_s", "figures_s") if n not in clock.laps))  # until the failure
        rows = error_rows(spec, set_cfg, exc)
    finally:
        logging.getLogger().removeHandler(capture)
    warnings = capture.lines()
    worker = _worker()
    for row in rows:
        row.update(clock.laps)
        row["warnings"], row["first_warning"] = len(warnings), (warnings[0] if warnings else None)
        row["worker"] = worker
    return rows


class SweepRunner(ReplayRunner):
    """The replay's runner, plus the equity sampler (figures.py), started on the dispatch thread at the point
    where the rails and the account are set up and the strategies are about to start: the feeder waits there for
    the runner, so the samples fall at the same recorded times in every run. It sends nothing."""

    def __init__(self, cfg: RunConfig, recording, fills: str, sample_every: float):
        super().__init__(cfg, recording, fills, speed=None, quiet=True)
        self.sample_every = sample_every
        self.sampler: EquitySampler | None = None

    def before_strategies_start(self) -> None:
        self.sampler = EquitySampler(self.engine, self.strategies, self.sample_every)
        self.engine.on_dispatch(self.sampler.install)

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        super().stop()


def _replay(runner: SweepRunner, spec: TaskSpec, capture: "_Capture", clock: "_Stopwatch"):
    """`ibframe.replay.runner.run_prepared`'s steps, timed: start (start-up), play and stop (replay)."""
    with recorded_time(lambda: runner.feeder.clock.now() if runner.feeder is not None else None):
        try:
            try:
                runner.start()
            except (RunError, ConnectError) as exc:          # as run_prepared says it, naming the user's file
                damage = f" (the recording is damaged: {runner.recording.damage})" if runner.recording.damage else ""
                raise ReplayError(f"replay of {spec.recording.path} could not set up: {exc}{damage}") from None
            finally:
                capture.watch(runner)
            clock.lap("startup_s")
            runner.play(None)
        finally:
            runner.stop()
    result = runner.result()
    clock.lap("replay_s")
    return result


def config_for(cfg: RunConfig, overrides: dict[int, dict[str, Any]]) -> RunConfig:
    """`cfg` with each overridden strategy's params replaced by its values (the loaded config is left as it is)."""
    strategies = [dataclasses.replace(s, params={**(s.params or {}), **overrides.get(i, {})})
                  for i, s in enumerate(cfg.strategies)]
    return dataclasses.replace(cfg, strategies=strategies)


def orders_digest(sent) -> str:
    """SHA-256 over every order message the replay sent: its recorded time and its exact bytes, in order."""
    h = hashlib.sha256()
    for s in sent:
        h.update(repr(s.time).encode())
        h.update(len(s.payload).to_bytes(4, "big"))
        h.update(s.payload)
    return h.hexdigest()


# --- rows ---------------------------------------------------------------------------------------------------------

def _base(spec: TaskSpec, strategy: str, params: dict) -> dict:
    ref: RecordingRef = spec.recording
    facts = ref.facts
    row = {"task": spec.task, "set_id": spec.set_id, "strategy": strategy, "recording": ref.path,
           "fills_mode": spec.fills}
    row.update({f"param_{name}": value for name, value in spec.point.items()})
    row["params"] = json.dumps(params, sort_keys=True, default=str)
    row.update({"recording_sha256": ref.sha256, "recording_server_version": facts.get("server_version"),
                "recording_start": facts.get("start"), "recording_conn_time": facts.get("conn_time"),
                "recording_frames": facts.get("frames"),
                "recording_orders": facts.get("orders"), "recording_complete": facts.get("complete")})
    return row


def _rows(spec: TaskSpec, runner: SweepRunner, result) -> list[dict]:
    samples = runner.sampler.values if runner.sampler is not None else {}
    orders = result.orders
    shared = {"order_messages": len(orders), "orders_digest": orders_digest(orders), "frames": result.frames,
              "divergences": len(result.divergences),
              "first_divergence": result.divergences[0] if result.divergences else None,
              "problems": len(result.problems), "first_problem": result.problems[0] if result.problems else None,
              "damage": str(result.damage) if result.damage is not None else None}
    if spec.keep_orders:
        shared["order_payloads"] = [bytes(s.payload) for s in orders]
        shared["order_times"] = [float(s.time) for s in orders]
    rows = []
    for strategy in result.strategies:
        row = _base(spec, strategy.name, dict(strategy.params))
        row.update({"ok": True, "error_type": None, "error": None, "traceback": None})
        row.update(strategy_figures(strategy, runner.marks, samples.get(strategy.name, [])))
        row.update(shared)
        rows.append(row)
    return rows


def error_rows(spec: TaskSpec, cfg: RunConfig, exc: BaseException) -> list[dict]:
    message = str(exc) or type(exc).__name__
    temp = getattr(exc, "path", None)
    if isinstance(exc, RecordingError) and temp and temp != spec.recording.path:
        message = message.replace(str(temp), spec.recording.path)    # the worker's copy: name the user's file
    trace = None if isinstance(exc, EXPECTED) else "".join(traceback.format_exception(exc)[-6:])
    rows = []
    for s in cfg.strategies:
        row = _base(spec, s.name, dict(s.params or {}))
        row.update({"ok": False, "error_type": type(exc).__name__, "error": message, "traceback": trace})
        rows.append(row)
    return rows


def _worker() -> str:
    """The Dask worker's address, or "local" (a task run in the client's process; distributed not even imported)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return "local"
    try:
        return distributed.get_worker().address
    except ValueError:
        return "local"


class _Stopwatch:
    """Seconds per step since the task began: start-up, replay, figures (a step not reached is left out)."""

    def __init__(self):
        self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name], self.last = now - self.last, now


class _Capture(logging.Handler):
    """WARNING and worse from the replay's threads (the task's own and the replay's dispatch thread)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.threads = {threading.get_ident()}
        self.records: list[tuple[int, str]] = []

    def watch(self, runner) -> None:
        ident = runner.engine.dispatcher.thread_id if runner.engine is not None else None
        if ident is not None:
            self.threads.add(ident)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append((record.thread, f"{record.name}: {record.getMessage()}"))
        except Exception:                                       # a bad log call must not fail the task
            pass

    def lines(self) -> list[str]:
        return [text for thread, text in self.records if thread in self.threads]
