"""Bounded in-memory history of tick-by-tick data for one contract.

Owns: the most recent ``capacity`` ticks of each tick-by-tick kind (trades, bid/ask,
midpoint), stored column-wise in preallocated numpy arrays used as circular buffers;
the oldest entry of a kind is overwritten once that kind is full. New ticks are written
to the arrays a chunk at a time (at most 256 wait as tuples), which costs far less per
tick than numpy scalar writes; every reader sees them.

Must never: take locks, do I/O, or call ibapi ``EClient``. Updated ONLY on the
framework's single dispatch thread.

Design choice: one ring PER KIND, not one ring with a kind column. The kinds have
different columns (a shared table would carry mostly-empty columns), and, more
importantly, their rates differ by orders of magnitude: in a shared ring a burst of
bid/ask updates would evict every trade. Separate rings keep ``capacity`` of each.
A global sequence number per entry still lets ``last()`` find the newest tick overall.

Strings (exchange, special conditions) are interned into small integer codes so no
Python objects are kept per tick; ``to_frame`` returns them as pandas categoricals.

Bad input never enters: a tick whose time, price or size is NaN, infinite or not a number
(or whose size is negative) is refused and counted in ``rejected``. NaN in a column means
only IB's "not available" sentinel (UNSET_DOUBLE / UNSET_DECIMAL). ``check_invariants()``
lists what breaks these rules or the rings' bookkeeping (empty when fine).
"""
from __future__ import annotations

from decimal import Decimal
from math import isfinite
from typing import Any

import numpy as np
import pandas as pd
from ibapi.const import UNSET_DECIMAL, UNSET_DOUBLE

__all__ = ["TickRing", "KINDS"]

KINDS = ("last", "bid_ask", "midpoint")

_ALIASES = {"last": "last", "alllast": "last", "trade": "last", "trades": "last",
            "bidask": "bid_ask", "midpoint": "midpoint", "mid": "midpoint"}

_SCHEMAS: dict[str, tuple[tuple[str, str], ...]] = {
    "last": (("time", "f8"), ("price", "f8"), ("size", "f8"), ("exchange", "i4"),
             ("special_conditions", "i4"), ("past_limit", "?"), ("unreported", "?"),
             ("seq", "i8")),
    "bid_ask": (("time", "f8"), ("bid", "f8"), ("ask", "f8"), ("bid_size", "f8"),
                ("ask_size", "f8"), ("bid_past_low", "?"), ("ask_past_high", "?"),
                ("seq", "i8")),
    "midpoint": (("time", "f8"), ("mid", "f8"), ("seq", "i8")),
}
_CODED = ("exchange", "special_conditions")
_SIZE_COLUMNS = frozenset({"size", "bid_size", "ask_size"})
# every schema ends with "seq", which last() leaves out


# float() of every value _num treats as "not available" is one of these; the exact (slow,
# Decimal-vs-float) comparison runs only for them.
_UNSET_FLOATS = frozenset({float(UNSET_DECIMAL), float(UNSET_DOUBLE)})


def _usable(time: Any, prices: tuple, sizes: tuple) -> bool:
    """Finite time and prices, finite sizes >= 0 (IB's unset sentinels are finite and pass)."""
    try:
        if not isfinite(float(time)):
            return False
        for price in prices:
            if not isfinite(float(price)):
                return False
        for size in sizes:
            number = float(size)
            if not isfinite(number) or number < 0:
                return False
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _num(value: Any) -> float:
    """Decimal/float size or price -> float; IB's UNSET sentinels -> NaN."""
    if value is None:
        return np.nan
    number = value if type(value) is float else float(value)
    if number in _UNSET_FLOATS and (value == UNSET_DECIMAL or value == UNSET_DOUBLE):
        return np.nan
    return number


class _Ring:
    """Fixed-capacity circular column store; index 0 of ``ordered`` is the oldest entry.

    New rows wait in ``pending`` (a short list of tuples) and are written to the numpy columns a
    chunk at a time: one slice assignment per column instead of one numpy scalar write per value.
    Readers flush first, except ``newest()``, which reads the pending tuple directly.
    """

    __slots__ = ("capacity", "names", "fields", "coded", "arrays", "start", "count", "pending", "chunk")

    def __init__(self, capacity: int, schema: tuple[tuple[str, str], ...]):
        self.capacity = capacity
        self.names = tuple(name for name, _ in schema)
        self.fields = self.names[:-1]                       # what last() shows: every column but seq
        self.coded = tuple(name for name in self.names if name in _CODED)
        self.arrays = tuple(np.zeros(capacity, dtype=dtype) for _, dtype in schema)
        self.start = 0
        self.count = 0
        self.pending: list[tuple] = []
        self.chunk = min(256, capacity)

    def append(self, values: tuple) -> None:
        self.pending.append(values)
        if len(self.pending) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        """Write the pending rows into the columns (the oldest are overwritten once full)."""
        rows = self.pending
        if not rows:
            return
        self.pending = []
        rows = rows[-self.capacity:]
        k = len(rows)
        columns = list(zip(*rows))
        first = (self.start + self.count) % self.capacity
        head = min(k, self.capacity - first)            # rows that fit before the end of the arrays
        for array, column in zip(self.arrays, columns):
            array[first:first + head] = column[:head]
            if head < k:
                array[:k - head] = column[head:]
        total = self.count + k
        if total > self.capacity:
            self.start = (self.start + total - self.capacity) % self.capacity
            total = self.capacity
        self.count = total

    def newest(self) -> tuple | None:
        """The newest row as a tuple of Python values (None when empty)."""
        if self.pending:
            return self.pending[-1]
        if not self.count:
            return None
        i = self.newest_index()
        return tuple(array[i].item() for array in self.arrays)

    def order(self) -> np.ndarray:
        """Physical indices from oldest to newest."""
        self.flush()
        return (self.start + np.arange(self.count)) % self.capacity

    def newest_index(self) -> int:
        self.flush()
        return (self.start + self.count - 1) % self.capacity

    def size(self) -> int:
        self.flush()
        return self.count

    def clear(self) -> None:
        self.pending = []
        self.start = 0
        self.count = 0


class TickRing:
    """Newest ``capacity`` ticks of each kind ("last", "bid_ask", "midpoint")."""

    __slots__ = ("capacity", "_rings", "_labels", "_codes", "_seq", "_latest", "rejected")

    def __init__(self, capacity: int = 10_000):
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = int(capacity)
        self._rings = {kind: _Ring(self.capacity, _SCHEMAS[kind]) for kind in KINDS}
        self._labels: list[str] = []          # code -> string, for categoricals
        self._codes: dict[str, int] = {}
        self._seq = 0
        self._latest: str | None = None       # the kind of the newest tick overall
        self.rejected = 0                     # ticks refused: non-finite time/price/size, negative size

    # ---- adding (tickByTickAllLast / tickByTickBidAsk / tickByTickMidPoint) ----------------
    def add_last(self, time: float, price: float, size: Decimal | float, exchange: str = "",
                 past_limit: bool = False, unreported: bool = False,
                 special_conditions: str = "") -> bool:
        """Add a trade; False (counted in ``rejected``) when it carries an unusable number."""
        if not _usable(time, (price,), (size,)):
            self.rejected += 1
            return False
        self._seq += 1
        self._latest = "last"
        self._rings["last"].append((float(time), _num(price), _num(size), self._code(exchange),
                                    self._code(special_conditions), bool(past_limit),
                                    bool(unreported), self._seq))
        return True

    def add_bid_ask(self, time: float, bid: float, ask: float, bid_size: Decimal | float,
                    ask_size: Decimal | float, bid_past_low: bool = False,
                    ask_past_high: bool = False) -> bool:
        """Add a bid/ask; False (counted in ``rejected``) when it carries an unusable number."""
        if not _usable(time, (bid, ask), (bid_size, ask_size)):
            self.rejected += 1
            return False
        self._seq += 1
        self._latest = "bid_ask"
        self._rings["bid_ask"].append((float(time), _num(bid), _num(ask), _num(bid_size),
                                       _num(ask_size), bool(bid_past_low), bool(ask_past_high),
                                       self._seq))
        return True

    def add_midpoint(self, time: float, mid: float) -> bool:
        """Add a midpoint; False (counted in ``rejected``) when it is not a finite number."""
        if not _usable(time, (mid,), ()):
            self.rejected += 1
            return False
        self._seq += 1
        self._latest = "midpoint"
        self._rings["midpoint"].append((float(time), _num(mid), self._seq))
        return True

    def _code(self, label: str | None) -> int:
        label = label or ""
        code = self._codes.get(label)
        if code is None:
            code = self._codes[label] = len(self._labels)
            self._labels.append(label)
        return code

    # ---- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Ticks held over all kinds."""
        return sum(ring.size() for ring in self._rings.values())

    def count(self, kind: str) -> int:
        return self._rings[_kind(kind)].size()

    def last(self, kind: str | None = None) -> dict[str, Any] | None:
        """Newest tick of ``kind`` (or of any kind) as a dict with a "kind" key; None if empty."""
        name = self._latest if kind is None else _kind(kind)
        row = None if name is None else self._rings[name].newest()
        if row is None:
            return None
        ring = self._rings[name]
        out: dict[str, Any] = dict(zip(ring.fields, row), kind=name)
        if ring.coded:
            labels = self._labels
            for col in ring.coded:
                out[col] = labels[out[col]]
        return out

    def check_invariants(self) -> list[str]:
        """What breaks the rings' rules (empty when all is well): counts within capacity, sequence numbers
        increasing oldest to newest, no infinities, times finite, sizes >= 0 (NaN only as "not available"),
        interned codes valid."""
        problems: list[str] = []
        for kind, ring in self._rings.items():
            if len(ring.pending) > ring.chunk:
                problems.append(f"{kind}: {len(ring.pending)} pending rows, more than a chunk ({ring.chunk})")
            order = ring.order()
            if not 0 <= ring.count <= ring.capacity or not 0 <= ring.start < ring.capacity:
                problems.append(f"{kind}: count {ring.count} start {ring.start} outside capacity {ring.capacity}")
                continue
            columns = {name: array[order] for name, array in zip(ring.names, ring.arrays)}
            seq = columns["seq"]
            if len(seq) > 1 and not (np.diff(seq) > 0).all():
                problems.append(f"{kind}: sequence numbers not increasing oldest to newest")
            if len(seq) and seq[-1] > self._seq:
                problems.append(f"{kind}: sequence {seq[-1]} ahead of the ring's {self._seq}")
            if not np.isfinite(columns["time"]).all():
                problems.append(f"{kind}: a non-finite time")
            for name, values in columns.items():
                if values.dtype.kind == "f" and np.isinf(values).any():
                    problems.append(f"{kind}: an infinite {name}")
                if name in _SIZE_COLUMNS and (values < 0).any():
                    problems.append(f"{kind}: a negative {name}")
                if name in _CODED and len(values) and (values.min() < 0 or values.max() >= len(self._labels)):
                    problems.append(f"{kind}: {name} code outside the interned labels")
        return problems

    def to_frame(self, kind: str) -> pd.DataFrame:
        """Oldest-to-newest ticks of one kind, indexed by a tz-aware UTC DatetimeIndex."""
        ring = self._rings[_kind(kind)]
        order = ring.order()
        data: dict[str, Any] = {}
        times = None
        for col, array in zip(ring.names, ring.arrays):
            values = array[order]
            if col == "time":
                times = values
            elif col == "seq":
                continue
            elif col in _CODED:
                data[col] = pd.Categorical.from_codes(values, categories=self._labels or [""])
            else:
                data[col] = values
        index = pd.DatetimeIndex(pd.to_datetime(times, unit="s", utc=True), name="time")
        return pd.DataFrame(data, index=index)

    def clear(self) -> None:
        for ring in self._rings.values():
            ring.clear()
        self._latest = None


def _kind(kind: str) -> str:
    try:
        return _ALIASES[kind.lower().replace("_", "").replace("-", "")]
    except KeyError:
        raise ValueError(f"unknown tick kind {kind!r}; expected one of {KINDS}") from None
