"""Requests wait their turn under IB's limits instead of failing (ibframe.pacing), end to end.

An Engine talks over loopback to ibframe.sim, which enforces TWS's limits: historical pacing (162),
tick-by-tick streams (10190) and repeats (10189), depth (309) and market-data lines (101). With the
request scheduler installed none of those errors reaches the caller: the request waits (visibly, in
`stats()` and `waiting()`) and goes when its limit allows. Each limit is also shown to be real: without
the scheduler, or with a scheduler that trusts more than the gateway allows, the gateway refuses.
"""
from __future__ import annotations

import itertools
import logging
import time

import pytest

from ibframe.config import ConfigError
from ibframe.contracts import Forex, Stock
from ibframe.engine import Engine
from ibframe.pacing import PacingLimits, RequestScheduler, install
from ibframe.router import RequestError
from conftest import MIDDAY, wait_until

STOCKS = ("AAPL", "MSFT", "IBM", "JPM", "SPY")
_client_ids = itertools.count(700)


@pytest.fixture
def start_engine(tmp_path):
    """start_engine(gateway, limits) -> (engine, scheduler or None); stopped after the test."""
    engines = []

    def start(gw, limits: PacingLimits | None = None, paced: bool = True):
        engine = Engine("127.0.0.1", gw.port, client_id=next(_client_ids), state_dir=tmp_path,
                        pacing=limits or True if paced else False).start()
        engines.append(engine)
        return engine, (engine.scheduler if paced else None)
    yield start
    for engine in engines:
        engine.stop()


def codes(engine: Engine, *wanted: int) -> list[int]:
    return [e.code for e in list(engine.router.errors) if e.code in wanted]


def stocks(engine: Engine, n: int) -> list:
    return [engine.qualify(Stock(s)) for s in STOCKS[:n]]


def on_dispatch(engine: Engine, fn, *args):
    return engine.on_dispatch(fn, *args)


def gateway_saw(gw, req_id: int) -> bool:
    """Whether the gateway holds a stream under this request id (it would, had the request reached it)."""
    def look():
        return any(rid == req_id for session in gw.sessions.values() for _, rid in session.subscriptions)
    return gw.call(look)


# --- historical pacing ------------------------------------------------------------------------------------

def five_second_bars(engine: Engine, contract, n: int) -> list:
    """n back-to-back 5-second bar requests for one contract (distinct ends: none is identical)."""
    base = int(MIDDAY) - 3600
    return [engine.bars(contract, "5 secs", "60 S", keep_up_to_date=False,
                        end=time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(base - 60 * k))) for k in range(n)]


def test_without_the_scheduler_seven_5_second_bar_requests_draw_162(gateway, start_engine):
    """The control: the simulator enforces IB's "six or more within 2 s for one contract" rule."""
    engine, _ = start_engine(gateway, paced=False)
    reqs = five_second_bars(engine, engine.qualify(Stock("AAPL")), 7)
    wait_until(lambda: all(r.future.done() for r in reqs), 10, "all seven answered or refused")
    assert sum(1 for r in reqs if r.future.exception() is not None) >= 2
    assert codes(engine, 162)


def test_seven_back_to_back_5_second_bar_requests_all_answered_without_162(gateway, start_engine):
    engine, scheduler = start_engine(gateway)
    reqs = five_second_bars(engine, engine.qualify(Stock("AAPL")), 7)
    waited = [on_dispatch(engine, scheduler.waiting, r) for r in reqs]
    assert waited[:5] == [None] * 5                      # five go at once
    assert all(w is not None for w in waited[5:])         # the sixth and seventh wait their turn
    stats = scheduler.stats()
    assert stats.queued == {"bars": 2} and stats.waits == 2
    for req in reqs:
        bars = req.future.result(15)
        assert len(bars) == 12 and bars.complete
    assert codes(engine, 162) == []
    stats = scheduler.stats()
    assert stats.queued == {} and stats.sent == 7 + 1 and stats.requeues == 0   # (+1: the qualify look-up)
    assert all(r.sent == 1 for r in reqs)


def test_an_identical_historical_request_waits_15_seconds(make_gateway, start_engine):
    """IB's 15-second identical-request rule, on a simulator running 20x (scheduler scaled to match)."""
    speed = 20.0
    gw = make_gateway(speed=speed, step_seconds=0.5)
    engine, scheduler = start_engine(gw, PacingLimits(margin_seconds=2.0).scaled(1 / speed))
    spy = engine.qualify(Stock("SPY"))
    end = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(int(MIDDAY) - 7200))
    first = engine.bars(spy, "5 secs", "60 S", keep_up_to_date=False, end=end)
    assert first.future.result(10)
    sim_start = gw.now()
    again = engine.bars(spy, "5 secs", "60 S", keep_up_to_date=False, end=end)
    assert on_dispatch(engine, scheduler.waiting, again) is not None
    assert again.future.result(10).complete
    assert gw.now() - sim_start >= 15.0 - 2 * 0.5         # it went out no earlier than 15 simulated seconds later
    assert codes(engine, 162) == []


def test_an_injected_162_pacing_violation_is_retried_and_completes(gateway, start_engine):
    engine, scheduler = start_engine(gateway, PacingLimits(pacing_retry_delay=0.3))
    spy = engine.qualify(Stock("SPY"))
    assert gateway.faults.pacing_violation(engine.client_id, kind="historical")
    left: list[int] = []                                  # ids requests leave (rekey / finish), in order
    engine.router.finish_hooks.append(lambda r: left.append(r.req_id))
    req = engine.bars(spy, "1 min", "1800 S", keep_up_to_date=False)
    bars = req.future.result(15)
    assert len(bars) == 30
    assert codes(engine, 162) == [162]                    # TWS did refuse it once …
    first_id = left[0]
    assert req.req_id != first_id and req.sent == 2       # … and it was sent again under a fresh id
    stats = scheduler.stats()
    assert stats.requeues == 1 and stats.failed == 0


def test_a_162_that_is_not_about_pacing_fails_at_once(gateway, start_engine):
    """'No data' is an answer, not a limit: the request fails as before, without a retry."""
    engine, scheduler = start_engine(gateway, PacingLimits(pacing_retry_delay=0.3))
    eur = engine.qualify(Forex("EUR.USD"))
    req = engine.bars(eur, "1 min", "1800 S", what="TRADES", keep_up_to_date=False)   # FX has no trades
    with pytest.raises(RequestError, match="162") as caught:
        req.future.result(10)
    assert "No historical market data" in str(caught.value) and "requeue" not in str(caught.value)
    assert scheduler.stats().requeues == 0 and req.sent == 1


def test_pacing_gives_up_after_max_retries_with_advice(gateway, start_engine):
    engine, scheduler = start_engine(gateway, PacingLimits(pacing_retry_delay=0.1, max_retries=2))
    spy = engine.qualify(Stock("SPY"))
    for _ in range(3):
        assert gateway.faults.pacing_violation(engine.client_id, kind="historical")
    req = engine.bars(spy, "1 min", "1800 S", keep_up_to_date=False)
    with pytest.raises(RequestError) as caught:
        req.future.result(15)
    text = str(caught.value)
    assert "162" in text and "2 requeues" in text and "pacing.historical" in text
    assert req.sent == 3 and req.req_id not in engine.router.requests
    assert scheduler.stats().failed == 1


# --- tick-by-tick ------------------------------------------------------------------------------------------

def test_the_fourth_tick_by_tick_stream_waits_and_starts_when_one_is_cancelled(gateway, start_engine, caplog):
    engine, scheduler = start_engine(gateway, PacingLimits(log_wait_after=0.2))
    contracts = stocks(engine, 4)
    caplog.set_level(logging.INFO, logger="ibframe.pacing")
    reqs = [engine.tick_by_tick(c, "BidAsk") for c in contracts]
    wait_until(lambda: all(len(r.ticks) > 0 for r in reqs[:3]), 10, "three streams")
    fourth = reqs[3]
    assert on_dispatch(engine, scheduler.waiting, fourth) is not None and fourth.sent == 0
    assert scheduler.stats().queued == {"ticks": 1} and scheduler.stats().in_flight["ticks"] == 3
    wait_until(lambda: any("tick-by-tick: 3 of 3 in use" in r.getMessage() for r in caplog.records), 5,
               "the long wait logged with its reason")
    time.sleep(0.3)
    assert len(fourth.ticks) == 0 and not gateway_saw(gateway, fourth.req_id)
    engine.cancel(reqs[0])
    wait_until(lambda: len(fourth.ticks) > 0, 10, "the fourth stream once a slot is free")
    assert on_dispatch(engine, scheduler.waiting, fourth) is None and fourth.sent == 1
    assert codes(engine, 10190, 10189) == []
    logged = [r for r in caplog.records if fourth.subject in r.getMessage()]
    assert len(logged) == 1                               # once, however often the queue was looked at


def test_a_request_cancelled_while_queued_is_never_sent(gateway, start_engine):
    engine, scheduler = start_engine(gateway)
    contracts = stocks(engine, 4)
    reqs = [engine.tick_by_tick(c, "MidPoint") for c in contracts]
    queued = reqs[3]
    assert on_dispatch(engine, scheduler.waiting, queued) is not None
    engine.cancel(queued)
    assert on_dispatch(engine, scheduler.waiting, queued) is None
    engine.cancel(reqs[0])                                # frees the slot the cancelled one waited for
    later = engine.tick_by_tick(contracts[0], "BidAsk")   # the next in line takes it
    wait_until(lambda: len(later.ticks) > 0, 10, "the next request gets the slot")
    time.sleep(0.2)
    assert queued.sent == 0 and len(queued.ticks) == 0 and not gateway_saw(gateway, queued.req_id)
    stats = scheduler.stats()
    assert stats.cancelled_while_queued == 1 and stats.queued == {}


def test_a_repeated_tick_by_tick_request_waits_out_ibs_15_seconds(make_gateway, start_engine):
    speed = 20.0
    gw = make_gateway(speed=speed, step_seconds=0.5)
    engine, scheduler = start_engine(gw, PacingLimits(margin_seconds=2.0).scaled(1 / speed))
    aapl = engine.qualify(Stock("AAPL"))
    first = engine.tick_by_tick(aapl, "AllLast")
    wait_until(lambda: first.sent == 1, 5, "first sent")
    engine.cancel(first)
    again = engine.tick_by_tick(aapl, "AllLast")
    assert on_dispatch(engine, scheduler.waiting, again) is not None
    wait_until(lambda: again.sent == 1 and again.req_id in engine.router.requests, 10, "the repeat sent")
    time.sleep(0.3)
    assert codes(engine, 10189) == [] and again.req_id in engine.router.requests


def test_10190_from_tws_requeues_until_a_slot_frees(make_gateway, start_engine):
    """Another application holds a stream: TWS allows 2 to us while the scheduler believes 3. The third gets
    10190, is requeued under a fresh id (never failed) and starts when one of ours ends."""
    gw = make_gateway(tick_by_tick_limit=2)
    engine, scheduler = start_engine(gw, PacingLimits(limit_retry_delay=0.3))
    contracts = stocks(engine, 3)
    failures = []
    reqs = [engine.tick_by_tick(c, "BidAsk") for c in contracts]
    reqs[2].on_error = failures.append
    wait_until(lambda: codes(engine, 10190), 10, "TWS's refusal")
    wait_until(lambda: scheduler.stats().requeues >= 1, 5, "the requeue")
    assert reqs[2].req_id in engine.router.requests and not reqs[2].done
    engine.cancel(reqs[0])
    wait_until(lambda: len(reqs[2].ticks) > 0, 10, "the third stream once ours freed a slot")
    assert failures == [] and scheduler.stats().failed == 0


def test_a_limit_tws_keeps_refusing_fails_after_max_retries_saying_what_to_change(make_gateway, start_engine):
    gw = make_gateway(tick_by_tick_limit=1)
    engine, scheduler = start_engine(gw, PacingLimits(limit_retry_delay=0.1, max_retries=2))
    a, b = stocks(engine, 2)
    engine.tick_by_tick(a, "BidAsk")
    failures = []
    second = engine.tick_by_tick(b, "BidAsk")
    second.on_error = failures.append
    wait_until(lambda: failures, 10, "the failure")
    assert failures[0].code == 10190 and "pacing.tick_by_tick" in failures[0].text
    assert second.done and second.req_id not in engine.router.requests and second.sent == 3
    assert scheduler.stats().failed == 1


# --- depth and market-data lines --------------------------------------------------------------------------

def test_depth_beyond_the_limit_waits_and_309_never_reaches_the_caller(gateway, start_engine):
    engine, scheduler = start_engine(gateway)
    contracts = stocks(engine, 4)
    books = [engine.depth(c, rows=3) for c in contracts]
    wait_until(lambda: all(r.book.best_bid is not None for r in books[:3]), 10, "three books")
    assert on_dispatch(engine, scheduler.waiting, books[3]) is not None
    same = engine.depth(contracts[1], rows=5)             # IB counts distinct instruments: this one fits
    wait_until(lambda: same.book.best_bid is not None, 10, "a second book of a held instrument")
    assert scheduler.stats().in_flight["depth"] == 4 and scheduler.stats().queued == {"depth": 1}
    engine.cancel(books[0])
    wait_until(lambda: books[3].book.best_bid is not None, 10, "the fourth instrument's book")
    assert codes(engine, 309) == []


def test_market_data_lines_past_the_limit_wait_for_a_free_line(make_gateway, start_engine):
    gw = make_gateway(market_data_lines=2)
    engine, scheduler = start_engine(gw, PacingLimits(market_data_lines=2))
    contracts = stocks(engine, 3)
    quotes = [engine.market_data(c) for c in contracts]
    wait_until(lambda: all(q.quote.mid is not None for q in quotes[:2]), 10, "two quotes")
    time.sleep(0.2)
    assert quotes[2].quote.mid is None and quotes[2].sent == 0
    snap = engine.snapshot(contracts[0])                  # a snapshot needs a line too
    assert on_dispatch(engine, scheduler.waiting, snap) is not None
    assert scheduler.stats().queued == {"mktdata": 1, "snapshot": 1}
    engine.cancel(quotes[1])
    wait_until(lambda: quotes[2].quote.mid is not None, 10, "the third quote once a line is free")
    engine.cancel(quotes[0])
    assert snap.future.result(10).mid is not None
    assert codes(engine, 101) == []


def test_101_from_tws_requeues_a_line_until_one_frees(make_gateway, start_engine):
    gw = make_gateway(market_data_lines=2)
    engine, scheduler = start_engine(gw, PacingLimits(limit_retry_delay=0.3))     # believes 100 lines
    contracts = stocks(engine, 3)
    quotes = [engine.market_data(c) for c in contracts]
    wait_until(lambda: codes(engine, 101), 10, "TWS's refusal")
    engine.cancel(quotes[0])
    wait_until(lambda: quotes[2].quote.mid is not None, 10, "the third line")
    assert scheduler.stats().requeues >= 1 and not quotes[2].done


# --- what is not limited, and the settings ------------------------------------------------------------------

def test_kinds_without_limits_are_sent_at_once(gateway, start_engine):
    engine, scheduler = start_engine(gateway, PacingLimits(tick_by_tick=1))
    engine.tick_by_tick(engine.qualify(Stock("AAPL")), "BidAsk")
    details = engine.contract_details(Stock("MSFT"))      # unaffected by the full tick-by-tick slots
    assert details and details[0].contract.conId == 272093
    assert scheduler.stats().waits == 0


def test_reset_forgets_open_slots_but_remembers_the_historical_windows(gateway, start_engine):
    engine, scheduler = start_engine(gateway, PacingLimits(tick_by_tick=1))
    a, b = stocks(engine, 2)
    engine.bars(a, "5 secs", "60 S", keep_up_to_date=False).future.result(10)
    engine.tick_by_tick(a, "BidAsk")
    waiting = engine.tick_by_tick(b, "BidAsk")
    assert scheduler.stats().queued == {"ticks": 1}
    on_dispatch(engine, scheduler.reset)
    stats = scheduler.stats()
    assert stats.queued == {} and stats.in_flight == {}
    assert on_dispatch(engine, scheduler.waiting, waiting) is None
    assert scheduler.history.weight == 1                  # IB's 10-minute count outlives the socket
    assert scheduler.tick_repeat.last == {}               # streams may come back at once


def test_after_a_reconnect_live_streams_return_and_a_queued_one_keeps_waiting(gateway, start_engine):
    """The connection supervisor reconnects after the gateway drops us; Engine.resubscribe resets the
    scheduler and submits everything again under fresh ids: the three streams that were live are live
    again (the gateway's limit is per connection), the queued fourth still waits, never refused."""
    from ibframe.resilience import ConnectionConfig, ConnectionSupervisor
    engine, scheduler = start_engine(gateway)
    supervisor = ConnectionSupervisor(engine, ConnectionConfig(initial_delay=0.05, max_delay=0.2)).install()
    try:
        reqs = [engine.tick_by_tick(c, "BidAsk") for c in stocks(engine, 4)]
        wait_until(lambda: all(len(r.ticks) > 0 for r in reqs[:3]), 10, "three streams")
        old_ids = [r.req_id for r in reqs]
        assert gateway.faults.drop_client(engine.client_id)
        wait_until(lambda: supervisor.recoveries == 1, 15, "the reconnect")
        assert all(r.req_id != old for r, old in zip(reqs, old_ids))          # fresh ids
        counts = [len(r.ticks) for r in reqs[:3]]
        wait_until(lambda: all(len(r.ticks) > n for r, n in zip(reqs[:3], counts)), 10, "streams again")
        assert on_dispatch(engine, scheduler.waiting, reqs[3]) is not None and reqs[3].sent == 0
        assert scheduler.stats().in_flight.get("ticks") == 3
        engine.cancel(reqs[0])
        wait_until(lambda: len(reqs[3].ticks) > 0, 10, "the fourth stream")
        assert codes(engine, 10190, 10189) == []
    finally:
        supervisor.stop()


def test_limits_from_yaml_scaled_and_validated():
    def fail(path, message):
        raise ConfigError("run.yaml", ".".join(path), None, message)
    limits = PacingLimits.from_mapping({"tick_by_tick": 5, "depth": 10, "market_data_lines": 300, "margin": 0.1,
                                        "historical": {"max_requests": 50, "window_seconds": "10m",
                                                       "paced_bar_seconds": "all"}}, fail)
    assert (limits.tick_by_tick, limits.depth, limits.market_data_lines) == (5, 10, 300)
    assert limits.historical_max == 50 and limits.historical_window == 600 and limits.paces(86400)
    assert PacingLimits().paces(30) and not PacingLimits().paces(60) and not PacingLimits().paces(None)
    fast = limits.scaled(0.01)
    assert fast.historical_window == pytest.approx(6.0) and fast.historical_max == 50 and fast.margin == 0.1
    assert limits.window(600) == pytest.approx(600 * 1.1 + 2)
    with pytest.raises(ConfigError, match="pacing.historical.per_minute: unknown key"):
        PacingLimits.from_mapping({"historical": {"per_minute": 3}}, fail)
    with pytest.raises(ConfigError, match="pacing.tick_by_tick: must be a whole number ≥ 1, got 0"):
        PacingLimits.from_mapping({"tick_by_tick": 0}, fail)
    with pytest.raises(ConfigError, match="pacing.historical.max_requests: must be a whole number"):
        PacingLimits.from_mapping({"historical": {"max_requests": 2.5}}, fail)
    with pytest.raises(ConfigError, match="must be a number"):
        PacingLimits.from_mapping({"depth": "three"}, fail)
    with pytest.raises(ValueError, match="positive"):
        PacingLimits().scaled(0)


def test_install_replaces_the_pass_through_and_hooks_once(gateway, start_engine):
    engine, first = start_engine(gateway)
    second = install(engine)
    assert engine.scheduler is second and isinstance(second, RequestScheduler)
    assert first.on_finish not in engine.router.finish_hooks and second.on_finish in engine.router.finish_hooks
    assert engine.router.retry_hooks.count(second.on_error) == 1
