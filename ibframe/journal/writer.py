"""The journal's writer thread: the only code that writes to the SQLite file.

Owns: a queue that any thread may `put` rows on (a C-implemented SimpleQueue: a put never waits and
costs well under a microsecond), and one thread that takes the rows off, cleans them (`rows.clean`)
and commits them in batches: as soon as the queue is empty, but at most once every `commit_every`
seconds (0.1 by default) or every `max_batch` rows. A row is therefore on disk within about
`commit_every` plus one commit of the moment its hook ran — the journal's crash-safety promise rests
on this. A locked or failing disk is retried (the rows are kept, the error logged); a row SQLite
refuses is dropped alone, counted and logged, never the batch.

Must never: be waited on by the dispatch thread (`flush` and `close` are for other threads), or lose
queued rows silently (what `close` could not write is logged with its count).
"""
from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from typing import Callable

from .rows import clean
from .schema import TABLES, configure, insert_sql

log = logging.getLogger("ibframe.journal")

SQL = {table: insert_sql(table) for table in TABLES}
_STOP = object()


class _Flush:
    __slots__ = ("event",)

    def __init__(self):
        self.event = threading.Event()


class Writer:
    def __init__(self, path: str, commit_every: float = 0.1, max_batch: int = 5000,
                 before_commit: Callable[[], None] | None = None):
        self.path = path
        self.commit_every = commit_every
        self.max_batch = max_batch
        self.before_commit = before_commit          # called on the writer thread before each commit (tests)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.put = self.queue.put                   # put((table, row)): the hooks' whole cost
        self.rows = 0                               # rows committed
        self.dropped = 0                            # rows SQLite refused (logged)
        self.commits = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def backlog(self) -> int:
        return self.queue.qsize()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "Writer":
        self._thread = threading.Thread(target=self._run, name="ibframe-journal", daemon=True)
        self._thread.start()
        return self

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row queued before this call is committed (never from the dispatch thread)."""
        if not self.alive:
            return self.backlog == 0
        marker = _Flush()
        self.put(marker)
        return marker.event.wait(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Commit what is queued and end the thread; False (and an error logged) if that did not finish."""
        if self._closed:
            return True
        self._closed = True
        if not self.alive:
            return self.backlog == 0
        self.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("journal %s: %d rows still queued after %gs were not written (the disk is slow or failing)",
                      self.path, self.backlog, timeout)
            return False
        return True

    # --- the writer thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            configure(conn)
        except sqlite3.Error as exc:
            log.error("journal %s: cannot open it for writing (%s); nothing will be journaled", self.path, exc)
            return
        pending: list = []
        last_commit = 0.0
        try:
            while True:
                if pending:
                    wait = self.commit_every - (time.monotonic() - last_commit)
                    if wait <= 0 or len(pending) >= self.max_batch:
                        self._commit(conn, pending)
                        pending, last_commit = [], time.monotonic()
                        continue
                    try:
                        item = self.queue.get(timeout=wait)
                    except queue.Empty:
                        continue
                else:
                    item = self.queue.get()
                while True:                               # take everything already queued
                    if item is _STOP:
                        self._commit(conn, pending)
                        return
                    if isinstance(item, _Flush):
                        self._commit(conn, pending)
                        pending, last_commit = [], time.monotonic()
                        item.event.set()
                    else:
                        pending.append(item)
                    if len(pending) >= self.max_batch:
                        break
                    try:
                        item = self.queue.get_nowait()
                    except queue.Empty:
                        break
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, pending: list) -> None:
        if not pending:
            return
        groups: dict[str, list] = defaultdict(list)
        for table, row in pending:
            if table == "snapshot":
                groups["account_values"].extend(row[0])
                groups["portfolio"].extend(row[1])
            else:
                groups[table].append(row)
        batch = {}
        for table, rows in groups.items():
            good = []
            for row in rows:
                try:
                    good.append(clean(table, row))
                except Exception as exc:
                    self._drop(table, row, exc)
            batch[table] = good
        failing_since = None
        while True:
            try:
                if self.before_commit is not None:
                    self.before_commit()
                conn.execute("BEGIN IMMEDIATE")
                for table, rows in batch.items():
                    conn.executemany(SQL[table], rows)
                conn.execute("COMMIT")
                break
            except sqlite3.OperationalError as exc:         # locked, disk full, I/O error: keep the rows
                self._rollback(conn)
                if failing_since is None or time.monotonic() - failing_since > 30:
                    log.error("journal %s: commit failed (%s); %d rows kept, retrying", self.path, exc,
                              sum(map(len, batch.values())))
                    failing_since = time.monotonic()
                time.sleep(0.5)
            except sqlite3.Error:                           # one row SQLite will not take: find it
                self._rollback(conn)
                self._one_by_one(conn, batch)
                break
        self.rows += sum(map(len, batch.values()))
        self.commits += 1

    def _one_by_one(self, conn: sqlite3.Connection, batch: dict) -> None:
        conn.execute("BEGIN IMMEDIATE")
        for table, rows in batch.items():
            kept = []
            for row in rows:
                try:
                    conn.execute(SQL[table], row)
                    kept.append(row)
                except sqlite3.Error as exc:
                    self._drop(table, row, exc)
            batch[table] = kept
        conn.execute("COMMIT")

    def _drop(self, table: str, row, exc: Exception) -> None:
        self.dropped += 1
        log.error("journal %s: a %s row could not be stored and was dropped (%s: %s): %.300r",
                  self.path, table, type(exc).__name__, exc, row)

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
