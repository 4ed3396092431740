"""Order answers on the wire: OPEN_ORDER, ORDER_STATUS, EXECUTION_DATA and the rest, as TWS writes them.

Owns: the exact field layouts of OPEN_ORDER, ORDER_STATUS, EXECUTION_DATA, COMMISSION_AND_FEES_REPORT,
COMPLETED_ORDER, ORDER_BOUND and their end markers as ``ibapi.decoder`` / ``ibapi.orderdecoder``
read them — every ``serverVersion >=`` branch for the text protocol versions 157..200 — plus the
defaults a real TWS prints in those answers (the values are `order_records`' objects).

Must never: decide anything about orders (acceptance, fills, state transitions, margins), touch a
session or socket, or read the clock. Encoders return plain field tuples (msg id first) for
``Session.send``; ``wire.format_field`` turns them into text.
"""
from __future__ import annotations

import math
from decimal import Decimal

from ibapi import server_versions as sv
from ibapi.message import IN

from ..protocol.wire import UNSET_DOUBLE, UNSET_INTEGER
from .order_records import INFINITY_TEXT, ExecutionInfo, OrderStateInfo, SimOrder, _is_peg_bench


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
