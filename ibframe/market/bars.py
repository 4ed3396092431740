"""OHLCV bar series for one contract and one bar size.

Owns: bars from ``historicalData`` (initial load), ``historicalDataEnd``,
``historicalDataUpdate`` (keepUpToDate) and ``realtimeBar`` (5-second bars); parsing IB's
bar date strings into UTC nanoseconds; telling listeners when a bar has completed.

Must never: take locks, do I/O, or call ibapi ``EClient``. Updated ONLY on the
framework's single dispatch thread.

Storage: preallocated numpy columns that double in size when full (amortised O(1) per
bar; no pandas concat per bar). ``to_frame`` builds a DataFrame on demand.

Dates (``parse_bar_time``):
  * ``"yyyymmdd"`` (daily and longer bars): midnight of that date in the exchange zone
    ``tz`` (default America/New_York).
  * ``"yyyymmdd hh:mm:ss"`` optionally followed by a zone name (``US/Eastern``,
    ``America/New_York``...; TWS 10.17+ appends it). Without a zone the wall time is read
    in ``tz``. Older TWS separates date and time by two spaces; that is accepted too.
  * ``"yyyymmdd-hh:mm:ss"``: UTC (IB's UTC format).
  * all digits but not 8 of them: epoch seconds (``formatDate=2``).
The index of ``to_frame`` is tz-aware in ``tz``.

Real-time 5-second bars are aggregated into this series' bar size: a 5-s bar merges into
the last bar when it falls inside that bar's period (so IB's 09:30 first hourly bar keeps
absorbing 09:30-09:59:55), otherwise it opens a new bar stamped at the start of its period
(periods are aligned on the wall clock of ``tz``; "1 day" means the local calendar date).
Bar sizes of 5 s or less keep each 5-s bar as-is. Week and month sizes cannot be built from
5-s bars without a trading calendar, so real-time bars are ignored (and counted) there.
A fixed-period bar is reported closed as soon as its last 5-s slice arrives; any other
bar when the next bar begins.

Bad bars never enter: a bar whose open/high/low/close is not a finite number, whose high is
below its open, close or low (or low above its open, close or high), whose volume is
negative (IB's -1 "not available" reads as NaN) or infinite, or whose WAP is infinite, is
refused and counted in ``rejected`` (a merge of 5-s bars that would overflow likewise).
``check_invariants()`` lists what breaks these rules or the series' order (empty when fine).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from ibapi.const import UNSET_DECIMAL, UNSET_DOUBLE

__all__ = ["Bars", "Bar", "parse_bar_time", "bar_size_seconds", "COLUMNS"]

COLUMNS = ("open", "high", "low", "close", "volume", "wap", "count")
_NS = 1_000_000_000
_REALTIME_SECONDS = 5
_UNIT_SECONDS = {"sec": 1, "secs": 1, "second": 1, "seconds": 1, "min": 60, "mins": 60,
                 "minute": 60, "minutes": 60, "hour": 3600, "hours": 3600,
                 "day": 86400, "days": 86400, "week": None, "weeks": None,
                 "month": None, "months": None}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([A-Za-z]+)\s*$")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} in bar date") from exc


def bar_size_seconds(bar_size: str) -> tuple[int | None, str]:
    """``"5 mins"`` -> (300, "mins"). Seconds is None for week/month sizes."""
    match = _SIZE_RE.match(bar_size)
    if not match or match.group(2).lower() not in _UNIT_SECONDS:
        raise ValueError(f"unrecognised IB bar size {bar_size!r}")
    unit = match.group(2).lower()
    per = _UNIT_SECONDS[unit]
    return (None if per is None else int(match.group(1)) * per), unit


def _local_ns(y: int, mo: int, d: int, h: int, mi: int, s: int, zone: Any) -> int:
    return int(datetime(y, mo, d, h, mi, s, tzinfo=zone).timestamp()) * _NS


def parse_bar_time(text: str | int, tz: str = "America/New_York") -> int:
    """An IB bar date (see module docstring) -> epoch nanoseconds (UTC)."""
    s = str(text).strip()
    try:
        if s.isdigit():
            if len(s) == 8:
                return _local_ns(int(s[:4]), int(s[4:6]), int(s[6:8]), 0, 0, 0, _zone(tz))
            return int(s) * _NS
        parts = s.split()
        if len(parts) == 1 and len(s) == 17 and s[8] == "-":          # yyyymmdd-hh:mm:ss UTC
            day, clock, zone = s[:8], s[9:], timezone.utc
        elif len(parts) in (2, 3) and len(parts[0]) == 8 and len(parts[1]) == 8:
            day, clock = parts[0], parts[1]
            zone = _zone(parts[2]) if len(parts) == 3 else _zone(tz)
        else:
            raise ValueError
        if not (day.isdigit() and clock[2] == ":" and clock[5] == ":"):
            raise ValueError
        return _local_ns(int(day[:4]), int(day[4:6]), int(day[6:8]), int(clock[:2]),
                         int(clock[3:5]), int(clock[6:8]), zone)
    except ValueError as exc:
        if "time zone" in str(exc):
            raise
        raise ValueError(f"unrecognised IB bar date {text!r}") from None


def _num(value: Any) -> float:
    """Decimal/float volume or wap -> float; IB's 'not available' (-1, UNSET) -> NaN."""
    if value is None or value == UNSET_DECIMAL or value == UNSET_DOUBLE:
        return np.nan
    number = float(value)
    return np.nan if number == -1.0 else number


def _bar_problem(values: tuple) -> str | None:
    """Why (open, high, low, close, volume, wap, count) cannot be a bar, or None when it can."""
    o, h, lo, c, v, w, count = values
    if not -2 ** 62 < count < 2 ** 62:
        return f"bar count {count!r}"
    if not all(np.isfinite(x) for x in (o, h, lo, c)):
        return f"open/high/low/close {o!r}/{h!r}/{lo!r}/{c!r} not all finite"
    if h < max(o, c, lo) or lo > min(o, c, h):
        return f"high {h!r} / low {lo!r} do not bound open {o!r} and close {c!r}"
    if np.isinf(v) or v < 0:                        # NaN: IB's "not available"
        return f"volume {v!r}"
    if np.isinf(w):
        return f"wap {w!r}"
    return None


@dataclass(slots=True, frozen=True)
class Bar:
    """One completed (or current) bar; ``time`` is the bar's start, tz-aware."""

    time: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float
    count: int


class Bars:
    """Growing OHLCV series for one bar size; see module docstring."""

    def __init__(self, bar_size: str, tz: str = "America/New_York", capacity: int = 256):
        self.bar_size = bar_size
        self.period, self._unit = bar_size_seconds(bar_size)
        self.tz = tz
        _zone(tz)                                   # fail early on a bad zone
        self.complete = False                       # set by on_end (initial load finished)
        self.load_start: str | None = None
        self.load_end: str | None = None
        self.ignored = 0                            # out-of-order or unusable updates
        self.rejected = 0                           # bars refused for impossible values (see the docstring)
        self.backfilling = False                    # reloading after a reconnect (resume → on_end)
        self.backfilled = 0                         # bars added by reloads across a gap
        self.on_bar_closed: list[Callable[[Bar], None]] = []   # once per completed bar
        # after on_end, on_update and on_realtime_bar (not per bar of the initial load)
        self.on_change: list[Callable[["Bars"], None]] = []
        self._n = 0
        self._last_closed = False                   # on_bar_closed already fired for last bar
        cap = max(int(capacity), 1)
        self._time = np.zeros(cap, dtype="i8")      # bar start, epoch ns UTC
        self._f = {name: np.zeros(cap, dtype="f8") for name in COLUMNS[:-1]}
        self._count = np.zeros(cap, dtype="i8")

    # ---- storage -----------------------------------------------------------------------------
    def _grow(self) -> None:
        cap = len(self._time) * 2
        self._time = np.resize(self._time, cap)
        self._f = {name: np.resize(col, cap) for name, col in self._f.items()}
        self._count = np.resize(self._count, cap)

    def _write(self, i: int, t: int, o: float, h: float, lo: float, c: float,
               v: float, w: float, n: int) -> None:
        self._time[i] = t
        f = self._f
        f["open"][i], f["high"][i], f["low"][i], f["close"][i] = o, h, lo, c
        f["volume"][i], f["wap"][i] = v, w
        self._count[i] = n

    def _append(self, t: int, *values: Any) -> None:
        if self._n == len(self._time):
            self._grow()
        self._write(self._n, t, *values)
        self._n += 1

    def _values(self, bar: Any) -> tuple | None:
        """The bar's numbers, or None (counted in ``rejected``) when they break the bar rules."""
        values = (float(bar.open), float(bar.high), float(bar.low), float(bar.close),
                  _num(bar.volume), _num(bar.wap), int(bar.barCount))
        if _bar_problem(values) is not None:
            self.rejected += 1
            return None
        return values

    def _last_time(self) -> int | None:
        return int(self._time[self._n - 1]) if self._n else None

    def _bar(self, i: int) -> Bar:
        f = self._f
        return Bar(pd.Timestamp(int(self._time[i]), unit="ns", tz="UTC").tz_convert(self.tz),
                   float(f["open"][i]), float(f["high"][i]), float(f["low"][i]),
                   float(f["close"][i]), float(f["volume"][i]), float(f["wap"][i]),
                   int(self._count[i]))

    def _close_last(self) -> None:
        """Fire on_bar_closed once for the current last bar."""
        if self._n and not self._last_closed:
            self._last_closed = True
            bar = self._bar(self._n - 1)
            for hook in tuple(self.on_bar_closed):
                hook(bar)

    def _changed(self) -> None:
        for hook in tuple(self.on_change):
            hook(self)

    # ---- callbacks ---------------------------------------------------------------------------
    def on_bar(self, bar: Any) -> None:
        """historicalData: one bar of the initial load (oldest first), or of a reload after a reconnect."""
        t = parse_bar_time(bar.date, self.tz)
        values = self._values(bar)
        if values is None:
            return
        last = self._last_time()
        if last is not None and t == last:
            self._write(self._n - 1, t, *values)
        elif last is not None and t < last:
            if not self.backfilling:            # a reload repeats the bars already held: not an error
                self.ignored += 1
        else:
            if self.backfilling:                # a bar completed during the gap: report it closed once
                self._close_last()
                self.backfilled += 1
            self._append(t, *values)
            self._last_closed = False

    def on_end(self, start: str = "", end: str = "") -> None:
        """historicalDataEnd: the initial load (or a reload) is complete."""
        self.complete = True
        self.backfilling = False
        self.load_start, self.load_end = start, end
        self._changed()

    def resume(self) -> None:
        """The series is being reloaded after a reconnect: the reload's bars merge into the ones held (the
        same start time replaces the bar, earlier ones are skipped, later ones fill the gap)."""
        self.backfilling = True

    def on_update(self, bar: Any) -> None:
        """historicalDataUpdate (keepUpToDate): same date replaces, a newer one appends.

        A newer bar means the previous bar has completed, so on_bar_closed fires for it.
        """
        t = parse_bar_time(bar.date, self.tz)
        values = self._values(bar)
        if values is None:
            return
        last = self._last_time()
        if last is not None and t == last:
            self._write(self._n - 1, t, *values)
        elif last is not None and t < last:
            self.ignored += 1
            return
        else:
            self._close_last()
            self._append(t, *values)
            self._last_closed = False
        self._changed()

    def on_realtime_bar(self, time: int, open: float, high: float, low: float, close: float,
                        volume: Decimal | float, wap: Decimal | float, count: int) -> None:
        """realtimeBar: a 5-second bar starting at epoch second ``time``."""
        if self.period is None:                     # week/month: see module docstring
            self.ignored += 1
            return
        t_sec = int(time)
        t = t_sec * _NS
        vol, w = _num(volume), _num(wap)
        values = (float(open), float(high), float(low), float(close), vol, w, int(count))
        if _bar_problem(values) is not None:
            self.rejected += 1
            return
        last = self._last_time()
        if last is not None and t < last:
            self.ignored += 1
            return
        start, end = self._period_bounds(t_sec)
        if last is not None and self.period <= _REALTIME_SECONDS and t == last:
            self._write(self._n - 1, t, *values)    # the same 5-s bar again: replace
        elif last is not None and self._period_bounds(last // _NS)[1] == end:
            if not self._merge(values):             # inside the last bar's period
                self.rejected += 1
                return
        else:
            self._close_last()
            self._append(start * _NS, *values)
            self._last_closed = False
        if self._unit not in ("day", "days") and t_sec + _REALTIME_SECONDS >= end:
            self._close_last()                      # its last 5-s slice has arrived
        self._changed()

    def _period_bounds(self, t_sec: int) -> tuple[int, int]:
        """[start, end) epoch seconds of the bar period containing t_sec, on tz's wall clock."""
        if self.period <= _REALTIME_SECONDS:
            return t_sec, t_sec + _REALTIME_SECONDS
        zone = _zone(self.tz)
        local = datetime.fromtimestamp(t_sec, zone)
        if self._unit in ("day", "days"):
            today = local.date()
            tomorrow = today + timedelta(days=1)
            return (int(datetime(today.year, today.month, today.day, tzinfo=zone).timestamp()),
                    int(datetime(tomorrow.year, tomorrow.month, tomorrow.day,
                                 tzinfo=zone).timestamp()))
        offset = int(local.utcoffset().total_seconds())
        wall = t_sec + offset
        start = wall - wall % self.period - offset
        return start, start + self.period

    def _merge(self, values: tuple) -> bool:
        """Fold a 5-s bar into the last bar; False (nothing changed) if the result would overflow."""
        o, h, lo, c, v, w, n = values
        i = self._n - 1
        f = self._f
        old_v, old_w = float(f["volume"][i]), float(f["wap"][i])
        with np.errstate(over="ignore", invalid="ignore"):
            total = old_v if np.isnan(v) else v if np.isnan(old_v) else old_v + v
            wap = old_w
            if total > 0 and not np.isnan(old_v + v + old_w + w):
                wap = (old_w * old_v + w * v) / total         # volume-weighted
            elif np.isnan(old_w):
                wap = w
        if np.isinf(total) or np.isinf(wap):
            return False
        f["high"][i] = max(f["high"][i], h)
        f["low"][i] = min(f["low"][i], lo)
        f["close"][i] = c
        f["wap"][i] = wap
        f["volume"][i] = total
        self._count[i] += n
        return True

    # ---- checking ----------------------------------------------------------------------------
    def check_invariants(self) -> list[str]:
        """Every held bar that breaks the bar rules, and times out of order (empty when all is well)."""
        problems: list[str] = []
        n, f = self._n, self._f
        if n > len(self._time):
            problems.append(f"{n} bars counted but room for {len(self._time)}")
            return problems
        for i in range(n):
            values = (f["open"][i], f["high"][i], f["low"][i], f["close"][i], f["volume"][i], f["wap"][i], 0)
            problem = _bar_problem(tuple(float(x) for x in values[:6]) + (0,))
            if problem is not None:
                problems.append(f"bar {i}: {problem}")
        times = self._time[:n]
        if n > 1 and not (np.diff(times) > 0).all():
            problems.append("bar times not strictly increasing")
        return problems

    # ---- reading -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def _view(self, array: np.ndarray) -> np.ndarray:
        view = array[: self._n]
        view.flags.writeable = False
        return view

    @property
    def close(self) -> np.ndarray:
        """Read-only view of the close column (no copy)."""
        return self._view(self._f["close"])

    @property
    def open(self) -> np.ndarray:
        return self._view(self._f["open"])

    @property
    def high(self) -> np.ndarray:
        return self._view(self._f["high"])

    @property
    def low(self) -> np.ndarray:
        return self._view(self._f["low"])

    @property
    def volume(self) -> np.ndarray:
        return self._view(self._f["volume"])

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(self._time[: self._n], unit="ns", utc=True),
                                name="time").tz_convert(self.tz)

    @property
    def last(self) -> Bar | None:
        return self._bar(self._n - 1) if self._n else None

    def to_frame(self) -> pd.DataFrame:
        """Columns open, high, low, close, volume, wap (float64), count (int64)."""
        n = self._n
        data = {name: self._f[name][:n].copy() for name in COLUMNS[:-1]}
        data["count"] = self._count[:n].copy()
        return pd.DataFrame(data, index=self.index, columns=list(COLUMNS))

    def __repr__(self) -> str:
        return f"Bars({self.bar_size!r}, {self._n} bars, complete={self.complete})"
