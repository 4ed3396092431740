"""Contract builders for every asset class, and contracts from config mappings.

Owns: turning what a user writes (`Stock("AAPL")`, a YAML mapping) into `ibapi.contract.Contract`
objects, and a short human label for each. Qualification (asking TWS which contract that is)
lives in the engine; this module never talks to TWS.
"""
from __future__ import annotations

from ibapi.contract import ComboLeg, Contract


class ContractError(ValueError):
    """A contract that cannot be built or qualified; the text says what to change.

    `key` is the path of the offending key inside the mapping it was built from (e.g. ('legs', 1, 'ratio')),
    so a config error can name its line."""

    def __init__(self, message: str, key: tuple = ()):
        super().__init__(message)
        self.key = key


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


class ComboContract(Contract):
    """A BAG that also knows each leg's full contract: `leg_contracts[i]` describes `comboLegs[i]`.

    TWS only needs the legs' conIds; the descriptions are what a config names (qualified by the engine)
    and what a summary prints. Encodes on the wire exactly like a plain BAG Contract."""

    def __init__(self):
        super().__init__()
        self.leg_contracts: list[Contract] = []


def Combo(symbol: str, legs: list[tuple], exchange: str = "SMART", currency: str = "USD") -> ComboContract:
    """A BAG of (conId or Contract, ratio, action[, leg exchange]) legs; conIds come from qualified contracts."""
    c = ComboContract()
    for key, value in (("symbol", symbol), ("secType", "BAG"), ("exchange", exchange), ("currency", currency)):
        setattr(c, key, value)
    c.comboLegs = []
    for n, spec in enumerate(legs, start=1):
        what, ratio, action = spec[0], spec[1], str(spec[2]).upper()
        if action not in ("BUY", "SELL", "SSHORT"):
            raise ContractError(f"combo leg {n}: action must be BUY or SELL, got {spec[2]!r}",
                                ("legs", n - 1, "action"))
        if int(ratio) < 1:
            raise ContractError(f"combo leg {n}: ratio must be a whole number >= 1, got {ratio!r}",
                                ("legs", n - 1, "ratio"))
        leg = ComboLeg()
        leg_contract = what if isinstance(what, Contract) else _make(conId=int(what))
        leg.conId, leg.ratio, leg.action = int(leg_contract.conId or 0), int(ratio), action
        leg.exchange = (spec[3] if len(spec) > 3 and spec[3] else "") or exchange
        c.comboLegs.append(leg)
        c.leg_contracts.append(leg_contract)
    return c


BUILDERS = {"STK": Stock, "OPT": Option, "FUT": Future, "CASH": Forex, "BOND": Bond}

# YAML key -> Contract attribute
CONFIG_KEYS = {
    "symbol": "symbol", "secType": "secType", "exchange": "exchange", "currency": "currency",
    "primaryExchange": "primaryExchange", "expiry": "lastTradeDateOrContractMonth",
    "lastTradeDateOrContractMonth": "lastTradeDateOrContractMonth", "strike": "strike", "right": "right",
    "multiplier": "multiplier", "localSymbol": "localSymbol", "tradingClass": "tradingClass", "conId": "conId",
    "pair": None, "legs": None,
}
LEG_KEYS = {"action", "ratio", "exchange"} | (set(CONFIG_KEYS) - {"pair", "legs"})


def from_mapping(spec: dict) -> Contract:
    """A contract from a config mapping such as {secType: STK, symbol: AAPL}, {pair: EUR.USD} or a combo
    {secType: BAG, legs: [{action: BUY, ratio: 1, conId: 123}, {action: SELL, symbol: AAPL, secType: OPT, …}]}."""
    unknown = set(spec) - set(CONFIG_KEYS)
    if unknown:
        raise ContractError(f"unknown contract key(s) {sorted(unknown)}; allowed: {sorted(CONFIG_KEYS)}",
                            (sorted(unknown)[0],))
    if "pair" in spec:
        return Forex(str(spec["pair"]), str(spec.get("exchange", "IDEALPRO")))
    if "legs" in spec or str(spec.get("secType", "")).upper() == "BAG":
        return _combo_from_mapping(spec)
    sec_type = str(spec.get("secType", "" if "conId" in spec else "STK")).upper()
    if sec_type not in BUILDERS and sec_type != "":
        raise ContractError(f"secType {sec_type!r} is not one of {sorted(BUILDERS)} (BAG: give legs)", ("secType",))
    c = Contract()
    c.secType = sec_type                   # a bare conId needs no secType: TWS finds the contract by it
    c.exchange = "SMART"
    c.currency = "USD"
    for key, value in spec.items():
        attr = CONFIG_KEYS[key]
        try:
            if attr == "strike":
                value = float(value)
            elif attr == "conId":
                value = int(value)
            elif attr == "secType":
                value = sec_type
            else:
                value = str(value)
        except (TypeError, ValueError):
            raise ContractError(f"{key} must be a number, got {value!r}", (key,)) from None
        setattr(c, attr, value)
    if not c.symbol and not c.conId and not c.localSymbol:
        raise ContractError("a contract needs a symbol, a localSymbol or a conId")
    return c


def _combo_from_mapping(spec: dict) -> ComboContract:
    """A BAG from {secType: BAG, symbol?, exchange?, currency?, legs: [...]}; each leg is a conId or a
    contract description, with action (BUY/SELL) and ratio (default 1). The engine qualifies the legs."""
    if str(spec.get("secType", "BAG")).upper() != "BAG":
        raise ContractError(f"legs belong to a combo: write secType: BAG, not {spec['secType']!r}", ("secType",))
    combo_only = {"secType", "symbol", "exchange", "currency", "legs"}
    extra = sorted(set(spec) - combo_only)
    if extra:
        raise ContractError(f"{extra[0]} does not apply to a combo (BAG); a combo takes "
                            f"{', '.join(sorted(combo_only))}; put contract fields in its legs", (extra[0],))
    raw_legs = spec.get("legs")
    example = "e.g. legs: [{action: BUY, ratio: 1, conId: 265598}, {action: SELL, ratio: 1, symbol: MSFT}]"
    if not isinstance(raw_legs, list) or len(raw_legs) < 2:
        raise ContractError(f"a combo needs a list of at least two legs, {example}", ("legs",))
    legs = []
    for i, raw in enumerate(raw_legs):
        where = f"leg {i + 1}"
        if not isinstance(raw, dict):
            raise ContractError(f"{where} must be a mapping with action, ratio and a conId or contract fields, "
                                f"got {raw!r}", ("legs", i))
        unknown = sorted(set(raw) - LEG_KEYS)
        if unknown:
            raise ContractError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(LEG_KEYS))}",
                                ("legs", i, unknown[0]))
        action = str(raw.get("action", "")).upper()
        if action not in ("BUY", "SELL"):
            raise ContractError(f"{where}: action must be BUY or SELL, got {raw.get('action')!r}",
                                ("legs", i, "action") if "action" in raw else ("legs", i))
        ratio = raw.get("ratio", 1)
        if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
            raise ContractError(f"{where}: ratio must be a whole number >= 1, got {ratio!r}", ("legs", i, "ratio"))
        fields = {k: v for k, v in raw.items() if k not in ("action", "ratio", "exchange")}
        if not fields:
            raise ContractError(f"{where}: name the leg's contract: its conId, or symbol/secType/expiry/strike/"
                                f"right", ("legs", i))
        if "exchange" in raw and set(fields) != {"conId"}:
            fields["exchange"] = raw["exchange"]
        try:
            leg_contract = from_mapping(fields)
        except ContractError as exc:
            raise ContractError(f"{where}: {exc}", ("legs", i) + exc.key) from None
        legs.append((leg_contract, ratio, action, str(raw.get("exchange", ""))))
    return Combo(str(spec.get("symbol", "")), legs, str(spec.get("exchange", "SMART")),
                 str(spec.get("currency", "USD")))


def label(c: Contract) -> str:
    """Short human name: 'AAPL', 'AAPL 20261218 190C', 'ESZ6', 'ES 202612', 'EUR.USD', or a combo's
    'combo AAPL 2 legs (+1 AAPL 20261218 190C, -1 AAPL 20261218 200C)'."""
    if c.secType == "BAG":
        return combo_label(c)
    if c.secType == "OPT":
        strike = f"{c.strike:g}{c.right}" if c.strike and c.strike < 1e300 else c.right    # unset: 0 or DBL_MAX
        return _join(c.symbol, c.lastTradeDateOrContractMonth, strike) or f"conId {c.conId}"
    if c.secType == "CASH":
        return f"{c.symbol}.{c.currency}"
    if c.secType == "FUT":
        return c.localSymbol or _join(c.symbol, c.lastTradeDateOrContractMonth) or f"conId {c.conId}"
    return c.localSymbol or c.symbol or f"conId {c.conId}"


def combo_label(c: Contract) -> str:
    legs = c.comboLegs or []
    described = getattr(c, "leg_contracts", None) or [None] * len(legs)
    parts = []
    for leg, leg_contract in zip(legs, described):
        name = label(leg_contract) if leg_contract is not None else f"conId {leg.conId}"
        if name == "conId 0" or (leg.conId and name.startswith("conId ")):
            name = f"conId {leg.conId}"
        parts.append(f"{'+' if leg.action == 'BUY' else '-'}{leg.ratio} {name}")
    return _join("combo", c.symbol, f"{len(legs)} legs ({', '.join(parts)})")


def _join(*parts: str) -> str:
    """Non-empty parts joined by one space: never 'ES  is ambiguous'."""
    return " ".join(str(p) for p in parts if p)
