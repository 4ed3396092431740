"""The Strategy base class: what a user subclasses.

Owns: a strategy's view of the engine — its named instruments, subscriptions that return
self-updating state objects, orders tagged with the strategy's name, timers, positions and
params — and the calls into the user's `on_*` methods. Every `on_*` method runs on the one
dispatch thread, so strategy code needs no locks; an exception in one is logged and reported
to `on_error`, and the strategy keeps running.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from ibapi.contract import Contract
from ibapi.order import Order

from .contracts import label
from .engine import Engine
from .errors import ErrorClass, IBError
from .trading import orders as order_builders
from .trading.trade import Fill, Trade


class Strategy:
    """Subclass and override the `on_*` methods you need."""

    def __init__(self, engine: Engine, name: str, params: dict[str, Any] | None = None,
                 instruments: dict[str, Contract] | None = None):
        self.engine = engine
        self.name = name
        self.params = dict(params or {})
        self.instruments: dict[str, Contract] = dict(instruments or {})
        self.log = logging.getLogger(f"strategy.{name}")
        self.trades: list[Trade] = []
        self._requests = []
        self._timers = []
        self._keys_by_req: dict[int, str] = {}
        self._listeners: dict[int, Callable] = {}
        self.running = False

    # --- hooks to override ------------------------------------------------------------------------
    def on_start(self) -> None: ...
    def on_quote(self, instrument: str, quote) -> None: ...
    def on_tick(self, instrument: str, ticks) -> None: ...
    def on_depth(self, instrument: str, book) -> None: ...
    def on_bar(self, instrument: str, bars) -> None: ...
    def on_greeks(self, instrument: str, greeks) -> None: ...
    def on_order_status(self, trade: Trade) -> None: ...
    def on_fill(self, trade: Trade, fill: Fill) -> None: ...
    def on_error(self, error: IBError) -> None: ...
    def on_timer(self) -> None: ...
    def on_stop(self) -> None: ...

    # --- instruments and subscriptions ------------------------------------------------------------
    def contract(self, instrument: str | Contract) -> Contract:
        if isinstance(instrument, Contract):
            return instrument
        try:
            return self.instruments[instrument]
        except KeyError:
            raise KeyError(f"strategy {self.name!r} has no instrument {instrument!r}; "
                           f"configured: {sorted(self.instruments)}") from None

    def _key(self, instrument: str | Contract) -> str:
        return instrument if isinstance(instrument, str) else label(instrument)

    def subscribe(self, instrument: str | Contract, what: str = "quote", **options):
        """Subscribe to 'quote', 'ticks', 'depth' or 'bars'; returns the self-updating state object."""
        makers = {"quote": self.quote, "ticks": self.ticks, "depth": self.depth, "bars": self.bars}
        if what not in makers:
            raise ValueError(f"subscribe what={what!r}: choose one of {sorted(makers)}")
        return makers[what](instrument, **options)

    def quote(self, instrument: str | Contract, generic_ticks: str = ""):
        key, contract = self._key(instrument), self.contract(instrument)
        req = self.engine.market_data(contract, generic_ticks)
        self._track(req, key, self._quote_listener(key))
        return req.quote

    def greeks(self, instrument: str | Contract):
        key, contract = self._key(instrument), self.contract(instrument)
        req = self.engine.market_data(contract)
        self._track(req, key, self._quote_listener(key))
        return req.greeks

    def _quote_listener(self, key: str) -> Callable:
        last_seen = {}

        def listener(req):
            q = req.quote
            top = (q.bid, q.ask, q.last, q.bid_size, q.ask_size)
            if top != last_seen.get("top"):
                last_seen["top"] = top
                self._call(self.on_quote, key, q)
            if req.greeks is not None and req.greeks.model is not None:
                model = req.greeks.model
                if model is not last_seen.get("model"):
                    last_seen["model"] = model
                    self._call(self.on_greeks, key, req.greeks)
        return listener

    def ticks(self, instrument: str | Contract, tick_type: str = "BidAsk", capacity: int = 10_000):
        key, contract = self._key(instrument), self.contract(instrument)
        req = self.engine.tick_by_tick(contract, tick_type, capacity)
        self._track(req, key, lambda r: self._call(self.on_tick, key, r.ticks))
        return req.ticks

    def depth(self, instrument: str | Contract, rows: int = 10, smart: bool = True):
        key, contract = self._key(instrument), self.contract(instrument)
        req = self.engine.depth(contract, rows, smart)
        self._track(req, key, lambda r: self._call(self.on_depth, key, r.book))
        return req.book

    def bars(self, instrument: str | Contract, bar_size: str = "1 min", duration: str = "1 D",
             what: str = "TRADES", use_rth: bool = False, keep_up_to_date: bool = True):
        key, contract = self._key(instrument), self.contract(instrument)
        req = self.engine.bars(contract, bar_size, duration, what, use_rth, keep_up_to_date)
        bars = req.bars
        bars.on_bar_closed.append(lambda _row: self._call(self.on_bar, key, bars))
        self._requests.append(req)
        self._keys_by_req[req.req_id] = key           # so its errors reach on_error
        return bars

    def _track(self, req, key: str, listener: Callable) -> None:
        """Listen to a request once, however often the strategy asks for it (quote() then greeks())."""
        if req.req_id in self._keys_by_req:
            return
        req.listeners.append(listener)
        self._requests.append(req)
        self._keys_by_req[req.req_id] = key
        self._listeners[req.req_id] = listener

    # --- orders -------------------------------------------------------------------------------------
    def place(self, instrument: str | Contract, order: Order) -> Trade:
        contract = self.contract(instrument)
        quote_req = self.engine._quotes.get(contract.conId)
        trade = self.engine.orders.place(contract, order, self.name, quote_req.quote if quote_req else None)
        self.trades.append(trade)
        return trade

    def buy(self, instrument: str | Contract, quantity: float, price: float | None = None, **fields) -> Trade:
        order = (order_builders.limit("BUY", quantity, price, **fields) if price is not None
                 else order_builders.market("BUY", quantity, **fields))
        return self.place(instrument, order)

    def sell(self, instrument: str | Contract, quantity: float, price: float | None = None, **fields) -> Trade:
        order = (order_builders.limit("SELL", quantity, price, **fields) if price is not None
                 else order_builders.market("SELL", quantity, **fields))
        return self.place(instrument, order)

    def cancel(self, trade: Trade) -> None:
        self.engine.orders.cancel(trade)

    def open_trades(self) -> list[Trade]:
        return [t for t in self.trades if not t.done]

    # --- positions, account, timers -------------------------------------------------------------
    def position(self, instrument: str | Contract) -> float:
        return self.engine.portfolio.position(self.contract(instrument).conId)

    def account_value(self, key: str, currency: str = "USD") -> float | None:
        return self.engine.portfolio.value(key, currency)

    def schedule(self, every: float, callback: Callable[[], None] | None = None):
        """Call `callback` (default: on_timer) every `every` seconds on the dispatch thread."""
        fn = callback or self.on_timer
        handle = self.engine.dispatcher.call_every(every, lambda: self._call(fn))
        self._timers.append(handle)
        return handle

    def now(self) -> float:
        return self.engine.clock.now()

    # --- lifecycle (called by the runner) ---------------------------------------------------------------
    def _call(self, fn: Callable, *args) -> None:
        if not self.running and fn is not self.on_stop:
            return
        try:
            fn(*args)
        except Exception as exc:
            self.log.exception("%s raised; the strategy keeps running", getattr(fn, "__name__", fn))
            if fn is not self.on_error:
                err = IBError(-3, f"{type(exc).__name__} in {getattr(fn, '__name__', fn)}: {exc}", -1,
                              ErrorClass.INFO, self.now(), self.name)
                self._call(self.on_error, err)

    def _start(self) -> None:
        self.running = True
        self.engine.orders.status_hooks.append(self._order_status)
        self.engine.orders.fill_hooks.append(self._fill)
        self.engine.router.on_error_hooks.append(self._error)
        self.on_start()          # a strategy that cannot start stops the run (the runner reports why)

    def _stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._call(self.on_stop)
        self.running = False
        for req in self._requests:
            mine = self._listeners.get(req.req_id)
            if mine in req.listeners:
                req.listeners.remove(mine)
            if not req.listeners:                  # a line shared with another strategy stays open for it
                self.engine._cancel(req)

    def _order_status(self, trade: Trade) -> None:
        if trade.strategy == self.name:
            self._call(self.on_order_status, trade)

    def _fill(self, trade: Trade, fill: Fill) -> None:
        if trade.strategy == self.name:
            self._call(self.on_fill, trade, fill)

    def _error(self, err: IBError) -> None:
        mine = err.req_id in self._keys_by_req or any(t.order_id == err.req_id for t in self.trades)
        if mine or (err.req_id == -1 and err.kind is ErrorClass.CONNECTION):
            self._call(self.on_error, err)
