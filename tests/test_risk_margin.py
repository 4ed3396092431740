"""The margin monitor and the pre-trade what-if (issue 10, deliverable 4).

The monitor turns ExcessLiquidity / NetLiquidation into the GLOBAL trading state (REDUCING at 10 %,
HALTED at 5 % by default, back with hysteresis), alerting on each change and never crashing or moving
on garbage. Against the simulator: a price shock (ibframe.sim.market.shocks) takes a leveraged account to
REDUCING then HALTED through the real account-summary stream; large orders are sent only after TWS's
what-if says the margin buffer holds.
"""
from __future__ import annotations

import itertools
import time

import pytest

from account_kit import AAPL, fill, universe_with
from conftest import MIDDAY, wait_until
from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.risk.base import GLOBAL, TradingState
from ibframe.risk.config import RiskConfig
from ibframe.risk.layer import RiskLayer
from ibframe.risk.margin import MarginConfig, MarginMonitor, account_feed
from ibframe.risk.pdt import PdtConfig
from ibframe.risk.state import TradingStates
from ibframe.sim.market.shocks import shock_price
from ibframe.trading.orders import limit, market

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
_client_ids = itertools.count(1910)


class Bad(Exception):
    pass


def fail(path, message):
    raise Bad(f"{'.'.join(map(str, path))}: {message}")


# --- configuration --------------------------------------------------------------------------------------

def test_config_defaults_percentages_and_errors():
    cfg = MarginConfig.from_mapping(None, fail)
    assert (cfg.enabled, cfg.reducing_at, cfg.halt_at, cfg.hysteresis, cfg.flatten_on_halt) == (True, 0.10, 0.05, 0.02,
                                                                                               False)
    assert cfg.what_if_above == 50_000 and cfg.what_if_timeout == 5.0
    cfg = MarginConfig.from_mapping({"reducing_at": "15%", "halt_at": 0.08, "what_if_above": "off",
                                     "what_if_timeout": "750ms", "flatten_on_halt": True}, fail)
    assert (cfg.reducing_at, cfg.halt_at, cfg.what_if_above, cfg.what_if_timeout, cfg.flatten_on_halt) == \
        (0.15, 0.08, None, 0.75, True)
    assert MarginConfig.from_mapping(False, fail).enabled is False
    for raw, key in (({"reducing_at": 0.05, "halt_at": 0.05}, "halt_at"), ({"reducing_at": "ten"}, "reducing_at"),
                     ({"halt_at": -0.1}, "halt_at"), ({"reducing_at": 1.5}, "reducing_at"),
                     ({"hysteresis": 0.95}, "hysteresis"), ({"what_if_above": -1}, "what_if_above"),
                     ({"what_if_timeout": "soon"}, "what_if_timeout"), ({"flaten_on_halt": True}, "flaten_on_halt"),
                     ({"enabled": "yes"}, "enabled"), ("lots", "")):
        with pytest.raises(Bad) as err:
            MarginConfig.from_mapping(raw, fail)
        assert str(err.value).startswith(f"{key}:"), err.value


# --- the monitor, fed by hand ---------------------------------------------------------------------------------

def monitor(**config) -> tuple[MarginMonitor, TradingStates, list]:
    states = TradingStates(lambda: 1_000.0)
    events: list = []
    states.listeners.append(events.append)
    return MarginMonitor(MarginConfig(**config), states, account="DU1"), states, events


def feed(m: MarginMonitor, excess, nlv=100_000.0, **more) -> None:
    m.on_account_value("NetLiquidation", str(nlv), "USD", "DU1")
    m.on_account_value("ExcessLiquidity", str(excess), "USD", "DU1")
    for tag, value in more.items():
        m.on_account_value(tag, str(value), "USD", "DU1")


def test_levels_with_hysteresis_and_an_alert_on_each_change():
    m, states, events = monitor()
    path = []
    for excess in (50_000, 10_000, 11_000, 11_900, 12_100, 4_000, 6_900, 7_100, 30_000):
        feed(m, excess)
        path.append(states.state())
        if states.state() is not ACTIVE:
            assert states.entry().source == "margin" and "margin buffer" in states.entry().reason
    assert path == [ACTIVE, REDUCING, REDUCING, REDUCING, ACTIVE, HALTED, HALTED, REDUCING, ACTIVE]
    alerts = [e for e in events if e.kind == "alert"]
    assert [(a.details["from"], a.details["to"]) for a in alerts] == [
        ("ACTIVE", "REDUCING"), ("REDUCING", "ACTIVE"), ("ACTIVE", "HALTED"), ("HALTED", "REDUCING"),
        ("REDUCING", "ACTIVE")]
    assert alerts[0].rule == "margin" and alerts[0].scope == GLOBAL and "10.0%" in alerts[0].text
    assert alerts[0].details["ExcessLiquidity"] == 10_000
    assert len([e for e in events if e.kind == "state"]) == 5


def test_look_ahead_excess_counts_when_lower():
    m, states, _ = monitor()
    feed(m, 50_000, LookAheadExcessLiquidity=8_000)
    assert states.state() is REDUCING
    m2, states2, _ = monitor(look_ahead=False)
    feed(m2, 50_000, LookAheadExcessLiquidity=8_000)
    assert states2.state() is ACTIVE


def test_cushion_alone_is_enough_and_below_maintenance_halts():
    m, states, _ = monitor()
    m.on_account_value("Cushion", "0.04", "", "DU1")
    assert states.state() is HALTED
    m2, states2, _ = monitor()
    feed(m2, -2_500, nlv=40_000)                            # below maintenance: excess negative
    assert states2.state() is HALTED
    m3, states3, _ = monitor()
    feed(m3, -10, nlv=-5_000)                               # underwater altogether
    assert states3.state() is HALTED


GARBAGE = ["abc", "", None, "nan", "NaN", "inf", "-inf", "1.7976931348623157E308", "1e400", float("nan"),
           float("inf"), True, "12,000", object()]


@pytest.mark.parametrize("value", GARBAGE, ids=lambda v: type(v).__name__ if type(v) is object else repr(v))
def test_garbage_values_change_nothing(value):
    m, states, events = monitor()
    feed(m, 50_000)
    for tag in ("NetLiquidation", "ExcessLiquidity", "LookAheadExcessLiquidity", "Cushion", "FullMaintMarginReq"):
        m.on_account_value(tag, value, "USD", "DU1")
    assert states.state() is ACTIVE and m.ratio == pytest.approx(0.5) and not events
    m2, states2, _ = monitor()
    feed(m2, 8_000)
    for tag in ("NetLiquidation", "ExcessLiquidity"):
        m2.on_account_value(tag, value, "USD", "DU1")
    assert states2.state() is REDUCING                      # garbage never lifts a state either


def test_values_that_cannot_make_a_ratio_change_nothing():
    m, states, events = monitor()
    feed(m, 50_000)
    feed(m, 5_000, nlv=0)                                   # zero net liquidation, positive excess
    feed(m, 5_000, nlv=-3)
    m.on_account_value("Cushion", "7.5", "", "DU1")         # not a fraction
    m.on_account_value("ExcessLiquidity", "1000", "EUR", "DU1")   # another currency than NetLiquidation
    assert states.state() is ACTIVE and not events
    other, states_o, _ = monitor()
    other.on_account_value("ExcessLiquidity", "1", "USD", "DU9")  # another account: not watched
    other.on_account_value("NetLiquidation", "100000", "USD", "DU9")
    assert states_o.state() is ACTIVE and other.ratio is None


def test_never_lifts_or_weakens_a_state_another_source_set():
    m, states, _ = monitor()
    states.set(GLOBAL, HALTED, "operator kill", "kill")
    feed(m, 8_000)                                          # margin says REDUCING: the halt stays
    assert states.state() is HALTED and states.entry().source == "kill"
    feed(m, 90_000)
    assert states.state() is HALTED
    m2, states2, _ = monitor()
    feed(m2, 8_000)
    states2.set(GLOBAL, HALTED, "operator kill", "kill")
    feed(m2, 90_000)                                        # its REDUCING was replaced by a stricter halt
    assert states2.state() is HALTED


def test_flatten_on_halt_is_called_once():
    calls = []
    m, states, _ = monitor(flatten_on_halt=True)
    m.flatten = calls.append
    feed(m, 3_000)
    feed(m, 2_000)
    assert states.state() is HALTED and len(calls) == 1 and "5.0%" in calls[0]
    m2, _, _ = monitor()                                    # off by default
    m2.flatten = calls.append
    feed(m2, 3_000)
    assert len(calls) == 1


def test_disabled_monitor_does_nothing():
    m, states, events = monitor(enabled=False)
    feed(m, -1_000)
    assert states.state() is ACTIVE and not events


# --- against the simulator: a price shock ---------------------------------------------------------------------

@pytest.fixture
def engines(tmp_path):
    made = []

    def start(gw) -> Engine:
        eng = Engine("127.0.0.1", gw.port, next(_client_ids), state_dir=tmp_path).start()
        made.append(eng)
        return eng
    yield start
    for eng in made:
        eng.stop()


def shock_to_ratio(gw, account: str, quantity: float, ratio: float) -> float:
    """The AAPL price at which a long-only Reg T account's ExcessLiquidity / NetLiquidation is `ratio`:
    1 - 0.25 Q P / (Q P + cash) = ratio  ->  P = -(1 - ratio) cash / (Q (0.75 - ratio))."""
    cash = gw.call(lambda: gw.ledger.account(account).cash)
    price = -(1 - ratio) * cash / (quantity * (0.75 - ratio))
    return shock_price(gw, AAPL, price=price)


def test_price_shock_takes_the_account_to_reducing_then_halted(make_gateway, tmp_path, engines):
    gw = make_gateway(universe=universe_with(tmp_path, {"id": "DU401", "cash": 100_000, "pdt": False}),
                      start_time=MIDDAY, seed=5)
    gw.call(lambda: setattr(gw.ledger, "refresh_seconds", 0.2))          # TWS: every 3 minutes
    fill(gw, AAPL, "BOT", 1_000, 190.0, account="DU401")                  # 190,000 of stock on 100,000
    eng = engines(gw)
    states = TradingStates(eng.clock.now)
    events: list = []
    states.listeners.append(events.append)
    m = MarginMonitor(MarginConfig(), states, account=eng.account, call_later=eng.dispatcher.call_later)
    account_feed(eng).add(m.on_row)
    wait_until(lambda: m.ratio is not None and m.ratio > 0.5, what="the first account summary")
    assert states.state() is ACTIVE

    shock_to_ratio(gw, "DU401", 1_000, 0.075)                             # AAPL about 123: buffer 7.5 %
    wait_until(lambda: states.state() is REDUCING, what=f"REDUCING (ratio {m.ratio})")
    assert 0.05 < m.ratio <= 0.10
    shock_to_ratio(gw, "DU401", 1_000, 0.025)                             # about 121: 2.5 %, above liquidation
    wait_until(lambda: states.state() is HALTED, what=f"HALTED (ratio {m.ratio})")
    assert 0 < m.ratio <= 0.05
    shock_price(gw, AAPL, price=190.0)                                    # the price comes back
    wait_until(lambda: states.state() is ACTIVE, what=f"ACTIVE again (ratio {m.ratio})")
    alerts = [(e.details["from"], e.details["to"]) for e in events if e.kind == "alert"]
    assert alerts == [("ACTIVE", "REDUCING"), ("REDUCING", "HALTED"), ("HALTED", "ACTIVE")]
    assert gw.ledger.accounts["DU401"].liquidations == 0                  # it never went below maintenance


def test_garbage_rows_on_the_wire_path_change_nothing(make_gateway, tmp_path, engines):
    gw = make_gateway(universe=universe_with(tmp_path, {"id": "DU402", "cash": 100_000}), start_time=MIDDAY)
    eng = engines(gw)
    states = TradingStates(eng.clock.now)
    m = MarginMonitor(MarginConfig(settle=0), states, account=eng.account)
    feed_ = account_feed(eng)
    feed_.add(m.on_row)
    wait_until(lambda: m.ratio is not None, what="the first account summary")
    req_id = feed_.request.req_id

    def garbage():
        for value in ("nan", "", "-inf", "x", "1e999"):
            for tag in ("ExcessLiquidity", "NetLiquidation", "Cushion"):
                eng.router.accountSummary(req_id, "DU402", tag, value, "USD")
        eng.router.accountSummary(req_id, "DU402", "NetLiquidation", "0", "USD")
        eng.router.accountSummaryEnd(req_id)
    eng.on_dispatch(garbage)
    assert states.state() is ACTIVE and eng.dispatcher.in_dispatch_thread() is False
    assert eng.on_dispatch(lambda: 1 + 1) == 2                           # the dispatch thread is alive


# --- the what-if check -------------------------------------------------------------------------------------------

@pytest.fixture
def what_if_world(make_gateway, tmp_path, engines):
    def build(cash: float = 100_000, **margin):
        gw = make_gateway(universe=universe_with(tmp_path, {"id": "DU403", "cash": cash, "pdt": False}),
                          start_time=MIDDAY, seed=5)
        eng = engines(gw)
        cfg = RiskConfig(enabled=False, pdt=PdtConfig(enabled=False),
                         margin=MarginConfig(**{"what_if_above": 10_000.0, **margin}))
        layer = RiskLayer.install(eng, cfg)
        assert layer.margin is not None and layer.margin.what_if is not None
        wait_until(lambda: layer.margin.values.get("NetLiquidation") is not None, what="NetLiquidation")
        return gw, eng, layer
    return build


def place(eng: Engine, contract, order):
    return eng.on_dispatch(lambda: eng.orders.place(contract, order, "test"))


def test_what_if_within_the_buffer_is_sent(what_if_world):
    gw, eng, layer = what_if_world()
    aapl = eng.qualify(Stock("AAPL"))
    trade = place(eng, aapl, market("BUY", 400))                  # ~76,000: TWS is asked first
    wait_until(lambda: trade.status == "Filled", what=f"the order filled (status {trade.status}, {trade.reason})")
    assert layer.margin.what_if.asked == 1 and not layer.margin.what_if.pending
    small = place(eng, aapl, limit("BUY", 10, 200.0))             # 2,000: below the threshold, no what-if
    wait_until(lambda: small.status == "Filled", what="the small order filled")
    assert layer.margin.what_if.asked == 1
    assert all(not t.order.whatIf for t in eng.orders.trades.values())     # no what-if became a Trade


def test_what_if_inside_the_buffer_ends_the_trade_inactive(what_if_world):
    gw, eng, layer = what_if_world(reducing_at=0.6)
    aapl = eng.qualify(Stock("AAPL"))
    seen = []
    eng.on_dispatch(lambda: eng.orders.status_hooks.append(lambda t: seen.append((t.status, t.reason))))
    trade = place(eng, aapl, market("BUY", 1_000))                # TWS accepts it, but excess ~52k < 60 % of 100k
    wait_until(lambda: trade.status == "Inactive", what=f"the trade ended (status {trade.status})")
    assert "what_if" in trade.reason and "60% of NetLiquidation" in trade.reason
    assert trade.order_id == 0 and not trade.fills                 # never sent
    assert seen and seen[-1][0] == "Inactive"
    assert gw.call(lambda: gw.ledger.accounts["DU403"].positions.get(AAPL)) is None


def test_what_if_tws_rejects_ends_the_trade_inactive_with_tws_reason(what_if_world):
    gw, eng, layer = what_if_world()
    aapl = eng.qualify(Stock("AAPL"))
    trade = place(eng, aapl, market("BUY", 5_000))                # ~950,000 on 100,000: TWS's what-if refuses
    wait_until(lambda: trade.status == "Inactive", what=f"the trade ended (status {trade.status})")
    assert "TWS" in trade.reason and "Available Funds are insufficient" in trade.reason
    assert trade.order_id == 0


def test_what_if_without_an_answer_refuses_in_time(what_if_world):
    gw, eng, layer = what_if_world(what_if_timeout=0.5)
    aapl = eng.qualify(Stock("AAPL"))
    gw.faults.swallow_next_orders(1)                              # the what-if is lost on its way
    trade = place(eng, aapl, market("BUY", 400))
    assert trade.status == "PendingSubmit" and trade.order_id == 0    # the dispatch thread did not wait
    wait_until(lambda: trade.status == "Inactive", what="the trade ended for lack of an answer")
    assert "no answer" in trade.reason and "0.5s" in trade.reason
    assert not layer.margin.what_if.pending


def test_cancelling_an_order_that_waits_for_its_what_if_ends_it_and_nothing_is_sent(what_if_world):
    gw, eng, layer = what_if_world(what_if_timeout=5.0)
    aapl = eng.qualify(Stock("AAPL"))
    gw.faults.swallow_next_orders(1)                              # the what-if gets no answer for now
    trade = place(eng, aapl, market("BUY", 400))
    assert trade.order_id == 0
    eng.on_dispatch(lambda: eng.orders.cancel(trade))
    assert trade.status == "Cancelled" and trade.done and "before it was sent" in trade.reason
    time.sleep(0.3)                                               # a late answer must not send it either
    assert trade.order_id == 0 and gw.call(lambda: gw.ledger.accounts["DU403"].positions.get(AAPL)) is None


def test_reducing_orders_skip_the_what_if(what_if_world):
    gw, eng, layer = what_if_world()
    fill(gw, AAPL, "BOT", 400, 190.0, account="DU403")
    aapl = eng.qualify(Stock("AAPL"))
    eng.subscribe_account()
    wait_until(lambda: eng.portfolio.position(AAPL) == 400, what="the position reported")
    trade = place(eng, aapl, market("SELL", 400))                 # reduces the account's position
    wait_until(lambda: trade.status == "Filled", what=f"the closing order filled ({trade.status} {trade.reason})")
    assert layer.margin.what_if.asked == 0
