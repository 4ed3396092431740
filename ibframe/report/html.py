"""The report page: one self-contained HTML file (inline CSS, charts as base64 PNG data URIs, no script).

Owns: the page's sections and their order — title, run facts, results per strategy, the charts,
execution quality per day (with what its signs mean), fills, orders with their outcome, risk
events, errors — the formatting of times (New York) and numbers, and escaping: every piece of text on the
page goes through `html.escape` (symbols, order refs, error texts come from TWS and may hold
anything). Long tables are cut at MAX_ROWS with a note saying how to export the rest.

Must never: compute P&L or execution quality (equity.py, journal/tca.py), read a file, or emit
script, an external URL or anything unescaped that came from the journal.
"""
from __future__ import annotations

import base64
import html
import math

import pandas as pd

from ..journal import tca
from ..journal.reader import NEW_YORK
from .charts import Chart
from .data import ReportData
from .equity import Equity, totals

MAX_ROWS = 1000

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;color:#222;
     padding:0 12px}
h1{font-size:1.5em;margin-bottom:4px}
h2{font-size:1.15em;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:3px}
table{border-collapse:collapse;font-size:.85em;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.total td{font-weight:bold;background:#fafafa}
.note{color:#555;font-size:.88em;margin:4px 0 10px}.empty{color:#777;font-style:italic}
img{max-width:100%;height:auto;border:1px solid #eee}
table.facts th{width:200px}
"""

TCA_NOTE = ("Slippage: share-weighted, in basis points of the mid of the NBBO when the order arrived; + = a cost "
            "(paid above the mid on a buy, received below it on a sell). Savings: Σ (ask at arrival − fill "
            "price) × shares × multiplier for buys, Σ (fill price − bid at arrival) × shares × multiplier for "
            "sells, in the instruments' currency; + = better than crossing the quote. Fills whose order had no "
            "usable quote at arrival are counted apart and left out of both.")


def render(data: ReportData, eq: Equity, charts: list[Chart], title: str) -> str:
    """The whole page as text."""
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
             f"<style>{CSS}</style></head><body>", f"<h1>{esc(title)}</h1>", _facts(data, eq),
             _results(eq)]
    for chart in charts:
        parts.append(_chart(chart))
    parts += [_tca(data), _fills(data), _orders(data), _risk_events(data), _errors(data), "</body></html>\n"]
    return "\n".join(parts)


# --- sections -----------------------------------------------------------------------------------------------------

def _facts(data: ReportData, eq: Equity) -> str:
    first, last = data.first_last
    rows = [("journal", str(data.path.resolve())), ("account", data.account or "(not recorded)")]
    if data.since is not None:
        rows.append(("rows from", when(data.since)))
    rows += [("first row", when(first) if first is not None else "(the journal is empty)"),
             ("last row", when(last) if last is not None else "(the journal is empty)"),
             ("strategies", ", ".join(data.strategies) or "(none)"),
             ("order requests", f"{len(data.orders)} (place / modify / cancel)"),
             ("fills", f"{len(eq.trades)}" + (f" (and {len(data.executions) - len(eq.trades)} combo or unreadable "
                                              f"executions not counted)" if len(data.executions) > len(eq.trades)
                                              else "")),
             ("quotes journaled", str(len(data.quotes))),
             ("risk events / errors", f"{len(data.risk_events)} / {len(data.errors)}")]
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return (f"<h2>Run</h2><table class=\"facts\">{body}</table><p class=\"note\">All times are New York time. "
            f"Fills are placed at the moment ibframe received them (the clock of the quotes).</p>")


def _results(eq: Equity) -> str:
    t = totals(eq)
    if t.empty:
        return "<h2>Results per strategy</h2><p class=\"empty\">There were no fills in this journal.</p>"
    rows = [[r.strategy, n(r.fills, 0), n(r.bought), n(r.sold), n(r.commission, 2), n(r.equity, 2, sign=True),
             n(r.max_drawdown, 2), r.positions] for r in t.itertuples()]
    return ("<h2>Results per strategy</h2>"
            + table(["strategy", "fills", "bought", "sold", "commission", "P&L (equity at the end)",
                     "worst drawdown", "positions at the end"], rows, numeric={1, 2, 3, 4, 5, 6})
            + "<p class=\"note\">P&amp;L = realized cash flows less commissions plus the open position marked to the "
              "latest price seen (a quote's mid, or a fill when that came later), positions counted from flat at "
              "the start of the journal's rows.</p>")


def _chart(chart: Chart) -> str:
    out = f"<h2>{esc(chart.title)}</h2>"
    if chart.png is not None:
        data = base64.b64encode(chart.png).decode("ascii")
        out += f"<img alt=\"{esc(chart.title)}\" src=\"data:image/png;base64,{data}\">"
    if chart.note:
        out += f"<p class=\"{'note' if chart.png is not None else 'empty'}\">{esc(chart.note)}</p>"
    return out


def _tca(data: ReportData) -> str:
    head = "<h2>Execution quality per strategy and day</h2>"
    d = data.daily
    if d.empty:
        return head + "<p class=\"empty\">There were no fills: no execution quality to measure.</p>"
    rows = [[r.strategy, str(r.day), n(r.fills, 0), n(r.shares), n(r.notional, 2), n(r.slippage_bps, 2, sign=True),
             n(r.savings, 2, sign=True), n(r.commission, 2), n(r.fills_without_quote, 0)] for r in d.itertuples()]
    total = tca.aggregate(data.fills)
    last = ["all", "", n(total["fills"], 0), n(total["shares"]), n(total["notional"], 2),
            n(total["slippage_bps"], 2, sign=True), n(total["savings"], 2, sign=True), n(total["commission"], 2),
            n(total["fills_without_quote"], 0)]
    currencies = sorted({str(c) for c in data.executions.get("currency", pd.Series(dtype=object)).dropna() if c})
    unit = f" ({', '.join(currencies)})" if currencies else ""
    return (head + f"<p class=\"note\">{esc(TCA_NOTE)}</p>"
            + table(["strategy", "day", "fills", "shares", "notional", "slippage (bps, + = cost)",
                     f"savings{unit}", "commission", "fills without a quote"], rows, numeric=set(range(2, 9)),
                    total=last if len(d) > 1 else None))


def _fills(data: ReportData) -> str:
    return _listing(
        data, "Fills", data.fills, "executions", "No fills.",
        "Each execution with its execution quality (signs as above); NBBO at the fill: the quote when the execution "
        "reached ibframe, when one was journaled.",
        ["time", "strategy", "order id", "instrument", "side", "shares", "price", "NBBO at arrival", "slippage (bps)",
         "savings", "NBBO at the fill", "commission", "exec id"],
        lambda r: [when(r.at), r.strategy, n(r.order_id, 0), r.symbol, r.side, n(r.shares), n(r.price, 4),
                   _nbbo(r.arrival_bid, r.arrival_ask), n(r.slippage_bps, 2, sign=True),
                   n(r.improvement, 2, sign=True), _nbbo(r.fill_bid, r.fill_ask), n(r.commission, 2), r.exec_id],
        numeric={2, 5, 6, 8, 9, 11})


def _orders(data: ReportData) -> str:
    outcome = _outcomes(data.statuses)
    return _listing(
        data, "Orders", data.orders, "orders", "No order was sent.",
        "Every request sent to TWS (place, modify with its new terms, cancel); the outcome is the order's last "
        "status in the journal.",
        ["time", "request", "order id", "strategy", "instrument", "side", "quantity", "type", "limit", "aux / stop",
         "tif", "NBBO at arrival", "outcome"],
        lambda r: [when(r.time), r.action, n(r.order_id, 0), r.strategy, _instrument(r), r.side, n(r.quantity),
                   r.order_type, n(r.lmt_price, 4), n(r.aux_price, 4), r.tif, _nbbo(r.arrival_bid, r.arrival_ask),
                   outcome.get((r.order_id, r.strategy), "no status journaled")],
        numeric={2, 6, 8, 9})


def _risk_events(data: ReportData) -> str:
    return _listing(data, "Risk events", data.risk_events, "risk_events",
                    "No risk event (no refusal, halt or trading-state change).", "",
                    ["time", "kind", "scope", "rule", "text", "details"],
                    lambda x: [when(x.time), x.kind, x.scope, x.rule, x.text, x.details])


def _errors(data: ReportData) -> str:
    return _listing(data, "Errors and messages from TWS", data.errors, "errors", "No error or message from TWS.", "",
                    ["time", "code", "request id", "kind", "subject", "text", "advanced"],
                    lambda x: [when(x.time), n(x.code, 0), n(x.req_id, 0), x.kind, x.subject, x.text, x.advanced],
                    numeric={1, 2})


def _listing(data: ReportData, title: str, frame: pd.DataFrame, table_name: str, empty: str, note: str,
             headers: list[str], row, numeric: set[int] = frozenset()) -> str:
    """A section listing a journal table's rows (the first MAX_ROWS, with how to export the rest), or saying
    there are none; `row(record)` gives one row's cells."""
    head = f"<h2>{esc(title)}</h2>"
    if frame.empty:
        return head + f"<p class=\"empty\">{esc(empty)}</p>"
    rows = [row(r) for r in frame.head(MAX_ROWS).itertuples()]
    return (head + (f"<p class=\"note\">{esc(note)}</p>" if note else "") + table(headers, rows, numeric)
            + _cut(len(frame), table_name, data))


# --- helpers ------------------------------------------------------------------------------------------------------

def table(headers: list[str], rows: list[list], numeric: set[int] = frozenset(), total: list | None = None) -> str:
    """An HTML table; every cell escaped; `numeric` columns right-aligned."""
    def cells(row) -> str:
        return "".join(f"<td class=\"n\">{esc(v)}</td>" if i in numeric else f"<td>{esc(v)}</td>"
                       for i, v in enumerate(row))
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(f"<tr>{cells(r)}</tr>" for r in rows)
    if total is not None:
        body += f"<tr class=\"total\">{cells(total)}</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def esc(value) -> str:
    """Text for the page: None and NaN as empty, everything escaped."""
    if value is None:
        return ""
    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):             # not a scalar: shown as its text
        pass
    return html.escape(str(value), quote=True)


def when(ts) -> str:
    """A UTC Timestamp as New York time, to the millisecond."""
    if ts is None or pd.isna(ts):
        return ""
    return pd.Timestamp(ts).tz_convert(NEW_YORK).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def n(value, digits: int | None = None, sign: bool = False) -> str:
    """A number: '' when missing; `digits` decimals (None: as short as exact, e.g. 100 or 0.5)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    if math.isnan(x):
        return ""
    if digits is None:
        return f"{x:+,g}" if sign else f"{x:,.10g}"
    x = round(x, digits) + 0.0                    # no "-0.00"
    return f"{x:+,.{digits}f}" if sign else f"{x:,.{digits}f}"


def _outcomes(statuses: pd.DataFrame) -> dict:
    """(order id, strategy) -> its last status, e.g. 'Filled 100 @ 190.0300' or 'Cancelled: why'."""
    out = {}
    if statuses.empty:
        return out
    for r in statuses.drop_duplicates(["order_id", "strategy"], keep="last").itertuples():
        text = str(r.status or "")
        if r.filled == r.filled and r.filled:
            text += f"{'' if text == 'Filled' else ', filled'} {n(r.filled)} @ {n(r.avg_fill_price, 4)}"
        if isinstance(r.reason, str) and r.reason:
            text += f": {r.reason}"
        if r.unacknowledged == 1:
            text += " (TWS had not acknowledged it)"
        out[(r.order_id, r.strategy)] = text
    return out


def _instrument(r) -> str:
    name = r.local_symbol if isinstance(r.local_symbol, str) and r.local_symbol else r.symbol
    kind = r.sec_type if isinstance(r.sec_type, str) and r.sec_type not in ("", "STK") else ""
    return " ".join(str(x) for x in (name, kind) if x)


def _nbbo(bid, ask) -> str:
    if pd.isna(bid) and pd.isna(ask):
        return ""
    return f"{n(bid, 4) or '?'} / {n(ask, 4) or '?'}"


def _cut(count: int, table_name: str, data: ReportData) -> str:
    if count <= MAX_ROWS:
        return ""
    return (f"<p class=\"note\">{count - MAX_ROWS} more rows not shown; all of them: "
            f"<code>ibframe journal {esc(data.path)} --export csv --table {esc(table_name)}</code></p>")
