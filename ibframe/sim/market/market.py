"""The seeded, deterministic simulated market.

Owns: for every root instrument (stock, ETF, future, FX pair, bond) a price process, a
multi-level order book quoted by named market makers, the trades that print against it and
a per-second tape of what happened since the simulator started (history joins it). Options
have no process of their own: `OptionQuoter` prices them from their underlying.

Trading hours: an instrument moves and prints only while it trades (`trading_time.TradingGate`:
its tradingHours, e.g. 04:00-20:00 New York for US stocks on exchange days, the CME daily break,
FX from Sunday 17:15 to Friday 17:00). A step outside them leaves its book, last price and
statistics as they were (the tape carries them forward, with no volume) and says so
(`StepEvents.trading` False); the first step of the next session opens with an overnight gap.

Determinism: each instrument draws from its own generator, seeded by (seed, conId), and is
advanced exactly once per market step in which it trades, whoever listens; whether it trades is a
function of the step's time only, so the same seed gives the same market step for step. Never
touches sockets, client sessions or wall-clock time: the caller passes step times.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .trading_time import TradingGate
from .universe import Instrument

SECONDS_PER_YEAR = 365.25 * 24 * 3600
TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600

MAKERS = {
    "STK": ("NSDQ", "ARCA", "BATS", "EDGX", "IEX", "NYSE", "MEMX", "DRCTEDGE", "BYX", "PEARL"),
    "FUT": ("CME",),
    "CASH": ("IDEALPRO",),
    "BOND": ("TRADEWEB", "BONDDESK", "VALUBOND"),
    "OPT": ("CBOE", "ISE", "PHLX", "AMEX", "BOX", "MIAX", "PEARL", "EDGX"),
}
LOT = {"STK": 100, "FUT": 1, "CASH": 100_000, "BOND": 10, "OPT": 1}
TRADE_RATE = {"STK": 0.9, "FUT": 1.2, "CASH": 0.6, "BOND": 0.05, "OPT": 0.08}  # expected prints per step
REOPEN_GAP_SECONDS = {"us_equity": 3600, "us_bond": 1800, "cme_index_future": 900, "fx": 600}  # gap variance


@dataclass(slots=True)
class Level:
    price: float
    size: float
    maker: str


@dataclass(slots=True)
class Trade:
    price: float
    size: float
    exchange: str
    aggressor_buy: bool


@dataclass(slots=True)
class StepEvents:
    """What one market step changed for one instrument; the feeds turn this into messages.
    `trading` is False when the instrument does not trade at this step (nothing changed)."""
    time: float
    trading: bool = True
    quote_changed: bool = False
    trades: list[Trade] = field(default_factory=list)
    book_changed: bool = False


@dataclass(slots=True)
class Tape:
    """Per-second record of the live market since start: the part of history that really happened."""
    start_second: int
    open: list = field(default_factory=list)
    high: list = field(default_factory=list)
    low: list = field(default_factory=list)
    close: list = field(default_factory=list)
    volume: list = field(default_factory=list)
    count: list = field(default_factory=list)
    bid: list = field(default_factory=list)
    ask: list = field(default_factory=list)

    def record(self, second: int, last: float, bid: float, ask: float, trades: list[Trade]) -> None:
        idx = second - self.start_second
        while len(self.close) <= idx:            # carry forward across seconds with no step
            prev = self.close[-1] if self.close else last
            for arr, v in ((self.open, prev), (self.high, prev), (self.low, prev), (self.close, prev)):
                arr.append(v)
            self.volume.append(0.0)
            self.count.append(0)
            self.bid.append(bid)
            self.ask.append(ask)
        for t in trades:
            if self.count[idx] == 0:
                self.open[idx] = self.high[idx] = self.low[idx] = t.price
            self.high[idx] = max(self.high[idx], t.price)
            self.low[idx] = min(self.low[idx], t.price)
            self.close[idx] = t.price
            self.volume[idx] += t.size
            self.count[idx] += 1
        self.bid[idx] = bid
        self.ask[idx] = ask

    def arrays(self) -> dict[str, np.ndarray]:
        seconds = np.arange(self.start_second, self.start_second + len(self.close), dtype=np.int64)
        return {"time": seconds, "open": np.array(self.open), "high": np.array(self.high),
                "low": np.array(self.low), "close": np.array(self.close), "volume": np.array(self.volume),
                "count": np.array(self.count), "bid": np.array(self.bid), "ask": np.array(self.ask)}


class InstrumentMarket:
    """Price process, book, session statistics and tape of one root instrument."""

    def __init__(self, inst: Instrument, seed: int, start_time: float, depth: int = 10,
                 session_stats: dict | None = None, last_time: float | None = None):
        self.inst = inst
        self.rng = np.random.default_rng([seed, inst.con_id])
        self.depth = depth
        self.tick = inst.min_tick
        self.lot = LOT.get(inst.sec_type, 1)
        self.makers = MAKERS.get(inst.sec_type, MAKERS["STK"])
        self.mid = float(inst.price)
        self.half_spread = max(self.tick, self.mid * self._spread_bps() / 2e4)
        self.bids: list[Level] = []
        self.asks: list[Level] = []
        self._build_book(initial=True)
        stats = session_stats or {}
        self.last = float(stats.get("last", inst.round_price(self.mid)))
        self.last_size = float(self.lot)
        self.last_exchange = self.makers[0]
        self.volume = float(stats.get("volume", 0.0))
        self.open = float(stats.get("open", self.last))
        self.high = float(stats.get("high", max(self.last, self.open)))
        self.low = float(stats.get("low", min(self.last, self.open)))
        self.prev_close = float(stats.get("close", self.open))
        self.time = start_time
        self.last_time = start_time if last_time is None else last_time    # time of the last print
        self.trading = True
        self.tape = Tape(start_second=int(start_time))
        self.tape.record(int(start_time), self.last, self.best_bid, self.best_ask, [])

    # --- book ---------------------------------------------------------------------------------
    def _spread_bps(self) -> float:
        return {"STK": 2.0, "FUT": 0.5, "CASH": 0.5, "BOND": 8.0}.get(self.inst.sec_type, 2.0)

    @property
    def best_bid(self) -> float:
        return self.bids[0].price

    @property
    def best_ask(self) -> float:
        return self.asks[0].price

    @property
    def bid_size(self) -> float:
        return self.bids[0].size

    @property
    def ask_size(self) -> float:
        return self.asks[0].size

    def _level_size(self, level: int) -> float:
        lots = 1 + int(self.rng.gamma(2.0, 2.0 + level))
        return float(lots * self.lot)

    def _build_book(self, initial: bool = False) -> bool:
        """Re-centre the book on the mid; returns True when any level changed."""
        tick = self.tick
        bid0 = math.floor((self.mid - self.half_spread) / tick + 1e-9) * tick
        ask0 = math.ceil((self.mid + self.half_spread) / tick - 1e-9) * tick
        if ask0 - bid0 < tick / 2:
            ask0 = bid0 + tick
        old_bids = {round(lv.price, 10): lv for lv in self.bids}
        old_asks = {round(lv.price, 10): lv for lv in self.asks}
        new_bids, new_asks = [], []
        for k in range(self.depth):
            for side_new, old, price in ((new_bids, old_bids, bid0 - k * tick), (new_asks, old_asks, ask0 + k * tick)):
                price = round(price, 10)
                prev = old.get(price)
                if prev is not None and not initial and self.rng.random() > 0.15:
                    side_new.append(Level(price, prev.size, prev.maker))
                else:
                    maker = self.makers[int(self.rng.integers(len(self.makers)))]
                    side_new.append(Level(price, self._level_size(k), maker))
        changed = (new_bids != self.bids) or (new_asks != self.asks)
        self.bids, self.asks = new_bids, new_asks
        return changed

    # --- stepping -------------------------------------------------------------------------------
    def step(self, time: float, dt_seconds: float, trading: bool = True) -> StepEvents:
        """Advance the process by one step ending at `time` and print this step's trades; when the
        instrument does not trade, only carry the tape forward."""
        if not trading:
            self.trading = False
            self.time = time
            self.tape.record(int(time), self.last, self.best_bid, self.best_ask, [])
            return StepEvents(time=time, trading=False)
        events = StepEvents(time=time)
        if not self.trading:            # the first step of a session: the overnight gap, then this step
            self.trading = True
            dt_seconds += REOPEN_GAP_SECONDS.get(self.inst.hours_kind, 0)
        sigma = self.inst.vol * math.sqrt(dt_seconds / TRADING_SECONDS_PER_YEAR)
        z = float(self.rng.standard_normal())
        self.mid *= math.exp(sigma * z - 0.5 * sigma * sigma)
        old_top = (self.best_bid, self.bid_size, self.best_ask, self.ask_size)
        events.book_changed = self._build_book()
        n_trades = int(self.rng.poisson(TRADE_RATE.get(self.inst.sec_type, 0.5)))
        for _ in range(n_trades):
            buy = bool(self.rng.random() < 0.5)
            book = self.asks if buy else self.bids
            size = float(self.lot * int(self.rng.geometric(0.5)))
            size = min(size, book[0].size)
            trade = Trade(book[0].price, size, book[0].maker, buy)
            book[0].size -= size
            if book[0].size <= 0:
                book[0].size = float(self.lot)      # a maker refills the level at once
            events.trades.append(trade)
            events.book_changed = True
            self._on_trade(trade)
        events.quote_changed = old_top != (self.best_bid, self.bid_size, self.best_ask, self.ask_size)
        self.time = time
        if events.trades:
            self.last_time = time
        self.tape.record(int(time), self.last, self.best_bid, self.best_ask, events.trades)
        return events

    def _on_trade(self, trade: Trade) -> None:
        self.last = trade.price
        self.last_size = trade.size
        self.last_exchange = trade.exchange
        self.volume += trade.size
        self.high = max(self.high, trade.price)
        self.low = min(self.low, trade.price)

    @property
    def midpoint(self) -> float:
        return (self.best_bid + self.best_ask) / 2


class Market:
    """Every root instrument's market, stepped together on one clock.

    Lazily: an instrument's market is built the first time something asks for it (`get`) and
    caught up at once by replaying every step since the start (same generator, same step times,
    same trading gate), so it is exactly the market it would be had it been stepped all along;
    from then on it is stepped with the others. A universe of a hundred roots thus costs only for
    the instruments in use, at startup and in every step. `find` resolves a conId the market was
    not built with (an instrument the universe gained later, e.g. by --any-symbol). A lock makes
    `get` safe from another thread (tests read markets directly) while the loop steps.
    """

    def __init__(self, roots: list[Instrument], seed: int, start_time: float, step_seconds: float,
                 session_stats=None, find: Callable[[int], Instrument | None] | None = None):
        self.seed = seed
        self.step_seconds = step_seconds
        self.start_time = start_time
        self.steps = 0
        self.time = start_time
        self.gate = TradingGate()
        self._stats = session_stats or (lambda inst: None)
        self._roots = {inst.con_id: inst for inst in roots}
        self._find = find
        self._lock = threading.Lock()
        self.by_con_id: dict[int, InstrumentMarket] = {}     # the markets built so far

    def get(self, con_id: int) -> InstrumentMarket | None:
        m = self.by_con_id.get(con_id)
        if m is not None:
            return m
        inst = self._roots.get(con_id)
        if inst is None and self._find is not None:
            inst = self._find(con_id)
            if inst is None or inst.is_derived:
                return None
        if inst is None:
            return None
        with self._lock:
            m = self.by_con_id.get(con_id)
            if m is None:
                m = self._build(inst)
                self.by_con_id[con_id] = m
        return m

    def _build(self, inst: Instrument) -> InstrumentMarket:
        """The instrument's market as of now: built at the start, then every step replayed."""
        m = InstrumentMarket(inst, self.seed, self.start_time, session_stats=self._stats(inst),
                             last_time=self.gate.last_trade_time(inst.hours_kind, self.start_time))
        trading = self.gate.trading
        for k in range(1, self.steps + 1):
            t = self.start_time + k * self.step_seconds
            m.step(t, self.step_seconds, trading(inst.hours_kind, t))
        return m

    def step(self) -> dict[int, StepEvents]:
        with self._lock:
            self.steps += 1
            self.time = t = self.start_time + self.steps * self.step_seconds
            trading = self.gate.trading
            return {cid: m.step(t, self.step_seconds, trading(m.inst.hours_kind, t))
                    for cid, m in self.by_con_id.items()}
