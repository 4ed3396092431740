"""The pre-trade rules: small classes, each refusing one kind of mistake, configured by `risk:`.

Owns: order sanity (NaN/inf/negative/zero/huge quantities and prices), allowed instruments, order
size (quantity, notional), position and exposure limits counting working orders (strategy scope and
account scope), price tolerance against the NBBO (and market orders without a live quote), order and
cancel rates, duplicate orders, self-match prevention, and the repeated-execution throttle (which sets
the strategy's trading state through `TradingStates.set`). Each refusal names the rule, the limit,
the value it saw and what to change.

Must never: block, talk to TWS, change an order, or refuse a cancel (cancels are only counted: a
refused cancel would leave risk in the market). Checks read `RiskContext` and the intent only.
"""
from __future__ import annotations

import collections
import math
from typing import Callable

from ibapi.const import UNSET_DOUBLE

from ..trading.books import multiplier
from ..trading.trade import Trade, quantity_text
from .base import GLOBAL, OrderIntent, Refusal, RiskEvent
from .config import AccountLimits, Limits
from .gate import EPS, RiskContext, instrument_key, quantity

ALIASES = {"STPLMT": "STP LMT", "STOP": "STP", "STOP LIMIT": "STP LMT", "TRAILLMT": "TRAIL LIMIT",
           "TRAIL LMT": "TRAIL LIMIT", "MARKET": "MKT", "LIMIT": "LMT"}
LIMIT_PRICED = frozenset({"LMT", "STP LMT", "LOC", "LIT"})       # lmtPrice is the order's price
STOP_PRICED = frozenset({"STP", "STP LMT", "MIT", "LIT"})         # auxPrice is its trigger
MARKET_TYPES = frozenset({"MKT", "MOC", "MTL", "MKT PRT"})          # no price of its own: needs a live quote

LimitsOf = Callable[[str], Limits]


_CANONICAL = frozenset({"MKT", "LMT", "STP", "STP LMT", "TRAIL", "TRAIL LIMIT", "MOC", "LOC", "MIT", "LIT", "REL",
                        "MTL", "MKT PRT"})


def order_type(order) -> str:
    t = order.orderType
    if t in _CANONICAL:                          # the common case, without building a string
        return t
    t = " ".join(str(t or "").upper().split())
    return ALIASES.get(t, t)


def _set(price) -> bool:
    return price is not None and price != UNSET_DOUBLE


def _num(text: float) -> str:
    return quantity_text(round(text, 6)) if math.isfinite(text) else str(text)


def _good(price) -> bool:
    return price is not None and math.isfinite(price) and price > 0


def far_side(intent: OrderIntent) -> float | None:
    """The live quote's far side (ask for a buy, bid for a sell); None without a live quote."""
    q = intent.quote
    if q is None or q.delayed:
        return None
    price = q.ask if intent.order.action == "BUY" else q.bid
    return price if _good(price) else None


def order_price(intent: OrderIntent) -> float | None:
    """The price an order may trade at: its limit, its stop, or the far side of the quote (else last)."""
    order, kind = intent.order, order_type(intent.order)
    if kind in LIMIT_PRICED and _set(order.lmtPrice):
        return abs(order.lmtPrice)
    if kind in STOP_PRICED and _set(order.auxPrice):
        return abs(order.auxPrice)
    far = far_side(intent)
    if far is not None:
        return far
    q = intent.quote
    return q.last if q is not None and _good(q.last) else None


def signed(action: str, qty: float) -> float:
    return qty if action == "BUY" else -qty


# --- sanity and instruments --------------------------------------------------------------------------------
class OrderSanity:
    """Quantities and prices that cannot be meant: NaN, inf, negative, zero, huge, a side that is no side."""
    name = "order_sanity"

    def __init__(self, limits: LimitsOf):
        self.limits = limits

    def check(self, intent: OrderIntent) -> Refusal | None:
        order = intent.order
        if order.action not in ("BUY", "SELL"):
            return Refusal("invalid_action", "BUY or SELL", repr(order.action), "set order.action to BUY or SELL")
        qty = quantity(order)
        if not (math.isfinite(qty) and qty > 0):
            return Refusal("invalid_quantity", "a positive finite number", str(order.totalQuantity),
                           "give the order a positive quantity (a sell is action SELL with a positive quantity)")
        if qty >= 1e9:
            return Refusal("invalid_quantity", "below 1000000000", _num(qty), "check the quantity: it is a typo")
        kind = order_type(order)
        combo = intent.contract.secType == "BAG"       # a combo's net price may be zero or negative (a credit)
        top = self.limits(intent.strategy).max_price
        for field, needed in (("lmtPrice", kind in LIMIT_PRICED), ("auxPrice", kind in STOP_PRICED)):
            price = getattr(order, field)
            if not needed and not _set(price):
                continue
            if price is None or not _set(price) or not math.isfinite(price):
                return Refusal("invalid_price", f"a finite {field}", str(price),
                               f"a {kind} order needs its {field}: set it to a real price")
            if needed and not combo and price <= 0:
                return Refusal("invalid_price", f"{field} above 0", _num(price),
                               f"set a positive {field} (a {kind} order at {_num(price)} cannot be meant)")
            if abs(price) >= top:
                return Refusal("invalid_price", f"{field} below {_num(top)}", _num(price),
                               "check the price: it is a typo (or raise risk.max_price)")
        return None


class AllowedInstruments:
    """Only the secTypes and symbols the configuration allows (a symbol list may name conIds too)."""
    name = "allowed_instruments"

    def __init__(self, limits: LimitsOf):
        self.limits = limits

    def check(self, intent: OrderIntent) -> Refusal | None:
        lim = self.limits(intent.strategy)
        c = intent.contract
        if lim.allowed_sec_types is not None and c.secType not in lim.allowed_sec_types:
            return Refusal("allowed_sec_types", ", ".join(sorted(lim.allowed_sec_types)), c.secType or "(none)",
                           f"add {c.secType} to risk.allowed_sec_types if this strategy should trade it")
        if not lim.denied_symbols and lim.allowed_symbols is None:
            return None
        names = {str(c.symbol).upper(), str(c.localSymbol).upper(), str(c.conId)} - {"", "0", "NONE"}
        if lim.denied_symbols and names & lim.denied_symbols:
            return Refusal("denied_symbols", "not " + ", ".join(sorted(lim.denied_symbols)), c.symbol,
                           "this symbol is on risk.denied_symbols")
        if lim.allowed_symbols is not None and not names & lim.allowed_symbols:
            return Refusal("allowed_symbols", ", ".join(sorted(lim.allowed_symbols)), c.symbol or str(c.conId),
                           "add it to risk.allowed_symbols if this strategy should trade it")
        return None


# --- order size ----------------------------------------------------------------------------------------------
class MaxOrderQuantity:
    name = "max_order_quantity"

    def __init__(self, limits: LimitsOf):
        self.limits = limits

    def check(self, intent: OrderIntent) -> Refusal | None:
        lim = self.limits(intent.strategy)
        top = lim.by_sec_type(lim.max_order_quantity, intent.contract.secType)
        qty = quantity(intent.order)
        if top is not None and qty > top + EPS:
            return Refusal(self.name, f"{_num(top)} ({intent.contract.secType})", _num(qty),
                           "split the order or raise risk.max_order_quantity in the YAML")
        return None


class MaxOrderNotional:
    """Quantity x price x multiplier, in the instrument's currency (a market order: at the quote's far side)."""
    name = "max_order_notional"

    def __init__(self, limits: LimitsOf):
        self.limits = limits

    def check(self, intent: OrderIntent) -> Refusal | None:
        lim = self.limits(intent.strategy)
        top = lim.by_sec_type(lim.max_order_notional, intent.contract.secType)
        if top is None:
            return None
        price = order_price(intent)
        if price is None:
            return None                          # no price to value it at: quantity and quote rules apply
        notional = quantity(intent.order) * price * multiplier(intent.contract)
        if notional > top + EPS:
            cur = intent.contract.currency or ""
            return Refusal(self.name, f"{_num(top)} {cur}".strip(), f"{_num(notional)} {cur}".strip(),
                           "split the order or raise risk.max_order_notional in the YAML")
        return None


# --- positions and exposure (working orders count) ------------------------------------------------------
def _side_totals(working, strategy: str | None, exclude_id: int) -> tuple[float, float]:
    """Working buys and sells (still to fill) of one strategy (None: all), bracket children left out."""
    buys = sells = 0.0
    for w in working:
        if (strategy is not None and w.strategy != strategy) or w.child or w.trade.order_id == exclude_id:
            continue
        if w.buy:
            buys += w.left
        else:
            sells += w.left
    return buys, sells


class PositionLimit:
    """|position + working orders on the same side + this order| within the limit, for the strategy (its
    own book and open orders) and for the account (TWS's position and every open order of this process)."""
    name = "max_position"

    def __init__(self, limits: LimitsOf, account: AccountLimits, context: RiskContext):
        self.limits, self.account, self.context = limits, account, context

    def check(self, intent: OrderIntent) -> Refusal | None:
        if intent.reduces:
            return None
        c = intent.contract
        lim = self.limits(intent.strategy)
        top = lim.by_sec_type(lim.max_position, c.secType)
        if top is not None:
            refusal = self._scope(intent, top, intent.strategy, self.context.position(intent.strategy, c),
                                  "max_position", "risk.max_position")
            if refusal is not None:
                return refusal
        account = self.account.max_position
        top = account.get(c.secType, account.get("*")) if account else None
        if top is not None:
            return self._scope(intent, top, None, self.context.account_position(c), "account_max_position",
                               "risk.account.max_position")
        return None

    def _scope(self, intent: OrderIntent, top: float, who: str | None, pos: float, rule: str,
               key_name: str) -> Refusal | None:
        order = intent.order
        buys, sells = _side_totals(self.context.working.on(instrument_key(intent.contract)), who, order.orderId)
        qty = quantity(order)
        projected = pos + buys + qty if order.action == "BUY" else pos - sells - qty
        if abs(projected) <= top + EPS:
            return None
        scope = "the account" if who is None else f"strategy {intent.strategy or '(manual)'}"
        return Refusal(rule, _num(top), _num(projected),
                       f"{scope} would hold {_num(projected)} (position {_num(pos)}, working "
                       f"{_num(buys if order.action == 'BUY' else -sells)}); trade less, close some, or raise "
                       f"{key_name}")


class ExposureLimit:
    """Gross (sum of |value|) and net (signed) exposure after this order, with working orders at their prices."""
    name = "max_exposure"

    def __init__(self, limits: LimitsOf, account: AccountLimits, context: RiskContext):
        self.limits, self.account, self.context = limits, account, context

    def _value(self, contract, price) -> float | None:
        mark = self.context.mark(contract)
        if mark is None or not math.isfinite(mark):
            mark = price
        if mark is None or not math.isfinite(mark):
            return None
        return abs(mark) * multiplier(contract)

    def exposure(self, holdings, strategy: str | None, exclude_id: int) -> tuple[float, float, float, float]:
        """(gross, net, working buys value, working sells value) of a scope."""
        gross = net = 0.0
        for contract, qty, price in holdings:
            if not qty:
                continue
            unit = self._value(contract, price)
            if unit is None:
                continue
            gross += abs(qty) * unit
            net += qty * unit
        buys, sells = self.context.working.committed_value(strategy, self.context.mark, exclude_id)
        return gross, net, buys, sells

    def check(self, intent: OrderIntent) -> Refusal | None:
        if intent.reduces:
            return None
        lim = self.limits(intent.strategy)
        scopes = []
        if lim.max_gross_exposure is not None or lim.max_net_exposure is not None:
            scopes.append((lim.max_gross_exposure, lim.max_net_exposure, intent.strategy, "",
                           lambda: self.context.holdings(intent.strategy)))
        if self.account.max_gross_exposure is not None or self.account.max_net_exposure is not None:
            scopes.append((self.account.max_gross_exposure, self.account.max_net_exposure, None, "account_",
                           self.context.account_holdings))
        if not scopes:
            return None
        price = order_price(intent)
        if price is None or not math.isfinite(price):
            return None                          # cannot value it: the quote rule decides about market orders
        unit = abs(price) * multiplier(intent.contract)
        order = intent.order
        value = quantity(order) * unit
        buy = order.action == "BUY"
        for gross_top, net_top, who, prefix, holdings in scopes:
            gross, net, buys, sells = self.exposure(holdings(), who, order.orderId)
            scope = "the account" if who is None else f"strategy {intent.strategy or '(manual)'}"
            where = "risk.account." if who is None else "risk."
            cur = intent.contract.currency or ""
            if gross_top is not None and gross + buys + sells + value > gross_top + EPS:
                return Refusal(f"{prefix}max_gross_exposure", f"{_num(gross_top)} {cur}".strip(),
                               f"{_num(gross + buys + sells + value)} {cur}".strip(),
                               f"{scope}: positions {_num(gross)} + working orders {_num(buys + sells)} + this "
                               f"order {_num(value)}; reduce positions or raise {where}max_gross_exposure")
            projected = net + buys + value if buy else net - sells - value
            if net_top is not None and abs(projected) > net_top + EPS and abs(projected) > abs(net) - EPS:
                return Refusal(f"{prefix}max_net_exposure", f"{_num(net_top)} {cur}".strip(),
                               f"{_num(projected)} {cur}".strip(),
                               f"{scope}: net {_num(net)} with working orders and this order would be "
                               f"{_num(projected)}; hedge, reduce, or raise {where}max_net_exposure")
        return None


# --- price --------------------------------------------------------------------------------------------------
class PriceTolerance:
    """Limit prices no more than X% (or N ticks, the larger) through the NBBO's far side; a stop no more than
    stop_percent on the side where it would trigger at once (a buy stop below the ask, a sell stop above the
    bid: a typo; a protective stop far from the market is fine); a stop-limit's limit within X% of its stop;
    market orders need a live (not delayed) quote unless `allow_market_without_quote`. Orders with no quote
    at all are not priced."""
    name = "price_tolerance"

    def __init__(self, limits: LimitsOf):
        self.limits = limits

    def check(self, intent: OrderIntent) -> Refusal | None:
        lim = self.limits(intent.strategy)
        order, kind = intent.order, order_type(intent.order)
        far = far_side(intent)
        buy = order.action == "BUY"
        if kind in MARKET_TYPES:
            if far is None and not lim.allow_market_without_quote:
                return Refusal("market_without_quote", "a live quote for market orders", "no live quote",
                               f"subscribe first (self.quote({intent.contract.symbol!r}) in on_start) or use a "
                               f"limit order; risk.allow_market_without_quote: true allows it")
            return None
        if far is None or intent.contract.secType == "BAG":
            return None
        side = "ask" if buy else "bid"
        if kind in LIMIT_PRICED and kind != "STP LMT" and _set(order.lmtPrice):
            refusal = self._through(order.lmtPrice, far, buy, lim.price_percent, lim, f"limit vs the {side}")
            if refusal:
                return refusal
        if kind in STOP_PRICED and _set(order.auxPrice):
            refusal = self._through(order.auxPrice, far, not buy, lim.stop_percent, lim, f"stop vs the {side}",
                                    ticks=False)       # a stop triggers the other way: `through` is the wrong side
            if refusal:
                return refusal
            if kind == "STP LMT" and _set(order.lmtPrice):
                return self._through(order.lmtPrice, order.auxPrice, buy, lim.price_percent, lim, "limit vs the stop")
        return None

    @staticmethod
    def _through(price: float, ref: float, buy: bool, percent: float | None, lim: Limits, what: str,
                 ticks: bool = True) -> Refusal | None:
        allowed = 0.0
        if percent is not None:
            allowed = ref * percent / 100.0
        if ticks and lim.price_ticks is not None:
            allowed = max(allowed, lim.price_ticks * lim.tick_size)
        if percent is None and (not ticks or lim.price_ticks is None):
            return None
        through = price - ref if buy else ref - price
        if through > allowed + EPS:
            pct = 100.0 * through / ref if ref else math.inf
            parts = (f"{_num(percent)}%" if percent is not None else "",
                     f"{_num(lim.price_ticks)} ticks" if ticks and lim.price_ticks else "")
            band = " or ".join(x for x in parts if x)
            bound = ref + allowed if buy else ref - allowed
            return Refusal("price_tolerance", f"{band} through ({what} {_num(ref)}, at most {_num(bound)})",
                           f"{_num(price)} ({pct:.1f}% through)",
                           "check the price (a typo?); raise risk.price_tolerance if it is meant")
        return None


# --- rates, duplicates, self-match -------------------------------------------------------------------------------
class OrderRate:
    """Orders (new and modifications) and cancels per second and per minute, per strategy.

    Counted when sent (`note_sent`, an OrderManager sent hook). Over the cancel rate, cancels still go out
    (never refused) but the strategy's new orders are refused until the window has room."""
    name = "order_rate"

    def __init__(self, limits: LimitsOf, now: Callable[[], float]):
        self.limits, self.now = limits, now
        self.orders: dict[str, collections.deque] = {}
        self.cancels: dict[str, collections.deque] = {}

    def note_sent(self, trade: Trade, action: str) -> None:
        book = self.cancels if action == "cancel" else self.orders
        times = book.get(trade.strategy)
        if times is None:
            times = book[trade.strategy] = collections.deque()
        now = self.now()
        times.append(now)
        while times and now - times[0] >= 60.0:
            times.popleft()

    @staticmethod
    def _count(times, now: float, window: float) -> int:
        """Entries within `window` seconds of now (the deque is pruned to the minute first, so that count is
        its length; the last second is counted from the newest end)."""
        if window >= 60.0:
            while times and now - times[0] >= 60.0:
                times.popleft()
            return len(times)
        n = 0
        for t in reversed(times):
            if now - t >= window:
                break
            n += 1
        return n

    def check(self, intent: OrderIntent) -> Refusal | None:
        lim = self.limits(intent.strategy)
        now = intent.now
        for book, what, per_s, per_m in ((self.orders, "orders", lim.max_orders_per_second, lim.max_orders_per_minute),
                                         (self.cancels, "cancels", lim.max_cancels_per_second,
                                          lim.max_cancels_per_minute)):
            times = book.get(intent.strategy)
            if not times:
                continue
            for top, window, unit in ((per_s, 1.0, "second"), (per_m, 60.0, "minute")):
                if top is None:
                    continue
                count = self._count(times, now, window)
                if count >= top:
                    return Refusal(f"max_{what}_per_{unit}", f"{top} {what} a {unit}", f"{count} already this {unit}",
                                   f"slow the strategy down (it sent {count} {what} in the last {unit}) or raise "
                                   f"risk.max_{what}_per_{unit}")
        return None


class DuplicateOrder:
    """The same strategy, instrument, side, quantity, type and prices again within `duplicate_window`."""
    name = "duplicate_order"

    def __init__(self, limits: LimitsOf):
        self.limits = limits
        self.recent: dict[tuple, float] = {}

    @staticmethod
    def _key(strategy: str, contract, order) -> tuple:
        return (strategy, instrument_key(contract), order.action, quantity(order), order_type(order),
                order.lmtPrice, order.auxPrice)

    def note_sent(self, trade: Trade, action: str) -> None:
        if action != "place":
            return
        now = trade.placed_at
        self.recent[self._key(trade.strategy, trade.contract, trade.order)] = now
        if len(self.recent) > 512:
            self.recent = {k: t for k, t in self.recent.items() if now - t < 60.0}

    def check(self, intent: OrderIntent) -> Refusal | None:
        if intent.kind != "new":
            return None
        window = self.limits(intent.strategy).duplicate_seconds
        if not window:
            return None
        at = self.recent.get(self._key(intent.strategy, intent.contract, intent.order))
        if at is not None and intent.now - at < window:
            return Refusal(self.name, f"one identical order per {_num(window)}s",
                           f"the same order {intent.now - at:.3f}s ago",
                           "check the strategy is not sending twice; change risk.duplicate_window if it is meant")
        return None


class SelfMatch:
    """A buy at or above a resting sell of the same owner (or a sell at or below a resting buy) would trade
    with itself. Owner: the strategy, or with `self_match: account` every order of this process."""
    name = "self_match"

    def __init__(self, limits: LimitsOf, context: RiskContext):
        self.limits, self.context = limits, context

    def check(self, intent: OrderIntent) -> Refusal | None:
        scope = self.limits(intent.strategy).self_match
        if scope == "off":
            return None
        order = intent.order
        kind = order_type(order)
        buy = order.action == "BUY"
        if kind in LIMIT_PRICED and kind != "LIT" and _set(order.lmtPrice):
            if kind == "STP LMT":
                return None                      # not live until triggered
            price = order.lmtPrice
        elif kind in MARKET_TYPES:
            far = far_side(intent)
            price = far if far is not None else (math.inf if buy else -math.inf)
        else:
            return None
        for w in self.context.working.on(instrument_key(intent.contract)):
            t = w.trade
            if w.buy == buy or t.order_id in (order.orderId, order.parentId) \
                    or (w.child and t.order.parentId == order.orderId):
                continue
            if scope == "strategy" and w.strategy != intent.strategy:
                continue
            if w.kind not in ("LMT", "LOC") or w.price is None:
                continue
            if (price >= w.price - EPS) if buy else (price <= w.price + EPS):
                whose = "its own" if w.strategy == intent.strategy else f"strategy {w.strategy or '(manual)'}'s"
                return Refusal(self.name, f"no cross with {whose} resting orders",
                               f"{order.action} at {_num(price)} vs {'BUY' if w.buy else 'SELL'} {t.order_id} at "
                               f"{_num(w.price)}",
                               f"cancel or modify order {t.order_id} first, or price this order so it does not cross")
        return None


# --- repeated executions --------------------------------------------------------------------------------------
class ExecutionThrottle:
    """N fills in T seconds set the strategy REDUCING (or HALTED): a strategy trading in a loop is paused.

    Fed by `on_fill` (an OrderManager fill hook); its check refuses nothing itself (the state does)."""
    name = "repeated_fills"

    def __init__(self, limits: LimitsOf, states, now: Callable[[], float],
                 alert: Callable[[RiskEvent], None] | None = None):
        self.limits, self.states, self.now, self.alert = limits, states, now, alert
        self.fills: dict[str, collections.deque] = {}
        self.tripped: dict[str, float] = {}

    def on_fill(self, trade: Trade, _fill) -> None:
        strategy = trade.strategy
        lim = self.limits(strategy)
        if lim.repeated_fills is None:
            return
        now = self.now()
        times = self.fills.setdefault(strategy, collections.deque())
        times.append(now)
        while times and now - times[0] >= lim.repeated_fills_seconds:
            times.popleft()
        if len(times) < lim.repeated_fills:
            return
        times.clear()
        self.tripped[strategy] = now
        reason = (f"{lim.repeated_fills} fills within {_num(lim.repeated_fills_seconds)}s "
                  f"(risk.repeated_fills): {lim.repeated_fills_state} until set ACTIVE again")
        if self.states is not None:
            from .base import TradingState
            self.states.set(strategy or GLOBAL, TradingState(lim.repeated_fills_state), reason, source=self.name)
        elif self.alert is not None:
            self.alert(RiskEvent(now, "alert", strategy or GLOBAL, self.name, reason))

    def check(self, intent: OrderIntent) -> Refusal | None:
        return None
