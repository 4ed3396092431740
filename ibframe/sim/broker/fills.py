"""Executions of the paper broker: booking a fill and telling the client, as TWS does.

Owns: the order's fill arithmetic (filled, average and last fill price), TWS-style executions
(execId per fill and combo leg, time, account, venue, side, cumulative quantity and average), the
ledger's commission and P&L for each one (`commission_for`, `apply_fill`), the records reqExecutions
replays, and the message sequence of a fill: execDetails, openOrder once complete, orderStatus,
commissionAndFeesReport. A combo fill books one execution per leg at the leg's price plus the
BAG's own at the net price (its commission report says 0: the legs carry the commissions).

Must never: decide what fills (work.py does) or what a fill does to other orders (the broker's
`after_fill`: OCA groups, brackets).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..market.ordertime import exec_time
from ..market.universe import Instrument
from . import notify
from .live import ExecRecord, LiveOrder
from .matching import Fill
from .order_entry import echo_contract
from .order_records import ExecutionInfo, SimOrder, make_exec_id

if TYPE_CHECKING:
    from .broker import Broker


def _execution(broker: "Broker", lo: LiveOrder, buy: bool, qty: float, price: float, venue: str, liquidity: int,
               leg: int, cum: float, avg: float) -> ExecutionInfo:
    t = broker.now()
    broker.exec_seq += 1
    o = lo.order
    return ExecutionInfo(
        execId=make_exec_id(broker.exec_seq, o.orderId, t, leg, instance=broker.exec_instance), time=exec_time(t), acctNumber=o.account,
        exchange=venue, side="BOT" if buy else "SLD", shares=qty, price=price, permId=lo.perm_id,
        clientId=o.clientId, liquidation=int(lo.liquidation), cumQty=cum, avgPrice=avg, orderRef=o.orderRef,
        modelCode=o.modelCode, lastLiquidity=liquidity)


def _book(broker: "Broker", lo: LiveOrder, inst: Instrument | None, snapshot: SimOrder,
          ex: ExecutionInfo) -> ExecRecord:
    """Commission and realized P&L from the ledger (none for a BAG's own execution), and the record."""
    commission, realized = 0.0, None
    if inst is not None:
        ledger = broker.ledger
        commission = float(ledger.commission_for(inst, ex.shares, ex.price))
        pnl = ledger.apply_fill(lo.order.account, inst, "BUY" if ex.side == "BOT" else "SELL", ex.shares, ex.price,
                                commission, broker.now(), lo.order.orderId)
        realized = pnl if pnl else None
        lo.commission += commission
    rec = ExecRecord(snapshot, ex, commission, _currency(broker, lo.order.account), realized, broker.now(),
                     lo.manual)
    broker.executions.append(rec)
    return rec


def _currency(broker: "Broker", account: str) -> str:
    for spec in broker.gateway.universe.accounts:
        if spec.id == account:
            return spec.currency
    return "USD"


def _progress(lo: LiveOrder, qty: float, price: float) -> None:
    lo.avg_price = (lo.avg_price * lo.filled + price * qty) / (lo.filled + qty)
    lo.filled = round(lo.filled + qty, 9)
    lo.last_fill_price = price


def execute(broker: "Broker", lo: LiveOrder, fills: list[Fill]) -> None:
    """Book fills of a single-instrument order, one execution each, in order."""
    for f in fills:
        q = round(min(f.size, lo.remaining), 9)
        if q <= 0 or lo.done:
            return
        _progress(lo, q, f.price)
        snapshot = dataclasses.replace(lo.order)
        ex = _execution(broker, lo, lo.buy, q, f.price, f.venue, f.liquidity, 1, lo.filled, lo.avg_price)
        _announce(broker, lo, [_book(broker, lo, lo.inst, snapshot, ex)], q)


def execute_combo(broker: "Broker", lo: LiveOrder, qty: float, net: float, legs: list) -> None:
    """One combo fill. `legs`: (leg, instrument, leg buys, price, quantity, venue) per leg."""
    _progress(lo, qty, net)
    recs = []
    for n, (leg, inst, leg_buy, price, shares, venue) in enumerate(legs, start=1):
        snapshot = dataclasses.replace(lo.order, comboLegs=[], orderComboLegs=[], comboLegsDescrip="")
        echo_contract(snapshot, inst)
        snapshot.exchange = leg.exchange or lo.order.exchange
        ex = _execution(broker, lo, leg_buy, shares, price, venue, 2, n, shares, price)
        recs.append(_book(broker, lo, inst, snapshot, ex))
    ex = _execution(broker, lo, lo.buy, qty, net, lo.order.exchange or "SMART", 2, 0, lo.filled, lo.avg_price)
    recs.append(_book(broker, lo, None, dataclasses.replace(lo.order), ex))
    _announce(broker, lo, recs, qty)


def _announce(broker: "Broker", lo: LiveOrder, recs: list[ExecRecord], qty: float) -> None:
    """execDetails, openOrder when complete, orderStatus, commission reports; then OCA / brackets."""
    if lo.remaining <= 1e-9:
        lo.status = "Filled"
        broker.finish(lo, "Filled")
    elif lo.status != "Submitted":
        lo.status = "Submitted"
    session = broker.session_of(lo)
    for rec in recs:
        notify.execution(session, rec)
    if lo.status == "Filled":
        notify.open_order(session, lo)
    notify.status(session, lo)
    for rec in recs:
        notify.commission(session, rec)
    broker.after_fill(lo, qty)
