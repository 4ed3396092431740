"""Bounded in-memory history of tick-by-tick data for one contract.

Owns: the most recent ``capacity`` ticks of each tick-by-tick kind (trades, bid/ask,
midpoint), stored column-wise in preallocated numpy arrays used as circular buffers;
the oldest entry of a kind is overwritten once that kind is full.

Must never: take locks, do I/O, or call ibapi ``EClient``. Updated ONLY on the
framework's single dispatch thread.

Design choice: one ring PER KIND, not one ring with a kind column. The kinds have
different columns (a shared table would carry mostly-empty columns), and, more
importantly, their rates differ by orders of magnitude: in a shared ring a burst of
bid/ask updates would evict every trade. Separate rings keep ``capacity`` of each.
A global sequence number per entry still lets ``last()`` find the newest tick overall.

Strings (exchange, special conditions) are interned into small integer codes so no
Python objects are kept per tick; ``to_frame`` returns them as pandas categoricals.
"""
from __future__ import annotations

from decimal import Decimal
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
_CODED = frozenset({"exchange", "special_conditions"})


def _num(value: Any) -> float:
    """Decimal/float size or price -> float; IB's UNSET sentinels -> NaN."""
    if value is None or value == UNSET_DECIMAL or value == UNSET_DOUBLE:
        return np.nan
    return float(value) if not isinstance(value, float) else value


class _Ring:
    """Fixed-capacity circular column store; index 0 of ``ordered`` is the oldest entry."""

    __slots__ = ("capacity", "names", "arrays", "start", "count")

    def __init__(self, capacity: int, schema: tuple[tuple[str, str], ...]):
        self.capacity = capacity
        self.names = tuple(name for name, _ in schema)
        self.arrays = tuple(np.zeros(capacity, dtype=dtype) for _, dtype in schema)
        self.start = 0
        self.count = 0

    def append(self, values: tuple) -> None:
        if self.count < self.capacity:
            pos = (self.start + self.count) % self.capacity
            self.count += 1
        else:                                # full: overwrite the oldest, advance start
            pos = self.start
            self.start = (self.start + 1) % self.capacity
        for array, value in zip(self.arrays, values):
            array[pos] = value

    def order(self) -> np.ndarray:
        """Physical indices from oldest to newest."""
        return (self.start + np.arange(self.count)) % self.capacity

    def newest_index(self) -> int:
        return (self.start + self.count - 1) % self.capacity

    def clear(self) -> None:
        self.start = 0
        self.count = 0


class TickRing:
    """Newest ``capacity`` ticks of each kind ("last", "bid_ask", "midpoint")."""

    __slots__ = ("capacity", "_rings", "_labels", "_codes", "_seq")

    def __init__(self, capacity: int = 10_000):
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = int(capacity)
        self._rings = {kind: _Ring(self.capacity, _SCHEMAS[kind]) for kind in KINDS}
        self._labels: list[str] = []          # code -> string, for categoricals
        self._codes: dict[str, int] = {}
        self._seq = 0

    # ---- adding (tickByTickAllLast / tickByTickBidAsk / tickByTickMidPoint) ----------------
    def add_last(self, time: float, price: float, size: Decimal | float, exchange: str = "",
                 past_limit: bool = False, unreported: bool = False,
                 special_conditions: str = "") -> None:
        self._seq += 1
        self._rings["last"].append((float(time), _num(price), _num(size), self._code(exchange),
                                    self._code(special_conditions), bool(past_limit),
                                    bool(unreported), self._seq))

    def add_bid_ask(self, time: float, bid: float, ask: float, bid_size: Decimal | float,
                    ask_size: Decimal | float, bid_past_low: bool = False,
                    ask_past_high: bool = False) -> None:
        self._seq += 1
        self._rings["bid_ask"].append((float(time), _num(bid), _num(ask), _num(bid_size),
                                       _num(ask_size), bool(bid_past_low), bool(ask_past_high),
                                       self._seq))

    def add_midpoint(self, time: float, mid: float) -> None:
        self._seq += 1
        self._rings["midpoint"].append((float(time), _num(mid), self._seq))

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
        return sum(ring.count for ring in self._rings.values())

    def count(self, kind: str) -> int:
        return self._rings[_kind(kind)].count

    def last(self, kind: str | None = None) -> dict[str, Any] | None:
        """Newest tick of ``kind`` (or of any kind) as a dict with a "kind" key; None if empty."""
        kinds = KINDS if kind is None else (_kind(kind),)
        best: tuple[int, str, int] | None = None
        for name in kinds:
            ring = self._rings[name]
            if ring.count:
                i = ring.newest_index()
                seq = int(ring.arrays[-1][i])
                if best is None or seq > best[0]:
                    best = (seq, name, i)
        if best is None:
            return None
        _, name, i = best
        ring = self._rings[name]
        row: dict[str, Any] = {"kind": name}
        for col, array in zip(ring.names, ring.arrays):
            if col == "seq":
                continue
            value = array[i].item()
            row[col] = self._labels[value] if col in _CODED else value
        return row

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


def _kind(kind: str) -> str:
    try:
        return _ALIASES[kind.lower().replace("_", "").replace("-", "")]
    except KeyError:
        raise ValueError(f"unknown tick kind {kind!r}; expected one of {KINDS}") from None
