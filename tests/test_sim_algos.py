"""IB algos on the paper broker: validation errors as TWS sends them, and behaviour in time.

Twap / Vwap / ArrivalPx slice the parent over their window (several executions at different times,
following their schedule); Adaptive works between the mid and the far side, Urgent faster than
Patient. The market is paused and stepped by hand so fills can be checked against the book.
"""
from __future__ import annotations

import pytest

from sim_order_kit import AAPL, BOND, algo, book, by_con_id, execs, order, paused, place, step, stock, wait_status

END_10S = "20261117-15:00:10"            # UTC: ten seconds after the 10:00:00 US/Eastern start


@pytest.fixture
def sim(make_gateway, connect):
    gw = paused(make_gateway)
    return gw, connect(gw, 1)


def run_until_done(gw, c, oid, max_steps=400):
    for _ in range(max_steps):
        if gw.call(lambda: gw.broker.find(c.clientId, oid).done):
            return
        step(gw)
    raise AssertionError(f"order {oid} still working after {max_steps} steps")


def seconds(e) -> int:
    return int(e.time[12:14]) * 60 + int(e.time[15:17])


@pytest.mark.parametrize("strategy_type", ["Marketable", "Matching Midpoint"])
def test_twap_slices_over_its_window(sim, strategy_type):
    gw, c = sim
    place(c, 1, stock(), algo(order("BUY", 1000), "Twap", strategyType=strategy_type, endTime=END_10S,
                              allowPastEndTime=0))
    run_until_done(gw, c, 1)
    wait_status(c, 1, "Filled")
    fills = execs(c, 1)
    assert sum(float(e.shares) for e in fills) == 1000
    times = sorted({e.time for e in fills})
    assert len(fills) >= 10 and len(times) >= 10
    assert times[0] >= "20261117 10:00:00" and times[-1] <= "20261117 10:00:10 US/Eastern"
    early = sum(float(e.shares) for e in fills if seconds(e) < 5)
    assert 300 <= early <= 700                                      # linear: about half by mid-window


def test_vwap_and_arrival_price_follow_their_schedules(sim):
    gw, c = sim
    place(c, 1, stock(), algo(order("BUY", 1000), "Vwap", maxPctVol=0.1, endTime=END_10S))
    place(c, 2, stock("MSFT"), algo(order("SELL", 1000), "ArrivalPx", riskAversion="Get Done", maxPctVol=0.1,
                                    endTime=END_10S))
    run_until_done(gw, c, 1)
    run_until_done(gw, c, 2)
    for oid in (1, 2):
        wait_status(c, oid, "Filled")
        assert len(execs(c, oid)) >= 10
    vwap_quarter = sum(float(e.shares) for e in execs(c, 1) if seconds(e) < 3)
    arrival_quarter = sum(float(e.shares) for e in execs(c, 2) if seconds(e) < 3)
    assert vwap_quarter > 250                     # the U-shaped profile is front-heavy at the open of the window
    assert arrival_quarter > 600                  # "Get Done" front-loads


def test_adaptive_trades_between_mid_and_far_side(sim):
    gw, c = sim
    books = [book(gw, AAPL)]
    counts = [0]
    place(c, 1, stock(), algo(order("BUY", 100), "Adaptive", adaptivePriority="Patient"))
    for _ in range(400):
        counts[-1] = gw.call(lambda: len(gw.broker.executions))
        if gw.call(lambda: gw.broker.find(1, 1).done):
            break
        step(gw)
        books.append(book(gw, AAPL))
        counts.append(0)
    wait_status(c, 1, "Filled")
    records = gw.call(lambda: [(r.execution.price, r.execution.exchange) for r in gw.broker.executions])
    start = 0
    for b, n in zip(books, counts):
        for price, _ in records[start:n]:
            bid, ask = b["bids"][0][0], b["asks"][0][0]
            assert (bid + ask) / 2 - 1e-9 <= price <= ask + 1e-9
        start = max(start, n)
    assert start == len(records) > 0


def test_adaptive_urgent_is_faster_than_patient(make_gateway, connect):
    steps = {}
    for priority in ("Urgent", "Patient"):
        gw = paused(make_gateway)
        c = connect(gw, 1)
        place(c, 1, stock(), algo(order("BUY", 500, "LMT", 250.0), "Adaptive", adaptivePriority=priority))
        n = 0
        while not gw.call(lambda: gw.broker.find(1, 1).done) and n < 2000:
            step(gw)
            n += 1
        wait_status(c, 1, "Filled")
        steps[priority] = n
    assert steps["Urgent"] < steps["Patient"]


def test_algo_validation_errors(sim):
    gw, c = sim
    cases = [
        (1, stock(), algo(order("BUY", 100), "Foo"), 439, "Order processing failed. Algorithm definition not found."),
        (2, stock(), algo(order("BUY", 100), "Adaptive", adaptivePriority="Fast"), 441,
         "Order processing failed. Algo attributes validation failed: adaptivePriority"),
        (3, stock(), algo(order("BUY", 100), "Twap", speed="1"), 443, "Order processing failed. Unknown algo attribute."),
        (4, stock(), algo(order("BUY", 100), "Vwap", maxPctVol=0.9), 441,
         "Order processing failed. Algo attributes validation failed: maxPctVol"),
        (5, stock(), algo(order("BUY", 100), "Twap", endTime="20261117-14:00:00"), 441,
         "Order processing failed. Algo attributes validation failed: endTime"),
        (6, by_con_id(BOND, "SMART"), algo(order("BUY", 10), "Adaptive"), 442,
         "Specified algorithm is not allowed for this order."),
    ]
    for oid, contract, o, code, text in cases:
        place(c, oid, contract, o)
        assert c.wait_error(oid, code).startswith(text)
        assert not c.all("orderStatus", oid)


def test_a_modification_cannot_change_the_algo(sim):
    gw, c = sim
    place(c, 1, stock(), algo(order("BUY", 100, "LMT", 100.0), "Adaptive", adaptivePriority="Patient"))
    wait_status(c, 1, "Submitted")
    place(c, 1, stock(), order("BUY", 100, "LMT", 100.0))               # the same order without its algo
    assert c.wait_error(1, 440) == "Order modify failed. Algorithm cannot be modified."
    lo = gw.call(lambda: gw.broker.find(1, 1))
    assert lo.order.algoStrategy == "Adaptive" and not lo.done            # it keeps working as it was


def test_algo_without_window_runs_to_the_close(make_gateway, connect):
    from sim_order_kit import BEFORE_CLOSE
    gw = paused(make_gateway, start=BEFORE_CLOSE)
    c = connect(gw, 1)
    place(c, 1, stock(), algo(order("BUY", 200), "Twap", strategyType="Marketable"))
    run_until_done(gw, c, 1, max_steps=20)
    wait_status(c, 1, "Filled")
    assert all(e.time <= "20261117 16:00:00 US/Eastern" for e in execs(c, 1))
