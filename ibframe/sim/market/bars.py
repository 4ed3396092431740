"""Bar sizes, durations, the step table and the aggregation of price units into bars.

Owns: IB's legal bar-size and duration strings and which pairs TWS accepts (the step table of
IB's historical-data limitations page), the `Units` record (per-second or per-minute slices of a
price series) and its associative reduction into bars, how bars are keyed (clock-aligned for
intraday sizes, by trading-session label for daily, weekly and monthly sizes) and how a bar's
date is printed for formatDate 1 and 2. Pure functions over numpy arrays: never touches a
session, the market or the clock.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from .hours import TZ, ZONE_ID

DAY = 86400
WEEK = 7 * DAY
MONTH = 30 * DAY            # nominal, for comparisons in the step table only
YEAR = 365 * DAY
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class BarSize:
    name: str
    seconds: int            # nominal length (30 days for a month)
    calendar: str = ""      # "", "day", "week" or "month": calendar bars are keyed by session label

    @property
    def intraday(self) -> bool:
        return not self.calendar


_SIZES = [("1 secs", 1), ("5 secs", 5), ("10 secs", 10), ("15 secs", 15), ("30 secs", 30),
          ("1 min", 60), ("2 mins", 120), ("3 mins", 180), ("5 mins", 300), ("10 mins", 600),
          ("15 mins", 900), ("20 mins", 1200), ("30 mins", 1800), ("1 hour", 3600), ("2 hours", 7200),
          ("3 hours", 10800), ("4 hours", 14400), ("8 hours", 28800)]
BAR_SIZES: dict[str, BarSize] = {name: BarSize(name, sec) for name, sec in _SIZES}
BAR_SIZES["1 day"] = BarSize("1 day", DAY, "day")
for _alias in ("1 week", "1W", "1 W"):
    BAR_SIZES[_alias] = BarSize("1 week", WEEK, "week")
for _alias in ("1 month", "1M", "1 M"):
    BAR_SIZES[_alias] = BarSize("1 month", MONTH, "month")
LEGAL_BAR_SIZES = ", ".join([n for n, _ in _SIZES] + ["1 day", "1W", "1M"])   # as TWS lists them

_DURATION = re.compile(r"^\s*(\d+)\s+([SDWMY])\s*$")
_UNIT_SECONDS = {"S": 1, "D": DAY, "W": WEEK, "M": MONTH, "Y": YEAR}
MAX_SECONDS_DURATION = DAY


@dataclass(frozen=True, slots=True)
class Duration:
    count: int
    unit: str               # S D W M Y

    @property
    def nominal_seconds(self) -> int:
        return self.count * _UNIT_SECONDS[self.unit]

    def __str__(self) -> str:
        return f"{self.count} {self.unit}"


def parse_bar_size(text: str) -> BarSize | None:
    return BAR_SIZES.get(text.strip())


def parse_duration(text: str) -> Duration | None:
    m = _DURATION.match(text)
    if not m or int(m.group(1)) <= 0:
        return None
    return Duration(int(m.group(1)), m.group(2))


# Step table (IB "historical data limitations"): longest duration -> (smallest, largest) bar.
STEP_TABLE: tuple[tuple[int, int, int], ...] = (
    (60, 1, 60),
    (120, 1, 120),
    (1800, 1, 1800),
    (3600, 5, 3600),
    (14400, 10, 10800),
    (28800, 30, 28800),
    (DAY, 60, DAY),
    (2 * DAY, 120, DAY),
    (WEEK, 180, WEEK),
    (MONTH, 1800, MONTH),
    (YEAR, DAY, MONTH),
)


def step_range(duration: Duration) -> tuple[int, int]:
    """(smallest, largest) bar length in seconds TWS serves for this duration."""
    span = duration.nominal_seconds
    for longest, smallest, largest in STEP_TABLE:
        if span <= longest:
            return smallest, largest
    return DAY, MONTH


def step_allowed(duration: Duration, bar: BarSize) -> bool:
    smallest, largest = step_range(duration)
    return smallest <= bar.seconds <= largest


def describe_seconds(seconds: int) -> str:
    for size in BAR_SIZES.values():
        if size.seconds == seconds:
            return size.name
    return f"{seconds} secs"


# --------------------------------------------------------------------------- units and bars


@dataclass(slots=True)
class Units:
    """Consecutive slices of one price series, sorted by time; a reduced bar is a Units row too.

    `dur` is the seconds each row covers (time weights for BID_ASK averages), `pv` the traded
    value (price x volume, for WAP), `sb`/`sa` time-weighted bid/ask closes (BID_ASK bars) and
    `d` a date ordinal (session label) for calendar bars.
    """
    t: np.ndarray           # int64 start second
    dur: np.ndarray         # float64
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray
    c: np.ndarray
    v: np.ndarray
    n: np.ndarray
    pv: np.ndarray
    sb: np.ndarray
    sa: np.ndarray
    d: np.ndarray           # int64

    def __len__(self) -> int:
        return len(self.t)

    @classmethod
    def empty(cls) -> "Units":
        z = np.zeros(0)
        return cls(np.zeros(0, np.int64), z, z, z, z, z, z, z, z, z, z, np.zeros(0, np.int64))

    @classmethod
    def make(cls, t, dur, o, h, l, c, v=None, n=None, pv=None) -> "Units":
        t = np.asarray(t, dtype=np.int64)
        zeros = np.zeros(len(t))
        dur = np.broadcast_to(np.asarray(dur, dtype=np.float64), t.shape).copy()
        return cls(t, dur, np.asarray(o, float), np.asarray(h, float), np.asarray(l, float),
                   np.asarray(c, float), zeros if v is None else np.asarray(v, float),
                   zeros if n is None else np.asarray(n, float), zeros if pv is None else np.asarray(pv, float),
                   zeros.copy(), zeros.copy(), np.zeros(len(t), np.int64))

    def take(self, index) -> "Units":
        return Units(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def concat(parts: list["Units"]) -> "Units":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Units.empty()
        if len(parts) == 1:
            return parts[0]
        return Units(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Units)))


def reduce(units: Units, ids: np.ndarray) -> tuple[Units, np.ndarray]:
    """Collapse runs of equal consecutive ids into one row each; associative, so partial bars
    from adjacent chunks (or a live bar and its new seconds) merge by reducing again."""
    if len(units) == 0:
        return units, ids
    ids = np.asarray(ids)
    starts = np.concatenate(([0], np.flatnonzero(ids[1:] != ids[:-1]) + 1))
    ends = np.concatenate((starts[1:], [len(ids)])) - 1
    add = np.add.reduceat
    out = Units(units.t[starts], add(units.dur, starts), units.o[starts], np.maximum.reduceat(units.h, starts),
                np.minimum.reduceat(units.l, starts), units.c[ends], add(units.v, starts), add(units.n, starts),
                add(units.pv, starts), add(units.sb, starts), add(units.sa, starts),
                np.maximum.reduceat(units.d, starts))
    return out, ids[starts]


# --------------------------------------------------------------------------- keys and labels


def local_seconds(t: np.ndarray) -> np.ndarray:
    """New York wall-clock seconds for sorted epoch seconds (one zone lookup per distinct hour)."""
    t = np.asarray(t, dtype=np.int64)
    if len(t) == 0:
        return t
    hrs = t // 3600
    first = np.concatenate(([True], hrs[1:] != hrs[:-1]))
    uniq = hrs[first] * 3600
    local = pd.to_datetime(uniq, unit="s", utc=True).tz_convert(TZ).tz_localize(None).as_unit("s").asi8
    return t + (local - uniq)[np.cumsum(first) - 1]


def bar_ids(units: Units, bar: BarSize) -> np.ndarray:
    """The bar each unit belongs to: clock buckets (New York midnight for multi-hour sizes), or
    the unit's session label (`units.d`, a date ordinal) for day / ISO week / month bars."""
    if bar.calendar == "day":
        return units.d
    if bar.calendar == "week":
        return (units.d - 1) // 7          # ordinal 1 (0001-01-01) is a Monday
    if bar.calendar == "month":
        days = units.d.astype("int64") - EPOCH_ORDINAL
        months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        return months
    if bar.seconds > 3600:
        return local_seconds(units.t) // bar.seconds
    return units.t // bar.seconds


def snap_up(a: int, bar: BarSize) -> int:
    """The first intraday bar boundary at or after second a (New York midnight for multi-hour sizes)."""
    if bar.seconds <= 3600:
        return -(-a // bar.seconds) * bar.seconds
    local = int(local_seconds(np.array([a]))[0])
    return a + (-(-local // bar.seconds) * bar.seconds - local)


def align(bars: Units, ids: np.ndarray, bar: BarSize) -> Units:
    """Date intraday bars (reduced with `bar_ids`) on their bar-size boundary: the bucket's start,
    or the whole minute its first unit starts on when that is later (a session opening inside a
    bucket, as 09:30 inside the 09:00 hour). Calendar bars keep their session dates."""
    if bar.calendar or len(bars) == 0:
        return bars
    t = bars.t
    if bar.seconds > 3600:
        start = t - (local_seconds(t) - np.asarray(ids, np.int64) * bar.seconds)
    else:
        start = np.asarray(ids, np.int64) * bar.seconds
    grain = min(bar.seconds, 60)
    bars.t = np.maximum(start, t // grain * grain)
    return bars


def format_bar_date(bars: Units, bar: BarSize, format_date: int) -> list[str]:
    """Bar dates as TWS prints them: intraday "yyyymmdd hh:mm:ss US/Eastern" (formatDate 1) or
    epoch seconds (2); day, week and month bars always "yyyymmdd" (the session label, for week
    and month bars the last trading day in the bar)."""
    if bar.calendar:
        days = (bars.d - EPOCH_ORDINAL).astype("datetime64[D]")
        return [str(x).replace("-", "") for x in days]
    if format_date == 2:
        return [str(int(x)) for x in bars.t]
    local = local_seconds(bars.t).astype("datetime64[s]")
    return [f"{str(x)[:10].replace('-', '')} {str(x)[11:19]} {ZONE_ID}" for x in local]


def format_time(epoch: float) -> str:
    """A request-level time stamp the way TWS 10.17+ prints one: "yyyymmdd hh:mm:ss US/Eastern"."""
    t = pd.Timestamp(int(epoch), unit="s", tz="UTC").tz_convert(TZ)
    return t.strftime("%Y%m%d %H:%M:%S ") + ZONE_ID
