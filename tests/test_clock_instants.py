"""The simulator at six instants of the week, as a real TWS would answer then.

Pre-market (Wed 07:00 New York), the open (09:30), midday, after the close (20:45), a Saturday and
an exchange holiday (Thanksgiving) — `conftest.INSTANTS`. At each: historical bars (1 min and
5 secs, TRADES, with and without useRTH) sit on their bar boundaries and end where trading ended;
keepUpToDate updates land on boundaries; a market order works only in regular hours while an
outsideRth limit also works in extended hours but waits when the market is fully closed; and the
live tape prints only while the instrument trades. The simulated clock runs 20x so each instant
takes a few wall seconds; nothing reads the wall clock.
"""
from __future__ import annotations

import time

import pytest
from ibapi.order_cancel import OrderCancel
from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.ticktype import TickTypeEnum as T

from conftest import INSTANTS
from ibframe.sim import SimConfig, SimGateway

AAPL, EURUSD = 265598, 12087792


def contract(con_id: int, sec_type: str = "STK") -> Contract:
    c = Contract()
    c.conId, c.secType = con_id, sec_type
    c.exchange = "IDEALPRO" if sec_type == "CASH" else "SMART"
    return c


@pytest.fixture(scope="module", params=INSTANTS, ids=lambda i: i.name)
def at(request):
    """(instant, gateway) with the simulated clock pinned at the instant, running at 20x."""
    gw = SimGateway(SimConfig(port=0, seed=7, step_seconds=0.25, speed=20, start_time=request.param.start,
                              pace_historical=False)).start()
    yield request.param, gw
    gw.stop()


def wait_steps(gw: SimGateway, n: int, timeout: float = 30.0) -> None:
    """Let the simulated market run n more steps."""
    target = gw.market.steps + n
    deadline = time.monotonic() + timeout
    while gw.market.steps < target:
        assert time.monotonic() < deadline, "the market clock stopped"
        time.sleep(0.02)


def bar_times(client, req_id: int) -> list[int]:
    client.wait("historicalDataEnd", lambda a: a[0] == req_id)
    return [int(a[1].date) for a in client.all("historicalData", req_id)]


@pytest.mark.parametrize("use_rth", [0, 1], ids=["all_hours", "rth"])
@pytest.mark.parametrize("bar_size,grain,count", [("1 min", 60, 30), ("5 secs", 5, 360)], ids=["1min", "5secs"])
def test_history_ends_where_trading_ended_on_bar_boundaries(at, connect, use_rth, bar_size, grain, count):
    instant, gw = at
    c = connect(gw)
    req = 1000 + use_rth + 10 * grain
    c.reqHistoricalData(req, contract(AAPL), "", "1800 S", bar_size, "TRADES", use_rth, 2, False, [])
    times = bar_times(c, req)
    bars = [a[1] for a in c.all("historicalData", req)]
    assert times and all(t % grain == 0 for t in times), times[:5]
    assert all(b - a == grain for a, b in zip(times, times[1:])), "bars skip or repeat a boundary"
    assert all(b.low <= min(b.open, b.close) and max(b.open, b.close) <= b.high for b in bars)
    trading_now = instant.liquid if use_rth else instant.extended
    if trading_now:                                        # history runs up to the live bar
        assert instant.start // grain * grain <= times[-1] <= gw.now()
        if use_rth and instant.name == "open":             # the session has just begun: nothing before 09:30
            assert times[0] == instant.start
        else:
            assert len(times) == count
    else:                                                  # the last `count` bars that traded
        last_minute = instant.last_rth_minute if use_rth else instant.last_trade_minute
        assert times[-1] == last_minute + 60 - grain
        assert len(times) == count
        assert sum(b.volume for b in bars) > 0


def test_keep_up_to_date_updates_land_on_boundaries(at, connect):
    instant, gw = at
    c = connect(gw)
    c.reqHistoricalData(2001, contract(AAPL), "", "300 S", "5 secs", "TRADES", 0, 2, True, [])
    first = bar_times(c, 2001)
    if instant.extended:
        updates = c.wait("historicalDataUpdate", lambda a: a[0] == 2001 and int(a[1].date) > first[-1] + 5)
        dates = [int(a[1].date) for a in c.all("historicalDataUpdate", 2001)]
        assert updates and all(d % 5 == 0 for d in dates), dates[:5]
        assert all(d >= first[-1] for d in dates)
    else:
        assert first[-1] == instant.last_trade_minute + 55
        wait_steps(gw, 40)
        assert c.all("historicalDataUpdate", 2001) == []     # nothing trades, nothing updates
    c.cancelHistoricalData(2001)


def _order(action: str, order_type: str, price: float | None = None, outside_rth: bool = False) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.tif = action, 100, order_type, "DAY"
    if price is not None:
        o.lmtPrice = price
    o.outsideRth = outside_rth
    return o


def test_market_orders_wait_outside_regular_hours_and_outside_rth_limits_outside_trading_hours(at, connect):
    instant, gw = at
    c = connect(gw)
    c.reqMktData(3001, contract(AAPL), "", False, False, [])
    ask = c.wait("tickPrice", lambda a: a[0] == 3001 and a[1] == T.ASK)[0][2]
    oid = c.wait("nextValidId")[-1][0]
    mkt, lmt = oid, oid + 1
    c.placeOrder(mkt, contract(AAPL), _order("BUY", "MKT"))
    c.placeOrder(lmt, contract(AAPL), _order("BUY", "LMT", round(ask * 1.01, 2), outside_rth=True))
    for order_id, works in ((mkt, instant.liquid), (lmt, instant.extended)):
        if works:
            c.wait("orderStatus", lambda a, i=order_id: a[0] == i and a[1] == "Filled")
        else:
            c.wait("orderStatus", lambda a, i=order_id: a[0] == i and a[1] == "PreSubmitted")
    wait_steps(gw, 40)
    for order_id, works in ((mkt, instant.liquid), (lmt, instant.extended)):
        statuses = [a[1] for a in c.all("orderStatus", order_id)]
        fills = [a for a in c.all("execDetails") if a[2].orderId == order_id]
        if not works:
            assert "Filled" not in statuses and not fills, (instant.name, order_id, statuses)
            c.cancelOrder(order_id, OrderCancel())
        else:
            assert len(fills) >= 1
    c.cancelMktData(3001)


def test_live_tape_prints_only_while_the_instrument_trades(at, connect):
    instant, gw = at
    c = connect(gw)
    c.reqMktData(4001, contract(AAPL), "", False, False, [])
    c.reqMktData(4002, contract(EURUSD, "CASH"), "", False, False, [])
    c.reqTickByTickData(4003, contract(AAPL), "AllLast", 0, False)
    c.wait("tickPrice", lambda a: a[0] == 4001 and a[1] == T.LAST)
    c.wait("tickPrice", lambda a: a[0] == 4002 and a[1] == T.BID)
    if instant.extended:
        c.wait("tickPrice", lambda a: a[0] == 4001 and a[1] == T.LAST, count=3)
        c.wait("tickByTickAllLast", lambda a: a[0] == 4003, count=3)
    if instant.fx:
        c.wait("tickPrice", lambda a: a[0] == 4002 and a[1] == T.BID, count=3)
    wait_steps(gw, 80)                                     # 20 simulated seconds
    lasts = [a for a in c.all("tickPrice", 4001) if a[1] == T.LAST]
    bids = [a for a in c.all("tickPrice", 4001) if a[1] == T.BID]
    if not instant.extended:                               # the snapshot on subscribe, then silence
        assert len(lasts) == 1 and len(bids) == 1, (instant.name, lasts, bids)
        assert c.all("tickByTickAllLast", 4003) == []
    if not instant.fx:
        assert len([a for a in c.all("tickPrice", 4002) if a[1] == T.BID]) == 1
    c.cancelMktData(4001)
    c.cancelMktData(4002)
    c.cancelTickByTickData(4003)


def test_real_time_bars_only_while_the_instrument_trades(at, connect):
    instant, gw = at
    c = connect(gw)
    c.reqRealTimeBars(5001, contract(AAPL), 5, "TRADES", False, [])
    if instant.extended:
        bars = c.wait("realtimeBar", lambda a: a[0] == 5001, count=3)
        assert all(a[1] % 5 == 0 and a[1] >= instant.start - 5 for a in bars)
        assert [b[1] - a[1] for a, b in zip(bars, bars[1:])] == [5] * (len(bars) - 1)
    else:
        wait_steps(gw, 80)
        assert c.all("realtimeBar", 5001) == []
    c.cancelRealTimeBars(5001)
