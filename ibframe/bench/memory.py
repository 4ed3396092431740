"""Case 5: memory over a long stream on 200 instruments — state and backlog stay bounded.

Owns: the part "stream": 200 instruments subscribed through ibframe's full path — 200 quotes, 20 of
them also a 10-row book, 20 a tick-by-tick ring (capacity 10,000), 20 keep-up-to-date 1-minute bars (a
day of history, 390 bars, loaded from the server's reqHistoricalData answer, then historicalDataUpdate
on the current bar) — and 10,000,000 messages (--quick: 200,000) from the burst server ("stream" mode,
variant "mixed": the books filled once, then one encoded 100,000-message body sent again and again: 70%
L1 ticks, 10% tick-by-tick, 10% book size updates, 10% bar updates; wire.mixed_stream). The
BurstReader strategy reads every update. RSS is sampled before subscribing (engine connected), after
subscribing (history loaded), on the dispatch thread every tenth of the stream, and at the end;
reported are those, the growth from halfway to the end, the peak RSS (getrusage), and MB per
instrument: (after subscribing − before) / 200 and (end − before) / 200.
Must never: report a run that lost a message.
"""
from __future__ import annotations

import os
import resource
import tempfile
import time

from . import Row, all_verified, values
from .server import ServerProcess

TITLE = "memory over a long stream (full path, 200 instruments: quotes, 20 books, 20 tick rings, 20 bars)"
INSTRUMENTS = 200
EXTRAS = 20


def sizes(quick: bool) -> tuple[int, int]:
    """(messages per encoded body, times it is sent)."""
    return (50_000, 4) if quick else (100_000, 100)


def parts(quick: bool) -> list[str]:
    return ["stream"]


def repeats(part: str, quick: bool) -> int | None:
    return None if quick else 3


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _history_loaded(engine, strategy, timeout: float = 60.0) -> bool:
    """Wait until every bar series holds its day of history (the subscriptions' answers are in)."""
    from .wire import HISTORY_BARS
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.on_dispatch(lambda: all(len(b) >= HISTORY_BARS for b in strategy.bar_series)):
            return True
        time.sleep(0.02)
    return False


def run(part: str, quick: bool) -> dict:
    from . import clients
    body, repeat = sizes(quick)
    total = body * repeat
    samples: dict[int, float] = {}

    def watch(strategy):
        step = strategy.engine.conn.frames_received * 10 // total
        if step not in samples:
            samples[step] = rss_mb()

    mix = {"quotes": INSTRUMENTS, "books": EXTRAS, "rings": EXTRAS, "bars": EXTRAS}
    with ServerProcess("stream", variant="mixed", n=body, mix=mix, repeat=repeat) as server, \
            tempfile.TemporaryDirectory(prefix="ibframe-bench-", dir=clients.tmpfs()) as state_dir:
        engine = clients.connect_engine(server, state_dir, throttle=False)      # 261 requests: no 35/s pacing
        try:
            before = engine.on_dispatch(rss_mb)
            strategy = clients.subscribe_reader(engine, "mixed", INSTRUMENTS, watch=watch)
            loaded = _history_loaded(engine, strategy)
            subscribed = engine.on_dispatch(rss_mb)
            engine.on_dispatch(engine.conn.reqCurrentTime)          # the go signal
            finished = strategy.done.wait(1200)
            report = server.report()
            ok, detail = clients.check_ibframe(engine, strategy, report)
            end = engine.on_dispatch(rss_mb)
        finally:
            engine.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    half = samples.get(5, samples.get(4, end))
    seconds = strategy.ended - report["started_at"]
    return {"values": {"rss_before_mb": before, "rss_subscribed_mb": subscribed, "rss_half_mb": half,
                       "rss_end_mb": end, "growth_mb": end - half, "peak_mb": peak,
                       "mb_per_instrument_subscribed": (subscribed - before) / INSTRUMENTS,
                       "mb_per_instrument_end": (end - before) / INSTRUMENTS,
                       "msgs_per_s": report["burst_frames"] / seconds if seconds > 0 else 0.0},
            "verified": finished and ok and loaded,
            "detail": f"{report['burst_frames']:,} messages; RSS by tenth of the stream {sorted(samples.items())}; "
                      f"history loaded: {loaded}; {detail}"}


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    stream = runs.get("stream", [])
    ok = all_verified(stream)
    body, repeat = sizes(quick)
    n = f"{body * repeat:,} messages"
    return [Row("RSS before subscribing (engine connected)", "MB", values(stream, "rss_before_mb"), ok, digits=1),
            Row("RSS after subscribing (200 quotes, 20 books, 20 rings, 20 bars)", "MB",
                values(stream, "rss_subscribed_mb"), ok, digits=1),
            Row("RSS halfway", "MB", values(stream, "rss_half_mb"), ok, digits=1),
            Row("RSS at the end", "MB", values(stream, "rss_end_mb"), ok, note=n, digits=1),
            Row("growth from halfway to the end", "MB", values(stream, "growth_mb"), ok, digits=1),
            Row("peak RSS (getrusage)", "MB", values(stream, "peak_mb"), ok, digits=1),
            Row("per instrument, subscribed: (after subscribing - before) / 200", "MB",
                values(stream, "mb_per_instrument_subscribed"), ok, digits=3),
            Row("per instrument, end: (end - before) / 200", "MB", values(stream, "mb_per_instrument_end"), ok,
                digits=3),
            Row("throughput during the stream", "msgs/s", values(stream, "msgs_per_s"), ok)]
