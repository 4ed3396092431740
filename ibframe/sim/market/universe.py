"""The simulated gateway's instruments: loaded from a YAML universe file, queried like IB's sec-def server.

Owns: the Instrument records (contract identity, contract-details fields, market parameters),
the generated option chains and future months, market rules, and contract matching for
reqContractDetails / reqMatchingSymbols. Never touches sockets or the live market.
"""
from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_UNIVERSE = Path(__file__).resolve().parents[3] / "config" / "universe.yaml"
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # safe either way; C is ~10x faster

STOCK_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AON,AVGCOST,BASKET,BENCHPX,CASHQTY,COND,CONDORDER,DARKONLY,DARKPOLL,"
    "DAY,DEACT,DEACTDIS,DEACTEOD,DIS,DUR,GAT,GTC,GTD,GTT,HID,IBKRATS,ICE,IMB,IOC,LIT,LMT,LOC,MIDPX,MIT,MKT,MOC,"
    "MTL,NGCOMB,NODARK,NONALGO,OCA,OPG,OPGREROUT,PEGBENCH,PEGMID,POSTATS,POSTONLY,PREOPGRTH,PRICECHK,REL,"
    "REL2MID,RELPCTOFS,RPI,RTH,SCALE,SCALEODD,SCALERST,SIZECHK,SNAPMID,SNAPMKT,SNAPREL,STP,STPLMT,SWEEP,TRAIL,"
    "TRAILLIT,TRAILLMT,TRAILMIT,WHATIF"
)
OPTION_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,DEACTDIS,DEACTEOD,DIS,GAT,GTC,"
    "GTD,GTT,HID,ICE,IOC,LIT,LMT,MIT,MKT,MTL,NGCOMB,NONALGO,OCA,OPENCLOSE,PEGMIDVOL,PEGMKTVOL,PEGPRMVOL,"
    "PEGSRFVOL,POSTONLY,PRICECHK,REL,RELPCTOFS,RELSTK,SCALE,SCALERST,SIZECHK,SMARTSTG,SNAPMID,SNAPMKT,SNAPREL,"
    "STP,STPLMT,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,VOLAT,WHATIF"
)
FUTURE_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,DEACTDIS,DEACTEOD,GAT,GTC,GTD,"
    "GTT,HID,ICE,IOC,LIT,LMT,LTH,MIT,MKT,MTL,NGCOMB,NONALGO,OCA,SCALE,SCALERST,SNAPMID,SNAPMKT,SNAPREL,STP,STPLMT,"
    "TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,WHATIF"
)
FOREX_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,CASHQTY,COND,CONDORDER,DAY,DEACT,DEACTDIS,DEACTEOD,GAT,"
    "GTC,GTD,GTT,HID,IOC,LIT,LMT,MIT,MKT,NONALGO,OCA,REL,RELPCTOFS,SCALE,SCALERST,STP,STPLMT,TRAIL,TRAILLIT,"
    "TRAILLMT,TRAILMIT,WHATIF"
)
BOND_ORDER_TYPES = "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,GAT,GTC,GTD,LMT,MKT,NONALGO,OCA,WHATIF"

STOCK_EXCHANGES = ("SMART", "AMEX", "NYSE", "CBOE", "PHLX", "ISE", "CHX", "ARCA", "NASDAQ", "DRCTEDGE", "BEX",
                   "BATS", "EDGEA", "BYX", "IEX", "EDGX", "PEARL", "MEMX", "LTSE", "TPLUS1", "IBKRATS")
OPTION_EXCHANGES = ("SMART", "AMEX", "CBOE", "PHLX", "PSE", "ISE", "BOX", "BATS", "NASDAQOM", "CBOE2", "NASDAQBX",
                    "MIAX", "GEMINI", "EDGX", "MERCURY", "PEARL", "EMERALD", "MEMX")

# Market rules: id -> ((lowEdge, increment), ...). A documented simplification of IB's rule table.
MARKET_RULES: dict[int, tuple[tuple[float, float], ...]] = {
    26: ((0.0, 0.01),),                     # US stocks and ETFs at or above $1
    32: ((0.0, 0.01), (3.0, 0.05)),         # US equity options: pennies below $3, nickels above
    67: ((0.0, 0.25),),                     # CME E-mini S&P 500 and E-mini Nasdaq-100
    239: ((0.0, 0.00005),),                 # IDEALPRO EUR.USD and the other majors quoted to 5 decimals
    1126: ((0.0, 0.0001),),                 # US Treasury notes (price per 100)
    # Ids below are the simulator's own (IB's real ids for these products are not reproduced).
    2901: ((0.0, 0.01),),                   # NYMEX WTI crude oil (CL)
    2902: ((0.0, 0.1),),                    # COMEX gold (GC)
    2903: ((0.0, 0.015625),),               # CBOT 10-year T-note (ZN): half of 1/32
    2904: ((0.0, 0.005),),                  # IDEALPRO yen pairs (USD.JPY)
}


@dataclass(slots=True)
class Instrument:
    """One tradable contract, as IB's security-definition server would describe it."""
    con_id: int
    symbol: str
    sec_type: str                 # STK, OPT, FUT, CASH, BOND, IND
    currency: str
    exchange: str                 # what contract details report as `exchange`
    primary_exchange: str
    local_symbol: str
    trading_class: str
    min_tick: float
    multiplier: str = ""
    expiry: str = ""              # lastTradeDateOrContractMonth (yyyymmdd)
    strike: float = 0.0
    right: str = ""               # C or P for options
    long_name: str = ""
    industry: str = ""
    category: str = ""
    subcategory: str = ""
    stock_type: str = ""
    valid_exchanges: tuple[str, ...] = ()
    order_types: str = ""
    market_rule_id: int = 26
    hours_kind: str = "us_equity"
    under_con_id: int = 0
    under_symbol: str = ""
    under_sec_type: str = ""
    contract_month: str = ""
    agg_group: int = 1
    price: float = 100.0          # the seeded market's starting price
    vol: float = 0.2              # annualised volatility of the price process
    skew: float = 0.0             # options: vol change per unit of log-moneyness
    size_increment: float = 1.0
    min_size: float = 1.0
    bond: dict = field(default_factory=dict)   # bond-only descriptive fields (cusip, coupon, maturity…)

    @property
    def is_derived(self) -> bool:
        """Options have no price process of their own: they are priced from their underlying."""
        return self.sec_type in ("OPT", "FOP")

    @property
    def market_rule_ids(self) -> str:
        return ",".join(str(self.market_rule_id) for _ in self.valid_exchanges)

    def round_price(self, price: float) -> float:
        """Snap to this instrument's price increment (from its market rule) at that price."""
        inc = price_increment(self.market_rule_id, price)
        return round(round(price / inc) * inc, 10)

    def describe(self) -> str:
        if self.sec_type == "OPT":
            return f"{self.symbol} {self.expiry} {self.strike:g} {self.right}"
        return f"{self.local_symbol} ({self.sec_type})"


def price_increment(rule_id: int, price: float) -> float:
    inc = MARKET_RULES[rule_id][0][1]
    for low_edge, increment in MARKET_RULES[rule_id]:
        if abs(price) >= low_edge:
            inc = increment
    return inc


def stable_con_id(*parts) -> int:
    """A conId that is the same in every run for the same description (CRC32 into IB's id range)."""
    return 500_000_000 + zlib.crc32("|".join(str(p) for p in parts).encode()) % 400_000_000


def stock_con_id(symbol: str, currency: str = "USD") -> int:
    """The simulated conId of a US stock or ETF the universe lists without one, and of a symbol
    --any-symbol generates: a function of the symbol alone (never of the seed), as a conId is."""
    return stable_con_id("STK", symbol.upper(), currency)


FUTURE_HOURS = ("cme_index_future",)     # Globex: CME, CBOT, NYMEX and COMEX trade the same week on Chicago time


class UniverseError(ValueError):
    """The universe file is malformed; the text names the file, the entry and what to fix."""


@dataclass(slots=True)
class AccountSpec:
    id: str
    cash: float
    currency: str = "USD"
    margin: str = "RegT"
    pdt: bool = True              # enforce the pattern-day-trader restriction (margin accounts under 25k)


@dataclass(slots=True)
class ContractQuery:
    """The fields of a request's Contract that matter for matching (ibapi's contract block)."""
    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    expiry: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""


class Universe:
    """All instruments, indexed by conId and symbol; built from a YAML file relative to a start date.

    Instruments may join after construction (`add`): with `--any-symbol` an unknown US stock or ETF
    symbol gets a generated instrument (`any_symbol.AnySymbol`, attached by the gateway) the first
    time a request names it. That happens on the gateway's loop only (request handlers, state
    restore), like every other read of the universe while the gateway runs.
    """

    def __init__(self, instruments: list[Instrument], accounts: list[AccountSpec], source: str = "<memory>",
                 today: dt.date | None = None):
        self.source = source
        self.accounts = accounts
        self.today = today                          # option expiries / future months are relative to it
        self.by_con_id: dict[int, Instrument] = {}
        self.instruments: list[Instrument] = []
        self._by_symbol: dict[str, list[Instrument]] = {}
        self._options: dict[int, list[Instrument]] = {}
        self.generator = None                       # any_symbol.AnySymbol, when the gateway attaches one
        self.add(instruments)

    def add(self, instruments: list[Instrument]) -> None:
        """Index new instruments (the YAML's, or generated ones); a conId used twice is a UniverseError."""
        for inst in instruments:
            if inst.con_id in self.by_con_id:
                raise UniverseError(f"{self.source}: conId {inst.con_id} is used by both "
                                    f"{self.by_con_id[inst.con_id].describe()} and {inst.describe()}")
            self.by_con_id[inst.con_id] = inst
            self.instruments.append(inst)
            self._by_symbol.setdefault(inst.symbol.upper(), []).append(inst)
            if inst.is_derived:
                self._options.setdefault(inst.under_con_id, []).append(inst)

    # --- queries -----------------------------------------------------------------------------
    def get(self, con_id: int) -> Instrument | None:
        return self.by_con_id.get(con_id)

    def listed(self, symbol: str) -> list[Instrument]:
        """Every instrument with this symbol (any secType), case-insensitively."""
        return list(self._by_symbol.get(symbol.upper(), ()))

    def roots(self) -> list[Instrument]:
        """Instruments with a price process of their own (everything but options)."""
        return [i for i in self.instruments if not i.is_derived]

    def options_of(self, under_con_id: int) -> list[Instrument]:
        """The options on one underlying; a generated underlying's chain is generated on this first ask."""
        if self.generator is not None:
            self.generator.ensure_chain(self, under_con_id)
        return list(self._options.get(under_con_id, ()))

    def match(self, q: ContractQuery) -> list[Instrument]:
        """Every instrument the query describes, the way reqContractDetails resolves a partial contract;
        with an any-symbol generator attached, an unknown US stock/ETF symbol is generated first."""
        found = self._match(q)
        if not found and self.generator is not None and self.generator.supply(self, q):
            found = self._match(q)
        return found

    def _match(self, q: ContractQuery) -> list[Instrument]:
        if q.con_id > 0:
            inst = self.by_con_id.get(q.con_id)
            if inst is None:
                return []
            candidates = [inst]
        elif q.symbol:                          # _matches compares symbols case-insensitively
            candidates = self._by_symbol.get(q.symbol.upper(), [])
        else:
            candidates = self.instruments
        return [inst for inst in candidates if _matches(inst, q)]

    def search_symbols(self, pattern: str, limit: int = 16) -> list[Instrument]:
        """reqMatchingSymbols: underlyings whose symbol starts with, then whose name contains, the pattern
        (with any-symbol on, a pattern that is itself a plausible unknown symbol is generated first)."""
        pat = pattern.strip().upper()
        if not pat:
            return []
        if self.generator is not None:
            self.generator.supply(self, ContractQuery(symbol=pat, sec_type="STK"))
        roots = [i for i in self.instruments if i.sec_type in ("STK", "CASH", "BOND", "IND")]
        starts = [i for i in roots if i.symbol.upper().startswith(pat)]
        contains = [i for i in roots if i not in starts and pat in i.long_name.upper()]
        return (starts + contains)[:limit]


def _matches(inst: Instrument, q: ContractQuery) -> bool:
    if q.symbol and q.symbol.upper() != inst.symbol.upper():
        return False
    if q.sec_type and q.sec_type.upper() != inst.sec_type:
        return False
    if q.expiry:
        expiry = q.expiry.split(" ")[0].split("-")[0]
        if not (inst.expiry.startswith(expiry) or inst.contract_month == expiry):
            return False
    if q.strike and q.strike < 1e300 and abs(q.strike - inst.strike) > 1e-9:     # 0 and UNSET_DOUBLE: any strike
        return False
    if q.right and q.right[:1].upper() != inst.right and q.right not in ("?", "0"):
        return False
    if q.multiplier and inst.multiplier and _number(q.multiplier) != _number(inst.multiplier):
        return False
    if q.exchange and q.exchange.upper() not in inst.valid_exchanges:
        return False
    if q.currency and q.currency.upper() != inst.currency:
        return False
    if q.local_symbol and q.local_symbol.replace(" ", "") != inst.local_symbol.replace(" ", ""):
        return False
    if q.trading_class and q.trading_class != inst.trading_class:
        return False
    return True


def _number(text: str) -> float | None:
    """A multiplier as a number; None when it is not one (then it matches nothing)."""
    try:
        return float(text)
    except ValueError:
        return None


# --- loading ----------------------------------------------------------------------------------

def load_universe(path: str | Path | None = None, today: dt.date | None = None) -> Universe:
    """Read a universe YAML file; option expiries and future months are generated relative to ``today``."""
    path = Path(path) if path else DEFAULT_UNIVERSE
    today = today or dt.date.today()
    try:
        raw = yaml.load(path.read_text(), Loader=_YAML_LOADER)     # the C parser when PyYAML has it
    except FileNotFoundError:
        raise UniverseError(f"universe file {path} does not exist; pass --universe with a YAML file "
                            f"(see {DEFAULT_UNIVERSE} for the format)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UniverseError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise UniverseError(f"{path}: expected a mapping with keys stocks/options/futures/forex/bonds/accounts")
    builder = _Builder(str(path), today)
    return builder.build(raw)


class _Builder:
    KNOWN = {"accounts", "stocks", "options", "futures", "forex", "bonds"}

    def __init__(self, source: str, today: dt.date):
        self.source = source
        self.today = today

    def fail(self, section: str, index: int, message: str):
        raise UniverseError(f"{self.source}: {section}[{index}]: {message}")

    def need(self, section: str, index: int, entry: dict, key: str, kind=None):
        if not isinstance(entry, dict):
            self.fail(section, index, f"expected a mapping, got {entry!r}")
        if key not in entry:
            self.fail(section, index, f"missing required key '{key}'")
        value = entry[key]
        if kind is not None:
            try:
                value = kind(value)
            except (TypeError, ValueError):
                self.fail(section, index, f"'{key}' must be a {kind.__name__}, got {value!r}")
        return value

    def build(self, raw: dict) -> Universe:
        unknown = set(raw) - self.KNOWN
        if unknown:
            raise UniverseError(f"{self.source}: unknown top-level key(s) {sorted(unknown)}; "
                                f"expected some of {sorted(self.KNOWN)}")
        instruments: list[Instrument] = []
        stocks = {}
        for i, e in enumerate(raw.get("stocks") or []):
            inst = self.stock(i, e)
            stocks[inst.symbol] = inst
            instruments.append(inst)
        for i, e in enumerate(raw.get("options") or []):
            under_symbol = self.need("options", i, e, "underlying", str)
            if under_symbol not in stocks:
                self.fail("options", i, f"underlying {under_symbol!r} is not among the stocks")
            instruments.extend(self.option_chain(i, e, stocks[under_symbol]))
        for i, e in enumerate(raw.get("futures") or []):
            instruments.extend(self.futures(i, e))
        for i, e in enumerate(raw.get("forex") or []):
            instruments.append(self.forex(i, e))
        for i, e in enumerate(raw.get("bonds") or []):
            instruments.append(self.bond_(i, e))
        accounts = [AccountSpec(id=self.need("accounts", i, a, "id", str),
                                cash=self.need("accounts", i, a, "cash", float),
                                currency=str(a.get("currency", "USD")), margin=str(a.get("margin", "RegT")),
                                pdt=bool(a.get("pdt", True)))
                    for i, a in enumerate(raw.get("accounts") or [])]
        if not accounts:
            accounts = [AccountSpec("DU1234567", 1_000_000.0)]
        for i, a in enumerate(accounts):
            if a.margin not in ("RegT", "Cash"):
                self.fail("accounts", i, f"margin must be RegT or Cash, got {a.margin!r}")
        return Universe(instruments, accounts, self.source, today=self.today)

    def stock(self, i: int, e: dict) -> Instrument:
        symbol = self.need("stocks", i, e, "symbol", str)
        primary = str(e.get("primaryExchange", "NASDAQ"))
        # no conId: the simulated id --any-symbol would give the symbol (IB's real id is not known here)
        con_id = self.need("stocks", i, e, "conId", int) if "conId" in e else stock_con_id(symbol)
        return Instrument(
            con_id=con_id, symbol=symbol, sec_type="STK",
            currency=str(e.get("currency", "USD")), exchange="SMART", primary_exchange=primary,
            local_symbol=symbol, trading_class=primary if primary != "NASDAQ" else "NMS",
            min_tick=0.01, long_name=str(e.get("longName", symbol)), industry=str(e.get("industry", "")),
            category=str(e.get("category", "")), subcategory=str(e.get("subcategory", "")),
            stock_type=str(e.get("stockType", "COMMON")), valid_exchanges=STOCK_EXCHANGES,
            order_types=STOCK_ORDER_TYPES, market_rule_id=26, hours_kind="us_equity",
            price=self.need("stocks", i, e, "price", float), vol=float(e.get("vol", 0.25)),
        )

    def option_chain(self, i: int, e: dict, under: Instrument) -> list[Instrument]:
        step = float(e.get("strikeStep", 5.0))
        each_side = int(e.get("strikesEachSide", 5))
        centre = round(under.price / step) * step
        strikes = [centre + k * step for k in range(-each_side, each_side + 1)]
        expiries = option_expiries(self.today, int(e.get("weeklies", 2)), int(e.get("monthlies", 3)))
        out = []
        for expiry in expiries:
            for strike in strikes:
                for right in ("C", "P"):
                    local = f"{under.symbol:<6}{expiry[2:]}{right}{int(round(strike * 1000)):08d}"
                    out.append(Instrument(
                        con_id=stable_con_id("OPT", under.con_id, expiry, strike, right), symbol=under.symbol,
                        sec_type="OPT", currency=under.currency, exchange="SMART", primary_exchange="",
                        local_symbol=local, trading_class=under.symbol, min_tick=0.01, multiplier="100",
                        expiry=expiry, strike=strike, right=right, long_name=under.long_name,
                        industry=under.industry, category=under.category, subcategory=under.subcategory,
                        valid_exchanges=OPTION_EXCHANGES, order_types=OPTION_ORDER_TYPES, market_rule_id=32,
                        hours_kind="us_option", under_con_id=under.con_id, under_symbol=under.symbol,
                        under_sec_type="STK", contract_month=expiry[:6], agg_group=2,
                        price=0.0, vol=float(e.get("vol", under.vol)), skew=float(e.get("skew", 0.0)),
                    ))
        return out

    def market_rule(self, section: str, i: int, e: dict, default: int, min_tick: float) -> int:
        """The entry's market rule (key `marketRule`, else `default`): it must exist and its increment
        must be the entry's minTick, or books and rounding would disagree."""
        rule = self.need(section, i, e, "marketRule", int) if "marketRule" in e else default
        if rule not in MARKET_RULES:
            self.fail(section, i, f"marketRule {rule} is unknown; known rules: {sorted(MARKET_RULES)}")
        increment = MARKET_RULES[rule][0][1]
        if abs(increment - min_tick) > 1e-12:
            fits = [r for r, levels in MARKET_RULES.items() if abs(levels[0][1] - min_tick) <= 1e-12]
            self.fail(section, i, f"minTick {min_tick:g} does not match market rule {rule} (increment "
                                  f"{increment:g}); set marketRule to one of {fits or 'a rule added to MARKET_RULES'}")
        return rule

    def futures(self, i: int, e: dict) -> list[Instrument]:
        symbol = self.need("futures", i, e, "symbol", str)
        codes = "FGHJKMNQUVXZ"
        months_text = str(e.get("months", "HMUZ")).upper()     # listed contract months, as month codes
        if not months_text or any(c not in codes for c in months_text):
            self.fail("futures", i, f"months must be month codes from {codes} (e.g. HMUZ for quarterly), "
                                    f"got {months_text!r}")
        months = tuple(sorted({codes.index(c) + 1 for c in months_text}))
        min_tick = float(e.get("minTick", 0.25))
        rule = self.market_rule("futures", i, e, 67, min_tick)
        hours_kind = str(e.get("hours", "cme_index_future"))
        if hours_kind not in FUTURE_HOURS:
            self.fail("futures", i, f"hours must be one of {list(FUTURE_HOURS)}, got {hours_kind!r}")
        exchange = str(e.get("exchange", "CME"))
        out = []
        for expiry in quarterly_expiries(self.today, int(e.get("contracts", 2)), months):
            d = dt.date(int(expiry[:4]), int(expiry[4:6]), int(expiry[6:]))
            local = f"{symbol}{codes[d.month - 1]}{d.year % 10}"
            out.append(Instrument(
                con_id=stable_con_id("FUT", symbol, expiry), symbol=symbol, sec_type="FUT",
                currency=str(e.get("currency", "USD")), exchange=exchange,
                primary_exchange="", local_symbol=local, trading_class=symbol,
                min_tick=min_tick, multiplier=str(e.get("multiplier", 50)),
                expiry=expiry, long_name=str(e.get("longName", symbol)),
                industry=str(e.get("industry", "Indices")), category=str(e.get("category", "Broad")),
                valid_exchanges=(exchange, "QBALGO"), order_types=FUTURE_ORDER_TYPES,
                market_rule_id=rule, hours_kind=hours_kind,
                under_con_id=int(e.get("underlyingConId", 0)), under_symbol=symbol, under_sec_type="IND",
                contract_month=expiry[:6], agg_group=2147483647,
                price=self.need("futures", i, e, "price", float), vol=float(e.get("vol", 0.16)),
            ))
        return out

    def forex(self, i: int, e: dict) -> Instrument:
        pair = self.need("forex", i, e, "pair", str)
        base, _, quote = pair.partition(".")
        if not quote:
            self.fail("forex", i, f"pair must look like EUR.USD, got {pair!r}")
        min_tick = float(e.get("minTick", 0.00005))
        return Instrument(
            con_id=self.need("forex", i, e, "conId", int), symbol=base, sec_type="CASH", currency=quote,
            exchange="IDEALPRO", primary_exchange="", local_symbol=pair, trading_class=pair,
            min_tick=min_tick, long_name=str(e.get("longName", pair)),
            category=str(e.get("category", "")), valid_exchanges=("IDEALPRO",), order_types=FOREX_ORDER_TYPES,
            market_rule_id=self.market_rule("forex", i, e, 239, min_tick), hours_kind="fx", agg_group=4,
            price=self.need("forex", i, e, "price", float), vol=float(e.get("vol", 0.07)),
            size_increment=1.0, min_size=1.0,
        )

    def bond_(self, i: int, e: dict) -> Instrument:
        cusip = self.need("bonds", i, e, "cusip", str)
        coupon = float(e.get("coupon", 0.0))
        maturity = str(e.get("maturity", ""))
        ticker = str(e.get("ticker", "T"))
        desc = f"{ticker} {coupon:g} {maturity[4:6]}/{maturity[6:8]}/{maturity[2:4]}" if len(maturity) == 8 else cusip
        # no conId: a simulated one from the CUSIP
        con_id = self.need("bonds", i, e, "conId", int) if "conId" in e else stable_con_id("BOND", cusip)
        return Instrument(
            con_id=con_id, symbol=cusip, sec_type="BOND",
            currency=str(e.get("currency", "USD")), exchange="SMART", primary_exchange="",
            local_symbol=cusip, trading_class="GOVT", min_tick=float(e.get("minTick", 0.0001)),
            long_name=str(e.get("longName", desc)), industry="Government", category="US Treasury",
            valid_exchanges=("SMART", "BONDDESK", "TRADEWEB", "VALUBOND"), order_types=BOND_ORDER_TYPES,
            market_rule_id=1126, hours_kind="us_bond", agg_group=0,
            price=self.need("bonds", i, e, "price", float), vol=float(e.get("vol", 0.05)),
            size_increment=1.0, min_size=1.0,
            bond={"cusip": cusip, "ticker": ticker, "coupon": coupon, "maturity": maturity,
                  "issueDate": str(e.get("issueDate", "")), "descAppend": desc, "bondType": "US-T",
                  "couponType": "FIXED", "ratings": str(e.get("ratings", "AA+"))},
        )


def third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    offset = (4 - first.weekday()) % 7
    return first + dt.timedelta(days=offset + 14)


def option_expiries(today: dt.date, weeklies: int, monthlies: int) -> list[str]:
    """The next `weeklies` Fridays and the next `monthlies` third Fridays after today, sorted."""
    dates = set()
    friday = today + dt.timedelta(days=(4 - today.weekday()) % 7 or 7)
    for k in range(weeklies):
        dates.add(friday + dt.timedelta(weeks=k))
    year, month = today.year, today.month
    while len([d for d in dates if d == third_friday(d.year, d.month)]) < monthlies or monthlies == 0:
        if monthlies == 0:
            break
        tf = third_friday(year, month)
        if tf > today:
            dates.add(tf)
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return sorted(d.strftime("%Y%m%d") for d in dates)


def quarterly_expiries(today: dt.date, count: int, months: tuple[int, ...] = (3, 6, 9, 12)) -> list[str]:
    """The next `count` contract months among `months` (quarterly by default), expiring on their third
    Friday (a simplification: CL, GC and ZN really expire earlier in or before the month)."""
    out = []
    year, month = today.year, today.month
    while len(out) < count:
        if month in months:
            tf = third_friday(year, month)
            if tf > today:
                out.append(tf.strftime("%Y%m%d"))
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return out
