"""Historical-data requests: bars (with keepUpToDate updates) and head time stamps, with their
cancels, and the checks every historical request shares.

Owns: parsing these requests exactly as ibapi's client.py writes them at the negotiated version,
validating them as TWS does (error 321 for malformed parameters, 162 for what the historical
data service refuses or has no data for, 366 for cancelling an unknown query, 322 for a ticker
id already streaming), historical pacing per client, the request window (endDateTime,
duration), and encoding HISTORICAL_DATA (with HISTORICAL_DATA_END from server version 196),
HISTORICAL_DATA_UPDATE, HISTORICAL_SCHEDULE and HEAD_TIMESTAMP. The keepUpToDate stream is fed
from the market's steps through `gateway.on_step`. Historical ticks are `historical_ticks`' and
5-second real-time bars `realtime_bars`'; both use the shared checks here.

Must never: compute prices itself (history.py owns the data), keep work per market step beyond
folding the seconds that just completed, or send anything for a request after its error.
"""
from __future__ import annotations

import datetime as dt
import math
import re
import weakref
from dataclasses import dataclass, field
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from ibapi import server_versions as sv
from ibapi.message import IN, OUT

from ..protocol.handlers import handles
from ..protocol.pacing import HistoricalPacing
from ..protocol.session import Session
from ..protocol.wire import FieldReader
from . import history, price_path
from .bars import (
    BAR_SIZES, DAY, EPOCH_ORDINAL, LEGAL_BAR_SIZES, MAX_SECONDS_DURATION, BarSize, Duration, Units, align, bar_ids,
    describe_seconds, format_bar_date, format_time, parse_bar_size, parse_duration, reduce, snap_up, step_range,
)
from .hours import TZ, ZONE_ID
from .lookup import read_contract, resolve
from .options import RISK_FREE_RATE
from .trading_time import trading_end
from .universe import ContractQuery, Instrument

HMDS = "Historical Market Data Service error message:"
PACING_TEXT = HMDS + "Historical data request pacing violation"
NO_ZONE_WARNING = ("Warning: You submitted request with date-time attributes without explicit time zone. "
                   "Please switch to use yyyymmdd-hh:mm:ss in UTC or use instrument time zone, like US/Eastern. "
                   "Implied time zone functionality will be removed in the next API release")
BAR_WHATS = ("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK", "ADJUSTED_LAST", "HISTORICAL_VOLATILITY",
             "OPTION_IMPLIED_VOLATILITY", "FEE_RATE", "REBATE_RATE", "SCHEDULE", "YIELD_BID", "YIELD_ASK",
             "YIELD_BID_ASK", "YIELD_LAST", "AGGTRADES")
DATA_LABEL = {"TRADES": "Last", "MIDPOINT": "Midpoint", "BID": "Bid", "ASK": "Ask", "BID_ASK": "BidAsk",
              "ADJUSTED_LAST": "AdjustedLast", "HISTORICAL_VOLATILITY": "HV", "OPTION_IMPLIED_VOLATILITY": "OptionVol",
              "FEE_RATE": "FeeRate", "REBATE_RATE": "RebateRate", "SCHEDULE": "Schedule"}
PACED_BAR_SECONDS = 30          # IB's small-bar pacing applies to bars of 30 secs or less
ZONE_ALIASES = {"EST": "America/New_York", "EDT": "America/New_York", "CST": "America/Chicago",
                "CDT": "America/Chicago", "PST": "America/Los_Angeles", "PDT": "America/Los_Angeles",
                "GMT": "UTC", "Z": "UTC"}

_PACING: "weakref.WeakKeyDictionary[Session, HistoricalPacing]" = weakref.WeakKeyDictionary()


def _invalid(session: Session, req_id: int, cause: str, code: str = "bK") -> None:
    session.error(req_id, 321, f"Error validating request.-'{code}' : cause - {cause}")


def _num(x) -> float:
    """A plain float for the wire (numpy scalars would print as np.float64(...))."""
    return float(round(float(x), 8))


# --------------------------------------------------------------------------- time parsing


class TimeFormatError(ValueError):
    pass


_UTC_FORM = re.compile(r"^(\d{8})-(\d{2}):(\d{2}):(\d{2})$")
_LOCAL_FORM = re.compile(r"^(\d{8})(?:\s+(\d{1,2}):(\d{2}):(\d{2}))?(?:\s+(\S+))?$")


def parse_time(text: str) -> tuple[float | None, bool]:
    """(epoch seconds or None for "", whether a zone was given). Forms TWS accepts:
    "yyyymmdd-hh:mm:ss" (UTC), "yyyymmdd hh:mm:ss [zone]" (zone missing = US/Eastern)."""
    text = text.strip()
    if not text:
        return None, True
    m = _UTC_FORM.match(text)
    if m:
        day, hh, mm, ss = m.groups()
        return _epoch(day, hh, mm, ss, dt.timezone.utc), True
    m = _LOCAL_FORM.match(text)
    if not m:
        raise TimeFormatError(f"invalid date/time '{text}'")
    day, hh, mm, ss, zone = m.groups()
    tz = ZoneInfo(TZ)
    if zone:
        try:
            tz = ZoneInfo(ZONE_ALIASES.get(zone.upper(), zone))
        except (ZoneInfoNotFoundError, ValueError):
            raise TimeFormatError(f"invalid time zone '{zone}'") from None
    return _epoch(day, hh or "0", mm or "0", ss or "0", tz), zone is not None


def _epoch(day: str, hh: str, mm: str, ss: str, tz) -> float:
    try:
        d = dt.datetime(int(day[:4]), int(day[4:6]), int(day[6:8]), int(hh), int(mm), int(ss), tzinfo=tz)
    except ValueError:
        raise TimeFormatError(f"invalid date/time '{day} {hh}:{mm}:{ss}'") from None
    return d.timestamp()


def _shift_back(epoch: float, duration: Duration) -> float:
    """The calendar instant `duration` before `epoch` (months and years on the New York calendar)."""
    if duration.unit in ("S", "D", "W"):
        return epoch - duration.nominal_seconds
    ts = pd.Timestamp(epoch, unit="s", tz="UTC").tz_convert(TZ)
    offset = pd.DateOffset(months=duration.count) if duration.unit == "M" else pd.DateOffset(years=duration.count)
    return (ts - offset).timestamp()


# --------------------------------------------------------------------------- shared checks


def _route(inst: Instrument, q: ContractQuery) -> str:
    return "FXSUBPIP" if inst.sec_type == "CASH" else (q.exchange or inst.exchange)


def _bar_code(bar: BarSize | None) -> str:
    if bar is None:
        return "0"
    return {"day": "1d", "week": "1w", "month": "1m"}.get(bar.calendar, str(bar.seconds))


def _no_market_data(session, req_id, inst, q, what, bar) -> None:
    session.error(req_id, 162, f"{HMDS}No historical market data for {inst.symbol}/{inst.sec_type}@{_route(inst, q)} "
                               f"{DATA_LABEL.get(what, what.title())} {_bar_code(bar)}")


def _no_data(session, req_id, inst, q, what) -> None:
    session.error(req_id, 162, f"{HMDS}HMDS query returned no data: {inst.local_symbol}@{q.exchange or inst.exchange} "
                               f"{what.title()}")


def _applies(inst: Instrument, what: str) -> bool:
    """Whether the historical data service has this kind of data for this instrument."""
    if what in ("MIDPOINT", "BID", "ASK", "BID_ASK", "SCHEDULE"):
        return True
    if what == "TRADES":
        return inst.sec_type != "CASH"
    if what in ("ADJUSTED_LAST", "HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY", "FEE_RATE", "REBATE_RATE"):
        return inst.sec_type == "STK"
    return False


def _duplicate(session: Session, req_id: int) -> bool:
    if session.has_subscription("historical", req_id) or session.has_subscription("realtimebars", req_id):
        session.error(req_id, 322, "Duplicate ticker id")
        return True
    return False


def _read_bag_legs(r: FieldReader, q: ContractQuery) -> None:
    if q.sec_type.upper() == "BAG":
        for _ in range(r.int("comboLegsCount")):
            r.int("comboLeg.conId")
            r.int("comboLeg.ratio")
            r.str("comboLeg.action")
            r.str("comboLeg.exchange")


# --------------------------------------------------------------------------- reqHistoricalData


@dataclass(slots=True)
class BarRequest:
    req_id: int
    query: ContractQuery
    end_text: str
    bar_text: str
    duration_text: str
    use_rth: bool
    what: str
    format_date: int
    keep_up_to_date: bool


@handles(OUT.REQ_HISTORICAL_DATA)
def req_historical_data(session: Session, r: FieldReader) -> None:
    if session.version < sv.MIN_SERVER_VER_SYNT_REALTIME_BARS:
        r.int("version")
    req_id = r.int("reqId")
    q = read_contract(r, con_id=session.version >= sv.MIN_SERVER_VER_TRADING_CLASS,
                      trading_class=session.version >= sv.MIN_SERVER_VER_TRADING_CLASS)
    r.bool("includeExpired")
    end_text = r.str("endDateTime")
    bar_text = r.str("barSizeSetting")
    duration_text = r.str("durationStr")
    use_rth = r.int("useRTH") != 0
    what = r.str("whatToShow").strip().upper()
    format_date = r.int("formatDate")
    _read_bag_legs(r, q)
    keep = r.bool("keepUpToDate") if session.version >= sv.MIN_SERVER_VER_SYNT_REALTIME_BARS else False
    if session.version >= sv.MIN_SERVER_VER_LINKING:
        r.str("chartOptions")
    serve_bars(session, BarRequest(req_id, q, end_text, bar_text, duration_text, use_rth, what, format_date, keep))


def serve_bars(session: Session, req: BarRequest) -> None:
    """Validate in TWS's order, pace, then answer with the bars (and start live updates)."""
    req_id = req.req_id
    if _duplicate(session, req_id):
        return
    inst = resolve(session, req_id, req.query, "bK")
    if inst is None:
        return
    bar = parse_bar_size(req.bar_text)
    if bar is None:
        _invalid(session, req_id, f"Historical data bar size setting is invalid. Legal ones are: {LEGAL_BAR_SIZES}")
        return
    duration = parse_duration(req.duration_text)
    if duration is None:
        _invalid(session, req_id, f"Historical data query duration '{req.duration_text}' is invalid. "
                                  f"Use an integer, a space and a unit: S, D, W, M or Y (e.g. '1 D')")
        return
    if req.format_date not in (1, 2):
        _invalid(session, req_id, f"Date formatting selection of {req.format_date} rejected", "bT")
        return
    if req.what not in BAR_WHATS:
        _invalid(session, req_id, f"Historical data query whatToShow '{req.what}' is invalid. Legal ones are: "
                                  f"{', '.join(BAR_WHATS)}")
        return
    try:
        end, zoned = parse_time(req.end_text)
    except TimeFormatError as exc:
        _invalid(session, req_id, f"End date/time: {exc}. Use yyyymmdd hh:mm:ss [time zone] or "
                                  f"yyyymmdd-hh:mm:ss (UTC)")
        return
    if req.keep_up_to_date and end is not None:
        _invalid(session, req_id, "End date not supported with live updates")
        return
    if req.keep_up_to_date and bar.seconds < 5:
        _invalid(session, req_id, "Live updates (keepUpToDate) need bars of 5 secs or more")
        return
    if req.what == "ADJUSTED_LAST" and end is not None:
        _invalid(session, req_id, "End date not supported with adjusted last")
        return
    if duration.unit == "S" and duration.count > MAX_SECONDS_DURATION:
        session.error(req_id, 162, f"{HMDS}Time length exceed max.")
        return
    smallest, largest = step_range(duration)
    if not smallest <= bar.seconds <= largest:
        session.error(req_id, 162, f"{HMDS}invalid step: {bar.name} bars are not served for a duration of "
                                   f"{duration} (legal bar sizes for it: {describe_seconds(smallest)} to "
                                   f"{describe_seconds(largest)})")
        return
    needs_days = req.what in ("ADJUSTED_LAST", "HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY")
    if not _applies(inst, req.what) or (needs_days and bar.intraday):
        _no_market_data(session, req_id, inst, req.query, req.what, bar)
        return
    if not zoned:
        session.error(req_id, 2174, NO_ZONE_WARNING)
    if not _pace(session, req, inst, bar):
        session.error(req_id, 162, PACING_TEXT)
        return
    gateway = session.gateway
    now = gateway.now()
    live = end is None or end >= now
    end_at = now if live else end
    a, e = request_window(gateway, inst, end_at, live, duration, bar, req.use_rth)
    start_text, end_text = format_time(_shift_back(end_at, duration)), format_time(end_at)
    if req.what == "SCHEDULE":
        _send_schedule(session, req_id, inst, a, e, req.use_rth, start_text, end_text)
        return
    bars = compute_bars(gateway, inst, req.what, a, e, req.use_rth, bar) if e > a else Units.empty()
    if len(bars) == 0:
        _no_data(session, req_id, inst, req.query, req.what)
        return
    _send_bars(session, req_id, bars, bar, req.what, req.format_date, start_text, end_text)
    if req.keep_up_to_date:
        stream = BarStream(session, req_id, inst, req.what, bar, req.use_rth, req.format_date,
                           cursor=int(bars.t[-1]))
        session.add_subscription("historical", stream)


def _pace(session: Session, req: BarRequest, inst: Instrument, bar: BarSize) -> bool:
    gateway = session.gateway
    if not gateway.config.pace_historical or bar.seconds > PACED_BAR_SECONDS:
        return True
    pacing = _PACING.get(session)
    if pacing is None:
        pacing = _PACING[session] = HistoricalPacing()
    exchange = req.query.exchange or inst.exchange
    key = (inst.con_id, exchange, req.end_text, req.bar_text, req.duration_text, req.use_rth, req.what,
           req.format_date, req.keep_up_to_date)
    return pacing.admit(gateway.now(), key, (inst.con_id, exchange, req.what), 2 if req.what == "BID_ASK" else 1)


def request_window(gateway, inst: Instrument, end_at: float, live: bool, duration: Duration, bar: BarSize,
                   use_rth: bool) -> tuple[int, int]:
    """Seconds [a, e) the bars cover. "N D" means the last N sessions (liquid ones with
    useRTH); S, W, M and Y count back on the calendar (S from where the last session ended when
    asked outside one), snapped forward to the next bar boundary (day bars: to the next session
    open). Nothing before the head time stamp."""
    e = history.live_end(gateway) if live else int(math.ceil(end_at))
    cal = price_path.calendar(inst.hours_kind)
    cal.cover(_shift_back(e, duration) - 14 * DAY, e + DAY)
    sessions = cal.sessions(use_rth)
    if duration.unit == "S":
        e = trading_end(sessions.o, sessions.c, e)
    back = _shift_back(e, duration)
    if duration.unit == "D":
        k = int(np.searchsorted(sessions.o, e, side="left")) - 1
        a = int(sessions.o[max(k - duration.count + 1, 0)]) if k >= 0 else e
    else:
        a = int(math.ceil(back))
        if bar.intraday:
            a = snap_up(a, bar)
        elif duration.unit != "S":
            i = int(np.searchsorted(sessions.o, a, side="left"))
            a = int(sessions.o[i]) if i < len(sessions.o) else e
    return max(a, history.head_timestamp(gateway, inst, use_rth)), e


def compute_bars(gateway, inst: Instrument, what: str, a: int, e: int, use_rth: bool, bar: BarSize) -> Units:
    if what in history.SERIES:
        return history.build_bars(gateway, inst, what, a, e, use_rth, bar)
    if what == "ADJUSTED_LAST":
        return history.build_bars(gateway, inst, "TRADES", a, e, use_rth, bar)
    if what in ("HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY"):
        return _volatility_bars(gateway, inst, what, a, e, bar)
    if what in ("FEE_RATE", "REBATE_RATE"):
        return _rate_bars(gateway, inst, what, a, e, use_rth, bar)
    return Units.empty()


def _volatility_bars(gateway, inst: Instrument, what: str, a: int, e: int, bar: BarSize) -> Units:
    """30-session realised volatility (annualised) of daily closes; the implied series is the
    option chain's vol pulled a quarter of the way towards the realised one."""
    daily = history.build_bars(gateway, inst, "TRADES", a - 60 * DAY, e, True, BAR_SIZES["1 day"])
    if len(daily) == 0:
        return daily
    returns = np.diff(np.log(daily.c), prepend=np.log(daily.c[0]))
    hv = np.array([np.std(returns[max(1, k - 29):k + 1], ddof=1) * math.sqrt(252) if k >= 5 else inst.vol
                   for k in range(len(daily))])
    if what == "OPTION_IMPLIED_VOLATILITY":
        chain = gateway.universe.options_of(inst.con_id)
        base = chain[0].vol if chain else inst.vol * 1.1
        hv = base * (0.75 + 0.25 * hv / inst.vol)
    prev = np.concatenate((hv[:1], hv[:-1]))
    rows = Units(daily.t, daily.dur, prev, np.maximum(prev, hv), np.minimum(prev, hv), hv, np.zeros(len(hv)),
                 np.zeros(len(hv)), np.zeros(len(hv)), np.zeros(len(hv)), np.zeros(len(hv)), daily.d)
    rows = rows.take(rows.t >= a)
    if bar.calendar != "day" and len(rows):
        rows, _ = reduce(rows, bar_ids(rows, bar))
    return rows


def _rate_bars(gateway, inst: Instrument, what: str, a: int, e: int, use_rth: bool, bar: BarSize) -> Units:
    """Stock-borrow fee / short-rebate rates (percent a year), steady per session label."""
    shape = history.build_bars(gateway, inst, "TRADES", a, e, use_rth, bar)
    day = shape.d if bar.calendar else shape.t // DAY + EPOCH_ORDINAL
    fee = np.round(0.25 + 0.05 * np.sin(day / 9.0 + inst.con_id % 7), 4)
    rate = fee if what == "FEE_RATE" else np.round(100 * RISK_FREE_RATE - 0.3 - fee, 4)
    zero = np.zeros(len(shape))
    return Units(shape.t, shape.dur, rate, rate, rate, rate, zero, zero, zero, zero, zero, shape.d)


def _bar_fields(bars: Units, k: int, what: str) -> tuple[float, float, float, float, object, object, int]:
    """(open, high, low, close, volume, wap, count) of one bar as TWS reports them."""
    o, h, l, c = bars.o[k], bars.h[k], bars.l[k], bars.c[k]
    if what == "BID_ASK":
        span = max(float(bars.dur[k]), 1e-9)
        o, c = bars.sb[k] / span, bars.sa[k] / span
    if what in ("TRADES", "ADJUSTED_LAST"):
        v = float(bars.v[k])
        wap = bars.pv[k] / v if v > 0 else c
        return _num(o), _num(h), _num(l), _num(c), int(round(v)), round(float(wap), 6), int(bars.n[k])
    return _num(o), _num(h), _num(l), _num(c), -1, -1, -1


def _send_bars(session: Session, req_id: int, bars: Units, bar: BarSize, what: str, format_date: int,
               start_text: str, end_text: str) -> None:
    dates = format_bar_date(bars, bar, format_date)
    fields: list = [IN.HISTORICAL_DATA]
    if session.version < sv.MIN_SERVER_VER_SYNT_REALTIME_BARS:
        fields.append(3)
    fields.append(req_id)
    if session.version < sv.MIN_SERVER_VER_HISTORICAL_DATA_END:
        fields += [start_text, end_text]
    fields.append(len(bars))
    for k, date in enumerate(dates):
        o, h, l, c, v, wap, count = _bar_fields(bars, k, what)
        fields += [date, o, h, l, c, v, wap]
        if session.version < sv.MIN_SERVER_VER_SYNT_REALTIME_BARS:
            fields.append("false")
        fields.append(count)
    session.send(*fields)
    if session.version >= sv.MIN_SERVER_VER_HISTORICAL_DATA_END:
        session.send(IN.HISTORICAL_DATA_END, req_id, start_text, end_text)


def _send_schedule(session: Session, req_id: int, inst: Instrument, a: int, e: int, use_rth: bool,
                   start_text: str, end_text: str) -> None:
    """HISTORICAL_SCHEDULE: the sessions in the window, "yyyymmdd-hh:mm:ss" in US/Eastern."""
    cal = price_path.calendar(inst.hours_kind)
    cal.cover(a, e)
    s = cal.sessions(use_rth)
    chosen = np.flatnonzero((s.c > a) & (s.o < e))

    def stamp(t: float) -> str:
        return pd.Timestamp(t, unit="s", tz="UTC").tz_convert(TZ).strftime("%Y%m%d-%H:%M:%S")

    fields: list = [IN.HISTORICAL_SCHEDULE, req_id, stamp(a), stamp(e), ZONE_ID, len(chosen)]
    for i in chosen:
        label = dt.date.fromordinal(int(s.label[i])).strftime("%Y%m%d")
        fields += [stamp(s.o[i]), stamp(s.c[i]), label]
    session.send(*fields)


# --------------------------------------------------------------------------- live streams


def _stream_res(bar: BarSize) -> int:
    return 1 if bar.seconds < 60 else 3600 if bar.calendar else 60


@dataclass(eq=False)
class BarStream:
    """keepUpToDate: after each new second, HISTORICAL_DATA_UPDATE for the bar in progress.
    Completed seconds are folded into the bar once; only the current second is recomputed."""
    session: Session
    req_id: int
    inst: Instrument
    what: str
    bar: BarSize
    use_rth: bool
    format_date: int
    cursor: int                                     # first second not yet folded into `state`
    state: Units | None = None
    last_second: int = -1
    remove: Callable[[], None] = field(default=lambda: None)

    def __post_init__(self) -> None:
        gateway = self.session.gateway
        self.series = "TRADES" if self.what == "ADJUSTED_LAST" else self.what
        self.remove = gateway.on_step(history.root_of(gateway, self.inst).con_id, self.on_step)

    def close(self) -> None:
        self.remove()

    def _units(self, a: int, b: int, res: int) -> Units:
        return history.series_units(self.session.gateway, self.inst, self.series, a, b, res, self.use_rth,
                                    labels=bool(self.bar.calendar))

    def _merge(self, new: Units) -> Units | None:
        parts = Units.concat([u for u in (self.state, new) if u is not None])
        if len(parts) == 0:
            return self.state
        rows, ids = reduce(parts, bar_ids(parts, self.bar))
        return align(rows, ids, self.bar).take(slice(len(rows) - 1, None))

    def on_step(self, ev) -> None:
        second = int(ev.time)
        if second == self.last_second:
            return
        self.last_second = second
        if second > self.cursor:
            self.state = self._merge(self._units(self.cursor, second, _stream_res(self.bar)))
            self.cursor = second
        current = self._merge(self._units(second, second + 1, 1))
        if current is None or len(current) == 0:
            return
        row = history.finish_bars(self.inst, current, self.series)
        o, h, l, c, v, wap, count = _bar_fields(row, 0, self.what)
        date = format_bar_date(row, self.bar, self.format_date)[0]
        self.session.send(IN.HISTORICAL_DATA_UPDATE, self.req_id, count, date, o, c, h, l, wap, v)


@handles(OUT.CANCEL_HISTORICAL_DATA)
def cancel_historical_data(session: Session, r: FieldReader) -> None:
    r.int("version")
    req_id = r.int("reqId")
    if not session.end_subscription("historical", req_id):
        session.error(req_id, 366, f"No historical data query found for ticker id:{req_id}")


# --------------------------------------------------------------------------- head time stamp


@handles(OUT.REQ_HEAD_TIMESTAMP)
def req_head_timestamp(session: Session, r: FieldReader) -> None:
    req_id = r.int("reqId")
    q = read_contract(r)
    r.bool("includeExpired")
    use_rth = r.int("useRTH") != 0
    what = r.str("whatToShow").strip().upper()
    format_date = r.int("formatDate")
    inst = resolve(session, req_id, q, "bK")
    if inst is None:
        return
    if what not in BAR_WHATS or what == "SCHEDULE":
        _invalid(session, req_id, f"Invalid whatToShow '{what}' for the head time stamp")
        return
    if format_date not in (1, 2):
        _invalid(session, req_id, f"Date formatting selection of {format_date} rejected", "bT")
        return
    if not _applies(inst, what):
        _no_market_data(session, req_id, inst, q, what, None)
        return
    head = history.head_timestamp(session.gateway, inst, use_rth)
    text = (dt.datetime.fromtimestamp(head, dt.timezone.utc).strftime("%Y%m%d-%H:%M:%S") if format_date == 1
            else str(head))
    session.send(IN.HEAD_TIMESTAMP, req_id, text)


@handles(OUT.CANCEL_HEAD_TIMESTAMP)
def cancel_head_timestamp(session: Session, r: FieldReader) -> None:
    r.int("reqId")                      # answered at once: nothing is ever in flight
