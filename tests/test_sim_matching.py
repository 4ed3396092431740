"""The paper broker's matching engine, seen from the official ibapi client.

The market is paused and stepped by hand (see sim_order_kit), so each fill can be checked against
the exact book it traded with: market orders walk the levels, SMART fills at or better than the NBBO
at arrival, directed orders trade only at their venue, resting limits fill at their price with
price-time priority, stops / trailing / if-touched orders trigger on the last trade, and the order
types that wait for a time (MOC/LOC, OPG, DAY, GTD, outside RTH) do so.
"""
from __future__ import annotations

import math

import pytest

from sim_order_kit import (
    AAPL, BEFORE_CLOSE, BEFORE_OPEN, BOND, EURUSD, EVENING, MSFT, book, by_con_id, combo, execs, order,
    paused, place, statuses, step, step_until, stock, wait_status,
)


@pytest.fixture
def sim(make_gateway, connect):
    gw = paused(make_gateway)
    return gw, connect(gw, 1)


def test_market_order_walks_the_levels(sim):
    gw, c = sim
    b = book(gw, AAPL)
    asks = b["asks"]
    qty = asks[0][1] + asks[1][1] + 100
    place(c, 1, stock(), order("BUY", qty))
    status = wait_status(c, 1, "Filled")
    fills = execs(c, 1)
    prices = [e.price for e in fills]
    assert len(fills) >= 3
    assert prices == sorted(prices)
    mid = (b["bids"][0][0] + asks[0][0]) / 2
    level_prices = {p for p, _, _ in asks}
    for e in fills:
        if e.exchange == "IBKRATS":               # SMART's hidden liquidity: between the mid and the ask
            assert mid - 1e-9 <= e.price <= asks[0][0] + 1e-9
        else:
            assert e.price in level_prices
    assert math.isclose(sum(float(e.shares) for e in fills), qty)
    weighted = sum(float(e.shares) * e.price for e in fills) / qty
    assert math.isclose(status[4], weighted, rel_tol=1e-9)        # avgFillPrice
    assert float(fills[-1].cumQty) == qty
    assert math.isclose(fills[-1].avgPrice, weighted, rel_tol=1e-9)


def test_smart_fills_at_or_better_than_the_nbbo_at_arrival(sim):
    gw, c = sim
    improved = 0
    for oid in range(1, 11):
        step(gw, 3)
        b = book(gw, AAPL)
        ask, bid = b["asks"][0][0], b["bids"][0][0]
        place(c, oid, stock(), order("BUY", 100))
        wait_status(c, oid, "Filled")
        (fill,) = execs(c, oid)
        assert bid <= fill.price <= ask + 1e-9
        improved += fill.price < ask - 1e-9
        lo = gw.call(lambda: gw.broker.find(1, oid))
        assert (lo.arrival_bid, lo.arrival_ask) == (bid, ask)        # the NBBO at arrival is recorded
    assert improved >= 1                                              # seeded price improvement happens


def test_directed_order_trades_only_at_its_venue(sim):
    gw, c = sim
    for _ in range(50):
        b = book(gw, AAPL)
        nsdq = [(p, s) for p, s, m in b["asks"] if m == "NSDQ"]
        if len(nsdq) >= 2:
            break
        step(gw)
    qty = nsdq[0][1] + nsdq[1][1]
    place(c, 1, stock(exchange="ISLAND"), order("BUY", qty))
    wait_status(c, 1, "Filled")
    fills = execs(c, 1)
    assert {e.exchange for e in fills} == {"ISLAND"}
    assert [e.price for e in fills] == [nsdq[0][0], nsdq[1][0]]


def test_marketable_limit_fills_up_to_its_limit_and_rests(sim):
    gw, c = sim
    b = book(gw, AAPL)
    limit = round(b["asks"][0][0] + 0.02, 2)
    lit = sum(s for p, s, _ in b["asks"] if p <= limit + 1e-9)
    place(c, 1, stock(), order("BUY", 5000, "LMT", limit))
    c.wait("execDetails", lambda a: a[2].orderId == 1 and float(a[2].cumQty) >= lit)
    fills = execs(c, 1)
    assert all(e.price <= limit + 1e-9 for e in fills)
    assert statuses(c, 1)[-1] == "Submitted"
    assert 0 < sum(float(e.shares) for e in fills) < 5000


def test_resting_limits_fill_at_their_price_in_time_priority(sim):
    gw, c = sim
    b = book(gw, AAPL)
    bid, ask = b["bids"][0][0], b["asks"][0][0]
    price = round(bid + 0.01, 2) if bid + 0.015 < ask else bid
    place(c, 1, stock(), order("BUY", 100, "LMT", price))
    place(c, 2, stock(), order("BUY", 100, "LMT", price))
    assert step_until(gw, c, 2, "Filled", max_steps=2000)
    wait_status(c, 2, "Filled")
    every = [a[2] for a in c.all("execDetails", -1)]
    assert all(e.price == price and e.lastLiquidity == 1 for e in every)       # makers at their own price
    ids = [e.orderId for e in every]
    assert max(i for i, x in enumerate(ids) if x == 1) < min(i for i, x in enumerate(ids) if x == 2)


def test_stop_waits_for_a_trade_at_its_price(sim):
    gw, c = sim
    b = book(gw, AAPL)
    place(c, 1, stock(), order("BUY", 100, "STP", aux=round(b["asks"][0][0] + 5, 2)))   # far away
    place(c, 2, stock(), order("BUY", 100, "STP", aux=round(max(b["asks"][0][0], b["last"] + 0.01), 2)))
    assert step_until(gw, c, 2, "Filled", max_steps=2000)
    wait_status(c, 2, "Filled")
    assert statuses(c, 2)[0] == "PreSubmitted" and "Submitted" in statuses(c, 2)
    step(gw, 40)
    assert set(statuses(c, 1)) == {"PreSubmitted"} and not execs(c, 1)


@pytest.mark.parametrize("trail", [{"aux": 0.03}, {"trailingPercent": 0.02}], ids=["amount", "percent"])
def test_trailing_stop_follows_the_market_then_triggers(sim, trail):
    gw, c = sim
    place(c, 1, stock(), order("SELL", 100, "TRAIL", **trail))
    first = c.wait("openOrder", lambda a: a[0] == 1)[0][2]
    last = book(gw, AAPL)["last"]
    amount = trail.get("aux") or last * trail["trailingPercent"] / 100
    assert math.isclose(first.trailStopPrice, math.floor((last - amount) * 100 + 1e-9) / 100, abs_tol=1e-9)
    stops = []
    for _ in range(400):
        lo = gw.call(lambda: gw.broker.find(1, 1))
        if lo.done:
            break
        stops.append(lo.trail_stop)
        step(gw, 2)
    assert stops == sorted(stops)                 # a sell stop only ever moves up
    wait_status(c, 1, "Filled")


def test_if_touched_orders_trigger_when_touched(sim):
    gw, c = sim
    b = book(gw, AAPL)
    ask = b["asks"][0][0]
    place(c, 1, stock(), order("SELL", 100, "MIT", aux=ask))
    place(c, 2, stock(), order("SELL", 100, "LIT", lmt=round(ask - 0.50, 2), aux=ask))
    assert step_until(gw, c, 1, "Filled", max_steps=2000)
    assert step_until(gw, c, 2, "Filled", max_steps=2000)
    for oid in (1, 2):
        wait_status(c, oid, "Filled")
        assert statuses(c, oid)[0] == "PreSubmitted"


def test_relative_order_pegs_to_the_near_side(sim):
    gw, c = sim
    place(c, 1, stock(), order("BUY", 100, "REL", aux=0.01))
    c.wait("orderStatus", lambda a: a[0] == 1 and a[1] == "Submitted")
    lo = gw.call(lambda: gw.broker.find(1, 1))
    b = book(gw, AAPL)
    assert lo.work_price == min(round(b["bids"][0][0] + 0.01, 2), b["asks"][0][0])
    assert step_until(gw, c, 1, "Filled", max_steps=2000)


def test_moc_fills_at_the_close_and_loc_outside_its_limit_is_cancelled(make_gateway, connect):
    gw = paused(make_gateway, start=BEFORE_CLOSE)
    c = connect(gw, 1)
    place(c, 1, stock(), order("BUY", 300, "MOC"))
    place(c, 2, stock(), order("BUY", 300, "LOC", lmt=1.00))
    wait_status(c, 1, "Submitted")
    step(gw, 7)                                   # 15:59:59.75
    assert gw.call(lambda: gw.broker.find(1, 1).filled) == 0
    step(gw, 1)                                   # 16:00:00, the close
    close = book(gw, AAPL)["last"]
    wait_status(c, 1, "Filled")
    (fill,) = execs(c, 1)
    assert fill.time == "20261117 16:00:00 US/Eastern" and float(fill.shares) == 300
    assert fill.price == close
    wait_status(c, 2, "Cancelled")
    assert c.wait_error(2, 202).startswith("Order Canceled - reason:")


def test_day_orders_expire_at_the_close_gtc_orders_stay(make_gateway, connect):
    gw = paused(make_gateway, start=BEFORE_CLOSE)
    c = connect(gw, 1)
    place(c, 1, stock(), order("BUY", 100, "LMT", 100.0))
    place(c, 2, stock(), order("BUY", 100, "LMT", 100.0, tif="GTC"))
    step(gw, 12)
    wait_status(c, 1, "Cancelled")
    assert statuses(c, 2)[-1] == "Submitted"


def test_outside_rth_orders_wait_unless_allowed(make_gateway, connect):
    gw = paused(make_gateway, start=EVENING)
    c = connect(gw, 1)
    ask = book(gw, AAPL)["asks"][0][0]
    place(c, 1, stock(), order("BUY", 100, "LMT", ask))
    place(c, 2, stock(), order("BUY", 100, "LMT", ask, outsideRth=True))
    place(c, 3, stock(), order("BUY", 100, "MKT", outsideRth=True))
    wait_status(c, 2, "Filled")
    assert "does not" not in c.wait_error(3, 2109)
    step(gw, 20)
    assert set(statuses(c, 1)) == {"PreSubmitted"} and not execs(c, 1)
    assert set(statuses(c, 3)) == {"PreSubmitted"} and not execs(c, 3)


def test_ioc_and_fok(sim):
    gw, c = sim
    ask = book(gw, AAPL)["asks"][0][0]
    place(c, 1, stock(), order("BUY", 5000, "LMT", ask, tif="IOC"))
    wait_status(c, 1, "Cancelled")
    assert 0 < sum(float(e.shares) for e in execs(c, 1)) < 5000
    place(c, 2, stock(), order("BUY", 5000, "LMT", ask, tif="FOK"))
    wait_status(c, 2, "Cancelled")
    assert not execs(c, 2)
    place(c, 3, stock(), order("BUY", 100, "MKT", tif="FOK"))
    wait_status(c, 3, "Filled")


def test_opening_order_fills_at_the_open(make_gateway, connect):
    gw = paused(make_gateway, start=BEFORE_OPEN)
    c = connect(gw, 1)
    place(c, 1, stock(), order("BUY", 100, "MKT", tif="OPG"))
    wait_status(c, 1, "Submitted")
    step(gw, 4)
    assert not execs(c, 1)
    step(gw, 8)
    wait_status(c, 1, "Filled")
    assert execs(c, 1)[0].time >= "20261117 09:30:00"


def test_good_till_date_expires(sim):
    gw, c = sim
    place(c, 1, stock(), order("BUY", 100, "LMT", 100.0, tif="GTD", goodTillDate="20261117 10:00:05 US/Eastern"))
    wait_status(c, 1, "Submitted")
    step(gw, 24)
    wait_status(c, 1, "Cancelled")


def test_combo_fills_every_leg_at_its_price(sim):
    gw, c = sim
    a, m = book(gw, AAPL), book(gw, MSFT)
    place(c, 1, combo([(AAPL, 1, "BUY"), (MSFT, 1, "SELL")]), order("BUY", 100))
    status = wait_status(c, 1, "Filled")
    got = {e.execId: (contract.secType, contract.conId, e.side, float(e.shares), e.price)
           for _, contract, e in c.all("execDetails", -1)}
    legs = sorted(v for v in got.values() if v[0] == "STK")
    assert legs == sorted([("STK", AAPL, "BOT", 100.0, a["asks"][0][0]), ("STK", MSFT, "SLD", 100.0, m["bids"][0][0])])
    net = round(a["asks"][0][0] - m["bids"][0][0], 10)
    assert [v for v in got.values() if v[0] == "BAG"] == [("BAG", 0, "BOT", 100.0, net)]
    assert math.isclose(status[4], net)
    reports = {a[0].execId for a in c.wait("commissionAndFeesReport", count=3)}
    assert reports == set(got)


def test_option_future_forex_and_bond_orders_fill(sim):
    gw, c = sim
    option = gw.universe.options_of(AAPL)[6]
    fut = next(i for i in gw.universe.instruments if i.sec_type == "FUT")
    cases = [(1, by_con_id(option.con_id, "SMART"), 5), (2, by_con_id(fut.con_id, "CME"), 2),
             (3, by_con_id(EURUSD, "IDEALPRO"), 20_000), (4, by_con_id(BOND, "SMART"), 10)]
    for oid, contract, qty in cases:
        place(c, oid, contract, order("BUY", qty))
    for oid, contract, qty in cases:
        wait_status(c, oid, "Filled")
        assert math.isclose(sum(float(e.shares) for e in execs(c, oid)), qty)
    def quote():
        from ibframe.sim.market.option_market import quoter_for
        q = quoter_for(gw, option)
        return q.bid, q.ask
    bid, ask = gw.call(quote)
    assert all(bid - 1e-9 <= e.price for e in execs(c, 1))


def test_same_seed_same_fills_and_the_market_is_untouched(make_gateway, connect):
    runs = []
    for trade in (True, True, False):
        gw = paused(make_gateway)
        c = connect(gw, 1)
        if trade:
            for oid in range(1, 6):
                place(c, oid, stock(), order("BUY", 700))
                wait_status(c, oid, "Filled")
                step(gw, 3)
        else:
            step(gw, 15)
        fills = [(e.orderId, e.price, float(e.shares), e.exchange) for e in (a[2] for a in c.all("execDetails", -1))]
        runs.append((fills, book(gw, AAPL)))
    assert runs[0] == runs[1]
    assert runs[0][1] == runs[2][1]                # trading does not change the simulated market
