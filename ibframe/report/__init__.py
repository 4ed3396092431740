"""`ibframe report`: one self-contained HTML report of a run, from its journal (or a recording, replayed).

The parts: data.py (what the report reads from a journal, in one read-only snapshot), equity.py
(positions, equity and drawdown, hand-computable), charts.py (matplotlib figures as PNG bytes),
html.py (the page), build.py (`build_report` and `ReportError`), cli.py (`python -m ibframe.report`).

    from ibframe.report import build_report
    html = build_report("var/journal-DU1234567.sqlite", "var/reports/today")   # -> var/reports/today/report.html

`main(argv)` is the command line (`python -m ibframe.report --help`).

Owns: turning a journal into a report a person reads in a browser with no network. Must never: write to
a journal or trade; replaying a recording is ibframe.replay's work (cli.py only drives it).
"""
from .build import ReportError, build_report
from .cli import build_parser, main

__all__ = ["ReportError", "build_parser", "build_report", "main"]
