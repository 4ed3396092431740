"""When the simulated market trades: the gate the live market steps through, and where history ends.

Owns: `TradingGate`, the answer to "does this hours kind trade at t?" for the live market, cached
per kind as the interval [asked, next session edge) so a market step costs one dict lookup and
one comparison per instrument (calendar work happens only when a session opens or closes), and
the last trade time before an instant; and `trading_end`, which pulls the end of a historical
request made while the instrument does not trade back to where its last session ended (as TWS
does: a "1800 S" request at 20:45 New York gets the last 30 minutes that traded, 19:30-20:00).

Must never: read the wall clock, hold prices or orders, or send anything. Every answer is a pure
function of the time asked about, so the market stays deterministic (same seed, same output).
"""
from __future__ import annotations

import numpy as np

from .ordertime import SessionClock

RECHECK = 3600.0        # far from any known session edge: ask the calendar again after this long


class TradingGate:
    """Whether each hours kind trades (trading hours, not just liquid ones) at a given instant."""

    def __init__(self, clock: SessionClock | None = None):
        self.clock = clock or SessionClock()
        self._known: dict[str, tuple[float, float, bool]] = {}    # kind -> (from, until, trading)

    def trading(self, kind: str, t: float) -> bool:
        known = self._known.get(kind)
        if known is not None and known[0] <= t < known[1]:
            return known[2]
        is_open = self.clock.is_open(kind, False, t)
        edge = self.clock.next_close(kind, False, t) if is_open else self.clock.next_open(kind, False, t)
        self._known[kind] = (t, edge if edge is not None and edge > t else t + RECHECK, is_open)
        return is_open

    def last_trade_time(self, kind: str, t: float) -> float:
        """`t` while the kind trades, else the close of its latest trading session (t if none is near)."""
        if self.trading(kind, t):
            return t
        close = self.clock.previous_close(kind, False, t)
        return t if close is None else close


def trading_end(opens: np.ndarray, closes: np.ndarray, e: int) -> int:
    """The end second of a history window asked to end at `e`: `e` itself inside a session (or
    before any), else the close of the latest session that opened before `e`."""
    i = int(np.searchsorted(opens, e, side="left")) - 1
    if i >= 0 and e > closes[i]:
        return int(closes[i])
    return e
