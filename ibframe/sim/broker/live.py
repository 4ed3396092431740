"""One order inside the paper broker, and the price rules that move it between steps.

Owns: `LiveOrder` (the order as placed plus everything the broker tracks about it: status and
phase, fills, the price it works at, trigger and trailing state, queue position, timers, the NBBO
at arrival), `ExecRecord` (one execution as reqExecutions replays it) and the pure per-order price
rules: how a trailing stop follows the last trade, when stop / if-touched orders trigger, where a
relative (REL) order pegs and in what order resting orders get priority.

Must never: send messages, touch the market or accounts, or decide lifecycle transitions (that is
the broker's job); the functions here only compute.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..market.universe import Instrument
from .matching import Book, tick_of
from .order_records import ExecutionInfo, SimComboLeg, SimOrder

# Phases: held (transmit=False, not working), child (waits for its parent to fill), waiting
# (accepted, working once its time or session comes), working, done.
DONE_STATUSES = ("Filled", "Cancelled", "Inactive")


@dataclass(slots=True)
class LiveOrder:
    order: SimOrder
    inst: Instrument | None                      # None for a BAG
    legs: list[tuple[SimComboLeg, Instrument]] = field(default_factory=list)
    perm_id: int = 0
    seq: int = 0                                 # arrival order: time priority
    status: str = "PreSubmitted"
    phase: str = "waiting"
    filled: float = 0.0
    avg_price: float = 0.0
    last_fill_price: float = 0.0
    commission: float = 0.0
    triggered: bool = False                      # stop / if-touched orders: the trigger fired
    trail_stop: float | None = None
    trail_offset: float | None = None            # TRAIL LIMIT: limit = stop -/+ offset
    work_price: float | None = None              # the limit it currently works at (None = market)
    rested: bool = False                         # it has rested in the book (fills as a maker from now on)
    queue_ahead: float = 0.0
    queue_price: float | None = None
    expires_at: float | None = None
    active_at: float | None = None               # goodAfterTime, the open (OPG) or the close (MOC/LOC)
    arrival_time: float = 0.0
    arrival_bid: float = 0.0
    arrival_ask: float = 0.0
    last_seen: float | None = None               # last trade price seen (options: trigger input)
    algo: object | None = None                   # algos.AlgoState
    manual: bool = False                         # entered "in TWS" (liquidations, test hooks): orderId 0 until bound
    liquidation: bool = False
    completed_time: float = 0.0
    completed_status: str = ""

    @property
    def buy(self) -> bool:
        return self.order.action == "BUY"

    @property
    def kind(self) -> str:
        return self.order.orderType

    @property
    def remaining(self) -> float:
        return max(round(self.order.totalQuantity - self.filled, 9), 0.0)

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES

    @property
    def key(self) -> tuple[int, int]:
        return self.order.clientId, self.order.orderId

    @property
    def main_inst(self) -> Instrument:
        """The instrument whose sessions the order follows (a BAG's first leg)."""
        return self.inst if self.inst is not None else self.legs[0][1]


@dataclass(slots=True)
class ExecRecord:
    """An execution as reqExecutions replays it: the order's contract echo, the fill, its commission."""
    order: SimOrder
    execution: ExecutionInfo
    commission: float
    currency: str
    realized: float | None
    time: float
    manual: bool = False


# --- price rules ---------------------------------------------------------------------------------

def trail_amount(o: SimOrder, price: float) -> float:
    """The trailing distance at a reference price: auxPrice, or trailingPercent of the price."""
    if o.auxPrice:
        return float(o.auxPrice)
    return price * float(o.trailingPercent or 0.0) / 100.0


def _grid(inst: Instrument, price: float, up: bool) -> float:
    tick = tick_of(inst, price)
    steps = price / tick
    return round((math.ceil(steps - 1e-9) if up else math.floor(steps + 1e-9)) * tick, 10)


def start_trail(lo: LiveOrder, last: float) -> None:
    """Initial stop of a trailing order: the client's trailStopPrice or last -/+ the amount."""
    o = lo.order
    if o.trailStopPrice is not None and o.trailStopPrice > 0:
        stop = float(o.trailStopPrice)
    else:
        amount = trail_amount(o, last)
        stop = last + amount if lo.buy else last - amount
        stop = _grid(lo.main_inst, stop, up=lo.buy)
    lo.trail_stop = stop
    o.trailStopPrice = stop
    if lo.kind == "TRAIL LIMIT":
        if o.lmtPriceOffset is not None:
            lo.trail_offset = float(o.lmtPriceOffset)
        else:
            lo.trail_offset = abs(stop - float(o.lmtPrice or stop))


def follow_trail(lo: LiveOrder, price: float) -> None:
    """Move a trailing stop with a trade print (only ever towards the market)."""
    amount = trail_amount(lo.order, price)
    if lo.buy:
        candidate = _grid(lo.main_inst, price + amount, up=True)
        if lo.trail_stop is None or candidate < lo.trail_stop:
            lo.trail_stop = candidate
    else:
        candidate = _grid(lo.main_inst, price - amount, up=False)
        if lo.trail_stop is None or candidate > lo.trail_stop:
            lo.trail_stop = candidate
    lo.order.trailStopPrice = lo.trail_stop


def fires(lo: LiveOrder, price: float) -> bool:
    """Whether a trade at `price` triggers a stop / trailing / if-touched order."""
    kind = lo.kind
    if kind in ("TRAIL", "TRAIL LIMIT"):
        stop = lo.trail_stop
        return stop is not None and (price >= stop if lo.buy else price <= stop)
    aux = float(lo.order.auxPrice or 0.0)
    if kind in ("STP", "STP LMT"):
        return price >= aux if lo.buy else price <= aux
    if kind in ("MIT", "LIT"):
        return price <= aux if lo.buy else price >= aux
    return False


def triggered_price(lo: LiveOrder) -> float | None:
    """The limit a triggered order works at (None: it becomes a market order)."""
    kind = lo.kind
    if kind in ("STP LMT", "LIT"):
        return float(lo.order.lmtPrice)
    if kind == "TRAIL LIMIT":
        offset = lo.trail_offset or 0.0
        stop = lo.trail_stop or 0.0
        return _grid(lo.main_inst, stop + offset if lo.buy else stop - offset, up=not lo.buy)
    return None


def rel_price(lo: LiveOrder, book: Book) -> float | None:
    """A REL (pegged-to-primary) order: the near side improved by the offset, capped by its limit."""
    near = book.near(lo.buy)
    if near <= 0:
        return None
    o = lo.order
    offset = float(o.auxPrice or 0.0)
    if not offset and o.percentOffset:
        offset = near * float(o.percentOffset) / 100.0
    price = _grid(lo.main_inst, near + offset if lo.buy else near - offset, up=not lo.buy)
    if o.lmtPrice:
        price = min(price, float(o.lmtPrice)) if lo.buy else max(price, float(o.lmtPrice))
    return price


def priority(lo: LiveOrder) -> tuple:
    """Price-time priority among the broker's own orders: market first, then best price, then arrival."""
    if lo.work_price is None:
        return (0, 0.0, lo.seq)
    return (1, -lo.work_price if lo.buy else lo.work_price, lo.seq)
