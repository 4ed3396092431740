"""The paper broker: every order's lifecycle, from placeOrder to Filled / Cancelled / Inactive.

Owns: the order table (by permId and by (clientId, orderId)), order ids (error 103 for a new order
whose id is not above every id this client used; nextValidId bumped past every id seen), the path
of a new order (order_entry's checks, what-if previews, injected rejects, the ledger's margin check),
transmission (transmit=False holds an order; bracket children wait for their parent to fill),
activation (timers, PreSubmitted / Submitted), modifications (re-placing the same id), cancels
(202, 10147, 10148), expiries, rejects after acceptance (201 + orderStatus Inactive), what a fill
does to other orders (OCA groups, bracket siblings, children), manual and liquidation orders, and
the market-step loop. How orders meet the market is `work.py`; executions are `fills.py`; the
open / completed / execution requests are `order_queries.py`; state files are `broker_state.py`.

TWS behaviour chosen where it is not documented (see also each module):
- Refused before acceptance (103, 104, 105, 106, 107, 109, 110, 111, 113, 135, 200, 203, 321, 382,
  383, 387, 434, 439-443, 201 for a bad field): the error only, no orderStatus; the id stays free.
  A child whose parent TWS cannot find is 135, one whose parent ended unfilled is 106; an order
  without an exchange is 321. A MOC / LOC cancel inside the close cut-off is 161 (it keeps working).
  Refused after acceptance (margin / PDT from the ledger, injected faults): error 201 then orderStatus
  Inactive; it is a completed order.
- Fault `swallow_next`: the next N placeOrders get no answer at all (an order lost on its way).
- A transmit=False order (and a bracket child waiting for its parent) reports PreSubmitted and
  does not work. Bracket children behave as one OCA group (a fill reduces the siblings, a
  complete fill cancels them) unless the client gave them an OCA group of their own.
- OCA type 0 is treated as 1. Fills are booked one at a time, so types 2 and 3 both reduce the
  other orders before they can trade again (the "block" is always in effect).
- Cancels (client, global, expiry, IOC/FOK remainder, OCA) send orderStatus Cancelled then 202.
- Garbage in a placeOrder (NaN / infinite / negative sizes and prices, impossible combinations:
  `validation.py`) is refused before anything else: the error only. An exception while working an
  order is the simulator's fault, not the client's: the order gets 201 + orderStatus Cancelled, the
  supervisor logs the cause once (`supervision.py`) and every other order keeps working.
- Every message about an order goes to the session of the clientId that placed it; a manual order
  (orderId 0) reaches client 0 once bound. A client that is away misses them, as with TWS.

Must never: change the market, or compute margin itself (the ledger answers check_order).
"""
from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

from ..market.ordertime import SessionClock, parse_tws_time
from . import (
    algos, broker_state, fills, notify, order_entry as entry, order_precautions as precautions,
    order_queries as queries, order_rules as rules, validation,
)
from .live import ExecRecord, LiveOrder, priority, start_trail
from .matching import Fill, venue_maker
from .order_records import ExecFilter, SimOrder, make_perm_id
from .work import Worker

if TYPE_CHECKING:
    from ..protocol.session import Session

log = logging.getLogger("ibframe.sim")

CONTRACT_FIELDS = ("conId", "symbol", "secType", "lastTradeDateOrContractMonth", "strike", "right", "multiplier",
                   "primaryExchange", "currency", "localSymbol", "tradingClass", "secIdType", "secId",
                   "comboLegsDescrip", "comboLegs", "smartComboRoutingParams", "deltaNeutralContract")


class Broker:
    def __init__(self, gateway):
        self.gateway = gateway
        self.clock = SessionClock()
        self.worker = Worker(self)
        self.orders: dict[int, LiveOrder] = {}            # permId -> every order (live and done)
        self.live: dict[int, LiveOrder] = {}              # permId -> orders not done yet
        self.by_key: dict[tuple[int, int], int] = {}      # (clientId, orderId) -> permId
        self.completed: list[int] = []                    # permIds in completion order
        self.executions: list[ExecRecord] = []
        self.max_ids: dict[int, int] = {}                 # highest orderId each client has used
        self.seq = 0                                      # permId sequence
        self.priority_seq = 0                             # arrival order for time priority
        self.exec_seq = 0
        self.exec_instance = secrets.randbits(16) or 1     # in every execId: two simulators never share one
        self.bind_seq = 0
        self.auto_bind: "Session | None" = None
        self.reject_reasons: list[str] = []
        self.swallow = 0                                  # fault: placeOrders to leave unanswered

    # --- small helpers ----------------------------------------------------------------------------
    @property
    def ledger(self):
        return self.gateway.ledger

    def now(self) -> float:
        return self.gateway.now()

    def session_of(self, lo: LiveOrder) -> "Session | None":
        if queries.unbound(lo):
            return None
        return self.gateway.sessions.get(lo.order.clientId)

    def find(self, client_id: int, order_id: int) -> LiveOrder | None:
        perm = self.by_key.get((client_id, order_id))
        return self.orders.get(perm) if perm is not None else None

    def open_orders(self) -> list[LiveOrder]:
        return sorted(self.live.values(), key=lambda lo: lo.seq)

    def default_account(self) -> str:
        return self.ledger.default_account()

    def _new_perm(self) -> int:
        self.seq += 1
        return make_perm_id(self.seq, self.gateway.config.seed)

    def _arrival(self) -> int:
        self.priority_seq += 1
        return self.priority_seq

    def _register(self, lo: LiveOrder) -> None:
        self.orders[lo.perm_id] = lo
        self.live[lo.perm_id] = lo
        if not queries.unbound(lo):
            self.by_key[lo.key] = lo.perm_id

    # --- placeOrder -------------------------------------------------------------------------------
    def place(self, session: "Session", o: SimOrder) -> None:
        if self.swallow > 0:
            self.swallow -= 1
            log.warning("fault: placeOrder %d of client %s swallowed (no answer)", o.orderId, session.client_id)
            return
        o.clientId = session.client_id
        entry.clean(o)
        o.orderType = rules.canonical_type(o.orderType)
        o.tif = o.tif.upper() or "DAY"
        garbage = validation.order_problem(o)
        if garbage is not None:
            session.error(o.orderId, garbage.code, garbage.text)
            return
        self.gateway.next_order_id = max(self.gateway.next_order_id, o.orderId + 1)
        existing = self.find(o.clientId, o.orderId)
        if existing is not None:
            self._modify(session, existing, o)
            return
        if o.orderId <= self.max_ids.get(o.clientId, 0):
            session.error(o.orderId, 103, rules.TEXT_103)
            return
        refused = precautions.exchange_problem(o.exchange, o.secType)
        if refused is None and o.parentId:
            parent = self.find(o.clientId, o.parentId)
            refused = precautions.parent_problem(o.parentId, parent.status if parent else None, o.orderId)
        if refused is not None:
            session.error(o.orderId, refused.code, refused.text)
            return
        target = entry.resolve_contract(self, session, o)
        if target is None:
            return
        inst, legs = target
        if inst is not None:
            entry.echo_contract(o, inst)
        o.account = o.account or self.default_account()
        refused = entry.problem(self, o, inst)
        if refused is not None:
            session.error(o.orderId, refused.code, refused.text)
            return
        self.max_ids[o.clientId] = o.orderId
        lo = LiveOrder(o, inst, legs, perm_id=self._new_perm(), seq=self._arrival())
        o.permId = lo.perm_id
        if o.whatIf:
            entry.what_if(self, session, lo)
            return
        self._register(lo)
        if self.reject_reasons:
            self.reject(lo, self.reject_reasons.pop(0))
            return
        check = entry.margin_refusal(self, lo)
        if check is not None:
            self.reject(lo, check.reason)
            return
        try:
            self._enter(lo)
        except Exception as exc:
            self.gateway.supervisor.report("an order on arrival", exc, f"order {o.orderId} of client {o.clientId}")
            self.abandon(lo, exc)

    # --- transmission and activation --------------------------------------------------------------
    def _enter(self, lo: LiveOrder) -> None:
        o = lo.order
        session = self.session_of(lo)
        if not o.transmit:
            lo.phase = "held"
            notify.both(session, lo)
            return
        if o.parentId:
            parent = self.find(o.clientId, o.parentId)
            if parent is None or (parent.done and parent.status != "Filled"):
                self.reject(lo, f"The parent order {o.parentId} is not active.")
                return
            o.parentPermId = parent.perm_id
            lo.phase = "child"
            notify.both(session, lo)
            self._transmit_family(parent)
            return
        self._transmit_family(lo)

    def _children(self, parent: LiveOrder) -> list[LiveOrder]:
        cid, oid = parent.order.clientId, parent.order.orderId
        return [c for c in self.open_orders() if c.order.parentId == oid and c.order.clientId == cid
                and c is not parent]

    def _transmit_family(self, parent: LiveOrder) -> None:
        """Transmit a parent and its held children: children then wait for the parent to fill."""
        for child in self._children(parent):
            if child.phase == "held":
                child.order.transmit = True
                child.order.parentPermId = parent.perm_id
                child.phase = "child"
        if parent.phase in ("held", "waiting"):
            parent.order.transmit = True
            self.activate(parent)
        elif parent.status == "Filled":
            self._release_children(parent)

    def activate(self, lo: LiveOrder) -> None:
        """The order starts to work: timers, trailing stop, algo window, status, an immediate try."""
        t = self.now()
        o = lo.order
        inst = lo.main_inst
        lo.phase = "working"
        lo.arrival_time = t
        book = self.worker.book(inst) if lo.inst is not None else None
        if book is not None:
            lo.arrival_bid, lo.arrival_ask = book.bid, book.ask
        kind = inst.hours_kind
        extended = kind == "us_equity" and o.outsideRth and lo.kind in rules.OUTSIDE_RTH_TYPES
        liquid = kind in ("us_equity",) and not extended
        tif = o.tif or "DAY"
        if tif == "DAY":
            lo.expires_at = self.clock.next_close(kind, liquid, t)
        elif tif == "GTD":
            lo.expires_at = parse_tws_time(o.goodTillDate, t, end_of_day=True)
        if o.goodAfterTime:
            lo.active_at = parse_tws_time(o.goodAfterTime, t)
        if lo.kind in ("MOC", "LOC"):
            lo.active_at = self.clock.next_close(kind, True, t)
        elif tif == "OPG":
            lo.active_at = self.clock.next_open(kind, True, t)
        if lo.kind in ("LMT", "LOC") or (lo.kind == "REL" and book is None):
            lo.work_price = o.lmtPrice
        if lo.kind in ("TRAIL", "TRAIL LIMIT") and book is not None:
            start_trail(lo, book.last or book.mid)
        if o.algoStrategy and lo.inst is not None:
            lo.algo = algos.start(o, lo.inst, t, self.clock, book, self.gateway.config.step_seconds)
        session = self.session_of(lo)
        if (o.outsideRth and kind == "us_equity" and lo.kind not in rules.OUTSIDE_RTH_TYPES
                and not self.clock.is_open(kind, True, t) and session is not None):
            session.error(o.orderId, 2109, rules.TEXT_2109)
        lo.status = "PreSubmitted"
        notify.both(session, lo)
        status = self.worker.initial_status(lo, t)
        if status == "Submitted":
            lo.status = status
            notify.both(session, lo)
        self._try_now(lo, t)

    def _try_now(self, lo: LiveOrder, t: float) -> None:
        """Work an order the moment it arrives (or is modified); IOC / FOK end right after."""
        tif = lo.order.tif
        if tif == "FOK" and not self._fok_possible(lo):
            self.cancel(lo, completed="Not filled (FOK)")
            return
        self.worker.advance(lo, t, None, arrival=True)
        if tif in ("IOC", "FOK") and not lo.done:
            self.cancel(lo, completed="Not filled (IOC)")

    def _fok_possible(self, lo: LiveOrder) -> bool:
        if lo.inst is None or not self.worker.tradable(lo, self.now()):
            return False
        book = self.worker.book(lo.inst)
        limit = lo.order.lmtPrice if lo.kind == "LMT" else None
        return book is not None and book.available(lo.buy, venue_maker(lo.inst, lo.order.exchange), limit) \
            >= lo.remaining - 1e-9

    # --- modify -----------------------------------------------------------------------------------
    def _modify(self, session: "Session", lo: LiveOrder, new: SimOrder) -> None:
        old = lo.order
        if lo.done:
            session.error(new.orderId, 104 if lo.status == "Filled" else 103,
                          rules.TEXT_104 if lo.status == "Filled" else rules.TEXT_103)
            return
        changed_contract = (new.conId and new.conId != old.conId and old.secType != "BAG") or \
            (new.secType and new.secType.upper() != old.secType.upper()) or \
            (not new.conId and new.symbol and new.symbol.upper() != old.symbol.upper())
        if new.action != old.action or changed_contract:
            session.error(new.orderId, 105, rules.TEXT_105)
            return
        for name in CONTRACT_FIELDS:
            setattr(new, name, getattr(old, name))
        new.exchange = new.exchange or old.exchange
        new.account = new.account or old.account
        new.permId, new.parentPermId, new.clientId = old.permId, old.parentPermId, old.clientId
        problem = algos.modify_problem(old, new) or rules.validate(new, lo.inst)
        if problem is None and new.algoStrategy:
            problem = algos.validate(new, lo.inst, self.now(), self.clock)
        if problem is None and new.totalQuantity < lo.filled - 1e-9:
            problem = rules.Reject(201, rules.rejected(f"The order size {new.totalQuantity:g} is below the "
                                                       f"{lo.filled:g} already filled."))
        if problem is not None:
            session.error(new.orderId, problem.code, problem.text)
            return
        repriced = (new.lmtPrice, new.auxPrice, new.orderType) != (old.lmtPrice, old.auxPrice, old.orderType)
        if new.trailStopPrice is None:
            new.trailStopPrice = old.trailStopPrice
        lo.order = new
        if repriced or new.totalQuantity > old.totalQuantity:
            lo.seq = self._arrival()               # loses its time priority
            lo.rested = False
            lo.queue_price = None
        self._reprice(lo, old)
        if lo.remaining <= 1e-9:
            lo.status = "Filled"
            self.finish(lo, "Filled")
            notify.both(self.session_of(lo), lo)
            return
        if lo.phase == "held" and new.transmit:
            notify.both(self.session_of(lo), lo)
            self._enter(lo)
            return
        notify.both(self.session_of(lo), lo)
        if lo.phase == "working":
            self._try_now(lo, self.now())

    def _reprice(self, lo: LiveOrder, old: SimOrder) -> None:
        """After a modification: the limit it works at and, for trailing orders, a fresh stop."""
        o, kind = lo.order, lo.kind
        if kind in ("LMT", "LOC") or (lo.triggered and kind in ("STP LMT", "LIT")):
            lo.work_price = o.lmtPrice
        elif kind == "REL":
            lo.work_price = None                     # re-pegged on its next step
        elif not (lo.triggered and kind == "TRAIL LIMIT"):
            lo.work_price = None
        if kind in ("TRAIL", "TRAIL LIMIT") and not lo.triggered and \
                (o.auxPrice, o.trailingPercent, o.lmtPriceOffset) != (old.auxPrice, old.trailingPercent,
                                                                      old.lmtPriceOffset):
            book = self.worker.book(lo.inst)
            if book is not None:
                o.trailStopPrice = None
                start_trail(lo, book.last or book.mid)

    # --- cancels, rejects, expiry -------------------------------------------------------------------
    def cancel_request(self, session: "Session", order_id: int) -> None:
        lo = self.find(session.client_id, order_id)
        if lo is None:
            session.error(order_id, 10147, rules.not_found(order_id))
        elif lo.done:
            session.error(order_id, 10148, rules.cannot_cancel(order_id, lo.status))
        elif (late := precautions.cancel_problem(lo.kind, lo.perm_id, lo.active_at, self.now())) is not None:
            session.error(order_id, late.code, late.text)
        else:
            self.cancel(lo)

    def global_cancel(self) -> None:
        for lo in self.open_orders():
            self.cancel(lo)

    def cancel(self, lo: LiveOrder, reason: str = "", completed: str = "Cancelled by Trader") -> None:
        """orderStatus Cancelled + error 202; an unfilled parent takes its children with it."""
        if lo.done:
            return
        lo.status = "Cancelled"
        self.finish(lo, completed)
        session = self.session_of(lo)
        notify.status(session, lo)
        if session is not None:
            session.error(lo.order.orderId, 202, rules.TEXT_202 + reason)
        for child in self._children(lo):
            self.cancel(child, reason, "Parent cancelled")

    def reject(self, lo: LiveOrder, reason: str) -> None:
        """An accepted order refused downstream (margin, injected fault): error 201 + orderStatus Inactive."""
        lo.status = "Inactive"
        self.finish(lo, f"Rejected: {reason}")
        session = self.session_of(lo)
        if session is not None:
            session.error(lo.order.orderId, 201, rules.rejected(reason))
        notify.status(session, lo)
        for child in self._children(lo):
            self.cancel(child, "", "Parent rejected")

    def abandon(self, lo: LiveOrder, exc: BaseException) -> None:
        """The simulator failed while working the order: error 201 + orderStatus Cancelled, so the client
        knows it is dead, and it never works again (the failure itself is the supervisor's to log)."""
        if lo.done:
            return
        lo.status = "Cancelled"
        self.finish(lo, f"Rejected: simulator failure ({type(exc).__name__})")
        try:
            session = self.session_of(lo)
            if session is not None:
                session.error(lo.order.orderId, 201, rules.rejected(
                    f"The simulator failed while working this order ({type(exc).__name__}: {str(exc)[:120]}); "
                    f"it is cancelled. See the simulator log."))
            notify.status(session, lo)
            for child in self._children(lo):
                self.cancel(child, "", "Parent rejected")
        except Exception as again:
            self.gateway.supervisor.report("rejecting a failed order", again, f"order {lo.order.orderId}")

    def finish(self, lo: LiveOrder, completed: str) -> None:
        lo.phase = "done"
        lo.completed_time = self.now()
        lo.completed_status = completed
        if self.live.pop(lo.perm_id, None) is not None:
            self.completed.append(lo.perm_id)

    # --- fills ------------------------------------------------------------------------------------------
    def fill(self, lo: LiveOrder, found: list[Fill]) -> None:
        fills.execute(self, lo, found)

    def fill_combo(self, lo: LiveOrder, qty: float, net: float, legs: list) -> None:
        fills.execute_combo(self, lo, qty, net, legs)

    def after_fill(self, lo: LiveOrder, qty: float) -> None:
        o = lo.order
        if o.ocaGroup:
            members = [m for m in self.open_orders() if m is not lo and m.order.ocaGroup == o.ocaGroup
                       and m.order.account == o.account]
            kind = o.ocaType or 1
            for m in members:
                if kind == 1:
                    self.cancel(m, "", "OCA group cancelled")
                else:
                    self._reduce(m, qty)
        elif o.parentId:
            parent = self.find(o.clientId, o.parentId)
            for sib in (self._children(parent) if parent is not None else []):
                if sib is lo:
                    continue
                if lo.done:
                    self.cancel(sib, "", "Bracket sibling filled")
                else:
                    self._reduce(sib, qty)
        if lo.status == "Filled":
            self._release_children(lo)

    def _reduce(self, m: LiveOrder, qty: float) -> None:
        """OCA 'reduce' (types 2 and 3) and bracket siblings: take the fill off the other orders."""
        m.order.totalQuantity = max(round(m.order.totalQuantity - qty, 9), m.filled)
        if m.remaining <= 1e-9:
            self.cancel(m, "", "OCA reduced to zero")
        else:
            notify.both(self.session_of(m), m)

    def _release_children(self, parent: LiveOrder) -> None:
        for child in self._children(parent):
            if child.phase == "child":
                self.activate(child)

    # --- the market clock -------------------------------------------------------------------------
    def on_step(self, events) -> None:
        """Called after every market step with {conId: StepEvents}: work every live order once."""
        if not self.live:
            return
        t = self.now()
        self.worker.new_step()
        supervisor = self.gateway.supervisor
        for lo in sorted(self.live.values(), key=priority):
            if not lo.done and lo.phase == "working":
                try:
                    supervisor.check_injected(lo.order.orderRef, lo.order.orderId)
                    self.worker.advance(lo, t, events)
                except Exception as exc:
                    supervisor.report("working an order", exc, f"order {lo.order.orderId} of client {lo.order.clientId}")
                    self.abandon(lo, exc)

    # --- manual (TWS-entered) orders, liquidation ----------------------------------------------------
    def enter_manual(self, account: str, con_id: int, action: str, quantity: float, order_type: str = "LMT",
                     lmt_price: float | None = None, liquidation: bool = False, ref: str = "") -> LiveOrder | None:
        """An order entered 'in TWS' (or by IB itself): orderId 0 until client 0 binds it."""
        inst = self.gateway.universe.get(con_id)
        if inst is None or quantity <= 0:
            return None
        o = SimOrder(orderId=0, clientId=0, action=action, totalQuantity=float(quantity), orderType=order_type,
                     lmtPrice=lmt_price, tif="DAY", account=account or self.default_account(), orderRef=ref,
                     exchange="SMART" if "SMART" in inst.valid_exchanges else inst.exchange,
                     outsideRth=liquidation)
        entry.echo_contract(o, inst)
        lo = LiveOrder(o, inst, perm_id=self._new_perm(), seq=self._arrival(), manual=True,
                       liquidation=liquidation)
        o.permId = lo.perm_id
        self._register(lo)
        binder = queries.auto_bind_session(self)
        if binder is not None:
            queries.bind(self, lo, binder)
        self.activate(lo)
        return lo

    def liquidate(self, account: str, con_id: int, quantity: float, reason: str) -> None:
        """IB closes `quantity` (positive) of a position at market: sells a long, buys back a short."""
        if not quantity:
            return
        held = 0.0
        try:
            pos = self.ledger.account(account).positions.get(con_id)
            held = pos.quantity if pos is not None else 0.0
        except (KeyError, AttributeError):
            pass
        action = "BUY" if held < 0 else "SELL"
        log.warning("liquidating: %s %g of conId %d in %s: %s", action, abs(quantity), con_id, account, reason)
        self.enter_manual(account, con_id, action, abs(quantity), "MKT", liquidation=True, ref="Liquidation")

    def reject_next(self, n: int, reason: str) -> None:
        """Fault injection: the next `n` new orders are rejected (201 + Inactive) with `reason`."""
        self.reject_reasons.extend([reason] * max(int(n), 0))

    def swallow_next(self, n: int) -> None:
        """Fault injection: the next `n` placeOrders are dropped without any answer."""
        self.swallow += max(int(n), 0)

    # --- requests -----------------------------------------------------------------------------------------
    def send_open_orders(self, session: "Session", every_client: bool) -> None:
        queries.send_open_orders(self, session, every_client)

    def set_auto_bind(self, session: "Session", on: bool) -> None:
        queries.set_auto_bind(self, session, on)

    def send_completed(self, session: "Session", api_only: bool) -> None:
        queries.send_completed(self, session, api_only)

    def send_executions(self, session: "Session", req_id: int, f: ExecFilter) -> None:
        queries.send_executions(self, session, req_id, f)

    def send_next_id(self, session: "Session") -> None:
        queries.send_next_id(self, session)

    def on_client_connected(self, session: "Session") -> None:
        """Re-send the open orders of this clientId, as TWS does after a reconnect."""
        queries.resend_open_orders(self, session)

    # --- persistence --------------------------------------------------------------------------------------
    def to_state(self) -> dict:
        return broker_state.dump(self)

    def load_state(self, state: dict) -> None:
        broker_state.load(self, state)
