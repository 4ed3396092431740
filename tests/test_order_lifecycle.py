"""Every order reaches a final state or a clearly stated open one (issue 9, deliverable 2).

Through ibframe's Engine and a Strategy against the simulator, over real sockets: each IB reject
ends its trade (status, done, out of open_trades, reason, status hook) and the strategy keeps
trading; a refused modification or a failed cancel leaves the order's true state; an order TWS
never answers is marked, reconciled with TWS and ended; warnings never end an order.
"""
from __future__ import annotations

import copy
import itertools
import logging

import pytest
from ibapi.contract import Contract
from ibapi.order import Order

from account_kit import universe_with
from ibframe.contracts import Future, Stock
from ibframe.engine import Engine
from ibframe.risk.gate import DOOR
from ibframe.sim.market.hours import start_time
from ibframe.strategy import Strategy
from ibframe.trading.manager import OrderRejected
from conftest import wait_until
from sim_order_kit import BOND, algo, order

_client_ids = itertools.count(610)


@pytest.fixture
def start_engine(tmp_path):
    engines = []

    def start(gw, ack_timeout: float | None = None) -> Engine:
        eng = Engine("127.0.0.1", gw.port, next(_client_ids), state_dir=tmp_path).start()
        if ack_timeout is not None:
            eng.orders.ack_timeout = ack_timeout
        engines.append(eng)
        return eng
    yield start
    for eng in engines:
        eng.stop()


def place(eng: Engine, contract: Contract, o: Order):
    return eng.on_dispatch(lambda: eng.orders.place(contract, o, "test"))


def send_past_the_gate(eng: Engine, order_id: int, contract: Contract, o: Order) -> None:
    """What another program on this client id (or a hand re-send) puts on the wire: a raw placeOrder, let
    through the risk layer's door on purpose (the one-use pass the order manager takes after the gate)."""
    def send():
        DOOR.approve(eng.conn, order_id, o)
        eng.conn.placeOrder(order_id, contract, o)
    eng.on_dispatch(send)


def hook_log(eng: Engine) -> list[tuple[int, str, bool]]:
    """Every status-hook call as (orderId, status, unacknowledged)."""
    seen: list[tuple[int, str, bool]] = []
    eng.on_dispatch(lambda: eng.orders.status_hooks.append(
        lambda t: seen.append((t.order_id, t.status, t.unacknowledged))))
    return seen


def assert_ended(eng: Engine, trade, status: str, code: int | None = None) -> None:
    assert trade.status == status and trade.done
    assert trade not in eng.orders.open_trades()
    if code is not None:
        assert trade.errors and trade.errors[-1].code == code
        assert f"error {code} (order {trade.order_id} " in trade.reason


# --- a strategy whose order is rejected keeps trading ------------------------------------------------------

class TradesOn(Strategy):
    """Trades only while it has no open trade (as the example strategies do): one bad order, then BUY 1 AAPL."""

    def on_start(self):
        self.quotes, self.placed, self.statuses, self.errors = {}, [], [], []
        for name in self.instruments:
            self.quotes[name] = self.quote(name)

    def on_quote(self, instrument, quote):
        ready = all(q.ask for q in self.quotes.values())
        if not ready or self.open_trades() or len(self.placed) >= 2:
            return
        if not self.placed:
            contract, order = self.params["bad"](self)
            self.placed.append(self.place(contract, order))
        else:
            self.placed.append(self.buy("AAPL", 1))

    def on_order_status(self, trade):
        self.statuses.append((trade.order_id, trade.status))

    def on_error(self, error):
        self.errors.append(error)


def _aapl(s):
    return s.instruments["AAPL"]


def _unknown_contract(s):
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency, c.conId = "ZZZZ", "STK", "SMART", "USD", 1
    return c


def _no_exchange(s):
    c = copy.copy(_aapl(s))
    c.exchange = ""
    return c


def _bond(s):
    c = Contract()
    c.conId, c.exchange = BOND, "SMART"
    return c


# code -> (what the strategy sends: strategy -> (contract, order)). Each is an order TWS really refuses so.
BAD_ORDERS = {
    107: lambda s: (_aapl(s), order("BUY", 1, "LMT")),                                   # LMT without its price
    109: lambda s: (_aapl(s), order("BUY", 1, "LMT", round(s.quotes["AAPL"].ask * 1.8, 2))),
    110: lambda s: (_aapl(s), order("BUY", 1, "LMT", 100.001)),
    111: lambda s: (_aapl(s), order("BUY", 1, "STP", aux=round(s.quotes["AAPL"].ask + 5, 2), tif="IOC")),
    113: lambda s: (_aapl(s), order("BUY", 1, "MOC", tif="GTC")),
    135: lambda s: (_aapl(s), order("BUY", 1, "LMT", 100.0, parentId=987_654)),       # no such parent
    200: lambda s: (_unknown_contract(s), order("BUY", 1, "MKT")),
    201: lambda s: (_aapl(s), order("BUY", 1_000_000, "MKT")),                           # margin
    321: lambda s: (_no_exchange(s), order("BUY", 1, "MKT")),
    382: lambda s: (s.instruments["MSFT"], order("BUY", 1, "LMT", round(s.quotes["MSFT"].ask + 150, 2))),
    383: lambda s: (_aapl(s), order("BUY", 10_000_000, "MKT")),
    387: lambda s: (_aapl(s), order("BUY", 1, "PEG BENCH")),
    434: lambda s: (_aapl(s), order("BUY", 0, "LMT", 100.0)),
    439: lambda s: (_aapl(s), algo(order("BUY", 1, "MKT"), "NoSuchAlgo")),
    441: lambda s: (_aapl(s), algo(order("BUY", 1, "MKT"), "Adaptive", adaptivePriority="Hurry")),
    442: lambda s: (_bond(s), algo(order("BUY", 10, "MKT"), "Adaptive", adaptivePriority="Normal")),
    443: lambda s: (_aapl(s), algo(order("BUY", 1, "MKT"), "Adaptive", noSuchTag="1")),
}


def run_trades_on(eng: Engine, bad, instruments=("AAPL", "MSFT"), contracts=None) -> TradesOn:
    contracts = contracts or {name: eng.qualify(Stock(name)) for name in instruments}
    s = TradesOn(eng, "keeps-trading", {"bad": bad}, contracts)
    eng.on_dispatch(s._start)
    wait_until(lambda: len(s.placed) == 2 and s.placed[1].done, what="the strategy's next order to finish")
    eng.on_dispatch(s._stop)
    return s


@pytest.mark.parametrize("code", sorted(BAD_ORDERS))
def test_a_rejected_order_ends_and_the_strategy_keeps_trading(gateway, start_engine, code):
    eng = start_engine(gateway)
    s = run_trades_on(eng, BAD_ORDERS[code])
    bad, good = s.placed
    assert_ended(eng, bad, "Inactive", code)
    assert (bad.order_id, "Inactive") in s.statuses                  # on_order_status ran for the reject
    assert any(e.code == code and e.req_id == bad.order_id and e.subject.startswith(f"order {bad.order_id} ")
               for e in s.errors)                                       # on_error named the order
    assert good.status == "Filled" and good.filled == 1 and not good.reason


def test_futures_from_a_cash_account_end_with_203_and_stock_trading_goes_on(make_gateway, start_engine, tmp_path):
    gw = make_gateway(universe=universe_with(tmp_path, {"id": "DU401", "cash": 100_000, "margin": "Cash"}))
    eng = start_engine(gw)
    es = eng.contract_details(Future("ES"))[0].contract
    s = run_trades_on(eng, lambda s: (es, order("BUY", 1, "MKT")), contracts={"AAPL": eng.qualify(Stock("AAPL"))})
    bad, good = s.placed
    assert_ended(eng, bad, "Inactive", 203)
    assert "not available or allowed for this account" in bad.reason
    assert good.status == "Filled"


# --- codes that need an earlier order ----------------------------------------------------------------------

def test_duplicate_id_and_dead_parent_end_the_order(gateway, start_engine):
    eng = start_engine(gateway)
    aapl = eng.qualify(Stock("AAPL"))
    # another program on this client id used a higher id: our next (lower, unused) id is refused with 103
    taken = eng.order_ids.take()

    def collide():       # one dispatch turn: TWS's openOrder for the other order cannot lift our ids in between
        send_past_the_gate(eng, taken + 2, aapl, order("BUY", 1, "LMT", 100.0))
        return place(eng, aapl, order("BUY", 1, "LMT", 100.0))
    dup = eng.on_dispatch(collide)
    assert dup.order_id == taken + 1
    wait_until(lambda: dup.done, what="103 to end the order")
    assert_ended(eng, dup, "Inactive", 103)
    assert eng.order_ids.take() == taken + 3            # TWS listed the other program's order: its id is skipped
    # a child of a cancelled parent cannot be transmitted: 106
    parent = place(eng, aapl, order("BUY", 1, "LMT", 100.0))
    wait_until(lambda: parent.acknowledged, what="the parent to be accepted")
    eng.on_dispatch(lambda: eng.orders.cancel(parent))
    wait_until(lambda: parent.done, what="the parent to be cancelled")
    assert_ended(eng, parent, "Cancelled")
    child = place(eng, aapl, order("SELL", 1, "LMT", 300.0, parentId=parent.order_id))
    wait_until(lambda: child.done, what="106 to end the child")
    assert_ended(eng, child, "Inactive", 106)
    after = place(eng, aapl, order("BUY", 1, "MKT"))
    wait_until(lambda: after.done, what="the next order")
    assert after.status == "Filled"


def test_a_refused_modification_leaves_the_order_working(gateway, start_engine):
    eng = start_engine(gateway)
    aapl = eng.qualify(Stock("AAPL"))
    trade = place(eng, aapl, order("BUY", 1, "LMT", 100.0))
    wait_until(lambda: trade.status == "Submitted", what="the order to work")
    for code, change in ((110, {"lmtPrice": 100.001}), (105, {"action": "SELL"})):
        eng.on_dispatch(lambda: eng.orders.modify(trade, **change))
        wait_until(lambda: any(e.code == code for e in trade.errors), what=f"error {code}")
        eng.on_dispatch(lambda: None)                        # everything before it is handled
        assert trade.status == "Submitted" and not trade.done and trade in eng.orders.open_trades()
        assert trade.order.lmtPrice == 100.0 and trade.order.action == "BUY" and trade.pending is None
    eng.on_dispatch(lambda: eng.orders.modify(trade, lmtPrice=100.5))
    wait_until(lambda: trade.order.lmtPrice == 100.5, what="the accepted modification")
    eng.on_dispatch(lambda: eng.orders.cancel(trade))
    wait_until(lambda: trade.done, what="the cancel")
    assert_ended(eng, trade, "Cancelled")
    wait_until(lambda: "202" in trade.reason, what="202's reason on the trade")
    with pytest.raises(OrderRejected, match="cannot be modified"):
        eng.on_dispatch(lambda: eng.orders.modify(trade, lmtPrice=101.0))


def test_modifying_a_filled_order_or_an_algo_changes_nothing(gateway, start_engine):
    eng = start_engine(gateway)
    aapl = eng.qualify(Stock("AAPL"))
    algo_trade = place(eng, aapl, algo(order("BUY", 1, "LMT", 100.0), "Adaptive", adaptivePriority="Patient"))
    wait_until(lambda: algo_trade.acknowledged, what="the algo order to be accepted")
    eng.on_dispatch(lambda: eng.orders.modify(algo_trade, algoStrategy="", algoParams=[]))
    wait_until(lambda: any(e.code == 440 for e in algo_trade.errors), what="error 440")
    eng.on_dispatch(lambda: None)
    assert not algo_trade.done and algo_trade in eng.orders.open_trades()
    filled = place(eng, aapl, order("BUY", 1, "MKT"))
    wait_until(lambda: filled.done, what="the fill")
    again = copy.copy(filled.order)
    again.totalQuantity = 2
    send_past_the_gate(eng, filled.order_id, aapl, again)                      # re-sent by hand
    wait_until(lambda: any(e.code == 104 for e in filled.errors), what="error 104")
    eng.on_dispatch(lambda: None)
    assert filled.status == "Filled" and filled.filled == 1


# --- failed cancels ----------------------------------------------------------------------------------------

def test_a_cancel_that_loses_the_race_leaves_the_fill(gateway, start_engine):
    eng = start_engine(gateway)
    aapl = eng.qualify(Stock("AAPL"))
    statuses = hook_log(eng)

    def place_and_cancel():
        t = eng.orders.place(aapl, order("BUY", 1, "MKT"), "test")
        eng.orders.cancel(t)                     # it fills on arrival: TWS answers 10148
        return t
    trade = eng.on_dispatch(place_and_cancel)
    wait_until(lambda: any(e.code == 10148 for e in trade.errors), what="error 10148")
    wait_until(lambda: not eng.orders.reconciler.busy, what="the reconciliation round")
    assert trade.status == "Filled" and trade.filled == 1 and "Cancelled" not in [s for _, s, _ in statuses]
    err = next(e for e in trade.errors if e.code == 10148)
    assert err.subject == f"order {trade.order_id} BUY 1 AAPL" and "Filled" in err.text


def test_a_moc_cancel_after_the_cutoff_keeps_the_order(make_gateway, start_engine):
    gw = make_gateway(start_time=start_time("2026-11-18 15:52"))
    eng = start_engine(gw)
    aapl = eng.qualify(Stock("AAPL"))
    trade = place(eng, aapl, order("BUY", 1, "MOC"))
    wait_until(lambda: trade.acknowledged, what="the MOC order to be accepted")
    rounds = eng.orders.reconciler.rounds
    eng.on_dispatch(lambda: eng.orders.cancel(trade))
    wait_until(lambda: any(e.code == 161 for e in trade.errors), what="error 161")
    wait_until(lambda: eng.orders.reconciler.rounds > rounds and not eng.orders.reconciler.busy,
               what="TWS asked for the order's state")
    assert trade.status in ("PreSubmitted", "Submitted", "Filled") and trade.status != "Cancelled"
    assert "161" not in trade.reason
    err = next(e for e in trade.errors if e.code == 161)
    assert err.subject.startswith(f"order {trade.order_id} BUY 1 AAPL") and "not in a cancellable state" in err.text


# --- no answer at all --------------------------------------------------------------------------------------

def test_an_order_tws_never_answers_is_marked_reconciled_and_ended(make_gateway, start_engine):
    gw = make_gateway()
    eng = start_engine(gw, ack_timeout=0.5)
    aapl = eng.qualify(Stock("AAPL"))
    statuses = hook_log(eng)
    gw.faults.swallow_next_orders(1)
    lost = place(eng, aapl, order("BUY", 1, "LMT", 100.0))
    wait_until(lambda: lost.done, what="the unanswered order to end", timeout=20)
    assert (lost.order_id, "PendingSubmit", True) in statuses            # marked first: a stated open state
    assert_ended(eng, lost, "Inactive")
    assert lost.unacknowledged and "never acknowledged" in lost.reason
    assert eng.orders.reconciler.rounds >= 1
    nxt = place(eng, aapl, order("BUY", 1, "MKT"))
    wait_until(lambda: nxt.done, what="the next order")
    assert nxt.status == "Filled" and not nxt.unacknowledged


def test_a_cancel_of_an_order_tws_never_got_does_not_mark_it_cancelled(make_gateway, start_engine):
    gw = make_gateway()
    eng = start_engine(gw, ack_timeout=1.0)
    aapl = eng.qualify(Stock("AAPL"))
    gw.faults.swallow_next_orders(1)
    lost = place(eng, aapl, order("BUY", 1, "LMT", 100.0))
    eng.on_dispatch(lambda: eng.orders.cancel(lost))
    wait_until(lambda: any(e.code == 10147 for e in lost.errors), what="error 10147")
    eng.on_dispatch(lambda: None)
    assert lost.status != "Cancelled"
    wait_until(lambda: lost.done, what="the ack timeout to end it", timeout=20)
    assert_ended(eng, lost, "Inactive")
    assert "never acknowledged" in lost.reason


# --- warnings and messages ---------------------------------------------------------------------------------

def test_warnings_never_end_an_order(make_gateway, start_engine):
    gw = make_gateway(start_time=start_time("2026-11-18 18:00"))      # after the close
    eng = start_engine(gw)
    aapl = eng.qualify(Stock("AAPL"))
    trade = place(eng, aapl, order("BUY", 1, "MKT", outsideRth=True))   # 2109: waits for the open
    wait_until(lambda: any(e.code == 2109 for e in trade.errors), what="warning 2109")
    wait_until(lambda: trade.acknowledged, what="the order to be accepted")
    assert not trade.done and trade in eng.orders.open_trades() and not trade.reason


def test_quantities_print_as_quantities(gateway, start_engine, caplog):
    eng = start_engine(gateway)
    aapl = eng.qualify(Stock("AAPL"))
    eng.on_dispatch(lambda: eng.orders.pre_trade_checks.append(lambda c, o: "over the size limit"))
    with pytest.raises(OrderRejected, match=r"order BUY 1000000 AAPL blocked before sending: over the size limit"):
        eng.on_dispatch(lambda: eng.orders.place(aapl, order("BUY", 1e6, "MKT")))
    eng.on_dispatch(eng.orders.pre_trade_checks.clear)
    with caplog.at_level(logging.INFO, logger="ibframe.orders"):
        trade = place(eng, aapl, order("BUY", 1e6, "MKT"))
        wait_until(lambda: trade.done, what="the margin reject")
    assert f"placed order {trade.order_id}: BUY 1000000 AAPL MKT" in caplog.text
    assert "1e+06" not in caplog.text and "1e+06" not in trade.reason
    assert f"order {trade.order_id} BUY 1000000 AAPL" in trade.reason
