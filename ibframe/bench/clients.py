"""The two clients the burst server is measured with: the stock ibapi client and ibframe's full path.

Owns: connecting each client to a `ServerProcess`, making the subscriptions a burst needs (the
first market-data line is the sentinel), sending the go signal, timing from the start sentinel to
the end sentinel, and checking that every message of the burst arrived.
  * stock:   EClient + EReader + run() on its own thread, with a wrapper that only counts;
  * ibframe: Engine (connection → dispatch thread → ibapi Decoder → Router → Quote/TickRing/OrderBook)
             and a Strategy whose on_quote/on_tick/on_depth read the state on every update.
Must never: time anything but the burst itself, or report a rate for a run that lost messages.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time

from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.wrapper import EWrapper

from . import wire

SENTINEL = "SENTINEL"


def contract(i: int) -> Contract:
    """A distinct made-up stock per slot (the engine shares one market-data line per conId)."""
    c = Contract()
    c.conId, c.symbol, c.secType, c.exchange, c.currency = 7000 + i, f"BENCH{i}", "STK", "SMART", "USD"
    return c


def plan(variant: str, instruments: int = 8) -> list[tuple[str, str, str]]:
    """The subscriptions a burst variant needs, in order: (name, what, option)."""
    subs = [(SENTINEL, "quote", "")]
    if variant == "l1":
        subs += [(f"Q{i}", "quote", "") for i in range(instruments)]
    elif variant == "tbt":
        subs += [(f"T{i}", "ticks", kind) for i, kind in enumerate(wire.TBT_SUBSCRIPTIONS)]
    elif variant == "depth":
        subs += [(f"D{i}", "depth", "") for i in range(4)]
    return subs


def expected_callbacks(counts: dict) -> dict:
    """What ibapi's Decoder makes of a burst's messages (a bid/ask/last tickPrice also calls tickSize)."""
    return {"tickPrice": counts.get("tick_price", 0),
            "tickSize": counts.get("tick_size", 0) + counts.get("size_after_price", 0),
            "tickByTick": counts.get("tick_by_tick", 0), "depth": counts.get("depth", 0)}


# --- the stock ibapi client ----------------------------------------------------------------------------

class CountingWrapper(EWrapper):
    """Counts the burst's callbacks and times the sentinels; nothing else."""

    def __init__(self, sentinel: int):
        super().__init__()
        self.sentinel = sentinel
        self.counts = {"tickPrice": 0, "tickSize": 0, "tickByTick": 0, "depth": 0}
        self.started = self.ended = 0.0
        self.ready, self.done = threading.Event(), threading.Event()
        self.errors: list = []

    def nextValidId(self, orderId):
        self.ready.set()

    def managedAccounts(self, accountsList):
        pass

    def error(self, reqId, errorTime, errorCode, errorString, advancedOrderRejectJson=""):
        self.errors.append((reqId, errorCode, errorString))

    def tickPrice(self, reqId, tickType, price, attrib):
        if reqId == self.sentinel:
            if price == 1.0:
                self.started = time.perf_counter()
            else:
                self.ended = time.perf_counter()
                self.done.set()
        else:
            self.counts["tickPrice"] += 1

    def tickSize(self, reqId, tickType, size):
        if reqId != self.sentinel:
            self.counts["tickSize"] += 1

    def tickByTickBidAsk(self, reqId, time, bidPrice, askPrice, bidSize, askSize, tickAttribBidAsk):
        self.counts["tickByTick"] += 1

    def tickByTickAllLast(self, reqId, tickType, time, price, size, tickAttribLast, exchange, specialConditions):
        self.counts["tickByTick"] += 1

    def tickByTickMidPoint(self, reqId, time, midPoint):
        self.counts["tickByTick"] += 1

    def updateMktDepthL2(self, reqId, position, marketMaker, operation, side, price, size, isSmartDepth):
        self.counts["depth"] += 1


def run_stock(server, variant: str, timeout: float = 300.0) -> dict:
    """The stock client through one burst; returns seconds from sentinel to sentinel and the check."""
    wrapper = CountingWrapper(sentinel=1)
    app = EClient(wrapper)
    app.connect("127.0.0.1", server.port, 1)
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    if not wrapper.ready.wait(30):
        raise RuntimeError("stock client: no nextValidId")
    for req_id, (name, what, option) in enumerate(plan(variant), start=1):
        c = contract(req_id)
        if what == "quote":
            app.reqMktData(req_id, c, "", False, False, [])
        elif what == "ticks":
            app.reqTickByTickData(req_id, c, option, 0, False)
        else:
            app.reqMktDepth(req_id, c, 10, True, [])
    app.reqCurrentTime()                                  # the go signal
    finished = wrapper.done.wait(timeout)
    report = server.report()
    app.disconnect()
    thread.join(10)
    want = expected_callbacks(report["counts"])
    ok = finished and wrapper.counts == want and not wrapper.errors
    return {"seconds": wrapper.ended - wrapper.started, "messages": report["burst_frames"], "verified": ok,
            "detail": f"callbacks {wrapper.counts}, expected {want}, errors {wrapper.errors[:3]}"}


# --- ibframe's full path ---------------------------------------------------------------------------------

def burst_strategy_class():
    """Built on demand so importing this module does not pull the engine in (the stock leg needs none of it)."""
    from ..strategy import Strategy

    class BurstReader(Strategy):
        """Subscribes what the burst needs and reads the state on every update, as a strategy would."""

        def on_start(self):
            self.done = threading.Event()
            self.started = self.ended = 0.0
            self.quotes = self.tick_updates = self.depth_updates = 0
            self.seen = None
            self.quote_objects, self.rings, self.books = [], [], []
            self.half_rss: float | None = None
            for name, what, option in self.params["plan"]:
                if what == "quote":
                    q = self.quote(name)
                    if name != SENTINEL:
                        self.quote_objects.append(q)
                elif what == "ticks":
                    self.rings.append(self.ticks(name, option))
                else:
                    self.books.append(self.depth(name, rows=10))

        def on_quote(self, instrument, quote):
            if instrument == SENTINEL:
                if quote.bid == 1.0:
                    self.started = time.perf_counter()
                else:
                    self.ended = time.perf_counter()
                    self.done.set()
                return
            self.quotes += 1
            self.seen = (quote.bid, quote.ask, quote.mid, quote.last, quote.volume)
            watch = self.params.get("watch")
            if watch is not None:
                watch(self)

        def on_tick(self, instrument, ticks):
            self.tick_updates += 1
            self.seen = ticks.last()

        def on_depth(self, instrument, book):
            self.depth_updates += 1
            self.seen = (book.best_bid, book.best_ask, book.mid)

    return BurstReader


def tmpfs() -> str | None:
    """/dev/shm when the machine has it (order-id files are fsynced there at memory speed)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


def start_engine(server, variant: str, state_dir: str, instruments: int = 8, watch=None):
    """An Engine connected to `server` with a BurstReader subscribed; returns (engine, strategy)."""
    from ..engine import Engine

    engine = Engine("127.0.0.1", server.port, client_id=1, state_dir=state_dir,
                    pacing=False).start()      # the bench server has no IB limits (4 tick-by-tick lines)
    subs = plan(variant, instruments)
    contracts = {name: contract(i) for i, (name, _, _) in enumerate(subs)}
    strategy = burst_strategy_class()(engine, "bench", {"plan": subs, "watch": watch}, contracts)
    engine.on_dispatch(strategy._start)
    return engine, strategy


def check_ibframe(engine, strategy, report: dict) -> tuple[bool, str]:
    """On the dispatch thread: every frame decoded, every update in its state object, nothing unknown."""
    def look():
        want = expected_callbacks(report["counts"])
        got = {"frames": engine.conn.frames_received, "bad": engine.conn.bad_frames,
               "unknown": engine.router.unknown_ids,
               "quote_updates": sum(q.updates for q in strategy.quote_objects),
               "tick_updates": strategy.tick_updates,
               "book_updates": sum(b.updates for b in strategy.books),
               "depth_updates": strategy.depth_updates,
               "book_ignored": sum(b.ignored + b.uncrossed for b in strategy.books)}
        expect = {"frames": report["frames"], "bad": 0, "unknown": 0,
                  "quote_updates": want["tickPrice"] + want["tickSize"],
                  "tick_updates": want["tickByTick"], "book_updates": want["depth"],
                  "depth_updates": want["depth"], "book_ignored": 0}
        return got == expect, f"got {got}, expected {expect}"
    return engine.on_dispatch(look)


def run_ibframe(server, variant: str, timeout: float = 300.0) -> dict:
    with tempfile.TemporaryDirectory(prefix="ibframe-bench-", dir=tmpfs()) as state_dir:
        engine, strategy = start_engine(server, variant, state_dir)
        try:
            engine.on_dispatch(engine.conn.reqCurrentTime)          # the go signal
            finished = strategy.done.wait(timeout)
            report = server.report()
            ok, detail = check_ibframe(engine, strategy, report)
        finally:
            engine.stop()
    return {"seconds": strategy.ended - strategy.started, "messages": report["burst_frames"],
            "verified": finished and ok, "detail": detail}
