"""Positions, equity and drawdown over time, from a journal's executions and quotes (hand-computable).

Owns: the arithmetic, on DataFrames (ibframe.report.data):

* a trade is an execution (combo BAG executions left out, as in journal/tca.py: their legs carry the
  prices) with its signed quantity `signed` = +shares for a buy (BOT), −shares for a sell (SLD), and its
  cash flow `cash` = −signed × price × multiplier − commission (a missing commission counts 0);
* per strategy and instrument (an instrument is its conId, else its symbol when there is none): the
  position (Σ signed, from flat at the start of the report's window), the cash (Σ cash) and the equity
  = cash + position × multiplier × mark, at each of its executions and, from its first one on, at
  every quote row and every fill (any strategy's) of that instrument: the moments its mark can change;
* the mark at time t: the instrument's latest price seen at or before t — a quote row (why 'arrival',
  'fill' or 'sample': its mid when bid and ask are usable, i.e. both finite, > 0, bid <= ask, else its
  last price when that is finite and > 0) or a fill of the instrument (any strategy's), whichever came
  later (a quote at the same instant wins): a fill is a price too, and marking a new position at a
  quote older than its own fill would show a swing that never happened;
* per strategy: equity = Σ of its instruments' equities, and drawdown = equity − the running maximum
  of equity, that maximum starting at 0 (the equity before the first trade);
* the account: NetLiquidation of each account snapshot, with its drawdown from its running maximum.

Times are `at` (when ibframe received the execution, the clock of the quotes; see data.py).
Must never: read or write a file, or make up a mark it does not have (no trade, no quote: no point).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..journal.tca import multiplier_number

SIGNS = {"BOT": 1.0, "BUY": 1.0, "SLD": -1.0, "SELL": -1.0}
TRADE_COLUMNS = ["at", "strategy", "instrument", "label", "side", "shares", "price", "multiplier", "commission",
                 "signed", "cash"]
CURVE_COLUMNS = ["time", "strategy", "instrument", "label", "position", "cash", "mark", "equity"]
EQUITY_COLUMNS = ["time", "strategy", "equity", "drawdown"]
ACCOUNT_COLUMNS = ["time", "account", "currency", "equity", "drawdown"]
MARK_COLUMNS = ["time", "instrument", "mark"]


@dataclass(slots=True)
class Equity:
    """Everything the report draws and tabulates about positions and P&L."""
    trades: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TRADE_COLUMNS))
    curves: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CURVE_COLUMNS))   # per instrument
    equity: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EQUITY_COLUMNS))  # per strategy
    account: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ACCOUNT_COLUMNS))


def analyse(executions: pd.DataFrame, quotes: pd.DataFrame, account_values: pd.DataFrame | None = None) -> Equity:
    """Trades, per-instrument curves, per-strategy equity and drawdown, account equity (see the module docstring)."""
    t = trades(executions)
    c = instrument_curves(t, marks(quotes))
    return Equity(trades=t, curves=c, equity=strategy_equity(c),
                  account=account_equity(account_values if account_values is not None else pd.DataFrame()))


def trades(executions: pd.DataFrame) -> pd.DataFrame:
    """One row per usable execution (known side, finite shares and price), oldest first by `at`."""
    e = executions
    if e.empty:
        return pd.DataFrame(columns=TRADE_COLUMNS)
    e = e[e["sec_type"].astype(object).fillna("") != "BAG"]
    out = pd.DataFrame({"at": e["at"], "strategy": e["strategy"], "side": e["side"]})
    out["instrument"] = instrument_keys(e)
    out["label"] = [_label(s, ls, c) for s, ls, c in zip(e["symbol"], e["local_symbol"], e["con_id"])]
    for col in ("shares", "price", "commission"):
        out[col] = pd.to_numeric(e[col], errors="coerce").astype("float64")
    out["multiplier"] = [multiplier_number(m) for m in e["multiplier"]]
    out["signed"] = out["side"].map(SIGNS).astype("float64") * out["shares"]
    out = out[out["signed"].notna() & np.isfinite(out["price"]) & out["at"].notna()]
    out["cash"] = -out["signed"] * out["price"] * out["multiplier"] - out["commission"].fillna(0.0)
    return out[TRADE_COLUMNS].sort_values("at", kind="stable").reset_index(drop=True)


def marks(quotes: pd.DataFrame) -> pd.DataFrame:
    """The mark of each quote row that has one: the mid when bid and ask are usable, else a usable last."""
    if quotes is None or quotes.empty:
        return pd.DataFrame(columns=MARK_COLUMNS)
    bid, ask, last = (pd.to_numeric(quotes[c], errors="coerce").astype("float64") for c in ("bid", "ask", "last"))
    usable = np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask > 0) & (bid <= ask)
    mark = ((bid + ask) / 2).where(usable, last.where(np.isfinite(last) & (last > 0)))
    out = pd.DataFrame({"time": quotes["time"], "instrument": instrument_keys(quotes), "mark": mark})
    return out[out["mark"].notna() & out["time"].notna()].sort_values("time", kind="stable").reset_index(drop=True)


def instrument_curves(trade_rows: pd.DataFrame, mark_rows: pd.DataFrame) -> pd.DataFrame:
    """Per strategy and instrument: position, cash, mark and equity at each of its points (module docstring)."""
    frames = []
    mark_groups = {k: g for k, g in mark_rows.groupby("instrument", sort=False)} if len(mark_rows) else {}
    fill_groups = {k: g for k, g in trade_rows.groupby("instrument", sort=False)}
    for (strategy, instrument), g in trade_rows.groupby(["strategy", "instrument"], sort=True):
        t_ex = ns(g["at"])
        m = mark_groups.get(instrument)
        m_t = ns(m["time"]) if m is not None else np.empty(0, dtype="int64")
        m_v = m["mark"].to_numpy(dtype="float64") if m is not None else np.empty(0)
        fills = fill_groups[instrument]
        f_t, f_v = ns(fills["at"]), fills["price"].to_numpy(dtype="float64")
        times = np.unique(np.concatenate([t_ex, m_t[m_t >= t_ex[0]], f_t[f_t >= t_ex[0]]]))
        i = np.searchsorted(t_ex, times, side="right") - 1
        position = np.cumsum(g["signed"].to_numpy())[i]
        cash = np.cumsum(g["cash"].to_numpy())[i]
        quoted, quoted_at = _latest(m_t, m_v, times)
        filled, filled_at = _latest(f_t, f_v, times)
        mark = np.where(np.isnan(quoted) | (filled_at > quoted_at), filled, quoted)
        mult = float(g["multiplier"].iloc[0])
        value = np.where(position == 0, 0.0, position * mult * mark)
        frames.append(pd.DataFrame({"time": pd.to_datetime(times, utc=True), "strategy": strategy,
                                    "instrument": instrument, "label": g["label"].iloc[-1], "position": position,
                                    "cash": cash, "mark": mark, "equity": cash + value}))
    if not frames:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[CURVE_COLUMNS]


def strategy_equity(curves: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: Σ of its instruments' equities at every point of any of them, and the drawdown."""
    frames = []
    for strategy, g in curves.groupby("strategy", sort=True):
        times = np.unique(ns(g["time"]))
        total = np.zeros(len(times))
        for _, one in g.groupby("instrument", sort=False):
            total += np.nan_to_num(_as_of(ns(one["time"]), one["equity"].to_numpy(dtype="float64"), times))
        peak = np.maximum.accumulate(np.maximum(total, 0.0))
        frames.append(pd.DataFrame({"time": pd.to_datetime(times, utc=True), "strategy": strategy,
                                    "equity": total, "drawdown": total - peak}))
    if not frames:
        return pd.DataFrame(columns=EQUITY_COLUMNS)
    return pd.concat(frames, ignore_index=True)[EQUITY_COLUMNS]


def account_equity(account_values: pd.DataFrame) -> pd.DataFrame:
    """NetLiquidation per account and currency at each snapshot, with its drawdown from its running maximum."""
    if account_values is None or account_values.empty:
        return pd.DataFrame(columns=ACCOUNT_COLUMNS)
    nl = account_values[account_values["key"] == "NetLiquidation"]
    value = pd.to_numeric(nl["number"], errors="coerce").astype("float64")
    nl = nl.assign(equity=value)[np.isfinite(value) & nl["time"].notna()]
    frames = []
    for (acct, cur), g in nl.groupby([nl["account"].fillna(""), nl["currency"].fillna("")], sort=True):
        g = g.sort_values("time", kind="stable")
        eq = g["equity"].to_numpy()
        frames.append(pd.DataFrame({"time": g["time"].to_numpy(), "account": acct, "currency": cur, "equity": eq,
                                    "drawdown": eq - np.maximum.accumulate(eq)}))
    if not frames:
        return pd.DataFrame(columns=ACCOUNT_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out["time"] = pd.to_datetime(out["time"], utc=True)
    return out[ACCOUNT_COLUMNS]


def totals(eq: Equity) -> pd.DataFrame:
    """Per strategy: fills, shares bought and sold, commission, final equity (P&L), worst drawdown, and the
    positions it ends with ('AAPL +15, ESZ6 -2'; 'flat')."""
    rows = []
    for strategy, g in eq.trades.groupby("strategy", sort=True):
        curve = eq.equity[eq.equity["strategy"] == strategy]
        last = eq.curves[eq.curves["strategy"] == strategy].groupby("instrument", sort=True).tail(1)
        held = [f"{label} {position:+g}" for label, position in zip(last["label"], last["position"]) if position]
        rows.append({"strategy": strategy, "fills": len(g),
                     "bought": float(g.loc[g["signed"] > 0, "shares"].sum()),
                     "sold": float(g.loc[g["signed"] < 0, "shares"].sum()),
                     "commission": float(g["commission"].sum()) if g["commission"].notna().any() else math.nan,
                     "equity": float(curve["equity"].iloc[-1]) if len(curve) else math.nan,
                     "max_drawdown": float(curve["drawdown"].min()) if len(curve) else math.nan,
                     "positions": ", ".join(held) or "flat"})
    return pd.DataFrame(rows, columns=["strategy", "fills", "bought", "sold", "commission", "equity",
                                       "max_drawdown", "positions"])


# --- helpers -----------------------------------------------------------------------------------------------------

def instrument_keys(frame: pd.DataFrame) -> list[str]:
    """An instrument's key: its conId when it has a positive one, else its symbol."""
    ids = pd.to_numeric(frame["con_id"], errors="coerce") if "con_id" in frame else pd.Series(np.nan, frame.index)
    symbols = frame["symbol"] if "symbol" in frame else pd.Series("", frame.index)
    return [f"{int(c)}" if c == c and c > 0 else f"symbol:{s}" for c, s in zip(ids, symbols)]


def ns(times: pd.Series) -> np.ndarray:
    """UTC Timestamps as int64 nanoseconds since the epoch (for searchsorted)."""
    return pd.to_datetime(times, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view("int64")


def _latest(t: np.ndarray, v: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_as_of`, and when each value was seen (the minimum int64 before the first)."""
    if len(t) == 0:
        return np.full(len(at), np.nan), np.full(len(at), np.iinfo("int64").min)
    j = np.searchsorted(t, at, side="right") - 1
    seen = j >= 0
    k = np.clip(j, 0, None)
    return np.where(seen, v[k], np.nan), np.where(seen, t[k], np.iinfo("int64").min)


def _as_of(t: np.ndarray, v: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The value of the latest t <= each of `at` (t sorted); NaN before the first."""
    if len(t) == 0:
        return np.full(len(at), np.nan)
    j = np.searchsorted(t, at, side="right") - 1
    return np.where(j >= 0, v[np.clip(j, 0, None)], np.nan)


def _label(symbol, local_symbol, con_id) -> str:
    """How the report names an instrument: its local symbol (ESZ6, AAPL), else its symbol, else its conId."""
    for value in (local_symbol, symbol):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return f"conId {con_id}"
