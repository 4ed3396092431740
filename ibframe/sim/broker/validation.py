"""Order input checks the paper broker runs before an order touches any state, as TWS does.

Owns: the refusals for values no real client should send but a broken or hostile one can:
non-finite (NaN, infinity) quantities and prices, negative prices and trailing amounts where the
order type uses them, impossible field combinations (a minimum quantity above the order size, an
order that is its own parent, an unknown OCA type). Each refusal is a `Reject(code, text)` in
TWS's words; the caller sends it with the order id. Contract fields a sec-def lookup cannot use
and bad option-calculation inputs are refused by the market's `lookup.py` (321), as are contracts
without conId that lack a valid secType, a currency or a derivative's expiry; a STP without its
stop price is `order_rules` (321 "Please enter a stop price").

Codes: 201 "Order rejected - reason:..." for a bad order field (TWS's generic order reject). Zero
sizes stay 434 and the price-grid / precaution checks stay in
`order_rules` / `order_precautions`: this module only keeps garbage out of them.

Must never: send messages, change an order or the market, or look at accounts.
"""
from __future__ import annotations

import math

from ..protocol.handlers import Reject
from .order_records import SimOrder
from .order_rules import NEEDS_AUX, NEEDS_LIMIT, rejected

# Order fields that must be finite numbers when present (None means "not set").
FINITE_ORDER_FIELDS = ("totalQuantity", "lmtPrice", "auxPrice", "trailStopPrice", "trailingPercent",
                       "lmtPriceOffset", "cashQty", "discretionaryAmt", "percentOffset", "startingPrice",
                       "stockRefPrice", "delta", "stockRangeLower", "stockRangeUpper", "volatility",
                       "triggerPrice", "adjustedStopPrice", "adjustedStopLimitPrice", "adjustedTrailingAmount",
                       "strike")
# Order fields that may not be negative when set (prices of a non-combo order are checked by type below).
NON_NEGATIVE_ORDER_FIELDS = ("cashQty", "trailingPercent", "discretionaryAmt", "minQty", "displaySize")
OCA_TYPES = (0, 1, 2, 3)


def is_number(value) -> bool:
    """True for a finite int or float (bools excluded)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def order_problem(o: SimOrder) -> Reject | None:
    """The first field of a placeOrder (new or modify) TWS would refuse outright; None when none is garbage."""
    for name in FINITE_ORDER_FIELDS:
        value = getattr(o, name, None)
        if value is not None and isinstance(value, float) and not math.isfinite(value):
            return Reject(201, rejected(f"The {name} {_shown(value)} is not a valid number."))
    for name in NON_NEGATIVE_ORDER_FIELDS:
        value = getattr(o, name, None)
        if is_number(value) and value < 0:
            return Reject(201, rejected(f"The {name} {_shown(value)} is negative."))
    if is_number(o.trailingPercent) and o.trailingPercent > 100:
        return Reject(201, rejected(f"The trailingPercent {o.trailingPercent:g} is above 100."))
    bad = _price_sign_problem(o)
    if bad is not None:
        return bad
    if is_number(o.minQty) and o.minQty > 0 and o.totalQuantity > 0 and o.minQty > o.totalQuantity:
        return Reject(201, rejected(f"The minQty {o.minQty:g} is above the order size {o.totalQuantity:g}."))
    if o.parentId and o.parentId == o.orderId:
        return Reject(201, rejected(f"Order {o.orderId} names itself as its parent."))
    if o.ocaType not in OCA_TYPES and o.ocaType is not None:
        return Reject(201, rejected(f"Invalid ocaType {o.ocaType}; use 1, 2 or 3."))
    return None


def _price_sign_problem(o: SimOrder) -> Reject | None:
    """Negative prices where the order type uses them (a combo's net limit may be negative: a credit)."""
    if o.secType.upper() == "BAG":
        return None
    kind = " ".join(o.orderType.upper().split())
    checks = []
    if kind in NEEDS_LIMIT or kind in ("REL", "TRAIL LIMIT"):
        checks.append(("limit price", o.lmtPrice))
    if kind in NEEDS_AUX or kind in ("TRAIL", "TRAIL LIMIT"):
        checks.append(("aux price" if kind not in ("TRAIL", "TRAIL LIMIT") else "trailing amount", o.auxPrice))
    if kind in ("TRAIL", "TRAIL LIMIT"):
        checks.append(("trail stop price", o.trailStopPrice))
    for what, value in checks:
        if is_number(value) and value < 0:
            return Reject(201, rejected(f"The {what} {value:g} is negative."))
    return None
