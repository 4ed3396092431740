"""Orders left working by an earlier run are cancelled, adopted or left at start — and reported (issue 12, item 4).

A first Engine rests limit orders far under the market for strategies "a" and "b" (orderRef = the
strategy's name) and disconnects without cancelling them, as a killed run does. A second Engine under
the same client id, with real Strategy objects, runs `check_leftovers` before its strategies start;
the truth is the simulator's own order table (read on its loop) and a raw ibapi client's
reqAllOpenOrders. Unhappy paths: TWS answers the open-order request too late, and refuses a cancel.
"""
from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_until
from ibframe.connection import ConnectError
from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.journal import Journal
from ibframe.risk import kill
from ibframe.sim.market.hours import start_time
from ibframe.strategy import Strategy
from ibframe.trading.leftovers import LeftoverPolicy, check_leftovers, leftover_summary, parse_leftovers
from ibframe.trading.orders import limit, market

_client_ids = itertools.count(1210)
TESTS = Path(__file__).resolve().parent

KILLED_RUN = """\
strategy:
  class: kill_kit:RestingOrders
  name: rester
  params: {{orders: 3}}
  instruments: {{AAPL: AAPL}}
gateway: {{host: 127.0.0.1, port: {port}, client_id: {client_id}}}
state_dir: {state_dir}
on_stop: leave
"""


class Keeper(Strategy):
    """Records what reaches it; places nothing on its own."""

    def on_start(self):
        self.statuses, self.fills = [], []

    def on_order_status(self, trade):
        self.statuses.append((trade.order_id, trade.status))

    def on_fill(self, trade, fill):
        self.fills.append((trade.order_id, fill.shares, fill.price))


def start_engine(port: int, client_id: int, state_dir) -> Engine:
    """An Engine under `client_id`, once the simulator noticed that the previous session with it is gone."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return Engine("127.0.0.1", port, client_id, state_dir=state_dir).start()
        except ConnectError as exc:
            if "326" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def quote_of(engine: Engine, contract):
    quote = engine.market_data(contract).quote
    wait_until(lambda: quote.bid is not None and quote.ask is not None, timeout=10, what="an AAPL quote")
    return quote


def leave_orders(gw, client_id: int, state_dir, refs: list[str], order=None) -> list[int]:
    """A first run: rest one order per orderRef in `refs` (default a BUY 1 limit 20% under the bid, a cent
    apart), see each acknowledged, then disconnect without cancelling. Returns their order ids."""
    eng = start_engine(gw.port, client_id, state_dir)
    try:
        aapl = eng.qualify(Stock("AAPL"))
        price = round(quote_of(eng, aapl).bid * 0.8, 2)
        trades = []
        for i, ref in enumerate(refs):
            o = order() if order is not None else limit("BUY", 1, round(price - i * 0.01, 2))
            trades.append(eng.on_dispatch(lambda o=o, ref=ref: eng.orders.place(aapl, o, ref)))
        wait_until(lambda: all(t.status in ("Submitted", "PreSubmitted") for t in trades), timeout=10,
                   what="the first run's orders working")
        return [t.order_id for t in trades]
    finally:
        eng.stop()                                  # cancels subscriptions only: the orders keep working


def working_at_gateway(gw, client_id: int) -> dict[int, str]:
    """orderId -> orderRef of the client's orders the simulator has working (read on its own loop)."""
    return gw.call(lambda: {lo.order.orderId: lo.order.orderRef for lo in gw.broker.open_orders()
                            if lo.order.clientId == client_id})


def all_open_orders(connect, gw) -> dict[tuple[int, int], str]:
    """(clientId, orderId) -> orderRef of every open order, as a third client learns them (reqAllOpenOrders)."""
    observer = connect(gw)
    observer.reqAllOpenOrders()
    observer.wait("openOrderEnd", timeout=10)
    return {(o.clientId, oid): o.orderRef for oid, _c, o, _s in observer.all("openOrder")}


@pytest.fixture
def second_run(tmp_path):
    """second_run(gw, client_id, names, state_dir=None) -> (engine, {name: strategy}); stopped after the test."""
    engines = []

    def build(gw, client_id: int, names=("a", "b"), state_dir=None):
        eng = start_engine(gw.port, client_id, state_dir or tmp_path / "var")
        engines.append(eng)
        aapl = eng.qualify(Stock("AAPL"))
        strategies = {n: Keeper(eng, n, {}, {"AAPL": aapl}) for n in names}
        return eng, strategies
    yield build
    for eng in engines:
        eng.stop()


def start_strategies(eng: Engine, strategies: dict) -> None:
    for s in strategies.values():
        eng.on_dispatch(s._start)


# --- cancel (the default) --------------------------------------------------------------------------------
def test_cancel_is_the_default_each_leftover_is_cancelled_at_the_gateway_logged_journaled_and_summarized(
        gateway, second_run, connect, tmp_path, caplog):
    cid = next(_client_ids)
    ids = leave_orders(gateway, cid, tmp_path / "var", ["a", "a", "b"])
    assert set(working_at_gateway(gateway, cid)) == set(ids)
    eng, strategies = second_run(gateway, cid)
    journal = Journal(tmp_path / "journal.sqlite", write=True)
    with caplog.at_level(logging.INFO, logger="ibframe.leftovers"):
        report = check_leftovers(eng, strategies.values(), on_event=[journal.record_risk_event])
    assert report.checked and not report.late
    assert sorted(item.order_id for item in report.leftovers) == sorted(ids)
    assert all(item.policy == "cancel" and item.outcome == "cancelled" and not item.still_working
               for item in report.leftovers), [item.line() for item in report.leftovers]
    assert {item.strategy for item in report.leftovers} == {"a", "b"}
    assert working_at_gateway(gateway, cid) == {}
    assert not any(k[0] == cid for k in all_open_orders(connect, gateway))
    for order_id in ids:                                           # one log line per leftover, with what was done
        lines = [r.getMessage() for r in caplog.records
                 if r.name == "ibframe.leftovers" and f"order {order_id} BUY 1 AAPL" in r.getMessage()]
        assert len(lines) == 1 and lines[0].endswith("cancelled"), lines
    assert journal.close()
    rows = Journal(tmp_path / "journal.sqlite").risk_events()
    rows = rows[rows.kind == "leftover"]
    assert len(rows) == 3 and set(rows.scope) == {"a", "b"}
    summary = leftover_summary(report)
    assert "3 found: 3 cancelled" in summary[0] and len(summary) == 4
    start_strategies(eng, strategies)
    assert all(s.open_trades() == [] for s in strategies.values())   # nothing of theirs is working


# --- adopt ---------------------------------------------------------------------------------------------
def test_adopted_leftovers_are_the_strategys_trades_their_fills_reach_on_fill_and_position_and_stop_cancels_them(
        gateway, second_run, tmp_path):
    cid = next(_client_ids)
    ids = leave_orders(gateway, cid, tmp_path / "var", ["a", "a"])
    eng, strategies = second_run(gateway, cid)
    a = strategies["a"]
    report = check_leftovers(eng, strategies.values(), LeftoverPolicy("adopt"))
    assert [item.policy for item in report.leftovers] == ["adopt", "adopt"]
    assert "2 adopted" in leftover_summary(report)[0]
    start_strategies(eng, strategies)
    assert sorted(t.order_id for t in a.open_trades()) == sorted(ids)
    assert strategies["b"].open_trades() == []
    assert sorted(working_at_gateway(gateway, cid)) == sorted(ids)      # adopting cancels nothing
    first = eng.on_dispatch(lambda: next(t for t in a.trades if t.order_id == ids[0]))
    ask = quote_of(eng, a.instruments["AAPL"]).ask
    eng.on_dispatch(lambda: eng.orders.modify(first, lmtPrice=round(ask * 1.02, 2)))    # marketable now
    wait_until(lambda: a.fills, timeout=10, what="the adopted order's fill in on_fill")
    assert a.fills[0][0] == ids[0] and a.fills[0][1] == 1
    assert eng.on_dispatch(lambda: a.position("AAPL")) == 1
    assert any(oid == ids[0] and status == "Filled" for oid, status in a.statuses)
    left = kill.finish_orders(eng.orders, eng.on_dispatch, "cancel", lambda: True)    # on_stop: cancel
    assert left == []
    assert working_at_gateway(gateway, cid) == {}


def test_adopting_keeps_the_order_id_allocator_above_the_leftovers_after_tws_reset_its_id_sequence(
        gateway, second_run, tmp_path):
    cid = next(_client_ids)
    ids = leave_orders(gateway, cid, tmp_path / "first", ["a", "a"])
    gateway.call(lambda: setattr(gateway, "next_order_id", 1))  # TWS's "Reset API order ID sequence"
    eng, strategies = second_run(gateway, cid, state_dir=tmp_path / "fresh")     # no id file either
    check_leftovers(eng, strategies.values(), LeftoverPolicy("adopt"))
    assert eng.order_ids.peek() > max(ids)
    start_strategies(eng, strategies)
    a = strategies["a"]
    price = min(t.order.lmtPrice for t in a.trades) - 0.05
    new = eng.on_dispatch(lambda: a.buy("AAPL", 1, round(price, 2)))
    assert new.order_id > max(ids)
    wait_until(lambda: new.status == "Submitted" or new.done, timeout=10, what="the new order's answer")
    assert new.status == "Submitted", (new.status, new.reason)
    assert sorted(working_at_gateway(gateway, cid)) == sorted(ids + [new.order_id])


# --- leave, no strategy, per-strategy override -------------------------------------------------------------
def test_leave_keeps_them_working_even_at_stop_a_strategy_can_override_and_unknown_refs_are_left_and_reported(
        gateway, second_run, connect, tmp_path):
    cid = next(_client_ids)
    ids = leave_orders(gateway, cid, tmp_path / "var", ["a", "b", "manual-hedge"])
    eng, strategies = second_run(gateway, cid)
    policy = LeftoverPolicy("leave", {"b": "cancel"})
    report = check_leftovers(eng, strategies.values(), policy)
    by_id = {item.order_id: item for item in report.leftovers}
    assert (by_id[ids[0]].policy, by_id[ids[1]].policy, by_id[ids[2]].policy) == ("leave", "cancel", "unowned")
    assert by_id[ids[1]].outcome == "cancelled"
    assert by_id[ids[2]].strategy == "" and "orderRef 'manual-hedge': no strategy of this run" in by_id[ids[2]].line()
    assert working_at_gateway(gateway, cid) == {ids[0]: "a", ids[2]: "manual-hedge"}
    start_strategies(eng, strategies)
    assert strategies["a"].open_trades() == []                       # left: not the strategy's trade
    summary = "\n".join(leftover_summary(report))
    assert "1 left" in summary and "1 cancelled" in summary and "1 left (no strategy)" in summary
    left = kill.finish_orders(eng.orders, eng.on_dispatch, "cancel", lambda: True)    # on_stop: cancel
    assert left == []                                                # nothing of this run's is working
    assert {k: v for k, v in all_open_orders(connect, gateway).items() if k[0] == cid} == \
        {(cid, ids[0]): "a", (cid, ids[2]): "manual-hedge"}


def test_parse_leftovers_accepts_the_three_policies_and_says_what_to_write_otherwise():
    def fail(path, message):
        raise ValueError(f"{'.'.join(map(str, path))}: {message}")
    assert parse_leftovers(None, fail, ("orders", "leftovers")) is None
    assert [parse_leftovers(v, fail, ()) for v in ("cancel", "adopt", " Leave ")] == ["cancel", "adopt", "leave"]
    for bad in ("kill", 3, True, {"cancel": 1}):
        with pytest.raises(ValueError, match=r"strategies\.0\.leftovers: .*write cancel .* adopt .* leave"):
            parse_leftovers(bad, fail, ("strategies", 0, "leftovers"))
    with pytest.raises(ValueError, match="not one of"):
        LeftoverPolicy("adopt", {"a": "flatten"})


# --- unhappy paths ----------------------------------------------------------------------------------------
def test_no_answer_in_time_the_run_goes_on_says_so_and_applies_the_policy_when_the_answer_comes(
        gateway, second_run, tmp_path, caplog):
    cid = next(_client_ids)
    ids = leave_orders(gateway, cid, tmp_path / "var", ["a"])
    eng, strategies = second_run(gateway, cid)
    gateway.faults.delay_messages(2.0, client_id=cid, duration=0.5)    # its answer arrives 2 s late
    events = []
    with caplog.at_level(logging.WARNING, logger="ibframe.leftovers"):
        report = check_leftovers(eng, strategies.values(), timeout=0.5, cancel_timeout=1.0, on_event=[events.append])
        assert not report.checked and report.leftovers == []        # it returned without the (late) answer
        assert "NOT checked" in leftover_summary(report)[0] and "within 0.5s" in leftover_summary(report)[0]
        assert any("could not be checked" in r.getMessage() for r in caplog.records)
        assert events and events[0].details == {"checked": False}
        start_strategies(eng, strategies)                            # the run goes on
        wait_until(lambda: working_at_gateway(gateway, cid) == {}, timeout=10, what="the late cancel")
    assert report.checked and report.late and [item.order_id for item in report.leftovers] == ids
    assert "answered late" in leftover_summary(report)[0]
    wait_until(lambda: report.leftovers[0].outcome == "cancelled", timeout=10, what="the late outcome")


def test_a_refused_cancel_is_reported_as_still_working_and_stays_this_runs_to_cancel_at_stop(
        make_gateway, second_run, tmp_path):
    gw = make_gateway(seed=5, start_time=start_time("2026-11-18 15:52"))    # inside the MOC cancel cut-off
    cid = next(_client_ids)

    def moc():
        o = market("BUY", 1)
        o.orderType = "MOC"                         # fills at the close, 8 minutes away
        return o
    ids = leave_orders(gw, cid, tmp_path / "var", ["a"], order=moc)
    eng, strategies = second_run(gw, cid)
    report = check_leftovers(eng, strategies.values(), cancel_timeout=5.0)
    [item] = report.leftovers
    assert item.order_id == ids[0] and item.still_working
    assert item.outcome.startswith("cancel refused (161:") and "still working" in item.outcome
    assert "1 cancel refused" in leftover_summary(report)[0]
    assert working_at_gateway(gw, cid) == {ids[0]: "a"}
    assert [t.order_id for t in eng.orders.open_trades()] == ids       # on_stop: cancel tries it again


# --- after kill -9 ------------------------------------------------------------------------------------------
def test_orders_of_a_run_killed_with_kill_9_are_cancelled_by_the_next_run_of_the_same_client_id(
        gateway, second_run, tmp_path):
    cid = next(_client_ids)
    config = tmp_path / "run.yaml"
    config.write_text(KILLED_RUN.format(port=gateway.port, client_id=cid, state_dir=tmp_path / "var"))
    path = [str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    proc = subprocess.Popen([sys.executable, "-m", "ibframe.run", str(config)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(working_at_gateway(gateway, cid)) == 3 or proc.poll() is not None, timeout=60,
                   what="the first run's 3 resting orders")
    finally:
        proc.kill()                                                 # SIGKILL: no on_stop, no goodbye
        proc.wait(10)
    left = working_at_gateway(gateway, cid)
    assert sorted(left.values()) == ["rester"] * 3
    eng, strategies = second_run(gateway, cid, names=("rester",))
    report = check_leftovers(eng, strategies.values())
    assert sorted(item.order_id for item in report.leftovers) == sorted(left)
    assert [item.kind() for item in report.leftovers] == ["cancelled"] * 3
    assert working_at_gateway(gateway, cid) == {}
    assert eng.order_ids.peek() > max(left)                         # the killed run's ids are never issued again
