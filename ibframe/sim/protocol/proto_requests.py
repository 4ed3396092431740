"""Protobuf request -> version-200 text fields (client -> server direction).

Owns: `to_text_request(msg_id, body)`, which turns one protobuf request body
sent by the ibapi client (real OUT id, i.e. wire id minus 200) into the list of
text fields ibapi's EClient would have written for the same call at server
version 200 (msg id first, as a string).  Method: parse the body with the
matching `ibapi.protobuf` class, rebuild the ibapi objects/arguments, and replay
the call on a private EClient whose server version is 200 and whose connection
only captures frames.

Must never: open sockets, touch the simulator's state, crash the server on a
bad body (raises ProtoRequestError / ProtoOnlyRequest instead), or edit ibapi.

Documented differences (protobuf form drops or changes information; the
fields produced are what ibapi would have written for the *reconstructed* call):
  * order.transmit: createOrderProto only writes it when True; an absent field
    is therefore read as False (the only possible meaning for an ibapi sender).
  * Other falsy values are omitted by the client and come back as the ibapi
    default, which for every other field equals the falsy value sent, except:
      - Contract.multiplier travels as a double: "100" -> 100.0 -> "100";
        "0.10" comes back as "0.1" (floatMaxString).  Non-numeric multipliers
        cannot be sent as protobuf at all (the client raises).
      - Order.orderComboLegs (per-leg prices) ride on ComboLeg.perLegPrice; if
        no leg carries a price the list is rebuilt empty, else one entry per
        leg (UNSET_DOUBLE where a leg has none).
      - Order.auctionStrategy, basisPoints, basisPointsType are not in the
        Order proto: they come back as defaults (0 / UNSET_DOUBLE / UNSET_INTEGER).
      - Order.discretionaryAmt is an int attribute carried as a double: a
        whole float (1.0) comes back as int (1); fractions stay floats.
      - Order.totalQuantity goes through decimalMaxString: Decimal("100.0")
        comes back as Decimal("100").
  * TagValue lists (algoParams, smartComboRoutingParams, orderMiscOptions,
    mktDataOptions, chartOptions, ...) are protobuf maps: duplicate tags
    collapse to the last value and the ORDER of the pairs is not preserved
    (upb map iteration order depends on the hash seed), so multi-entry lists
    may come out permuted in the text fields.
  * START_API: the text form carries clientId and optionalCapabilities only.
"""
from ibapi.client import EClient
from ibapi.wrapper import EWrapper
from ibapi.message import OUT
from ibapi.contract import Contract, ComboLeg, DeltaNeutralContract
from ibapi.order import Order, OrderComboLeg
from ibapi.order_cancel import OrderCancel
from ibapi.softdollartier import SoftDollarTier
from ibapi.execution import ExecutionFilter
from ibapi.scanner import ScannerSubscription
from ibapi.common import WshEventData
from ibapi.const import UNSET_DOUBLE
from ibapi.decoder_utils import decodeConditions
from ibapi.protobuf import (
    PlaceOrderRequest_pb2 as _PlaceOrder, CancelOrderRequest_pb2 as _CancelOrder,
    GlobalCancelRequest_pb2 as _GlobalCancel, ExecutionRequest_pb2 as _Exec,
    OpenOrdersRequest_pb2 as _Open, AllOpenOrdersRequest_pb2 as _AllOpen,
    AutoOpenOrdersRequest_pb2 as _AutoOpen, CompletedOrdersRequest_pb2 as _Completed,
    ContractDataRequest_pb2 as _CD, MarketDataRequest_pb2 as _MD, CancelMarketData_pb2 as _CMD,
    MarketDepthRequest_pb2 as _MDep, CancelMarketDepth_pb2 as _CMDep,
    MarketDataTypeRequest_pb2 as _MDT, AccountDataRequest_pb2 as _AD,
    ManagedAccountsRequest_pb2 as _MA, PositionsRequest_pb2 as _Pos, CancelPositions_pb2 as _CPos,
    AccountSummaryRequest_pb2 as _AS, CancelAccountSummary_pb2 as _CAS,
    PositionsMultiRequest_pb2 as _PM, CancelPositionsMulti_pb2 as _CPM,
    AccountUpdatesMultiRequest_pb2 as _AUM, CancelAccountUpdatesMulti_pb2 as _CAUM,
    HistoricalDataRequest_pb2 as _HD, CancelHistoricalData_pb2 as _CHD,
    RealTimeBarsRequest_pb2 as _RTB, CancelRealTimeBars_pb2 as _CRTB,
    HeadTimestampRequest_pb2 as _HT, CancelHeadTimestamp_pb2 as _CHT,
    HistogramDataRequest_pb2 as _HG, CancelHistogramData_pb2 as _CHG,
    HistoricalTicksRequest_pb2 as _HTk, TickByTickRequest_pb2 as _TBT, CancelTickByTick_pb2 as _CTBT,
    NewsBulletinsRequest_pb2 as _NB, CancelNewsBulletins_pb2 as _CNB,
    NewsArticleRequest_pb2 as _NA, NewsProvidersRequest_pb2 as _NP,
    HistoricalNewsRequest_pb2 as _HN, WshMetaDataRequest_pb2 as _WM, CancelWshMetaData_pb2 as _CWM,
    WshEventDataRequest_pb2 as _WE, CancelWshEventData_pb2 as _CWE,
    ScannerParametersRequest_pb2 as _SP, ScannerSubscriptionRequest_pb2 as _SS,
    CancelScannerSubscription_pb2 as _CSS, PnLRequest_pb2 as _PnL, CancelPnL_pb2 as _CPnL,
    PnLSingleRequest_pb2 as _PnLS, CancelPnLSingle_pb2 as _CPnLS,
    FARequest_pb2 as _FA, FAReplace_pb2 as _FAR, ExerciseOptionsRequest_pb2 as _Ex,
    CalculateImpliedVolatilityRequest_pb2 as _CIV, CancelCalculateImpliedVolatility_pb2 as _CCIV,
    CalculateOptionPriceRequest_pb2 as _COP, CancelCalculateOptionPrice_pb2 as _CCOP,
    SecDefOptParamsRequest_pb2 as _SDO, SoftDollarTiersRequest_pb2 as _SDT,
    FamilyCodesRequest_pb2 as _FC, MatchingSymbolsRequest_pb2 as _MS,
    SmartComponentsRequest_pb2 as _SC, MarketRuleRequest_pb2 as _MR, UserInfoRequest_pb2 as _UI,
    IdsRequest_pb2 as _Ids, CurrentTimeRequest_pb2 as _CT, CurrentTimeInMillisRequest_pb2 as _CTM,
    StartApiRequest_pb2 as _SA, SetServerLogLevelRequest_pb2 as _LL,
    VerifyRequest_pb2 as _VR, VerifyMessageRequest_pb2 as _VM,
    QueryDisplayGroupsRequest_pb2 as _QDG, SubscribeToGroupEventsRequest_pb2 as _SGE,
    UpdateDisplayGroupRequest_pb2 as _UDG, UnsubscribeFromGroupEventsRequest_pb2 as _UGE,
    MarketDepthExchangesRequest_pb2 as _MDE,
)

from .proto_objects import proto_to_obj, tagvalues_from_map

TEXT_SERVER_VERSION = 200

#: requests that exist only as protobuf (no text form at server version 200)
PROTO_ONLY = {
    OUT.CANCEL_CONTRACT_DATA: "cancelContractData",
    OUT.CANCEL_HISTORICAL_TICKS: "cancelHistoricalTicks",
    OUT.REQ_CONFIG: "reqConfig",
    OUT.UPDATE_CONFIG: "updateConfig",
}


class ProtoRequestError(ValueError):
    """The body could not be parsed / converted (answer with error 320/321)."""

    def __init__(self, msg_id, reason):
        self.msg_id = msg_id
        self.reason = reason
        super().__init__(f"protobuf request msg id {msg_id}: {reason}")


class ProtoOnlyRequest(Exception):
    """The request has no text equivalent at server version 200."""

    def __init__(self, msg_id, name):
        self.msg_id = msg_id
        self.name = name
        super().__init__(f"request {name} (msg id {msg_id}) exists only as protobuf; no text form at v200")


# ---------------------------------------------------------------- rebuilders
def _contract(p):
    c = proto_to_obj(p, Contract(), {"primaryExch": "primaryExchange"})
    legs = []
    for lp in p.comboLegs:
        legs.append(proto_to_obj(lp, ComboLeg(), {"shortSalesSlot": "shortSaleSlot"}))
    c.comboLegs = legs
    if p.HasField("deltaNeutralContract"):
        c.deltaNeutralContract = proto_to_obj(p.deltaNeutralContract, DeltaNeutralContract())
    return c


def _order(op, cp, ap=None):
    o = proto_to_obj(op, Order())
    if not op.HasField("transmit"):
        o.transmit = False           # client writes transmit only when True
    for name in ("usePriceMgmtAlgo", "seekPriceImprovement", "routeMarketableToBbo"):
        if op.HasField(name):
            setattr(o, name, bool(getattr(op, name)))
    if op.algoParams:
        o.algoParams = tagvalues_from_map(op.algoParams)
    if op.smartComboRoutingParams:
        o.smartComboRoutingParams = tagvalues_from_map(op.smartComboRoutingParams)
    if op.orderMiscOptions:
        o.orderMiscOptions = tagvalues_from_map(op.orderMiscOptions)
    if op.conditions:
        o.conditions = decodeConditions(op)
    if op.HasField("softDollarTier"):
        s = op.softDollarTier
        o.softDollarTier = SoftDollarTier(s.name, s.value, s.displayName)
    if cp is not None and any(lp.HasField("perLegPrice") for lp in cp.comboLegs):
        legs = []
        for lp in cp.comboLegs:
            ocl = OrderComboLeg()
            ocl.price = lp.perLegPrice if lp.HasField("perLegPrice") else UNSET_DOUBLE
            legs.append(ocl)
        o.orderComboLegs = legs
    if ap is not None:
        proto_to_obj(ap, o)
    return o


def _cancel(p):
    oc = OrderCancel()
    if p.HasField("orderCancel"):
        proto_to_obj(p.orderCancel, oc)
    return oc


def _tv(pmap):
    return tagvalues_from_map(pmap)


def _g(p, name, default):
    return getattr(p, name) if p.HasField(name) else default


def _exec_filter(p):
    f = ExecutionFilter()
    if p.HasField("executionFilter"):
        proto_to_obj(p.executionFilter, f)
        if p.executionFilter.specificDates:
            f.specificDates = list(p.executionFilter.specificDates)
    return f


def _scanner(p):
    s = ScannerSubscription()
    sp = p.scannerSubscription
    proto_to_obj(sp, s)
    return s, _tv(sp.scannerSubscriptionOptions), _tv(sp.scannerSubscriptionFilterOptions)


def _start_api(c, p):
    c.clientId = _g(p, "clientId", 0)
    c.optCapab = _g(p, "optionalCapabilities", "")
    c.startApi()


def _wsh_event(p):
    w = WshEventData()
    proto_to_obj(p, w)
    return w


# msg id -> (proto class, replay(client, parsed proto))
_R = OUT
SPECS = {
    _R.PLACE_ORDER: (_PlaceOrder.PlaceOrderRequest, lambda c, p: c.placeOrder(
        _g(p, "orderId", 0), _contract(p.contract), _order(p.order, p.contract,
                                                           p.attachedOrders if p.HasField("attachedOrders") else None))),
    _R.CANCEL_ORDER: (_CancelOrder.CancelOrderRequest, lambda c, p: c.cancelOrder(_g(p, "orderId", 0), _cancel(p))),
    _R.REQ_GLOBAL_CANCEL: (_GlobalCancel.GlobalCancelRequest, lambda c, p: c.reqGlobalCancel(_cancel(p))),
    _R.REQ_EXECUTIONS: (_Exec.ExecutionRequest, lambda c, p: c.reqExecutions(_g(p, "reqId", 0), _exec_filter(p))),
    _R.REQ_OPEN_ORDERS: (_Open.OpenOrdersRequest, lambda c, p: c.reqOpenOrders()),
    _R.REQ_ALL_OPEN_ORDERS: (_AllOpen.AllOpenOrdersRequest, lambda c, p: c.reqAllOpenOrders()),
    _R.REQ_AUTO_OPEN_ORDERS: (_AutoOpen.AutoOpenOrdersRequest, lambda c, p: c.reqAutoOpenOrders(p.autoBind)),
    _R.REQ_COMPLETED_ORDERS: (_Completed.CompletedOrdersRequest, lambda c, p: c.reqCompletedOrders(p.apiOnly)),
    _R.REQ_CONTRACT_DATA: (_CD.ContractDataRequest, lambda c, p: c.reqContractDetails(
        _g(p, "reqId", 0), _contract(p.contract))),
    _R.REQ_MKT_DATA: (_MD.MarketDataRequest, lambda c, p: c.reqMktData(
        _g(p, "reqId", 0), _contract(p.contract), p.genericTickList, p.snapshot, p.regulatorySnapshot,
        _tv(p.marketDataOptions))),
    _R.CANCEL_MKT_DATA: (_CMD.CancelMarketData, lambda c, p: c.cancelMktData(_g(p, "reqId", 0))),
    _R.REQ_MKT_DEPTH: (_MDep.MarketDepthRequest, lambda c, p: c.reqMktDepth(
        _g(p, "reqId", 0), _contract(p.contract), p.numRows, p.isSmartDepth, _tv(p.marketDepthOptions))),
    _R.CANCEL_MKT_DEPTH: (_CMDep.CancelMarketDepth, lambda c, p: c.cancelMktDepth(_g(p, "reqId", 0), p.isSmartDepth)),
    _R.REQ_MARKET_DATA_TYPE: (_MDT.MarketDataTypeRequest, lambda c, p: c.reqMarketDataType(p.marketDataType)),
    _R.REQ_ACCT_DATA: (_AD.AccountDataRequest, lambda c, p: c.reqAccountUpdates(p.subscribe, p.acctCode)),
    _R.REQ_MANAGED_ACCTS: (_MA.ManagedAccountsRequest, lambda c, p: c.reqManagedAccts()),
    _R.REQ_POSITIONS: (_Pos.PositionsRequest, lambda c, p: c.reqPositions()),
    _R.CANCEL_POSITIONS: (_CPos.CancelPositions, lambda c, p: c.cancelPositions()),
    _R.REQ_ACCOUNT_SUMMARY: (_AS.AccountSummaryRequest, lambda c, p: c.reqAccountSummary(
        _g(p, "reqId", 0), p.group, p.tags)),
    _R.CANCEL_ACCOUNT_SUMMARY: (_CAS.CancelAccountSummary, lambda c, p: c.cancelAccountSummary(_g(p, "reqId", 0))),
    _R.REQ_POSITIONS_MULTI: (_PM.PositionsMultiRequest, lambda c, p: c.reqPositionsMulti(
        _g(p, "reqId", 0), p.account, p.modelCode)),
    _R.CANCEL_POSITIONS_MULTI: (_CPM.CancelPositionsMulti, lambda c, p: c.cancelPositionsMulti(_g(p, "reqId", 0))),
    _R.REQ_ACCOUNT_UPDATES_MULTI: (_AUM.AccountUpdatesMultiRequest, lambda c, p: c.reqAccountUpdatesMulti(
        _g(p, "reqId", 0), p.account, p.modelCode, p.ledgerAndNLV)),
    _R.CANCEL_ACCOUNT_UPDATES_MULTI: (_CAUM.CancelAccountUpdatesMulti,
                                      lambda c, p: c.cancelAccountUpdatesMulti(_g(p, "reqId", 0))),
    _R.REQ_HISTORICAL_DATA: (_HD.HistoricalDataRequest, lambda c, p: c.reqHistoricalData(
        _g(p, "reqId", 0), _contract(p.contract), p.endDateTime, p.duration, p.barSizeSetting, p.whatToShow,
        int(p.useRTH), p.formatDate, p.keepUpToDate, _tv(p.chartOptions))),
    _R.CANCEL_HISTORICAL_DATA: (_CHD.CancelHistoricalData, lambda c, p: c.cancelHistoricalData(_g(p, "reqId", 0))),
    _R.REQ_REAL_TIME_BARS: (_RTB.RealTimeBarsRequest, lambda c, p: c.reqRealTimeBars(
        _g(p, "reqId", 0), _contract(p.contract), p.barSize, p.whatToShow, p.useRTH, _tv(p.realTimeBarsOptions))),
    _R.CANCEL_REAL_TIME_BARS: (_CRTB.CancelRealTimeBars, lambda c, p: c.cancelRealTimeBars(_g(p, "reqId", 0))),
    _R.REQ_HEAD_TIMESTAMP: (_HT.HeadTimestampRequest, lambda c, p: c.reqHeadTimeStamp(
        _g(p, "reqId", 0), _contract(p.contract), p.whatToShow, int(p.useRTH), p.formatDate)),
    _R.CANCEL_HEAD_TIMESTAMP: (_CHT.CancelHeadTimestamp, lambda c, p: c.cancelHeadTimeStamp(_g(p, "reqId", 0))),
    _R.REQ_HISTOGRAM_DATA: (_HG.HistogramDataRequest, lambda c, p: c.reqHistogramData(
        _g(p, "reqId", 0), _contract(p.contract), p.useRTH, p.timePeriod)),
    _R.CANCEL_HISTOGRAM_DATA: (_CHG.CancelHistogramData, lambda c, p: c.cancelHistogramData(_g(p, "reqId", 0))),
    _R.REQ_HISTORICAL_TICKS: (_HTk.HistoricalTicksRequest, lambda c, p: c.reqHistoricalTicks(
        _g(p, "reqId", 0), _contract(p.contract), p.startDateTime, p.endDateTime, p.numberOfTicks,
        p.whatToShow, int(p.useRTH), p.ignoreSize, _tv(p.miscOptions))),
    _R.REQ_TICK_BY_TICK_DATA: (_TBT.TickByTickRequest, lambda c, p: c.reqTickByTickData(
        _g(p, "reqId", 0), _contract(p.contract), p.tickType, p.numberOfTicks, p.ignoreSize)),
    _R.CANCEL_TICK_BY_TICK_DATA: (_CTBT.CancelTickByTick, lambda c, p: c.cancelTickByTickData(_g(p, "reqId", 0))),
    _R.REQ_NEWS_BULLETINS: (_NB.NewsBulletinsRequest, lambda c, p: c.reqNewsBulletins(p.allMessages)),
    _R.CANCEL_NEWS_BULLETINS: (_CNB.CancelNewsBulletins, lambda c, p: c.cancelNewsBulletins()),
    _R.REQ_NEWS_ARTICLE: (_NA.NewsArticleRequest, lambda c, p: c.reqNewsArticle(
        _g(p, "reqId", 0), p.providerCode, p.articleId, _tv(p.newsArticleOptions))),
    _R.REQ_NEWS_PROVIDERS: (_NP.NewsProvidersRequest, lambda c, p: c.reqNewsProviders()),
    _R.REQ_HISTORICAL_NEWS: (_HN.HistoricalNewsRequest, lambda c, p: c.reqHistoricalNews(
        _g(p, "reqId", 0), p.conId, p.providerCodes, p.startDateTime, p.endDateTime, p.totalResults,
        _tv(p.historicalNewsOptions))),
    _R.REQ_WSH_META_DATA: (_WM.WshMetaDataRequest, lambda c, p: c.reqWshMetaData(_g(p, "reqId", 0))),
    _R.CANCEL_WSH_META_DATA: (_CWM.CancelWshMetaData, lambda c, p: c.cancelWshMetaData(_g(p, "reqId", 0))),
    _R.REQ_WSH_EVENT_DATA: (_WE.WshEventDataRequest, lambda c, p: c.reqWshEventData(
        _g(p, "reqId", 0), _wsh_event(p))),
    _R.CANCEL_WSH_EVENT_DATA: (_CWE.CancelWshEventData, lambda c, p: c.cancelWshEventData(_g(p, "reqId", 0))),
    _R.REQ_SCANNER_PARAMETERS: (_SP.ScannerParametersRequest, lambda c, p: c.reqScannerParameters()),
    _R.REQ_SCANNER_SUBSCRIPTION: (_SS.ScannerSubscriptionRequest, lambda c, p: c.reqScannerSubscription(
        _g(p, "reqId", 0), *_scanner(p))),
    _R.CANCEL_SCANNER_SUBSCRIPTION: (_CSS.CancelScannerSubscription,
                                     lambda c, p: c.cancelScannerSubscription(_g(p, "reqId", 0))),
    _R.REQ_PNL: (_PnL.PnLRequest, lambda c, p: c.reqPnL(_g(p, "reqId", 0), p.account, p.modelCode)),
    _R.CANCEL_PNL: (_CPnL.CancelPnL, lambda c, p: c.cancelPnL(_g(p, "reqId", 0))),
    _R.REQ_PNL_SINGLE: (_PnLS.PnLSingleRequest, lambda c, p: c.reqPnLSingle(
        _g(p, "reqId", 0), p.account, p.modelCode, p.conId)),
    _R.CANCEL_PNL_SINGLE: (_CPnLS.CancelPnLSingle, lambda c, p: c.cancelPnLSingle(_g(p, "reqId", 0))),
    _R.REQ_FA: (_FA.FARequest, lambda c, p: c.requestFA(p.faDataType)),
    _R.REPLACE_FA: (_FAR.FAReplace, lambda c, p: c.replaceFA(_g(p, "reqId", 0), p.faDataType, p.xml)),
    _R.EXERCISE_OPTIONS: (_Ex.ExerciseOptionsRequest, lambda c, p: c.exerciseOptions(
        _g(p, "orderId", 0), _contract(p.contract), p.exerciseAction, p.exerciseQuantity, p.account,
        int(p.override), p.manualOrderTime, p.customerAccount, p.professionalCustomer)),
    _R.REQ_CALC_IMPLIED_VOLAT: (_CIV.CalculateImpliedVolatilityRequest, lambda c, p: c.calculateImpliedVolatility(
        _g(p, "reqId", 0), _contract(p.contract), p.optionPrice, p.underPrice, _tv(p.impliedVolatilityOptions))),
    _R.CANCEL_CALC_IMPLIED_VOLAT: (_CCIV.CancelCalculateImpliedVolatility,
                                   lambda c, p: c.cancelCalculateImpliedVolatility(_g(p, "reqId", 0))),
    _R.REQ_CALC_OPTION_PRICE: (_COP.CalculateOptionPriceRequest, lambda c, p: c.calculateOptionPrice(
        _g(p, "reqId", 0), _contract(p.contract), p.volatility, p.underPrice, _tv(p.optionPriceOptions))),
    _R.CANCEL_CALC_OPTION_PRICE: (_CCOP.CancelCalculateOptionPrice,
                                  lambda c, p: c.cancelCalculateOptionPrice(_g(p, "reqId", 0))),
    _R.REQ_SEC_DEF_OPT_PARAMS: (_SDO.SecDefOptParamsRequest, lambda c, p: c.reqSecDefOptParams(
        _g(p, "reqId", 0), p.underlyingSymbol, p.futFopExchange, p.underlyingSecType, p.underlyingConId)),
    _R.REQ_SOFT_DOLLAR_TIERS: (_SDT.SoftDollarTiersRequest, lambda c, p: c.reqSoftDollarTiers(_g(p, "reqId", 0))),
    _R.REQ_FAMILY_CODES: (_FC.FamilyCodesRequest, lambda c, p: c.reqFamilyCodes()),
    _R.REQ_MATCHING_SYMBOLS: (_MS.MatchingSymbolsRequest, lambda c, p: c.reqMatchingSymbols(
        _g(p, "reqId", 0), p.pattern)),
    _R.REQ_SMART_COMPONENTS: (_SC.SmartComponentsRequest, lambda c, p: c.reqSmartComponents(
        _g(p, "reqId", 0), p.bboExchange)),
    _R.REQ_MARKET_RULE: (_MR.MarketRuleRequest, lambda c, p: c.reqMarketRule(p.marketRuleId)),
    _R.REQ_USER_INFO: (_UI.UserInfoRequest, lambda c, p: c.reqUserInfo(_g(p, "reqId", 0))),
    _R.REQ_IDS: (_Ids.IdsRequest, lambda c, p: c.reqIds(p.numIds)),
    _R.REQ_CURRENT_TIME: (_CT.CurrentTimeRequest, lambda c, p: c.reqCurrentTime()),
    _R.REQ_CURRENT_TIME_IN_MILLIS: (_CTM.CurrentTimeInMillisRequest, lambda c, p: c.reqCurrentTimeInMillis()),
    _R.START_API: (_SA.StartApiRequest, _start_api),
    _R.SET_SERVER_LOGLEVEL: (_LL.SetServerLogLevelRequest, lambda c, p: c.setServerLogLevel(p.logLevel)),
    _R.VERIFY_REQUEST: (_VR.VerifyRequest, lambda c, p: (setattr(c, "extraAuth", True), c.verifyRequest(p.apiName, p.apiVersion))),
    _R.VERIFY_MESSAGE: (_VM.VerifyMessageRequest, lambda c, p: c.verifyMessage(p.apiData)),
    _R.QUERY_DISPLAY_GROUPS: (_QDG.QueryDisplayGroupsRequest, lambda c, p: c.queryDisplayGroups(_g(p, "reqId", 0))),
    _R.SUBSCRIBE_TO_GROUP_EVENTS: (_SGE.SubscribeToGroupEventsRequest, lambda c, p: c.subscribeToGroupEvents(
        _g(p, "reqId", 0), p.groupId)),
    _R.UPDATE_DISPLAY_GROUP: (_UDG.UpdateDisplayGroupRequest, lambda c, p: c.updateDisplayGroup(
        _g(p, "reqId", 0), p.contractInfo)),
    _R.UNSUBSCRIBE_FROM_GROUP_EVENTS: (_UGE.UnsubscribeFromGroupEventsRequest,
                                       lambda c, p: c.unsubscribeFromGroupEvents(_g(p, "reqId", 0))),
    _R.REQ_MKT_DEPTH_EXCHANGES: (_MDE.MarketDepthExchangesRequest, lambda c, p: c.reqMktDepthExchanges()),
}


# ------------------------------------------------------------ capture client
class _CaptureConn:
    def __init__(self):
        self.frames = []

    def sendMsg(self, msg):
        self.frames.append(msg)

    def isConnected(self):
        return True


class _ErrWrapper(EWrapper):
    def __init__(self):
        super().__init__()
        self.errors = []

    def error(self, reqId, errorTime, errorCode, errorString, advancedOrderRejectJson=""):
        self.errors.append((reqId, errorCode, errorString))


def _make_client():
    w = _ErrWrapper()
    c = EClient(w)
    c.conn = _CaptureConn()
    c.serverVersion_ = TEXT_SERVER_VERSION
    c.connState = EClient.CONNECTED
    c.clientId = 0
    return c, w


def to_text_request(msg_id: int, body: bytes) -> list:
    """Return the v200 text fields (msg id first, all str) for a protobuf request.

    Raises ProtoOnlyRequest for protobuf-only requests and ProtoRequestError for
    unknown ids, malformed bodies, or calls ibapi itself refuses at v200.
    """
    if msg_id in PROTO_ONLY:
        raise ProtoOnlyRequest(msg_id, PROTO_ONLY[msg_id])
    spec = SPECS.get(msg_id)
    if spec is None:
        raise ProtoRequestError(msg_id, "unknown or unsupported protobuf request id")
    cls, replay = spec
    try:
        proto = cls()
        proto.ParseFromString(bytes(body))
    except Exception as ex:  # google.protobuf.message.DecodeError and friends
        raise ProtoRequestError(msg_id, f"cannot parse {cls.DESCRIPTOR.name}: {ex}") from None
    client, wrapper = _make_client()
    try:
        replay(client, proto)
    except Exception as ex:
        raise ProtoRequestError(msg_id, f"cannot rebuild {cls.DESCRIPTOR.name}: {type(ex).__name__}: {ex}") from None
    if wrapper.errors:
        raise ProtoRequestError(msg_id, f"ibapi refused the v200 text form: {wrapper.errors[0]}")
    frames = client.conn.frames
    if len(frames) != 1:
        raise ProtoRequestError(msg_id, f"expected one text frame, got {len(frames)}")
    return split_text_frame(frames[0])


def split_text_frame(frame: bytes) -> list:
    """Length-prefixed v<=200 text frame -> list of str fields (msg id first)."""
    payload = frame[4:]
    return [f.decode("utf-8", errors="backslashreplace") for f in payload.split(b"\0")[:-1]]
