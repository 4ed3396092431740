"""The order manager: ids, placement and every order callback, keyed by orderId.

Owns: the Trade objects of this client, placing orders with an id taken atomically from the
OrderIds allocator, bracket wiring (parentId), cancels, and folding openOrder / orderStatus /
execDetails / commission reports into the Trades. Fills are never lost: an execution for an
order this process did not place is still kept (in `foreign_fills`) and logged.
"""
from __future__ import annotations

import logging
from typing import Callable

from ibapi.contract import Contract
from ibapi.order import Order

from ..contracts import label
from ..errors import IBError
from ..ids import OrderIds
from .trade import Fill, Trade

log = logging.getLogger("ibframe.orders")


class OrderManager:
    def __init__(self, client, order_ids: OrderIds, clock):
        self.client = client                # the EClient (placeOrder/cancelOrder)
        self.order_ids = order_ids
        self.clock = clock
        self.trades: dict[int, Trade] = {}
        self.by_exec_id: dict[str, tuple[Trade | None, Fill]] = {}
        self.foreign_fills: list[Fill] = []
        self.status_hooks: list[Callable[[Trade], None]] = []
        self.fill_hooks: list[Callable[[Trade, Fill], None]] = []
        self.pre_trade_checks: list[Callable[[Contract, Order], str | None]] = []

    # --- out --------------------------------------------------------------------------------
    def place(self, contract: Contract, order: Order, strategy: str = "", quote=None) -> Trade:
        """Check, take an id and send placeOrder as one step; returns the live Trade."""
        for check in self.pre_trade_checks:
            problem = check(contract, order)
            if problem:
                raise OrderRejected(f"order {order.action} {order.totalQuantity:g} {label(contract)} "
                                    f"blocked before sending: {problem}")
        if strategy and not order.orderRef:
            order.orderRef = strategy
        with self.order_ids.lock:
            order_id = self.order_ids.take()
            order.orderId = order_id
            trade = Trade(order_id, contract, order, strategy=strategy, remaining=float(order.totalQuantity),
                          placed_at=self.clock.now())
            if quote is not None:
                trade.arrival_bid, trade.arrival_ask = quote.bid, quote.ask
            self.trades[order_id] = trade
            self.client.placeOrder(order_id, contract, order)
        log.info("placed order %d: %s %g %s %s%s", order_id, order.action, order.totalQuantity, label(contract),
                 order.orderType, f" @ {order.lmtPrice}" if order.orderType in ("LMT", "STP LMT") else "")
        return trade

    def place_bracket(self, contract: Contract, orders: list[Order], strategy: str = "", quote=None) -> list[Trade]:
        parent = self.place(contract, orders[0], strategy, quote)
        trades = [parent]
        for child in orders[1:]:
            child.parentId = parent.order_id
            trades.append(self.place(contract, child, strategy, quote))
        return trades

    def cancel(self, trade: Trade) -> None:
        if trade.done:
            return
        from ibapi.order_cancel import OrderCancel
        self.client.cancelOrder(trade.order_id, OrderCancel())

    def describe(self, order_id: int) -> str | None:
        trade = self.trades.get(order_id)
        if trade is None:
            return None
        return f"order {order_id} {trade.order.action} {trade.order.totalQuantity:g} {label(trade.contract)}"

    def open_trades(self) -> list[Trade]:
        return [t for t in self.trades.values() if not t.done]

    # --- in ---------------------------------------------------------------------------------
    def on_open_order(self, order_id, contract, order, state) -> None:
        trade = self.trades.get(order_id)
        if trade is None:                   # an order from before a restart, or another client's
            trade = Trade(order_id, contract, order, strategy=order.orderRef or "",
                          remaining=float(order.totalQuantity))
            self.trades[order_id] = trade
        trade.perm_id = order.permId or trade.perm_id
        if state.status and state.status != trade.status and not trade.done:
            trade.status = state.status
            self._status_changed(trade)

    def on_order_status(self, order_id, status, filled, remaining, avg_fill_price, perm_id, parent_id,
                        last_fill_price, client_id, why_held) -> None:
        trade = self.trades.get(order_id)
        if trade is None:
            log.debug("orderStatus for order %d this client does not know", order_id)
            return
        changed = (status, filled) != (trade.status, trade.filled)
        trade.status, trade.filled, trade.remaining = status, filled, remaining
        trade.avg_fill_price, trade.perm_id = avg_fill_price, perm_id or trade.perm_id
        if changed:
            self._status_changed(trade)

    def on_execution(self, contract, execution) -> None:
        if execution.execId in self.by_exec_id:
            return                          # TWS re-sends executions (reqExecutions, reconnects)
        fill = Fill(execution.execId, execution.time, execution.side, float(execution.shares), execution.price,
                    execution.exchange)
        trade = self.trades.get(execution.orderId)
        self.by_exec_id[execution.execId] = (trade, fill)
        if trade is None:
            self.foreign_fills.append(fill)
            log.warning("fill %s for order %d not placed by this process kept in foreign_fills",
                        execution.execId, execution.orderId)
            return
        trade.fills.append(fill)
        for hook in self.fill_hooks:
            hook(trade, fill)

    def on_commission(self, report) -> None:
        entry = self.by_exec_id.get(report.execId)
        if entry is None:
            log.debug("commission for unknown execution %s", report.execId)
            return
        fill = entry[1]
        fill.commission = report.commissionAndFees
        if report.realizedPNL is not None and abs(report.realizedPNL) < 1e300:
            fill.realized_pnl = report.realizedPNL

    def on_error(self, err: IBError) -> None:
        trade = self.trades.get(err.req_id)
        if trade is None:
            return
        trade.errors.append(err)
        if err.code in (201, 203, 434, 103):
            trade.status = "Inactive"
            self._status_changed(trade)

    def _status_changed(self, trade: Trade) -> None:
        for hook in self.status_hooks:
            hook(trade)


class OrderRejected(RuntimeError):
    """An order stopped before it reached TWS (risk check); nothing was sent, no id was spent."""
