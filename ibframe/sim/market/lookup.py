"""Finding the instrument a request names: the contract block, its checks, and the one match.

Owns: reading the contract block the way ``ibapi.client`` writes it (`read_contract`), refusing
contract fields no sec-def lookup can use (a non-numeric multiplier, a strike that is not a finite
non-negative number) and bad option-calculation inputs with 321 "Error validating request.-'bC' :
cause - ..." (`contract_problem`, `calc_problem`), and resolving a requested contract to one
instrument of the universe (`resolve`: error 200 when nothing or more than one matches).

TWS's checks of a contract named without a conId (`request_problem`, run by `resolve` when the
request handler passes its family's letters, and `order_contract_problem` for placeOrder); each is
321 "Error validating request.-'<letters>' : cause - <cause>" with TWS's cause text:
- no exchange on a market-data / depth / tick-by-tick / historical / head-timestamp / historical-ticks
  / real-time-bars request: "Please enter exchange" (orders: order_precautions' "Missing order exchange");
- no secType, or one TWS does not know (not in SEC_TYPES, case-insensitive): "Please enter a valid
  security type" (reqContractDetails: only an unknown non-empty one; an empty secType there stays a
  search over every type, as in TWS);
- a FUT, FOP or OPT with neither lastTradeDateOrContractMonth nor localSymbol: "Please enter a local
  symbol or an expiry" (not for reqContractDetails, where a future without expiry lists every month);
- orders only: no currency: "Please enter currency". This text is modelled on TWS's other "Please
  enter ..." causes; it is not confirmed from a real TWS log.
A contract with a conId > 0 skips these (TWS takes the rest from the conId); an order still needs its
exchange. The two letters after the dash vary per request kind in TWS (the same cause has been seen
with 'bG'/'bH', 'bJ'/'bL'/'bM'); the simulator keeps one per request family: 'bN' orders, 'bO'
reqMktData, 'bR' reqMktDepth, 'cd' reqTickByTickData, 'bK' reqHistoricalData and reqHeadTimeStamp,
'bX' reqHistoricalTicks, 'bY' reqRealTimeBars, 'bQ' reqContractDetails (the letters of the real
"valid security type" text).

Must never: change the market or subscriptions, or send anything but the error of the request.
"""
from __future__ import annotations

import math

from ..protocol.handlers import Reject
from ..protocol.session import Session
from ..protocol.wire import FieldReader
from .universe import ContractQuery, Instrument

NO_SECURITY_DEFINITION = "No security definition has been found for the request"
# The secTypes ibapi documents (Contract.secType), the continuous-future forms of historical data and the
# rarer ones TWS knows: generous on purpose, a real type must never be refused as unknown.
SEC_TYPES = frozenset({"STK", "OPT", "FUT", "FOP", "CASH", "BOND", "IND", "BAG", "CFD", "WAR", "IOPT", "CMDTY",
                       "FUND", "NEWS", "CRYPTO", "CONTFUT", "FUT+CONTFUT", "EVENT", "BILL", "FIXED", "SLB",
                       "ICU", "ICS", "EFP", "PHYSICAL"})
EXPIRY_SEC_TYPES = ("FUT", "FOP", "OPT")       # named without a conId they need an expiry or a local symbol
ENTER_EXCHANGE = "Please enter exchange"
ENTER_SEC_TYPE = "Please enter a valid security type"
ENTER_EXPIRY = "Please enter a local symbol or an expiry"
ENTER_CURRENCY = "Please enter currency"       # modelled on TWS's other "Please enter ..." causes (unconfirmed)


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


def resolve(session: Session, req_id: int, q: ContractQuery, letters: str = "") -> Instrument | None:
    """The one instrument a request names, or None after telling the client why (321 for an unusable
    field, 200 when nothing or more than one instrument matches). With `letters` (the request family's
    321 letters) a contract without conId must also pass `request_problem` first."""
    bad = (request_problem(q, letters) if letters else None) or contract_problem(q)
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


def validating(letters: str, cause: str) -> Reject:
    """321 in TWS's words: "Error validating request.-'<letters>' : cause - <cause>"."""
    return Reject(321, f"Error validating request.-'{letters}' : cause - {cause}")


def known_sec_type(sec_type: str) -> bool:
    return sec_type.strip().upper() in SEC_TYPES


def needs_expiry(sec_type: str, expiry: str, local_symbol: str) -> bool:
    """A future or option named by symbol alone: TWS wants its expiry or its local symbol."""
    return sec_type.strip().upper() in EXPIRY_SEC_TYPES and not expiry.strip() and not local_symbol.strip()


def request_problem(q: ContractQuery, letters: str) -> Reject | None:
    """A data request's contract without conId: exchange, a valid secType, a derivative's expiry (321)."""
    if q.con_id > 0:
        return None
    if not q.exchange.strip():
        return validating(letters, ENTER_EXCHANGE)
    if not known_sec_type(q.sec_type):
        return validating(letters, ENTER_SEC_TYPE)
    if needs_expiry(q.sec_type, q.expiry, q.local_symbol):
        return validating(letters, ENTER_EXPIRY)
    return None


def details_problem(q: ContractQuery, letters: str = "bQ") -> Reject | None:
    """reqContractDetails: only a non-empty secType TWS does not know (an empty one searches every type)."""
    if q.sec_type.strip() and not known_sec_type(q.sec_type):
        return validating(letters, ENTER_SEC_TYPE)
    return None


def order_contract_problem(con_id: int, sec_type: str, currency: str, expiry: str, local_symbol: str,
                           letters: str = "bN") -> Reject | None:
    """An order's contract without conId: a valid secType, a currency, a derivative's expiry (321).
    The exchange (needed even with a conId) is order_precautions' check."""
    if con_id > 0:
        return None
    if not known_sec_type(sec_type):
        return validating(letters, ENTER_SEC_TYPE)
    if not currency.strip():
        return validating(letters, ENTER_CURRENCY)
    if needs_expiry(sec_type, expiry, local_symbol):
        return validating(letters, ENTER_EXPIRY)
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
