"""Pre-trade what-if: ask TWS what a large order would do to the margin before sending it.

Owns: the `what_if` Rule. For a new order whose notional is above `risk.margin.what_if_above`
(and that does not only reduce a position) it answers the gate with a `Deferred`: a copy of the
order with `whatIf=True` goes to TWS under its own order id; TWS answers with an openOrder whose
OrderState carries the margin after the trade (equityWithLoanAfter, maintMarginAfter,
initMarginAfter). If the excess liquidity after the trade (equity with loan - maintenance) stays
above the margin buffer (`reducing_at` x NetLiquidation) the order is sent (`send()`); otherwise,
if TWS refuses the what-if (an error or a rejectReason), or if no answer comes within
`what_if_timeout`, the order is refused (`refuse(refusal)`) and never sent blindly.

How it is wired (narrow callables, given by `margin.install`): `send_what_if(contract, order)`
takes an order id from the engine's allocator and sends placeOrder as one step, returning the id
(what-if orders need no pass at the OrderDoor: TWS never works them), `call_later(delay, fn)` the
dispatcher's timer, `net_liquidation()` the account's latest NetLiquidation. Answers come in
through `on_open_order` (the order manager must hand it every openOrder whose order has
`whatIf` set, instead of making a Trade of it) and `on_error` (`router.on_error_hooks`).

Must never: block or wait (the dispatch thread only starts the question and returns), send the
real order itself, or call both send and refuse (each question ends exactly once).
"""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .base import OrderIntent, Refusal, account_number

log = logging.getLogger("ibframe.risk.whatif")

RULE = "what_if"
PRICED = ("LMT", "STP LMT", "LIT", "LOC", "REL", "PEG MID")


@dataclass(slots=True)
class _Question:
    order_id: int
    intent: OrderIntent
    send: Callable[[], None]
    refuse: Callable[[Refusal], None]
    timer: Any = None
    done: bool = False
    answers: list = field(default_factory=list)


class WhatIfCheck:
    """The `what_if` Rule and the desk that waits for TWS's answers. Dispatch thread only."""

    name = RULE

    def __init__(self, config, send_what_if: Callable[[Any, Any], int],
                 call_later: Callable[[float, Callable[[], None]], Any],
                 net_liquidation: Callable[[], float | None] | None = None, deferred=None):
        self.config = config                        # MarginConfig: what_if_above, what_if_timeout, reducing_at
        self.send_what_if = send_what_if
        self.call_later = call_later
        self.net_liquidation = net_liquidation or (lambda: None)
        if deferred is None:
            from .gate import Deferred as deferred
        self._deferred = deferred
        self.pending: dict[int, _Question] = {}
        self.asked = 0

    # --- the rule -------------------------------------------------------------------------------------
    def check(self, intent: OrderIntent):
        above = self.config.what_if_above
        if above is None or not self.config.enabled or intent.kind != "new" or intent.reduces \
                or getattr(intent.order, "whatIf", False):
            return None
        notional = order_notional(intent)
        if notional is not None and notional <= above:
            return None

        def start(send: Callable[[], None], refuse: Callable[[Refusal], None]) -> None:
            self._ask(intent, notional, send, refuse)
        return self._deferred(start, RULE)

    # --- asking ---------------------------------------------------------------------------------------
    def _ask(self, intent: OrderIntent, notional: float | None, send, refuse) -> None:
        order = what_if_copy(intent.order)
        try:
            order_id = self.send_what_if(intent.contract, order)    # answers come on this (dispatch) thread
        except Exception as exc:
            log.exception("what-if for %s could not be sent", _what(intent))
            refuse(Refusal(RULE, "a what-if answer from TWS before a large order", f"not asked ({exc})",
                           "the what-if could not be sent (connection down?); the order was not sent: try again "
                           "when connected"))
            return
        q = self.pending[order_id] = _Question(order_id, intent, send, refuse)
        self.asked += 1
        timeout = self.config.what_if_timeout
        q.timer = self.call_later(timeout, lambda: self._timed_out(order_id))
        log.info("what-if %d for %s (notional %s above %s): asking TWS for the margin impact", order_id,
                 _what(intent), "unknown" if notional is None else f"{notional:,.0f}",
                 f"{self.config.what_if_above:,.0f}")

    def _finish(self, order_id: int) -> _Question | None:
        q = self.pending.pop(order_id, None)
        if q is None or q.done:
            return None
        q.done = True
        if q.timer is not None and hasattr(q.timer, "cancel"):
            try:
                q.timer.cancel()
            except Exception:
                pass
        return q

    def _timed_out(self, order_id: int) -> None:
        q = self._finish(order_id)
        if q is None:
            return
        timeout = self.config.what_if_timeout
        log.warning("what-if %d for %s: no answer from TWS within %gs; the order is refused", order_id,
                    _what(q.intent), timeout)
        q.refuse(Refusal(RULE, f"a what-if answer from TWS within {timeout:g}s",
                         f"no answer after {timeout:g}s",
                         "TWS did not say what this order would do to the margin, so it was not sent: try again, "
                         "raise risk.margin.what_if_timeout, or split the order below risk.margin.what_if_above"))

    # --- answers --------------------------------------------------------------------------------------
    def on_open_order(self, order_id: int, contract, order, state) -> bool:
        """An openOrder for a what-if (order.whatIf): judge it. True when it was one of ours."""
        q = self.pending.get(order_id)
        if q is None:
            return False
        q = self._finish(order_id)
        if q is None:
            return True
        verdict = self.judge(state)
        if verdict is None:
            log.info("what-if %d for %s: margin after the order is within the buffer; sending it", order_id,
                     _what(q.intent))
            q.send()
        else:
            log.warning("what-if %d for %s: %s", order_id, _what(q.intent), verdict)
            q.refuse(verdict)
        return True

    def on_error(self, err) -> None:
        """`router.on_error_hooks`: an error naming a what-if's id ends its question with TWS's reason."""
        order_id = getattr(err, "req_id", -1)
        if order_id not in self.pending or getattr(err, "code", 0) in (2100, 2104, 2106, 2158, 399, 2109):
            return          # notices and warnings are not answers
        q = self._finish(order_id)
        if q is None:
            return
        text = getattr(err, "text", "") or str(err)
        q.refuse(Refusal(RULE, "TWS accepting the what-if", f"TWS refused it: {getattr(err, 'code', '')} {text}",
                         "TWS would refuse this order (see its reason): reduce it or free margin first"))

    def judge(self, state) -> Refusal | None:
        """None when the margin after the order keeps ExcessLiquidity above the buffer, else why not."""
        reason = (getattr(state, "rejectReason", "") or "").strip()
        if reason:
            return Refusal(RULE, "TWS accepting the what-if", f"TWS: {reason}",
                           "TWS would reject this order: reduce it or free margin first")
        elv = account_number(getattr(state, "equityWithLoanAfter", ""))
        maint = account_number(getattr(state, "maintMarginAfter", ""))
        if elv is None or maint is None:
            return Refusal(RULE, "margin numbers in TWS's what-if answer",
                           f"equityWithLoanAfter {getattr(state, 'equityWithLoanAfter', '')!r}, "
                           f"maintMarginAfter {getattr(state, 'maintMarginAfter', '')!r}",
                           "TWS's what-if answer had no usable margin numbers, so the order was not sent: try again")
        nlv = account_number(self.net_liquidation())
        base = nlv if nlv is not None and nlv > 0 else elv
        ratio = self.config.reducing_at
        buffer = ratio * base
        excess = elv - maint
        if excess > buffer:
            return None
        return Refusal(RULE, f"ExcessLiquidity after the order above {ratio:.0%} of NetLiquidation "
                             f"({buffer:,.2f})",
                       f"{excess:,.2f} after the order (equity with loan {elv:,.2f} - maintenance margin {maint:,.2f})",
                       "this order would leave the account inside its margin buffer: make it smaller, close "
                       "something first, or lower risk.margin.reducing_at")


# --- helpers ---------------------------------------------------------------------------------------------
def what_if_copy(order):
    """The order as a what-if: the same terms, transmitted, outside any bracket or OCA group."""
    o = copy.copy(order)
    o.whatIf = True
    o.transmit = True
    o.parentId = 0
    o.ocaGroup = ""
    return o


def order_notional(intent: OrderIntent) -> float | None:
    """|quantity| x price x multiplier in the instrument's currency (None when no price is known)."""
    order, quote = intent.order, intent.quote
    try:
        qty = abs(float(order.totalQuantity))
    except (TypeError, ValueError):
        return None
    price = None
    if order.orderType in PRICED:
        price = _price(order.lmtPrice)
    if price is None and order.orderType in ("STP", "STP LMT", "TRAIL") and _price(order.auxPrice):
        price = _price(order.auxPrice)
    if price is None and quote is not None:
        far = quote.ask if order.action == "BUY" else quote.bid
        for candidate in (far, getattr(quote, "mid", None), getattr(quote, "last", None)):
            price = _price(candidate)
            if price is not None:
                break
    if price is None or not math.isfinite(qty):
        return None
    try:
        mult = float(intent.contract.multiplier) if intent.contract.multiplier else 1.0
    except (TypeError, ValueError):
        mult = 1.0
    return qty * price * (mult if mult > 0 else 1.0)


def _price(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and 0 < v < 1e300 else None


def _what(intent: OrderIntent) -> str:
    o = intent.order
    return f"{o.action} {o.totalQuantity} {intent.contract.symbol or intent.contract.conId}"
