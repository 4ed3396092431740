"""Per-strategy books: a strategy sees its own position, not the account's.

Two strategies share one Engine against a pinned simulator; one trades, the other never does. Orders
placed before a restart come back with their orderRef and count for the strategy that placed them.
"""
from __future__ import annotations


import pytest
from ibapi.execution import ExecutionFilter

from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.strategy import Strategy
from ibframe.trading.orders import market
from conftest import wait_until



class Idle(Strategy):
    """Never trades."""


@pytest.fixture
def sim_engine(make_gateway, tmp_path):
    gw = make_gateway(seed=5)
    engines = []

    def start(client_id: int = 21) -> Engine:
        eng = Engine("127.0.0.1", gw.port, client_id, state_dir=tmp_path).start()
        eng.subscribe_account()
        engines.append(eng)
        return eng
    yield start
    for eng in engines:
        eng.stop()


def place(strategy: Strategy, action: str, qty: float):
    return strategy.engine.on_dispatch(lambda: strategy.place("AAPL", market(action, qty)))


def test_each_strategy_sees_only_its_own_position(sim_engine):
    eng = sim_engine()
    aapl = eng.qualify(Stock("AAPL"))
    buyer, idle = Idle(eng, "buyer", {}, {"AAPL": aapl}), Idle(eng, "idle", {}, {"AAPL": aapl})
    for s in (buyer, idle):
        eng.on_dispatch(s._start)
    bought, sold = place(buyer, "BUY", 100), None
    wait_until(lambda: bought.done, what="the buy to fill")
    sold = place(buyer, "SELL", 40)
    manual = eng.on_dispatch(lambda: eng.orders.place(aapl, market("BUY", 7)))     # no strategy: the account's
    wait_until(lambda: sold.done and manual.done, what="the sell and the manual buy to fill")
    wait_until(lambda: idle.account_position("AAPL") == 67, what="the account position (100 - 40 + 7)")

    assert eng.on_dispatch(lambda: buyer.position("AAPL")) == 60
    assert eng.on_dispatch(lambda: idle.position("AAPL")) == 0
    assert buyer.account_position("AAPL") == idle.account_position("AAPL") == 67

    holding = eng.on_dispatch(lambda: buyer.own_book.holdings()[aapl.conId])
    buy_avg = sum(f.shares * f.price for f in bought.fills) / 100
    sell_avg = sum(f.shares * f.price for f in sold.fills) / 40
    assert holding.avg_cost == pytest.approx(buy_avg)
    assert holding.realized_pnl == pytest.approx(40 * (sell_avg - buy_avg))
    wait_until(lambda: all(f.commission for t in (bought, sold) for f in t.fills), what="commission reports")
    assert holding.commission == pytest.approx(bought.commission + sold.commission) and holding.commission > 0

    frame = eng.on_dispatch(lambda: buyer.own_book.to_frame({aapl.conId: 200.0}))
    (row,) = frame.to_dict("records")
    assert row["instrument"] == "AAPL" and row["quantity"] == 60 and row["mark"] == 200.0
    assert row["pnl"] == pytest.approx(holding.realized_pnl + 60 * (200.0 - buy_avg) - holding.commission)
    assert eng.on_dispatch(lambda: idle.own_book.to_frame()).empty
    for s in (buyer, idle):
        eng.on_dispatch(s._stop)


def test_fills_from_before_a_restart_count_for_the_strategy_that_placed_them(sim_engine):
    first = sim_engine(client_id=22)
    aapl = first.qualify(Stock("AAPL"))
    alpha = Idle(first, "alpha", {}, {"AAPL": aapl})
    first.on_dispatch(alpha._start)
    trade = place(alpha, "BUY", 25)
    wait_until(lambda: trade.done, what="the order to fill")
    first.on_dispatch(alpha._stop)
    first.stop()

    second = sim_engine(client_id=22)                       # the process restarted: it knows no orders
    alpha, beta = Idle(second, "alpha", {}, {"AAPL": aapl}), Idle(second, "beta", {}, {"AAPL": aapl})
    assert second.on_dispatch(lambda: alpha.position("AAPL")) == 0
    second.on_dispatch(lambda: second.conn.reqExecutions(second.request_ids.take(), ExecutionFilter()))
    wait_until(lambda: second.on_dispatch(lambda: alpha.position("AAPL")) == 25,
               what="the earlier fill to reach alpha's book through its orderRef")
    assert second.on_dispatch(lambda: beta.position("AAPL")) == 0
    assert trade.order_id not in second.orders.trades and second.orders.foreign_fills
