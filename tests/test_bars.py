"""Bars: IB date formats, historical load, keepUpToDate, real-time aggregation, frames."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibapi.common import BarData
from ibapi.const import UNSET_DECIMAL

from ibframe.market import Bars, parse_bar_time
from ibframe.market.bars import COLUMNS, bar_size_seconds

NY = ZoneInfo("America/New_York")


def ts(text: str, tz="America/New_York") -> pd.Timestamp:
    return pd.Timestamp(parse_bar_time(text, tz), unit="ns", tz="UTC")


def bar(date: str, close: float, volume=Decimal(100), wap=None, count=5) -> BarData:
    b = BarData()
    b.date = date
    b.open, b.high, b.low, b.close = close - 0.5, close + 1.0, close - 1.0, close
    b.volume = volume
    b.wap = Decimal(str(close)) if wap is None else wap
    b.barCount = count
    return b


# ------------------------------------------------------------------------------ dates
@pytest.mark.parametrize("text,tz,expected_utc", [
    ("20240102", "America/New_York", "2024-01-02 05:00"),
    ("20240702", "America/New_York", "2024-07-02 04:00"),
    ("20240102", "Europe/London", "2024-01-02 00:00"),
    ("20240102 09:30:00", "America/New_York", "2024-01-02 14:30"),
    ("20240102  09:30:00", "America/New_York", "2024-01-02 14:30"),
    ("20240102 09:30:00 US/Eastern", "Europe/London", "2024-01-02 14:30"),
    ("20240702 09:30:00 America/New_York", "America/New_York", "2024-07-02 13:30"),
    ("20240702 09:30:00 Asia/Tokyo", "America/New_York", "2024-07-02 00:30"),
    ("20240102-14:30:00", "Asia/Tokyo", "2024-01-02 14:30"),
    ("1704205800", "America/New_York", "2024-01-02 14:30"),
])
def test_date_formats(text, tz, expected_utc):
    assert ts(text, tz) == pd.Timestamp(expected_utc, tz="UTC")


@pytest.mark.parametrize("text", ["2024-01-02", "20240102 9:30", "yesterday", "",
                                  "20241340", "20240102 09:30:00 Mars/Olympus"])
def test_bad_dates_raise_value_error(text):
    with pytest.raises(ValueError):
        parse_bar_time(text)


def test_bar_sizes():
    assert bar_size_seconds("5 secs") == (5, "secs")
    assert bar_size_seconds("1 min")[0] == 60 and bar_size_seconds("4 hours")[0] == 14400
    assert bar_size_seconds("1 day")[0] == 86400 and bar_size_seconds("1 week")[0] is None
    with pytest.raises(ValueError):
        Bars("1 fortnight")


@settings(max_examples=200)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31)),
       st.sampled_from(["America/New_York", "US/Eastern", "Europe/London", "Asia/Tokyo",
                        "America/Chicago"]))
def test_all_three_formats_agree_property(naive, zone_name):
    naive = naive.replace(microsecond=0)
    zone = ZoneInfo(zone_name)
    local = naive.replace(tzinfo=zone)
    # skip wall times that do not exist / are ambiguous across a DST change
    if local.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != naive or \
            local.replace(fold=1).utcoffset() != local.utcoffset():
        return
    expected = pd.Timestamp(local)
    text = naive.strftime("%Y%m%d %H:%M:%S")
    assert ts(f"{text} {zone_name}") == expected
    assert ts(text, zone_name) == expected
    assert ts(str(int(local.timestamp()))) == expected
    assert ts(local.astimezone(timezone.utc).strftime("%Y%m%d-%H:%M:%S")) == expected
    day = naive.strftime("%Y%m%d")
    assert ts(day, zone_name) == pd.Timestamp(datetime(naive.year, naive.month, naive.day,
                                                       tzinfo=zone))


# ------------------------------------------------------------------ historical + updates
def test_historical_load_daily_index_and_frame():
    bars = Bars("1 day")
    for i, day in enumerate(["20240102", "20240103", "20240104"]):
        bars.on_bar(bar(day, 100.0 + i))
    assert not bars.complete and len(bars) == 3
    bars.on_end("20240101 00:00:00", "20240105 00:00:00")
    assert bars.complete and bars.load_end == "20240105 00:00:00"
    frame = bars.to_frame()
    assert list(frame.columns) == list(COLUMNS)
    assert [str(t) for t in frame.dtypes] == ["float64"] * 6 + ["int64"]
    assert isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "America/New_York"
    assert frame.index[0] == pd.Timestamp("2024-01-02 00:00", tz=NY)
    assert frame["close"].tolist() == [100.0, 101.0, 102.0]
    assert frame["volume"].tolist() == [100.0] * 3 and frame["count"].tolist() == [5] * 3
    np.testing.assert_array_equal(bars.close, [100.0, 101.0, 102.0])
    with pytest.raises(ValueError):
        bars.close[0] = 1.0                     # read-only view


def test_empty_frame_has_the_same_schema():
    frame = Bars("1 min").to_frame()
    assert len(frame) == 0 and list(frame.columns) == list(COLUMNS)
    assert str(frame["count"].dtype) == "int64" and str(frame.index.tz) == "America/New_York"
    assert Bars("1 min").last is None


def test_unset_volume_and_wap_are_nan():
    bars = Bars("1 min")
    bars.on_bar(bar("20240102 09:30:00 US/Eastern", 10.0, volume=UNSET_DECIMAL,
                    wap=Decimal(-1), count=-1))
    row = bars.to_frame().iloc[0]
    assert np.isnan(row["volume"]) and np.isnan(row["wap"]) and row["count"] == -1


def test_storage_grows_past_capacity():
    bars = Bars("1 min", capacity=2)
    start = 1_704_205_800
    for i in range(1000):
        bars.on_bar(bar(str(start + 60 * i), float(i)))
    assert len(bars) == 1000 and bars.close[-1] == 999.0
    assert bars.to_frame().index.is_monotonic_increasing


def test_update_replaces_same_date_and_appends_new():
    bars = Bars("1 min")
    closed = []
    bars.on_bar_closed.append(closed.append)
    bars.on_bar(bar("20240102 09:30:00 US/Eastern", 10.0))
    bars.on_bar(bar("20240102 09:31:00 US/Eastern", 11.0))      # partial, in progress
    bars.on_end("", "")
    bars.on_update(bar("20240102 09:31:00 US/Eastern", 11.5))
    assert len(bars) == 2 and bars.close[-1] == 11.5 and closed == []
    bars.on_update(bar("20240102 09:32:00 US/Eastern", 12.0))
    assert len(bars) == 3 and len(closed) == 1
    assert closed[0].time == pd.Timestamp("2024-01-02 09:31", tz=NY) and closed[0].close == 11.5
    bars.on_update(bar("20240102 09:30:00 US/Eastern", 1.0))       # older: ignored
    assert bars.ignored == 1 and bars.close.tolist() == [10.0, 11.5, 12.0]


@settings(max_examples=150)
@given(st.integers(0, 4), st.lists(st.tuples(st.integers(0, 2), st.floats(1, 1000)),
                                   min_size=1, max_size=40))
def test_update_stream_fires_once_per_completed_bar(n_hist, steps):
    start = datetime(2024, 3, 5, 9, 30, tzinfo=NY)

    def stamp(minute):
        return (start + timedelta(minutes=minute)).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"
    bars = Bars("1 min")
    closed = []
    bars.on_bar_closed.append(closed.append)
    for m in range(n_hist):
        bars.on_bar(bar(stamp(m), 50.0 + m))
    bars.on_end("", "")
    minute = max(n_hist - 1, 0)
    final = {m: 50.0 + m for m in range(n_hist)}
    for advance, price in steps:
        minute += advance
        bars.on_update(bar(stamp(minute), price))
        final[minute] = price
    minutes = sorted(final)
    assert len(bars) == len(minutes)
    assert bars.close.tolist() == [final[m] for m in minutes]
    # Every bar that was in progress (the last historical one, then each update's bar),
    # except the still-open newest, fired exactly once, in order, with its final values.
    # Older historical bars were complete on arrival and never fire.
    expect = [m for m in minutes[:-1] if m >= n_hist - 1]
    assert [b.time for b in closed] == [pd.Timestamp(start + timedelta(minutes=m)) for m in expect]
    assert [b.close for b in closed] == [final[m] for m in expect]


# ------------------------------------------------------------------------ real-time bars
def test_realtime_bars_aggregate_into_minutes_and_close_on_last_slice():
    bars = Bars("1 min")
    closed = []
    bars.on_bar_closed.append(closed.append)
    t0 = int(datetime(2024, 3, 5, 9, 30, tzinfo=NY).timestamp())
    for k in range(12):
        bars.on_realtime_bar(t0 + 5 * k, 10 + k, 11 + k, 9 + k, 10.5 + k,
                             Decimal(10 * (k + 1)), Decimal(10 + k), 2)
    assert len(bars) == 1 and len(closed) == 1            # closed by its 12th slice
    b = closed[0]
    assert b.time == pd.Timestamp("2024-03-05 09:30", tz=NY)
    assert (b.open, b.high, b.low, b.close) == (10, 22, 9, 21.5)
    volumes = [10 * (k + 1) for k in range(12)]
    assert b.volume == sum(volumes) and b.count == 24
    assert b.wap == pytest.approx(sum(v * (10 + k) for k, v in enumerate(volumes)) / sum(volumes))
    bars.on_realtime_bar(t0 + 60, 1, 2, 0.5, 1.5, Decimal(1), Decimal(1), 1)
    assert len(bars) == 2 and len(closed) == 1            # new minute, not complete yet


def test_realtime_bars_merge_into_ibs_half_hour_first_hourly_bar():
    bars = Bars("1 hour")
    bars.on_bar(bar("20240305 09:30:00 US/Eastern", 100.0))   # IB stamps the first RTH hour 09:30
    t = int(datetime(2024, 3, 5, 9, 45, tzinfo=NY).timestamp())
    bars.on_realtime_bar(t, 100, 120, 90, 110, Decimal(5), Decimal(100), 1)
    assert len(bars) == 1 and bars.high[-1] == 120 and bars.close[-1] == 110
    bars.on_realtime_bar(t + 15 * 60, 110, 111, 109, 110.5, Decimal(5), Decimal(110), 1)
    assert len(bars) == 2 and bars.index[-1] == pd.Timestamp("2024-03-05 10:00", tz=NY)


def test_realtime_five_second_daily_and_weekly():
    fives = Bars("5 secs")
    closed = []
    fives.on_bar_closed.append(closed.append)
    for k in range(3):
        fives.on_realtime_bar(1_704_205_800 + 5 * k, 1, 2, 0, 1, Decimal(1), Decimal(1), 1)
    assert len(fives) == 3 and len(closed) == 3

    daily = Bars("1 day")
    daily_closed = []
    daily.on_bar_closed.append(daily_closed.append)
    daily.on_bar(bar("20240305", 100.0))
    t = int(datetime(2024, 3, 5, 15, 59, 55, tzinfo=NY).timestamp())
    daily.on_realtime_bar(t, 100, 130, 99, 125, Decimal(7), Decimal(120), 3)
    assert len(daily) == 1 and daily.high[-1] == 130 and daily.volume[-1] == 107
    assert daily_closed == []                              # the session end is unknown
    daily.on_realtime_bar(t + 18 * 3600, 125, 126, 124, 125, Decimal(1), Decimal(125), 1)
    assert len(daily) == 2 and len(daily_closed) == 1
    assert daily.index[-1] == pd.Timestamp("2024-03-06", tz=NY)

    weekly = Bars("1 week")
    weekly.on_realtime_bar(t, 1, 1, 1, 1, Decimal(1), Decimal(1), 1)
    assert len(weekly) == 0 and weekly.ignored == 1


def test_sim_bars_sit_on_their_boundaries():
    """The simulator dates a bar at its bucket's start, or at the minute a session opened inside it."""
    from ibframe.sim.market.bars import BAR_SIZES, Units, align, bar_ids, reduce

    open_930 = int(pd.Timestamp("2026-11-18 09:30", tz=NY).timestamp())
    t = np.arange(open_930, open_930 + 3 * 3600, 7, dtype=np.int64) + 3     # units off every boundary
    units = Units.make(t, 7, np.ones(len(t)), np.ones(len(t)), np.ones(len(t)), np.ones(len(t)))
    for name in ("5 secs", "1 min", "15 mins", "1 hour", "4 hours"):
        bar = BAR_SIZES[name]
        rows, ids = reduce(units, bar_ids(units, bar))
        got = align(rows, ids, bar).t
        if bar.seconds < 3600:
            assert (got % bar.seconds == 0).all(), name
        else:                                   # the first bar starts at the open, later ones on the grid
            assert got[0] == open_930 and all((pd.Timestamp(x, unit="s", tz=NY).minute == 0) for x in got[1:]), name
        assert (np.diff(got) > 0).all() and (got <= rows.t).all(), name
