"""Conformance: ibapi EClient at 226 (protobuf) vs at 200 (text) for every request."""
from decimal import Decimal

import pytest

from ibapi.client import EClient
from ibapi.wrapper import EWrapper
from ibapi.message import OUT
from ibapi.common import getServerVersionForMessage, WshEventData
from ibapi.contract import Contract, ComboLeg, DeltaNeutralContract
from ibapi.order import Order, OrderComboLeg
from ibapi.order_cancel import OrderCancel
from ibapi.order_condition import (PriceCondition, TimeCondition, MarginCondition, ExecutionCondition,
                                   VolumeCondition, PercentChangeCondition)
from ibapi.execution import ExecutionFilter
from ibapi.scanner import ScannerSubscription
from ibapi.tag_value import TagValue
from ibapi.softdollartier import SoftDollarTier

from ibframe.sim.protocol.proto_requests import (to_text_request, ProtoRequestError, ProtoOnlyRequest, SPECS, PROTO_ONLY,
                            split_text_frame)


class _Conn:
    def __init__(self):
        self.frames = []

    def sendMsg(self, m):
        self.frames.append(m)

    def isConnected(self):
        return True


class _W(EWrapper):
    def __init__(self):
        super().__init__()
        self.errors = []

    def error(self, *a):
        self.errors.append(a)


def client(version):
    w = _W()
    c = EClient(w)
    c.conn = _Conn()
    c.serverVersion_ = version
    c.connState = EClient.CONNECTED
    c.clientId = 7
    c.optCapab = ""
    return c


def capture(version, call):
    c = client(version)
    call(c)
    assert not c.wrapper.errors, c.wrapper.errors
    assert len(c.conn.frames) == 1
    return c.conn.frames[0]


def proto_of(frame):
    wire_id = int.from_bytes(frame[4:8], "big")
    assert wire_id > 200, "expected a protobuf frame"
    return wire_id - 200, frame[8:]


# ------------------------------------------------------------------ samples
def stock():
    c = Contract()
    c.conId, c.symbol, c.secType, c.exchange, c.primaryExchange, c.currency = 265598, "AAPL", "STK", "SMART", "NASDAQ", "USD"
    c.localSymbol, c.tradingClass = "AAPL", "NMS"
    return c


def option():
    c = Contract()
    c.symbol, c.secType, c.lastTradeDateOrContractMonth, c.strike, c.right = "SPY", "OPT", "20250620", 550.5, "C"
    c.multiplier, c.exchange, c.currency, c.tradingClass, c.includeExpired = "100", "CBOE", "USD", "SPY", True
    return c


def bag():
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "SPY", "BAG", "SMART", "USD"
    l1, l2 = ComboLeg(), ComboLeg()
    l1.conId, l1.ratio, l1.action, l1.exchange = 756733, 1, "BUY", "SMART"
    l2.conId, l2.ratio, l2.action, l2.exchange, l2.openClose = 43645865, 2, "SELL", "SMART", 1
    c.comboLegs = [l1, l2]
    return c


def forex_secid():
    c = Contract()
    c.secIdType, c.secId, c.exchange, c.currency, c.secType = "ISIN", "US0378331005", "SMART", "USD", "STK"
    return c


def lmt_order():
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.tif = "BUY", Decimal("100"), "LMT", 187.25, "GTC"
    o.outsideRth, o.orderRef, o.account = True, "ref-42", "DU1234567"
    o.algoStrategy = "Adaptive"
    o.algoParams = [TagValue("adaptivePriority", "Patient")]
    return o


def cond_order():
    o = lmt_order()
    o.tif = "DAY"
    o.conditions = [PriceCondition(PriceCondition.TriggerMethodEnum.Last, 265598, "SMART", True, 190.5),
                    TimeCondition(False, "20250102 10:00:00 US/Eastern"),
                    MarginCondition(True, 30), ExecutionCondition("STK", "SMART", "AAPL"),
                    VolumeCondition(265598, "SMART", True, 100000),
                    PercentChangeCondition(265598, "SMART", False, 2.5)]
    o.conditions[1].isConjunctionConnection = False
    o.conditionsIgnoreRth, o.conditionsCancelOrder = True, True
    return o


def combo_order():
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.lmtPrice = "SELL", Decimal("3"), "LMT", -1.05
    o.smartComboRoutingParams = [TagValue("NonGuaranteed", "1")]
    leg = OrderComboLeg()
    leg.price = 1.5
    leg2 = OrderComboLeg()
    leg2.price = 0.25
    o.orderComboLegs = [leg, leg2]
    return o


def misc_order():
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.auxPrice, o.trailStopPrice = "SELL", Decimal("5"), "TRAIL", 1.5, 180.0
    o.transmit, o.parentId, o.ocaGroup, o.ocaType, o.hidden = False, 41, "oca1", 2, True
    o.goodAfterTime, o.goodTillDate, o.faGroup, o.faMethod = "20250102 09:30:00 US/Eastern", "", "grp", "EqualQuantity"
    o.softDollarTier = SoftDollarTier("tier", "1", "Tier 1")
    o.cashQty, o.usePriceMgmtAlgo, o.minTradeQty, o.includeOvernight = 1000.0, True, 10, True
    o.orderMiscOptions = [TagValue("x", "y")]
    o.manualOrderTime, o.customerAccount, o.professionalCustomer = "20250102-10:00:00", "CA1", True
    o.mifid2DecisionMaker, o.modelCode = "dm", "mc"
    return o


def dn_contract():
    c = option()
    dn = DeltaNeutralContract()
    dn.conId, dn.delta, dn.price = 756733, 0.5, 550.0
    c.deltaNeutralContract = dn
    return c


def exec_filter():
    f = ExecutionFilter()
    f.clientId, f.acctCode, f.time, f.symbol, f.secType, f.exchange, f.side = 7, "DU1234567", "20250102 09:30:00", "AAPL", "STK", "SMART", "BUY"
    f.lastNDays, f.specificDates = 3, [20250102, 20250103]
    return f


def scanner():
    s = ScannerSubscription()
    s.numberOfRows, s.instrument, s.locationCode, s.scanCode = 25, "STK", "STK.US.MAJOR", "TOP_PERC_GAIN"
    s.abovePrice, s.aboveVolume, s.marketCapAbove, s.stockTypeFilter = 5.0, 100000, 1e9, "ALL"
    return s


def wsh():
    w = WshEventData()
    w.conId, w.startDate, w.endDate, w.totalLimit = 265598, "20250101", "20250201", 10
    return w


OC = OrderCancel()
OC.manualOrderCancelTime, OC.extOperator, OC.manualOrderIndicator = "20250102-10:00:00", "op", 1
tv = [TagValue("a", "b"), TagValue("c", "d")]

CASES = [
    ("placeOrder stk lmt adaptive", OUT.PLACE_ORDER, lambda c: c.placeOrder(101, stock(), lmt_order())),
    ("placeOrder opt conditions", OUT.PLACE_ORDER, lambda c: c.placeOrder(102, option(), cond_order())),
    ("placeOrder bag legs", OUT.PLACE_ORDER, lambda c: c.placeOrder(103, bag(), combo_order())),
    ("placeOrder misc/transmit=False", OUT.PLACE_ORDER, lambda c: c.placeOrder(104, stock(), misc_order())),
    ("placeOrder deltaNeutral", OUT.PLACE_ORDER, lambda c: c.placeOrder(105, dn_contract(), lmt_order())),
    ("cancelOrder", OUT.CANCEL_ORDER, lambda c: c.cancelOrder(101, OC)),
    ("cancelOrder empty", OUT.CANCEL_ORDER, lambda c: c.cancelOrder(102, OrderCancel())),
    ("globalCancel", OUT.REQ_GLOBAL_CANCEL, lambda c: c.reqGlobalCancel(OC)),
    ("reqExecutions", OUT.REQ_EXECUTIONS, lambda c: c.reqExecutions(9001, exec_filter())),
    ("reqExecutions empty", OUT.REQ_EXECUTIONS, lambda c: c.reqExecutions(9002, ExecutionFilter())),
    ("reqOpenOrders", OUT.REQ_OPEN_ORDERS, lambda c: c.reqOpenOrders()),
    ("reqAllOpenOrders", OUT.REQ_ALL_OPEN_ORDERS, lambda c: c.reqAllOpenOrders()),
    ("reqAutoOpenOrders", OUT.REQ_AUTO_OPEN_ORDERS, lambda c: c.reqAutoOpenOrders(True)),
    ("reqCompletedOrders", OUT.REQ_COMPLETED_ORDERS, lambda c: c.reqCompletedOrders(False)),
    ("reqContractDetails stk", OUT.REQ_CONTRACT_DATA, lambda c: c.reqContractDetails(1, stock())),
    ("reqContractDetails opt", OUT.REQ_CONTRACT_DATA, lambda c: c.reqContractDetails(2, option())),
    ("reqContractDetails secid", OUT.REQ_CONTRACT_DATA, lambda c: c.reqContractDetails(3, forex_secid())),
    ("reqMktData generic", OUT.REQ_MKT_DATA, lambda c: c.reqMktData(11, stock(), "100,101,104,106,233", False, False, [])),
    ("reqMktData snapshot", OUT.REQ_MKT_DATA, lambda c: c.reqMktData(12, option(), "", True, True, [])),
    ("reqMktData bag", OUT.REQ_MKT_DATA, lambda c: c.reqMktData(13, bag(), "", False, False, [])),
    ("reqMktData deltaNeutral", OUT.REQ_MKT_DATA, lambda c: c.reqMktData(14, dn_contract(), "", False, False, [])),
    ("cancelMktData", OUT.CANCEL_MKT_DATA, lambda c: c.cancelMktData(11)),
    ("reqMktDepth smart", OUT.REQ_MKT_DEPTH, lambda c: c.reqMktDepth(21, stock(), 10, True, [])),
    ("reqMktDepth", OUT.REQ_MKT_DEPTH, lambda c: c.reqMktDepth(22, stock(), 5, False, [])),
    ("cancelMktDepth", OUT.CANCEL_MKT_DEPTH, lambda c: c.cancelMktDepth(21, True)),
    ("reqMarketDataType", OUT.REQ_MARKET_DATA_TYPE, lambda c: c.reqMarketDataType(3)),
    ("reqAccountUpdates", OUT.REQ_ACCT_DATA, lambda c: c.reqAccountUpdates(True, "DU1234567")),
    ("reqAccountUpdates off", OUT.REQ_ACCT_DATA, lambda c: c.reqAccountUpdates(False, "")),
    ("reqManagedAccts", OUT.REQ_MANAGED_ACCTS, lambda c: c.reqManagedAccts()),
    ("reqPositions", OUT.REQ_POSITIONS, lambda c: c.reqPositions()),
    ("cancelPositions", OUT.CANCEL_POSITIONS, lambda c: c.cancelPositions()),
    ("reqAccountSummary", OUT.REQ_ACCOUNT_SUMMARY, lambda c: c.reqAccountSummary(31, "All", "NetLiquidation,$LEDGER:ALL")),
    ("cancelAccountSummary", OUT.CANCEL_ACCOUNT_SUMMARY, lambda c: c.cancelAccountSummary(31)),
    ("reqPositionsMulti", OUT.REQ_POSITIONS_MULTI, lambda c: c.reqPositionsMulti(32, "DU1234567", "mc")),
    ("cancelPositionsMulti", OUT.CANCEL_POSITIONS_MULTI, lambda c: c.cancelPositionsMulti(32)),
    ("reqAccountUpdatesMulti", OUT.REQ_ACCOUNT_UPDATES_MULTI, lambda c: c.reqAccountUpdatesMulti(33, "DU1234567", "", True)),
    ("cancelAccountUpdatesMulti", OUT.CANCEL_ACCOUNT_UPDATES_MULTI, lambda c: c.cancelAccountUpdatesMulti(33)),
    ("reqHistoricalData keepUpToDate", OUT.REQ_HISTORICAL_DATA, lambda c: c.reqHistoricalData(
        41, stock(), "", "2 D", "5 mins", "TRADES", 1, 2, True, [])),
    ("reqHistoricalData opt end", OUT.REQ_HISTORICAL_DATA, lambda c: c.reqHistoricalData(
        42, option(), "20250102 16:00:00 US/Eastern", "1 W", "1 hour", "MIDPOINT", 0, 1, False, [])),
    ("reqHistoricalData bag", OUT.REQ_HISTORICAL_DATA, lambda c: c.reqHistoricalData(
        43, bag(), "", "1 D", "1 min", "TRADES", 1, 1, False, [])),
    ("cancelHistoricalData", OUT.CANCEL_HISTORICAL_DATA, lambda c: c.cancelHistoricalData(41)),
    ("reqRealTimeBars", OUT.REQ_REAL_TIME_BARS, lambda c: c.reqRealTimeBars(44, stock(), 5, "BID", True, [])),
    ("cancelRealTimeBars", OUT.CANCEL_REAL_TIME_BARS, lambda c: c.cancelRealTimeBars(44)),
    ("reqHeadTimeStamp", OUT.REQ_HEAD_TIMESTAMP, lambda c: c.reqHeadTimeStamp(45, stock(), "TRADES", 1, 2)),
    ("cancelHeadTimeStamp", OUT.CANCEL_HEAD_TIMESTAMP, lambda c: c.cancelHeadTimeStamp(45)),
    ("reqHistogramData", OUT.REQ_HISTOGRAM_DATA, lambda c: c.reqHistogramData(46, stock(), False, "3 days")),
    ("cancelHistogramData", OUT.CANCEL_HISTOGRAM_DATA, lambda c: c.cancelHistogramData(46)),
    ("reqHistoricalTicks", OUT.REQ_HISTORICAL_TICKS, lambda c: c.reqHistoricalTicks(
        47, stock(), "20250102 09:30:00 US/Eastern", "", 1000, "BID_ASK", 1, True, [])),
    ("reqTickByTickData", OUT.REQ_TICK_BY_TICK_DATA, lambda c: c.reqTickByTickData(48, stock(), "AllLast", 10, True)),
    ("cancelTickByTickData", OUT.CANCEL_TICK_BY_TICK_DATA, lambda c: c.cancelTickByTickData(48)),
    ("reqNewsBulletins", OUT.REQ_NEWS_BULLETINS, lambda c: c.reqNewsBulletins(True)),
    ("cancelNewsBulletins", OUT.CANCEL_NEWS_BULLETINS, lambda c: c.cancelNewsBulletins()),
    ("reqNewsArticle", OUT.REQ_NEWS_ARTICLE, lambda c: c.reqNewsArticle(51, "BRFG", "BRFG$04fb9da2", [])),
    ("reqNewsProviders", OUT.REQ_NEWS_PROVIDERS, lambda c: c.reqNewsProviders()),
    ("reqHistoricalNews", OUT.REQ_HISTORICAL_NEWS, lambda c: c.reqHistoricalNews(
        52, 265598, "BRFG+DJNL", "2025-01-01 00:00:00.0", "2025-01-02 00:00:00.0", 10, [])),
    ("reqWshMetaData", OUT.REQ_WSH_META_DATA, lambda c: c.reqWshMetaData(53)),
    ("cancelWshMetaData", OUT.CANCEL_WSH_META_DATA, lambda c: c.cancelWshMetaData(53)),
    ("reqWshEventData", OUT.REQ_WSH_EVENT_DATA, lambda c: c.reqWshEventData(54, wsh())),
    ("cancelWshEventData", OUT.CANCEL_WSH_EVENT_DATA, lambda c: c.cancelWshEventData(54)),
    ("reqScannerParameters", OUT.REQ_SCANNER_PARAMETERS, lambda c: c.reqScannerParameters()),
    ("reqScannerSubscription", OUT.REQ_SCANNER_SUBSCRIPTION, lambda c: c.reqScannerSubscription(
        61, scanner(), [], [TagValue("changePercAbove", "5")])),
    ("cancelScannerSubscription", OUT.CANCEL_SCANNER_SUBSCRIPTION, lambda c: c.cancelScannerSubscription(61)),
    ("reqPnL", OUT.REQ_PNL, lambda c: c.reqPnL(62, "DU1234567", "")),
    ("cancelPnL", OUT.CANCEL_PNL, lambda c: c.cancelPnL(62)),
    ("reqPnLSingle", OUT.REQ_PNL_SINGLE, lambda c: c.reqPnLSingle(63, "DU1234567", "", 265598)),
    ("cancelPnLSingle", OUT.CANCEL_PNL_SINGLE, lambda c: c.cancelPnLSingle(63)),
    ("requestFA", OUT.REQ_FA, lambda c: c.requestFA(1)),
    ("replaceFA", OUT.REPLACE_FA, lambda c: c.replaceFA(64, 1, "<ListOfGroups/>")),
    ("exerciseOptions", OUT.EXERCISE_OPTIONS, lambda c: c.exerciseOptions(
        65, option(), 1, 2, "DU1234567", 1, "20250102-10:00:00", "CA1", True)),
    ("calculateImpliedVolatility", OUT.REQ_CALC_IMPLIED_VOLAT, lambda c: c.calculateImpliedVolatility(
        66, option(), 5.25, 551.0, [])),
    ("cancelCalculateImpliedVolatility", OUT.CANCEL_CALC_IMPLIED_VOLAT, lambda c: c.cancelCalculateImpliedVolatility(66)),
    ("calculateOptionPrice", OUT.REQ_CALC_OPTION_PRICE, lambda c: c.calculateOptionPrice(67, option(), 0.22, 551.0, [])),
    ("cancelCalculateOptionPrice", OUT.CANCEL_CALC_OPTION_PRICE, lambda c: c.cancelCalculateOptionPrice(67)),
    ("reqSecDefOptParams", OUT.REQ_SEC_DEF_OPT_PARAMS, lambda c: c.reqSecDefOptParams(68, "SPY", "", "STK", 756733)),
    ("reqSoftDollarTiers", OUT.REQ_SOFT_DOLLAR_TIERS, lambda c: c.reqSoftDollarTiers(69)),
    ("reqFamilyCodes", OUT.REQ_FAMILY_CODES, lambda c: c.reqFamilyCodes()),
    ("reqMatchingSymbols", OUT.REQ_MATCHING_SYMBOLS, lambda c: c.reqMatchingSymbols(70, "AAP")),
    ("reqSmartComponents", OUT.REQ_SMART_COMPONENTS, lambda c: c.reqSmartComponents(71, "a6")),
    ("reqMarketRule", OUT.REQ_MARKET_RULE, lambda c: c.reqMarketRule(26)),
    ("reqUserInfo", OUT.REQ_USER_INFO, lambda c: c.reqUserInfo(72)),
    ("reqIds", OUT.REQ_IDS, lambda c: c.reqIds(-1)),
    ("reqCurrentTime", OUT.REQ_CURRENT_TIME, lambda c: c.reqCurrentTime()),
    ("reqCurrentTimeInMillis", OUT.REQ_CURRENT_TIME_IN_MILLIS, lambda c: c.reqCurrentTimeInMillis()),
    ("startApi", OUT.START_API, lambda c: c.startApi()),
    ("setServerLogLevel", OUT.SET_SERVER_LOGLEVEL, lambda c: c.setServerLogLevel(5)),
    ("verifyRequest", OUT.VERIFY_REQUEST, None),  # needs extraAuth, see test below
    ("verifyMessage", OUT.VERIFY_MESSAGE, lambda c: c.verifyMessage("data")),
    ("queryDisplayGroups", OUT.QUERY_DISPLAY_GROUPS, lambda c: c.queryDisplayGroups(73)),
    ("subscribeToGroupEvents", OUT.SUBSCRIBE_TO_GROUP_EVENTS, lambda c: c.subscribeToGroupEvents(74, 4)),
    ("updateDisplayGroup", OUT.UPDATE_DISPLAY_GROUP, lambda c: c.updateDisplayGroup(74, "265598@SMART")),
    ("unsubscribeFromGroupEvents", OUT.UNSUBSCRIBE_FROM_GROUP_EVENTS, lambda c: c.unsubscribeFromGroupEvents(74)),
    ("reqMktDepthExchanges", OUT.REQ_MKT_DEPTH_EXCHANGES, lambda c: c.reqMktDepthExchanges()),
]


def _verify_request(c):
    c.extraAuth = True
    c.verifyRequest("myapi", "1.0")


@pytest.mark.parametrize("name,msg_id,call", CASES, ids=[c[0] for c in CASES])
def test_request_matches_text_at_200(name, msg_id, call):
    call = call or _verify_request
    pid, body = proto_of(capture(226, call))
    assert pid == msg_id
    text = split_text_frame(capture(200, call))
    assert text[0] == str(msg_id)
    assert to_text_request(pid, body) == text


def test_every_protobuf_request_id_is_covered():
    ids = {v for k, v in vars(OUT).items() if isinstance(v, int) and not k.startswith("_")}
    mapped = {i for i in ids if getServerVersionForMessage(i) <= 226}
    assert mapped <= set(SPECS), sorted(mapped - set(SPECS))
    assert {c[1] for c in CASES} == mapped


def test_documented_difference_multiplier_normalised():
    c = option()
    c.multiplier = "0.10"
    pid, body = proto_of(capture(226, lambda cl: cl.reqContractDetails(5, c)))
    fields = to_text_request(pid, body)
    text = split_text_frame(capture(200, lambda cl: cl.reqContractDetails(5, c)))
    assert text.index("0.10") == fields.index("0.1")
    assert [f for f in text if f != "0.10"] == [f for f in fields if f != "0.1"]


def test_proto_only_requests():
    for msg_id, call in ((OUT.CANCEL_CONTRACT_DATA, lambda c: c.cancelContractData(5)),
                         (OUT.CANCEL_HISTORICAL_TICKS, lambda c: c.cancelHistoricalTicks(5))):
        pid, body = proto_of(capture(226, call))
        with pytest.raises(ProtoOnlyRequest) as ei:
            to_text_request(pid, body)
        assert PROTO_ONLY[msg_id] in str(ei.value)
    with pytest.raises(ProtoOnlyRequest):
        to_text_request(OUT.REQ_CONFIG, b"")


@pytest.mark.parametrize("msg_id,body", [
    (OUT.REQ_MKT_DATA, b"\xff\xff\xff"),
    (OUT.PLACE_ORDER, b"\x12\x05abc"),        # truncated sub-message
    (999, b""),                               # unknown id
    (OUT.REQ_MKT_DATA, b"\x08"),              # truncated varint
])
def test_malformed(msg_id, body):
    with pytest.raises(ProtoRequestError) as ei:
        to_text_request(msg_id, body)
    assert ei.value.msg_id == msg_id and ei.value.reason


def test_non_ascii_refused_cleanly():
    from ibapi.protobuf.MatchingSymbolsRequest_pb2 import MatchingSymbolsRequest
    body = MatchingSymbolsRequest(reqId=1, pattern="Ünïcode").SerializeToString()
    with pytest.raises(ProtoRequestError):
        to_text_request(OUT.REQ_MATCHING_SYMBOLS, body)


def test_documented_difference_tagvalue_order():
    """Protobuf maps do not keep TagValue order (hash-seed dependent): compare as multisets."""
    o = lmt_order()
    o.algoParams = [TagValue("adaptivePriority", "Patient"), TagValue("maxPctVol", "0.1"), TagValue("x", "y")]
    call = lambda c: c.placeOrder(106, stock(), o)
    pid, body = proto_of(capture(226, call))
    got, want = to_text_request(pid, body), split_text_frame(capture(200, call))
    i = want.index("Adaptive") + 2           # algoStrategy, count, then tag/value pairs
    pairs = lambda f: sorted(zip(f[i:i + 6:2], f[i + 1:i + 6:2]))
    assert pairs(got) == pairs(want)
    assert got[:i] == want[:i] and got[i + 6:] == want[i + 6:]
