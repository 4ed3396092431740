"""The PDT guard (issue 10, deliverable 3): FINRA's day-trade count, the XNYS window, and the guard
refusing the 4th opening order on a small account — against the simulator, whose PDT accounts and
DayTradesRemaining it must agree with.

Counting and calendar tests pin their dates (never the wall clock); simulator tests start the gateway
on a known Wednesday (conftest's MIDDAY) and give the guard the simulator's clock.
"""
from __future__ import annotations

import datetime as dt
import itertools
import math
import warnings
from zoneinfo import ZoneInfo

import exchange_calendars as xc
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from ibapi.contract import Contract
from ibapi.execution import ExecutionFilter

from account_kit import universe_with
from conftest import MIDDAY, wait_until
from ibframe.contracts import Future, Stock
from ibframe.engine import Engine
from ibframe.risk.base import OrderIntent, RiskRejected
from ibframe.risk.gate import RiskGate
from ibframe.risk.margin import subscribe_account_summary
from ibframe.risk.pdt import (BusinessDays, PdtConfig, PdtGuard, count_day_trades, execution_epoch,
                              trading_day)
from ibframe.trading.orders import market

NY = ZoneInfo("America/New_York")
CAL = BusinessDays(dt.date(2026, 11, 18))
with warnings.catch_warnings():                 # exchange_calendars 4.x trips a pandas deprecation
    warnings.simplefilter("ignore")
    XNYS = xc.get_calendar("XNYS", start=pd.Timestamp("2025-06-01"), end=pd.Timestamp("2028-06-30"))
_client_ids = itertools.count(1810)


def at(day: str, hhmm: str = "10:00", seconds: int = 0) -> float:
    """Epoch seconds of a New York wall time."""
    y, m, d = map(int, day.split("-"))
    h, mi = map(int, hhmm.split(":"))
    return dt.datetime(y, m, d, h, mi, seconds, tzinfo=NY).timestamp()


def guard(**config) -> PdtGuard:
    return PdtGuard(PdtConfig(**config), calendar=CAL)


def intent(contract: Contract, action: str, qty: float, now: float, reduces: bool = False) -> OrderIntent:
    return OrderIntent("test", contract, market(action, qty), None, now, reduces=reduces)


def aapl() -> Contract:
    c = Stock("AAPL")
    c.conId = 265598
    return c


# --- what counts as a day trade (FINRA Regulatory Notice 21-13's examples) ------------------------------

T0 = at("2026-11-18", "09:30")


@pytest.mark.parametrize("fills, expected", [
    ([250, 250, -500], 1),                              # A: two buys, one sale
    ([100, -100, 100, -100], 2),                        # B: buy, sell, buy, sell
    ([500, -100, -100, -300], 1),                       # C: one buy closed in three sales
    ([250, 300, 100, -150, -175], 1),                   # D: buys, then sales
    ([199, 142, -1, 45, -100, -200], 2),                # E: a purchase between the sales starts a new one
    ([-100, 100], 1),                                   # a short sale covered the same day
    ([-100, -50, 150], 1),                              # shorts added to, covered at once
    ([100, -200, 100], 2),                              # a flip: the sale closes the long and opens a short
    ([100, 100], 0),                                    # opening only
])
def test_finra_examples(fills, expected):
    execs = [(T0 + i, q) for i, q in enumerate(fills)]
    assert len(count_day_trades(execs)) == expected


def test_overnight_position_sold_before_any_purchase_is_no_day_trade():
    wed, thu = at("2026-11-18", "15:00"), at("2026-11-19", "10:00")
    assert count_day_trades([(wed, 100), (thu, -100)]) == []
    assert count_day_trades([(thu, -100), (thu + 60, 100)], start_position=100) == []   # sold, then bought again
    # bought more first, then sold: increased, then decreased the same day -> one day trade
    assert len(count_day_trades([(thu, 100), (thu + 60, -100)], start_position=100)) == 1


def test_each_security_counts_on_its_own_and_futures_never():
    g = guard()
    t = at("2026-11-18", "10:00")
    for cid, st_ in ((1, "STK"), (2, "OPT"), (3, "FUT"), (4, "CASH")):
        g.record(t, cid, "BOT", 1, f"o{cid}", st_)
        g.record(t + 1, cid, "SLD", 1, f"c{cid}", st_)
    assert g.day_trades(dt.date(2026, 11, 18)) == 2                  # the stock and the option
    g.record(t + 5, 5, "BOT", 1, "eu1", "STK", "EUR")                # not a US security
    g.record(t + 6, 5, "SLD", 1, "eu2", "STK", "EUR")
    assert g.day_trades(dt.date(2026, 11, 18)) == 2


same_side_runs = st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(1, 500)), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(same_side_runs, st.integers(1, 4), st.integers(0, 300))
def test_splitting_an_execution_never_changes_the_count(runs, pieces, start):
    """Partial fills of one order (several executions, same side, back to back) are one transaction."""
    whole = [(T0 + 10 * i, s * q) for i, (s, q) in enumerate(runs)]
    split = []
    for i, (s, q) in enumerate(runs):
        parts = [q // pieces + (1 if k < q % pieces else 0) for k in range(pieces)]
        split += [(T0 + 10 * i + k * 0.001, s * p) for k, p in enumerate(parts) if p]
    assert len(count_day_trades(whole, start)) == len(count_day_trades(split, start))


@settings(max_examples=150, deadline=None)
@given(same_side_runs)
def test_count_is_bounded_by_direction_changes(runs):
    execs = [(T0 + i, s * q) for i, (s, q) in enumerate(runs)]
    signs = [s for s, _ in runs]
    changes = sum(1 for a, b in zip(signs, signs[1:]) if a != b)
    n = len(count_day_trades(execs))
    assert n <= changes
    if len(set(signs)) == 1:
        assert n == 0                                   # one direction only: never a day trade


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(1, 500)), min_size=1, max_size=8))
def test_one_execution_per_day_is_never_a_day_trade(runs):
    days = [d.date() for d in XNYS.sessions_in_range("2026-11-02", "2026-12-31")][:len(runs)]
    execs = [(at(str(d), "11:00"), s * q) for d, (s, q) in zip(days, runs)]
    assert count_day_trades(execs) == []


# --- the window: five XNYS business days, weekends and holidays inside it ---------------------------------

def test_window_pinned_across_thanksgiving():
    g = guard()
    t = at("2026-11-18", "10:00")                        # Wednesday
    g.record(t, 1, "BOT", 10, "a")
    g.record(t + 60, 1, "SLD", 10, "b")
    counts = {d: g.day_trades(dt.date.fromisoformat(d)) for d in
              ("2026-11-18", "2026-11-21", "2026-11-24", "2026-11-25", "2026-11-26")}
    # Wed 18, Thu 19, Fri 20, Mon 23, Tue 24 are five sessions: still inside on Tue, out on Wed 25
    assert counts == {"2026-11-18": 1, "2026-11-21": 1, "2026-11-24": 1, "2026-11-25": 0, "2026-11-26": 0}
    g2 = guard()
    f = at("2026-11-20", "10:00")                        # Friday before Thanksgiving week
    g2.record(f, 1, "BOT", 10, "a")
    g2.record(f + 60, 1, "SLD", 10, "b")
    # Thanksgiving (Thu 26) is no session: Fri 20, Mon 23, Tue 24, Wed 25, Fri 27 -> still counted on Fri 27
    assert g2.day_trades(dt.date(2026, 11, 26)) == 1 and g2.day_trades(dt.date(2026, 11, 27)) == 1
    assert g2.day_trades(dt.date(2026, 11, 30)) == 0


SESSIONS = [d.date() for d in XNYS.sessions_in_range("2026-01-05", "2027-12-20")]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SESSIONS), st.integers(0, 12), st.integers(1, 10))
def test_a_day_trade_counts_while_within_the_window(made, later, window):
    """Counted on day E iff at most `window` XNYS sessions lie in [made, E] (E itself counting even if
    it is a weekend or holiday), computed here straight from exchange_calendars."""
    g = guard(window_days=window)
    t = at(str(made), "10:00")
    g.record(t, 7, "BOT", 1, "x")
    g.record(t + 1, 7, "SLD", 1, "y")
    day = made + dt.timedelta(days=later)
    sessions = len(XNYS.sessions_in_range(pd.Timestamp(made), pd.Timestamp(day)))
    if not XNYS.is_session(pd.Timestamp(day)):
        sessions += 1
    assert g.day_trades(day) == (1 if sessions <= window else 0)


# --- configuration -----------------------------------------------------------------------------------------

class Bad(Exception):
    pass


def fail(path, message):
    raise Bad(f"{'.'.join(map(str, path))}: {message}")


def test_config_defaults_and_errors():
    assert PdtConfig.from_mapping(None, fail) == PdtConfig(True, 25_000.0, 3, 5, "USD")
    assert PdtConfig.from_mapping({"enabled": False}, fail).enabled is False
    assert PdtConfig.from_mapping(False, fail).enabled is False
    cfg = PdtConfig.from_mapping({"min_equity": 30000, "max_day_trades": 2, "window_days": 4, "currency": "usd"}, fail)
    assert (cfg.min_equity, cfg.max_day_trades, cfg.window_days, cfg.currency) == (30000.0, 2, 4, "USD")
    for raw, key in (({"min_equty": 1}, "min_equty"), ({"min_equity": "lots"}, "min_equity"),
                     ({"min_equity": float("nan")}, "min_equity"), ({"max_day_trades": -1}, "max_day_trades"),
                     ({"window_days": 0}, "window_days"), ({"enabled": "yes"}, "enabled"),
                     ({"currency": "dollars"}, "currency"), ([1, 2], "")):
        with pytest.raises(Bad) as err:
            PdtConfig.from_mapping(raw, fail)
        assert str(err.value).startswith(f"{key}:")


# --- the rule, fed by hand ----------------------------------------------------------------------------------

def three_day_trades(g: PdtGuard, day: str = "2026-11-18") -> float:
    t = at(day, "10:00")
    for n in range(3):
        g.record(t + 10 * n, 265598, "BOT", 10, f"b{n}")
        g.record(t + 10 * n + 5, 265598, "SLD", 10, f"s{n}")
    return t + 100


def test_fourth_opening_is_refused_under_the_minimum_and_says_why():
    g = guard()
    g.on_account_value("NetLiquidation", "19990.00", "USD")
    now = three_day_trades(g)
    refusal = g.check(intent(aapl(), "BUY", 10, now))
    assert refusal is not None and refusal.rule == "pdt"
    text = str(refusal)
    assert "3 day trades in 5 business days" in text and "25,000 USD" in text and "19,990.00" in text
    assert "4th opening transaction" in text and "reduce or close" in text
    assert "2026-11-25" in text                              # when the first one leaves the window
    assert g.check(intent(aapl(), "SELL", 10, now)) is not None   # a short sale opens too
    assert g.check(intent(aapl(), "SELL", 10, now, reduces=True)) is None   # reducing always passes
    es = Future("ES", "202612")
    assert g.check(intent(es, "BUY", 1, now)) is None          # futures are outside the rule


def test_closing_the_account_position_passes_even_when_the_strategy_does_not_know():
    positions = {265598: 30.0}
    g = PdtGuard(PdtConfig(), calendar=CAL, position=lambda cid: positions.get(cid, 0.0))
    g.on_account_value("NetLiquidation", "15000", "USD")
    now = three_day_trades(g)
    assert g.check(intent(aapl(), "SELL", 30, now)) is None        # closes the account's 30
    assert g.check(intent(aapl(), "SELL", 20, now)) is None
    assert g.check(intent(aapl(), "SELL", 31, now)) is not None    # would flip to short: opens
    assert g.check(intent(aapl(), "BUY", 1, now)) is not None      # adds to the long


def test_equity_at_the_minimum_or_switched_off_never_refuses():
    g = guard()
    g.on_account_value("NetLiquidation", "25000", "USD")
    now = three_day_trades(g)
    assert g.check(intent(aapl(), "BUY", 10, now)) is None
    off = guard(enabled=False)
    off.on_account_value("NetLiquidation", "100", "USD")
    assert three_day_trades(off) and off.check(intent(aapl(), "BUY", 10, now)) is None
    assert off.day_trades(dt.date(2026, 11, 18)) == 0


def test_unknown_equity_counts_as_below_the_minimum():
    g = guard()
    now = three_day_trades(g)
    refusal = g.check(intent(aapl(), "BUY", 10, now))
    assert refusal is not None and "not yet reported" in refusal.value


def test_the_stricter_of_own_count_and_tws_wins():
    now = at("2026-11-18", "12:00")
    g = PdtGuard(PdtConfig(), calendar=CAL, now=lambda: now)
    g.on_account_value("NetLiquidation", "20000", "USD")
    assert g.remaining(now) == 3
    g.on_account_value("DayTradesRemaining", "0", "")          # TWS knows of trades we never saw
    assert g.remaining(now) == 0 and g.check(intent(aapl(), "BUY", 1, now)) is not None
    g.on_account_value("DayTradesRemaining", "-1", "")         # TWS unrestricted: the own count still holds
    three_day_trades(g)
    assert g.remaining(now) == 0
    # TWS's figure is for the day it came: on the next business day it no longer binds
    g2 = PdtGuard(PdtConfig(), calendar=CAL, now=lambda: now)
    g2.on_account_value("NetLiquidation", "20000", "USD")
    g2.on_account_value("DayTradesRemaining", "0", "")
    assert g2.remaining(at("2026-11-19", "10:00")) == 3


@pytest.mark.parametrize("value", ["abc", "", None, "nan", "inf", "-inf", "2.5", "-7", "1e400", float("nan")])
def test_garbage_account_values_never_loosen_the_rule(value):
    g = guard()
    g.on_account_value("NetLiquidation", "20000", "USD")
    g.on_account_value("DayTradesRemaining", "0", "")
    now = three_day_trades(g)
    g.on_account_value("NetLiquidation", value, "USD")
    g.on_account_value("DayTradesRemaining", value, "")
    g.on_account_value("EquityWithLoanValue", value, "USD")
    assert g.tws_remaining() == 0                                # a garbage count never replaces a real one
    assert g.equity() is not None and g.equity() < 25_000       # a real small/negative equity may replace it
    assert g.check(intent(aapl(), "BUY", 10, now)) is not None


def test_bad_execution_rows_are_skipped_and_resent_executions_counted_once():
    g = guard()
    t = at("2026-11-18", "10:00")
    rows = [(t, 265598, "BOT", 10), (t, 265598, "SLD", 10), (t, 265598, "BOT", 10), (t, 265598, "SLD", 10),
            ("garbage", 265598, "BOT", 1), (t, "x", "BOT", 1), (t, 265598, "HOLD", 1), (t, 265598, "BOT", -3),
            (t, 265598, "BOT", float("nan")), ("too", "short"), 42]
    # rows alike to the second are distinct executions (the journal keeps each execId once): all booked
    assert g.load(rows) == 4
    assert g.day_trades(dt.date(2026, 11, 18)) == 2
    # TWS re-sends them with their execIds after a restart: each matches one loaded row, once
    for n, side in enumerate(("BOT", "SLD", "BOT", "SLD")):
        assert g.record("20261118 10:00:00 US/Eastern", 265598, side, 10, f"e{n}") is False
    assert g.day_trades(dt.date(2026, 11, 18)) == 2
    # a fifth one alike is new: buy after the last sale, then a sale -> a third day trade
    assert g.record("20261118 10:00:00 US/Eastern", 265598, "BOT", 10, "e4") is False
    assert g.record("20261118 10:00:01 US/Eastern", 265598, "SLD", 10, "e5") is True
    assert g.record("20261118 10:00:01 US/Eastern", 265598, "SLD", 10, "e5") is False     # same execId
    assert g.day_trades(dt.date(2026, 11, 18)) == 3


def test_execution_times_in_every_shape():
    t = at("2026-11-18", "11:30", 5)
    for shape in (t, int(t), str(int(t)), "20261118 11:30:05 US/Eastern", "20261118  11:30:05",
                  "20261118 11:30:05 America/New_York", "20261118-16:30:05",
                  dt.datetime(2026, 11, 18, 11, 30, 5), pd.Timestamp("2026-11-18 11:30:05", tz=NY)):
        assert execution_epoch(shape) == pytest.approx(t), shape
    for bad in (None, "", "yesterday", float("nan"), -5, True):
        assert execution_epoch(bad) is None


def test_positions_now_recover_the_overnight_position():
    """Journal rows start mid-history: with the account's position now, an overnight long trimmed and
    re-bought is no day trade; without it (taken as flat) the guard can only count more."""
    thu = at("2026-11-19", "10:00")
    rows = [(thu, 265598, "SLD", 50), (thu + 60, 265598, "BOT", 50)]
    flat = guard()
    flat.load(rows)
    assert flat.day_trades(dt.date(2026, 11, 19)) == 1           # looked like short, covered
    known = guard()
    known.load(rows, positions_now={265598: 200.0})              # 200 held overnight
    assert known.day_trades(dt.date(2026, 11, 19)) == 0


# --- against the simulator ---------------------------------------------------------------------------------

AAPL_ID, SPY_ID = 265598, 756733


@pytest.fixture
def pdt_world(make_gateway, tmp_path):
    """world(cash, pdt) -> (gateway, engine, guard, gate): an engine on a one-account simulator, the guard
    fed by live executions and by the account summary, the risk gate holding the guard."""
    engines = []

    def build(cash: float, pdt: bool = True, gw=None, name: str = "DU301"):
        if gw is None:
            gw = make_gateway(universe=universe_with(tmp_path, {"id": name, "cash": cash, "pdt": pdt}),
                              start_time=MIDDAY, seed=5)
            gw.call(lambda: setattr(gw.ledger, "refresh_seconds", 0.2))     # TWS: every 3 minutes
        eng = Engine("127.0.0.1", gw.port, next(_client_ids), state_dir=tmp_path).start()
        engines.append(eng)
        g = PdtGuard(PdtConfig(), account=eng.account, position=lambda cid: eng.portfolio.position(cid),
                     now=gw.now)
        eng.on_dispatch(lambda: eng.orders.execution_hooks.append(g.on_execution))
        eng.subscribe_account()
        subscribe_account_summary(eng, [g.on_row])
        gate = RiskGate()
        gate.add_rule(g)
        return gw, eng, g, gate
    yield build
    for eng in engines:
        eng.stop()


def qualified(eng: Engine, symbol: str) -> Contract:
    return eng.qualify(Stock(symbol))


def send(gw, eng: Engine, gate: RiskGate, contract: Contract, action: str, qty: float):
    """The order path as the risk layer wires it: the gate first, then the order manager."""
    def run():
        gate.check(OrderIntent("test", contract, market(action, qty), None, gw.now()))
        return eng.orders.place(contract, market(action, qty), "test")
    return eng.on_dispatch(run)


def filled(eng: Engine, trade) -> None:
    wait_until(lambda: trade.status == "Filled", what=f"order {trade.order_id} filled (status {trade.status})")


def round_trip(gw, eng, gate, contract) -> None:
    filled(eng, send(gw, eng, gate, contract, "BUY", 10))
    filled(eng, send(gw, eng, gate, contract, "SELL", 10))


def test_small_account_fourth_opening_is_refused_closing_passes_and_counts_agree_with_tws(pdt_world):
    gw, eng, g, gate = pdt_world(20_000)
    aapl_c, spy_c = qualified(eng, "AAPL"), qualified(eng, "SPY")
    wait_until(lambda: g.equity() is not None and g.tws_remaining() == 3, what="TWS's DayTradesRemaining 3")
    filled(eng, send(gw, eng, gate, spy_c, "BUY", 5))            # opened now, closed after the 3 day trades
    today = trading_day(gw.now())
    for n in range(1, 4):
        round_trip(gw, eng, gate, aapl_c)
        wait_until(lambda: g.tws_remaining() == 3 - n, what=f"TWS DayTradesRemaining {3 - n}")
        assert g.day_trades(today) == n                           # the own count agrees with TWS's
    trades_before = len(eng.orders.trades)
    with pytest.raises(RiskRejected) as err:
        send(gw, eng, gate, aapl_c, "BUY", 10)
    assert err.value.refusal.rule == "pdt" and "19," in err.value.refusal.value
    assert len(eng.orders.trades) == trades_before               # nothing was sent, no id spent
    wait_until(lambda: eng.portfolio.position(SPY_ID) == 5, what="SPY position 5 reported")
    closing = send(gw, eng, gate, spy_c, "SELL", 5)              # closes: never blocked (it is a 4th day trade)
    filled(eng, closing)
    assert g.day_trades(today) == 4
    wait_until(lambda: g.tws_remaining() == 0, what="TWS DayTradesRemaining 0")


def test_large_account_is_not_restricted(pdt_world):
    gw, eng, g, gate = pdt_world(40_000)
    aapl_c = qualified(eng, "AAPL")
    wait_until(lambda: g.tws_remaining() == -1 and g.equity() is not None, what="TWS: unrestricted")
    for _ in range(3):
        round_trip(gw, eng, gate, aapl_c)
    assert g.day_trades(trading_day(gw.now())) == 3 and g.remaining(gw.now()) is None
    round_trip(gw, eng, gate, aapl_c)                             # the 4th opens and fills
    assert g.day_trades(trading_day(gw.now())) == 4


def test_restart_loads_earlier_executions_and_tws_resends_count_once(pdt_world):
    gw, eng, g, gate = pdt_world(20_000)
    aapl_c = qualified(eng, "AAPL")
    for _ in range(3):
        round_trip(gw, eng, gate, aapl_c)
    # what the journal keeps: (time, conId, side, shares) per execution (Journal.day_trade_executions)
    rows = [(execution_epoch(f.time), f.contract.conId, f.side, f.shares) for _, f in eng.orders.executions]
    assert len(rows) == 6
    eng.stop()

    gw, eng2, g2, gate2 = pdt_world(20_000, gw=gw)
    g2.load(rows)
    today = trading_day(gw.now())
    assert g2.day_trades(today) == 3
    with pytest.raises(RiskRejected):                             # before TWS sent anything: refused
        send(gw, eng2, gate2, aapl_c, "BUY", 10)
    # TWS re-sends today's executions (reqExecutions after a restart): still three day trades
    eng2.on_dispatch(lambda: eng2.conn.reqExecutions(eng2.request_ids.take(), ExecutionFilter()))
    wait_until(lambda: len(eng2.orders.executions) == 6, what="six executions re-sent by TWS")
    assert g2.day_trades(today) == 3
    wait_until(lambda: g2.tws_remaining() == 0, what="TWS DayTradesRemaining 0")
    assert g2.remaining(gw.now()) == 0 and not math.isnan(g2.equity())
