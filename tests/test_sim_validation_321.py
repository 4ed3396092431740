"""TWS's 321 "Error validating request" for contracts and orders missing what TWS needs, over the real ibapi client.

A contract named without a conId needs an exchange, a valid secType and, for a future or an option,
an expiry or a local symbol (data requests); an order's contract also needs a currency; a STP / STP
LMT order needs its stop price. Each refusal is 321 with TWS's cause text and the request's (or the
order's) id, nothing else is sent for that id, and the session keeps answering the next valid
request. What TWS accepts stays accepted: a request or an order by conId (an order still names its
exchange), a reqContractDetails without secType or without a future's expiry. Rules and letters:
`ibframe/sim/market/lookup.py`.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from ibapi.contract import Contract

from ibframe.sim import SimConfig, SimGateway
from sim_order_kit import AAPL, by_con_id, order, paused, place, step, stock, wait_status

NY = ZoneInfo("America/New_York")
WED_11 = int(dt.datetime(2025, 1, 15, 11, 0, tzinfo=NY).timestamp())   # a Wednesday, US markets open

EXCHANGE = "Please enter exchange"
SEC_TYPE = "Please enter a valid security type"
EXPIRY = "Please enter a local symbol or an expiry"
CURRENCY = "Please enter currency"
STOP = "Please enter a stop price"


def text(letters: str, cause: str) -> str:
    return f"Error validating request.-'{letters}' : cause - {cause}"


@pytest.fixture(scope="module")
def gw():
    """Markets at 20x so real-time bars and tick streams answer within a second or two."""
    g = SimGateway(SimConfig(port=0, seed=7, step_seconds=0.25, speed=20.0, start_time=WED_11)).start()
    yield g
    g.stop()


def contract(symbol="AAPL", sec_type="STK", exchange="SMART", currency="USD", **fields) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, sec_type, exchange, currency
    for k, v in fields.items():
        setattr(c, k, v)
    return c


def future(g, **fields) -> Contract:
    """ES on CME, named by symbol; without expiry unless the test gives one."""
    return contract(**{"symbol": "ES", "sec_type": "FUT", "exchange": "CME", "currency": "USD", **fields})


def es_front(g):
    return min((i for i in g.universe.instruments if i.symbol == "ES" and i.sec_type == "FUT"),
               key=lambda i: i.expiry)


# request kind -> (its 321 letters, send(client, reqId, contract), the callback a valid request gets)
REQUESTS = {
    "mktdata": ("bO", lambda c, k, q: c.reqMktData(k, q, "", False, False, []), "tickPrice"),
    "depth": ("bR", lambda c, k, q: c.reqMktDepth(k, q, 3, False, []), "updateMktDepth"),
    "tick_by_tick": ("cd", lambda c, k, q: c.reqTickByTickData(k, q, "BidAsk", 0, False), "tickByTickBidAsk"),
    "history": ("bK", lambda c, k, q: c.reqHistoricalData(k, q, "", "1800 S", "1 min", "TRADES", 1, 1, False, []),
                "historicalDataEnd"),
    "head_timestamp": ("bK", lambda c, k, q: c.reqHeadTimeStamp(k, q, "TRADES", 1, 1), "headTimestamp"),
    "historical_ticks": ("bX", lambda c, k, q: c.reqHistoricalTicks(k, q, "", "20250114 12:00:00 US/Eastern", 10,
                                                                    "TRADES", 1, False, []), "historicalTicksLast"),
    "realtime_bars": ("bY", lambda c, k, q: c.reqRealTimeBars(k, q, 5, "TRADES", False, []), "realtimeBar"),
}
# A contract each request kind serves ("ISLAND": market depth by exchange needs a real venue).
GOOD = {"depth": lambda: contract(exchange="ISLAND")}

# case -> (the malformed contract, the cause)
BAD_CONTRACTS = {
    "no_exchange": (lambda g: contract(exchange=""), EXCHANGE),
    "no_sec_type": (lambda g: contract(sec_type=""), SEC_TYPE),
    "unknown_sec_type": (lambda g: contract(sec_type="invalid_secType"), SEC_TYPE),
    "future_without_expiry": (future, EXPIRY),
    "option_without_expiry": (lambda g: contract(sec_type="OPT", strike=200.0, right="C", multiplier="100"), EXPIRY),
    "future_no_expiry_no_exchange": (lambda g: future(g, exchange=""), EXCHANGE),    # the exchange is asked first
}


def answers(c, name: str, req_id: int) -> list:
    return c.all(name, req_id)


def round_trip(c) -> None:
    """Everything the gateway sent before this has arrived."""
    n = len(c.all("currentTime")) + 1
    c.reqCurrentTime()
    c.wait("currentTime", count=n)


def stop_request(c, kind: str, req_id: int) -> None:
    cancel = {"mktdata": lambda: c.cancelMktData(req_id), "depth": lambda: c.cancelMktDepth(req_id, False),
              "tick_by_tick": lambda: c.cancelTickByTickData(req_id),
              "realtime_bars": lambda: c.cancelRealTimeBars(req_id)}.get(kind)
    if cancel:
        cancel()


@pytest.mark.parametrize("case", list(BAD_CONTRACTS))
@pytest.mark.parametrize("kind", list(REQUESTS))
def test_a_request_on_a_contract_missing_what_tws_needs_is_321_and_the_session_goes_on(gw, connect, kind, case):
    c = connect(gw)
    letters, send, answer = REQUESTS[kind]
    make, cause = BAD_CONTRACTS[case]
    send(c, 51, make(gw))
    assert c.wait_error(51, 321) == text(letters, cause)
    round_trip(c)
    assert c.errors(51) == [(51, 321, text(letters, cause))]           # one error, for that request id
    assert not answers(c, answer, 51)
    send(c, 52, GOOD.get(kind, contract)())                             # the next valid request is served
    c.wait(answer, lambda a: a[0] == 52, timeout=20)
    stop_request(c, kind, 52)
    assert not c.errors(52)


@pytest.mark.parametrize("kind", ["mktdata", "history", "head_timestamp", "historical_ticks", "realtime_bars"])
def test_a_request_by_con_id_needs_no_exchange_sec_type_or_currency(gw, connect, kind):
    c = connect(gw)
    _, send, answer = REQUESTS[kind]
    send(c, 61, by_con_id(AAPL))                                        # as before: the conId names it
    c.wait(answer, lambda a: a[0] == 61, timeout=20)
    stop_request(c, kind, 61)
    assert not c.errors(61)


def test_a_future_by_local_symbol_or_expiry_needs_no_more(gw, connect):
    c = connect(gw)
    es = es_front(gw)
    c.reqMktData(71, future(gw, localSymbol=es.local_symbol), "", False, False, [])
    c.reqMktData(72, future(gw, lastTradeDateOrContractMonth=es.expiry), "", False, False, [])
    c.wait("tickPrice", lambda a: a[0] == 71)
    c.wait("tickPrice", lambda a: a[0] == 72)
    c.cancelMktData(71)
    c.cancelMktData(72)
    assert not c.errors(71) and not c.errors(72)


def test_market_data_for_a_combo_without_exchange_is_321(gw, connect):
    c = connect(gw)
    bag = contract("AAPL,MSFT", "BAG", "")
    send = REQUESTS["mktdata"][1]
    send(c, 75, bag)
    assert c.wait_error(75, 321) == text("bO", EXCHANGE)


# --- reqContractDetails ---------------------------------------------------------------------------------

def test_contract_details_refuse_only_an_unknown_sec_type(gw, connect):
    c = connect(gw)
    c.reqContractDetails(81, contract("D", "invalid_secType", "ICEEUSOFT", ""))
    assert c.wait_error(81, 321) == "Error validating request.-'bQ' : cause - Please enter a valid security type"
    # what TWS answers stays answered: no secType (every type), a future without expiry (every month), no exchange
    c.reqContractDetails(82, contract(sec_type=""))
    c.reqContractDetails(83, future(gw))
    c.reqContractDetails(84, contract(exchange=""))
    for req_id in (82, 83, 84):
        c.wait("contractDetailsEnd", lambda a, k=req_id: a[0] == k)
        assert not c.errors(req_id)
    assert len(c.all("contractDetails", 83)) > 1                       # every ES month
    assert c.errors(81) == [(81, 321, text("bQ", SEC_TYPE))]


# --- orders ----------------------------------------------------------------------------------------------

@pytest.fixture
def sim(make_gateway, connect):
    g = paused(make_gateway)
    return g, connect(g, 1)


def order_contract(g, case: str) -> Contract:
    return {
        "no_sec_type": lambda: contract(sec_type=""),
        "unknown_sec_type": lambda: contract(sec_type="XYZ"),
        "no_currency": lambda: contract(currency=""),
        "future_without_expiry": lambda: future(g),
        "option_without_expiry": lambda: contract(sec_type="OPT", strike=200.0, right="C", multiplier="100"),
        "stop_without_stop_price": lambda: contract(),
        "stop_limit_without_stop_price": lambda: contract(),
    }[case]()


BAD_ORDERS = {
    "no_sec_type": (lambda: order("BUY", 100), SEC_TYPE),
    "unknown_sec_type": (lambda: order("BUY", 100), SEC_TYPE),
    "no_currency": (lambda: order("BUY", 100), CURRENCY),
    "future_without_expiry": (lambda: order("BUY", 1), EXPIRY),
    "option_without_expiry": (lambda: order("BUY", 1), EXPIRY),
    "stop_without_stop_price": (lambda: order("SELL", 100, "STP"), STOP),
    "stop_limit_without_stop_price": (lambda: order("SELL", 100, "STP LMT", lmt=100.0), STOP),
}


def assert_never_accepted(c, oid: int) -> None:
    assert not c.all("orderStatus", oid) and not c.all("openOrder", oid) and not c.all("execDetails", oid)


@pytest.mark.parametrize("case", list(BAD_ORDERS))
def test_an_order_missing_what_tws_needs_is_321_and_trading_goes_on(sim, case):
    g, c = sim
    make_order, cause = BAD_ORDERS[case]
    place(c, 11, order_contract(g, case), make_order())
    assert c.wait_error(11, 321) == text("bN", cause)
    step(g, 5)
    round_trip(c)
    assert c.errors(11) == [(11, 321, text("bN", cause))]
    assert_never_accepted(c, 11)
    place(c, 12, stock(), order("BUY", 100))                             # the next valid order trades
    wait_status(c, 12, "Filled")
    assert not c.errors(12)


def test_an_order_by_con_id_with_an_exchange_needs_no_currency_or_sec_type(sim):
    g, c = sim
    place(c, 21, by_con_id(AAPL, "SMART"), order("BUY", 100))
    wait_status(c, 21, "Filled")
    assert not c.errors(21)
    (_, con, _, _), = c.all("openOrder", 21)[:1]
    assert (con.conId, con.secType, con.currency) == (AAPL, "STK", "USD")   # TWS echoes the full contract


def test_an_order_by_con_id_still_needs_its_exchange(sim):
    g, c = sim
    place(c, 22, by_con_id(AAPL), order("BUY", 100))
    assert c.wait_error(22, 321) == text("bN", "Missing order exchange")
    assert_never_accepted(c, 22)


def test_a_future_order_by_local_symbol_is_accepted(sim):
    g, c = sim
    es = es_front(g)
    place(c, 31, future(g, localSymbol=es.local_symbol), order("BUY", 1))
    wait_status(c, 31, "Filled")
    assert not c.errors(31)


def test_a_modify_that_drops_the_stop_price_is_321_and_the_stop_keeps_working(sim):
    g, c = sim
    place(c, 41, stock(), order("SELL", 100, "STP", aux=1.0))             # far below the market: it rests
    (_, working, *_), = c.wait("orderStatus", lambda a: a[0] == 41)     # resting (a stop is PreSubmitted)
    c.placeOrder(41, stock(), order("SELL", 200, "STP"))                  # auxPrice left UNSET
    assert c.wait_error(41, 321) == text("bN", STOP)
    c.reqOpenOrders()
    c.wait("openOrderEnd")
    opened = c.all("openOrder", 41)
    assert opened and opened[-1][2].auxPrice == 1.0 and float(opened[-1][2].totalQuantity) == 100
    assert c.all("orderStatus", 41)[-1][1] == working
