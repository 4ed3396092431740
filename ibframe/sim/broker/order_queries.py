"""What clients can ask the paper broker about orders: open orders, completed orders, executions, ids.

Owns: reqOpenOrders (the client's own orders; client 0 also binds the manual orders, orderBound with
negative ids), reqAllOpenOrders (every client's and the unbound manual ones, orderId 0),
reqAutoOpenOrders (client 0 only: bind future manual orders as they appear), reqCompletedOrders
(apiOnly leaves manual and liquidation orders out), reqExecutions with its ExecutionFilter
(executions of every client of the account, of the current New York day unless lastNDays /
specificDates ask for more; each with its commission report), the re-send of a client's open
orders when it reconnects, and reqIds.

Must never: change an order's state (binding only gives a manual order its API id).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ibapi.message import IN

from ..market.ordertime import eastern_date, eastern_midnight, parse_tws_time
from . import notify
from .live import ExecRecord, LiveOrder
from .order_answers_wire import (
    encode_commission_report, encode_completed_orders_end, encode_execution, encode_execution_end,
    encode_open_order_end, encode_order_bound,
)
from .order_records import ExecFilter

if TYPE_CHECKING:
    from .broker import Broker
    from ..protocol.session import Session

SIDES = {"BUY": "BOT", "BOT": "BOT", "SELL": "SLD", "SLD": "SLD", "SSHORT": "SLD"}


def unbound(lo: LiveOrder) -> bool:
    return lo.manual and lo.order.orderId == 0


def bind(broker: "Broker", lo: LiveOrder, session: "Session") -> None:
    """Give a manual order a (negative) API id for client 0 and say so (orderBound)."""
    broker.bind_seq += 1
    lo.order.orderId = -broker.bind_seq
    lo.order.clientId = 0
    broker.by_key[lo.key] = lo.perm_id
    session.send(*encode_order_bound(lo.perm_id, 0, lo.order.orderId))


def send_open_orders(broker: "Broker", session: "Session", every_client: bool) -> None:
    cid = session.client_id
    if not every_client and cid == 0:
        for lo in broker.open_orders():
            if unbound(lo):
                bind(broker, lo, session)
    for lo in broker.open_orders():
        if every_client or (lo.order.clientId == cid and not unbound(lo)):
            notify.both(session, lo)
    session.send(*encode_open_order_end())


def set_auto_bind(broker: "Broker", session: "Session", on: bool) -> None:
    if session.client_id != 0:
        session.error(-1, 321, "Error validating request.-'bq' : cause - reqAutoOpenOrders can only be "
                               "used by client id 0.")
        return
    broker.auto_bind = session if on else None


def auto_bind_session(broker: "Broker") -> "Session | None":
    """Client 0's session while it wants new manual orders bound."""
    s = broker.auto_bind
    if s is not None and (s.closed or broker.gateway.sessions.get(0) is not s):
        broker.auto_bind = s = None
    return s


def send_completed(broker: "Broker", session: "Session", api_only: bool) -> None:
    for perm in broker.completed:
        lo = broker.orders[perm]
        if not (api_only and lo.manual):
            notify.completed(session, lo)
    session.send(*encode_completed_orders_end())


def send_executions(broker: "Broker", session: "Session", req_id: int, f: ExecFilter) -> None:
    now = broker.now()
    since = None
    if f.time:
        try:
            since = parse_tws_time(f.time, now)
        except ValueError:
            since = None
    for rec in broker.executions:
        if matches(rec, f, since, now):
            session.send(*encode_execution(req_id, rec.order, rec.execution, session.version))
            session.send(*encode_commission_report(rec.execution.execId, rec.commission, rec.currency, rec.realized,
                                                   None, None, session.version))
    session.send(*encode_execution_end(req_id))


def matches(rec: ExecRecord, f: ExecFilter, since: float | None, now: float) -> bool:
    """ExecutionFilter semantics: empty / 0 criteria match everything."""
    e, o = rec.execution, rec.order
    if f.clientId and e.clientId != f.clientId:
        return False
    if f.acctCode and e.acctNumber != f.acctCode:
        return False
    if f.symbol and o.symbol.upper() != f.symbol.upper():
        return False
    if f.secType and o.secType.upper() != f.secType.upper():
        return False
    if f.exchange and f.exchange.upper() not in (e.exchange.upper(), o.exchange.upper()):
        return False
    side = SIDES.get(f.side.upper()) if f.side else None
    if side and e.side != side:
        return False
    if since is not None and rec.time < since:
        return False
    if f.specificDates:
        return eastern_date(rec.time) in f.specificDates
    days = f.lastNDays if f.lastNDays and f.lastNDays > 0 else 1
    return rec.time >= eastern_midnight(now) - (days - 1) * 86400.0


def resend_open_orders(broker: "Broker", session: "Session") -> None:
    """TWS re-sends openOrder + orderStatus of a client's open orders when it (re)connects."""
    auto_bind_session(broker)
    for lo in broker.open_orders():
        if lo.order.clientId == session.client_id and not unbound(lo):
            notify.both(session, lo)


def send_next_id(broker: "Broker", session: "Session") -> None:
    session.send(IN.NEXT_VALID_ID, 1, broker.gateway.next_order_id)
