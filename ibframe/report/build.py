"""`build_report(journal, out_dir)`: a journal in, `out_dir/report.html` and the charts' PNGs out.

Owns: the steps in order (load → equity → charts → page → files), the files written (report.html,
one `<chart>.png` per chart that has a picture; a stale PNG of a chart that now has none is removed)
and `ReportError`, whose message says what was wrong and what to do. The page is written to a
temporary name first and renamed, so a reader never sees half a report.

Must never: write to the journal, or let an error from a bad path, a file that is no journal or an
unwritable folder escape as anything but a ReportError.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from ..journal import JournalError
from .charts import all_charts
from .data import load
from .equity import analyse
from .html import render

log = logging.getLogger("ibframe.report")

JOURNAL_HINT = ("ibframe report reads the journal a run writes: <state_dir>/journal-<account>.sqlite (var/ by "
                "default), or the file journal.path names in the run's YAML")


class ReportError(RuntimeError):
    """The report cannot be built; the message says what was wrong and what to do."""


def build_report(journal_path: str | Path, out_dir: str | Path, title: str | None = None, *, since=None) -> Path:
    """Write `out_dir/report.html` (self-contained) and `out_dir/<chart>.png` from the journal at
    `journal_path`; returns the HTML file's path. `out_dir` is created when missing. `since` keeps the
    rows from then on (epoch seconds, a date, a datetime or 'YYYY-MM-DD[ HH:MM]' New York time)."""
    started = time.perf_counter()
    path = Path(journal_path)
    if not path.exists():
        raise ReportError(f"no journal at {path}: check the path ({JOURNAL_HINT})")
    if path.is_dir():
        raise ReportError(f"{path} is a folder, not a journal: give the .sqlite file in it ({JOURNAL_HINT})")
    try:
        data = load(path, since)
    except JournalError as exc:
        raise ReportError(f"{exc} ({JOURNAL_HINT})") from None
    except sqlite3.Error as exc:
        raise ReportError(f"{path}: the journal could not be read ({exc}); if a run is writing it, try again, "
                          f"else check the file") from None
    except ValueError as exc:                       # a `since` that is no time
        raise ReportError(str(exc)) from None
    eq = analyse(data.executions, data.quotes, data.account_values)
    charts = all_charts(eq, data.fills, data.quotes, data.first_last[1])
    page = render(data, eq, charts, title or default_title(data.path, data.account))
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for chart in charts:
            target = out / f"{chart.name}.png"
            if chart.png is None:
                target.unlink(missing_ok=True)
            else:
                target.write_bytes(chart.png)
        html_path = out / "report.html"
        temporary = out / f".report.html.{os.getpid()}.tmp"
        temporary.write_text(page, encoding="utf-8")
        temporary.replace(html_path)
    except OSError as exc:
        raise ReportError(f"cannot write the report to {out} ({exc.strerror or exc}): give it a folder you can "
                          f"write (ibframe report --out DIR)") from None
    log.debug("report %s built in %.2fs", html_path, time.perf_counter() - started)
    return html_path


def default_title(path: Path, account: str) -> str:
    return f"ibframe report: {path.name}" + (f" (account {account})" if account else "")
