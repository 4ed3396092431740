"""Matching engine of the paper broker: what an order can trade against in one market step.

Owns: the broker's per-step view of an instrument's book (`Book`: the market's levels minus what
the broker's own orders already took in this step, so two orders in the same step never trade the
same shares), walking levels for marketable orders, venue routing (SMART sees every level plus
seeded hidden price improvement; a directed order sees only its venue's levels), the synthetic
book of an option (from its quoter) and how makers are named in executions.

Determinism: the market's levels are only read, never changed, so the market's generator-driven
state is the same whatever the broker does; every random draw comes from a generator the caller
derives from (seed, order identity, step).
Must never: send messages, change order state or touch the market's objects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..market.market import LOT, MAKERS, Level
from ..market.universe import Instrument, price_increment

# Exchange names a client may direct an order to -> the maker name the simulated book uses.
VENUE_MAKERS = {"ISLAND": "NSDQ", "NASDAQ": "NSDQ", "INET": "NSDQ", "EDGEA": "DRCTEDGE", "EDGA": "DRCTEDGE",
                "NYSEARCA": "ARCA", "BATSBZX": "BATS", "BZX": "BATS", "CBOE2": "CBOE", "NASDAQOM": "PHLX",
                "GLOBEX": "CME"}
# Maker name in the book -> exchange name TWS prints in executions.
EXEC_NAMES = {"NSDQ": "ISLAND"}
HIDDEN_VENUE = "IBKRATS"           # where SMART finds its hidden, price-improving liquidity
HIDDEN_PROBABILITY = 0.6


@dataclass(slots=True)
class Fill:
    """One execution the engine found: price, size, venue (as executions name it), liquidity flag."""
    price: float
    size: float
    venue: str
    liquidity: int = 2               # 1 added (maker), 2 removed (taker)


def exec_venue(maker: str) -> str:
    return EXEC_NAMES.get(maker, maker)


def venue_maker(inst: Instrument, exchange: str) -> str | None:
    """The book maker a directed order trades with; None for SMART (every maker)."""
    ex = (exchange or "SMART").upper()
    if ex in ("SMART", "QBALGO"):
        return None
    maker = VENUE_MAKERS.get(ex, ex)
    makers = MAKERS.get(inst.sec_type, MAKERS["STK"])
    if maker not in makers and len(makers) == 1:
        return None                    # a one-venue market (CME, IDEALPRO): every level is that venue's
    return maker


def tick_of(inst: Instrument, price: float) -> float:
    try:
        return price_increment(inst.market_rule_id, price)
    except KeyError:
        return inst.min_tick or 0.01


class Book:
    """One instrument's book as the broker trades it during one step."""

    def __init__(self, inst: Instrument, bids: list[Level], asks: list[Level], last: float):
        self.inst = inst
        self.bids = [lv for lv in bids if lv.price > 0 and lv.size > 0]
        self.asks = [lv for lv in asks if lv.price > 0 and lv.size > 0]
        self.last = last
        self.used: dict[tuple[bool, float, str], float] = {}
        self.lot = float(LOT.get(inst.sec_type, 1))

    # --- quotes -----------------------------------------------------------------------------------
    @property
    def bid(self) -> float:
        return self.bids[0].price if self.bids else 0.0

    @property
    def ask(self) -> float:
        return self.asks[0].price if self.asks else 0.0

    @property
    def mid(self) -> float:
        if self.bids and self.asks:
            return (self.bid + self.ask) / 2
        return self.bid or self.ask or self.last

    def far(self, buy: bool) -> float:
        return self.ask if buy else self.bid

    def near(self, buy: bool) -> float:
        return self.bid if buy else self.ask

    # --- liquidity --------------------------------------------------------------------------------
    def _side(self, buy: bool) -> list[Level]:
        """The levels a buyer (asks) or a seller (bids) trades against, best first."""
        return self.asks if buy else self.bids

    def left(self, buy: bool, lv: Level) -> float:
        return max(lv.size - self.used.get((buy, lv.price, lv.maker), 0.0), 0.0)

    def _use(self, buy: bool, lv: Level, size: float) -> None:
        key = (buy, lv.price, lv.maker)
        self.used[key] = self.used.get(key, 0.0) + size

    def levels(self, buy: bool, maker: str | None, limit: float | None) -> list[Level]:
        out = []
        for lv in self._side(buy):
            if limit is not None and (lv.price > limit + 1e-9 if buy else lv.price < limit - 1e-9):
                break
            if maker is None or lv.maker == maker:
                out.append(lv)
        return out

    def available(self, buy: bool, maker: str | None, limit: float | None) -> float:
        return sum(self.left(buy, lv) for lv in self.levels(buy, maker, limit))

    def size_at(self, buy_side: bool, price: float, maker: str | None) -> float:
        """Shares resting on the buyer's (bids) or seller's (asks) own side at exactly `price`."""
        side = self.bids if buy_side else self.asks
        return sum(self.left(not buy_side, lv) for lv in side
                   if abs(lv.price - price) < 1e-9 and (maker is None or lv.maker == maker))

    def take(self, buy: bool, qty: float, maker: str | None, limit: float | None,
             at_price: float | None = None) -> list[Fill]:
        """Walk the opposite levels (best first) up to `limit`; one fill per level touched.

        `at_price` reports every fill at that price as a maker fill (a resting order the market
        moved through trades at its own limit).
        """
        fills: list[Fill] = []
        for lv in self.levels(buy, maker, limit):
            if qty <= 1e-9:
                break
            size = min(self.left(buy, lv), qty)
            if size <= 0:
                continue
            self._use(buy, lv, size)
            qty -= size
            if at_price is None:
                fills.append(Fill(lv.price, size, exec_venue(lv.maker), 2))
            else:
                fills.append(Fill(at_price, size, exec_venue(lv.maker), 1))
        return fills

    def hidden(self, rng: np.random.Generator, buy: bool, qty: float, limit: float | None) -> Fill | None:
        """SMART's hidden liquidity: sometimes a few lots between the far touch and the mid.

        Priced on the tick grid from the far side towards the mid, so it is never worse than
        the NBBO and often better (the seeded price improvement SMART routing is measured by).
        """
        if not (self.bids and self.asks) or rng.random() >= HIDDEN_PROBABILITY:
            return None
        far = self.far(buy)
        tick = tick_of(self.inst, far)
        room = int(math.floor(abs(far - self.mid) / tick + 1e-9))
        k = int(rng.integers(0, room + 1))
        price = self.inst.round_price(far - k * tick if buy else far + k * tick)
        if limit is not None and (price > limit + 1e-9 if buy else price < limit - 1e-9):
            return None
        size = min(qty, self.lot * int(rng.integers(1, 6)))
        if size <= 0:
            return None
        return Fill(price, size, HIDDEN_VENUE, 2)


def root_book(market) -> Book:
    """The book of a root instrument, straight from its simulated market."""
    return Book(market.inst, market.bids, market.asks, market.last)


def option_book(quoter, seed: int, step: int) -> Book:
    """An option's book: the quoter's top of book plus four seeded deeper levels per side."""
    inst = quoter.inst
    rng = np.random.default_rng([seed, inst.con_id, step, 17])
    makers = MAKERS["OPT"]
    bids, asks = [], []
    for k in range(5):
        maker_b = makers[int(rng.integers(len(makers)))]
        maker_a = makers[int(rng.integers(len(makers)))]
        if k == 0:
            bids.append(Level(quoter.bid, quoter.bid_size, maker_b))
            asks.append(Level(quoter.ask, quoter.ask_size, maker_a))
            continue
        bid = bids[-1].price - tick_of(inst, bids[-1].price)
        ask = asks[-1].price + tick_of(inst, asks[-1].price)
        if bid > 0:
            bids.append(Level(inst.round_price(bid), float(rng.integers(5, 150)), maker_b))
        asks.append(Level(inst.round_price(ask), float(rng.integers(5, 150)), maker_a))
    return Book(inst, bids, asks, quoter.last)
