"""The compliance journal (SQLite, WAL, its own writer thread): every order sent, status, execution,
commission, error, risk event and minute snapshot of the account, per account, readable as DataFrames.

    from ibframe.journal import Journal, install
    journal = install(engine, JournalConfig(), engine.account)    # after engine.start()
    ...
    journal.close()
    Journal("var/journal-DU1234567.sqlite").executions(since="2026-11-18")

`python -m ibframe.journal FILE --export csv|parquet --table executions --since 2026-11-18` exports.
"""
from .config import JournalConfig
from .install import install, reconcile
from .journal import Journal
from .schema import SCHEMA_VERSION, JournalError

__all__ = ["Journal", "JournalConfig", "JournalError", "SCHEMA_VERSION", "install", "reconcile"]
