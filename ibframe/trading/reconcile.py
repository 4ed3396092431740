"""Asking TWS what became of orders whose state ibframe does not know.

Owns: one reconciliation round at a time — reqOpenOrders, and for the orders not among the open
ones reqCompletedOrders — for trades that got no answer within the ack timeout, whose cancel
failed (161 / 10147 / 10148), or, after a reconnect, every open trade (a "sweep", `sweep_all`).
What TWS says is applied through the order manager's callbacks (openOrder / orderStatus arrive as
usual); a completed order found here sets the trade's final status (and its filled quantity). A
trade TWS never acknowledged and knows nothing about ends as "Inactive" with a reason saying so;
a swept trade TWS knows nothing about goes to the sweep's `on_unknown` (resync.py decides).
`reset()` forgets a round whose answers will never come (the connection was replaced).
Runs only on the dispatch thread and never waits: it sends a request and returns.

Must never: mark an order cancelled or filled on its own guess, or touch a trade TWS has answered
for except with what TWS reports.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from ibapi.const import UNSET_DECIMAL

from .trade import Trade

log = logging.getLogger("ibframe.orders")


@dataclass(slots=True)
class Sweep:
    """A look-up of every listed trade in a round of its own: the ones TWS lists neither as open nor as
    completed go to `on_unknown(trade)`; `on_done()` runs when the round ends."""
    order_ids: set[int]
    on_unknown: Callable[[Trade], None]
    on_done: Callable[[], None]


class Reconciler:
    def __init__(self, client: Callable[[], Any], trades: dict[int, Trade], end: Callable[[Trade, str, str], None]):
        self.client = client                # () -> the EClient (reqOpenOrders / reqCompletedOrders)
        self.trades = trades                # the order manager's trades, by orderId (read only)
        self.end = end                      # end(trade, status, reason): final status + status hooks
        self.waiting: dict[int, str] = {}   # orderId -> why it is being looked up
        self.phase = "idle"                 # idle -> open (reqOpenOrders sent) -> completed -> idle
        self.again = False                  # more asked for during a round: run another one after it
        self.rounds = 0
        self.sweep: Sweep | None = None     # the sweep the running round serves
        self.next_sweep: Sweep | None = None   # a sweep asked for while a round ran: it gets the next round

    @property
    def busy(self) -> bool:
        return self.phase != "idle"

    def check(self, trade: Trade, why: str) -> None:
        """Learn this trade's true state from TWS (starts a round, or joins the next one)."""
        self.waiting[trade.order_id] = why
        if self.phase == "idle":
            self._start()
        else:
            self.again = True

    def sweep_all(self, trades: list[Trade], on_unknown: Callable[[Trade], None], on_done: Callable[[], None]) -> None:
        """Ask TWS about every one of `trades` in a round that starts after this call (never one already
        running: its open-order answers may have passed before these trades were waiting)."""
        self.next_sweep = Sweep({t.order_id for t in trades if t.order_id}, on_unknown, on_done)
        if self.phase == "idle":
            self._start()
        else:
            self.again = True

    def reset(self) -> None:
        """The connection was replaced: the running round's answers will never come. Forget it and its
        sweeps; what still waits is asked again by the next round."""
        if self.phase != "idle" or self.sweep is not None or self.next_sweep is not None:
            log.info("order reconciliation round %d abandoned: the connection it asked on is gone", self.rounds)
        self.phase, self.sweep, self.next_sweep = "idle", None, None
        self.again = bool(self.waiting)

    def seen(self, trade: Trade) -> None:
        """TWS sent openOrder / orderStatus for the trade: its state is known again."""
        self.waiting.pop(trade.order_id, None)

    def _start(self) -> None:
        self.phase, self.again = "open", False
        if self.next_sweep is not None:
            self.sweep, self.next_sweep = self.next_sweep, None
            for order_id in self.sweep.order_ids:
                self.waiting.setdefault(order_id, "reconnect")
        self.rounds += 1
        log.info("asking TWS for its open orders to learn the state of order(s) %s",
                 ", ".join(str(i) for i in sorted(self.waiting)) or "(none open)")
        self.client().reqOpenOrders()

    # --- TWS's answers ----------------------------------------------------------------------------
    def on_open_order_end(self) -> None:
        if self.phase != "open":
            return                          # someone else's reqOpenOrders
        if not self._unresolved():
            return self._finish()
        self.phase = "completed"
        self.client().reqCompletedOrders(True)

    def on_completed_order(self, contract, order, state) -> None:
        if self.phase != "completed":
            return
        trade = self._match(contract, order)
        if trade is None:
            return
        self.waiting.pop(trade.order_id, None)
        trade.perm_id = trade.perm_id or order.permId
        filled = _filled(order)
        if filled is not None:
            _set_filled(trade, filled)
        status = state.status or "Inactive"
        why = state.completedStatus if state.completedStatus not in ("", status) else f"TWS reports it {status}"
        if trade.status != status:
            log.warning("order %d is %s at TWS (%s)", trade.order_id, status, why)
            self.end(trade, status, why)

    def on_completed_orders_end(self) -> None:
        if self.phase != "completed":
            return
        sweep = self.sweep
        for trade in self._unresolved():
            self.waiting.pop(trade.order_id, None)
            if sweep is not None and trade.order_id in sweep.order_ids:
                sweep.on_unknown(trade)
            elif trade.unacknowledged:
                self.end(trade, "Inactive", f"TWS never acknowledged order {trade.order_id}: it is neither among "
                                            f"its open nor its completed orders, so it was never placed; "
                                            f"place it again if you still want it")
            else:
                log.warning("order %d: TWS lists it neither as open nor as completed; its status stays %s",
                            trade.order_id, trade.status)
        self._finish()

    def _finish(self) -> None:
        self.phase = "idle"
        sweep, self.sweep = self.sweep, None
        self.waiting = {k: v for k, v in self.waiting.items() if k in self.trades and not self.trades[k].done}
        if sweep is not None:
            sweep.on_done()
        if self.phase == "idle" and ((self.again and self.waiting) or self.next_sweep is not None):
            self._start()

    def _unresolved(self) -> list[Trade]:
        out = []
        for order_id in list(self.waiting):
            trade = self.trades.get(order_id)
            if trade is None or (trade.done and not trade.unacknowledged):
                self.waiting.pop(order_id, None)
            else:
                out.append(trade)
        return out

    def _match(self, contract, order) -> Trade | None:
        """The waiting trade a completed order is: by permId, else (never acknowledged, so no permId yet)
        by orderRef, contract, side and size among completed orders no known trade claims — and only when
        what it filled is what this process holds executions for (so another order alike is not taken)."""
        waiting = [self.trades[i] for i in self.waiting if i in self.trades]
        for trade in waiting:
            if trade.perm_id and trade.perm_id == order.permId:
                return trade
        if any(t.perm_id == order.permId for t in self.trades.values()):
            return None
        filled = _filled(order)
        for trade in waiting:
            if (not trade.perm_id and trade.order.orderRef == order.orderRef
                    and trade.contract.conId == contract.conId and trade.order.action == order.action
                    and float(trade.order.totalQuantity) == float(order.totalQuantity)
                    and (filled is None or abs(filled - sum(f.shares for f in trade.fills)) < 1e-9)):
                return trade
        return None


def _filled(order) -> float | None:
    """A completed order's filled quantity, or None when TWS did not say."""
    value = getattr(order, "filledQuantity", UNSET_DECIMAL)
    if value is None or value == UNSET_DECIMAL:
        return None
    try:
        return float(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        return None


def _set_filled(trade: Trade, filled: float) -> None:
    """What TWS says was filled, with the average price of the fills this process holds when they add up."""
    trade.filled = filled
    try:
        trade.remaining = max(float(trade.order.totalQuantity) - filled, 0.0)
    except (TypeError, ValueError, ArithmeticError):
        pass
    shares = sum(f.shares for f in trade.fills)
    if filled > 0 and abs(shares - filled) < 1e-9:
        trade.avg_fill_price = sum(f.shares * f.price for f in trade.fills) / shares
