"""Order requests on the wire: PLACE_ORDER, CANCEL_ORDER, REQ_GLOBAL_CANCEL and REQ_EXECUTIONS, as read.

Owns: the exact field layouts of PLACE_ORDER, CANCEL_ORDER, REQ_GLOBAL_CANCEL and REQ_EXECUTIONS
as ``ibapi.client`` 10.50 writes them — every ``serverVersion >=`` branch for the text protocol
versions 157..200 — read into `order_records`' values (`SimOrder`, `ExecFilter`), with guards
against garbage counts and unknown condition types.

Must never: decide anything about orders (acceptance, fills, state transitions, margins), touch a
session or socket, or read the clock; answers are `order_answers_wire`'s.
"""
from __future__ import annotations

import math

from ibapi import server_versions as sv

from ..protocol.wire import UNSET_DOUBLE, UNSET_INTEGER, FieldReader, ProtocolError
from .order_records import (
    CONDITION_NAMES, COND_EXECUTION, COND_PERCENT_CHANGE, COND_PRICE, COND_VOLUME, MAX_COUNT, ExecFilter,
    SimComboLeg, SimCondition, SimOrder, _is_peg_bench, _is_peg_best, _is_peg_mid,
)

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
