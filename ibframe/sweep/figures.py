"""What a sweep reports for one strategy in one replay: P&L, fills, drawdown, a Sharpe-style ratio, TCA.

Owns: the equity sampler a task installs on the replay's dispatch thread, and the arithmetic:

* P&L = realized P&L + the open quantity marked to the mid of the last live quote at the stop (else to the
  last fill), less commissions: the run summary's figure (ibframe.run), per strategy, from its own fills.
* equity(t) = that same P&L at recorded time t, marking open positions to the live quote's mid at t. It is
  sampled every `sample_every` seconds of recorded time from the moment the strategies start (0 before).
* max drawdown = the largest fall of equity from its running peak (the peak starts at 0), over the samples
  and the final P&L; in currency, ≥ 0.
* Sharpe-style ratio = mean / standard deviation (ddof=1) of the equity changes between consecutive samples
  (the first change is from 0 at the start), per `sample_every` interval, NOT annualised, no risk-free rate;
  NaN with fewer than two changes or when equity never changed. Its size depends on `sample_every`: compare
  rows of one sweep, not sweeps with different intervals.
* TCA: ibframe.journal.tca over the strategy's fills with the NBBO its orders saw at arrival — share-weighted
  slippage against the arrival mid in bps (+ = cost), savings against the far side in currency (+ = better
  than crossing the quote), notional, fills without an arrival quote.
Must never: send anything, change a strategy's state, or run off the dispatch thread while a replay plays.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..journal import tca
from ..strategy import Strategy
from ..trading.books import multiplier


def equity(strategy: Strategy, mark) -> float:
    """The strategy's P&L with open quantities marked by `mark(con_id)` (None: its last fill)."""
    total = 0.0
    for con_id, holding in strategy.own_book.holdings().items():
        total += holding.pnl(mark(con_id), multiplier(holding.contract))
    return total


@dataclass(slots=True)
class EquitySampler:
    """Every `every` seconds of recorded time, each strategy's equity marked to its live quotes."""
    engine: object
    strategies: list[Strategy]
    every: float
    times: list[float] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    handle: object = None

    def install(self) -> "EquitySampler":
        """On the dispatch thread, at a point the replay reaches the same way every time (task.SweepRunner)."""
        self.values = {s.name: [] for s in self.strategies}
        self.handle = self.engine.dispatcher.call_every(self.every, self.sample)
        return self

    def sample(self) -> None:
        self.times.append(self.engine.clock.now())
        for s in self.strategies:
            self.values[s.name].append(equity(s, self._live_mid))

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()

    def _live_mid(self, con_id: int) -> float | None:
        quote = self.engine.live_quote(con_id)
        return quote.mid if quote is not None else None


def max_drawdown(curve: list[float]) -> float:
    """The largest fall from the running peak (which starts at 0, the equity before any trade)."""
    peak, worst = 0.0, 0.0
    for value in curve:
        peak = max(peak, value)
        worst = max(worst, peak - value)
    return worst


def sharpe(samples: list[float]) -> float:
    """mean / std (ddof=1) of the changes of [0, *samples]; NaN with < 2 changes or no variation."""
    points = [0.0] + list(samples)
    changes = [b - a for a, b in zip(points, points[1:])]
    if len(changes) < 2:
        return math.nan
    mean = sum(changes) / len(changes)
    var = sum((c - mean) ** 2 for c in changes) / (len(changes) - 1)
    return mean / math.sqrt(var) if var > 1e-18 else math.nan


def tca_summary(trades) -> dict:
    """tca.aggregate over the strategy's (non-combo) fills, as the run summary's execution-quality line has it."""
    q = tca.of_trades(trades, multiplier)
    if q is None:
        return {"slippage_bps": math.nan, "savings": 0.0, "notional": 0.0, "fills_without_quote": 0}
    return {"slippage_bps": q["slippage_bps"], "savings": q["savings"], "notional": q["notional"],
            "fills_without_quote": q["fills_without_quote"]}


def strategy_figures(strategy: Strategy, marks: dict[int, float], samples: list[float]) -> dict:
    """One strategy's row figures after its replay (`marks`: conId -> mid at the stop, as the runner captured)."""
    trades = list(strategy.trades)
    holdings = strategy.own_book.holdings()
    fills = [f for t in trades for f in t.fills]
    pnl = equity(strategy, marks.get)
    realized = sum(h.realized_pnl for h in holdings.values())
    commission = sum(t.commission for t in trades)
    open_marked = [c for c, h in holdings.items() if h.quantity]
    return {"pnl": _currency(pnl), "realized_pnl": _currency(realized),
            "unrealized_pnl": _currency(pnl - realized + commission), "commission": _currency(commission),
            "orders": len(trades), "fills": len(fills), "shares": float(sum(f.shares for f in fills)),
            "open_positions": len(open_marked),
            "marked_to_last_fill": sum(1 for c in open_marked if c not in marks),
            "max_drawdown": _currency(max_drawdown(list(samples) + [pnl])), "sharpe": sharpe(samples),
            "equity_samples": len(samples), **tca_summary(trades)}


def _currency(value: float) -> float:
    """Currency without float noise (-48.000000000001364 -> -48.0): rounded to 1e-6."""
    return round(value, 6) + 0.0
