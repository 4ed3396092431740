"""Case 7: what the pre-trade risk check adds to the tick → order path (target: ≤ 10 µs at p50).

Owns: the part "gate": two engines built the same way (not connected: the socket is not what is
measured), one with the default rails of `RiskLayer.install` (trading states, every rule of
`ibframe.risk.limits`, the working-order view; the PDT guard and margin monitor need a connected
account feed and are off), one with the bare gate (no rules). For each, a tick
is applied to a Quote whose listener places a limit order through `engine.orders.place` — the gate,
the order id, the door's one-use pass and `placeOrder` of a stand-in client that admits the order at
the door and counts it. The two engines alternate tick by tick; each path is timed per tick
(perf_counter_ns) and reported as p50 / p99, and the difference is what the rules add. Five orders
of the strategy rest all along (the rules look at them); each new order is ended after it is timed,
and the framework clock advances 0.25 s per tick so the rate and duplicate rules see a steady flow.
Must never: count a run in which any order was refused or did not reach placeOrder.
"""
from __future__ import annotations

import statistics
import tempfile
import time

from . import Row, all_verified, values

TITLE = "pre-trade risk check (tick → order, in process; all rules on vs off)"


def size(quick: bool) -> int:
    return 5_000 if quick else 50_000


def parts(quick: bool) -> list[str]:
    return ["gate"]


class _Clock:
    def __init__(self):
        self.t = 1_800_000_000.0

    def now(self) -> float:
        return self.t


class _Client:
    """What the order manager sends to: the door's check, as IBConnection.placeOrder does, then a count."""

    def __init__(self, door):
        self.door = door
        self.sent = 0

    def placeOrder(self, order_id, contract, order):
        self.door.admit(self, order_id, order)
        self.sent += 1


def _engine(rules: bool, where: str, clock: _Clock):
    from ibapi.contract import Contract

    from ..engine import Engine
    from ..ids import OrderIds
    from ..market.quote import Quote
    from ..risk.config import RiskConfig
    from ..risk.layer import RiskLayer
    from ..strategy import Strategy
    from ..trading import orders as build

    eng = Engine("127.0.0.1", 0, 1, state_dir=where, clock=clock)
    eng.order_ids = eng.orders.order_ids = OrderIds()
    eng.order_ids.seed(1)
    client = eng.orders.client = _Client(eng.orders.door)
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency, c.conId = "AAPL", "STK", "SMART", "USD", 265598
    strategy = Strategy(eng, "bench", {}, {"AAPL": c})
    if rules:
        # the PDT guard and margin monitor feed on the account stream of a connected engine: off here
        RiskLayer.install(eng, RiskConfig.from_mapping({"pdt": {"enabled": False}, "margin": {"enabled": False}}),
                          [strategy])
    quote = Quote("AAPL", bid=189.90, ask=189.92)
    for i in range(5):                                   # resting orders the rules look at
        eng.orders.place(c, build.limit("BUY", 100, 180.0 - i), "bench", quote)
    box = {"trade": None, "n": 0}
    limit = build.limit

    def on_quote(q) -> None:                             # the strategy's reaction to the tick
        box["n"] += 1
        box["trade"] = eng.orders.place(c, limit("BUY", 100, round(q.ask - 0.01 * (box["n"] % 7), 2)), "bench", q)
    quote.on_change.append(on_quote)
    return eng, client, quote, box


def _end(eng, trade) -> None:
    trade.status = "Cancelled"
    for hook in eng.orders.status_hooks:
        hook(trade)


def run(part: str, quick: bool) -> dict:
    n = size(quick)
    clock = _Clock()
    with tempfile.TemporaryDirectory(prefix="ibframe-bench-risk-") as where:
        on = _engine(True, where, clock)
        off = _engine(False, where, clock)
        timings = {"on": [], "off": []}
        refused = 0
        perf = time.perf_counter_ns
        for i in range(n + 500):
            clock.t += 0.25
            bid = 189.90 + 0.01 * (i % 5)
            for name, (eng, _client, quote, box) in (("on", on), ("off", off)):
                box["trade"] = None
                started = perf()
                try:
                    quote.on_price_size(1, bid, None, 0, 100)     # BID price + size: one update, on_change once
                except Exception:
                    refused += 1
                    continue
                elapsed = perf() - started
                if box["trade"] is None:
                    refused += 1
                    continue
                _end(eng, box["trade"])
                if i >= 500:                                       # warm-up
                    timings[name].append(elapsed)
        sent_on, sent_off = on[1].sent, off[1].sent
    expected = n + 500 + 5
    ok = refused == 0 and sent_on == expected and sent_off == expected and len(timings["on"]) == n
    out = {}
    for name in ("on", "off"):
        data = sorted(timings[name])
        if data:
            out[f"{name}_p50"] = statistics.median(data) / 1000.0
            out[f"{name}_p99"] = data[int(len(data) * 0.99) - 1] / 1000.0
    if ok:
        out["added_p50"] = out["on_p50"] - out["off_p50"]
        out["added_p99"] = out["on_p99"] - out["off_p99"]
    detail = f"{n:,} ticks each; {refused} refused; placeOrder reached {sent_on:,} (rules) / {sent_off:,} (none)"
    return {"values": out, "verified": ok, "detail": detail}


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    gate = runs.get("gate", [])
    ok = all_verified(gate)
    note = f"{size(quick):,} ticks; target ≤ 10 µs added at p50"
    return [Row("tick → place, all rules (p50)", "µs", values(gate, "on_p50"), ok, note, digits=1),
            Row("tick → place, all rules (p99)", "µs", values(gate, "on_p99"), ok, digits=1),
            Row("tick → place, no rules (p50)", "µs", values(gate, "off_p50"), ok, digits=1),
            Row("tick → place, no rules (p99)", "µs", values(gate, "off_p99"), ok, digits=1),
            Row("added by the risk rules (p50)", "µs", values(gate, "added_p50"), ok, digits=1),
            Row("added by the risk rules (p99)", "µs", values(gate, "added_p99"), ok, digits=1)]
