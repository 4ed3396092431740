"""Market depth from the simulated gateway, through the official ibapi client.

What a user relies on: a book rebuilt from updateMktDepth / updateMktDepthL2 is the market's
book after every market step (sorted, uncrossed, on the tick grid, rows 0..numRows-1), SMART
depth names the market makers, cancel stops the rows, and IB's limits answer with 309 / 310.
"""
from __future__ import annotations

import itertools
import time

import pytest
from ibapi.contract import Contract

from ibframe.sim.market.market import MAKERS

AAPL, EURUSD = 265598, 12087792


def stock(symbol: str, exchange: str = "SMART") -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", exchange, "USD"
    return c


def eurusd() -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "EUR", "CASH", "IDEALPRO", "USD"
    return c


def sync(client) -> None:
    """Round-trip a request: everything the gateway sent before answering it has now arrived."""
    before = len(client.all("currentTime"))
    client.reqCurrentTime()
    client.wait("currentTime", count=before + 1)


def apply(book: dict[int, list], position: int, operation: int, side: int, row: tuple) -> None:
    """How clients keep a depth book: insert shifts rows down, delete shifts them up."""
    rows = book[side]
    if operation == 0:
        rows.insert(position, row)
    elif operation == 1:
        rows[position] = row
    else:
        del rows[position]


class BookTap:
    """Records, for every depth row this client is sent, the market step and the market's top rows then."""

    def __init__(self, gateway, client, req: int, con_id: int, rows: int):
        self.gateway, self.client_id, self.con_id, self.rows = gateway, client.clientId, con_id, rows
        self.req = req
        self.seen: list[tuple[int, dict]] = []

    def __call__(self, session, fields) -> None:
        if session.client_id == self.client_id and fields[0] in (12, 13) and fields[2] == self.req:
            m = self.gateway.market.get(self.con_id)
            top = {0: [(lv.price, lv.size, lv.maker) for lv in m.asks[:self.rows]],
                   1: [(lv.price, lv.size, lv.maker) for lv in m.bids[:self.rows]]}
            self.seen.append((self.gateway.market.steps, top))

    def __enter__(self):
        self.gateway.call(self.gateway.taps.append, self)
        return self

    def __exit__(self, *exc):
        self.gateway.call(self.gateway.taps.remove, self)


def check_rebuilt_book(updates: list[tuple], tap: BookTap, smart: bool, rows: int, tick: float) -> int:
    """Replay the callbacks step by step; after each step's rows the book must be the market's. Returns steps."""
    assert len(updates) == len(tap.seen)
    book: dict[int, list] = {0: [], 1: []}
    steps = 0
    pairs = list(zip(updates, tap.seen))
    for step, group in itertools.groupby(pairs, key=lambda p: p[1][0]):
        group = list(group)
        for args, _ in group:
            if smart:
                _, position, maker, operation, side, price, size, is_smart = args
                assert is_smart is True and maker in MAKERS["STK"] + MAKERS["CASH"]
            else:
                _, position, operation, side, price, size = args
                maker = ""
            assert side in (0, 1) and operation in (0, 1, 2)
            apply(book, position, operation, side, (price, float(size), maker))
        market = group[-1][1][1]
        for side in (0, 1):
            expected = [(p, s, m if smart else "") for p, s, m in market[side]]
            assert book[side] == expected, f"step {step}: side {side} differs from the market"
        asks, bids = [r[0] for r in book[0]], [r[0] for r in book[1]]
        assert len(asks) == len(bids) == rows
        assert asks == sorted(asks) and bids == sorted(bids, reverse=True)
        assert bids[0] < asks[0]
        assert all(abs(p / tick - round(p / tick)) < 1e-6 for p in asks + bids)
        assert all(r[1] > 0 for r in book[0] + book[1])
        steps += 1
    return steps


@pytest.mark.parametrize("smart", [True, False], ids=["smart", "exchange"])
def test_rebuilt_book_is_the_markets_book_after_every_step(gateway, client, smart):
    req = 8001 if smart else 8002
    contract = stock("AAPL", "SMART" if smart else "ISLAND")
    callback = "updateMktDepthL2" if smart else "updateMktDepth"
    with BookTap(gateway, client, req, AAPL, 5) as tap:
        client.reqMktDepth(req, contract, 5, smart, [])
        client.wait(callback, lambda a: a[0] == req, count=60)
        client.cancelMktDepth(req, smart)
        sync(client)
    updates = client.all(callback, req)
    assert check_rebuilt_book(updates, tap, smart, rows=5, tick=0.01) >= 3
    other = "updateMktDepth" if smart else "updateMktDepthL2"
    assert not client.all(other, req)


def test_fx_depth_on_idealpro(gateway, client):
    with BookTap(gateway, client, 8011, EURUSD, 3) as tap:
        client.reqMktDepth(8011, eurusd(), 3, False, [])
        client.wait("updateMktDepth", lambda a: a[0] == 8011, count=20)
        client.cancelMktDepth(8011, False)
        sync(client)
    updates = client.all("updateMktDepth", 8011)
    assert check_rebuilt_book(updates, tap, smart=False, rows=3, tick=0.00005) >= 2
    assert all(u[5] >= 100_000 for u in updates)


def test_cancel_stops_the_rows(gateway, client):
    client.reqMktDepth(8021, stock("MSFT"), 3, True, [])
    client.wait("updateMktDepthL2", lambda a: a[0] == 8021, count=10)
    client.cancelMktDepth(8021, True)
    sync(client)
    received = len(client.all("updateMktDepthL2", 8021))
    start = gateway.call(gateway.now)
    while gateway.call(gateway.now) < start + 0.5:
        time.sleep(0.05)
    sync(client)
    assert len(client.all("updateMktDepthL2", 8021)) == received
    client.cancelMktDepth(8021, True)
    assert client.wait_error(8021, 310) == "Can't find the subscribed market depth with tickerId:8021"


def test_unknown_cancel_is_310(client):
    client.cancelMktDepth(8031, False)
    assert client.wait_error(8031, 310) == "Can't find the subscribed market depth with tickerId:8031"


def test_distinct_depth_limit_is_309(gateway, client):
    limit = gateway.config.depth_limit
    symbols = ["AAPL", "MSFT", "IBM", "JPM", "SPY"]
    for k, sym in enumerate(symbols[:limit]):
        client.reqMktDepth(8040 + k, stock(sym), 2, True, [])
    client.reqMktDepth(8049, stock(symbols[limit]), 2, True, [])
    assert client.wait_error(8049, 309) == f"Max number ({limit}) of market depth requests has been reached"
    # the same security again is not a new distinct request
    client.reqMktDepth(8048, stock(symbols[0], "ISLAND"), 2, False, [])
    client.wait("updateMktDepth", lambda a: a[0] == 8048, count=4)
    client.cancelMktDepth(8040, True)
    client.cancelMktDepth(8048, False)
    client.reqMktDepth(8047, stock(symbols[limit]), 2, True, [])
    client.wait("updateMktDepthL2", lambda a: a[0] == 8047, count=4)
    assert not [e for e in client.errors() if e[0] in (8040, 8041, 8042, 8047, 8048)]


def test_depth_that_does_not_exist_is_refused(gateway, client):
    client.reqMktDepth(8051, stock("AAPL", "SMART"), 5, False, [])     # exchange depth must name an exchange
    assert "not supported" in client.wait_error(8051, 10092)
    option = gateway.universe.options_of(AAPL)[0]
    opt = Contract()
    opt.conId, opt.exchange = option.con_id, "SMART"
    client.reqMktDepth(8052, opt, 5, True, [])
    client.wait_error(8052, 10092)
    client.reqMktDepth(8054, stock("IBM"), 1, True, [])
    client.reqMktDepth(8054, stock("JPM"), 1, True, [])
    assert client.wait_error(8054, 322) == "Duplicate ticker id"
    client.cancelMktDepth(8054, True)
    client.reqMktDepth(8053, stock("NOPE"), 5, True, [])
    client.wait_error(8053, 200)
    sync(client)
    assert not [a for a in client.all("updateMktDepthL2") + client.all("updateMktDepth") if a[0] in (8051, 8052, 8053)]


def test_depth_and_venues_decode_at_each_served_version(versioned_client):
    c = versioned_client
    c.reqMktDepthExchanges()
    venues = c.wait("mktDepthExchanges")[0][0]
    listed = {(v.exchange, v.secType) for v in venues}
    assert {("ISLAND", "STK"), ("ARCA", "STK"), ("IDEALPRO", "CASH"), ("CME", "FUT")} <= listed
    assert next(v for v in venues if v.exchange == "ISLAND").listingExch == "NASDAQ"

    c.reqMktDepth(1, stock("SPY"), 4, True, [])
    c.reqMktDepth(2, eurusd(), 2, False, [])
    l2 = c.wait("updateMktDepthL2", lambda a: a[0] == 1, count=8)
    l1 = c.wait("updateMktDepth", lambda a: a[0] == 2, count=4)
    inserts = [a for a in l2[:8] if a[3] == 0]
    assert sorted((a[4], a[1]) for a in inserts) == [(s, p) for s in (0, 1) for p in range(4)]
    assert all(a[2] in MAKERS["STK"] and a[7] is True for a in l2)
    assert sorted((a[3], a[1]) for a in l1[:4]) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    c.cancelMktDepth(1, True)
    c.cancelMktDepth(2, False)
    sync(c)
    assert not [e for e in c.errors() if e[0] > 0]
