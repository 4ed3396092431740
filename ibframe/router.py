"""The EWrapper that routes: every callback goes to the request, subscription or order it names.

Owns: the registry reqId → Request (what was asked, for whom, and the state object its data
updates), the classification and routing of errors, and readiness (nextValidId and
managedAccounts both seen). Order and account callbacks are handed to the order manager and
portfolio. Runs only on the dispatch thread. A callback for an unknown id is logged and
counted, never raised.

Bad input: market data carrying a non-finite number (or a value a state object refuses: a
negative depth size, a bar whose high is below its low…) is dropped before it changes any
state and counted in `bad_values`; with a connection attached (`frame_fault_hooks`), it is
the connection that counts the frame once, by reason, and logs it (ibframe.connection).
ibapi's own decoder reports the frames it cannot read as errors 505 (unknown message id)
and 508 (bad message) with reqId -1: those are handed to the same hooks, never logged here
as if TWS had sent them.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from math import isfinite
from typing import Any, Callable

from ibapi.contract import Contract
from ibapi.errors import BAD_MESSAGE, UNKNOWN_ID
from ibapi.wrapper import EWrapper

from .errors import ErrorClass, IBError, classify

log = logging.getLogger("ibframe.router")

_INF = float("inf")


def _finite_bar(bar) -> bool:
    """OHLC and volume of an ibapi BarData are finite numbers (volume/wap may be Decimal)."""
    try:
        return all(isfinite(v) for v in (bar.open, bar.high, bar.low, bar.close, bar.volume))
    except (TypeError, ValueError):
        return False

def _applied(state, apply, *args) -> bool:
    """Apply one update to a state object that counts what it refuses (`rejected`); False when it refused it."""
    refused = state.rejected
    apply(*args)
    return state.rejected == refused


# data-farm notices (informational for requests, but the supervisor marks data stale / fresh on them)
FARM_NOTICES = frozenset({2103, 2104, 2105, 2106, 2107, 2108, 2157, 2158})

# errors ibapi's Decoder raises itself about a frame it could not read (reqId -1): reason for the frame counters
DECODER_FAULTS = {UNKNOWN_ID.code(): ("unknown_id", UNKNOWN_ID.msg()),
                  BAD_MESSAGE.code(): ("garbled", BAD_MESSAGE.msg())}

# price tick type -> the size tick type ibapi's Decoder delivers with it (processTickPriceMsg; decoding.py has the same)
_SIZE_AFTER_PRICE = {1: 0, 2: 3, 4: 5, 66: 69, 67: 70, 68: 71}


@dataclass(slots=True)
class Request:
    """One request in flight or one live subscription."""
    req_id: int
    kind: str                              # mktdata, ticks, depth, bars, details, optparams, rtbars, calc…
    contract: Contract | None
    subject: str                           # human description for logs and errors
    quote: Any = None
    greeks: Any = None
    ticks: Any = None
    book: Any = None
    bars: Any = None
    results: list = field(default_factory=list)
    future: Future | None = None
    on_error: Callable[[IBError], None] | None = None
    streaming: bool = True
    done: bool = False
    listeners: list = field(default_factory=list)   # called with the Request after each data update
    params: dict = field(default_factory=dict)      # what was asked (bar size, rows, tick type…): for pacing
    send: Callable[[int], None] | None = None       # sends this request under a given id (first time and after
                                                     # a reconnect, with a fresh id): set by Engine.open_request
    sent: int = 0                                    # times it was sent (2+ = resubscribed)

    def notify(self) -> None:
        for listener in self.listeners:
            listener(self)


class Router(EWrapper):
    def __init__(self, clock, on_error: Callable[[IBError], None] | None = None):
        super().__init__()
        self.clock = clock
        self.requests: dict[int, Request] = {}
        self.on_error_hooks: list[Callable[[IBError], None]] = [on_error] if on_error else []
        self.orders = None                 # set by the engine: handles order callbacks
        self.portfolio = None              # set by the engine: handles account/position callbacks
        self.accounts: list[str] = []
        self.next_valid_id: int | None = None
        self.next_valid_id_hooks: list[Callable[[int], None]] = []
        self.current_time_waiters: list[Future] = []   # reqCurrentTime has no id: its next answer serves them all
        self.ready = threading.Event()
        self.connection_closed = threading.Event()
        self.unknown_ids = 0
        self.bad_values = 0                # market data with NaN / inf numbers, dropped at the door
        # told (reason, detail) of every frame this wrapper refused ("bad_value") or ibapi's decoder reported
        # unreadable (505 "unknown_id", 508 "garbled"): the connection counts and logs each frame once
        self.frame_fault_hooks: list[Callable[[str, str], None]] = []
        self._dropped_price: tuple | None = None   # (reqId, size tick type) of a refused price: its size goes too
        self.errors: list[IBError] = []
        # called with a Request when it ends or leaves its id (finish, rekey): the request scheduler frees its slot
        self.finish_hooks: list[Callable[[Request], None]] = []
        # asked before an error fails a request: True = the hook took it over (e.g. requeued after a pacing
        # error such as 162, 10190, 309, 101), so the request stays live and its future stays open
        self.retry_hooks: list[Callable[[Request, IBError], bool]] = []
        # connection-level notices (1100, 1101, 1102, 2103-2110, 326…), for the connection supervisor
        self.connection_hooks: list[Callable[[IBError], None]] = []
        self.closed_hooks: list[Callable[[], None]] = []     # the socket closed (after connectionClosed)

    # --- registry ---------------------------------------------------------------------------------
    def register(self, request: Request) -> Request:
        if request.req_id in self.requests:
            raise RuntimeError(f"request id {request.req_id} is already in use; ids must never be reused")
        self.requests[request.req_id] = request
        return request

    def finish(self, req_id: int) -> Request | None:
        """Forget a request (its stream ended or was cancelled); late callbacks for it are ignored."""
        req = self.requests.pop(req_id, None)
        if req is not None:
            req.done = True
            for hook in self.finish_hooks:
                hook(req)
        return req

    def rekey(self, req: Request, new_id: int) -> None:
        """Move a live request to a fresh id (a resubscription): callbacks for the old id are ignored from
        now on, and the same Request (and its state objects and listeners) answers to the new one."""
        if new_id in self.requests:
            raise RuntimeError(f"request id {new_id} is already in use; ids must never be reused")
        if self.requests.get(req.req_id) is req:
            del self.requests[req.req_id]
            for hook in self.finish_hooks:
                hook(req)                  # the old id's slot (pacing) is free
        req.req_id = new_id
        req.done = False
        self.requests[new_id] = req

    def _lookup(self, req_id: int, callback: str) -> Request | None:
        req = self.requests.get(req_id)
        if req is None:
            self._unknown(req_id, callback)
        return req

    def _bad_value(self, callback: str, req_id: int, what: str) -> None:
        """Market data a state object must not take (a non-finite number, an impossible bar or depth row):
        dropped, counted here and, through frame_fault_hooks, as one bad frame of the connection (which logs
        it); logged here only when no connection listens."""
        self.bad_values += 1
        detail = f"{callback} for request {req_id} carried {what}: dropped (state objects keep their last good values)"
        if self.frame_fault_hooks:
            for hook in self.frame_fault_hooks:
                hook("bad_value", detail)
        else:
            log.warning("%s", detail)

    def _unknown(self, req_id: int, callback: str) -> None:
        self.unknown_ids += 1
        log.debug("%s for unknown request id %s ignored", callback, req_id)

    # --- connection ---------------------------------------------------------------------------------
    def nextValidId(self, orderId: int) -> None:
        self.next_valid_id = orderId
        for hook in self.next_valid_id_hooks:
            hook(orderId)
        self._check_ready()

    def managedAccounts(self, accountsList: str) -> None:
        self.accounts = [a for a in accountsList.split(",") if a]
        self._check_ready()

    def _check_ready(self) -> None:
        if self.next_valid_id is not None and self.accounts:
            self.ready.set()

    def connectionClosed(self) -> None:
        self.connection_closed.set()
        self.ready.clear()
        for hook in self.closed_hooks:
            hook()

    def connection_opened(self) -> None:
        """A new socket is up (a reconnect): wait for nextValidId and managedAccounts again."""
        self.connection_closed.clear()
        self.ready.clear()
        self.next_valid_id = None

    def bad_message(self, payload: bytes, exc: Exception) -> None:
        """A frame the connection could not use: one INFO error (-2) to everyone who hears errors. `exc` says why;
        its `reason` attribute (ibframe.connection.BadFrame) names the counter, else the frame was garbled."""
        reason = getattr(exc, "reason", "garbled")
        self._emit(IBError(-2, f"{reason} message from TWS skipped ({type(exc).__name__}: {exc})", -1,
                           ErrorClass.INFO, self.clock.now(), "decoder"))

    # --- errors ---------------------------------------------------------------------------------------
    def error(self, reqId, errorTime, errorCode, errorString, advancedOrderRejectJson="") -> None:
        fault = DECODER_FAULTS.get(errorCode)
        if fault is not None and reqId == -1 and self.frame_fault_hooks and str(errorString).startswith(fault[1]):
            for hook in self.frame_fault_hooks:      # ibapi's decoder about a frame: counted once, by the connection
                hook(fault[0], str(errorString)[:200])
            return
        kind = classify(errorCode)
        req = self.requests.get(reqId) if reqId is not None and reqId >= 0 else None
        subject = req.subject if req else ""
        for_order = False                  # names one of our orders (its warnings are kept on the trade too)
        if req is None and self.orders is not None and reqId is not None and reqId >= 0:
            subject = self.orders.describe(reqId) or ""
            if subject:
                for_order = True
                kind = ErrorClass.ORDER if kind is ErrorClass.REQUEST else kind
        err = IBError(errorCode, errorString, reqId if reqId is not None else -1, kind, self.clock.now(),
                      subject, advancedOrderRejectJson or "")
        if req is not None and kind is not ErrorClass.INFO and any(hook(req, err) for hook in self.retry_hooks):
            log.info("%s — the request waits and is sent again under a fresh id (ibframe.pacing)", err)
            self.errors.append(err)        # kept in the record; strategies never see a limit the scheduler absorbed
            return
        level = logging.INFO if kind is ErrorClass.INFO else logging.WARNING
        log.log(level, "%s", err)
        if kind is ErrorClass.CONNECTION or errorCode in FARM_NOTICES:
            for hook in self.connection_hooks:
                hook(err)
        if req is not None and kind is not ErrorClass.INFO:
            self._fail_request(req, err)
        elif self.orders is not None and (kind is ErrorClass.ORDER or (for_order and kind is ErrorClass.INFO)):
            self.orders.on_error(err)
        self._emit(err)

    def _fail_request(self, req: Request, err: IBError) -> None:
        self.finish(req.req_id)
        if req.on_error is not None:
            req.on_error(err)
        if req.future is not None and not req.future.done():
            req.future.set_exception(RequestError(err))

    def report(self, err: IBError) -> None:
        """An event ibframe itself raises (a lost connection, a reconnect) to everyone who hears errors."""
        log.log(logging.INFO if err.kind is ErrorClass.INFO else logging.WARNING, "%s", err)
        self._emit(err)

    def _emit(self, err: IBError) -> None:
        self.errors.append(err)
        if len(self.errors) > 1000:
            del self.errors[:500]
        for hook in self.on_error_hooks:
            hook(err)

    # --- level 1 ------------------------------------------------------------------------------------
    # The streaming callbacks below look the request up and call its listeners inline (no _lookup or
    # notify call): they run for every tick, and are otherwise the same as _lookup + notify.
    #
    # A TICK_PRICE of BID, ASK or LAST (or a delayed twin) carries a size: ibapi's Decoder (text and
    # protobuf) and ibframe's FastDecoder both call tickPrice and then, for the same message,
    # tickSize of the paired size type. tickPrice holds such a price in `_held`; the tickSize that
    # follows applies both to the Quote at once (Quote.on_price_size) and the listeners run once,
    # so a strategy never sees a new price with the previous size. A held price that is not followed
    # by its size (only a direct caller can do that) is applied alone by the next tick callback.
    _held: tuple | None = None          # (reqId, size tick type, Request, price tick type, price, attrib)

    def tickPrice(self, reqId, tickType, price, attrib) -> None:
        if self._held is not None:
            self._release_held()
        self._dropped_price = None
        if not -_INF < price < _INF:
            size_type = _SIZE_AFTER_PRICE.get(tickType)
            if size_type is not None:            # the size of this frame follows: dropped with it, counted once
                self._dropped_price = (reqId, size_type)
            return self._bad_value("tickPrice", reqId, f"price {price!r}")
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "tickPrice")
        if req.quote is not None:
            size_type = _SIZE_AFTER_PRICE.get(tickType)
            if size_type is not None:
                self._held = (reqId, size_type, req, tickType, price, attrib)
                return
            req.quote.on_tick_price(tickType, price, attrib, self.clock.now())
            for listener in req.listeners:
                listener(req)

    def tickSize(self, reqId, tickType, size) -> None:
        dropped = self._dropped_price
        if dropped is not None:
            self._dropped_price = None
            if dropped[0] == reqId and dropped[1] == tickType:
                return                             # its price was refused: never half a print
        if not isfinite(size):
            held = self._held
            if held is not None and not (held[0] == reqId and held[1] == tickType):
                self._release_held()           # another line's price: it stands on its own
            self._held = None                  # this size's own price is dropped with it: never half a print
            return self._bad_value("tickSize", reqId, f"size {size!r}")
        held = self._held
        if held is not None:
            self._held = None
            if held[0] == reqId and held[1] == tickType:
                req = held[2]
                req.quote.on_price_size(held[3], held[4], held[5], tickType, size, self.clock.now())
                for listener in req.listeners:
                    listener(req)
                return
            self._apply_held(held)
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "tickSize")
        if req.quote is not None:
            req.quote.on_tick_size(tickType, size, self.clock.now())
            for listener in req.listeners:
                listener(req)

    def _release_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._apply_held(held)

    def _apply_held(self, held: tuple) -> None:
        """A held price whose size never came: apply it on its own."""
        req = held[2]
        req.quote.on_tick_price(held[3], held[4], held[5], self.clock.now())
        req.notify()

    def tickGeneric(self, reqId, tickType, value) -> None:
        if self._held is not None:
            self._release_held()
        if not -_INF < value < _INF:
            return self._bad_value("tickGeneric", reqId, f"value {value!r}")
        req = self._lookup(reqId, "tickGeneric")
        if req and req.quote is not None:
            req.quote.on_tick_generic(tickType, value, self.clock.now())
            req.notify()

    def tickString(self, reqId, tickType, value) -> None:
        if self._held is not None:
            self._release_held()
        req = self._lookup(reqId, "tickString")
        if req and req.quote is not None:
            req.quote.on_tick_string(tickType, value, self.clock.now())
            req.notify()

    def tickSnapshotEnd(self, reqId) -> None:
        req = self.finish(reqId)
        if req and req.future is not None and not req.future.done():
            req.future.set_result(req.quote)

    def marketDataType(self, reqId, marketDataType) -> None:
        req = self._lookup(reqId, "marketDataType")
        if req and req.quote is not None:
            req.quote.market_data_type = marketDataType

    def tickReqParams(self, tickerId, minTick, bboExchange, snapshotPermissions) -> None:
        pass

    def tickOptionComputation(self, reqId, tickType, tickAttrib, impliedVol, delta, optPrice, pvDividend,
                              gamma, vega, theta, undPrice) -> None:
        numbers = (impliedVol, delta, optPrice, pvDividend, gamma, vega, theta, undPrice)
        if not all(v is None or -_INF < v < _INF for v in numbers):
            return self._bad_value("tickOptionComputation", reqId, f"a non-finite value in {numbers!r}")
        req = self._lookup(reqId, "tickOptionComputation")
        if req and req.greeks is not None:
            req.greeks.on_option_computation(tickType, tickAttrib, impliedVol, delta, optPrice, pvDividend,
                                             gamma, vega, theta, undPrice, self.clock.now())
            req.notify()

    # --- tick by tick -------------------------------------------------------------------------------
    def tickByTickAllLast(self, reqId, tickType, time, price, size, tickAttribLast, exchange,
                          specialConditions) -> None:
        if not (isfinite(price) and isfinite(size)):
            return self._bad_value("tickByTickAllLast", reqId, f"price {price!r} size {size!r}")
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "tickByTickAllLast")
        if req.ticks is not None:
            if not req.ticks.add_last(float(time), price, float(size), exchange, tickAttribLast.pastLimit,
                                      tickAttribLast.unreported):
                return self._bad_value("tickByTickAllLast", reqId, f"time {time!r} price {price!r} size {size!r}")
            for listener in req.listeners:
                listener(req)

    def tickByTickBidAsk(self, reqId, time, bidPrice, askPrice, bidSize, askSize, tickAttribBidAsk) -> None:
        if not (isfinite(bidPrice) and isfinite(askPrice) and isfinite(bidSize) and isfinite(askSize)):
            return self._bad_value("tickByTickBidAsk", reqId, f"{bidPrice!r}/{askPrice!r} {bidSize!r}/{askSize!r}")
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "tickByTickBidAsk")
        if req.ticks is not None:
            if not req.ticks.add_bid_ask(float(time), bidPrice, askPrice, float(bidSize), float(askSize)):
                return self._bad_value("tickByTickBidAsk", reqId, f"sizes {bidSize!r}/{askSize!r}")
            for listener in req.listeners:
                listener(req)

    def tickByTickMidPoint(self, reqId, time, midPoint) -> None:
        if not isfinite(midPoint):
            return self._bad_value("tickByTickMidPoint", reqId, f"midpoint {midPoint!r}")
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "tickByTickMidPoint")
        if req.ticks is not None:
            if not req.ticks.add_midpoint(float(time), midPoint):
                return self._bad_value("tickByTickMidPoint", reqId, f"time {time!r} midpoint {midPoint!r}")
            for listener in req.listeners:
                listener(req)

    # --- depth ---------------------------------------------------------------------------------------
    def updateMktDepth(self, reqId, position, operation, side, price, size) -> None:
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "updateMktDepth")
        if req.book is not None:
            if not _applied(req.book, req.book.apply, position, operation, side, price, float(size)):
                return self._bad_value("updateMktDepth", reqId, f"row price {price!r} size {size!r}")
            for listener in req.listeners:
                listener(req)

    def updateMktDepthL2(self, reqId, position, marketMaker, operation, side, price, size, isSmartDepth) -> None:
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "updateMktDepthL2")
        if req.book is not None:
            if not _applied(req.book, req.book.apply, position, operation, side, price, float(size), marketMaker):
                return self._bad_value("updateMktDepthL2", reqId, f"row price {price!r} size {size!r}")
            for listener in req.listeners:
                listener(req)

    # --- bars ---------------------------------------------------------------------------------------
    def historicalData(self, reqId, bar) -> None:
        if not _finite_bar(bar):
            return self._bad_value("historicalData", reqId, f"bar {bar}")
        req = self._lookup(reqId, "historicalData")
        if req and req.bars is not None:
            self._to_bars(req.bars, req.bars.on_bar, bar, "historicalData", reqId)

    def historicalDataEnd(self, reqId, start, end) -> None:
        req = self._lookup(reqId, "historicalDataEnd")
        if req is None:
            return
        if req.bars is not None:
            req.bars.on_end(start, end)
        if not req.streaming:
            self.finish(reqId)
        if req.future is not None and not req.future.done():
            req.future.set_result(req.bars)

    def historicalDataUpdate(self, reqId, bar) -> None:
        if not _finite_bar(bar):
            return self._bad_value("historicalDataUpdate", reqId, f"bar {bar}")
        req = self._lookup(reqId, "historicalDataUpdate")
        if req and req.bars is not None:
            self._to_bars(req.bars, req.bars.on_update, bar, "historicalDataUpdate", reqId)

    def realtimeBar(self, reqId, time, open_, high, low, close, volume, wap, count) -> None:
        if not all(isfinite(v) for v in (open_, high, low, close, volume)):
            return self._bad_value("realtimeBar", reqId, f"{open_!r} {high!r} {low!r} {close!r} {volume!r}")
        req = self._lookup(reqId, "realtimeBar")
        if req and req.bars is not None:
            bars = req.bars
            if not _applied(bars, bars.on_realtime_bar, time, open_, high, low, close, float(volume), float(wap),
                            count):
                self._bad_value("realtimeBar", reqId, f"an impossible bar {open_!r} {high!r} {low!r} {close!r} "
                                                       f"volume {volume!r}")

    def _to_bars(self, bars, apply, bar, callback: str, req_id: int) -> None:
        """Hand a bar to its series; one the series refuses (high below low, negative volume…) is a bad value."""
        if not _applied(bars, apply, bar):
            self._bad_value(callback, req_id, f"an impossible bar {bar}")

    # --- reference data ------------------------------------------------------------------------------
    def contractDetails(self, reqId, contractDetails) -> None:
        req = self._lookup(reqId, "contractDetails")
        if req:
            req.results.append(contractDetails)

    bondContractDetails = contractDetails

    def contractDetailsEnd(self, reqId) -> None:
        self._complete(reqId)

    def securityDefinitionOptionParameter(self, reqId, exchange, underlyingConId, tradingClass, multiplier,
                                          expirations, strikes) -> None:
        req = self._lookup(reqId, "securityDefinitionOptionParameter")
        if req:
            req.results.append({"exchange": exchange, "underlyingConId": underlyingConId,
                                "tradingClass": tradingClass, "multiplier": multiplier,
                                "expirations": sorted(expirations), "strikes": sorted(strikes)})

    def securityDefinitionOptionParameterEnd(self, reqId) -> None:
        self._complete(reqId)

    def _complete(self, req_id: int) -> None:
        req = self.finish(req_id)
        if req and req.future is not None and not req.future.done():
            req.future.set_result(req.results)

    def currentTime(self, time) -> None:
        log.debug("TWS time %s", time)
        waiters, self.current_time_waiters = self.current_time_waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(float(time))

    # --- orders and account: delegated --------------------------------------------------------------
    def openOrder(self, orderId, contract, order, orderState) -> None:
        if self.orders is not None:
            self.orders.on_open_order(orderId, contract, order, orderState)

    def openOrderEnd(self) -> None:
        if self.orders is not None:
            self.orders.on_open_order_end()

    def completedOrder(self, contract, order, orderState) -> None:
        if self.orders is not None:
            self.orders.on_completed_order(contract, order, orderState)

    def completedOrdersEnd(self) -> None:
        if self.orders is not None:
            self.orders.on_completed_orders_end()

    def orderStatus(self, orderId, status, filled, remaining, avgFillPrice, permId, parentId, lastFillPrice,
                    clientId, whyHeld, mktCapPrice) -> None:
        if self.orders is not None:
            self.orders.on_order_status(orderId, status, float(filled), float(remaining), avgFillPrice, permId,
                                        parentId, lastFillPrice, clientId, whyHeld)

    def execDetails(self, reqId, contract, execution) -> None:
        if self.orders is not None:
            # -1: TWS reports it as it happens; a request id: an answer to reqExecutions (a reconciliation)
            self.orders.on_execution(contract, execution, late=reqId != -1)

    def commissionAndFeesReport(self, commissionAndFeesReport) -> None:
        if self.orders is not None:
            self.orders.on_commission(commissionAndFeesReport)

    def position(self, account, contract, position, avgCost) -> None:
        if self.portfolio is not None:
            self.portfolio.on_position(account, contract, float(position), avgCost)

    def updateAccountValue(self, key, val, currency, accountName) -> None:
        if self.portfolio is not None:
            self.portfolio.on_account_value(key, val, currency, accountName)

    def accountSummary(self, reqId, account, tag, value, currency) -> None:
        if self.portfolio is not None:
            self.portfolio.on_account_value(tag, value, currency, account)
        # --- account summary subscriptions (risk: margin monitor, PDT guard) ---------------------------
        # A registered reqAccountSummary request gets each row as its latest result: results holds
        # exactly one (account, tag, value, currency) while its listeners run.
        req = self.requests.get(reqId)
        if req is not None and req.kind == "acctsummary":
            req.results[:] = [(account, tag, value, currency)]
            req.notify()

    def accountSummaryEnd(self, reqId) -> None:
        req = self.requests.get(reqId)
        if req is not None and req.kind == "acctsummary":
            req.results.clear()
            req.notify()                       # listeners see no row: the download is complete
            if req.future is not None and not req.future.done():
                req.future.set_result(True)

    def updatePortfolio(self, contract, position, marketPrice, marketValue, averageCost, unrealizedPNL,
                        realizedPNL, accountName) -> None:
        if self.portfolio is not None:
            self.portfolio.on_portfolio(contract, float(position), marketPrice, marketValue, averageCost,
                                        unrealizedPNL, realizedPNL, accountName)

    def execDetailsEnd(self, reqId) -> None:
        if self.orders is not None:
            self.orders.on_execution_end(reqId)


class RequestError(RuntimeError):
    """A request TWS answered with an error; `.error` holds the IBError."""

    def __init__(self, error: IBError):
        super().__init__(str(error))
        self.error = error
