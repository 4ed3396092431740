"""Order wire layer: requests exactly as ibapi's EClient writes them, answers exactly as its Decoder reads them.

No server here: both ends of every round trip are the real ibapi 10.50 code. `EClient.placeOrder` & co.
write their bytes into a sink connection (the only thing replaced is the socket); the simulator's
parsers must read those bytes completely. The simulator's encoders' frames are split the way
`EClient.run` splits them and fed to the real `ibapi.decoder.Decoder`.
"""
from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest
from ibapi import order_condition
from ibapi.client import EClient
from ibapi.comm import read_fields
from ibapi.const import UNSET_DECIMAL, UNSET_DOUBLE, UNSET_INTEGER
from ibapi.contract import ComboLeg, Contract, DeltaNeutralContract
from ibapi.decoder import Decoder
from ibapi.execution import ExecutionFilter
from ibapi.message import OUT
from ibapi.order import Order, OrderComboLeg
from ibapi.order_cancel import OrderCancel
from ibapi.softdollartier import SoftDollarTier
from ibapi.tag_value import TagValue

from conftest import FIXTURE_FRAMES, RecordingWrapper, shared_fixture
from ibframe.sim.broker.order_answers_wire import (
    encode_commission_report, encode_completed_order, encode_completed_orders_end, encode_execution,
    encode_execution_end, encode_open_order, encode_open_order_end, encode_order_bound, encode_order_status,
)
from ibframe.sim.broker.order_records import (
    ExecutionInfo, OrderAllocationInfo, OrderStateInfo, SimOrder, correct_exec_id, make_exec_id, make_perm_id,
)
from ibframe.sim.broker.order_requests_wire import (
    parse_cancel_order, parse_global_cancel, parse_place_order, parse_req_executions,
)
from ibframe.sim.protocol.wire import FieldReader, ProtocolError, encode_message, split_fields, split_frames

VERSIONS = (176, 178, 200)


# --- the real client, writing into a byte sink ---------------------------------------------------------

class _Sink:
    """Stands in for ibapi's Connection: accepts every framed message the client sends."""

    def __init__(self):
        self.frames: list[bytes] = []

    def isConnected(self) -> bool:
        return True

    def sendMsg(self, msg: bytes) -> int:
        self.frames.append(msg)
        return len(msg)


class WireClient(EClient):
    """The official EClient at a fixed server version; its requests land in `sent` as field lists."""

    def __init__(self, version: int):
        self.w = RecordingWrapper()
        super().__init__(self.w)
        self.conn = _Sink()
        self.serverVersion_ = version
        self.setConnState(EClient.CONNECTED)

    def last_request(self) -> list[str]:
        assert not [a for n, a in self.w.events if n == "error"], self.w.events
        buffer = bytearray(self.conn.frames[-1])
        (payload,) = split_frames(buffer)
        return split_fields(payload)


def request_fields(version: int, call) -> tuple[int, FieldReader]:
    client = WireClient(version)
    call(client)
    fields = client.last_request()
    return int(fields[0]), FieldReader(fields, "request", start=1)


# --- the real decoder, reading the simulator's frames ----------------------------------------------------

def decode_answer(fields: tuple, version: int) -> list[tuple[str, tuple]]:
    """Frame `fields` as the simulator would and run it through ibapi exactly as EClient.run does."""
    payload = bytes(encode_message(fields)[4:])
    msg_id = int(payload[:payload.index(b"\0")])
    text = payload[payload.index(b"\0") + 1:]
    wrapper = RecordingWrapper()
    Decoder(wrapper, version).interpret(read_fields(text), msg_id)
    assert not [a for n, a in wrapper.events if n == "error"], wrapper.events
    return wrapper.events


def only(events, name):
    hits = [args for n, args in events if n == name]
    assert len(hits) == 1, events
    return hits[0]


# --- normalising ibapi values to the simulator's conventions ------------------------------------------

def norm(value):
    """ibapi's UNSET sentinels -> None, Decimal -> float, TagValue lists -> (tag, value) lists."""
    if isinstance(value, Decimal):
        return None if value == UNSET_DECIMAL else float(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)) and value in (UNSET_DOUBLE, UNSET_INTEGER):
        return None
    if isinstance(value, list):
        return [(v.tag, v.value) if isinstance(v, TagValue) else v for v in value]
    return value


def tag_list(value) -> list:
    return norm(value) if value else []


# Order attributes placeOrder sends at every version 157..200 (SimOrder uses the same names).
SENT_ORDER_ATTRS = """action totalQuantity orderType lmtPrice auxPrice tif ocaGroup account openClose origin orderRef
transmit parentId blockOrder sweepToFill displaySize triggerMethod outsideRth hidden discretionaryAmt goodAfterTime
goodTillDate faGroup faMethod faPercentage modelCode shortSaleSlot designatedLocation exemptCode ocaType rule80A
settlingFirm allOrNone minQty percentOffset auctionStrategy startingPrice stockRefPrice delta stockRangeLower
stockRangeUpper overridePercentageConstraints volatility volatilityType deltaNeutralOrderType deltaNeutralAuxPrice
continuousUpdate referencePriceType trailStopPrice trailingPercent scaleInitLevelSize scaleSubsLevelSize
scalePriceIncrement scaleTable activeStartTime activeStopTime hedgeType optOutSmartRouting clearingAccount
clearingIntent notHeld algoStrategy algoId whatIf solicited randomizeSize randomizePrice conditionsIgnoreRth
conditionsCancelOrder adjustedOrderType triggerPrice lmtPriceOffset adjustedStopPrice adjustedStopLimitPrice
adjustedTrailingAmount adjustableTrailingUnit extOperator cashQty mifid2DecisionMaker mifid2DecisionAlgo
mifid2ExecutionTrader mifid2ExecutionAlgo dontUseAutoPriceForHedge isOmsContainer discretionaryUpToLimitPrice
usePriceMgmtAlgo duration postToAts autoCancelParent advancedErrorOverride manualOrderTime customerAccount
professionalCustomer includeOvernight manualOrderIndicator imbalanceOnly""".split()
SENT_CONTRACT_ATTRS = """conId symbol secType lastTradeDateOrContractMonth strike right multiplier exchange
primaryExchange currency localSymbol tradingClass secIdType secId""".split()

# What OPEN_ORDER echoes (version-gated ones are checked separately).
ECHOED_ORDER_ATTRS = """orderId clientId permId action totalQuantity orderType lmtPrice auxPrice tif ocaGroup account
openClose origin orderRef outsideRth hidden discretionaryAmt goodAfterTime faGroup faMethod faPercentage modelCode
goodTillDate rule80A percentOffset settlingFirm shortSaleSlot designatedLocation exemptCode auctionStrategy
startingPrice stockRefPrice delta stockRangeLower stockRangeUpper displaySize blockOrder sweepToFill allOrNone minQty
ocaType parentId triggerMethod volatility volatilityType deltaNeutralOrderType deltaNeutralAuxPrice
deltaNeutralConId deltaNeutralSettlingFirm deltaNeutralClearingAccount deltaNeutralClearingIntent
deltaNeutralOpenClose deltaNeutralShortSale deltaNeutralShortSaleSlot deltaNeutralDesignatedLocation
continuousUpdate referencePriceType trailingPercent scaleInitLevelSize scaleSubsLevelSize scalePriceIncrement
scalePriceAdjustValue scalePriceAdjustInterval scaleProfitOffset scaleAutoReset scaleInitPosition scaleInitFillQty
scaleRandomPercent hedgeType hedgeParam optOutSmartRouting clearingAccount clearingIntent notHeld algoStrategy
solicited whatIf randomizeSize randomizePrice referenceContractId isPeggedChangeAmountDecrease peggedChangeAmount
referenceChangeAmount referenceExchangeId conditionsIgnoreRth conditionsCancelOrder adjustedOrderType triggerPrice
trailStopPrice lmtPriceOffset adjustedStopPrice adjustedStopLimitPrice adjustedTrailingAmount adjustableTrailingUnit
cashQty dontUseAutoPriceForHedge isOmsContainer discretionaryUpToLimitPrice usePriceMgmtAlgo duration postToAts
autoCancelParent minTradeQty minCompeteSize competeAgainstBestOffset midOffsetAtWhole midOffsetAtHalf""".split()
COMPLETED_ORDER_ATTRS = [a for a in ECHOED_ORDER_ATTRS if a not in (
    "orderId clientId auctionStrategy blockOrder parentId optOutSmartRouting whatIf adjustedOrderType triggerPrice "
    "adjustedStopPrice adjustedStopLimitPrice adjustedTrailingAmount adjustableTrailingUnit "
    "discretionaryUpToLimitPrice usePriceMgmtAlgo duration postToAts deltaNeutralSettlingFirm deltaNeutralClearingAccount "
    "deltaNeutralClearingIntent deltaNeutralOpenClose").split()]

# How a real TWS echoes what the client left at its default (see the real open_order_spy_mkt frame).
TWS_ECHO = {
    "lmtPrice": lambda v: 0.0 if v is None else v,
    "auxPrice": lambda v: 0.0 if v is None else v,
    "displaySize": lambda v: v or None,
    "ocaType": lambda v: v or 3,
    "clearingIntent": lambda v: v or "IB",
    "deltaNeutralOrderType": lambda v: v or "None",
    "deltaNeutralOpenClose": lambda v: v or "?",
    "adjustedOrderType": lambda v: v or "None",
    "volatilityType": lambda v: 0 if v is None else v,
    "referencePriceType": lambda v: 0 if v is None else v,
    "cashQty": lambda v: 0.0 if v is None else v,
    "usePriceMgmtAlgo": bool,
    "dontUseAutoPriceForHedge": lambda v: True,
}


# --- the orders ---------------------------------------------------------------------------------------

def stock(symbol="AAPL", con_id=265598, exchange="SMART") -> Contract:
    c = Contract()
    c.conId, c.symbol, c.secType, c.exchange, c.primaryExchange, c.currency = (
        con_id, symbol, "STK", exchange, "NASDAQ", "USD")
    return c


def option() -> Contract:
    c = Contract()
    c.symbol, c.secType, c.lastTradeDateOrContractMonth, c.strike, c.right = "AAPL", "OPT", "20250117", 150.0, "C"
    c.multiplier, c.exchange, c.currency, c.tradingClass = "100", "SMART", "USD", "AAPL"
    return c


def fx() -> Contract:
    c = Contract()
    c.conId, c.symbol, c.secType, c.exchange, c.currency, c.localSymbol = (
        12087792, "EUR", "CASH", "IDEALPRO", "USD", "EUR.USD")
    return c


def bag() -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "SPY", "BAG", "SMART", "USD"
    for con_id, action in ((700001, "BUY"), (700002, "SELL")):
        leg = ComboLeg()
        leg.conId, leg.ratio, leg.action, leg.exchange = con_id, 1, action, "SMART"
        c.comboLegs.append(leg)
    c.comboLegs[1].openClose, c.comboLegs[1].shortSaleSlot, c.comboLegs[1].designatedLocation = 2, 1, "X"
    return c


def order(action="BUY", qty="100", order_type="MKT", **attrs) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType = action, Decimal(qty), order_type
    for name, value in attrs.items():
        setattr(o, name, value)
    return o


def tags(**kv) -> list[TagValue]:
    return [TagValue(k, v) for k, v in kv.items()]


def price_condition() -> order_condition.PriceCondition:
    cond = order_condition.Create(order_condition.OrderCondition.Price)
    cond.conId, cond.exchange, cond.isMore, cond.price, cond.triggerMethod = 265598, "SMART", True, 151.5, 2
    return cond


def time_condition() -> order_condition.TimeCondition:
    cond = order_condition.Create(order_condition.OrderCondition.Time)
    cond.isMore, cond.time = False, "20250102 15:30:00 US/Eastern"
    return cond.Or()


def execution_condition() -> order_condition.ExecutionCondition:
    return order_condition.ExecutionCondition("STK", "SMART", "MSFT")


def volatility_order() -> tuple[Contract, Order]:
    c = option()
    c.deltaNeutralContract = DeltaNeutralContract()
    c.deltaNeutralContract.conId, c.deltaNeutralContract.delta, c.deltaNeutralContract.price = 265598, 0.5, 150.0
    return c, order(qty="2", order_type="VOL", volatility=25.0, volatilityType=2, deltaNeutralOrderType="LMT",
                    deltaNeutralAuxPrice=149.5, deltaNeutralConId=265598, deltaNeutralOpenClose="O",
                    deltaNeutralShortSale=True, deltaNeutralShortSaleSlot=1, deltaNeutralDesignatedLocation="L",
                    deltaNeutralClearingIntent="IB", continuousUpdate=True, referencePriceType=1)


def peg_bench() -> Order:
    return order(order_type="PEG BENCH", referenceContractId=756733, isPeggedChangeAmountDecrease=True,
                 peggedChangeAmount=0.5, referenceChangeAmount=1.25, referenceExchangeId="ARCA",
                 startingPrice=150.0, stockRefPrice=450.0)


def cases(version: int) -> list[tuple[str, Contract, Order]]:
    combo_order = order("BUY", "1", "LMT", lmtPrice=1.25,
                        smartComboRoutingParams=tags(NonGuaranteed="1"))
    combo_order.orderComboLegs = [OrderComboLeg(), OrderComboLeg()]
    combo_order.orderComboLegs[0].price = 3.5
    conditional = order("SELL", "50", "LMT", lmtPrice=152.0,
                        conditions=[price_condition(), time_condition(), execution_condition()],
                        conditionsIgnoreRth=True, conditionsCancelOrder=True)
    out = [
        ("mkt", stock(), order()),
        ("lmt", stock(), order("SELL", "25.5", "LMT", lmtPrice=150.25, tif="GTC", outsideRth=True,
                               orderRef="ref-1", account="DU1234567", openClose="C", hidden=True)),
        ("stp", stock(), order("SELL", "100", "STP", auxPrice=140.5, triggerMethod=2)),
        ("stp lmt", stock(), order("BUY", "100", "STP LMT", lmtPrice=156.0, auxPrice=155.5, allOrNone=True,
                                   minQty=10, displaySize=20)),
        ("trail", stock(), order("SELL", "100", "TRAIL", trailingPercent=1.5, trailStopPrice=145.0)),
        ("bracket child", stock(), order("SELL", "100", "LMT", lmtPrice=160.0, parentId=1001, transmit=False)),
        ("oca", stock("MSFT", 272093), order("BUY", "10", "LMT", lmtPrice=400.0, ocaGroup="oca-1", ocaType=1)),
        ("adaptive", stock(), order("BUY", "100", "LMT", lmtPrice=150.0, algoStrategy="Adaptive",
                                    algoParams=tags(adaptivePriority="Normal"))),
        ("twap", stock(), order("BUY", "300", "MKT", algoStrategy="Twap",
                                algoParams=tags(strategyType="Marketable", startTime="09:30:00 US/Eastern",
                                                endTime="16:00:00 US/Eastern", allowPastEndTime="1"),
                                algoId="algo-7")),
        ("what-if", stock(), order("BUY", "100", "LMT", lmtPrice=150.0, whatIf=True)),
        ("gtd", stock(), order("BUY", "100", "LMT", lmtPrice=149.0, tif="GTD",
                               goodTillDate="20250131 16:00:00 US/Eastern",
                               goodAfterTime="20250102 09:45:00 US/Eastern")),
        ("combo", bag(), combo_order),
        ("fx cashQty", fx(), order("BUY", "0", "MKT", cashQty=20000.0, tif="IOC")),
        ("option", option(), order("BUY", "3", "LMT", lmtPrice=5.1, openClose="O", percentOffset=0.01)),
        ("conditional", stock(), conditional),
        ("volatility", *volatility_order()),
        ("scale", stock(), order("BUY", "1000", "LMT", lmtPrice=150.0, scaleInitLevelSize=100,
                                 scaleSubsLevelSize=50, scalePriceIncrement=0.1, scalePriceAdjustValue=0.05,
                                 scalePriceAdjustInterval=60, scaleProfitOffset=0.5, scaleAutoReset=True,
                                 scaleInitPosition=0, scaleInitFillQty=0, scaleRandomPercent=True,
                                 scaleTable="x", activeStartTime="20250102 09:30:00 US/Eastern",
                                 activeStopTime="20250102 16:00:00 US/Eastern")),
        ("hedge", stock(), order("SELL", "100", "MKT", parentId=77, hedgeType="B", hedgeParam="beta=1.2",
                                 dontUseAutoPriceForHedge=True, clearingIntent="Away", clearingAccount="CA1",
                                 settlingFirm="SF", rule80A="A", notHeld=True, optOutSmartRouting=True)),
        ("peg bench", stock(), peg_bench()),
        ("peg mid ats", stock(exchange="IBKRATS"), order("BUY", "100", "PEG MID", minTradeQty=5,
                                       midOffsetAtWhole=0.01, midOffsetAtHalf=0.005)),
        ("peg best up-to-mid", stock(), order("BUY", "100", "PEG BEST", minCompeteSize=100,
                                              competeAgainstBestOffset=math.inf, midOffsetAtWhole=0.02,
                                              midOffsetAtHalf=0.01)),
        ("misc", stock(), order("BUY", "100", "REL", percentOffset=0.02, auxPrice=0.01, discretionaryAmt=0.5,
                                modelCode="MODEL", mifid2DecisionMaker="DM", mifid2DecisionAlgo="DA",
                                mifid2ExecutionTrader="ET", mifid2ExecutionAlgo="EA", isOmsContainer=True,
                                discretionaryUpToLimitPrice=True, usePriceMgmtAlgo=True, duration=60,
                                postToAts=1, autoCancelParent=True, advancedErrorOverride="8229",
                                manualOrderTime="20250102 10:00:00", solicited=True, randomizeSize=True,
                                randomizePrice=True, sweepToFill=True, blockOrder=True, faGroup="G",
                                faMethod="EqualQuantity", faPercentage="", shortSaleSlot=2,
                                designatedLocation="LOC", exemptCode=3, auctionStrategy=1, origin=0,
                                softDollarTier=SoftDollarTier("TierA", "A1", ""),
                                triggerPrice=151.0, adjustedOrderType="STP", adjustedStopPrice=148.0,
                                adjustedStopLimitPrice=147.5, adjustedTrailingAmount=0.5,
                                adjustableTrailingUnit=1, lmtPriceOffset=0.1, extOperator="op-1")),
    ]
    if version >= 192:
        out[-1][2].manualOrderIndicator = 1
    if version >= 183:
        out[-1][2].customerAccount = "CUST1"
    if version >= 184:
        out[-1][2].professionalCustomer = True
    if version >= 189:
        out[-1][2].includeOvernight = True
    if version >= 199:
        out[-1][2].imbalanceOnly = True
    return out


CASE_NAMES = [name for name, _, _ in cases(200)]
ALL = [(v, i) for v in VERSIONS for i in range(len(CASE_NAMES))]


def placed(version: int, index: int) -> tuple[Contract, Order, SimOrder]:
    _, contract, ib_order = cases(version)[index]
    msg_id, r = request_fields(version, lambda c: c.placeOrder(4242, contract, ib_order))
    assert msg_id == OUT.PLACE_ORDER
    sim = parse_place_order(r, version)
    assert r.remaining() == 0, f"{r.remaining()} fields left unread"
    return contract, ib_order, sim


# --- PLACE_ORDER ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version,index", ALL, ids=[f"{v}-{CASE_NAMES[i]}" for v, i in ALL])
def test_place_order_round_trips_every_field(version, index):
    contract, ib_order, sim = placed(version, index)
    assert sim.orderId == 4242
    for name in SENT_CONTRACT_ATTRS:
        assert getattr(sim, name) == norm(getattr(contract, name)), name
    for name in SENT_ORDER_ATTRS:
        expected = norm(getattr(ib_order, name))
        if name == "usePriceMgmtAlgo" and expected is not None:
            expected = bool(expected)
        assert getattr(sim, name) == expected, name
    for name in ("hedgeParam", "deltaNeutralConId", "deltaNeutralSettlingFirm", "deltaNeutralClearingAccount",
                 "deltaNeutralClearingIntent", "deltaNeutralOpenClose", "deltaNeutralShortSale",
                 "deltaNeutralShortSaleSlot", "deltaNeutralDesignatedLocation", "scalePriceAdjustValue",
                 "scalePriceAdjustInterval", "scaleProfitOffset", "scaleAutoReset", "scaleInitPosition",
                 "scaleInitFillQty", "scaleRandomPercent", "referenceContractId", "isPeggedChangeAmountDecrease",
                 "peggedChangeAmount", "referenceChangeAmount", "referenceExchangeId", "minTradeQty",
                 "minCompeteSize", "competeAgainstBestOffset", "midOffsetAtWhole", "midOffsetAtHalf"):
        sent = (name.startswith("deltaNeutral") and ib_order.deltaNeutralOrderType
                or name.startswith("scale") and (ib_order.scalePriceIncrement or 0) > 0
                and ib_order.scalePriceIncrement != UNSET_DOUBLE
                or name == "hedgeParam" and ib_order.hedgeType
                or name in ("referenceContractId", "isPeggedChangeAmountDecrease", "peggedChangeAmount",
                            "referenceChangeAmount", "referenceExchangeId") and ib_order.orderType == "PEG BENCH"
                or name == "minTradeQty" and contract.exchange == "IBKRATS"
                or name in ("minCompeteSize", "competeAgainstBestOffset") and ib_order.orderType == "PEG BEST"
                or name.startswith("midOffset") and ib_order.orderType in ("PEG MID", "PEG BEST"))
        if sent:
            assert getattr(sim, name) == norm(getattr(ib_order, name)), name
    assert sim.algoParams == tag_list(ib_order.algoParams)
    assert sim.smartComboRoutingParams == tag_list(ib_order.smartComboRoutingParams)
    assert [(leg.conId, leg.ratio, leg.action, leg.exchange, leg.openClose, leg.shortSaleSlot,
             leg.designatedLocation, leg.exemptCode) for leg in sim.comboLegs] == \
        [(leg.conId, leg.ratio, leg.action, leg.exchange, leg.openClose, leg.shortSaleSlot,
          leg.designatedLocation, leg.exemptCode) for leg in contract.comboLegs]
    assert sim.orderComboLegs == [norm(leg.price) for leg in ib_order.orderComboLegs or []]
    assert (sim.softDollarTierName, sim.softDollarTierValue) == (ib_order.softDollarTier.name,
                                                                  ib_order.softDollarTier.val)
    dn = contract.deltaNeutralContract
    assert sim.deltaNeutralContract == (None if dn is None else (dn.conId, dn.delta, dn.price))
    assert len(sim.conditions) == len(ib_order.conditions)
    for cond, ib_cond in zip(sim.conditions, ib_order.conditions):
        assert cond.condType == ib_cond.type()
        assert cond.conjunction == ib_cond.isConjunctionConnection
        assert list(cond.raw) == [f.rstrip("\0") for f in ib_cond.make_fields()]


def test_place_order_field_counts_match_reference():
    """Reference §2.3: a plain LMT order is 118 fields after the msg id @200, 113 @178, 114 @176."""
    for version, expected in ((200, 118), (178, 113), (176, 114)):
        client = WireClient(version)
        client.placeOrder(1, stock(), order(order_type="LMT", lmtPrice=1.0))
        assert len(client.last_request()) - 1 == expected


def test_place_order_versions_change_the_layout():
    _, _, sim176 = placed(176, 0)
    _, _, sim200 = placed(200, 0)
    assert sim176 == sim200     # same order, different layouts, same meaning


def test_condition_details_are_parsed():
    _, _, sim = placed(200, CASE_NAMES.index("conditional"))
    price, when, execution = sim.conditions
    assert (price.condType, price.isMore, price.value, price.conId, price.exchange, price.triggerMethod) == \
        (1, True, "151.5", 265598, "SMART", 2)
    assert (when.condType, when.conjunction, when.isMore, when.value) == \
        (3, False, False, "20250102 15:30:00 US/Eastern")
    assert (execution.condType, execution.secType, execution.exchange, execution.symbol) == (5, "STK", "SMART", "MSFT")
    assert sim.conditionsIgnoreRth and sim.conditionsCancelOrder


def _mkt_fields(version: int) -> list[str]:
    client = WireClient(version)
    client.placeOrder(9, stock(), order())
    return client.last_request()


@pytest.mark.parametrize("index,bad,expect", [
    (17, "abc", "totalQuantity"),     # fields[17] is totalQuantity @200 (msg id, orderId, 12 contract, 2 secId, action)
    (1, "x1", "orderId"),
    (28, "yes", "parentId"),
])
def test_garbage_place_order_names_the_field(index, bad, expect):
    fields = _mkt_fields(200)
    fields[index] = bad
    with pytest.raises(ProtocolError, match=expect):
        parse_place_order(FieldReader(fields, "placeOrder", 1), 200)


def test_truncated_place_order_is_a_protocol_error():
    fields = _mkt_fields(178)[:60]
    with pytest.raises(ProtocolError, match="truncated"):
        parse_place_order(FieldReader(fields, "placeOrder", 1), 178)


def test_garbage_counts_and_condition_types_are_rejected():
    client = WireClient(200)
    client.placeOrder(9, stock(), order(order_type="LMT", lmtPrice=1.0, conditions=[time_condition()]))
    fields = client.last_request()
    at = fields.index("3", 80)            # the condition type (Time = 3) follows conditionsCount 1
    assert fields[at - 1] == "1"
    bad_type = list(fields)
    bad_type[at] = "42"
    with pytest.raises(ProtocolError, match="condition type"):
        parse_place_order(FieldReader(bad_type, "placeOrder", 1), 200)
    bad_count = list(fields)
    bad_count[at - 1] = "999999"
    with pytest.raises(ProtocolError, match="conditionsCount"):
        parse_place_order(FieldReader(bad_count, "placeOrder", 1), 200)


# --- other order requests -------------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_cancel_and_global_cancel(version):
    cancel = OrderCancel()
    cancel.manualOrderCancelTime = "20250102 10:00:00"
    msg_id, r = request_fields(version, lambda c: c.cancelOrder(77, cancel))
    assert msg_id == OUT.CANCEL_ORDER
    assert parse_cancel_order(r, version) == (77, "20250102 10:00:00")
    assert r.remaining() == 0

    glob = OrderCancel()
    if version >= 192:
        glob.extOperator, glob.manualOrderIndicator = "op", 0
    msg_id, r = request_fields(version, lambda c: c.reqGlobalCancel(glob))
    assert msg_id == OUT.REQ_GLOBAL_CANCEL
    assert parse_global_cancel(r, version) == (("op", 0) if version >= 192 else ("", None))
    assert r.remaining() == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_req_executions_filter(version):
    f = ExecutionFilter()
    f.clientId, f.acctCode, f.time, f.symbol, f.secType, f.exchange, f.side = (
        3, "DU1234567", "20250102-09:30:00", "AAPL", "STK", "SMART", "BUY")
    if version >= 200:
        f.lastNDays, f.specificDates = 3, [20250102, 20250103]
    msg_id, r = request_fields(version, lambda c: c.reqExecutions(55, f))
    assert msg_id == OUT.REQ_EXECUTIONS
    req_id, parsed = parse_req_executions(r, version)
    assert r.remaining() == 0
    assert req_id == 55
    assert (parsed.clientId, parsed.acctCode, parsed.time, parsed.symbol, parsed.secType, parsed.exchange,
            parsed.side) == (3, "DU1234567", "20250102-09:30:00", "AAPL", "STK", "SMART", "BUY")
    if version >= 200:
        assert (parsed.lastNDays, parsed.specificDates) == (3, [20250102, 20250103])
    else:
        assert (parsed.lastNDays, parsed.specificDates) == (None, [])


def test_req_executions_unset_days_at_200():
    msg_id, r = request_fields(200, lambda c: c.reqExecutions(56, ExecutionFilter()))
    req_id, parsed = parse_req_executions(r, 200)
    assert (req_id, parsed.lastNDays, parsed.specificDates, r.remaining()) == (56, None, [], 0)


# --- OPEN_ORDER -----------------------------------------------------------------------------------------

def what_if_state(version: int) -> OrderStateInfo:
    s = OrderStateInfo(status="PreSubmitted", initMarginBefore="1000.5", maintMarginBefore="900.25",
                       equityWithLoanBefore="100000.0", initMarginChange="3750.0", maintMarginChange="3400.0",
                       equityWithLoanChange="-1.0", initMarginAfter="4750.5", maintMarginAfter="4300.25",
                       equityWithLoanAfter="99999.0", commission=1.0, minCommission=1.0, maxCommission=1.5,
                       commissionCurrency="USD", warningText="check your margin")
    if version >= 195:
        s.marginCurrency, s.initMarginBeforeOutsideRTH, s.equityWithLoanAfterOutsideRTH = "USD", 1100.0, 99000.0
        s.suggestedSize, s.rejectReason = 50.0, "too big"
        s.allocations = [OrderAllocationInfo("DU1", 10.0, 20.0, 30.0, 40.0, 50.0, True)]
    return s


@pytest.mark.parametrize("version,index", ALL, ids=[f"{v}-{CASE_NAMES[i]}" for v, i in ALL])
def test_open_order_decodes_to_what_was_placed(version, index):
    contract, ib_order, sim = placed(version, index)
    sim.clientId, sim.permId = 12, make_perm_id(index, seed=7)
    state = what_if_state(version) if sim.whatIf else OrderStateInfo(status="Submitted")
    events = decode_answer(encode_open_order(sim, state, version), version)
    order_id, got_contract, got, got_state = only(events, "openOrder")
    assert order_id == got.orderId == 4242
    assert (got.clientId, got.permId) == (12, sim.permId)

    for name in ("conId", "symbol", "secType", "lastTradeDateOrContractMonth", "multiplier", "exchange",
                 "currency", "localSymbol", "tradingClass"):
        assert getattr(got_contract, name) == getattr(contract, name), name
    assert got_contract.right == (contract.right or "?")
    assert got_contract.strike == (norm(contract.strike) or 0.0)

    for name in ECHOED_ORDER_ATTRS:
        if name in ("orderId", "clientId", "permId"):
            continue
        expected = norm(getattr(ib_order, name))
        if name in TWS_ECHO:
            expected = TWS_ECHO[name](expected)
        if name == "deltaNeutralConId" and not ib_order.deltaNeutralOrderType:
            expected = 0
        if name == "trailStopPrice":
            expected = sim.trailStopPrice
        assert norm(getattr(got, name)) == expected, name
    assert tag_list(got.algoParams) == tag_list(ib_order.algoParams)
    assert tag_list(got.smartComboRoutingParams) == tag_list(ib_order.smartComboRoutingParams)
    assert [norm(leg.price) for leg in got.orderComboLegs or []] == \
        [norm(leg.price) for leg in ib_order.orderComboLegs or []]
    assert [vars(leg) for leg in got_contract.comboLegs or []] == [vars(leg) for leg in contract.comboLegs]
    assert [(c.type(), str(c)) for c in got.conditions] == [(c.type(), str(c)) for c in ib_order.conditions]
    assert (got.softDollarTier.name, got.softDollarTier.val) == (ib_order.softDollarTier.name,
                                                                  ib_order.softDollarTier.val)
    dn = contract.deltaNeutralContract
    got_dn = got_contract.deltaNeutralContract
    assert (got_dn and (got_dn.conId, got_dn.delta, got_dn.price)) == (dn and (dn.conId, dn.delta, dn.price))

    # version-gated tail
    assert got.customerAccount == (ib_order.customerAccount if version >= 183 else "")
    assert got.professionalCustomer == (ib_order.professionalCustomer if version >= 184 else False)
    assert got.includeOvernight == (ib_order.includeOvernight if version >= 189 else False)
    assert got.imbalanceOnly == (ib_order.imbalanceOnly if version >= 199 else False)
    assert got.extOperator == (ib_order.extOperator if version >= 193 else "")
    assert norm(got.manualOrderIndicator) == (norm(ib_order.manualOrderIndicator) if version >= 193 else None)

    assert got_state.status == state.status
    for name in ("initMarginBefore", "maintMarginBefore", "equityWithLoanBefore", "initMarginChange",
                 "maintMarginChange", "equityWithLoanChange", "initMarginAfter", "maintMarginAfter",
                 "equityWithLoanAfter", "warningText"):
        assert getattr(got_state, name) == getattr(state, name), name
    assert norm(got_state.commissionAndFees) == state.commission
    assert norm(got_state.minCommissionAndFees) == state.minCommission
    assert norm(got_state.maxCommissionAndFees) == state.maxCommission
    assert got_state.commissionAndFeesCurrency == state.commissionCurrency
    if version >= 195:
        assert got_state.marginCurrency == state.marginCurrency
        assert norm(got_state.initMarginBeforeOutsideRTH) == state.initMarginBeforeOutsideRTH
        assert norm(got_state.equityWithLoanAfterOutsideRTH) == state.equityWithLoanAfterOutsideRTH
        assert norm(got_state.maintMarginAfterOutsideRTH) is None
        assert norm(got_state.suggestedSize) == state.suggestedSize
        assert got_state.rejectReason == state.rejectReason
        assert [(a.account, norm(a.position), norm(a.positionDesired), norm(a.positionAfter),
                 norm(a.desiredAllocQty), norm(a.allowedAllocQty), a.isMonetary)
                for a in got_state.orderAllocations or []] == \
            [(a.account, a.position, a.positionDesired, a.positionAfter, a.desiredAllocQty, a.allowedAllocQty,
              a.isMonetary) for a in state.allocations]


def _fixture(name: str) -> list[str]:
    path = shared_fixture(FIXTURE_FRAMES)
    for line in path.read_text().splitlines():
        frame = json.loads(line)
        if frame["name"] == name:
            return frame["fields"]
    raise AssertionError(f"{name} not in {path}")


def _text(fields: tuple) -> list[str]:
    return split_fields(bytes(encode_message(fields)[4:]))


def test_open_order_matches_the_real_tws_frame_at_176():
    real = _fixture("open_order_spy_mkt")
    _, _, placed_mkt = placed(176, CASE_NAMES.index("mkt"))
    assert len(_text(encode_open_order(placed_mkt, OrderStateInfo(), 176))) == len(real)
    # rebuilt from the frame's own values, every field is what a real TWS printed
    spy = SimOrder(orderId=190, conId=756733, symbol="SPY", secType="STK", exchange="SMART", currency="USD",
                   localSymbol="SPY", tradingClass="SPY", action="BUY", totalQuantity=1000, orderType="MKT",
                   tif="IOC", account="DU1234567", orderRef="O-20231203-1921-001-000-2:190", clientId=2,
                   permId=1351823328)
    assert _text(encode_open_order(spy, OrderStateInfo(status="PendingCancel"), 176)) == real


def test_open_order_sizes_grow_with_version():
    _, _, mkt = placed(200, CASE_NAMES.index("mkt"))
    sizes = {v: len(_text(encode_open_order(mkt, OrderStateInfo(), v))) for v in VERSIONS}
    assert sizes[176] == 136
    assert sizes[178] == 135                          # faProfile gone
    # reference §2.2: 147 fields @200 without the 8 delta-neutral extras TWS always sends, plus the msg id
    assert sizes[200] == 147 + 8 + 1


# --- ORDER_STATUS / EXECUTION / COMMISSION ------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_order_status(version):
    fields = encode_order_status(216, "Filled", 3000, 0, 1.08725, 1351823369, 5, 1.08735, 2, "", 0.0, version)
    args = only(decode_answer(fields, version), "orderStatus")
    assert args == (216, "Filled", Decimal(3000), Decimal(0), 1.08725, 1351823369, 5, 1.08735, 2, "", 0.0)
    partial = encode_order_status(217, "Submitted", 0.5, 1.5, 10.0, 9, 0, 10.0, 2, "locate", 12.5, version)
    assert only(decode_answer(partial, version), "orderStatus")[2:4] == (Decimal("0.5"), Decimal("1.5"))
    assert only(decode_answer(partial, version), "orderStatus")[9:] == ("locate", 12.5)


def fill(version) -> ExecutionInfo:
    return ExecutionInfo(execId=make_exec_id(3, 215, 1701652520), time="20231203 20:15:20 US/Eastern",
                         acctNumber="DU5524716", exchange="IDEALPRO", side="BOT", shares=1000, price=1.08735,
                         permId=1351823368, clientId=2, liquidation=0, cumQty=1500, avgPrice=1.0873,
                         orderRef="ref", evRule="aussieBond:YearsToExpiration=3", evMultiplier=0.5,
                         modelCode="M1", lastLiquidity=2, pendingPriceRevision=True, submitter="trader1")


@pytest.mark.parametrize("version", VERSIONS)
def test_execution_details(version):
    _, _, sim = placed(version, CASE_NAMES.index("fx cashQty"))
    e = fill(version)
    req_id, contract, got = only(decode_answer(encode_execution(-1, sim, e, version), version), "execDetails")
    assert req_id == -1
    assert (contract.conId, contract.symbol, contract.secType, contract.exchange, contract.currency,
            contract.localSymbol, contract.right, contract.strike) == \
        (12087792, "EUR", "CASH", "IDEALPRO", "USD", "EUR.USD", "", 0.0)
    assert got.orderId == 4242
    for name in ("execId", "time", "acctNumber", "exchange", "side", "price", "permId", "clientId",
                 "liquidation", "avgPrice", "orderRef", "evRule", "evMultiplier", "modelCode", "lastLiquidity"):
        assert getattr(got, name) == getattr(e, name), name
    assert (got.shares, got.cumQty) == (Decimal(1000), Decimal(1500))
    assert got.pendingPriceRevision == (version >= 178)
    assert got.submitter == ("trader1" if version >= 198 else "")

    _, _, option_order = placed(version, CASE_NAMES.index("option"))
    _, contract, _ = only(decode_answer(encode_execution(7, option_order, e, version), version), "execDetails")
    assert (contract.lastTradeDateOrContractMonth, contract.strike, contract.right, contract.multiplier) == \
        ("20250117", 150.0, "C", "100")


@pytest.mark.parametrize("version", VERSIONS)
def test_commission_report(version):
    (report,) = only(decode_answer(encode_commission_report("0000e215.656d0002.01.01", 2.5, "USD", None, None,
                                                            None, version), version), "commissionAndFeesReport")
    assert (report.execId, report.commissionAndFees, report.currency, report.realizedPNL, report.yield_,
            report.yieldRedemptionDate) == ("0000e215.656d0002.01.01", 2.5, "USD", UNSET_DOUBLE, UNSET_DOUBLE, 0)
    (report,) = only(decode_answer(encode_commission_report("x", 1.0, "USD", -12.5, 0.04, 20300115, version),
                                   version), "commissionAndFeesReport")
    assert (report.realizedPNL, report.yield_, report.yieldRedemptionDate) == (-12.5, 0.04, 20300115)


def test_fixture_frames_field_counts_at_176():
    _, _, sim = placed(176, CASE_NAMES.index("fx cashQty"))
    status = encode_order_status(216, "Filled", 3000, 0, 1.08725, 1351823369, 0, 1.08725, 2, "", 0.0, 176)
    assert _text(status) == _fixture("order_status_filled")
    assert len(_text(encode_execution(-1, sim, fill(176), 176))) == len(_fixture("execution_details_eurusd"))
    commission = encode_commission_report("0000e215.656d0002.01.01", 2.5, "USD", None, None, None, 176)
    assert _text(commission) == _fixture("commission_report")


def test_execution_matches_the_real_frame_at_176():
    real = _fixture("execution_details_eurusd")
    eur = SimOrder(orderId=215, conId=12087792, symbol="EUR", secType="CASH", exchange="IDEALPRO",
                   currency="USD", localSymbol="EUR.USD", tradingClass="EUR.USD")
    e = ExecutionInfo(execId="0000e215.656d0000.01.01", time="20231203 20:15:20 US/Eastern",
                      acctNumber="DU5524716", exchange="IDEALPRO", side="BOT", shares=1000, price=1.08735,
                      permId=1351823368, clientId=2, cumQty=1000, avgPrice=1.08735,
                      orderRef="O-20231204-0115-001-000-3:215", lastLiquidity=2)
    assert _text(encode_execution(-1, eur, e, 176)) == real


# --- COMPLETED_ORDER and small messages --------------------------------------------------------------------

@pytest.mark.parametrize("version,index", ALL, ids=[f"{v}-{CASE_NAMES[i]}" for v, i in ALL])
def test_completed_order_decodes(version, index):
    contract, ib_order, sim = placed(version, index)
    sim.permId, sim.parentPermId, sim.autoCancelDate, sim.refFuturesConId = 1351823400, 1351823399, "20250103", 7
    sim.shareholder, sim.routeMarketableToBbo = "SH", True
    state = OrderStateInfo(status="Filled", filledQuantity=float(sim.totalQuantity),
                           completedTime="20250102 10:01:02 America/New_York", completedStatus="Filled Size: 100")
    got_contract, got, got_state = only(decode_answer(encode_completed_order(sim, state, version), version),
                                        "completedOrder")
    assert (got_contract.conId, got_contract.symbol, got_contract.right) == (contract.conId, contract.symbol,
                                                                             contract.right or "?")
    for name in COMPLETED_ORDER_ATTRS:
        if name == "permId":
            continue
        expected = norm(getattr(ib_order, name))
        if name in TWS_ECHO:
            expected = TWS_ECHO[name](expected)
        if name == "deltaNeutralConId" and not ib_order.deltaNeutralOrderType:
            expected = 0
        if name == "trailStopPrice":
            expected = sim.trailStopPrice
        assert norm(getattr(got, name)) == expected, name
    assert got.permId == 1351823400
    assert tag_list(got.algoParams) == tag_list(ib_order.algoParams)
    assert [vars(leg) for leg in got_contract.comboLegs or []] == [vars(leg) for leg in contract.comboLegs]
    assert [(c.type(), str(c)) for c in got.conditions] == [(c.type(), str(c)) for c in ib_order.conditions]
    assert (got.parentPermId, got.autoCancelDate, got.refFuturesConId, got.shareholder,
            got.routeMarketableToBbo) == (1351823399, "20250103", 7, "SH", True)
    assert norm(got.filledQuantity) == float(sim.totalQuantity)
    assert (got_state.status, got_state.completedTime, got_state.completedStatus) == \
        ("Filled", "20250102 10:01:02 America/New_York", "Filled Size: 100")
    assert got.customerAccount == (ib_order.customerAccount if version >= 183 else "")
    assert got.professionalCustomer == (ib_order.professionalCustomer if version >= 184 else False)
    assert got.imbalanceOnly == ib_order.imbalanceOnly


@pytest.mark.parametrize("version", VERSIONS)
def test_end_markers_and_order_bound(version):
    assert [n for n, _ in decode_answer(encode_completed_orders_end(), version)] == ["completedOrdersEnd"]
    assert [n for n, _ in decode_answer(encode_open_order_end(), version)] == ["openOrderEnd"]
    assert only(decode_answer(encode_execution_end(55), version), "execDetailsEnd") == (55,)
    assert only(decode_answer(encode_order_bound(1351823500, 0, 901), version), "orderBound") == \
        (1351823500, 0, 901)


# --- ids ---------------------------------------------------------------------------------------------

def test_exec_and_perm_ids_are_deterministic_and_unique():
    ids = {make_exec_id(seq, 215, 1701652520) for seq in range(70000)}
    assert len(ids) == 70000
    assert make_exec_id(0, 215, 1701652520) == make_exec_id(0, 215, 1701652520)
    assert make_exec_id(2, 215, 1701652520).endswith(".656d0002.01.01")
    assert correct_exec_id("0000e0d7.656d0002.01.01") == "0000e0d7.656d0002.01.02"
    # two gateway instances: the same order, fill and instant, yet two execIds
    assert make_exec_id(2, 215, 1701652520, instance=0x1a2b) == "1a2be0d7.656d0002.01.01"
    assert make_exec_id(2, 215, 1701652520, instance=1) != make_exec_id(2, 215, 1701652520, instance=2)
    perms = [make_perm_id(seq, seed=7) for seq in range(1000)]
    assert len(set(perms)) == 1000 and perms == [make_perm_id(seq, seed=7) for seq in range(1000)]
    assert make_perm_id(1, seed=7) != make_perm_id(1, seed=8)
