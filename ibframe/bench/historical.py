"""Case 6: historical bars — a year of 1-minute bars into Bars, then out as a DataFrame.

Owns: the part "bars": 252 trading days x 390 regular-hours minutes (98,280 bars; --quick: 21 days)
as ibapi BarData objects with TWS's "yyyymmdd hh:mm:ss US/Eastern" dates, built before the clock
starts, then fed to ibframe.market.bars.Bars("1 min") through on_bar/on_end (what the Router does
with historicalData) and turned into a DataFrame with to_frame(). The load, the conversion and the
total are timed; the frame must hold every bar, in order, with the prices that went in.
Must never: time the making of the BarData objects.
"""
from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

from . import Row, all_verified, values

TITLE = "historical bars (a year of 1-minute bars -> DataFrame)"


def days(quick: bool) -> int:
    return 21 if quick else 252


def parts(quick: bool) -> list[str]:
    return ["bars"]


def make_bars(n_days: int) -> list:
    from ibapi.common import BarData
    out = []
    day = dt.date(2023, 1, 3)
    price = 130.0
    while len(out) < n_days * 390:
        if day.weekday() < 5:
            for minute in range(390):
                t = dt.datetime(day.year, day.month, day.day, 9, 30) + dt.timedelta(minutes=minute)
                bar = BarData()
                i = len(out)
                bar.date = t.strftime("%Y%m%d %H:%M:%S") + " US/Eastern"
                bar.open, bar.close = price, price + 0.01 * ((i * 7919) % 11 - 5)
                bar.high, bar.low = max(bar.open, bar.close) + 0.05, min(bar.open, bar.close) - 0.05
                bar.volume, bar.wap, bar.barCount = Decimal(1000 + i % 500), Decimal(str(round(price, 4))), 20
                price = bar.close
                out.append(bar)
        day += dt.timedelta(days=1)
    return out


def run(part: str, quick: bool) -> dict:
    from ..market.bars import Bars
    data = make_bars(days(quick))
    started = time.perf_counter()
    bars = Bars("1 min")
    for bar in data:
        bars.on_bar(bar)
    bars.on_end(data[0].date, data[-1].date)
    loaded = time.perf_counter()
    frame = bars.to_frame()
    done = time.perf_counter()
    first = frame.index[0]
    ok = (len(frame) == len(data) and frame.index.is_monotonic_increasing and bars.ignored == 0
          and frame["close"].iloc[-1] == data[-1].close and frame["close"].iloc[0] == data[0].close
          and (first.hour, first.minute, str(first.tz)) == (9, 30, "America/New_York"))
    return {"values": {"load_s": loaded - started, "frame_s": done - loaded, "total_s": done - started,
                       "bars_per_s": len(data) / (done - started)},
            "verified": ok, "detail": f"{len(data):,} bars, frame {frame.shape}, first {first}"}


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    r = runs.get("bars", [])
    ok = all_verified(r)
    n = f"{days(quick) * 390:,} bars ({days(quick)} days x 390 min)"
    return [Row("Bars.on_bar for every bar (dates parsed)", "s", values(r, "load_s"), ok, note=n, digits=3),
            Row("Bars.to_frame()", "s", values(r, "frame_s"), ok, digits=3),
            Row("total: bars -> DataFrame", "s", values(r, "total_s"), ok, digits=3),
            Row("rate", "bars/s", values(r, "bars_per_s"), ok)]
