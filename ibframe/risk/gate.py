"""The one door: every order and modification passes the RiskGate before it may reach TWS.

Owns: `RiskGate` (trading state first, then the rules, in order; a refusal is logged at WARNING,
emitted as a `RiskEvent` to `decision_hooks` and raised as `RiskRejected`), `Deferred` (a rule that
must ask TWS first, e.g. a what-if margin check), `RiskContext` (what rules may read: positions,
the working orders of this process, marks) and `OrderDoor`, the one-use passes that let an order
through `IBConnection.placeOrder`: the order manager takes one for an (orderId, Order) only after
the gate passed it, and the connection refuses every order without one (`UnapprovedOrder`).

Must never: block, talk to TWS, hold a strategy's state, or let an order through when a rule fails
(a rule that raises refuses the order: the gate fails closed).
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from ..contracts import label
from ibapi.const import UNSET_DOUBLE

from ..trading.books import combo_key, multiplier
from ..trading.manager import OrderRejected
from ..trading.trade import Trade, quantity_text
from .base import GLOBAL, OrderIntent, Refusal, RiskEvent, RiskRejected, Rule

log = logging.getLogger("ibframe.risk")

RISK_ERROR_CODE = -4             # the IBError code a strategy's on_error sees for a risk refusal
LEGACY_RULE = "pre_trade_check"  # OrderManager.pre_trade_checks callables (text-only refusals)
EPS = 1e-9


# --- order arithmetic shared by the rules ----------------------------------------------------------------
def quantity(order) -> float:
    """An order's total quantity as a float (NaN when it is not a number)."""
    try:
        return float(order.totalQuantity)
    except (TypeError, ValueError, ArithmeticError):
        return math.nan


def instrument_key(contract) -> object:
    """What identifies an instrument for positions and working orders: its conId, or a combo's legs."""
    if contract.secType == "BAG":
        return combo_key(contract)
    return contract.conId or label(contract)


def remaining(trade: Trade) -> float:
    """What a working order may still fill: its (pending) quantity less what the fills already brought."""
    order = trade.pending if trade.pending is not None else trade.order
    done = min(trade.filled, sum(f.shares for f in trade.fills)) if trade.fills else 0.0
    return max(0.0, quantity(order) - done)


# --- deferred checks ---------------------------------------------------------------------------------------
@dataclass(slots=True)
class Deferred:
    """A rule's answer "ask TWS first": `start(send, refuse)` begins the asynchronous check; it later calls
    exactly one of `send()` (the order goes out, with a fresh id) or `refuse(refusal)` (the trade ends
    Inactive with the refusal as its reason). Both must be called on the dispatch thread."""
    start: Callable[[Callable[[], None], Callable[[Refusal], None]], None]
    rule: str = ""


def _chain(first: Deferred, then: Deferred) -> Deferred:
    def start(send: Callable[[], None], refuse: Callable[[Refusal], None]) -> None:
        first.start(lambda: then.start(send, refuse), refuse)
    return Deferred(start, f"{first.rule}+{then.rule}")


# --- the door at placeOrder --------------------------------------------------------------------------------
def _terms(order) -> tuple:
    return (order.action, quantity(order), order.orderType, order.lmtPrice, order.auxPrice)


class UnapprovedOrder(OrderRejected):
    """placeOrder was called for an order the risk gate did not approve: nothing was sent."""


class OrderDoor:
    """One-use passes for `IBConnection.placeOrder`, keyed by (connection, orderId) and bound to the very
    Order object and its terms (side, quantity, type, prices) the gate saw. Only `OrderManager` takes them.

    A what-if order (`order.whatIf`) needs no pass: TWS only computes its margin, it never works.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._passes: dict[tuple[int, int], tuple[int, tuple]] = {}

    def approve(self, client, order_id: int, order) -> None:
        with self._lock:
            self._passes[(id(client), order_id)] = (id(order), _terms(order))

    def withdraw(self, client, order_id: int) -> None:
        with self._lock:
            self._passes.pop((id(client), order_id), None)

    def admit(self, client, order_id: int, order) -> None:
        """Use the pass for this order, or raise UnapprovedOrder saying how orders must be placed."""
        if getattr(order, "whatIf", False):
            return
        with self._lock:
            granted = self._passes.pop((id(client), order_id), None)
        if granted is not None and granted == (id(order), _terms(order)):
            return
        what = f"order {order_id} {order.action} {quantity_text(order.totalQuantity)} {order.orderType}"
        why = "its terms changed after the risk check" if granted is not None else "the risk gate never approved it"
        log.error("placeOrder refused for %s: %s", what, why)
        raise UnapprovedOrder(f"placeOrder refused for {what}: {why}. Orders reach TWS only through the risk "
                              f"gate: use Strategy.buy/sell/place/bracket/oca or engine.orders.place/modify")


DOOR = OrderDoor()


# --- what the rules may read --------------------------------------------------------------------------------
@dataclass(slots=True)
class Working:
    """One working order as the rules read it, computed when the order manager reports a change (sent,
    status, fill): cheaper than reading the Trade on every check, and never smaller than the truth."""
    trade: Trade
    strategy: str
    buy: bool
    left: float                 # still to fill
    price: float | None         # the limit it works at (None: market, stop, …)
    kind: str                   # its order type
    multiplier: float
    child: bool                 # a bracket child (works only once its parent filled)


class WorkingOrders:
    """This process's orders that may still fill, by instrument; fed by the order manager's hooks."""

    def __init__(self):
        self.by_key: dict[object, dict[int, Working]] = {}
        self.by_id: dict[int, Working] = {}
        # value committed at their limit prices (buys, sells), per strategy and in all ("*"): kept as orders
        # change, so the exposure rule need not walk every working order; orders without a limit price are
        # in `unpriced` (valued at a mark when read)
        self.committed: dict[str, list[float]] = {}
        self.unpriced: dict[int, Working] = {}

    def _count(self, entry: Working, sign: float) -> None:
        if entry.child:
            return
        if entry.price is None:
            if sign > 0:
                self.unpriced[entry.trade.order_id] = entry
            else:
                self.unpriced.pop(entry.trade.order_id, None)
            return
        value = sign * entry.left * abs(entry.price) * entry.multiplier
        side = 0 if entry.buy else 1
        for scope in (entry.strategy, "*"):
            totals = self.committed.get(scope)
            if totals is None:
                totals = self.committed[scope] = [0.0, 0.0]
            totals[side] += value

    def update(self, trade: Trade, _action=None) -> None:
        """A trade was sent, changed status or filled: keep it while it may fill, forget it once done."""
        order_id = trade.order_id
        if not order_id:
            return
        key = instrument_key(trade.contract)
        old = self.by_id.get(order_id)
        if old is not None:
            self._count(old, -1.0)
        if trade.done:
            if self.by_id.pop(order_id, None) is not None:
                orders = self.by_key.get(key)
                if orders is not None:
                    orders.pop(order_id, None)
                    if not orders:
                        del self.by_key[key]
                if not self.by_id:                  # nothing works: no rounding left over
                    self.committed.clear()
            return
        order = trade.pending if trade.pending is not None else trade.order
        kind = str(order.orderType or "").upper()
        price = order.lmtPrice if kind in ("LMT", "LOC", "STP LMT", "LIT") else None
        if price is not None and (price >= UNSET_DOUBLE or not math.isfinite(price)):
            price = None
        if trade.pending is not None and trade.pending.totalQuantity != trade.order.totalQuantity:
            left = max(remaining(trade), max(0.0, quantity(trade.order) - trade.filled))   # the larger, until TWS says
        else:
            left = remaining(trade)
        entry = Working(trade, trade.strategy, order.action == "BUY", left, price, kind,
                        multiplier(trade.contract), bool(trade.order.parentId))
        self.by_id[order_id] = entry
        self.by_key.setdefault(key, {})[order_id] = entry
        self._count(entry, 1.0)

    def committed_value(self, strategy: str | None, mark: Callable, exclude_id: int = 0) -> tuple[float, float]:
        """(buys, sells) value of the working orders of a strategy (None: all), bracket children left out."""
        buys, sells = self.committed.get("*" if strategy is None else strategy, (0.0, 0.0))
        buys, sells = max(0.0, buys), max(0.0, sells)
        left_out = self.by_id.get(exclude_id) if exclude_id else None
        if left_out is not None and left_out.price is not None and not left_out.child \
                and (strategy is None or left_out.strategy == strategy):
            value = left_out.left * abs(left_out.price) * left_out.multiplier
            buys, sells = (buys - value, sells) if left_out.buy else (buys, sells - value)
        for w in self.unpriced.values():
            if (strategy is not None and w.strategy != strategy) or w.trade.order_id == exclude_id:
                continue
            price = mark(w.trade.contract)
            if price is None or not math.isfinite(price):
                continue
            value = w.left * abs(price) * w.multiplier
            if w.buy:
                buys += value
            else:
                sells += value
        return buys, sells

    def on(self, key) -> Iterable[Working]:
        orders = self.by_key.get(key)
        return orders.values() if orders else ()

    def all(self) -> Iterable[Working]:
        return self.by_id.values()


Holding = tuple           # (contract, signed quantity, price or None)


class RiskContext:
    """The rules' read-only view of the world, as small callables (the layer builds them from the engine).

    position(strategy, contract): the strategy's own net position ("" = the account's);
    account_position(contract): the account's, as TWS reports it;
    holdings(strategy) / account_holdings(): (contract, quantity, price or None) for exposure;
    mark(contract): a price to value a position (live quote's mid, else None);
    quote(contract): the instrument's live Quote (for orders placed or modified without one), else None.
    """

    def __init__(self, position: Callable | None = None, account_position: Callable | None = None,
                 holdings: Callable | None = None, account_holdings: Callable | None = None,
                 mark: Callable | None = None, quote: Callable | None = None):
        self.working = WorkingOrders()
        self.position = position or (lambda strategy, contract: 0.0)
        self.account_position = account_position or (lambda contract: 0.0)
        self.holdings = holdings or (lambda strategy: ())
        self.account_holdings = account_holdings or (lambda: ())
        self.mark = mark or (lambda contract: None)
        self.quote = quote or (lambda contract: None)

    def reduces(self, intent: OrderIntent) -> bool:
        """Does the order only reduce the strategy's position, counting its working orders on the same side?

        A bracket child (parentId of a working order on the other side) reduces what its parent opens."""
        order = intent.order
        qty = quantity(order)
        if not qty > 0:
            return False
        buy = order.action == "BUY"
        if order.parentId:
            parent = self.working.by_id.get(order.parentId)
            if parent is not None and parent.buy != buy and qty <= parent.left + EPS:
                return True
        pos = self.position(intent.strategy, intent.contract)
        if pos == 0 or (pos > 0) == buy:
            return False
        pending = qty
        for w in self.working.on(instrument_key(intent.contract)):
            if w.strategy == intent.strategy and w.buy == buy and not w.child and w.trade.order_id != order.orderId:
                pending += w.left
        return pending <= abs(pos) + EPS


# --- the gate ------------------------------------------------------------------------------------------------
class LegacyChecks:
    """`OrderManager.pre_trade_checks` callables (contract, order) -> problem text or None, as one rule."""
    name = LEGACY_RULE

    def __init__(self, checks: list):
        self.checks = checks

    def check(self, intent: OrderIntent) -> Refusal | None:
        for check in self.checks:
            problem = check(intent.contract, intent.order)
            if problem:
                return Refusal(LEGACY_RULE, "", "", str(problem))
        return None


def describe(intent: OrderIntent) -> str:
    order = intent.order
    what = "modification of order" if intent.kind == "modify" else "order"
    ident = f" {order.orderId}" if intent.kind == "modify" else ""
    return f"{what}{ident} {order.action} {quantity_text(order.totalQuantity)} {label(intent.contract)}"


class RiskGate:
    """Trading state first, then each rule in order; the first refusal stops the order.

    `check(intent)` returns None (send now) or a `Deferred` (ask TWS first) and raises `RiskRejected`
    when the order is refused. `decision_hooks` get a RiskEvent for every refusal (the journal, strategies).
    """

    def __init__(self, states=None, context: RiskContext | None = None, now: Callable[[], float] | None = None):
        self.states = states                    # ibframe.risk.state.TradingStates, or None (no states)
        self.context = context or RiskContext()
        self.rules: list[Rule] = []
        self.decision_hooks: list[Callable[[RiskEvent], None]] = []
        self.now = now
        self.checked = 0
        self.refused = 0

    def intent(self, strategy: str, contract, order, quote, now: float, kind: str = "new") -> OrderIntent:
        """The OrderIntent for an order (the live quote when none is given)."""
        if quote is None and self.context is not None:
            quote = self.context.quote(contract)
        return OrderIntent(strategy, contract, order, quote, now, kind)

    def add_rule(self, rule: Rule, first: bool = False) -> Rule:
        """Ask `rule` after the others (or before them all: `first`, for the checks that make every other moot)."""
        if first:
            self.rules.insert(0, rule)
        else:
            self.rules.append(rule)
        return rule

    def remove_rule(self, name: str) -> None:
        self.rules = [r for r in self.rules if r.name != name]

    def rule(self, name: str) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def check(self, intent: OrderIntent) -> Deferred | None:
        self.checked += 1
        context = self.context
        intent.reduces = context.reduces(intent) if context is not None else False
        if self.states is not None:
            refusal = self._ask(self.states.refusal, "trading_state", intent)
            if refusal is not None:
                raise self.refuse(intent, refusal)
        deferred = refusal = rule = None
        try:                                    # one try for all the rules: the pass path stays cheap
            for rule in self.rules:
                verdict = rule.check(intent)
                if verdict is None:
                    continue
                if isinstance(verdict, Deferred):
                    deferred = verdict if deferred is None else _chain(deferred, verdict)
                    continue
                refusal = verdict
                break
        except Exception as exc:                # fail closed: a broken rule refuses, and says so
            refusal = self._broken(rule.name if rule is not None else "?", intent, exc)
        if refusal is not None:
            raise self.refuse(intent, refusal)
        return deferred

    @staticmethod
    def _ask(check, name: str, intent: OrderIntent):
        try:
            return check(intent)
        except Exception as exc:
            return RiskGate._broken(name, intent, exc)

    @staticmethod
    def _broken(name: str, intent: OrderIntent, exc: Exception) -> Refusal:
        log.error("risk rule %s failed on %s; the order is refused", name, describe(intent), exc_info=exc)
        return Refusal(name, "a working rule", f"{type(exc).__name__}: {exc}",
                       "fix the rule (see the log's traceback); until then it refuses every order")

    def refuse(self, intent: OrderIntent, refusal: Refusal) -> RiskRejected:
        """Log and announce a refusal; returns the RiskRejected to raise (or to end a deferred trade with)."""
        self.refused += 1
        why = refusal.advice if refusal.rule == LEGACY_RULE else str(refusal)
        text = f"{describe(intent)} blocked before sending: {why}"
        log.warning("%s%s", text, f" (strategy {intent.strategy})" if intent.strategy else "")
        event = RiskEvent(intent.now, "refused", intent.strategy or GLOBAL, refusal.rule, text,
                          {"limit": refusal.limit, "value": refusal.value, "advice": refusal.advice,
                           "kind": intent.kind, "action": intent.order.action,
                           "quantity": quantity(intent.order), "order_type": intent.order.orderType,
                           "instrument": label(intent.contract), "conId": intent.contract.conId})
        for hook in list(self.decision_hooks):
            try:
                hook(event)
            except Exception:
                log.exception("risk decision hook %r failed", hook)
        return RiskRejected(intent, refusal, text)
