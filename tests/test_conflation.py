"""Conflation is an explicit choice per subscription, never silent (issue 12, slow consumers).

A strategy whose on_quote is slower than its stream: by default every change of the top of book reaches
on_quote, however late; with `quote(..., conflate=True)` the Quote still applies every frame but on_quote
runs with the latest state, merged updates are counted in `strategy.conflated`, and the last call sees the
last price sent. Frames are written by the simulator over loopback (`faults.send_raw`) to the real client.
"""
from __future__ import annotations

import time

import pytest

from ibframe import Strategy
from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.sim.protocol.wire import encode_message
from conftest import wait_until

VERSION = 176                                   # text message ids: the frames below are plain fields
BURST = 120


class SlowQuoter(Strategy):
    def on_start(self):
        self.seen = []
        self.line = self.quote("AAPL", conflate=bool(self.params.get("conflate")))

    def on_quote(self, instrument, quote):
        self.seen.append(quote.bid)
        time.sleep(0.004)                       # slower than the burst arrives


@pytest.fixture
def quiet_market(make_gateway, tmp_path):
    # one market step an hour: the only bid changes during the test are the ones it sends
    gw = make_gateway(max_server_version=VERSION, seed=11, step_seconds=3600)
    engine = Engine("127.0.0.1", gw.port, client_id=5200, state_dir=tmp_path).start()
    yield gw, engine
    engine.stop()


def start(engine, conflate: bool) -> SlowQuoter:
    s = SlowQuoter(engine, "slow", {"conflate": conflate}, {"AAPL": engine.qualify(Stock("AAPL"))})
    engine.on_dispatch(s._start)
    wait_until(lambda: s.line.bid is not None, what="the first quote")
    return s


def burst(gw, engine, s) -> list[float]:
    """BURST bid prices, each different, as TICK_PRICE frames (size included) for the strategy's line."""
    rid = engine.market_data(s.contract("AAPL")).req_id      # the one line per instrument, shared
    prices = [round(50.0 + i * 0.01, 2) for i in range(BURST)]
    for price in prices:
        assert gw.faults.send_raw(engine.client_id, encode_message([str(f) for f in (1, 6, rid, 1, price, 100, 0)]))
    return prices


def test_without_conflation_every_update_reaches_on_quote(quiet_market):
    gw, engine = quiet_market
    s = start(engine, conflate=False)
    before = len(s.seen)
    prices = burst(gw, engine, s)
    wait_until(lambda: s.line.bid == prices[-1] and s.seen and s.seen[-1] == prices[-1], timeout=30,
               what="the last bid delivered")
    # on_quote calls for the opening snapshot (bid, ask, sizes) may still run after the first bid was seen:
    # the burst's own bids are the ones in its price range (the market is near 190)
    assert [bid for bid in s.seen[before:] if bid in set(prices)] == prices and s.conflated == 0


def test_with_conflation_the_slow_strategy_sees_the_latest_quote_and_merges_are_counted(quiet_market):
    gw, engine = quiet_market
    s = start(engine, conflate=True)
    before = len(s.seen)
    prices = burst(gw, engine, s)
    wait_until(lambda: s.seen and s.seen[-1] == prices[-1], timeout=30, what="the last bid delivered")
    delivered = [bid for bid in s.seen[before:] if bid in set(prices)]   # not the opening snapshot's late calls
    assert len(delivered) < len(prices) and s.conflated > 0
    assert len(delivered) + s.conflated >= len(prices)     # every bid either delivered or counted as merged
    assert delivered == sorted(delivered)                  # never an older quote after a newer one
    assert set(delivered) <= set(prices)
    assert s.line.bid == prices[-1]                        # the Quote itself applied every frame
