"""The connection supervisor, as a strategy lives it: drops, restarts, 1100/1101/1102, farms, 326, giving up.

A Runner (rails, supervisor, a strategy) trades against its own ibframe.sim gateway over loopback; the
simulator's fault injector cuts the socket, restarts the gateway or plays TWS's connectivity notices.
What must hold: the strategy hears on_disconnected / on_reconnected; orders placed while down are refused
(never queued); every subscription comes back with a fresh request id on the same Quote/Bars/book objects;
quotes are stale exactly while data is down; the cancel-on-disconnect policy acts only past its limit; a run
whose gateway is gone for good ends with exit code 3 and says why.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from ibframe.config import GatewayConfig, RunConfig, StrategyConfig
from ibframe.contracts import Stock
from ibframe.resilience import ConnectionConfig
from ibframe.risk.base import RiskRejected
from ibframe.run import Runner
from ibframe.strategy import Strategy
from conftest import wait_until

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(initial_delay=0.05, max_delay=0.4, jitter=0.2, handshake_timeout=5.0)
_client_ids = iter(range(4100, 4400))


class Watcher(Strategy):
    """Subscribes to everything that must survive a reconnect and writes down what it is told."""

    def on_start(self):
        self.events: list[tuple] = []
        self.refusals: list[str] = []
        self.quote_obj = self.quote("AAPL")
        self.bars_obj = self.bars("AAPL", "1 min", "1800 S")
        self.book = self.depth("AAPL", rows=5)
        self.tick_ring = self.ticks("AAPL", "BidAsk")

    def on_disconnected(self, reason):
        self.events.append(("down", reason, self.quote_obj.stale))
        try:
            self.buy("AAPL", 1, 1.00)
        except RiskRejected as exc:
            self.refusals.append(str(exc))

    def on_reconnected(self, down_for):
        self.events.append(("up", down_for, self.quote_obj.stale))


def start_runner(gateway, tmp_path, connection: ConnectionConfig | None = None, on_disconnect=None,
                 cls: str = "test_reconnect:Watcher") -> Runner:
    cfg = RunConfig(source="<test>", strategies=[StrategyConfig(cls, "w", {}, {"AAPL": Stock("AAPL")},
                                                                on_disconnect)],
                    gateway=GatewayConfig("tws", "127.0.0.1", gateway.port, next(_client_ids)),
                    state_dir=str(tmp_path), connection=connection or ConnectionConfig(**FAST))
    runner = Runner(cfg)
    runner.start()
    return runner


def live_ids(runner) -> dict[str, int]:
    """The request id each of the Watcher's state objects answers to right now (from the router's registry)."""
    s = runner.strategies[0]
    ids = runner.engine.on_dispatch(lambda: {id(o): rid for rid, r in runner.engine.router.requests.items()
                                             for o in (r.quote, r.bars, r.book, r.ticks) if o is not None})
    return {name: ids.get(id(obj)) for name, obj in (("quote", s.quote_obj), ("bars", s.bars_obj),
                                                      ("depth", s.book), ("ticks", s.tick_ring))}


def wait_flowing(runner, what: str) -> None:
    """Every subscription of the Watcher delivers data again (counted from now)."""
    s = runner.strategies[0]
    quote_updates, book_updates, ticks = s.quote_obj.updates, s.book.updates, len(s.tick_ring)
    wait_until(lambda: s.quote_obj.updates > quote_updates, what=f"quotes after {what}")
    wait_until(lambda: s.book.updates > book_updates, what=f"depth after {what}")
    wait_until(lambda: len(s.tick_ring) > ticks, what=f"ticks after {what}")
    wait_until(lambda: s.bars_obj.complete, what=f"bars after {what}")


@pytest.fixture
def runner_on(make_gateway, tmp_path):
    made = []

    def build(**options):
        connection = options.pop("connection", None)
        on_disconnect = options.pop("on_disconnect", None)
        options.setdefault("pace_tick_by_tick", False)      # IB's 15-s rule per instrument: test_pacing's subject
        gw = make_gateway(**options)
        r = start_runner(gw, tmp_path / f"r{len(made)}", connection, on_disconnect)
        made.append(r)
        return gw, r
    yield build
    for r in made:
        r.stop()


def test_a_dropped_socket_comes_back_with_fresh_ids_on_the_same_objects(runner_on):
    gw, runner = runner_on()
    s, sup = runner.strategies[0], runner.supervisor
    wait_flowing(runner, "the start")
    before = live_ids(runner)
    objects = (s.quote_obj, s.bars_obj, s.book, s.tick_ring)
    assert gw.faults.drop_client(runner.cfg.gateway.client_id)
    wait_until(lambda: sup.recoveries == 1, what="the reconnect")
    wait_until(lambda: len(s.events) == 2, what="on_reconnected (after the reconciliation)")
    after = live_ids(runner)
    assert all(after[k] != before[k] for k in before)                         # every one re-requested, fresh id
    assert len(set(after.values()) | set(before.values())) == 2 * len(before)  # and no id used twice
    assert (s.quote_obj, s.bars_obj, s.book, s.tick_ring) == objects
    assert [e[0] for e in s.events] == ["down", "up"]
    assert s.events[0][2] is True                                              # stale while down
    assert s.refusals and "connection" in s.refusals[0] and "nothing was sent" in s.refusals[0]
    assert not [t for t in s.trades if t.order_id]                             # the refused order got no id
    wait_flowing(runner, "the reconnect")
    assert s.quote_obj.stale is False
    assert sup.outages[0].how == "reconnected" and sup.outages[0].attempts >= 1


def test_a_gateway_restart_takes_several_attempts_and_bars_are_not_duplicated(runner_on):
    gw, runner = runner_on()
    s, sup = runner.strategies[0], runner.supervisor
    wait_flowing(runner, "the start")
    gw.faults.restart(keep_state=True, pause=1.0)
    wait_until(lambda: sup.recoveries == 1, timeout=20, what="the reconnect after a restart")
    assert sup.outages[0].attempts >= 2                         # the port was closed for a second: backoff
    wait_until(lambda: s.bars_obj.complete and not s.bars_obj.backfilling, what="the bar reload")
    index = s.bars_obj.to_frame().index
    assert index.is_unique and index.is_monotonic_increasing
    steps = index.to_series().diff().dropna().dt.total_seconds()
    assert (steps == 60).all()                                  # no missing minute across the gap


def test_1100_then_1101_resubscribes_market_data_and_1102_keeps_it(runner_on):
    gw, runner = runner_on()
    s, sup = runner.strategies[0], runner.supervisor
    wait_flowing(runner, "the start")
    ids = live_ids(runner)
    gw.faults.connectivity_lost()
    wait_until(lambda: sup.state == "down", what="1100")
    assert s.quote_obj.stale and s.book.stale
    gw.faults.connectivity_restored(data_lost=True)
    wait_until(lambda: sup.recoveries == 1, what="1101")
    wait_until(lambda: len(s.events) == 2, what="on_reconnected after 1101")
    after_1101 = live_ids(runner)
    assert all(after_1101[k] != ids[k] for k in ids)
    wait_flowing(runner, "1101")
    assert not s.quote_obj.stale
    gw.faults.connectivity_lost()
    wait_until(lambda: sup.state == "down", what="the second 1100")
    gw.faults.connectivity_restored(data_lost=False)
    wait_until(lambda: sup.recoveries == 2, what="1102")
    wait_until(lambda: len(s.events) == 4, what="on_reconnected after 1102")
    assert live_ids(runner) == after_1101                      # data maintained: the same lines keep streaming
    wait_flowing(runner, "1102")
    assert [e[0] for e in s.events] == ["down", "up", "down", "up"]
    assert [o.how for o in sup.outages] == ["restored 1101", "restored 1102"]


def test_ib_not_back_within_the_restore_timeout_reconnects_the_socket(runner_on):
    gw, runner = runner_on(connection=ConnectionConfig(restore_timeout=0.5, **FAST))
    sup = runner.supervisor
    gw.faults.connectivity_lost(seconds=4.0)                   # IB comes back on its own only after 4 s (simulated:
    #                                                            a loaded machine runs the clock late, so keep a margin)
    wait_until(lambda: sup.recoveries >= 1, timeout=20, what="a recovery")
    assert sup.outages[0].attempts >= 1                        # the socket was reconnected, not waited on
    wait_flowing(runner, "the socket reconnect")


class Working(Strategy):
    def on_start(self):
        self.quote("AAPL")
        self.order = self.buy("AAPL", 1, 1.00)                 # far below the market: keeps working

    def on_reconnected(self, down_for):
        self.down_for = down_for


@pytest.mark.parametrize("cancel_after, pause, cancelled", [(0.1, 1.0, True), (30.0, 1.0, False),
                                                            (None, 1.0, False)],
                         ids=["down-longer-than-limit", "down-shorter-than-limit", "leave"])
def test_cancel_on_disconnect_policy(make_gateway, tmp_path, cancel_after, pause, cancelled):
    gw = make_gateway()
    runner = start_runner(gw, tmp_path, on_disconnect=cancel_after, cls="test_reconnect:Working")
    try:
        s, sup = runner.strategies[0], runner.supervisor
        wait_until(lambda: s.order.status == "Submitted", what="the order working")
        gw.faults.restart(keep_state=True, pause=pause)
        wait_until(lambda: sup.recoveries == 1, timeout=20, what="the reconnect")
        wait_until(lambda: hasattr(s, "down_for"), what="on_reconnected (after the reconciliation)")
        if cancelled:
            wait_until(lambda: s.order.status == "Cancelled", what="the policy's cancel")
        else:
            runner.engine.on_dispatch(lambda: None)
            assert s.order.status == "Submitted" and not s.order.done
        assert s.down_for > 0.5
    finally:
        runner.stop()


def test_client_id_in_use_moves_to_a_spare_id(make_gateway, tmp_path, connect):
    gw = make_gateway()
    runner = start_runner(gw, tmp_path, ConnectionConfig(client_id_in_use="next", spare_client_ids=[4901, 4902],
                                                        **FAST))
    try:
        sup, first = runner.supervisor, runner.cfg.gateway.client_id
        gw.faults.drop_client(first)
        squatter = connect(gw, first)                          # someone takes the id while we are away
        wait_until(lambda: sup.recoveries == 1, timeout=20, what="the reconnect on a spare id")
        assert runner.engine.client_id in (4901, 4902)
        assert squatter.isConnected()
    finally:
        runner.stop()


def test_client_id_in_use_waits_for_the_id_by_default(make_gateway, tmp_path, connect):
    gw = make_gateway()
    runner = start_runner(gw, tmp_path)
    try:
        sup, first = runner.supervisor, runner.cfg.gateway.client_id
        gw.faults.drop_client(first)
        squatter = connect(gw, first)
        wait_until(lambda: sup.outages and sup.outages[-1].attempts >= 2, what="attempts refused with 326")
        assert sup.state == "down"
        squatter.close()
        wait_until(lambda: sup.recoveries == 1, timeout=20, what="the reconnect once the id is free")
        assert runner.engine.client_id == first
    finally:
        runner.stop()


def test_a_farm_outage_marks_quotes_stale_until_it_is_back(runner_on):
    gw, runner = runner_on()
    s = runner.strategies[0]
    wait_flowing(runner, "the start")
    from ibframe.sim.protocol.codec import SessionCodec
    assert runner.engine.conn.serverVersion() >= 194          # ERR_MSG with a time stamp, no version field

    def farm_notice(code: int, text: str) -> None:             # TWS's notice, over the socket
        assert gw.faults.send_raw(runner.cfg.gateway.client_id, SessionCodec(runner.engine.conn.serverVersion())
                                  .encode((4, -1, code, text, "", int(time.time() * 1000))))
    farm_notice(2103, "Market data farm connection is broken:usfarm")
    wait_until(lambda: s.quote_obj.stale and s.book.stale, what="stale quotes and books")
    assert runner.supervisor.state == "connected"              # a farm is not the connection: orders still go
    farm_notice(2104, "Market data farm connection is OK:usfarm")
    wait_until(lambda: not s.quote_obj.stale and not s.book.stale, what="fresh again")


def test_giving_up_ends_the_run_with_exit_code_3(make_gateway, tmp_path):
    """A gateway that is gone for good: the runner (a separate process) says why and exits 3, not 0."""
    gw = make_gateway()
    cfg = tmp_path / "run.yaml"
    cfg.write_text(textwrap.dedent(f"""
        strategy:
          class: strategies.ma_cross:MovingAverageCross
          instruments: {{AAPL: AAPL}}
        gateway: {{host: 127.0.0.1, port: {gw.port}, client_id: 4990}}
        state_dir: {tmp_path / 'var'}
        connection: {{initial_delay: 0.05s, max_delay: 0.2s, give_up_after: 3}}
        """))
    proc = subprocess.Popen([sys.executable, "-m", "ibframe.run", str(cfg), "--duration", "60s"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("started on AAPL" in line for line in lines), what="the strategy started")
        gw.stop()
        proc.wait(timeout=30)
        reader.join(5)
    finally:
        proc.kill()
    err = "".join(lines)
    assert proc.returncode == 3, err
    assert "after 3 attempt(s)" in err and "exit code 3" in err


def test_a_recorded_session_with_a_drop_replays_the_same_requests_and_decisions(make_gateway, tmp_path):
    """Replay takes the recorded socket loss and reconnect at the same points: the resubscriptions and the
    reconciliation's requests match the recording one for one, and the strategy decides the same."""
    from ibapi.message import OUT
    from replay_fixtures import FIXED_EPOCH, buy_on_nth_config
    from ibframe.replay import replay

    gw = make_gateway(seed=11, start_time=FIXED_EPOCH)
    cfg = buy_on_nth_config(tmp_path, n=30, timer=None)
    cfg.connection = ConnectionConfig(**FAST)
    cfg.gateway = GatewayConfig("tws", "127.0.0.1", gw.port, 78)
    cfg.record = str(tmp_path / "dropped.jsonl.gz")
    runner = Runner(cfg)
    try:
        runner.start()
        s = runner.strategies[0]
        wait_until(lambda: len(s.quotes) >= 10, what="quotes before the drop")
        gw.faults.drop_client(78)
        wait_until(lambda: runner.supervisor.recoveries == 1, what="the reconnect")
        wait_until(lambda: len(s.decisions) == 2, what="both decisions after the reconnect")
    finally:
        runner.stop()
    result = replay(tmp_path / "dropped.jsonl.gz", buy_on_nth_config(tmp_path, n=30, timer=None))
    assert result.divergences == [] and result.problems == []
    again = result.strategy()
    assert [(d.what, d.quote_no, d.bid, d.ask, d.price) for d in again.decisions] == \
        [(d.what, d.quote_no, d.bid, d.ask, d.price) for d in s.decisions]
    from ibframe.sim.protocol.proto_requests import to_text_request

    def fields(m):                                   # a protobuf request as the text fields it stands for
        return m.fields if m.fields is not None else to_text_request(m.msg_id, m.payload[4:])
    market_data = [fields(m) for m in result.sent if m.msg_id == OUT.REQ_MKT_DATA]
    assert len(market_data) == 2 and market_data[0][2] != market_data[1][2]     # resubscribed, fresh id
    assert any(m.msg_id == OUT.REQ_EXECUTIONS for m in result.sent)                         # and reconciled


@pytest.mark.parametrize("policy", ["wait", "next"])
def test_client_id_in_use_at_start_waits_or_moves_on(make_gateway, tmp_path, connect, policy):
    """A restart right after a crash: TWS still holds the dead run's client id (326). The run does not exit 2:
    it waits for the id (default) or takes a spare one."""
    gw = make_gateway()
    squatter = connect(gw, 4950)
    spares = dict(client_id_in_use="next", spare_client_ids=[4951]) if policy == "next" else {}
    cfg = RunConfig(source="<test>", strategies=[StrategyConfig("test_reconnect:Watcher", "w", {},
                                                                {"AAPL": Stock("AAPL")})],
                    gateway=GatewayConfig("tws", "127.0.0.1", gw.port, 4950), state_dir=str(tmp_path),
                    connection=ConnectionConfig(**FAST, **spares))
    runner = Runner(cfg)
    if policy == "wait":
        threading.Timer(1.0, squatter.close).start()        # the stale session goes away after a second
    try:
        runner.start()
        assert runner.engine.client_id == (4951 if policy == "next" else 4950)
        assert runner.supervisor.state == "connected"
    finally:
        runner.stop()


def test_a_frame_over_the_protocol_limit_resets_the_connection_and_the_supervisor_brings_it_back(runner_on):
    """A length prefix of 2^31 used to stall the client silently (data after it buffered, never delivered). Now it
    is a protocol failure: logged and counted once, the socket reset, and the run recovers like any drop."""
    import struct
    gw, runner = runner_on()
    s, sup, conn = runner.strategies[0], runner.supervisor, runner.engine.conn
    wait_flowing(runner, "the start")
    errors: list = []
    runner.engine.router.on_error_hooks.append(errors.append)
    assert gw.faults.send_raw(runner.cfg.gateway.client_id, struct.pack("!I", 2 ** 31) + b"junk after it")
    wait_until(lambda: sup.recoveries == 1, what="the reconnect after the protocol failure")
    wait_until(lambda: len(s.events) == 2, what="on_reconnected")
    assert conn.protocol_failures == 1 and conn.bad_frames == 1
    assert [e.code for e in errors if e.code == -2] == [-2]                    # reported once
    assert "over the protocol limit" in next(e.text for e in errors if e.code == -2)
    wait_flowing(runner, "the reconnect")
