"""Execution quality (TCA) from a journal: every fill against the NBBO at its order's arrival.

Owns: the arithmetic, on DataFrames read from a journal (executions joined with their commission and
with the first row journaled for their order — the placement, which carries the NBBO at arrival):

* per fill (`fills`): arrival bid / ask / mid, where they came from (`arrival_source`: "line", the
  strategy's streaming quote, or "snapshot", the one the order path took itself), the far side (the ask
  for a buy, the bid for a sell),
  slippage against the arrival mid in basis points (positive = a cost: paid above the mid on a buy,
  received below it on a sell), the price improvement against the far side per share (positive = better
  than crossing the quote: below the ask on a buy, above the bid on a sell) and in currency
  (× shares × multiplier), the NBBO when the fill arrived (`fill_bid` / `fill_ask` / `fill_mid`) and the
  price improvement against its far side (`fill_improvement_per_share`, the SEC Rule 605 sense), notional,
  commission;
* per strategy and New York trading day (`daily`): fills, shares, notional, share-weighted slippage in
  bps, the savings figure Σ improvement in currency (the seed article's "0.13 USD per share, 130 USD on a
  1,000-share order"), commissions, and how many fills had no arrival quote (left out of the averages).

A fill whose order had no usable quote at arrival (none, one-sided, zero, negative, not finite, crossed)
keeps NaN in the quote columns: never a made-up benchmark.
Combo (BAG) executions are left out (their legs' executions carry the prices). Must never: write to the
journal or assume a quote it does not have.
"""
from __future__ import annotations

import math
import sqlite3
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from . import reader

NEW_YORK = ZoneInfo("America/New_York")

FILL_COLUMNS = ["time", "day", "strategy", "order_id", "exec_id", "symbol", "sec_type", "side", "shares", "price",
                "multiplier", "arrival_bid", "arrival_ask", "arrival_mid", "arrival_source", "far_side",
                "slippage_bps", "improvement_per_share", "improvement", "fill_bid", "fill_ask", "fill_mid",
                "fill_improvement_per_share", "notional", "commission"]
DAILY_COLUMNS = ["strategy", "day", "fills", "shares", "notional", "slippage_bps", "savings", "commission",
                 "fills_without_quote"]

# the arrival NBBO: the one the placement carried (a live line), else the order path's own snapshot
# (quotes, why='arrival'); the NBBO at the fill: quotes, why='fill'
_FILLS_SQL = """
SELECT e.time, e.strategy, e.order_id, e.exec_id, e.symbol, e.sec_type, e.side, e.shares, e.price, e.multiplier,
       c.commission,
       CASE WHEN o.arrival_bid IS NOT NULL OR o.arrival_ask IS NOT NULL THEN o.arrival_bid ELSE qa.bid END
           AS arrival_bid,
       CASE WHEN o.arrival_bid IS NOT NULL OR o.arrival_ask IS NOT NULL THEN o.arrival_ask ELSE qa.ask END
           AS arrival_ask,
       CASE WHEN o.arrival_bid IS NOT NULL OR o.arrival_ask IS NOT NULL THEN 'line'
            WHEN qa.id IS NOT NULL THEN qa.source END AS arrival_source,
       qf.bid AS fill_bid, qf.ask AS fill_ask
FROM executions e
LEFT JOIN commissions c ON c.exec_id = e.exec_id
LEFT JOIN orders o ON o.id = (SELECT MIN(o2.id) FROM orders o2
                              WHERE o2.order_id = e.order_id AND o2.client_id = e.client_id)
LEFT JOIN quotes qa ON qa.id = (SELECT MIN(q.id) FROM quotes q
                                WHERE q.why = 'arrival' AND q.order_id = e.order_id AND q.client_id = e.client_id)
LEFT JOIN quotes qf ON qf.id = (SELECT MIN(q.id) FROM quotes q WHERE q.why = 'fill' AND q.exec_id = e.exec_id)
"""


def fills(conn: sqlite3.Connection, since=None, strategy: str | None = None) -> pd.DataFrame:
    """One row per execution with its execution-quality figures (see the module docstring), oldest first."""
    clauses, params = ["e.sec_type IS NOT 'BAG'"], []
    start = reader.since_epoch(since)
    if start is not None:
        clauses.append("e.time >= ?")
        params.append(start)
    if strategy is not None:
        clauses.append("e.strategy = ?")
        params.append(strategy)
    raw = reader.query(conn, _FILLS_SQL + " WHERE " + " AND ".join(clauses) + " ORDER BY e.id", tuple(params))
    return fill_figures(raw)


def fill_figures(raw: pd.DataFrame) -> pd.DataFrame:
    """The per-fill figures from executions with `side` (BOT/SLD), `shares`, `price`, `multiplier`,
    `arrival_bid`, `arrival_ask`, `commission` and a UTC `time`."""
    f = raw.copy()
    for col in ("fill_bid", "fill_ask", "arrival_source"):
        if col not in f:
            f[col] = None
    for col in ("shares", "price", "arrival_bid", "arrival_ask", "fill_bid", "fill_ask", "commission"):
        f[col] = pd.to_numeric(f[col], errors="coerce").astype("float64")
    f["multiplier"] = [multiplier_number(m) for m in f["multiplier"]]
    for moment in ("arrival", "fill"):
        _keep_usable(f, f"{moment}_bid", f"{moment}_ask")
    f.loc[f["arrival_bid"].isna(), "arrival_source"] = None
    buy = f["side"].isin(["BOT", "BUY"]).to_numpy()
    sign = np.where(buy, 1.0, -1.0)
    f["arrival_mid"] = (f["arrival_bid"] + f["arrival_ask"]) / 2
    f["far_side"] = np.where(buy, f["arrival_ask"], f["arrival_bid"])
    f["slippage_bps"] = sign * (f["price"] - f["arrival_mid"]) / f["arrival_mid"] * 1e4
    f["improvement_per_share"] = sign * (f["far_side"] - f["price"])
    f["improvement"] = f["improvement_per_share"] * f["shares"] * f["multiplier"]
    f["fill_mid"] = (f["fill_bid"] + f["fill_ask"]) / 2
    f["fill_improvement_per_share"] = sign * (np.where(buy, f["fill_ask"], f["fill_bid"]) - f["price"])
    f["notional"] = f["price"] * f["shares"] * f["multiplier"]
    f["day"] = f["time"].dt.tz_convert(NEW_YORK).dt.date if len(f) else pd.Series(dtype="object")
    return f[FILL_COLUMNS].reset_index(drop=True)


def of_trades(trades, multiplier) -> dict | None:
    """`aggregate` over in-process Trades' fills (combos left out), before anything is journaled: the run
    summary's and a sweep's figures. `multiplier(contract)` gives a contract's price multiplier. None: no fill."""
    rows = [{"time": t.placed_at, "strategy": t.strategy, "order_id": t.order_id, "exec_id": f.exec_id,
             "symbol": t.contract.symbol, "sec_type": t.contract.secType, "side": f.side, "shares": f.shares,
             "price": f.price, "multiplier": str(multiplier(t.contract)), "commission": f.commission,
             "arrival_bid": t.arrival_bid, "arrival_ask": t.arrival_ask}
            for t in trades if not t.is_combo for f in t.fills]
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    return aggregate(fill_figures(frame))


def _keep_usable(f: pd.DataFrame, bid: str, ask: str) -> None:
    """NaN for a quote that is no NBBO: a side missing, zero, negative or not finite, or bid above ask
    (one-sided and crossed quotes lose both sides)."""
    for col in (bid, ask):
        f[col] = f[col].where(np.isfinite(f[col]) & (f[col] > 0))
    unusable = f[bid].isna() | f[ask].isna() | (f[bid] > f[ask])
    f.loc[unusable, [bid, ask]] = np.nan


def daily(fill_rows: pd.DataFrame) -> pd.DataFrame:
    """Per strategy and New York day: `aggregate` of that day's fills."""
    rows = [{"strategy": strategy, "day": day, **aggregate(g)}
            for (strategy, day), g in fill_rows.groupby(["strategy", "day"], sort=True, dropna=False)]
    return pd.DataFrame(rows, columns=DAILY_COLUMNS)


def aggregate(fill_rows: pd.DataFrame) -> dict:
    """Fills, shares, notional, share-weighted slippage (bps; fills with an arrival quote only), savings
    against the far side (currency), commissions (NaN when none was reported), fills without a quote."""
    quoted = fill_rows[fill_rows["arrival_mid"].notna()]
    weight = quoted["shares"].sum()
    commissions = fill_rows["commission"]
    return {"fills": len(fill_rows), "shares": float(fill_rows["shares"].sum()),
            "notional": float(fill_rows["notional"].sum()),
            "slippage_bps": float((quoted["slippage_bps"] * quoted["shares"]).sum() / weight) if weight > 0
            else math.nan,
            "savings": float(quoted["improvement"].sum()),
            "commission": float(commissions.sum()) if commissions.notna().any() else math.nan,
            "fills_without_quote": int(len(fill_rows) - len(quoted))}


def multiplier_number(text) -> float:
    """A contract's multiplier as a number: 1 when empty or unreadable (stocks, FX)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return 1.0
    return value if math.isfinite(value) and value > 0 else 1.0
