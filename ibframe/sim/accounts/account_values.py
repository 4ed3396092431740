"""The figures TWS reports about an account: account tags, segments, currencies and summary rows.

Owns: turning a ledger `Valuation` into what account requests send — the account tags and their
values (buying power, highest severity, segment -S/-C variants, per-currency ledger rows, the
reqAccountSummary rows for a tag list) in TWS's number formats (`money`, `ratio`, `qty`, `price`).
Pure functions of the ledger's valuation.

Must never: change the ledger, send messages, or keep subscription state (account_requests does).
"""
from __future__ import annotations

from decimal import Decimal


from .account import Ledger, Valuation


ACCOUNT_TYPE = "INDIVIDUAL"

LEDGER_TAGS = ("CashBalance", "TotalCashBalance", "AccruedCash", "StockMarketValue", "OptionMarketValue",
               "FutureOptionValue", "FuturesPNL", "NetLiquidationByCurrency", "UnrealizedPnL", "RealizedPnL",
               "ExchangeRate", "FundValue", "NetDividend", "MutualFundValue", "MoneyMarketFundValue",
               "CorporateBondValue", "TBondValue", "TBillValue", "WarrantValue", "FxCashBalance",
               "IssuerOptionValue")
SEGMENTED = ("AvailableFunds", "EquityWithLoanValue", "ExcessLiquidity", "FullAvailableFunds",
             "FullExcessLiquidity", "FullInitMarginReq", "FullMaintMarginReq", "InitMarginReq", "MaintMarginReq",
             "NetLiquidation", "TotalCashValue", "LookAheadAvailableFunds", "LookAheadExcessLiquidity",
             "LookAheadInitMarginReq", "LookAheadMaintMarginReq", "AccruedCash")

# --- formatting -------------------------------------------------------------------------------------

def money(x: float) -> str:
    return f"{x:.2f}"


def ratio(x: float) -> str:
    """Cushion / Leverage as TWS prints them: up to 6 decimals, no trailing zeros ('1', '0.953121')."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def qty(x: float) -> str:
    return format(Decimal(repr(float(x))).normalize(), "f")


def price(x: float) -> float:
    return round(float(x), 8)


# --- account values -----------------------------------------------------------------------------------

def buying_power(ledger: Ledger, v: Valuation) -> float:
    """Reg T: 4 x AvailableFunds (IB's intraday day-trading buying power) with equity >= 25,000 USD, else 2x;
    cash accounts: the available cash."""
    if v.account.is_cash:
        return max(v.available, 0.0)
    factor = 2.0 if v.net_liq * ledger.rate(v.account.currency, "USD") < 25_000 else 4.0
    return max(v.available * factor, 0.0)


def highest_severity(v: Valuation) -> int:
    """0 all well; 1 cushion under 10 %; 2 under 5 %; 3 below maintenance (liquidation)."""
    if v.excess < 0:
        return 3
    if v.cushion < 0.05:
        return 2
    if v.cushion < 0.10:
        return 1
    return 0


def account_tags(ledger: Ledger, v: Valuation) -> dict[str, tuple[str, str]]:
    """Every account-level tag: name -> (value, currency). Counts and ratios carry no currency."""
    acct = v.account
    ccy = acct.currency
    regt_margin = sum(h.req.init for h in v.holdings if h.inst.sec_type == "STK")
    left = ledger.day_trades_remaining(acct, v.net_liq)
    tags = {
        "AccountType": (ACCOUNT_TYPE, ""),
        "NetLiquidation": (money(v.net_liq), ccy),
        "TotalCashValue": (money(v.cash), ccy),
        "SettledCash": (money(v.cash), ccy),
        "AccruedCash": (money(0.0), ccy),
        "BuyingPower": (money(buying_power(ledger, v)), ccy),
        "EquityWithLoanValue": (money(v.elv), ccy),
        "PreviousDayEquityWithLoanValue": (money(acct.previous_day_elv), ccy),
        "GrossPositionValue": (money(v.gross), ccy),
        "RegTEquity": (money(v.elv), ccy),
        "RegTMargin": (money(regt_margin), ccy),
        "SMA": (money(v.elv - regt_margin), ccy),
        "InitMarginReq": (money(v.init), ccy),
        "MaintMarginReq": (money(v.maint), ccy),
        "AvailableFunds": (money(v.available), ccy),
        "ExcessLiquidity": (money(v.excess), ccy),
        "Cushion": (ratio(v.cushion), ""),
        "FullInitMarginReq": (money(v.init), ccy),
        "FullMaintMarginReq": (money(v.maint), ccy),
        "FullAvailableFunds": (money(v.available), ccy),
        "FullExcessLiquidity": (money(v.excess), ccy),
        "LookAheadNextChange": ("0", ""),
        "LookAheadInitMarginReq": (money(v.init), ccy),
        "LookAheadMaintMarginReq": (money(v.maint), ccy),
        "LookAheadAvailableFunds": (money(v.available), ccy),
        "LookAheadExcessLiquidity": (money(v.excess), ccy),
        "HighestSeverity": (str(highest_severity(v)), ""),
        "DayTradesRemaining": (str(left[0]), ""),
        "Leverage": (ratio(v.leverage), ""),
    }
    for k in range(1, 5):
        tags[f"DayTradesRemainingT+{k}"] = (str(left[k]), "")
    tags["ReqTEquity"] = tags["RegTEquity"]         # ibapi's AccountSummaryTags spells these ReqT*
    tags["ReqTMargin"] = tags["RegTMargin"]
    return tags


def segment_values(v: Valuation) -> dict[str, dict[str, float]]:
    """The -S (securities) and -C (commodities: futures) parts of the segmented tags."""
    fut = v.future_pnl
    s = {"NetLiquidation": v.net_liq - fut, "EquityWithLoanValue": v.elv - fut, "TotalCashValue": v.cash,
         "InitMarginReq": v.init - v.init_c, "MaintMarginReq": v.maint - v.maint_c, "AccruedCash": 0.0}
    c = {"NetLiquidation": fut, "EquityWithLoanValue": fut, "TotalCashValue": 0.0,
         "InitMarginReq": v.init_c, "MaintMarginReq": v.maint_c, "AccruedCash": 0.0}
    for part in (s, c):
        part["AvailableFunds"] = part["EquityWithLoanValue"] - part["InitMarginReq"]
        part["ExcessLiquidity"] = part["EquityWithLoanValue"] - part["MaintMarginReq"]
        for name in ("AvailableFunds", "ExcessLiquidity", "InitMarginReq", "MaintMarginReq"):
            part[f"Full{name}"] = part[name]
            part[f"LookAhead{name}"] = part[name]
    return {"S": s, "C": c}


def ledger_currencies(v: Valuation) -> list[str]:
    out = [v.account.currency]
    for h in v.holdings:
        for c in (h.inst.currency, h.inst.symbol if h.inst.sec_type == "CASH" else ""):
            if c and c not in out:
                out.append(c)
    return out


def ledger_rows(ledger: Ledger, v: Valuation, currencies: list[str], base: bool) -> list[tuple[str, str, str]]:
    """The $LEDGER cash-balance tags for each currency (in that currency), and the BASE totals."""
    acct = v.account
    rows: list[tuple[str, str, str]] = []
    for c in currencies:
        vals = dict.fromkeys(LEDGER_TAGS, 0.0)
        cash = acct.cash if c == acct.currency else 0.0
        for h in v.holdings:
            kind = h.inst.sec_type
            if kind == "CASH" and h.inst.symbol == c:
                cash += h.pos.quantity
            if h.inst.currency != c:
                continue
            if kind == "STK":
                vals["StockMarketValue"] += h.market_value
            elif kind == "OPT":
                vals["OptionMarketValue"] += h.market_value
            elif kind == "FOP":
                vals["FutureOptionValue"] += h.market_value
            elif kind == "FUT":
                vals["FuturesPNL"] += h.contribution / h.rate if h.rate else 0.0
            elif kind == "BOND":
                vals["TBondValue" if h.inst.bond.get("bondType") == "US-T" else "CorporateBondValue"] += h.market_value
            if kind != "CASH":
                vals["UnrealizedPnL"] += h.unrealized
            vals["RealizedPnL"] += h.pos.realized
        vals["CashBalance"] = vals["TotalCashBalance"] = cash
        vals["NetLiquidationByCurrency"] = (cash + vals["StockMarketValue"] + vals["OptionMarketValue"]
                                            + vals["FutureOptionValue"] + vals["FuturesPNL"]
                                            + vals["TBondValue"] + vals["CorporateBondValue"])
        rate = ledger.rate(c, acct.currency)
        rows.append(("Currency", c, c))
        for tag in LEDGER_TAGS:
            text = (money(rate) if rate == 1.0 else f"{rate:.8g}") if tag == "ExchangeRate" else money(vals[tag])
            rows.append((tag, text, c))
        rows.append(("RealCurrency", c, c))
    if base:
        totals = {"CashBalance": v.cash, "TotalCashBalance": v.cash, "StockMarketValue": v.stock_value,
                  "OptionMarketValue": v.option_value, "FuturesPNL": v.future_pnl,
                  "NetLiquidationByCurrency": v.net_liq, "UnrealizedPnL": v.unrealized,
                  "RealizedPnL": v.realized, "ExchangeRate": 1.0, "TBondValue": v.bond_value}
        rows.append(("Currency", "BASE", "BASE"))
        for tag in LEDGER_TAGS:
            value = totals.get(tag, 0.0)
            rows.append((tag, "1.00" if tag == "ExchangeRate" else money(value), "BASE"))
        rows.append(("RealCurrency", "BASE", "BASE"))
    return rows


def account_values(ledger: Ledger, v: Valuation, ledger_and_nlv_only: bool = False) -> list[tuple[str, str, str]]:
    """Every updateAccountValue key as (key, value, currency), in a stable order."""
    acct = v.account
    rows: list[tuple[str, str, str]] = []
    currencies = ledger_currencies(v)
    if not ledger_and_nlv_only:
        rows.append(("AccountCode", acct.id, ""))
        rows.append(("AccountReady", "true", ""))
        for c in currencies + ["BASE"]:
            rows.append(("AccountOrGroup", acct.id, c))
        tags = account_tags(ledger, v)
        segments = segment_values(v)
        for name, (value, ccy) in tags.items():
            if name in ("ReqTEquity", "ReqTMargin"):
                continue
            rows.append((name, value, ccy))
            if name in SEGMENTED:
                for seg in ("C", "S"):
                    rows.append((f"{name}-{seg}", money(segments[seg][name]), ccy))
        rows.append(("GrossPositionValue-S", money(v.gross), acct.currency))
        rows.append(("Leverage-S", ratio(v.leverage), ""))
        rows.append(("PreviousDayEquityWithLoanValue-S", money(acct.previous_day_elv), acct.currency))
        rows.append(("TradingType-S", "STKNOPT", ""))
    else:
        rows.append(("NetLiquidation", money(v.net_liq), acct.currency))
    rows.extend(ledger_rows(ledger, v, currencies, base=True))
    return rows


def summary_rows(ledger: Ledger, v: Valuation, tags: list[str]) -> list[tuple[str, str, str]]:
    """reqAccountSummary rows for one account: the requested tags in request order, then ledger groups."""
    values = account_tags(ledger, v)
    rows = [(t, *values[t]) for t in tags if t in values]
    for t in tags:
        if not t.startswith("$LEDGER"):
            continue
        _, _, which = t.partition(":")
        which = which.upper()
        if which == "ALL":
            rows.extend(ledger_rows(ledger, v, ledger_currencies(v), base=True))
        else:
            rows.extend(ledger_rows(ledger, v, [which or v.account.currency], base=False))
    return rows
