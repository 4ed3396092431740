"""The simulator's frames against frames recorded from a real TWS (server version 176).

For every recorded frame: the real frame must decode through ibapi's own Decoder (the path
EClient.run takes), consuming every field; and the frame the simulator sends for the same
message kind at version 176 must decode to the same callback, with the same number of
arguments and the same number of fields. The session trades EUR.USD and asks for positions and
an account summary, so the paper broker's messages are compared too.
"""
from __future__ import annotations

import json
import threading

import pytest
from ibapi.contract import Contract
from ibapi.decoder import Decoder
from ibapi.message import IN
from ibapi.order import Order

from conftest import FIXTURE_FRAMES, MIDDAY, RecordingClient, RecordingWrapper, shared_fixture
from ibframe.sim import SimConfig, SimGateway
from ibframe.sim.protocol.wire import encode_message

VERSION = 176
EURUSD = dict(symbol="EUR", secType="CASH", currency="USD", exchange="IDEALPRO")


def _names() -> list[str]:
    """Frame names for parametrisation; one placeholder when the fixture is absent (the test skips)."""
    if not FIXTURE_FRAMES.exists():
        return ["fixture-missing"]
    return [json.loads(line)["name"] for line in FIXTURE_FRAMES.read_text().splitlines() if line.strip()]


def _frame(name: str) -> dict:
    path = shared_fixture(FIXTURE_FRAMES)
    for line in path.read_text().splitlines():
        if line.strip() and json.loads(line)["name"] == name:
            return json.loads(line)
    pytest.fail(f"{name} vanished from {path}")


class Counting(tuple):
    """Fields that count how many the decoder pulled (ibapi iterates them with iter())."""
    used = 0

    def __iter__(self):
        self.used = 0
        for value in tuple.__iter__(self):
            self.used += 1
            yield value


def decode(fields: list[bytes]) -> tuple[list[tuple[str, tuple]], int | None]:
    """Feed one message (msg id first) to ibapi's Decoder as EClient.run does; (callbacks, fields read)."""
    wrapper = RecordingWrapper()
    body = Counting(fields[1:])
    Decoder(wrapper, VERSION).interpret(body, int(fields[0]))
    return wrapper.events, (body.used if body.used else None)


def wire_fields(message: tuple) -> list[bytes]:
    """A simulator message exactly as it crosses the socket, split back into fields."""
    return encode_message(message)[4:].split(b"\0")[:-1]


@pytest.fixture(scope="module")
def sim_frames():
    """Everything a version-176 simulator sends to one client that connects, asks for EUR.USD contract
    details and BidAsk ticks, trades EUR.USD and asks for positions and an account summary."""
    gw = SimGateway(SimConfig(port=0, seed=3, step_seconds=0.05, max_server_version=VERSION,
                              start_time=MIDDAY)).start()
    sent: list[tuple] = []
    lock = threading.Lock()

    def tap(session, fields):
        with lock:
            sent.append(fields)
    gw.taps.append(tap)
    client = RecordingClient().start(gw.port)
    try:
        assert client.serverVersion() == VERSION
        client.wait("error", lambda a: a[2] == 2158)
        query = Contract()
        for key, value in EURUSD.items():
            setattr(query, key, value)
        client.reqContractDetails(10000, query)
        client.wait("contractDetailsEnd")
        client.reqTickByTickData(10002, query, "BidAsk", 0, False)     # FX trades at the 'open' start time
        client.wait("tickByTickBidAsk", timeout=5)
        order = Order()
        order.action, order.totalQuantity, order.orderType = "BUY", 20000, "MKT"
        order_id = client.all("nextValidId")[-1][0]
        client.placeOrder(order_id, query, order)
        client.wait("orderStatus", lambda a: a[0] == order_id and a[1] == "Filled")
        client.wait("commissionAndFeesReport")
        client.reqPositions()
        client.wait("positionEnd")
        client.reqAccountSummary(9001, "All", "NetLiquidation,Cushion")
        client.wait("accountSummaryEnd")
        with lock:
            captured = list(sent)
        yield captured
    finally:
        client.close()
        gw.stop()


def _pick(frames: list[tuple], real: list[str]) -> tuple | None:
    """The simulator message of the same kind as the real one (same error code / tick type)."""
    msg_id = int(real[0])
    for fields in frames:
        if fields[0] != msg_id:
            continue
        if msg_id == IN.ERR_MSG and str(fields[3]) != real[3]:
            continue
        if msg_id == IN.TICK_BY_TICK and str(fields[2]) != real[2]:
            continue
        return fields
    return None


@pytest.mark.parametrize("name", _names())
def test_real_frame_decodes(name):
    frame = _frame(name)
    assert frame["server_version"] == VERSION
    fields = frame["fields"]
    assert int(fields[0]) == frame["msg_id"]
    events, used = decode([f.encode() for f in fields])
    assert len(events) == 1, f"{name}: {events}"
    callback, args = events[0]
    assert callback != "error" or frame["msg_id"] == IN.ERR_MSG, f"{name} decoded to an error: {args}"
    if used is not None:                       # proc-decoded messages: nothing left over, nothing missing
        assert used == len(fields) - 1, f"{name}: decoder read {used} of {len(fields) - 1} fields"


@pytest.mark.parametrize("name", _names())
def test_simulator_frame_matches_real(name, sim_frames):
    frame = _frame(name)
    real = frame["fields"]
    frames = sim_frames
    mine = _pick(frames, real)
    assert mine is not None, f"the simulator sent no message {frame['msg_id']} of the kind of {name}"
    ours = wire_fields(mine)
    assert len(ours) == len(real), f"{name}: simulator sent {len(ours)} fields, real TWS {len(real)}:\n" \
                                   f"ours {ours}\nreal {real}"
    real_events, _ = decode([f.encode() for f in real])
    our_events, used = decode(ours)
    assert len(our_events) == 1, our_events
    assert our_events[0][0] == real_events[0][0]
    assert len(our_events[0][1]) == len(real_events[0][1])
    if used is not None:
        assert used == len(ours) - 1
