"""What the market's feeds need from the gateway that hosts them: a narrow interface, not the whole gateway.

Owns: `MarketHost`, the few members option quoters (`option_market`), tick sources (`tick_sources`)
and market data lines (`mktdata`) use — the live market, the universe, the clock, step listeners and
two settings. `server.SimGateway` satisfies it structurally.

Must never: import the server, or grow into a copy of the gateway: a feed that needs more from the
gateway says so here.
"""
from __future__ import annotations

from typing import Callable, Protocol

from .market import Market, StepEvents
from .universe import Universe


class MarketSettings(Protocol):
    seed: int                   # the market's seed: every feed's randomness derives from it
    market_data_lines: int      # reqMktData lines a client may hold (error 101 past it)


class MarketHost(Protocol):
    config: MarketSettings
    market: Market
    universe: Universe

    def now(self) -> float:
        """Simulated time, epoch seconds."""
        ...

    def on_step(self, con_id: int, listener: Callable[[StepEvents], None]) -> Callable[[], None]:
        """Call `listener` after each market step of `con_id`; returns the function that stops it."""
        ...
