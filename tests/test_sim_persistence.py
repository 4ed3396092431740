"""`--state FILE`: orders, executions, positions, cash and order ids survive a restart of the simulator,
and a reconnecting client sees what a real gateway shows; a damaged file is a clear error."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from ibapi.execution import ExecutionFilter
from ibapi.order_cancel import OrderCancel

from ibframe.sim import SimConfig, SimGateway
from ibframe.sim.persistence import StateError
from sim_order_kit import AAPL, order, paused, place, stock, wait_status


def cash_value(c, req_id: int) -> float:
    c.reqAccountSummary(req_id, "All", "TotalCashValue")
    c.wait("accountSummaryEnd", lambda a: a[0] == req_id)
    (row,) = [a for a in c.all("accountSummary", req_id) if a[2] == "TotalCashValue"]
    c.cancelAccountSummary(req_id)
    return float(row[3])


def saved(path) -> dict:
    return json.loads(path.read_text())


def test_orders_fills_positions_and_ids_survive_a_new_gateway(make_gateway, connect, tmp_path):
    path = tmp_path / "paper.json"
    gw = paused(make_gateway, state_file=str(path))
    c = connect(gw, 7)
    place(c, 1, stock(), order("BUY", 100, "LMT", 100.0))          # rests far below the market
    place(c, 2, stock(), order("BUY", 25))                          # fills
    wait_status(c, 2, "Filled")
    c.wait("commissionAndFeesReport")
    exec_ids = [a[2].execId for a in c.all("execDetails") if a[2].orderId == 2]
    cash = cash_value(c, 50)
    c.close()
    gw.stop()

    gw2 = paused(make_gateway, state_file=str(path))
    c2 = connect(gw2, 7)
    assert c2.wait("nextValidId")[0][0] > 2
    reopened = c2.wait("openOrder", lambda a: a[0] == 1)[0]         # re-sent at connect, as TWS does
    assert reopened[1].conId == AAPL and reopened[2].lmtPrice == 100.0 and float(reopened[2].totalQuantity) == 100
    c2.wait("orderStatus", lambda a: a[0] == 1 and a[1] in ("PreSubmitted", "Submitted"))

    c2.reqPositions()
    c2.wait("positionEnd")
    assert not c2.all("openOrder", 2), "a filled order is not re-sent as open"
    pos = [a for a in c2.all("position") if a[1].conId == AAPL]
    assert float(pos[-1][2]) == 25 and pos[-1][3] > 0
    c2.reqExecutions(60, ExecutionFilter())
    c2.wait("execDetailsEnd", lambda a: a[0] == 60)
    assert [a[2].execId for a in c2.all("execDetails", 60)] == exec_ids
    assert cash_value(c2, 61) == pytest.approx(cash)

    c2.cancelOrder(1, OrderCancel())                                # the restored order is a live one
    wait_status(c2, 1, "Cancelled")
    place(c2, 3, stock(), order("BUY", 1, "LMT", 100.0))            # and new ids keep counting up
    assert not [e for e in c2.errors() if e[1] == 103]


def test_the_file_is_saved_after_every_change(make_gateway, connect, tmp_path):
    path = tmp_path / "paper.json"
    gw = paused(make_gateway, state_file=str(path))
    c = connect(gw, 1)
    place(c, 5, stock(), order("BUY", 10, "LMT", 100.0))

    def order_status(oid: int) -> str | None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if path.exists():
                for d in saved(path)["broker"]["orders"]:
                    if d["order"]["orderId"] == oid:
                        return d["status"]
            time.sleep(0.01)
        return None
    assert order_status(5) in ("PreSubmitted", "Submitted")
    c.cancelOrder(5, OrderCancel())
    wait_status(c, 5, "Cancelled")
    deadline = time.monotonic() + 10
    while order_status(5) != "Cancelled" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert order_status(5) == "Cancelled"
    assert saved(path)["next_order_id"] >= 6
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"


@pytest.mark.parametrize("content, words", [
    ("{\"format\": \"ibframe.sim state\", \"version\": 1, \"ledger\": {", "not valid JSON (line 1"),
    ("", "not valid JSON"),
    ("[1, 2, 3]", "not an ibframe.sim state file"),
    ("{\"format\": \"ibframe.sim state\", \"version\": 1, \"ledger\": {}}", "\"broker\" section is missing"),
])
def test_a_corrupt_state_file_is_a_clear_error(tmp_path, content, words):
    path = tmp_path / "paper.json"
    path.write_text(content)
    with pytest.raises(StateError) as err:
        SimGateway(SimConfig(port=0, state_file=str(path)))
    message = str(err.value)
    assert str(path) in message and words in message
    assert "Move" in message and "fresh paper account" in message


def test_cli_exits_2_on_a_corrupt_state_file(tmp_path):
    path = tmp_path / "paper.json"
    path.write_text("{ this is not json")
    run = subprocess.run([sys.executable, "-m", "ibframe.sim", "--port", "0", "--state", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert str(path) in run.stderr and "corrupt" in run.stderr


def test_a_missing_directory_is_created_and_an_impossible_one_reported_at_startup(tmp_path):
    SimGateway(SimConfig(port=0, state_file=str(tmp_path / "var" / "paper.json")))     # var/ on a clean clone
    assert (tmp_path / "var").is_dir()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StateError, match="cannot be created"):
        SimGateway(SimConfig(port=0, state_file=str(tmp_path / "a-file" / "sub" / "paper.json")))
