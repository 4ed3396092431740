"""Strategies for the trading-state and kill-switch tests: they rest orders that will not fill.

`RestingOrders` (params: `orders`, default 3; `buy_first`, shares bought at market before resting,
default 0) waits for a quote, optionally buys, then rests `orders` limit BUYs 20% under the bid,
one cent apart (they work, never fill). `placed` tells the test when all are sent. Loaded by `python -m ibframe.run`
subprocesses as `kill_kit:RestingOrders` (tests/ on PYTHONPATH) and used in-process too.
"""
from __future__ import annotations

from ibframe.strategy import Strategy
from ibframe.trading.orders import limit


class RestingOrders(Strategy):
    def on_start(self):
        self.instrument = next(iter(self.instruments))
        self.q = self.quote(self.instrument)
        self.resting = []
        self.bought = None
        self.placed = False
        self.refusals = []
        self.schedule(every=0.02)

    def on_timer(self):
        if self.placed or self.q.bid is None or self.q.ask is None:
            return
        buy_first = float(self.params.get("buy_first", 0))
        if buy_first and self.bought is None:
            self.bought = self.buy(self.instrument, buy_first)
            return
        if self.bought is not None and not self.bought.done:
            return
        price = round(self.q.bid * 0.8, 2)
        for i in range(int(self.params.get("orders", 3))):        # one cent apart: no duplicate orders
            self.resting.append(self.place(self.instrument, limit("BUY", 1, round(price - i * 0.01, 2))))
        self.placed = True
        self.log.info("rested %d orders at %.2f", len(self.resting), price)

    def on_error(self, error):
        self.refusals.append(error)
