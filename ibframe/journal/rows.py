"""Rows of the journal: copied on the dispatch thread, cleaned on the writer thread.

Owns: the `capture_*` functions, which copy what a hook was given (a Trade, an ibapi Execution,
a commission report, an IBError, a RiskEvent, the portfolio) into a flat tuple in the column order
of `schema.TABLES` — attribute reads only, a few microseconds, nothing converted, nothing
formatted — and `clean`, which the writer thread applies to every row before it is inserted:
numbers made SQLite-safe (NaN, IB's "unset" sentinels, Decimals and out-of-range integers), text made
encodable, lists and dicts written as JSON, and an execution's TWS time read as epoch seconds.

Must never: keep a reference to a mutable object the dispatch thread will change later (copy the
values), do I/O, or raise on a strange value (a row with garbage is stored with NULLs, not lost).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import sys
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from .schema import TABLES

UNSET_DOUBLE = sys.float_info.max
UNSET_DECIMAL = float(Decimal(2 ** 127 - 1))
INT_MIN, INT_MAX = -(2 ** 63), 2 ** 63 - 1
NO_CONTRACT = (None,) * 10


# --- on the dispatch thread: copy, never convert ---------------------------------------------------
def contract_fields(c) -> tuple:
    if c is None:
        return NO_CONTRACT
    return (c.conId, c.symbol, c.secType, c.exchange, c.currency, c.localSymbol,
            c.lastTradeDateOrContractMonth, c.strike, c.right, c.multiplier)


def capture_order(now: float, trade, action: str, client_id: int, account: str) -> tuple:
    """An order request as sent: for "modify" the new terms (trade.pending), else the order."""
    o = trade.pending if action == "modify" and trade.pending is not None else trade.order
    c = trade.contract
    legs = tuple((leg.conId, leg.ratio, leg.action, leg.exchange) for leg in c.comboLegs) if c.comboLegs else None
    algo = tuple((tv.tag, tv.value) for tv in o.algoParams) if o.algoParams else None
    return ((now, action, trade.order_id, trade.perm_id, client_id, o.account or account, trade.strategy,
             o.orderRef) + contract_fields(c) +
            (legs, o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.auxPrice, o.tif, o.goodTillDate,
             o.algoStrategy, algo, o.parentId, o.ocaGroup, o.outsideRth, o.transmit, trade.arrival_bid,
             trade.arrival_ask))


def capture_status(now: float, trade) -> tuple:
    c = trade.contract
    return (now, trade.order_id, trade.perm_id, trade.strategy, c.conId, c.symbol, trade.status, trade.filled,
            trade.remaining, trade.avg_fill_price, trade.reason, trade.unacknowledged)


def capture_execution(now: float, trade, fill, e) -> tuple:
    """`time` is left None here: the writer reads it from the execution's own time text."""
    strategy = trade.strategy if trade is not None else fill.order_ref
    return ((e.execId, None, e.time, now, e.orderId, e.permId, e.clientId, e.acctNumber, strategy, e.orderRef)
            + contract_fields(fill.contract) +
            (e.side, e.shares, e.price, e.exchange, e.cumQty, e.avgPrice, e.liquidation, e.lastLiquidity,
             e.modelCode, e.evRule, e.evMultiplier, e.pendingPriceRevision, e.submitter))


def capture_commission(now: float, report) -> tuple:
    return (report.execId, now, report.commissionAndFees, report.currency, report.realizedPNL, report.yield_,
            report.yieldRedemptionDate)


def capture_error(err) -> tuple:
    return (err.time, err.code, err.req_id, getattr(err.kind, "value", err.kind), err.subject, err.text,
            err.advanced)


def capture_risk_event(ev) -> tuple:
    details = dict(ev.details) if isinstance(ev.details, dict) else ev.details
    return (ev.time, ev.kind, ev.scope, ev.rule, ev.text, details)


def capture_quote(now: float, why: str, source: str, contract, bid, ask, last=None, order_id=None, client_id=None,
                  exec_id=None, strategy=None) -> tuple:
    """The NBBO at one moment (see schema.TABLES['quotes'] for `why` and `source`)."""
    c = contract
    return (now, why, source, getattr(c, "conId", None), getattr(c, "symbol", None), getattr(c, "secType", None),
            bid, ask, last, order_id, client_id, exec_id, strategy)


def capture_snapshot(now: float, values: dict, positions) -> tuple[list, list]:
    """Account values ((account, key, currency) -> text) and Portfolio positions, copied."""
    rows_values = [(now, acct, key, cur, value, value) for (acct, key, cur), value in values.items()]
    rows_positions = [(now, p.account) + contract_fields(p.contract) +
                      (p.quantity, p.avg_cost, p.market_price, p.market_value, p.unrealized_pnl, p.realized_pnl)
                      for p in positions]
    return rows_values, rows_positions


# --- on the writer thread: make every value storable -----------------------------------------------
def real(x):
    if x is None:
        return None
    if type(x) is not float:
        try:
            x = float(x)
        except (TypeError, ValueError, OverflowError):
            return None
    if x != x or x == UNSET_DOUBLE or x == UNSET_DECIMAL:      # NaN, IB's "unset" double / Decimal
        return None
    return x


def integer(x):
    if x is None:
        return None
    if type(x) is not int:
        try:
            if isinstance(x, (float, Decimal)):
                if not math.isfinite(x):
                    return None
                x = int(x)
            else:
                x = int(x)                  # bool, str of digits
        except (TypeError, ValueError, OverflowError):
            return None
    return x if INT_MIN <= x <= INT_MAX else None


def text(x):
    if x is None:
        return None
    if isinstance(x, (tuple, list, dict)):
        x = json.dumps(x, default=str)
    elif not isinstance(x, str):
        x = str(getattr(x, "value", x))
    try:
        x.encode("utf-8")
    except UnicodeEncodeError:              # a lone surrogate cannot be stored as UTF-8
        x = x.encode("utf-8", "backslashreplace").decode("utf-8")
    return x


_BY_TYPE = {"INTEGER": integer, "REAL": real, "TEXT": text}
CLEANERS = {table: [_BY_TYPE[kind.split()[0]] for _, kind in cols] for table, cols in TABLES.items()}
_EXEC_TIME = [c for c, _ in TABLES["executions"]].index("exec_time")


def clean(table: str, row: tuple) -> tuple:
    """The row with every value storable; ValueError when it has the wrong number of columns."""
    cleaners = CLEANERS[table]
    if len(row) != len(cleaners):
        raise ValueError(f"{table} row has {len(row)} values, the table {len(cleaners)} columns")
    out = [f(v) for f, v in zip(cleaners, row)]
    if table == "executions":
        out[0] = out[0] if out[0] is not None else ""
        out[1] = tws_time(out[_EXEC_TIME]) if out[_EXEC_TIME] else None
        if out[1] is None:
            out[1] = out[3]                 # unreadable time: when it reached ibframe
    return tuple(out)


_TWS_TIME = re.compile(r"^(\d{8})([ -])(\d{1,2}):(\d{2}):(\d{2})(?: (\S+))?$")


@lru_cache(maxsize=64)
def _zone(name: str):
    try:
        return ZoneInfo(name)
    except Exception:
        return None


def tws_time(value: str) -> float | None:
    """Epoch seconds of an execution time as TWS writes it: "yyyymmdd hh:mm:ss [zone]" (no zone: this
    machine's local time, as TWS without a zone means its own), "yyyymmdd-hh:mm:ss" (UTC). None when
    unreadable."""
    m = _TWS_TIME.match(" ".join(value.split()))
    if not m:
        return None
    day, sep, hh, mm, ss, zone = m.groups()
    try:
        naive = dt.datetime.strptime(f"{day} {hh}:{mm}:{ss}", "%Y%m%d %H:%M:%S")
    except ValueError:
        return None
    if sep == "-":
        return naive.replace(tzinfo=dt.timezone.utc).timestamp()
    if zone:
        tz = _zone(zone)
        if tz is None:
            return None
        return naive.replace(tzinfo=tz).timestamp()
    return naive.timestamp()
