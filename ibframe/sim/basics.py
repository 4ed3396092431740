"""Connection-level requests: ids, clock, accounts, market data type, and the startup end markers.

Owns the answers a client needs right after connecting. Account, position and order
streams answer with their end markers only, until the paper broker (part 2) fills them.
"""
from __future__ import annotations

from ibapi.message import IN, OUT

from .handlers import handles
from .session import Session
from .wire import FieldReader

MARKET_DATA_TYPE_NAMES = {1: "live", 2: "frozen", 3: "delayed", 4: "delayed-frozen"}


@handles(OUT.REQ_IDS)
def req_ids(session: Session, r: FieldReader) -> None:
    r.int("version")
    r.int("numIds")
    session.send(IN.NEXT_VALID_ID, 1, session.gateway.next_order_id)


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


# --- startup end markers: empty streams until the paper broker owns orders and accounts -------------

@handles(OUT.REQ_POSITIONS)
def req_positions(session: Session, r: FieldReader) -> None:
    session.send(IN.POSITION_END, 1)


@handles(OUT.CANCEL_POSITIONS)
def cancel_positions(session: Session, r: FieldReader) -> None:
    pass


@handles(OUT.REQ_OPEN_ORDERS)
def req_open_orders(session: Session, r: FieldReader) -> None:
    session.send(IN.OPEN_ORDER_END, 1)


@handles(OUT.REQ_ALL_OPEN_ORDERS)
def req_all_open_orders(session: Session, r: FieldReader) -> None:
    session.send(IN.OPEN_ORDER_END, 1)


@handles(OUT.REQ_AUTO_OPEN_ORDERS)
def req_auto_open_orders(session: Session, r: FieldReader) -> None:
    r.int("version")
    r.bool("autoBind")


@handles(OUT.REQ_COMPLETED_ORDERS)
def req_completed_orders(session: Session, r: FieldReader) -> None:
    session.send(IN.COMPLETED_ORDERS_END)


@handles(OUT.REQ_ACCT_DATA)
def req_account_updates(session: Session, r: FieldReader) -> None:
    r.int("version")
    subscribe = r.bool("subscribe")
    account = r.str("acctCode") or session.gateway.accounts[0]
    if subscribe:
        session.send(IN.ACCT_DOWNLOAD_END, 1, account)


@handles(OUT.REQ_ACCOUNT_UPDATES_MULTI)
def req_account_updates_multi(session: Session, r: FieldReader) -> None:
    r.int("version")
    req_id = r.int("reqId")
    session.send(IN.ACCOUNT_UPDATE_MULTI_END, 1, req_id)


@handles(OUT.CANCEL_ACCOUNT_UPDATES_MULTI)
def cancel_account_updates_multi(session: Session, r: FieldReader) -> None:
    pass


@handles(OUT.REQ_EXECUTIONS)
def req_executions(session: Session, r: FieldReader) -> None:
    r.int("version")
    req_id = r.int("reqId")
    session.send(IN.EXECUTION_DATA_END, 1, req_id)


@handles(OUT.REQ_ACCOUNT_SUMMARY)
def req_account_summary(session: Session, r: FieldReader) -> None:
    r.int("version")
    req_id = r.int("reqId")
    session.send(IN.ACCOUNT_SUMMARY_END, 1, req_id)


@handles(OUT.CANCEL_ACCOUNT_SUMMARY)
def cancel_account_summary(session: Session, r: FieldReader) -> None:
    pass
