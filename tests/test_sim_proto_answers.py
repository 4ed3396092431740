"""Conformance core: Decoder.interpret(text @200) vs Decoder.processProtoBuf(encode(text))."""
import linecache
import math
import re
import sys
from decimal import Decimal

import pytest
from enum import Enum

from ibapi.decoder import Decoder
from ibapi.message import IN
from ibapi.const import UNSET_DOUBLE, UNSET_INTEGER, UNSET_DECIMAL

from ibframe.sim.protocol.proto_answers import ProtoAnswers, PROTO_SINCE, encode, to_wire, ProtoAnswerError
from ibframe.sim.protocol.proto_objects import Recorder

PA = ProtoAnswers()


# ------------------------------------------------------------------ tracer
class _Tracer:
    """A 'text encoder' for long process* layouts: serves each field the text decoder
    reads from `values`, keyed by the assignment target on the decoder's source line
    (e.g. 'lmtPrice', 'self.contract.symbol'); lists are consumed in order.  The
    served sequence is the v200 text layout of that content."""

    def __init__(self, values):
        self.values = {k: (list(v) if isinstance(v, list) else v) for k, v in values.items()}
        self.out = []

    def __iter__(self):
        return self

    def __next__(self):
        f = sys._getframe(2)               # decode() -> caller
        line = linecache.getline(f.f_code.co_filename, f.f_lineno)
        m = re.search(r"([\w.]+)\s*=\s*(?:getEnumTypeFromString\(\w+,\s*)?decode\(", line)
        key = m.group(1) if m else "_"
        v = self.values.get(key, self.values.get(key.rsplit(".", 1)[-1], ""))
        if isinstance(v, list):
            v = v.pop(0) if v else ""
        self.out.append(to_wire(v))
        if len(self.out) > 2000:
            raise RuntimeError("runaway")
        return self.out[-1]


def traced(msg_id, values):
    tr = _Tracer(values)
    d = Decoder(Recorder(), 200)
    d.msgId2handleInfo[msg_id].processMeth(d, tr)
    return [msg_id] + [b.decode() for b in tr.out]


# -------------------------------------------------------------- comparison
def canon(v):
    if isinstance(v, Enum):
        return ("enum", str(v))
    if isinstance(v, float):
        return ("nan",) if math.isnan(v) else v
    if isinstance(v, Decimal):
        return ("Dnan",) if v.is_nan() else v
    if isinstance(v, (list, tuple)):
        return [canon(x) for x in v]
    if isinstance(v, set):
        return sorted(canon(x) for x in v)
    if isinstance(v, dict):
        return {k: canon(x) for k, x in v.items()}
    if hasattr(v, "__dict__"):
        return (type(v).__name__, {k: canon(x) for k, x in vars(v).items()})
    return v


def text_calls(fields):
    return [(n, canon(a)) for n, a in PA.decode_text(fields)[1]]


def proto_calls(fields):
    res = encode(fields)
    assert res is not None
    msg_id, body = res
    assert msg_id == int(fields[0])
    rec = Recorder()
    Decoder(rec, 226).processProtoBuf(body, msg_id)
    return [(n, canon(a)) for n, a in rec.calls if not n.endswith("ProtoBuf")]


# ----------------------------------------------------------------- samples
STK = dict(conId=265598, symbol="AAPL", secType="STK", lastTradeDateOrContractMonth="", strike=0.0, right="",
           multiplier="", exchange="SMART", primaryExchange="NASDAQ", currency="USD", localSymbol="AAPL",
           tradingClass="NMS")


def open_order(extra=None, completed=False):
    v = dict(orderId=190, conId=756733, symbol="SPY", secType="STK", lastTradeDateOrContractMonth="",
             strike=0.0, right="?", multiplier="", exchange="SMART", currency="USD", localSymbol="SPY",
             tradingClass="SPY", action="BUY", totalQuantity="1000", orderType="LMT", lmtPrice=451.25,
             auxPrice=0.0, tif="GTC", ocaGroup="", account="DU1234567", openClose="", origin=0,
             orderRef="O-20231203-1921-001-000-2:190", clientId=2, permId=1234567890, outsideRth=True,
             hidden=False, discretionaryAmt=0, goodAfterTime="", faGroup="", faMethod="", faPercentage="",
             modelCode="", goodTillDate="", rule80A="", percentOffset="", settlingFirm="", shortSaleSlot=0,
             designatedLocation="", exemptCode=-1, auctionStrategy=0, startingPrice="", stockRefPrice="",
             delta="", stockRangeLower="", stockRangeUpper="", displaySize="", blockOrder=False,
             sweepToFill=False, allOrNone=False, minQty="", ocaType=3, parentId=0, triggerMethod=0,
             volatility="", volatilityType=0, deltaNeutralOrderType="None", deltaNeutralAuxPrice="",
             continuousUpdate=0, referencePriceType=0, trailStopPrice="", trailingPercent="",
             basisPoints="", basisPointsType="", comboLegsDescrip="", comboLegsCount=0, orderComboLegsCount=0,
             smartComboRoutingParamsCount=0, scaleInitLevelSize="", scaleSubsLevelSize="",
             scalePriceIncrement="", hedgeType="", optOutSmartRouting=False, clearingAccount="",
             clearingIntent="IB", notHeld=False, deltaNeutralContractPresent=False,
             algoStrategy="Adaptive", algoParamsCount=1, tag=["adaptivePriority"], value=["Normal"],
             solicited=False, whatIf=False, status="Submitted",
             initMarginBefore="1.7976931348623157E308", maintMarginBefore="", equityWithLoanBefore="",
             initMarginChange="12345.6", maintMarginChange="", equityWithLoanChange="", initMarginAfter="",
             maintMarginAfter="", equityWithLoanAfter="", commissionAndFees="", minCommissionAndFees="",
             maxCommissionAndFees="", commissionAndFeesCurrency="", marginCurrency="USD",
             suggestedSize="", rejectReason="", warningText="", randomizeSize=False, randomizePrice=False,
             conditionsSize=0, adjustedOrderType="None", triggerPrice="", lmtPriceOffset="",
             adjustedStopPrice="", adjustedStopLimitPrice="", adjustedTrailingAmount="",
             adjustableTrailingUnit=0, name="", val="", displayName="", cashQty="",
             dontUseAutoPriceForHedge=True, isOmsContainer=False, discretionaryUpToLimitPrice=False,
             usePriceMgmtAlgo=False, duration="", postToAts="", autoCancelParent=False, minTradeQty="",
             minCompeteSize="", competeAgainstBestOffset="", midOffsetAtWhole="", midOffsetAtHalf="",
             customerAccount="", professionalCustomer=False, bondAccruedInterest="", includeOvernight=False,
             extOperator="", manualOrderIndicator="", submitter="", imbalanceOnly=False,
             completedTime="20231203 19:21:00 US/Eastern", completedStatus="Filled", filledQuantity="1000",
             autoCancelDate="", refFuturesConId=0, shareholder="", routeMarketableToBbo=False, parentPermId=0)
    v.update(extra or {})
    return traced(IN.COMPLETED_ORDER if completed else IN.OPEN_ORDER, v)


BAG_ORDER = dict(secType="BAG", symbol="SPY", conId=28812380, comboLegsDescrip="756733|1,43645865|-2",
                 comboLegsCount=2, conIdleg=0, ratio=[1, 2], action=["BUY", "BUY", "SELL"],
                 orderComboLegsCount=2, price=[1.5, ""], smartComboRoutingParamsCount=1,
                 tag=["NonGuaranteed", "adaptivePriority"], value=["1", "Urgent"], lmtPrice=-1.05)

CD_EURUSD = dict(version=8, reqId=10000, symbol="EUR", secType="CASH", lastTradeDateOrContractMonth="",
                 lastTradeDate="", strike=0.0, right="", exchange="IDEALPRO", currency="USD",
                 localSymbol="EUR.USD", marketName="EUR.USD", tradingClass="EUR.USD", conId=12087792,
                 minTick=5e-05, multiplier="", orderTypes="ACTIVETIM,AD,ADJUST,ALERT,LMT,MKT",
                 validExchanges="IDEALPRO", priceMagnifier=1, underConId=0,
                 longName="European Monetary Union Euro", primaryExchange="", contractMonth="", industry="",
                 category="", subcategory="", timeZoneId="US/Eastern",
                 tradingHours="20231203:1715-20231204:1700;20231204:1715-20231205:1700",
                 liquidHours="20231203:1715-20231204:1700", evRule="", evMultiplier=0, secIdListCount=0,
                 aggGroup=4, underSymbol="", underSecType="", marketRuleIds="3188", realExpirationDate="",
                 stockType="", minSize="0.01", sizeIncrement="0.01", suggestedSizeIncrement="0.01",
                 ineligibilityReasonListCount=0)
CD_OPT = dict(CD_EURUSD, reqId=7, symbol="SPY", secType="OPT", lastTradeDateOrContractMonth="20250620 16:00",
              lastTradeDate="20250620", strike=550.0, right="C", exchange="SMART", localSymbol="SPY   250620C00550000",
              tradingClass="SPY", conId=700000001, minTick=0.01, multiplier="100", underConId=756733,
              secIdListCount=2, tag=["ISIN", "CUSIP"], value=["US78462F1030", "78462F103"], underSymbol="SPY",
              underSecType="STK", ineligibilityReasonListCount=1, id_=["12"], description=["Not eligible"],
              fundDistributionPolicyIndicator="N", fundAssetType="001")
BOND = dict(version=6, reqId=11, symbol="T", secType="BOND", cusip="912828ZT0", coupon=0.25, maturity="",
            lastTradeDateOrContractMonth="20300515", issueDate="20200515", ratings="AA+", bondType="GOVT",
            couponType="FIXED", convertible=False, callable=False, putable=True, descAppend="T 0 1/4 05/15/30",
            exchange="SMART", currency="USD", marketName="GOVT", tradingClass="GOVT", conId=400000001,
            minTick=0.0001, orderTypes="LMT", validExchanges="SMART", nextOptionDate="", nextOptionType="",
            nextOptionPartial=False, notes="note", longName="US TREASURY", timeZoneId="US/Eastern",
            tradingHours="", liquidHours="", evRule="", evMultiplier=0, secIdListCount=0, aggGroup=0,
            marketRuleIds="", minSize="1000", sizeIncrement="1000", suggestedSizeIncrement="1000")
EXEC = dict(reqId=9001, orderId=190, conId=756733, symbol="SPY", secType="STK", lastTradeDateOrContractMonth="",
            strike=0.0, right="", multiplier="", exchange="ARCA", currency="USD", localSymbol="SPY",
            tradingClass="SPY", execId="0000e0d5.6565a1b2.01.01", time="20231203 19:21:00 US/Eastern",
            acctNumber="DU1234567", side="BOT", shares="1000", price=451.25, permId=1234567890, clientId=2,
            liquidation=0, cumQty="1000", avgPrice=451.25, orderRef="ref", evRule="", evMultiplier="",
            modelCode="", lastLiquidity=2, pendingPriceRevision=False, submitter="user1")

NAN, INF = float("nan"), float("inf")


def samples():
    S = {}

    def add(name, fields):
        S[name] = fields

    I = IN
    add("tick_price_bid", [I.TICK_PRICE, 6, 1, 1, 187.25, Decimal("300"), 3])
    add("tick_price_last_unset_size", [I.TICK_PRICE, 6, 1, 4, 187.3, "", 0])
    add("tick_price_nan", [I.TICK_PRICE, 6, 1, 2, NAN, Decimal("1e12"), 7])
    add("tick_price_neg_close", [I.TICK_PRICE, 6, 1, 9, -1.0, "", 0])
    add("tick_price_unset_double", [I.TICK_PRICE, 6, 1, 66, UNSET_DOUBLE, "", 0])
    add("tick_price_inf", [I.TICK_PRICE, 6, 1, 6, INF, 2147483647, 0])
    add("tick_size", [I.TICK_SIZE, 6, 1, 8, Decimal("123456789012.5")])
    add("tick_size_unset", [I.TICK_SIZE, 6, 1, 0, UNSET_DECIMAL])
    add("tick_generic", [I.TICK_GENERIC, 6, 1, 49, 0.0])
    add("tick_generic_nan", [I.TICK_GENERIC, 6, 1, 23, NAN])
    add("tick_string", [I.TICK_STRING, 6, 1, 45, "1704205800"])
    add("tick_string_empty", [I.TICK_STRING, 6, 1, 84, ""])
    add("tick_string_unicode", [I.TICK_STRING, 6, 1, 32, "ÄÖÜ 中文"])
    add("tick_optcomp", [I.TICK_OPTION_COMPUTATION, 1, 13, 0, 0.22, 0.55, 5.25, 0.0, 0.02, 0.3, -0.05, 551.0])
    add("tick_optcomp_notcomputed", [I.TICK_OPTION_COMPUTATION, 1, 10, 1, -1, -2, -1, -1, -2, -2, -2, -1])
    add("tick_snapshot_end", [I.TICK_SNAPSHOT_END, 1, 12])
    add("tick_req_params", [I.TICK_REQ_PARAMS, 1, 0.01, "9c0001", 3])
    add("tick_req_params_unset", [I.TICK_REQ_PARAMS, 1, "", "", 0])
    add("tick_news", [I.TICK_NEWS, 1, 1704205800000, "BRFG", "BRFG$1", "Apple beats", "K:0.97"])
    add("market_data_type", [I.MARKET_DATA_TYPE, 1, 1, 3])
    add("market_depth", [I.MARKET_DEPTH, 1, 21, 0, 0, 1, 187.25, Decimal("500")])
    add("market_depth_unset", [I.MARKET_DEPTH, 1, 21, 3, 2, 0, UNSET_DOUBLE, ""])
    add("market_depth_l2", [I.MARKET_DEPTH_L2, 1, 21, 1, "NSDQ", 1, 1, 187.2, Decimal("100"), True])
    add("reroute_data", [I.REROUTE_MKT_DATA_REQ, 11, 265598, "SMART"])
    add("reroute_depth", [I.REROUTE_MKT_DEPTH_REQ, 21, 265598, "ISLAND"])
    add("order_status", [I.ORDER_STATUS, 190, "Filled", Decimal("1000"), Decimal("0"), 451.25, 1234567890, 0,
                         451.25, 2, "", 0.0])
    add("order_status_unset", [I.ORDER_STATUS, 191, "PreSubmitted", "", "", UNSET_DOUBLE, 0, 0, "", 0,
                               "locate", UNSET_DOUBLE])
    add("order_status_huge_perm", [I.ORDER_STATUS, 192, "Submitted", Decimal("0.5"), Decimal("99999999999"), 0.0,
                                   9223372036854775000, 190, 0.0, -1, "", 1.5])
    add("open_order_adaptive", open_order())
    add("open_order_bag", open_order(BAG_ORDER))
    add("open_order_unicode_ref", open_order(dict(orderRef="ref-é", totalQuantity="0.5", lmtPrice=NAN)))
    add("open_order_end", [I.OPEN_ORDER_END, 1])
    add("order_bound", [I.ORDER_BOUND, 1234567890123, 0, -5])
    add("completed_order", open_order(completed=True))
    add("completed_order_bag", open_order(BAG_ORDER, completed=True))
    add("completed_orders_end", [I.COMPLETED_ORDERS_END])
    add("err_farm", [I.ERR_MSG, -1, 2104, "Market data farm connection is OK:usfarm", "", 1704205800123])
    add("err_reject_json", [I.ERR_MSG, 190, 201, "Order rejected - reason:", '{"reason":"x","ü":1}', 0])
    add("err_unicode", [I.ERR_MSG, 7, 200, "Keine Sicherheitsdefinition für «XYZ»", "", 17])
    add("exec_data", traced(I.EXECUTION_DATA, EXEC))
    add("exec_data_opt", traced(I.EXECUTION_DATA, dict(EXEC, secType="OPT", strike=550.0, right="C",
                                                         multiplier="100", shares="2.5", liquidation=1,
                                                         pendingPriceRevision=True)))
    add("exec_end", [I.EXECUTION_DATA_END, 1, 9001])
    add("commission", [I.COMMISSION_AND_FEES_REPORT, 1, "0000e0d5.6565a1b2.01.01", 1.0, "USD", UNSET_DOUBLE,
                       UNSET_DOUBLE, 0])
    add("commission_bond", [I.COMMISSION_AND_FEES_REPORT, 1, "e2", 2.5, "USD", -10.5, 0.041, 20300515])
    add("contract_data_fx", traced(I.CONTRACT_DATA, CD_EURUSD))
    add("contract_data_opt", traced(I.CONTRACT_DATA, CD_OPT))
    add("bond_contract_data", traced(I.BOND_CONTRACT_DATA, BOND))
    add("bond_contract_data_time", traced(I.BOND_CONTRACT_DATA, dict(BOND, lastTradeDateOrContractMonth="20300515 16:00 US/Eastern")))
    add("contract_data_end", [I.CONTRACT_DATA_END, 1, 10000])
    add("acct_value", [I.ACCT_VALUE, 2, "NetLiquidation", "1000000.00", "USD", "DU1234567"])
    add("portfolio", [I.PORTFOLIO_VALUE, 8, 265598, "AAPL", "STK", "", 0.0, "", "", "NASDAQ", "USD", "AAPL", "NMS",
                      Decimal("-100"), 187.25, -18725.0, 150.0, -3725.0, 0.0, "DU1234567"])
    add("portfolio_opt", [I.PORTFOLIO_VALUE, 8, 700000001, "SPY", "OPT", "20250620", 550.0, "C", "100", "", "USD",
                          "SPY   250620C00550000", "SPY", Decimal("2"), 5.25, 1050.0, 510.0, 30.0, 0.0, "DU1234567"])
    add("acct_time", [I.ACCT_UPDATE_TIME, 1, "19:21"])
    add("acct_end", [I.ACCT_DOWNLOAD_END, 1, "DU1234567"])
    add("managed_accts", [I.MANAGED_ACCTS, 1, "DU1234567,DU7654321"])
    add("position", [I.POSITION_DATA, 3, "DU1234567", 265598, "AAPL", "STK", "", 0.0, "", "", "SMART", "USD", "AAPL",
                     "NMS", Decimal("100"), 150.0])
    add("position_fut_frac", [I.POSITION_DATA, 3, "DU1234567", 495512557, "ES", "FUT", "20250321", 0.0, "", "50",
                              "CME", "USD", "ESH5", "ES", Decimal("0.25"), 5000.5])
    add("position_end", [I.POSITION_END, 1])
    add("acct_summary", [I.ACCOUNT_SUMMARY, 1, 31, "DU1234567", "NetLiquidation", "1000000.00", "USD"])
    add("acct_summary_end", [I.ACCOUNT_SUMMARY_END, 1, 31])
    add("position_multi", [I.POSITION_MULTI, 1, 32, "DU1234567", 265598, "AAPL", "STK", "", 0.0, "", "", "SMART",
                           "USD", "AAPL", "NMS", Decimal("100"), 150.0, "mc"])
    add("position_multi_end", [I.POSITION_MULTI_END, 1, 32])
    add("acct_update_multi", [I.ACCOUNT_UPDATE_MULTI, 1, 33, "DU1234567", "", "CashBalance", "-5.5", "USD"])
    add("acct_update_multi_end", [I.ACCOUNT_UPDATE_MULTI_END, 1, 33])
    add("hist_data", [I.HISTORICAL_DATA, 41, 2, "20250102 09:30:00 US/Eastern", 185.0, 186.5, 184.9, 186.1,
                      Decimal("120000"), Decimal("185.7"), 900, "1735828200", 186.1, 186.2, 186.0, 186.05, "", "", 0])
    add("hist_data_empty", [I.HISTORICAL_DATA, 41, 0])
    add("hist_update", [I.HISTORICAL_DATA_UPDATE, 41, 12, "20250102 09:35:00", 186.1, 186.3, 186.4, 186.0,
                        Decimal("186.2"), Decimal("5000")])
    add("hist_end", [I.HISTORICAL_DATA_END, 41, "20250101 09:30:00", "20250102 16:00:00"])
    add("rt_bar", [I.REAL_TIME_BARS, 3, 44, 1735828200, 186.1, 186.2, 186.0, 186.15, Decimal("1200"),
                   Decimal("186.12"), 17])
    add("head_ts", [I.HEAD_TIMESTAMP, 45, "19801212 14:30:00"])
    add("histogram", [I.HISTOGRAM_DATA, 46, 2, 185.5, Decimal("1000"), 186.0, Decimal("2500")])
    add("hist_ticks", [I.HISTORICAL_TICKS, 47, 2, 1735828200, 0, 186.1, Decimal("0"), 1735828201, 0, 186.2, "", True])
    add("hist_ticks_ba", [I.HISTORICAL_TICKS_BID_ASK, 47, 1, 1735828200, 3, 186.1, 186.2, Decimal("300"),
                          Decimal("400"), False])
    add("hist_ticks_last", [I.HISTORICAL_TICKS_LAST, 47, 2, 1735828200, 2, 186.1, Decimal("100"), "ARCA", "  T",
                            1735828201, 1, 186.2, Decimal("5"), "NYSE", "", True])
    add("tbt_last", [I.TICK_BY_TICK, 48, 1, 1735828200, 186.1, Decimal("100"), 2, "ARCA", "T"])
    add("tbt_alllast", [I.TICK_BY_TICK, 48, 2, 1735828200, 186.1, Decimal("100"), 1, "", ""])
    add("tbt_bidask", [I.TICK_BY_TICK, 48, 3, 1735828200, 186.1, 186.2, Decimal("300"), Decimal("400"), 3])
    add("tbt_mid", [I.TICK_BY_TICK, 48, 4, 1735828200, 186.15])
    add("hist_schedule", [I.HISTORICAL_SCHEDULE, 49, "20250101-09:30:00", "20250103-16:00:00", "US/Eastern", 2,
                          "20250102-09:30:00", "20250102-16:00:00", "20250102",
                          "20250103-09:30:00", "20250103-16:00:00", "20250103"])
    add("news_bulletin", [I.NEWS_BULLETINS, 1, 17, 1, "Exchange is halted", "NYSE"])
    add("news_article", [I.NEWS_ARTICLE, 51, 0, "<html>text</html>"])
    add("news_providers", [I.NEWS_PROVIDERS, 2, "BRFG", "Briefing.com General Market Columns", "DJNL", "Dow Jones"])
    add("hist_news", [I.HISTORICAL_NEWS, 52, "2025-01-02 10:00:00.0", "BRFG", "BRFG$1", "Headline"])
    add("hist_news_end", [I.HISTORICAL_NEWS_END, 52, True])
    add("wsh_meta", [I.WSH_META_DATA, 53, '{"meta":1}'])
    add("wsh_event", [I.WSH_EVENT_DATA, 54, '{"event":2}'])
    add("scanner_params", [I.SCANNER_PARAMETERS, 1, "<ScanParameterResponse/>"])
    add("scanner_data", [I.SCANNER_DATA, 3, 61, 2,
                         0, 265598, "AAPL", "STK", "", 0.0, "", "SMART", "USD", "AAPL", "NMS", "NMS", "", "", "", "",
                         1, 700000001, "SPY", "OPT", "20250620", 550.0, "C", "SMART", "USD", "SPY   250620C00550000",
                         "SPY", "SPY", "1.5", "b", "p", "legs"])
    add("scanner_data_empty", [I.SCANNER_DATA, 3, 61, 0])
    add("pnl", [I.PNL, 62, 1500.5, -200.25, 0.0])
    add("pnl_unset", [I.PNL, 62, UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE])
    add("pnl_single", [I.PNL_SINGLE, 63, Decimal("100"), 15.5, 3725.0, 0.0, 18725.0])
    add("receive_fa", [I.RECEIVE_FA, 1, 1, "<ListOfGroups/>"])
    add("replace_fa_end", [I.REPLACE_FA_END, 64, "FA replaced"])
    add("secdef_opt", [I.SECURITY_DEFINITION_OPTION_PARAMETER, 68, "SMART", 756733, "SPY", "100", 2, "20250620",
                       "20250117", 3, 540.0, 550.0, 560.5])
    add("secdef_opt_end", [I.SECURITY_DEFINITION_OPTION_PARAMETER_END, 68])
    add("soft_dollar", [I.SOFT_DOLLAR_TIERS, 69, 1, "tier", "1", "Tier 1"])
    add("family_codes", [I.FAMILY_CODES, 2, "DU1234567", "F1", "DU7654321", ""])
    add("symbol_samples", [I.SYMBOL_SAMPLES, 70, 2, 265598, "AAPL", "STK", "NASDAQ", "USD", 2, "OPT", "WAR", "", "",
                           400000001, "AAPL", "BOND", "", "USD", 0, "Apple 3.85 05/04/43", "e1"])
    add("smart_components", [I.SMART_COMPONENTS, 71, 2, 1, "ARCA", "P", 2, "NYSE", "N"])
    add("market_rule", [I.MARKET_RULE, 26, 2, 0.0, 0.01, 1.0, 0.05])
    add("user_info", [I.USER_INFO, 72, "wb1"])
    add("next_valid_id", [I.NEXT_VALID_ID, 1, 574])
    add("current_time", [I.CURRENT_TIME, 1, 1735828200])
    add("current_time_ms", [I.CURRENT_TIME_IN_MILLIS, 1735828200123])
    add("verify_msg_api", [I.VERIFY_MESSAGE_API, 1, "apidata"])
    add("verify_completed", [I.VERIFY_COMPLETED, 1, "true", ""])
    add("display_group_list", [I.DISPLAY_GROUP_LIST, 1, 73, "1|2|3"])
    add("display_group_updated", [I.DISPLAY_GROUP_UPDATED, 1, 74, "265598@SMART"])
    add("mkt_depth_exchanges", [I.MKT_DEPTH_EXCHANGES, 2, "NYSE", "STK", "NYSE", "Deep", 1,
                                "ISLAND", "STK", "", "Deep2", UNSET_INTEGER])
    return S


SAMPLES = samples()

def _walk(v, fn):
    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], dict) and isinstance(v[0], str):
        return fn(v[0], {k: _walk(x, fn) for k, x in v[1].items()})
    if isinstance(v, list):
        return [_walk(x, fn) for x in v]
    if isinstance(v, tuple):
        return tuple(_walk(x, fn) for x in v)
    return v


def _sort_maps(kind, d):
    d = dict(d)
    for k in ("secIdList", "algoParams", "smartComboRoutingParams", "orderMiscOptions"):
        if isinstance(d.get(k), list):
            d[k] = sorted(d[k], key=repr)
    return (kind, d)


def _d11(kind, d):
    """D11: None lists -> [] ; D2: OrderState margin strings via float/decimalMaxString."""
    from ibapi.utils import decimalMaxString
    d = dict(d)
    if kind == "Order" and d.get("smartComboRoutingParams") is None:
        d["smartComboRoutingParams"] = []
    if kind == "ContractDetails" and d.get("secIdList") is None and d.get("_cd"):
        d["secIdList"] = []
    for k in ("secIdList", "algoParams", "smartComboRoutingParams", "orderMiscOptions"):   # D6: map order
        if isinstance(d.get(k), list):
            d[k] = sorted(d[k], key=repr)
    if kind == "OrderState":
        for k in ("initMarginBefore", "maintMarginBefore", "equityWithLoanBefore", "initMarginChange",
                  "maintMarginChange", "equityWithLoanChange", "initMarginAfter", "maintMarginAfter",
                  "equityWithLoanAfter"):
            if d[k] != "":
                d[k] = decimalMaxString(float(d[k]))
    return (kind, d)


def _documented(name, calls):
    """Expected protobuf-side callbacks = text-side callbacks + the documented differences."""
    if "contract_data" in name:   # the ContractDetails built for SCANNER_DATA keeps secIdList None on both paths
        calls = [(n, _walk(a, lambda k, d: (k, dict(d, _cd=1)) if k == "ContractDetails" else (k, d))) for n, a in calls]
    calls = [(n, _walk(a, _d11)) for n, a in calls]
    calls = [(n, _walk(a, lambda k, d: (k, {x: y for x, y in d.items() if x != "_cd"}))) for n, a in calls]
    if name.startswith("bond_contract_data"):          # D10
        def fix(kind, d):
            if kind == "ContractDetails" and d["maturity"]:
                c = dict(d["contract"][1])
                c["lastTradeDateOrContractMonth"] = " ".join(
                    [d["maturity"]] + ([d["lastTradeTime"], d["timeZoneId"]] if d["lastTradeTime"] else []))
                d = dict(d, contract=("Contract", c))
            return (kind, d)
        calls = [(n, _walk(a, fix)) for n, a in calls]
    if name == "smart_components":                     # D8
        calls = [(n, [a[0], {x[1]["bitNumber"]: [x[1]["exchange"], x[1]["exchangeLetter"]] for x in a[1]}])
                 for n, a in calls]
    if name == "verify_completed":                     # D9
        calls = [(n, [a[0] == "true", a[1]]) for n, a in calls]
    return calls


def test_documented_differences_are_real():
    """The documented differences really occur (so the normaliser above is not hiding bugs)."""
    t = dict(text_calls(SAMPLES["smart_components"]))["smartComponents"]
    p = dict(proto_calls(SAMPLES["smart_components"]))["smartComponents"]
    assert isinstance(t[1], list) and isinstance(p[1], dict)
    t = text_calls(SAMPLES["open_order_adaptive"])[0][1]
    p = proto_calls(SAMPLES["open_order_adaptive"])[0][1]
    assert t[3][1]["initMarginBefore"] == "1.7976931348623157E308"
    assert p[3][1]["initMarginBefore"] != t[3][1]["initMarginBefore"]
    assert t[3][1]["initMarginChange"] == p[3][1]["initMarginChange"] == "12345.6"
    assert t[2][1]["smartComboRoutingParams"] is None and p[2][1]["smartComboRoutingParams"] == []
    t = text_calls(SAMPLES["bond_contract_data_time"])[0][1][1][1]
    p = proto_calls(SAMPLES["bond_contract_data_time"])[0][1][1][1]
    assert t["contract"][1]["lastTradeDateOrContractMonth"] == ""
    assert p["contract"][1]["lastTradeDateOrContractMonth"] == "20300515 16:00 US/Eastern"
    assert (t["maturity"], t["lastTradeTime"], t["timeZoneId"]) == (p["maturity"], p["lastTradeTime"], p["timeZoneId"])


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_answer_conformance(name):
    fields = SAMPLES[name]
    t = text_calls(fields)
    assert t or name == "hist_data_empty", "text decoder made no callback"
    p = [(n, _walk(a, _sort_maps)) for n, a in proto_calls(fields)]
    assert p == _documented(name, t)


def test_every_kind_has_a_sample():
    covered = {int(f[0]) for f in SAMPLES.values()}
    assert set(PROTO_SINCE) <= covered, sorted(set(PROTO_SINCE) - covered)


def test_no_protobuf_form_returns_none():
    assert encode([IN.TICK_EFP, 1, 1, 38, 0.5, "0.5", 1.0, 30, "20250620", 0.0, 0.0]) is None
    assert encode([IN.DELTA_NEUTRAL_VALIDATION, 1, 1, 756733, 0.5, 550.0]) is None


def test_bad_text_raises():
    with pytest.raises(ProtoAnswerError):
        encode([IN.TICK_PRICE, 6, "x", 1])


def test_proto_since_versions():
    assert PROTO_SINCE[IN.OPEN_ORDER] == 203 and PROTO_SINCE[IN.EXECUTION_DATA] == 201
    assert PROTO_SINCE[IN.TICK_PRICE] == 206 and PROTO_SINCE[IN.NEXT_VALID_ID] == 213
    assert all(201 <= v <= 213 for v in PROTO_SINCE.values())
