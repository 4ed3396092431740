"""Case 2: tick-to-order latency through the full path, next to a bare-socket echo (the floor).

Owns: the parts
  * echo      — the server sends a tick frame, a plain socket loop sends it straight back;
  * ibframe   — the server sends a tick, the Engine decodes and routes it, a Strategy's on_quote
                places a market order, the server timestamps the placeOrder's arrival; order ids
                are persisted (fsync) under a state_dir on tmpfs (/dev/shm);
  * ibframe-disk — the same with the state_dir on the temp directory's disk (fewer rounds): what
                the order-id fsync costs on a real filesystem;
  * order-ids — OrderIds.take() alone (write, fsync, rename) on tmpfs and on disk.
Round trips are timed by the server with one monotonic clock (send of the tick → arrival of the
whole reply frame), after a warm-up. The engine runs without the paced outgoing writer (35 msg/s after a burst of 5) (it
would hold the 46th order of every second back for up to a second, which is pacing, not latency).
Must never: count a round whose reply was not the order that tick caused.
"""
from __future__ import annotations

import os
import socket
import statistics
import tempfile
import threading
import time

from . import Row, all_verified, values
from .server import ServerProcess

TITLE = "tick-to-order latency (loopback round trip, server-timed)"
WARMUP = 200


def parts(quick: bool) -> list[str]:
    return ["echo", "ibframe", "ibframe-disk", "order-ids"]


def rounds(part: str, quick: bool) -> int:
    if part == "ibframe-disk":
        return 200 if quick else 2_000
    return 1_000 if quick else 10_000


def run(part: str, quick: bool) -> dict:
    if part == "order-ids":
        return _order_ids(quick)
    n = rounds(part, quick)
    if part == "echo":
        with ServerProcess("echo", rounds=n, warmup=WARMUP) as server:
            thread = threading.Thread(target=_echo_client, args=(server.port,), daemon=True)
            thread.start()
            report = server.report()
            thread.join(10)
        ok = "error" not in report and len(report["round_trip_ns"]) == n
        return _summary(report, ok, report.get("error", f"{n} echoes"))
    from .clients import tmpfs
    with ServerProcess("pingpong", rounds=n, warmup=WARMUP) as server, \
            tempfile.TemporaryDirectory(prefix="ibframe-bench-", dir=tmpfs() if part == "ibframe" else None) as where:
        report, placed = _ibframe_rounds(server, WARMUP + n, where)
        fs = _fs_type(where)
    ok = "error" not in report and len(report["round_trip_ns"]) == n and placed == WARMUP + n
    return _summary(report, ok, report.get("error", f"{placed} orders placed for {WARMUP + n} ticks, "
                                                    f"order ids in {where} ({fs})"))


def _echo_client(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = sock.recv(65536)
            if not data:
                return
            sock.sendall(data)


def _ibframe_rounds(server: ServerProcess, total: int, state_dir: str) -> tuple[dict, int]:
    from . import clients
    from ..strategy import Strategy

    done = threading.Event()

    class TickToOrder(Strategy):
        """Buys 100 at market on every new bid."""

        def on_start(self):
            self.last_bid, self.placed = None, 0
            self.quote(clients.SENTINEL)

        def on_quote(self, instrument, quote):
            if quote.bid != self.last_bid:
                self.last_bid = quote.bid
                self.buy(instrument, 100)
                self.placed += 1
                if self.placed == total:
                    done.set()

    from ..engine import Engine
    engine = Engine("127.0.0.1", server.port, client_id=1, state_dir=state_dir, throttle=False,
                    pacing=False).start()
    strategy = TickToOrder(engine, "latency", {}, {clients.SENTINEL: clients.contract(0)})
    try:
        engine.on_dispatch(strategy._start)
        engine.on_dispatch(engine.conn.reqCurrentTime)          # the go signal
        done.wait(600)
        report = server.report()
    finally:
        engine.stop()
    return report, strategy.placed


def _summary(report: dict, ok: bool, detail: str) -> dict:
    times = sorted(t / 1000.0 for t in report.get("round_trip_ns", []))
    if not times:
        return {"values": {}, "verified": False, "detail": detail}
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    return {"values": {"p50_us": statistics.median(times), "p99_us": p99, "max_us": times[-1]},
            "verified": ok, "detail": detail}


def _order_ids(quick: bool) -> dict:
    """OrderIds.take() on tmpfs and on the temp dir's disk: p50, and p99 after the first — the calls that waited for
    a write + fsync + rename of the id file (the next block is reserved ahead in the background, so after the
    first order only a disk slower than half a block of orders makes take() wait)."""
    from ..ids import OrderIds
    from .clients import tmpfs
    out = {}
    for where, base, count in (("tmpfs", tmpfs(), 200 if quick else 1000), ("disk", None, 200 if quick else 1000)):
        with tempfile.TemporaryDirectory(prefix="ibframe-bench-ids-", dir=base) as folder:
            ids = OrderIds(os.path.join(folder, "order-ids.txt"))
            ids.seed(1)
            times = []
            for _ in range(count):
                started = time.perf_counter_ns()
                ids.take()
                times.append((time.perf_counter_ns() - started) / 1000.0)
                time.sleep(0.001)                      # orders 1 ms apart: the background writer's chance
            out[f"{where}_p50_us"] = statistics.median(times)
            rest = sorted(times[1:])                          # the first take() always writes: not counted
            out[f"{where}_p99_us"] = rest[int(0.99 * (len(rest) - 1))]
            out[f"{where}_sync_writes"] = ids.sync_persists
            ids.close()
            out[f"{where}_fs"] = _fs_type(folder)
    return {"values": {k: v for k, v in out.items() if not k.endswith("_fs")}, "verified": True,
            "detail": f"tmpfs: {out['tmpfs_fs']}, disk: {out['disk_fs']}"}


def _fs_type(path: str) -> str:
    """The file system type of the mount holding `path` (from /proc/mounts)."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 2 and path.startswith(parts[1]) and len(parts[1]) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    echo, ours, disk, ids = (runs.get(p, []) for p in ("echo", "ibframe", "ibframe-disk", "order-ids"))
    out = []
    for label, part_runs, n in (("bare-socket echo (floor)", echo, rounds("echo", quick)),
                                ("ibframe tick -> on_quote -> placeOrder, ids on tmpfs", ours,
                                 rounds("ibframe", quick)),
                                ("same, order ids on disk", disk, rounds("ibframe-disk", quick))):
        for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("max_us", "max")):
            out.append(Row(f"{label}: {name}", "us", values(part_runs, key), all_verified(part_runs),
                           note=f"{n:,} round trips" if key == "p50_us" else "", digits=1))
    above = [b - a for a, b in zip(values(echo, "p50_us"), values(ours, "p50_us"))]
    out.append(Row("ibframe p50 above the echo floor", "us", above, all_verified(echo) and all_verified(ours),
                   digits=1))
    detail = ids[0].get("detail", "") if ids else ""
    for where in ("tmpfs", "disk"):
        note = "" if where == "tmpfs" else f"; {detail}"
        out.append(Row(f"OrderIds.take() (a reservation per 100 ids, made ahead), {where}: p50", "us",
                       values(ids, f"{where}_p50_us"), all_verified(ids), note=f"p50{note}", digits=1))
        out.append(Row(f"OrderIds.take(), {where}: p99 after the first", "us", values(ids, f"{where}_p99_us"),
                       all_verified(ids), note="takes 1 ms apart; an fsync only if the reservation ahead is late",
                       digits=1))
    return out
