"""Option chains: which options exist on an underlying, filtered, as one pandas DataFrame.

Owns: reading an underlying's chain from TWS's answers — reqSecDefOptParams (expiries, strikes,
trading classes and multipliers per exchange) and reqContractDetails for the option secType
(the contracts that really exist, with their conIds: not every expiry x strike pair does) — and
the filters (expiries, strikes, rights, distance from the underlying's price) a user asks for.
It talks to TWS only through the three blocking look-ups in `ChainLookups`, never through an
engine or a client, so it can be fed by anything that answers them.

Must never: send requests of its own, or run on the dispatch thread (the look-ups block; the
engine refuses them there and says to use `Strategy.on_init`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd
from ibapi.contract import Contract, ContractDetails

from ..contracts import label

COLUMNS = ["conId", "symbol", "expiry", "strike", "right", "multiplier", "tradingClass", "exchange", "contract"]
RIGHTS = {"C": "C", "CALL": "C", "P": "P", "PUT": "P"}


@dataclass(frozen=True, slots=True)
class ChainLookups:
    """The blocking look-ups a chain needs; each waits for TWS's answer."""
    option_params: Callable[[Contract], list[dict]]          # reqSecDefOptParams rows (see Router)
    contract_details: Callable[[Contract], list[ContractDetails]]
    price: Callable[[Contract], float | None]                # the underlying's price now (for `within`)


def _rights(rights) -> list[str]:
    items = [rights] if isinstance(rights, str) else list(rights)
    out = []
    for r in items:
        code = RIGHTS.get(str(r).upper())
        if code is None:
            raise ValueError(f"option right {r!r}: use 'C' (call) or 'P' (put), e.g. rights=('C', 'P')")
        if code not in out:
            out.append(code)
    if not out:
        raise ValueError("rights is empty: ask for ('C',), ('P',) or ('C', 'P')")
    return out


def _expiry_text(value, what: str) -> str | None:
    if value is None:
        return None
    text = value.strftime("%Y%m%d") if hasattr(value, "strftime") else str(value)
    if not (text.isdigit() and len(text) in (6, 8)):
        raise ValueError(f"expiries {what} {value!r}: write yyyymmdd (or yyyymm for a month)")
    return text


def pick_expiries(available: list[str], expiries) -> list[str]:
    """None: all; N: the N nearest; 'yyyymmdd' or 'yyyymm': that one / that month; (from, to): inclusive."""
    available = sorted(available)
    if expiries is None:
        return available
    if isinstance(expiries, bool):
        raise ValueError(f"expiries={expiries!r}: give None, a count, an expiry or a (from, to) pair")
    if isinstance(expiries, int):
        if expiries < 1:
            raise ValueError(f"expiries={expiries}: ask for at least the 1 nearest expiry")
        return available[:expiries]
    if isinstance(expiries, (tuple, list)):
        if len(expiries) != 2:
            raise ValueError(f"expiries={expiries!r}: give a (from, to) pair of yyyymmdd dates (None = open end)")
        lo, hi = _expiry_text(expiries[0], "from"), _expiry_text(expiries[1], "to")
        return [e for e in available if (lo is None or e[:len(lo)] >= lo) and (hi is None or e[:len(hi)] <= hi)]
    one = _expiry_text(expiries, "")
    return [e for e in available if e.startswith(one)]


def strike_range(strikes, within: float | None, price: Callable[[], float | None], underlying: str) -> tuple[float, float]:
    if strikes is not None and within is not None:
        raise ValueError("give strikes=(lo, hi) or within=fraction of the underlying's price, not both")
    if within is not None:
        if isinstance(within, bool) or not isinstance(within, (int, float)) or not 0 < within <= 1:
            raise ValueError(f"within={within!r}: a fraction of the underlying's price, e.g. 0.05 for +/-5%")
        now = price()
        if now is None or now <= 0:
            raise ValueError(f"no price for {underlying} to apply within={within} (no quote from TWS yet, or "
                             f"the market is closed); pass strikes=(lo, hi) instead")
        return now * (1 - within), now * (1 + within)
    if strikes is None:
        return float("-inf"), float("inf")
    if not isinstance(strikes, (tuple, list)) or len(strikes) != 2:
        raise ValueError(f"strikes={strikes!r}: give a (lo, hi) pair (None = open end)")
    lo = float("-inf") if strikes[0] is None else float(strikes[0])
    hi = float("inf") if strikes[1] is None else float(strikes[1])
    if lo > hi:
        raise ValueError(f"strikes={strikes!r}: lo is above hi")
    return lo, hi


def option_chain(lookups: ChainLookups, underlying: Contract, expiries=None, strikes=None,
                 within: float | None = None, rights=("C", "P"), exchange: str = "SMART") -> pd.DataFrame:
    """One row per existing option (expiry x strike x right) of a qualified `underlying`; see COLUMNS.

    Sorted by expiry, strike, right. Filters that match nothing give an empty frame (same columns).
    """
    if not underlying.conId:
        raise ValueError(f"{label(underlying)} has no conId: qualify the underlying first")
    wanted_rights = _rights(rights)
    params = lookups.option_params(underlying)
    rows = [p for p in params if p["exchange"] == exchange]
    if not rows:
        where = sorted({p["exchange"] for p in params})
        raise ValueError(f"no options on {label(underlying)} at {exchange}"
                         + (f"; TWS lists them at {', '.join(where)}" if where else
                            " (TWS lists no option chain for it: check the underlying's secType and symbol)"))
    lo, hi = strike_range(strikes, within, lambda: lookups.price(underlying), label(underlying))
    chosen = pick_expiries(sorted({e for p in rows for e in p["expirations"]}), expiries)
    sec_type = "FOP" if underlying.secType == "FUT" else "OPT"
    found: dict[int, dict] = {}
    for p in rows:
        for expiry in (e for e in chosen if e in p["expirations"]):
            if not any(lo <= k <= hi for k in p["strikes"]):
                continue
            for right in wanted_rights:
                query = Contract()
                query.symbol, query.secType, query.exchange = underlying.symbol, sec_type, exchange
                query.currency = underlying.currency or "USD"
                query.lastTradeDateOrContractMonth, query.right = expiry, right
                query.tradingClass, query.multiplier = p["tradingClass"], str(p["multiplier"] or "")
                for d in lookups.contract_details(query):
                    c = d.contract
                    if lo <= c.strike <= hi and c.right == right and c.conId not in found:
                        found[c.conId] = {"conId": c.conId, "symbol": c.symbol,
                                          "expiry": c.lastTradeDateOrContractMonth[:8], "strike": float(c.strike),
                                          "right": c.right, "multiplier": c.multiplier,
                                          "tradingClass": c.tradingClass, "exchange": c.exchange or exchange,
                                          "contract": c}
    frame = pd.DataFrame(list(found.values()), columns=COLUMNS)
    return frame.sort_values(["expiry", "strike", "right"], kind="stable").reset_index(drop=True)
