"""The engine: wires clock, dispatch thread, connection, router, ids, orders and portfolio.

Owns: the requests a running system makes (qualify, subscribe, cancel, place) and the
guarantee that each one is registered with the router before it is sent, on the dispatch
thread. Methods may be called from any thread; work is moved onto the dispatch thread.
Blocking helpers (`qualify`, `contract_details`, `option_params`, `option_chain`) must not be called
from strategy callbacks (they raise, pointing to `Strategy.on_init`); `snapshot` never blocks.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future, TimeoutError as FutureTimeout
from pathlib import Path

from ibapi.contract import Contract, ContractDetails

from .connection import ConnectError, IBConnection
from .contracts import Combo, ContractError, label
from .dispatch import Clock, Dispatcher
from .ids import OrderIds, RequestIds
from .market.bars import Bars
from .market.book import OrderBook
from .market.greeks import OptionGreeks
from .market.quote import Quote
from .market.ticks import TickRing
from .router import Request, RequestError, Router
from .trading import chains
from .trading.chains import ChainLookups
from .trading.manager import OrderManager
from .trading.portfolio import Portfolio

log = logging.getLogger("ibframe.engine")

CANCELLERS = {
    "mktdata": "cancelMktData",
    "ticks": "cancelTickByTickData",
    "bars": "cancelHistoricalData",
    "rtbars": "cancelRealTimeBars",
    "snapshot": "cancelMktData",
    "acctsummary": "cancelAccountSummary",
}


class DispatchFuture(Future):
    """A Future that refuses to be waited on from the dispatch thread (which alone can complete it)."""

    def __init__(self, in_dispatch_thread):
        super().__init__()
        self._in_dispatch_thread = in_dispatch_thread

    def result(self, timeout=None):
        if not self.done() and self._in_dispatch_thread():
            raise RuntimeError("waiting for this result on the dispatch thread would deadlock it (the answer is "
                               "delivered there): pass callback=... instead, or wait in on_init()")
        return super().result(timeout)

    def exception(self, timeout=None):
        if not self.done() and self._in_dispatch_thread():
            raise RuntimeError("waiting for this result on the dispatch thread would deadlock it: pass callback=...")
        return super().exception(timeout)


# the requests TWS drops on 1101 "connectivity restored, data lost"
DATA_KINDS = frozenset({"mktdata", "snapshot", "ticks", "depth", "bars", "rtbars"})


class SendNow:
    """The request scheduler with no limits: every request is sent at once (replay, and until pacing is set)."""

    def submit(self, req: Request) -> None:
        req.sent += 1
        req.send(req.req_id)

    def reset(self) -> None:
        pass

    def waiting(self, req: Request) -> float | None:
        return None                              # nothing ever waits here


class Engine:
    def __init__(self, host: str = "127.0.0.1", port: int = 7497, client_id: int = 1,
                 state_dir: str | Path = "var", clock: Clock | None = None, throttle: bool = True,
                 id_file: str | None = None, writer_limit: int = 50, pacing=True):
        self.host, self.port, self.client_id = host, port, client_id
        self.state_dir = Path(state_dir)
        self.clock = clock or Clock()
        self.dispatcher = Dispatcher(self.clock)
        self.router = Router(self.clock)
        # TWS's messages/s for this account: the paced writer (ibframe.writer) stays under it
        self.conn = IBConnection(self.router, self.dispatcher, throttle=throttle, writer_limit=writer_limit)
        self.request_ids = RequestIds()
        # one id file per gateway and client: ids already used there are never issued again
        self.order_ids = OrderIds(self.state_dir / (id_file or f"order-ids-{host}-{port}-{client_id}.txt"))
        self.router.next_valid_id_hooks.append(self.order_ids.seed)
        self.orders = OrderManager(self.conn, self.order_ids, self.clock)
        self.orders.call_later = lambda delay, fn: self.dispatcher.call_later(delay, fn)   # ack timeouts
        self.orders.request_id = self.request_ids.take      # reqExecutions after a reconnect: fresh ids
        self.orders.orders_queued = self._orders_queued
        self.portfolio = Portfolio()
        self.router.orders = self.orders
        self.router.portfolio = self.portfolio
        self._quotes: dict[int, Request] = {}       # conId -> market data request (one line per instrument)
        # when each request may be sent: IB's pacing and line limits (ibframe.pacing; `pacing` True = IB's
        # defaults, a PacingLimits = those, False = send at once, as a replay does)
        self.scheduler = SendNow()
        self.account_subscribed = False              # reqPositions + reqAccountUpdates asked (re-asked after a reconnect)
        self.account_feed = None                     # the risk layer's account-summary subscription (risk/margin.py)
        if pacing:
            from .pacing import install
            install(self, pacing if not isinstance(pacing, bool) else None)

    @classmethod
    def replaying(cls, make_connection, clock: Clock, dispatcher: Dispatcher, client_id: int = 1,
                  order_ids: OrderIds | None = None) -> "Engine":
        """An engine fed by a recording instead of a socket (ibframe.replay builds one).

        Wired exactly like a live engine — same router, request ids, order manager, portfolio — but
        with the replay's dispatcher and `make_connection(router, dispatcher)` as its connection.
        Order ids live in memory only (`order_ids`, default unpersisted): a replay never reads or
        writes a live session's id file.
        """
        engine = cls("replay", 0, client_id, state_dir="/nonexistent-ibframe-replay", clock=clock, pacing=False)
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

    def _orders_queued(self) -> int:
        stats = self.writer_stats()
        return stats.queued_orders if stats is not None else 0

    @property
    def dispatch_lag(self) -> float:
        """How far behind the socket the dispatch thread is now: the age of the oldest frame read but not yet
        handled (0 when keeping up)."""
        return self.conn.current_lag()

    def writer_stats(self):
        """The paced writer's queue depths, waits and drops (ibframe.writer.WriterStats); None without pacing."""
        transport = self.conn.conn
        stats = getattr(transport, "stats", None)
        return stats() if stats is not None else None

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
        self.order_ids.close()                   # its background reservation writer

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
            self.open_request(Request(self.request_ids.take(), kind, contract, subject, future=future,
                                      streaming=False), send)
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
        """The one contract TWS knows for this description, with conId filled; ContractError otherwise.

        A combo (secType BAG) qualifies each leg (by its conId or its description) and comes back as a
        `ComboContract` with every comboLeg's conId filled, the legs' contracts, symbol, currency and
        exchange (SMART unless given)."""
        if contract.secType == "BAG":
            return self._qualify_combo(contract, timeout)
        details = self.contract_details(contract, timeout)
        if not details:
            check = ("the conId" if contract.conId and not contract.symbol
                     else "the symbol, secType, exchange and currency")
            raise ContractError(f"no security definition for {label(contract)} ({contract.secType or 'any secType'} on "
                                f"{contract.exchange or 'any exchange'} in {contract.currency or 'any currency'}): "
                                f"check {check}")
        if len(details) > 1:
            choices = ", ".join(f"{label(d.contract)} conId {d.contract.conId}" for d in details[:6])
            raise ContractError(f"{label(contract)} is ambiguous ({len(details)} matches: {choices}"
                                f"{', …' if len(details) > 6 else ''}); add expiry/strike/right/exchange or a conId")
        qualified = details[0].contract
        qualified.exchange = contract.exchange or qualified.exchange
        return qualified

    def _qualify_combo(self, combo: Contract, timeout: float) -> Contract:
        legs = combo.comboLegs or []
        if len(legs) < 2:
            raise ContractError(f"{label(combo)}: a combo needs at least two legs, each a conId or a contract "
                                f"description with ratio and action")
        described = getattr(combo, "leg_contracts", None) or [None] * len(legs)
        qualified = []
        for n, (leg, desc) in enumerate(zip(legs, described), start=1):
            if desc is None:
                desc = Contract()
                desc.conId = leg.conId
            try:
                q = self.qualify(desc, timeout)
            except ContractError as exc:
                raise ContractError(f"combo leg {n} ({leg.action} {leg.ratio}): {exc}") from None
            if leg.conId and q.conId != leg.conId:
                raise ContractError(f"combo leg {n}: conId {leg.conId} does not match its description "
                                    f"{label(q)} (conId {q.conId}); give one or the other")
            qualified.append((q, leg.ratio, leg.action, leg.exchange))
        currencies = sorted({q.currency for q, *_ in qualified if q.currency})
        if len(currencies) > 1 or (combo.currency and currencies and combo.currency != currencies[0]):
            raise ContractError(f"{label(combo)}: legs trade in {', '.join(currencies)}; a combo's legs and the "
                                f"combo share one currency")
        symbols = list(dict.fromkeys(q.symbol for q, *_ in qualified))
        return Combo(combo.symbol or ",".join(symbols), qualified, combo.exchange or "SMART",
                     combo.currency or (currencies[0] if currencies else "USD"))

    def gateway_time(self, timeout: float = 5.0) -> float:
        """The gateway's clock in epoch seconds (reqCurrentTime): TWS's own time, or the simulator's, which may be
        pinned to another day. Blocking (not from strategy callbacks); this machine's clock, with a warning, when
        no answer comes within `timeout` seconds."""
        self._not_on_dispatch("gateway_time")
        future: Future = Future()

        def ask() -> None:
            self.router.current_time_waiters.append(future)
            self.conn.reqCurrentTime()
        self.on_dispatch(ask)
        try:
            return future.result(timeout)
        except FutureTimeout:
            log.warning("the gateway did not tell its time within %gs (reqCurrentTime): using this machine's clock",
                        timeout)
            return self.clock.now()

    def live_quote(self, con_id: int) -> Quote | None:
        """The Quote of the instrument's live market-data line, or None when no line is open for it now."""
        req = self._quotes.get(con_id) if con_id else None
        return req.quote if req is not None and not req.done else None

    def live_quotes(self) -> list[tuple[Contract, Quote]]:
        """(contract, Quote) of every live market-data line open now (dispatch thread)."""
        return [(req.contract, req.quote) for req in list(self._quotes.values()) if not req.done]

    def option_params(self, underlying: Contract, timeout: float = 15.0) -> list[dict]:
        """reqSecDefOptParams: per exchange, the expiries, strikes, trading class and multiplier. Blocking."""
        self._not_on_dispatch("option_params")
        fut_fop_exchange = underlying.exchange if underlying.secType == "FUT" else ""    # "" for stock options
        fut = self._ask("optparams", underlying, f"option chain {label(underlying)}",
                        lambda rid: self.conn.reqSecDefOptParams(rid, underlying.symbol, fut_fop_exchange,
                                                                 underlying.secType, underlying.conId))
        return fut.result(timeout)

    def _not_on_dispatch(self, what: str) -> None:
        if self.dispatcher.in_dispatch_thread():
            raise RuntimeError(f"{what}() waits for TWS's answer, and strategy callbacks (on_start, on_quote, "
                               f"timers…) run on the dispatch thread that delivers it: waiting there would "
                               f"deadlock. Do look-ups in the strategy's on_init() (it runs before on_start, "
                               f"where blocking look-ups are allowed) and keep what they return, or ask for "
                               f"market data without waiting with snapshot(..., callback=...)")

    def option_chain(self, underlying: Contract, expiries=None, strikes=None, within: float | None = None,
                     rights=("C", "P"), exchange: str = "SMART", timeout: float = 15.0):
        """The options on a qualified underlying as a DataFrame (see ibframe.trading.chains). Blocking."""
        self._not_on_dispatch("option_chain")
        if not underlying.conId:
            underlying = self.qualify(underlying, timeout)
        lookups = ChainLookups(lambda c: self.option_params(c, timeout),
                               lambda c: self.contract_details(c, timeout),
                               lambda c: self._price_now(c, timeout))
        return chains.option_chain(lookups, underlying, expiries, strikes, within, rights, exchange)

    def _price_now(self, contract: Contract, timeout: float) -> float | None:
        """Mid (else last, else close) from a market-data snapshot; blocking."""
        self._not_on_dispatch("price")
        quote = self.snapshot(contract).future.result(timeout)
        for value in (quote.mid, quote.last, quote.close):
            if value is not None and value > 0:
                return value
        return None

    # --- subscriptions (any thread) -------------------------------------------------------------
    def open_request(self, req: Request, send) -> Request:
        """Register `req` and send it through the request scheduler (dispatch thread only).

        `send(req_id)` is how the request is (re)sent: the scheduler calls it when IB's limits allow, and
        the connection supervisor calls it again with a fresh id after a reconnect."""
        req.send = send
        self.router.register(req)
        self.scheduler.submit(req)
        return req

    def market_data(self, contract: Contract, generic_ticks: str = "") -> Request:
        """One market data line per instrument, shared by everyone who asks; quote (+greeks for options)."""
        def subscribe() -> Request:
            existing = self._quotes.get(contract.conId) if contract.conId else None
            if existing is not None and not existing.done:
                return existing
            greeks = OptionGreeks() if contract.secType in ("OPT", "FOP") else None
            req = Request(self.request_ids.take(), "mktdata", contract, f"market data {label(contract)}",
                          quote=Quote(label(contract)), greeks=greeks, params={"generic_ticks": generic_ticks})
            if contract.conId:
                self._quotes[contract.conId] = req
            return self.open_request(req, lambda rid: self.conn.reqMktData(rid, contract, generic_ticks, False,
                                                                           False, []))
        return self.on_dispatch(subscribe)

    def snapshot(self, contract: Contract, on_done=None) -> Request:
        """One reqMktData snapshot (snapshot=True) with its own fresh Quote; never waits.

        `req.future` resolves with the Quote at tickSnapshotEnd, or fails with RequestError (e.g. 200, 354).
        `on_done(future)`, if given, is attached before the request is sent, so it always runs on the
        dispatch thread. From any thread; waiting on the future is for other threads (on_init), never
        for strategy callbacks.
        """
        def ask() -> Request:
            greeks = OptionGreeks() if contract.secType in ("OPT", "FOP") else None
            req = Request(self.request_ids.take(), "snapshot", contract, f"snapshot {label(contract)}",
                          quote=Quote(label(contract)), greeks=greeks, streaming=False,
                          future=DispatchFuture(self.dispatcher.in_dispatch_thread))
            if on_done is not None:
                req.future.add_done_callback(on_done)
            return self.open_request(req, lambda rid: self.conn.reqMktData(rid, contract, "", True, False, []))
        return self.on_dispatch(ask)

    def tick_by_tick(self, contract: Contract, tick_type: str = "BidAsk", capacity: int = 10_000) -> Request:
        if tick_type not in ("Last", "AllLast", "BidAsk", "MidPoint"):
            raise ValueError(f"tick type must be Last, AllLast, BidAsk or MidPoint, got {tick_type!r}")

        def subscribe() -> Request:
            req = Request(self.request_ids.take(), "ticks", contract, f"{tick_type} ticks {label(contract)}",
                          ticks=TickRing(capacity), params={"tick_type": tick_type})
            return self.open_request(req, lambda rid: self.conn.reqTickByTickData(rid, contract, tick_type, 0,
                                                                                  False))
        return self.on_dispatch(subscribe)

    def depth(self, contract: Contract, rows: int = 10, smart: bool = True) -> Request:
        def subscribe() -> Request:
            req = Request(self.request_ids.take(), "depth", contract, f"depth {label(contract)}",
                          book=OrderBook(rows), params={"rows": rows, "smart": smart})
            return self.open_request(req, lambda rid: self.conn.reqMktDepth(rid, contract, rows, smart, []))
        return self.on_dispatch(subscribe)

    def bars(self, contract: Contract, bar_size: str = "1 min", duration: str = "1 D", what: str = "TRADES",
             use_rth: bool = False, keep_up_to_date: bool = True, end: str = "") -> Request:
        """Historical bars (`end` "" = now); with keep_up_to_date the last bar keeps updating (a stream)."""
        def subscribe() -> Request:
            req = Request(self.request_ids.take(), "bars", contract, f"{bar_size} bars {label(contract)}",
                          bars=Bars(bar_size), streaming=keep_up_to_date, future=Future(),
                          params={"end": end, "duration": duration, "bar_size": bar_size, "what": what,
                                  "use_rth": bool(use_rth), "keep_up_to_date": keep_up_to_date})
            return self.open_request(req, lambda rid: self.conn.reqHistoricalData(
                rid, contract, end, duration, bar_size, what, int(use_rth), 1, keep_up_to_date, []))
        return self.on_dispatch(subscribe)

    def cancel(self, req: Request) -> None:
        self.on_dispatch(self._cancel, req)

    def _cancel(self, req: Request) -> None:
        if req.done or self.router.requests.get(req.req_id) is not req:
            return
        if not self._queued(req):                # TWS hears the cancel before its slot can be given to another
            self._send_cancel(req)
        self.router.finish(req.req_id)           # a queued request is dropped from the queue: never sent
        if req.kind == "mktdata" and req.contract is not None:
            self._quotes.pop(req.contract.conId, None)
        if req.kind == "snapshot" and req.future is not None:
            req.future.cancel()                  # whoever waits for it learns it will not come

    def _queued(self, req: Request) -> bool:
        """Still waiting in the request scheduler (never sent to TWS)."""
        return self.scheduler.waiting(req) is not None

    def _send_cancel(self, req: Request) -> None:
        if req.kind == "depth":
            self.conn.cancelMktDepth(req.req_id, bool(req.params.get("smart", True)))
        elif req.kind in CANCELLERS:
            getattr(self.conn, CANCELLERS[req.kind])(req.req_id)

    # --- after a reconnect ------------------------------------------------------------------------
    def resubscribe(self, data_only: bool = False) -> list[Request]:
        """Send every live subscription and unanswered read again, each with a fresh request id, onto the same
        Request and state objects (strategies keep their references). Dispatch thread only.

        After a new socket (`data_only=False`) everything is re-sent, the account updates too; after TWS's
        1101 "data lost" only market data (`data_only=True`). Books are cleared before new depth arrives;
        bars reload the same range and merge (the gap is filled, no bar duplicated); quotes stay marked stale
        until their farm reports OK (see ibframe.resilience)."""
        self.scheduler.reset()
        again = []
        for req in sorted(self.router.requests.values(), key=lambda r: r.req_id):
            if req.send is None or (data_only and req.kind not in DATA_KINDS):
                continue
            if data_only and req.streaming and req.sent and not self._queued(req):
                # the same socket: a line TWS served after its 1101 (a request still on its way then) would
                # otherwise stream on under the old id, unread, holding one of the account's lines
                self._send_cancel(req)
            self.router.rekey(req, self.request_ids.take())
            if req.book is not None:
                req.book.clear()
            if req.bars is not None:
                req.bars.resume()
            self.scheduler.submit(req)
            again.append(req)
        if self.account_subscribed and not data_only:
            self.conn.reqPositions()
            self.conn.reqAccountUpdates(True, self.account)
        if again:
            log.info("resubscribed %d request(s) with fresh ids: %s", len(again),
                     ", ".join(f"{r.subject} -> {r.req_id}" for r in again[:8]) + (" …" if len(again) > 8 else ""))
        return again

    # --- account --------------------------------------------------------------------------------
    def subscribe_account(self) -> None:
        """Positions and account values for the first managed account, kept current."""
        def send():
            self.account_subscribed = True
            self.conn.reqPositions()
            self.conn.reqAccountUpdates(True, self.account)
        self.on_dispatch(send)
