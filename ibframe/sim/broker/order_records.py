"""Order records of the simulated paper broker: the values its order wire layer reads and writes.

Owns: `SimOrder` (every field placeOrder carries, named as ``ibapi.order.Order`` names them, with
the defaults a real TWS prints), `SimComboLeg`, `SimCondition` and the order-condition types,
`OrderAllocationInfo`, `OrderStateInfo`, `ExecutionInfo`, `ExecFilter`, and TWS-looking execIds
and permIds (`make_exec_id`, `correct_exec_id`, `make_perm_id`).

Must never: read or write wire fields (`order_requests_wire` parses, `order_answers_wire` encodes),
decide anything about orders, touch a session or socket, or read the clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field




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


# --- order-type families -------------------------------------------------------------------------

def _is_peg_bench(order_type: str) -> bool:
    return order_type in ("PEG BENCH", "PEGBENCH")


def _is_peg_best(order_type: str) -> bool:
    return order_type in ("PEG BEST", "PEGBEST")


def _is_peg_mid(order_type: str) -> bool:
    return order_type in ("PEG MID", "PEGMID")


# --- ids -------------------------------------------------------------------------------------------

def make_exec_id(seq: int, order_id: int, epoch: float, leg: int = 1, revision: int = 1, instance: int = 0) -> str:
    """A TWS-shaped execId ("0000e215.656d0000.01.01"), unique per (order, fill sequence).

    First block tags the gateway instance (its upper four digits; 0000 for none) and the order,
    second is the 65536-s clock block plus the fill sequence, then the combo leg and the
    correction revision. The instance keeps two simulators' executions apart (TWS's execIds are
    unique across sessions, and a journal stores each execId once).
    """
    head = (instance & 0xFFFF) << 16 | 0xE000 | (order_id & 0x0FFF)
    body = (((int(epoch) >> 16) + (seq >> 16)) << 16 | (seq & 0xFFFF)) & 0xFFFFFFFF
    return f"{head:08x}.{body:08x}.{leg:02d}.{revision:02d}"


def correct_exec_id(exec_id: str) -> str:
    """The execId of a correction to `exec_id` (TWS bumps the last block)."""
    base, _, rev = exec_id.rpartition(".")
    return f"{base}.{int(rev) + 1:02d}"


def make_perm_id(seq: int, seed: int = 0) -> int:
    """A deterministic permId, unique per gateway seed and order sequence (TWS's are ~1.35e9)."""
    return 1_000_000_000 + (seed % 1000) * 1_000_000 + seq
