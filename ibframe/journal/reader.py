"""Reading a journal: read-only SQLite connections, queries, pandas DataFrames.

Owns: opening a journal file read-only (a reader can never change it, even while a run writes it),
turning a `since` (epoch seconds, a date, a datetime, a pandas Timestamp or "YYYY-MM-DD[ HH:MM[:SS]]")
into epoch seconds, and the query behind each reader method. Times come back as UTC pandas
Timestamps (`time`, `received`); dates and naive times given as `since` are New York time, the
exchange day TWS stamps US executions with.

Must never: write, or open the file any other way than read-only.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from .schema import TABLES, JournalError, SCHEMA_VERSION, create_sql, read_version

NEW_YORK = ZoneInfo("America/New_York")
TIME_COLUMNS = ("time", "received")
MAX_SECONDS = 9.2e9                     # pandas' nanosecond Timestamps end in 2262


def connect_read_only(path: str | Path) -> sqlite3.Connection:
    path = Path(path)
    if not path.exists():
        raise JournalError(f"no journal at {path}: check the path (a run writes var/journal-<account>.sqlite "
                           f"by default, or journal.path in its YAML)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        version = read_version(conn)
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path} is not a readable SQLite journal ({exc})") from None
    if version is None:
        conn.close()
        raise JournalError(f"{path} is an empty SQLite file, not a journal yet")
    if version > SCHEMA_VERSION:
        conn.close()
        raise JournalError(f"{path} has schema version {version}, newer than this ibframe reads "
                           f"({SCHEMA_VERSION}); upgrade ibframe")
    if version < 2:            # written before the quotes table: read as one with it empty (a TEMP table: the file is
        conn.execute(create_sql("quotes").replace("CREATE TABLE", "CREATE TEMP TABLE", 1))   # never touched)
    return conn


def since_epoch(since) -> float | None:
    """Epoch seconds of `since`; None for None. Dates and naive times are New York time."""
    if since is None:
        return None
    if isinstance(since, bool):
        raise ValueError(f"since must be a time, got {since!r}")
    if isinstance(since, (int, float)):
        return float(since)
    if isinstance(since, str):
        text = since.strip()
        try:
            since = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"since {since!r}: write YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]' (New York time), "
                             f"or pass epoch seconds") from None
    if isinstance(since, pd.Timestamp):
        since = since.to_pydatetime()
    if isinstance(since, dt.datetime):
        if since.tzinfo is None:
            since = since.replace(tzinfo=NEW_YORK)
        return since.timestamp()
    if isinstance(since, dt.date):
        return dt.datetime.combine(since, dt.time(), NEW_YORK).timestamp()
    raise ValueError(f"since must be epoch seconds, a date, a datetime or 'YYYY-MM-DD', got {since!r}")


def query(conn: sqlite3.Connection, sql: str, params: tuple = ()) -> pd.DataFrame:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    frame = pd.DataFrame.from_records(cur.fetchall(), columns=names)
    for col in TIME_COLUMNS:
        if col in frame.columns:
            seconds = pd.to_numeric(frame[col], errors="coerce").astype("float64")
            seconds = seconds.where(seconds.abs() < MAX_SECONDS)        # garbage times (inf, year 300000): NaT
            frame[col] = pd.to_datetime(seconds, unit="s", utc=True)
    return frame


def table_frame(conn: sqlite3.Connection, table: str, since=None, strategy: str | None = None) -> pd.DataFrame:
    """Every row of a table (in the order written), from `since`, of one strategy where it has the column."""
    if table not in TABLES:
        raise ValueError(f"no table {table!r} in a journal; tables: {', '.join(TABLES)}")
    if table == "executions":
        where, params = _where(since, strategy, table, "e.")
        sql = ("SELECT e.*, c.commission, c.currency AS commission_currency, c.realized_pnl "
               "FROM executions e LEFT JOIN commissions c ON c.exec_id = e.exec_id" + where + " ORDER BY e.id")
    else:
        where, params = _where(since, strategy, table)
        sql = f"SELECT * FROM {table}{where} ORDER BY id"
    frame = query(conn, sql, params)
    for col, kind in TABLES[table]:          # an INTEGER column with NULLs stays integers (pandas' nullable Int64)
        if kind.startswith("INTEGER") and col in frame.columns and frame[col].dtype == "float64":
            frame[col] = frame[col].astype("Int64")
    return frame.drop(columns=["id"], errors="ignore")


def _where(since, strategy, table: str, alias: str = "") -> tuple[str, tuple]:
    clauses, params = [], []
    start = since_epoch(since)
    if start is not None:
        clauses.append(f" {alias}time >= ?")
        params.append(start)
    if strategy is not None:
        if "strategy" not in dict(TABLES[table]):
            raise ValueError(f"table {table} has no strategy column")
        clauses.append(f" {alias}strategy = ?")
        params.append(strategy)
    return (" WHERE" + " AND".join(clauses) if clauses else ""), tuple(params)


def day_trade_executions(conn: sqlite3.Connection, since, account: str | None = None) -> list[tuple]:
    """(time epoch, conId, side BOT/SLD, shares) of every execution from `since`, oldest first; a combo's
    own (BAG) executions are left out: its legs are there, each as the instrument it traded."""
    sql = "SELECT time, con_id, side, shares FROM executions WHERE (sec_type IS NULL OR sec_type != 'BAG')"
    params: list = []
    start = since_epoch(since)
    if start is not None:
        sql += " AND time >= ?"
        params.append(start)
    if account:
        sql += " AND account = ?"
        params.append(account)
    return [tuple(r) for r in conn.execute(sql + " ORDER BY time, id", params)]


def last_execution_time(conn: sqlite3.Connection) -> float | None:
    row = conn.execute("SELECT MAX(time) FROM executions").fetchone()
    return row[0] if row and row[0] is not None else None
