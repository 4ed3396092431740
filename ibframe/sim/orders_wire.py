"""Order wire layer of the simulated paper broker: parse order requests, encode order answers.

Owns: the exact field layouts of PLACE_ORDER, CANCEL_ORDER, REQ_GLOBAL_CANCEL and REQ_EXECUTIONS
as ``ibapi.client`` 10.50 writes them, and of OPEN_ORDER, ORDER_STATUS, EXECUTION_DATA,
COMMISSION_AND_FEES_REPORT, COMPLETED_ORDER, ORDER_BOUND and their end markers as
``ibapi.decoder`` / ``ibapi.orderdecoder`` read them — every ``serverVersion >=`` branch for the
text protocol versions 157..200 — plus the defaults a real TWS prints in those answers, and
TWS-looking execIds and permIds.

Must never: decide anything about orders (acceptance, fills, state transitions, margins), touch a
session or socket, or read the clock. Encoders return plain field tuples (msg id first) for
``Session.send``; ``wire.format_field`` turns them into text.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal

from ibapi import server_versions as sv
from ibapi.message import IN

from .wire import UNSET_DOUBLE, UNSET_INTEGER, FieldReader, ProtocolError

INFINITY_TEXT = "Infinity"          # ibapi's INFINITY_STR (competeAgainstBestOffset "up to mid"), both ways
MAX_COUNT = 10_000                   # no legitimate list in an order is longer; guards garbage counts

# Order condition types (ibapi.order_condition.OrderCondition) and how many fields follow the type.
COND_PRICE, COND_TIME, COND_MARGIN, COND_EXECUTION, COND_VOLUME, COND_PERCENT_CHANGE = 1, 3, 4, 5, 6, 7
CONDITION_NAMES = {COND_PRICE: "Price", COND_TIME: "Time", COND_MARGIN: "Margin",
                   COND_EXECUTION: "Execution", COND_VOLUME: "Volume", COND_PERCENT_CHANGE: "PercentChange"}


# --- value objects ---------------------------------------------------------------------------------

@dataclass(slots=True)
class SimComboLeg:
    """One leg of a BAG contract as placeOrder sends it."""
    conId: int = 0
    ratio: int = 0
    action: str = ""
    exchange: str = ""
    openClose: int = 0
    shortSaleSlot: int = 0
    designatedLocation: str = ""
    exemptCode: int = -1


@dataclass(slots=True)
class SimCondition:
    """An order condition, parsed by type; `raw` keeps its fields exactly as sent (after the type)."""
    condType: int
    conjunction: bool = True            # True = "a" (and), False = "o" (or)
    isMore: bool | None = None          # operator conditions only
    value: str = ""                     # price / time / percent / volume / change as text
    conId: int = 0                      # contract conditions only
    exchange: str = ""
    triggerMethod: int = 0              # price condition only
    secType: str = ""                   # execution condition only
    symbol: str = ""
    raw: tuple[str, ...] = ()

    def fields(self) -> list:
        """The fields after the type, in the order ibapi's condition `decode` reads them."""
        out: list = ["a" if self.conjunction else "o"]
        if self.condType == COND_EXECUTION:
            return out + [self.secType, self.exchange, self.symbol]
        out += [bool(self.isMore), self.value]
        if self.condType in (COND_PRICE, COND_VOLUME, COND_PERCENT_CHANGE):
            out += [self.conId, self.exchange]
        if self.condType == COND_PRICE:
            out.append(self.triggerMethod)
        return out


@dataclass(slots=True)
class SimOrder:
    """Everything a TWS order carries that a broker acts on or echoes back.

    Names mirror ``ibapi.order.Order`` / ``ibapi.contract.Contract`` so encoders and tests read
    side by side with ibapi. Doubles and ints the client leaves unset are None (ibapi sends them
    as "" or as the UNSET sentinels).
    """
    orderId: int = 0
    clientId: int = 0                    # filled by the caller (the session's clientId)
    permId: int = 0                      # assigned by the broker
    parentPermId: int = 0
    # contract
    conId: int = 0
    symbol: str = ""
    secType: str = ""
    lastTradeDateOrContractMonth: str = ""
    strike: float | None = None
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primaryExchange: str = ""
    currency: str = ""
    localSymbol: str = ""
    tradingClass: str = ""
    secIdType: str = ""
    secId: str = ""
    comboLegsDescrip: str = ""
    comboLegs: list[SimComboLeg] = field(default_factory=list)
    orderComboLegs: list[float | None] = field(default_factory=list)
    smartComboRoutingParams: list[tuple[str, str]] = field(default_factory=list)
    deltaNeutralContract: tuple[int, float, float] | None = None   # (conId, delta, price)
    # main order fields
    action: str = ""
    totalQuantity: float = 0.0
    orderType: str = ""
    lmtPrice: float | None = None
    auxPrice: float | None = None
    tif: str = ""
    ocaGroup: str = ""
    account: str = ""
    openClose: str = ""
    origin: int = 0
    orderRef: str = ""
    transmit: bool = True
    parentId: int = 0
    blockOrder: bool = False
    sweepToFill: bool = False
    displaySize: int | None = 0
    triggerMethod: int = 0
    outsideRth: bool = False
    hidden: bool = False
    sharesAllocation: str = ""
    discretionaryAmt: float = 0.0
    goodAfterTime: str = ""
    goodTillDate: str = ""
    faGroup: str = ""
    faMethod: str = ""
    faPercentage: str = ""
    faProfile: str = ""
    modelCode: str = ""
    shortSaleSlot: int = 0
    designatedLocation: str = ""
    exemptCode: int = -1
    ocaType: int = 0
    rule80A: str = ""
    settlingFirm: str = ""
    allOrNone: bool = False
    minQty: int | None = None
    percentOffset: float | None = None
    eTradeOnly: bool = False
    firmQuoteOnly: bool = False
    nbboPriceCap: float | None = None
    auctionStrategy: int = 0
    startingPrice: float | None = None
    stockRefPrice: float | None = None
    delta: float | None = None
    stockRangeLower: float | None = None
    stockRangeUpper: float | None = None
    overridePercentageConstraints: bool = False
    volatility: float | None = None
    volatilityType: int | None = None
    deltaNeutralOrderType: str = ""
    deltaNeutralAuxPrice: float | None = None
    deltaNeutralConId: int = 0
    deltaNeutralSettlingFirm: str = ""
    deltaNeutralClearingAccount: str = ""
    deltaNeutralClearingIntent: str = ""
    deltaNeutralOpenClose: str = ""
    deltaNeutralShortSale: bool = False
    deltaNeutralShortSaleSlot: int = 0
    deltaNeutralDesignatedLocation: str = ""
    continuousUpdate: bool = False
    referencePriceType: int | None = None
    trailStopPrice: float | None = None
    trailingPercent: float | None = None
    basisPoints: float | None = None
    basisPointsType: int | None = None
    scaleInitLevelSize: int | None = None
    scaleSubsLevelSize: int | None = None
    scalePriceIncrement: float | None = None
    scalePriceAdjustValue: float | None = None
    scalePriceAdjustInterval: int | None = None
    scaleProfitOffset: float | None = None
    scaleAutoReset: bool = False
    scaleInitPosition: int | None = None
    scaleInitFillQty: int | None = None
    scaleRandomPercent: bool = False
    scaleTable: str = ""
    activeStartTime: str = ""
    activeStopTime: str = ""
    hedgeType: str = ""
    hedgeParam: str = ""
    optOutSmartRouting: bool = False
    clearingAccount: str = ""
    clearingIntent: str = ""
    notHeld: bool = False
    algoStrategy: str = ""
    algoParams: list[tuple[str, str]] = field(default_factory=list)
    algoId: str = ""
    whatIf: bool = False
    orderMiscOptions: str = ""
    solicited: bool = False
    randomizeSize: bool = False
    randomizePrice: bool = False
    referenceContractId: int = 0
    isPeggedChangeAmountDecrease: bool = False
    peggedChangeAmount: float = 0.0
    referenceChangeAmount: float = 0.0
    referenceExchangeId: str = ""
    conditions: list[SimCondition] = field(default_factory=list)
    conditionsIgnoreRth: bool = False
    conditionsCancelOrder: bool = False
    adjustedOrderType: str = ""
    triggerPrice: float | None = None
    lmtPriceOffset: float | None = None
    adjustedStopPrice: float | None = None
    adjustedStopLimitPrice: float | None = None
    adjustedTrailingAmount: float | None = None
    adjustableTrailingUnit: int = 0
    extOperator: str = ""
    softDollarTierName: str = ""
    softDollarTierValue: str = ""
    softDollarTierDisplayName: str = ""
    cashQty: float | None = None
    mifid2DecisionMaker: str = ""
    mifid2DecisionAlgo: str = ""
    mifid2ExecutionTrader: str = ""
    mifid2ExecutionAlgo: str = ""
    dontUseAutoPriceForHedge: bool = False
    isOmsContainer: bool = False
    discretionaryUpToLimitPrice: bool = False
    usePriceMgmtAlgo: bool | None = None
    duration: int | None = None
    postToAts: int | None = None
    autoCancelParent: bool = False
    advancedErrorOverride: str = ""
    manualOrderTime: str = ""
    minTradeQty: int | None = None
    minCompeteSize: int | None = None
    competeAgainstBestOffset: float | None = None
    midOffsetAtWhole: float | None = None
    midOffsetAtHalf: float | None = None
    customerAccount: str = ""
    professionalCustomer: bool = False
    bondAccruedInterest: str = ""
    includeOvernight: bool = False
    manualOrderIndicator: int | None = None
    submitter: str = ""
    imbalanceOnly: bool = False
    # completed-order extras (echoed only in COMPLETED_ORDER)
    autoCancelDate: str = ""
    refFuturesConId: int = 0
    shareholder: str = ""
    routeMarketableToBbo: bool = False


@dataclass(slots=True)
class OrderAllocationInfo:
    """One FA allocation row of a what-if preview (sent from version 195)."""
    account: str = ""
    position: float | None = None
    positionDesired: float | None = None
    positionAfter: float | None = None
    desiredAllocQty: float | None = None
    allowedAllocQty: float | None = None
    isMonetary: bool = False


@dataclass(slots=True)
class OrderStateInfo:
    """The OrderState part of OPEN_ORDER / COMPLETED_ORDER; what-if previews fill the margins.

    Margin strings default to TWS's "not computed" text, as in a real non-what-if openOrder.
    """
    status: str = "PreSubmitted"
    initMarginBefore: str = "1.7976931348623157E308"
    maintMarginBefore: str = "1.7976931348623157E308"
    equityWithLoanBefore: str = "1.7976931348623157E308"
    initMarginChange: str = "1.7976931348623157E308"
    maintMarginChange: str = "1.7976931348623157E308"
    equityWithLoanChange: str = "1.7976931348623157E308"
    initMarginAfter: str = "1.7976931348623157E308"
    maintMarginAfter: str = "1.7976931348623157E308"
    equityWithLoanAfter: str = "1.7976931348623157E308"
    commission: float | None = None
    minCommission: float | None = None
    maxCommission: float | None = None
    commissionCurrency: str = ""
    marginCurrency: str = ""
    initMarginBeforeOutsideRTH: float | None = None
    maintMarginBeforeOutsideRTH: float | None = None
    equityWithLoanBeforeOutsideRTH: float | None = None
    initMarginChangeOutsideRTH: float | None = None
    maintMarginChangeOutsideRTH: float | None = None
    equityWithLoanChangeOutsideRTH: float | None = None
    initMarginAfterOutsideRTH: float | None = None
    maintMarginAfterOutsideRTH: float | None = None
    equityWithLoanAfterOutsideRTH: float | None = None
    suggestedSize: float | None = None
    rejectReason: str = ""
    allocations: list[OrderAllocationInfo] = field(default_factory=list)
    warningText: str = ""
    # COMPLETED_ORDER only
    filledQuantity: float | None = None
    completedTime: str = ""
    completedStatus: str = ""


@dataclass(slots=True)
class ExecutionInfo:
    """One fill as EXECUTION_DATA reports it."""
    execId: str = ""
    time: str = ""                      # "yyyymmdd hh:mm:ss US/Eastern"
    acctNumber: str = ""
    exchange: str = ""
    side: str = ""                      # BOT / SLD
    shares: float = 0.0
    price: float = 0.0
    permId: int = 0
    clientId: int = 0
    liquidation: int = 0
    cumQty: float = 0.0
    avgPrice: float = 0.0
    orderRef: str = ""
    evRule: str = ""
    evMultiplier: float | None = None
    modelCode: str = ""
    lastLiquidity: int = 0              # 1 added, 2 removed, 3 routed out
    pendingPriceRevision: bool = False  # sent from version 178
    submitter: str = ""                 # sent from version 198


@dataclass(slots=True)
class ExecFilter:
    """REQ_EXECUTIONS filter; empty strings / 0 mean "any"."""
    clientId: int = 0
    acctCode: str = ""
    time: str = ""
    symbol: str = ""
    secType: str = ""
    exchange: str = ""
    side: str = ""
    lastNDays: int | None = None        # from version 200
    specificDates: list[int] = field(default_factory=list)


# --- reading helpers -------------------------------------------------------------------------------

def _opt_float(r: FieldReader, what: str) -> float | None:
    """A double ibapi may leave unset ("" or Double.MAX_VALUE); "Infinity" stays +inf."""
    value = r.float(what, default=None)
    if value is None or value == UNSET_DOUBLE:
        return None
    return value


def _opt_int(r: FieldReader, what: str) -> int | None:
    """An int ibapi may leave unset ("" or 2147483647)."""
    value = r.int(what, default=None)
    if value is None or value == UNSET_INTEGER:
        return None
    return value


def _count(r: FieldReader, what: str) -> int:
    """A list length; negative or absurd values are garbage, not a reason to loop forever."""
    n = r.int(what)
    if n < 0 or n > MAX_COUNT or n > r.remaining():
        raise ProtocolError(f"{r.msg_name} field {r.pos - 1} ({what}): implausible count {n}")
    return n


def _is_peg_bench(order_type: str) -> bool:
    return order_type in ("PEG BENCH", "PEGBENCH")


def _is_peg_best(order_type: str) -> bool:
    return order_type in ("PEG BEST", "PEGBEST")


def _is_peg_mid(order_type: str) -> bool:
    return order_type in ("PEG MID", "PEGMID")


def _read_condition(r: FieldReader, index: int) -> SimCondition:
    start = r.pos
    cond_type = r.int(f"conditions[{index}].type")
    if cond_type not in CONDITION_NAMES:
        raise ProtocolError(f"{r.msg_name} field {start} (conditions[{index}].type): unknown condition type "
                            f"{cond_type}")
    name = f"conditions[{index}]"
    body = r.pos
    cond = SimCondition(cond_type)
    connector = r.str(f"{name}.conjunction")
    if connector not in ("a", "o"):
        raise ProtocolError(f"{r.msg_name} field {r.pos - 1} ({name}.conjunction): expected 'a' or 'o', "
                            f"got {connector[:10]!r}")
    cond.conjunction = connector == "a"
    if cond_type == COND_EXECUTION:
        cond.secType = r.str(f"{name}.secType")
        cond.exchange = r.str(f"{name}.exchange")
        cond.symbol = r.str(f"{name}.symbol")
    else:
        cond.isMore = r.bool(f"{name}.isMore")
        cond.value = r.str(f"{name}.value")
        if cond_type in (COND_PRICE, COND_VOLUME, COND_PERCENT_CHANGE):
            cond.conId = r.int(f"{name}.conId")
            cond.exchange = r.str(f"{name}.exchange")
        if cond_type == COND_PRICE:
            cond.triggerMethod = r.int(f"{name}.triggerMethod")
    cond.raw = tuple(r.fields[body:r.pos])
    return cond


# --- requests --------------------------------------------------------------------------------------

def parse_place_order(r: FieldReader, version: int) -> SimOrder:
    """PLACE_ORDER as ``EClient.placeOrder`` writes it (versions 157..202: no version field)."""
    o = SimOrder()
    o.orderId = r.int("orderId")
    o.conId = r.int("conId")
    o.symbol = r.str("symbol")
    o.secType = r.str("secType")
    o.lastTradeDateOrContractMonth = r.str("lastTradeDateOrContractMonth")
    o.strike = _opt_float(r, "strike")
    o.right = r.str("right")
    o.multiplier = r.str("multiplier")
    o.exchange = r.str("exchange")
    o.primaryExchange = r.str("primaryExchange")
    o.currency = r.str("currency")
    o.localSymbol = r.str("localSymbol")
    o.tradingClass = r.str("tradingClass")
    o.secIdType = r.str("secIdType")
    o.secId = r.str("secId")

    o.action = r.str("action")
    o.totalQuantity = r.float("totalQuantity")
    o.orderType = r.str("orderType")
    o.lmtPrice = _opt_float(r, "lmtPrice")
    o.auxPrice = _opt_float(r, "auxPrice")
    o.tif = r.str("tif")
    o.ocaGroup = r.str("ocaGroup")
    o.account = r.str("account")
    o.openClose = r.str("openClose")
    o.origin = r.int("origin")
    o.orderRef = r.str("orderRef")
    o.transmit = r.bool("transmit")
    o.parentId = r.int("parentId")
    o.blockOrder = r.bool("blockOrder")
    o.sweepToFill = r.bool("sweepToFill")
    o.displaySize = r.int("displaySize")
    o.triggerMethod = r.int("triggerMethod")
    o.outsideRth = r.bool("outsideRth")
    o.hidden = r.bool("hidden")

    if o.secType == "BAG":
        for i in range(_count(r, "comboLegsCount")):
            o.comboLegs.append(SimComboLeg(
                conId=r.int(f"comboLegs[{i}].conId"), ratio=r.int(f"comboLegs[{i}].ratio"),
                action=r.str(f"comboLegs[{i}].action"), exchange=r.str(f"comboLegs[{i}].exchange"),
                openClose=r.int(f"comboLegs[{i}].openClose"),
                shortSaleSlot=r.int(f"comboLegs[{i}].shortSaleSlot"),
                designatedLocation=r.str(f"comboLegs[{i}].designatedLocation"),
                exemptCode=r.int(f"comboLegs[{i}].exemptCode", default=-1)))
        for i in range(_count(r, "orderComboLegsCount")):
            o.orderComboLegs.append(_opt_float(r, f"orderComboLegs[{i}].price"))
        for i in range(_count(r, "smartComboRoutingParamsCount")):
            o.smartComboRoutingParams.append((r.str(f"smartComboRoutingParams[{i}].tag"),
                                              r.str(f"smartComboRoutingParams[{i}].value")))

    o.sharesAllocation = r.str("sharesAllocation")
    o.discretionaryAmt = r.float("discretionaryAmt")
    o.goodAfterTime = r.str("goodAfterTime")
    o.goodTillDate = r.str("goodTillDate")
    o.faGroup = r.str("faGroup")
    o.faMethod = r.str("faMethod")
    o.faPercentage = r.str("faPercentage")
    if version < sv.MIN_SERVER_VER_FA_PROFILE_DESUPPORT:
        o.faProfile = r.str("faProfile")
    o.modelCode = r.str("modelCode")
    o.shortSaleSlot = r.int("shortSaleSlot")
    o.designatedLocation = r.str("designatedLocation")
    o.exemptCode = r.int("exemptCode", default=-1)
    o.ocaType = r.int("ocaType")
    o.rule80A = r.str("rule80A")
    o.settlingFirm = r.str("settlingFirm")
    o.allOrNone = r.bool("allOrNone")
    o.minQty = _opt_int(r, "minQty")
    o.percentOffset = _opt_float(r, "percentOffset")
    o.eTradeOnly = r.bool("eTradeOnly")
    o.firmQuoteOnly = r.bool("firmQuoteOnly")
    o.nbboPriceCap = _opt_float(r, "nbboPriceCap")
    o.auctionStrategy = r.int("auctionStrategy")
    o.startingPrice = _opt_float(r, "startingPrice")
    o.stockRefPrice = _opt_float(r, "stockRefPrice")
    o.delta = _opt_float(r, "delta")
    o.stockRangeLower = _opt_float(r, "stockRangeLower")
    o.stockRangeUpper = _opt_float(r, "stockRangeUpper")
    o.overridePercentageConstraints = r.bool("overridePercentageConstraints")
    o.volatility = _opt_float(r, "volatility")
    o.volatilityType = _opt_int(r, "volatilityType")
    o.deltaNeutralOrderType = r.str("deltaNeutralOrderType")
    o.deltaNeutralAuxPrice = _opt_float(r, "deltaNeutralAuxPrice")
    if o.deltaNeutralOrderType:
        o.deltaNeutralConId = r.int("deltaNeutralConId")
        o.deltaNeutralSettlingFirm = r.str("deltaNeutralSettlingFirm")
        o.deltaNeutralClearingAccount = r.str("deltaNeutralClearingAccount")
        o.deltaNeutralClearingIntent = r.str("deltaNeutralClearingIntent")
        o.deltaNeutralOpenClose = r.str("deltaNeutralOpenClose")
        o.deltaNeutralShortSale = r.bool("deltaNeutralShortSale")
        o.deltaNeutralShortSaleSlot = r.int("deltaNeutralShortSaleSlot")
        o.deltaNeutralDesignatedLocation = r.str("deltaNeutralDesignatedLocation")
    o.continuousUpdate = r.bool("continuousUpdate")
    o.referencePriceType = _opt_int(r, "referencePriceType")
    o.trailStopPrice = _opt_float(r, "trailStopPrice")
    o.trailingPercent = _opt_float(r, "trailingPercent")

    o.scaleInitLevelSize = _opt_int(r, "scaleInitLevelSize")
    o.scaleSubsLevelSize = _opt_int(r, "scaleSubsLevelSize")
    o.scalePriceIncrement = _opt_float(r, "scalePriceIncrement")
    if o.scalePriceIncrement is not None and o.scalePriceIncrement > 0.0:
        o.scalePriceAdjustValue = _opt_float(r, "scalePriceAdjustValue")
        o.scalePriceAdjustInterval = _opt_int(r, "scalePriceAdjustInterval")
        o.scaleProfitOffset = _opt_float(r, "scaleProfitOffset")
        o.scaleAutoReset = r.bool("scaleAutoReset")
        o.scaleInitPosition = _opt_int(r, "scaleInitPosition")
        o.scaleInitFillQty = _opt_int(r, "scaleInitFillQty")
        o.scaleRandomPercent = r.bool("scaleRandomPercent")
    o.scaleTable = r.str("scaleTable")
    o.activeStartTime = r.str("activeStartTime")
    o.activeStopTime = r.str("activeStopTime")

    o.hedgeType = r.str("hedgeType")
    if o.hedgeType:
        o.hedgeParam = r.str("hedgeParam")
    o.optOutSmartRouting = r.bool("optOutSmartRouting")
    o.clearingAccount = r.str("clearingAccount")
    o.clearingIntent = r.str("clearingIntent")
    o.notHeld = r.bool("notHeld")
    if r.bool("deltaNeutralContractPresent"):
        o.deltaNeutralContract = (r.int("deltaNeutralContract.conId"), r.float("deltaNeutralContract.delta"),
                                  r.float("deltaNeutralContract.price"))
    o.algoStrategy = r.str("algoStrategy")
    if o.algoStrategy:
        for i in range(_count(r, "algoParamsCount")):
            o.algoParams.append((r.str(f"algoParams[{i}].tag"), r.str(f"algoParams[{i}].value")))
    o.algoId = r.str("algoId")
    o.whatIf = r.bool("whatIf")
    o.orderMiscOptions = r.str("orderMiscOptions")
    o.solicited = r.bool("solicited")
    o.randomizeSize = r.bool("randomizeSize")
    o.randomizePrice = r.bool("randomizePrice")

    if _is_peg_bench(o.orderType):
        o.referenceContractId = r.int("referenceContractId")
        o.isPeggedChangeAmountDecrease = r.bool("isPeggedChangeAmountDecrease")
        o.peggedChangeAmount = r.float("peggedChangeAmount")
        o.referenceChangeAmount = r.float("referenceChangeAmount")
        o.referenceExchangeId = r.str("referenceExchangeId")
    n_conditions = _count(r, "conditionsCount")
    if n_conditions:
        o.conditions = [_read_condition(r, i) for i in range(n_conditions)]
        o.conditionsIgnoreRth = r.bool("conditionsIgnoreRth")
        o.conditionsCancelOrder = r.bool("conditionsCancelOrder")
    o.adjustedOrderType = r.str("adjustedOrderType")
    o.triggerPrice = _opt_float(r, "triggerPrice")
    o.lmtPriceOffset = _opt_float(r, "lmtPriceOffset")
    o.adjustedStopPrice = _opt_float(r, "adjustedStopPrice")
    o.adjustedStopLimitPrice = _opt_float(r, "adjustedStopLimitPrice")
    o.adjustedTrailingAmount = _opt_float(r, "adjustedTrailingAmount")
    o.adjustableTrailingUnit = r.int("adjustableTrailingUnit")

    o.extOperator = r.str("extOperator")
    o.softDollarTierName = r.str("softDollarTier.name")
    o.softDollarTierValue = r.str("softDollarTier.value")
    o.cashQty = _opt_float(r, "cashQty")
    o.mifid2DecisionMaker = r.str("mifid2DecisionMaker")
    o.mifid2DecisionAlgo = r.str("mifid2DecisionAlgo")
    o.mifid2ExecutionTrader = r.str("mifid2ExecutionTrader")
    o.mifid2ExecutionAlgo = r.str("mifid2ExecutionAlgo")
    o.dontUseAutoPriceForHedge = r.bool("dontUseAutoPriceForHedge")
    o.isOmsContainer = r.bool("isOmsContainer")
    o.discretionaryUpToLimitPrice = r.bool("discretionaryUpToLimitPrice")
    use_algo = _opt_int(r, "usePriceMgmtAlgo")
    o.usePriceMgmtAlgo = None if use_algo is None else use_algo != 0

    if version >= sv.MIN_SERVER_VER_DURATION:
        o.duration = _opt_int(r, "duration")
    if version >= sv.MIN_SERVER_VER_POST_TO_ATS:
        o.postToAts = _opt_int(r, "postToAts")
    if version >= sv.MIN_SERVER_VER_AUTO_CANCEL_PARENT:
        o.autoCancelParent = r.bool("autoCancelParent")
    if version >= sv.MIN_SERVER_VER_ADVANCED_ORDER_REJECT:
        o.advancedErrorOverride = r.str("advancedErrorOverride")
    if version >= sv.MIN_SERVER_VER_MANUAL_ORDER_TIME:
        o.manualOrderTime = r.str("manualOrderTime")
    if version >= sv.MIN_SERVER_VER_PEGBEST_PEGMID_OFFSETS:
        send_mid_offsets = False
        if o.exchange == "IBKRATS":
            o.minTradeQty = _opt_int(r, "minTradeQty")
        if _is_peg_best(o.orderType):
            o.minCompeteSize = _opt_int(r, "minCompeteSize")
            o.competeAgainstBestOffset = _opt_float(r, "competeAgainstBestOffset")
            send_mid_offsets = o.competeAgainstBestOffset == math.inf
        elif _is_peg_mid(o.orderType):
            send_mid_offsets = True
        if send_mid_offsets:
            o.midOffsetAtWhole = _opt_float(r, "midOffsetAtWhole")
            o.midOffsetAtHalf = _opt_float(r, "midOffsetAtHalf")
    if version >= sv.MIN_SERVER_VER_CUSTOMER_ACCOUNT:
        o.customerAccount = r.str("customerAccount")
    if version >= sv.MIN_SERVER_VER_PROFESSIONAL_CUSTOMER:
        o.professionalCustomer = r.bool("professionalCustomer")
    if sv.MIN_SERVER_VER_RFQ_FIELDS <= version < sv.MIN_SERVER_VER_UNDO_RFQ_FIELDS:
        r.str("rfq (deprecated)")
        r.int("rfq (deprecated)")
    if version >= sv.MIN_SERVER_VER_INCLUDE_OVERNIGHT:
        o.includeOvernight = r.bool("includeOvernight")
    if version >= sv.MIN_SERVER_VER_CME_TAGGING_FIELDS:
        o.manualOrderIndicator = _opt_int(r, "manualOrderIndicator")
    if version >= sv.MIN_SERVER_VER_IMBALANCE_ONLY:
        o.imbalanceOnly = r.bool("imbalanceOnly")
    return o


def parse_cancel_order(r: FieldReader, version: int) -> tuple[int, str]:
    """CANCEL_ORDER -> (orderId, manualOrderCancelTime)."""
    if version < sv.MIN_SERVER_VER_CME_TAGGING_FIELDS:
        r.int("version")
    order_id = r.int("orderId")
    cancel_time = ""
    if version >= sv.MIN_SERVER_VER_MANUAL_ORDER_TIME:
        cancel_time = r.str("manualOrderCancelTime")
    if sv.MIN_SERVER_VER_RFQ_FIELDS <= version < sv.MIN_SERVER_VER_UNDO_RFQ_FIELDS:
        r.str("rfq (deprecated)")
        r.str("rfq (deprecated)")
        r.int("rfq (deprecated)")
    if version >= sv.MIN_SERVER_VER_CME_TAGGING_FIELDS:
        r.str("extOperator")
        _opt_int(r, "manualOrderIndicator")
    return order_id, cancel_time


def parse_global_cancel(r: FieldReader, version: int) -> tuple[str, int | None]:
    """REQ_GLOBAL_CANCEL -> (extOperator, manualOrderIndicator); both empty below version 192."""
    if version < sv.MIN_SERVER_VER_CME_TAGGING_FIELDS:
        r.int("version")
        return "", None
    return r.str("extOperator"), _opt_int(r, "manualOrderIndicator")


def parse_req_executions(r: FieldReader, version: int) -> tuple[int, ExecFilter]:
    """REQ_EXECUTIONS (text form, versions below 201) -> (reqId, filter)."""
    r.int("version")
    req_id = r.int("reqId")
    f = ExecFilter(clientId=r.int("clientId"), acctCode=r.str("acctCode"), time=r.str("time"),
                   symbol=r.str("symbol"), secType=r.str("secType"), exchange=r.str("exchange"),
                   side=r.str("side"))
    if version >= sv.MIN_SERVER_VER_PARAMETRIZED_DAYS_OF_EXECUTIONS:
        f.lastNDays = _opt_int(r, "lastNDays")
        for i in range(_count(r, "specificDatesCount")):
            f.specificDates.append(r.int(f"specificDates[{i}]"))
    return req_id, f


# --- answers ---------------------------------------------------------------------------------------

def _qty(value: float | None) -> str:
    """A size as TWS prints a Decimal: '1000', '0.5', '' when unknown."""
    if value is None:
        return ""
    return format(Decimal(repr(float(value))).normalize(), "f")


def _dbl(value: float | None, unset=""):
    """An optional double: the value, or what TWS prints for "unset" in that slot.

    +inf is spelled out here because ibapi's decoder only understands "Infinity".
    """
    if value is None:
        return unset
    return INFINITY_TEXT if value == math.inf else float(value)


def _int(value: int | None, unset=""):
    return unset if value is None else int(value)


def _strike(value: float | None):
    """TWS prints a zero/absent strike in order messages as a bare 0."""
    return 0 if not value else float(value)


def _right(value: str) -> str:
    """Real openOrder frames show '?' for a contract without a right."""
    return value or "?"


def _contract_block(o: SimOrder) -> list:
    return [o.conId, o.symbol, o.secType, o.lastTradeDateOrContractMonth, _strike(o.strike), _right(o.right),
            o.multiplier, o.exchange, o.currency, o.localSymbol, o.tradingClass]


def _shares_allocation(o: SimOrder) -> str:
    """The deprecated allocation slot; real TWS fills it with permId.0/account/100."""
    return o.sharesAllocation or (f"{o.permId}.0/{o.account}/100" if o.account and o.permId else "")


def _delta_neutral(o: SimOrder, open_order_attribs: bool) -> list:
    """Volatility block. TWS reports a missing delta-neutral type as "None" (with its extras)."""
    dn_type = o.deltaNeutralOrderType or "None"
    out = [_dbl(o.volatility), _int(o.volatilityType, 0), dn_type, _dbl(o.deltaNeutralAuxPrice),
           o.deltaNeutralConId]
    if open_order_attribs:
        out += [o.deltaNeutralSettlingFirm, o.deltaNeutralClearingAccount, o.deltaNeutralClearingIntent,
                o.deltaNeutralOpenClose or "?"]
    out += [o.deltaNeutralShortSale, o.deltaNeutralShortSaleSlot, o.deltaNeutralDesignatedLocation,
            o.continuousUpdate, _int(o.referencePriceType, 0)]
    return out


def _combo_block(o: SimOrder) -> list:
    out: list = [o.comboLegsDescrip, len(o.comboLegs)]
    for leg in o.comboLegs:
        out += [leg.conId, leg.ratio, leg.action, leg.exchange, leg.openClose, leg.shortSaleSlot,
                leg.designatedLocation, leg.exemptCode]
    out.append(len(o.orderComboLegs))
    out += [_dbl(p) for p in o.orderComboLegs]
    out.append(len(o.smartComboRoutingParams))
    for tag, value in o.smartComboRoutingParams:
        out += [tag, value]
    return out


def _scale_block(o: SimOrder) -> list:
    out = [_int(o.scaleInitLevelSize, UNSET_INTEGER), _int(o.scaleSubsLevelSize, UNSET_INTEGER),
           _dbl(o.scalePriceIncrement)]
    if o.scalePriceIncrement is not None and o.scalePriceIncrement > 0.0:
        out += [_dbl(o.scalePriceAdjustValue), _int(o.scalePriceAdjustInterval), _dbl(o.scaleProfitOffset),
                o.scaleAutoReset, _int(o.scaleInitPosition), _int(o.scaleInitFillQty), o.scaleRandomPercent]
    return out


def _hedge_block(o: SimOrder) -> list:
    return [o.hedgeType, o.hedgeParam] if o.hedgeType else [o.hedgeType]


def _delta_neutral_contract(o: SimOrder) -> list:
    if o.deltaNeutralContract is None:
        return [False]
    con_id, delta, price = o.deltaNeutralContract
    return [True, con_id, float(delta), float(price)]


def _algo_block(o: SimOrder) -> list:
    if not o.algoStrategy:
        return [""]
    out: list = [o.algoStrategy, len(o.algoParams)]
    for tag, value in o.algoParams:
        out += [tag, value]
    return out


def _peg_bench_block(o: SimOrder) -> list:
    if not _is_peg_bench(o.orderType):
        return []
    return [o.referenceContractId, o.isPeggedChangeAmountDecrease, float(o.peggedChangeAmount),
            float(o.referenceChangeAmount), o.referenceExchangeId]


def _conditions_block(o: SimOrder) -> list:
    out: list = [len(o.conditions)]
    for cond in o.conditions:
        out.append(cond.condType)
        out += cond.fields()
    if o.conditions:
        out += [o.conditionsIgnoreRth, o.conditionsCancelOrder]
    return out


def _peg_best_mid_block(o: SimOrder) -> list:
    return [_int(o.minTradeQty), _int(o.minCompeteSize), _dbl(o.competeAgainstBestOffset),
            _dbl(o.midOffsetAtWhole), _dbl(o.midOffsetAtHalf)]


def _order_state_block(s: OrderStateInfo, version: int) -> list:
    """whatIf info, margins and commissions as decodeWhatIfInfoAndCommissionAndFees reads them."""
    out: list = [s.status, s.initMarginBefore, s.maintMarginBefore, s.equityWithLoanBefore,
                 s.initMarginChange, s.maintMarginChange, s.equityWithLoanChange,
                 s.initMarginAfter, s.maintMarginAfter, s.equityWithLoanAfter,
                 _dbl(s.commission), _dbl(s.minCommission), _dbl(s.maxCommission), s.commissionCurrency]
    if version >= sv.MIN_SERVER_VER_FULL_ORDER_PREVIEW_FIELDS:
        out += [s.marginCurrency,
                _dbl(s.initMarginBeforeOutsideRTH, UNSET_DOUBLE), _dbl(s.maintMarginBeforeOutsideRTH, UNSET_DOUBLE),
                _dbl(s.equityWithLoanBeforeOutsideRTH, UNSET_DOUBLE),
                _dbl(s.initMarginChangeOutsideRTH, UNSET_DOUBLE), _dbl(s.maintMarginChangeOutsideRTH, UNSET_DOUBLE),
                _dbl(s.equityWithLoanChangeOutsideRTH, UNSET_DOUBLE),
                _dbl(s.initMarginAfterOutsideRTH, UNSET_DOUBLE), _dbl(s.maintMarginAfterOutsideRTH, UNSET_DOUBLE),
                _dbl(s.equityWithLoanAfterOutsideRTH, UNSET_DOUBLE),
                _qty(s.suggestedSize), s.rejectReason, len(s.allocations)]
        for a in s.allocations:
            out += [a.account, _qty(a.position), _qty(a.positionDesired), _qty(a.positionAfter),
                    _qty(a.desiredAllocQty), _qty(a.allowedAllocQty), a.isMonetary]
    out.append(s.warningText)
    return out


def encode_open_order(order: SimOrder, state: OrderStateInfo, version: int) -> tuple:
    """OPEN_ORDER (5) in decoder.processOpenOrder's layout, with real TWS's echo defaults."""
    o = order
    f: list = [IN.OPEN_ORDER, o.orderId]
    f += _contract_block(o)
    f += [o.action, _qty(o.totalQuantity), o.orderType, _dbl(o.lmtPrice, 0.0), _dbl(o.auxPrice, 0.0),
          o.tif, o.ocaGroup, o.account, o.openClose, o.origin, o.orderRef, o.clientId, o.permId,
          o.outsideRth, o.hidden, float(o.discretionaryAmt) or 0, o.goodAfterTime, _shares_allocation(o),
          o.faGroup, o.faMethod, o.faPercentage]
    if version < sv.MIN_SERVER_VER_FA_PROFILE_DESUPPORT:
        f.append(o.faProfile)
    f += [o.modelCode, o.goodTillDate, o.rule80A, _dbl(o.percentOffset), o.settlingFirm,
          o.shortSaleSlot, o.designatedLocation, o.exemptCode, o.auctionStrategy,
          _dbl(o.startingPrice), _dbl(o.stockRefPrice), _dbl(o.delta),
          _dbl(o.stockRangeLower), _dbl(o.stockRangeUpper),
          _int(o.displaySize or None, UNSET_INTEGER), o.blockOrder, o.sweepToFill, o.allOrNone,
          _int(o.minQty), o.ocaType or 3, o.eTradeOnly, o.firmQuoteOnly, _dbl(o.nbboPriceCap),
          o.parentId, o.triggerMethod]
    f += _delta_neutral(o, open_order_attribs=True)
    f += [_dbl(o.trailStopPrice), _dbl(o.trailingPercent), _dbl(o.basisPoints), _int(o.basisPointsType)]
    f += _combo_block(o)
    f += _scale_block(o)
    f += _hedge_block(o)
    f += [o.optOutSmartRouting, o.clearingAccount, o.clearingIntent or "IB", o.notHeld]
    f += _delta_neutral_contract(o)
    f += _algo_block(o)
    f += [o.solicited, o.whatIf]
    f += _order_state_block(state, version)
    f += [o.randomizeSize, o.randomizePrice]
    f += _peg_bench_block(o)
    f += _conditions_block(o)
    f += [o.adjustedOrderType or "None", _dbl(o.triggerPrice, UNSET_DOUBLE), _dbl(o.trailStopPrice, UNSET_DOUBLE),
          _dbl(o.lmtPriceOffset, UNSET_DOUBLE), _dbl(o.adjustedStopPrice, UNSET_DOUBLE),
          _dbl(o.adjustedStopLimitPrice, UNSET_DOUBLE), _dbl(o.adjustedTrailingAmount, UNSET_DOUBLE),
          o.adjustableTrailingUnit,
          o.softDollarTierName, o.softDollarTierValue, o.softDollarTierDisplayName,
          _dbl(o.cashQty, 0), True, o.isOmsContainer, o.discretionaryUpToLimitPrice,
          bool(o.usePriceMgmtAlgo)]
    if version >= sv.MIN_SERVER_VER_DURATION:
        f.append(_int(o.duration))
    if version >= sv.MIN_SERVER_VER_POST_TO_ATS:
        f.append(_int(o.postToAts))
    if version >= sv.MIN_SERVER_VER_AUTO_CANCEL_PARENT:
        f.append(o.autoCancelParent)
    if version >= sv.MIN_SERVER_VER_PEGBEST_PEGMID_OFFSETS:
        f += _peg_best_mid_block(o)
    if version >= sv.MIN_SERVER_VER_CUSTOMER_ACCOUNT:
        f.append(o.customerAccount)
    if version >= sv.MIN_SERVER_VER_PROFESSIONAL_CUSTOMER:
        f.append(o.professionalCustomer)
    if version >= sv.MIN_SERVER_VER_BOND_ACCRUED_INTEREST:
        f.append(o.bondAccruedInterest)
    if version >= sv.MIN_SERVER_VER_INCLUDE_OVERNIGHT:
        f.append(o.includeOvernight)
    if version >= sv.MIN_SERVER_VER_CME_TAGGING_FIELDS_IN_OPEN_ORDER:
        f += [o.extOperator, _int(o.manualOrderIndicator)]
    if version >= sv.MIN_SERVER_VER_SUBMITTER:
        f.append(o.submitter)
    if version >= sv.MIN_SERVER_VER_IMBALANCE_ONLY:
        f.append(o.imbalanceOnly)
    return tuple(f)


def encode_completed_order(order: SimOrder, state: OrderStateInfo, version: int) -> tuple:
    """COMPLETED_ORDER (101) in decoder.processCompletedOrderMsg's layout (no orderId, no version)."""
    o = order
    f: list = [IN.COMPLETED_ORDER]
    f += _contract_block(o)
    f += [o.action, _qty(o.totalQuantity), o.orderType, _dbl(o.lmtPrice, 0.0), _dbl(o.auxPrice, 0.0),
          o.tif, o.ocaGroup, o.account, o.openClose, o.origin, o.orderRef, o.permId,
          o.outsideRth, o.hidden, float(o.discretionaryAmt) or 0, o.goodAfterTime,
          o.faGroup, o.faMethod, o.faPercentage]
    if version < sv.MIN_SERVER_VER_FA_PROFILE_DESUPPORT:
        f.append(o.faProfile)
    f += [o.modelCode, o.goodTillDate, o.rule80A, _dbl(o.percentOffset), o.settlingFirm,
          o.shortSaleSlot, o.designatedLocation, o.exemptCode,
          _dbl(o.startingPrice), _dbl(o.stockRefPrice), _dbl(o.delta),
          _dbl(o.stockRangeLower), _dbl(o.stockRangeUpper),
          _int(o.displaySize or None, UNSET_INTEGER), o.sweepToFill, o.allOrNone,
          _int(o.minQty), o.ocaType or 3, o.triggerMethod]
    f += _delta_neutral(o, open_order_attribs=False)
    f += [_dbl(o.trailStopPrice), _dbl(o.trailingPercent)]
    f += _combo_block(o)
    f += _scale_block(o)
    f += _hedge_block(o)
    f += [o.clearingAccount, o.clearingIntent or "IB", o.notHeld]
    f += _delta_neutral_contract(o)
    f += _algo_block(o)
    f += [o.solicited, state.status, o.randomizeSize, o.randomizePrice]
    f += _peg_bench_block(o)
    f += _conditions_block(o)
    f += [_dbl(o.trailStopPrice, UNSET_DOUBLE), _dbl(o.lmtPriceOffset, UNSET_DOUBLE), _dbl(o.cashQty, 0), True,
          o.isOmsContainer, o.autoCancelDate, _qty(state.filledQuantity), o.refFuturesConId,
          o.autoCancelParent, o.shareholder, o.imbalanceOnly, o.routeMarketableToBbo, o.parentPermId,
          state.completedTime, state.completedStatus]
    if version >= sv.MIN_SERVER_VER_PEGBEST_PEGMID_OFFSETS:
        f += _peg_best_mid_block(o)
    if version >= sv.MIN_SERVER_VER_CUSTOMER_ACCOUNT:
        f.append(o.customerAccount)
    if version >= sv.MIN_SERVER_VER_PROFESSIONAL_CUSTOMER:
        f.append(o.professionalCustomer)
    if version >= sv.MIN_SERVER_VER_SUBMITTER:
        f.append(o.submitter)
    return tuple(f)


def encode_completed_orders_end() -> tuple:
    return (IN.COMPLETED_ORDERS_END,)


def encode_open_order_end() -> tuple:
    return (IN.OPEN_ORDER_END, 1)


def encode_order_status(orderId: int, status: str, filled: float, remaining: float, avgFillPrice: float,
                        permId: int, parentId: int, lastFillPrice: float, clientId: int, whyHeld: str,
                        mktCapPrice: float | None, version: int) -> tuple:
    """ORDER_STATUS (3); no version field from 131 (market cap price), as in the real frame."""
    fields: list = [IN.ORDER_STATUS]
    if version < sv.MIN_SERVER_VER_MARKET_CAP_PRICE:
        fields.append(6)
    fields += [orderId, status, _qty(filled), _qty(remaining), float(avgFillPrice), permId, parentId,
               float(lastFillPrice), clientId, whyHeld]
    if version >= sv.MIN_SERVER_VER_MARKET_CAP_PRICE:
        fields.append(float(mktCapPrice) if mktCapPrice else 0)
    return tuple(fields)


def encode_execution(reqId: int, order: SimOrder, execution: ExecutionInfo, version: int) -> tuple:
    """EXECUTION_DATA (11); reqId -1 for unsolicited fills. The contract exchange is where it filled."""
    o, e = order, execution
    fields: list = [IN.EXECUTION_DATA]
    if version < sv.MIN_SERVER_VER_LAST_LIQUIDITY:
        fields.append(10)
    fields += [reqId, o.orderId,
               o.conId, o.symbol, o.secType, o.lastTradeDateOrContractMonth, float(o.strike or 0.0), o.right,
               o.multiplier, e.exchange or o.exchange, o.currency, o.localSymbol, o.tradingClass,
               e.execId, e.time, e.acctNumber, e.exchange, e.side, _qty(e.shares), float(e.price),
               e.permId, e.clientId, e.liquidation, _qty(e.cumQty), float(e.avgPrice), e.orderRef,
               e.evRule, _dbl(e.evMultiplier), e.modelCode]
    if version >= sv.MIN_SERVER_VER_LAST_LIQUIDITY:
        fields.append(e.lastLiquidity)
    if version >= sv.MIN_SERVER_VER_PENDING_PRICE_REVISION:
        fields.append(e.pendingPriceRevision)
    if version >= sv.MIN_SERVER_VER_SUBMITTER:
        fields.append(e.submitter)
    return tuple(fields)


def encode_execution_end(reqId: int) -> tuple:
    return (IN.EXECUTION_DATA_END, 1, reqId)


def encode_commission_report(execId: str, commission: float, currency: str, realizedPNL: float | None,
                             yield_: float | None, yieldRedemptionDate: int | None, version: int) -> tuple:
    """COMMISSION_AND_FEES_REPORT (59), version 1 — same layout at every text version."""
    return (IN.COMMISSION_AND_FEES_REPORT, 1, execId, float(commission), currency,
            _dbl(realizedPNL, UNSET_DOUBLE), _dbl(yield_, UNSET_DOUBLE), yieldRedemptionDate or "")


def encode_order_bound(permId: int, clientId: int, orderId: int) -> tuple:
    """ORDER_BOUND (100): a TWS-entered order bound to an API orderId (reqAutoOpenOrders/bind)."""
    return (IN.ORDER_BOUND, permId, clientId, orderId)


# --- ids -------------------------------------------------------------------------------------------

def make_exec_id(seq: int, order_id: int, epoch: float, leg: int = 1, revision: int = 1) -> str:
    """A TWS-shaped execId ("0000e215.656d0000.01.01"), unique per (order, fill sequence).

    First block tags the order, second is the 65536-s clock block plus the fill sequence,
    then the combo leg and the correction revision.
    """
    head = 0xE000 | (order_id & 0x0FFF)
    body = (((int(epoch) >> 16) + (seq >> 16)) << 16 | (seq & 0xFFFF)) & 0xFFFFFFFF
    return f"{head:08x}.{body:08x}.{leg:02d}.{revision:02d}"


def correct_exec_id(exec_id: str) -> str:
    """The execId of a correction to `exec_id` (TWS bumps the last block)."""
    base, _, rev = exec_id.rpartition(".")
    return f"{base}.{int(rev) + 1:02d}"


def make_perm_id(seq: int, seed: int = 0) -> int:
    """A deterministic permId, unique per gateway seed and order sequence (TWS's are ~1.35e9)."""
    return 1_000_000_000 + (seed % 1000) * 1_000_000 + seq
