"""Injected faults as a real ibapi client sees them: dropped connections, TWS connectivity loss and
restore (1100 / 1101 / 1102 with the farm notices and the market data they stop or drop), rejected
orders, delayed messages, pacing violations, gateway restarts, and YAML fault scenarios.

The market is paused (it moves only when a test steps it), so "no ticks during the outage" is
checked against steps that certainly happened; a reqCurrentTime round trip proves that whatever
those steps sent has already crossed the socket.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest
from ibapi.execution import ExecutionFilter
from ibapi.message import IN

from ibframe.sim.faults.control import HISTORICAL_PACING, LOST, RESTORED_DATA_KEPT, RESTORED_DATA_LOST
from ibframe.sim.faults.scenarios import ScenarioError, parse_duration, parse_scenario
from sim_order_kit import AAPL, order, paused, place, step, stock, wait_status

TICKS = ("tickPrice", "tickSize", "tickString", "tickGeneric")


# --- helpers -----------------------------------------------------------------------------------------

def mark(c) -> int:
    """Position in the client's event list (events after it arrived later)."""
    with c.w.cond:
        return len(c.w.events)


def since(c, idx: int, names, req_id=None) -> list[tuple[str, tuple]]:
    names = (names,) if isinstance(names, str) else names
    with c.w.cond:
        return [(n, a) for n, a in c.w.events[idx:] if n in names and (req_id is None or a[0] == req_id)]


def wait_since(c, idx: int, names, req_id=None, timeout: float = 10.0) -> list[tuple[str, tuple]]:
    deadline = time.monotonic() + timeout
    while True:
        hits = since(c, idx, names, req_id)
        if hits:
            return hits
        if time.monotonic() > deadline:
            raise AssertionError(f"no {names} for {req_id} after event {idx}; errors: {c.errors()}")
        with c.w.cond:
            c.w.cond.wait(0.05)


def index_of_error(c, code: int) -> int:
    c.wait("error", lambda a: a[2] == code)
    with c.w.cond:
        return next(i for i, (n, a) in enumerate(c.w.events) if n == "error" and a[2] == code)


def sync(c) -> None:
    """A round trip: everything the gateway sent before has arrived once this returns."""
    idx = mark(c)
    c.reqCurrentTime()
    wait_since(c, idx, "currentTime")


@pytest.fixture
def sim(make_gateway, connect):
    gw = paused(make_gateway)
    return gw, connect(gw, 1)


def subscribe(gw, c, req_id: int) -> None:
    c.reqMktData(req_id, stock(), "", False, False, [])
    c.wait("tickPrice", lambda a: a[0] == req_id)
    idx = mark(c)
    step(gw, 40)
    sync(c)
    assert since(c, idx, TICKS, req_id), "the stream should move with the market before any fault"


# --- drop_client -------------------------------------------------------------------------------------

def test_drop_client_closes_the_connection_and_the_client_can_reconnect(sim, connect):
    gw, c = sim
    assert gw.faults.drop_client(1) is True
    c.wait("connectionClosed")
    assert not c.isConnected()
    assert gw.faults.drop_client(99) is False
    again = connect(gw, 1)                     # the clientId is free at once
    assert again.wait("nextValidId")
    assert [(r.name, r.params, r.outcome) for r in gw.faults.history] == [
        ("drop_client", {"client_id": 1}, ""), ("drop_client", {"client_id": 99}, "no such client")]


# --- connectivity ------------------------------------------------------------------------------------

def test_connectivity_lost_stops_ticks_and_data_maintained_resumes_them(sim):
    gw, c = sim
    subscribe(gw, c, 11)
    gw.faults.connectivity_lost()
    assert c.wait_error(-1, 1100) == LOST
    lost_at = index_of_error(c, 1100)
    c.wait("error", lambda a: a[2] == 2103 and a[3] == "Market data farm connection is broken:usfarm")
    c.wait("error", lambda a: a[2] == 2105 and a[3] == "HMDS data farm connection is broken:ushmds")
    step(gw, 40)
    sync(c)
    assert not since(c, lost_at, TICKS, 11), "no market data may flow while connectivity is lost"

    gw.faults.connectivity_restored(data_lost=False)
    assert c.wait_error(-1, 1102) == RESTORED_DATA_KEPT
    restored_at = index_of_error(c, 1102)
    c.wait("error", lambda a: a[2] == 2104 and a[3] == "Market data farm connection is OK:usfarm")
    step(gw, 40)
    assert wait_since(c, restored_at, TICKS, 11), "after 1102 the same subscription streams again"
    assert [r.name for r in gw.faults.history] == ["connectivity_lost", "connectivity_restored"]


def test_connectivity_restored_with_data_lost_drops_subscriptions_until_resubscribed(sim):
    gw, c = sim
    subscribe(gw, c, 12)
    gw.faults.connectivity_lost()
    c.wait_error(-1, 1100)
    gw.faults.connectivity_restored(data_lost=True)
    assert c.wait_error(-1, 1101) == RESTORED_DATA_LOST
    restored_at = index_of_error(c, 1101)
    step(gw, 40)
    sync(c)
    assert not since(c, restored_at, TICKS, 12), "after 1101 the old subscription sends nothing"

    idx = mark(c)
    c.reqMktData(12, stock(), "", False, False, [])          # resubscribe under the same reqId
    wait_since(c, idx, "tickPrice", 12)
    step(gw, 40)
    sync(c)
    assert len(since(c, idx, TICKS, 12)) > 1
    assert not [e for e in c.errors(12) if e[1] == 322], "the dropped reqId is free again"


def test_client_connecting_during_an_outage_sees_broken_farms(sim, connect):
    gw, c = sim
    gw.faults.connectivity_lost()
    c.wait_error(-1, 1100)
    late = connect(gw, 2)
    late.wait("error", lambda a: a[2] == 2103)
    sync(late)
    assert not [e for e in late.errors(-1) if e[1] == 2104]


# --- orders ------------------------------------------------------------------------------------------

def test_reject_next_orders_rejects_exactly_n_then_orders_work(sim):
    gw, c = sim
    gw.faults.reject_next_orders(2, "Exchange system outage")
    for oid in (1, 2, 3):
        place(c, oid, stock(), order("BUY", 100, "LMT", 100.0))
    for oid in (1, 2):
        assert c.wait_error(oid, 201) == "Order rejected - reason:Exchange system outage"
        wait_status(c, oid, "Inactive")
    opened = c.wait("openOrder", lambda a: a[0] == 3)[0]
    assert opened[3].status in ("PreSubmitted", "Submitted")
    assert not c.errors(3)


# --- delays ------------------------------------------------------------------------------------------

def test_delayed_messages_arrive_later_but_in_order(sim, connect):
    gw, c = sim
    other = connect(gw, 2)
    gw.faults.delay_messages(0.4, client_id=1)

    started = time.monotonic()
    c.reqCurrentTime()
    other.reqCurrentTime()
    other.wait("currentTime")
    undelayed = time.monotonic() - started
    c.wait("currentTime")
    assert time.monotonic() - started >= 0.35 > undelayed, "only client 1's messages are held"

    def push(first: int) -> None:
        session = gw.sessions[1]
        for k in range(first, first + 10):
            session.send(IN.CURRENT_TIME, 1, k)
    gw.call(push, 1000)                          # held back...
    gw.faults.delay_messages(0, client_id=1)     # ...the delay ends, yet later messages queue behind them
    gw.call(push, 1010)
    got = c.wait("currentTime", lambda a: 1000 <= a[0] < 2000, count=20)
    assert [a[0] for a in got] == list(range(1000, 1020))
    assert [r.outcome for r in gw.faults.history] == ["", "cleared"]


def test_delay_with_a_duration_ends_by_itself(sim):
    gw, c = sim
    gw.faults.delay_messages(0.2, duration=0.3)
    time.sleep(0.35)
    assert gw.call(gw.faults.delay_for, gw.sessions[1]) == 0.0


# --- pacing ------------------------------------------------------------------------------------------

def test_pacing_violation_sends_error_100_then_disconnects(sim, connect):
    gw, c = sim
    assert gw.faults.pacing_violation(1) is True
    text = c.wait_error(-1, 100)
    assert text.startswith("Max rate of messages per second has been exceeded:max=50")
    c.wait("connectionClosed")
    names = [n for n, a in c.w.events if n == "connectionClosed" or (n == "error" and a[2] == 100)]
    assert names[0] == "error"
    assert connect(gw, 1).wait("nextValidId")


def test_historical_pacing_violation_fails_the_next_request_with_162(sim):
    gw, c = sim
    gw.faults.pacing_violation(1, kind="historical")
    c.reqHistoricalData(21, stock(), "", "1800 S", "1 min", "TRADES", 1, 1, False, [])
    assert c.wait_error(21, 162) == HISTORICAL_PACING
    c.reqHistoricalData(22, stock(), "", "1800 S", "1 min", "TRADES", 1, 1, False, [])
    c.wait("historicalDataEnd", lambda a: a[0] == 22)
    assert c.connState == c.CONNECTED


# --- restart -----------------------------------------------------------------------------------------

def test_restart_keeps_orders_positions_executions_and_ids(sim, connect):
    gw, c = sim
    place(c, 1, stock(), order("BUY", 100, "LMT", 100.0))          # rests far below the market
    place(c, 2, stock(), order("BUY", 10))                          # fills
    wait_status(c, 2, "Filled")
    c.wait("commissionAndFeesReport")
    port = gw.port

    gw.faults.restart(pause=0.2)
    c.wait("connectionClosed")
    assert gw.port == port
    step(gw, 4)                                                     # the market keeps going

    again = connect(gw, 1)
    assert again.wait("nextValidId")[0][0] >= 3
    reopened = again.wait("openOrder", lambda a: a[0] == 1)[0]      # re-sent at connect
    assert reopened[2].lmtPrice == 100.0 and reopened[3].status in ("PreSubmitted", "Submitted")
    again.reqPositions()
    again.wait("positionEnd")
    pos = [a for a in again.all("position") if a[1].conId == AAPL]
    assert pos and float(pos[-1][2]) == 10
    again.reqExecutions(31, ExecutionFilter())
    again.wait("execDetailsEnd", lambda a: a[0] == 31)
    assert [a[2].orderId for a in again.all("execDetails", 31)] == [2]
    place(again, 1, stock(), order("BUY", 100, "LMT", 101.0))      # the restored order can be modified
    again.wait("openOrder", lambda a: a[0] == 1 and a[2].lmtPrice == 101.0)
    assert not [e for e in again.errors() if e[1] in (103, 201)]
    assert gw.faults.history[-1].name == "restart"


def test_restart_without_state_starts_a_fresh_account(sim, connect):
    gw, c = sim
    place(c, 1, stock(), order("BUY", 10))
    wait_status(c, 1, "Filled")
    gw.faults.restart(keep_state=False, pause=0.1)
    c.wait("connectionClosed")
    again = connect(gw, 1)
    again.reqPositions()
    again.wait("positionEnd")
    assert not [a for a in again.all("position") if float(a[2]) != 0]
    assert not again.all("openOrder")


# --- scenarios ---------------------------------------------------------------------------------------

SCENARIO = """\
# a bad morning
- at: 1s
  fault: connectivity_lost
  seconds: 2s
  data_lost: false
- {at: "1.5s", fault: reject_next_orders, n: 1, reason: scripted}
- at: 4s
  fault: drop_client
  client_id: 1
"""


def test_scenario_runs_on_the_simulated_clock(make_gateway, connect, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="ibframe.sim")
    path = tmp_path / "bad-morning.yaml"
    path.write_text(SCENARIO)
    gw = paused(make_gateway, faults_file=str(path))
    c = connect(gw, 1)
    step(gw, 4)                                   # +1.0 s
    c.wait_error(-1, 1100)
    step(gw, 2)                                   # +1.5 s
    place(c, 1, stock(), order("BUY", 100, "LMT", 100.0))
    assert c.wait_error(1, 201) == "Order rejected - reason:scripted"
    step(gw, 6)                                   # +3.0 s: the outage of 2 s is over
    c.wait_error(-1, 1102)
    step(gw, 4)                                   # +4.0 s
    c.wait("connectionClosed")
    assert [(r.name, r.source) for r in gw.faults.history] == [
        ("connectivity_lost", "scenario line 2"), ("reject_next_orders", "scenario line 6"),
        ("connectivity_restored", "timer"), ("drop_client", "scenario line 7")]
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fault:")]
    assert len(logged) >= 4


@pytest.mark.parametrize("text, line, words", [
    ("- at: 1s\n  fault: drop_client\n  client_id: 1\n- at: 2s\n  fault: explode\n", 5, "unknown fault 'explode'"),
    ("- at: 1s\n  fault: drop_client\n", 1, "drop_client needs client_id"),
    ("- at: soon\n  fault: restart\n", 1, "at: 'soon' is not a duration"),
    ("- at: 1s\n  fault: restart\n  keep: true\n", 3, "restart has no parameter 'keep'"),
    ("- at: 1s\n  fault: reject_next_orders\n  n: two\n", 3, "reject_next_orders n: 'two' is not a whole number"),
    ("- at: 1s\n  fault: restart\n- at: [2s\n", 3, "not valid YAML"),
    ("- at: 1s\n  fault: restart\n- just text\n", 3, "each fault is a mapping"),
    ("at: 1s\nfault: restart\n", 1, "a fault scenario is a list"),
])
def test_scenario_errors_name_the_line(text, line, words):
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "scenario.yaml")
    message = str(err.value)
    assert message.startswith(f"scenario.yaml, line {line}:"), message
    assert words in message


def test_scenario_accepts_durations_and_a_faults_mapping():
    faults = parse_scenario("faults:\n  - {at: 1m30s, fault: restart, pause: 500ms}\n"
                            "  - {at: 10, fault: connectivity_restored}\n")
    assert [(f.at, f.name, f.params) for f in faults] == [
        (10.0, "connectivity_restored", {}), (90.0, "restart", {"pause": 0.5})]
    assert parse_duration("1h") == 3600 and parse_duration(2.5) == 2.5
    with pytest.raises(ValueError):
        parse_duration("-1s")


def test_cli_reports_a_bad_scenario_with_its_line_and_exit_code_2(tmp_path):
    path = tmp_path / "oops.yaml"
    path.write_text("- at: 1s\n  fault: drop_client\n  client: 3\n")
    run = subprocess.run([sys.executable, "-m", "ibframe.sim", "--port", "0", "--faults", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert f"{path}, line 3: drop_client has no parameter 'client'" in run.stderr


def test_the_shipped_example_scenario_parses():
    from pathlib import Path
    from ibframe.sim.faults.scenarios import load_scenario
    example = Path(__file__).resolve().parents[1] / "config" / "faults.example.yaml"
    names = [f.name for f in load_scenario(example)]
    assert names == ["connectivity_lost", "reject_next_orders", "connectivity_lost", "restart"]
