"""ib_async 2.1 as a peer in the benchmarks: the same server, the same stream, the same strategy work.

Owns: the ib_async legs of the throughput, latency and latency_load cases — connecting an `IB` to a
`ServerProcess` (clientId 1, `fetchFields=StartupFetchNONE`: its connect then asks only reqPositions,
which the server answers with positionEnd; its own request throttle off, `client.MaxRequests = 0`,
as ibframe runs without its pacing), subscribing through ib_async's public API, and checking that
nothing was lost.

What ib_async delivers, per message: its decoder applies every message to the Ticker at once, but it
tells user code only at the end of each socket read (`tcpDataProcessed`): one `ticker.updateEvent` per
ticker that changed in that read, then one `ib.pendingTickersEvent`. Between two events a Ticker's
`ticks` / `tickByTicks` / `domTicks` lists hold every tick of the read (none is dropped; a bid or ask
size tick equal to the size held is a no-op and not listed); bid/ask/last only hold the read's last
value. So the reader below does, on each update ib_async delivers, the same reads as ibframe's
BurstReader does on each message: bid/ask/midpoint/last/volume; the last tick-by-tick tick; the best
bid/ask and their mid from domBids/domAsks.

Timing is the rule of every client (clients.py): from the server's stamp just before the start
sentinel to the end sentinel's handling — here the `pendingTickersEvent` of the read that carried it,
so every update of that read was delivered first.
Must never: change ib_async or reach into its private fields (only its public API and documented
attributes: `connectionStats()`, `MaxRequests`, Ticker fields).
"""
from __future__ import annotations

import asyncio
import math
import time

from .clients import SENTINEL, final_quotes_match, plan


def _contract(i: int):
    from ib_async import Contract
    return Contract(conId=7000 + i, symbol=f"BENCH{i}", secType="STK", exchange="SMART", currency="USD")


def connect(port: int, timeout: float = 30.0):
    """An ib_async IB connected to the bench server, its request throttle off."""
    from ib_async import IB
    from ib_async.ib import StartupFetchNONE

    ib = IB()
    ib.client.MaxRequests = 0                       # documented: 0 turns the 45 requests/s throttle off
    ib.errors = []
    ib.errorEvent += lambda req_id, code, text, contract: ib.errors.append((req_id, code, text))
    ib.connect("127.0.0.1", port, clientId=1, timeout=timeout, fetchFields=StartupFetchNONE)
    return ib


def frames_received(ib) -> int:
    """Frames ib_async has read (its count includes the handshake answer, which the server does not count)."""
    return ib.client.connectionStats().numMsgRecv - 1


def _loop():
    from ib_async import util
    return util.getLoop()


def _valid(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


class TickerReader:
    """The BurstReader's work on ib_async's updates: counts what each update carried and reads the state."""

    def __init__(self):
        self.updates = self.ticks = self.dom_ticks = 0
        self.seen = None

    def on_quote(self, t) -> None:
        self.updates += 1
        self.seen = (t.bid, t.ask, t.midpoint(), t.last, t.volume)

    def on_ticks(self, t) -> None:
        self.updates += 1
        self.ticks += len(t.tickByTicks)
        self.seen = t.tickByTicks[-1] if t.tickByTicks else None

    def on_depth(self, t) -> None:
        self.updates += 1
        self.dom_ticks += len(t.domTicks)
        bid = t.domBids[0].price if t.domBids else None
        ask = t.domAsks[0].price if t.domAsks else None
        self.seen = (bid, ask, (bid + ask) / 2 if bid is not None and ask is not None else None)


def _subscribe(ib, subs: list[tuple[str, str, str]], reader: TickerReader) -> dict:
    """Each subscription of a plan through ib_async's API, its updateEvent wired to the reader; name -> Ticker."""
    tickers = {}
    for i, (name, what, option) in enumerate(subs):
        c = _contract(i)
        if what == "quote":
            t = ib.reqMktData(c, "", False, False)
            if name != SENTINEL:
                t.updateEvent += reader.on_quote
        elif what == "ticks":
            t = ib.reqTickByTickData(c, option, 0, False)
            t.updateEvent += reader.on_ticks
        else:
            t = ib.reqMktDepth(c, 10, True)
            t.updateEvent += reader.on_depth
        tickers[name] = t
    return tickers


def run_burst(server, variant: str, timeout: float = 300.0) -> dict:
    """One burst through ib_async; seconds from the server's start stamp to the end sentinel, and the check."""
    ib = connect(server.port)
    try:
        reader = TickerReader()
        subs = plan(variant)
        tickers = _subscribe(ib, subs, reader)
        sentinel = tickers[SENTINEL]
        done = _loop().create_future()
        box = {"ended": 0.0}

        def on_pending(changed) -> None:
            if sentinel in changed and sentinel.bid == 2.0 and not done.done():
                box["ended"] = time.perf_counter()
                done.set_result(True)
        ib.pendingTickersEvent += on_pending
        ib.client.reqCurrentTime()                          # the go signal
        finished = _run_until(ib, done, timeout)
        report = server.report()
        ok, detail = _check_burst(ib, variant, tickers, subs, reader, report)
    finally:
        ib.disconnect()
    return {"seconds": box["ended"] - report["started_at"], "messages": report["burst_frames"],
            "updates": reader.updates, "verified": finished and ok, "detail": detail}


def _run_until(ib, future, timeout: float) -> bool:
    try:
        ib.run(future, timeout=timeout)
        return True
    except (asyncio.TimeoutError, TimeoutError):
        return False


def _check_burst(ib, variant, tickers, subs, reader, report) -> tuple[bool, str]:
    counts = report["counts"]
    got = {"frames": frames_received(ib), "errors": ib.errors[:3]}
    want = {"frames": report["frames"], "errors": []}
    if variant == "tbt":
        got["tick_by_ticks"], want["tick_by_ticks"] = reader.ticks, counts["tick_by_tick"]
    elif variant == "depth":
        got["dom_ticks"], want["dom_ticks"] = reader.dom_ticks, counts["depth"]
    ok, detail = got == want, f"got {got}, expected {want}; {reader.updates:,} updates delivered"
    if variant == "l1":
        quotes = [(tickers[name].bid, tickers[name].ask) for name, what, _ in subs if name != SENTINEL]
        same, said = final_quotes_match(quotes, report["final"])
        ok, detail = ok and same, f"{detail}; {said}"
    return ok, detail


def run_pingpong(server, total: int, background: int = 0, timeout: float = 600.0) -> tuple[dict, int, str]:
    """Tick → order through ib_async: on each new bid of the first line, `ib.placeOrder(contract,
    MarketOrder("BUY", 100))`; with `background` lines more, each update of those is read like a quote.
    Returns the server's report, the orders placed, and what the check found (frames, final quotes)."""
    from ib_async import MarketOrder

    ib = connect(server.port)
    try:
        reader = TickerReader()
        ping_contract = _contract(0)
        ping = ib.reqMktData(ping_contract, "", False, False)
        lines = [ib.reqMktData(_contract(1 + i), "", False, False) for i in range(background)]
        for t in lines:
            t.updateEvent += reader.on_quote
        done = _loop().create_future()
        state = {"last": None, "placed": 0}

        def on_ping(t) -> None:
            bid = t.bid
            if _valid(bid) and bid > 0 and bid != state["last"]:
                state["last"] = bid
                ib.placeOrder(ping_contract, MarketOrder("BUY", 100))
                state["placed"] += 1
                if state["placed"] == total and not done.done():
                    done.set_result(True)
        ping.updateEvent += on_ping
        ib.client.reqCurrentTime()                          # the go signal
        _run_until(ib, done, timeout)
        report = server.report()
        deadline = time.monotonic() + 30                    # the frames after the last order (its orderStatus)
        while frames_received(ib) < report.get("frames", 0) and time.monotonic() < deadline:
            ib.sleep(0.01)
        ok = frames_received(ib) == report.get("frames") and not ib.errors
        detail = f"frames {frames_received(ib):,} of {report.get('frames', 0):,}, errors {ib.errors[:3]}"
        if background:
            same, said = final_quotes_match([(t.bid, t.ask) for t in lines], report.get("final", {}))
            ok, detail = ok and same, f"{detail}; {said}"
    finally:
        ib.disconnect()
    return report, state["placed"], ("ok: " if ok else "MISMATCH: ") + detail
