"""Historical data of the simulated gateway through the real ibapi client: bars, live bar
updates, head time stamps, historical ticks, real-time bars and historical pacing.

Gateways here start at a fixed Wednesday 11:00 New York, so trading hours (and therefore bar
counts) are known. "Still" gateways run their market at 1/100 speed, so the live market barely
moves while a test compares history with it; "fast" ones run at 20x for streams.
"""
from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from ibapi.contract import Contract

from conftest import VERSIONS
from ibframe.sim import SimConfig, SimGateway

NY = ZoneInfo("America/New_York")
WED_11 = int(dt.datetime(2025, 1, 15, 11, 0, tzinfo=NY).timestamp())   # Wednesday 2025-01-15 11:00 ET
TUE = "20250114 16:00:00 US/Eastern"
AAPL_ID = 265598
PACING = "Historical Market Data Service error message:Historical data request pacing violation"


def stock(symbol: str = "AAPL") -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
    return c


def eurusd() -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "EUR", "CASH", "IDEALPRO", "USD"
    return c


def by_con_id(con_id: int) -> Contract:
    c = Contract()
    c.conId, c.exchange = con_id, "SMART"
    return c


def ny_epoch(text: str) -> int:
    day, clock, zone = text.split(" ")
    assert zone == "US/Eastern"
    return int(dt.datetime.strptime(day + clock, "%Y%m%d%H:%M:%S").replace(tzinfo=NY).timestamp())


def bars_of(client, req_id: int) -> list:
    client.wait("historicalDataEnd", lambda a: a[0] == req_id)
    return [a[1] for a in client.all("historicalData", req_id)]


def ohlc_ok(bar) -> bool:
    return bar.low <= min(bar.open, bar.close) and max(bar.open, bar.close) <= bar.high


def start_gateway(**options) -> SimGateway:
    options.setdefault("port", 0)
    options.setdefault("seed", 7)
    options.setdefault("step_seconds", 0.05)
    options.setdefault("start_time", WED_11)
    return SimGateway(SimConfig(**options)).start()


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda v: f"v{v}")
def still(request):
    gw = start_gateway(speed=0.01, max_server_version=request.param)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def still200():
    gw = start_gateway(speed=0.01)
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def fast():
    gw = start_gateway(speed=20.0, step_seconds=0.25)
    yield gw
    gw.stop()


# --------------------------------------------------------------------------- bars and their layout


def test_minute_bars_count_dates_and_end_marker_at_every_version(still, connect):
    c = connect(still)
    assert c.serverVersion() == still.config.max_server_version
    c.reqHistoricalData(101, stock(), "", "1800 S", "1 min", "TRADES", 0, 1, False, [])
    bars = bars_of(c, 101)
    assert len(bars) == 30                                  # fully inside trading hours
    times = [ny_epoch(b.date) for b in bars]
    assert times == [WED_11 - 29 * 60 + 60 * k for k in range(30)]
    assert all(ohlc_ok(b) for b in bars)
    assert all(b.volume > 0 and b.low <= float(b.wap) <= b.high and b.barCount > 0 for b in bars[:-1])
    (_, start, end), = c.all("historicalDataEnd", 101)
    assert ny_epoch(end) - ny_epoch(start) == 1800 and ny_epoch(end) >= WED_11


def test_format_date_2_gives_epoch_seconds_and_days_stay_dates(still200, connect):
    c = connect(still200)
    c.reqHistoricalData(111, stock(), "", "1 D", "1 hour", "TRADES", 0, 2, False, [])
    bars = bars_of(c, 111)
    assert [int(b.date) for b in bars] == [WED_11 - 7 * 3600 + 3600 * k for k in range(8)]   # 04:00 .. 11:00
    c.reqHistoricalData(112, stock(), "", "1 W", "1 day", "TRADES", 1, 2, False, [])
    days = bars_of(c, 112)
    assert all(re.fullmatch(r"\d{8}", b.date) for b in days)
    assert days[-1].date == "20250115"
    assert all(dt.datetime.strptime(b.date, "%Y%m%d").weekday() < 5 for b in days)


def test_use_rth_keeps_bars_inside_regular_hours(still200, connect):
    c = connect(still200)
    c.reqHistoricalData(121, stock(), "", "2 D", "30 mins", "TRADES", 1, 1, False, [])
    bars = bars_of(c, 121)
    clock = [dt.datetime.fromtimestamp(ny_epoch(b.date), NY).time() for b in bars]
    assert all(dt.time(9, 30) <= t < dt.time(16, 0) for t in clock)
    assert len(bars) == 13 + 4                              # all of Tuesday, Wednesday 09:30..11:00
    c.reqHistoricalData(122, stock(), "", "2 D", "30 mins", "TRADES", 0, 1, False, [])
    everything = bars_of(c, 122)
    assert len(everything) > len(bars) and everything[0].date.startswith("20250114 04:00:00")


def test_last_bar_ends_at_the_live_price(still200, connect):
    c = connect(still200)
    market = still200.market.get(AAPL_ID)
    for attempt in range(4):
        steps, last, mid = still200.call(lambda: (still200.market.steps, market.last, market.midpoint))
        c.reqHistoricalData(130 + 2 * attempt, stock(), "", "1800 S", "1 min", "TRADES", 0, 1, False, [])
        c.reqHistoricalData(131 + 2 * attempt, stock(), "", "1800 S", "1 min", "MIDPOINT", 0, 1, False, [])
        trades, mids = bars_of(c, 130 + 2 * attempt), bars_of(c, 131 + 2 * attempt)
        if still200.call(lambda: still200.market.steps) == steps:       # no market step in between
            assert trades[-1].close == pytest.approx(last)
            assert mids[-1].close == pytest.approx(mid)
            assert mids[-1].volume == -1 and mids[-1].wap == -1 and mids[-1].barCount == -1
            return
    pytest.fail("the market kept stepping during every attempt")


def test_bid_ask_bars_average_bid_to_ask(still200, connect):
    c = connect(still200)
    c.reqHistoricalData(141, eurusd(), TUE, "1 D", "1 hour", "BID_ASK", 0, 1, False, [])
    bars = bars_of(c, 141)
    assert bars and all(b.low <= b.open < b.close <= b.high and b.volume == -1 for b in bars)


def test_five_minute_bars_aggregate_one_minute_bars(still200, connect):
    c = connect(still200)
    c.reqHistoricalData(151, stock(), TUE, "1 D", "1 min", "TRADES", 1, 1, False, [])
    c.reqHistoricalData(152, stock(), TUE, "1 D", "5 mins", "TRADES", 1, 1, False, [])
    ones, fives = bars_of(c, 151), bars_of(c, 152)
    assert len(ones) == 390 and len(fives) == 78
    for k, five in enumerate(fives):
        group = ones[5 * k: 5 * k + 5]
        assert five.date == group[0].date
        assert (five.open, five.close) == (group[0].open, group[-1].close)
        assert (five.high, five.low) == (max(b.high for b in group), min(b.low for b in group))
        assert five.volume == sum(b.volume for b in group)


def test_same_seed_and_start_give_identical_bars(make_gateway, connect):
    def fetch(seed: int) -> list:
        gw = make_gateway(seed=seed, start_time=WED_11, speed=0.01)
        c = connect(gw)
        c.reqHistoricalData(161, stock("MSFT"), TUE, "1 D", "5 mins", "MIDPOINT", 1, 1, False, [])
        return [(b.date, b.open, b.high, b.low, b.close) for b in bars_of(c, 161)]

    first, second, other = fetch(7), fetch(7), fetch(8)
    assert first == second
    assert first != other and [b[0] for b in first] == [b[0] for b in other]


def test_one_year_of_daily_bars(still200, connect):
    c = connect(still200)
    c.reqHistoricalData(171, stock("SPY"), "", "1 Y", "1 day", "TRADES", 1, 1, False, [])
    bars = bars_of(c, 171)
    assert 245 <= len(bars) <= 255
    assert [b.date for b in bars] == sorted(b.date for b in bars) and bars[-1].date == "20250115"
    assert all(ohlc_ok(b) and b.volume > 0 for b in bars)


def test_session_statistics_agree_with_daily_bars(still200, connect):
    c = connect(still200)
    market = still200.market.get(AAPL_ID)
    c.reqHistoricalData(181, stock(), "", "2 D", "1 day", "TRADES", 1, 1, False, [])
    yesterday, today = bars_of(c, 181)
    assert (yesterday.date, today.date) == ("20250114", "20250115")
    assert today.open == pytest.approx(market.open)
    assert yesterday.close == pytest.approx(market.prev_close)


def test_option_bars_follow_the_model(still200, connect):
    c = connect(still200)
    option = next(i for i in still200.universe.options_of(AAPL_ID) if i.right == "C")
    c.reqHistoricalData(191, by_con_id(option.con_id), "", "2 D", "1 hour", "MIDPOINT", 1, 1, False, [])
    bars = bars_of(c, 191)
    assert bars and all(ohlc_ok(b) and b.low > 0 for b in bars)
    assert all(dt.time(9, 30) <= dt.datetime.fromtimestamp(ny_epoch(b.date), NY).time() < dt.time(16) for b in bars)


# --------------------------------------------------------------------------- rejected requests


@pytest.mark.parametrize("bar_size, duration, what, fmt, code, text", [
    ("7 mins", "1 D", "TRADES", 1, 321, "bar size setting is invalid"),
    ("1 min", "1 X", "TRADES", 1, 321, "duration"),
    ("1 secs", "1 D", "TRADES", 1, 162, "invalid step"),
    ("1 secs", "3600 S", "TRADES", 1, 162, "invalid step"),
    ("1 day", "60 S", "TRADES", 1, 162, "invalid step"),
    ("1 min", "1 D", "TRADES", 3, 321, "Date formatting selection of 3 rejected"),
    ("1 min", "1 D", "NONSENSE", 1, 321, "whatToShow"),
])
def test_invalid_requests_are_rejected(still200, connect, bar_size, duration, what, fmt, code, text):
    c = connect(still200)
    c.reqHistoricalData(201, stock(), "", duration, bar_size, what, 0, fmt, False, [])
    assert text in c.wait_error(201, code)
    assert not c.all("historicalData", 201)


def test_fx_has_no_trades_and_updates_need_no_end_date(still200, connect):
    c = connect(still200)
    c.reqHistoricalData(211, eurusd(), "", "1 D", "1 hour", "TRADES", 0, 1, False, [])
    assert "No historical market data for EUR/CASH@" in c.wait_error(211, 162)
    c.reqHistoricalData(212, stock(), TUE, "1 D", "1 hour", "TRADES", 0, 1, True, [])
    assert "End date not supported with live updates" in c.wait_error(212, 321)
    c.cancelHistoricalData(213)
    assert c.wait_error(213, 366) == "No historical data query found for ticker id:213"


# --------------------------------------------------------------------------- live updates and real-time bars


def test_keep_up_to_date_streams_updates_until_cancelled(fast, connect):
    c = connect(fast)
    c.reqHistoricalData(301, stock(), "", "300 S", "5 secs", "TRADES", 0, 1, True, [])
    bars = bars_of(c, 301)
    updates = [a[1] for a in c.wait("historicalDataUpdate", lambda a: a[0] == 301, count=3)]
    assert all(ny_epoch(u.date) >= ny_epoch(bars[-1].date) and ny_epoch(u.date) % 5 == 0 for u in updates)
    assert all(ohlc_ok(u) for u in updates)
    c.cancelHistoricalData(301)
    c.cancelHistoricalData(301)
    assert "ticker id:301" in c.wait_error(301, 366)


def test_real_time_bars_arrive_every_five_seconds(fast, connect):
    c = connect(fast)
    c.reqRealTimeBars(311, stock(), 5, "TRADES", False, [])
    c.reqRealTimeBars(312, eurusd(), 5, "MIDPOINT", False, [])
    trades = c.wait("realtimeBar", lambda a: a[0] == 311, count=3)
    mids = c.wait("realtimeBar", lambda a: a[0] == 312, count=2)
    times = [a[1] for a in trades[:3]]
    assert all(t % 5 == 0 for t in times) and times[1] - times[0] == 5 and times[2] - times[1] == 5
    assert all(a[4] <= min(a[2], a[5]) and max(a[2], a[5]) <= a[3] for a in trades)
    assert all(a[6] == -1 for a in mids)
    c.cancelRealTimeBars(311)
    c.cancelRealTimeBars(312)
    c.reqRealTimeBars(313, stock(), 10, "TRADES", False, [])
    assert "real-time bars are 5 seconds" in c.wait_error(313, 321)
    c.reqRealTimeBars(314, eurusd(), 5, "TRADES", False, [])
    c.wait_error(314, 420)


# --------------------------------------------------------------------------- head time stamp and ticks


def test_head_timestamp(still200, connect):
    c = connect(still200)
    c.reqHeadTimeStamp(401, stock(), "TRADES", 1, 1)
    c.reqHeadTimeStamp(402, stock(), "TRADES", 1, 2)
    (_, utc), = c.wait("headTimestamp", lambda a: a[0] == 401)
    (_, epoch), = c.wait("headTimestamp", lambda a: a[0] == 402)
    assert re.fullmatch(r"2020\d{4}-14:30:00", utc)              # a 09:30 New York open, five years back
    assert dt.datetime.strptime(utc, "%Y%m%d-%H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp() == int(epoch)
    c.reqHeadTimeStamp(403, eurusd(), "TRADES", 0, 1)
    c.wait_error(403, 162)


def test_historical_ticks_of_each_type(still200, connect):
    c = connect(still200)
    end = ny_epoch("20250114 12:00:00 US/Eastern")
    c.reqHistoricalTicks(411, stock(), "", "20250114 12:00:00 US/Eastern", 100, "TRADES", 1, True, [])
    c.reqHistoricalTicks(412, stock(), "20250114 12:00:00 US/Eastern", "", 100, "BID_ASK", 1, True, [])
    c.reqHistoricalTicks(413, eurusd(), "20250114-17:00:00", "", 50, "MIDPOINT", 0, True, [])
    (_, trades, done), = c.wait("historicalTicksLast", lambda a: a[0] == 411)
    (_, quotes, _), = c.wait("historicalTicksBidAsk", lambda a: a[0] == 412)
    (_, mids, _), = c.wait("historicalTicks", lambda a: a[0] == 413)
    assert done and len(trades) == 100 and len(quotes) == 100 and len(mids) == 50
    assert all(t.time < end and t.size > 0 and t.exchange for t in trades)
    assert [t.time for t in trades] == sorted(t.time for t in trades)
    assert all(q.time >= end and q.priceBid < q.priceAsk for q in quotes)
    assert all(m.time >= end and m.price > 1.0 for m in mids)
    c.reqHistoricalTicks(414, stock(), "20250114 12:00:00 US/Eastern", "20250114 13:00:00 US/Eastern", 10,
                         "TRADES", 1, True, [])
    assert "Exactly one of" in c.wait_error(414, 321)
    c.reqHistoricalTicks(415, eurusd(), "", TUE, 10, "TRADES", 0, True, [])
    c.wait_error(415, 162)


# --------------------------------------------------------------------------- pacing


def test_identical_small_bar_request_within_15_seconds_is_a_pacing_violation(still200, connect):
    c = connect(still200)
    c.reqHistoricalData(501, stock("IBM"), "", "1800 S", "1 secs", "TRADES", 0, 1, False, [])
    assert len(bars_of(c, 501)) > 0
    c.reqHistoricalData(502, stock("IBM"), "", "1800 S", "1 secs", "TRADES", 0, 1, False, [])
    assert c.wait_error(502, 162) == PACING
    for k in range(4):                  # same contract and type, different requests: 6th within 2 s is refused
        c.reqHistoricalData(510 + k, stock("IBM"), "", f"{60 * (k + 2)} S", "1 secs", "TRADES", 0, 1, False, [])
        bars_of(c, 510 + k)
    c.reqHistoricalData(520, stock("IBM"), "", "1200 S", "1 secs", "TRADES", 0, 1, False, [])
    assert c.wait_error(520, 162) == PACING
    c.reqHistoricalData(521, stock("IBM"), "", "1800 S", "1 min", "TRADES", 0, 1, False, [])
    assert len(bars_of(c, 521)) == 30                       # 1 min bars are not paced


def test_pacing_can_be_switched_off(make_gateway, connect):
    c = connect(make_gateway(start_time=WED_11, speed=0.01, pace_historical=False))
    for req_id in (531, 532, 533):
        c.reqHistoricalData(req_id, stock("IBM"), "", "1800 S", "1 secs", "TRADES", 0, 1, False, [])
        assert len(bars_of(c, req_id)) == 1800
    assert not [e for e in c.errors() if e[1] == 162]


def test_pacing_counts_bid_ask_twice_toward_sixty_in_ten_minutes():
    from ibframe.sim.protocol.pacing import HistoricalPacing
    pacing = HistoricalPacing()
    for k in range(30):                 # 30 BID_ASK requests spread out: 60 units used
        assert pacing.admit(10.0 * k, ("q", k), ("c", k % 10), weight=2)
    assert not pacing.admit(300.0, ("q", "next"), ("c", "x"))
    assert pacing.admit(600.0, ("q", "later"), ("c", "x"))      # the first one left the window
