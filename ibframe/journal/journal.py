"""The compliance journal: one SQLite file per account, written off the dispatch thread, read as DataFrames.

Owns: the `Journal` object. Opened for writing (`Journal(path, write=True)`, what `install` does) it
creates or migrates the file, starts the writer thread, and offers the `record_*` methods the
engine's hooks call — each copies its arguments into a tuple and puts it on the writer's queue,
nothing more (a few microseconds; the dispatch thread never waits on the disk). Opened for reading
(`Journal(path)`, the default) it is read-only: the reader methods open their own read-only
connection per call, so they also work while another process writes the file.

Must never: write from the caller's thread, block a `record_*` call, or let a writing method work on
a journal opened for reading (it raises JournalError).
"""
from __future__ import annotations

import atexit
import logging
import sqlite3
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from . import reader, tca
from .rows import (capture_commission, capture_error, capture_execution, capture_order, capture_quote,
                   capture_risk_event, capture_snapshot, capture_status)
from .schema import JournalError, configure, prepare
from .writer import Writer

log = logging.getLogger("ibframe.journal")


class Journal:
    def __init__(self, path: str | Path, write: bool = False, *, account: str = "", client_id: int = 0,
                 now: Callable[[], float] | None = None, commit_every: float = 0.1, max_batch: int = 5000,
                 before_commit: Callable[[], None] | None = None):
        self.path = Path(path)
        self.writable = write
        self.account_id = account
        self.client_id = client_id
        self._now = now or time.time
        self._closers: list[Callable[[], None]] = []
        self.writer: Writer | None = None
        if not write:
            reader.connect_read_only(self.path).close()        # fail now, with a clear message
            self._put = self._refuse
            return
        self._create()
        self.writer = Writer(str(self.path), commit_every, max_batch, before_commit).start()
        self._put = self.writer.put
        atexit.register(self.writer.close, 5.0)        # a script that forgets close() still gets its last rows

    def _create(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"journal {self.path}: cannot create it ({exc}); set journal.path in the YAML to a "
                               f"file in a folder you can write") from None
        try:
            configure(conn)
            found = prepare(conn, self.account_id)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"journal {self.path}: not a usable SQLite file ({exc}); move it away or set "
                               f"journal.path to another file") from None
        finally:
            conn.close()
        log.info("journal %s %s", self.path, "created" if found == 0 else "opened")

    def _refuse(self, _item) -> None:
        raise JournalError(f"journal {self.path} was opened for reading; open it with write=True (or let "
                           f"ibframe.journal.install do it) to record")

    def _closed(self, item) -> None:
        log.warning("journal %s is closed; a %s row was not recorded", self.path, item[0])

    # --- recording: any thread, never waits ---------------------------------------------------------
    def record_order(self, trade, action: str) -> None:
        """An order request sent to TWS: action "place", "modify" or "cancel" (OrderManager.sent_hooks)."""
        self._put(("orders", capture_order(self._now(), trade, action, self.client_id, self.account_id)))

    def record_status(self, trade) -> None:
        """A status change of an order (OrderManager.status_hooks)."""
        self._put(("statuses", capture_status(self._now(), trade)))

    def record_execution(self, trade, fill, execution) -> None:
        """An execution (OrderManager.execution_hooks); its execId is stored once, whatever TWS re-sends."""
        self._put(("executions", capture_execution(self._now(), trade, fill, execution)))

    def record_commission(self, fill, report) -> None:
        """A commission report (OrderManager.commission_hooks); one row per execId, the latest report wins."""
        self._put(("commissions", capture_commission(self._now(), report)))

    def record_error(self, err) -> None:
        """An IBError (Router.on_error_hooks)."""
        self._put(("errors", capture_error(err)))

    def record_risk_event(self, ev) -> None:
        """A risk decision or trading-state change (ibframe.risk.base.RiskEvent)."""
        self._put(("risk_events", capture_risk_event(ev)))

    def record_quote(self, why: str, source: str, contract, bid, ask, last=None, *, order_id=None, exec_id=None,
                     strategy=None, now: float | None = None) -> None:
        """The NBBO at an order's arrival ("arrival"), at an execution ("fill") or a periodic mark ("sample"),
        from the strategy's streaming line ("line") or a one-off snapshot ("snapshot")."""
        self._put(("quotes", capture_quote(self._now() if now is None else now, why, source, contract, bid, ask,
                                           last, order_id, self.client_id if order_id is not None else None,
                                           exec_id, strategy)))

    def record_snapshot(self, values: dict, positions, now: float | None = None) -> None:
        """Account values ((account, key, currency) -> value) and positions (Portfolio's Position objects)."""
        self._put(("snapshot", capture_snapshot(self._now() if now is None else now, values, positions)))

    # --- lifecycle ------------------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is committed. Never from the dispatch thread."""
        return self.writer.flush(timeout) if self.writer is not None else True

    def add_closer(self, fn: Callable[[], None]) -> None:
        """Run fn first when the journal closes (install uses it to unhook and stop the snapshots)."""
        self._closers.append(fn)

    def close(self, timeout: float = 10.0) -> bool:
        """Unhook, commit everything queued, end the writer thread. True when all of it was written."""
        closers, self._closers = self._closers, []
        for fn in closers:
            try:
                fn()
            except Exception:
                log.exception("journal %s: closing step failed", self.path)
        if self.writer is None:
            return True
        ok = self.writer.close(timeout)
        atexit.unregister(self.writer.close)
        self._put = self._closed
        if self.writer.dropped:
            log.error("journal %s: %d rows could not be stored (see the errors above)", self.path,
                      self.writer.dropped)
        return ok

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def stats(self) -> dict:
        """rows committed, rows dropped, commits and rows still queued (write mode)."""
        w = self.writer
        if w is None:
            return {}
        return {"rows": w.rows, "dropped": w.dropped, "commits": w.commits, "backlog": w.backlog}

    # --- reading: DataFrames -------------------------------------------------------------------------
    def table(self, name: str, since=None, strategy: str | None = None) -> pd.DataFrame:
        """Any table as a DataFrame (orders, statuses, executions, commissions, errors, risk_events,
        account_values, portfolio, quotes), oldest first, from `since` (epoch seconds, a date or 'YYYY-MM-DD')."""
        conn = reader.connect_read_only(self.path)
        try:
            return reader.table_frame(conn, name, since, strategy)
        finally:
            conn.close()

    def executions(self, since=None, strategy: str | None = None) -> pd.DataFrame:
        """One row per execution (each execId once), with its commission and realized P&L when reported."""
        return self.table("executions", since, strategy)

    def tca(self, since=None, strategy: str | None = None) -> pd.DataFrame:
        """Execution quality per fill: the NBBO at the order's arrival, slippage against its mid (bps), price
        improvement against its far side (per share and in currency), commission (journal/tca.py)."""
        conn = reader.connect_read_only(self.path)
        try:
            return tca.fills(conn, since, strategy)
        finally:
            conn.close()

    def tca_daily(self, since=None, strategy: str | None = None) -> pd.DataFrame:
        """Execution quality per strategy and New York day, with the savings figure (journal/tca.py)."""
        return tca.daily(self.tca(since, strategy))

    def orders(self, since=None, strategy: str | None = None) -> pd.DataFrame:
        """Every order request sent: place, modify (the new terms) and cancel."""
        return self.table("orders", since, strategy)

    def statuses(self, since=None, strategy: str | None = None) -> pd.DataFrame:
        return self.table("statuses", since, strategy)

    def commissions(self, since=None) -> pd.DataFrame:
        return self.table("commissions", since)

    def account(self, since=None) -> pd.DataFrame:
        """The account values of every snapshot (time, account, key, currency, value text, number)."""
        return self.table("account_values", since)

    def portfolio(self, since=None) -> pd.DataFrame:
        """The positions of every snapshot."""
        return self.table("portfolio", since)

    def quotes(self, since=None, strategy: str | None = None) -> pd.DataFrame:
        """The NBBO at every order's arrival, at every fill, and the periodic marks of the instruments with
        a live quote line (time, why, source, con_id, symbol, bid, ask, last, order_id, exec_id, ...)."""
        return self.table("quotes", since, strategy)

    def risk_events(self, since=None) -> pd.DataFrame:
        return self.table("risk_events", since)

    def errors(self, since=None) -> pd.DataFrame:
        return self.table("errors", since)

    def day_trade_executions(self, since, account: str | None = None) -> list[tuple[float, int, str, float]]:
        """(time epoch, conId, side "BOT"/"SLD", shares) of each execution from `since`, oldest first, for the
        PDT guard's restart-safe count (combo BAG executions left out: their legs are listed)."""
        conn = reader.connect_read_only(self.path)
        try:
            return reader.day_trade_executions(conn, since, account)
        finally:
            conn.close()

    def last_execution_time(self) -> float | None:
        """Epoch seconds of the latest execution journaled (None when there is none)."""
        conn = reader.connect_read_only(self.path)
        try:
            return reader.last_execution_time(conn)
        finally:
            conn.close()
