"""What a market data line reads: the level-1 state of a root instrument, an option or a combo.

Owns: the sources a `mktdata.MarketDataLine` asks for its current tick items (`RootSource`: top of
book, trades and session statistics; `OptionSource`: the option quoter's quotes and computations;
`ComboSource`: a combo priced from its legs), the trade statistics the market itself does not keep
(VWAP, time of the last print: `trade_stats`), and the generic ticks (which ids TWS accepts,
`parse_generic_ticks`, and the seeded values each feed reports: `generic_items`).

Must never: send messages, step the market, keep per-client state, or draw unseeded randomness.
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
from ibapi.ticktype import TickTypeEnum as T

from . import option_market as om
from .market import LOT, TRADE_RATE, InstrumentMarket, StepEvents
from .universe import Instrument

if TYPE_CHECKING:
    from .host import MarketHost


# Generic tick ids TWS accepts in reqMktData; the ones without a feed here are accepted and stay silent.
LEGAL_GENERIC_TICKS = {100, 101, 104, 105, 106, 162, 165, 220, 221, 225, 232, 233, 236, 256, 258, 291, 292,
                       293, 294, 295, 318, 375, 411, 456, 460, 576, 577, 578, 586, 587, 588, 595, 614, 619,
                       623, 47, 59}
STEPS_PER_DAY = 6.5 * 3600 / 0.25        # the nominal 250 ms market, for average daily volumes
# --- trade statistics the market itself does not keep (VWAP, time of the last print) ----------------

@dataclass(slots=True)
class TradeStats:
    """Running notional/volume and last print time of one root instrument since the gateway started."""
    notional: float
    volume: float
    last_time: float
    fallback: float

    def on_step(self, ev: StepEvents) -> None:
        for t in ev.trades:
            self.notional += t.price * t.size
            self.volume += t.size
            self.fallback = t.price
        if ev.trades:
            self.last_time = ev.time

    @property
    def vwap(self) -> float:
        return self.notional / self.volume if self.volume > 0 else self.fallback


_STATS: "weakref.WeakKeyDictionary[MarketHost, dict[int, TradeStats]]" = weakref.WeakKeyDictionary()


def trade_stats(gateway: "MarketHost", m: InstrumentMarket) -> TradeStats:
    """One tracker per root, listening for the gateway's life so every line sees the same VWAP."""
    per_gw = _STATS.setdefault(gateway, {})
    stats = per_gw.get(m.inst.con_id)
    if stats is None:
        typical = (m.high + m.low + m.last) / 3
        stats = per_gw[m.inst.con_id] = TradeStats(typical * m.volume, m.volume, m.last_time, m.last)
        gateway.on_step(m.inst.con_id, stats.on_step)
    return stats


# --- sources: what a line reads the current state from ------------------------------------------------

@dataclass(slots=True)
class Top:
    """Level-1 state of one instrument; None = this instrument has no such tick (FX has no LAST)."""
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    last: float | None = None
    last_size: float = 0.0
    volume: float | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    last_time: float | None = None


Listener = Callable[[StepEvents], None]


class RootSource:
    """A stock, ETF, future, FX pair or bond: read straight off its market."""

    def __init__(self, gateway: "MarketHost", inst: Instrument):
        self.gateway = gateway
        self.inst = inst
        self.market = gateway.market.get(inst.con_id)
        self.stats = trade_stats(gateway, self.market)
        self.prints = inst.sec_type != "CASH"          # IDEALPRO quotes only: no last, no volume

    def top(self) -> Top:
        m = self.market
        if not self.prints:
            return Top(m.best_bid, m.bid_size, m.best_ask, m.ask_size, high=m.high, low=m.low, close=m.prev_close)
        return Top(m.best_bid, m.bid_size, m.best_ask, m.ask_size, m.last, m.last_size, m.volume, m.open,
                   m.high, m.low, m.prev_close, self.stats.last_time)

    def vwap(self) -> float:
        return self.stats.vwap

    def listen(self, fn: Listener) -> Callable[[], None]:
        return self.gateway.on_step(self.inst.con_id, fn)

    def computations(self) -> dict[int, om.Computation] | None:
        return None


class OptionSource:
    """A listed option: quoted by its `OptionQuoter` from the underlying."""

    def __init__(self, gateway: "MarketHost", inst: Instrument):
        self.gateway = gateway
        self.inst = inst
        self.quoter = om.quoter_for(gateway, inst)
        self.prints = True

    def top(self) -> Top:
        q = self.quoter
        return Top(q.bid, q.bid_size, q.ask, q.ask_size, q.last, q.last_size, q.volume, q.open, q.high, q.low,
                   q.close, q.last_time)

    def vwap(self) -> float:
        return self.quoter.vwap

    def listen(self, fn: Listener) -> Callable[[], None]:
        return self.quoter.listen(fn)

    def computations(self) -> dict[int, om.Computation] | None:
        return self.quoter.computations()


@dataclass(slots=True)
class ComboLeg:
    con_id: int
    ratio: int
    action: str
    exchange: str


class ComboSource:
    """A BAG: bid = what the legs can be bought for (buy legs at their bid, sell legs at their ask), etc."""

    def __init__(self, gateway: "MarketHost", inst: Instrument, legs: list[tuple[ComboLeg, object]]):
        self.gateway = gateway
        self.inst = inst
        self.legs = legs
        self.prints = False

    def top(self) -> Top:
        bid = ask = 0.0
        bid_size = ask_size = math.inf
        for leg, src in self.legs:
            t = src.top()
            r = max(leg.ratio, 1)
            if leg.action.upper() == "SELL":
                bid -= r * t.ask
                ask -= r * t.bid
                bid_size = min(bid_size, t.ask_size // r)
                ask_size = min(ask_size, t.bid_size // r)
            else:
                bid += r * t.bid
                ask += r * t.ask
                bid_size = min(bid_size, t.bid_size // r)
                ask_size = min(ask_size, t.ask_size // r)
        return Top(round(bid, 10), float(bid_size), round(ask, 10), float(ask_size))

    def vwap(self) -> float:
        return 0.0

    def listen(self, fn: Listener) -> Callable[[], None]:
        removers = [src.listen(fn) for _, src in self.legs]

        def remove() -> None:
            for r in removers:
                r()
        return remove

    def computations(self) -> dict[int, om.Computation] | None:
        return None


# --- generic ticks ----------------------------------------------------------------------------------

def parse_generic_ticks(text: str) -> tuple[set[int], bool, str | None]:
    """(tick ids, mdoff, first illegal entry or None) of a genericTickList like 'mdoff,233,292:BRF'."""
    ids: set[int] = set()
    mdoff = False
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.lower() == "mdoff":
            mdoff = True
            continue
        head = item.split(":", 1)[0]
        if not head.isdigit() or int(head) not in LEGAL_GENERIC_TICKS:
            return ids, mdoff, item
        ids.add(int(head))
    return ids, mdoff, None


def _avg_volume(inst: Instrument, u: float) -> float:
    expected = TRADE_RATE.get(inst.sec_type, 0.5) * LOT.get(inst.sec_type, 1) * 2.0 * STEPS_PER_DAY
    return float(int(expected * (0.8 + 0.4 * u)))


def _range_ticks(inst: Instrument, anchor: float, vol: float, top: Top, u: np.ndarray) -> list:
    """13/26/52-week lows and highs (ticks 15..20), nested and containing today's range."""
    items = []
    lo = min(v for v in (top.low, top.last, top.bid, anchor) if v)
    hi = max(v for v in (top.high, top.last, top.ask, anchor) if v)
    for k, weeks in enumerate((13, 26, 52)):
        spread = vol * math.sqrt(weeks / 52)
        lo = min(lo, anchor * math.exp(-spread * (0.6 + 0.8 * u[2 * k])))
        hi = max(hi, anchor * math.exp(spread * (0.6 + 0.8 * u[2 * k + 1])))
        items.append(("p", T.LOW_13_WEEK + 2 * k, inst.round_price(lo)))
        items.append(("p", T.HIGH_13_WEEK + 2 * k, inst.round_price(hi)))
    return items


def generic_items(gateway: "MarketHost", inst: Instrument, source, codes: set[int]) -> list:
    """The once-per-line generic ticks, seeded by (seed, conId) so every line shows the same values."""
    u = np.random.default_rng([gateway.config.seed, inst.con_id, 7]).random(12)
    items: list = []
    top = source.top()
    if isinstance(source, OptionSource):
        q = source.quoter
        under = gateway.universe.get(inst.under_con_id)
        if 100 in codes:
            items.append(("s", T.OPTION_CALL_VOLUME if inst.right == "C" else T.OPTION_PUT_VOLUME, q.volume))
        if 101 in codes:
            items.append(("s", T.OPTION_CALL_OPEN_INTEREST if inst.right == "C" else T.OPTION_PUT_OPEN_INTEREST,
                          q.open_interest))
        if 104 in codes:
            items.append(("g", T.OPTION_HISTORICAL_VOL, round(under.vol * (0.85 + 0.3 * u[6]), 6)))
        if 106 in codes:
            items.append(("g", T.OPTION_IMPLIED_VOL, round(q.iv, 4)))
        if 165 in codes:
            items += _range_ticks(inst, max(q.close, 0.01), max(q.iv, 0.3) * 2, top, u)
            items.append(("s", T.AVG_VOLUME, float(int(max(q.volume, 10) * (0.8 + 0.4 * u[7])))))
        return items
    if isinstance(source, ComboSource):
        return items
    chain = gateway.universe.options_of(inst.con_id)
    avg_volume = _avg_volume(inst, u[7])
    if 100 in codes or 101 in codes:
        calls = puts = call_oi = put_oi = 0.0
        if chain:
            spot, now = source.market.midpoint, gateway.now()
            for opt in chain:
                volume, oi = om.daily_activity(gateway.config.seed, opt, spot, now)
                if opt.right == "C":
                    calls, call_oi = calls + volume, call_oi + oi
                else:
                    puts, put_oi = puts + volume, put_oi + oi
        elif inst.sec_type in ("STK", "FUT"):
            base = avg_volume / (100 if inst.sec_type == "STK" else 10)
            calls, puts = float(int(base * (0.4 + u[8]))), float(int(base * (0.3 + u[9])))
            call_oi, put_oi = float(int(base * 12 * (0.5 + u[10]))), float(int(base * 10 * (0.5 + u[11])))
        if 100 in codes:
            items += [("s", T.OPTION_CALL_VOLUME, calls), ("s", T.OPTION_PUT_VOLUME, puts)]
        if 101 in codes:
            items += [("s", T.OPTION_CALL_OPEN_INTEREST, call_oi), ("s", T.OPTION_PUT_OPEN_INTEREST, put_oi)]
    if 104 in codes:
        items.append(("g", T.OPTION_HISTORICAL_VOL, round(inst.vol * (0.85 + 0.3 * u[6]), 6)))
    if 106 in codes:
        atm = chain[0].vol if chain else inst.vol * 1.05
        items.append(("g", T.OPTION_IMPLIED_VOL, round(max(0.05, atm) * (0.97 + 0.06 * u[8]), 6)))
    if 165 in codes:
        items += _range_ticks(inst, inst.price, inst.vol, top, u)
        items.append(("s", T.AVG_VOLUME, avg_volume))
    if 236 in codes and inst.sec_type == "STK":
        items += [("g", T.SHORTABLE, 3.0), ("s", T.SHORTABLE_SHARES, float(int(avg_volume * (0.5 + 2 * u[9]))))]
    return items
