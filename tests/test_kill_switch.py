"""The kill switch, reached from outside the process, and `on_stop: cancel | leave`.

A real `python -m ibframe.run` subprocess trades against a simulator in this test process (so the
test reads the gateway's own order table, and a raw ibapi client asks it for every open order); its
strategy rests limit orders that never fill, and a TWS-entered (manual) order rests beside them.
Then `python -m ibframe.run CONFIG --kill` from another process, SIGUSR1 or the kill file must leave
nothing working at the gateway (reqGlobalCancel takes the manual order too). The time it took is
printed (run pytest with -s to see it); the bounds are failure guards, not performance claims.
"""
from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ibframe.config import load_config
from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.risk import kill
from ibframe.risk.base import GLOBAL, TradingState
from ibframe.risk.state import TradingStates
from ibframe.run import Runner
from conftest import wait_until
from kill_kit import RestingOrders

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

CONFIG = """\
strategy:
  class: kill_kit:RestingOrders
  name: rester
  params: {{orders: {orders}}}
  instruments: {{AAPL: AAPL}}
gateway: {{host: 127.0.0.1, port: {port}, client_id: {client_id}}}
state_dir: {state_dir}
log_level: INFO
{extra}
"""


def write_config(tmp_path: Path, gw, client_id: int, orders: int = 3, extra: str = "") -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(CONFIG.format(port=gw.port, client_id=client_id, orders=orders, state_dir=tmp_path / "var",
                                  extra=extra))
    return path


def working_at_gateway(gw, client_id: int | None = None) -> list[tuple[int, int]]:
    """(clientId, orderId) of every order the simulator has working (read on its own loop)."""
    return gw.call(lambda: [(lo.order.clientId, lo.order.orderId) for lo in gw.broker.open_orders()
                            if client_id is None or lo.order.clientId == client_id])


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    return e


def run_cli(*args, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ibframe.run", *map(str, args)], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def live_run(make_gateway, tmp_path):
    """start(client_id, stdin=None) -> (gateway, config path, process) once the run's 3 orders and a manual order rest."""
    procs = []

    def start(client_id: int, stdin=None):
        gw = make_gateway(seed=11)
        path = write_config(tmp_path, gw, client_id)
        proc = subprocess.Popen([sys.executable, "-m", "ibframe.run", str(path)], cwd=tmp_path, env=env(),
                                stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        try:
            wait_until(lambda: len(working_at_gateway(gw, client_id)) == 3 or proc.poll() is not None,
                       timeout=60, what="the run's 3 resting orders")
        except AssertionError:
            proc.kill()
            raise AssertionError(f"the run did not rest its orders: {proc.communicate()[0]}") from None
        assert proc.poll() is None, proc.communicate()[0]
        con_id = next(i.con_id for i in gw.universe.instruments if i.symbol == "AAPL" and i.sec_type == "STK")
        manual = gw.call(gw.broker.enter_manual, "", con_id, "BUY", 5, "LMT", 1.0)     # entered "in TWS"
        assert manual is not None
        wait_until(lambda: len(working_at_gateway(gw)) == 4, what="the manual order resting too")
        return gw, path, proc
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def finish(proc) -> str:
    """Ctrl-C the run (it stays up, halted, after a kill) and return its output."""
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


def wait_all_cancelled(gw, started: float, how: str) -> float:
    wait_until(lambda: not working_at_gateway(gw), timeout=30, what=f"every order cancelled after {how}")
    took = time.monotonic() - started
    print(f"\nkill switch via {how}: every working order cancelled at the gateway {took * 1000:.0f} ms after "
          f"the kill was sent")
    return took


def no_open_orders_seen_by_a_raw_client(gw, connect) -> None:
    c = connect(gw, client_id=0)
    c.reqAllOpenOrders()
    c.wait("openOrderEnd")
    assert c.all("openOrder") == []


def test_kill_command_from_another_process_cancels_everything(live_run, connect, tmp_path):
    gw, path, proc = live_run(client_id=31)
    started = time.monotonic()
    done = run_cli(path, "--kill", cwd=tmp_path)
    wait_all_cancelled(gw, started, "python -m ibframe.run CONFIG --kill (interpreter start included)")
    assert done.returncode == 0, done.stderr
    assert f"run pid {proc.pid}: halted by SIGUSR1: 3 of 3 working order(s) cancelled" in done.stdout, done.stdout
    no_open_orders_seen_by_a_raw_client(gw, connect)
    out = finish(proc)
    assert "KILL SWITCH (SIGUSR1)" in out and "Cancelled" in out
    assert not list((tmp_path / "var" / "runs").glob("*")), "the run removes its pid file when it ends"


def test_sigusr1_cancels_everything_and_the_run_stays_halted(live_run, connect, tmp_path):
    gw, path, proc = live_run(client_id=32)
    started = time.monotonic()
    proc.send_signal(signal.SIGUSR1)
    wait_all_cancelled(gw, started, "SIGUSR1")
    no_open_orders_seen_by_a_raw_client(gw, connect)
    time.sleep(0.5)
    assert proc.poll() is None, "a kill halts the run; it does not end it"
    out = finish(proc)
    assert "trading state globally: ACTIVE -> HALTED" in out


def test_typing_kill_on_the_runs_terminal_cancels_everything(live_run, connect):
    """The console kill reads the run's terminal: a pseudo-terminal stands in for it (a pipe is not a terminal,
    and a run whose stdin is not one never reads it)."""
    terminal, run_side = pty.openpty()
    try:
        gw, path, proc = live_run(client_id=34, stdin=run_side)
        os.write(terminal, b"status\n")                # anything else only prints how to kill
        started = time.monotonic()
        os.write(terminal, b"kill\n")
        wait_all_cancelled(gw, started, "kill + Enter on the run's terminal")
        no_open_orders_seen_by_a_raw_client(gw, connect)
        out = finish(proc)
    finally:
        os.close(run_side)
        os.close(terminal)
    assert "KILL SWITCH (console)" in out and "type 'kill' + Enter to halt" in out


def test_the_kill_file_cancels_everything_and_blocks_the_next_start(live_run, connect, tmp_path):
    gw, path, proc = live_run(client_id=33)
    kill_file = tmp_path / "var" / "KILL"
    started = time.monotonic()
    kill_file.write_text("stop\n")
    wait_all_cancelled(gw, started, "the kill file")
    no_open_orders_seen_by_a_raw_client(gw, connect)
    out = finish(proc)
    assert f"KILL SWITCH (kill file {kill_file})" in out

    again = run_cli(path, cwd=tmp_path)               # the file is still there: nobody cleared the kill
    assert again.returncode == 2
    assert "kill file" in again.stderr and "Delete it when it is safe to trade again" in again.stderr
    assert working_at_gateway(gw) == []


def test_kill_command_without_a_run_says_so(tmp_path, make_gateway):
    gw = make_gateway(seed=11)
    path = write_config(tmp_path, gw, client_id=34)
    done = run_cli(path, "--kill", cwd=tmp_path)
    assert done.returncode == 1
    assert "no running ibframe run of" in done.stderr and "Nothing was signalled" in done.stderr

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    runs = tmp_path / "var" / "runs"
    runs.mkdir(parents=True)
    stale = runs / f"{dead.pid}.json"
    stale.write_text(f'{{"pid": {dead.pid}, "config": "{path.resolve()}", "client_id": 34, "started": 0}}')
    done = run_cli(path, "--kill", cwd=tmp_path)
    assert done.returncode == 1 and "Nothing was signalled" in done.stderr
    assert not stale.exists(), "a stale pid file is removed, never signalled"


def test_kill_command_never_signals_a_process_that_is_not_an_ibframe_run(tmp_path, make_gateway):
    gw = make_gateway(seed=11)
    path = write_config(tmp_path, gw, client_id=35)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        runs = tmp_path / "var" / "runs"
        runs.mkdir(parents=True)
        (runs / f"{bystander.pid}.json").write_text(
            f'{{"pid": {bystander.pid}, "config": "{path.resolve()}", "client_id": 35, "started": 0}}')
        done = run_cli(path, "--kill", cwd=tmp_path)
        assert done.returncode == 1
        time.sleep(0.2)
        assert bystander.poll() is None, "SIGUSR1 would have terminated it"
    finally:
        bystander.kill()
        bystander.wait()


# --- on_stop ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["cancel", "leave", None])
def test_on_stop_cancels_or_leaves_the_working_orders(make_gateway, tmp_path, mode):
    gw = make_gateway(seed=11)
    extra = f"on_stop: {mode}" if mode else ""
    runner = Runner(load_config(write_config(tmp_path, gw, client_id=40, orders=2, extra=extra)))
    try:
        runner.start()
        (s,) = runner.strategies
        wait_until(lambda: s.placed and all(t.status == "Submitted" for t in s.resting), what="2 resting orders")
    finally:
        runner.stop()
    left = working_at_gateway(gw, 40)
    if mode == "leave":
        assert sorted(oid for _, oid in left) == sorted(t.order_id for t in s.resting)
    else:                                             # cancel, the default
        assert left == []
        assert all(t.status == "Cancelled" for t in s.resting)


def test_on_stop_cancel_after_the_gateway_went_away_does_not_hang(make_gateway, tmp_path, caplog):
    gw = make_gateway(seed=11)
    runner = Runner(load_config(write_config(tmp_path, gw, client_id=41, orders=2)))
    try:
        runner.start()
        (s,) = runner.strategies
        wait_until(lambda: s.placed and all(t.status == "Submitted" for t in s.resting), what="2 resting orders")
        gw.stop()
        wait_until(runner.engine.router.connection_closed.is_set, what="the connection to close")
    finally:
        runner.stop()
    assert "could not be cancelled and may still be working at the gateway" in caplog.text


# --- flatten ----------------------------------------------------------------------------------------------
def test_kill_with_flatten_closes_the_strategys_own_position_after_the_cancels(make_gateway, tmp_path):
    gw = make_gateway(seed=11)
    eng = Engine("127.0.0.1", gw.port, 42, state_dir=tmp_path).start()
    try:
        eng.subscribe_account()
        aapl = eng.qualify(Stock("AAPL"))
        s = RestingOrders(eng, "flat", {"orders": 2, "buy_first": 10}, {"AAPL": aapl})
        states = TradingStates(eng.clock.now)
        events = []
        states.listeners.append(events.append)
        done = []
        cfg = kill.KillConfig(flatten=True, global_cancel=False, file=None, signal=False, console=False)
        switch = kill.install(eng, states, cfg, lambda: [s], tmp_path, on_done=done.append)
        eng.on_dispatch(s._start)
        wait_until(lambda: s.placed and all(t.status == "Submitted" for t in s.resting), what="a buy and 2 resting")
        assert eng.on_dispatch(lambda: s.position("AAPL")) == 10

        switch.request("test")
        wait_until(lambda: done, what="the kill to finish")
        wait_until(lambda: eng.on_dispatch(lambda: s.position("AAPL")) == 0, what="the flatten to fill")
        assert working_at_gateway(gw, 42) == []
        assert states.state(GLOBAL) is TradingState.HALTED and states.state("flat") is TradingState.HALTED
        assert "2 of 2 working order(s) cancelled" in done[0] and "1 flatten order(s) sent" in done[0]
        flatten = [t for t in s.trades if t not in s.resting and t is not s.bought]
        assert [(t.order.action, t.order.totalQuantity, t.order.orderType) for t in flatten] == [("SELL", 10, "MKT")]
        assert [e.kind for e in events] == ["state", "kill"]
        assert events[1].details["cancelled"] == sorted(t.order_id for t in s.resting)
        switch.stop()
        eng.on_dispatch(s._stop)
    finally:
        eng.stop()
