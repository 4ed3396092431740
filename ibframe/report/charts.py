"""The report's charts: matplotlib figures drawn off-screen (Agg) into PNG bytes.

Owns: one function per chart — equity and drawdown per strategy, the account's NetLiquidation,
positions over time, fills on the price with the NBBO band, the slippage histogram — each returning a
`Chart` whose `png` is None, with a `note` saying why, when there is nothing to draw; and keeping
text from TWS inert in a figure (matplotlib reads `$...$` as math: it is escaped). Times are drawn
in New York time.

Must never: read the journal, compute P&L (equity.py does), use pyplot or any screen (figures are
plain `Figure` objects on an Agg canvas: no global state, nothing to close), or fail on empty data.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..journal.reader import NEW_YORK
from .equity import Equity, instrument_keys

DPI = 100
WIDTH = 11.0                           # inches: 1,100 px at DPI
MAX_INSTRUMENTS = 6                    # fills-on-price panels drawn; the rest are named in the note
BUY, SELL, BAND = "#1a9641", "#d7191c", "#4575b4"


@dataclass(slots=True)
class Chart:
    name: str                          # the PNG's file stem, e.g. "equity"
    title: str
    png: bytes | None                  # None: nothing to draw (see note)
    note: str = ""                     # why there is no picture, or what the picture leaves out


def all_charts(eq: Equity, fills: pd.DataFrame, quotes: pd.DataFrame, end: pd.Timestamp | None = None) -> list[Chart]:
    """Every chart of the report, in the order the page shows them; step lines run on to `end` (the
    report's last row), so the last value shows as a step too."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # missing glyphs in a symbol from TWS: drawn as boxes, not logged
        return [equity_chart(eq, end), positions_chart(eq, end), fills_chart(eq, quotes, end), slippage_chart(fills),
                account_chart(eq, end)]


def equity_chart(eq: Equity, end: pd.Timestamp | None = None) -> Chart:
    title = "Equity and drawdown per strategy"
    if eq.equity.empty:
        return Chart("equity", title, None, "No fills in the journal: no equity curve.")
    fig, top = _curves_with_drawdown(((plain(strategy), g) for strategy, g in eq.equity.groupby("strategy", sort=True)),
                                     end, 5.5, "equity (P&L, currency)")
    top.axhline(0, color="grey", lw=0.7)
    return Chart("equity", title, png(fig), "Realized cash flows less commissions plus the open position marked "
                                            "to the latest price seen: a quote's mid, or a fill when that came later.")


def account_chart(eq: Equity, end: pd.Timestamp | None = None) -> Chart:
    title = "Account equity (NetLiquidation)"
    if eq.account.empty:
        return Chart("account", title, None, "No account snapshots with NetLiquidation in the journal.")
    if eq.account["time"].nunique() < 3:                  # one or two points make no curve: say what they were
        seen = "; ".join(f"{row.equity:,.2f} {row.currency} at "
                         f"{pd.Timestamp(row.time).tz_convert(NEW_YORK):%Y-%m-%d %H:%M:%S}"
                         for row in eq.account.itertuples())
        return Chart("account", title, None, f"Too few account snapshots for a curve: NetLiquidation {seen} (New York "
                                             f"time). The journal takes one every journal.snapshot_every (1 minute by "
                                             f"default) and one at the end.")
    groups = eq.account.groupby(["account", "currency"], sort=True)
    fig, top = _curves_with_drawdown(((plain(f"{acct} {cur}".strip()), g) for (acct, cur), g in groups), end, 4.5,
                                     "NetLiquidation")
    top.ticklabel_format(axis="y", useOffset=False, style="plain")
    return Chart("account", title, png(fig), "From the journal's account snapshots: everything in the account, "
                                             "not only this run's strategies.")


def _curves_with_drawdown(labelled, end, height: float, ylabel: str):
    """A figure of step curves (`equity` of each labelled frame) over their drawdowns; returns it and the top axes."""
    fig = Figure(figsize=(WIDTH, height), dpi=DPI)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for label, g in labelled:
        t, (equity, drawdown) = run_on(g["time"], end, g["equity"], g["drawdown"])
        top.step(t, equity, where="post", label=label)
        bottom.fill_between(t, drawdown, 0, step="post", alpha=0.4)
    top.set_ylabel(ylabel)
    top.legend(loc="best", fontsize="small")
    bottom.set_ylabel("drawdown")
    _time_axis(bottom)
    return fig, top


def positions_chart(eq: Equity, end: pd.Timestamp | None = None) -> Chart:
    title = "Position over time per strategy and instrument"
    if eq.curves.empty:
        return Chart("positions", title, None, "No fills in the journal: no positions.")
    fig = Figure(figsize=(WIDTH, 3.5), dpi=DPI)
    ax = fig.subplots()
    for (strategy, _), g in eq.curves.groupby(["strategy", "instrument"], sort=True):
        t, (position,) = run_on(g["time"], end, g["position"])
        ax.step(t, position, where="post", label=plain(f"{strategy}: {g['label'].iloc[-1]}"))
    ax.axhline(0, color="grey", lw=0.7)
    ax.set_ylabel("position (shares / contracts)")
    ax.legend(loc="best", fontsize="small")
    _time_axis(ax)
    return Chart("positions", title, png(fig))


def fills_chart(eq: Equity, quotes: pd.DataFrame, end: pd.Timestamp | None = None) -> Chart:
    title = "Fills on the price, with the NBBO band (bid to ask)"
    trades = eq.trades
    if trades.empty:
        return Chart("fills", title, None, "No fills in the journal.")
    order = trades.groupby("instrument", sort=False)["shares"].sum().sort_values(ascending=False, kind="stable")
    shown = list(order.index[:MAX_INSTRUMENTS])
    q = quotes.assign(instrument=instrument_keys(quotes)) if quotes is not None and len(quotes) else None
    fig = Figure(figsize=(WIDTH, 3.2 * len(shown)), dpi=DPI)
    axes = np.atleast_1d(fig.subplots(len(shown), 1, squeeze=False).ravel())
    without_quotes = []
    for ax, key in zip(axes, shown):
        mine = trades[trades["instrument"] == key]
        label = plain(mine["label"].iloc[-1])
        band = _band(q[q["instrument"] == key]) if q is not None else None
        if band is not None:
            t, (bid, ask) = run_on(band["time"], end, band["bid"], band["ask"])
            ax.fill_between(t, bid, ask, step="post", color=BAND, alpha=0.25, lw=0, label="NBBO bid-ask")
            ax.step(t, (bid + ask) / 2, where="post", color=BAND, lw=0.6, label="mid")
        else:
            without_quotes.append(label)
            ax.plot(ny(mine["at"]), mine["price"], color="grey", lw=0.6, label="fill prices")
        for sign, marker, color, name in ((1, "^", BUY, "buy"), (-1, "v", SELL, "sell")):
            side = mine[np.sign(mine["signed"]) == sign]
            if len(side):
                ax.scatter(ny(side["at"]), side["price"], marker=marker, color=color, s=36, zorder=3,
                           edgecolors="black", linewidths=0.4, label=f"{name} ({len(side)})")
        ax.set_title(label + ("" if band is not None else "  (no quotes journaled: fill prices only)"),
                     fontsize="medium", loc="left")
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        ax.set_ylabel("price")
        ax.legend(loc="best", fontsize="small")
        _time_axis(ax)
    notes = []
    if without_quotes:
        notes.append(f"No quotes in the journal for {', '.join(without_quotes)}: fill prices only, no NBBO band.")
    if len(order) > len(shown):
        notes.append(f"{len(order) - len(shown)} more instruments with fills are not drawn (the "
                     f"{len(shown)} with the most shares traded are).")
    return Chart("fills", title, png(fig), " ".join(notes))


def slippage_chart(fills: pd.DataFrame) -> Chart:
    title = "Slippage per fill against the arrival mid (bps, + = cost)"
    bps = pd.to_numeric(fills["slippage_bps"], errors="coerce").dropna() if len(fills) else pd.Series(dtype=float)
    bps = bps[np.isfinite(bps)]
    if bps.empty:
        why = "No fills" if fills.empty else "None of the fills had a usable NBBO when its order arrived"
        return Chart("slippage", title, None, f"{why}: no slippage to show.")
    fig = Figure(figsize=(WIDTH, 3.2), dpi=DPI)
    ax = fig.subplots()
    ax.hist(bps, bins=min(40, max(5, len(bps) // 2)), color=BAND, alpha=0.8, edgecolor="white")
    ax.axvline(0, color="black", lw=0.8)
    shares = fills.loc[bps.index, "shares"].astype("float64")
    if shares.sum() > 0:
        mean = float((bps * shares).sum() / shares.sum())
        ax.axvline(mean, color=SELL, lw=1.2, ls="--", label=f"share-weighted mean {mean:+.2f} bps")
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel("slippage vs the arrival mid, bps (+ = cost: paid above the mid on a buy, received below it "
                  "on a sell)")
    ax.set_ylabel("fills")
    left = len(fills) - len(bps)
    return Chart("slippage", title, png(fig),
                 f"{left} fills without a usable arrival quote are left out." if left else "")


# --- helpers -----------------------------------------------------------------------------------------------------

def _band(q: pd.DataFrame) -> pd.DataFrame | None:
    """The usable NBBO rows (bid and ask finite, > 0, bid <= ask), oldest first; None when there is none."""
    if q.empty:
        return None
    bid, ask = (pd.to_numeric(q[c], errors="coerce").astype("float64") for c in ("bid", "ask"))
    ok = np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask > 0) & (bid <= ask) & q["time"].notna()
    if not ok.any():
        return None
    return pd.DataFrame({"time": q["time"][ok], "bid": bid[ok], "ask": ask[ok]}).sort_values("time", kind="stable")


def run_on(times: pd.Series, end: pd.Timestamp | None, *values: pd.Series) -> tuple[np.ndarray, list[np.ndarray]]:
    """New York times and values, with the last values repeated at `end` when it is later (a step line
    then shows its last step)."""
    t = ny(times)
    columns = [np.asarray(v, dtype="float64") for v in values]
    if end is not None and len(t) and not pd.isna(end):
        stop = ny(pd.Series([end]))[0]
        if stop > t[-1]:
            t = np.append(t, stop)
            columns = [np.append(c, c[-1]) for c in columns]
    return t, columns


def ny(times: pd.Series) -> np.ndarray:
    """UTC Timestamps as naive New York datetimes (what the axes show)."""
    return pd.to_datetime(times, utc=True).dt.tz_convert(NEW_YORK).dt.tz_localize(None).to_numpy()


def plain(text, limit: int = 60) -> str:
    """Text from TWS or a config, safe in a figure: `$` would start math; long names are cut."""
    text = str(text)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def _time_axis(ax) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator)
    # ticks within a minute read "40, 50, 02:38" by default: spell every time of day out in full
    formatter.formats[3:6] = ["%H:%M", "%H:%M", "%H:%M:%S"]
    formatter.zero_formats[3:6] = ["%H:%M", "%H:%M", "%H:%M:%S"]
    ax.xaxis.set_major_formatter(formatter)
    ax.set_xlabel("New York time")
    ax.grid(True, alpha=0.3)


def png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()

