"""Case 2: tick-to-order latency, ibframe (risk rules on) and ib_async, next to a bare-socket echo (the floor).

Owns: the parts
  * echo      — the server sends a tick frame, a plain socket loop sends it straight back;
  * ibframe   — the server sends a tick, the Engine decodes and routes it, a Strategy's on_quote
                places a market order through the risk layer (`RiskLayer.install` with the default rules,
                as in risk_gate.py), the server timestamps the placeOrder's arrival; order ids are
                persisted under a state_dir on tmpfs (/dev/shm);
  * ib_async  — the same tick; a ticker.updateEvent handler calls `ib.placeOrder(contract,
                MarketOrder("BUY", 100))` on each new bid (peer_ib_async.py);
  * ibframe-gc-default — ibframe with Python's own collector settings (`gc: default`); every other
                ibframe part runs as `python -m ibframe.run` does by default (`gc: freeze`: a collection and
                gc.freeze() after start-up, young collections every 20,000 allocations; gc_policy.py);
  * ibframe-disk — ibframe with the state_dir on the temp directory's disk (fewer rounds);
  * order-ids — OrderIds.take() alone (write, fsync, rename) on tmpfs and on disk.
Rounds are 1 ms apart as in issue 13's harness: after a placeOrder arrives the server answers
orderStatus Cancelled (the order stops working) and sleeps 1 ms before the next tick; the echo
sleeps 1 ms between rounds too. Round trips are timed by the server with one monotonic clock (send
of the tick → arrival of the whole placeOrder frame), after 200 warm-up rounds. "Above the floor" is,
per repeat, the client's p50 (or p99) minus the echo's p50 of the same repeat.

Risk rules on: every rule of `standard_rules` and the stale-data rule run on every order. Three limits
are raised so that an order every millisecond passes (the defaults would refuse it, which is their
job): max_orders_per_second 5,000 and per minute 1,000,000, and the duplicate window 0.5 ms (the same
100-share market buy 1 ms later is not a duplicate). The PDT guard and margin monitor need an account
feed the bench server lacks: off. The engine runs without the paced outgoing writer (35 msg/s after a
burst of 5, which would hold the 46th order of every second back: pacing, not latency); ib_async's own
45 requests/s throttle is off likewise.
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

TITLE = "tick-to-order latency (loopback round trip, server-timed, rounds 1 ms apart)"
WARMUP = 200
GAP = 0.001
RISK = {"pdt": {"enabled": False}, "margin": {"enabled": False}, "max_orders_per_second": 5000,
        "max_orders_per_minute": 1_000_000, "duplicate_window": 0.0005}


def parts(quick: bool) -> list[str]:
    return ["echo", "ibframe", "ib_async", "ibframe-gc-default", "ibframe-disk", "order-ids"]


def rounds(part: str, quick: bool) -> int:
    if part == "ibframe-disk":
        return 200 if quick else 2_000
    return 500 if quick else 5_000


def run(part: str, quick: bool) -> dict:
    if part == "order-ids":
        return _order_ids(quick)
    n = rounds(part, quick)
    if part == "echo":
        with ServerProcess("echo", rounds=n, warmup=WARMUP, gap=GAP) as server:
            thread = threading.Thread(target=_echo_client, args=(server.port,), daemon=True)
            thread.start()
            report = server.report()
            thread.join(10)
        ok = "error" not in report and len(report["round_trip_ns"]) == n
        return summary(report, ok, report.get("error", f"{n} echoes"))
    if part == "ib_async":
        from .peer_ib_async import run_pingpong
        with ServerProcess("pingpong", rounds=n, warmup=WARMUP, gap=GAP) as server:
            report, placed, check = run_pingpong(server, WARMUP + n)
        return judged(report, n, placed, WARMUP + n, check, f"{placed} orders placed for {WARMUP + n} ticks; {check}")
    from .clients import tmpfs
    on_disk = part == "ibframe-disk"
    with ServerProcess("pingpong", rounds=n, warmup=WARMUP, gap=GAP) as server, \
            tempfile.TemporaryDirectory(prefix="ibframe-bench-", dir=None if on_disk else tmpfs()) as where:
        report, placed, check = ibframe_rounds(server, WARMUP + n, where,
                                               gc_policy="default" if part == "ibframe-gc-default" else "freeze")
        fs = _fs_type(where)
    return judged(report, n, placed, WARMUP + n, check,
                  f"{placed} orders placed for {WARMUP + n} ticks, order ids in {where} ({fs}); {check}",
                  "full_collections")


def judged(report: dict, n: int, placed: int, pings: int, check: str, detail: str, *carried: str) -> dict:
    """summary() of a ping-pong part, verified only when all `n` rounds were timed, each of the `pings` got its
    order and the client's check said ok; the report's `carried` keys are added to the values."""
    ok = "error" not in report and len(report.get("round_trip_ns", [])) == n and placed == pings
    out = summary(report, ok and check.startswith("ok"), report.get("error", detail))
    for key in carried:
        if key in report:
            out["values"][key] = report[key]
    return out


def _echo_client(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = sock.recv(65536)
            if not data:
                return
            sock.sendall(data)


def ibframe_rounds(server: ServerProcess, total: int, state_dir: str, background: int = 0,
                   gc_policy: str = "freeze") -> tuple[dict, int, str]:
    """Tick → on_quote → buy 100 at market through the risk layer, `total` times; with `background` more
    quote lines, each update of those is read (bid/ask/mid/last/volume). The collector is set as a run sets
    it (`gc_policy`, applied after start-up). Returns the server's report (plus the full collections made
    during the rounds), the orders placed, and what the check found ("ok: ..." when every frame arrived and
    nothing was refused)."""
    from . import clients
    from .. import gc_policy as collector
    from ..engine import Engine
    from ..risk.config import RiskConfig
    from ..risk.layer import RiskLayer
    from ..strategy import Strategy

    done = threading.Event()
    names = [f"B{i}" for i in range(background)]

    class TickToOrder(Strategy):
        """Buys 100 at market on every new bid of the ping line; reads the background quotes."""

        def on_start(self):
            self.last_bid, self.placed, self.errors = None, 0, []
            self.ping = self.quote(clients.SENTINEL)
            self.lines = [self.quote(name) for name in names]

        def on_quote(self, instrument, quote):
            if instrument != clients.SENTINEL:
                self.seen = (quote.bid, quote.ask, quote.mid, quote.last, quote.volume)
                return
            bid = quote.bid
            if bid is not None and bid > 0 and bid != self.last_bid:
                self.last_bid = bid
                self.buy(instrument, 100)
                self.placed += 1
                if self.placed == total:
                    done.set()

        def on_error(self, error):
            self.errors.append(str(error))
            if len(self.errors) == 1 and "risk" in str(error).lower():
                done.set()                                  # a refused order never reaches the server: stop

    engine = Engine("127.0.0.1", server.port, client_id=1, state_dir=state_dir, throttle=False,
                    pacing=False).start()
    contracts = {clients.SENTINEL: clients.contract(0)} | {n: clients.contract(1 + i) for i, n in enumerate(names)}
    strategy = TickToOrder(engine, "latency", {}, contracts)
    try:
        engine.on_dispatch(RiskLayer.install, engine, RiskConfig.from_mapping(RISK), [strategy])
        engine.on_dispatch(strategy._start)
        before = collector.settle(gc_policy)
        engine.on_dispatch(engine.conn.reqCurrentTime)          # the go signal
        done.wait(60 + total * 0.02)
        full = collector.stats().collections[2] - before.collections[2]
        report = server.report() if not strategy.errors else {"error": f"errors: {strategy.errors[:2]}"}
        report["full_collections"] = float(full)
        check = _check(engine, strategy, report)
    finally:
        collector.release()
        engine.stop()
    return report, strategy.placed, check


def _check(engine, strategy, report: dict) -> str:
    """Every frame the server sent arrived (waiting for the last orderStatus), and the background's last quotes."""
    want = report.get("frames", -1)
    deadline = time.monotonic() + 30
    while engine.on_dispatch(lambda: engine.conn.frames_received) < want and time.monotonic() < deadline:
        time.sleep(0.01)

    def look() -> tuple[bool, str]:
        got = engine.conn.frames_received
        ok = got == want and not strategy.errors and engine.conn.bad_frames == 0
        detail = (f"frames {got:,} of {want:,}, {len(engine.orders.gate.rules)} risk rules on, "
                  f"errors {strategy.errors[:2]}")
        if report.get("final"):
            from .clients import final_quotes_match
            same, said = final_quotes_match([(q.bid, q.ask) for q in strategy.lines], report["final"])
            ok, detail = ok and same, f"{detail}; {said}"
        return ok, detail
    ok, detail = engine.on_dispatch(look)
    return ("ok: " if ok else "MISMATCH: ") + detail


def summary(report: dict, ok: bool, detail: str) -> dict:
    """p50 / p99 / max of the round trips in µs."""
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


def above_floor(floor_runs: list[dict], client_runs: list[dict], key: str) -> list[float]:
    """Per repeat: the client's `key` minus the echo's p50 of the same repeat (runs paired in order)."""
    return [c - f for f, c in zip(values(floor_runs, "p50_us"), values(client_runs, key))]


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    echo, ours, peer, disk, ids = (runs.get(p, []) for p in ("echo", "ibframe", "ib_async", "ibframe-disk",
                                                             "order-ids"))
    out = []
    for label, part_runs, n in (("bare-socket echo (floor)", echo, rounds("echo", quick)),
                                ("ibframe tick -> on_quote -> risk -> placeOrder, ids on tmpfs", ours,
                                 rounds("ibframe", quick)),
                                ("ib_async tick -> updateEvent -> placeOrder", peer, rounds("ib_async", quick))):
        for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("max_us", "max")):
            out.append(Row(f"{label}: {name}", "us", values(part_runs, key), all_verified(part_runs),
                           note=f"{n:,} round trips, 1 ms apart" if key == "p50_us" else "", digits=1))
    both = all_verified(echo)
    above = {}
    for who, part_runs in (("ibframe", ours), ("ib_async", peer)):
        for key, name in (("p50_us", "p50"), ("p99_us", "p99")):
            above[who, name] = above_floor(echo, part_runs, key)
            out.append(Row(f"{who} {name} above the echo floor", "us", above[who, name],
                           both and all_verified(part_runs), note="client minus echo p50, same repeat", digits=1))
    ratio = [a / b for a, b in zip(above["ibframe", "p50"], above["ib_async", "p50"]) if b > 0]
    out.append(Row("ratio ibframe / ib_async, p50 above the floor", "x", ratio,
                   both and all_verified(ours) and all_verified(peer), note="below 1: ibframe reacts faster",
                   digits=2))
    gc_default = runs.get("ibframe-gc-default", [])
    for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("max_us", "max")):
        out.append(Row(f"ibframe with gc: default (Python's collector as it comes): {name}", "us",
                       values(gc_default, key), all_verified(gc_default), digits=1,
                       note="the rows above run with gc: freeze, as python -m ibframe.run does" if name == "p50" else ""))
    for label, part_runs in (("gc: freeze", ours), ("gc: default", gc_default)):
        out.append(Row(f"ibframe full collections during the rounds, {label}", "n",
                       values(part_runs, "full_collections"), all_verified(part_runs), digits=1))
    for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("max_us", "max")):
        out.append(Row(f"ibframe, order ids on disk: {name}", "us", values(disk, key), all_verified(disk),
                       note=f"{rounds('ibframe-disk', quick):,} round trips" if key == "p50_us" else "", digits=1))
    detail = ids[0].get("detail", "") if ids else ""
    for where in ("tmpfs", "disk"):
        note = "" if where == "tmpfs" else f"; {detail}"
        out.append(Row(f"OrderIds.take() (a reservation per 100 ids, made ahead), {where}: p50", "us",
                       values(ids, f"{where}_p50_us"), all_verified(ids), note=f"p50{note}", digits=1))
        out.append(Row(f"OrderIds.take(), {where}: p99 after the first", "us", values(ids, f"{where}_p99_us"),
                       all_verified(ids), note="takes 1 ms apart; an fsync only if the reservation ahead is late",
                       digits=1))
    return out
