"""The journal's SQLite schema: tables, columns, indexes, the version and its migrations.

Owns: the one description of every table (column names and SQLite types, in insert order), the
`meta` table holding `schema_version`, creating a new journal and migrating an older one, and the
connection settings (WAL, synchronous=FULL). Must never: hold a connection open, or know where
rows come from (that is `rows.py`).

Why `synchronous=FULL` with WAL: a committed transaction is then fsynced to the WAL before COMMIT
returns, so it survives not only `kill -9` of the process (NORMAL would already survive that: the
WAL is in the OS's page cache) but also an OS crash or a power cut. The writer commits in batches
(about ten times a second at most), so the fsync costs one disk flush per batch, not per row.
"""
from __future__ import annotations

import sqlite3
import time

SCHEMA_VERSION = 2

# table -> [(column, SQLite type)], in the order rows.py builds them (after an implicit `id` where noted)
CONTRACT = [("con_id", "INTEGER"), ("symbol", "TEXT"), ("sec_type", "TEXT"), ("exchange", "TEXT"),
            ("currency", "TEXT"), ("local_symbol", "TEXT"), ("expiry", "TEXT"), ("strike", "REAL"),
            ("option_right", "TEXT"), ("multiplier", "TEXT")]

TABLES: dict[str, list[tuple[str, str]]] = {
    "orders": [("time", "REAL"), ("action", "TEXT"), ("order_id", "INTEGER"), ("perm_id", "INTEGER"),
               ("client_id", "INTEGER"), ("account", "TEXT"), ("strategy", "TEXT"), ("order_ref", "TEXT")]
              + CONTRACT +
              [("legs", "TEXT"), ("side", "TEXT"), ("quantity", "REAL"), ("order_type", "TEXT"),
               ("lmt_price", "REAL"), ("aux_price", "REAL"), ("tif", "TEXT"), ("good_till", "TEXT"),
               ("algo_strategy", "TEXT"), ("algo_params", "TEXT"), ("parent_id", "INTEGER"),
               ("oca_group", "TEXT"), ("outside_rth", "INTEGER"), ("transmit", "INTEGER"),
               ("arrival_bid", "REAL"), ("arrival_ask", "REAL")],
    "statuses": [("time", "REAL"), ("order_id", "INTEGER"), ("perm_id", "INTEGER"), ("strategy", "TEXT"),
                 ("con_id", "INTEGER"), ("symbol", "TEXT"), ("status", "TEXT"), ("filled", "REAL"),
                 ("remaining", "REAL"), ("avg_fill_price", "REAL"), ("reason", "TEXT"),
                 ("unacknowledged", "INTEGER")],
    "executions": [("exec_id", "TEXT NOT NULL UNIQUE"), ("time", "REAL"), ("exec_time", "TEXT"),
                   ("received", "REAL"), ("order_id", "INTEGER"), ("perm_id", "INTEGER"), ("client_id", "INTEGER"),
                   ("account", "TEXT"), ("strategy", "TEXT"), ("order_ref", "TEXT")]
                  + CONTRACT +
                  [("side", "TEXT"), ("shares", "REAL"), ("price", "REAL"), ("venue", "TEXT"),
                   ("cum_qty", "REAL"), ("avg_price", "REAL"), ("liquidation", "INTEGER"),
                   ("last_liquidity", "INTEGER"), ("model_code", "TEXT"), ("ev_rule", "TEXT"),
                   ("ev_multiplier", "REAL"), ("pending_price_revision", "INTEGER"), ("submitter", "TEXT")],
    "commissions": [("exec_id", "TEXT NOT NULL UNIQUE"), ("time", "REAL"), ("commission", "REAL"),
                    ("currency", "TEXT"), ("realized_pnl", "REAL"), ("yield", "REAL"),
                    ("yield_redemption_date", "INTEGER")],
    "errors": [("time", "REAL"), ("code", "INTEGER"), ("req_id", "INTEGER"), ("kind", "TEXT"),
               ("subject", "TEXT"), ("text", "TEXT"), ("advanced", "TEXT")],
    "risk_events": [("time", "REAL"), ("kind", "TEXT"), ("scope", "TEXT"), ("rule", "TEXT"), ("text", "TEXT"),
                    ("details", "TEXT")],
    "account_values": [("time", "REAL"), ("account", "TEXT"), ("key", "TEXT"), ("currency", "TEXT"),
                       ("value", "TEXT"), ("number", "REAL")],
    "portfolio": [("time", "REAL"), ("account", "TEXT")] + CONTRACT +
                 [("quantity", "REAL"), ("avg_cost", "REAL"), ("market_price", "REAL"), ("market_value", "REAL"),
                  ("unrealized_pnl", "REAL"), ("realized_pnl", "REAL")],
    # the NBBO at a moment that matters (version 2): `why` is "arrival" (an order was placed), "fill" (an
    # execution arrived) or "sample" (the periodic mark of every instrument with a live quote line);
    # `source` is "line" (the strategy's streaming quote) or "snapshot" (a one-off reqMktData the order path took)
    "quotes": [("time", "REAL"), ("why", "TEXT"), ("source", "TEXT"), ("con_id", "INTEGER"), ("symbol", "TEXT"),
               ("sec_type", "TEXT"), ("bid", "REAL"), ("ask", "REAL"), ("last", "REAL"), ("order_id", "INTEGER"),
               ("client_id", "INTEGER"), ("exec_id", "TEXT"), ("strategy", "TEXT")],
}

INDEXES = [
    "CREATE INDEX IF NOT EXISTS orders_time ON orders(time)",
    "CREATE INDEX IF NOT EXISTS orders_order_id ON orders(order_id)",
    "CREATE INDEX IF NOT EXISTS statuses_time ON statuses(time)",
    "CREATE INDEX IF NOT EXISTS statuses_order_id ON statuses(order_id)",
    "CREATE INDEX IF NOT EXISTS executions_time ON executions(time)",
    "CREATE INDEX IF NOT EXISTS errors_time ON errors(time)",
    "CREATE INDEX IF NOT EXISTS risk_events_time ON risk_events(time)",
    "CREATE INDEX IF NOT EXISTS account_values_time ON account_values(time)",
    "CREATE INDEX IF NOT EXISTS portfolio_time ON portfolio(time)",
    "CREATE INDEX IF NOT EXISTS quotes_time ON quotes(time)",
    "CREATE INDEX IF NOT EXISTS quotes_order_id ON quotes(order_id)",
    "CREATE INDEX IF NOT EXISTS quotes_exec_id ON quotes(exec_id)",
]

# How a row is inserted: a re-sent execution is stored once (the first copy wins); a re-sent
# commission report replaces the earlier one for its execution (TWS may correct it), still one row.
CONFLICT = {"executions": "INSERT OR IGNORE", "commissions": "INSERT OR REPLACE"}


def insert_sql(table: str) -> str:
    cols = [c for c, _ in TABLES[table]]
    verb = CONFLICT.get(table, "INSERT")
    return f"{verb} INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


def create_sql(table: str) -> str:
    cols = ", ".join(f"{c} {t}" for c, t in TABLES[table])
    return f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, {cols})"


# version n -> the statements that take a journal from version n to n + 1
MIGRATIONS: dict[int, list[str]] = {
    1: [create_sql("quotes")] + [i for i in INDEXES if " ON quotes(" in i],     # 2: the NBBO at moments that matter
}


class JournalError(RuntimeError):
    """The journal file cannot be opened, read or written; the message says what to do."""


def configure(conn: sqlite3.Connection) -> None:
    """WAL, fsync at every commit (see the module docstring), wait for another writer's lock."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")


def read_version(conn: sqlite3.Connection) -> int | None:
    """The file's schema version; None for an empty file; JournalError for a file that is no journal."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in names:
        if names:
            raise JournalError(f"tables {sorted(names)} but no 'meta' table: this SQLite file is not an ibframe "
                               f"journal; point journal.path at another file")
        return None
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else None


def prepare(conn: sqlite3.Connection, account: str) -> int:
    """Create a new journal or migrate an older one to SCHEMA_VERSION; returns the version found (0: new)."""
    version = read_version(conn)
    if version is not None and version > SCHEMA_VERSION:
        raise JournalError(f"schema version {version} was written by a newer ibframe (this one reads up to "
                           f"{SCHEMA_VERSION}); upgrade ibframe or give this run another journal.path")
    with conn:
        if version is None:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            for table in TABLES:
                conn.execute(create_sql(table))
            for statement in INDEXES:
                conn.execute(statement)
            conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                             [("schema_version", str(SCHEMA_VERSION)), ("created", repr(time.time())),
                              ("account", account)])
            return 0
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                conn.execute(statement)
            conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(step + 1),))
    return version
