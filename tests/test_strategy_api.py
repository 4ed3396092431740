"""The API a strategy reaches for: snapshots, on_init look-ups, option chains, brackets and OCA groups.

Everything goes through Engine / Strategy / Runner over real loopback sockets to ibframe.sim (pinned
at MIDDAY by conftest, a regular session): a snapshot answers on the dispatch thread without
blocking it; blocking look-ups work in on_init and are refused, with that advice, in callbacks;
option_chain rows are real, qualifiable options; bracket and OCA trades belong to the strategy.
"""
from __future__ import annotations

import threading

import pytest

from ibframe.config import GatewayConfig, RunConfig, StrategyConfig
from ibframe.contracts import Option, Stock
from ibframe.engine import Engine
from ibframe.router import RequestError
from ibframe.run import Runner, RunError
from ibframe.strategy import Strategy
from ibframe.trading import orders as builders
from conftest import wait_until

_client_ids = iter(range(3100, 3400))



@pytest.fixture
def engine(gateway, tmp_path):
    eng = Engine("127.0.0.1", gateway.port, client_id=next(_client_ids), state_dir=tmp_path).start()
    yield eng
    eng.stop()


def run_config(gateway, class_path: str, instruments: dict, tmp_path, name: str = "api") -> RunConfig:
    return RunConfig(source="<test>", strategies=[StrategyConfig(class_path, name, {}, instruments)],
                     gateway=GatewayConfig("tws", "127.0.0.1", gateway.port, next(_client_ids)),
                     state_dir=str(tmp_path))


# --- snapshot -------------------------------------------------------------------------------------------

class SnapshotFromCallback(Strategy):
    def on_start(self):
        self.got, self.errors, self.threads = [], [], set()
        self.future = self.snapshot("AAPL", callback=self.on_snapshot)
        self.done_when_returned = self.future.done()
        try:
            self.future.result(1)
            self.wait_error = None
        except RuntimeError as exc:
            self.wait_error = str(exc)

    def on_snapshot(self, instrument, quote):
        self.threads.add(threading.current_thread().name)
        self.got.append((instrument, quote))

    def on_error(self, error):
        self.errors.append(error)


def test_snapshot_from_a_callback_answers_on_the_dispatch_thread_without_blocking_it(engine):
    s = SnapshotFromCallback(engine, "snap", {}, {"AAPL": engine.qualify(Stock("AAPL"))})
    engine.on_dispatch(s._start)
    assert s.done_when_returned is False                       # on_start returned before the answer came
    assert s.wait_error is not None and "callback" in s.wait_error   # waiting there is refused, not a deadlock
    quote = s.future.result(10)
    wait_until(lambda: s.got, what="the snapshot callback")
    (instrument, got), = s.got
    assert instrument == "AAPL" and got is quote and s.threads == {"ibframe-dispatch"}
    assert quote.bid is not None and quote.ask is not None and 0 < quote.bid < quote.ask
    assert not any(r.kind == "snapshot" for r in engine.router.requests.values())   # a snapshot ends by itself
    engine.on_dispatch(s._stop)
    assert s.errors == []


class SnapshotOfNothing(Strategy):
    def on_start(self):
        self.errors, self.called = [], []
        self.future = self.snapshot("ZZZZ", callback=lambda *a: self.called.append(a))

    def on_error(self, error):
        self.errors.append(error)


def test_a_failed_snapshot_fails_its_future_and_reaches_on_error(engine):
    from ibapi.contract import Contract
    bad = Contract()
    bad.symbol, bad.secType, bad.exchange, bad.currency, bad.conId = "ZZZZ", "STK", "SMART", "USD", 1
    s = SnapshotOfNothing(engine, "nothing", {}, {"ZZZZ": bad})
    engine.on_dispatch(s._start)
    with pytest.raises(RequestError) as info:
        s.future.result(10)
    assert info.value.error.code == 200
    wait_until(lambda: s.errors, what="on_error")
    assert s.errors[0].code == 200 and s.called == []
    engine.on_dispatch(s._stop)


# --- on_init and blocking look-ups ----------------------------------------------------------------------

class ChainAtInit(Strategy):
    def on_init(self):
        self.init_thread = threading.current_thread().name
        self.price = self.snapshot("SPY").result(10).mid
        self.chain = self.option_chain("SPY", expiries=1, within=0.02, rights=("C",))
        atm = self.chain.iloc[(self.chain["strike"] - self.price).abs().argmin()]
        self.atm = self.qualify(Option("SPY", atm["expiry"], atm["strike"], "C"), name="atm")

    def on_start(self):
        self.quotes = []
        self.quote("atm")

    def on_quote(self, instrument, quote):
        self.quotes.append(instrument)


def test_on_init_looks_up_a_chain_and_qualifies_before_streams_start(gateway, tmp_path):
    cfg = run_config(gateway, "test_strategy_api:ChainAtInit", {"SPY": Stock("SPY")}, tmp_path)
    runner = Runner(cfg)
    try:
        runner.start()
        s = runner.strategies[0]
        assert s.init_thread != "ibframe-dispatch"
        chain = s.chain
        assert len(chain) >= 2 and set(chain["right"]) == {"C"} and chain["expiry"].nunique() == 1
        assert (abs(chain["strike"] - s.price) <= 0.02 * s.price + 1e-9).all()
        assert s.instruments["atm"].conId in set(chain["conId"])
        wait_until(lambda: "atm" in s.quotes, what="quotes for the option looked up in on_init")
    finally:
        runner.stop()


class LooksUpInOnStart(Strategy):
    def on_start(self):
        self.option_chain("SPY", expiries=1)


class FailsInInit(Strategy):
    def on_init(self):
        self.qualify(Stock("NOSUCH"))


def test_blocking_look_ups_in_callbacks_say_to_use_on_init(gateway, tmp_path):
    runner = Runner(run_config(gateway, "test_strategy_api:LooksUpInOnStart", {"SPY": Stock("SPY")}, tmp_path,
                               "eager"))
    with pytest.raises(RunError, match="strategy eager failed in on_start.*on_init"):
        try:
            runner.start()
        finally:
            runner.stop()
    runner = Runner(run_config(gateway, "test_strategy_api:FailsInInit", {"SPY": Stock("SPY")}, tmp_path, "bad"))
    with pytest.raises(RunError, match="strategy bad failed in on_init: ContractError.*NOSUCH"):
        try:
            runner.start()
        finally:
            runner.stop()
    assert runner.strategies[0].running is False                 # on_start never ran


# --- option chains --------------------------------------------------------------------------------------

def test_option_chain_filters_by_expiry_strike_and_right_and_its_con_ids_qualify(engine):
    s = Strategy(engine, "chains", {}, {"SPY": engine.qualify(Stock("SPY"))})
    everything = s.option_chain("SPY")
    expiries = sorted(everything["expiry"].unique())
    strikes = sorted(everything["strike"].unique())
    assert len(expiries) >= 3 and len(strikes) >= 5
    assert len(everything) == everything["conId"].nunique() == len(expiries) * len(strikes) * 2
    assert list(everything.columns[:8]) == ["conId", "symbol", "expiry", "strike", "right", "multiplier",
                                            "tradingClass", "exchange"]

    lo, hi = strikes[1], strikes[3]
    puts = s.option_chain("SPY", expiries=(expiries[1], expiries[2]), strikes=(lo, hi), rights="P")
    assert set(puts["expiry"]) == {expiries[1], expiries[2]} and set(puts["right"]) == {"P"}
    assert puts["strike"].between(lo, hi).all() and len(puts) == 2 * 3
    nearest = s.option_chain("SPY", expiries=2, rights=("CALL",))
    assert sorted(nearest["expiry"].unique()) == expiries[:2] and set(nearest["right"]) == {"C"}

    for row in puts.itertuples():
        qualified = engine.qualify(Option("SPY", row.expiry, row.strike, row.right))
        assert qualified.conId == row.conId
    assert s.option_chain("SPY", expiries=("20990101", None)).empty          # nothing that late: empty, same columns

    with pytest.raises(ValueError, match="no options on SPY at NOWHERE; TWS lists them at .*SMART"):
        s.option_chain("SPY", exchange="NOWHERE")
    with pytest.raises(ValueError, match="not both"):
        s.option_chain("SPY", strikes=(1, 2), within=0.1)
    with pytest.raises(ValueError, match="right 'X'"):
        s.option_chain("SPY", rights=("X",))


# --- brackets and OCA groups ----------------------------------------------------------------------------

class OrderHooks(Strategy):
    plan = None

    def on_start(self):
        self.statuses, self.fills, self.placed = [], [], None
        self.quote("AAPL")

    def on_quote(self, instrument, quote):
        if self.placed is None and quote.bid and quote.ask:
            self.placed = self.plan(quote)

    def on_order_status(self, trade):
        self.statuses.append((trade.order_id, trade.status))

    def on_fill(self, trade, fill):
        self.fills.append((trade.order_id, fill.shares))


class BracketOnQuote(OrderHooks):
    def plan(self, quote):
        return self.bracket("AAPL", "BUY", 100, entry_price=round(quote.ask + 0.5, 2),
                            take_profit=round(quote.ask + 30, 2), stop_loss=round(quote.ask - 30, 2), tif="GTC")


class OcaOnQuote(OrderHooks):
    def plan(self, quote):
        resting = builders.limit("BUY", 100, round(quote.bid * 0.8, 2))
        marketable = builders.limit("BUY", 100, round(quote.ask + 0.5, 2))
        return self.oca("AAPL", [resting, marketable])


@pytest.fixture
def order_engine(make_gateway, tmp_path):
    gw = make_gateway(seed=5)
    eng = Engine("127.0.0.1", gw.port, 8, state_dir=tmp_path).start()
    yield eng
    eng.stop()


def test_bracket_trades_are_the_strategys_and_fire_its_hooks(order_engine):
    eng = order_engine
    s = BracketOnQuote(eng, "bracket", {}, {"AAPL": eng.qualify(Stock("AAPL"))})
    eng.on_dispatch(s._start)
    wait_until(lambda: s.placed is not None and s.placed[0].status == "Filled", what="the entry to fill")
    entry, profit, loss = s.placed
    wait_until(lambda: {profit.status, loss.status} <= {"Submitted", "PreSubmitted"}, what="the exits to work")
    assert s.trades == [entry, profit, loss]
    assert profit.order.parentId == loss.order.parentId == entry.order_id
    assert [t.order.transmit for t in s.placed] == [False, False, True]
    assert all(t.order.tif == "GTC" and t.strategy == "bracket" for t in s.placed)
    assert entry.arrival_ask is not None                          # the NBBO at arrival, for the summary's slippage
    seen = {oid for oid, _ in s.statuses}
    assert {entry.order_id, profit.order_id, loss.order_id} <= seen
    assert sum(q for oid, q in s.fills if oid == entry.order_id) == 100
    s.cancel(loss)
    s.cancel(profit)
    wait_until(lambda: profit.done and loss.done, what="the exits to be cancelled")
    assert (loss.order_id, "Cancelled") in s.statuses and (profit.order_id, "Cancelled") in s.statuses
    eng.on_dispatch(s._stop)


def test_oca_trades_are_the_strategys_and_a_fill_cancels_the_sibling(order_engine):
    eng = order_engine
    s = OcaOnQuote(eng, "oca", {}, {"AAPL": eng.qualify(Stock("AAPL"))})
    eng.on_dispatch(s._start)
    wait_until(lambda: s.placed is not None and all(t.done for t in s.placed), what="the OCA group to finish")
    resting, marketable = s.placed
    assert s.trades == [resting, marketable]
    assert marketable.status == "Filled" and resting.status == "Cancelled"
    group = resting.order.ocaGroup
    assert group.startswith("oca-oca-") and marketable.order.ocaGroup == group
    assert resting.order.ocaType == marketable.order.ocaType == 1
    assert (resting.order_id, "Cancelled") in s.statuses
    assert sum(q for oid, q in s.fills if oid == marketable.order_id) == 100
    eng.on_dispatch(s._stop)


# --- replay ---------------------------------------------------------------------------------------------

class ChainThenBracket(ChainAtInit):
    def on_quote(self, instrument, quote):
        super().on_quote(instrument, quote)
        if len(self.quotes) == 3 and quote.ask:
            self.bracket("atm", "BUY", 1, round(quote.ask + 0.05, 2), round(quote.ask + 5, 2),
                         round(max(quote.ask - 1, 0.05), 2))


def test_on_init_look_ups_and_a_bracket_replay_the_same(gateway, tmp_path):
    from replay_fixtures import record_live

    from ibframe.replay import replay
    cfg = run_config(gateway, "test_strategy_api:ChainThenBracket", {"SPY": Stock("SPY")}, tmp_path, "ctb")
    path = tmp_path / "session.jsonl"
    live = record_live(gateway, cfg, path, until=lambda s: len(getattr(s, "trades", ())) == 3 and
                       len(getattr(s, "quotes", ())) >= 6, client_id=next(_client_ids)).strategies[0]
    again = RunConfig(source="<test>", strategies=cfg.strategies, state_dir=str(tmp_path / "replay"))
    result = replay(path, again, timeout=60)
    s = result.strategy()
    assert result.divergences == [] and result.damage is None
    assert s.chain.drop(columns="contract").equals(live.chain.drop(columns="contract")) and len(s.chain) >= 2
    assert s.instruments["atm"].conId == live.instruments["atm"].conId
    assert [(t.order.orderType, t.order.lmtPrice, t.order.auxPrice, t.order.parentId) for t in s.trades] == \
        [(t.order.orderType, t.order.lmtPrice, t.order.auxPrice, t.order.parentId) for t in live.trades]


class BracketRefusedHalfway(OrderHooks):
    def plan(self, quote):
        try:
            self.bracket("AAPL", "BUY", 100, round(quote.bid - 5, 2), round(quote.ask + 30, 2),
                         round(quote.bid - 30, 2))
        except Exception as exc:
            self.refusal = exc
        return self.trades


def test_a_bracket_refused_halfway_leaves_nothing_working(order_engine):
    eng = order_engine
    eng.orders.pre_trade_checks.append(lambda contract, order: "no stops today" if order.orderType == "STP" else None)
    s = BracketRefusedHalfway(eng, "halfway", {}, {"AAPL": eng.qualify(Stock("AAPL"))})
    eng.on_dispatch(s._start)
    wait_until(lambda: s.placed is not None, what="the bracket attempt")
    assert "no stops today" in str(s.refusal)
    entry, profit = s.trades                                   # the two sent before the refusal are the strategy's
    wait_until(lambda: entry.done and profit.done, what="the sent part of the bracket to be cancelled")
    assert entry.status == profit.status == "Cancelled" and entry.filled == 0
    eng.on_dispatch(s._stop)
