"""Request dispatch table of the simulated gateway and the helpers every request handler shares.

Owns: the msg-id → handler registry (`@handles`), reading the contract block the way
``ibapi.client`` writes it, and resolving a requested contract to one instrument (error 200
otherwise). Request families live in their own modules and register here on import.
"""
from __future__ import annotations

from typing import Callable

from .session import Session
from .universe import ContractQuery, Instrument
from .validation import contract_problem
from .wire import FieldReader

Handler = Callable[[Session, FieldReader], None]
HANDLERS: dict[int, Handler] = {}

NO_SECURITY_DEFINITION = "No security definition has been found for the request"


def handles(msg_id: int) -> Callable[[Handler], Handler]:
    """Register the function as the handler for one client→server message id."""
    def register(fn: Handler) -> Handler:
        if msg_id in HANDLERS:
            raise RuntimeError(f"two handlers for message id {msg_id}: {HANDLERS[msg_id].__name__}, {fn.__name__}")
        HANDLERS[msg_id] = fn
        return fn
    return register


def read_contract(r: FieldReader, *, con_id: bool = True, primary: bool = True,
                  trading_class: bool = True, multiplier: bool = True) -> ContractQuery:
    """The contract block: conId symbol secType lastTradeDateOrContractMonth strike right multiplier
    exchange [primaryExchange] currency localSymbol [tradingClass]."""
    q = ContractQuery()
    if con_id:
        q.con_id = r.int("conId")
    q.symbol = r.str("symbol")
    q.sec_type = r.str("secType")
    q.expiry = r.str("lastTradeDateOrContractMonth")
    q.strike = r.float("strike")
    q.right = r.str("right")
    if multiplier:
        q.multiplier = r.str("multiplier")
    q.exchange = r.str("exchange")
    if primary:
        q.primary_exchange = r.str("primaryExchange")
    q.currency = r.str("currency")
    q.local_symbol = r.str("localSymbol")
    if trading_class:
        q.trading_class = r.str("tradingClass")
    return q


def describe_query(q: ContractQuery) -> str:
    parts = [q.symbol or q.local_symbol or f"conId {q.con_id}", q.sec_type, q.expiry,
             f"{q.strike:g}" if q.strike and q.strike < 1e300 else "", q.right, q.exchange, q.currency]
    return " ".join(p for p in parts if p)


def resolve(session: Session, req_id: int, q: ContractQuery) -> Instrument | None:
    """The one instrument a request names, or None after telling the client why (321 for an unusable
    field, 200 when nothing or more than one instrument matches)."""
    bad = contract_problem(q)
    if bad is not None:
        session.error(req_id, bad.code, bad.text)
        return None
    found = session.gateway.universe.match(q)
    if len(found) == 1:
        return found[0]
    if not found:
        session.error(req_id, 200, NO_SECURITY_DEFINITION)
    else:
        session.error(req_id, 200, f"The contract description specified for {q.symbol or q.local_symbol} "
                                   f"is ambiguous.")
    return None
