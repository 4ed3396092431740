"""RiskLayer: builds the risk layer from a RiskConfig and installs it on an engine, once.

Owns: wiring — the trading states (`ibframe.risk.state.TradingStates`), the rules of
`ibframe.risk.limits` on the engine's one gate (`engine.orders.gate`), the gate's view of
positions / working orders / marks (`RiskContext`, from the strategies' own books, the portfolio and
the live quotes), the order manager's hooks that feed the rate, duplicate and repeated-fill rules,
the PDT guard and margin monitor (`ibframe.risk.pdt` / `ibframe.risk.margin`, each a module with
`install(engine, config, layer)`) when configured, and `events`: one hook list for every risk event
(refusals, state changes, alerts) that the journal subscribes to.
Must never: place or cancel orders itself, or block the dispatch thread.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, Iterable

from . import margin, pdt
from .base import RiskEvent
from .config import RiskConfig
from .freshness import FreshnessLimits, StaleData
from .gate import RiskContext, RiskGate
from .state import TradingStates
from .limits import (AllowedInstruments, DuplicateOrder, ExecutionThrottle, ExposureLimit, MaxOrderNotional,
                     MaxOrderQuantity, OrderRate, OrderSanity, PositionLimit, PriceTolerance, SelfMatch)

log = logging.getLogger("ibframe.risk")


class RiskLayer:
    def __init__(self, config: RiskConfig, gate: RiskGate, states):
        self.config = config
        self.gate = gate
        self.states = states
        self.events: list[Callable[[RiskEvent], None]] = []
        self.history: list[RiskEvent] = []            # the last MAX_HISTORY events, for summaries and tests
        self.pdt = None
        self.margin = None
        self.rate: OrderRate | None = None
        self.throttle: ExecutionThrottle | None = None

    MAX_HISTORY = 1000

    # --- building --------------------------------------------------------------------------------------
    @classmethod
    def install(cls, engine, risk_config: RiskConfig | None = None, strategies: Iterable = ()) -> "RiskLayer":
        """Build everything from `risk_config` (None: the defaults) and install it on `engine`.

        Call once, after the strategies are built and before they start (the runner does).
        """
        config = risk_config if risk_config is not None else RiskConfig()
        now = engine.clock.now
        orders = engine.orders
        gate: RiskGate = orders.gate
        states = TradingStates(now)
        layer = cls(config, gate, states)
        engine.risk = layer                     # Strategy.trading_state and the kill switch find the states here
        gate.states, gate.now = states, now
        books = {s.name: s.own_book for s in strategies}
        gate.context = _context(engine, books, gate.context)
        gate.decision_hooks.append(layer.emit)
        states.listeners.append(layer.emit)
        if config.enabled:
            layer._add_rules(engine, orders, now)
        layer._plugins(engine)
        log.info("risk layer on: %s", ", ".join(r.name for r in gate.rules) or "no rules (risk.enabled: false)")
        return layer

    def _add_rules(self, engine, orders, now) -> None:
        rules = standard_rules(self.config, self.gate.context, now)
        freshness = self.config.stale_data or FreshnessLimits()
        if freshness.enabled:
            rules["stale_data"] = StaleData(freshness, lambda: engine.dispatch_lag, now)
        for rule in rules.values():
            self.gate.add_rule(rule)
        self.rate = rules["order_rate"]
        orders.sent_hooks.append(self.rate.note_sent)
        orders.sent_hooks.append(rules["duplicate_order"].note_sent)
        self.throttle = ExecutionThrottle(self.config.limits, self.states, now, self.emit)
        orders.fill_hooks.append(self.throttle.on_fill)

    def _plugins(self, engine) -> None:
        """The PDT guard and margin monitor (each module's `install(engine, config, layer)`; None when off)."""
        self.pdt = pdt.install(engine, self.config.pdt, self)
        self.margin = margin.install(engine, self.config.margin, self)

    # --- events ------------------------------------------------------------------------------------------
    def emit(self, event: RiskEvent) -> None:
        """Every risk event (refusal, state change, alert) to the subscribers, on the calling thread."""
        self.history.append(event)
        if len(self.history) > self.MAX_HISTORY:
            del self.history[: len(self.history) - self.MAX_HISTORY]
        for hook in list(self.events):
            try:
                hook(event)
            except Exception:
                log.exception("risk event hook %r failed", hook)


def standard_rules(config: RiskConfig, context: RiskContext, now: Callable[[], float]) -> dict:
    """The pre-trade rules of `ibframe.risk.limits`, in the order the gate asks them (cheap and certain first).

    `order_rate` and `duplicate_order` count what was sent: feed their `note_sent` from the manager's sent hooks."""
    limits = config.limits
    rules = (OrderSanity(limits), AllowedInstruments(limits), MaxOrderQuantity(limits), MaxOrderNotional(limits),
             PriceTolerance(limits), OrderRate(limits, now), DuplicateOrder(limits), SelfMatch(limits, context),
             PositionLimit(limits, config.account, context), ExposureLimit(limits, config.account, context))
    return {rule.name: rule for rule in rules}


def _price(quote) -> float | None:
    if quote is None:
        return None
    bid, ask = quote.bid, quote.ask
    if bid and ask and bid > 0 and ask > 0 and math.isfinite(bid) and math.isfinite(ask):
        return (bid + ask) / 2.0
    last = quote.last
    return last if last and last > 0 and math.isfinite(last) else None


def _context(engine, books: dict, previous: RiskContext | None) -> RiskContext:
    """The gate's view: each strategy's own book (a name it does not know: the account), TWS's positions
    and marks from live quotes (else the portfolio's market price, else the holding's average cost)."""
    portfolio = engine.portfolio

    def account_position(contract) -> float:
        return portfolio.position(contract.conId) if contract.conId else 0.0

    def position(strategy: str, contract) -> float:
        book = books.get(strategy)
        return book.position(contract) if book is not None else account_position(contract)

    def holdings(strategy: str):
        book = books.get(strategy)
        if book is None:
            return account_holdings()
        return [(h.contract, h.quantity, h.avg_cost or None) for h in book.holdings().values() if h.quantity]

    def account_holdings():
        return [(p.contract, p.quantity, p.market_price) for p in list(portfolio.positions.values()) if p.quantity]

    def mark(contract) -> float | None:
        return _price(engine.live_quote(contract.conId)) if contract.conId else None

    def quote(contract):
        return engine.live_quote(contract.conId) if contract.conId else None

    ctx = RiskContext(position, account_position, holdings, account_holdings, mark, quote)
    if previous is not None:
        ctx.working = previous.working        # keep what was already tracked
    return ctx
