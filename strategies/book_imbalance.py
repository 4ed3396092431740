"""Order-book imbalance on L2 depth: lean with a heavy book, exit after a holding period."""
from __future__ import annotations

from ibframe import Strategy


class BookImbalance(Strategy):
    """params: levels, threshold (imbalance in [-1, 1]), quantity, hold_seconds, rows."""

    def on_start(self) -> None:
        p = self.params
        self.levels, self.threshold = int(p.get("levels", 5)), float(p.get("threshold", 0.35))
        self.quantity, self.hold = float(p.get("quantity", 100)), float(p.get("hold_seconds", 10))
        self.symbol = next(iter(self.instruments))
        self.quote(self.symbol)
        self.book = self.depth(self.symbol, rows=int(p.get("rows", 10)))
        self.entered_at = None
        self.schedule(every=1.0)

    def on_depth(self, instrument: str, book) -> None:
        if self.open_trades() or self.position(instrument) != 0 or self.entered_at is not None:
            return
        imbalance = book.imbalance(self.levels)
        if imbalance is None or abs(imbalance) < self.threshold:
            return
        self.entered_at = self.now()
        if imbalance > 0:
            self.log.info("bid-heavy book (imbalance %+.2f): buying %g", imbalance, self.quantity)
            self.buy(instrument, self.quantity)
        else:
            self.log.info("ask-heavy book (imbalance %+.2f): selling %g", imbalance, self.quantity)
            self.sell(instrument, self.quantity)

    def on_timer(self) -> None:
        if self.entered_at is None or self.now() - self.entered_at < self.hold or self.open_trades():
            return
        held = self.position(self.symbol)
        if held > 0:
            self.sell(self.symbol, held)
        elif held < 0:
            self.buy(self.symbol, -held)
        self.entered_at = None
