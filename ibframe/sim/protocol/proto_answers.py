"""Version-200 text answers -> protobuf answers (server -> client direction).

Owns: PROTO_SINCE (IN msg id -> first server version at which the simulator
sends that answer as protobuf) and ProtoAnswers.encode(fields) which turns one
answer, laid out exactly as ibapi's text decoder reads it at server version 200
(msg id first, then Python values), into (msg_id, protobuf body) such that
ibapi's Decoder.processProtoBuf(body, msg_id) makes the same wrapper callbacks
with the same arguments as Decoder.interpret(text fields, msg_id) at 200 (the
extra *ProtoBuf raw callbacks aside).

Method: the text fields are normalised to wire bytes, decoded by ibapi's own
text Decoder (serverVersion 200) into a recording wrapper, and each recorded
callback is turned into the protobuf message using object->proto builders
written here.  Cost (2-core box): ~20 µs TICK_PRICE, ~30 µs TICK_SIZE/ERR_MSG,
~420 µs OPEN_ORDER, ~180 µs CONTRACT_DATA (README, "Server versions").

Must never: open sockets, mutate the simulator's objects (it only reads the
fields), or edit ibapi.  encode() returns None for kinds with no protobuf
handler in ibapi (TICK_EFP, DELTA_NEUTRAL_VALIDATION, VERIFY_AND_AUTH_*) and
raises ProtoAnswerError when the text fields themselves do not decode.

PROTO_SINCE choices (rule: version at which the causing request goes protobuf):
  201 EXECUTION_DATA, EXECUTION_DATA_END, COMMISSION_AND_FEES_REPORT (reqExecutions
      is protobuf from 201; fills after placeOrder reuse the same messages) and
      ERR_MSG (errors answer every kind of request, the protobuf ErrorMessage is
      lossless for all five text fields, so it follows the first protobuf version).
  203 ORDER_STATUS, OPEN_ORDER, OPEN_ORDER_END, ORDER_BOUND; 204 COMPLETED_ORDER(S_END);
  205 CONTRACT_DATA, BOND_CONTRACT_DATA, CONTRACT_DATA_END;
  206 TICK_*, TICK_NEWS (caused by reqMktData generic tick 292), MARKET_DEPTH(_L2),
      MARKET_DATA_TYPE, TICK_REQ_PARAMS, REROUTE_MKT_DATA/DEPTH_REQ;
  207 account/position kinds incl. MANAGED_ACCTS (reqManagedAccts is 207);
  208 historical bars/ticks, REAL_TIME_BARS, HEAD_TIMESTAMP, HISTOGRAM_DATA,
      TICK_BY_TICK, HISTORICAL_SCHEDULE; 209 news + WSH; 210 scanner + PnL;
  211 RECEIVE_FA, REPLACE_FA_END; 212 REST_2 kinds; 213 NEXT_VALID_ID,
      CURRENT_TIME(_IN_MILLIS), MKT_DEPTH_EXCHANGES, VERIFY_*, DISPLAY_GROUP_*.

Documented differences (asserted in test_proto_answers.py):
  D1 NaN/inf/None are carried as-is; a Decimal size of NaN stays NaN.  Values the
     text decoder turns into UNSET_* are sent as absent fields or as the sentinel,
     whichever ibapi's protobuf decoder maps back to the same value.
  D2 OrderState margin strings (initMarginBefore...): the proto field is a double
     and ibapi prints it back with decimalMaxString/str(float): "12345.6" survives,
     "" -> "" but "1.7976931348623157E308" (TWS UNSET text) comes back as
     "1.7976931348623157e+308" and "100.00" as "100.0".
  D3 Contract.multiplier is a double on the wire: "100" ok, "0.10" -> "0.1".
  D4 Order.orderComboLegs per-leg prices ride on ComboLeg.perLegPrice; the
     protobuf decoder never rebuilds order.orderComboLegs (left empty).
  D5 Order attributes absent from the Order proto (auctionStrategy, basisPoints,
     basisPointsType) fall back to Order() defaults on the protobuf side.
  D6 TagValue lists (algoParams, smartComboRoutingParams, orderMiscOptions,
     secIdList) are proto maps: duplicate tags collapse and pair ORDER is lost
     (hash-seed dependent on ibapi's decoding side).
  D8 SMART_COMPONENTS: the text path hands smartComponents() a list of
     SmartComponent objects, the protobuf path a dict {bitNumber: (exchange,
     exchangeLetter)} (ibapi's own inconsistency; same content).
  D9 VERIFY_COMPLETED: text passes isSuccessful as the raw string ("true"),
     protobuf as a bool.
  D10 BOND_CONTRACT_DATA: the protobuf decoder also leaves the whole
     "maturity [time tz]" string in contract.lastTradeDateOrContractMonth (text
     leaves it ""); maturity/lastTradeTime/timeZoneId agree.
  D11 Lists the text decoder leaves as None when the count is 0 come back as []
     (Order.smartComboRoutingParams, ContractDetails.secIdList), and
     Order.usePriceMgmtAlgo / routeMarketableToBbo come back as int 0/1 instead
     of bool (equal values); int-vs-float zeros (evMultiplier, coupon) likewise.
  D7 Text strings are UTF-8 encoded by the normaliser; message kinds that ibapi
     decodes with "unicode-escape" (wrapper-signature kinds such as ACCT_VALUE,
     TICK_STRING) therefore see mojibake on the text path, and the protobuf copy
     reproduces that exact string (callbacks stay identical).
"""
from decimal import Decimal
import math
import threading

from ibapi.decoder import Decoder
from ibapi.message import IN
from ibapi.const import UNSET_DECIMAL, UNSET_DOUBLE, UNSET_INTEGER
from ibapi.protobuf import (
    TickPrice_pb2, TickSize_pb2, TickGeneric_pb2, TickString_pb2, TickOptionComputation_pb2,
    TickSnapshotEnd_pb2, TickReqParams_pb2, TickNews_pb2, MarketDataType_pb2, MarketDepth_pb2,
    MarketDepthL2_pb2, RerouteMarketDataRequest_pb2, RerouteMarketDepthRequest_pb2,
    OrderStatus_pb2, OpenOrder_pb2, OpenOrdersEnd_pb2, OrderBound_pb2, CompletedOrder_pb2,
    CompletedOrdersEnd_pb2, ErrorMessage_pb2, ExecutionDetails_pb2, ExecutionDetailsEnd_pb2,
    CommissionAndFeesReport_pb2, ContractData_pb2, ContractDataEnd_pb2, AccountValue_pb2,
    PortfolioValue_pb2, AccountUpdateTime_pb2, AccountDataEnd_pb2, ManagedAccounts_pb2, Position_pb2,
    PositionEnd_pb2, AccountSummary_pb2, AccountSummaryEnd_pb2, PositionMulti_pb2, PositionMultiEnd_pb2,
    AccountUpdateMulti_pb2, AccountUpdateMultiEnd_pb2, HistoricalData_pb2, HistoricalDataUpdate_pb2,
    HistoricalDataEnd_pb2, RealTimeBarTick_pb2, HeadTimestamp_pb2, HistogramData_pb2, HistoricalTicks_pb2,
    HistoricalTicksBidAsk_pb2, HistoricalTicksLast_pb2, TickByTickData_pb2, HistoricalSchedule_pb2,
    NewsBulletin_pb2, NewsArticle_pb2, NewsProviders_pb2, HistoricalNews_pb2, HistoricalNewsEnd_pb2,
    WshMetaData_pb2, WshEventData_pb2, ScannerParameters_pb2, ScannerData_pb2, PnL_pb2, PnLSingle_pb2,
    ReceiveFA_pb2, ReplaceFAEnd_pb2, SecDefOptParameter_pb2, SecDefOptParameterEnd_pb2,
    SoftDollarTiers_pb2, FamilyCodes_pb2, SymbolSamples_pb2, SmartComponents_pb2, MarketRule_pb2,
    UserInfo_pb2, NextValidId_pb2, CurrentTime_pb2, CurrentTimeInMillis_pb2, VerifyMessageApi_pb2,
    VerifyCompleted_pb2, DisplayGroupList_pb2, DisplayGroupUpdated_pb2, MarketDepthExchanges_pb2,
    MarketDepthData_pb2,
    HistogramDataEntry_pb2, NewsProvider_pb2, SoftDollarTier_pb2, FamilyCode_pb2, SmartComponent_pb2,
    PriceIncrement_pb2, DepthMarketDataDescription_pb2,
)

from .proto_objects import (Recorder, contract_pb as _contract, order_pb as _order, order_state_pb as _order_state,
                               execution_pb as _execution, contract_details_pb as _contract_details, bar_pb as _bar,
                               htick_pb as _htick, htick_ba_pb as _htick_ba, htick_last_pb as _htick_last, dec_str as _dec,
                               set_present as _set)

TEXT_SERVER_VERSION = 200


class ProtoAnswerError(ValueError):
    def __init__(self, msg_id, reason):
        self.msg_id, self.reason = msg_id, reason
        super().__init__(f"answer msg id {msg_id}: {reason}")


def _since(version, *ids):
    return {i: version for i in ids}


PROTO_SINCE = {
    **_since(201, IN.EXECUTION_DATA, IN.EXECUTION_DATA_END, IN.COMMISSION_AND_FEES_REPORT, IN.ERR_MSG),
    **_since(203, IN.ORDER_STATUS, IN.OPEN_ORDER, IN.OPEN_ORDER_END, IN.ORDER_BOUND),
    **_since(204, IN.COMPLETED_ORDER, IN.COMPLETED_ORDERS_END),
    **_since(205, IN.CONTRACT_DATA, IN.BOND_CONTRACT_DATA, IN.CONTRACT_DATA_END),
    **_since(206, IN.TICK_PRICE, IN.TICK_SIZE, IN.TICK_OPTION_COMPUTATION, IN.TICK_GENERIC, IN.TICK_STRING,
             IN.TICK_SNAPSHOT_END, IN.TICK_NEWS, IN.MARKET_DEPTH, IN.MARKET_DEPTH_L2, IN.MARKET_DATA_TYPE,
             IN.TICK_REQ_PARAMS, IN.REROUTE_MKT_DATA_REQ, IN.REROUTE_MKT_DEPTH_REQ),
    **_since(207, IN.ACCT_VALUE, IN.PORTFOLIO_VALUE, IN.ACCT_UPDATE_TIME, IN.ACCT_DOWNLOAD_END, IN.MANAGED_ACCTS,
             IN.POSITION_DATA, IN.POSITION_END, IN.ACCOUNT_SUMMARY, IN.ACCOUNT_SUMMARY_END, IN.POSITION_MULTI,
             IN.POSITION_MULTI_END, IN.ACCOUNT_UPDATE_MULTI, IN.ACCOUNT_UPDATE_MULTI_END),
    **_since(208, IN.HISTORICAL_DATA, IN.HISTORICAL_DATA_UPDATE, IN.HISTORICAL_DATA_END, IN.REAL_TIME_BARS,
             IN.HEAD_TIMESTAMP, IN.HISTOGRAM_DATA, IN.HISTORICAL_TICKS, IN.HISTORICAL_TICKS_BID_ASK,
             IN.HISTORICAL_TICKS_LAST, IN.TICK_BY_TICK, IN.HISTORICAL_SCHEDULE),
    **_since(209, IN.NEWS_BULLETINS, IN.NEWS_ARTICLE, IN.NEWS_PROVIDERS, IN.HISTORICAL_NEWS,
             IN.HISTORICAL_NEWS_END, IN.WSH_META_DATA, IN.WSH_EVENT_DATA),
    **_since(210, IN.SCANNER_PARAMETERS, IN.SCANNER_DATA, IN.PNL, IN.PNL_SINGLE),
    **_since(211, IN.RECEIVE_FA, IN.REPLACE_FA_END),
    **_since(212, IN.SECURITY_DEFINITION_OPTION_PARAMETER, IN.SECURITY_DEFINITION_OPTION_PARAMETER_END,
             IN.SOFT_DOLLAR_TIERS, IN.FAMILY_CODES, IN.SYMBOL_SAMPLES, IN.SMART_COMPONENTS, IN.MARKET_RULE,
             IN.USER_INFO),
    **_since(213, IN.NEXT_VALID_ID, IN.CURRENT_TIME, IN.CURRENT_TIME_IN_MILLIS, IN.MKT_DEPTH_EXCHANGES,
             IN.VERIFY_MESSAGE_API, IN.VERIFY_COMPLETED, IN.DISPLAY_GROUP_LIST, IN.DISPLAY_GROUP_UPDATED),
}


# ------------------------------------------------------------ normaliser
def to_wire(v) -> bytes:
    """One Python value -> the bytes a text encoder puts between NULs."""
    t = type(v)
    if t is bytes:
        return v
    if t is str:
        return v.encode("utf-8")
    if v is None:
        return b""
    if t is bool:
        return b"1" if v else b"0"
    if t is int:
        return str(v).encode()
    if t is float:
        if math.isinf(v):
            return b"Infinity" if v > 0 else b"-Infinity"
        return str(v).encode()
    if t is Decimal:
        return b"" if v == UNSET_DECIMAL else str(v).encode()
    return str(v).encode("utf-8")


def text_fields(fields):
    """(msg_id, bytes fields without the id) as Decoder.interpret wants them at 200."""
    return int(fields[0]), [to_wire(f) for f in fields[1:]]


# --------------------------------------------------- callback -> proto
def _one(calls, name):
    for n, a in calls:
        if n == name:
            return a
    raise ProtoAnswerError(0, f"text decoder made no {name} callback")


def _b_tick_price(calls):
    r, tt, price, attrib = _one(calls, "tickPrice")
    p = TickPrice_pb2.TickPrice(reqId=r, tickType=tt, price=price,
                                attrMask=(1 if attrib.canAutoExecute else 0) | (2 if attrib.pastLimit else 0) | (4 if attrib.preOpen else 0))
    for n, a in calls:
        if n == "tickSize" and a[2] != UNSET_DECIMAL:
            p.size = str(a[2])
    return p


def _b_tick_opt(calls):
    r, tt, attr, iv, delta, opt, pv, gamma, vega, theta, und = _one(calls, "tickOptionComputation")
    return _set(TickOptionComputation_pb2.TickOptionComputation(reqId=r, tickType=tt, tickAttrib=attr),
                impliedVol=iv, delta=delta, optPrice=opt, pvDividend=pv, gamma=gamma, vega=vega, theta=theta,
                undPrice=und)


def _b_scanner(calls):
    p = ScannerData_pb2.ScannerData()
    for n, a in calls:
        if n == "scannerData":
            r, rank, cd, dist, bench, proj, legs = a
            e = p.scannerDataElement.add(rank=rank, marketName=cd.marketName, distance=dist, benchmark=bench,
                                         projection=proj, comboKey=legs)
            e.contract.CopyFrom(_contract(cd.contract))
        elif n == "scannerDataEnd":
            p.reqId = a[0]
    return p


def _b_tick_by_tick(calls):
    n, a = calls[0]
    p = TickByTickData_pb2.TickByTickData(reqId=a[0])
    if n == "tickByTickAllLast":
        _, tt, t, price, size, attrib, exch, spec = a
        p.tickType = tt
        hp = _set(p.historicalTickLast, time=t, price=price, exchange=exch, specialConditions=spec, size=_dec(size))
        hp.tickAttribLast.pastLimit, hp.tickAttribLast.unreported = attrib.pastLimit, attrib.unreported
    elif n == "tickByTickBidAsk":
        _, t, bp, ap, bs, as_, attrib = a
        p.tickType = 3
        hp = _set(p.historicalTickBidAsk, time=t, priceBid=bp, priceAsk=ap, sizeBid=_dec(bs), sizeAsk=_dec(as_))
        hp.tickAttribBidAsk.bidPastLow, hp.tickAttribBidAsk.askPastHigh = attrib.bidPastLow, attrib.askPastHigh
    elif n == "tickByTickMidPoint":
        p.tickType = 4
        p.historicalTickMidPoint.time, p.historicalTickMidPoint.price = a[1], a[2]
    return p


def _b_symbol_samples(calls):
    r, descs = _one(calls, "symbolSamples")
    p = SymbolSamples_pb2.SymbolSamples(reqId=r)
    for d in descs:
        dp = p.contractDescriptions.add()
        dp.contract.CopyFrom(_contract(d.contract))
        dp.derivativeSecTypes.extend(d.derivativeSecTypes or ())
    return p


def _b_hist_schedule(calls):
    r, s, e, tz, sessions = _one(calls, "historicalSchedule")
    p = HistoricalSchedule_pb2.HistoricalSchedule(reqId=r, startDateTime=s, endDateTime=e, timeZone=tz)
    for x in sessions:
        p.historicalSessions.add(startDateTime=x.startDateTime, endDateTime=x.endDateTime, refDate=x.refDate)
    return p


def _comm(calls):
    (rep,) = _one(calls, "commissionAndFeesReport")
    return CommissionAndFeesReport_pb2.CommissionAndFeesReport(
        execId=rep.execId, commissionAndFees=rep.commissionAndFees, currency=rep.currency,
        realizedPNL=rep.realizedPNL, bondYield=rep.yield_, yieldRedemptionDate=str(rep.yieldRedemptionDate))


def _simple(cls, cb, *names, fix=None):
    """Builder for kinds whose single callback maps positionally onto proto fields."""
    def build(calls):
        args = _one(calls, cb)
        kw = {}
        for n, v in zip(names, args):
            if n is None or v is None:
                continue
            if isinstance(v, Decimal):
                if v == UNSET_DECIMAL:
                    continue
                v = str(v)
            kw[n] = v
        return cls(**kw)
    return build


def _ends(cls, cb, *names):
    return _simple(cls, cb, *names)


B = {
    IN.TICK_PRICE: _b_tick_price,
    IN.TICK_SIZE: _simple(TickSize_pb2.TickSize, "tickSize", "reqId", "tickType", "size"),
    IN.TICK_GENERIC: _simple(TickGeneric_pb2.TickGeneric, "tickGeneric", "reqId", "tickType", "value"),
    IN.TICK_STRING: _simple(TickString_pb2.TickString, "tickString", "reqId", "tickType", "value"),
    IN.TICK_OPTION_COMPUTATION: _b_tick_opt,
    IN.TICK_SNAPSHOT_END: _ends(TickSnapshotEnd_pb2.TickSnapshotEnd, "tickSnapshotEnd", "reqId"),
    IN.TICK_REQ_PARAMS: lambda calls: (lambda r, mt, bbo, sp: _set(
        TickReqParams_pb2.TickReqParams(reqId=r, bboExchange=bbo, snapshotPermissions=sp),
        minTick=None if mt == UNSET_DOUBLE else repr(mt)))(*_one(calls, "tickReqParams")),
    IN.TICK_NEWS: _simple(TickNews_pb2.TickNews, "tickNews", "reqId", "timestamp", "providerCode", "articleId",
                          "headline", "extraData"),
    IN.MARKET_DATA_TYPE: _simple(MarketDataType_pb2.MarketDataType, "marketDataType", "reqId", "marketDataType"),
    IN.MARKET_DEPTH: lambda calls: (lambda r, pos, op, side, price, size: MarketDepth_pb2.MarketDepth(
        reqId=r, marketDepthData=_set(MarketDepthData_pb2.MarketDepthData(
            position=pos, operation=op, side=side, price=price), size=_dec(size))))(*_one(calls, "updateMktDepth")),
    IN.MARKET_DEPTH_L2: lambda calls: (lambda r, pos, mm, op, side, price, size, smart: MarketDepthL2_pb2.MarketDepthL2(
        reqId=r, marketDepthData=_set(MarketDepthData_pb2.MarketDepthData(
            position=pos, marketMaker=mm, operation=op, side=side, price=price, isSmartDepth=smart),
            size=_dec(size))))(*_one(calls, "updateMktDepthL2")),
    IN.REROUTE_MKT_DATA_REQ: _simple(RerouteMarketDataRequest_pb2.RerouteMarketDataRequest, "rerouteMktDataReq",
                                     "reqId", "conId", "exchange"),
    IN.REROUTE_MKT_DEPTH_REQ: _simple(RerouteMarketDepthRequest_pb2.RerouteMarketDepthRequest, "rerouteMktDepthReq",
                                      "reqId", "conId", "exchange"),
    IN.ORDER_STATUS: _simple(OrderStatus_pb2.OrderStatus, "orderStatus", "orderId", "status", "filled", "remaining",
                             "avgFillPrice", "permId", "parentId", "lastFillPrice", "clientId", "whyHeld", "mktCapPrice"),
    IN.OPEN_ORDER: lambda calls: (lambda oid, c, o, s: OpenOrder_pb2.OpenOrder(
        orderId=oid, contract=_contract(c, o), order=_order(o), orderState=_order_state(s)))(*_one(calls, "openOrder")),
    IN.OPEN_ORDER_END: lambda calls: OpenOrdersEnd_pb2.OpenOrdersEnd(),
    IN.ORDER_BOUND: _simple(OrderBound_pb2.OrderBound, "orderBound", "permId", "clientId", "orderId"),
    IN.COMPLETED_ORDER: lambda calls: (lambda c, o, s: CompletedOrder_pb2.CompletedOrder(
        contract=_contract(c, o), order=_order(o), orderState=_order_state(s)))(*_one(calls, "completedOrder")),
    IN.COMPLETED_ORDERS_END: lambda calls: CompletedOrdersEnd_pb2.CompletedOrdersEnd(),
    IN.ERR_MSG: _simple(ErrorMessage_pb2.ErrorMessage, "error", "id", "errorTime", "errorCode", "errorMsg",
                        "advancedOrderRejectJson"),
    IN.EXECUTION_DATA: lambda calls: (lambda r, c, e: ExecutionDetails_pb2.ExecutionDetails(
        reqId=r, contract=_contract(c), execution=_execution(e)))(*_one(calls, "execDetails")),
    IN.EXECUTION_DATA_END: _ends(ExecutionDetailsEnd_pb2.ExecutionDetailsEnd, "execDetailsEnd", "reqId"),
    IN.COMMISSION_AND_FEES_REPORT: _comm,
    IN.CONTRACT_DATA: lambda calls: (lambda r, cd: ContractData_pb2.ContractData(
        reqId=r, **dict(zip(("contract", "contractDetails"), _contract_details(cd, False)))))(
        *_one(calls, "contractDetails")),
    IN.BOND_CONTRACT_DATA: lambda calls: (lambda r, cd: ContractData_pb2.ContractData(
        reqId=r, **dict(zip(("contract", "contractDetails"), _contract_details(cd, True)))))(
        *_one(calls, "bondContractDetails")),
    IN.CONTRACT_DATA_END: _ends(ContractDataEnd_pb2.ContractDataEnd, "contractDetailsEnd", "reqId"),
    IN.ACCT_VALUE: _simple(AccountValue_pb2.AccountValue, "updateAccountValue", "key", "value", "currency",
                           "accountName"),
    IN.PORTFOLIO_VALUE: lambda calls: (lambda c, pos, mp, mv, ac, u, r, acct: _set(PortfolioValue_pb2.PortfolioValue(
        contract=_contract(c), marketPrice=mp, marketValue=mv, averageCost=ac, unrealizedPNL=u, realizedPNL=r,
        accountName=acct), position=_dec(pos)))(*_one(calls, "updatePortfolio")),
    IN.ACCT_UPDATE_TIME: _simple(AccountUpdateTime_pb2.AccountUpdateTime, "updateAccountTime", "timeStamp"),
    IN.ACCT_DOWNLOAD_END: _ends(AccountDataEnd_pb2.AccountDataEnd, "accountDownloadEnd", "accountName"),
    IN.MANAGED_ACCTS: _simple(ManagedAccounts_pb2.ManagedAccounts, "managedAccounts", "accountsList"),
    IN.POSITION_DATA: lambda calls: (lambda acct, c, pos, ac: _set(Position_pb2.Position(
        account=acct, contract=_contract(c), avgCost=ac), position=_dec(pos)))(*_one(calls, "position")),
    IN.POSITION_END: lambda calls: PositionEnd_pb2.PositionEnd(),
    IN.ACCOUNT_SUMMARY: _simple(AccountSummary_pb2.AccountSummary, "accountSummary", "reqId", "account", "tag",
                                "value", "currency"),
    IN.ACCOUNT_SUMMARY_END: _ends(AccountSummaryEnd_pb2.AccountSummaryEnd, "accountSummaryEnd", "reqId"),
    IN.POSITION_MULTI: lambda calls: (lambda r, acct, mc, c, pos, ac: _set(PositionMulti_pb2.PositionMulti(
        reqId=r, account=acct, modelCode=mc, contract=_contract(c), avgCost=ac), position=_dec(pos)))(
        *_one(calls, "positionMulti")),
    IN.POSITION_MULTI_END: _ends(PositionMultiEnd_pb2.PositionMultiEnd, "positionMultiEnd", "reqId"),
    IN.ACCOUNT_UPDATE_MULTI: _simple(AccountUpdateMulti_pb2.AccountUpdateMulti, "accountUpdateMulti", "reqId",
                                     "account", "modelCode", "key", "value", "currency"),
    IN.ACCOUNT_UPDATE_MULTI_END: _ends(AccountUpdateMultiEnd_pb2.AccountUpdateMultiEnd, "accountUpdateMultiEnd",
                                       "reqId"),
    IN.HISTORICAL_DATA: lambda calls: HistoricalData_pb2.HistoricalData(
        reqId=calls[0][1][0] if calls else UNSET_INTEGER,
        historicalDataBars=[_bar(a[1]) for n, a in calls if n == "historicalData"]),
    IN.HISTORICAL_DATA_UPDATE: lambda calls: (lambda r, b: HistoricalDataUpdate_pb2.HistoricalDataUpdate(
        reqId=r, historicalDataBar=_bar(b)))(*_one(calls, "historicalDataUpdate")),
    IN.HISTORICAL_DATA_END: _simple(HistoricalDataEnd_pb2.HistoricalDataEnd, "historicalDataEnd", "reqId",
                                    "startDateStr", "endDateStr"),
    IN.REAL_TIME_BARS: _simple(RealTimeBarTick_pb2.RealTimeBarTick, "realtimeBar", "reqId", "time", "open", "high",
                               "low", "close", "volume", "WAP", "count"),
    IN.HEAD_TIMESTAMP: _simple(HeadTimestamp_pb2.HeadTimestamp, "headTimestamp", "reqId", "headTimestamp"),
    IN.HISTOGRAM_DATA: lambda calls: (lambda r, items: HistogramData_pb2.HistogramData(
        reqId=r, histogramDataEntries=[_set(HistogramDataEntry_pb2.HistogramDataEntry(
            price=i.price), size=_dec(i.size)) for i in items]))(*_one(calls, "histogramData")),
    IN.HISTORICAL_TICKS: lambda calls: (lambda r, ticks, done: HistoricalTicks_pb2.HistoricalTicks(
        reqId=r, isDone=done, historicalTicks=[_htick(t) for t in ticks]))(*_one(calls, "historicalTicks")),
    IN.HISTORICAL_TICKS_BID_ASK: lambda calls: (lambda r, ticks, done: HistoricalTicksBidAsk_pb2.HistoricalTicksBidAsk(
        reqId=r, isDone=done, historicalTicksBidAsk=[_htick_ba(t) for t in ticks]))(
        *_one(calls, "historicalTicksBidAsk")),
    IN.HISTORICAL_TICKS_LAST: lambda calls: (lambda r, ticks, done: HistoricalTicksLast_pb2.HistoricalTicksLast(
        reqId=r, isDone=done, historicalTicksLast=[_htick_last(t) for t in ticks]))(
        *_one(calls, "historicalTicksLast")),
    IN.TICK_BY_TICK: _b_tick_by_tick,
    IN.HISTORICAL_SCHEDULE: _b_hist_schedule,
    IN.NEWS_BULLETINS: _simple(NewsBulletin_pb2.NewsBulletin, "updateNewsBulletin", "newsMsgId", "newsMsgType",
                               "newsMessage", "originatingExch"),
    IN.NEWS_ARTICLE: _simple(NewsArticle_pb2.NewsArticle, "newsArticle", "reqId", "articleType", "articleText"),
    IN.NEWS_PROVIDERS: lambda calls: NewsProviders_pb2.NewsProviders(newsProviders=[
        NewsProvider_pb2.NewsProvider(providerCode=x.code, providerName=x.name)
        for x in _one(calls, "newsProviders")[0]]),
    IN.HISTORICAL_NEWS: _simple(HistoricalNews_pb2.HistoricalNews, "historicalNews", "reqId", "time", "providerCode",
                                "articleId", "headline"),
    IN.HISTORICAL_NEWS_END: _simple(HistoricalNewsEnd_pb2.HistoricalNewsEnd, "historicalNewsEnd", "reqId", "hasMore"),
    IN.WSH_META_DATA: _simple(WshMetaData_pb2.WshMetaData, "wshMetaData", "reqId", "dataJson"),
    IN.WSH_EVENT_DATA: _simple(WshEventData_pb2.WshEventData, "wshEventData", "reqId", "dataJson"),
    IN.SCANNER_PARAMETERS: _simple(ScannerParameters_pb2.ScannerParameters, "scannerParameters", "xml"),
    IN.SCANNER_DATA: _b_scanner,
    IN.PNL: _simple(PnL_pb2.PnL, "pnl", "reqId", "dailyPnL", "unrealizedPnL", "realizedPnL"),
    IN.PNL_SINGLE: _simple(PnLSingle_pb2.PnLSingle, "pnlSingle", "reqId", "position", "dailyPnL", "unrealizedPnL",
                           "realizedPnL", "value"),
    IN.RECEIVE_FA: _simple(ReceiveFA_pb2.ReceiveFA, "receiveFA", "faDataType", "xml"),
    IN.REPLACE_FA_END: _simple(ReplaceFAEnd_pb2.ReplaceFAEnd, "replaceFAEnd", "reqId", "text"),
    IN.SECURITY_DEFINITION_OPTION_PARAMETER: lambda calls: (
        lambda r, ex, ucid, tc, mult, exps, strikes: SecDefOptParameter_pb2.SecDefOptParameter(
            reqId=r, exchange=ex, underlyingConId=ucid, tradingClass=tc, multiplier=mult,
            expirations=list(exps), strikes=list(strikes)))(*_one(calls, "securityDefinitionOptionParameter")),
    IN.SECURITY_DEFINITION_OPTION_PARAMETER_END: _ends(SecDefOptParameterEnd_pb2.SecDefOptParameterEnd,
                                                       "securityDefinitionOptionParameterEnd", "reqId"),
    IN.SOFT_DOLLAR_TIERS: lambda calls: (lambda r, tiers: SoftDollarTiers_pb2.SoftDollarTiers(reqId=r, softDollarTiers=[
        SoftDollarTier_pb2.SoftDollarTier(name=t.name, value=t.val, displayName=t.displayName)
        for t in tiers]))(*_one(calls, "softDollarTiers")),
    IN.FAMILY_CODES: lambda calls: FamilyCodes_pb2.FamilyCodes(familyCodes=[
        FamilyCode_pb2.FamilyCode(accountId=f.accountID, familyCode=f.familyCodeStr)
        for f in _one(calls, "familyCodes")[0]]),
    IN.SYMBOL_SAMPLES: _b_symbol_samples,
    IN.SMART_COMPONENTS: lambda calls: (lambda r, m: SmartComponents_pb2.SmartComponents(reqId=r, smartComponents=[
        SmartComponent_pb2.SmartComponent(bitNumber=x.bitNumber, exchange=x.exchange, exchangeLetter=x.exchangeLetter)
        for x in m]))(*_one(calls, "smartComponents")),
    IN.MARKET_RULE: lambda calls: (lambda mid, incs: MarketRule_pb2.MarketRule(marketRuleId=mid, priceIncrements=[
        PriceIncrement_pb2.PriceIncrement(lowEdge=i.lowEdge, increment=i.increment)
        for i in incs]))(*_one(calls, "marketRule")),
    IN.USER_INFO: _simple(UserInfo_pb2.UserInfo, "userInfo", "reqId", "whiteBrandingId"),
    IN.NEXT_VALID_ID: _simple(NextValidId_pb2.NextValidId, "nextValidId", "orderId"),
    IN.CURRENT_TIME: _simple(CurrentTime_pb2.CurrentTime, "currentTime", "currentTime"),
    IN.CURRENT_TIME_IN_MILLIS: _simple(CurrentTimeInMillis_pb2.CurrentTimeInMillis, "currentTimeInMillis",
                                       "currentTimeInMillis"),
    IN.VERIFY_MESSAGE_API: _simple(VerifyMessageApi_pb2.VerifyMessageApi, "verifyMessageAPI", "apiData"),
    IN.VERIFY_COMPLETED: lambda calls: (lambda ok, txt: VerifyCompleted_pb2.VerifyCompleted(
        isSuccessful=str(ok).lower() in ("true", "1"), errorText=txt))(*_one(calls, "verifyCompleted")),
    IN.DISPLAY_GROUP_LIST: _simple(DisplayGroupList_pb2.DisplayGroupList, "displayGroupList", "reqId", "groups"),
    IN.DISPLAY_GROUP_UPDATED: _simple(DisplayGroupUpdated_pb2.DisplayGroupUpdated, "displayGroupUpdated", "reqId",
                                      "contractInfo"),
    IN.MKT_DEPTH_EXCHANGES: lambda calls: MarketDepthExchanges_pb2.MarketDepthExchanges(depthMarketDataDescriptions=[
        DepthMarketDataDescription_pb2.DepthMarketDataDescription(
            exchange=d.exchange, secType=d.secType, listingExch=d.listingExch, serviceDataType=d.serviceDataType,
            aggGroup=d.aggGroup) for d in _one(calls, "mktDepthExchanges")[0]]),
}


class ProtoAnswers:
    """Encoder for outgoing answers; one instance may be shared (thread-safe)."""

    def __init__(self):
        self._rec = Recorder()
        self._decoder = Decoder(self._rec, TEXT_SERVER_VERSION)
        self._lock = threading.Lock()

    def decode_text(self, fields):
        """Run ibapi's v200 text decoder on the answer; returns recorded callbacks."""
        msg_id, wire = text_fields(fields)
        with self._lock:
            self._rec.calls = calls = []
            try:
                self._decoder.interpret(wire, msg_id)
            except Exception as ex:
                raise ProtoAnswerError(msg_id, f"text fields do not decode at v200: {type(ex).__name__}: {ex}") from None
        return msg_id, calls

    def encode(self, fields):
        """(msg_id, protobuf body) for one v200-layout answer, or None if no protobuf form."""
        msg_id = int(fields[0])
        build = B.get(msg_id)
        if build is None:
            return None
        _, calls = self.decode_text(fields)
        try:
            proto = build(calls)
        except ProtoAnswerError as ex:
            raise ProtoAnswerError(msg_id, ex.reason) from None
        return msg_id, proto.SerializeToString()


_default = None


def encode(fields):
    """Module-level convenience wrapper around a shared ProtoAnswers()."""
    global _default
    if _default is None:
        _default = ProtoAnswers()
    return _default.encode(fields)
