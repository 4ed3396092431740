"""The risk layer refuses new orders decided on stale data (issue 12: slow consumers are bounded).

Stale = the dispatch thread is behind the socket by more than `risk.stale_data.max_lag` (default 2 s), or
the instrument's data farm is down (TWS 2103 until 2104). Orders that only reduce a position still pass, so a
strategy can always get out; fresh data lets new orders through again. Real client, loopback, simulator.
"""
from __future__ import annotations

import time

import pytest

from ibframe import Strategy
from ibframe.config import ConfigError, load_config
from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.risk.layer import RiskLayer
from ibframe.risk.base import RiskRejected
from ibframe.resilience.supervisor import ConnectionSupervisor
from ibframe.risk.config import RiskConfig
from ibframe.sim.protocol.codec import SessionCodec
from conftest import wait_until


class Watcher(Strategy):
    """Buys one share from on_quote each time the test arms it; keeps what happened."""

    def on_start(self):
        self.line = self.quote("AAPL")
        self.armed, self.refused, self.placed, self.lags = False, [], [], []

    def on_quote(self, instrument, quote):
        if not self.armed:
            return
        self.armed = False
        self.lags.append(self.engine.dispatch_lag)
        try:
            self.placed.append(self.buy(instrument, 1))
        except RiskRejected as exc:
            self.refused.append(exc)


@pytest.fixture
def watcher_with(make_gateway, tmp_path):
    engines = []

    def start(risk: dict | None = None):
        gw = make_gateway(seed=5)
        engine = Engine("127.0.0.1", gw.port, client_id=5300, state_dir=tmp_path).start()
        engines.append(engine)
        s = Watcher(engine, "watcher", {}, {"AAPL": engine.qualify(Stock("AAPL"))})
        layer = RiskLayer.install(engine, RiskConfig.from_mapping(risk), [s])
        engine.on_dispatch(s._start)
        wait_until(lambda: s.line.bid is not None and s.line.ask is not None, what="a live quote")
        return gw, engine, s, layer
    yield start
    for engine in engines:
        engine.stop()


@pytest.fixture
def watcher(watcher_with):
    return watcher_with()


def arm(engine, s) -> None:
    engine.on_dispatch(lambda: setattr(s, "armed", True))


def test_an_order_decided_on_frames_seconds_old_is_refused_then_fresh_data_trades(watcher):
    gw, engine, s, layer = watcher
    engine.dispatcher.post(time.sleep, 3.0)                  # a callback that holds the dispatch thread 3 s
    engine.dispatcher.post(setattr, s, "armed", True)        # runs right after it: the next quote is 3 s old
    wait_until(lambda: s.refused or s.placed, timeout=20, what="the order decided on old frames")
    assert not s.placed and s.lags[0] > 2.0
    refusal = s.refused[0].refusal
    assert refusal.rule == "stale_data" and "behind the socket" in refusal.value and "conflate=True" in refusal.advice
    assert [e.rule for e in layer.history if e.kind == "refused"] == ["stale_data"]
    wait_until(lambda: engine.dispatch_lag < 0.5, what="the dispatch thread caught up")
    arm(engine, s)
    wait_until(lambda: s.placed, what="an order on fresh data")
    wait_until(lambda: s.placed[0].status == "Filled", what="the fill")
    assert len(s.refused) == 1


def test_with_the_check_off_the_same_order_goes_out(watcher_with):
    gw, engine, s, layer = watcher_with({"stale_data": False})
    engine.dispatcher.post(time.sleep, 3.0)
    engine.dispatcher.post(setattr, s, "armed", True)
    wait_until(lambda: s.refused or s.placed, timeout=20, what="the order decided on old frames")
    assert s.placed and not s.refused and s.lags[0] > 2.0
    assert layer.gate.rule("stale_data") is None


def test_the_settings_are_validated_with_file_and_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("strategy:\n  class: strategies.ma_cross:MovingAverageCross\n  instruments: {AAPL: AAPL}\n"
                    "risk:\n  stale_data:\n    max_lag: .inf\n")
    with pytest.raises(ConfigError, match=r"run.yaml:6: risk.stale_data.max_lag: .*finite"):
        load_config(path)
    path.write_text(path.read_text().replace(".inf", "500ms\n    max_quote_age: 30s"))
    limits = load_config(path).risk.stale_data
    assert (limits.max_lag, limits.max_quote_age, limits.farm_down) == (0.5, 30.0, True)


def farm(gw, engine, code: int, text: str) -> None:
    """TWS's farm notice over the socket (ERR_MSG with a time stamp), in the form of the negotiated version."""
    assert gw.faults.send_raw(engine.client_id, SessionCodec(engine.conn.serverVersion()).encode(
        (4, -1, code, text, "", int(time.time() * 1000))))


def test_a_farm_outage_refuses_new_exposure_but_lets_a_position_be_reduced(watcher):
    gw, engine, s, layer = watcher
    ConnectionSupervisor(engine).install(reconnect_thread=False)       # reads TWS's farm notices
    first = engine.on_dispatch(lambda: s.buy("AAPL", 100))
    wait_until(lambda: first.status == "Filled" and s.position("AAPL") == 100, what="a position of 100")
    farm(gw, engine, 2103, "Market data farm connection is broken:usfarm")
    wait_until(lambda: s.line.stale, what="the quote marked stale")
    with pytest.raises(RiskRejected, match="stale_data") as refused:
        engine.on_dispatch(lambda: s.buy("AAPL", 10))
    assert "farm" in refused.value.refusal.value
    with pytest.raises(RiskRejected, match="stale_data"):               # a sell past flat opens a short
        engine.on_dispatch(lambda: s.sell("AAPL", 150))
    out = engine.on_dispatch(lambda: s.sell("AAPL", 50))               # reducing: passes on a stale quote
    wait_until(lambda: out.status == "Filled", what="the reducing sell")
    farm(gw, engine, 2104, "Market data farm connection is OK:usfarm")
    wait_until(lambda: not s.line.stale, what="fresh again")
    again = engine.on_dispatch(lambda: s.buy("AAPL", 10))
    wait_until(lambda: again.status == "Filled", what="new exposure once the farm is back")
    assert s.position("AAPL") == 60
