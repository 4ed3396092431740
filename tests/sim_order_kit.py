"""Helpers shared by the paper-broker tests: contracts, orders, a paused market stepped by hand.

A "paused" gateway runs with a market clock so slow it never steps on its own; tests step it with
`step(gw, n)` (on the gateway's loop, like the clock would) and read the book in between, so every
fill can be checked against the exact book it traded with.
"""
from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

from ibapi.contract import ComboLeg, Contract
from ibapi.order import Order
from ibapi.tag_value import TagValue

EASTERN = ZoneInfo("America/New_York")
AAPL, MSFT, SPY, EURUSD, BOND = 265598, 272093, 756733, 12087792, 652386178


def eastern(y, mo, d, h, mi, s=0) -> float:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=EASTERN).timestamp()


RTH = eastern(2026, 11, 17, 10, 0)             # a Tuesday morning: US stocks liquid
EVENING = eastern(2026, 11, 17, 18, 0)         # after the close, inside extended hours
BEFORE_CLOSE = eastern(2026, 11, 17, 15, 59, 58)
BEFORE_OPEN = eastern(2026, 11, 17, 9, 29, 58)


def paused(make_gateway, start: float = RTH, **options):
    """A gateway whose market only moves when the test steps it."""
    options.setdefault("seed", 11)
    return make_gateway(start_time=start, step_seconds=0.25, speed=1e-6, **options)


def step(gw, n: int = 1) -> None:
    def run():
        for _ in range(n):
            gw._step_market()
    gw.call(run)


def book(gw, con_id: int) -> dict:
    """The root instrument's book right now: bids/asks as (price, size, maker), plus last."""
    def snap():
        m = gw.market.get(con_id)
        return {"bids": [(lv.price, lv.size, lv.maker) for lv in m.bids],
                "asks": [(lv.price, lv.size, lv.maker) for lv in m.asks], "last": m.last}
    return gw.call(snap)


def stock(symbol: str = "AAPL", exchange: str = "SMART") -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", exchange, "USD"
    return c


def by_con_id(con_id: int, exchange: str = "") -> Contract:
    c = Contract()
    c.conId, c.exchange = con_id, exchange
    return c


def combo(legs: list[tuple[int, int, str]], symbol: str = "AAPL,MSFT") -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "BAG", "SMART", "USD"
    c.comboLegs = []
    for con_id, ratio, action in legs:
        leg = ComboLeg()
        leg.conId, leg.ratio, leg.action, leg.exchange = con_id, ratio, action, "SMART"
        c.comboLegs.append(leg)
    return c


def order(action: str, qty: float, kind: str = "MKT", lmt: float | None = None, aux: float | None = None,
          **attrs) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType = action, qty, kind
    if lmt is not None:
        o.lmtPrice = lmt
    if aux is not None:
        o.auxPrice = aux
    for name, value in attrs.items():
        setattr(o, name, value)
    return o


def algo(o: Order, strategy: str, **params) -> Order:
    o.algoStrategy = strategy
    o.algoParams = [TagValue(k, str(v)) for k, v in params.items()]
    return o


def place(c, oid: int, contract: Contract, o: Order) -> None:
    """placeOrder, then wait until the gateway answered (an orderStatus, openOrder or error for the id),
    so a test never steps the market before the order is in."""
    seen = len(c.all("orderStatus", oid)) + len(c.all("openOrder", oid)) + len(c.errors(oid))
    c.placeOrder(oid, contract, o)
    deadline = time.monotonic() + 10
    while len(c.all("orderStatus", oid)) + len(c.all("openOrder", oid)) + len(c.errors(oid)) <= seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"no answer to placeOrder {oid}")
        time.sleep(0.002)


def statuses(c, oid: int) -> list[str]:
    return [a[1] for a in c.all("orderStatus", oid)]


def execs(c, oid: int) -> list:
    """Execution objects of unsolicited execDetails for one order."""
    return [a[2] for a in c.all("execDetails", -1) if a[2].orderId == oid]


def wait_status(c, oid: int, status: str, timeout: float = 10.0) -> tuple:
    return c.wait("orderStatus", lambda a: a[0] == oid and a[1] == status, timeout)[0]


def step_until(gw, c, oid: int, status: str, max_steps: int = 400, chunk: int = 4) -> bool:
    """Step the market until the order reaches `status` (True) or `max_steps` pass (False)."""
    def reached() -> bool:
        return gw.call(lambda: _status(gw, c, oid)) == status
    for _ in range(0, max_steps, chunk):
        if reached():
            return True
        step(gw, chunk)
    return reached()


def _status(gw, c, oid: int) -> str | None:
    lo = gw.broker.find(c.clientId, oid)
    return lo.status if lo is not None else None


def settle(c, oid: int, status: str) -> None:
    """Wait until the client has seen the order's `status` (messages cross a real socket)."""
    wait_status(c, oid, status)
