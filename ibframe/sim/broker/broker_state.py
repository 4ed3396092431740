"""The paper broker's state as plain JSON-able data, for `--state` files and gateway restarts.

Owns: turning the broker's orders (live and completed, with their working state), executions,
order-id bookkeeping and sequence counters into a dict and back. Instruments are stored by conId
and re-resolved from the universe on load; an order whose contract no longer exists is dropped
with a log line.

Must never: send messages or touch the market; loading restores state, it does not replay fills.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from .algos import AlgoState
from .live import ExecRecord, LiveOrder
from .order_records import ExecutionInfo, SimComboLeg, SimCondition, SimOrder

if TYPE_CHECKING:
    from .broker import Broker

log = logging.getLogger("ibframe.sim")

VERSION = 1
_LIVE_FIELDS = ("perm_id", "seq", "status", "phase", "filled", "avg_price", "last_fill_price", "commission",
                "triggered", "trail_stop", "trail_offset", "work_price", "rested", "queue_ahead", "queue_price",
                "expires_at", "active_at", "arrival_time", "arrival_bid", "arrival_ask", "last_seen", "manual",
                "liquidation", "completed_time", "completed_status")


def order_to_dict(o: SimOrder) -> dict:
    d = dataclasses.asdict(o)
    d["conditions"] = [{**dataclasses.asdict(c), "raw": list(c.raw)} for c in o.conditions]
    return d


def order_from_dict(d: dict) -> SimOrder:
    d = dict(d)
    names = {f.name for f in dataclasses.fields(SimOrder)}
    d = {k: v for k, v in d.items() if k in names}
    d["comboLegs"] = [SimComboLeg(**leg) for leg in d.get("comboLegs") or []]
    d["conditions"] = [SimCondition(**{**c, "raw": tuple(c.get("raw") or ())}) for c in d.get("conditions") or []]
    d["smartComboRoutingParams"] = [tuple(p) for p in d.get("smartComboRoutingParams") or []]
    d["algoParams"] = [tuple(p) for p in d.get("algoParams") or []]
    if d.get("deltaNeutralContract") is not None:
        d["deltaNeutralContract"] = tuple(d["deltaNeutralContract"])
    return SimOrder(**d)


def _live_to_dict(lo: LiveOrder) -> dict:
    d = {name: getattr(lo, name) for name in _LIVE_FIELDS}
    d["order"] = order_to_dict(lo.order)
    d["conId"] = lo.inst.con_id if lo.inst is not None else 0
    d["legs"] = [leg_inst.con_id for _, leg_inst in lo.legs]
    d["algo"] = lo.algo.to_state() if lo.algo is not None else None
    return d


def _live_from_dict(broker: "Broker", d: dict) -> LiveOrder | None:
    universe = broker.gateway.universe
    order = order_from_dict(d["order"])
    inst = universe.get(d["conId"]) if d.get("conId") else None
    legs = []
    for leg, con_id in zip(order.comboLegs, d.get("legs") or []):
        leg_inst = universe.get(con_id)
        if leg_inst is None:
            return None
        legs.append((leg, leg_inst))
    if inst is None and not legs:
        return None
    lo = LiveOrder(order, inst, legs)
    for name in _LIVE_FIELDS:
        if name in d:
            setattr(lo, name, d[name])
    if d.get("algo"):
        lo.algo = AlgoState.from_state(d["algo"])
    return lo


def _exec_to_dict(rec: ExecRecord) -> dict:
    return {"order": order_to_dict(rec.order), "execution": dataclasses.asdict(rec.execution),
            "commission": rec.commission, "currency": rec.currency, "realized": rec.realized, "time": rec.time,
            "manual": rec.manual}


def _exec_from_dict(d: dict) -> ExecRecord:
    return ExecRecord(order_from_dict(d["order"]), ExecutionInfo(**d["execution"]), d["commission"], d["currency"],
                      d.get("realized"), d["time"], d.get("manual", False))


def dump(broker: "Broker") -> dict:
    return {
        "version": VERSION,
        "next_order_id": broker.gateway.next_order_id,
        "seq": broker.seq, "priority_seq": broker.priority_seq, "exec_seq": broker.exec_seq,
        "exec_instance": broker.exec_instance,
        "bind_seq": broker.bind_seq,
        "max_ids": {str(k): v for k, v in broker.max_ids.items()},
        "orders": [_live_to_dict(lo) for lo in broker.orders.values()],
        "completed": list(broker.completed),
        "executions": [_exec_to_dict(rec) for rec in broker.executions],
    }


def load(broker: "Broker", state: dict) -> None:
    """Replace the broker's state with a dumped one (orders keep working where they were)."""
    if not state:
        return
    broker.orders.clear()
    broker.live.clear()
    broker.by_key.clear()
    broker.completed = []
    for d in state.get("orders", []):
        lo = _live_from_dict(broker, d)
        if lo is None:
            log.warning("state: order %s dropped: its contract is not in this universe", d.get("order", {}).get(
                "orderId"))
            continue
        broker.orders[lo.perm_id] = lo
        if not lo.done:
            broker.live[lo.perm_id] = lo
        if not (lo.manual and lo.order.orderId == 0):
            broker.by_key[lo.key] = lo.perm_id
    broker.completed = [p for p in state.get("completed", []) if p in broker.orders]
    broker.executions = [_exec_from_dict(d) for d in state.get("executions", [])]
    broker.seq = max(int(state.get("seq", 0)), broker.seq)
    broker.priority_seq = max(int(state.get("priority_seq", 0)), broker.priority_seq)
    broker.exec_seq = max(int(state.get("exec_seq", 0)), broker.exec_seq)
    broker.exec_instance = int(state.get("exec_instance", broker.exec_instance)) & 0xFFFF or broker.exec_instance
    broker.bind_seq = max(int(state.get("bind_seq", 0)), broker.bind_seq)
    broker.max_ids = {int(k): int(v) for k, v in (state.get("max_ids") or {}).items()}
    broker.gateway.next_order_id = max(broker.gateway.next_order_id, int(state.get("next_order_id", 1)))
