"""Two of the clients the burst server is measured with: the stock ibapi client and ibframe's full path
(the third, ib_async, is in peer_ib_async.py).

Owns: connecting each client to a `ServerProcess`, making the subscriptions a burst needs (the
first market-data line is the sentinel), sending the go signal, and checking that every message of
the burst arrived. Every client is timed the same way: from the server's stamp just before it sends
the start sentinel (`started_at`, time.perf_counter: CLOCK_MONOTONIC, one clock for all processes)
to the moment the client's own code handles the end sentinel.
  * stock:   EClient + EReader + run() on its own thread, with a wrapper that only counts; it delivers
             one callback per message (two for a tickPrice with a size: tickPrice, then tickSize);
  * ibframe: Engine (connection → dispatch thread → decoder → Router → Quote/TickRing/OrderBook/Bars)
             and a Strategy whose on_quote/on_tick/on_depth read the state: on_quote once per message
             that changed the top of the book (bid, ask, last or their sizes; a volume-only tick updates
             the Quote without calling it), on_tick and on_depth once per message; with `conflate` each
             line's hook runs once per pass of the dispatch queue instead (every update still applied).
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


def plan(variant: str, instruments: int = 8, extras: int = 20) -> list[tuple[str, str, str]]:
    """The subscriptions a burst variant needs, in order: (name, what, option). "mixed" (the memory case):
    a quote on each instrument, and on `extras` of them each a book, a tick-by-tick ring and bars."""
    subs = [(SENTINEL, "quote", "")]
    if variant == "l1":
        subs += [(f"Q{i}", "quote", "") for i in range(instruments)]
    elif variant == "tbt":
        subs += [(f"T{i}", "ticks", kind) for i, kind in enumerate(wire.TBT_SUBSCRIPTIONS)]
    elif variant == "depth":
        subs += [(f"D{i}", "depth", "") for i in range(4)]
    elif variant == "mixed":
        subs += [(f"Q{i}", "quote", "") for i in range(instruments)]
        subs += [(f"Q{i}", "depth", "") for i in range(extras)]
        subs += [(f"Q{extras + i}", "ticks", wire.TBT_KINDS[i % 3]) for i in range(extras)]
        subs += [(f"Q{2 * extras + i}", "bars", "") for i in range(extras)]
    return subs


def contracts_for(subs: list[tuple[str, str, str]]) -> dict[str, Contract]:
    """A distinct contract per distinct name (a name may carry a quote and a book)."""
    out: dict[str, Contract] = {}
    for name, _, _ in subs:
        if name not in out:
            out[name] = contract(len(out))
    return out


def final_quotes_match(quotes: list, final: dict) -> tuple[bool, str]:
    """Each slot's (bid, ask) at the end equals the last the server sent for it (`final`: {slot: [bid, ask]})."""
    wrong = [(slot, want, [quotes[int(slot)][0], quotes[int(slot)][1]]) for slot, want in final.items()
             if [quotes[int(slot)][0], quotes[int(slot)][1]] != want]
    return not wrong, f"{len(final)} final quotes, {len(wrong)} wrong {wrong[:3]}"


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
    return {"seconds": wrapper.ended - report["started_at"], "messages": report["burst_frames"], "verified": ok,
            "updates": sum(wrapper.counts.values()),
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
            self.quotes = self.tick_updates = self.depth_updates = self.bars_closed = 0
            self.seen = None
            self.quote_objects, self.rings, self.books, self.bar_series = [], [], [], []
            merge = bool(self.params.get("conflate"))       # the sentinel line is never conflated: it times the run
            for name, what, option in self.params["plan"]:
                if what == "quote":
                    q = self.quote(name, conflate=merge and name != SENTINEL)
                    if name != SENTINEL:
                        self.quote_objects.append(q)
                elif what == "ticks":
                    self.rings.append(self.ticks(name, option, conflate=merge))
                elif what == "bars":
                    self.bar_series.append(self.bars(name, "1 min", "1 D"))
                else:
                    self.books.append(self.depth(name, rows=10, conflate=merge))

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

        def on_bar(self, instrument, bars):
            self.bars_closed += 1

    return BurstReader


def tmpfs() -> str | None:
    """/dev/shm when the machine has it (order-id files are fsynced there at memory speed)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


def connect_engine(server, state_dir: str, **options):
    """An Engine connected to `server` (no pacing: the bench server has no IB limits, e.g. 4 tick-by-tick lines)."""
    from ..engine import Engine

    return Engine("127.0.0.1", server.port, client_id=1, state_dir=state_dir, pacing=False, **options).start()


def subscribe_reader(engine, variant: str, instruments: int = 8, watch=None, conflate: bool = False):
    """A BurstReader on `engine`, started (its subscriptions sent); returns it. `conflate`: every line but the
    sentinel is subscribed with conflate=True (one hook call per line per pass of the dispatch queue)."""
    subs = plan(variant, instruments)
    strategy = burst_strategy_class()(engine, "bench", {"plan": subs, "watch": watch, "conflate": conflate},
                                      contracts_for(subs))
    engine.on_dispatch(strategy._start)
    return strategy


def start_engine(server, variant: str, state_dir: str, instruments: int = 8, watch=None, conflate: bool = False):
    """An Engine connected to `server` with a BurstReader subscribed; returns (engine, strategy)."""
    engine = connect_engine(server, state_dir)
    return engine, subscribe_reader(engine, variant, instruments, watch, conflate)


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
        if strategy.params.get("conflate"):      # every update applied; hook calls + merges = the updates
            got["tick_updates"] += strategy.conflated if want["tickByTick"] else 0
            got["depth_updates"] += strategy.conflated if want["depth"] else 0
            got["merged"] = strategy.conflated > 0
            expect["merged"] = True
        if strategy.bar_series:             # a day of history + the bar the updates keep replacing, each valid
            got["bars"] = sorted({(len(b), b.ignored, b.rejected) for b in strategy.bar_series})
            expect["bars"] = [(wire.HISTORY_BARS + 1, 0, 0)]
        ok, detail = got == expect, f"got {got}, expected {expect}"
        if report.get("final") and variant_is_l1(strategy):
            same, said = final_quotes_match([(q.bid, q.ask) for q in strategy.quote_objects], report["final"])
            ok, detail = ok and same, f"{detail}; {said}"
        return ok, detail
    return engine.on_dispatch(look)


def variant_is_l1(strategy) -> bool:
    """Only quotes after the sentinel (l1 and the memory stream): the final bid/ask of each can be checked."""
    return bool(strategy.quote_objects)


def run_ibframe(server, variant: str, timeout: float = 300.0, conflate: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="ibframe-bench-", dir=tmpfs()) as state_dir:
        engine, strategy = start_engine(server, variant, state_dir, conflate=conflate)
        try:
            engine.on_dispatch(engine.conn.reqCurrentTime)          # the go signal
            finished = strategy.done.wait(timeout)
            report = server.report()
            ok, detail = check_ibframe(engine, strategy, report)
        finally:
            engine.stop()
    return {"seconds": strategy.ended - report["started_at"], "messages": report["burst_frames"],
            "updates": strategy.quotes + strategy.tick_updates + strategy.depth_updates,
            "verified": finished and ok, "detail": detail}
