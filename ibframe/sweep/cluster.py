"""Where a sweep's tasks run: a Dask LocalCluster on this machine, or an existing cluster's scheduler.

Owns: starting the LocalCluster (processes, one worker per core unless told, one thread each) or connecting
to `--scheduler`, with messages that say what to start when it is not there; warming each worker once — a
worker plugin (the strategy folders on sys.path, ibframe's replay path and the strategy modules imported, also
on workers that join later), then the sweep's first task once per worker with its rows dropped; shipping the
config and each recording to every worker once (`client.scatter(..., broadcast=True)`); submitting one task per
(parameter set, recording); progress (Dask's text progress bar when stdout is a terminal, else ibframe.progress's
log lines: one every LOG_EVERY seconds and one at the end); the dashboard's address (or why it is off); and
collecting every task's rows — a task Dask itself lost (a worker that died) becomes rows with its error, like any
failed task.
Must never: decide what a task computes (task.py) or how rows are typed (results.py).
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import re
import sys
import time
import uuid
from typing import Iterator

from ..progress import LogProgress, Progress
from .plan import Plan, TaskSpec
from .task import error_rows, run_task

log = logging.getLogger("ibframe.sweep")

CONNECT_TIMEOUT = 10.0
WARM_TIMEOUT = 300.0                   # seconds the warm-up may take (one replay per worker, in parallel)
LOG_EVERY = 10.0                       # seconds between progress lines (ibframe.progress) when not on a terminal
ADDRESS = re.compile(r"^((tcp|tls|ws|wss|ucx)://)?[^\s/]+:\d{1,5}$")        # tcp://HOST:PORT (or HOST:PORT)
WARM_MODULES = ("pandas", "ibframe.replay", "ibframe.replay.paper_fills", "ibframe.sim.broker.order_answers_wire",
                "ibframe.sim.broker.order_records", "ibframe.sim.broker.order_requests_wire",
                "ibframe.sim.protocol.wire", "ibframe.sim.protocol.codec", "ibframe.journal.tca", "ibframe.sweep.task")
START_HINT = ("start one with `dask scheduler` (it listens on tcp://HOST:8786) and `dask worker tcp://HOST:8786` "
              "on each machine, with ibframe and the strategy modules installed there; or leave out --scheduler to "
              "run on this machine")


class ClusterError(RuntimeError):
    """The cluster could not be started or reached; the text says what to do."""


def bokeh_installed() -> bool:
    return importlib.util.find_spec("bokeh") is not None


@contextlib.contextmanager
def connect(scheduler: str | None = None, workers: int | None = None,
            timeout: float = CONNECT_TIMEOUT) -> Iterator[object]:
    """A distributed.Client: to `scheduler`, or to a LocalCluster started here (closed on exit)."""
    from distributed import Client, LocalCluster
    if scheduler is not None:
        address = scheduler.strip()
        if not ADDRESS.match(address):
            raise ClusterError(f"--scheduler {scheduler!r} is not a scheduler address; write tcp://HOST:8786")
        try:
            client = Client(address, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g}s "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'}); "
                               f"{START_HINT}") from None
        try:
            yield client
        finally:
            client.close()
        return
    if workers is not None and workers < 1:
        raise ClusterError(f"--workers {workers}: give at least 1")
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=":8787" if bokeh_installed() else ":0",   # no bokeh: any port
                           silence_logs=logging.ERROR)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def dashboard_line(client) -> str:
    """Where the dashboard is, or why there is none and how to get it."""
    link = getattr(client, "dashboard_link", None)
    local = type(getattr(client, "cluster", None)).__name__ == "LocalCluster"
    if local and not bokeh_installed():
        return ("dashboard: off (it needs bokeh: pip install 'bokeh>=3.1' into this environment, then it is served "
                "at http://127.0.0.1:8787/status)")
    if link:
        return f"dashboard: {link}" + ("" if local else " (served by the scheduler; needs bokeh where it runs)")
    return "dashboard: the scheduler serves none"


class WarmWorker:
    """A Dask worker plugin: on each worker, once, before its first task (also on workers that join later)."""

    name = "ibframe-sweep-warm"

    def __init__(self, paths: list[str], modules: list[str]):
        self.paths, self.modules = list(paths), list(modules)

    def setup(self, worker=None) -> None:
        for path in reversed(self.paths):
            if os.path.isdir(path) and path not in sys.path:
                sys.path.insert(0, path)
        logging.getLogger("ibapi").setLevel(logging.WARNING)
        for name in (*WARM_MODULES, *self.modules):
            with contextlib.suppress(Exception):      # a module that fails here fails its tasks, with the reason
                importlib.import_module(name)

    def teardown(self, worker=None) -> None:
        pass


def _plugin(plan: Plan):
    """WarmWorker as a distributed WorkerPlugin (built here: distributed is imported only when a sweep runs)."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class Warm(WarmWorker, WorkerPlugin):
        pass
    return Warm(plan.paths, plan.modules)


def run(plan: Plan, client, progress: bool | None = None, timings: dict | None = None) -> list[dict]:
    """Every task of `plan` on `client`; all rows, failed tasks' included. `progress`: None = a bar when stdout is
    a terminal. `timings`, when given, gets the seconds spent in the worker plugin (its imports on every worker),
    shipping the config and the recordings, warming up, and running the tasks."""
    from distributed import as_completed
    timings = {} if timings is None else timings
    begun = time.perf_counter()
    try:
        client.register_plugin(_plugin(plan), name=WarmWorker.name)
    except Exception as exc:
        raise ClusterError(f"the workers cannot set up ibframe's sweep ({type(exc).__name__}: {exc}); install "
                           f"ibframe (the same version as here) and the strategy modules on every worker") from None
    timings["plugin_s"] = time.perf_counter() - begun
    if not client.scheduler_info().get("workers"):
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except TimeoutError:
            raise ClusterError(f"the Dask scheduler has no workers (none joined within {CONNECT_TIMEOUT:g}s): start "
                               f"some with `dask worker {client.scheduler.address}` on machines with ibframe and "
                               f"the strategy modules installed") from None
    cfg_ref = client.scatter(plan.cfg, broadcast=True)
    data_refs = {digest: client.scatter(data, broadcast=True) for digest, data in plan.data.items()}
    token = uuid.uuid4().hex[:12]
    timings["ship_s"] = time.perf_counter() - begun - timings["plugin_s"]
    warm_up(plan, client, cfg_ref, data_refs, token)
    timings["warm_up_s"] = time.perf_counter() - begun - timings["plugin_s"] - timings["ship_s"]
    tasks_begun = time.perf_counter()
    futures = [client.submit(run_task, spec, cfg_ref, data_refs[spec.recording.sha256], pure=False,
                             key=f"ibframe-sweep-{token}-{spec.task}")
               for spec in plan.tasks]
    specs = {f.key: spec for f, spec in zip(futures, plan.tasks)}
    rows: list[dict] = []
    bar = sys.stdout.isatty() if progress is None else progress
    lines = Progress(len(futures), "sweep", "task", time.monotonic) if bar else \
        LogProgress(len(futures), "sweep", "task", log, LOG_EVERY, time.monotonic)
    try:
        if bar:
            from distributed import progress as progress_bar
            progress_bar(futures, multi=False)         # returns when all are done; the bar clears its line
        for future in as_completed(futures):
            rows += _collect(future, specs[future.key], plan)
            lines.update()
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        lines.close()
    timings["tasks_s"] = time.perf_counter() - tasks_begun
    return rows


def warm_up(plan: Plan, client, cfg_ref, data_refs: dict, token: str) -> None:
    """The sweep's first task once on each worker, its rows dropped: what a replay builds once per process (the
    parsed recording in sources.py's cache, the exchange calendar of the PDT guard, the first-call costs of the
    replay path) is built before the measured tasks start. Workers that join later warm up on their first task."""
    from distributed import wait
    first = plan.tasks[0]
    addresses = list(client.scheduler_info().get("workers", {}))
    warm = [client.submit(run_task, first, cfg_ref, data_refs[first.recording.sha256], pure=False, workers=[address],
                          allow_other_workers=False, key=f"ibframe-sweep-warm-{token}-{i}")
            for i, address in enumerate(addresses)]
    with contextlib.suppress(TimeoutError):      # a worker lost meanwhile: its warm-up would wait for it forever
        wait(warm, timeout=WARM_TIMEOUT)
    client.cancel(warm)                          # nothing to keep: the rows of a warm-up are not results


def _collect(future, spec: TaskSpec, plan: Plan) -> list[dict]:
    """The task's rows; a task Dask could not run (its worker died, it was cancelled) as error rows."""
    if future.status == "finished":
        try:
            return future.result()
        except Exception as exc:                     # the rows could not come back (e.g. could not be unpickled)
            return error_rows(spec, plan.cfg, exc)
    try:
        exc = future.exception()
    except Exception as caught:                      # a cancelled future raises here
        exc = caught
    return error_rows(spec, plan.cfg, exc or RuntimeError(f"task {future.key} ended {future.status}"))
