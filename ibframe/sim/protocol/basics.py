"""Connection-level requests: clock, managed accounts, market data type.

Owns the small answers a client needs right after connecting. Order ids and order, execution
and account streams are answered by the paper broker's modules (broker/orders.py, accounts/account_requests.py).
"""
from __future__ import annotations

from ibapi.message import IN, OUT

from .handlers import handles
from .session import Session
from .wire import FieldReader

MARKET_DATA_TYPE_NAMES = {1: "live", 2: "frozen", 3: "delayed", 4: "delayed-frozen"}


@handles(OUT.REQ_CURRENT_TIME)
def req_current_time(session: Session, r: FieldReader) -> None:
    session.send(IN.CURRENT_TIME, 1, int(session.gateway.now()))


@handles(OUT.REQ_MANAGED_ACCTS)
def req_managed_accts(session: Session, r: FieldReader) -> None:
    session.send(IN.MANAGED_ACCTS, 1, ",".join(session.gateway.accounts))


@handles(OUT.REQ_MARKET_DATA_TYPE)
def req_market_data_type(session: Session, r: FieldReader) -> None:
    """Switch live/frozen/delayed/delayed-frozen. TWS confirms with MARKET_DATA_TYPE on each line."""
    r.int("version")
    kind = r.int("marketDataType")
    if kind not in MARKET_DATA_TYPE_NAMES:
        session.error(-1, 321, f"Error validating request.-'bM' : cause - Invalid market data type {kind}; "
                               f"use 1 (live), 2 (frozen), 3 (delayed) or 4 (delayed-frozen)")
        return
    session.market_data_type = kind
    for (family, req_id), sub in list(session.subscriptions.items()):
        if family == "mktdata":
            session.send(IN.MARKET_DATA_TYPE, 1, req_id, kind)
