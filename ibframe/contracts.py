"""Contract builders for every asset class, and contracts from config mappings.

Owns: turning what a user writes (`Stock("AAPL")`, a YAML mapping) into `ibapi.contract.Contract`
objects, and a short human label for each. Qualification (asking TWS which contract that is)
lives in the engine; this module never talks to TWS.
"""
from __future__ import annotations

from ibapi.contract import ComboLeg, Contract


class ContractError(ValueError):
    """A contract that cannot be built or qualified; the text says what to change."""


def _make(**fields) -> Contract:
    c = Contract()
    for key, value in fields.items():
        if value is not None:
            setattr(c, key, value)
    return c


def Stock(symbol: str, exchange: str = "SMART", currency: str = "USD", primary_exchange: str = "") -> Contract:
    return _make(symbol=symbol, secType="STK", exchange=exchange, currency=currency,
                 primaryExchange=primary_exchange)


def Option(symbol: str, expiry: str, strike: float, right: str, exchange: str = "SMART",
           currency: str = "USD", multiplier: str = "100", trading_class: str = "") -> Contract:
    right = right.upper()[:1]
    if right not in ("C", "P"):
        raise ContractError(f"option right must be C/CALL or P/PUT, got {right!r}")
    return _make(symbol=symbol, secType="OPT", lastTradeDateOrContractMonth=str(expiry), strike=float(strike),
                 right=right, exchange=exchange, currency=currency, multiplier=multiplier,
                 tradingClass=trading_class)


def Future(symbol: str, expiry: str = "", exchange: str = "CME", currency: str = "USD",
           local_symbol: str = "") -> Contract:
    return _make(symbol=symbol, secType="FUT", lastTradeDateOrContractMonth=str(expiry), exchange=exchange,
                 currency=currency, localSymbol=local_symbol)


def Forex(pair: str, exchange: str = "IDEALPRO") -> Contract:
    base, _, quote = pair.replace("/", ".").partition(".")
    if len(base) != 3 or len(quote) != 3:
        raise ContractError(f"forex pair must look like EUR.USD, got {pair!r}")
    return _make(symbol=base.upper(), secType="CASH", currency=quote.upper(), exchange=exchange)


def Bond(cusip: str = "", con_id: int = 0, exchange: str = "SMART", currency: str = "USD") -> Contract:
    if not cusip and not con_id:
        raise ContractError("a bond needs its CUSIP (symbol) or its conId")
    return _make(symbol=cusip, secType="BOND", conId=con_id, exchange=exchange, currency=currency)


def Combo(symbol: str, legs: list[tuple[int, int, str]], exchange: str = "SMART", currency: str = "USD") -> Contract:
    """A BAG of (conId, ratio, action) legs; conIds come from qualified contracts."""
    c = _make(symbol=symbol, secType="BAG", exchange=exchange, currency=currency)
    c.comboLegs = []
    for con_id, ratio, action in legs:
        leg = ComboLeg()
        leg.conId, leg.ratio, leg.action, leg.exchange = int(con_id), int(ratio), action.upper(), exchange
        c.comboLegs.append(leg)
    return c


BUILDERS = {"STK": Stock, "OPT": Option, "FUT": Future, "CASH": Forex, "BOND": Bond}

# YAML key -> Contract attribute
CONFIG_KEYS = {
    "symbol": "symbol", "secType": "secType", "exchange": "exchange", "currency": "currency",
    "primaryExchange": "primaryExchange", "expiry": "lastTradeDateOrContractMonth",
    "lastTradeDateOrContractMonth": "lastTradeDateOrContractMonth", "strike": "strike", "right": "right",
    "multiplier": "multiplier", "localSymbol": "localSymbol", "tradingClass": "tradingClass", "conId": "conId",
    "pair": None,
}


def from_mapping(spec: dict) -> Contract:
    """A contract from a config mapping such as {secType: STK, symbol: AAPL} or {pair: EUR.USD}."""
    unknown = set(spec) - set(CONFIG_KEYS)
    if unknown:
        raise ContractError(f"unknown contract key(s) {sorted(unknown)}; allowed: {sorted(CONFIG_KEYS)}")
    if "pair" in spec:
        return Forex(str(spec["pair"]), str(spec.get("exchange", "IDEALPRO")))
    sec_type = str(spec.get("secType", "STK")).upper()
    if sec_type not in BUILDERS and sec_type != "BAG":
        raise ContractError(f"secType {sec_type!r} is not one of {sorted(BUILDERS)}")
    c = Contract()
    c.secType = sec_type
    c.exchange = "SMART"
    c.currency = "USD"
    for key, value in spec.items():
        attr = CONFIG_KEYS[key]
        if attr == "strike":
            value = float(value)
        elif attr == "conId":
            value = int(value)
        elif attr == "secType":
            value = sec_type
        else:
            value = str(value)
        setattr(c, attr, value)
    if not c.symbol and not c.conId and not c.localSymbol:
        raise ContractError("a contract needs a symbol, a localSymbol or a conId")
    return c


def label(c: Contract) -> str:
    """Short human name: 'AAPL', 'AAPL 20261218 190C', 'ESZ6', 'EUR.USD'."""
    if c.secType == "OPT":
        return f"{c.symbol} {c.lastTradeDateOrContractMonth} {c.strike:g}{c.right}"
    if c.secType == "CASH":
        return f"{c.symbol}.{c.currency}"
    if c.secType == "FUT":
        return c.localSymbol or f"{c.symbol} {c.lastTradeDateOrContractMonth}"
    return c.localSymbol or c.symbol or f"conId {c.conId}"
