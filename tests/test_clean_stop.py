"""Stop is clean under load (part of issue 12): a strategy too slow for its stream gets no callback after the
stop begins except on_stop, places nothing late, and the summary is printed after everything else.

Before, a strategy whose on_quote took 5 ms fell minutes behind a busy stream; the runner's stop timed out
waiting for the dispatch thread, and the strategy placed orders after the final summary was printed.
"""
from __future__ import annotations

import time

from ibframe.config import GatewayConfig, RunConfig, StrategyConfig
from ibframe.contracts import Stock
from ibframe.resilience import ConnectionConfig
from ibframe.risk.config import RiskConfig
from ibframe.run import Runner
from ibframe.strategy import Strategy
from conftest import wait_until


class SlowTrader(Strategy):
    """5 ms per quote and an order every 20th quote: it cannot keep up with a fast stream."""

    def on_start(self):
        self.log_lines: list[tuple[float, str]] = []
        self.seen = 0
        for name in self.instruments:
            self.quote(name)

    def on_quote(self, instrument, quote):
        self.log_lines.append((time.monotonic(), "quote"))         # when the callback began
        time.sleep(0.005)
        self.seen += 1
        if self.seen % 20 == 0 and quote.bid:
            asked = time.monotonic()
            self.buy(instrument, 1, round(quote.bid * 0.5, 2))    # refused (raises) once the run is stopping
            self.log_lines.append((asked, "order"))

    def on_stop(self):
        self.log_lines.append((time.monotonic(), "on_stop"))


def test_a_slow_strategy_stops_cleanly_and_places_nothing_late(make_gateway, tmp_path, capsys):
    gw = make_gateway(step_seconds=0.005)                         # a busy stream: far more than 200 quotes/s
    names = ("AAPL", "MSFT", "SPY")
    risk = RiskConfig.from_mapping({"max_orders_per_second": 1000, "max_orders_per_minute": 100000,
                                    "duplicate_window": 0}, lambda path, msg: (_ for _ in ()).throw(ValueError(msg)))
    cfg = RunConfig(source="<test>", strategies=[StrategyConfig("test_clean_stop:SlowTrader", "slow", {},
                                                                {n: Stock(n) for n in names})],
                    gateway=GatewayConfig("tws", "127.0.0.1", gw.port, 5200), state_dir=str(tmp_path), risk=risk)
    runner = Runner(cfg)
    runner.start()
    s = runner.strategies[0]
    wait_until(lambda: s.seen >= 100, what="the strategy busy")
    began = time.monotonic()
    runner.stop()
    out = capsys.readouterr().out
    kinds = [k for _, k in s.log_lines]
    assert kinds.count("on_stop") == 1 and kinds[-1] == "on_stop"        # nothing ran after on_stop
    # no callback began and no order was placed after the stop began (a callback already running then may finish,
    # but its orders are refused; 50 ms covers a thread switch between the check and the time stamp)
    assert not [t for t, k in s.log_lines if k == "quote" and t > began + 0.05]
    assert not [t for t, k in s.log_lines if k == "order" and t > began]
    placed = [t for t in s.trades if t.order_id]
    assert placed and "== slow:" in out and f"{len(s.trades)} order" in out         # the summary counts them all


class RaisesEverywhere(Strategy):
    def on_start(self):
        self.errors = 0
        self.failures = 0
        self.quote("AAPL")

    def on_quote(self, instrument, quote):
        self.failures += 1
        raise RuntimeError("bug in on_quote")

    def on_error(self, error):
        self.errors += 1
        raise RuntimeError("and a bug in on_error too")


def test_a_strategy_whose_on_error_raises_too_keeps_running(make_gateway, tmp_path):
    """An exception in on_quote goes to on_error once; one in on_error is logged, never fed back into it."""
    gw = make_gateway()
    cfg = RunConfig(source="<test>", strategies=[StrategyConfig("test_clean_stop:RaisesEverywhere", "bad", {},
                                                                {"AAPL": Stock("AAPL")})],
                    gateway=GatewayConfig("tws", "127.0.0.1", gw.port, 5201), state_dir=str(tmp_path))
    runner = Runner(cfg)
    runner.start()
    try:
        s = runner.strategies[0]
        wait_until(lambda: s.errors >= 3, what="several on_quote failures reported")
        errors, failures = runner.engine.on_dispatch(lambda: (s.errors, s.failures))   # the dispatch thread lives
        assert errors == failures                  # each failure reached on_error once, never looped back into it
    finally:
        runner.stop()


def test_a_strategy_behind_its_stream_is_measured_and_warned_about(make_gateway, tmp_path, caplog):
    """The dispatch lag (how long market data waited for the strategy code) is exposed and warned about."""
    gw = make_gateway(step_seconds=0.005)
    cfg = RunConfig(source="<test>", strategies=[StrategyConfig("test_clean_stop:SlowTrader", "slow", {},
                                                                {n: Stock(n) for n in ("AAPL", "MSFT", "SPY")})],
                    gateway=GatewayConfig("tws", "127.0.0.1", gw.port, 5202), state_dir=str(tmp_path))
    cfg.connection = ConnectionConfig(lag_warning=0.2)
    runner = Runner(cfg)
    runner.start()
    try:
        wait_until(lambda: runner.engine.conn.max_dispatch_lag > 0.2, what="the lag to build up")
        wait_until(lambda: any("behind the socket" in r.getMessage() for r in caplog.records), what="the warning")
        assert runner.engine.conn.lag_warnings >= 1
    finally:
        runner.stop()
