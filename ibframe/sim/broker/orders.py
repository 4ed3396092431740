"""Order requests of the simulated gateway: placeOrder, cancelOrder, reqGlobalCancel, open / completed
orders, executions and order ids.

Owns: reading each request at the session's negotiated version (through `order_requests_wire`'s parsers
and the simple version-prefixed layouts) and handing it to the paper broker (`gateway.broker`).
Must never: decide anything about orders itself.
"""
from __future__ import annotations

from ibapi.message import OUT

from ..protocol.handlers import handles
from ..protocol.session import Session
from ..protocol.wire import FieldReader
from .order_requests_wire import parse_cancel_order, parse_global_cancel, parse_place_order, parse_req_executions


@handles(OUT.PLACE_ORDER)
def place_order(session: Session, r: FieldReader) -> None:
    order = parse_place_order(r, session.version)
    session.gateway.broker.place(session, order)


@handles(OUT.CANCEL_ORDER)
def cancel_order(session: Session, r: FieldReader) -> None:
    order_id, _manual_time = parse_cancel_order(r, session.version)
    session.gateway.broker.cancel_request(session, order_id)


@handles(OUT.REQ_GLOBAL_CANCEL)
def req_global_cancel(session: Session, r: FieldReader) -> None:
    parse_global_cancel(r, session.version)
    session.gateway.broker.global_cancel()


@handles(OUT.REQ_OPEN_ORDERS)
def req_open_orders(session: Session, r: FieldReader) -> None:
    r.int("version")
    session.gateway.broker.send_open_orders(session, every_client=False)


@handles(OUT.REQ_ALL_OPEN_ORDERS)
def req_all_open_orders(session: Session, r: FieldReader) -> None:
    r.int("version")
    session.gateway.broker.send_open_orders(session, every_client=True)


@handles(OUT.REQ_AUTO_OPEN_ORDERS)
def req_auto_open_orders(session: Session, r: FieldReader) -> None:
    r.int("version")
    session.gateway.broker.set_auto_bind(session, r.bool("autoBind"))


@handles(OUT.REQ_COMPLETED_ORDERS)
def req_completed_orders(session: Session, r: FieldReader) -> None:
    session.gateway.broker.send_completed(session, api_only=r.bool("apiOnly"))


@handles(OUT.REQ_EXECUTIONS)
def req_executions(session: Session, r: FieldReader) -> None:
    req_id, exec_filter = parse_req_executions(r, session.version)
    session.gateway.broker.send_executions(session, req_id, exec_filter)


@handles(OUT.REQ_IDS)
def req_ids(session: Session, r: FieldReader) -> None:
    r.int("version")
    r.int("numIds")
    session.gateway.broker.send_next_id(session)
