"""The journal survives `kill -9` and catches up with TWS after a restart.

The simulator lives in this test process (it survives the kill); the trading process is a real
subprocess (tests/journal_crash_child.py: Engine + journal + a strategy trading AAPL non-stop). The
truth is what the simulator reports to a raw ibapi client (reqExecutions): every execution TWS had
reported more than a second before the kill must be in the journal, nothing may be there twice or
be invented, and a restart must reconcile the rest — including fills made while ibframe was down —
each exactly once.
"""
from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

from ibapi.execution import ExecutionFilter

from conftest import RecordingClient, wait_until
from ibframe.connection import ConnectError
from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.journal import Journal, JournalConfig, install
from ibframe.trading.orders import market

CHILD = Path(__file__).with_name("journal_crash_child.py")
CLIENT_ID = 31
_req_ids = itertools.count(7000)


def sim_executions(client: RecordingClient) -> dict[str, tuple]:
    """execId -> (conId, side, shares, price, orderRef) of every execution the simulator reports."""
    rid = next(_req_ids)
    client.reqExecutions(rid, ExecutionFilter())
    client.wait("execDetailsEnd", lambda a: a[0] == rid, timeout=15)
    return {e.execId: (c.conId, e.side, float(e.shares), e.price, e.orderRef)
            for _, c, e in client.all("execDetails", rid)}


def journaled(path: Path) -> list[tuple]:
    frame = Journal(path).executions()
    return list(zip(frame.exec_id, frame.con_id, frame.side, frame.shares, frame.price, frame.order_ref))


def assert_matches_sim(rows: list[tuple], truth: dict[str, tuple]) -> None:
    for exec_id, con_id, side, shares, price, order_ref in rows:
        assert exec_id in truth, f"journal holds execution {exec_id} the simulator never made"
        assert (con_id, side, shares, price, order_ref) == truth[exec_id], exec_id


def start_child(port: int, journal: Path, state_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(CHILD), str(port), str(journal), str(state_dir), str(CLIENT_ID)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "READY":
        proc.kill()
        raise AssertionError(f"the trading process did not start: {line!r} {proc.stderr.read()[-3000:]}")
    return proc


def trade_while_down(port: int, n: int) -> set[str]:
    """Another session under the same client id buys and sells AAPL `n` times: fills ibframe never saw."""
    deadline = time.monotonic() + 15
    while True:                                  # the killed session's client id is freed when the sim sees EOF
        client = RecordingClient()
        try:
            client.start(port, CLIENT_ID)
            break
        except (RuntimeError, AssertionError):
            client.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        order_id = client.all("nextValidId")[-1][0]
        for i in range(n):
            client.placeOrder(order_id + i, Stock("AAPL"), market("BUY" if i % 2 == 0 else "SELL", 2,
                                                                  orderRef="while-down"))
        hits = client.wait("execDetails", lambda a: a[2].orderRef == "while-down", count=n, timeout=15)
        return {a[2].execId for a in hits}
    finally:
        client.close()


def start_engine(port: int, state_dir: Path) -> Engine:
    """An Engine under CLIENT_ID, once the simulator has noticed that the previous session is gone."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return Engine("127.0.0.1", port, CLIENT_ID, state_dir=state_dir).start()
        except ConnectError as exc:
            if "326" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def run_and_reconcile(port: int, journal_path: Path, state_dir: Path, truth: dict[str, tuple]) -> dict:
    """A new ibframe session with the journal installed: it reconciles; wait until it saw all of `truth`."""
    engine = start_engine(port, state_dir)
    try:
        journal = install(engine, JournalConfig(path=str(journal_path), snapshot_every=0))
        wait_until(lambda: set(truth) <= set(engine.orders.by_exec_id), what="TWS's executions after the restart")
        assert journal.flush()
        stats = journal.stats
        assert journal.close()
    finally:
        engine.stop()
    return stats


def test_kill_9_keeps_every_execution_acknowledged_a_second_before_and_a_restart_reconciles_the_rest(
        make_gateway, connect, tmp_path):
    gw = make_gateway(seed=11)
    observer = connect(gw)
    journal_path, state_dir = tmp_path / "journal.sqlite", tmp_path / "var"
    proc = start_child(gw.port, journal_path, state_dir)
    try:
        wait_until(lambda: len(sim_executions(observer)) >= 30, timeout=60, what="30 fills of the trading process")
        acknowledged = sim_executions(observer)     # TWS had reported each of these to the process by now
        time.sleep(1.0)                             # the promise: what TWS reported over a second ago is on disk
        proc.kill()                                 # SIGKILL: no handler, no flush, no atexit
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    truth = sim_executions(observer)

    rows = journaled(journal_path)
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "an execution is journaled twice"
    lost = set(acknowledged) - set(ids)
    assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged executions lost: {sorted(lost)[:5]}"
    assert_matches_sim(rows, truth)
    in_last_second = set(truth) - set(ids)           # made in the last second before the kill: tolerated, counted
    assert not in_last_second & set(acknowledged)
    print(f"\nkill -9 after {len(truth)} executions: {len(ids)} journaled, {len(in_last_second)} from the last "
          f"second before the kill not yet on disk (tolerated)")

    orders = Journal(journal_path).orders()
    placed = orders[orders.action == "place"]
    assert placed.order_id.is_unique and set(placed.strategy) == {"churner"}
    journaled_orders = {o for o, in zip(Journal(journal_path).executions().order_id)}
    assert journaled_orders <= set(placed.order_id), "an execution's order was not journaled as placed"

    # the restart: fills made while ibframe was down (the last second's, and another session's) arrive once
    downtime = trade_while_down(gw.port, 3)
    truth = sim_executions(observer)
    assert downtime <= set(truth)
    run_and_reconcile(gw.port, journal_path, state_dir, truth)
    rows = journaled(journal_path)
    assert sorted(r[0] for r in rows) == sorted(truth), "after the restart the journal holds TWS's executions, once"
    assert_matches_sim(rows, truth)
    commissions = Journal(journal_path).commissions()
    assert set(commissions.exec_id) == set(truth) and commissions.exec_id.is_unique


def test_each_restart_reconciles_fills_made_while_down_exactly_once(make_gateway, connect, tmp_path):
    gw = make_gateway(seed=12)
    observer = connect(gw)
    journal_path, state_dir = tmp_path / "journal.sqlite", tmp_path / "var"

    engine = start_engine(gw.port, state_dir)                                           # run 1: trades, stops cleanly
    try:
        journal = install(engine, JournalConfig(path=str(journal_path), snapshot_every=0))
        aapl = engine.qualify(Stock("AAPL"))
        trade = engine.on_dispatch(lambda: engine.orders.place(aapl, market("BUY", 5), "first-run"))
        wait_until(lambda: trade.done and trade.fills and all(f.commission is not None for f in trade.fills),
                   what="run 1's fill and its commission")
        assert journal.close()
    finally:
        engine.stop()
    first = {r[0] for r in journaled(journal_path)}
    assert first == {f.exec_id for f in trade.fills}

    downtime = trade_while_down(gw.port, 4)                 # ibframe is down: these fills reach no journal
    assert not downtime & {r[0] for r in journaled(journal_path)}
    truth = sim_executions(observer)
    assert set(truth) == first | downtime

    run_and_reconcile(gw.port, journal_path, state_dir, truth)          # run 2: reconciles the 4, once
    rows = journaled(journal_path)
    assert sorted(r[0] for r in rows) == sorted(truth)
    assert_matches_sim(rows, truth)
    by_id = {r[0]: r for r in rows}
    assert {by_id[x][5] for x in downtime} == {"while-down"}

    stats = run_and_reconcile(gw.port, journal_path, state_dir, truth)  # run 3: TWS re-sends all; nothing new
    assert sorted(r[0] for r in journaled(journal_path)) == sorted(truth)
    assert stats["dropped"] == 0
