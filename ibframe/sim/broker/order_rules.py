"""What the paper broker accepts: order-type names, TIF rules and the checks TWS runs before an order works.

Owns: the canonical order-type names the broker implements and the codes in a contract's
`orderTypes` they need, which types may work outside regular trading hours, and `validate`,
which turns a bad order into the error TWS sends for it (434 zero size, 110 price increment,
387 unsupported type, 111 / 113 TIF conflicts, 321 "Please enter a stop price" for a STP / STP LMT
without auxPrice (TWS's text; its letters vary, 'bG' / 'bH' seen, the simulator uses the order
family's 'bN'), 107 another price its type needs is missing (a LMT's limit, a MIT / LIT trigger),
201 with a reason for the rest; algo errors come from `algos.validate`, the order-defaults precautions
and the refusals naming another order from `order_precautions`). The error texts are TWS's.

Must never: change an order, send messages or look at accounts (margin checks are the ledger's).
"""
from __future__ import annotations


from ..market.universe import Instrument, price_increment
from ..protocol.handlers import Reject
from .order_records import SimOrder

# Order types the broker implements -> the orderTypes code a contract must list for them.
ORDER_TYPES = {"MKT": "MKT", "LMT": "LMT", "STP": "STP", "STP LMT": "STPLMT", "TRAIL": "TRAIL",
               "TRAIL LIMIT": "TRAILLMT", "MOC": "MOC", "LOC": "LOC", "MIT": "MIT", "LIT": "LIT", "REL": "REL"}
ALIASES = {"STPLMT": "STP LMT", "STOP": "STP", "STOP LIMIT": "STP LMT", "TRAILLMT": "TRAIL LIMIT",
           "TRAIL LMT": "TRAIL LIMIT", "MARKET": "MKT", "LIMIT": "LMT"}
TIFS = ("DAY", "GTC", "IOC", "FOK", "GTD", "OPG")
NEEDS_LIMIT = {"LMT", "STP LMT", "LOC", "LIT"}
NEEDS_AUX = {"STP", "STP LMT", "MIT", "LIT"}
TRIGGERED = {"STP", "STP LMT", "TRAIL", "TRAIL LIMIT", "MIT", "LIT"}
STOP_TYPES = {"STP", "STP LMT"}                 # no auxPrice: 321 "Please enter a stop price"
OUTSIDE_RTH_TYPES = {"LMT", "STP LMT", "LIT", "TRAIL LIMIT"}    # the rest wait for RTH (warning 2109)
COMBO_TYPES = {"MKT", "LMT", "REL"}

TEXT_103 = "Duplicate order id"
TEXT_104 = "Can't modify a filled order."
TEXT_105 = "Order being modified does not match original order."
TEXT_107 = "Cannot transmit incomplete order."
TEXT_110 = "The price does not conform to the minimum price variation for this contract."
TEXT_111 = "The TIF (Tif type) and the order type are incompatible."
TEXT_113 = "The Tif option should be set to DAY for MOC and LOC orders."
TEXT_202 = "Order Canceled - reason:"
TEXT_321_STOP = "Error validating request.-'bN' : cause - Please enter a stop price"
TEXT_387 = "Unsupported order type for this exchange and security type."
TEXT_434 = "The order size cannot be zero."
TEXT_2109 = ("Order Event Warning: Attribute \"Outside Regular Trading Hours\" is ignored based on the order "
             "type and destination. PlaceOrder is now processed.")


def rejected(reason: str) -> str:
    """Error 201's text as TWS writes it."""
    return f"Order rejected - reason:{reason}"


def not_found(order_id: int) -> str:
    return f"OrderId {order_id} that needs to be cancelled is not found."


def cannot_cancel(order_id: int, state: str) -> str:
    return f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {state}."


def canonical_type(order_type: str) -> str:
    t = " ".join(order_type.upper().split())
    return ALIASES.get(t, t)


def off_grid(inst: Instrument, price: float) -> bool:
    """True when `price` is not a multiple of the contract's increment at that price."""
    try:
        inc = price_increment(inst.market_rule_id, price)
    except KeyError:
        inc = inst.min_tick or 0.01
    steps = price / inc
    return abs(steps - round(steps)) > 1e-6


def validate(o: SimOrder, inst: Instrument | None) -> Reject | None:
    """The first reason TWS would refuse this order before it works; None when it is acceptable.

    `inst` is None for a BAG (its legs were resolved by the caller).
    """
    kind = o.orderType
    if o.totalQuantity == 0 and not (o.cashQty and o.cashQty > 0):
        return Reject(434, TEXT_434)
    if o.totalQuantity < 0:
        return Reject(201, rejected(f"The order quantity {o.totalQuantity:g} is negative."))
    if o.action not in ("BUY", "SELL", "SSHORT"):
        return Reject(201, rejected(f"Invalid action '{o.action}'; use BUY or SELL."))
    if kind not in ORDER_TYPES or (inst is None and kind not in COMBO_TYPES):
        return Reject(387, TEXT_387)
    if inst is not None and ORDER_TYPES[kind] not in inst.order_types.split(","):
        return Reject(387, TEXT_387)
    tif = o.tif or "DAY"
    if tif not in TIFS:
        return Reject(201, rejected(f"Invalid time in force '{o.tif}'."))
    if kind in ("MOC", "LOC") and tif != "DAY":
        return Reject(113, TEXT_113)
    if tif == "OPG" and kind not in ("MKT", "LMT"):
        return Reject(111, TEXT_111)
    if tif in ("IOC", "FOK") and kind not in ("MKT", "LMT"):
        return Reject(111, TEXT_111)
    if kind in NEEDS_LIMIT and o.lmtPrice is None:
        return Reject(107, TEXT_107)                  # e.g. a LMT order without its limit price
    if kind in STOP_TYPES and o.auxPrice is None:
        return Reject(321, TEXT_321_STOP)             # TWS's own words for a stop without its stop price
    if kind in NEEDS_AUX and o.auxPrice is None:
        return Reject(107, TEXT_107)                  # MIT / LIT without the trigger price
    if kind in ("TRAIL", "TRAIL LIMIT") and o.auxPrice is None and o.trailingPercent is None:
        return Reject(201, rejected("A trailing order needs a trailing amount (auxPrice) or trailingPercent."))
    if kind == "TRAIL LIMIT" and o.lmtPriceOffset is None and o.lmtPrice is None:
        return Reject(201, rejected("A TRAIL LIMIT order needs lmtPriceOffset or a limit price."))
    if inst is not None:
        bad = _price_problem(o, inst, kind)
        if bad is not None:
            return bad
        inc = inst.size_increment or 0
        if inc > 0 and o.totalQuantity > 0 and abs(o.totalQuantity / inc - round(o.totalQuantity / inc)) > 1e-9:
            return Reject(201, rejected(f"The order size {o.totalQuantity:g} is not a multiple of the size "
                                        f"increment {inc:g}."))
    if tif == "GTD" and not o.goodTillDate:
        return Reject(201, rejected("A GTD order needs goodTillDate."))
    return None


def _price_problem(o: SimOrder, inst: Instrument, kind: str) -> Reject | None:
    prices = []
    if kind in NEEDS_LIMIT or (kind in ("REL", "TRAIL LIMIT") and o.lmtPrice):
        prices.append(o.lmtPrice)
    if kind in NEEDS_AUX:
        prices.append(o.auxPrice)
    if kind in ("TRAIL", "TRAIL LIMIT") and o.trailStopPrice is not None:
        prices.append(o.trailStopPrice)
    for p in prices:
        if p is None:
            continue
        if p <= 0:
            return Reject(201, rejected(f"The price {p:g} is not positive."))
        if off_grid(inst, p):
            return Reject(110, TEXT_110)
    return None
