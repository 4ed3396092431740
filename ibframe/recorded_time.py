"""Log lines on a replay's clock: while a replay runs, every log record carries the recorded time.

Owns: a logging filter that stamps each record with the virtual clock's time (epoch seconds of the
recording) instead of the wall clock's, installed on the root logger's handlers for the duration of a
replay (`recorded_time(now)`), so `%(asctime)s` reads as when it happened in the session, not today.
Must never: change what is logged, or stay installed after the replay (the context manager removes it).
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterator


class RecordedTime(logging.Filter):
    """Stamps records with `now()` (the replay's virtual time; None: leave the record's own time)."""

    def __init__(self, now: Callable[[], float | None]):
        super().__init__()
        self.now = now

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.now()
        if now is None:
            return True
        record.created = now
        record.msecs = (now - int(now)) * 1000.0
        return True


@contextmanager
def recorded_time(now: Callable[[], float | None]) -> Iterator[RecordedTime]:
    """Install `RecordedTime(now)` on every handler of the root logger until the block ends."""
    stamp = RecordedTime(now)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(stamp)
    try:
        yield stamp
    finally:
        for handler in handlers:
            handler.removeFilter(stamp)
