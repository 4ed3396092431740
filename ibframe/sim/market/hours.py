"""Trading sessions of the instruments the simulated gateway serves.

Owns: which hours each kind of instrument trades (``tradingHours``) and when it is liquid
(``liquidHours``, IB's "regular trading hours"), written in IB's ContractDetails string format
(``"20231204:0930-20231204:1600;...;20231209:CLOSED"``), the same sessions as tz-aware
timestamp pairs, whether a timestamp lies inside a session (scalar ``is_open`` and vectorised
``rth_mask`` for ``useRTH=1`` bar filtering), and the most recent liquid close before a time.
Holidays and early closes come from ``exchange_calendars`` (XNYS, CMES); nothing here keeps a
holiday table of its own.

Must never: do I/O other than what the calendar library does while building a calendar, hold
or touch simulator state (orders, prices, clocks, connections), or read the wall clock for
anything but choosing the default calendar window.

Kinds (all times US/Eastern wall clock; a session's *label* is the calendar day it closes on):

``us_equity``
    liquid = the XNYS session (09:30-16:00, or the early close, e.g. 13:00); trading = 04:00-20:00
    on XNYS sessions, ending at 17:00 (liquid close + 4h) on early-close days like NYSE Arca.
``us_option``
    trading = liquid = the XNYS session (09:30-16:00, early-close aware).
``us_bond``
    trading = liquid = 08:00-17:00 on XNYS sessions.
``cme_index_future``
    trading = 18:00 the previous calendar day -> 17:00 (so Sunday evening through Friday, with a
    daily 17:00-18:00 break), on CMES sessions (XNYS sessions if this exchange_calendars has no
    CMES); an early CME close (e.g. 13:00) replaces the 17:00 close. liquid = 09:30-16:00 capped
    by that day's trading close.
``fx``
    IDEALPRO: trading = liquid = 17:15 the previous calendar day -> 17:00, Monday to Friday
    labels, i.e. Sunday 17:15 through Friday 17:00. No holidays.

Calendars are built lazily once per process over roughly two years back to one year ahead of
today, and silently rebuilt wider if a request falls outside (clipped to 1970-2100; outside
that every kind is closed).
"""
from __future__ import annotations

import datetime as _dt
import threading
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

ZONE_ID = "US/Eastern"  # what ContractDetails.timeZoneId reports for US stocks, options, bonds and FX
TZ = "America/New_York"  # the same zone, under its canonical name, for pandas
# the exchange's own zone, as TWS reports it (timeZoneId, and the zone tradingHours / liquidHours are written
# in): CME's products trade on Chicago time; sessions are still computed (and labelled) on New York days
ZONE_OF_KIND = {"cme_index_future": ("US/Central", "America/Chicago")}
_NEW_YORK = (ZONE_ID, TZ)                # every other kind
KINDS = ("us_equity", "us_option", "us_bond", "cme_index_future", "fx")

_MIN_DAY = _dt.date(1970, 1, 1)
_MAX_DAY = _dt.date(2100, 12, 31)
_MARGIN = _dt.timedelta(days=31)  # extra room taken whenever a calendar has to be widened

_lock = threading.RLock()
_calendars: dict[str, tuple[object, _dt.date, _dt.date]] = {}
_tables: dict[str, "_Table"] = {}


# --------------------------------------------------------------------------- session tables


@dataclass(frozen=True)
class _Sessions:
    """Sorted, non-overlapping sessions: label day, open and close as UTC epoch ns / seconds."""

    labels: np.ndarray  # datetime64[D]
    opens: np.ndarray  # int64 ns
    closes: np.ndarray  # int64 ns
    opens_s: np.ndarray  # float64 seconds (exact: sessions start on whole minutes)
    closes_s: np.ndarray

    @classmethod
    def build(cls, labels: pd.DatetimeIndex, opens: pd.DatetimeIndex, closes: pd.DatetimeIndex) -> "_Sessions":
        o = _ns(opens)
        c = _ns(closes)
        lab = np.asarray(labels.values.astype("datetime64[D]"))
        keep = c > o
        o, c, lab = o[keep], c[keep], lab[keep]
        order = np.argsort(o, kind="stable")
        o, c, lab = o[order], c[order], lab[order]
        if len(o) > 1 and np.any(o[1:] < c[:-1]):
            raise AssertionError("overlapping sessions")  # a bug in a builder below, not bad input
        return cls(lab, o, c, o / 1e9, c / 1e9)


@dataclass(frozen=True)
class _Table:
    first: _dt.date  # every label day in first..last has been evaluated
    last: _dt.date
    trading: _Sessions
    liquid: _Sessions

    def pick(self, liquid: bool) -> _Sessions:
        return self.liquid if liquid else self.trading


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown session kind {kind!r}; valid kinds: {', '.join(KINDS)}")


def _default_window() -> tuple[_dt.date, _dt.date]:
    today = _dt.date.today()
    return _dt.date(today.year - 2, 1, 1), _dt.date(today.year + 1, 12, 31)


def _widen(have: tuple[_dt.date, _dt.date] | None, lo: _dt.date, hi: _dt.date) -> tuple[_dt.date, _dt.date]:
    first, last = have if have is not None else _default_window()
    if lo < first:
        first = lo - _MARGIN
    if hi > last:
        last = hi + _MARGIN
    return max(first, _MIN_DAY), min(last, _MAX_DAY)


def _clip(lo: _dt.date, hi: _dt.date) -> tuple[_dt.date, _dt.date]:
    return min(max(lo, _MIN_DAY), _MAX_DAY), min(max(hi, _MIN_DAY), _MAX_DAY)


def _calendar(name: str, lo: _dt.date, hi: _dt.date):
    """The named exchange_calendars calendar, covering at least lo..hi (built once, widened if needed)."""
    with _lock:
        have = _calendars.get(name)
        if have is not None and have[1] <= lo and hi <= have[2]:
            return have[0]
        import exchange_calendars as xc  # slow import; only when a calendar is first needed

        first, last = _widen(None if have is None else (have[1], have[2]), lo, hi)
        first, last = min(first, lo), max(last, hi)
        with warnings.catch_warnings():
            # exchange_calendars 4.x reads Series.values internally, which pandas 3 deprecates.
            warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
            cal = xc.get_calendar(name, start=pd.Timestamp(first), end=pd.Timestamp(last))
        _calendars[name] = (cal, first, last)
        return cal


def _has_cmes() -> bool:
    import exchange_calendars as xc

    return "CMES" in xc.get_calendar_names()


def _exchange_sessions(name: str, lo: _dt.date, hi: _dt.date):
    """(labels, open, close, early) for the calendar's sessions labelled lo..hi; times in TZ."""
    cal = _calendar(name, lo, hi)
    sched = cal.schedule.loc[pd.Timestamp(lo) : pd.Timestamp(hi)]
    labels = pd.DatetimeIndex(sched.index).tz_localize(None).normalize()
    opens = pd.DatetimeIndex(sched["open"]).tz_convert(TZ)
    closes = pd.DatetimeIndex(sched["close"]).tz_convert(TZ)
    # The calendar's own regular close for each label; anything earlier is an early close.
    close_time = cal.close_times[-1][1]
    regular = (
        labels
        + pd.Timedelta(days=cal.close_offset)
        + pd.Timedelta(hours=close_time.hour, minutes=close_time.minute)
    ).tz_localize(cal.tz).tz_convert(TZ)
    early = np.asarray(closes < regular)
    return labels, opens, closes, early


def _at(labels: pd.DatetimeIndex, hour: int, minute: int = 0, day_offset: int = 0) -> pd.DatetimeIndex:
    """Wall-clock hour:minute in TZ on each label day (+ day_offset days)."""
    wall = labels + pd.Timedelta(days=day_offset, hours=hour, minutes=minute)
    return wall.tz_localize(TZ, ambiguous="raise", nonexistent="raise")


def _ns(idx: pd.DatetimeIndex) -> np.ndarray:
    """UTC epoch nanoseconds (pandas may hold datetimes in us or s resolution)."""
    return np.asarray(pd.DatetimeIndex(idx).as_unit("ns").asi8, dtype=np.int64)


def _where(cond: np.ndarray, a: pd.DatetimeIndex, b: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.where(cond, _ns(a), _ns(b)).astype("datetime64[ns]")).tz_localize("UTC").tz_convert(TZ)


def _minimum(a: pd.DatetimeIndex, b: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return _where(_ns(a) <= _ns(b), a, b)


def _build(kind: str, lo: _dt.date, hi: _dt.date) -> _Table:
    if kind in ("us_equity", "us_option", "us_bond"):
        labels, opens, closes, early = _exchange_sessions("XNYS", lo, hi)
        if kind == "us_bond":
            both = _Sessions.build(labels, _at(labels, 8), _at(labels, 17))
            return _Table(lo, hi, both, both)
        liquid = _Sessions.build(labels, opens, closes)
        if kind == "us_option":
            return _Table(lo, hi, liquid, liquid)
        late_end = _where(early, closes + pd.Timedelta(hours=4), _at(labels, 20))
        return _Table(lo, hi, _Sessions.build(labels, _at(labels, 4), late_end), liquid)

    if kind == "cme_index_future":
        # Sessions labelled lo..hi open the evening before, so the calendar needs no extra day.
        labels, _opens, closes, early = _exchange_sessions("CMES" if _has_cmes() else "XNYS", lo, hi)
        five_pm = _at(labels, 17)
        trade_close = _minimum(_where(early, closes, five_pm), five_pm)
        trading = _Sessions.build(labels, _at(labels, 18, day_offset=-1), trade_close)
        liquid = _Sessions.build(labels, _at(labels, 9, 30), _minimum(_at(labels, 16), trade_close))
        return _Table(lo, hi, trading, liquid)

    if kind == "fx":
        labels = pd.bdate_range(pd.Timestamp(lo), pd.Timestamp(hi))  # Monday..Friday
        both = _Sessions.build(labels, _at(labels, 17, 15, day_offset=-1), _at(labels, 17))
        return _Table(lo, hi, both, both)

    raise AssertionError(kind)  # _check_kind ran first


def _table(kind: str, lo: _dt.date, hi: _dt.date) -> _Table:
    """The kind's sessions with every label day in lo..hi (clipped to 1970..2100) evaluated."""
    lo, hi = _clip(lo, hi)
    with _lock:
        have = _tables.get(kind)
        if have is not None and have.first <= lo and hi <= have.last:
            return have
        first, last = _widen(None if have is None else (have.first, have.last), lo, hi)
        first, last = min(first, lo), max(last, hi)
        table = _build(kind, first, last)
        _tables[kind] = table
        return table


# --------------------------------------------------------------------------- conversions


def _to_date(value) -> _dt.date:
    if isinstance(value, _dt.datetime) or isinstance(value, pd.Timestamp):
        ts = pd.Timestamp(value)
        if ts.tzinfo is not None:
            ts = ts.tz_convert(TZ)
        return ts.date()
    if isinstance(value, _dt.date):
        return value
    return pd.Timestamp(value).date()


def _to_timestamp(ts) -> pd.Timestamp:
    """A tz-aware timestamp in TZ. Numbers are epoch seconds; naive datetimes are US/Eastern wall time."""
    if isinstance(ts, (bool, np.bool_)):
        raise TypeError("a timestamp cannot be a bool")
    if isinstance(ts, (int, float, np.integer, np.floating)):
        return pd.Timestamp(float(ts), unit="s", tz="UTC").tz_convert(TZ)
    out = pd.Timestamp(ts)
    if out is pd.NaT:
        raise ValueError("timestamp is NaT")
    if out.tzinfo is None:
        return out.tz_localize(TZ, ambiguous=True, nonexistent="shift_forward")
    return out.tz_convert(TZ)


def _midnight_ns(day: _dt.date) -> int:
    return pd.Timestamp(day).tz_localize(TZ).value


def _fmt(ns: int, tz: str = TZ) -> str:
    return pd.Timestamp(ns, tz="UTC").tz_convert(tz).strftime("%Y%m%d:%H%M")


def zone_id(kind: str) -> str:
    """The timeZoneId TWS reports for instruments of this hours kind."""
    return ZONE_OF_KIND.get(kind, _NEW_YORK)[0]


def zone(kind: str) -> str:
    """The same zone under its canonical (pandas) name."""
    return ZONE_OF_KIND.get(kind, _NEW_YORK)[1]


# --------------------------------------------------------------------------- public API


def sessions(kind: str, start: _dt.date, end: _dt.date, liquid: bool) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Sorted (open, close) pairs, tz-aware in America/New_York, of every session that overlaps
    the calendar days start..end inclusive (US/Eastern days; an overnight session opening on
    ``end`` is included). Empty if end < start."""
    _check_kind(kind)
    start, end = _to_date(start), _to_date(end)
    if end < start:
        return []
    table = _table(kind, start - _dt.timedelta(days=1), end + _dt.timedelta(days=2))
    s = table.pick(liquid)
    lo_ns, hi_ns = _midnight_ns(start), _midnight_ns(end + _dt.timedelta(days=1))
    i0 = int(np.searchsorted(s.closes, lo_ns, side="right"))
    i1 = int(np.searchsorted(s.opens, hi_ns, side="left"))
    return [
        (pd.Timestamp(o, tz="UTC").tz_convert(TZ), pd.Timestamp(c, tz="UTC").tz_convert(TZ))
        for o, c in zip(s.opens[i0:i1].tolist(), s.closes[i0:i1].tolist())
    ]


def hours_string(kind: str, start: _dt.date, days: int = 7, liquid: bool = False) -> str:
    """IB's tradingHours (liquid=False) / liquidHours (liquid=True) for the `days` calendar days
    from `start`: each session labelled on one of those days (i.e. closing on it) as
    ``YYYYMMDD:HHMM-YYYYMMDD:HHMM`` (overnight sessions start on the previous date), and
    ``YYYYMMDD:CLOSED`` for a day with no session closing on it and none opening on it (so a
    Sunday evening open leaves Sunday out rather than CLOSED); ``;``-joined in time order. Times are
    written in the kind's own zone (`zone_id(kind)`), as TWS writes them in the contract's timeZoneId."""
    _check_kind(kind)
    if not isinstance(days, (int, np.integer)) or isinstance(days, bool) or days < 0:
        raise ValueError(f"days must be a non-negative int, got {days!r}")
    start = _to_date(start)
    if days == 0:
        return ""
    end = start + _dt.timedelta(days=int(days) - 1)
    s = _table(kind, start - _dt.timedelta(days=1), end + _dt.timedelta(days=2)).pick(liquid)
    sel = (s.labels >= np.datetime64(start, "D")) & (s.labels <= np.datetime64(end, "D"))
    opens, closes, labels = s.opens[sel], s.closes[sel], s.labels[sel]

    tz = zone(kind)
    entries: list[tuple[int, str]] = [(int(o), f"{_fmt(int(o), tz)}-{_fmt(int(c), tz)}")
                                      for o, c in zip(opens, closes)]
    labelled = {lab.astype(_dt.date) for lab in labels}
    # A day on which a session opens (Sunday evening for futures and FX) is not closed, even if
    # that session closes after the window.
    near = (s.opens >= _midnight_ns(start)) & (s.opens < _midnight_ns(end + _dt.timedelta(days=1)))
    opened_on = {pd.Timestamp(int(o), tz="UTC").tz_convert(TZ).date() for o in s.opens[near]}
    for i in range(int(days)):
        day = start + _dt.timedelta(days=i)
        if day not in labelled and day not in opened_on:
            entries.append((_midnight_ns(day), f"{day:%Y%m%d}:CLOSED"))
    entries.sort(key=lambda e: e[0])
    return ";".join(text for _, text in entries)


def rth_mask(kind: str, epoch_seconds: np.ndarray, liquid: bool = True) -> np.ndarray:
    """Vectorised ``is_open``: a bool array, same shape as `epoch_seconds` (UTC epoch seconds),
    True where open <= t < close for some session. NaN/inf are False."""
    _check_kind(kind)
    t = np.asarray(epoch_seconds, dtype=np.float64)
    out = np.zeros(t.shape, dtype=bool)
    finite = np.isfinite(t)
    if not finite.any():
        return out
    tf = t[finite]
    lim_lo, lim_hi = _midnight_ns(_MIN_DAY) / 1e9, _midnight_ns(_MAX_DAY) / 1e9
    lo_s, hi_s = min(max(tf.min(), lim_lo), lim_hi), min(max(tf.max(), lim_lo), lim_hi)
    lo = pd.Timestamp(lo_s, unit="s", tz="UTC").tz_convert(TZ).date() - _dt.timedelta(days=1)
    hi = pd.Timestamp(hi_s, unit="s", tz="UTC").tz_convert(TZ).date() + _dt.timedelta(days=2)
    s = _table(kind, lo, hi).pick(liquid)
    if len(s.opens) == 0:
        return out
    idx = np.searchsorted(s.opens_s, tf, side="right") - 1
    ok = idx >= 0
    ok &= tf < s.closes_s[np.clip(idx, 0, None)]
    out[finite] = ok
    return out


def is_open(kind: str, ts: pd.Timestamp | float, liquid: bool = True) -> bool:
    """Whether `ts` lies in a session (open <= ts < close). A number is UTC epoch seconds
    (answered exactly as ``rth_mask`` would); a naive datetime is US/Eastern wall time."""
    _check_kind(kind)
    if isinstance(ts, (int, float, np.integer, np.floating)) and not isinstance(ts, (bool, np.bool_)):
        return bool(rth_mask(kind, np.array([ts], dtype=np.float64), liquid)[0])
    t = _to_timestamp(ts)
    day = t.date()
    s = _table(kind, day - _dt.timedelta(days=1), day + _dt.timedelta(days=2)).pick(liquid)
    i = int(np.searchsorted(s.opens, t.value, side="right")) - 1
    return i >= 0 and t.value < int(s.closes[i])


def previous_close(kind: str, ts) -> pd.Timestamp:
    """The most recent liquid-session close at or before `ts` (tz-aware, America/New_York).
    LookupError if there is none since 1970."""
    _check_kind(kind)
    t = _to_timestamp(ts)
    day = t.date()
    for back in (14, 400, None):
        lo = _MIN_DAY if back is None else day - _dt.timedelta(days=back)
        s = _table(kind, lo, day + _dt.timedelta(days=1)).liquid
        i = int(np.searchsorted(s.closes, t.value, side="right")) - 1
        if i >= 0:
            return pd.Timestamp(int(s.closes[i]), tz="UTC").tz_convert(TZ)
    raise LookupError(f"no {kind} session closes at or before {t}")


def start_time(spec: str | float | None, now: float | None = None) -> float | None:
    """The simulator's start time from a user's words, in epoch seconds (None = now).

    'now' or None: now. 'open': 30 minutes into the latest US equity regular session that has
    begun (today's if the market is open or has been today, else the previous one), so a demo
    run any time of day or week trades in regular hours. 'YYYY-MM-DD HH:MM[:SS]' (New York time)
    or epoch seconds: exactly that.
    """
    if spec is None or spec == "now":
        return None
    if isinstance(spec, (int, float)):
        return float(spec)
    text = str(spec).strip()
    try:
        return float(text)
    except ValueError:
        pass
    if text == "open":
        ts = pd.Timestamp(now if now is not None else _dt.datetime.now().timestamp(), unit="s", tz=TZ)
        opens = [o for o, _ in sessions("us_equity", (ts - pd.Timedelta(days=10)).date(), ts.date(), liquid=True)
                 if o + pd.Timedelta(minutes=30) <= ts]
        return (opens[-1] + pd.Timedelta(minutes=30)).timestamp()
    try:
        when = pd.Timestamp(text)
    except ValueError:
        raise ValueError(f"start {text!r}: use 'now', 'open', 'YYYY-MM-DD HH:MM' (New York time) "
                         f"or epoch seconds") from None
    if when.tzinfo is None:
        when = when.tz_localize(TZ)
    return when.timestamp()
