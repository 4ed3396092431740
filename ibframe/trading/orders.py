"""Order builders: plain order types, brackets and IB's algos.

Owns: building correctly filled `ibapi.order.Order` objects. Never sends anything; the order
manager assigns ids and places them.
"""
from __future__ import annotations

from ibapi.order import Order
from ibapi.tag_value import TagValue


def _order(action: str, quantity: float, order_type: str, tif: str = "DAY", **fields) -> Order:
    action = action.upper()
    if action not in ("BUY", "SELL"):
        raise ValueError(f"order action must be BUY or SELL, got {action!r}")
    if quantity <= 0:
        raise ValueError(f"order quantity must be positive, got {quantity}")
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.tif = action, quantity, order_type, tif
    for key, value in fields.items():
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


def bracket(action: str, quantity: float, entry_price: float, take_profit: float, stop_loss: float) -> list[Order]:
    """Parent LMT plus take-profit LMT and stop-loss STP children (OCA through the parent).

    Only the last child transmits, so TWS activates nothing until the whole bracket arrived.
    Parent ids are filled in by the order manager when it places the list.
    """
    exit_action = "SELL" if action.upper() == "BUY" else "BUY"
    parent = limit(action, quantity, entry_price, transmit=False)
    profit = limit(exit_action, quantity, take_profit, transmit=False)
    loss = stop(exit_action, quantity, stop_loss, transmit=True)
    return [parent, profit, loss]


ADAPTIVE_PRIORITIES = ("Urgent", "Normal", "Patient")


def adaptive(order: Order, priority: str = "Normal") -> Order:
    """IB's Adaptive algo on a MKT or LMT order (SMART-routed)."""
    if priority not in ADAPTIVE_PRIORITIES:
        raise ValueError(f"adaptive priority must be one of {ADAPTIVE_PRIORITIES}, got {priority!r}")
    order.algoStrategy = "Adaptive"
    order.algoParams = [TagValue("adaptivePriority", priority)]
    return order


def twap(order: Order, start_time: str = "", end_time: str = "", strategy_type: str = "Marketable",
         allow_past_end_time: bool = False) -> Order:
    order.algoStrategy = "Twap"
    order.algoParams = [TagValue("strategyType", strategy_type), TagValue("startTime", start_time),
                        TagValue("endTime", end_time), TagValue("allowPastEndTime", str(int(allow_past_end_time)))]
    return order


def vwap(order: Order, max_pct_vol: float = 0.1, start_time: str = "", end_time: str = "",
         allow_past_end_time: bool = False, no_take_liq: bool = False) -> Order:
    order.algoStrategy = "Vwap"
    order.algoParams = [TagValue("maxPctVol", str(max_pct_vol)), TagValue("startTime", start_time),
                        TagValue("endTime", end_time), TagValue("allowPastEndTime", str(int(allow_past_end_time))),
                        TagValue("noTakeLiq", str(int(no_take_liq)))]
    return order
