"""Finding the instrument a request names: the contract block, its checks, and the one match.

Owns: reading the contract block the way ``ibapi.client`` writes it (`read_contract`), refusing
contract fields no sec-def lookup can use (a non-numeric multiplier, a strike that is not a finite
non-negative number) and bad option-calculation inputs with 321 "Error validating request.-'bC' :
cause - ..." (`contract_problem`, `calc_problem`), and resolving a requested contract to one
instrument of the universe (`resolve`: error 200 when nothing or more than one matches).

Must never: change the market or subscriptions, or send anything but the error of the request.
"""
from __future__ import annotations

import math

from ..protocol.handlers import Reject
from ..protocol.session import Session
from ..protocol.wire import FieldReader
from .universe import ContractQuery, Instrument

NO_SECURITY_DEFINITION = "No security definition has been found for the request"


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


def contract_problem(q: ContractQuery) -> Reject | None:
    """A contract field no sec-def lookup can use: 321 with the cause; None when the query is usable."""
    if q.multiplier:
        try:
            mult = float(q.multiplier)
        except ValueError:
            return _invalid(f"Invalid multiplier '{q.multiplier[:30]}': it must be a number")
        if not math.isfinite(mult) or mult <= 0:
            return _invalid(f"Invalid multiplier '{q.multiplier[:30]}': it must be a positive number")
    strike = q.strike
    if isinstance(strike, float) and (math.isnan(strike) or strike < 0):         # +inf is ibapi's "unset"
        return _invalid(f"Invalid strike {strike:g}")
    return None


def calc_problem(value_name: str, value: float, under_price: float) -> Reject | None:
    """An option calculation's inputs: the option price (>= 0) or volatility (> 0), and the underlying
    price (>= 0; 0 means "use the market's"), all finite; 321 otherwise."""
    low_ok = value > 0 if value_name == "volatility" else value >= 0
    if not (math.isfinite(value) and low_ok):
        return _invalid(f"Invalid {value_name} {value:g}")
    if not (math.isfinite(under_price) and under_price >= 0):
        return _invalid(f"Invalid underPrice {under_price:g}")
    return None


def _invalid(cause: str) -> Reject:
    return Reject(321, f"Error validating request.-'bC' : cause - {cause}")
