"""What a report reads from a journal: every table it shows, loaded once into one `ReportData`.

Owns: opening the journal read-only (one connection, one read transaction, so the tables agree with
each other even while a run is still writing the file), the rows of the report's window (`since`),
and the small clean-ups every part of the report relies on: a journal written before the `quotes`
table existed (schema version 1) reads as one with an empty `quotes` table, each execution gets `at`
(see below), and strategy-less rows are named `NO_STRATEGY`.

Why `at`: a journal's `executions.time` is TWS's own execution time, but every other time in it
(orders, statuses, quotes, account snapshots) is ibframe's clock when the row happened. The two can
differ by far more than latency (the simulator's clock may be pinned to another day; a replay runs on
the recorded clock). `at` is when ibframe received the execution (`received`, the clock the quotes
use), else `time`: the report puts fills on the same time axis as the quotes with it, and `since`
selects executions by it.

Must never: write to the journal or open it any other way than read-only (ibframe.journal.reader).
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..journal import reader, tca

NO_STRATEGY = "(no strategy)"          # executions TWS reported that no strategy of the run placed


@dataclass(slots=True)
class ReportData:
    """The tables of one journal, oldest first; times are tz-aware UTC Timestamps."""
    path: Path
    account: str = ""                                  # the account the journal was created for
    since: pd.Timestamp | None = None                  # the report's window starts here (None: everything)
    orders: pd.DataFrame = field(default_factory=pd.DataFrame)       # place / modify / cancel requests
    statuses: pd.DataFrame = field(default_factory=pd.DataFrame)
    executions: pd.DataFrame = field(default_factory=pd.DataFrame)   # with commission, realized_pnl and `at`
    fills: pd.DataFrame = field(default_factory=pd.DataFrame)        # execution quality per fill (journal/tca.py), `at`
    daily: pd.DataFrame = field(default_factory=pd.DataFrame)        # execution quality per strategy and day
    quotes: pd.DataFrame = field(default_factory=pd.DataFrame)       # NBBO at arrivals, fills, samples
    account_values: pd.DataFrame = field(default_factory=pd.DataFrame)
    risk_events: pd.DataFrame = field(default_factory=pd.DataFrame)
    errors: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def strategies(self) -> list[str]:
        """Every strategy named by an order or an execution, sorted."""
        names = set(self.orders.get("strategy", pd.Series(dtype=object)).dropna())
        names |= set(self.executions.get("strategy", pd.Series(dtype=object)).dropna())
        return sorted(str(n) for n in names)

    @property
    def first_last(self) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
        """The earliest and latest time of any row (executions by `at`)."""
        times = [frame[col].dropna() for frame, col in
                 ((self.orders, "time"), (self.statuses, "time"), (self.executions, "at"), (self.quotes, "time"),
                  (self.account_values, "time"), (self.risk_events, "time"), (self.errors, "time"))
                 if col in frame.columns and len(frame)]
        times = [t for t in times if len(t)]
        if not times:
            return None, None
        return min(t.min() for t in times), max(t.max() for t in times)


def load(path: str | Path, since=None) -> ReportData:
    """Every table of the journal at `path` from `since` (epoch seconds, a date, a datetime or
    'YYYY-MM-DD[ HH:MM]' New York time; None: all). Raises ibframe.journal.JournalError for a missing
    file or one that is no journal (its message says what to do)."""
    path = Path(path)
    start = reader.since_epoch(since)
    conn = reader.connect_read_only(path)
    try:
        conn.execute("BEGIN")                          # one snapshot of the file for every table below
        account = _meta(conn, "account")
        data = ReportData(path=path, account=account,
                          since=None if start is None else pd.Timestamp(start, unit="s", tz="UTC"))
        for table in ("orders", "statuses", "quotes", "risk_events", "errors"):
            setattr(data, table, reader.table_frame(conn, table, start))
        data.account_values = reader.table_frame(conn, "account_values", start)
        data.executions = _executions(conn, start)
        fills = tca.fills(conn)
        data.fills = fills[fills["exec_id"].isin(set(data.executions["exec_id"]))].reset_index(drop=True)
        data.fills["at"] = data.fills["exec_id"].map(dict(zip(data.executions["exec_id"], data.executions["at"])))
    finally:
        conn.close()
    for frame in (data.orders, data.statuses, data.executions, data.fills, data.quotes):
        if "strategy" in frame.columns:
            frame["strategy"] = _strategy_names(frame["strategy"])
    data.daily = tca.daily(data.fills)
    return data


def _executions(conn: sqlite3.Connection, start: float | None) -> pd.DataFrame:
    """Executions with their commission, realized P&L and `at` (see the module docstring), in journal order."""
    sql = ("SELECT e.*, c.commission, c.currency AS commission_currency, c.realized_pnl "
           "FROM executions e LEFT JOIN commissions c ON c.exec_id = e.exec_id")
    params: tuple = ()
    if start is not None:
        sql += " WHERE COALESCE(e.received, e.time) >= ?"
        params = (start,)
    frame = reader.query(conn, sql + " ORDER BY e.id", params).drop(columns=["id"], errors="ignore")
    frame["at"] = frame["received"].where(frame["received"].notna(), frame["time"])
    return frame


def _strategy_names(column: pd.Series) -> pd.Series:
    text = column.astype(object).where(column.notna(), None)
    return text.map(lambda s: NO_STRATEGY if s is None or str(s).strip() == "" else str(s))


def _meta(conn: sqlite3.Connection, key: str) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row and row[0] is not None else ""
