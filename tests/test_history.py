"""history(): a long range of bars in requests IB accepts, one tz-aware frame, cached as Parquet.

An Engine with the request scheduler talks to ibframe.sim over loopback. The simulator's answers are
counted where they leave the gateway (its output tap), so "served from the cache" means the gateway
sent nothing.
"""
from __future__ import annotations

import itertools
import threading
from datetime import timedelta

import pandas as pd
import pytest
from ibapi.message import IN

from ibframe.contracts import Forex, Stock
from ibframe.engine import Engine
from ibframe.history import CHUNKS, HistoryError, history, plan_chunks
from ibframe.pacing import install
from test_pacing_chaos import SimulatorClock

NY = "America/New_York"
_client_ids = itertools.count(760)


class AnswerCounter:
    """Historical answers (bars or a 162) the gateway sent to one client."""

    def __init__(self, gw, client_id: int):
        self.gw, self.client_id, self.count = gw, client_id, 0
        self.lock = threading.Lock()

    def __call__(self, session, fields) -> None:
        if session.client_id != self.client_id:
            return
        if fields[0] == IN.HISTORICAL_DATA or (fields[0] == IN.ERR_MSG and 162 in fields[1:4]):
            with self.lock:
                self.count += 1

    def __enter__(self):
        self.gw.taps.append(self)
        return self

    def __exit__(self, *exc):
        self.gw.taps.remove(self)


@pytest.fixture
def engine(gateway, tmp_path):
    eng = Engine("127.0.0.1", gateway.port, client_id=next(_client_ids), state_dir=tmp_path).start()
    install(eng)
    yield eng
    eng.stop()


@pytest.fixture
def answers(gateway, engine):
    with AnswerCounter(gateway, engine.client_id) as counter:
        yield counter


def one_request(engine, contract, bar_size: str, duration: str, end: pd.Timestamp, start: pd.Timestamp,
                what: str = "TRADES") -> pd.DataFrame:
    req = engine.bars(contract, bar_size, duration, what, keep_up_to_date=False,
                      end=f"{end.tz_convert('UTC'):%Y%m%d-%H:%M:%S}")
    frame = req.future.result(30).to_frame()
    return frame[(frame.index >= start) & (frame.index < end)]


# --- one correct frame -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bar_size, days, duration", [("5 mins", 7, "1 W"), ("1 hour", 28, "1 M"),
                                                      ("1 day", 365, "1 Y")])
def test_several_requests_give_the_frame_one_big_request_gives(engine, answers, bar_size, days, duration):
    """history() asks for chunks shorter than IB's longest duration (room for a 25-hour day), so a range of
    that longest duration takes several requests, and one request of that duration can check them."""
    spy = engine.qualify(Stock("SPY"))
    end = pd.Timestamp("2026-11-16", tz=NY)
    start = end - timedelta(days=days)
    frame = history(engine, spy, start, end, bar_size, cache=False)
    assert answers.count >= 2                              # several requests …
    assert len(frame) > 0 and str(frame.index.tz) == NY and frame.index.is_monotonic_increasing
    assert not frame.index.duplicated().any()
    assert frame.index[0] >= start and frame.index[-1] < end
    big = one_request(engine, spy, bar_size, duration, end, start)   # … equal to one big one
    pd.testing.assert_frame_equal(frame, big, check_freq=False)


def test_one_minute_bars_over_days_match_requests_cut_elsewhere(engine, answers):
    """1-min bars are served for a day at most; history's chunks (New York days, across the 25-hour day
    when clocks went back on 1 Nov 2026) agree bar for bar with 8-hour requests on UTC boundaries."""
    aapl = engine.qualify(Stock("AAPL"))
    start, end = pd.Timestamp("2026-10-30 00:00", tz=NY), pd.Timestamp("2026-11-03 00:00", tz=NY)
    frame = history(engine, aapl, start, end, "1 min", cache=False)
    assert answers.count == 5                              # four New York days, the 25-hour one in two pieces
    pieces = []
    stop = pd.Timestamp("2026-11-03 08:00", tz="UTC")
    while stop > start:
        pieces.append(one_request(engine, aapl, "1 min", "28800 S", stop, start))
        stop -= pd.Timedelta(hours=8)
    reference = pd.concat(pieces).sort_index()
    reference = reference[~reference.index.duplicated()]
    reference = reference[(reference.index >= start) & (reference.index < end)]
    assert len(frame) == 2 * 960                           # Friday and Monday, 04:00-20:00; no weekend bars
    pd.testing.assert_frame_equal(frame, reference, check_freq=False)


def test_small_bars_go_through_the_pacing_and_come_back_whole(engine):
    ibm = engine.qualify(Stock("IBM"))
    start = pd.Timestamp("2026-11-17 09:30", tz=NY)
    frame = history(engine, ibm, start, start + timedelta(hours=3), "5 secs", what="MIDPOINT", cache=False)
    assert len(frame) == 3 * 720                           # every 5 seconds, three chunks of an hour
    assert (frame.index[1:] - frame.index[:-1] == pd.Timedelta(seconds=5)).all()
    assert all(e.code != 162 for e in engine.router.errors)


def test_chunks_tile_the_range_without_gaps_for_every_bar_size():
    """Pure: across DST changes (8 Mar and 1 Nov 2026) the chunks of each bar size are contiguous, cover
    [start, end), lie on New York midnights (whole days) and fit in the duration they ask for."""
    seconds = {"S": 1, "W": 7 * 86400, "M": 28 * 86400, "Y": 365 * 86400}
    for start, end in [("2026-03-06 13:00", "2026-03-10 02:00"), ("2026-10-30 23:59", "2026-11-02 00:01")]:
        first, last = pd.Timestamp(start, tz=NY).tz_convert("UTC"), pd.Timestamp(end, tz=NY).tz_convert("UTC")
        for size, (unit, length, duration) in CHUNKS.items():
            chunks = plan_chunks(first, last, size)
            assert chunks[0].start <= first and chunks[-1].end >= last, size
            assert all(a.end == b.start for a, b in zip(chunks, chunks[1:])), size
            count, letter = duration.split()
            assert all((c.end - c.start).total_seconds() <= int(count) * seconds[letter] for c in chunks), size
            if unit != "sec":
                assert all(c.start.tz_convert(NY).hour == 0 for c in chunks), size


# --- the cache ----------------------------------------------------------------------------------------------

def test_a_second_call_is_served_from_the_cache_and_a_longer_one_asks_only_for_what_is_missing(
        engine, answers, tmp_path):
    jpm = engine.qualify(Stock("JPM"))
    start, end = pd.Timestamp("2026-11-10", tz=NY), pd.Timestamp("2026-11-13", tz=NY)
    first = history(engine, jpm, start, end, "1 min", what="BID")
    asked = answers.count
    assert asked == 3
    files = sorted((tmp_path / "history").rglob("*.parquet"))
    assert len(files) == 3 and all(f"{jpm.conId}-SMART" in str(f) and "BID-all-1min" in str(f) for f in files)
    again = history(engine, jpm, start, end, "1 min", what="BID")
    assert answers.count == asked                          # nothing asked of the gateway
    pd.testing.assert_frame_equal(first, again)
    inside = history(engine, jpm, start + timedelta(hours=30), end - timedelta(hours=3), "1 min", what="BID")
    assert answers.count == asked and inside.equals(first[(first.index >= inside.index[0])
                                                            & (first.index <= inside.index[-1])])
    longer = history(engine, jpm, start, end + timedelta(days=1), "1 min", what="BID")
    assert answers.count == asked + 1                      # only the new day
    pd.testing.assert_frame_equal(longer[longer.index < end], first)
    other = history(engine, jpm, start, end, "1 min", what="BID", use_rth=True)      # another key: asks again
    assert answers.count == asked + 1 + 3 and len(other) < len(first)


def test_a_chunk_without_bars_is_cached_empty(engine, answers):
    aapl = engine.qualify(Stock("AAPL"))
    saturday = pd.Timestamp("2026-11-14", tz=NY)
    frame = history(engine, aapl, saturday, saturday + timedelta(days=1), "1 min")
    assert frame.empty and list(frame.columns) == ["open", "high", "low", "close", "volume", "wap", "count"]
    assert str(frame.index.tz) == NY
    asked = answers.count
    assert history(engine, aapl, saturday, saturday + timedelta(days=1), "1 min").empty
    assert answers.count == asked


def test_the_open_last_chunk_is_never_cached(make_gateway, tmp_path):
    """The engine on the simulator's clock: the hour still running is asked for up to now, never cached,
    and asked for again next time; the finished hours come from the cache."""
    gw = make_gateway(speed=20, step_seconds=0.5)         # IB's 15 s between identical requests: 0.75 s here
    engine = Engine("127.0.0.1", gw.port, client_id=761, state_dir=tmp_path, clock=SimulatorClock(gw, 20)).start()
    try:
        install(engine)
        spy = engine.qualify(Stock("SPY"))
        now = pd.Timestamp(gw.now(), unit="s", tz="UTC")
        start, end = now.floor("h") - timedelta(hours=2), now.floor("h") + timedelta(hours=2)
        with AnswerCounter(gw, engine.client_id) as answers:
            frame = history(engine, spy, start, end, "5 secs", what="MIDPOINT")
            assert answers.count == 3                      # two finished hours and the open one; none after now
            later = pd.Timestamp(gw.now(), unit="s", tz="UTC")
            assert now - timedelta(seconds=5) <= frame.index[-1] <= later and len(frame) > 2 * 720
            assert len(list((tmp_path / "history").rglob("*.parquet"))) == 2
            history(engine, spy, start, end, "5 secs", what="MIDPOINT")
            assert answers.count == 4                      # only the open hour again
    finally:
        engine.stop()


def test_now_is_the_gateways_clock_not_this_machines(make_gateway, tmp_path):
    """An engine on this machine's clock (as `ibframe run` has) against a simulator pinned to another day: the
    gateway's now decides which chunk is still open, so nothing after it is asked for or cached as complete."""
    gw = make_gateway(speed=20, step_seconds=0.5)
    engine = Engine("127.0.0.1", gw.port, client_id=762, state_dir=tmp_path).start()
    try:
        install(engine)
        spy = engine.qualify(Stock("SPY"))
        now = pd.Timestamp(gw.now(), unit="s", tz="UTC")
        assert abs(engine.clock.now() - gw.now()) > 86400          # the two clocks are days apart
        start, end = now.floor("h") - timedelta(hours=2), now.floor("h") + timedelta(hours=2)
        with AnswerCounter(gw, engine.client_id) as answers:
            frame = history(engine, spy, start, end, "5 secs", what="MIDPOINT")
            assert answers.count == 3                      # two finished hours and the open one; none after now
        later = pd.Timestamp(gw.now(), unit="s", tz="UTC")
        assert frame.index[-1] <= later and len(frame) > 2 * 720
        assert len(list((tmp_path / "history").rglob("*.parquet"))) == 2     # the open hour is not cached
    finally:
        engine.stop()


# --- bad input and failures -----------------------------------------------------------------------------------

def test_bad_input_is_refused_with_what_to_do(engine):
    spy = engine.qualify(Stock("SPY"))
    t = pd.Timestamp("2026-11-10", tz=NY)
    with pytest.raises(ValueError, match="not before end"):
        history(engine, spy, t, t, "1 min")
    with pytest.raises(ValueError, match="not before end"):
        history(engine, spy, t, t - timedelta(days=1), "1 min")
    with pytest.raises(ValueError, match=r"unknown bar size '7 mins'.*1 secs, 5 secs"):
        history(engine, spy, t, t + timedelta(days=1), "7 mins")
    with pytest.raises(ValueError, match="no conId: qualify it first"):
        history(engine, Stock("SPY"), t, t + timedelta(days=1), "1 min")
    with pytest.raises(ValueError, match="ADJUSTED_LAST cannot"):
        history(engine, spy, t, t + timedelta(days=1), "1 day", what="ADJUSTED_LAST")
    with pytest.raises(ValueError, match="not a time"):
        history(engine, spy, "yesterday-ish", t, "1 min")
    with pytest.raises(RuntimeError, match="dispatch thread"):
        engine.on_dispatch(lambda: history(engine, spy, t, t + timedelta(days=1), "1 min"))


def test_naive_times_are_read_in_tz_and_the_frame_is_returned_in_it(engine):
    msft = engine.qualify(Stock("MSFT"))
    frame = history(engine, msft, "2026-11-17 15:00", "2026-11-17 16:00", "1 min", tz="UTC", cache=False)
    assert str(frame.index.tz) == "UTC" and frame.index[0] == pd.Timestamp("2026-11-17 15:00", tz="UTC")
    assert len(frame) == 60


def test_a_refused_chunk_raises_naming_it_and_nothing_is_left_behind(engine, tmp_path):
    eur = engine.qualify(Forex("EUR.USD"))
    start = pd.Timestamp("2026-11-09", tz=NY)
    with pytest.raises(HistoryError, match=r"EUR.USD 1 min TRADES bars 2026-11-09 05:00:00\+00:00 .*"
                                           r"No historical market data"):
        history(engine, eur, start, start + timedelta(days=3), "1 min")           # FX has no trades
    assert not any(r.kind == "bars" for r in engine.router.requests.values())
    assert not list((tmp_path / "history").rglob("*.parquet"))


def test_progress_bar_only_when_asked_or_on_a_terminal(engine, capsys):
    spy = engine.qualify(Stock("SPY"))
    start = pd.Timestamp("2026-11-11", tz=NY)
    history(engine, spy, start, start + timedelta(days=2), "1 hour", cache=False)     # stderr is no terminal
    assert "history" not in capsys.readouterr().err
    history(engine, spy, start, start + timedelta(days=2), "1 hour", cache=False, progress=True)
    assert "history SPY 1 hour TRADES" in capsys.readouterr().err
