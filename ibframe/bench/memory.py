"""Case 5: memory over a long stream — state and backlog stay bounded.

Owns: the part "stream": 5,000,000 L1 ticks on 50 instruments (--quick: 200,000) from the burst
server ("stream" mode: one encoded 100,000-tick burst sent again and again) through ibframe's full
path, with the BurstReader strategy reading every quote. RSS is sampled on the dispatch thread
every tenth of the stream; reported are RSS before the stream, at the halfway point and at the
end, the growth from halfway to the end, and the process's peak RSS (getrusage).
Must never: report a run that lost ticks.
"""
from __future__ import annotations

import os
import resource
import tempfile

from . import Row, all_verified, values
from .server import ServerProcess

TITLE = "memory over a long stream (full path, 50 instruments)"
INSTRUMENTS = 50


def sizes(quick: bool) -> tuple[int, int]:
    """(ticks per encoded burst, times it is sent)."""
    return (50_000, 4) if quick else (100_000, 50)


def parts(quick: bool) -> list[str]:
    return ["stream"]


def repeats(part: str, quick: bool) -> int | None:
    return None if quick else 3


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(part: str, quick: bool) -> dict:
    from . import clients
    burst, repeat = sizes(quick)
    total = burst * repeat
    samples: dict[int, float] = {}

    def watch(strategy):
        step = strategy.engine.conn.frames_received * 10 // total
        if step not in samples:
            samples[step] = rss_mb()

    with ServerProcess("stream", variant="l1", n=burst, instruments=INSTRUMENTS, repeat=repeat) as server, \
            tempfile.TemporaryDirectory(prefix="ibframe-bench-", dir=clients.tmpfs()) as state_dir:
        engine, strategy = clients.start_engine(server, "l1", state_dir, instruments=INSTRUMENTS, watch=watch)
        try:
            before = rss_mb()
            engine.on_dispatch(engine.conn.reqCurrentTime)          # the go signal
            finished = strategy.done.wait(1200)
            report = server.report()
            ok, detail = clients.check_ibframe(engine, strategy, report)
            end = engine.on_dispatch(rss_mb)
        finally:
            engine.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    half = samples.get(5, samples.get(4, end))
    rate = report["burst_frames"] / (strategy.ended - strategy.started) if strategy.ended > strategy.started else 0
    return {"values": {"rss_before_mb": before, "rss_half_mb": half, "rss_end_mb": end, "growth_mb": end - half,
                       "peak_mb": peak, "msgs_per_s": rate},
            "verified": finished and ok,
            "detail": f"{report['burst_frames']:,} ticks; RSS by tenth of the stream {sorted(samples.items())}; "
                      f"{detail}"}


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    stream = runs.get("stream", [])
    ok = all_verified(stream)
    burst, repeat = sizes(quick)
    n = f"{burst * repeat:,} ticks"
    return [Row("RSS before the stream (engine connected)", "MB", values(stream, "rss_before_mb"), ok, digits=1),
            Row("RSS halfway", "MB", values(stream, "rss_half_mb"), ok, digits=1),
            Row("RSS at the end", "MB", values(stream, "rss_end_mb"), ok, note=n, digits=1),
            Row("growth from halfway to the end", "MB", values(stream, "growth_mb"), ok, digits=1),
            Row("peak RSS (getrusage)", "MB", values(stream, "peak_mb"), ok, digits=1),
            Row("throughput during the stream", "msgs/s", values(stream, "msgs_per_s"), ok)]
