"""Order-book imbalance on L2 depth: lean with a heavy book, exit after a holding period."""
from __future__ import annotations

from pydantic import Field, model_validator

from ibframe import Strategy
from ibframe.params import StrategyParams


class BookImbalance(Strategy):
    """params: levels, threshold (imbalance in [-1, 1]), quantity, hold_seconds, cooldown_seconds, rows.
    Trades both ways by design: long on a bid-heavy book, short on an ask-heavy one."""

    class Params(StrategyParams):
        levels: int = Field(5, ge=1, le=50, description="a whole number of book levels from 1, at most rows")
        threshold: float = Field(0.35, gt=0, le=1, description="an imbalance above 0 up to 1, e.g. 0.35")
        quantity: float = Field(100, gt=0, le=1e9, description="a positive number of shares per entry")
        hold_seconds: float = Field(10, gt=0, le=86_400, description="seconds to hold, above 0")
        cooldown_seconds: float = Field(2, ge=0, le=86_400, description="seconds from 0 to wait after an exit")
        rows: int = Field(10, ge=1, le=50, description="a whole number of depth rows from 1 to 50")

        @model_validator(mode="after")
        def _rows_cover_levels(self):
            if self.levels > self.rows:
                raise ValueError(f"levels ({self.levels}) must be at most rows ({self.rows}): give rows ≥ levels")
            return self

    def on_start(self) -> None:
        p = self.params
        self.levels, self.threshold = int(p.get("levels", 5)), float(p.get("threshold", 0.35))
        self.quantity, self.hold = float(p.get("quantity", 100)), float(p.get("hold_seconds", 10))
        self.cooldown = float(p.get("cooldown_seconds", 2))      # no new entry this soon after an exit
        self.exited_at = float("-inf")
        self.symbol = next(iter(self.instruments))
        self.quote(self.symbol)
        self.book = self.depth(self.symbol, rows=int(p.get("rows", 10)))
        self.entered_at = None
        self.schedule(every=1.0)

    def on_depth(self, instrument: str, book) -> None:
        if self.open_trades() or self.position(instrument) != 0 or self.entered_at is not None \
                or self.now() - self.exited_at < self.cooldown:
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
        self.entered_at, self.exited_at = None, self.now()
