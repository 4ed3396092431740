"""Record-and-replay helpers for tests: tiny strategies, a live recording against ibframe.sim, fixtures.

`record_live(gateway, cfg, path, until)` runs the real Runner against a simulated gateway with
`record:` set and stops when `until(strategy)` holds; `replay(...)` (ibframe.replay) plays the file
back. `record_session(max_server_version=…)` / `recorded_session` do the first against a fixed-seed,
fixed-start simulator; `replayed_session` does both.

Regenerate the checked-in recording (after a format or simulator change):

    .venv/bin/python tests/replay_fixtures.py write tests/data/buy_on_nth_quote.jsonl.gz
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ibframe.config import GatewayConfig, RunConfig, StrategyConfig
from ibframe.contracts import from_mapping
from ibframe.journal import JournalConfig
from ibframe.risk.config import RiskConfig
from ibframe.run import Runner
from ibframe.strategy import Strategy

FIXED_EPOCH = 1709650800.0          # Tue 2024-03-05 10:00 US/Eastern: the simulator's market is open
DATA = Path(__file__).resolve().parent / "data"
CHECKED_IN = DATA / "buy_on_nth_quote.jsonl.gz"
BUY_ON_NTH = "replay_fixtures:BuyOnNthQuote"


@dataclass(slots=True, frozen=True)
class Decision:
    what: str            # "BUY MKT", "SELL LMT"
    quote_no: int
    bid: float | None
    ask: float | None
    price: float | None
    time: float


class BuyOnNthQuote(Strategy):
    """Buys `qty` at market on the n-th quote change, offers it out one tick above the bid on the
    2n-th (a resting limit), and logs every quote, timer, status and fill it sees."""

    def on_start(self):
        self.n = int(self.params.get("n", 5))
        self.qty = float(self.params.get("qty", 100))
        self.instrument = next(iter(self.instruments))
        self.quotes: list[tuple[float, float | None, float | None]] = []
        self.decisions: list[Decision] = []
        self.timer_times: list[float] = []
        self.statuses: list[tuple[int, str, float]] = []
        self.fills: list[tuple[int, str, float, float, float]] = []
        self.quote(self.instrument)
        if self.params.get("timer"):
            self.schedule(float(self.params["timer"]))

    def on_quote(self, instrument, quote):
        self.quotes.append((self.now(), quote.bid, quote.ask))
        count = len(self.quotes)
        if count == self.n:
            self.buy(instrument, self.qty)
            self.decisions.append(Decision("BUY MKT", count, quote.bid, quote.ask, None, self.now()))
        elif count == 2 * self.n and quote.bid is not None:
            price = round(quote.bid + 0.01, 2)
            self.sell(instrument, self.qty, price)
            self.decisions.append(Decision("SELL LMT", count, quote.bid, quote.ask, price, self.now()))

    def on_timer(self):
        self.timer_times.append(self.now())

    def on_order_status(self, trade):
        self.statuses.append((trade.order_id, trade.status, trade.filled))

    def on_fill(self, trade, fill):
        self.fills.append((trade.order_id, fill.side, fill.shares, fill.price, self.now()))


class TickWatcher(Strategy):
    """Subscribes to BidAsk ticks of its one instrument (routes real tick-by-tick frames)."""

    def on_start(self):
        self.ring = self.ticks(next(iter(self.instruments)), "BidAsk")


def session_config(class_path: str, instruments: dict, params: dict | None = None, name: str = "test",
                   gateway: GatewayConfig | None = None, state_dir: str = "var") -> RunConfig:
    """A RunConfig built in code, as load_config would build it from YAML."""
    contracts = {k: from_mapping(v) if isinstance(v, dict) else v for k, v in instruments.items()}
    return RunConfig(source="<test>", strategies=[StrategyConfig(class_path, name, dict(params or {}), contracts)],
                     gateway=gateway or GatewayConfig(), state_dir=state_dir)


def without_rail_requests(cfg: RunConfig) -> RunConfig:
    """The config of a hand-written recording: it models a session whose rails ask TWS nothing (no journal
    reconcile, no account summary for the margin monitor and PDT guard), so its request ids start at the
    strategy's own requests. The pre-trade rules stay on."""
    cfg.journal = JournalConfig(enabled=False)
    cfg.risk = RiskConfig.from_mapping({"margin": {"enabled": False}, "pdt": {"enabled": False}})
    return cfg


def record_live(gateway, cfg: RunConfig, path: Path, until, timeout: float = 20.0, client_id: int = 77) -> Runner:
    """Run `cfg` live against `gateway`, recording to `path`, until `until(strategy)`; returns the stopped runner."""
    cfg.gateway = GatewayConfig("tws", "127.0.0.1", gateway.port, client_id)
    cfg.record = str(path)
    runner = Runner(cfg)
    try:
        runner.start()
        deadline = time.monotonic() + timeout
        strategy = runner.strategies[0]
        while not until(strategy):
            if time.monotonic() > deadline:
                raise AssertionError(f"live session did not reach its goal within {timeout:g}s")
            time.sleep(0.02)
    finally:
        runner.stop()
    return runner


def buy_on_nth_config(tmp: Path, n: int = 4, timer: float | None = 0.25) -> RunConfig:
    params = {"n": n, "qty": 100}
    if timer:
        params["timer"] = timer
    return session_config(BUY_ON_NTH, {"AAPL": {"secType": "STK", "symbol": "AAPL"}}, params, name="nth",
                          state_dir=str(tmp / "state"))


def session_done(s: BuyOnNthQuote) -> bool:
    """Both orders placed, six timer beats (about 1.5 s of market) seen, and a bid at or above the resting
    sell's limit recorded after it (so a replay with simulated fills can fill it from the recorded market)."""
    decisions = list(getattr(s, "decisions", ()))
    if len(decisions) < 2 or len(getattr(s, "timer_times", ())) < 6:
        return False
    sell = decisions[1]
    return any(bid is not None and bid >= sell.price for _, bid, _ in s.quotes[sell.quote_no:])


@dataclass(slots=True)
class RecordedSession:
    path: Path
    cfg: RunConfig
    live: BuyOnNthQuote


@pytest.fixture
def record_session(make_gateway, tmp_path):
    """record_session(max_server_version=200, seed=11) -> a recorded live session of BuyOnNthQuote
    against a fixed-seed, fixed-start simulator (a .jsonl.gz in tmp_path)."""
    made = []

    def record(max_server_version: int = 200, seed: int = 11) -> RecordedSession:
        gw = make_gateway(seed=seed, start_time=FIXED_EPOCH, max_server_version=max_server_version)
        path = tmp_path / f"session-{len(made)}.jsonl.gz"
        runner = record_live(gw, buy_on_nth_config(tmp_path), path, session_done)
        made.append(path)
        return RecordedSession(path, buy_on_nth_config(tmp_path), runner.strategies[0])
    return record


@pytest.fixture
def recorded_session(record_session) -> RecordedSession:
    return record_session()


@pytest.fixture
def replayed_session(recorded_session):
    """(the recorded live session, its replay) — the replay with the recorded broker answers."""
    from ibframe.replay import replay
    return recorded_session, replay(recorded_session.path, recorded_session.cfg)


def _write_checked_in(target: Path) -> None:
    """Record a fresh session against the simulator into `target` (see the module docstring)."""
    import tempfile

    from ibframe.sim import SimConfig, SimGateway

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    with SimGateway(SimConfig(port=0, seed=11, start_time=FIXED_EPOCH, step_seconds=0.05)) as gw, \
            tempfile.TemporaryDirectory() as tmp:
        cfg = buy_on_nth_config(Path(tmp))
        runner = record_live(gw, cfg, target, session_done)
    s = runner.strategies[0]
    print(f"wrote {target} ({target.stat().st_size} bytes): {len(s.quotes)} quotes, decisions {s.decisions}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "write":
        sys.exit("usage: python tests/replay_fixtures.py write tests/data/NAME.jsonl.gz")
    _write_checked_in(Path(sys.argv[2]))
