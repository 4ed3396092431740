"""Stale data: new orders are refused while the data they were decided on may be old.

Owns: `FreshnessLimits` (the `risk: {stale_data: …}` settings) and the `StaleData` rule. Data is stale
when the dispatch thread is behind the socket by more than `max_lag` seconds (a strategy slower than its
stream decides on frames that old), when the instrument's quote is marked stale (its data farm or the
connection is down: `ibframe.resilience.farms`), or, if `max_quote_age` is set, when the quote has not
changed for that long. Orders that only reduce a position pass by default, so a strategy can always get
out. Must never: block, talk to TWS, or refuse a cancel.

    risk:
      stale_data:
        max_lag: 2s            # dispatch lag past which new orders are refused (0 or off: never)
        farm_down: true        # refuse while the instrument's data farm is down
        max_quote_age: off     # refuse when the quote has not changed for this long (default off)
        allow_reducing: true   # orders that only reduce a position pass
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from pydantic import Field, ValidationError

from ..config.errors import first_problem
from ..config.types import Section, SecondsOrOff
from .base import OrderIntent, Refusal

DEFAULT_MAX_LAG = 2.0            # seconds; IB's own data is conflated at ~250 ms, so 2 s behind is no market view


@dataclass(slots=True, frozen=True)
class FreshnessLimits:
    max_lag: float = DEFAULT_MAX_LAG     # refuse when the dispatch lag passes this (0 = never on lag)
    farm_down: bool = True               # refuse when the instrument's quote is marked stale (farm/connection down)
    max_quote_age: float | None = None   # refuse when the quote has not changed for this long (None = never)
    allow_reducing: bool = True          # orders that only reduce a position always pass

    @property
    def enabled(self) -> bool:
        return self.max_lag > 0 or self.farm_down or self.max_quote_age is not None

    @classmethod
    def from_mapping(cls, raw, fail, path: tuple = ("risk", "stale_data")) -> "FreshnessLimits":
        """From the YAML under `risk.stale_data` (a mapping; `false` turns every check off)."""
        if raw is None:
            return cls()
        if raw is False:
            return cls(max_lag=0.0, farm_down=False, max_quote_age=None)
        if not isinstance(raw, dict):
            fail(path, f"must be a mapping such as {{max_lag: 2s, farm_down: true}} or false, got {raw!r}")
        try:
            section = FreshnessSection.model_validate(raw)
        except ValidationError as exc:
            key_path, message = first_problem(exc, FreshnessSection)
            fail(path + key_path, message)
        return cls(section.max_lag, section.farm_down, section.max_quote_age or None, section.allow_reducing)


class FreshnessSection(Section):
    """The schema of `risk.stale_data`."""
    max_lag: SecondsOrOff = Field(DEFAULT_MAX_LAG, description="a duration such as 2s, or 0/off for never")
    farm_down: bool = Field(True, description="true or false")
    max_quote_age: SecondsOrOff = Field(0.0, description="a duration such as 30s, or 0/off for never")
    allow_reducing: bool = Field(True, description="true or false")


class StaleData:
    """Refuses new orders (and modifications) decided on data that may be old; see the module docstring."""
    name = "stale_data"

    def __init__(self, limits: FreshnessLimits, lag: Callable[[], float], now: Callable[[], float]):
        self.limits, self.lag, self.now = limits, lag, now

    def check(self, intent: OrderIntent) -> Refusal | None:
        limits = self.limits
        if limits.allow_reducing and intent.reduces:
            return None
        if limits.max_lag > 0:
            lag = self.lag()
            if lag > limits.max_lag:
                return Refusal("stale_data", f"dispatch lag {limits.max_lag:g}s", f"{lag:.2f}s behind the socket",
                               "the strategy is slower than its market data: make on_quote/on_tick cheaper, "
                               "subscribe with conflate=True, or raise risk.stale_data.max_lag")
        quote = intent.quote
        if quote is None:
            return None
        if limits.farm_down and quote.stale:
            return Refusal("stale_data", "a live quote", "its data farm or the connection is down",
                           "wait for the farm to come back (TWS 2104/2106), or set risk.stale_data.farm_down: "
                           "false to trade on old quotes")
        if limits.max_quote_age is not None and quote.updated is not None:
            age = self.now() - quote.updated
            if math.isfinite(age) and age > limits.max_quote_age:
                return Refusal("stale_data", f"a quote at most {limits.max_quote_age:g}s old",
                               f"{age:.1f}s since its last change",
                               "check the market is open and the line alive, or raise risk.stale_data.max_quote_age")
        return None
