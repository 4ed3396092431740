"""The order manager: ids, placement and every order callback, keyed by orderId.

Owns: the Trade objects of this client, placing orders with an id taken atomically from the
OrderIds allocator, bracket wiring (parentId), cancels, and folding openOrder / orderStatus /
execDetails / commission reports into the Trades. Fills are never lost: an execution for an
order this process did not place is still kept (in `foreign_fills`) and logged.

Every order ends in a final status or a clearly stated open one: an error that refuses or
cancels it (the table in `ibframe.errors`) ends it with `trade.reason` and a status-hook call; a
failed cancel leaves its true state and asks TWS for it; an order TWS does not answer within
`ack_timeout` seconds is marked `unacknowledged` and reconciled (`reconcile.py`). After a reconnect,
`after_reconnect` fetches the executions missed and every open trade's true state (`resync.py`):
each fill reaches the hooks once (deduped by execId, commission reports likewise). Timers run on
the dispatch thread through `call_later` (set by the engine); nothing here waits.

Orders this process did not place (TWS lists an earlier run's working orders at connect) become
Trades too, remembered in `found`; their ids lift the id allocator above them, so no id is reused.
`leftovers.py` decides what happens to them; one it leaves alone is `disown`ed: it is still
followed here, but is no longer among `open_trades()` (so a halt or `on_stop: cancel` leaves it).
"""
from __future__ import annotations

import copy
import logging
from typing import Callable

from ibapi.contract import Contract
from ibapi.const import UNSET_DOUBLE
from ibapi.order import Order

from ..contracts import label
from ..errors import CANCEL_FAILED, IBError, order_outcome
from ..ids import OrderIds
from .reconcile import Reconciler
from .resync import ReconcileSummary, Resync
from .trade import Fill, Trade, quantity_text

DEFAULT_ACK_TIMEOUT = 10.0               # seconds TWS may take to answer a placeOrder

log = logging.getLogger("ibframe.orders")


class OrderManager:
    def __init__(self, client, order_ids: OrderIds, clock):
        self.client = client                # the EClient (placeOrder/cancelOrder)
        self.order_ids = order_ids
        self.clock = clock
        self.trades: dict[int, Trade] = {}
        self.by_exec_id: dict[str, tuple[Trade | None, Fill]] = {}
        self.executions: list[tuple[Trade | None, Fill]] = []   # the same, in arrival order (append-only)
        self.foreign_fills: list[Fill] = []
        self.found: set[int] = set()          # order ids TWS reported that this process did not place
        self.disowned: set[int] = set()       # found orders this run leaves alone (leftovers: leave, no strategy)
        self.open_order_end_hooks: list[Callable[[], None]] = []   # after each openOrderEnd (leftovers.py)
        self.status_hooks: list[Callable[[Trade], None]] = []
        self.fill_hooks: list[Callable[[Trade, Fill], None]] = []
        # for observers that must see everything (the journal): every request sent ("place", "modify",
        # "cancel"), every new execution (legs and other clients' included, with ibapi's Execution) and
        # every commission report. Hooks run on the dispatch thread and must not block.
        self.sent_hooks: list[Callable[[Trade, str], None]] = []
        self.execution_hooks: list[Callable[[Trade | None, Fill, object], None]] = []
        self.commission_hooks: list[Callable[[Fill, object], None]] = []
        # TWS's answers to whatIf orders (orderId, contract, order, OrderState): never Trades (risk/whatif.py)
        self.what_if_hooks: list[Callable[[int, Contract, Order, object], None]] = []
        # the one door (ibframe.risk): every place and modify passes the gate; only then does placeOrder get a
        # one-use pass from the door. RiskLayer.install adds the rules; pre_trade_checks are one more rule.
        from ..risk.gate import DOOR, LegacyChecks, RiskGate     # here: ibframe.risk imports this module
        self.pre_trade_checks: list[Callable[[Contract, Order], str | None]] = []
        self.gate = RiskGate(now=clock.now)
        self.gate.add_rule(LegacyChecks(self.pre_trade_checks))
        self.door = DOOR
        self.sent_hooks.append(self.gate.context.working.update)      # the gate's view of working orders
        self.status_hooks.append(self.gate.context.working.update)
        self.fill_hooks.append(self.gate.context.working.update)
        self.ack_timeout = DEFAULT_ACK_TIMEOUT  # <= 0: never time out
        self.call_later: Callable[[float, Callable[[], None]], object] | None = None   # the dispatcher's
        self.reconciler = Reconciler(lambda: self.client, self.trades, self._end)
        # after a reconnect (resync.py): fresh request ids from the engine (`request_id = request_ids.take`;
        # unset: a private high range), orders TWS no longer knows, and one summary per reconciliation
        self.request_id: Callable[[], int] | None = None
        self.unknown_order_hooks: list[Callable[[Trade], None]] = []
        self.reconcile_hooks: list[Callable[[ReconcileSummary], None]] = []
        self.resync = Resync(self, self._end)
        # orders still queued in the paced writer (ibframe.writer), set by the engine: the ack timeout counts
        # from when TWS could have seen the order, so a big burst is not reconciled while it is being sent
        self.orders_queued: Callable[[], int] = lambda: 0

    # --- out --------------------------------------------------------------------------------
    def place(self, contract: Contract, order: Order, strategy: str = "", quote=None) -> Trade:
        """Pass the risk gate, take an id and send placeOrder as one step; returns the live Trade.

        Raises RiskRejected (an OrderRejected) when a rule refuses it: nothing was sent, no id was spent.
        When a rule must ask TWS first (a what-if), the Trade comes back PendingSubmit without an id
        (order_id 0); it gets one when sent, or ends Inactive with the refusal as its reason.
        """
        return self._place(contract, order, strategy, quote, None)

    def _place(self, contract: Contract, order: Order, strategy: str, quote, then) -> Trade:
        trade = Trade(0, contract, order, strategy=strategy, remaining=_quantity(order))
        self._submit(trade, quote, then)
        return trade

    def _submit(self, trade: Trade, quote, then) -> None:
        """Gate, then send (or defer) an id-less Trade; `then(trade)` runs once it was sent."""
        order, strategy = trade.order, trade.strategy
        if strategy and not order.orderRef:
            order.orderRef = strategy
        intent = self.gate.intent(strategy, trade.contract, order, quote, self.clock.now())
        deferred = self.gate.check(intent)
        trade.placed_at = intent.now
        if intent.quote is not None:
            trade.arrival_bid, trade.arrival_ask = intent.quote.bid, intent.quote.ask
        if deferred is None:
            self._send(trade)
            if then is not None:
                then(trade)
            return
        self._defer(trade, intent, deferred, then)

    def _send(self, trade: Trade) -> None:
        """Take the id and send, as one step; the door lets exactly this order through once."""
        order, contract = trade.order, trade.contract
        with self.order_ids.lock:
            order_id = self.order_ids.take()
            order.orderId = trade.order_id = order_id
            self.trades[order_id] = trade
            self.door.approve(self.client, order_id, order)
            try:
                self.client.placeOrder(order_id, contract, order)
            finally:
                self.door.withdraw(self.client, order_id)
        self._sent(trade, "place")
        log.info("placed order %d: %s %s %s %s%s", order_id, order.action, quantity_text(order.totalQuantity),
                 label(contract), order.orderType,
                 f" @ {order.lmtPrice}" if order.orderType in ("LMT", "STP LMT") else "")
        self._watch(trade)

    def _defer(self, trade: Trade, intent, deferred, then) -> None:
        """A rule asks TWS first: send later (states checked again; terms must not have changed) or end it."""
        terms = _terms(trade.order)
        answered = []

        def refuse(refusal) -> None:
            if answered or trade.done:
                return
            answered.append("refused")
            exc = self.gate.refuse(intent, refusal)
            trade.status, trade.reason = "Inactive", str(exc)
            self._status_changed(trade)

        def send() -> None:
            if answered or trade.done:
                return
            from ..risk.base import Refusal
            if _terms(trade.order) != terms:
                refuse(Refusal("changed_after_check", "the terms the risk check saw", "changed while waiting",
                               "do not change an Order after placing it: modify the trade or place a new order"))
                return
            states = self.gate.states
            late = states.refusal(intent) if states is not None else None
            if late is not None:
                refuse(late)
                return
            answered.append("sent")
            self._send(trade)
            if then is not None:
                then(trade)

        log.info("order %s %s %s waits for the %s check before it is sent", trade.order.action,
                 quantity_text(trade.order.totalQuantity), label(trade.contract), deferred.rule or "deferred")
        try:
            deferred.start(send, refuse)
        except Exception as exc:
            log.exception("deferred risk check %s failed to start", deferred.rule)
            from ..risk.base import Refusal
            refuse(Refusal(deferred.rule or "deferred", "a check that starts", f"{type(exc).__name__}: {exc}",
                           "the order was not sent; see the log"))

    def place_bracket(self, contract: Contract, orders: list[Order], strategy: str = "", quote=None) -> list[Trade]:
        """Parent, then its children once it has an id (at once, or after a deferred check). A child the gate
        refuses raises RiskRejected (at once) or, after a deferred parent, ends Inactive with the parent
        cancelled (no bracket is left half sent)."""
        parent_order, child_orders = orders[0], orders[1:]
        children = [Trade(0, contract, o, strategy=strategy, remaining=_quantity(o)) for o in child_orders]
        state = {"deferred": False}

        def send_children(parent: Trade) -> None:
            for i, child in enumerate(children):
                child.order.parentId = parent.order_id
                try:
                    self._submit(child, quote, None)
                except OrderRejected as exc:
                    if not state["deferred"]:
                        raise
                    for left in children[i:]:
                        left.status, left.reason = "Inactive", str(exc)
                        self._status_changed(left)
                    for placed in [parent] + children[:i]:
                        self.cancel(placed)
                    return

        parent = self._place(contract, parent_order, strategy, quote, send_children)
        state["deferred"] = parent.order_id == 0
        return [parent] + children

    def modify(self, trade: Trade, **changes) -> None:
        """Change a working order in place (same orderId), e.g. modify(trade, lmtPrice=101.5).

        The modification passes the risk gate first (RiskRejected: nothing sent, the order keeps working).
        `trade.order` takes the change once TWS confirms it; if TWS refuses the modification
        (110, 105, ...), the order keeps working as it was and the error reaches the strategy.
        """
        if trade.done:
            raise OrderRejected(f"{self.describe(trade.order_id)} is {trade.status}: it cannot be modified; "
                                f"place a new order")
        if not trade.order_id:
            raise OrderRejected(f"order {trade.order.action} {quantity_text(trade.order.totalQuantity)} "
                                f"{label(trade.contract)} is still waiting for its risk check: modify it once sent")
        order = copy.copy(trade.order)
        for name, value in changes.items():
            if not hasattr(order, name):
                raise AttributeError(f"modify: an ibapi Order has no field {name!r}")
            setattr(order, name, value)
        intent = self.gate.intent(trade.strategy, trade.contract, order, None, self.clock.now(), kind="modify")
        deferred = self.gate.check(intent)
        description = ", ".join(f"{k}={v}" for k, v in changes.items())
        if deferred is None:
            self._send_modify(trade, order, description)
            return

        def refuse(refusal) -> None:
            self.gate.refuse(intent, refusal)

        def send() -> None:
            if not trade.done:
                self._send_modify(trade, order, description)
        deferred.start(send, refuse)

    def _send_modify(self, trade: Trade, order: Order, description: str) -> None:
        trade.pending = order
        with self.order_ids.lock:
            self.door.approve(self.client, trade.order_id, order)
            try:
                self.client.placeOrder(trade.order_id, trade.contract, order)
            finally:
                self.door.withdraw(self.client, trade.order_id)
        self._sent(trade, "modify")
        log.info("modifying %s: %s", self.describe(trade.order_id), description)

    def cancel(self, trade: Trade) -> None:
        """Ask TWS to cancel; the trade changes only when TWS says so (orderStatus Cancelled / 202).
        A refused cancel (161, 10147, 10148) leaves its state and asks TWS for it."""
        if trade.done:
            return
        if trade.order_id == 0:             # still waiting for a deferred risk check: TWS never saw it
            self._end(trade, "Cancelled", "cancelled before it was sent (it was waiting for a risk check)")
            return
        from ibapi.order_cancel import OrderCancel
        self.client.cancelOrder(trade.order_id, OrderCancel())
        self._sent(trade, "cancel")

    def _sent(self, trade: Trade, action: str) -> None:
        for hook in self.sent_hooks:
            hook(trade, action)

    def describe(self, order_id: int) -> str | None:
        trade = self.trades.get(order_id)
        if trade is None:
            return None
        return (f"order {order_id} {trade.order.action} {quantity_text(trade.order.totalQuantity)} "
                f"{label(trade.contract)}")

    def open_trades(self) -> list[Trade]:
        """Working orders this run manages (a disowned leftover is not one of them)."""
        return [t for t in self.trades.values() if not t.done and t.order_id not in self.disowned]

    def found_working(self) -> list[Trade]:
        """Working orders of this client id that TWS reported and this process did not place, by id."""
        return [self.trades[i] for i in sorted(self.found) if i in self.trades and not self.trades[i].done]

    def disown(self, trade: Trade) -> None:
        """Leave a found order alone: followed, but not among open_trades() (no halt or stop cancels it)."""
        self.disowned.add(trade.order_id)

    def is_disowned(self, trade: Trade) -> bool:
        return trade.order_id in self.disowned

    # --- after a reconnect ------------------------------------------------------------------------
    def after_reconnect(self, down_since: float, down_for: float) -> None:
        """Reconcile with TWS after a new connection is ready (dispatch thread; sends and returns): the
        executions missed since the last one seen (each fill delivered once), then every open trade's
        true status; orders TWS no longer knows end Inactive and go to `unknown_order_hooks`; a
        `ReconcileSummary` goes to `reconcile_hooks` when done. Called again, it starts a new round."""
        self.resync.start(down_since, down_for)

    @property
    def reconciling(self) -> bool:
        """A reconciliation after a reconnect is running: open trades' states may be stale."""
        return self.resync.running

    def in_doubt(self, trade: Trade) -> bool:
        """The running reconciliation is still asking TWS about this trade."""
        return self.resync.in_doubt(trade)

    # --- in ---------------------------------------------------------------------------------
    def on_open_order(self, order_id, contract, order, state) -> None:
        if getattr(order, "whatIf", False):  # a margin what-if's answer: no order exists at TWS
            for hook in self.what_if_hooks:
                hook(order_id, contract, order, state)
            return
        trade = self.trades.get(order_id)
        if trade is None:                   # an order from before a restart, or another client's
            trade = Trade(order_id, contract, order, strategy=order.orderRef or "",
                          remaining=float(order.totalQuantity))
            self.trades[order_id] = trade
            self.found.add(order_id)
            self._keep_ids_above(order_id, order)
        trade.perm_id = order.permId or trade.perm_id
        if trade.pending is not None and _same_terms(order, trade.pending):
            trade.order, trade.pending = trade.pending, None          # TWS confirmed the modification
        revived = self._answered(trade)
        if state.status == "Filled" and trade.filled < _quantity(trade.order):
            return                          # orderStatus follows with the filled quantity: a Filled trade never reads 0
        if state.status and state.status != trade.status and (not trade.done or revived):
            trade.status = state.status
            self._status_changed(trade)

    def on_order_status(self, order_id, status, filled, remaining, avg_fill_price, perm_id, parent_id,
                        last_fill_price, client_id, why_held) -> None:
        trade = self.trades.get(order_id)
        if trade is None:
            log.debug("orderStatus for order %d this client does not know", order_id)
            return
        self._answered(trade)
        changed = (status, filled) != (trade.status, trade.filled)
        trade.status, trade.filled, trade.remaining = status, filled, remaining
        trade.avg_fill_price, trade.perm_id = avg_fill_price, perm_id or trade.perm_id
        if changed:
            self._status_changed(trade)

    def on_execution(self, contract, execution, late: bool = False) -> None:
        """One execution, once. A combo order brings one per leg (kept in `trade.leg_fills`, with the leg's
        contract) and one for the BAG itself at the net price (in `trade.fills`, passed to the fill hooks).
        `late`: TWS reported it in answer to reqExecutions (a reconciliation), not as it happened."""
        if execution.execId in self.by_exec_id:
            return                          # TWS re-sends executions (reqExecutions, reconnects)
        fill = Fill(execution.execId, execution.time, execution.side, float(execution.shares), execution.price,
                    execution.exchange, contract=contract, order_ref=execution.orderRef or "", late=late)
        trade = self.trades.get(execution.orderId)
        self.by_exec_id[execution.execId] = (trade, fill)
        self.executions.append((trade, fill))
        self.resync.note_execution()
        for hook in self.execution_hooks:
            hook(trade, fill, execution)
        if trade is None:
            self.foreign_fills.append(fill)
            log.warning("fill %s for order %d not placed by this process kept in foreign_fills%s",
                        execution.execId, execution.orderId,
                        f" (orderRef {fill.order_ref!r}: it counts in that strategy's book)" if fill.order_ref else "")
            return
        if trade.is_combo and contract.secType != "BAG":
            trade.leg_fills.append(fill)    # a leg: its own contract, side and price; the combo's fill follows
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
        if fill.commission is not None and fill.commission == report.commissionAndFees:
            return                          # the same report again (reqExecutions re-sends it)
        fill.commission = report.commissionAndFees
        if report.realizedPNL is not None and abs(report.realizedPNL) < 1e300:
            fill.realized_pnl = report.realizedPNL
        for hook in self.commission_hooks:
            hook(fill, report)

    def on_error(self, err: IBError) -> None:
        """An error naming one of our orders: end it, refuse its modification, or note a failed cancel."""
        trade = self.trades.get(err.req_id)
        if trade is None:
            return
        trade.errors.append(err)
        if trade.done:
            if not trade.reason and err.code in (201, 202):
                trade.reason = str(err)             # orderStatus came first; this says why
            return
        if err.code in CANCEL_FAILED:
            log.warning("cancel of %s failed (%d: %s); asking TWS for its state",
                        self.describe(trade.order_id), err.code, err.text)
            self.reconciler.check(trade, f"cancel failed ({err.code})")
            return
        modifying = trade.pending is not None
        final = order_outcome(err.code, trade.acknowledged, modifying)
        if final is not None:
            self._end(trade, final, str(err))
        elif modifying and order_outcome(err.code, False) is not None:
            trade.pending = None
            log.warning("modification of %s refused (%d: %s); the order keeps working as it was",
                        self.describe(trade.order_id), err.code, err.text)

    def on_open_order_end(self) -> None:
        self.reconciler.on_open_order_end()
        for hook in list(self.open_order_end_hooks):
            try:
                hook()
            except Exception:
                log.exception("openOrderEnd hook %r failed", hook)

    def _keep_ids_above(self, order_id: int, order: Order) -> None:
        """An order of this client id that this process did not place: never issue its id (TWS's nextValidId
        is usually above it already, but not after TWS's order id sequence was reset)."""
        mine = getattr(self.client, "clientId", None)
        if order_id > 0 and (mine is None or order.clientId == mine):
            before = self.order_ids.peek()
            after = self.order_ids.seed(order_id + 1)
            if before is not None and after > before:
                log.warning("order %d of this client id was placed before this process started and is above the "
                            "next order id (%d): order ids continue from %d", order_id, before, after)

    def on_completed_order(self, contract, order, state) -> None:
        self.reconciler.on_completed_order(contract, order, state)

    def on_completed_orders_end(self) -> None:
        self.reconciler.on_completed_orders_end()

    def on_execution_end(self, req_id: int) -> None:
        self.resync.on_execution_end(req_id)

    # --- final states, acknowledgement and its timeout ----------------------------------------------
    def _end(self, trade: Trade, status: str, reason: str) -> None:
        """Final status with the reason, then the status hooks (Strategy.on_order_status)."""
        trade.status, trade.reason, trade.pending = status, reason, None
        what = self.describe(trade.order_id) or (f"order {trade.order.action} {quantity_text(trade.order.totalQuantity)} "
                                                 f"{label(trade.contract)}")
        log.warning("%s ended %s: %s", what, status, reason)
        self._status_changed(trade)

    def _answered(self, trade: Trade) -> bool:
        """TWS sent openOrder / orderStatus for the trade. True when it revives one ended for lack of an answer."""
        trade.acknowledged = True
        self.reconciler.seen(trade)
        if not trade.unacknowledged:
            return False
        trade.unacknowledged = False
        log.warning("%s: TWS answered after all", self.describe(trade.order_id))
        return trade.done

    def _watch(self, trade: Trade) -> None:
        if self.call_later is not None and self.ack_timeout > 0:
            self.call_later(self.ack_timeout, lambda: self._ack_overdue(trade))

    def _ack_overdue(self, trade: Trade) -> None:
        if trade.done or trade.acknowledged or any(e.code not in CANCEL_FAILED for e in trade.errors):
            return                          # TWS answered (a failed cancel is no answer about the order)
        if self.orders_queued() and self.call_later is not None:
            self.call_later(self.ack_timeout, lambda: self._ack_overdue(trade))
            return                          # still waiting its turn in the paced writer: TWS has not seen it yet
        trade.unacknowledged = True
        log.warning("%s: no answer from TWS after %gs (no openOrder, orderStatus or error); asking TWS for its "
                    "open and completed orders", self.describe(trade.order_id), self.ack_timeout)
        self._status_changed(trade)
        self.reconciler.check(trade, "no answer")

    def _status_changed(self, trade: Trade) -> None:
        for hook in self.status_hooks:
            hook(trade)


def _quantity(order: Order) -> float:
    try:
        return float(order.totalQuantity)
    except (TypeError, ValueError, ArithmeticError):
        return float("nan")              # the gate's order_sanity rule refuses it


def _terms(order: Order) -> tuple:
    """What a risk check saw of an order: a deferred order whose terms changed meanwhile is not sent."""
    return (order.action, str(order.totalQuantity), order.orderType, order.lmtPrice, order.auxPrice, order.tif)


def _same_terms(a: Order, b: Order) -> bool:
    """Do two orders agree on what a modification changes (prices, size, type)?"""
    def price(x) -> float | None:
        return None if x is None or x == 0 or x >= UNSET_DOUBLE else round(float(x), 9)
    return (a.orderType, float(a.totalQuantity), price(a.lmtPrice), price(a.auxPrice)) == \
        (b.orderType, float(b.totalQuantity), price(b.lmtPrice), price(b.auxPrice))


class OrderRejected(RuntimeError):
    """An order stopped before it reached TWS (risk check); nothing was sent, no id was spent."""
