"""TWS's precautionary settings and the refusals that name another order, as the paper broker applies them.

Owns: the order-defaults precautions a new order must pass before it is transmitted (109 a limit
too far through the market in percent, 382 too many ticks through it, 383 a size above the
per-security-type limit), 203 (a futures order from a cash account), 321 (no order exchange, even
with a conId: "Missing order exchange"; the other contract fields an order without conId needs, a
valid secType, a currency and a derivative's expiry, are `market/lookup.order_contract_problem`),
135 / 106 (a child whose parent TWS cannot find / can no longer transmit to), 161 (a MOC / LOC
cancel inside the exchange's cut-off before the close), and the texts TWS sends for each.

Limits chosen where TWS leaves them to the user's presets (documented here, stable for tests):
a buy limit more than PRICE_PERCENT % above the ask (a sell that far below the bid) is 109;
more than MAX_TICKS ticks through it is 382; passive prices are never refused. Sizes above
MAX_SIZE[secType] are 383. MOC / LOC orders cannot be cancelled in the last
MOC_CANCEL_CUTOFF seconds before the close (NYSE's 15:50 rule).

Must never: change an order, send messages or look at the market itself (the caller passes the
reference prices it needs).
"""
from __future__ import annotations

from ..protocol.handlers import Reject

TEXT_106 = "Can't transmit order ID:"
TEXT_109 = ("Price is out of the range defined by the Percentage setting at order defaults frame. "
            "The order will not be transmitted.")
TEXT_135 = "Can't find order with ID ="
TEXT_161 = "Cancel attempted when order is not in a cancellable state. Order permId ="
TEXT_203 = "The security {} is not available or allowed for this account."
TEXT_321_EXCHANGE = "Error validating request.-'bN' : cause - Missing order exchange"
TEXT_382 = "The price specified violates the number of ticks constraint specified in the default order settings."
TEXT_383 = "The size specified violates the size constraint specified in the default order settings."

PRICE_PERCENT = 50.0
MAX_TICKS = 10_000
MAX_SIZE = {"STK": 5_000_000, "OPT": 50_000, "FUT": 10_000, "FOP": 10_000, "CASH": 500_000_000,
            "BOND": 1_000_000, "BAG": 50_000}
MOC_CANCEL_CUTOFF = 600.0
LIMIT_KINDS = ("LMT", "LOC")             # orders whose limit price is checked against the market


def size_problem(sec_type: str, quantity: float) -> Reject | None:
    limit = MAX_SIZE.get(sec_type.upper())
    if limit is not None and quantity > limit:
        return Reject(383, TEXT_383)
    return None


def price_problem(kind: str, buy: bool, limit: float | None, far: float | None, tick: float) -> Reject | None:
    """109 / 382 for a limit price far through the market's far side (`far`: ask for a buy, bid for a sell)."""
    if kind not in LIMIT_KINDS or not limit or not far or far <= 0:
        return None
    through = (limit - far) if buy else (far - limit)
    if through <= 0:
        return None
    if through / far * 100.0 > PRICE_PERCENT:
        return Reject(109, TEXT_109)
    if tick > 0 and through / tick > MAX_TICKS + 1e-9:
        return Reject(382, TEXT_382)
    return None


def account_problem(sec_type: str, description: str, cash_account: bool) -> Reject | None:
    """203: a cash account has no futures permission."""
    if cash_account and sec_type.upper() in ("FUT", "FOP"):
        return Reject(203, TEXT_203.format(description))
    return None


def exchange_problem(exchange: str, sec_type: str) -> Reject | None:
    if not exchange.strip():
        return Reject(321, TEXT_321_EXCHANGE)
    return None


def parent_problem(parent_id: int, parent_status: str | None, order_id: int) -> Reject | None:
    """135 when TWS cannot find the parent; 106 when the parent ended without filling."""
    if parent_status is None:
        return Reject(135, f"{TEXT_135}{parent_id}")
    if parent_status in ("Cancelled", "ApiCancelled", "Inactive"):
        return Reject(106, f"{TEXT_106} {order_id}")
    return None


def cancel_problem(kind: str, perm_id: int, close_at: float | None, now: float) -> Reject | None:
    """161 for a MOC / LOC order inside the cut-off before the close it waits for."""
    if kind in ("MOC", "LOC") and close_at is not None and 0 <= close_at - now <= MOC_CANCEL_CUTOFF:
        return Reject(161, f"{TEXT_161}{perm_id}")
    return None
