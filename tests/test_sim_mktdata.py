"""reqMktData and the option calculators of the simulated gateway, through the real ibapi client."""
from __future__ import annotations

import logging
import time
from decimal import Decimal

import pytest
from ibapi.contract import ComboLeg, Contract
from ibapi.message import IN
from ibapi.ticktype import TickTypeEnum as T

from conftest import MIDDAY
from ibframe.sim.market import options
from ibframe.sim.market.blackscholes import price_and_greeks
from ibframe.sim.market.universe import price_increment

AAPL, SPY, EURUSD = 265598, 756733, 12087792
TICK_CALLBACKS = ("tickPrice", "tickSize", "tickString", "tickGeneric", "tickOptionComputation")


def stock(con_id: int = AAPL, symbol: str = "AAPL") -> Contract:
    c = Contract()
    c.conId, c.symbol, c.secType, c.exchange, c.currency = con_id, symbol, "STK", "SMART", "USD"
    return c


def eurusd() -> Contract:
    c = Contract()
    c.conId, c.symbol, c.secType, c.exchange, c.currency = EURUSD, "EUR", "CASH", "IDEALPRO", "USD"
    return c


def pick_option(gw, right: str, under: int = AAPL):
    """A liquid option: the first expiry at least a week out, strike nearest the underlying."""
    chain = gw.universe.options_of(under)
    now = gw.now()
    expiries = sorted({o.expiry for o in chain if options.years_to_expiry(o, now) > 7 / 365})
    spot = gw.market.get(under).midpoint
    same = [o for o in chain if o.expiry == expiries[0] and o.right == right]
    return min(same, key=lambda o: abs(o.strike - spot))


def option_contract(inst) -> Contract:
    c = Contract()
    c.conId, c.symbol, c.secType, c.exchange, c.currency = inst.con_id, inst.symbol, "OPT", "SMART", "USD"
    return c


def ticks(client, req_id: int) -> list[tuple[str, tuple]]:
    with client.w.cond:
        return [(n, a) for n, a in client.w.events if n in TICK_CALLBACKS and a and a[0] == req_id]


def sync(client) -> None:
    """Round-trip a request: everything the gateway sent before it has then arrived."""
    seen = len(client.all("currentTime"))
    client.reqCurrentTime()
    client.wait("currentTime", count=seen + 1)


def wait_steps(gw, n: int, timeout: float = 10.0) -> None:
    target = gw.market.steps + n
    deadline = time.monotonic() + timeout
    while gw.market.steps < target:
        assert time.monotonic() < deadline, "the market clock stopped"
        time.sleep(0.01)


def on_grid(price: float, inc: float) -> bool:
    return abs(price / inc - round(price / inc)) < 1e-6


def prices(client, req_id: int, tick_type: int) -> list[float]:
    return [a[2] for a in client.all("tickPrice", req_id) if a[1] == tick_type]


def sizes(client, req_id: int, tick_type: int) -> list[Decimal]:
    return [a[2] for a in client.all("tickSize", req_id) if a[1] == tick_type]


# --- stocks ---------------------------------------------------------------------------------------

def test_stock_stream_at_every_version(versioned_client):
    c = versioned_client
    c.reqMktData(11, stock(), "", False, False, [])
    params = c.wait("tickReqParams")[0]
    assert params[0] == 11 and params[1] == pytest.approx(0.01)
    assert c.wait("marketDataType")[0] == (11, 1)
    for tt in (T.BID, T.ASK, T.LAST):
        c.wait("tickPrice", lambda a, tt=tt: a[0] == 11 and a[1] == tt)
    c.wait("tickString", lambda a: a[0] == 11 and a[1] == T.LAST_TIMESTAMP)
    first_volume = c.wait("tickSize", lambda a: a[0] == 11 and a[1] == T.VOLUME)[0][2]
    c.wait("tickSize", lambda a: a[0] == 11 and a[1] == T.VOLUME and a[2] > first_volume)

    bids, asks, lasts = prices(c, 11, T.BID), prices(c, 11, T.ASK), prices(c, 11, T.LAST)
    assert bids[-1] < asks[-1]
    assert all(s > 0 for s in sizes(c, 11, T.BID_SIZE) + sizes(c, 11, T.ASK_SIZE) + sizes(c, 11, T.LAST_SIZE))
    assert all(100 < p < 400 for p in lasts), lasts
    for tt in (T.BID, T.ASK, T.LAST, T.HIGH, T.LOW, T.CLOSE, T.OPEN):
        assert all(on_grid(p, 0.01) for p in prices(c, 11, tt)), (tt, prices(c, 11, tt))
    assert prices(c, 11, T.LOW)[-1] <= lasts[-1] <= prices(c, 11, T.HIGH)[-1]
    epoch = int(c.all("tickString", 11)[0][2])
    assert MIDDAY <= epoch < MIDDAY + 600          # the simulated clock (pinned by conftest), not the wall's
    assert not c.errors(11)


def test_generic_ticks(gateway, client):
    client.reqMktData(21, stock(), "100,101,104,106,165,233,236", False, False, [])
    got = {}
    for name, tt in (("tickSize", T.OPTION_CALL_VOLUME), ("tickSize", T.OPTION_PUT_VOLUME),
                     ("tickSize", T.OPTION_CALL_OPEN_INTEREST), ("tickSize", T.OPTION_PUT_OPEN_INTEREST),
                     ("tickGeneric", T.OPTION_HISTORICAL_VOL), ("tickGeneric", T.OPTION_IMPLIED_VOL),
                     ("tickSize", T.AVG_VOLUME), ("tickGeneric", T.SHORTABLE), ("tickSize", T.SHORTABLE_SHARES),
                     ("tickString", T.RT_VOLUME)):
        got[tt] = client.wait(name, lambda a, tt=tt: a[0] == 21 and a[1] == tt)[0][2]
    for tt in (T.OPTION_CALL_VOLUME, T.OPTION_PUT_VOLUME, T.OPTION_CALL_OPEN_INTEREST, T.OPTION_PUT_OPEN_INTEREST,
               T.AVG_VOLUME, T.SHORTABLE_SHARES):
        assert got[tt] > 0, T.toStr(tt)
    assert 0.05 < got[T.OPTION_HISTORICAL_VOL] < 1.5
    assert 0.05 < got[T.OPTION_IMPLIED_VOL] < 1.5
    assert got[T.SHORTABLE] == 3.0

    ranges = {tt: prices(client, 21, tt)[0] for tt in range(T.LOW_13_WEEK, T.HIGH_52_WEEK + 1)}
    assert (ranges[T.LOW_52_WEEK] <= ranges[T.LOW_26_WEEK] <= ranges[T.LOW_13_WEEK]
            < ranges[T.HIGH_13_WEEK] <= ranges[T.HIGH_26_WEEK] <= ranges[T.HIGH_52_WEEK])
    assert ranges[T.LOW_52_WEEK] > 50 and ranges[T.HIGH_52_WEEK] < 600

    client.wait("tickString", lambda a: a[0] == 21 and a[1] == T.RT_VOLUME, count=3)
    for _, _, value in client.all("tickString", 21):
        if not value.count(";") == 5:
            continue
        price, size, when, total, vwap, single = value.split(";")
        assert 100 < float(price) < 400 and float(size) > 0 and float(total) > 0
        assert abs(float(vwap) - float(price)) / float(price) < 0.1
        assert MIDDAY <= int(when) / 1000 <= gateway.now() and single == "true"
    client.cancelMktData(21)


def test_snapshot_sends_values_then_ends(gateway, client):
    client.reqMktData(31, stock(SPY, "SPY"), "", True, False, [])
    client.wait("tickSnapshotEnd", lambda a: a[0] == 31)
    assert prices(client, 31, T.BID) and prices(client, 31, T.ASK) and prices(client, 31, T.LAST)
    sync(client)
    before = len(ticks(client, 31))
    wait_steps(gateway, 10)
    sync(client)
    assert len(ticks(client, 31)) == before
    assert not client.errors(31)


def test_snapshot_with_generic_ticks_is_refused(client):
    client.reqMktData(32, stock(), "233", True, False, [])
    text = client.wait_error(32, 321)
    assert "Snapshot market data subscription is not applicable to generic ticks" in text
    assert not ticks(client, 32)


def test_illegal_generic_tick_is_refused(client):
    client.reqMktData(33, stock(), "100,9999", False, False, [])
    assert "Incorrect generic tick list of 9999" in client.wait_error(33, 321)


def test_cancel_stops_the_stream(gateway, client):
    client.reqMktData(41, stock(), "233", False, False, [])
    client.reqMktData(42, stock(), "", False, False, [])
    client.wait("tickString", lambda a: a[0] == 41 and a[1] == T.RT_VOLUME, count=2)
    client.cancelMktData(41)
    client.cancelMktData(4141)             # unknown id: ignored silently, as TWS does
    sync(client)
    stopped, control = len(ticks(client, 41)), len(ticks(client, 42))
    wait_steps(gateway, 20)
    sync(client)
    assert len(ticks(client, 41)) == stopped
    assert len(ticks(client, 42)) > control
    assert not client.errors(41) and not client.errors(4141)
    client.cancelMktData(42)


def test_line_limit_and_duplicate_id(make_gateway, connect):
    gw = make_gateway(market_data_lines=3, seed=3)
    c = connect(gw)
    for rid in (1, 2, 3):
        c.reqMktData(rid, stock(), "", False, False, [])
    c.reqMktData(2, stock(SPY, "SPY"), "", False, False, [])
    assert "Duplicate ticker id" in c.wait_error(2, 322)
    c.reqMktData(4, stock(SPY, "SPY"), "", False, False, [])
    assert c.wait_error(4, 101) == "Max number of tickers has been reached."
    c.reqMktData(5, stock(), "", True, False, [])         # a snapshot needs a free line too
    c.wait_error(5, 101)
    c.cancelMktData(3)
    c.reqMktData(6, stock(SPY, "SPY"), "", False, False, [])
    c.wait("tickPrice", lambda a: a[0] == 6)
    assert not c.errors(6) and not c.errors(1)


def test_unknown_contract(client, caplog):
    caplog.set_level(logging.DEBUG, logger="ibframe.sim")
    c = stock(0, "NOSUCH")
    client.reqMktData(51, c, "", False, False, [])
    assert client.wait_error(51, 200) == "No security definition has been found for the request"
    assert not ticks(client, 51)
    logged = [r.getMessage() for r in caplog.records if r.name == "ibframe.sim" and r.levelno == logging.DEBUG]
    assert any(m.startswith("error 200 to client ") and "for request 51: No security definition" in m
               for m in logged), logged


def test_fx_quotes_without_last_or_volume(gateway, client):
    client.reqMktData(61, eurusd(), "", False, False, [])
    client.wait("tickPrice", lambda a: a[0] == 61 and a[1] == T.BID)
    client.wait("tickPrice", lambda a: a[0] == 61 and a[1] == T.ASK)
    wait_steps(gateway, 20)
    sync(client)
    kinds = {a[1] for a in client.all("tickPrice", 61)} | {a[1] for a in client.all("tickSize", 61)}
    assert T.LAST not in kinds and T.VOLUME not in kinds and T.LAST_SIZE not in kinds
    assert not client.all("tickString", 61)
    bid, ask = prices(client, 61, T.BID)[-1], prices(client, 61, T.ASK)[-1]
    assert 0.9 < bid < ask < 1.3 and on_grid(bid, 0.00005) and on_grid(ask, 0.00005)
    client.cancelMktData(61)


def test_combo_quotes_from_legs(gateway, client):
    call = pick_option(gateway, "C")
    higher = next(o for o in gateway.universe.options_of(AAPL)
                  if o.expiry == call.expiry and o.right == "C" and o.strike == call.strike + 5)
    bag = Contract()
    bag.symbol, bag.secType, bag.exchange, bag.currency = "AAPL", "BAG", "SMART", "USD"
    bag.comboLegs = []
    for inst, action in ((call, "BUY"), (higher, "SELL")):
        leg = ComboLeg()
        leg.conId, leg.ratio, leg.action, leg.exchange = inst.con_id, 1, action, "SMART"
        bag.comboLegs.append(leg)
    client.reqMktData(71, bag, "", False, False, [])
    bid = client.wait("tickPrice", lambda a: a[0] == 71 and a[1] == T.BID)[0][2]
    ask = client.wait("tickPrice", lambda a: a[0] == 71 and a[1] == T.ASK)[0][2]
    assert 0 < bid < ask < 5.0
    client.cancelMktData(71)


# --- options ----------------------------------------------------------------------------------------

def check_computation(inst, now, args):
    _, tick_type, attrib, iv, delta, opt_price, pv_div, gamma, vega, theta, und = args
    assert iv is not None and 0.01 < iv < 3, args
    assert attrib == 0 and pv_div == 0 and und > 0
    g = price_and_greeks(inst.right, und, inst.strike, options.years_to_expiry(inst, now), iv,
                         options.RISK_FREE_RATE, options.DIVIDEND_YIELD)
    assert delta == pytest.approx(g.delta, abs=2e-3)
    assert gamma == pytest.approx(g.gamma, rel=0.02, abs=1e-4)
    assert vega == pytest.approx(g.vega, rel=0.02, abs=1e-4)
    assert theta == pytest.approx(g.theta, rel=0.02, abs=1e-3)
    assert opt_price == pytest.approx(g.price, rel=0.01, abs=0.005)
    if inst.right == "C":
        assert 0 < delta < 1
    else:
        assert -1 < delta < 0


@pytest.mark.parametrize("right,req_id", [("C", 81), ("P", 82)])
def test_option_stream_with_greeks(gateway, client, right, req_id):
    inst = pick_option(gateway, right)
    client.reqMktData(req_id, option_contract(inst), "", False, False, [])
    for tt in (10, 11, 12, 13):
        client.wait("tickOptionComputation", lambda a, tt=tt: a[0] == req_id and a[1] == tt)
    client.wait("tickOptionComputation", lambda a: a[0] == req_id and a[1] == 13, count=3)
    now = gateway.now()
    for args in client.all("tickOptionComputation", req_id)[-8:]:
        check_computation(inst, now, args)
    bid, ask = prices(client, req_id, T.BID)[-1], prices(client, req_id, T.ASK)[-1]
    assert 0 < bid < ask
    for p in (bid, ask):
        assert on_grid(p, price_increment(inst.market_rule_id, p)), p
    model = [a for a in client.all("tickOptionComputation", req_id) if a[1] == 13][-1]
    assert bid - 0.01 <= model[5] <= ask + 0.01
    client.cancelMktData(req_id)


def test_calculators_round_trip(gateway, client):
    inst = pick_option(gateway, "C")
    client.calculateOptionPrice(91, option_contract(inst), 0.31, 190.0, [])
    priced = client.wait("tickOptionComputation", lambda a: a[0] == 91)[0]
    assert priced[1] == T.CUST_OPTION_COMPUTATION and priced[3] == pytest.approx(0.31) and priced[10] == 190.0
    client.calculateImpliedVolatility(92, option_contract(inst), priced[5], 190.0, [])
    implied = client.wait("tickOptionComputation", lambda a: a[0] == 92)[0]
    assert implied[1] == T.CUST_OPTION_COMPUTATION
    assert implied[3] == pytest.approx(0.31, abs=1e-4)
    assert implied[4] == pytest.approx(priced[4], abs=1e-3)
    client.cancelCalculateImpliedVolatility(92)
    client.cancelCalculateOptionPrice(91)
    bad = option_contract(inst)
    bad.conId, bad.symbol = 0, "NOSUCH"
    client.calculateImpliedVolatility(93, bad, 1.0, 190.0, [])
    client.wait_error(93, 200)


# --- market data types ------------------------------------------------------------------------------

def test_delayed_market_data(make_gateway, connect):
    gw = make_gateway(seed=4)
    c = connect(gw)
    c.reqMarketDataType(3)
    c.reqMktData(1, stock(), "", False, False, [])
    assert "Displaying delayed market data" in c.wait_error(1, 10167)
    c.wait("marketDataType", lambda a: a == (1, 3))
    for tt in (T.DELAYED_BID, T.DELAYED_ASK, T.DELAYED_LAST):
        c.wait("tickPrice", lambda a, tt=tt: a[0] == 1 and a[1] == tt)
    c.wait("tickSize", lambda a: a[0] == 1 and a[1] == T.DELAYED_VOLUME)
    inst = pick_option(gw, "P")
    c.reqMktData(2, option_contract(inst), "", False, False, [])
    for tt in (80, 81, 83):
        c.wait("tickOptionComputation", lambda a, tt=tt: a[0] == 2 and a[1] == tt)
    live = {a[1] for a in c.all("tickPrice")} & {T.BID, T.ASK, T.LAST}
    assert not live and not [a for a in c.all("tickOptionComputation") if a[1] in (10, 11, 12, 13)]


def test_frozen_market_data_sends_values_once(make_gateway, connect):
    gw = make_gateway(seed=4)
    c = connect(gw)
    c.reqMarketDataType(2)
    c.reqMktData(1, stock(), "", False, False, [])
    c.wait("marketDataType", lambda a: a == (1, 2))
    c.wait("tickPrice", lambda a: a[0] == 1 and a[1] == T.BID)
    sync(c)
    frozen = len(ticks(c, 1))
    wait_steps(gw, 20)
    sync(c)
    assert len(ticks(c, 1)) == frozen
    c.reqMarketDataType(1)                  # back to live: the line streams again
    c.wait("marketDataType", lambda a: a == (1, 1))
    wait_steps(gw, 20)
    sync(c)
    assert len(ticks(c, 1)) > frozen


# --- determinism ------------------------------------------------------------------------------------

def recorded_run(make_gateway, connect, steps: int = 40) -> list[tuple]:
    gw = make_gateway(seed=5, start_time=1_760_000_000.0, speed=1e-9)   # the clock only moves when told
    sent: list[tuple] = []
    gw.taps.append(lambda session, fields: sent.append(tuple(str(f) for f in fields))
                   if fields[0] not in (IN.ERR_MSG, IN.CURRENT_TIME) else None)
    c = connect(gw)
    c.reqMktData(1, stock(), "233,165", False, False, [])
    c.reqMktData(2, option_contract(pick_option(gw, "C")), "", False, False, [])
    c.reqMktData(3, eurusd(), "", False, False, [])
    for rid in (1, 2, 3):
        c.wait("marketDataType", lambda a, rid=rid: a[0] == rid)
    for _ in range(steps):
        gw.call(gw._step_market)
    sync(c)
    return [f for f in sent if f[0] not in (str(IN.MANAGED_ACCTS), str(IN.NEXT_VALID_ID))]


def test_same_seed_gives_the_same_ticks(make_gateway, connect):
    first = recorded_run(make_gateway, connect)
    second = recorded_run(make_gateway, connect)
    assert len(first) > 100
    assert first == second
    assert any(f[0] == str(IN.TICK_STRING) and f[3] == str(T.RT_VOLUME) for f in first)
    assert any(f[0] == str(IN.TICK_OPTION_COMPUTATION) for f in first)


def test_a_price_with_a_size_is_followed_by_the_tick_size_tws_sends(client):
    """TWS sends TICK_SIZE after a TICK_PRICE that carries a size; ibapi's decoder also calls tickSize for the
    size inside TICK_PRICE, so a client sees tickPrice, tickSize, tickSize with one size (and a client that reads
    sizes only from the separate TICK_SIZE frame sees them too)."""
    client.reqMktData(61, stock(), "", False, False, [])
    client.wait("tickPrice", lambda a: a[0] == 61 and a[1] in (T.BID, T.ASK, T.LAST), timeout=30, count=6)
    got = ticks(client, 61)
    pairs = {T.BID: T.BID_SIZE, T.ASK: T.ASK_SIZE, T.LAST: T.LAST_SIZE}
    checked = 0
    for i, (name, args) in enumerate(got[:-2]):
        if name != "tickPrice" or args[1] not in pairs:
            continue
        after = got[i + 1:i + 3]
        assert [(n, a[1]) for n, a in after] == [("tickSize", pairs[args[1]])] * 2, (args, after)
        assert after[0][1][2] == after[1][1][2], after           # the same size twice
        checked += 1
    assert checked >= 4
