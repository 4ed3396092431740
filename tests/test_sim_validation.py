"""Bad input into the simulator as TWS would answer it, over the real ibapi client, and a supervised market.

Each bad order gets TWS's error for its order id (never a fill, never an orderStatus for an order
that was never accepted); each request naming an unusable contract gets 321 with its request id
(never the 322/-1 of a handler traceback); an exception while working an order rejects that order
(201 + orderStatus Cancelled), is logged once per cause, and the market goes on for every client.
"""
from __future__ import annotations

import math

import pytest
from ibapi.contract import Contract

from sim_order_kit import AAPL, by_con_id, order, paused, place, step, stock, wait_status
from test_sim_limits import sim_log  # noqa: F401  (fixture)

NAN, INF = math.nan, math.inf


def fills_and_statuses(c, oid: int) -> list:
    return c.all("orderStatus", oid) + c.all("execDetails", oid) + c.all("openOrder", oid)


@pytest.fixture
def sim(make_gateway, connect):
    gw = paused(make_gateway)
    return gw, connect(gw, 1)


@pytest.fixture
def text_sim(make_gateway, connect):
    """At 200: a non-numeric price or multiplier can only reach TWS as text (from 203 ibapi writes orders and
    contracts as protobuf, whose number fields cannot hold 'abc': the client itself refuses them)."""
    gw = paused(make_gateway, max_server_version=200)
    return gw, connect(gw, 1)


def tick_count(c, req_id: int) -> int:
    return len(c.all("tickPrice", req_id)) + len(c.all("tickSize", req_id))


def assert_market_moves(gw, c, req_id: int) -> None:
    """The market still steps and streams: more ticks arrive after stepping it."""
    before = tick_count(c, req_id)
    for _ in range(20):
        step(gw, 10)
        answers = len(c.all("currentTime")) + 1
        c.reqCurrentTime()                        # a round trip: what the steps sent has arrived after it
        c.wait("currentTime", count=answers)
        if tick_count(c, req_id) > before:
            return
    raise AssertionError("the market stopped streaming")


# --- orders ---------------------------------------------------------------------------------------

def test_nan_quantity_is_rejected_and_the_market_goes_on(sim, connect, sim_log):
    gw, c = sim
    other = connect(gw, 2)
    other.reqMktData(9, stock(), "", False, False, [])
    other.wait("tickPrice", lambda a: a[0] == 9)
    place(c, 1, stock(), order("SELL", NAN))
    assert any(code == 201 and "totalQuantity" in text for _, code, text in c.errors(1)), c.errors(1)
    step(gw, 20)
    assert not fills_and_statuses(c, 1), "a NaN order must never be accepted or filled"
    assert_market_moves(gw, other, 9)
    place(other, 5, stock(), order("BUY", 100))          # trading still works for everyone
    wait_status(other, 5, "Filled")
    assert not sim_log.tracebacks()


BAD_ORDERS = [
    ("qty_inf", order("BUY", INF), 201, "totalQuantity"),
    ("qty_neg_inf", order("BUY", -INF), 201, "totalQuantity"),
    ("qty_negative", order("BUY", -100), 201, "negative"),
    ("qty_zero", order("BUY", 0), 434, "cannot be zero"),
    ("lmt_nan", order("BUY", 100, "LMT", lmt=NAN), 201, "lmtPrice"),
    ("lmt_inf", order("BUY", 100, "LMT", lmt=INF), 201, "lmtPrice"),
    ("lmt_negative", order("BUY", 100, "LMT", lmt=-5.0), 201, "limit price"),
    ("stp_negative", order("SELL", 100, "STP", aux=-1.0), 201, "aux price"),
    ("stp_nan", order("SELL", 100, "STP", aux=NAN), 201, "auxPrice"),
    ("stp_lmt_negative_limit", order("SELL", 100, "STP LMT", lmt=-1.0, aux=150.0), 201, "limit price"),
    ("trail_negative_amount", order("SELL", 100, "TRAIL", aux=-2.0), 201, "trailing amount"),
    ("trail_percent_over_100", order("SELL", 100, "TRAIL", trailingPercent=150.0), 201, "trailingPercent"),
    ("trail_stop_nan", order("SELL", 100, "TRAIL", aux=1.0, trailStopPrice=NAN), 201, "trailStopPrice"),
    ("cash_qty_nan", order("BUY", 0, cashQty=NAN), 201, "cashQty"),
    ("cash_qty_negative", order("BUY", 0, cashQty=-1000.0), 201, "cashQty"),
    ("min_qty_above_size", order("BUY", 100, "LMT", lmt=150.0, minQty=500), 201, "minQty"),
    ("discretionary_negative", order("BUY", 100, "LMT", lmt=150.0, discretionaryAmt=-1.0), 201, "discretionaryAmt"),
    ("own_parent", order("BUY", 100, "LMT", lmt=150.0, parentId=1), 201, "parent"),
    ("huge_quantity", order("BUY", 1e30), 383, "size"),
]


@pytest.mark.parametrize("o, code, words", [b[1:] for b in BAD_ORDERS], ids=[b[0] for b in BAD_ORDERS])
def test_bad_orders_get_the_tws_error_for_their_id_and_never_fill(sim, sim_log, o, code, words):
    gw, c = sim
    place(c, 1, stock(), o)
    errors = c.errors(1)
    assert [(code, words) for _, k, text in errors if k == code and words in text], errors
    step(gw, 10)
    c.reqCurrentTime()
    c.wait("currentTime")
    assert not fills_and_statuses(c, 1)
    assert not sim_log.tracebacks()
    place(c, 2, stock(), order("BUY", 10))               # the id and the client stay usable
    wait_status(c, 2, "Filled")


def test_market_order_with_zero_prices_is_fine(sim):
    gw, c = sim
    place(c, 1, stock(), order("BUY", 10, "MKT", lmt=0.0, aux=0.0))
    wait_status(c, 1, "Filled")


def test_modify_to_a_nan_quantity_is_refused_and_the_order_keeps_working(sim, sim_log):
    gw, c = sim
    place(c, 1, stock(), order("BUY", 100, "LMT", lmt=100.0))
    wait_status(c, 1, "Submitted")
    place(c, 1, stock(), order("BUY", NAN, "LMT", lmt=100.0))
    assert any(code == 201 and "totalQuantity" in text for _, code, text in c.errors(1))
    c.reqOpenOrders()
    c.wait("openOrderEnd")
    assert float(c.all("openOrder", 1)[-1][2].totalQuantity) == 100
    assert not sim_log.tracebacks()


def test_non_numeric_order_field_is_error_320_for_that_order_id(text_sim, sim_log):
    gw, c = text_sim
    bad = order("BUY", 100, "LMT", lmt=150.0)
    bad.lmtPrice = "abc"                                  # ibapi writes it as it is
    place(c, 7, stock(), bad)
    assert [code for _, code, _ in c.errors(7)] == [320], c.errors()
    assert not [e for e in c.errors() if e[0] == -1 and e[1] in (320, 322)]
    assert not fills_and_statuses(c, 7)
    assert not sim_log.tracebacks()


def test_order_with_a_non_numeric_multiplier_is_321(text_sim, sim_log):
    gw, c = text_sim
    contract = stock()
    contract.multiplier, contract.secType = "abc", ""
    place(c, 3, contract, order("BUY", 100))
    assert [code for _, code, _ in c.errors(3)] == [321]
    assert not fills_and_statuses(c, 3)
    assert not sim_log.tracebacks()


# --- requests -----------------------------------------------------------------------------------------

def garbage_contract(**fields) -> Contract:
    c = stock()
    c.multiplier, c.secType = "abc", ""
    for k, v in fields.items():
        setattr(c, k, v)
    return c


REQUESTS = {
    "mktdata": lambda c, k, q: c.reqMktData(k, q, "", False, False, []),
    "contract_details": lambda c, k, q: c.reqContractDetails(k, q),
    "history": lambda c, k, q: c.reqHistoricalData(k, q, "", "1 D", "1 min", "TRADES", 1, 1, False, []),
    "head_timestamp": lambda c, k, q: c.reqHeadTimeStamp(k, q, "TRADES", 1, 1),
    "historical_ticks": lambda c, k, q: c.reqHistoricalTicks(k, q, "", "20261118 11:00:00 US/Eastern", 10,
                                                              "TRADES", 1, False, []),
    "realtime_bars": lambda c, k, q: c.reqRealTimeBars(k, q, 5, "TRADES", True, []),
    "tick_by_tick": lambda c, k, q: c.reqTickByTickData(k, q, "Last", 0, False),
    "depth": lambda c, k, q: c.reqMktDepth(k, q, 5, False, []),
    "implied_vol": lambda c, k, q: c.calculateImpliedVolatility(k, q, 1.0, 100.0, []),
    "option_price": lambda c, k, q: c.calculateOptionPrice(k, q, 0.3, 100.0, []),
}


def nan_strike() -> Contract:
    c = stock()
    c.strike = NAN
    return c


@pytest.mark.parametrize("kind", list(REQUESTS))
@pytest.mark.parametrize("make", [garbage_contract, nan_strike, lambda: garbage_contract(multiplier="1e400")],
                         ids=["multiplier_abc", "strike_nan", "multiplier_inf"])
def test_bad_contract_fields_get_321_with_the_request_id(gateway, client, make_gateway, connect, sim_log, kind, make):
    if make is garbage_contract:                 # 'abc' reaches TWS only as text (see text_sim)
        client = connect(make_gateway(max_server_version=200))
    contract = make()
    req_id = 4000 + list(REQUESTS).index(kind)
    REQUESTS[kind](client, req_id, contract)
    text = client.wait_error(req_id, 321)
    assert "cause" in text
    client.reqCurrentTime()
    client.wait("currentTime")
    assert not [e for e in client.errors() if e[1] == 322 or (e[0] == -1 and e[1] == 320)], client.errors()
    assert not sim_log.tracebacks()


@pytest.mark.parametrize("call", [
    lambda c, k, q: c.calculateOptionPrice(k, q, -math.inf, 190.0, []),
    lambda c, k, q: c.calculateOptionPrice(k, q, 0.0, 190.0, []),
    lambda c, k, q: c.calculateImpliedVolatility(k, q, NAN, 190.0, []),
    lambda c, k, q: c.calculateImpliedVolatility(k, q, 5.0, -1.0, []),
], ids=["vol_neg_inf", "vol_zero", "price_nan", "under_negative"])
def test_option_calculation_with_impossible_inputs_is_321(gateway, client, sim_log, call):
    option = by_con_id(gateway.universe.options_of(AAPL)[0].con_id, "SMART")
    call(client, 4200, option)
    assert "cause" in client.wait_error(4200, 321)
    assert not client.all("tickOptionComputation", 4200)
    assert not sim_log.tracebacks()


def test_a_well_formed_contract_that_names_nothing_is_still_200(gateway, client):
    q = stock("NOSUCH")
    client.reqMktData(4100, q, "", False, False, [])
    client.wait_error(4100, 200)
    client.reqContractDetails(4101, by_con_id(123456789))
    client.wait_error(4101, 200)


# --- supervision ---------------------------------------------------------------------------------------

def test_an_order_failing_inside_the_step_is_rejected_and_the_market_goes_on(sim, connect, sim_log):
    gw, c = sim
    other = connect(gw, 2)
    other.reqMktData(9, stock(), "", False, False, [])
    other.wait("tickPrice", lambda a: a[0] == 9)
    gw.faults.fail_orders_in_step("poison")
    place(c, 1, stock(), order("BUY", 100, "LMT", lmt=100.0, orderRef="poison"))
    place(c, 2, stock(), order("BUY", 100, "LMT", lmt=100.5, orderRef="poison"))
    place(c, 3, stock(), order("BUY", 100, "LMT", lmt=100.0, orderRef="healthy"))
    wait_status(c, 1, "Submitted")
    step(gw, 3)
    for oid in (1, 2):
        wait_status(c, oid, "Cancelled")
        assert any(code == 201 and "simulator failed" in text for _, code, text in c.errors(oid)), c.errors(oid)
    step(gw, 30)
    # one traceback for the one cause, although two orders failed, and none per later step
    failures = sim_log.tracebacks()
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert "InjectedStepFailure" in failures[0].getMessage()
    assert sum(gw.supervisor.failures().values()) == 2
    # the healthy order still works, the market still streams, new orders still fill
    c.reqOpenOrders()
    c.wait("openOrderEnd")
    assert c.all("orderStatus", 3)[-1][1] == "Submitted"
    assert_market_moves(gw, other, 9)
    place(other, 5, stock(), order("BUY", 100))
    wait_status(other, 5, "Filled")


def test_failures_are_logged_once_per_cause_then_counted(make_gateway, sim_log):
    gw = paused(make_gateway)
    boom = []

    def listener(ev):
        boom.append(1)
        raise ValueError("broken subscriber")
    for _ in range(3):                                    # three subscribers failing the same way
        gw.call(gw.on_step, AAPL, listener)
    step(gw, 5)
    assert len(boom) == 3, "a failing subscriber is dropped after its first failure"
    assert len(sim_log.tracebacks()) == 1
    assert list(gw.supervisor.failures().values()) == [3]
