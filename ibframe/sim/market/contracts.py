"""Security-definition requests of the simulated gateway: contract details, symbol search, option
chains and market rules.

Owns: parsing REQ_CONTRACT_DATA / REQ_MATCHING_SYMBOLS / REQ_SEC_DEF_OPT_PARAMS / REQ_MARKET_RULE
exactly as ``ibapi.client`` writes them, and encoding CONTRACT_DATA (10), BOND_CONTRACT_DATA (18),
CONTRACT_DATA_END (52), SYMBOL_SAMPLES (79), SECURITY_DEFINITION_OPTION_PARAMETER (75/76) and
MARKET_RULE (93) in the layout of the negotiated server version, mirroring every version branch of
``ibapi.decoder``. The ``*_fields`` encoders are pure functions (no session, no socket) so they
can be checked against real TWS frames.

Must never: touch the live market or subscriptions (these answers are static reference data),
complain about ambiguity in reqContractDetails (it returns every match), or invent fields a
real TWS leaves empty at that version.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from decimal import Decimal
from zoneinfo import ZoneInfo

from ibapi import server_versions as sv
from ibapi.message import IN, OUT

from ..protocol.handlers import handles
from ..protocol.session import Session
from ..protocol.wire import FieldReader
from . import hours
from .lookup import NO_SECURITY_DEFINITION, contract_problem, details_problem, read_contract
from .universe import MARKET_RULES, ContractQuery, Instrument, Universe

NEW_YORK = ZoneInfo("America/New_York")

CONTRACT_DATA_VERSION = 8       # the leading version field TWS sends below SIZE_RULES (164)
BOND_CONTRACT_DATA_VERSION = 6

# The real CUSIPs of the default universe's stocks (by conId); their ISIN is derived from it.
# Instruments not listed carry no secIdList entry, as TWS does for contracts without one.
STOCK_CUSIPS = {265598: "037833100", 272093: "594918104", 8314: "459200101",
                1520593: "46625H100", 756733: "78462F103"}

# When the last trading day ends, per kind of instrument (lastTradeTime in contract details).
LAST_TRADE_TIMES = {"OPT": "16:00:00", "FOP": "16:00:00", "FUT": "09:30:00"}    # New York time


# --- number formatting the way TWS prints reference data ---------------------------------------

def plain_number(x: float) -> str:
    """A double as TWS writes it in contract details: plain decimal ('0.00005', not '5e-05')."""
    if x == 0:
        return "0"
    text = f"{x:.10f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def plain_decimal(x: float) -> str:
    """A size (ibapi Decimal) without exponent or trailing zeros: 1.0 -> '1', 0.01 -> '0.01'."""
    d = Decimal(repr(float(x))).normalize()
    return format(d, "f")


# --- identifiers --------------------------------------------------------------------------------

def isin_from_cusip(cusip: str, country: str = "US") -> str:
    """ISIN = country + CUSIP + Luhn check digit over the letters-as-numbers expansion."""
    body = country + cusip.upper()
    digits = "".join(str(int(c, 36)) for c in body)
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def sec_ids(inst: Instrument) -> list[tuple[str, str]]:
    """The secIdList TWS reports: ISIN for known stocks; CUSIP and ISIN for bonds."""
    if inst.sec_type == "BOND" and inst.bond.get("cusip"):
        cusip = inst.bond["cusip"]
        return [("CUSIP", cusip), ("ISIN", isin_from_cusip(cusip))]
    cusip = STOCK_CUSIPS.get(inst.con_id)
    if inst.sec_type == "STK" and cusip:
        return [("ISIN", isin_from_cusip(cusip))]
    return []


def _sec_id_list(inst: Instrument) -> list:
    ids = sec_ids(inst)
    out: list = [len(ids)]
    for tag, value in ids:
        out += [tag, value]
    return out


# --- trading hours ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def _hours(kind: str, start: dt.date, liquid: bool) -> str:
    """Cached: an option chain asks for the same week's sessions hundreds of times."""
    return hours.hours_string(kind, start, 7, liquid)


def simulated_date(session: Session) -> dt.date:
    """The simulated calendar day in New York, where every session of the universe is written."""
    return dt.datetime.fromtimestamp(session.gateway.now(), NEW_YORK).date()


# --- encoders ------------------------------------------------------------------------------------

def _last_trade_date_or_month(inst: Instrument) -> str:
    """'yyyymmdd hh:mm:ss zone' for expiring contracts (ibapi splits off lastTradeTime), else ''."""
    if not inst.expiry:
        return ""
    when = LAST_TRADE_TIMES.get(inst.sec_type)
    if not when:
        return inst.expiry
    at = dt.datetime.strptime(f"{inst.expiry} {when}", "%Y%m%d %H:%M:%S").replace(tzinfo=NEW_YORK)
    local = at.astimezone(ZoneInfo(hours.zone(inst.hours_kind)))       # written in the contract's own zone
    return f"{local:%Y%m%d %H:%M:%S} {hours.zone_id(inst.hours_kind)}"


def contract_data_fields(inst: Instrument, req_id: int, version: int, start: dt.date,
                         exchange: str = "") -> tuple:
    """CONTRACT_DATA (10) for one non-bond instrument, mirroring decoder.processContractDataMsg."""
    f: list = [IN.CONTRACT_DATA]
    if version < sv.MIN_SERVER_VER_SIZE_RULES:
        f.append(CONTRACT_DATA_VERSION)
    f += [req_id, inst.symbol, inst.sec_type, _last_trade_date_or_month(inst)]
    if version >= sv.MIN_SERVER_VER_LAST_TRADE_DATE:
        f.append(inst.expiry)
    f += [plain_number(inst.strike), inst.right, exchange or inst.exchange, inst.currency,
          inst.local_symbol, inst.trading_class, inst.trading_class, inst.con_id, plain_number(inst.min_tick)]
    if sv.MIN_SERVER_VER_MD_SIZE_MULTIPLIER <= version < sv.MIN_SERVER_VER_SIZE_RULES:
        f.append(1)                                          # mdSizeMultiplier
    f += [inst.multiplier, inst.order_types, ",".join(inst.valid_exchanges), 1,   # priceMagnifier
          inst.under_con_id, inst.long_name, inst.primary_exchange,
          inst.contract_month, inst.industry, inst.category, inst.subcategory,
          hours.zone_id(inst.hours_kind), _hours(inst.hours_kind, start, False), _hours(inst.hours_kind, start, True),
          "", ""]                                            # evRule, evMultiplier: none
    f += _sec_id_list(inst)
    if version >= sv.MIN_SERVER_VER_AGG_GROUP:
        f.append(inst.agg_group)
    if version >= sv.MIN_SERVER_VER_UNDERLYING_INFO:
        f += [inst.under_symbol, inst.under_sec_type]
    if version >= sv.MIN_SERVER_VER_MARKET_RULES:
        f.append(inst.market_rule_ids)
    if version >= sv.MIN_SERVER_VER_REAL_EXPIRATION_DATE:
        f.append(inst.expiry)                                # realExpirationDate
    if version >= sv.MIN_SERVER_VER_STOCK_TYPE:
        f.append(inst.stock_type)
    if sv.MIN_SERVER_VER_FRACTIONAL_SIZE_SUPPORT <= version < sv.MIN_SERVER_VER_SIZE_RULES:
        f.append(plain_decimal(inst.size_increment))         # sizeMinTick
    if version >= sv.MIN_SERVER_VER_SIZE_RULES:
        f += [plain_decimal(inst.min_size), plain_decimal(inst.size_increment),
              plain_decimal(inst.size_increment)]
    # FUND fields (>= 179) follow only for secType FUND, which the universe does not list.
    if version >= sv.MIN_SERVER_VER_INELIGIBILITY_REASONS:
        f.append(0)                                          # ineligibility reasons: none
    return tuple(f)


def bond_contract_data_fields(inst: Instrument, req_id: int, version: int, start: dt.date,
                              exchange: str = "") -> tuple:
    """BOND_CONTRACT_DATA (18), mirroring decoder.processBondContractDataMsg."""
    b = inst.bond
    f: list = [IN.BOND_CONTRACT_DATA]
    if version < sv.MIN_SERVER_VER_SIZE_RULES:
        f.append(BOND_CONTRACT_DATA_VERSION)
    f += [req_id, inst.symbol, inst.sec_type, b.get("cusip", ""), plain_number(float(b.get("coupon", 0.0))),
          b.get("maturity", ""), b.get("issueDate", ""), b.get("ratings", ""), b.get("bondType", ""),
          b.get("couponType", ""), bool(b.get("convertible", False)), bool(b.get("callable", False)),
          bool(b.get("putable", False)), b.get("descAppend", ""), exchange or inst.exchange, inst.currency,
          inst.trading_class, inst.trading_class, inst.con_id, plain_number(inst.min_tick)]
    if sv.MIN_SERVER_VER_MD_SIZE_MULTIPLIER <= version < sv.MIN_SERVER_VER_SIZE_RULES:
        f.append(1)                                          # mdSizeMultiplier
    f += [inst.order_types, ",".join(inst.valid_exchanges),
          b.get("nextOptionDate", ""), b.get("nextOptionType", ""), bool(b.get("nextOptionPartial", False)),
          b.get("notes", ""), inst.long_name]
    if version >= sv.MIN_SERVER_VER_BOND_TRADING_HOURS:
        f += [hours.zone_id(inst.hours_kind), _hours(inst.hours_kind, start, False), _hours(inst.hours_kind, start, True)]
    f += ["", ""]                                            # evRule, evMultiplier
    f += _sec_id_list(inst)
    if version >= sv.MIN_SERVER_VER_AGG_GROUP:
        f.append(inst.agg_group)
    if version >= sv.MIN_SERVER_VER_MARKET_RULES:
        f.append(inst.market_rule_ids)
    if version >= sv.MIN_SERVER_VER_SIZE_RULES:
        f += [plain_decimal(inst.min_size), plain_decimal(inst.size_increment),
              plain_decimal(inst.size_increment)]
    return tuple(f)


def derivative_sec_types(universe: Universe, inst: Instrument) -> list[str]:
    """What trades on this underlying in the universe (reqMatchingSymbols' derivativeSecTypes)."""
    kinds = {o.sec_type for o in universe.options_of(inst.con_id)}
    kinds |= {i.sec_type for i in universe.instruments
              if i.sec_type == "FUT" and i.under_con_id == inst.con_id}
    return sorted(kinds)


def symbol_samples_fields(universe: Universe, found: list[Instrument], req_id: int, version: int) -> tuple:
    """SYMBOL_SAMPLES (79), mirroring decoder.processSymbolSamplesMsg."""
    f: list = [IN.SYMBOL_SAMPLES, req_id, len(found)]
    for inst in found:
        derivs = derivative_sec_types(universe, inst)
        f += [inst.con_id, inst.symbol, inst.sec_type, inst.primary_exchange or inst.exchange,
              inst.currency, len(derivs), *derivs]
        if version >= sv.MIN_SERVER_VER_BOND_ISSUERID:
            f += [inst.long_name, inst.bond.get("issuerId", "")]   # description, issuerId
    return tuple(f)


def option_parameter_fields(req_id: int, exchange: str, under: Instrument, options: list[Instrument]) -> tuple:
    """SECURITY_DEFINITION_OPTION_PARAMETER (75) for one exchange and trading class."""
    expirations = sorted({o.expiry for o in options})
    strikes = sorted({o.strike for o in options})
    multiplier = options[0].multiplier if options else "100"
    return (IN.SECURITY_DEFINITION_OPTION_PARAMETER, req_id, exchange, under.con_id, options[0].trading_class,
            multiplier, len(expirations), *expirations, len(strikes), *strikes)


def market_rule_fields(rule_id: int) -> tuple:
    """MARKET_RULE (93): the price increments of one rule, lowest edge first."""
    f: list = [IN.MARKET_RULE, rule_id, len(MARKET_RULES[rule_id])]
    for low_edge, increment in MARKET_RULES[rule_id]:
        f += [plain_number(low_edge), plain_number(increment)]
    return tuple(f)


# --- lookup ----------------------------------------------------------------------------------------

def find_contracts(universe: Universe, q: ContractQuery, sec_id_type: str = "", sec_id: str = "") -> list[Instrument]:
    """Every instrument a reqContractDetails query names: by secId (CUSIP/ISIN), conId, or fields."""
    if sec_id_type and sec_id:
        kind, wanted = sec_id_type.upper(), sec_id.strip().upper()
        by_id = {i.con_id for i in universe.instruments
                 if any(tag == kind and value.upper() == wanted for tag, value in sec_ids(i))}
        # The secId names the instrument; symbol and local symbol are then free text TWS ignores.
        rest = dataclasses.replace(q, symbol="", local_symbol="")
        return [i for i in universe.match(rest) if i.con_id in by_id]
    return universe.match(q)


# --- handlers ---------------------------------------------------------------------------------------

@handles(OUT.REQ_CONTRACT_DATA)
def req_contract_data(session: Session, r: FieldReader) -> None:
    """Contract details: one message per matching instrument, then CONTRACT_DATA_END; none -> 200."""
    r.int("version")
    req_id = r.int("reqId")
    q = read_contract(r)
    r.bool("includeExpired")          # the universe lists no expired contracts
    sec_id_type = r.str("secIdType")
    sec_id = r.str("secId")
    if session.version >= sv.MIN_SERVER_VER_BOND_ISSUERID:
        r.str("issuerId")
    bad = details_problem(q) or contract_problem(q)
    if bad is not None:
        session.error(req_id, bad.code, bad.text)
        return
    found = find_contracts(session.gateway.universe, q, sec_id_type, sec_id)
    if not found:
        session.error(req_id, 200, NO_SECURITY_DEFINITION)
        return
    start = simulated_date(session)
    for inst in found:
        exchange = q.exchange.upper() if q.exchange and q.exchange.upper() in inst.valid_exchanges else ""
        encode = bond_contract_data_fields if inst.sec_type == "BOND" else contract_data_fields
        session.send(*encode(inst, req_id, session.version, start, exchange))
    session.send(IN.CONTRACT_DATA_END, 1, req_id)


@handles(OUT.REQ_MATCHING_SYMBOLS)
def req_matching_symbols(session: Session, r: FieldReader) -> None:
    """Symbol search; an empty result is an empty SYMBOL_SAMPLES, as TWS sends."""
    req_id = r.int("reqId")
    pattern = r.str("pattern")
    universe = session.gateway.universe
    session.send(*symbol_samples_fields(universe, universe.search_symbols(pattern), req_id, session.version))


@handles(OUT.REQ_SEC_DEF_OPT_PARAMS)
def req_sec_def_opt_params(session: Session, r: FieldReader) -> None:
    """Option chain parameters, one message per exchange the chain trades on, then the end marker.

    An underlying that is unknown or has no options gets only SEC_DEF_OPT_PARAM_END: TWS does not
    raise an error here, the chain simply comes back empty (clients see an empty list).
    """
    req_id = r.int("reqId")
    symbol = r.str("underlyingSymbol").strip().upper()
    fut_fop_exchange = r.str("futFopExchange").strip().upper()
    sec_type = r.str("underlyingSecType").strip().upper()
    con_id = r.int("underlyingConId")
    universe = session.gateway.universe
    under = universe.get(con_id)
    ok = (under is not None and (not symbol or symbol == under.symbol.upper())
          and (not sec_type or sec_type == under.sec_type))
    options = universe.options_of(under.con_id) if ok else []
    if fut_fop_exchange:              # futures options are listed on the futures exchange only
        options = [o for o in options if fut_fop_exchange in o.valid_exchanges]
    if options:
        by_class: dict[str, list[Instrument]] = {}
        for o in options:
            by_class.setdefault(o.trading_class, []).append(o)
        exchanges = [e for e in options[0].valid_exchanges if not fut_fop_exchange or e == fut_fop_exchange]
        for exchange in exchanges:
            for chain in by_class.values():
                session.send(*option_parameter_fields(req_id, exchange, under, chain))
    session.send(IN.SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id)


@handles(OUT.REQ_MARKET_RULE)
def req_market_rule(session: Session, r: FieldReader) -> None:
    """Price increments of a market rule id (from ContractDetails.marketRuleIds).

    The request carries no reqId, so an unknown id is reported against -1 as a request
    validation failure (321), the way TWS reports malformed requests it cannot serve.
    """
    rule_id = r.int("marketRuleId")
    if rule_id not in MARKET_RULES:
        session.error(-1, 321, f"Error validating request.-'cw' : cause - Invalid market rule id {rule_id}")
        return
    session.send(*market_rule_fields(rule_id))
