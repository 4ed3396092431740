"""Tick-by-tick data from the simulated gateway, through the official ibapi client.

What a user relies on: each tick type arrives with sane values that match the market's book,
AllLast carries every Last print, MidPoint follows the BidAsk stream, numberOfTicks delivers
history first, cancel stops the stream, and IB's limits answer with IB's errors.
"""
from __future__ import annotations

import math
import time
from collections import Counter

import pytest
from ibapi.contract import Contract

AAPL = 265598


def stock(symbol: str, exchange: str = "SMART") -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", exchange, "USD"
    return c


def sync(client) -> None:
    """Round-trip a request: everything the gateway sent before answering it has now arrived."""
    before = len(client.all("currentTime"))
    client.reqCurrentTime()
    client.wait("currentTime", count=before + 1)


def wait_for_tape(gateway, seconds: float) -> None:
    """Let the shared gateway's market run long enough to have `seconds` of history."""
    deadline = time.monotonic() + 10
    while gateway.call(gateway.now) - gateway.start_time < seconds:
        assert time.monotonic() < deadline, "market clock is not advancing"
        time.sleep(0.1)


def on_tick_grid(price: float, tick: float = 0.01) -> bool:
    return abs(price / tick - round(price / tick)) < 1e-6


def ordered(client, names: set[str]) -> list[tuple[str, tuple]]:
    with client.w.cond:
        return [(n, a) for n, a in client.w.events if n in names]


class MarketTap:
    """Records the market's top of book whenever the gateway sends this client a TICK_BY_TICK."""

    def __init__(self, gateway, client, con_id: int):
        self.gateway, self.client_id, self.con_id = gateway, client.clientId, con_id
        self.quotes: list[tuple[int, tuple]] = []    # (reqId, (bid, ask, bidSize, askSize))

    def __call__(self, session, fields) -> None:
        if session.client_id == self.client_id and fields[0] == 99:
            m = self.gateway.market.get(self.con_id)
            self.quotes.append((fields[1], (m.best_bid, m.best_ask, m.bid_size, m.ask_size)))

    def __enter__(self):
        self.gateway.call(self.gateway.taps.append, self)
        return self

    def __exit__(self, *exc):
        self.gateway.call(self.gateway.taps.remove, self)


def test_bid_ask_ticks_are_the_markets_best_bid_and_ask(gateway, client):
    with MarketTap(gateway, client, AAPL) as tap:
        client.reqTickByTickData(7001, stock("AAPL"), "BidAsk", 0, False)
        ticks = client.wait("tickByTickBidAsk", lambda a: a[0] == 7001, count=8)
        client.cancelTickByTickData(7001)
        sync(client)
    ticks = client.all("tickByTickBidAsk", 7001)
    sent = [q for req, q in tap.quotes if req == 7001]
    assert len(sent) == len(ticks)
    now = gateway.call(gateway.now)
    for (_, t, bid, ask, bid_size, ask_size, _attrib), (m_bid, m_ask, m_bs, m_as) in zip(ticks, sent):
        assert 0 < bid < ask
        assert bid_size > 0 and ask_size > 0
        assert on_tick_grid(bid) and on_tick_grid(ask)
        assert (bid, ask, float(bid_size), float(ask_size)) == (m_bid, m_ask, m_bs, m_as)
        assert isinstance(t, int) and abs(t - now) < 60
    quotes = [(a[2], a[3], a[4], a[5]) for a in ticks]
    assert all(q1 != q2 for q1, q2 in zip(quotes, quotes[1:])), "a BidAsk tick repeated the previous quote"


def test_all_last_carries_every_last_print(client):
    client.reqTickByTickData(7011, stock("AAPL"), "Last", 0, False)
    client.reqTickByTickData(7012, stock("AAPL"), "AllLast", 0, False)
    for req in (7011, 7012):
        first = client.wait("tickByTickAllLast", lambda a, req=req: a[0] == req)[0][2]
        client.wait("tickByTickAllLast", lambda a, req=req, first=first: a[0] == req and a[2] >= first + 3)
    client.cancelTickByTickData(7011)
    client.cancelTickByTickData(7012)
    sync(client)
    last, all_last = client.all("tickByTickAllLast", 7011), client.all("tickByTickAllLast", 7012)
    for reqId, tick_type, t, price, size, attrib, exchange, special in last + all_last:
        assert tick_type == (1 if reqId == 7011 else 2)
        assert price > 0 and size > 0 and on_tick_grid(price)
        assert exchange and special == ""
        assert not attrib.pastLimit and not attrib.unreported
    # compare only whole seconds both streams were live for
    lo = max(last[0][2], all_last[0][2])
    hi = min(last[-1][2], all_last[-1][2])
    window = lambda ticks: Counter((a[2], a[3], a[4], a[6]) for a in ticks if lo < a[2] < hi)
    assert sum(window(last).values()) > 0
    assert sum(window(all_last).values()) >= sum(window(last).values())
    assert not window(last) - window(all_last), "a Last print is missing from AllLast"


def test_midpoint_is_the_middle_of_the_bid_ask_stream(client):
    client.reqTickByTickData(7021, stock("MSFT"), "BidAsk", 0, False)
    client.wait("tickByTickBidAsk", lambda a: a[0] == 7021)
    client.reqTickByTickData(7022, stock("MSFT"), "MidPoint", 0, False)
    client.wait("tickByTickMidPoint", lambda a: a[0] == 7022, count=10)
    client.cancelTickByTickData(7022)
    client.cancelTickByTickData(7021)
    sync(client)
    latest = None
    checked = 0
    for name, args in ordered(client, {"tickByTickBidAsk", "tickByTickMidPoint"}):
        if name == "tickByTickBidAsk" and args[0] == 7021:
            latest = args
        elif name == "tickByTickMidPoint" and args[0] == 7022:
            assert latest is not None and latest[1] == args[1]
            assert math.isclose(args[2], (latest[2] + latest[3]) / 2, abs_tol=1e-9)
            checked += 1
    assert checked >= 10
    mids = [a[2] for a in client.all("tickByTickMidPoint", 7022)]
    assert all(m1 != m2 for m1, m2 in zip(mids, mids[1:])), "MidPoint repeated an unchanged midpoint"


def test_ignore_size_sends_only_price_changes(client):
    client.reqTickByTickData(7031, stock("IBM"), "BidAsk", 0, True)
    ticks = client.wait("tickByTickBidAsk", lambda a: a[0] == 7031, count=6)
    client.cancelTickByTickData(7031)
    prices = [(a[2], a[3]) for a in ticks]
    assert all(b < a for b, a in prices)
    assert all(p1 != p2 for p1, p2 in zip(prices, prices[1:]))


def test_number_of_ticks_sends_history_before_live_ticks(gateway, client):
    wait_for_tape(gateway, 2)
    client.reqTickByTickData(7041, stock("AAPL"), "AllLast", 10, False)
    client.reqTickByTickData(7042, stock("AAPL"), "BidAsk", 3, False)
    client.reqTickByTickData(7043, stock("AAPL"), "MidPoint", 3, False)
    _, last_hist, done = client.wait("historicalTicksLast", lambda a: a[0] == 7041)[0]
    _, quote_hist, quote_done = client.wait("historicalTicksBidAsk", lambda a: a[0] == 7042)[0]
    _, mid_hist, mid_done = client.wait("historicalTicks", lambda a: a[0] == 7043)[0]
    first_live = client.wait("tickByTickAllLast", lambda a: a[0] == 7041)[0]
    for req in (7041, 7042, 7043):
        client.cancelTickByTickData(req)

    assert done and quote_done and mid_done
    assert len(last_hist) == 10
    times = [t.time for t in last_hist]
    assert times == sorted(times) and times[-1] <= first_live[2]
    assert all(t.price > 0 and t.size > 0 and t.exchange for t in last_hist)
    assert 1 <= len(quote_hist) <= 3
    assert all(0 < t.priceBid < t.priceAsk and t.sizeBid > 0 for t in quote_hist)
    assert 1 <= len(mid_hist) <= 3
    assert all(t.price > 0 and t.size == 0 for t in mid_hist)
    # history arrives before any live tick of its request
    events = ordered(client, {"historicalTicksLast", "tickByTickAllLast"})
    firsts = [n for n, a in events if a[0] == 7041]
    assert firsts[0] == "historicalTicksLast"


def test_cancel_stops_the_stream(gateway, client):
    client.reqTickByTickData(7051, stock("JPM"), "BidAsk", 0, False)
    client.wait("tickByTickBidAsk", lambda a: a[0] == 7051, count=2)
    client.cancelTickByTickData(7051)
    sync(client)
    received = len(client.all("tickByTickBidAsk", 7051))
    start = gateway.call(gateway.now)
    while gateway.call(gateway.now) < start + 0.5:
        time.sleep(0.05)
    sync(client)
    assert len(client.all("tickByTickBidAsk", 7051)) == received


def test_limit_of_simultaneous_requests_is_10190(gateway, client):
    limit = gateway.config.tick_by_tick_limit
    symbols = ["AAPL", "MSFT", "IBM", "JPM", "SPY"][:limit]
    for k, sym in enumerate(symbols):
        client.reqTickByTickData(7060 + k, stock(sym), "AllLast", 0, False)
    client.reqTickByTickData(7069, stock("SPY"), "BidAsk", 0, False)
    assert client.wait_error(7069, 10190) == "Max number of tick-by-tick requests has been reached."
    client.cancelTickByTickData(7060)
    client.reqTickByTickData(7068, stock("SPY"), "MidPoint", 0, False)
    client.wait("tickByTickMidPoint", lambda a: a[0] == 7068)
    assert not [e for e in client.errors() if e[0] in (7060, 7061, 7062, 7068)]


def test_repeat_request_within_15_seconds_is_refused(client, make_gateway, connect):
    client.reqTickByTickData(7071, stock("AAPL"), "BidAsk", 0, False)
    client.wait("tickByTickBidAsk", lambda a: a[0] == 7071)
    client.cancelTickByTickData(7071)
    client.reqTickByTickData(7072, stock("AAPL"), "BidAsk", 0, False)
    text = client.wait_error(7072, 10189)
    assert text.startswith("Failed to request tick-by-tick data.") and "15 seconds" in text
    # another tick type on the same instrument is a separate request
    client.reqTickByTickData(7073, stock("AAPL"), "MidPoint", 0, False)
    client.wait("tickByTickMidPoint", lambda a: a[0] == 7073)
    client.cancelTickByTickData(7073)

    unpaced = connect(make_gateway(pace_tick_by_tick=False, seed=3))
    for req in (7074, 7075):
        unpaced.reqTickByTickData(req, stock("AAPL"), "BidAsk", 0, False)
        unpaced.wait("tickByTickBidAsk", lambda a, req=req: a[0] == req)
        unpaced.cancelTickByTickData(req)
    assert not unpaced.errors(7075)


def test_invalid_requests_are_refused(gateway, client):
    option = gateway.universe.options_of(AAPL)[0]
    opt = Contract()
    opt.conId, opt.exchange = option.con_id, "SMART"
    client.reqTickByTickData(7081, opt, "Last", 0, False)
    assert client.wait_error(7081, 10189).startswith("Failed to request tick-by-tick data.")

    client.reqTickByTickData(7082, stock("AAPL"), "Trades", 0, False)
    assert "Trades" in client.wait_error(7082, 321)

    client.reqTickByTickData(7084, stock("AAPL"), "AllLast", 0, False)
    client.reqTickByTickData(7084, stock("MSFT"), "AllLast", 0, False)
    assert client.wait_error(7084, 322) == "Duplicate ticker id"
    client.cancelTickByTickData(7084)

    client.reqTickByTickData(7083, stock("NOPE"), "Last", 0, False)
    assert client.wait_error(7083, 200) == "No security definition has been found for the request"
    assert not client.all("tickByTickAllLast", 7081) and not client.all("tickByTickAllLast", 7083)


def test_every_tick_type_decodes_at_each_served_version(versioned_client):
    c = versioned_client
    fx = Contract()
    fx.symbol, fx.secType, fx.exchange, fx.currency = "EUR", "CASH", "IDEALPRO", "USD"
    c.reqTickByTickData(1, stock("AAPL"), "AllLast", 5, False)
    c.reqTickByTickData(2, fx, "BidAsk", 2, False)
    c.reqTickByTickData(3, stock("SPY"), "MidPoint", 2, False)
    c.wait("historicalTicksLast", lambda a: a[0] == 1)
    c.wait("historicalTicksBidAsk", lambda a: a[0] == 2)
    c.wait("historicalTicks", lambda a: a[0] == 3)
    c.wait("tickByTickAllLast", lambda a: a[0] == 1, count=3)
    bid_ask = c.wait("tickByTickBidAsk", lambda a: a[0] == 2, count=3)
    c.wait("tickByTickMidPoint", lambda a: a[0] == 3, count=2)
    for _, _, bid, ask, bid_size, ask_size, _ in bid_ask:
        assert 0 < bid < ask and on_tick_grid(bid, 0.00005) and bid_size >= 100_000
    assert not [e for e in c.errors() if e[0] > 0]
