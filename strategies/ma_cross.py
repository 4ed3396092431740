"""Moving-average cross on bars: long when the fast average is above the slow one, flat otherwise."""
from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from ibframe import Strategy
from ibframe.indicators import sma
from ibframe.params import BarSize, HistoryDuration, StrategyParams


class MovingAverageCross(Strategy):
    """params: fast, slow (bars), quantity, bar_size, duration, allow_short."""

    class Params(StrategyParams):
        fast: int = Field(10, ge=1, le=10_000, description="a whole number of bars from 1, shorter than slow")
        slow: int = Field(30, ge=2, le=10_000, description="a whole number of bars from 2, longer than fast")
        quantity: float = Field(100, gt=0, le=1e9, description="a positive number of shares to hold when long "
                                                               "(a size: it is never negative; selling short "
                                                               "needs allow_short: true)")
        bar_size: BarSize = "5 secs"
        duration: HistoryDuration = "3600 S"
        allow_short: bool = Field(False, description="true or false (true: hold -quantity when bearish)")

        @field_validator("slow")
        @classmethod
        def _slow_after_fast(cls, slow: int, info: ValidationInfo) -> int:
            fast = info.data.get("fast")
            if fast is not None and fast >= slow:
                raise ValueError(f"{slow} must be longer than fast ({fast}): the cross compares a short average "
                                 f"with a long one")
            return slow

    def on_start(self) -> None:
        p = self.params
        self.fast, self.slow = int(p.get("fast", 10)), int(p.get("slow", 30))
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        self.quantity = float(p.get("quantity", 100))
        self.allow_short = bool(p.get("allow_short", False))
        self.symbol = next(iter(self.instruments))
        self.quote(self.symbol)                       # for arrival NBBO and marking
        self.bars(self.symbol, bar_size=p.get("bar_size", "5 secs"), duration=p.get("duration", "3600 S"))

    def on_bar(self, instrument: str, bars) -> None:
        close = bars.close
        if len(close) < self.slow + 1 or self.open_trades():
            return
        fast, slow = sma(close, self.fast), sma(close, self.slow)
        bullish = fast[-1] > slow[-1]
        target = self.quantity if bullish else (-self.quantity if self.allow_short else 0.0)
        delta = target - self.position(instrument)
        if delta > 0:
            self.log.info("fast %.2f > slow %.2f: buying %g", fast[-1], slow[-1], delta)
            self.buy(instrument, delta)
        elif delta < 0:
            self.log.info("fast %.2f <= slow %.2f: selling %g", fast[-1], slow[-1], -delta)
            self.sell(instrument, -delta)

    def on_fill(self, trade, fill) -> None:
        self.log.info("filled %s %g @ %.4f (order %d)", fill.side, fill.shares, fill.price, trade.order_id)
