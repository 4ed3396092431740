"""The simulated market of listed options: quotes, prints and greeks derived from the underlying.

Owns: for every option somebody asked about, one `OptionQuoter` per gateway that re-prices the
option (`options.model`) after each market step of its underlying, quotes a bid/ask around the
model value on the option's tick grid, prints occasional trades and computes the four
`tickOptionComputation` records (bid, ask, last, model). Also the seeded daily activity
(volume, open interest) the generic ticks report, and one-off computations for
calculateImpliedVolatility / calculateOptionPrice.

Determinism: each step's randomness comes from a generator seeded by (seed, conId, step), so
what an option quotes and prints at a given step does not depend on when it was first watched.
Must never: send messages, read the wall clock or use unseeded randomness.
"""
from __future__ import annotations

import logging
import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import options
from .blackscholes import implied_vol, price_and_greeks
from .market import MAKERS, TRADE_RATE, StepEvents, Trade
from .universe import Instrument, price_increment

if TYPE_CHECKING:
    from .host import MarketHost

log = logging.getLogger("ibframe.sim")

# tickOptionComputation tick types (ibapi.ticktype)
BID_COMPUTATION, ASK_COMPUTATION, LAST_COMPUTATION, MODEL_COMPUTATION = 10, 11, 12, 13


@dataclass(slots=True)
class Computation:
    """One tickOptionComputation record; None fields go out as TWS's 'not computed' sentinels."""
    implied_vol: float | None
    delta: float | None
    opt_price: float | None
    pv_dividend: float | None
    gamma: float | None
    vega: float | None
    theta: float | None
    und_price: float | None


def computation_at_price(inst: Instrument, price: float, spot: float, now: float) -> Computation:
    """Greeks at the volatility the given option price implies (how TWS fills bid/ask/last ticks)."""
    years = options.years_to_expiry(inst, now)
    iv = None
    if price > 0 and spot > 0:
        iv = implied_vol(inst.right, price, spot, inst.strike, years, options.RISK_FREE_RATE,
                         options.DIVIDEND_YIELD)
    if iv is None:
        return Computation(None, None, price, 0.0, None, None, None, spot)
    return computation_at_vol(inst, iv, spot, now, price)


def computation_at_vol(inst: Instrument, vol: float, spot: float, now: float,
                       price: float | None = None) -> Computation:
    """Model value and greeks at a given volatility; `price` overrides the reported option price."""
    g = price_and_greeks(inst.right, spot, inst.strike, options.years_to_expiry(inst, now), vol,
                         options.RISK_FREE_RATE, options.DIVIDEND_YIELD)
    return Computation(vol, g.delta, g.price if price is None else price, 0.0, g.gamma, g.vega, g.theta, spot)


def floor_tick(inst: Instrument, price: float) -> float:
    """The highest valid price at or below `price` (0 when there is none)."""
    if price <= 0:
        return 0.0
    inc = price_increment(inst.market_rule_id, price)
    return inst.round_price(math.floor(price / inc + 1e-9) * inc)


def ceil_tick(inst: Instrument, price: float) -> float:
    """The lowest valid, positive price at or above `price`."""
    inc = price_increment(inst.market_rule_id, max(price, 0.0))
    return max(inst.round_price(math.ceil(max(price, 0.0) / inc - 1e-9) * inc), inc)


def moneyness_weight(inst: Instrument, spot: float, now: float) -> float:
    """1 at the money, falling off with distance in standard deviations: where the activity is."""
    sd = max(options.smile_vol(inst, spot) * math.sqrt(max(options.years_to_expiry(inst, now), 1 / 365)), 0.02)
    x = math.log(inst.strike / spot) / sd
    return math.exp(-0.5 * x * x)


def daily_activity(seed: int, inst: Instrument, spot: float, now: float) -> tuple[float, float]:
    """(volume so far today, open interest) of one option: seeded, heavier near the money."""
    rng = np.random.default_rng([seed, inst.con_id, 101])
    w = moneyness_weight(inst, spot, now)
    volume = float(int(rng.integers(0, 4000) * w))
    open_interest = float(int(rng.integers(300, 25000) * (0.15 + w)))
    return volume, open_interest


class OptionQuoter:
    """Quotes and trades one option from its underlying's market, step by step."""

    def __init__(self, gateway: "MarketHost", inst: Instrument):
        self.gateway = gateway
        self.inst = inst
        self.under = gateway.market.get(inst.under_con_id)
        if self.under is None:
            raise ValueError(f"option {inst.describe()} has no underlying market (conId {inst.under_con_id})")
        self.seed = gateway.config.seed
        self.listeners: list[Callable[[StepEvents], None]] = []
        self.time = gateway.now()
        self.spot = self.under.midpoint
        self.iv, self.greeks = options.model(inst, self.spot, self.time)
        self._computations: dict[int, Computation] | None = None
        rng = np.random.default_rng([self.seed, inst.con_id, 0])
        self.bid, self.ask = self._quote(self.greeks.price)
        self.bid_size = float(rng.integers(1, 80))
        self.ask_size = float(rng.integers(1, 80))
        theo = self.greeks.price
        self.volume, self.open_interest = daily_activity(self.seed, inst, self.spot, self.time)
        self.close = ceil_tick(inst, theo * math.exp(0.15 * rng.standard_normal()))
        self.open = ceil_tick(inst, theo * math.exp(0.08 * rng.standard_normal()))
        self.last = ceil_tick(inst, theo)
        self.last_size = float(rng.integers(1, 10))
        self.high = max(self.open, self.last)
        self.low = min(self.open, self.last)
        self.last_time = self.time - float(rng.integers(1, 900))
        self.notional = self.volume * (self.open + self.high + self.low + self.last) / 4
        self._remove = gateway.on_step(inst.under_con_id, self._on_step)

    # --- pricing ------------------------------------------------------------------------------
    def _quote(self, theo: float) -> tuple[float, float]:
        """Bid/ask around the model value; the spread widens with the price (2 cents + 1 %)."""
        half = (0.02 + 0.01 * theo) / 2
        bid = floor_tick(self.inst, theo - half)
        ask = ceil_tick(self.inst, theo + half)
        if ask <= bid:
            ask = ceil_tick(self.inst, bid + price_increment(self.inst.market_rule_id, bid))
        return bid, ask

    @property
    def midpoint(self) -> float:
        return (self.bid + self.ask) / 2

    @property
    def vwap(self) -> float:
        return self.notional / self.volume if self.volume > 0 else self.last

    def computations(self) -> dict[int, Computation]:
        """The bid/ask/last/model computations at the current step (computed once per step)."""
        if self._computations is None:
            out = {BID_COMPUTATION: computation_at_price(self.inst, self.bid, self.spot, self.time),
                   ASK_COMPUTATION: computation_at_price(self.inst, self.ask, self.spot, self.time)}
            if self.last > 0:
                out[LAST_COMPUTATION] = computation_at_price(self.inst, self.last, self.spot, self.time)
            g = self.greeks
            out[MODEL_COMPUTATION] = Computation(self.iv, g.delta, g.price, 0.0, g.gamma, g.vega, g.theta, self.spot)
            self._computations = out
        return self._computations

    # --- stepping ------------------------------------------------------------------------------
    def _on_step(self, ev: StepEvents) -> None:
        if not self.gateway.market.gate.trading(self.inst.hours_kind, ev.time):
            return                                  # options trade in regular hours only: no prints, no repricing
        rng = np.random.default_rng([self.seed, self.inst.con_id, self.gateway.market.steps])
        old_top = (self.bid, self.bid_size, self.ask, self.ask_size)
        old_spot = self.spot
        self.time = ev.time
        self.spot = self.under.midpoint
        self.iv, self.greeks = options.model(self.inst, self.spot, self.time)
        bid, ask = self._quote(self.greeks.price)
        if (bid, ask) != (self.bid, self.ask):
            self.bid, self.ask = bid, ask
            self.bid_size = float(rng.integers(1, 80))
            self.ask_size = float(rng.integers(1, 80))
        elif rng.random() < 0.1:
            if rng.random() < 0.5:
                self.bid_size = float(rng.integers(1, 80))
            else:
                self.ask_size = float(rng.integers(1, 80))
        out = StepEvents(time=ev.time)
        for _ in range(int(rng.poisson(TRADE_RATE["OPT"]))):
            buy = bool(rng.random() < 0.5)
            price = self.ask if buy else self.bid
            size = float(rng.geometric(0.35))
            exchange = MAKERS["OPT"][int(rng.integers(len(MAKERS["OPT"])))]
            if price <= 0:
                continue
            out.trades.append(Trade(price, size, exchange, buy))
            self.last, self.last_size, self.last_time = price, size, ev.time
            self.volume += size
            self.notional += price * size
            self.high = max(self.high, price)
            self.low = min(self.low, price)
        out.quote_changed = old_top != (self.bid, self.bid_size, self.ask, self.ask_size)
        out.book_changed = out.quote_changed or self.spot != old_spot
        self._computations = None
        for fn in list(self.listeners):
            try:
                fn(out)
            except Exception:
                log.exception("option listener for %s failed; it is removed", self.inst.describe())
                self.listeners.remove(fn)

    def listen(self, fn: Callable[[StepEvents], None]) -> Callable[[], None]:
        """Call `fn` after each re-pricing (book_changed = spot or quote moved); returns the unsubscribe."""
        self.listeners.append(fn)

        def remove() -> None:
            if fn in self.listeners:
                self.listeners.remove(fn)
        return remove


_QUOTERS: "weakref.WeakKeyDictionary[MarketHost, dict[int, OptionQuoter]]" = weakref.WeakKeyDictionary()


def quoter_for(gateway: "MarketHost", inst: Instrument) -> OptionQuoter:
    """The gateway's quoter for this option, created on first use and kept for the gateway's life
    (so its volume and last print carry over between subscriptions)."""
    quoters = _QUOTERS.setdefault(gateway, {})
    q = quoters.get(inst.con_id)
    if q is None:
        q = quoters[inst.con_id] = OptionQuoter(gateway, inst)
    return q
