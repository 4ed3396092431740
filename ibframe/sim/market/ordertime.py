"""Session clocks: instrument sessions as the broker and the market's trading gate ask about them, and
TWS time strings. (Kept in the market part: `trading_time.TradingGate` builds on `SessionClock`.)

Owns: a per-broker (and per-gate) cache of liquid and trading session intervals per hours kind (built from
`hours.sessions`), so "is it open now?", "when is the next close?" and "when is the next open?"
cost a binary search per order per step instead of calendar work; the parsing of the times orders
carry (goodTillDate, goodAfterTime, algo startTime/endTime, the execution filter's time) and the
execution time format ("yyyymmdd hh:mm:ss US/Eastern").

Must never: hold order state, read the wall clock or touch sessions and sockets.
"""
from __future__ import annotations

import datetime as dt
import re
from bisect import bisect_right
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import hours

EASTERN = ZoneInfo("America/New_York")
ZONE_ALIASES = {"EST": "America/New_York", "EDT": "America/New_York", "ET": "America/New_York",
                "EST5EDT": "America/New_York", "GMT": "UTC", "Z": "UTC"}
DAY = 86400.0


@dataclass(slots=True)
class _Span:
    lo: float                 # the cache answers for lo <= t < hi
    hi: float
    opens: list[float]
    closes: list[float]


class SessionClock:
    """Liquid / trading sessions of every hours kind, cached around the times asked about."""

    def __init__(self):
        self._spans: dict[tuple[str, bool], _Span] = {}

    def _span(self, kind: str, liquid: bool, t: float) -> _Span:
        span = self._spans.get((kind, liquid))
        if span is None or not span.lo <= t < span.hi:
            day = dt.datetime.fromtimestamp(t, EASTERN).date()
            pairs = hours.sessions(kind, day - dt.timedelta(days=5), day + dt.timedelta(days=12), liquid)
            lo = dt.datetime.combine(day - dt.timedelta(days=2), dt.time(), EASTERN).timestamp()
            span = _Span(lo, lo + 11 * DAY, [o.timestamp() for o, _ in pairs], [c.timestamp() for _, c in pairs])
            self._spans[(kind, liquid)] = span
        return span

    def is_open(self, kind: str, liquid: bool, t: float) -> bool:
        s = self._span(kind, liquid, t)
        i = bisect_right(s.opens, t) - 1
        return i >= 0 and t < s.closes[i]

    def next_close(self, kind: str, liquid: bool, t: float) -> float | None:
        """The close of the session `t` is in, else of the next session (None if none is near)."""
        s = self._span(kind, liquid, t)
        i = bisect_right(s.closes, t)
        return s.closes[i] if i < len(s.closes) else None

    def next_open(self, kind: str, liquid: bool, t: float) -> float | None:
        """The first session open strictly after `t` (an open session's own open is in the past)."""
        s = self._span(kind, liquid, t)
        i = bisect_right(s.opens, t)
        return s.opens[i] if i < len(s.opens) else None

    def session_open(self, kind: str, liquid: bool, t: float) -> float | None:
        """The open of the session `t` is in, or None when closed."""
        s = self._span(kind, liquid, t)
        i = bisect_right(s.opens, t) - 1
        return s.opens[i] if i >= 0 and t < s.closes[i] else None

    def previous_close(self, kind: str, liquid: bool, t: float) -> float | None:
        """The latest session close at or before `t` (None if none is near)."""
        s = self._span(kind, liquid, t)
        i = bisect_right(s.closes, t) - 1
        return s.closes[i] if i >= 0 else None


# --- TWS time strings --------------------------------------------------------------------------------

_DATE_TIME = re.compile(r"^(\d{8})(?:[ -](\d{1,2}):(\d{2})(?::(\d{2}))?)?(?:\s+(\S+))?$")
_TIME_ONLY = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s+(\S+))?$")


def _zone(name: str | None, utc_default: bool) -> dt.tzinfo:
    if not name:
        return dt.timezone.utc if utc_default else EASTERN
    name = ZONE_ALIASES.get(name.upper(), name)
    if name.upper() == "UTC":
        return dt.timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_tws_time(text: str, now: float, end_of_day: bool = False) -> float:
    """Epoch seconds of a TWS order/filter time.

    Accepts "yyyymmdd hh:mm:ss [zone]" (zone default US/Eastern, TWS's own), "yyyymmdd-hh:mm:ss"
    (UTC, as IB documents), "hh:mm:ss [zone]" (today, for algo windows) and "yyyymmdd" (the end
    of that day with `end_of_day`, else its start). ValueError for anything else.
    """
    text = " ".join(text.strip().split())
    m = _DATE_TIME.match(text)
    if m:
        date_s, hh, mm, ss, zone = m.groups()
        day = dt.datetime.strptime(date_s, "%Y%m%d").date()
        utc_default = "-" in text[8:9]
        tz = _zone(zone, utc_default)
        if hh is None:
            at = dt.time(23, 59, 59) if end_of_day else dt.time()
        else:
            at = dt.time(int(hh), int(mm), int(ss or 0))
        return dt.datetime.combine(day, at, tz).timestamp()
    m = _TIME_ONLY.match(text)
    if m:
        hh, mm, ss, zone = m.groups()
        tz = _zone(zone, False)
        day = dt.datetime.fromtimestamp(now, tz).date()
        return dt.datetime.combine(day, dt.time(int(hh), int(mm), int(ss or 0)), tz).timestamp()
    raise ValueError(f"cannot read time {text!r}; use 'yyyymmdd hh:mm:ss US/Eastern' or 'yyyymmdd-hh:mm:ss'")


def exec_time(t: float) -> str:
    """Execution / completed-order time as TWS prints it."""
    return dt.datetime.fromtimestamp(t, EASTERN).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"


def eastern_date(t: float) -> int:
    """yyyymmdd (as an int) of `t` in New York."""
    return int(dt.datetime.fromtimestamp(t, EASTERN).strftime("%Y%m%d"))


def eastern_midnight(t: float) -> float:
    d = dt.datetime.fromtimestamp(t, EASTERN).date()
    return dt.datetime.combine(d, dt.time(), EASTERN).timestamp()
