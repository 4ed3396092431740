"""The EWrapper that routes: every callback goes to the request, subscription or order it names.

Owns: the registry reqId → Request (what was asked, for whom, and the state object its data
updates), the classification and routing of errors, and readiness (nextValidId and
managedAccounts both seen). Order and account callbacks are handed to the order manager and
portfolio. Runs only on the dispatch thread. A callback for an unknown id is logged and
counted, never raised.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from ibapi.contract import Contract
from ibapi.wrapper import EWrapper

from .errors import ErrorClass, IBError, classify

log = logging.getLogger("ibframe.router")


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
        self.ready = threading.Event()
        self.connection_closed = threading.Event()
        self.unknown_ids = 0
        self.errors: list[IBError] = []

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
        return req

    def _lookup(self, req_id: int, callback: str) -> Request | None:
        req = self.requests.get(req_id)
        if req is None:
            self._unknown(req_id, callback)
        return req

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

    def bad_message(self, payload: bytes, exc: Exception) -> None:
        self._emit(IBError(-2, f"garbled message from TWS skipped ({type(exc).__name__}: {exc})", -1,
                           ErrorClass.INFO, self.clock.now(), "decoder"))

    # --- errors ---------------------------------------------------------------------------------------
    def error(self, reqId, errorTime, errorCode, errorString, advancedOrderRejectJson="") -> None:
        kind = classify(errorCode)
        req = self.requests.get(reqId) if reqId is not None and reqId >= 0 else None
        subject = req.subject if req else ""
        if req is None and self.orders is not None and reqId is not None and reqId >= 0:
            subject = self.orders.describe(reqId) or ""
            if subject:
                kind = ErrorClass.ORDER if kind is ErrorClass.REQUEST else kind
        err = IBError(errorCode, errorString, reqId if reqId is not None else -1, kind, self.clock.now(),
                      subject, advancedOrderRejectJson or "")
        level = logging.INFO if kind is ErrorClass.INFO else logging.WARNING
        log.log(level, "%s", err)
        if req is not None and kind is not ErrorClass.INFO:
            self._fail_request(req, err)
        elif kind is ErrorClass.ORDER and self.orders is not None:
            self.orders.on_error(err)
        self._emit(err)

    def _fail_request(self, req: Request, err: IBError) -> None:
        self.finish(req.req_id)
        if req.on_error is not None:
            req.on_error(err)
        if req.future is not None and not req.future.done():
            req.future.set_exception(RequestError(err))

    def _emit(self, err: IBError) -> None:
        self.errors.append(err)
        if len(self.errors) > 1000:
            del self.errors[:500]
        for hook in self.on_error_hooks:
            hook(err)

    # --- level 1 ------------------------------------------------------------------------------------
    # The streaming callbacks below look the request up and call its listeners inline (no _lookup or
    # notify call): they run for every tick, and are otherwise the same as _lookup + notify.
    def tickPrice(self, reqId, tickType, price, attrib) -> None:
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "tickPrice")
        if req.quote is not None:
            req.quote.on_tick_price(tickType, price, attrib, self.clock.now())
            for listener in req.listeners:
                listener(req)

    def tickSize(self, reqId, tickType, size) -> None:
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "tickSize")
        if req.quote is not None:
            req.quote.on_tick_size(tickType, size, self.clock.now())
            for listener in req.listeners:
                listener(req)

    def tickGeneric(self, reqId, tickType, value) -> None:
        req = self._lookup(reqId, "tickGeneric")
        if req and req.quote is not None:
            req.quote.on_tick_generic(tickType, value, self.clock.now())
            req.notify()

    def tickString(self, reqId, tickType, value) -> None:
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
        req = self._lookup(reqId, "tickOptionComputation")
        if req and req.greeks is not None:
            req.greeks.on_option_computation(tickType, tickAttrib, impliedVol, delta, optPrice, pvDividend,
                                             gamma, vega, theta, undPrice, self.clock.now())
            req.notify()

    # --- tick by tick -------------------------------------------------------------------------------
    def tickByTickAllLast(self, reqId, tickType, time, price, size, tickAttribLast, exchange,
                          specialConditions) -> None:
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "tickByTickAllLast")
        if req.ticks is not None:
            req.ticks.add_last(float(time), price, float(size), exchange, tickAttribLast.pastLimit,
                               tickAttribLast.unreported)
            for listener in req.listeners:
                listener(req)

    def tickByTickBidAsk(self, reqId, time, bidPrice, askPrice, bidSize, askSize, tickAttribBidAsk) -> None:
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "tickByTickBidAsk")
        if req.ticks is not None:
            req.ticks.add_bid_ask(float(time), bidPrice, askPrice, float(bidSize), float(askSize))
            for listener in req.listeners:
                listener(req)

    def tickByTickMidPoint(self, reqId, time, midPoint) -> None:
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "tickByTickMidPoint")
        if req.ticks is not None:
            req.ticks.add_midpoint(float(time), midPoint)
            for listener in req.listeners:
                listener(req)

    # --- depth ---------------------------------------------------------------------------------------
    def updateMktDepth(self, reqId, position, operation, side, price, size) -> None:
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "updateMktDepth")
        if req.book is not None:
            req.book.apply(position, operation, side, price, float(size))
            for listener in req.listeners:
                listener(req)

    def updateMktDepthL2(self, reqId, position, marketMaker, operation, side, price, size, isSmartDepth) -> None:
        req = self.requests.get(reqId)
        if req is None:
            return self._unknown(reqId, "updateMktDepthL2")
        if req.book is not None:
            req.book.apply(position, operation, side, price, float(size), marketMaker)
            for listener in req.listeners:
                listener(req)

    # --- bars ---------------------------------------------------------------------------------------
    def historicalData(self, reqId, bar) -> None:
        req = self._lookup(reqId, "historicalData")
        if req and req.bars is not None:
            req.bars.on_bar(bar)

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
        req = self._lookup(reqId, "historicalDataUpdate")
        if req and req.bars is not None:
            req.bars.on_update(bar)

    def realtimeBar(self, reqId, time, open_, high, low, close, volume, wap, count) -> None:
        req = self._lookup(reqId, "realtimeBar")
        if req and req.bars is not None:
            req.bars.on_realtime_bar(time, open_, high, low, close, float(volume), float(wap), count)

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

    # --- orders and account: delegated --------------------------------------------------------------
    def openOrder(self, orderId, contract, order, orderState) -> None:
        if self.orders is not None:
            self.orders.on_open_order(orderId, contract, order, orderState)

    def openOrderEnd(self) -> None:
        pass

    def orderStatus(self, orderId, status, filled, remaining, avgFillPrice, permId, parentId, lastFillPrice,
                    clientId, whyHeld, mktCapPrice) -> None:
        if self.orders is not None:
            self.orders.on_order_status(orderId, status, float(filled), float(remaining), avgFillPrice, permId,
                                        parentId, lastFillPrice, clientId, whyHeld)

    def execDetails(self, reqId, contract, execution) -> None:
        if self.orders is not None:
            self.orders.on_execution(contract, execution)

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

    def updatePortfolio(self, contract, position, marketPrice, marketValue, averageCost, unrealizedPNL,
                        realizedPNL, accountName) -> None:
        if self.portfolio is not None:
            self.portfolio.on_portfolio(contract, float(position), marketPrice, marketValue, averageCost,
                                        unrealizedPNL, realizedPNL, accountName)


class RequestError(RuntimeError):
    """A request TWS answered with an error; `.error` holds the IBError."""

    def __init__(self, error: IBError):
        super().__init__(str(error))
        self.error = error
