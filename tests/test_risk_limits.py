"""Each pre-trade rule refuses what it should and passes what it should (issue 10, deliverable 1).

The rules are pure functions of an order intent and the gate's view (positions, working orders,
quotes), so most cases here build real ibapi Contracts and Orders, real Trades and Quotes, and ask a
RiskGate built exactly as RiskLayer builds it (`standard_rules`); hypothesis explores the edges. The
`risk:` YAML is read through `load_config`, whose errors name the file, the key and the line.
"""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibapi.contract import Contract

from ibframe.config import ConfigError, load_config
from ibframe.market.quote import Quote
from ibframe.risk.base import GLOBAL, OrderIntent, Refusal, RiskRejected, TradingState
from ibframe.risk.config import RiskConfig, RiskConfigError
from ibframe.risk.gate import RiskContext, RiskGate
from ibframe.risk.layer import standard_rules
from ibframe.risk.limits import ExecutionThrottle
from ibframe.risk.state import TradingStates
from ibframe.trading import orders as build
from ibframe.trading.trade import Fill, Trade


class Clock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def now(self) -> float:
        return self.t


def stock(symbol="AAPL", con_id=265598) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency, c.conId = symbol, "STK", "SMART", "USD", con_id
    return c


def option(con_id=9001) -> Contract:
    c = stock("AAPL", con_id)
    c.secType, c.multiplier, c.strike, c.right, c.lastTradeDateOrContractMonth = "OPT", "100", 190.0, "C", "20261218"
    return c


def quote(bid=189.90, ask=189.92, delayed=False) -> Quote:
    q = Quote("AAPL", bid=bid, ask=ask, last=(bid + ask) / 2 if bid and ask else None)
    q.delayed = delayed
    return q


class Desk:
    """A gate as the layer builds it, over positions and working orders the test sets."""

    def __init__(self, raw: dict | None = None, states: bool = False):
        self.clock = Clock()
        self.positions: dict[tuple[str, int], float] = {}
        self.account: dict[int, float] = {}
        self.config = RiskConfig.from_mapping(raw or {})
        self.context = RiskContext(position=lambda s, c: self.positions.get((s, c.conId), 0.0),
                                   account_position=lambda c: self.account.get(c.conId, 0.0),
                                   holdings=self._holdings, account_holdings=self._account_holdings)
        self.states = TradingStates(self.clock.now) if states else None
        self.gate = RiskGate(self.states, self.context, self.clock.now)
        self.rules = standard_rules(self.config, self.context, self.clock.now)
        for rule in self.rules.values():
            self.gate.add_rule(rule)
        self.events = []
        self.gate.decision_hooks.append(self.events.append)
        self.next_id = 100

    def _holdings(self, strategy):
        return [(stock(con_id=cid), q, 190.0) for (s, cid), q in self.positions.items() if s == strategy]

    def _account_holdings(self):
        return [(stock(con_id=cid), q, 190.0) for cid, q in self.account.items()]

    def check(self, order, contract=None, q="default", strategy="s1", kind="new"):
        """None when the order passes; the Refusal when it is refused."""
        intent = OrderIntent(strategy, contract or stock(), order, quote() if q == "default" else q,
                             self.clock.now(), kind)
        try:
            self.gate.check(intent)
        except RiskRejected as exc:
            assert exc.refusal.rule in str(exc) or exc.refusal.rule == "pre_trade_check"
            return exc.refusal
        return None

    def working(self, order, contract=None, strategy="s1") -> Trade:
        """An order of this process already working at TWS (as the manager's hooks would report it)."""
        self.next_id += 1
        order.orderId = self.next_id
        trade = Trade(self.next_id, contract or stock(), order, strategy=strategy, status="Submitted",
                      remaining=float(order.totalQuantity))
        self.context.working.update(trade)
        return trade

    def sent(self, trade: Trade, action: str = "place") -> None:
        for rule in ("order_rate", "duplicate_order"):
            self.rules[rule].note_sent(trade, action)


def rule_of(refusal: Refusal | None) -> str | None:
    return None if refusal is None else refusal.rule


# --- order sanity --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("qty", [math.nan, math.inf, -math.inf, -100, 0, 1e12])
def test_impossible_quantities_are_refused_with_a_clear_rule(qty):
    order = build.limit("BUY", 1, 189.9)
    order.totalQuantity = qty                       # the builders refuse these; a hand-made Order may not
    refusal = Desk().check(order)
    assert rule_of(refusal) == "invalid_quantity"
    assert refusal.advice and refusal.limit


@pytest.mark.parametrize("price", [math.nan, math.inf, -math.inf, -189.9, 0.0, 5e9])
def test_impossible_limit_and_stop_prices_are_refused(price):
    desk = Desk()
    limit, stop = build.limit("BUY", 10, 189.9), build.stop("SELL", 10, 180.0)
    limit.lmtPrice, stop.auxPrice = price, price
    assert rule_of(desk.check(limit)) == "invalid_price"
    assert rule_of(desk.check(stop)) == "invalid_price"


def test_a_combo_may_have_a_credit_price_but_not_a_nan_one():
    bag = Contract()
    bag.symbol, bag.secType, bag.exchange, bag.currency = "AAPL", "BAG", "SMART", "USD"
    desk = Desk({"allow_market_without_quote": True})
    assert desk.check(build.limit("BUY", 1, -1.25), bag, q=None) is None
    assert rule_of(desk.check(build.limit("BUY", 1, math.nan), bag, q=None)) == "invalid_price"


def test_a_side_that_is_no_side_is_refused():
    order = build.limit("BUY", 10, 189.9)
    order.action = "SHORT"
    assert rule_of(Desk().check(order)) == "invalid_action"


# --- size -------------------------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(qty=st.floats(min_value=1, max_value=1e8, allow_nan=False))
def test_any_quantity_above_the_limit_is_refused_and_any_below_passes(qty):
    desk = Desk({"max_order_quantity": {"STK": 5000}, "max_order_notional": "off", "max_position": "off",
                 "price_tolerance": "off"})
    refusal = desk.check(build.limit("BUY", qty, 10.0), q=None)
    if qty > 5000:
        assert rule_of(refusal) == "max_order_quantity" and refusal.limit.startswith("5000")
    else:
        assert refusal is None


def test_default_limits_protect_a_new_user():
    desk = Desk()
    assert rule_of(desk.check(build.market("BUY", 1_000_000))) == "max_order_quantity"
    assert rule_of(desk.check(build.market("BUY", 9_000))) == "max_order_notional"     # 9000 x 189.92 > 1M
    assert desk.check(build.market("BUY", 100)) is None
    assert rule_of(desk.check(build.limit("BUY", 101, 5.0), option(), q=None)) == "max_order_quantity"


def test_notional_counts_the_option_multiplier():
    desk = Desk({"max_order_notional": 100_000})
    opt_quote = Quote("AAPL C", bid=12.0, ask=12.5)
    refusal = desk.check(build.limit("BUY", 90, 12.5), option(), q=opt_quote)     # 90 x 12.5 x 100 = 112,500
    assert rule_of(refusal) == "max_order_notional" and "112500" in refusal.value
    assert desk.check(build.limit("BUY", 70, 12.5), option(), q=opt_quote) is None


# --- price tolerance ----------------------------------------------------------------------------------------------

def test_a_limit_buy_at_twice_the_ask_is_refused_and_one_near_it_passes():
    desk = Desk()
    refusal = desk.check(build.limit("BUY", 10, 379.84))
    assert rule_of(refusal) == "price_tolerance" and "ask 189.92" in refusal.limit and "100.0% through" in refusal.value
    assert desk.check(build.limit("BUY", 10, 191.0)) is None           # 0.6% through: a marketable limit
    assert desk.check(build.limit("BUY", 10, 150.0)) is None           # below the market: resting
    assert rule_of(desk.check(build.limit("SELL", 10, 94.95))) == "price_tolerance"
    assert desk.check(build.limit("SELL", 10, 189.0)) is None


def test_ticks_widen_the_tolerance_for_cheap_instruments():
    penny = Quote("X", bid=0.50, ask=0.51)
    strict = Desk({"price_tolerance": {"percent": 5}})
    loose = Desk({"price_tolerance": {"percent": 5, "ticks": 10, "tick_size": 0.01}})
    order = build.limit("BUY", 100, 0.60)                              # 9 ticks, 17.6% through the ask
    assert rule_of(strict.check(order, q=penny)) == "price_tolerance"
    assert loose.check(build.limit("BUY", 100, 0.60), q=penny) is None
    assert rule_of(loose.check(build.limit("BUY", 100, 0.70), q=penny)) == "price_tolerance"


def test_stops_that_would_trigger_at_once_far_from_the_market_are_refused():
    desk = Desk()
    assert desk.check(build.stop("SELL", 10, 170.0)) is None                       # a protective stop
    assert desk.check(build.stop("SELL", 10, 100.0)) is None                       # far, but on the protective side
    assert desk.check(build.stop("BUY", 10, 400.0)) is None                        # a short's protective stop
    assert rule_of(desk.check(build.stop("BUY", 10, 100.0))) == "price_tolerance"  # far below the ask: fires at once
    assert rule_of(desk.check(build.stop("SELL", 10, 300.0))) == "price_tolerance" # far above the bid: fires at once
    stop_limit = build.stop_limit("BUY", 10, 195.0, 300.0)                         # limit far above its stop
    assert rule_of(desk.check(stop_limit)) == "price_tolerance"


def test_market_orders_need_a_live_quote_unless_allowed():
    desk = Desk()
    assert rule_of(desk.check(build.market("BUY", 10), q=None)) == "market_without_quote"
    assert rule_of(desk.check(build.market("BUY", 10), q=quote(delayed=True))) == "market_without_quote"
    assert rule_of(desk.check(build.market("SELL", 10), q=quote(bid=None))) == "market_without_quote"
    assert desk.check(build.market("BUY", 10)) is None
    allowed = Desk({"allow_market_without_quote": True})
    assert allowed.check(build.market("BUY", 10), q=None) is None


# --- positions and exposure, working orders included ------------------------------------------------------------

def test_position_limit_counts_working_orders_not_only_fills():
    desk = Desk({"max_position": 1000, "max_order_notional": "off"})
    desk.positions[("s1", 265598)] = 600.0
    desk.working(build.limit("BUY", 300, 150.0))
    refusal = desk.check(build.limit("BUY", 200, 150.0))                # 600 + 300 working + 200 = 1100
    assert rule_of(refusal) == "max_position" and refusal.value == "1100"
    assert desk.check(build.limit("BUY", 100, 150.0)) is None           # exactly 1000
    assert desk.check(build.limit("SELL", 900, 200.0)) is None          # reduces: always fine
    other = desk.working(build.limit("BUY", 500, 150.0), strategy="s2")  # another strategy's order: not s1's
    assert desk.check(build.limit("BUY", 100, 150.0)) is None
    other.status = "Cancelled"
    desk.context.working.update(other)


def test_the_account_position_limit_sees_every_strategy_and_tws_positions():
    desk = Desk({"account": {"max_position": {"STK": 2000}}, "max_order_notional": "off"})
    desk.account[265598] = 1500.0
    desk.working(build.limit("BUY", 400, 150.0), strategy="s2")
    refusal = desk.check(build.limit("BUY", 200, 150.0))
    assert rule_of(refusal) == "account_max_position" and refusal.value == "2100"
    assert desk.check(build.limit("BUY", 100, 150.0)) is None


def test_gross_and_net_exposure_count_positions_and_working_orders():
    desk = Desk({"max_gross_exposure": 100_000, "max_order_notional": "off", "max_position": "off",
                 "account": {"max_gross_exposure": "off", "max_net_exposure": "off"}})
    desk.positions[("s1", 1)] = 300.0                                   # 300 x 190 = 57,000
    desk.working(build.limit("BUY", 100, 180.0))                        # 18,000 more
    refusal = desk.check(build.limit("BUY", 200, 189.0))                # + 37,800 = 112,800
    assert rule_of(refusal) == "max_gross_exposure"
    assert desk.check(build.limit("BUY", 100, 189.0)) is None           # 93,900
    net = Desk({"account": {"max_net_exposure": 50_000, "max_gross_exposure": "off"}, "max_order_notional": "off"})
    net.account[1] = -200.0                                             # short 38,000
    assert net.check(build.limit("SELL", 100, 189.0)) is not None       # -56,900: beyond
    assert net.check(build.limit("BUY", 100, 189.0)) is None            # towards flat


# --- rates, duplicates, self-match --------------------------------------------------------------------------------

def test_order_rate_per_second_and_per_minute():
    desk = Desk({"max_orders_per_second": 3, "max_orders_per_minute": 5, "duplicate_window": 0})
    for i in range(3):
        assert desk.check(build.limit("BUY", 1, 150.0 + i)) is None
        desk.sent(desk.working(build.limit("BUY", 1, 150.0 + i)))
    assert rule_of(desk.check(build.limit("BUY", 1, 149.0))) == "max_orders_per_second"
    desk.clock.t += 1.0
    for i in range(2):
        assert desk.check(build.limit("BUY", 1, 140.0 + i)) is None
        desk.sent(desk.working(build.limit("BUY", 1, 140.0 + i)))
    refusal = desk.check(build.limit("BUY", 1, 139.0))
    assert rule_of(refusal) == "max_orders_per_minute" and "5 already" in refusal.value
    assert desk.check(build.limit("BUY", 1, 139.0), strategy="s2") is None   # per strategy
    desk.clock.t += 60.0
    assert desk.check(build.limit("BUY", 1, 139.0)) is None


def test_too_many_cancels_pause_new_orders_but_cancels_are_only_counted():
    desk = Desk({"max_cancels_per_second": 2})
    trades = [desk.working(build.limit("BUY", 1, 150.0 + i)) for i in range(3)]
    for t in trades:
        desk.sent(t, "cancel")                    # a cancel is never asked: it is only counted
    assert rule_of(desk.check(build.limit("BUY", 1, 150.0))) == "max_cancels_per_second"
    desk.clock.t += 1.0
    assert desk.check(build.limit("BUY", 1, 150.0)) is None


def test_the_same_order_twice_within_the_window_is_a_duplicate():
    desk = Desk({"duplicate_window": "2s"})
    first = desk.working(build.limit("BUY", 100, 150.0))
    first.placed_at = desk.clock.now()
    desk.sent(first)
    refusal = desk.check(build.limit("BUY", 100, 150.0))
    assert rule_of(refusal) == "duplicate_order"
    assert desk.check(build.limit("BUY", 100, 150.01)) is None          # another price
    assert desk.check(build.limit("BUY", 100, 150.0), strategy="s2") is None
    desk.clock.t += 2.5
    assert desk.check(build.limit("BUY", 100, 150.0)) is None


def test_self_match_refuses_a_buy_crossing_our_own_resting_sell():
    desk = Desk({"self_match": "strategy"})
    resting = desk.working(build.limit("SELL", 100, 190.0))
    refusal = desk.check(build.limit("BUY", 100, 190.5))
    assert rule_of(refusal) == "self_match" and str(resting.order_id) in refusal.advice
    assert desk.check(build.limit("BUY", 100, 189.5)) is None           # below our sell: no cross
    assert rule_of(desk.check(build.market("BUY", 100), q=quote(ask=190.0))) == "self_match"
    assert desk.check(build.limit("BUY", 100, 190.5), strategy="s2") is None      # strategy scope
    account = Desk()                                                    # default: every order of this process
    account.working(build.limit("BUY", 100, 189.0), strategy="s2")
    assert rule_of(account.check(build.limit("SELL", 100, 188.5))) == "self_match"


# --- instruments -------------------------------------------------------------------------------------------------

def test_only_allowed_sec_types_and_symbols_pass():
    desk = Desk({"allowed_sec_types": ["STK"], "denied_symbols": ["GME"]})
    assert rule_of(desk.check(build.limit("BUY", 1, 12.0), option())) == "allowed_sec_types"
    assert rule_of(desk.check(build.limit("BUY", 1, 20.0), stock("GME", 1))) == "denied_symbols"
    assert desk.check(build.limit("BUY", 1, 180.0)) is None
    only = Desk({"allowed_symbols": ["MSFT"]})
    assert rule_of(only.check(build.limit("BUY", 1, 180.0))) == "allowed_symbols"
    assert only.check(build.limit("BUY", 1, 180.0), stock("MSFT", 272093), q=quote(415.0, 415.1)) is None


# --- states, the throttle and the gate ------------------------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(position=st.integers(min_value=-5000, max_value=5000).filter(bool),
       qty=st.integers(min_value=1, max_value=5000))
def test_in_reducing_any_order_that_only_reduces_passes_and_nothing_else(position, qty):
    desk = Desk({"max_order_notional": "off"}, states=True)
    desk.states.set("s1", TradingState.REDUCING, "test")
    desk.positions[("s1", 265598)] = float(position)
    closing = "SELL" if position > 0 else "BUY"
    refusal = desk.check(build.limit(closing, qty, 189.91))
    if qty <= abs(position):
        assert refusal is None
    else:
        assert rule_of(refusal) == "trading_state"
    opening = "BUY" if position > 0 else "SELL"
    assert rule_of(desk.check(build.limit(opening, 1, 189.91))) == "trading_state"


def test_working_orders_on_the_same_side_count_against_reducing():
    desk = Desk(states=True)
    desk.states.set("s1", TradingState.REDUCING, "test")
    desk.positions[("s1", 265598)] = 100.0
    desk.working(build.limit("SELL", 80, 200.0))
    assert rule_of(desk.check(build.limit("SELL", 30, 189.9))) == "trading_state"   # 80 + 30 > 100
    assert desk.check(build.limit("SELL", 20, 189.9)) is None


def test_repeated_fills_set_the_strategy_reducing():
    clock = Clock()
    states = TradingStates(clock.now)
    config = RiskConfig.from_mapping({"repeated_fills": {"fills": 3, "within": "10s", "then": "REDUCING"}})
    throttle = ExecutionThrottle(config.limits, states, clock.now)
    trade = Trade(1, stock(), build.limit("BUY", 1, 1.0), strategy="s1")
    fill = Fill("e", "", "BOT", 1.0, 1.0, "X")
    for _ in range(2):
        throttle.on_fill(trade, fill)
        clock.t += 6.0                                    # spaced out: never 3 within 10s
    throttle.on_fill(trade, fill)
    assert states.state("s1") is TradingState.ACTIVE
    throttle.on_fill(trade, fill)
    throttle.on_fill(trade, fill)
    assert states.state("s1") is TradingState.REDUCING and states.state("s2") is TradingState.ACTIVE
    assert "3 fills within 10s" in states.entry("s1").reason


def test_halted_refuses_everything_even_what_reduces():
    desk = Desk(states=True)
    desk.states.set(GLOBAL, TradingState.HALTED, "kill switch test")
    desk.positions[("s1", 265598)] = 100.0
    assert rule_of(desk.check(build.limit("SELL", 10, 189.9))) == "trading_state"


def test_a_rule_that_raises_refuses_the_order_and_a_refusal_is_announced():
    desk = Desk()

    class Broken:
        name = "broken"

        def check(self, intent):
            raise ZeroDivisionError("oops")
    desk.gate.add_rule(Broken())
    refusal = desk.check(build.limit("BUY", 1, 189.9))
    assert rule_of(refusal) == "broken" and "ZeroDivisionError" in refusal.value
    event = desk.events[-1]
    assert event.kind == "refused" and event.scope == "s1" and event.rule == "broken"
    assert event.details["quantity"] == 1.0 and event.details["instrument"] == "AAPL"


def test_a_modification_is_checked_like_a_new_order():
    desk = Desk()
    trade = desk.working(build.limit("BUY", 10, 189.0))
    changed = build.limit("BUY", 10, 379.84)
    changed.orderId = trade.order_id
    assert rule_of(desk.check(changed, kind="modify")) == "price_tolerance"
    same = build.limit("BUY", 10, 189.0)
    same.orderId = trade.order_id
    assert desk.check(same, kind="modify") is None         # a modification is no duplicate of itself


# --- the YAML ------------------------------------------------------------------------------------------------------

def test_risk_yaml_is_typed_per_strategy_and_errors_name_file_key_and_line(tmp_path):
    good = tmp_path / "ok.yaml"
    good.write_text("strategy:\n  class: strategies.ma_cross:MovingAverageCross\n  name: ma\n"
                    "  instruments: {AAPL: AAPL}\n"
                    "risk:\n  max_order_quantity: {STK: 500}\n  price_tolerance: 2%\n"
                    "  strategies:\n    ma: {max_orders_per_second: 3, max_order_quantity: {OPT: 5}}\n"
                    "  account: {max_gross_exposure: 250000}\n")
    cfg = load_config(good).risk
    ma = cfg.limits("ma")
    assert ma.by_sec_type(ma.max_order_quantity, "STK") == 500 and ma.by_sec_type(ma.max_order_quantity, "OPT") == 5
    assert ma.max_orders_per_second == 3 and ma.price_percent == 2.0
    assert cfg.limits("other").max_orders_per_second == 10 and cfg.account.max_gross_exposure == 250_000
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("max_orders_per_second: 3", "max_orders_per_second: .nan"))
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert err.value.key == "risk.strategies.ma.max_orders_per_second" and err.value.line == 9
    bad.write_text(good.read_text().replace("    ma:", "    nobody:"))
    with pytest.raises(ConfigError, match="no strategy is named 'nobody'"):
        load_config(bad)
    bad.write_text(good.read_text().replace("price_tolerance: 2%", "max_qty: 5"))
    with pytest.raises(ConfigError, match=r"risk.max_qty: unknown key; allowed: .*max_order_quantity"):
        load_config(bad)
    with pytest.raises(RiskConfigError, match="self_match"):
        RiskConfig.from_mapping({"self_match": "sometimes"})
