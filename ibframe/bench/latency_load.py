"""Case: tick-to-order latency under load — one line pinged while 50 others stream at 50,000 msgs/s
(10,000 with --quick).

Owns: the parts "ibframe" (risk rules on, as in latency.py) and "ib_async". The server ("load" mode,
server.py) streams an L1 background over 50 instruments at a combined 50,000 msgs/s, sent as chunks of
50 frames every millisecond on a fixed schedule, and interleaves the ping-pong on a 51st instrument: a
new bid, the placeOrder it causes timed on arrival, orderStatus Cancelled back, the next ping 1 ms
later (at whatever point of the chunk schedule that falls). The client reads every background update
as a strategy would (ibframe: on_quote per top change; ib_async: an updateEvent per ticker per socket
read) and places the order on the ping line's new bid. Reported: round-trip p50 / p99 / max, raw (no
floor subtracted), and the background rate the server actually achieved. A run verifies that every
frame arrived (the background too), each ping got its order, and each background line's last
bid/ask is the last one sent.
Must never: count a round whose reply was not the order that ping caused, or a run that lost frames.
"""
from __future__ import annotations

import tempfile

from . import Row, all_verified, values
from .latency import GAP, WARMUP, ibframe_rounds, judged
from .server import ServerProcess

TITLE = "tick-to-order latency under load (50 other instruments streaming)"
BACKGROUND_LINES = 50
RATE = 50_000
QUICK_RATE = 10_000     # --quick is the test suite's smoke run, on a machine busy with other tests: a load that a
CHUNK = 0.001           # contended client still follows (at 50,000 it may fall seconds behind: stale_data refuses)


def rate(quick: bool) -> int:
    return QUICK_RATE if quick else RATE


def parts(quick: bool) -> list[str]:
    return ["ibframe", "ib_async"]


def rounds(quick: bool) -> int:
    return 500 if quick else 5_000


def run(part: str, quick: bool) -> dict:
    n = rounds(quick)
    total = WARMUP + n
    with ServerProcess("load", rounds=n, warmup=WARMUP, gap=GAP, rate=rate(quick), chunk=CHUNK) as server:
        if part == "ib_async":
            from .peer_ib_async import run_pingpong
            report, placed, check = run_pingpong(server, total, background=BACKGROUND_LINES)
        else:
            from .clients import tmpfs
            with tempfile.TemporaryDirectory(prefix="ibframe-bench-", dir=tmpfs()) as where:
                report, placed, check = ibframe_rounds(server, total, where, background=BACKGROUND_LINES)
    return judged(report, n, placed, total, check, f"{placed} orders for {total} pings; "
                  f"{report.get('background_frames', 0):,} background frames; {check}", "background_rate")


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    ours, peer = runs.get("ibframe", []), runs.get("ib_async", [])
    out = []
    for label, part_runs in (("ibframe (risk rules on)", ours), ("ib_async", peer)):
        for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("max_us", "max")):
            out.append(Row(f"{label} tick -> order under load: {name}", "us", values(part_runs, key),
                           all_verified(part_runs), digits=1,
                           note=f"{rounds(quick):,} round trips, raw (no floor subtracted)" if name == "p50" else ""))
        out.append(Row(f"{label}: background rate achieved", "msgs/s", values(part_runs, "background_rate"),
                       all_verified(part_runs), note=f"target {rate(quick):,} over {BACKGROUND_LINES} instruments, "
                                                     f"{int(rate(quick) * CHUNK)} frames every {CHUNK * 1000:g} ms"))
    ratio = [a / b for a, b in zip(values(ours, "p50_us"), values(peer, "p50_us")) if b > 0]
    out.append(Row("ratio ibframe / ib_async, p50 under load", "x", ratio, all_verified(ours) and all_verified(peer),
                   note="below 1: ibframe reacts faster", digits=2))
    return out
