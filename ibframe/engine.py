"""The engine: wires clock, dispatch thread, connection, router, ids, orders and portfolio.

Owns: the requests a running system makes (qualify, subscribe, cancel, place) and the
guarantee that each one is registered with the router before it is sent, on the dispatch
thread. Methods may be called from any thread; work is moved onto the dispatch thread.
Blocking helpers (`qualify`, `contract_details`) must not be called from strategy callbacks.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from pathlib import Path

from ibapi.contract import Contract, ContractDetails

from .connection import ConnectError, IBConnection
from .contracts import ContractError, label
from .dispatch import Clock, Dispatcher
from .ids import OrderIds, RequestIds
from .market.bars import Bars
from .market.book import OrderBook
from .market.greeks import OptionGreeks
from .market.quote import Quote
from .market.ticks import TickRing
from .router import Request, RequestError, Router
from .trading.manager import OrderManager
from .trading.portfolio import Portfolio

log = logging.getLogger("ibframe.engine")

CANCELLERS = {
    "mktdata": "cancelMktData",
    "ticks": "cancelTickByTickData",
    "bars": "cancelHistoricalData",
    "rtbars": "cancelRealTimeBars",
}


class Engine:
    def __init__(self, host: str = "127.0.0.1", port: int = 7497, client_id: int = 1,
                 state_dir: str | Path = "var", clock: Clock | None = None, throttle: bool = True,
                 id_file: str | None = None):
        self.host, self.port, self.client_id = host, port, client_id
        self.state_dir = Path(state_dir)
        self.clock = clock or Clock()
        self.dispatcher = Dispatcher(self.clock)
        self.router = Router(self.clock)
        self.conn = IBConnection(self.router, self.dispatcher, throttle=throttle)
        self.request_ids = RequestIds()
        # one id file per gateway and client: ids already used there are never issued again
        self.order_ids = OrderIds(self.state_dir / (id_file or f"order-ids-{host}-{port}-{client_id}.txt"))
        self.router.next_valid_id_hooks.append(self.order_ids.seed)
        self.orders = OrderManager(self.conn, self.order_ids, self.clock)
        self.portfolio = Portfolio()
        self.router.orders = self.orders
        self.router.portfolio = self.portfolio
        self._quotes: dict[int, Request] = {}       # conId -> market data request (one line per instrument)

    @classmethod
    def replaying(cls, make_connection, clock: Clock, dispatcher: Dispatcher, client_id: int = 1,
                  order_ids: OrderIds | None = None) -> "Engine":
        """An engine fed by a recording instead of a socket (ibframe.replay builds one).

        Wired exactly like a live engine — same router, request ids, order manager, portfolio — but
        with the replay's dispatcher and `make_connection(router, dispatcher)` as its connection.
        Order ids live in memory only (`order_ids`, default unpersisted): a replay never reads or
        writes a live session's id file.
        """
        engine = cls("replay", 0, client_id, state_dir="/nonexistent-ibframe-replay", clock=clock)
        engine.dispatcher = dispatcher
        engine.conn = make_connection(engine.router, dispatcher)
        engine.order_ids = order_ids or OrderIds()
        engine.router.next_valid_id_hooks = [engine.order_ids.seed]
        engine.orders.client, engine.orders.order_ids = engine.conn, engine.order_ids
        return engine

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "Engine":
        """Connect and wait until TWS sent nextValidId and managedAccounts."""
        self.dispatcher.start()
        try:
            self.conn.open(self.host, self.port, self.client_id, timeout)
        except ConnectError:
            self.dispatcher.stop()
            raise
        deadline = time.monotonic() + timeout
        while not self.router.ready.wait(0.05):
            closed = self.router.connection_closed.is_set()
            if closed or time.monotonic() > deadline:
                codes = "; ".join(str(e) for e in self.router.errors[-3:])
                self.stop()
                what = "closed the connection" if closed else f"did not send nextValidId and managedAccounts " \
                                                              f"within {timeout:g}s"
                raise ConnectError(f"{self.host}:{self.port} {what}" + (f" ({codes})" if codes else ""))
        return self

    @property
    def account(self) -> str:
        return self.router.accounts[0] if self.router.accounts else ""

    def stop(self) -> None:
        """Cancel every live subscription, disconnect, and end the dispatch thread."""
        if self.conn.isConnected():
            try:
                self.on_dispatch(self._cancel_all)
            except Exception:
                log.exception("cancelling subscriptions at stop failed")
        self.conn.close()
        self.dispatcher.stop()

    def _cancel_all(self) -> None:
        for req in list(self.router.requests.values()):
            self._cancel(req)

    def on_dispatch(self, fn, *args, timeout: float = 30.0):
        """Run fn on the dispatch thread (directly when already there) and return its result."""
        return self.dispatcher.call_sync(fn, *args, timeout=timeout)

    # --- reference data (blocking; not from strategy callbacks) -----------------------------------
    def _ask(self, kind: str, contract: Contract | None, subject: str, send) -> Future:
        future: Future = Future()

        def submit():
            req = self.router.register(Request(self.request_ids.take(), kind, contract, subject,
                                               future=future, streaming=False))
            send(req.req_id)
        self.on_dispatch(submit)
        return future

    def contract_details(self, contract: Contract, timeout: float = 15.0) -> list[ContractDetails]:
        self._not_on_dispatch("contract_details")
        fut = self._ask("details", contract, f"contract details {label(contract)}",
                        lambda rid: self.conn.reqContractDetails(rid, contract))
        try:
            return fut.result(timeout)
        except RequestError as exc:
            if exc.error.code == 200:
                return []
            raise

    def qualify(self, contract: Contract, timeout: float = 15.0) -> Contract:
        """The one contract TWS knows for this description, with conId filled; ContractError otherwise."""
        details = self.contract_details(contract, timeout)
        if not details:
            raise ContractError(f"no security definition for {label(contract)} ({contract.secType} on "
                                f"{contract.exchange or 'any exchange'} in {contract.currency or 'any currency'}): "
                                f"check the symbol, secType, exchange and currency")
        if len(details) > 1:
            choices = ", ".join(f"{label(d.contract)} conId {d.contract.conId}" for d in details[:6])
            raise ContractError(f"{label(contract)} is ambiguous ({len(details)} matches: {choices}"
                                f"{', …' if len(details) > 6 else ''}); add expiry/strike/right/exchange or a conId")
        qualified = details[0].contract
        if contract.secType != "BAG":
            qualified.exchange = contract.exchange or qualified.exchange
        return qualified

    def option_params(self, underlying: Contract, timeout: float = 15.0) -> list[dict]:
        self._not_on_dispatch("option_params")
        fut = self._ask("optparams", underlying, f"option chain {label(underlying)}",
                        lambda rid: self.conn.reqSecDefOptParams(rid, underlying.symbol, "", underlying.secType,
                                                                 underlying.conId))
        return fut.result(timeout)

    def _not_on_dispatch(self, what: str) -> None:
        if self.dispatcher.in_dispatch_thread():
            raise RuntimeError(f"{what}() waits for TWS and would deadlock the dispatch thread; "
                               f"call it before the strategy starts (e.g. qualify in the config)")

    # --- subscriptions (any thread) -------------------------------------------------------------
    def market_data(self, contract: Contract, generic_ticks: str = "") -> Request:
        """One market data line per instrument, shared by everyone who asks; quote (+greeks for options)."""
        def subscribe() -> Request:
            existing = self._quotes.get(contract.conId) if contract.conId else None
            if existing is not None and not existing.done:
                return existing
            rid = self.request_ids.take()
            greeks = OptionGreeks() if contract.secType in ("OPT", "FOP") else None
            req = self.router.register(Request(rid, "mktdata", contract, f"market data {label(contract)}",
                                               quote=Quote(label(contract)), greeks=greeks))
            if contract.conId:
                self._quotes[contract.conId] = req
            self.conn.reqMktData(rid, contract, generic_ticks, False, False, [])
            return req
        return self.on_dispatch(subscribe)

    def tick_by_tick(self, contract: Contract, tick_type: str = "BidAsk", capacity: int = 10_000) -> Request:
        if tick_type not in ("Last", "AllLast", "BidAsk", "MidPoint"):
            raise ValueError(f"tick type must be Last, AllLast, BidAsk or MidPoint, got {tick_type!r}")

        def subscribe() -> Request:
            rid = self.request_ids.take()
            req = self.router.register(Request(rid, "ticks", contract, f"{tick_type} ticks {label(contract)}",
                                               ticks=TickRing(capacity)))
            self.conn.reqTickByTickData(rid, contract, tick_type, 0, False)
            return req
        return self.on_dispatch(subscribe)

    def depth(self, contract: Contract, rows: int = 10, smart: bool = True) -> Request:
        def subscribe() -> Request:
            rid = self.request_ids.take()
            req = self.router.register(Request(rid, "depth", contract, f"depth {label(contract)}",
                                               book=OrderBook(rows)))
            req.results.append(smart)
            self.conn.reqMktDepth(rid, contract, rows, smart, [])
            return req
        return self.on_dispatch(subscribe)

    def bars(self, contract: Contract, bar_size: str = "1 min", duration: str = "1 D", what: str = "TRADES",
             use_rth: bool = False, keep_up_to_date: bool = True) -> Request:
        def subscribe() -> Request:
            rid = self.request_ids.take()
            req = self.router.register(Request(rid, "bars", contract, f"{bar_size} bars {label(contract)}",
                                               bars=Bars(bar_size), streaming=keep_up_to_date,
                                               future=Future()))
            self.conn.reqHistoricalData(rid, contract, "", duration, bar_size, what, int(use_rth), 1,
                                        keep_up_to_date, [])
            return req
        return self.on_dispatch(subscribe)

    def cancel(self, req: Request) -> None:
        self.on_dispatch(self._cancel, req)

    def _cancel(self, req: Request) -> None:
        if req.done or self.router.requests.get(req.req_id) is not req:
            return
        self.router.finish(req.req_id)
        if req.kind == "depth":
            self.conn.cancelMktDepth(req.req_id, bool(req.results and req.results[0]))
        elif req.kind in CANCELLERS:
            getattr(self.conn, CANCELLERS[req.kind])(req.req_id)
        if req.kind == "mktdata" and req.contract is not None:
            self._quotes.pop(req.contract.conId, None)

    # --- account --------------------------------------------------------------------------------
    def subscribe_account(self) -> None:
        """Positions and account values for the first managed account, kept current."""
        def send():
            self.conn.reqPositions()
            self.conn.reqAccountUpdates(True, self.account)
        self.on_dispatch(send)
