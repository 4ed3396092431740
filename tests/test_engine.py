"""End to end over loopback: the engine against ibframe.sim, market-data side.

Subscribe → the simulator streams → the router routes by request id → state objects update
themselves → strategy callbacks run on the one dispatch thread.
"""
from __future__ import annotations

import threading

import pytest

from ibframe.contracts import ContractError, Forex, Option, Stock
from ibframe.engine import Engine
from ibframe.ids import REQUEST_ID_BASE
from ibframe.strategy import Strategy
from conftest import wait_until



@pytest.fixture
def engine(gateway, tmp_path):
    eng = Engine("127.0.0.1", gateway.port, client_id=900 + threading.active_count() % 50,
                 state_dir=tmp_path).start()
    yield eng
    eng.stop()


def test_ready_means_next_valid_id_and_accounts(engine):
    assert engine.router.ready.is_set()
    assert engine.account == "DU1234567"
    assert engine.order_ids.seeded


def test_qualify_fills_con_id_and_rejects_unknown_and_ambiguous(engine):
    aapl = engine.qualify(Stock("AAPL"))
    assert aapl.conId == 265598 and aapl.secType == "STK"
    with pytest.raises(ContractError, match="no security definition"):
        engine.qualify(Stock("NOSUCH"))
    with pytest.raises(ContractError, match="ambiguous"):
        engine.qualify(Option("AAPL", "", 0, "C"))
    eur = engine.qualify(Forex("EUR.USD"))
    assert eur.conId == 12087792


def test_quotes_route_by_request_id_into_self_updating_state(engine):
    aapl, msft = engine.qualify(Stock("AAPL")), engine.qualify(Stock("MSFT"))
    qa, qm = engine.market_data(aapl), engine.market_data(msft)
    assert qa.req_id >= REQUEST_ID_BASE and qa.req_id != qm.req_id
    wait_until(lambda: qa.quote.mid is not None and qm.quote.mid is not None, what="quotes")
    assert qa.quote.bid < qa.quote.ask and 100 < qa.quote.mid < 400
    assert qm.quote.mid > 300                   # MSFT's stream did not land in AAPL's quote
    assert engine.market_data(aapl) is qa       # one line per instrument, shared
    frame = qa.quote.to_frame()
    assert {"bid", "ask", "last"} <= set(frame.columns)
    engine.cancel(qa)
    assert qa.req_id not in engine.router.requests


def test_option_subscription_carries_greeks(engine):
    chain = engine.option_params(engine.qualify(Stock("SPY")))
    smart = next(c for c in chain if c["exchange"] == "SMART")
    expiry = smart["expirations"][-1]
    strike = smart["strikes"][len(smart["strikes"]) // 2]
    opt = engine.qualify(Option("SPY", expiry, strike, "C"))
    req = engine.market_data(opt)
    wait_until(lambda: req.greeks.model is not None and req.greeks.model.delta is not None, what="greeks")
    assert 0 < req.greeks.model.delta < 1 and req.greeks.model.implied_vol > 0


def test_depth_ticks_and_bars(instant, make_gateway, tmp_path):
    """At each of conftest.INSTANTS: the book and the current quote arrive (TWS sends them even when
    the market is closed) and 30 minutes of 1-min bars on whole minutes, ending where trading ended."""
    gw = make_gateway(seed=7, start_time=instant.start)
    engine = Engine("127.0.0.1", gw.port, client_id=901, state_dir=tmp_path).start()
    try:
        spy = engine.qualify(Stock("SPY"))
        book = engine.depth(spy, rows=5).book
        ticks = engine.tick_by_tick(spy, "BidAsk").ticks
        bars_req = engine.bars(spy, "1 min", "1800 S", keep_up_to_date=False)
        wait_until(lambda: book.best_bid is not None and book.best_ask is not None and len(ticks) > 0,
                   what="book+ticks")
        assert book.best_bid < book.best_ask and not book.crossed
        bars = bars_req.future.result(10)
        assert bars.complete and len(bars) == 30
        frame = bars.to_frame()
        assert frame.index.tz is not None and (frame["low"] <= frame["high"]).all()
        minutes = [int(t.timestamp()) for t in frame.index]
        assert all(m % 60 == 0 for m in minutes) and minutes == list(range(minutes[0], minutes[-1] + 60, 60))
        if instant.extended:
            assert instant.start // 60 * 60 <= minutes[-1] <= gw.now()
        else:
            assert minutes[-1] == instant.last_trade_minute
    finally:
        engine.stop()


class Recorder(Strategy):
    def on_start(self):
        self.threads = set()
        self.quotes = 0
        self.timer_calls = 0
        self.errors = []
        self.quote("AAPL")
        self.schedule(every=0.05)

    def on_quote(self, instrument, quote):
        self.threads.add(threading.current_thread().name)
        self.quotes += 1
        if self.quotes == 3:
            raise RuntimeError("a bug in user code")

    def on_timer(self):
        self.threads.add(threading.current_thread().name)
        self.timer_calls += 1

    def on_error(self, error):
        self.errors.append(error)


def test_strategy_callbacks_run_on_the_dispatch_thread_and_survive_exceptions(engine):
    s = Recorder(engine, "rec", {}, {"AAPL": engine.qualify(Stock("AAPL"))})
    engine.on_dispatch(s._start)
    wait_until(lambda: s.quotes >= 5 and s.timer_calls >= 3, what="quotes and timer calls")
    engine.on_dispatch(s._stop)
    assert s.threads == {"ibframe-dispatch"}
    assert any("a bug in user code" in e.text for e in s.errors)


def test_request_errors_reach_the_request_and_do_not_stop_the_stream_of_others(engine):
    good = engine.market_data(engine.qualify(Stock("IBM")))
    from ibapi.contract import Contract
    bad = Contract()
    bad.symbol, bad.secType, bad.exchange, bad.currency, bad.conId = "ZZZZ", "STK", "SMART", "USD", 1
    req = engine.market_data(bad)
    wait_until(lambda: req.done, what="error 200 ends the request")
    (err,) = [e for e in engine.router.errors if e.req_id == req.req_id]
    assert err.code == 200 and err.subject == "market data ZZZZ" and "conId" in err.advice
    assert req.req_id not in engine.router.requests
    count = good.quote.updates
    wait_until(lambda: good.quote.updates > count, what="IBM quotes keep flowing")


def test_connect_errors_are_clear(gateway, tmp_path):
    import socket
    from ibframe.connection import ConnectError
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    free_port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConnectError, match="connection refused"):
        Engine("127.0.0.1", free_port, 1, state_dir=tmp_path).start(timeout=3)
    first = Engine("127.0.0.1", gateway.port, 4242, state_dir=tmp_path).start()
    try:
        with pytest.raises(ConnectError, match="326"):
            Engine("127.0.0.1", gateway.port, 4242, state_dir=tmp_path).start(timeout=5)
    finally:
        first.stop()


class BuyOnce(Strategy):
    def on_start(self):
        self.fills, self.statuses, self.placed = [], [], None
        self.quote("AAPL")

    def on_quote(self, instrument, quote):
        if self.placed is None and quote.ask:
            self.ask_seen = quote.ask
            self.placed = self.buy(instrument, 100)

    def on_order_status(self, trade):
        self.statuses.append(trade.status)

    def on_fill(self, trade, fill):
        self.fills.append(fill)


def test_order_out_fill_back_position_updated(make_gateway, tmp_path):
    gw = make_gateway(seed=4)                      # the suite's pinned instant (MIDDAY)
    eng = Engine("127.0.0.1", gw.port, 5, state_dir=tmp_path).start()
    try:
        eng.subscribe_account()
        s = BuyOnce(eng, "buy-once", {}, {"AAPL": eng.qualify(Stock("AAPL"))})
        eng.on_dispatch(s._start)
        wait_until(lambda: s.placed is not None and s.placed.done, what="the order to finish")
        trade = s.placed
        assert trade.status == "Filled" and trade.filled == 100 and trade.order.orderRef == "buy-once"
        # the execution may arrive just after the final orderStatus: wait for it, then every share is there once
        wait_until(lambda: sum(f.shares for f in s.fills) >= 100, what="the execution")
        assert sum(f.shares for f in s.fills) == 100 and "Filled" in s.statuses
        wait_until(lambda: all(f.commission for f in s.fills), what="commission reports")
        wait_until(lambda: s.position("AAPL") == 100, what="the position to update")
        # arrival = the ask the strategy saw when it placed; a buy's slippage is arrival - fill (the market may move
        # between placement and fill on a loaded machine, so its sign is not fixed)
        assert trade.arrival_ask == s.ask_seen
        assert trade.slippage_per_share == pytest.approx(s.ask_seen - trade.avg_fill_price)
        eng.on_dispatch(s._stop)
    finally:
        eng.stop()


def test_order_ids_never_reused_across_engine_restarts(make_gateway, tmp_path):
    gw = make_gateway(seed=4)                      # the suite's pinned instant (MIDDAY)
    used = []
    for _ in range(2):
        eng = Engine("127.0.0.1", gw.port, 6, state_dir=tmp_path).start()
        aapl = eng.qualify(Stock("AAPL"))
        from ibframe.trading.orders import limit
        for _ in range(3):
            used.append(eng.on_dispatch(lambda: eng.orders.place(aapl, limit("BUY", 1, 1.00), "t")).order_id)
        eng.stop()
    assert len(used) == len(set(used)) == 6


class QuoteTwice(Strategy):
    def on_start(self):
        self.calls = 0
        self.quote("AAPL")
        self.quote("AAPL")                     # asking again must not double the callbacks

    def on_quote(self, instrument, quote):
        self.calls += 1


def test_asking_twice_for_a_stream_does_not_double_callbacks(engine):
    s = QuoteTwice(engine, "twice", {}, {"AAPL": engine.qualify(Stock("AAPL"))})
    engine.on_dispatch(s._start)
    wait_until(lambda: s.calls >= 3, what="quotes")
    req = engine._quotes[s.instruments["AAPL"].conId]
    assert len(req.listeners) == 1
    engine.on_dispatch(s._stop)


def test_stopping_one_strategy_keeps_a_shared_line_for_another(engine):
    aapl = engine.qualify(Stock("AAPL"))
    first = QuoteTwice(engine, "first", {}, {"AAPL": aapl})
    second = QuoteTwice(engine, "second", {}, {"AAPL": aapl})
    engine.on_dispatch(first._start)
    engine.on_dispatch(second._start)
    engine.on_dispatch(first._stop)
    seen = second.calls
    wait_until(lambda: second.calls > seen + 2, what="the second strategy's quotes to keep coming")
    engine.on_dispatch(second._stop)
    assert aapl.conId not in engine._quotes           # the last one out closes the line
