"""The paper broker's messages to clients: openOrder, orderStatus, execDetails, commission reports.

Owns: turning a `LiveOrder` / `ExecRecord` into the wire answers (through `order_answers_wire`'s
encoders) at the receiving session's version, the OrderState an openOrder carries (status,
commission once filled, what-if margins) and the completed-order state.

Must never: decide anything about orders or change them; a None session (the client is away)
means the message is dropped, as TWS drops messages to a disconnected client.
"""
from __future__ import annotations

from ..market.ordertime import exec_time
from .live import ExecRecord, LiveOrder
from .order_answers_wire import (
    encode_commission_report, encode_completed_order, encode_execution, encode_open_order, encode_order_status,
)
from .order_records import OrderStateInfo


def order_state(lo: LiveOrder) -> OrderStateInfo:
    state = OrderStateInfo(status=lo.status)
    if lo.filled > 0 and lo.status == "Filled":
        state.commission = round(lo.commission, 6)
        state.commissionCurrency = lo.order.currency or "USD"
    return state


def open_order(session, lo: LiveOrder) -> None:
    if session is not None:
        session.send(*encode_open_order(lo.order, order_state(lo), session.version))


def status(session, lo: LiveOrder) -> None:
    if session is None:
        return
    o = lo.order
    session.send(*encode_order_status(o.orderId, lo.status, lo.filled, lo.remaining, lo.avg_price, lo.perm_id,
                                      o.parentId, lo.last_fill_price, o.clientId, "", None, session.version))


def both(session, lo: LiveOrder) -> None:
    """openOrder then orderStatus: how TWS announces a new state of an order."""
    open_order(session, lo)
    status(session, lo)


def execution(session, rec: ExecRecord, req_id: int = -1) -> None:
    if session is not None:
        session.send(*encode_execution(req_id, rec.order, rec.execution, session.version))


def commission(session, rec: ExecRecord) -> None:
    if session is not None:
        session.send(*encode_commission_report(rec.execution.execId, rec.commission, rec.currency, rec.realized,
                                               None, None, session.version))


def completed(session, lo: LiveOrder) -> None:
    state = OrderStateInfo(status=lo.status, filledQuantity=lo.filled,
                           completedTime=exec_time(lo.completed_time) if lo.completed_time else "",
                           completedStatus=lo.completed_status)
    session.send(*encode_completed_order(lo.order, state, session.version))
