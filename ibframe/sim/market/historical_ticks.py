"""Historical ticks: reqHistoricalTicks (TRADES, BID_ASK, MIDPOINT), as TWS answers it.

Owns: parsing REQ_HISTORICAL_TICKS as ibapi's client.py writes it at the negotiated version, its
checks (the shared ones are `historical`'s: 321 for malformed parameters, 162 for what the
historical data service refuses, pacing), collecting up to MAX_TICKS ticks around the requested
start or end from the instrument's seconds (`history.tick_seconds`, searching at most a week of
trading seconds), and encoding HISTORICAL_TICKS, HISTORICAL_TICKS_BID_ASK and HISTORICAL_TICKS_LAST.

Must never: compute prices itself (history.py owns the data) or send anything after its error.
"""
from __future__ import annotations

import math

import numpy as np
from ibapi.message import IN, OUT

from ..protocol.handlers import handles
from ..protocol.session import Session
from ..protocol.wire import FieldReader
from . import history, price_path
from .bars import DAY
from .historical import NO_ZONE_WARNING, TimeFormatError, _applies, _invalid, _no_market_data, _num, parse_time
from .lookup import read_contract, resolve
from .universe import Instrument


TICK_WHATS = ("TRADES", "BID_ASK", "MIDPOINT")
MAX_TICKS = 1000
TICK_SCAN_SECONDS = 7 * DAY     # how far a tick request searches for trading seconds
# --------------------------------------------------------------------------- historical ticks


@handles(OUT.REQ_HISTORICAL_TICKS)
def req_historical_ticks(session: Session, r: FieldReader) -> None:
    req_id = r.int("reqId")
    q = read_contract(r)
    r.bool("includeExpired")
    start_text = r.str("startDateTime")
    end_text = r.str("endDateTime")
    count = r.int("numberOfTicks")
    what = r.str("whatToShow").strip().upper()
    use_rth = r.int("useRth") != 0
    r.bool("ignoreSize")                # our quotes only tick on price changes, so it changes nothing
    r.str("miscOptions")
    inst = resolve(session, req_id, q, "bX")
    if inst is None:
        return
    if what not in TICK_WHATS:
        _invalid(session, req_id, f"Invalid whatToShow '{what}' for historical ticks. Legal ones are: "
                                  f"{', '.join(TICK_WHATS)}", "bX")
        return
    if bool(start_text.strip()) == bool(end_text.strip()):
        _invalid(session, req_id, "Exactly one of start date/time and end date/time must be specified", "bX")
        return
    if count <= 0:
        _invalid(session, req_id, f"numberOfTicks must be positive, got {count}", "bX")
        return
    try:
        (start, start_zoned), (end, end_zoned) = parse_time(start_text), parse_time(end_text)
    except TimeFormatError as exc:
        _invalid(session, req_id, f"Date/time: {exc}. Use yyyymmdd hh:mm:ss [time zone] or "
                                  f"yyyymmdd-hh:mm:ss (UTC)", "bX")
        return
    if not _applies(inst, what):
        _no_market_data(session, req_id, inst, q, what, None)
        return
    if not (start_zoned and end_zoned):
        session.error(req_id, 2174, NO_ZONE_WARNING)
    ticks = collect_ticks(session.gateway, inst, what, start, end, min(count, MAX_TICKS), use_rth)
    msg = {"TRADES": IN.HISTORICAL_TICKS_LAST, "BID_ASK": IN.HISTORICAL_TICKS_BID_ASK,
           "MIDPOINT": IN.HISTORICAL_TICKS}[what]
    fields: list = [msg, req_id, len(ticks)]
    for tick in ticks:
        if what == "TRADES":
            t, price, size, exchange = tick
            fields += [t, 0, _num(price), int(size), exchange, ""]
        elif what == "BID_ASK":
            t, bid, ask, bid_size, ask_size = tick
            fields += [t, 0, _num(bid), _num(ask), int(bid_size), int(ask_size)]
        else:
            t, price = tick
            fields += [t, 0, _num(price), 0]
    fields.append(True)
    session.send(*fields)


def collect_ticks(gateway, inst: Instrument, what: str, start: float | None, end: float | None, count: int,
                  use_rth: bool) -> list[tuple]:
    """The first `count` ticks from `start`, or the last `count` before `end`, scanning an hour
    at a time (closed hours of the past are skipped without generating them)."""
    limit = history.live_end(gateway)
    head = history.head_timestamp(gateway, inst, use_rth)
    s0 = history.path_for(gateway, history.root_of(gateway, inst)).s0
    cal = price_path.calendar(inst.hours_kind)
    forward = start is not None
    cur = max(int(math.floor(start)), head) if forward else min(int(math.ceil(end)), limit)
    collected: list[tuple] = []
    prev = None
    scanned = 0
    while len(collected) < count and scanned < TICK_SCAN_SECONDS:
        if forward:
            a, b = cur, min(limit, (cur // 3600 + 1) * 3600)
        else:
            a, b = max(head, ((cur - 1) // 3600) * 3600), cur
        if b <= a:
            break
        scanned += b - a
        cur = b if forward else a
        cal.cover(a, b)
        if b <= s0 and not cal.overlap(np.array([a]), np.array([b]), use_rth)[0]:
            continue
        chunk = _ticks_of(inst, what, history.tick_seconds(gateway, inst, a, b, use_rth), prev if forward else None)
        if not chunk:
            continue
        if forward:
            collected += chunk
            prev = _quote_key(what, chunk[-1])
        else:
            if collected and what != "TRADES" and _quote_key(what, chunk[-1]) == _quote_key(what, collected[0]):
                collected.pop(0)
            collected = chunk + collected
    return collected[:count] if forward else collected[-count:]


def _quote_key(what: str, tick: tuple):
    return tick[1:3] if what == "BID_ASK" else tick[1:2]


def _ticks_of(inst: Instrument, what: str, seconds: history.TickSeconds, prev) -> list[tuple]:
    if what == "TRADES":
        return history.trade_ticks(inst, seconds)
    quotes = history.quote_ticks(inst, seconds, prev if what == "BID_ASK" else None)
    if what == "BID_ASK":
        return quotes
    out, last = [], prev[0] if prev else None
    for t, bid, ask, _, _ in quotes:
        mid = round((bid + ask) / 2.0, 10)
        if mid != last:
            out.append((t, mid))
            last = mid
    return out
