"""Synthetic price history of every instrument, joined to the live market's tape.

Owns: a deterministic past for each root instrument that ends exactly at its start price at the
gateway's start second, the series the historical requests show (TRADES, MIDPOINT, BID, ASK,
BID_ASK) as per-second or per-minute `Units` (synthetic before the start, the live tape after),
option series derived from their underlying through `options.model`, bars built from those
units, historical ticks, the session statistics the market starts from, and head time stamps.
Units are seconds (bars under 1 min), minutes (intraday bars) or hours (day/week/month bars;
each hour folded from its minutes, so highs and lows are the minute extremes). Synthetic units
exist only where the instrument trades (liquid hours with useRTH), and so do live seconds (the
simulator's tape, kept while it ran): history ends where trading ended, at the live price.

The model of the synthetic past (calendars, the seeded Brownian path) is `price_path`'s.

Must never: use unseeded randomness, touch sessions or sockets, or keep per-request state; the
only state is a per-gateway cache of paths (weakly keyed, so a stopped gateway frees it).
"""
from __future__ import annotations

import datetime as dt
import math
import threading
import weakref
from dataclasses import dataclass

import numpy as np

from . import options
from .bars import DAY, BarSize, Units, align, bar_ids, reduce
from .market import LOT, MAKERS
from .price_path import PricePath, _increment, _tick_rounder, calendar
from .universe import Instrument

SPREAD_BPS = {"STK": 2.0, "FUT": 0.5, "CASH": 0.5, "BOND": 8.0}   # as the live book quotes
HEAD_YEARS = 5              # synthetic data starts this many years before the gateway's start
OPTION_HEAD_DAYS = 270      # an option's data starts this long before its expiry
OPTION_VOLUME_SHARE = 0.05  # option contracts per underlying lot, at the money
SERIES = ("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK")


# --------------------------------------------------------------------------- per-gateway paths

_PATHS: "weakref.WeakKeyDictionary[object, dict[int, PricePath]]" = weakref.WeakKeyDictionary()


_PATHS_LOCK = threading.Lock()


def path_for(gateway, inst: Instrument) -> PricePath:
    """The gateway's path of a root instrument (built on first use, then kept with the gateway)."""
    with _PATHS_LOCK:
        paths = _PATHS.setdefault(gateway, {})
    path = paths.get(inst.con_id)
    if path is None:
        path = paths[inst.con_id] = PricePath(inst, gateway.config.seed, gateway.start_time)
    return path


def root_of(gateway, inst: Instrument) -> Instrument:
    if inst.is_derived:
        return gateway.universe.get(inst.under_con_id)
    return inst


def session_stats(gateway, inst):
    """Today's session so far (open, high, low, volume), the previous close and the last price,
    read off the synthetic past; the market starts from these. None for options."""
    if inst.is_derived:
        return None
    return path_for(gateway, inst).session_stats()


def head_timestamp(gateway, inst: Instrument, use_rth: bool) -> int:
    """Earliest second with data: the first session open HEAD_YEARS before start (options: also
    no earlier than OPTION_HEAD_DAYS before expiry)."""
    path = path_for(gateway, root_of(gateway, inst))
    earliest = path.s0 - HEAD_YEARS * 365 * DAY
    if inst.is_derived and inst.expiry:
        expiry = dt.datetime.strptime(inst.expiry[:8], "%Y%m%d").replace(tzinfo=dt.timezone.utc).timestamp()
        earliest = max(earliest, int(expiry) - OPTION_HEAD_DAYS * DAY)
    cal = calendar(inst.hours_kind)
    cal.cover(earliest, earliest + 10 * DAY)
    s = cal.sessions(use_rth)
    i = int(np.searchsorted(s.o, earliest, side="left"))
    return int(s.o[min(i, len(s.o) - 1)])


# --------------------------------------------------------------------------- prices on the grid


def _half_spread(inst: Instrument, x: np.ndarray) -> np.ndarray:
    if inst.is_derived:
        return np.maximum(0.01, 0.01 * x)
    return np.maximum(inst.min_tick, x * SPREAD_BPS.get(inst.sec_type, 2.0) / 2e4)


def bid_of(inst: Instrument, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    inc = _increment(inst, x)
    return np.maximum(np.round(np.floor((x - _half_spread(inst, x)) / inc + 1e-9) * inc, 10), 0.0)


def ask_of(inst: Instrument, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    inc = _increment(inst, x)
    return np.round(np.maximum(np.ceil((x + _half_spread(inst, x)) / inc - 1e-9), 1.0) * inc, 10)


def _as_series(inst: Instrument, raw: Units, series: str) -> Units:
    """Turn mid-path units into the units of one series (rounded to the price grid)."""
    if series == "TRADES":
        r = _tick_rounder(inst)
        return Units(raw.t, raw.dur, r(raw.o), r(raw.h), r(raw.l), r(raw.c), raw.v, raw.n, raw.pv,
                     raw.sb, raw.sa, raw.d)
    zero = np.zeros(len(raw))
    if series == "BID_ASK":
        bc, ac = bid_of(inst, raw.c), ask_of(inst, raw.c)
        return Units(raw.t, raw.dur, bid_of(inst, raw.o), ask_of(inst, raw.h), bid_of(inst, raw.l), ac,
                     zero, zero, zero, bc * raw.dur, ac * raw.dur, raw.d)
    f = {"MIDPOINT": _tick_rounder(inst, 0.5), "BID": lambda x: bid_of(inst, x),
         "ASK": lambda x: ask_of(inst, x)}[series]
    return Units(raw.t, raw.dur, f(raw.o), f(raw.h), f(raw.l), f(raw.c), zero, zero, zero, zero, zero.copy(),
                 raw.d)


def _tape_units(gateway, root: Instrument, a: int, b: int, series: str) -> Units:
    """Live seconds [a, b) of a root's tape as units of a series."""
    market = gateway.market.get(root.con_id) if getattr(gateway, "market", None) else None
    if market is None:
        return Units.empty()
    tape = market.tape
    i0, i1 = max(a - tape.start_second, 0), min(b - tape.start_second, len(tape.close))
    if i1 <= i0:
        return Units.empty()
    t = tape.start_second + np.arange(i0, i1, dtype=np.int64)
    if series == "TRADES":
        h, l = np.array(tape.high[i0:i1]), np.array(tape.low[i0:i1])
        v = np.array(tape.volume[i0:i1], dtype=float)
        return Units.make(t, 1, tape.open[i0:i1], h, l, tape.close[i0:i1], v,
                          np.array(tape.count[i0:i1], dtype=float), (h + l) / 2.0 * v)
    j0 = max(i0 - 1, 0)
    bid, ask = np.array(tape.bid[j0:i1], float), np.array(tape.ask[j0:i1], float)
    if i0 == 0:                         # the second before the tape: the book the market opened with
        start = np.array([float(root.price)])
        bid, ask = np.concatenate((bid_of(root, start), bid)), np.concatenate((ask_of(root, start), ask))

    def ohlc(q):
        prev, cur = q[:-1], q[1:]
        return prev, np.maximum(prev, cur), np.minimum(prev, cur), cur

    if series == "BID_ASK":
        bo, _, bl, bc = ohlc(bid)
        _, ah, _, ac = ohlc(ask)
        u = Units.make(t, 1, bo, ah, bl, ac)
        u.sb, u.sa = bc.copy(), ac.copy()
        return u
    q = {"MIDPOINT": (bid + ask) / 2.0, "BID": bid, "ASK": ask}[series]
    q = np.round(q, 10)
    return Units.make(t, 1, *ohlc(q))


def live_end(gateway) -> int:
    """One past the latest second the live tape holds (the current second is included)."""
    return int(math.floor(gateway.now())) + 1


def series_units(gateway, inst: Instrument, series: str, a: int, b: int, res: int, use_rth: bool,
                 labels: bool = False) -> Units:
    """Units of `series` for seconds [a, b): the synthetic past before the start second, the live
    tape after it; both only where the instrument trades (liquid hours with useRTH), so history
    ends where trading ended. Options carry their underlying's mid path
    (mapped to option prices per bar by `finish_bars`) and their own volume."""
    root = root_of(gateway, inst)
    path = path_for(gateway, root)
    cal = calendar(inst.hours_kind)
    cal.cover(a, b)
    under_series = "MIDPOINT" if inst.is_derived else series
    parts = []
    if min(b, path.s0) > a:
        raw = path.raw_units(a, min(b, path.s0), res, "liquid" if use_rth else "trading", cal)
        if inst.is_derived:
            lots = raw.v / path.lot
            raw = _as_series(root, raw, under_series)
            raw.v, raw.n = _option_volume(inst, lots, raw.c, raw.t)
        else:
            raw = _as_series(root, raw, under_series)
        parts.append(raw)
    if b > path.s0:
        live = _tape_units(gateway, root, max(a, path.s0), b, under_series)
        if len(live):
            live = live.take(cal.overlap(live.t, live.t + 1, use_rth))
        if inst.is_derived and len(live):
            trades = _tape_units(gateway, root, max(a, path.s0), b, "TRADES")
            if len(trades):
                trades = trades.take(cal.overlap(trades.t, trades.t + 1, use_rth))
            live.v, live.n = _option_volume(inst, trades.v / path.lot, live.c, live.t)
        parts.append(live)
    units = Units.concat(parts)
    if labels and len(units):
        units.d = cal.labels(units.t, use_rth)
    return units


def _option_volume(inst: Instrument, under_lots: np.ndarray, spot: np.ndarray, t: np.ndarray):
    """Option contracts traded per unit: a share of the underlying's lots, largest at the money,
    rounded with a deterministic dither so small units still print now and then."""
    moneyness = np.log(inst.strike / np.maximum(spot, 1e-9))
    expected = under_lots * OPTION_VOLUME_SHARE * np.exp(-0.5 * (moneyness / 0.1) ** 2)
    v = np.floor(expected + (np.asarray(t, np.float64) * 0.6180339887498949) % 1.0)
    return v, np.ceil(v / 3.0)


def finish_bars(inst: Instrument, bars: Units, series: str) -> Units:
    """Options: map underlying mid bars to option bars through the model (highs and lows from
    the underlying's extremes, calls increasing and puts decreasing in spot). Others: as is."""
    if not inst.is_derived or len(bars) == 0:
        return bars
    n = len(bars)
    o, h, l, c = (np.empty(n) for _ in range(4))
    for k in range(n):
        t0 = float(bars.t[k])
        t1 = t0 + float(bars.dur[k])
        price = lambda s, t: options.model(inst, float(s), t)[1].price  # noqa: E731
        o[k] = price(bars.o[k], t0)
        c[k] = price(bars.c[k], t1)
        up, down = price(bars.h[k], t1), price(bars.l[k], t1)
        hi, lo = (up, down) if inst.right == "C" else (down, up)
        h[k], l[k] = max(hi, o[k], c[k]), min(lo, o[k], c[k])
    zero = np.zeros(n)
    if series == "TRADES":
        r = _tick_rounder(inst)
        o, h, l, c = r(o), r(h), r(l), r(c)
        return Units(bars.t, bars.dur, o, h, l, c, bars.v, bars.n, (o + h + l + c) / 4.0 * bars.v, zero, zero,
                     bars.d)
    if series == "BID_ASK":
        return Units(bars.t, bars.dur, bid_of(inst, o), ask_of(inst, h), bid_of(inst, l), ask_of(inst, c),
                     zero, zero, zero, bid_of(inst, o) * bars.dur, ask_of(inst, c) * bars.dur, bars.d)
    f = {"MIDPOINT": _tick_rounder(inst, 0.5), "BID": lambda x: bid_of(inst, x),
         "ASK": lambda x: ask_of(inst, x)}[series]
    return Units(bars.t, bars.dur, f(o), f(h), f(l), f(c), zero, zero, zero, zero, zero.copy(), bars.d)


def build_bars(gateway, inst: Instrument, series: str, a: int, b: int, use_rth: bool, bar: BarSize) -> Units:
    """Bars of `series` over seconds [a, b), built chunk by chunk so a year of minutes never sits
    in memory at once; partial bars at chunk edges merge (the reduction is associative)."""
    res = 1 if bar.seconds < 60 else 3600 if bar.calendar else 60
    chunk = 6 * 3600 if res == 1 else 32 * DAY
    rows, ids = [], []
    start = a
    while start < b:
        stop = min(b, (start // chunk + 1) * chunk)
        u = series_units(gateway, inst, series, start, stop, res, use_rth, labels=bool(bar.calendar))
        r, i = reduce(u, bar_ids(u, bar))
        rows.append(r)
        ids.append(i)
        start = stop
    if not rows:
        return Units.empty()
    bars, ids = reduce(Units.concat(rows), np.concatenate(ids) if ids else np.zeros(0, np.int64))
    return finish_bars(inst, align(bars, ids, bar), series)


# --------------------------------------------------------------------------- historical ticks


@dataclass(slots=True)
class TickSeconds:
    """Per-second view for tick synthesis: trade OHLC/volume/count and the closing quote."""
    t: np.ndarray
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray
    c: np.ndarray
    v: np.ndarray
    n: np.ndarray
    bid: np.ndarray
    ask: np.ndarray


def tick_seconds(gateway, inst: Instrument, a: int, b: int, use_rth: bool) -> TickSeconds:
    """Seconds [a, b) where the instrument trades (liquid with useRth), synthetic or live."""
    if inst.is_derived:
        return _option_tick_seconds(gateway, inst, a, b, use_rth)
    trades = series_units(gateway, inst, "TRADES", a, b, 1, use_rth)
    quotes = series_units(gateway, inst, "BID_ASK", a, b, 1, use_rth)
    bid, ask = quotes.sb / np.maximum(quotes.dur, 1), quotes.sa / np.maximum(quotes.dur, 1)
    return TickSeconds(trades.t, trades.o, trades.h, trades.l, trades.c, trades.v, trades.n, bid, ask)


def _option_tick_seconds(gateway, inst: Instrument, a: int, b: int, use_rth: bool) -> TickSeconds:
    """Options: the model value at each second's closing underlying mid (one model call a second)."""
    under = series_units(gateway, inst, "MIDPOINT", a, b, 1, use_rth)
    value = np.array([options.model(inst, float(s), float(t) + 1.0)[1].price for s, t in zip(under.c, under.t)])
    prev = np.concatenate((value[:1], value[:-1]))
    r = _tick_rounder(inst)
    return TickSeconds(under.t, r(prev), r(np.maximum(prev, value)), r(np.minimum(prev, value)), r(value),
                       under.v, under.n, bid_of(inst, value), ask_of(inst, value))


def trade_ticks(inst: Instrument, s: TickSeconds) -> list[tuple]:
    """(time, price, size, exchange) for every print: up to four per active second, at its
    open, extremes and close, sizes splitting the second's volume in lots."""
    lot = LOT.get(inst.sec_type, 1)
    makers = MAKERS.get(inst.sec_type, MAKERS["STK"])
    out = []
    for k in np.flatnonzero(s.v > 0):
        o, h, l, c = s.o[k], s.h[k], s.l[k], s.c[k]
        count = int(min(max(s.n[k], 1), 4))
        if count == 1:
            prices = [c]
        elif count == 2:
            prices = [o, c]
        elif count == 3:
            prices = [o, h if h - max(o, c) >= min(o, c) - l else l, c]
        else:
            prices = [o, h, l, c] if c < o else [o, l, h, c]
        lots = int(round(s.v[k] / lot))
        count = min(count, max(lots, 1))
        prices = prices[:count - 1] + [c] if count < len(prices) else prices
        sizes = [lots // count + (1 if i < lots % count else 0) for i in range(count)]
        t = int(s.t[k])
        for i, (p, size) in enumerate(zip(prices, sizes)):
            out.append((t, float(p), float(size * lot), makers[(t + i) % len(makers)]))
    return out


def quote_ticks(inst: Instrument, s: TickSeconds, prev: tuple[float, float] | None) -> list[tuple]:
    """(time, bid, ask, bidSize, askSize) at every second the quote changed."""
    lot = LOT.get(inst.sec_type, 1)
    out = []
    for k in range(len(s.t)):
        quote = (float(s.bid[k]), float(s.ask[k]))
        if quote != prev:
            t = int(s.t[k])
            out.append((t, quote[0], quote[1], float(lot * (1 + (t * 7919) % 9)),
                        float(lot * (1 + (t * 104729) % 11))))
            prev = quote
    return out
