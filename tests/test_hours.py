"""Tests for ibframe.sim.market.hours: IB tradingHours/liquidHours strings and RTH checks."""
from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from ibframe.sim.market import hours

NY = "America/New_York"


def test_normal_weekday_us_equity():
    day = dt.date(2026, 11, 18)  # Wednesday
    assert hours.hours_string("us_equity", day, 1, liquid=True) == "20261118:0930-20261118:1600"
    assert hours.hours_string("us_equity", day, 1, liquid=False) == "20261118:0400-20261118:2000"
    assert hours.sessions("us_equity", day, day, liquid=True) == [
        (pd.Timestamp("2026-11-18 09:30", tz=NY), pd.Timestamp("2026-11-18 16:00", tz=NY))
    ]
    assert hours.ZONE_ID == "US/Eastern"


@pytest.mark.parametrize("kind", ["us_equity", "us_option", "us_bond"])
@pytest.mark.parametrize("day", [dt.date(2026, 12, 25), dt.date(2026, 11, 26)])
@pytest.mark.parametrize("liquid", [True, False])
def test_us_holidays_closed(kind, day, liquid):
    assert hours.hours_string(kind, day, 1, liquid=liquid) == f"{day:%Y%m%d}:CLOSED"
    assert hours.sessions(kind, day, day, liquid) == []


def test_day_after_thanksgiving_early_close():
    day = dt.date(2026, 11, 27)
    assert hours.hours_string("us_equity", day, 1, liquid=True) == "20261127:0930-20261127:1300"
    assert hours.hours_string("us_option", day, 1) == "20261127:0930-20261127:1300"
    assert hours.is_open("us_equity", pd.Timestamp("2026-11-27 12:59", tz=NY))
    assert not hours.is_open("us_equity", pd.Timestamp("2026-11-27 13:00", tz=NY))
    assert hours.previous_close("us_equity", pd.Timestamp("2026-11-27 18:00", tz=NY)) == pd.Timestamp(
        "2026-11-27 13:00", tz=NY
    )


def test_week_string_us_equity():
    s = hours.hours_string("us_equity", dt.date(2026, 11, 22), 7, liquid=True)  # Sunday..Saturday
    assert s == (
        "20261122:CLOSED;20261123:0930-20261123:1600;20261124:0930-20261124:1600;"
        "20261125:0930-20261125:1600;20261126:CLOSED;20261127:0930-20261127:1300;20261128:CLOSED"
    )


@pytest.mark.parametrize("kind", ["us_equity", "us_option", "us_bond"])
def test_weekends_closed(kind):
    s = hours.hours_string(kind, dt.date(2026, 12, 5), 2, liquid=False)  # Saturday, Sunday
    assert s == "20261205:CLOSED;20261206:CLOSED"


def test_fx_string_format():
    s = hours.hours_string("fx", dt.date(2023, 12, 3), 7)  # Sunday..Saturday
    parts = s.split(";")
    assert parts[0] == "20231203:1715-20231204:1700"
    assert parts[-1] == "20231209:CLOSED"
    pattern = re.compile(r"^\d{8}:1715-\d{8}:1700$")
    assert all(pattern.match(p) for p in parts[:-1])
    assert len(parts) == 6  # five overnight sessions + Saturday
    assert hours.hours_string("fx", dt.date(2023, 12, 3), 7, liquid=True) == s
    for p in parts[:-1]:
        o = dt.datetime.strptime(p[:8], "%Y%m%d").date()
        c = dt.datetime.strptime(p[14:22], "%Y%m%d").date()
        assert c - o == dt.timedelta(days=1)
    assert not hours.is_open("fx", pd.Timestamp("2023-12-04 17:10", tz=NY))
    assert hours.is_open("fx", pd.Timestamp("2023-12-04 17:15", tz=NY))


def test_cme_index_future():
    """Written in Chicago time, as TWS writes a CME contract's hours (its timeZoneId is US/Central)."""
    assert hours.zone_id("cme_index_future") == "US/Central" and hours.zone_id("us_equity") == "US/Eastern"
    s = hours.hours_string("cme_index_future", dt.date(2026, 12, 6), 7)  # Sunday..Saturday
    assert s.startswith("20261206:1700-20261207:1600;20261207:1700-20261208:1600;")
    assert s.endswith("20261210:1700-20261211:1600;20261212:CLOSED")
    liquid = hours.hours_string("cme_index_future", dt.date(2026, 12, 7), 1, liquid=True)
    assert liquid == "20261207:0830-20261207:1500"
    # Daily maintenance break.
    assert not hours.is_open("cme_index_future", pd.Timestamp("2026-12-08 17:30", tz=NY), liquid=False)
    assert hours.is_open("cme_index_future", pd.Timestamp("2026-12-08 18:30", tz=NY), liquid=False)
    assert not hours.is_open("cme_index_future", pd.Timestamp("2026-12-08 18:30", tz=NY), liquid=True)


def test_us_bond_hours():
    assert hours.hours_string("us_bond", dt.date(2026, 11, 18), 1) == "20261118:0800-20261118:1700"


@pytest.mark.parametrize("kind", hours.KINDS)
@pytest.mark.parametrize("liquid", [True, False])
def test_is_open_agrees_with_rth_mask(kind, liquid):
    start = pd.Timestamp("2026-11-20", tz=NY).timestamp()
    grid = start + np.arange(0, 12 * 86400, 900, dtype=np.float64)  # every 15 min for 12 days
    grid = np.concatenate([grid, grid + 1, grid - 1])  # and either side of every boundary
    mask = hours.rth_mask(kind, grid, liquid=liquid)
    assert mask.dtype == bool and mask.shape == grid.shape
    assert mask.any() and not mask.all()
    for t, m in zip(grid.tolist(), mask.tolist()):
        assert hours.is_open(kind, t, liquid=liquid) == m
        assert hours.is_open(kind, pd.Timestamp(t, unit="s", tz="UTC"), liquid=liquid) == m
    # and both agree with the session list
    sess = hours.sessions(kind, dt.date(2026, 11, 19), dt.date(2026, 12, 3), liquid)
    expect = np.zeros(grid.shape, dtype=bool)
    for o, c in sess:
        expect |= (grid >= o.timestamp()) & (grid < c.timestamp())
    assert (expect == mask).all()


def test_rth_mask_edge_inputs():
    assert hours.rth_mask("us_equity", np.array([], dtype=float)).shape == (0,)
    t = pd.Timestamp("2026-11-18 10:00", tz=NY).timestamp()
    out = hours.rth_mask("us_equity", np.array([[np.nan, t], [np.inf, t + 7 * 3600]]))
    assert out.tolist() == [[False, True], [False, False]]


def test_previous_close_monday_morning_is_friday_close():
    monday = pd.Timestamp("2026-11-23 08:00", tz=NY)
    friday_close = pd.Timestamp("2026-11-20 16:00", tz=NY)
    for kind in ("us_equity", "us_option", "cme_index_future"):
        assert hours.previous_close(kind, monday) == friday_close
    assert hours.previous_close("us_equity", monday.timestamp()) == friday_close
    assert hours.previous_close("us_equity", "2026-11-23 08:00") == friday_close  # naive = Eastern
    # "at or before": exactly at a close returns that close
    assert hours.previous_close("us_equity", friday_close) == friday_close


def test_history_outside_default_window():
    # Far outside the default calendar window still works (the calendar is widened).
    assert hours.hours_string("us_equity", dt.date(2015, 12, 25), 1) == "20151225:CLOSED"
    assert hours.hours_string("us_equity", dt.date(2015, 12, 24), 1, liquid=True) == "20151224:0930-20151224:1300"


def test_unknown_kind():
    with pytest.raises(ValueError, match="us_equity"):
        hours.hours_string("crypto", dt.date(2026, 11, 18))
    for fn in (
        lambda: hours.sessions("crypto", dt.date(2026, 11, 18), dt.date(2026, 11, 18), True),
        lambda: hours.is_open("crypto", 0.0),
        lambda: hours.rth_mask("crypto", np.zeros(1)),
        lambda: hours.previous_close("crypto", 0.0),
    ):
        with pytest.raises(ValueError, match="valid kinds"):
            fn()


def test_cme_falls_back_to_xnys_days(monkeypatch):
    monkeypatch.setattr(hours, "_has_cmes", lambda: False)
    monkeypatch.setattr(hours, "_tables", {})
    s = hours.hours_string("cme_index_future", dt.date(2026, 11, 22), 7)
    assert s == (
        "20261122:1700-20261123:1600;20261123:1700-20261124:1600;20261124:1700-20261125:1600;"
        "20261126:1700-20261127:1200;20261128:CLOSED"  # Thanksgiving: no session closes, one opens
    )
    liquid = hours.hours_string("cme_index_future", dt.date(2026, 11, 27), 1, liquid=True)
    assert liquid == "20261127:0830-20261127:1200"


@pytest.mark.parametrize("kind", hours.KINDS)
def test_trading_gate_agrees_with_the_calendar_step_by_step(kind):
    """The live market's cached gate answers exactly as the calendar does, asked in time order over
    Thanksgiving week (early closes, the holiday, the weekend), every 7 minutes and across each edge."""
    from ibframe.sim.market.trading_time import TradingGate

    gate = TradingGate()
    start = pd.Timestamp("2026-11-22 12:00", tz=NY).timestamp()
    times = np.arange(start, start + 7 * 86400, 420.0)
    edges = [t for o, c in hours.sessions(kind, dt.date(2026, 11, 22), dt.date(2026, 11, 29), False)
             for t in (o.timestamp(), c.timestamp())]
    times = np.unique(np.concatenate((times, edges, np.array(edges) - 0.25)))
    expected = hours.rth_mask(kind, times, liquid=False)
    assert [gate.trading(kind, float(t)) for t in times] == expected.tolist()


def test_trading_gate_last_trade_time_and_history_end():
    from ibframe.sim.market.trading_time import TradingGate, trading_end

    gate = TradingGate()
    saturday = pd.Timestamp("2026-11-21 12:00", tz=NY).timestamp()
    friday_close = pd.Timestamp("2026-11-20 20:00", tz=NY).timestamp()
    assert gate.last_trade_time("us_equity", saturday) == friday_close
    midday = pd.Timestamp("2026-11-18 11:30", tz=NY).timestamp()
    assert gate.last_trade_time("us_equity", midday) == midday
    pairs = hours.sessions("us_equity", dt.date(2026, 11, 16), dt.date(2026, 11, 21), True)
    opens = np.array([o.timestamp() for o, _ in pairs])
    closes = np.array([c.timestamp() for _, c in pairs])
    assert trading_end(opens, closes, int(saturday)) == pd.Timestamp("2026-11-20 16:00", tz=NY).timestamp()
    assert trading_end(opens, closes, int(midday)) == int(midday)
