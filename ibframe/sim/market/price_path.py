"""The synthetic past of one root instrument: trading calendars and a seeded Brownian price path.

Owns: per hours kind, the calendar of trading, liquid and extended seconds (`calendar`, `Calendar`,
`Intervals`) and, per root instrument, the `PricePath` whose hour totals, minute and second points,
bar extremes and volumes every historical series is built from (`history` turns them into `Units`).

The model. Log prices form a Brownian path in "business time": a second counts 1 when the
instrument is liquid, EXT_VARIANCE in extended hours, 0 when closed, and each trading-session
open carries a point mass (the overnight gap, at the instant of the open). The path is built
top-down so every resolution agrees where they overlap:
  hour totals   rng([seed, conId, day, 0])   one normal per hour, variance = the hour's business time
  minute points rng([seed, conId, day, 1])   Brownian bridge inside each hour (+ minute extremes, volume noise)
  second points rng([seed, conId, hour, 3])  Brownian bridge inside each minute (+ extremes, volume split)
so a minute's open and close are the same whether bars are built from seconds or minutes, and
volume is drawn per minute and split exactly among its seconds. Bar extremes come from the exact
distribution of a Brownian bridge's maximum/minimum inside each unit. Volume follows a U-shaped
profile over liquid hours, EXT_VOLUME of the average in extended hours and nothing when closed.

Must never: use unseeded randomness, touch sessions or sockets, keep per-request state, or know
about series, bars or the live tape (history.py joins the path to the tape).
"""
from __future__ import annotations

import datetime as dt
import math
import threading
from dataclasses import dataclass

import numpy as np

from . import hours
from .bars import DAY, EPOCH_ORDINAL, Units, local_seconds
from .market import LOT, TRADE_RATE
from .universe import MARKET_RULES, Instrument


EXT_VARIANCE = 0.3          # variance weight of an extended-hours second (liquid = 1)
EXT_VOLUME = 0.08           # volume of an extended-hours second relative to the liquid average
TRADING_DAYS = 252
STEPS_PER_SECOND = 4        # the live market's default 250 ms steps: sets the synthetic trade rate
GAP_SECONDS = {"us_equity": 3600, "us_option": 0, "us_bond": 1800, "cme_index_future": 900, "fx": 600}
LIQUID_SECONDS = {"us_equity": 23400, "us_option": 23400, "us_bond": 32400, "cme_index_future": 23400, "fx": 85500}
EXTENDED_SECONDS = {"us_equity": 34200, "us_option": 0, "us_bond": 0, "cme_index_future": 59400, "fx": 0}
U_SHAPE = {"fx": (1.0, 0.0)}                 # volume profile A + B(2x-1)^2 over a liquid session (mean 1)
DEFAULT_U_SHAPE = (0.5, 1.5)
# --------------------------------------------------------------------------- trading calendars


@dataclass(slots=True)
class _Sessions:
    o: np.ndarray           # opens, epoch seconds
    c: np.ndarray           # closes
    pre: np.ndarray         # seconds of all earlier sessions in the table
    label: np.ndarray       # date ordinal of each session's label (the day it closes on)

    def locate(self, t):
        """(sessions opened at or before t, index of the latest, seconds of it before t)."""
        if len(self.o) == 0:
            zero = np.zeros(np.shape(t), np.int64)
            return zero, zero, np.zeros(np.shape(t))
        i = np.searchsorted(self.o, t, side="right")
        j = np.maximum(i - 1, 0)
        return i, j, np.clip(t - self.o[j], 0.0, self.c[j] - self.o[j])

    def cum(self, t) -> np.ndarray:
        """Open seconds before each t (relative to the table's first session)."""
        i, j, part = self.locate(t)
        return np.where(i > 0, self.pre[j] + part, 0.0) if len(self.o) else part


@dataclass(slots=True)
class Intervals:
    """Per-interval amounts between consecutive edges (edges on whole seconds)."""
    variance: np.ndarray    # business time, incl. the gap mass of a trading open at the interval's end
    diffusion: np.ndarray   # business time without gaps
    volume: np.ndarray      # expected activity in liquid-average seconds
    trading: np.ndarray     # interval overlaps trading hours
    liquid: np.ndarray      # interval overlaps liquid hours


class Calendar:
    """One session kind's trading and liquid sessions as arrays, widened on demand (atomically:
    gateways on other threads share it), and the per-interval measures built on them. Session
    seconds are whole numbers, so differences of the cumulative counts are exact and the
    measures do not depend on how wide the table happens to be."""

    def __init__(self, kind: str):
        self.kind = kind
        self._state: tuple[float, float, _Sessions | None, _Sessions | None] = (math.inf, -math.inf, None, None)
        self._lock = threading.Lock()
        self.shape = U_SHAPE.get(kind, DEFAULT_U_SHAPE)
        self.gap = float(GAP_SECONDS[kind])

    @property
    def liquid(self) -> _Sessions:
        return self._state[2]

    @property
    def trading(self) -> _Sessions:
        return self._state[3]

    def cover(self, t0: float, t1: float) -> None:
        lo, hi = self._state[:2]
        if lo <= t0 and t1 <= hi:
            return
        with self._lock:
            lo, hi = self._state[:2]
            if lo <= t0 and t1 <= hi:
                return
            lo = min(lo, t0 - 40 * DAY)
            hi = max(hi, t1 + 40 * DAY)
            d0 = dt.datetime.fromtimestamp(max(lo, 0), dt.timezone.utc).date()
            d1 = dt.datetime.fromtimestamp(hi, dt.timezone.utc).date()
            self._state = (_midnight(d0) + 2 * DAY, _midnight(d1) - DAY, self._load(d0, d1, True),
                           self._load(d0, d1, False))

    def _load(self, d0: dt.date, d1: dt.date, liquid: bool) -> _Sessions:
        pairs = hours.sessions(self.kind, d0, d1, liquid)
        o = np.array([a.timestamp() for a, _ in pairs], dtype=np.float64)
        c = np.array([b.timestamp() for _, b in pairs], dtype=np.float64)
        label = np.array([b.date().toordinal() for _, b in pairs], dtype=np.int64)
        pre = np.concatenate(([0.0], np.cumsum(c - o)))[:-1] if len(o) else np.zeros(0)
        return _Sessions(o, c, pre, label)

    def sessions(self, liquid: bool) -> _Sessions:
        return self.liquid if liquid else self.trading

    def intervals(self, edges: np.ndarray) -> Intervals:
        _, _, liq, trd = self._state
        i, j, part = liq.locate(edges)
        if len(liq.o):
            started = i > 0
            whole = np.where(started, liq.pre[j], 0.0)
            part = np.where(started, part, 0.0)
            d_liquid = np.diff(whole) + np.diff(part)          # exact: whole seconds
            a, b = self.shape
            if b:
                span = liq.c[j] - liq.o[j]
                x = np.divide(part, span, out=np.zeros_like(part), where=span > 0)
                part = span * (a * x + b * ((2 * x - 1) ** 3 + 1) / 6)
            else:
                part = a * part
            d_shaped = np.diff(whole) + np.diff(part)
        else:
            d_liquid = d_shaped = np.zeros(len(edges) - 1)
        d_trading = np.diff(trd.cum(edges))
        opens = np.diff(np.searchsorted(trd.o, edges, side="right")) if len(trd.o) else 0
        extended = d_trading - d_liquid
        diffusion = np.maximum(d_liquid + EXT_VARIANCE * extended, 0.0)
        return Intervals(diffusion + self.gap * opens, diffusion, np.maximum(d_shaped + EXT_VOLUME * extended, 0.0),
                         d_trading > 0, d_liquid > 0)

    def overlap(self, t0: np.ndarray, t1: np.ndarray, liquid: bool) -> np.ndarray:
        """True where [t0, t1) overlaps a session."""
        s = self.sessions(liquid)
        return (s.cum(np.asarray(t1, float)) - s.cum(np.asarray(t0, float))) > 0

    def labels(self, t: np.ndarray, liquid: bool) -> np.ndarray:
        """Session label (date ordinal) of each time; New York date when outside every session."""
        s = self.sessions(liquid)
        t = np.asarray(t, dtype=np.float64)
        i = np.searchsorted(s.o, t, side="right") - 1 if len(s.o) else np.full(t.shape, -1)
        inside = (i >= 0) & (t < s.c[np.maximum(i, 0)]) if len(s.o) else np.zeros(t.shape, bool)
        out = np.zeros(t.shape, np.int64)
        if inside.any():
            out[inside] = s.label[i[inside]]
        if not inside.all():
            out[~inside] = _ny_date_ordinal(t[~inside])
        return out


_CALENDARS: dict[str, Calendar] = {}


def calendar(kind: str) -> Calendar:
    cal = _CALENDARS.get(kind)
    if cal is None:
        cal = _CALENDARS[kind] = Calendar(kind)
    return cal


def _midnight(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp()


def _ny_date_ordinal(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(t, kind="stable")
    local = np.empty(t.shape, np.int64)
    local[order] = local_seconds(np.floor(t[order]).astype(np.int64))
    return local // DAY + EPOCH_ORDINAL


# --------------------------------------------------------------------------- the path of one root


@dataclass(slots=True)
class _Block:
    """A stretch of the path at one resolution: rows of `cols` units, one row per parent."""
    t0: int                 # start second of the first unit
    step: int               # unit length in seconds (60 or 1)
    pts: np.ndarray         # (rows, cols + 1) log-path at unit boundaries
    hi: np.ndarray          # (rows, cols) unit maxima
    lo: np.ndarray
    lots: np.ndarray        # (rows, cols) traded lots
    trading: np.ndarray     # (rows, cols) unit inside trading hours
    liquid: np.ndarray      # (rows, cols) unit inside liquid hours


MASKS = ("trading", "liquid", "all")


class PricePath:
    """The deterministic past of one root instrument, anchored at its price at the start second."""

    def __init__(self, inst: Instrument, seed: int, start_time: float):
        self.inst = inst
        self.seed = int(seed)
        self.s0 = int(math.floor(start_time))
        self.h0 = self.s0 // 3600
        self.cal = calendar(inst.hours_kind)
        kind = inst.hours_kind
        day = LIQUID_SECONDS[kind] + EXT_VARIANCE * EXTENDED_SECONDS[kind] + GAP_SECONDS[kind]
        self.unit_var = float(inst.vol) ** 2 / (TRADING_DAYS * day)
        self.lot = LOT.get(inst.sec_type, 1)
        self.lots_per_second = TRADE_RATE.get(inst.sec_type, 0.5) * STEPS_PER_SECOND * 2.0
        self.log_p0 = math.log(inst.price)
        self._h_lo = self.h0 + 1            # hour totals are known for hours [_h_lo, h0]
        self._r = np.zeros(0)
        self._b = np.zeros(1)               # path at hour boundaries [_h_lo, h0 + 1]
        self._draws: dict[int, tuple] = {}
        self._second_blocks: dict[int, _Block] = {}
        self.x0 = 0.0
        self.x0 = self._second_point(self.s0)

    def _rng(self, key: int, level: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.inst.con_id, int(key), level])

    # --- hour totals -------------------------------------------------------------------------
    def _ensure_hours(self, hour: int) -> None:
        if hour >= self._h_lo:
            return
        old_lo = self._h_lo
        d_first, d_last = hour // 24, (old_lo - 1) // 24
        z = np.concatenate([self._rng(d, 0).standard_normal(24) for d in range(d_first, d_last + 1)])
        edges = np.arange(d_first * 24, (d_last + 1) * 24 + 1, dtype=np.float64) * 3600.0
        self.cal.cover(edges[0], edges[-1])
        w = self.cal.intervals(edges).variance
        r = np.sqrt(self.unit_var * w) * z - 0.5 * self.unit_var * w
        self._r = np.concatenate([r[: old_lo - d_first * 24], self._r])
        self._h_lo = d_first * 24
        total = np.cumsum(self._r)
        before = total[self.h0 - self._h_lo - 1] if self.h0 > self._h_lo else 0.0
        self._b = np.concatenate(([0.0], total)) - before

    def _boundary(self, ha: int, hb: int) -> np.ndarray:
        """Path values at the starts of hours ha..hb (inclusive), hb <= h0 + 1."""
        self._ensure_hours(ha)
        return self._b[ha - self._h_lo: hb - self._h_lo + 1]

    # --- minutes -----------------------------------------------------------------------------
    def _day_draws(self, day: int) -> tuple:
        got = self._draws.get(day)
        if got is None:
            g = self._rng(day, 1)
            got = (g.standard_normal((24, 60)), 1.0 - g.random((2, 24, 60)), g.standard_normal((24, 60)))
            if len(self._draws) >= 96:
                self._draws.pop(next(iter(self._draws)))
            self._draws[day] = got
        return got

    def _minute_block(self, ha: int, hb: int) -> _Block:
        nh = hb - ha
        bounds = self._boundary(ha, hb)
        edges = ha * 3600.0 + 60.0 * np.arange(nh * 60 + 1)
        self.cal.cover(edges[0], edges[-1])
        m = self.cal.intervals(edges)
        w, wd, act = (x.reshape(nh, 60) for x in (m.variance, m.diffusion, m.volume))
        d0 = ha // 24
        draws = [self._day_draws(d) for d in range(d0, (hb - 1) // 24 + 1)]
        rows = slice(ha - d0 * 24, hb - d0 * 24)
        z = np.concatenate([d[0] for d in draws])[rows]
        u = np.concatenate([d[1] for d in draws], axis=1)[:, rows]
        zv = np.concatenate([d[2] for d in draws])[rows]
        pts = _bridge(bounds, w, z, self.unit_var)
        hi, lo = _extremes(pts[:, :-1], pts[:, 1:], self.unit_var * wd, u)
        lots = np.rint(self.lots_per_second * act * np.exp(0.5 * zv - 0.125))
        return _Block(ha * 3600, 60, pts, hi, lo, lots, m.trading.reshape(nh, 60), m.liquid.reshape(nh, 60))

    # --- seconds -----------------------------------------------------------------------------
    def _second_block(self, hour: int) -> _Block:
        got = self._second_blocks.get(hour)
        if got is not None:
            return got
        mb = self._minute_block(hour, hour + 1)
        edges = hour * 3600.0 + np.arange(3601, dtype=np.float64)
        m = self.cal.intervals(edges)
        w, wd = m.variance.reshape(60, 60), m.diffusion.reshape(60, 60)
        trading = m.trading.reshape(60, 60)
        g = self._rng(hour, 3)
        z = g.standard_normal((60, 60))
        u = 1.0 - g.random((2, 60, 60))
        e = g.standard_exponential((60, 60))
        pts = _bridge(mb.pts[0], w, z, self.unit_var)
        hi, lo = _extremes(pts[:, :-1], pts[:, 1:], self.unit_var * wd, u)
        lots = _split(mb.lots[0], np.where(trading, e, 0.0))
        block = _Block(hour * 3600, 1, pts, hi, lo, lots, trading, m.liquid.reshape(60, 60))
        if len(self._second_blocks) >= 16:
            self._second_blocks.pop(next(iter(self._second_blocks)))
        self._second_blocks[hour] = block
        return block

    def _second_point(self, t: int) -> float:
        """The log-path at second boundary t (t inside an hour's second block)."""
        hour = t // 3600
        k = t - hour * 3600
        block = self._second_block(hour)
        return float(block.pts[k // 60, k % 60])

    # --- units -------------------------------------------------------------------------------
    def raw_units(self, t0: int, t1: int, res: int, mask: str = "trading", cal: Calendar | None = None) -> Units:
        """The mid path for [t0, t1) (t1 <= start second) as units of `res` seconds (1, 60 or
        3600; unaligned edges in finer units), keeping only units inside trading or liquid hours
        ("all" keeps every unit) of `cal` (default: the instrument's own calendar). Prices,
        volume in shares, pv = mid x volume."""
        t0, t1 = int(t0), min(int(t1), self.s0)
        if t1 <= t0:
            return Units.empty()
        if res == 1:
            return self._from_blocks(t0, t1, 1, mask, cal)
        finer = 1 if res == 60 else 60
        body0, body1 = -(-t0 // res) * res, (t1 // res) * res
        if body1 <= body0:
            return self.raw_units(t0, t1, finer, mask, cal)
        return Units.concat([self.raw_units(t0, body0, finer, mask, cal),
                             self._from_blocks(body0, body1, res, mask, cal),
                             self.raw_units(body1, t1, finer, mask, cal)])

    def _from_blocks(self, t0: int, t1: int, res: int, mask: str, cal: Calendar | None) -> Units:
        if res == 1:
            parts = [self._block_units(self._second_block(h), t0, t1, 1, mask, cal)
                     for h in range(t0 // 3600, (t1 - 1) // 3600 + 1)]
            return Units.concat(parts)
        ha, hb = t0 // 3600, -(-t1 // 3600)
        return self._block_units(self._minute_block(ha, hb), t0, t1, res, mask, cal)

    def _block_units(self, block: _Block, t0: int, t1: int, res: int, mask: str, cal: Calendar | None) -> Units:
        rows, cols = block.hi.shape
        starts = block.t0 + block.step * np.arange(rows * cols, dtype=np.int64)
        keep = (starts >= t0) & (starts < t1)
        if mask != "all":
            if cal is None or cal is self.cal:
                keep &= (block.liquid if mask == "liquid" else block.trading).ravel()
            else:
                cal.cover(starts[0], starts[-1] + block.step)
                keep &= cal.overlap(starts, starts + block.step, mask == "liquid")
        keep = keep.reshape(rows, cols)
        if res == 3600:                     # one unit per hour from its kept minutes
            any_kept = keep.any(axis=1)
            first = np.argmax(keep, axis=1)
            last = cols - 1 - np.argmax(keep[:, ::-1], axis=1)
            r = np.arange(rows)
            o, c = block.pts[r, first], block.pts[r, last + 1]
            h = np.where(keep, block.hi, -np.inf).max(axis=1)
            l = np.where(keep, block.lo, np.inf).min(axis=1)
            lots = np.where(keep, block.lots, 0.0).sum(axis=1)
            t = block.t0 + 3600 * r + block.step * first
            dur = block.step * keep.sum(axis=1)
            sel = any_kept
            return self._units(t[sel], dur[sel], o[sel], h[sel], l[sel], c[sel], lots[sel])
        flat = np.flatnonzero(keep.ravel())
        r, k = flat // cols, flat % cols
        return self._units(starts[flat], block.step, block.pts[r, k], block.hi[r, k], block.lo[r, k],
                           block.pts[r, k + 1], block.lots[r, k])

    def _units(self, t, dur, o, h, l, c, lots) -> Units:
        shift = self.log_p0 - self.x0
        o, h, l, c = (np.exp(x + shift) for x in (o, h, l, c))
        v = lots * self.lot
        return Units.make(t, dur, o, h, l, c, v, np.ceil(lots / 2.0), (o + c) / 2.0 * v)

    def price_at(self, t: int) -> float:
        """Mid price at second t (the start price from the start second on)."""
        if t >= self.s0:
            return float(self.inst.price)
        return float(math.exp(self._second_point(t) + self.log_p0 - self.x0))

    # --- the market's starting statistics ---------------------------------------------------------
    def session_stats(self) -> dict | None:
        inst, s0 = self.inst, self.s0
        self.cal.cover(s0 - 10 * DAY, s0 + DAY)
        trading = self.cal.trading
        i = int(np.searchsorted(trading.o, s0, side="right")) - 1
        if i < 0:
            return None
        start, end = int(trading.o[i]), min(s0, int(trading.c[i]))
        units = self.raw_units(start, end, 60)
        if len(units) == 0:
            return None
        last = float(inst.round_price(inst.price))
        liquid = self.cal.liquid
        opened = liquid.o[(liquid.o >= start) & (liquid.o < end)]
        first = int(np.searchsorted(units.t, opened[0])) if len(opened) else 0
        prev_close_t = int(hours.previous_close(inst.hours_kind, float(start)).timestamp())
        rnd = _tick_rounder(inst)
        return {
            "open": float(rnd(units.o[first])),
            "high": float(max(rnd(units.h.max()), last)),
            "low": float(min(rnd(units.l.min()), last)),
            "close": float(rnd(self.price_at(prev_close_t))),
            "last": last,
            "volume": float(units.v.sum()),
        }


def _bridge(bounds: np.ndarray, w: np.ndarray, z: np.ndarray, unit_var: float) -> np.ndarray:
    """Points of Brownian bridges between consecutive `bounds`, one row per interval, with
    increment variances unit_var * w; returns (rows, cols + 1) including both ends."""
    dw = np.sqrt(unit_var * w) * z - 0.5 * unit_var * w
    total = w.sum(axis=1)
    target = bounds[1:] - bounds[:-1]
    corr = np.divide(target - dw.sum(axis=1), total, out=np.zeros_like(total), where=total > 0)
    inc = dw + w * corr[:, None]
    pts = bounds[:-1, None] + np.concatenate((np.zeros((len(w), 1)), np.cumsum(inc, axis=1)), axis=1)
    pts[:, -1] = bounds[1:]                     # exact ends: coarser units agree with finer ones
    return pts


def _extremes(a, b, var, u):
    """A sample of the maximum and minimum of a Brownian bridge from a to b with variance var."""
    spread = (b - a) ** 2
    hi = 0.5 * (a + b + np.sqrt(spread - 2.0 * var * np.log(u[0])))
    lo = 0.5 * (a + b - np.sqrt(spread - 2.0 * var * np.log(u[1])))
    return hi, lo


def _split(totals: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Split each integer total among its row's cells in proportion to weights (largest remainder)."""
    sums = weights.sum(axis=1, keepdims=True)
    weights = np.where(sums > 0, weights, 1.0)
    share = totals[:, None] * weights / weights.sum(axis=1, keepdims=True)
    base = np.floor(share)
    left = (totals - base.sum(axis=1)).astype(np.int64)
    order = np.argsort(-(share - base), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(weights.shape[1])[None, :].repeat(len(weights), 0), axis=1)
    return base + (ranks < left[:, None])


# --------------------------------------------------------------------------- prices on the grid

def _increment(inst: Instrument, x: np.ndarray) -> np.ndarray:
    if not inst.is_derived:
        return np.full(np.shape(x), inst.min_tick)
    rule = MARKET_RULES.get(inst.market_rule_id, ((0.0, inst.min_tick),))
    inc = np.full(np.shape(x), rule[0][1])
    for low, step in rule:
        inc = np.where(np.abs(x) >= low, step, inc)
    return inc


def _tick_rounder(inst: Instrument, fraction: float = 1.0):
    def rnd(x):
        inc = _increment(inst, x) * fraction
        return np.round(np.round(np.asarray(x, float) / inc) * inc, 10)
    return rnd
