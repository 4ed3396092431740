"""What an IB error code means for ibframe: a table kept as data, and the error value strategies see.

Owns: classifying TWS/ibapi error codes into connection / request / order / informational,
the `IBError` value that carries code, text, the request or order it names and what to do, and
what an order error does to the order it names (`order_outcome`: ended as Inactive / Cancelled,
a refused modification, or a failed cancel). Must never hold state or talk to TWS.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorClass(str, Enum):
    CONNECTION = "connection"        # the link to TWS or IB is affected
    REQUEST = "request"              # one request failed; it is over
    ORDER = "order"                  # an order was rejected or cancelled
    INFO = "info"                    # a notice or warning; nothing failed


# code -> (class, advice). Codes not listed: 2100-2199 info, 10000+ request, else request.
ERROR_TABLE: dict[int, tuple[ErrorClass, str]] = {
    100: (ErrorClass.REQUEST, "too many messages per second; ibframe's paced writer keeps under connection.max_messages_per_second: was it set above your account's limit?"),
    101: (ErrorClass.REQUEST, "market data line limit reached: cancel a subscription or buy booster packs"),
    102: (ErrorClass.REQUEST, "duplicate ticker id"),
    103: (ErrorClass.ORDER, "duplicate order id: the id was used before on this account"),
    104: (ErrorClass.ORDER, "a filled order cannot be modified"),
    105: (ErrorClass.ORDER, "a modification cannot change the contract or the side: cancel and place a new order"),
    106: (ErrorClass.ORDER, "TWS cannot transmit the order (e.g. its parent is no longer active)"),
    107: (ErrorClass.ORDER, "the order is incomplete: set the limit price / trigger price its type needs"),
    109: (ErrorClass.ORDER, "price too far from the market for TWS's percentage precaution: check the price"),
    110: (ErrorClass.ORDER, "price does not match the contract's tick size: round to the minimum tick"),
    111: (ErrorClass.ORDER, "this time in force cannot be used with this order type"),
    113: (ErrorClass.ORDER, "MOC and LOC orders must be DAY orders"),
    135: (ErrorClass.ORDER, "TWS cannot find the order this one refers to (parent or order being modified)"),
    161: (ErrorClass.ORDER, "the order cannot be cancelled in its current state; it keeps working"),
    162: (ErrorClass.REQUEST, "historical data request failed (pacing, no data or permissions)"),
    165: (ErrorClass.INFO, "historical data service notice"),
    200: (ErrorClass.REQUEST, "no such contract, or it is ambiguous: add exchange/currency/expiry or a conId"),
    201: (ErrorClass.ORDER, "order rejected: read the reason"),
    202: (ErrorClass.ORDER, "order cancelled"),
    203: (ErrorClass.ORDER, "the security is not allowed for this account"),
    300: (ErrorClass.INFO, "cancel of an id TWS does not know"),
    309: (ErrorClass.REQUEST, "market depth subscription limit reached"),
    310: (ErrorClass.INFO, "cancel of unknown market depth"),
    316: (ErrorClass.REQUEST, "market depth halted: resubscribe"),
    317: (ErrorClass.REQUEST, "market depth reset: clear the book and resubscribe"),
    320: (ErrorClass.REQUEST, "TWS could not read the request"),
    321: (ErrorClass.REQUEST, "TWS rejected the request's parameters"),
    322: (ErrorClass.REQUEST, "TWS failed to process the request"),
    326: (ErrorClass.CONNECTION, "client id already in use: choose another clientId"),
    354: (ErrorClass.REQUEST, "no market data subscription for this instrument"),
    366: (ErrorClass.INFO, "no historical query with that id (already finished)"),
    382: (ErrorClass.ORDER, "price violates TWS's number-of-ticks precaution: check the price"),
    383: (ErrorClass.ORDER, "size violates TWS's order-size precaution: split the order or raise the limit"),
    387: (ErrorClass.ORDER, "this order type is not supported for the contract on this exchange"),
    399: (ErrorClass.INFO, "order warning; the order stays live"),
    404: (ErrorClass.INFO, "shares not available for short sale yet; the order is held"),
    434: (ErrorClass.ORDER, "order size cannot be zero"),
    439: (ErrorClass.ORDER, "unknown algo strategy name"),
    440: (ErrorClass.ORDER, "an algo order's algorithm cannot be modified: cancel and place a new order"),
    441: (ErrorClass.ORDER, "bad algo parameters: read the text for the parameter at fault"),
    442: (ErrorClass.ORDER, "this algo is not allowed for this contract or order"),
    443: (ErrorClass.ORDER, "unknown algo parameter name"),
    502: (ErrorClass.CONNECTION, "could not connect: is TWS/IB Gateway running with the API enabled?"),
    504: (ErrorClass.CONNECTION, "not connected"),
    1100: (ErrorClass.CONNECTION, "TWS lost its connection to IB: trading paused until restored"),
    1101: (ErrorClass.CONNECTION, "connectivity restored, data lost: market data must be resubscribed"),
    1102: (ErrorClass.CONNECTION, "connectivity restored, data maintained"),
    1300: (ErrorClass.CONNECTION, "TWS changed its socket port: reconnect on the new port"),
    2103: (ErrorClass.INFO, "market data farm disconnected"),
    2105: (ErrorClass.INFO, "historical data farm disconnected"),
    2110: (ErrorClass.CONNECTION, "TWS to server connectivity broken; it will be restored automatically"),
    2157: (ErrorClass.INFO, "sec-def farm disconnected"),
    10089: (ErrorClass.REQUEST, "market data needs an additional API subscription"),
    10090: (ErrorClass.INFO, "part of the requested market data is not subscribed"),
    10147: (ErrorClass.ORDER, "order to cancel not found (already done?)"),
    10148: (ErrorClass.ORDER, "order cannot be cancelled in its state"),
    10167: (ErrorClass.INFO, "no live subscription: delayed market data is shown"),
    10168: (ErrorClass.REQUEST, "no market data subscription and delayed data not enabled"),
    10189: (ErrorClass.REQUEST, "tick-by-tick request failed"),
    10190: (ErrorClass.REQUEST, "tick-by-tick subscription limit reached"),
    10197: (ErrorClass.REQUEST, "no market data during a competing live session"),
    # ibframe's own events (negative codes; -2 garbled frame, -3 a strategy raised, -4 a risk refusal)
    -5: (ErrorClass.CONNECTION, "orders are refused until the link is back; the supervisor reconnects "
                                "(connection: in the YAML)"),
    -6: (ErrorClass.CONNECTION, "the same Quote/Bars/book objects were resubscribed; fills that happened "
                                "meanwhile reach on_fill once"),
}


# --- what an order error does to the order it names -------------------------------------------------
# code -> the status an order TWS never accepted ends in after this error ("Inactive": refused,
# "Cancelled": TWS cancelled it). 200 and 321 count only when they name an order id.
ORDER_END_STATUS: dict[int, str] = {
    **dict.fromkeys((103, 104, 105, 106, 107, 109, 110, 111, 113, 135, 200, 201, 203, 321, 382, 383, 387,
                     434, 439, 440, 441, 442, 443), "Inactive"),
    202: "Cancelled",
}
# Codes that end an order TWS had already accepted (it was working). Every other code above then
# only refuses a *modification*: the order keeps working as it was.
ENDS_WORKING_ORDER = frozenset({201, 202})
# A cancel that failed: the order keeps its true state (which may be unknown: ask TWS).
CANCEL_FAILED = frozenset({161, 10147, 10148})


def order_outcome(code: int, accepted: bool, modifying: bool = False) -> str | None:
    """The final status an order takes after error `code`, or None when the order stays as it was.

    `accepted`: TWS had acknowledged the order (openOrder / orderStatus seen). `modifying`: a
    modification of it was in flight. Warnings (399, 404, 2109, ...) and failed cancels never end one.
    """
    status = ORDER_END_STATUS.get(code)
    if status is None or not accepted:
        return status
    if code == 202 or (code in ENDS_WORKING_ORDER and not modifying):
        return status
    return None


def classify(code: int) -> ErrorClass:
    if code in ERROR_TABLE:
        return ERROR_TABLE[code][0]
    if 2100 <= code <= 2199:
        return ErrorClass.INFO
    return ErrorClass.REQUEST


def advice(code: int) -> str:
    entry = ERROR_TABLE.get(code)
    return entry[1] if entry else ""


@dataclass(slots=True, frozen=True)
class IBError:
    """One error from TWS or ibapi, with what it applies to."""
    code: int
    text: str
    req_id: int                    # -1 when it names nothing
    kind: ErrorClass
    time: float
    subject: str = ""              # e.g. "market data AAPL", "order 17"
    advanced: str = ""

    @property
    def advice(self) -> str:
        return advice(self.code)

    def __str__(self) -> str:
        where = f" ({self.subject})" if self.subject else ""
        hint = f" — {self.advice}" if self.advice else ""
        kind = "notice" if self.kind is ErrorClass.INFO else "error"
        return f"IB {kind} {self.code}{where}: {self.text}{hint}"
