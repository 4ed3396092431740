"""Order builders: plain order types, brackets, OCA groups and IB's algos.

Owns: building correctly filled `ibapi.order.Order` objects, and refusing (ValueError) what TWS
would refuse for a reason known before sending: a bad side or quantity, bracket prices on the
wrong side of the entry, an algo parameter outside IB's documented values (`algo_params`).
Never sends anything; the order manager assigns ids and places them.
"""
from __future__ import annotations

from ibapi.order import Order

from .algo_params import ADAPTIVE_PRIORITIES, algo_tags, check_order_type  # noqa: F401  (re-exported)


def _order(action: str, quantity: float, order_type: str, tif: str = "DAY", **fields) -> Order:
    action = action.upper()
    if action not in ("BUY", "SELL"):
        raise ValueError(f"order action must be BUY or SELL, got {action!r}")
    if quantity <= 0:
        raise ValueError(f"order quantity must be positive, got {quantity}")
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.tif = action, quantity, order_type, tif
    for key, value in fields.items():
        if not hasattr(o, key):
            raise ValueError(f"ibapi Order has no field {key!r}; check the spelling (e.g. tif, outsideRth, account, "
                             f"orderRef)")
        setattr(o, key, value)
    return o


def market(action: str, quantity: float, **fields) -> Order:
    return _order(action, quantity, "MKT", **fields)


def limit(action: str, quantity: float, price: float, **fields) -> Order:
    return _order(action, quantity, "LMT", lmtPrice=price, **fields)


def stop(action: str, quantity: float, stop_price: float, **fields) -> Order:
    return _order(action, quantity, "STP", auxPrice=stop_price, **fields)


def stop_limit(action: str, quantity: float, stop_price: float, limit_price: float, **fields) -> Order:
    return _order(action, quantity, "STP LMT", auxPrice=stop_price, lmtPrice=limit_price, **fields)


def trailing_stop(action: str, quantity: float, trailing_percent: float | None = None,
                  trailing_amount: float | None = None, **fields) -> Order:
    if (trailing_percent is None) == (trailing_amount is None):
        raise ValueError("give exactly one of trailing_percent or trailing_amount")
    if trailing_percent is not None:
        return _order(action, quantity, "TRAIL", trailingPercent=trailing_percent, **fields)
    return _order(action, quantity, "TRAIL", auxPrice=trailing_amount, **fields)


BRACKET_OWN_FIELDS = ("transmit", "parentId", "orderId", "ocaGroup", "ocaType")


def bracket(action: str, quantity: float, entry_price: float, take_profit: float, stop_loss: float,
            **fields) -> list[Order]:
    """Parent LMT plus take-profit LMT and stop-loss STP children (OCA through the parent).

    Only the last child transmits, so TWS activates nothing until the whole bracket arrived.
    Parent ids are filled in by the order manager when it places the list. `fields` (tif,
    outsideRth, account, …) go on all three orders. The prices must make sense for the side: for a
    BUY, stop_loss < entry_price < take_profit; for a SELL the other way round.
    """
    own = sorted(set(fields) & set(BRACKET_OWN_FIELDS))
    if own:
        raise ValueError(f"bracket sets {', '.join(own)} itself; leave them out")
    action = action.upper()
    low, high = (stop_loss, take_profit) if action == "BUY" else (take_profit, stop_loss)
    if not low < entry_price < high:
        first, second = ("stop_loss", "take_profit") if action == "BUY" else ("take_profit", "stop_loss")
        raise ValueError(f"bracket {action}: need {first} < entry_price < {second}, got entry_price {entry_price}, "
                         f"take_profit {take_profit}, stop_loss {stop_loss}")
    exit_action = "SELL" if action == "BUY" else "BUY"
    parent = limit(action, quantity, entry_price, transmit=False, **fields)
    profit = limit(exit_action, quantity, take_profit, transmit=False, **fields)
    loss = stop(exit_action, quantity, stop_loss, transmit=True, **fields)
    return [parent, profit, loss]


OCA_TYPES = {1: "cancel the others", 2: "reduce the others, with block", 3: "reduce the others, no block"}


def oca(orders: list[Order], group: str, oca_type: int = 1) -> list[Order]:
    """Put orders into one One-Cancels-All group: when one fills, TWS cancels (1) or reduces (2, 3) the others."""
    if not group or not isinstance(group, str):
        raise ValueError(f"an OCA group needs a name, got {group!r}")
    if oca_type not in OCA_TYPES:
        raise ValueError(f"ocaType must be one of {sorted(OCA_TYPES)} "
                         f"({'; '.join(f'{k}: {v}' for k, v in OCA_TYPES.items())}), got {oca_type!r}")
    if len(orders) < 2:
        raise ValueError(f"an OCA group needs at least two orders, got {len(orders)}")
    for o in orders:
        o.ocaGroup, o.ocaType, o.transmit = group, oca_type, True
    return orders


# --- IB algos: parameters are checked against IB's documented values (algo_params) before they are set ---

def _algo(order: Order, name: str, **values) -> Order:
    tags = algo_tags(name, **values)            # raises before the order is touched
    check_order_type(name, order.orderType)
    order.algoStrategy = name
    order.algoParams = tags
    return order


def adaptive(order: Order, priority: str = "Normal") -> Order:
    """IB's Adaptive algo on a MKT or LMT order (SMART-routed): priority Urgent, Normal or Patient."""
    return _algo(order, "Adaptive", priority=priority)


def twap(order: Order, start_time: str = "", end_time: str = "", strategy_type: str = "Marketable",
         allow_past_end_time: bool = False) -> Order:
    """IB's TWAP on a MKT or LMT order: strategy_type Marketable, Matching Midpoint, Matching Same Side or
    Matching Last; times like '09:45:00 US/Eastern' ('' = now .. the close)."""
    return _algo(order, "Twap", strategy_type=strategy_type, start_time=start_time, end_time=end_time,
                 allow_past_end_time=allow_past_end_time)


def vwap(order: Order, max_pct_vol: float = 0.1, start_time: str = "", end_time: str = "",
         allow_past_end_time: bool = False, no_take_liq: bool = False, speed_up: bool | None = None,
         monetary_value: float | None = None) -> Order:
    """IB's best-efforts VWAP on a MKT or LMT order: max_pct_vol 0.01-0.5 of average daily volume."""
    return _algo(order, "Vwap", max_pct_vol=max_pct_vol, start_time=start_time, end_time=end_time,
                 allow_past_end_time=allow_past_end_time, no_take_liq=no_take_liq, speed_up=speed_up,
                 monetary_value=monetary_value)


def arrival_price(action: str, quantity: float, limit: float | None = None, max_pct_vol: float = 0.1,
                  risk_aversion: str = "Neutral", start_time: str = "", end_time: str = "",
                  allow_past_end_time: bool = False, force_completion: bool = False, **fields) -> Order:
    """IB's Arrival Price algo (ArrivalPx): a MKT order, or LMT at `limit`, worked towards the arrival mid.

    max_pct_vol 0.01-0.5 of average daily volume; risk_aversion Get Done, Aggressive, Neutral or
    Passive (how front-loaded); force_completion tries to finish by the end of the day.
    """
    tags = algo_tags("ArrivalPx", max_pct_vol=max_pct_vol, risk_aversion=risk_aversion, start_time=start_time,
                     end_time=end_time, allow_past_end_time=allow_past_end_time,
                     force_completion=force_completion)
    order = market(action, quantity, **fields) if limit is None else _limit(action, quantity, limit, **fields)
    order.algoStrategy, order.algoParams = "ArrivalPx", tags
    return order


_limit = limit          # arrival_price's `limit` argument shadows the builder
