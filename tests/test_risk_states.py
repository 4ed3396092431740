"""Trading states: what ACTIVE / REDUCING / HALTED let through, per strategy and globally, and what a halt
does to the orders working at the gateway.

The refusal rules are checked directly and through the risk gate (`RiskGate`, which asks the states
first); the halts run against the simulator with two strategies on one Engine, and the test reads
the simulator's own order table to see what it cancelled.
"""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibapi.contract import Contract

from ibframe.risk.config import RiskConfig
from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.risk import kill
from ibframe.risk.base import GLOBAL, OrderIntent, RiskRejected, TradingState
from ibframe.risk.gate import RiskContext, RiskGate
from ibframe.risk.state import STRICTNESS, TradingStates, as_state
from ibframe.trading.orders import market
from conftest import wait_until
from kill_kit import RestingOrders

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def aapl() -> Contract:
    c = Contract()
    c.conId, c.symbol, c.secType, c.exchange, c.currency = 265598, "AAPL", "STK", "SMART", "USD"
    return c


def intent(strategy="alpha", action="BUY", qty=10, reduces=False, kind="new", order=None) -> OrderIntent:
    return OrderIntent(strategy, aapl(), order or market(action, qty), None, 0.0, kind, reduces)


class Clock:
    t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


# --- the refusal rules ---------------------------------------------------------------------------------
def test_active_lets_everything_through_and_reducing_only_reducing_orders():
    states = TradingStates(Clock())
    assert states.state("alpha") is ACTIVE and states.refusal(intent()) is None
    states.set("alpha", "reducing", "test: too much exposure", "margin")
    assert states.refusal(intent(action="SELL", reduces=True)) is None
    refusal = states.refusal(intent(action="BUY", qty=10))
    assert refusal.rule == "trading_state"
    assert "REDUCING for strategy alpha" in refusal.limit and "by margin: test: too much exposure" in refusal.limit
    assert refusal.value == "BUY 10 AAPL, which opens or increases a position"
    assert "only orders that reduce or close a position" in refusal.advice and "cancels always pass" in refusal.advice
    assert states.refusal(intent(strategy="beta")) is None, "another strategy's scope is not touched"


def test_halted_refuses_everything_even_reducing_orders_and_modifications():
    states = TradingStates(Clock())
    states.set(GLOBAL, HALTED, "operator", "operator")
    for i in (intent(), intent(action="SELL", reduces=True), intent(kind="modify", reduces=True),
              intent(strategy="")):
        refusal = states.refusal(i)
        assert refusal is not None and "HALTED globally" in refusal.limit and "nothing passes" in refusal.limit
    assert "modification of BUY 10 AAPL" == states.refusal(intent(kind="modify")).value


def test_a_halt_lets_through_only_the_kill_switchs_flatten_and_only_when_it_reduces():
    states = TradingStates(Clock())
    states.set(GLOBAL, HALTED, "kill switch from SIGUSR1", kill.KILL_SOURCE)
    flatten = market("SELL", 10)
    states.exempt(flatten)
    assert states.refusal(intent(order=flatten, reduces=True)) is None
    assert states.refusal(intent(order=flatten, reduces=False)) is not None, "an exempt order that opens is refused"
    assert states.refusal(intent(order=flatten, reduces=True, kind="modify")) is not None
    assert states.refusal(intent(order=market("SELL", 10), reduces=True)) is not None, "same terms, other order"
    states.release(flatten)
    assert states.refusal(intent(order=flatten, reduces=True)) is not None
    advice = states.refusal(intent()).advice
    assert "a kill switch halt lasts until the run ends" in advice


def test_the_effective_state_is_the_stricter_of_global_and_the_strategys_own():
    states = TradingStates(Clock())
    states.set("alpha", HALTED, "alpha misbehaves", "throttle")
    states.set(GLOBAL, REDUCING, "margin low", "margin")
    assert states.state("alpha") is HALTED and states.state("beta") is REDUCING and states.state() is REDUCING
    assert "for strategy alpha" in states.refusal(intent("alpha", reduces=True)).limit
    assert states.refusal(intent("beta", reduces=True)) is None
    assert "REDUCING globally" in states.refusal(intent("beta")).limit


def test_a_source_lifts_only_its_own_claim():
    states = TradingStates(Clock())
    states.set("alpha", HALTED, "5 fills in 1s", "throttle")
    states.set("alpha", REDUCING, "margin low", "margin")
    assert states.state("alpha") is HALTED
    states.set("alpha", ACTIVE, "margin fine", "margin")
    assert states.state("alpha") is HALTED, "the margin monitor does not lift the throttle's halt"
    assert set(states.claims("alpha")) == {"throttle"}
    states.set("alpha", ACTIVE, "paused long enough", "throttle")
    assert states.state("alpha") is ACTIVE and states.scopes() == {}


def test_a_strategy_cannot_lift_a_halt_it_did_not_set_nor_touch_global(caplog):
    states = TradingStates(Clock())
    states.set("alpha", HALTED, "kill", kill.KILL_SOURCE)
    with caplog.at_level(logging.WARNING):
        states.set_by_strategy("alpha", "ACTIVE", "I feel fine")
    assert states.state("alpha") is HALTED
    assert "stays HALTED: kill switch holds it" in caplog.text
    with pytest.raises(ValueError, match="GLOBAL belongs to the risk layer"):
        states.set_by_strategy(GLOBAL, HALTED, "no")
    states.set_by_strategy("beta", "halted", "pausing myself")
    assert "set_trading_state('ACTIVE', reason)" in states.refusal(intent("beta")).advice
    states.set_by_strategy("beta", "active", "resuming")
    assert states.state("beta") is ACTIVE


def test_every_change_is_announced_once_and_a_failing_listener_does_not_stop_the_others(caplog):
    clock = Clock()
    states = TradingStates(clock)
    seen = []

    def broken(_event):
        raise RuntimeError("listener bug")
    states.listeners += [broken, seen.append]
    assert states.set("alpha", HALTED, "why", "src") is True
    assert states.set("alpha", "HALTED", "again, other words", "src") is False
    (event,) = seen
    assert (event.kind, event.scope, event.rule, event.time) == ("state", "alpha", "trading_state", clock.t)
    assert event.details == {"state": "HALTED", "previous": "ACTIVE", "claim": "HALTED", "reason": "why",
                             "source": "src"}
    assert "listener bug" in caplog.text


@pytest.mark.parametrize("bad", ["STOPPED", "", None, 3, "HALT"])
def test_an_unknown_state_is_refused_with_the_choices(bad):
    with pytest.raises(ValueError, match="ACTIVE, REDUCING, HALTED"):
        as_state(bad)
    with pytest.raises(ValueError):
        TradingStates(Clock()).set("alpha", bad, "x")


SCOPES = st.sampled_from([GLOBAL, "alpha", "beta"])
SOURCES = st.sampled_from(["kill switch", "margin", "throttle", "strategy", ""])
STATES = st.sampled_from(list(TradingState))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(SCOPES, SOURCES, STATES), max_size=25), st.sampled_from(["alpha", "beta", ""]),
       st.booleans(), st.sampled_from(["new", "modify"]))
def test_property_state_is_the_strictest_claim_and_refusal_follows_it(changes, scope, reduces, kind):
    states = TradingStates(Clock())
    claims: dict[tuple[str, str], TradingState] = {}
    for sc, source, state in changes:
        states.set(sc, state, "r", source)
        claims[(sc, source)] = state

    def strictest(sc):
        return max((s for (c, _), s in claims.items() if c == sc), key=STRICTNESS.get, default=ACTIVE)
    expected = max(strictest(GLOBAL), strictest(scope or GLOBAL), key=STRICTNESS.get)
    assert states.state(scope) is expected
    refused = states.refusal(intent(scope, reduces=reduces, kind=kind)) is not None
    assert refused == (expected is HALTED or (expected is REDUCING and not reduces))


# --- through the gate ----------------------------------------------------------------------------------
def test_the_gate_asks_the_state_first_and_reducing_is_judged_on_the_strategys_own_position():
    positions = {("alpha", 265598): 100.0}
    states = TradingStates(Clock())
    gate = RiskGate(states, RiskContext(position=lambda s, c: positions.get((s, c.conId), 0.0)))
    states.set("alpha", REDUCING, "margin low", "margin")
    assert gate.check(intent(action="SELL", qty=60)) is None              # reduces alpha's 100 long
    with pytest.raises(RiskRejected) as refused:
        gate.check(intent(action="SELL", qty=150))                          # would flip to short: opens
    assert refused.value.refusal.rule == "trading_state" and "REDUCING" in str(refused.value)
    with pytest.raises(RiskRejected, match="opens or increases a position"):
        gate.check(intent(action="BUY", qty=1))
    states.set("beta", REDUCING, "margin low", "margin")
    with pytest.raises(RiskRejected, match="opens or increases"):
        gate.check(intent(strategy="beta", action="SELL", qty=1))             # beta holds nothing: a sell opens

    states.set(GLOBAL, HALTED, "kill switch from test", kill.KILL_SOURCE)
    with pytest.raises(RiskRejected, match="HALTED globally"):
        gate.check(intent(action="SELL", qty=60))
    flatten = market("SELL", 100)
    states.exempt(flatten)
    assert gate.check(intent(order=flatten)) is None                        # the gate found it reduces
    opening = market("BUY", 100)
    states.exempt(opening)
    with pytest.raises(RiskRejected, match="HALTED"):
        gate.check(intent(order=opening))                                   # exempt, but it would open


# --- halts against the simulator -------------------------------------------------------------------------
def working_at_gateway(gw, client_id: int) -> list[int]:
    return sorted(gw.call(lambda: [lo.order.orderId for lo in gw.broker.open_orders()
                                   if lo.order.clientId == client_id]))


@pytest.fixture
def two_strategies(make_gateway, tmp_path):
    """An engine with states, halting and two RestingOrders strategies (alpha 2 orders, beta 1) resting."""
    gw = make_gateway(seed=13)
    eng = Engine("127.0.0.1", gw.port, 51, state_dir=tmp_path).start()
    eng.subscribe_account()
    stock = eng.qualify(Stock("AAPL"))
    states = TradingStates(eng.clock.now)
    eng.risk = SimpleNamespace(states=states)             # what the risk layer sets
    alpha = RestingOrders(eng, "alpha", {"orders": 2}, {"AAPL": stock})
    beta = RestingOrders(eng, "beta", {"orders": 1}, {"AAPL": stock})
    cfg = kill.KillConfig(global_cancel=False, file=None, signal=False, console=False)
    switch = kill.install(eng, states, cfg, lambda: [alpha, beta], tmp_path, on_done=lambda text: None)
    for s in (alpha, beta):
        eng.on_dispatch(s._start)
    wait_until(lambda: all(s.placed and all(t.status == "Submitted" for t in s.resting) for s in (alpha, beta)),
               what="3 resting orders")
    yield SimpleNamespace(gw=gw, eng=eng, states=states, alpha=alpha, beta=beta)
    switch.stop()
    for s in (alpha, beta):
        eng.on_dispatch(s._stop)
    eng.stop()


def test_halting_a_strategy_cancels_its_working_orders_and_leaves_the_others(two_strategies):
    t = two_strategies
    ids = lambda s: sorted(x.order_id for x in s.resting)           # noqa: E731
    assert working_at_gateway(t.gw, 51) == sorted(ids(t.alpha) + ids(t.beta))
    t.eng.on_dispatch(lambda: t.states.set("alpha", HALTED, "test halt", "test"))
    wait_until(lambda: working_at_gateway(t.gw, 51) == ids(t.beta), what="alpha's orders cancelled at the gateway")
    wait_until(lambda: all(x.status == "Cancelled" for x in t.alpha.resting), what="alpha told of its cancels")
    assert all(x.status == "Submitted" for x in t.beta.resting)

    t.eng.on_dispatch(lambda: t.states.set(GLOBAL, HALTED, "everything", "test"))
    wait_until(lambda: working_at_gateway(t.gw, 51) == [], what="beta's order cancelled by the global halt")
    assert t.states.state("beta") is HALTED


def test_a_strategy_halts_itself_from_its_own_code(two_strategies):
    t = two_strategies
    assert t.eng.on_dispatch(lambda: t.beta.trading_state) is ACTIVE
    assert t.eng.on_dispatch(lambda: t.beta.set_trading_state("HALTED", "my model is confused")) is True
    wait_until(lambda: working_at_gateway(t.gw, 51) == sorted(x.order_id for x in t.alpha.resting),
               what="beta's order cancelled")
    assert t.eng.on_dispatch(lambda: t.beta.trading_state) is HALTED
    assert t.eng.on_dispatch(lambda: t.alpha.trading_state) is ACTIVE
    assert t.states.entry("beta").source == "strategy" and t.states.entry("beta").reason == "my model is confused"


def test_reducing_cancels_nothing_and_a_cancel_is_never_refused(two_strategies):
    t = two_strategies
    t.eng.on_dispatch(lambda: t.states.set(GLOBAL, REDUCING, "margin low", "margin"))
    before = working_at_gateway(t.gw, 51)
    assert len(before) == 3
    t.eng.on_dispatch(lambda: t.states.set(GLOBAL, HALTED, "then worse", "margin"))
    wait_until(lambda: working_at_gateway(t.gw, 51) == [], what="every order cancelled")
    t.eng.on_dispatch(lambda: t.states.set(GLOBAL, ACTIVE, "recovered", "margin"))
    assert t.states.state() is ACTIVE


def test_without_a_risk_layer_the_strategy_is_told_so(make_gateway, tmp_path):
    gw = make_gateway(seed=13)
    eng = Engine("127.0.0.1", gw.port, 52, state_dir=tmp_path).start()
    try:
        s = RestingOrders(eng, "lonely", {}, {})
        with pytest.raises(RuntimeError, match="no risk layer"):
            _ = s.trading_state
        with pytest.raises(RuntimeError, match="no risk layer"):
            s.set_trading_state("HALTED", "x")
    finally:
        eng.stop()


# --- the kill: section ------------------------------------------------------------------------------------
def _fail(path, message):
    raise ValueError(f"{'.'.join(map(str, path))}: {message}")


def test_kill_config_defaults_and_validation(tmp_path):
    assert kill.KillConfig.from_mapping(None, _fail) == kill.KillConfig()
    cfg = kill.KillConfig.from_mapping({"flatten": True, "global_cancel": False, "file": "/tmp/x/STOP",
                                        "poll": 0.5}, _fail)
    assert (cfg.flatten, cfg.global_cancel, cfg.poll) == (True, False, 0.5)
    assert str(cfg.file_path(tmp_path)) == "/tmp/x/STOP"
    assert kill.KillConfig().file_path(tmp_path) == tmp_path / "KILL"
    assert kill.KillConfig.from_mapping({"file": False}, _fail).file_path(tmp_path) is None
    for raw, match in [({"flatten": "yes"}, "risk.kill.flatten: must be true or false"),
                       ({"poll": 0}, "risk.kill.poll: must be a number"), ({"poll": float("nan")}, "risk.kill.poll"),
                       ({"poll": float("inf")}, "risk.kill.poll"), ({"poll": True}, "risk.kill.poll"),
                       ({"file": ""}, "risk.kill.file: must be a path"), ({"fltten": True}, "risk.kill.fltten: unknown key"),
                       ([1], "risk.kill: must be a mapping")]:
        with pytest.raises(ValueError, match=match):
            RiskConfig.from_mapping({"kill": raw})


def test_on_stop_in_the_yaml_names_file_key_and_line(tmp_path):
    from ibframe.config import ConfigError, load_config
    path = tmp_path / "run.yaml"
    path.write_text("strategy:\n  class: kill_kit:RestingOrders\n  instruments: {AAPL: AAPL}\non_stop: flatten\n")
    with pytest.raises(ConfigError, match=r"run.yaml:4: on_stop: 'flatten': write cancel .* or leave"):
        load_config(path)
    path.write_text("strategy:\n  class: kill_kit:RestingOrders\n  instruments: {AAPL: AAPL}\non_stop: leave\n")
    assert load_config(path).on_stop == "leave"
    path.write_text("strategy:\n  class: kill_kit:RestingOrders\n  instruments: {AAPL: AAPL}\n")
    assert load_config(path).on_stop == "cancel"


# --- the whole path: Strategy -> OrderManager -> RiskGate (the risk layer installed) -> simulator ---------------
@pytest.fixture
def guarded(make_gateway, tmp_path):
    """An engine with the risk layer (default rules), halting and a kill switch; strategy 'holder' bought 10
    AAPL and rests 2 bids."""
    from ibframe.risk.layer import RiskLayer
    gw = make_gateway(seed=17)
    eng = Engine("127.0.0.1", gw.port, 53, state_dir=tmp_path).start()
    eng.subscribe_account()
    stock = eng.qualify(Stock("AAPL"))
    s = RestingOrders(eng, "holder", {"orders": 2, "buy_first": 10}, {"AAPL": stock})
    layer = RiskLayer.install(eng, None, [s])
    done = []
    cfg = kill.KillConfig(flatten=True, global_cancel=False, file=None, signal=False, console=False)
    switch = kill.install(eng, layer.states, cfg, lambda: [s], tmp_path, on_done=done.append)
    eng.on_dispatch(s._start)
    wait_until(lambda: s.placed and all(t.status == "Submitted" for t in s.resting), what="a buy and 2 bids")
    yield SimpleNamespace(gw=gw, eng=eng, s=s, states=layer.states, switch=switch, done=done, layer=layer)
    switch.stop()
    eng.on_dispatch(s._stop)
    eng.stop()


def test_reducing_through_the_real_gate_lets_the_sell_out_and_refuses_the_buy(guarded):
    g = guarded
    assert g.eng.on_dispatch(lambda: g.s.position("AAPL")) == 10
    g.eng.on_dispatch(lambda: g.states.set(GLOBAL, REDUCING, "margin low", "margin"))
    trades_before, next_id = len(g.s.trades), g.eng.order_ids.peek()
    with pytest.raises(RiskRejected) as refused:                        # the strategy's buy raises...
        g.eng.on_dispatch(lambda: g.s.buy("AAPL", 1))
    assert "risk rule trading_state" in str(refused.value) and "REDUCING globally" in str(refused.value)
    assert len(g.s.trades) == trades_before and g.eng.order_ids.peek() == next_id, "nothing sent, no id spent"
    wait_until(lambda: any(e.code == -4 and "REDUCING" in e.text for e in g.s.refusals), what="on_error told")
    sold = g.eng.on_dispatch(lambda: g.s.sell("AAPL", 4))
    wait_until(lambda: sold.done, what="the reducing sell to fill")
    assert sold.status == "Filled" and g.eng.on_dispatch(lambda: g.s.position("AAPL")) == 6
    assert len(working_at_gateway(g.gw, 53)) == 2, "REDUCING cancels nothing"
    assert any(e.kind == "refused" and e.rule == "trading_state" for e in g.layer.history)


def test_a_kill_through_the_real_gate_cancels_refuses_and_flattens(guarded):
    g = guarded
    g.switch.request("test")
    wait_until(lambda: g.done, what="the kill to finish")
    wait_until(lambda: g.eng.on_dispatch(lambda: g.s.position("AAPL")) == 0, what="the flatten to fill")
    assert working_at_gateway(g.gw, 53) == []
    assert "2 of 2 working order(s) cancelled" in g.done[0] and "1 flatten order(s) sent" in g.done[0]
    for action in (g.s.buy, g.s.sell):                                   # a sell is not the kill's flatten
        with pytest.raises(RiskRejected, match="HALTED globally"):
            g.eng.on_dispatch(lambda: action("AAPL", 1))
    with pytest.raises(RiskRejected, match="HALTED globally"):            # the engine's door raises
        g.eng.on_dispatch(lambda: g.eng.orders.place(g.s.contract("AAPL"), market("SELL", 1), "holder"))
    assert working_at_gateway(g.gw, 53) == []
    assert [e.kind for e in g.layer.history if e.kind in ("state", "kill")][:2] == ["state", "kill"]
