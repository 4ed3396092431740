"""Data-farm notices → stale or fresh market data.

Owns: which of TWS's farms are down (2103 market data, 2105 historical data, 2108 market data inactive,
2157 sec-def; back with 2104 / 2106 / 2107 / 2158) and the `stale` flag of every live Quote and OrderBook:
set while a data farm is down or the connection is, cleared when they are back. TWS does not say which
instruments a farm serves, so a farm outage marks all of them. Must never send anything to TWS.
"""
from __future__ import annotations

import logging

log = logging.getLogger("ibframe.connection")

DOWN = {2103: "market data", 2105: "historical data", 2108: "market data", 2157: "sec-def"}
UP = {2104: "market data", 2106: "historical data", 2107: "historical data", 2158: "sec-def"}
STALE_WHEN_DOWN = {"market data", "historical data"}      # a sec-def outage leaves prices fresh


class FarmWatch:
    def __init__(self, router):
        self.router = router                 # reads its live requests (public `requests`)
        self.down: dict[str, str] = {}       # "kind:farm" -> TWS's text

    @staticmethod
    def _farm(kind: str, text: str) -> str:
        """'market data:usfarm' from "...is broken:usfarm" (2108 ends "...upon demand.usfarm")."""
        name = text.rpartition(":")[2] if ":" in text else text.rpartition("demand.")[2]
        return f"{kind}:{name.strip()}"

    def notice(self, code: int, text: str, connected: bool) -> None:
        if code in DOWN:
            self.down[self._farm(DOWN[code], text)] = text
            if DOWN[code] in STALE_WHEN_DOWN:
                log.warning("data farm down (%d %s): quotes are marked stale until it is back", code, text)
                self.mark_all(stale=True)
        elif code in UP:
            self.down.pop(self._farm(UP[code], text), None)
            if connected and not self.any_down:
                self.mark_all(stale=False)

    @property
    def any_down(self) -> bool:
        return any(key.partition(":")[0] in STALE_WHEN_DOWN for key in self.down)

    def mark_all(self, stale: bool) -> None:
        """Every live quote and book: stale (farm or connection down) or fresh again."""
        if not stale and self.any_down:
            return
        for req in list(self.router.requests.values()):
            if req.quote is not None:
                req.quote.stale = stale
            if req.book is not None:
                req.book.stale = stale
