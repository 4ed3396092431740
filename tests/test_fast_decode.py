"""The connection's fast market-data decoding has exactly the effect of ibapi's own message loop.

Each generated frame goes (a) through the loop of ibapi's EClient.run — message id, read_fields,
Decoder.interpret — and (b) through IBConnection._decode_batch, which decodes the hot market-data
messages itself. Both must make the same wrapper calls, with equal arguments of the same types, and
fail on the same frames. Frames mix valid values with IB's unset texts, empty and garbled fields,
and missing or extra fields, at server versions on both sides of every version check involved.
"""
from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from ibapi import comm
from ibapi.common import PROTOBUF_MSG_ID
from ibapi.decoder import Decoder
from ibapi.wrapper import EWrapper

from ibframe.connection import IBConnection
from ibframe.dispatch import Dispatcher

VERSIONS = (100, 108, 109, 131, 132, 145, 146, 176, 200, 201)
CALLBACKS = ("tickPrice", "tickSize", "tickByTickAllLast", "tickByTickBidAsk", "tickByTickMidPoint",
             "updateMktDepth", "updateMktDepthL2", "error")


def _plain(value):
    """A comparable form of a callback argument: attribute objects by their class and fields."""
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return (type(value).__name__, sorted(vars(value).items()))
    return (type(value).__name__, repr(value))


class Calls(EWrapper):
    def __init__(self):
        super().__init__()
        self.calls = []


def _recorder(name):
    def record(self, *args):
        if name == "error":
            args = args[:1] + args[2:]               # drop errorTime (the wall clock)
        self.calls.append((name, [_plain(a) for a in args]))
    return record


for _name in CALLBACKS:
    setattr(Calls, _name, _recorder(_name))


def ibapi_loop(payload: bytes, version: int) -> tuple[list, bool]:
    """What EClient.run does with one frame (its id parsing, read_fields, interpret)."""
    w = Calls()
    decoder = Decoder(w, version)
    try:
        if version >= 201:
            msg_id, text = int.from_bytes(payload[:4], "big"), payload[4:]
        else:
            msg_id = int(payload[:payload.index(b"\0")])
            text = payload[payload.index(b"\0") + 1:]
        if msg_id > PROTOBUF_MSG_ID:
            decoder.processProtoBuf(text, msg_id - PROTOBUF_MSG_ID)
        else:
            decoder.interpret(comm.read_fields(text), msg_id)
        failed = False
    except Exception:
        failed = True
    return w.calls, failed


def ibframe_path(payload: bytes, version: int) -> tuple[list, bool]:
    w = Calls()
    conn = IBConnection(w, Dispatcher())
    conn.serverVersion_ = version
    conn.decoder = Decoder(w, version)
    conn._decode_batch([payload])
    return w.calls, conn.bad_frames == 1


INT = st.one_of(st.integers(-3, 2 ** 31).map(lambda i: str(i).encode()), st.sampled_from([b"", b"0", b"1"]))
MASK = st.integers(0, 7).map(lambda i: str(i).encode())
FLOAT = st.one_of(st.floats(allow_nan=False, allow_infinity=False).map(lambda f: repr(f).encode()),
                  st.sampled_from([b"", b"-1", b"0", b"Infinity", b"1.7976931348623157E308", b"189.98"]))
SIZE = st.one_of(st.integers(0, 10 ** 9).map(lambda i: str(i).encode()),
                 st.sampled_from([b"", b"0.0001", b"12.5", b"2147483647", b"9223372036854775807",
                                  b"-9223372036854775808", b"1.7976931348623157E308"]))
TEXT = st.sampled_from([b"", b"NYSE", b"ARCA", b"\xc3\xa9", b"\xff\xfe", b"a\\x"])
GARBAGE = st.sampled_from([b"abc", b"nan", b"1e400", b" 12", b"1.5", b"\xff", b"--1", b"0x10"])
TICK_TYPES = st.sampled_from([0, 1, 2, 3, 4, 5, 8, 9, 66, 67, 68, 69, 111]).map(lambda i: str(i).encode())
LAYOUTS = {1: [INT, INT, TICK_TYPES, FLOAT, SIZE, MASK], 2: [INT, INT, TICK_TYPES, SIZE],
           12: [INT, INT, INT, MASK, MASK, FLOAT, SIZE], 13: [INT, INT, INT, TEXT, MASK, MASK, FLOAT, SIZE, MASK]}
TICK_BY_TICK = {b"1": [FLOAT, SIZE, MASK, TEXT, TEXT], b"2": [FLOAT, SIZE, MASK, TEXT, TEXT],
                b"3": [FLOAT, FLOAT, SIZE, SIZE, MASK], b"4": [FLOAT], b"0": [], b"5": [FLOAT]}


@st.composite
def frames(draw):
    """Mostly well-formed frames of the hot messages; some with a garbled, missing or extra field."""
    msg_id = draw(st.sampled_from([1, 2, 12, 13, 99]))
    if msg_id == 99:
        kind = draw(st.sampled_from(sorted(TICK_BY_TICK)))
        fields = [draw(INT), kind, draw(INT)] + [draw(s) for s in TICK_BY_TICK[kind]]
    else:
        fields = [draw(s) for s in LAYOUTS[msg_id]]
    damage = draw(st.sampled_from(["none"] * 6 + ["garble", "short", "long"]))
    if damage == "garble" and fields:
        fields[draw(st.integers(0, len(fields) - 1))] = draw(GARBAGE)
    elif damage == "short":
        fields = fields[:draw(st.integers(0, max(0, len(fields) - 1)))]
    elif damage == "long":
        fields.append(draw(INT))
    terminated = draw(st.booleans()) or draw(st.booleans()) or damage != "none"
    body = b"".join(f + b"\0" for f in fields) if terminated else b"\0".join(fields)
    version = draw(st.sampled_from(VERSIONS))
    head = msg_id.to_bytes(4, "big") if version >= 201 else str(msg_id).encode() + b"\0"
    return head + body, version


@settings(max_examples=1500, deadline=None)
@given(frames())
def test_hot_messages_decode_exactly_as_ibapi_does(frame):
    payload, version = frame
    assert ibframe_path(payload, version) == ibapi_loop(payload, version)


def test_well_formed_frames_take_the_fast_path_with_ibapis_values():
    w = Calls()
    conn = IBConnection(w, Dispatcher())
    conn.serverVersion_ = 200
    conn.decoder = Decoder(w, 200)
    frames = [b"1\x006\x00101\x001\x00189.98\x00300\x007\x00",            # bid, then its size
              b"2\x006\x00101\x008\x00\x00",                              # volume unset
              b"99\x00102\x003\x001709650800\x0010.5\x0010.6\x00500\x00700\x002\x00",
              b"13\x001\x00103\x000\x00ARCA\x000\x001\x0010.4\x001.5\x001\x00"]
    conn._decode_batch(frames)
    names = [name for name, _ in w.calls]
    assert names == ["tickPrice", "tickSize", "tickSize", "tickByTickBidAsk", "updateMktDepthL2"]
    assert w.calls[1][1][2] == ("Decimal", repr(Decimal("300")))
    assert w.calls[2][1][2] == ("Decimal", repr(Decimal(2 ** 127 - 1)))      # UNSET_DECIMAL
    assert conn._fast is not None and conn.frames_received == 4 and conn.bad_frames == 0
