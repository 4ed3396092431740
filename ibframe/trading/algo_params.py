"""IB algo parameters as data: each algo's tags, their legal values, and their validation.

Owns: the catalogue of IB's algos that ibframe builds (Adaptive, Twap, Vwap, ArrivalPx) — for each
parameter its Python name, IB's tag, and what IB documents as legal (a choice list, a numeric
range, a 0/1 flag, a TWS time string, a non-negative amount) — and turning validated Python values
into the `TagValue` list TWS expects. A bad value raises `ValueError` naming the algo, the
parameter, the value and what is allowed, so nothing TWS would refuse with error 441 is sent.
The ranges agree with the simulator (`ibframe/sim/broker/algos.py`) and with IB's TWS user guide
(e.g. "max percentage of the average daily volume from 1% to 50%" for Vwap and Arrival Price).

Must never: build or send orders, or read the clock (a time string's window is checked by TWS).
"""
from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ibapi.tag_value import TagValue

# zone abbreviations accepted besides IANA names (US/Eastern, Europe/Berlin, CET…), as the simulator reads them
ZONE_ALIASES = frozenset({"EST", "EDT", "ET", "EST5EDT", "GMT", "UTC", "Z"})
_DATE_TIME = re.compile(r"^(\d{8})(?:[ -](\d{1,2}):(\d{2})(?::(\d{2}))?)?(?:\s+(\S+))?$")
_TIME_ONLY = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s+(\S+))?$")
TIME_FORMATS = "'hh:mm:ss US/Eastern', 'yyyymmdd hh:mm:ss US/Eastern' or 'yyyymmdd-hh:mm:ss' (UTC)"


@dataclass(frozen=True, slots=True)
class Param:
    """One algo parameter: `name` in Python, `tag` on the wire, `kind` says how it is checked."""
    name: str
    tag: str
    kind: str                              # choice | range | flag | time | amount
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    hint: str = ""                         # said after the allowed range, e.g. "0.1 means 10%"

    def allowed(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "range":
            return f"a number from {self.low:g} to {self.high:g}" + (f" ({self.hint})" if self.hint else "")
        if self.kind == "flag":
            return "True or False"
        if self.kind == "time":
            return f"'' (no limit) or a time like {TIME_FORMATS}"
        return "a number >= 0"


def _choice(name: str, tag: str, *choices: str) -> Param:
    return Param(name, tag, "choice", choices)


def _flag(name: str, tag: str) -> Param:
    return Param(name, tag, "flag")


def _time(name: str, tag: str) -> Param:
    return Param(name, tag, "time")


PCT_VOL_HINT = "a fraction of average daily volume: 0.1 means 10%"
MAX_PCT_VOL = Param("max_pct_vol", "maxPctVol", "range", low=0.01, high=0.5, hint=PCT_VOL_HINT)
ADAPTIVE_PRIORITIES = ("Urgent", "Normal", "Patient")
TWAP_STRATEGY_TYPES = ("Marketable", "Matching Midpoint", "Matching Same Side", "Matching Last")
RISK_AVERSIONS = ("Get Done", "Aggressive", "Neutral", "Passive")
ALGO_ORDER_TYPES = ("MKT", "LMT")          # IB's algos work market or limit orders only (error 442 otherwise)

ALGOS: dict[str, tuple[Param, ...]] = {
    "Adaptive": (_choice("priority", "adaptivePriority", *ADAPTIVE_PRIORITIES),),
    "Twap": (_choice("strategy_type", "strategyType", *TWAP_STRATEGY_TYPES), _time("start_time", "startTime"),
             _time("end_time", "endTime"), _flag("allow_past_end_time", "allowPastEndTime")),
    "Vwap": (MAX_PCT_VOL, _time("start_time", "startTime"), _time("end_time", "endTime"),
             _flag("allow_past_end_time", "allowPastEndTime"), _flag("no_take_liq", "noTakeLiq"),
             _flag("speed_up", "speedUp"), Param("monetary_value", "monetaryValue", "amount")),
    "ArrivalPx": (MAX_PCT_VOL, _choice("risk_aversion", "riskAversion", *RISK_AVERSIONS),
                  _time("start_time", "startTime"), _time("end_time", "endTime"),
                  _flag("allow_past_end_time", "allowPastEndTime"), _flag("force_completion", "forceCompletion")),
}


def _bad(algo: str, p: Param, value, why: str = "") -> ValueError:
    return ValueError(f"{algo} algo: {p.name} ({p.tag}) = {value!r} is not allowed{': ' + why if why else ''}; "
                      f"use {p.allowed()}")


def _seconds_of_day(text: str) -> tuple[int, str | None] | None:
    """(seconds after midnight, zone) of a time-only string, None for a dated one."""
    m = _TIME_ONLY.match(text)
    if not m:
        return None
    hh, mm, ss, zone = m.groups()
    return int(hh) * 3600 + int(mm) * 60 + int(ss or 0), zone


def _check_time(algo: str, p: Param, value) -> str:
    if not isinstance(value, str):
        raise _bad(algo, p, value, "a time is a string")
    text = " ".join(value.strip().split())
    if not text:
        return ""
    m = _DATE_TIME.match(text)
    if m:
        date_s, hh, mm, ss, zone = m.groups()
        try:
            dt.datetime.strptime(date_s, "%Y%m%d")
        except ValueError:
            raise _bad(algo, p, value, f"{date_s} is not a date") from None
    else:
        m = _TIME_ONLY.match(text)
        if not m:
            raise _bad(algo, p, value, "cannot read it as a time")
        hh, mm, ss, zone = m.groups()
    if hh is not None and not (int(hh) < 24 and int(mm) < 60 and int(ss or 0) < 60):
        raise _bad(algo, p, value, "hours 0-23, minutes and seconds 0-59")
    if zone is not None and zone.upper() not in ZONE_ALIASES:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise _bad(algo, p, value, f"unknown time zone {zone!r} (write e.g. US/Eastern)") from None
    return text


def _check(algo: str, p: Param, value) -> str:
    """The wire text of a valid value; ValueError otherwise."""
    if p.kind == "choice":
        if not isinstance(value, str):
            raise _bad(algo, p, value)
        for choice in p.choices:
            if value.strip().lower() == choice.lower():
                return choice
        raise _bad(algo, p, value)
    if p.kind == "flag":
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return str(int(value))
        raise _bad(algo, p, value)
    if p.kind == "time":
        return _check_time(algo, p, value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(algo, p, value, "not a number")
    if p.kind == "range" and not p.low <= value <= p.high:
        raise _bad(algo, p, value, f"outside {p.low:g} - {p.high:g}")
    if p.kind == "amount" and value < 0:
        raise _bad(algo, p, value, "negative")
    return str(value)


def algo_tags(algo: str, **values) -> list[TagValue]:
    """Validate `values` (Python names, e.g. max_pct_vol=0.1) for `algo`; the TagValues in catalogue order.

    Parameters left out are not sent (TWS uses its defaults). ValueError names the first bad one.
    """
    spec = ALGOS.get(algo)
    if spec is None:
        raise ValueError(f"unknown IB algo {algo!r}; ibframe builds {', '.join(ALGOS)}")
    by_name = {p.name: p for p in spec}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ValueError(f"{algo} algo has no parameter {', '.join(unknown)}; its parameters are "
                         f"{', '.join(by_name)}")
    tags = [TagValue(p.tag, _check(algo, p, values[p.name])) for p in spec if values.get(p.name) is not None]
    window = {t.tag: t.value for t in tags if t.tag in ("startTime", "endTime")}
    start, end = (_seconds_of_day(window.get(k, "")) for k in ("startTime", "endTime"))
    if start and end and start[1] == end[1] and end[0] <= start[0]:
        raise ValueError(f"{algo} algo: end_time (endTime) {window['endTime']!r} is not after start_time "
                         f"(startTime) {window['startTime']!r}; the window must end after it starts")
    return tags


def check_order_type(algo: str, order_type: str) -> None:
    if order_type not in ALGO_ORDER_TYPES:
        raise ValueError(f"{algo} algo works MKT or LMT orders only, not {order_type!r}; build the order with "
                         f"orders.market(...) or orders.limit(...)")
