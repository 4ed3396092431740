"""Any symbol: a deterministic instrument for a US stock or ETF symbol the universe does not list.

Owns: which requested contracts may be generated (`eligible`: secType STK — or OPT, which generates
the underlying and its chain —, currency USD or empty, exchange empty, SMART or a US exchange, a
plausible ticker such as ZZZQ, RIVN, BRK B or BF.B; anything else stays error 200, and so does a
conId-only request for an unknown conId), the generated stock (`make_stock`), its option chain on
request (`ensure_chain`, built like the YAML `options:` section) and the list of generated symbols
the `--state` file keeps so a position on one re-resolves after a restart (`to_state`/`restore`).

Determinism. Identity is a function of the symbol alone: conId (`universe.stock_con_id`, in IB's id
range, re-hashed in the unlikely case it collides with a listed instrument), primary exchange
(4-5 letter tickers mostly NASDAQ, shorter ones mostly NYSE, a share class NYSE) and stock type (the
ones drawn ARCA-listed are ETFs — the rule: ARCA primary means ETF). The market parameters are a
function of (seed, symbol): the start price (log-uniform $8-$400) and the volatility (stocks
22-55 %, ETFs 12-28 %). Market rule 26, us_equity hours, longName "<SYMBOL> (SIMULATED)".

Must never: generate for a non-US or non-stock contract, run off the gateway's loop (the universe
and the market are the loop's), or use unseeded randomness.
"""
from __future__ import annotations

import datetime as dt
import re
import zlib

import numpy as np

from .universe import (
    OPTION_EXCHANGES, STOCK_EXCHANGES, STOCK_ORDER_TYPES, ContractQuery, Instrument, Universe, _Builder,
    _matches as matches, stable_con_id, stock_con_id,
)

SYMBOL = re.compile(r"^[A-Z][A-Z0-9]{0,5}(?:[ .][A-Z0-9]{1,2})?$")   # ZZZQ, RIVN, BRK B, BF.B
US_EXCHANGES = frozenset(STOCK_EXCHANGES) | {"ISLAND", "INET", "NYSEARCA", "BATS", "IEX"}
US_OPTION_EXCHANGES = frozenset(OPTION_EXCHANGES)
LONG_NAME = "{} (SIMULATED)"


def _unit(*parts) -> float:
    """A number in [0, 1) that depends only on `parts` (for the identity fields)."""
    return zlib.crc32("|".join(str(p) for p in parts).encode()) / 2**32


def eligible(q: ContractQuery) -> str | None:
    """The symbol to generate for a query that names an unknown US stock/ETF (or an option on one);
    None when the query names anything else."""
    symbol = q.symbol.strip().upper()
    sec_type = q.sec_type.strip().upper()
    if sec_type not in ("STK", "OPT") or not SYMBOL.match(symbol):
        return None
    if q.currency and q.currency.strip().upper() != "USD":
        return None
    exchanges = US_EXCHANGES if sec_type == "STK" else US_OPTION_EXCHANGES
    if q.exchange and q.exchange.strip().upper() not in exchanges:
        return None
    if q.primary_exchange and q.primary_exchange.strip().upper() not in US_EXCHANGES:
        return None
    return symbol


class AnySymbol:
    """Generates unknown US stock/ETF symbols into a universe; `on_request` is the --any-symbol switch
    (off: requests never generate, but a --state file's generated symbols are still restored)."""

    def __init__(self, seed: int, today: dt.date, on_request: bool = True):
        self.seed = int(seed)
        self.today = today
        self.on_request = on_request
        self.symbols: list[str] = []          # generated stocks, in the order they were generated
        self.chains: list[str] = []           # those whose option chain was generated
        self._by_con_id: dict[int, str] = {}

    # --- the instrument ------------------------------------------------------------------------
    def make_stock(self, universe: Universe, symbol: str) -> Instrument:
        """The generated instrument for `symbol` (not yet added)."""
        con_id, salt = stock_con_id(symbol), 0
        while universe.get(con_id) is not None:         # a listed instrument holds it: re-hash
            salt += 1
            con_id = stable_con_id("STK", symbol, "USD", salt)
        root = re.split(r"[ .]", symbol)[0]
        u = _unit("primary", symbol)
        if root != symbol:
            primary = "NYSE"                              # share classes (BRK B, BF.B) are NYSE listings
        elif len(root) >= 4:
            primary = "NASDAQ" if u < 0.8 else "NYSE" if u < 0.9 else "ARCA"
        else:
            primary = "NYSE" if u < 0.75 else "NASDAQ" if u < 0.85 else "ARCA"
        etf = primary == "ARCA"
        rng = np.random.default_rng([self.seed, zlib.crc32(symbol.encode()), 0x5E1])
        price = round(float(np.exp(rng.uniform(np.log(8.0), np.log(400.0)))), 2)
        vol = round(float(rng.uniform(0.12, 0.28) if etf else rng.uniform(0.22, 0.55)), 3)
        return Instrument(
            con_id=con_id, symbol=symbol, sec_type="STK", currency="USD", exchange="SMART",
            primary_exchange=primary, local_symbol=symbol,
            trading_class=primary if primary != "NASDAQ" else "NMS", min_tick=0.01,
            long_name=LONG_NAME.format(symbol), industry="Funds" if etf else "",
            category="Equity Fund" if etf else "", stock_type="ETF" if etf else "COMMON",
            valid_exchanges=STOCK_EXCHANGES, order_types=STOCK_ORDER_TYPES, market_rule_id=26,
            hours_kind="us_equity", price=price, vol=vol,
        )

    def chain_spec(self, under: Instrument) -> dict:
        """The `options:` entry a generated underlying's chain is built from."""
        p = under.price
        step = 1.0 if p < 25 else 2.5 if p < 100 else 5.0 if p < 250 else 10.0
        return {"underlying": under.symbol, "weeklies": 2, "monthlies": 3, "strikeStep": step,
                "strikesEachSide": 6, "vol": round(under.vol * 1.05, 3), "skew": -0.10}

    # --- joining the universe ---------------------------------------------------------------------
    def add_stock(self, universe: Universe, inst: Instrument) -> Instrument:
        universe.add([inst])
        self.symbols.append(inst.symbol)
        self._by_con_id[inst.con_id] = inst.symbol
        return inst

    def supply(self, universe: Universe, q: ContractQuery) -> bool:
        """Generate what an unmatched query names, when it may be; True when something was added."""
        if not self.on_request:
            return False
        symbol = eligible(q)
        if symbol is None:
            return False
        option = q.sec_type.strip().upper() == "OPT"
        spellings = {symbol, symbol.replace(".", " "), symbol.replace(" ", ".")}
        known = [i for s in spellings for i in universe.listed(s)]
        if known:
            # the symbol is listed (or generated): only a generated stock's missing chain may be added
            under = next((i for i in known if i.con_id in self._by_con_id), None)
            return option and under is not None and self.ensure_chain(universe, under.con_id)
        inst = self.make_stock(universe, symbol)
        if not option and (q.con_id > 0 and q.con_id != inst.con_id or not matches(inst, q)):
            return False                           # the query asks for something this stock is not
        if option and q.con_id > 0:
            return False                           # an option's conId cannot name a chain not generated yet
        self.add_stock(universe, inst)
        if option:
            self.ensure_chain(universe, inst.con_id)
        return True

    def ensure_chain(self, universe: Universe, under_con_id: int) -> bool:
        """Generate a generated underlying's option chain once; True when it was generated now."""
        symbol = self._by_con_id.get(under_con_id)
        if symbol is None or symbol in self.chains:
            return False
        under = universe.get(under_con_id)
        builder = _Builder("--any-symbol", self.today)
        self.chains.append(symbol)
        universe.add(builder.option_chain(0, self.chain_spec(under), under))
        return True

    # --- the --state file ----------------------------------------------------------------------------
    def to_state(self) -> dict:
        return {"symbols": list(self.symbols), "chains": list(self.chains)}

    def restore(self, universe: Universe, state: dict) -> None:
        """Re-create the generated symbols (and chains) a state file names, whatever the switch says."""
        for symbol in state.get("symbols") or []:
            symbol = str(symbol).upper()
            if symbol in self.symbols or not SYMBOL.match(symbol):
                continue
            if universe.listed(symbol):
                continue                           # the universe now lists it: its own entry wins
            self.add_stock(universe, self.make_stock(universe, symbol))
        for symbol in state.get("chains") or []:
            con_id = next((c for c, s in self._by_con_id.items() if s == str(symbol).upper()), None)
            if con_id is not None:
                self.ensure_chain(universe, con_id)
