"""Reconciliation after a reconnect: every fill exactly once, every open trade's true status.

Owns: the round the order manager runs after each reconnect (`OrderManager.after_reconnect`):
1. executions — reqExecutions with a fresh request id, for this client id, from RESYNC_MARGIN
   seconds before the last execution this process saw before the drop (in TWS's own clock, read
   from the executions' times; with none seen, no time filter and lastNDays covering the gap).
   Each execution not seen yet is applied once by the manager (deduped by execId);
2. orders — when TWS has sent them all (execDetailsEnd), a sweep of every trade that was open
   (`Reconciler.sweep_all`): reqOpenOrders, then reqCompletedOrders for those not open. A trade
   TWS lists neither as open nor as completed is ended "Inactive" with a reason — or "Filled"
   when the executions TWS sent cover its whole quantity — and reported to `unknown_order_hooks`;
3. the summary (`ReconcileSummary`) handed once to `reconcile_hooks` when the round ends.
A reconnect during a round abandons it (its answers will never come) and folds it into the
new one, whose summary then covers both. A watchdog (`timeout` seconds, via the manager's
call_later) moves on to the orders when execDetailsEnd does not come, and says so.

Must never: wait (it sends a request and returns; answers come as callbacks on the dispatch
thread), guess a fill or a cancel, or deliver a fill or a status twice (the manager dedupes).
"""
from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ibapi.execution import ExecutionFilter

from .trade import Fill, Trade, quantity_text

log = logging.getLogger("ibframe.orders")

RESYNC_MARGIN = 300.0             # seconds before the last execution seen that executions are asked from
RESYNC_TIMEOUT = 60.0             # seconds to wait for execDetailsEnd before going on with the orders
MAX_DAYS = 7                      # TWS keeps executions for up to 7 days
PARAMETRIZED_DAYS = 200           # server version from which ExecutionFilter.lastNDays is sent
PRIVATE_ID_BASE = 1_900_000_000   # request ids when the engine gave none (far above RequestIds' own)
EARLIEST_ZONE = 14 * 3600.0       # a time in an unknown zone is read as early as any zone allows
ZONE_ALIASES = {"EST": "America/New_York", "EDT": "America/New_York", "ET": "America/New_York",
                "EST5EDT": "America/New_York", "CST": "America/Chicago", "CDT": "America/Chicago",
                "MST": "America/Denver", "MDT": "America/Denver", "PST": "America/Los_Angeles",
                "PDT": "America/Los_Angeles", "GMT": "UTC", "Z": "UTC", "UTC": "UTC",
                "CET": "Europe/Berlin", "CEST": "Europe/Berlin", "MET": "Europe/Berlin",
                "HKT": "Asia/Hong_Kong", "JST": "Asia/Tokyo"}


@dataclass(slots=True)
class ReconcileSummary:
    """What one reconciliation after a reconnect found (handed to `OrderManager.reconcile_hooks`)."""
    round: int
    down_since: float                     # engine clock: when the (first) connection of this round was lost
    down_for: float                       # seconds it was down (the first drop's, when rounds were folded)
    fills_recovered: list[tuple[Trade | None, Fill]]   # executions new to this process during the round
    statuses_changed: list[Trade]         # trades whose (status, filled) changed during the round
    unknown_orders: list[Trade]           # ended because TWS no longer knows them (also sent to unknown hooks)
    since: str                            # the execution filter's time ("yyyymmdd-hh:mm:ss" UTC; "" = none)
    abandoned: int = 0                    # earlier rounds cut short by another disconnect, folded into this one

    def __str__(self) -> str:
        unknown = ", ".join(str(t.order_id) for t in self.unknown_orders)
        return (f"reconciliation {self.round} after {self.down_for:.1f}s down: {len(self.fills_recovered)} fill(s) "
                f"recovered, {len(self.statuses_changed)} trade(s) changed status, "
                f"{len(self.unknown_orders)} order(s) TWS no longer knows{f' ({unknown})' if unknown else ''}")


@dataclass(slots=True)
class _Round:
    number: int
    req_id: int
    down_since: float
    down_for: float
    order_ids: set[int]                   # the trades open when it began: their state is in doubt
    before: dict[int, tuple[str, float]]  # orderId -> (status, filled) when it began
    first_execution: int                  # index into the manager's executions where it began
    since: str = ""
    last_execution: float | None = None   # TWS epoch of the last execution seen before the drop
    phase: str = "executions"             # executions -> orders
    abandoned: int = 0
    unknown: list[Trade] = field(default_factory=list)
    overdue: bool = False


class Resync:
    """The after-reconnect round of one order manager. Reads the manager's public attributes only:
    client, clock, trades, executions, reconciler, request_id, call_later and the hook lists."""

    def __init__(self, orders, end: Callable[[Trade, str, str], None]):
        self.orders = orders
        self.end = end                    # end(trade, status, reason): final status + status hooks
        self.round: _Round | None = None
        self.rounds = 0
        self.timeout = RESYNC_TIMEOUT     # <= 0: no watchdog
        self.margin = RESYNC_MARGIN
        self.last_summary: ReconcileSummary | None = None
        self.arrivals: list[float] = []   # engine-clock arrival of each of the manager's executions
        self._own_ids = itertools.count(PRIVATE_ID_BASE)
        self._scanned = 0
        self._latest: float | None = None

    @property
    def running(self) -> bool:
        return self.round is not None

    def in_doubt(self, trade: Trade) -> bool:
        """True while a round is asking TWS about this trade (it was open when the round began)."""
        r = self.round
        if r is None or trade.done or trade.order_id not in r.order_ids:
            return False
        return r.phase == "executions" or trade.order_id in self.orders.reconciler.waiting

    def note_execution(self) -> None:
        """The manager appended a new execution: remember when (to tell executions before a drop)."""
        self.arrivals.append(self.orders.clock.now())

    # --- the round ------------------------------------------------------------------------------
    def start(self, down_since: float, down_for: float) -> None:
        orders = self.orders
        old = self.round
        self.rounds += 1
        open_ids = {t.order_id for t in orders.trades.values() if t.order_id and not t.done}
        state = {i: (t.status, t.filled) for i, t in orders.trades.items()}
        r = _Round(self.rounds, self._take_id(), down_since, down_for, open_ids, state, len(orders.executions))
        if old is None:
            r.last_execution = self._last_execution_before(down_since)
        else:
            log.warning("reconnected again while reconciling (round %d was still asking for %s): it is abandoned "
                        "and round %d asks TWS afresh", old.number, old.phase, r.number)
            r.down_since, r.down_for = old.down_since, old.down_for
            r.order_ids |= old.order_ids
            r.before = {**state, **old.before}
            r.first_execution, r.last_execution = old.first_execution, old.last_execution
            r.abandoned, r.unknown = old.abandoned + 1, old.unknown
        self.round = r
        orders.reconciler.reset()
        horizon = max([down_for] + [orders.clock.now() - t.placed_at for t in orders.trades.values()
                                    if t.order_id in r.order_ids and t.placed_at])
        client = orders.client
        f = execution_filter(client.clientId, r.last_execution, horizon, client.serverVersion() or 0, self.margin)
        r.since = f.time
        log.info("reconnected after %.1fs: reconciling %d open order(s); asking TWS for this client's executions %s "
                 "(request %d)", down_for, len(r.order_ids),
                 f"since {f.time} UTC" if f.time else "of the last days (none seen yet)", r.req_id)
        client.reqExecutions(r.req_id, f)
        self._watch(r)

    def on_execution_end(self, req_id: int) -> None:
        r = self.round
        if r is None or req_id != r.req_id or r.phase != "executions":
            log.debug("execDetailsEnd %s is not the running reconciliation's; ignored", req_id)
            return
        self._orders_phase(r)

    def _orders_phase(self, r: _Round) -> None:
        r.phase = "orders"
        trades = [t for i in sorted(r.order_ids) if (t := self.orders.trades.get(i)) is not None and not t.done]
        self.orders.reconciler.sweep_all(trades, lambda t: self._unknown(r, t), lambda: self._done(r))

    def _unknown(self, r: _Round, trade: Trade) -> None:
        """TWS lists the trade neither as open nor as completed: Filled when its executions cover it, else
        Inactive; reported either way."""
        if r is not self.round or trade.done:
            return
        shares = sum(f.shares for f in trade.fills)
        total = _quantity(trade)
        what = f"TWS no longer knows order {trade.order_id} after the reconnect (it is neither among its open nor " \
               f"its completed orders"
        if trade.fills and shares >= total - 1e-9:
            trade.filled, trade.remaining = shares, 0.0
            trade.avg_fill_price = sum(f.shares * f.price for f in trade.fills) / shares
            self.end(trade, "Filled", f"{what}), but its {len(trade.fills)} execution(s) fill all "
                                      f"{quantity_text(total)}")
        else:
            part = f", {quantity_text(shares)} of {quantity_text(total)} were filled before" if shares else \
                ", and it has no executions"
            self.end(trade, "Inactive", f"{what}{part}): it was never received, or TWS restarted without it; it is "
                                        f"not working — place it again if you still want it")
        r.unknown.append(trade)
        for hook in list(self.orders.unknown_order_hooks):
            try:
                hook(trade)
            except Exception:
                log.exception("unknown-order hook %r failed", hook)

    def _done(self, r: _Round) -> None:
        if r is not self.round:
            return
        self.round = None
        orders = self.orders
        changed = [t for i, before in r.before.items() if (t := orders.trades.get(i)) is not None
                   and (t.status, t.filled) != before]
        summary = ReconcileSummary(r.number, r.down_since, r.down_for, list(orders.executions[r.first_execution:]),
                                   changed, list(r.unknown), r.since, r.abandoned)
        self.last_summary = summary
        log.info("reconciliation %d after the reconnect done: %d fill(s) recovered, %d trade(s) changed status, "
                 "%d order(s) TWS no longer knows", r.number, len(summary.fills_recovered),
                 len(summary.statuses_changed), len(summary.unknown_orders))
        for hook in list(orders.reconcile_hooks):
            try:
                hook(summary)
            except Exception:
                log.exception("reconcile hook %r failed", hook)

    # --- helpers ----------------------------------------------------------------------------------
    def _take_id(self) -> int:
        ask = self.orders.request_id
        return ask() if ask is not None else next(self._own_ids)

    def _watch(self, r: _Round) -> None:
        call_later = self.orders.call_later
        if call_later is not None and self.timeout > 0:
            call_later(self.timeout, lambda: self._overdue(r))

    def _overdue(self, r: _Round) -> None:
        if r is not self.round or r.overdue:
            return
        r.overdue = True
        if r.phase == "executions":
            log.warning("reconciliation %d: TWS has not finished sending executions (request %d) after %gs; going "
                        "on with the open orders (executions still arriving are applied once)", r.number, r.req_id,
                        self.timeout)
            self._orders_phase(r)
        else:
            waiting = sorted(i for i in r.order_ids if i in self.orders.reconciler.waiting)
            log.warning("reconciliation %d: TWS has not answered about order(s) %s after %gs; their state stays "
                        "in doubt until it does (or the next reconnect asks again)", r.number,
                        ", ".join(map(str, waiting)) or "(none)", self.timeout)

    def _last_execution_before(self, down_since: float) -> float | None:
        """TWS time of the latest execution that reached this process before `down_since` (engine clock)."""
        executions, arrivals = self.orders.executions, self.arrivals
        while self._scanned < min(len(executions), len(arrivals)) and arrivals[self._scanned] <= down_since:
            at = tws_epoch(executions[self._scanned][1].time)
            if at is not None and (self._latest is None or at > self._latest):
                self._latest = at
            self._scanned += 1
        return self._latest


def execution_filter(client_id: int, last_execution: float | None, horizon: float, server_version: int,
                     margin: float = RESYNC_MARGIN) -> ExecutionFilter:
    """This client's executions from `margin` seconds before `last_execution` (a TWS epoch), as
    "yyyymmdd-hh:mm:ss" in UTC (the form ibapi documents); with none seen, no time and lastNDays covering
    `horizon` seconds back (lastNDays only from server version 200, which the older ones refuse)."""
    f = ExecutionFilter()
    f.clientId = client_id
    if last_execution is not None:
        start = dt.datetime.fromtimestamp(last_execution - margin, dt.timezone.utc)
        f.time = start.strftime("%Y%m%d-%H:%M:%S")
        days = MAX_DAYS                     # the time is the limit; TWS sends what it still has
    else:
        days = max(1, min(MAX_DAYS, 1 + math.ceil((max(horizon, 0.0) + margin) / 86400.0)))
    if server_version >= PARAMETRIZED_DAYS:
        f.lastNDays = days
    return f


def tws_epoch(text: str) -> float | None:
    """Epoch seconds of a TWS time: "yyyymmdd hh:mm:ss [zone]", "yyyymmdd-hh:mm:ss" (UTC) or epoch digits.
    A zone that is missing or unknown reads the time as early as any zone allows (a filter from it can
    only ask for more). None when it is no time at all."""
    text = (text or "").strip()
    if text.isdigit() and len(text) > 8:
        return float(text)
    parts = text.split()
    if len(parts) == 1 and "-" in parts[0]:
        day, clock, zone = *parts[0].split("-", 1), "UTC"
    elif len(parts) >= 2:
        day, clock, zone = parts[0], parts[1], " ".join(parts[2:])
    else:
        return None
    try:
        naive = dt.datetime.strptime(day + " " + clock, "%Y%m%d %H:%M:%S")
    except ValueError:
        return None
    tz = _zone(zone)
    if tz is None:
        return naive.replace(tzinfo=dt.timezone.utc).timestamp() - EARLIEST_ZONE
    return naive.replace(tzinfo=tz).timestamp()


def _zone(name: str) -> dt.tzinfo | None:
    if not name:
        return None
    name = ZONE_ALIASES.get(name.upper(), name)
    if name == "UTC":
        return dt.timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _quantity(trade: Trade) -> float:
    try:
        return float(trade.order.totalQuantity)
    except (TypeError, ValueError, ArithmeticError):
        return math.inf
