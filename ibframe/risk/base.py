"""The risk layer's shared vocabulary: trading states, an order intent, a refusal, a rule.

Owns: the small types every part of `ibframe.risk` (limits, trading states, PDT guard, margin
monitor, kill switch) and the journal agree on. Must never hold state, talk to TWS or import
the engine: the parts that do import this module, never the other way round.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from ..trading.manager import OrderRejected

if TYPE_CHECKING:
    from ibapi.contract import Contract
    from ibapi.order import Order

    from ..market.quote import Quote

def account_number(value) -> float | None:
    """An account value or a what-if figure as TWS sends it (a string, a number) → a finite float; None for
    booleans, text that is no number, NaN, infinities and IB's ~1.8e308 "unset" sentinel."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and abs(number) < 1e300 else None


GLOBAL = "*"                    # the scope of account-wide states and rules (a strategy's scope is its name)


class TradingState(str, Enum):
    """NautilusTrader's three states: what orders may pass the risk layer."""
    ACTIVE = "ACTIVE"           # every order that passes the rules
    REDUCING = "REDUCING"       # only orders that reduce a position (and cancels)
    HALTED = "HALTED"           # nothing; working orders are cancelled


@dataclass(slots=True)
class OrderIntent:
    """An order on its way to TWS, as the risk rules see it (before an order id is taken)."""
    strategy: str               # the owning strategy's name ("" for orders placed by hand through the engine)
    contract: "Contract"
    order: "Order"
    quote: "Quote | None"       # the instrument's live quote at submission, if a line is open
    now: float                  # framework clock (epoch seconds; virtual in replay)
    kind: str = "new"           # "new" or "modify"
    reduces: bool = False       # filled in by the gate: does it only reduce the strategy's position?


@dataclass(slots=True, frozen=True)
class Refusal:
    """Why a rule refused an order: the rule, the limit, the value it saw and what to change."""
    rule: str                   # e.g. "max_order_quantity", "pdt", "trading_state"
    limit: str                  # e.g. "10000", "25000 USD equity or 3 day trades in 5 days"
    value: str                  # e.g. "1000000"
    advice: str                 # e.g. "raise risk.max_order_quantity in the YAML or split the order"

    def __str__(self) -> str:
        return f"refused by risk rule {self.rule} (limit {self.limit}, this order {self.value}): {self.advice}"


class RiskRejected(OrderRejected):
    """An order refused by the risk layer before it reached TWS: nothing was sent, no id was spent."""

    def __init__(self, intent: OrderIntent, refusal: Refusal, text: str):
        super().__init__(text)
        self.intent = intent
        self.refusal = refusal


class Rule(Protocol):
    """One pre-trade check. `check` returns a Refusal or None; it must be cheap (µs) and never block."""
    name: str

    def check(self, intent: OrderIntent) -> Refusal | None: ...


@dataclass(slots=True)
class RiskEvent:
    """A risk decision or a trading-state change, for logs, strategies and the journal."""
    time: float
    kind: str                   # "refused", "state", "kill", "alert"
    scope: str                  # GLOBAL or a strategy name
    rule: str = ""
    text: str = ""
    details: dict = field(default_factory=dict)
