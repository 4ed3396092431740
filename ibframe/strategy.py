"""The Strategy base class: what a user subclasses.

Owns: a strategy's view of the engine — its named instruments, subscriptions that return
self-updating state objects, orders tagged with the strategy's name, timers, positions and
params — and the calls into the user's `on_*` methods. Every `on_*` method runs on the one
dispatch thread, so strategy code needs no locks; an exception in one is logged and reported
to `on_error`, and the strategy keeps running.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any, Callable

from ibapi.contract import Contract
from ibapi.order import Order

from .contracts import label
from .engine import Engine
from .errors import ErrorClass, IBError
from .risk.base import RiskRejected
from .risk.gate import RISK_ERROR_CODE
from .trading import orders as order_builders
from .trading.books import Book
from .trading.manager import OrderRejected
from .trading.trade import Fill, Trade


class RefusedWhileStopping(OrderRejected):
    """An order from a callback that was already running when the run began to stop: nothing was sent."""


class Strategy:
    """Subclass and override the `on_*` methods you need.

    Level-1 hooks (a `quote()` subscription), each run at most once per update TWS sent, after the
    whole update is applied — a BID/ASK/LAST price and the size that came with it land together:

    - `on_quote(instrument, quote)`: bid, ask, last, bid_size, ask_size or last_size changed.
    - `on_trade(instrument, quote)`: a trade print; `quote.last` / `quote.last_size` are that print's
      price and size. Once per print, also when its price and size equal the previous print's and
      when only last_size changed (see `ibframe.market.quote` for what counts as a print; TWS's copy
      of the size sent right after each LAST price does not). A print that also changed the quote
      runs `on_quote` first, then `on_trade`. The first print after subscribing may be the trade
      TWS last saw before the subscription.
    - `on_greeks(instrument, greeks)`: a new model computation (option lines).
    Other ticks (volume, high/low, generic ticks…) update the Quote without calling a hook.

    Conflation is an explicit choice per subscription (`quote(..., conflate=True)`, also `ticks`,
    `depth`): the state object still applies every frame, but the hook runs once per pass of the
    dispatch queue with the latest state, so a strategy slower than its stream sees the newest quote
    instead of falling further behind. Each merged update is counted in `conflated`. Off by default:
    nothing is ever merged silently.
    """

    def __init__(self, engine: Engine, name: str, params: dict[str, Any] | None = None,
                 instruments: dict[str, Contract] | None = None):
        self.engine = engine
        self.name = name
        self.params = dict(params or {})
        self.instruments: dict[str, Contract] = dict(instruments or {})
        self.log = logging.getLogger(f"strategy.{name}")
        self.trades: list[Trade] = []
        self.own_book = Book(name, engine.orders.executions)   # its own positions, from its own fills
        self._requests = []
        self._timers = []
        # keyed by id(Request): a request keeps its object but gets a fresh req_id after a reconnect
        self._keys_by_req: dict[int, tuple[Any, str]] = {}
        self._listeners: dict[int, Callable] = {}
        self.running = False
        # `on_disconnect:` in the YAML: None = leave working orders at IB; N = cancel them after a reconnect
        # when the disconnect lasted longer than N seconds
        self.cancel_after_disconnect: float | None = None
        self.stopping = False                     # the run is stopping: only on_stop may still run (request_stop)
        self.conflated = 0                        # updates merged into a later hook call (conflate=True lines)
        self._in_on_stop = False

    # --- hooks to override ------------------------------------------------------------------------
    def on_init(self) -> None:
        """Before on_start, on the runner's thread: blocking look-ups (qualify, contract_details,
        option_chain, snapshot(...).result()) are allowed here and nowhere else."""
    def on_start(self) -> None: ...
    def on_quote(self, instrument: str, quote) -> None: ...
    def on_trade(self, instrument: str, quote) -> None: ...
    def on_tick(self, instrument: str, ticks) -> None: ...
    def on_depth(self, instrument: str, book) -> None: ...
    def on_bar(self, instrument: str, bars) -> None: ...
    def on_greeks(self, instrument: str, greeks) -> None: ...
    def on_order_status(self, trade: Trade) -> None: ...
    def on_fill(self, trade: Trade, fill: Fill) -> None: ...
    def on_error(self, error: IBError) -> None: ...
    def on_timer(self) -> None: ...
    def on_stop(self) -> None: ...

    def on_disconnected(self, reason: str) -> None:
        """The link to IB is down (socket lost, or TWS's 1100 / 2110): orders are refused, quotes are stale."""

    def on_reconnected(self, down_for: float) -> None:
        """The link is back after `down_for` seconds: subscriptions are renewed (the same Quote, Bars, book
        objects), fills that happened meanwhile were delivered to on_fill, and orders may be placed again."""

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

    def quote(self, instrument: str | Contract, generic_ticks: str = "", conflate: bool = False):
        """The instrument's live Quote; `on_quote`/`on_trade` run on its updates (once per dispatch pass with
        the latest state when `conflate`)."""
        key, contract = self._key(instrument), self.contract(instrument)
        req = self.engine.market_data(contract, generic_ticks)
        self._track(req, key, self._maybe_conflated(self._quote_listener(key), conflate))
        return req.quote

    def greeks(self, instrument: str | Contract, conflate: bool = False):
        key, contract = self._key(instrument), self.contract(instrument)
        req = self.engine.market_data(contract)
        self._track(req, key, self._maybe_conflated(self._quote_listener(key), conflate))
        return req.greeks

    def _maybe_conflated(self, listener: Callable, conflate: bool) -> Callable:
        """`listener` itself, or (conflate) one that runs it once per pass of the dispatch queue: the first
        update posts a delivery behind the frames already queued; updates until it runs are merged."""
        if not conflate:
            return listener
        post = self.engine.dispatcher.post
        pending = [False]

        def deliver(req) -> None:
            pending[0] = False
            listener(req)

        def conflated(req) -> None:
            if pending[0]:
                self.conflated += 1
                return
            pending[0] = True
            post(deliver, req)
        return conflated

    def _quote_listener(self, key: str) -> Callable:
        last_seen = {"prints": None}

        def listener(req):
            q = req.quote
            top = (q.bid, q.ask, q.last, q.bid_size, q.ask_size, q.last_size)
            if top != last_seen.get("top"):
                last_seen["top"] = top
                self._call(self.on_quote, key, q)
            prints = q.prints
            if prints != last_seen["prints"]:
                last_seen["prints"] = prints
                if q.printed:                       # this update was a print (not one seen before subscribing)
                    self._call(self.on_trade, key, q)
            if req.greeks is not None and req.greeks.model is not None:
                model = req.greeks.model
                if model is not last_seen.get("model"):
                    last_seen["model"] = model
                    self._call(self.on_greeks, key, req.greeks)
        return listener

    def ticks(self, instrument: str | Contract, tick_type: str = "BidAsk", capacity: int = 10_000,
              conflate: bool = False):
        """Tick-by-tick data in a ring of `capacity`; with `conflate`, on_tick may see several new ticks at once."""
        key, contract = self._key(instrument), self.contract(instrument)
        req = self.engine.tick_by_tick(contract, tick_type, capacity)
        self._track(req, key, self._maybe_conflated(lambda r: self._call(self.on_tick, key, r.ticks), conflate))
        return req.ticks

    def depth(self, instrument: str | Contract, rows: int = 10, smart: bool = True, conflate: bool = False):
        key, contract = self._key(instrument), self.contract(instrument)
        req = self.engine.depth(contract, rows, smart)
        self._track(req, key, self._maybe_conflated(lambda r: self._call(self.on_depth, key, r.book), conflate))
        return req.book

    def bars(self, instrument: str | Contract, bar_size: str = "1 min", duration: str = "1 D",
             what: str = "TRADES", use_rth: bool = False, keep_up_to_date: bool = True):
        key, contract = self._key(instrument), self.contract(instrument)
        req = self.engine.bars(contract, bar_size, duration, what, use_rth, keep_up_to_date)
        bars = req.bars
        bars.on_bar_closed.append(lambda _row: self._call(self.on_bar, key, bars))
        self._requests.append(req)
        self._keys_by_req[id(req)] = (req, key)       # so its errors reach on_error
        return bars

    def _track(self, req, key: str, listener: Callable) -> None:
        """Listen to a request once, however often the strategy asks for it (quote() then greeks())."""
        if id(req) in self._keys_by_req:
            return
        req.listeners.append(listener)
        self._requests.append(req)
        self._keys_by_req[id(req)] = (req, key)
        self._listeners[id(req)] = listener

    # --- one-off market data and reference look-ups ------------------------------------------------
    def snapshot(self, instrument: str | Contract, callback: Callable | None = None) -> Future:
        """One market-data snapshot (reqMktData snapshot=True) in a fresh Quote; never blocks.

        Returns a Future resolved with the Quote when TWS ends the snapshot. `callback(instrument, quote)`
        runs on the dispatch thread (errors in it reach on_error) while the strategy runs; a failed
        snapshot (e.g. 200 no such contract, 354 no market data permissions) fails the future and
        reaches on_error. Wait on the future only in on_init, never in a callback.
        """
        key, contract = self._key(instrument), self.contract(instrument)

        def ask():                           # on the dispatch thread: registered before any answer can arrive
            box = {}

            def done(fut: Future) -> None:
                # forget the id after its error (if any) reached on_error: the router fails the future first
                self.engine.dispatcher.post(self._keys_by_req.pop, id(box["req"]), None)
                if callback is not None and not fut.cancelled() and fut.exception() is None:
                    self._call(callback, key, fut.result())
            box["req"] = req = self.engine.snapshot(contract, on_done=done)
            self._keys_by_req[id(req)] = (req, key)
            return req.future
        return self.engine.on_dispatch(ask)

    def qualify(self, contract: str | Contract, name: str | None = None) -> Contract:
        """The contract TWS knows for a description, conId filled (ContractError otherwise). on_init only.

        With `name`, it also becomes one of the strategy's instruments (self.quote(name), self.buy(name, …)).
        """
        qualified = self.contract(contract) if isinstance(contract, str) else self.engine.qualify(contract)
        if name is not None:
            self.instruments[name] = qualified
        return qualified

    def contract_details(self, instrument: str | Contract) -> list:
        """Every ibapi ContractDetails matching the instrument or description ([] when none). on_init only."""
        return self.engine.contract_details(self.contract(instrument))

    def option_chain(self, underlying: str | Contract, expiries=None, strikes=None, within: float | None = None,
                     rights=("C", "P"), exchange: str = "SMART"):
        """The underlying's options as a pandas DataFrame, one row per expiry x strike x right. on_init only.

        Columns conId, symbol, expiry, strike, right, multiplier, tradingClass, exchange and `contract`
        (a qualified ibapi Contract to trade or subscribe to). expiries: None (all), N (the N nearest),
        'yyyymmdd' / 'yyyymm', or (from, to). strikes: None or (lo, hi); or within=0.05 for strikes
        within 5% of the underlying's price (taken from a snapshot). rights: ('C', 'P'), ('C',) or ('P',).
        """
        return self.engine.option_chain(self.contract(underlying), expiries, strikes, within, rights, exchange)

    # --- orders -------------------------------------------------------------------------------------
    def place(self, instrument: str | Contract, order: Order) -> Trade:
        """Send an order through the risk layer; returns its live Trade.

        Raises RiskRejected (an OrderRejected) when a risk rule refuses it: nothing was sent, no id was spent,
        and the exception says the rule, the limit, the value and what to change. on_error also gets it
        (code -4, after the current callback), so a strategy that does not catch it still hears why; the
        strategy keeps running either way. A refusal that comes later (a deferred what-if check) ends the
        trade Inactive with the reason, through on_order_status, like a TWS reject.
        """
        if self.stopping and not self._in_on_stop:
            raise RefusedWhileStopping(f"strategy {self.name}: the run is stopping; only on_stop may still place "
                                       f"orders (nothing was sent)")
        contract = self.contract(instrument)
        try:
            trade = self.engine.orders.place(contract, order, self.name, self._arrival_quote(contract))
        except RiskRejected as exc:
            self._refused(exc)
            raise
        self.trades.append(trade)
        return trade

    def _refused(self, exc: RiskRejected) -> None:
        """Tell on_error about a risk refusal, after the current callback (never re-entering strategy code)."""
        error = IBError(RISK_ERROR_CODE, str(exc), -1, ErrorClass.ORDER, self.now(), f"risk rule {exc.refusal.rule}")
        self.engine.dispatcher.post(self._call, self.on_error, error)

    def buy(self, instrument: str | Contract, quantity: float, price: float | None = None, **fields) -> Trade:
        order = (order_builders.limit("BUY", quantity, price, **fields) if price is not None
                 else order_builders.market("BUY", quantity, **fields))
        return self.place(instrument, order)

    def sell(self, instrument: str | Contract, quantity: float, price: float | None = None, **fields) -> Trade:
        order = (order_builders.limit("SELL", quantity, price, **fields) if price is not None
                 else order_builders.market("SELL", quantity, **fields))
        return self.place(instrument, order)

    def bracket(self, instrument: str | Contract, action: str, quantity: float, entry_price: float,
                take_profit: float, stop_loss: float, **fields) -> list[Trade]:
        """Entry LMT with a take-profit LMT and a stop-loss STP attached: [entry, take_profit, stop_loss].

        The children work only once the entry fills, and one cancels the other. `fields` (tif, outsideRth…)
        go on all three. All three trades are the strategy's (self.trades, on_order_status, on_fill).
        """
        contract = self.contract(instrument)
        orders = order_builders.bracket(action, quantity, entry_price, take_profit, stop_loss, **fields)
        try:
            trades = self.engine.orders.place_bracket(contract, orders, self.name, self._arrival_quote(contract))
        except RiskRejected as exc:                 # refused by the risk layer: on_error hears it too
            self._withdraw(orders)
            self._refused(exc)
            raise
        except Exception:
            self._withdraw(orders)
            raise
        self.trades.extend(trades)
        return trades

    def oca(self, instrument: str | Contract | None, orders: list, group: str | None = None,
            oca_type: int = 1) -> list[Trade]:
        """Place orders as one One-Cancels-All group; returns their trades (all the strategy's).

        `orders` are Orders for `instrument`, or (instrument, Order) pairs for a group across instruments.
        oca_type 1: when one fills, TWS cancels the others; 2: reduces them (with block); 3: reduces, no block.
        `group` defaults to a name unique to this strategy and moment.
        """
        pairs = [item if isinstance(item, tuple) else (instrument, item) for item in orders]
        if any(inst is None for inst, _ in pairs):
            raise ValueError("oca: give the instrument, or (instrument, order) pairs")
        if group is None:
            seq = getattr(self, "_oca_seq", 0) + 1
            self._oca_seq = seq
            group = f"{self.name}-oca-{int(self.now() * 1000)}-{seq}"
        order_builders.oca([order for _, order in pairs], group, oca_type)
        try:
            return [self.place(inst, order) for inst, order in pairs]
        except Exception:
            self._withdraw([order for _, order in pairs])
            raise

    def _withdraw(self, orders: list[Order]) -> None:
        """A group refused part way (e.g. a risk check on its second order): cancel the part already sent, so
        no untransmitted bracket parent or lone OCA member is left in TWS; the trades stay in self.trades."""
        for order in orders:
            trade = self.engine.orders.trades.get(order.orderId) if order.orderId else None
            if trade is not None:
                if trade not in self.trades:
                    self.trades.append(trade)
                self.engine.orders.cancel(trade)

    def _arrival_quote(self, contract: Contract):
        """The instrument's streaming quote, if a line is open (for the NBBO at arrival)."""
        return self.engine.live_quote(contract.conId)

    def cancel(self, trade: Trade) -> None:
        self.engine.orders.cancel(trade)

    def open_trades(self) -> list[Trade]:
        return [t for t in self.trades if not t.done]

    def adopt(self, trade: Trade) -> None:
        """Take a working order an earlier run of this strategy left (its orderRef is this strategy's name) as
        one of its own trades: open_trades() lists it, its statuses and fills reach on_order_status / on_fill.
        Called at start by ibframe.trading.leftovers (policy `adopt`); dispatch thread."""
        if trade not in self.trades:
            self.trades.append(trade)

    # --- trading state (ibframe.risk.state) ------------------------------------------------------
    @property
    def trading_state(self):
        """This strategy's effective TradingState (the stricter of its own and the global one).
        RuntimeError when the engine has no risk layer."""
        from .risk.state import strategy_state
        return strategy_state(self.engine, self.name)

    def set_trading_state(self, state, reason: str) -> bool:
        """Set this strategy's own state ('ACTIVE', 'REDUCING', 'HALTED'); HALTED cancels its working orders.
        It lifts only its own claim: a halt the risk layer or the kill switch set stays. True if changed."""
        from .risk.state import set_strategy_state
        return set_strategy_state(self.engine, self.name, state, reason)

    # --- positions, account, timers -------------------------------------------------------------
    def position(self, instrument: str | Contract) -> float:
        """This strategy's own net position, from its own fills (a combo: net number of combos held).

        Other strategies in the process, other clients and manual trades do not count; for the account's
        position use `account_position`."""
        return self.own_book.position(self.contract(instrument))

    def account_position(self, instrument: str | Contract) -> float:
        """The account's position in the instrument (every strategy, client and manual trade), as TWS reports it."""
        contract = self.contract(instrument)
        if contract.secType == "BAG":
            raise ValueError(f"{self._key(instrument)} is a combo: the account holds its legs, not the combo; "
                             f"ask account_position() of each leg")
        return self.engine.portfolio.position(contract.conId)

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
    def request_stop(self) -> None:
        """From any thread, as the run begins to stop: from now on no callback but on_stop runs (market data
        still queued on the dispatch thread updates state, never strategy code), so nothing is placed late."""
        self.stopping = True

    def _call(self, fn: Callable, *args) -> None:
        if (not self.running or self.stopping) and fn != self.on_stop:
            return
        try:
            fn(*args)
        except (RiskRejected, RefusedWhileStopping) as exc:   # said already (the gate's log line / on_error): no traceback
            self.log.warning("%s stopped at a refused order; the strategy keeps running: %s",
                             getattr(fn, "__name__", fn), exc)
        except Exception as exc:
            self.log.exception("%s raised; the strategy keeps running", getattr(fn, "__name__", fn))
            if fn != self.on_error:
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
        self._in_on_stop = True
        try:
            self._call(self.on_stop)
        finally:
            self._in_on_stop = False
        self.running = False
        for req in self._requests:
            mine = self._listeners.get(id(req))
            if mine in req.listeners:
                req.listeners.remove(mine)
            if not req.listeners:                  # a line shared with another strategy stays open for it
                self.engine._cancel(req)

    def _disconnected(self, reason: str) -> None:
        self._call(self.on_disconnected, reason)

    def _reconnected(self, down_for: float) -> None:
        """After the supervisor's resubscription and reconciliation: the cancel policy, then on_reconnected."""
        limit = self.cancel_after_disconnect
        if self.running and limit is not None and down_for > limit:
            working = self.open_trades()
            if working:
                self.log.warning("the connection was down %.1fs (> on_disconnect.cancel_after %gs): cancelling "
                                 "%d working order(s)", down_for, limit, len(working))
            for trade in working:
                self.engine.orders.cancel(trade)
        self._call(self.on_reconnected, down_for)

    def _order_status(self, trade: Trade) -> None:
        if trade.strategy == self.name and not self.engine.orders.is_disowned(trade):
            self._call(self.on_order_status, trade)

    def _fill(self, trade: Trade, fill: Fill) -> None:
        if trade.strategy == self.name and not self.engine.orders.is_disowned(trade):
            self._call(self.on_fill, trade, fill)

    def _error(self, err: IBError) -> None:
        mine = (any(req.req_id == err.req_id for req, _ in self._keys_by_req.values())
                or any(t.order_id == err.req_id for t in self.trades))
        if mine or (err.req_id == -1 and err.kind is ErrorClass.CONNECTION):
            self._call(self.on_error, err)
