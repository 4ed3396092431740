"""RSI + Bollinger mean reversion: buy a stretched dip, sell back at the middle band."""
from __future__ import annotations

from pydantic import Field

from ibframe import Strategy
from ibframe.indicators import bollinger, rsi
from ibframe.params import BarSize, HistoryDuration, StrategyParams


class MeanReversion(Strategy):
    """params: period, k (band width in std devs), rsi_period, oversold, quantity, bar_size. Long only."""

    class Params(StrategyParams):
        period: int = Field(20, ge=2, le=10_000, description="a whole number of bars from 2 (the bands' window)")
        k: float = Field(2.0, gt=0, le=10, description="a band width in standard deviations, above 0 up to 10")
        rsi_period: int = Field(14, ge=2, le=10_000, description="a whole number of bars from 2")
        oversold: float = Field(30, gt=0, lt=100, description="an RSI level between 0 and 100, e.g. 30")
        quantity: float = Field(100, gt=0, le=1e9, description="a positive number of shares to buy (the "
                                                               "strategy is long only)")
        bar_size: BarSize = "5 secs"
        duration: HistoryDuration = "3600 S"

    def on_start(self) -> None:
        p = self.params
        self.period, self.k = int(p.get("period", 20)), float(p.get("k", 2.0))
        self.rsi_period, self.oversold = int(p.get("rsi_period", 14)), float(p.get("oversold", 30))
        self.quantity = float(p.get("quantity", 100))
        self.symbol = next(iter(self.instruments))
        self.quote(self.symbol)
        self.bars(self.symbol, bar_size=p.get("bar_size", "5 secs"), duration=p.get("duration", "3600 S"))

    def on_bar(self, instrument: str, bars) -> None:
        close = bars.close
        if len(close) < max(self.period, self.rsi_period) + 1 or self.open_trades():
            return
        mid, upper, lower = bollinger(close, self.period, self.k)
        strength = rsi(close, self.rsi_period)[-1]
        held = self.position(instrument)
        if held <= 0 and close[-1] < lower[-1] and strength < self.oversold:
            self.log.info("close %.2f below lower band %.2f, RSI %.1f: buying", close[-1], lower[-1], strength)
            self.buy(instrument, self.quantity)
        elif held > 0 and close[-1] >= mid[-1]:
            self.log.info("close %.2f back at the middle band %.2f: selling", close[-1], mid[-1])
            self.sell(instrument, held)
