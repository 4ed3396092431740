"""The paper broker's order lifecycle as TWS reports it, through the official ibapi client.

openOrder / orderStatus transitions, executions with commission reports, cancels and their races,
modifications, rejects and their error texts, brackets, OCA groups, what-if previews, open /
completed orders, reqExecutions filters, client 0 binding, reconnects and the broker's saved state.
"""
from __future__ import annotations

import json
import math
import time

import pytest
from ibapi.execution import ExecutionFilter
from ibapi.order_cancel import OrderCancel

from sim_order_kit import (
    AAPL, MSFT, SPY, book, execs, order, paused, place, statuses, step, step_until, stock, wait_status,
)

UNSET_TEXT = "1.7976931348623157E308"


@pytest.fixture
def sim(make_gateway, connect):
    gw = paused(make_gateway)
    return gw, connect(gw, 1)


def far_buy(qty: float = 100, **attrs):
    return order("BUY", qty, "LMT", 100.00, **attrs)


def test_limit_order_lifecycle_decodes_at_each_version(versioned_client):
    c = versioned_client
    oid = c.wait("nextValidId")[0][0]
    c.placeOrder(oid, stock(), far_buy())
    opened = c.wait("openOrder", lambda a: a[0] == oid)[0]
    contract, o, state = opened[1], opened[2], opened[3]
    assert (contract.conId, contract.symbol, o.lmtPrice, float(o.totalQuantity)) == (AAPL, "AAPL", 100.0, 100.0)
    assert o.clientId == c.clientId and o.permId > 0 and state.status in ("PreSubmitted", "Submitted")
    status = c.wait("orderStatus", lambda a: a[0] == oid)[0]
    assert status[1] in ("PreSubmitted", "Submitted") and float(status[3]) == 100 and status[8] == c.clientId
    c.cancelOrder(oid, OrderCancel())
    wait_status(c, oid, "Cancelled")
    assert c.wait_error(oid, 202) == "Order Canceled - reason:"


@pytest.mark.parametrize("version", (157, 176, 178, 190, 200))
def test_fill_lifecycle_decodes_at_each_version(make_gateway, connect, version):
    gw = paused(make_gateway, max_server_version=version)
    c = connect(gw, 1)
    place(c, 1, stock(), order("BUY", 100))
    wait_status(c, 1, "Filled")
    c.wait("commissionAndFeesReport")
    names = [n for n, a in c.w.events if n in ("openOrder", "orderStatus", "execDetails", "commissionAndFeesReport")]
    assert names[:4] == ["openOrder", "orderStatus", "openOrder", "orderStatus"]
    assert names[4:] == ["execDetails", "openOrder", "orderStatus", "commissionAndFeesReport"]
    (e,) = execs(c, 1)
    report = c.all("commissionAndFeesReport")[0][0]
    assert report.execId == e.execId and report.commissionAndFees > 0 and report.currency == "USD"
    assert e.side == "BOT" and e.clientId == 1 and e.acctNumber == "DU1234567"
    assert e.time.endswith(" US/Eastern") and len(e.execId.split(".")) == 4
    final = c.all("openOrder", 1)[-1][3]
    assert final.status == "Filled" and final.commissionAndFees == pytest.approx(report.commissionAndFees)


def test_statuses_and_commissions_on_every_fill(sim):
    gw, c = sim
    qty = sum(s for _, s, _ in book(gw, AAPL)["asks"][:3]) + 100
    place(c, 1, stock(), order("BUY", qty))
    wait_status(c, 1, "Filled")
    fills = execs(c, 1)
    assert len(fills) >= 3
    reports = c.wait("commissionAndFeesReport", count=len(fills))
    assert {r[0].execId for r in reports} == {e.execId for e in fills}
    assert len({e.execId for e in fills}) == len(fills) and len({e.permId for e in fills}) == 1
    st = [a for a in c.all("orderStatus", 1) if float(a[2]) > 0]
    assert [float(a[2]) for a in st] == sorted(float(a[2]) for a in st)          # filled only grows
    assert all(math.isclose(float(a[2]) + float(a[3]), qty) for a in st)        # filled + remaining = total
    assert statuses(c, 1).count("Filled") == 1 and statuses(c, 1)[-1] == "Filled"


def test_every_message_goes_to_the_placing_client_with_its_id(sim, connect):
    gw, c1 = sim
    c2 = connect(gw, 2)
    place(c1, 1, stock(), order("BUY", 100))
    place(c2, 1, stock("MSFT"), order("SELL", 100))
    wait_status(c1, 1, "Filled")
    wait_status(c2, 1, "Filled")
    for c, symbol in ((c1, "AAPL"), (c2, "MSFT")):
        assert {a[8] for a in c.all("orderStatus")} == {c.clientId}
        assert {a[2].clientId for a in c.all("openOrder")} == {c.clientId}
        assert {(a[1].symbol, a[2].clientId) for a in c.all("execDetails")} == {(symbol, c.clientId)}


def test_cancel_and_its_errors(sim):
    gw, c = sim
    place(c, 1, stock(), far_buy())
    c.cancelOrder(1, OrderCancel())
    wait_status(c, 1, "Cancelled")
    assert c.wait_error(1, 202) == "Order Canceled - reason:"
    c.cancelOrder(1, OrderCancel())
    assert c.wait_error(1, 10148) == "OrderId 1 that needs to be cancelled cannot be cancelled, state: Cancelled."
    c.cancelOrder(999, OrderCancel())
    assert c.wait_error(999, 10147) == "OrderId 999 that needs to be cancelled is not found."
    place(c, 2, stock(), order("BUY", 100))
    wait_status(c, 2, "Filled")
    c.cancelOrder(2, OrderCancel())
    assert c.wait_error(2, 10148) == "OrderId 2 that needs to be cancelled cannot be cancelled, state: Filled."


def test_cancel_fill_race_resolves_one_way(sim):
    gw, c = sim
    ask = book(gw, AAPL)["asks"][0][0]
    for oid in range(1, 21):
        price = ask if oid % 2 else 100.0
        c.placeOrder(oid, stock(), order("BUY", 100, "LMT", price))
        c.cancelOrder(oid, OrderCancel())                 # races the fill: no wait in between
    outcomes = {}
    for oid in range(1, 21):
        final = c.wait("orderStatus", lambda a, o=oid: a[0] == o and a[1] in ("Filled", "Cancelled"))[0][1]
        outcomes[oid] = final
    time.sleep(0.2)
    for oid, final in outcomes.items():
        seen = set(statuses(c, oid))
        assert not {"Filled", "Cancelled"} <= seen
        if final == "Filled":
            assert c.wait_error(oid, 10148).endswith("state: Filled.")
        else:
            assert c.wait_error(oid, 202) and not execs(c, oid)
    assert set(outcomes.values()) == {"Filled", "Cancelled"}


def test_order_ids_reqids_and_duplicates(sim):
    gw, c = sim
    place(c, 10, stock(), far_buy())
    place(c, 5, stock(), far_buy())
    assert c.wait_error(5, 103) == "Duplicate order id"
    c.reqIds(1)
    assert c.wait("nextValidId", lambda a: a[0] > 10)[0][0] == 11
    place(c, 10, stock(), far_buy(lmtPrice=101.0))       # the same id again is a modification
    assert not c.errors(10)


def test_modify_changes_price_and_quantity(sim):
    gw, c = sim
    place(c, 1, stock(), far_buy())
    place(c, 1, stock(), order("BUY", 200, "LMT", 101.50))
    opened = c.wait("openOrder", lambda a: a[0] == 1 and a[2].lmtPrice == 101.5)[0]
    assert float(opened[2].totalQuantity) == 200
    lo = gw.call(lambda: gw.broker.find(1, 1))
    assert (lo.work_price, lo.remaining) == (101.5, 200)
    assert c.all("orderStatus", 1)[-1][1] == "Submitted"
    ask = book(gw, AAPL)["asks"][0][0]
    place(c, 1, stock(), order("BUY", 200, "LMT", round(ask + 0.05, 2)))   # now marketable: it trades
    wait_status(c, 1, "Filled")
    place(c, 1, stock(), order("BUY", 300, "LMT", 101.0))
    assert c.wait_error(1, 104) == "Can't modify a filled order."
    place(c, 2, stock(), far_buy())
    place(c, 2, stock(), order("SELL", 100, "LMT", 100.0))
    assert c.wait_error(2, 105) == "Order being modified does not match original order."


def test_rejects_and_their_texts(sim):
    gw, c = sim
    place(c, 1, stock(), order("BUY", 0, "LMT", 100.0))
    assert c.wait_error(1, 434) == "The order size cannot be zero."
    place(c, 2, stock(), order("BUY", 100, "LMT", 100.001))
    assert c.wait_error(2, 110) == "The price does not conform to the minimum price variation for this contract."
    place(c, 3, stock("NOPE"), far_buy())
    assert c.wait_error(3, 200) == "No security definition has been found for the request"
    place(c, 4, stock(), order("BUY", 100, "MOC", tif="GTC"))
    assert c.wait_error(4, 113) == "The Tif option should be set to DAY for MOC and LOC orders."
    place(c, 5, stock(), order("BUY", 100, "PEG BENCH"))
    assert c.wait_error(5, 387).startswith("Unsupported order type")
    place(c, 6, stock(), order("BUY", 1_000_000))
    assert c.wait_error(6, 201).startswith("Order rejected - reason:We are unable to accept your order.")
    wait_status(c, 6, "Inactive")
    gw.call(gw.broker.reject_next, 1, "Simulated exchange reject")
    place(c, 7, stock(), order("BUY", 100))
    assert c.wait_error(7, 201) == "Order rejected - reason:Simulated exchange reject"
    wait_status(c, 7, "Inactive")
    assert not execs(c, 7)
    for oid in range(1, 6):
        assert not c.all("orderStatus", oid)          # refused before acceptance: no order exists


def test_what_if_previews_margin_and_never_executes(sim):
    gw, c = sim
    c.placeOrder(1, stock(), order("BUY", 1000, whatIf=True))
    opened = c.wait("openOrder", lambda a: a[0] == 1)[0]
    o, state = opened[2], opened[3]
    assert o.whatIf and state.status == "PreSubmitted"
    assert state.initMarginChange != UNSET_TEXT and float(state.initMarginChange) > 0
    assert float(state.initMarginAfter) == pytest.approx(float(state.initMarginBefore) + float(state.initMarginChange),
                                                         abs=0.02)
    assert float(state.equityWithLoanBefore) > 0 and state.commissionAndFees > 0
    step(gw, 10)
    c.reqOpenOrders()
    c.wait("openOrderEnd")
    assert not c.all("orderStatus", 1) and not execs(c, 1) and len(c.all("openOrder", 1)) == 1


def test_transmit_false_is_held_until_transmitted(sim):
    gw, c = sim
    ask = book(gw, AAPL)["asks"][0][0]
    place(c, 1, stock(), order("BUY", 100, "LMT", ask, transmit=False))
    step(gw, 20)
    assert not execs(c, 1) and set(statuses(c, 1)) == {"PreSubmitted"}
    ask = book(gw, AAPL)["asks"][0][0]
    place(c, 1, stock(), order("BUY", 100, "LMT", ask, transmit=True))
    wait_status(c, 1, "Filled")


def test_bracket_children_work_only_after_the_parent_fills(sim):
    gw, c = sim
    b = book(gw, AAPL)
    bid, ask = b["bids"][0][0], b["asks"][0][0]
    place(c, 1, stock(), order("BUY", 100, "LMT", round(bid - 1, 2), transmit=False))
    place(c, 2, stock(), order("SELL", 100, "LMT", round(ask + 5, 2), parentId=1, transmit=False))
    place(c, 3, stock(), order("SELL", 100, "STP", aux=round(bid - 5, 2), parentId=1, transmit=True))
    step(gw, 20)
    assert not c.all("execDetails") and set(statuses(c, 2)) == {"PreSubmitted"}
    assert c.all("openOrder", 2)[-1][2].parentId == 1
    ask = book(gw, AAPL)["asks"][0][0]
    place(c, 1, stock(), order("BUY", 100, "LMT", round(ask + 0.05, 2)))
    wait_status(c, 1, "Filled")
    wait_status(c, 2, "Submitted")
    first_child_status = next(i for i, (n, a) in enumerate(c.w.events) if n == "orderStatus" and a[0] == 2
                              and a[1] == "Submitted")
    parent_filled = next(i for i, (n, a) in enumerate(c.w.events) if n == "orderStatus" and a[0] == 1
                         and a[1] == "Filled")
    assert parent_filled < first_child_status
    bid = book(gw, AAPL)["bids"][0][0]
    place(c, 2, stock(), order("SELL", 100, "LMT", round(bid - 0.05, 2), parentId=1))   # take profit now
    wait_status(c, 2, "Filled")
    wait_status(c, 3, "Cancelled")                                       # its sibling goes
    assert not execs(c, 3)


@pytest.mark.parametrize("oca_type", (1, 2, 3))
def test_oca_groups(sim, oca_type):
    gw, c = sim
    ask = book(gw, AAPL)["asks"][0][0]
    place(c, 1, stock(), order("BUY", 300, "LMT", 100.0, ocaGroup="g", ocaType=oca_type))
    place(c, 2, stock(), order("BUY", 100, "LMT", round(ask + 0.05, 2), ocaGroup="g", ocaType=oca_type))
    wait_status(c, 2, "Filled")
    if oca_type == 1:
        wait_status(c, 1, "Cancelled")
    else:
        reduced = c.wait("openOrder", lambda a: a[0] == 1 and float(a[2].totalQuantity) == 200)[0]
        assert reduced[2].ocaType == oca_type
        c.wait("orderStatus", lambda a: a[0] == 1 and float(a[3]) == 200)    # remaining follows the openOrder


def test_open_orders_all_open_orders_and_reconnect(sim, connect):
    gw, c1 = sim
    c2 = connect(gw, 2)
    place(c1, 1, stock(), far_buy())
    place(c2, 7, stock("MSFT"), far_buy())
    c1.reqOpenOrders()
    c1.wait("openOrderEnd")
    assert {(a[0], a[2].clientId) for a in c1.all("openOrder")} == {(1, 1)}
    c1.reqAllOpenOrders()
    c1.wait("openOrderEnd", count=2)
    assert {(a[0], a[2].clientId) for a in c1.all("openOrder")} == {(1, 1), (7, 2)}
    c2.close()
    deadline = time.monotonic() + 5
    while gw.call(lambda: 2 in gw.sessions) and time.monotonic() < deadline:
        time.sleep(0.01)
    again = connect(gw, 2)
    opened = again.wait("openOrder", lambda a: a[0] == 7)[0]
    assert opened[2].clientId == 2 and opened[1].symbol == "MSFT"
    assert again.wait("orderStatus", lambda a: a[0] == 7)[0][1] == "Submitted"


def test_client_zero_binds_manual_orders(sim, connect):
    gw, c = sim
    zero = connect(gw, 0)
    before = gw.call(gw.broker.enter_manual, "DU1234567", AAPL, "BUY", 100, "LMT", 100.0)
    c.reqAllOpenOrders()
    c.wait("openOrderEnd")
    assert [(a[0], a[2].clientId) for a in c.all("openOrder")] == [(0, 0)]          # unbound: orderId 0
    zero.reqOpenOrders()
    zero.wait("openOrderEnd")
    bound = zero.wait("orderBound")[0]
    assert bound[0] == before.perm_id and bound[1] == 0 and bound[2] < 0
    assert zero.all("openOrder")[-1][0] == bound[2]
    zero.reqAutoOpenOrders(True)
    zero.reqCurrentTime()
    zero.wait("currentTime")
    later = gw.call(gw.broker.enter_manual, "DU1234567", MSFT, "BUY", 100, "LMT", 100.0)
    bound2 = zero.wait("orderBound", lambda a: a[0] == later.perm_id)[0]
    assert bound2[2] < bound[2]
    zero.wait("openOrder", lambda a: a[0] == bound2[2])
    zero.cancelOrder(bound2[2], OrderCancel())
    wait_status(zero, bound2[2], "Cancelled")
    c.reqAutoOpenOrders(True)
    c.wait("error", lambda a: a[2] == 321)


def test_completed_orders(sim):
    gw, c = sim
    place(c, 1, stock(), order("BUY", 100))
    place(c, 2, stock(), far_buy())
    c.cancelOrder(2, OrderCancel())
    wait_status(c, 1, "Filled")
    wait_status(c, 2, "Cancelled")
    c.reqCompletedOrders(False)
    c.wait("completedOrdersEnd")
    done = [(a[1].permId, a[2].status, float(a[1].filledQuantity)) for a in c.all("completedOrder")]
    perm = {a[0]: a[2].permId for a in c.all("openOrder")}
    assert done == [(perm[1], "Filled", 100.0), (perm[2], "Cancelled", 0.0)]
    assert all(a[2].completedTime.endswith("US/Eastern") for a in c.all("completedOrder"))


def test_req_executions_filters(sim, connect):
    gw, c1 = sim
    c2 = connect(gw, 2)
    place(c1, 1, stock(), order("BUY", 100))
    place(c1, 2, stock("MSFT"), order("SELL", 100))
    place(c2, 1, stock("SPY"), order("BUY", 100))
    for c, oid in ((c1, 1), (c1, 2), (c2, 1)):
        wait_status(c, oid, "Filled")

    def ask(req_id, **criteria):
        f = ExecutionFilter()
        for k, v in criteria.items():
            setattr(f, k, v)
        c1.reqExecutions(req_id, f)
        c1.wait("execDetailsEnd", lambda a: a[0] == req_id)
        rows = c1.all("execDetails", req_id)
        ids = {r[2].execId for r in rows}
        reports = {r[0].execId for r in c1.all("commissionAndFeesReport")}
        assert ids <= reports
        return sorted((r[1].symbol, r[2].side, r[2].clientId) for r in rows)

    assert ask(10) == [("AAPL", "BOT", 1), ("MSFT", "SLD", 1), ("SPY", "BOT", 2)]
    assert ask(11, symbol="AAPL") == [("AAPL", "BOT", 1)]
    assert ask(12, side="SELL") == [("MSFT", "SLD", 1)]
    assert ask(13, clientId=2) == [("SPY", "BOT", 2)]
    assert ask(14, secType="OPT") == []
    assert ask(15, time="20261117 11:00:00 US/Eastern") == []
    assert ask(16, acctCode="DU1234567", secType="STK") == ask(17)
    assert len(ask(18, specificDates=[20261117])) == 3 and ask(19, specificDates=[20261116]) == []
    assert len(ask(20, lastNDays=2)) == 3


def test_liquidation_orders_are_reported_as_such(sim):
    gw, c = sim
    place(c, 1, stock(), order("BUY", 100))
    wait_status(c, 1, "Filled")
    gw.call(gw.broker.liquidate, "DU1234567", AAPL, 100, "test deficit")
    c.reqExecutions(5, ExecutionFilter())
    c.wait("execDetailsEnd", lambda a: a[0] == 5)
    rows = [r[2] for r in c.all("execDetails", 5)]
    assert [(e.side, e.liquidation) for e in rows] == [("BOT", 0), ("SLD", 1)]
    c.reqCompletedOrders(True)
    c.wait("completedOrdersEnd")
    assert len(c.all("completedOrder")) == 1                 # apiOnly leaves the liquidation out


def test_state_survives_a_restart(sim, make_gateway, connect):
    gw, c = sim
    place(c, 1, stock(), order("BUY", 100))
    place(c, 2, stock(), far_buy())
    wait_status(c, 1, "Filled")
    state = json.loads(json.dumps(gw.call(gw.broker.to_state)))
    c.close()
    gw2 = paused(make_gateway)
    gw2.call(gw2.broker.load_state, state)
    again = connect(gw2, 1)
    assert again.wait("nextValidId")[0][0] == 3
    assert again.wait("openOrder", lambda a: a[0] == 2)[0][2].lmtPrice == 100.0
    again.reqExecutions(3, ExecutionFilter())
    again.wait("execDetailsEnd")
    assert [r[2].orderId for r in again.all("execDetails", 3)] == [1]
    place(again, 2, stock(), far_buy(lmtPrice=99.0))         # still its order: a modification
    again.wait("openOrder", lambda a: a[0] == 2 and a[2].lmtPrice == 99.0)
    place(again, 1, stock(), far_buy())
    assert again.wait_error(1, 104)


def test_fills_after_a_partial_and_cancel_keep_the_partial(sim):
    gw, c = sim
    b = book(gw, AAPL)
    ask = b["asks"][0][0]
    place(c, 1, stock(), order("BUY", 5000, "LMT", ask))
    c.wait("execDetails", lambda a: a[2].orderId == 1)
    c.cancelOrder(1, OrderCancel())
    final = wait_status(c, 1, "Cancelled")
    filled = sum(float(e.shares) for e in execs(c, 1))
    assert float(final[2]) == filled > 0 and float(final[3]) == 5000 - filled
    assert step_until(gw, c, 1, "Cancelled", max_steps=4)


def test_order_frames_match_real_tws_at_176(make_gateway, connect):
    """The broker's openOrder / orderStatus / execDetails / commission frames have the real TWS layout."""
    from conftest import FIXTURE_FRAMES, shared_fixture
    from ibapi.message import IN
    from ibframe.sim.protocol.wire import encode_message
    real = {}
    for line in shared_fixture(FIXTURE_FRAMES).read_text().splitlines():
        if line.strip():
            frame = json.loads(line)
            real[frame["msg_id"]] = real.get(frame["msg_id"]) or frame["fields"]
    gw = paused(make_gateway, max_server_version=176)
    sent = []
    gw.taps.append(lambda session, fields: sent.append(fields))
    c = connect(gw, 1)
    place(c, 1, stock("SPY"), order("BUY", 1000, tif="IOC"))
    wait_status(c, 1, "Filled")
    c.wait("commissionAndFeesReport")
    for msg_id in (IN.OPEN_ORDER, IN.ORDER_STATUS, IN.EXECUTION_DATA, IN.COMMISSION_AND_FEES_REPORT):
        ours = next(f for f in sent if f[0] == msg_id)
        fields = encode_message(ours)[4:].split(b"\0")[:-1]
        assert len(fields) == len(real[msg_id]), (msg_id, [f.decode() for f in fields], real[msg_id])


def test_transmit_precaution_and_reference_rejects_and_their_texts(sim):
    gw, c = sim
    ask, bid = book(gw, AAPL)["asks"][0][0], book(gw, AAPL)["bids"][0][0]
    msft_ask = book(gw, MSFT)["asks"][0][0]
    place(c, 1, stock(), order("BUY", 100, "LMT"))                                 # no limit price
    assert c.wait_error(1, 107) == "Cannot transmit incomplete order."
    place(c, 2, stock(), order("BUY", 100, "STP"))                                 # no stop price: TWS's 321
    assert c.wait_error(2, 321) == "Error validating request.-'bN' : cause - Please enter a stop price"
    place(c, 3, stock(), order("BUY", 100, "LMT", round(ask * 1.6, 2)))           # 60% through the ask
    assert c.wait_error(3, 109) == ("Price is out of the range defined by the Percentage setting at order "
                                    "defaults frame. The order will not be transmitted.")
    place(c, 4, stock(), order("SELL", 100, "LMT", round(bid * 0.4, 2)))          # 60% through the bid
    c.wait_error(4, 109)
    place(c, 5, stock("MSFT"), order("BUY", 100, "LMT", round(msft_ask + 150, 2)))   # 15000 ticks through
    assert c.wait_error(5, 382) == ("The price specified violates the number of ticks constraint specified in "
                                    "the default order settings.")
    place(c, 6, stock(), order("BUY", 10_000_000))
    assert c.wait_error(6, 383) == ("The size specified violates the size constraint specified in the default "
                                    "order settings.")
    place(c, 7, stock(), far_buy(parentId=77))
    assert c.wait_error(7, 135) == "Can't find order with ID =77"
    place(c, 8, stock(exchange=""), far_buy())
    assert c.wait_error(8, 321) == "Error validating request.-'bN' : cause - Missing order exchange"
    place(c, 9, stock(), far_buy())
    c.cancelOrder(9, OrderCancel())
    wait_status(c, 9, "Cancelled")
    place(c, 10, stock(), order("SELL", 100, "LMT", 300.0, parentId=9))
    assert c.wait_error(10, 106) == "Can't transmit order ID: 10"
    place(c, 11, stock(), order("BUY", 100, "LMT", 1.00))                          # passive: never refused
    wait_status(c, 11, "Submitted")
    for oid in (1, 2, 3, 4, 5, 6, 7, 8, 10):
        assert not c.all("orderStatus", oid)          # refused before acceptance: no order exists


def test_a_moc_cannot_be_cancelled_inside_the_close_cutoff(make_gateway, connect):
    from sim_order_kit import eastern
    gw = paused(make_gateway, start=eastern(2026, 11, 17, 15, 52))
    c = connect(gw, 1)
    place(c, 1, stock(), order("BUY", 100, "MOC"))
    perm = c.wait("openOrder", lambda a: a[0] == 1)[0][2].permId
    c.cancelOrder(1, OrderCancel())
    assert c.wait_error(1, 161) == f"Cancel attempted when order is not in a cancellable state. Order permId ={perm}"
    assert "Cancelled" not in statuses(c, 1)
    assert gw.call(lambda: gw.broker.find(1, 1).status) == statuses(c, 1)[-1] == "Submitted"   # goes at the close


def test_futures_are_not_allowed_for_a_cash_account(make_gateway, connect, tmp_path):
    from account_kit import universe_with
    from ibapi.contract import Contract
    gw = make_gateway(universe=universe_with(tmp_path, {"id": "DU402", "cash": 50_000, "margin": "Cash"}))
    c = connect(gw, 1)
    es = Contract()
    es.symbol, es.secType, es.exchange, es.currency = "ES", "FUT", "CME", "USD"
    es.lastTradeDateOrContractMonth = gw.call(lambda: next(i.expiry for i in gw.universe.instruments
                                                           if i.symbol == "ES" and i.sec_type == "FUT"))
    place(c, 1, es, order("BUY", 1))
    assert c.wait_error(1, 203).startswith("The security ES") and c.errors(1)[0][2].endswith(
        "is not available or allowed for this account.")
    assert not c.all("orderStatus", 1)


def test_a_swallowed_place_order_gets_no_answer_at_all(sim):
    gw, c = sim
    gw.faults.swallow_next_orders(1)
    c.placeOrder(1, stock(), far_buy())
    place(c, 2, stock(), far_buy())                    # answered: everything sent before it was handled
    assert not c.all("openOrder", 1) and not c.all("orderStatus", 1) and not c.errors(1)
    assert gw.faults.history[-1].name == "swallow_next_orders"
