"""The connection's fast decoding of PROTOBUF market data has exactly the effect of ibapi's processProtoBuf.

Each generated batch of frames (4-byte id = message id + 200, a body built with ibapi's own *_pb2 classes)
goes (a) frame by frame through ibapi's `Decoder.processProtoBuf`, as EClient.run hands it a protobuf
frame, and (b) as one batch through IBConnection._decode_batch, which decodes TICK_PRICE, TICK_SIZE,
TICK_BY_TICK, MARKET_DEPTH and MARKET_DEPTH_L2 itself (ibframe/decoding_proto.py). Both must make the same
wrapper calls, with equal arguments of the same types, in the same order, and fail on the same frames with
the same exception. Bodies have fields present and absent, NaN / inf / negative / huge prices, sizes that
Decimal cannot read, unicode and empty strings, every tick-by-tick type (and mismatched ones), depth
operations 0/1/2 with and without isSmartDepth; some are random bytes, truncated, bit-flipped or carry
invalid UTF-8. Each batch is decoded once for a wrapper without raw protobuf callbacks (the fast path reuses
its message objects) and once for one that records them (the fast path makes them, with a fresh object).
"""
from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibapi.common import PROTOBUF_MSG_ID
from ibapi.const import NO_VALID_ID, UNSET_DECIMAL, UNSET_DOUBLE, UNSET_INTEGER
from ibapi.decoder import Decoder
from ibapi.message import IN
from ibapi.protobuf.MarketDepthL2_pb2 import MarketDepthL2
from ibapi.protobuf.MarketDepth_pb2 import MarketDepth
from ibapi.protobuf.TickByTickData_pb2 import TickByTickData
from ibapi.protobuf.TickPrice_pb2 import TickPrice
from ibapi.protobuf.TickSize_pb2 import TickSize
from ibapi.wrapper import EWrapper

from ibframe.connection import IBConnection
from ibframe.decoding_proto import KINDS, ProtoFastDecoder, raw_callback
from ibframe.dispatch import Dispatcher

VERSION = 226
CALLBACKS = ("tickPrice", "tickSize", "tickByTickAllLast", "tickByTickBidAsk", "tickByTickMidPoint",
             "updateMktDepth", "updateMktDepthL2", "error")
RAW_CALLBACKS = tuple(name for _, name in KINDS.values())
CLASSES = {IN.TICK_PRICE: TickPrice, IN.TICK_SIZE: TickSize, IN.TICK_BY_TICK: TickByTickData,
           IN.MARKET_DEPTH: MarketDepth, IN.MARKET_DEPTH_L2: MarketDepthL2}


def _plain(value):
    """A comparable form of a callback argument: attribute objects by their class and fields (vars), protobuf
    messages by their class and bytes, everything else by its type and repr (so NaN equals NaN)."""
    if hasattr(value, "SerializeToString"):
        return (type(value).__name__, value.SerializeToString(deterministic=True))
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return (type(value).__name__, sorted(vars(value).items()))
    return (type(value).__name__, repr(value))


class Calls(EWrapper):
    """Records the callbacks; its raw protobuf callbacks are EWrapper's own (the fast path may skip them)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def bad_message(self, payload, exc):                   # ibframe's report of a frame it could not use
        self.calls.append(("FAILED", type(exc).__name__))


class RawCalls(Calls):
    """Also records the raw protobuf callbacks (tickPriceProtoBuf(message), …)."""


def _recorder(name):
    def record(self, *args):
        if name == "error":
            args = args[:1] + args[2:]               # drop errorTime (the wall clock)
        self.calls.append((name, [_plain(a) for a in args]))
    return record


for _name in CALLBACKS:
    setattr(Calls, _name, _recorder(_name))
for _name in RAW_CALLBACKS:
    setattr(RawCalls, _name, _recorder(_name))


def frame(msg_id: int, body: bytes) -> bytes:
    return (msg_id + PROTOBUF_MSG_ID).to_bytes(4, "big") + body


def ibapi_loop(payloads: list[bytes], wrapper_class=Calls) -> list:
    """What EClient.run does with each protobuf frame: processProtoBuf(body, id - 200); an exception ends it."""
    w = wrapper_class()
    decoder = Decoder(w, VERSION)
    for payload in payloads:
        try:
            decoder.processProtoBuf(payload[4:], int.from_bytes(payload[:4], "big") - PROTOBUF_MSG_ID)
        except Exception as exc:
            w.calls.append(("FAILED", type(exc).__name__))
    return w.calls


def ibframe_path(payloads: list[bytes], wrapper_class=Calls) -> list:
    w = wrapper_class()
    conn = IBConnection(w, Dispatcher())
    conn.serverVersion_ = VERSION
    conn.decoder = Decoder(w, VERSION)
    conn._decode_batch(list(payloads))
    assert conn.frames_received == len(payloads)
    assert conn.bad_frames == sum(1 for c in w.calls if c[0] == "FAILED")
    return w.calls


def build(cls, values: dict):
    """A protobuf message with exactly the fields in `values` set (a dict value: a sub-message, set even if empty)."""
    message = cls()
    _fill(message, values)
    return message


def _fill(message, values: dict) -> None:
    for key, value in values.items():
        if isinstance(value, dict):
            sub = getattr(message, key)
            sub.SetInParent()
            _fill(sub, value)
        else:
            setattr(message, key, value)


# --- generated bodies ---------------------------------------------------------------------------------------

INT32 = st.one_of(st.sampled_from([0, 1, -1, 7, 2 ** 31 - 1, -2 ** 31]), st.integers(-2 ** 31, 2 ** 31 - 1))
INT64 = st.one_of(st.sampled_from([0, 1709650800, -1, 2 ** 63 - 1, -2 ** 63]), st.integers(-2 ** 63, 2 ** 63 - 1))
TICK_TYPE = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 8, 9, 14, 66, 67, 68, 69, 111]), INT32)
DOUBLE = st.one_of(st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 1.7976931348623157e308, -1.0,
                                    -189.98, 189.98, 5e-324, 1e300]), st.floats())
SIZE = st.one_of(st.sampled_from(["", "0", "100", "12.5", "0.0001", "-1", "-100", "nan", "NaN", "Infinity", "-inf",
                                  "sNaN", "1e400", "9223372036854775807", "2147483647", "1.7976931348623157E308",
                                  "170141183460469231731687303715884105727", "abc", " 12", "1_000", "é", "0x10"]),
                 st.integers(0, 10 ** 30).map(str), st.text(max_size=6))
TEXT = st.one_of(st.sampled_from(["", "NYSE", "ARCA", "NSDQ", "é", "Bourse de Montréal", "東京証券取引所", "😀",
                                  "a\x00b", "ISLAND "]), st.text(max_size=10))
MASK = st.one_of(st.integers(0, 8), INT32)
OPERATION = st.one_of(st.sampled_from([0, 1, 2]), INT32)
SIDE = st.one_of(st.sampled_from([0, 1]), INT32)


def optional(**fields):
    """A dict with any subset of the fields (each drawn from its strategy)."""
    return st.fixed_dictionaries({}, optional=fields)


DEPTH_DATA = optional(position=st.one_of(st.integers(0, 20), INT32), operation=OPERATION, side=SIDE, price=DOUBLE,
                      size=SIZE, marketMaker=TEXT, isSmartDepth=st.booleans())
TICK_LAST = optional(time=INT64, tickAttribLast=optional(pastLimit=st.booleans(), unreported=st.booleans()),
                     price=DOUBLE, size=SIZE, exchange=TEXT, specialConditions=TEXT)
TICK_BID_ASK = optional(time=INT64, tickAttribBidAsk=optional(bidPastLow=st.booleans(), askPastHigh=st.booleans()),
                        priceBid=DOUBLE, priceAsk=DOUBLE, sizeBid=SIZE, sizeAsk=SIZE)
TICK_MID = optional(time=INT64, price=DOUBLE, size=SIZE)
ONEOF = {1: "historicalTickLast", 2: "historicalTickLast", 3: "historicalTickBidAsk", 4: "historicalTickMidPoint"}
ONEOF_VALUES = {"historicalTickLast": TICK_LAST, "historicalTickBidAsk": TICK_BID_ASK,
                "historicalTickMidPoint": TICK_MID}


@st.composite
def tick_by_tick(draw) -> dict:
    """Mostly a tickType with its own tick (1 Last, 2 AllLast, 3 BidAsk, 4 MidPoint); sometimes a mismatch, none,
    or tickType 0 / absent / unknown."""
    kind = draw(st.sampled_from([1, 2, 3, 4] * 3 + [0, 5, -1, None]))
    values = draw(optional(reqId=INT32))
    if kind is not None:
        values["tickType"] = kind
    field = ONEOF.get(kind, "historicalTickLast")
    if draw(st.integers(0, 9)) == 0:
        field = draw(st.sampled_from(sorted(ONEOF_VALUES) + [None]))
    if field is not None:
        values[field] = draw(ONEOF_VALUES[field])
    return values


BODIES = {IN.TICK_PRICE: optional(reqId=INT32, tickType=TICK_TYPE, price=DOUBLE, size=SIZE, attrMask=MASK),
          IN.TICK_SIZE: optional(reqId=INT32, tickType=TICK_TYPE, size=SIZE),
          IN.TICK_BY_TICK: tick_by_tick(),
          IN.MARKET_DEPTH: st.one_of(optional(reqId=INT32), optional(reqId=INT32, marketDepthData=DEPTH_DATA)),
          IN.MARKET_DEPTH_L2: st.one_of(optional(reqId=INT32), optional(reqId=INT32, marketDepthData=DEPTH_DATA))}
# a field of each message carrying invalid UTF-8 in a string (size, exchange, marketMaker)
BAD_UTF8 = {IN.TICK_PRICE: b"\x22\x01\xff", IN.TICK_SIZE: b"\x1a\x01\xff", IN.TICK_BY_TICK: b"\x1a\x03\x2a\x01\xff",
            IN.MARKET_DEPTH: b"\x12\x03\x32\x01\xff", IN.MARKET_DEPTH_L2: b"\x12\x03\x32\x01\xff"}


@st.composite
def frames(draw) -> bytes:
    """Mostly well-formed bodies; some damaged: random bytes, truncated, a flipped byte, junk or bad UTF-8 added."""
    msg_id = draw(st.sampled_from(sorted(BODIES)))
    body = build(CLASSES[msg_id], draw(BODIES[msg_id])).SerializeToString()
    damage = draw(st.sampled_from(["none"] * 8 + ["random", "truncate", "flip", "junk", "utf8"]))
    if damage == "random":
        body = draw(st.binary(max_size=40))
    elif damage == "truncate" and body:
        body = body[:draw(st.integers(0, len(body) - 1))]
    elif damage == "flip" and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ draw(st.integers(1, 255))]) + body[at + 1:]
    elif damage == "junk":
        body += draw(st.binary(min_size=1, max_size=8))
    elif damage == "utf8":
        body += BAD_UTF8[msg_id]
    return frame(msg_id, body)


@settings(max_examples=200, deadline=None)
@given(st.lists(frames(), min_size=1, max_size=4))
def test_protobuf_market_data_decodes_exactly_as_ibapi_does(batch):
    """One batch through one connection: the reused message objects carry nothing from frame to frame."""
    assert ibframe_path(batch) == ibapi_loop(batch)


@settings(max_examples=100, deadline=None)
@given(st.lists(frames(), min_size=1, max_size=4))
def test_with_raw_protobuf_callbacks_the_same_calls_in_the_same_order(batch):
    assert ibframe_path(batch, RawCalls) == ibapi_loop(batch, RawCalls)


# --- chosen cases, each named -----------------------------------------------------------------------------

NAN, INF = math.nan, math.inf
CASES = {
    "bid with size": (IN.TICK_PRICE, dict(reqId=7, tickType=1, price=189.98, size="300", attrMask=0)),
    "ask, all flags": (IN.TICK_PRICE, dict(reqId=7, tickType=2, price=190.01, size="12.5", attrMask=7)),
    "last, no size": (IN.TICK_PRICE, dict(reqId=7, tickType=4, price=190.0)),
    "delayed bid": (IN.TICK_PRICE, dict(reqId=7, tickType=66, price=1.5, size="1", attrMask=2)),
    "high, no size tick": (IN.TICK_PRICE, dict(reqId=7, tickType=6, price=191.0, size="5")),
    "all absent": (IN.TICK_PRICE, dict()),
    "zeros present": (IN.TICK_PRICE, dict(reqId=0, tickType=0, price=0.0, size="0", attrMask=0)),
    "nan price": (IN.TICK_PRICE, dict(reqId=7, tickType=1, price=NAN, size="100")),
    "inf price": (IN.TICK_PRICE, dict(reqId=7, tickType=2, price=INF, size="100")),
    "-inf price": (IN.TICK_PRICE, dict(reqId=7, tickType=2, price=-INF, size="100")),
    "negative price": (IN.TICK_PRICE, dict(reqId=7, tickType=1, price=-1.0, size="-5")),
    "huge price and size": (IN.TICK_PRICE, dict(reqId=7, tickType=1, price=1.7976931348623157e308,
                                                size="1.7976931348623157E308")),
    "-0.0 price": (IN.TICK_PRICE, dict(reqId=7, tickType=1, price=-0.0, size="1")),
    "nan size": (IN.TICK_PRICE, dict(reqId=7, tickType=1, price=1.0, size="NaN")),
    "empty size": (IN.TICK_PRICE, dict(reqId=7, tickType=1, price=1.0, size="")),
    "unreadable size": (IN.TICK_PRICE, dict(reqId=7, tickType=1, price=1.0, size="abc")),
    "size": (IN.TICK_SIZE, dict(reqId=7, tickType=0, size="400")),
    "volume, huge": (IN.TICK_SIZE, dict(reqId=7, tickType=8, size="99999999999999999999999999")),
    "size NOT_SET": (IN.TICK_SIZE, dict(reqId=7, tickType=111, size="1")),
    "size absent": (IN.TICK_SIZE, dict(reqId=7)),
    "size unreadable": (IN.TICK_SIZE, dict(reqId=7, tickType=3, size="1.2.3")),
    "tbt last": (IN.TICK_BY_TICK, dict(reqId=9, tickType=1, historicalTickLast=dict(
        time=1709650800, price=50.25, size="100", exchange="NYSE", specialConditions="",
        tickAttribLast=dict(pastLimit=True)))),
    "tbt all last, unicode": (IN.TICK_BY_TICK, dict(reqId=9, tickType=2, historicalTickLast=dict(
        time=1709650801, price=NAN, size="1e400", exchange="Bourse de Montréal", specialConditions="東京 😀",
        tickAttribLast=dict(pastLimit=False, unreported=True)))),
    "tbt last, empty": (IN.TICK_BY_TICK, dict(reqId=9, tickType=2, historicalTickLast=dict())),
    "tbt bid/ask": (IN.TICK_BY_TICK, dict(reqId=9, tickType=3, historicalTickBidAsk=dict(
        time=1709650802, priceBid=10.5, priceAsk=10.6, sizeBid="500", sizeAsk="700",
        tickAttribBidAsk=dict(bidPastLow=True, askPastHigh=True)))),
    "tbt bid/ask inf, no sizes": (IN.TICK_BY_TICK, dict(reqId=9, tickType=3, historicalTickBidAsk=dict(
        priceBid=-INF, priceAsk=INF))),
    "tbt midpoint": (IN.TICK_BY_TICK, dict(reqId=9, tickType=4, historicalTickMidPoint=dict(time=5, price=10.55))),
    "tbt midpoint, bad unused size": (IN.TICK_BY_TICK, dict(reqId=9, tickType=4,
                                                            historicalTickMidPoint=dict(price=1.0, size="x"))),
    "tbt mismatch": (IN.TICK_BY_TICK, dict(reqId=9, tickType=3, historicalTickLast=dict(price=1.0))),
    "tbt type 0": (IN.TICK_BY_TICK, dict(reqId=9, tickType=0, historicalTickMidPoint=dict(price=1.0))),
    "tbt no tick": (IN.TICK_BY_TICK, dict(reqId=9, tickType=1)),
    "depth insert": (IN.MARKET_DEPTH, dict(reqId=3, marketDepthData=dict(position=0, operation=0, side=1,
                                                                         price=10.4, size="100"))),
    "depth update": (IN.MARKET_DEPTH, dict(reqId=3, marketDepthData=dict(position=2, operation=1, side=0,
                                                                         price=10.6, size="1.5"))),
    "depth delete": (IN.MARKET_DEPTH, dict(reqId=3, marketDepthData=dict(position=2, operation=2, side=0))),
    "depth, empty data": (IN.MARKET_DEPTH, dict(reqId=3, marketDepthData=dict())),
    "depth, no data": (IN.MARKET_DEPTH, dict(reqId=3)),
    "L2 insert smart": (IN.MARKET_DEPTH_L2, dict(reqId=4, marketDepthData=dict(
        position=0, marketMaker="ARCA", operation=0, side=1, price=10.4, size="1.5", isSmartDepth=True))),
    "L2 update not smart": (IN.MARKET_DEPTH_L2, dict(reqId=4, marketDepthData=dict(
        position=1, marketMaker="NSDQ", operation=1, side=0, price=10.7, size="300", isSmartDepth=False))),
    "L2 delete, unicode maker": (IN.MARKET_DEPTH_L2, dict(reqId=4, marketDepthData=dict(
        position=3, marketMaker="東京証券取引所", operation=2, side=1, price=NAN))),
    "L2 empty maker, huge": (IN.MARKET_DEPTH_L2, dict(reqId=4, marketDepthData=dict(
        marketMaker="", price=-1e308, size="170141183460469231731687303715884105727"))),
    "L2, empty data": (IN.MARKET_DEPTH_L2, dict(reqId=4, marketDepthData=dict())),
}


@pytest.mark.parametrize("wrapper_class", [Calls, RawCalls], ids=["no raw callback", "raw callback"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_chosen_messages_decode_exactly_as_ibapi_does(name, wrapper_class):
    msg_id, values = CASES[name]
    payload = frame(msg_id, build(CLASSES[msg_id], values).SerializeToString())
    assert ibframe_path([payload], wrapper_class) == ibapi_loop([payload], wrapper_class)


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"\x08", b"\x0a\x05ab", b"\x12\x03\x32\x01\xff", b"\x07"])
@pytest.mark.parametrize("msg_id", sorted(CLASSES))
def test_garbage_fails_as_in_ibapi_and_is_counted(msg_id, body):
    for wrapper_class in (Calls, RawCalls):
        ours = ibframe_path([frame(msg_id, body)], wrapper_class)
        assert ours == ibapi_loop([frame(msg_id, body)], wrapper_class)


def _names(calls):
    return [name for name, _ in calls]


def test_values_and_types_as_ibapi_gives_them():
    calls = ibframe_path([frame(IN.TICK_PRICE, build(TickPrice, dict(reqId=7, tickType=1, price=189.98)).
                                SerializeToString()),
                          frame(IN.TICK_PRICE, TickPrice().SerializeToString())])
    # a BID without a size is still followed by its tickSize, of UNSET_DECIMAL (as the text path does)
    assert _names(calls) == ["tickPrice", "tickSize", "tickPrice"]
    assert calls[1][1] == [_plain(7), _plain(0), _plain(UNSET_DECIMAL)]
    # all absent: NO_VALID_ID, UNSET_INTEGER tick type, UNSET_DOUBLE price, mask UNSET_INTEGER: every flag set
    req, tick, price, attrib = calls[2][1]
    assert (req, tick, price) == (_plain(NO_VALID_ID), _plain(UNSET_INTEGER), _plain(UNSET_DOUBLE))
    assert attrib == ("TickAttrib", [("canAutoExecute", True), ("pastLimit", True), ("preOpen", True)])
    depth = ibframe_path([frame(IN.MARKET_DEPTH_L2, build(MarketDepthL2, dict(reqId=4, marketDepthData=dict(
        operation=1, side=1, price=10.5, size="300", isSmartDepth=True))).SerializeToString())])
    assert depth == [("updateMktDepthL2", [_plain(4), _plain(0), _plain(""), _plain(1), _plain(1), _plain(10.5),
                                           _plain(Decimal("300")), _plain(True)])]


def test_well_formed_frames_never_reach_ibapis_decoder():
    """Every readable chosen case is delivered by the fast path: ibapi's processProtoBuf is never called."""
    w = Calls()
    conn = IBConnection(w, Dispatcher())
    conn.serverVersion_ = VERSION
    conn.decoder = Decoder(w, VERSION)
    used = []
    conn.decoder.processProtoBuf = lambda body, msg_id: used.append(msg_id)
    readable = [frame(msg_id, build(CLASSES[msg_id], values).SerializeToString())
                for name, (msg_id, values) in sorted(CASES.items())
                if not any(word in name for word in ("unreadable", "bad unused", "empty size"))]
    conn._decode_batch(readable)
    assert used == [] and conn.bad_frames == 0 and conn.frames_received == len(readable)
    assert isinstance(conn._fast_proto, ProtoFastDecoder) and len(w.calls) >= len(readable) - 6


def test_a_frame_given_back_made_no_call():
    w = Calls()
    fast = ProtoFastDecoder(Decoder(w, VERSION))
    assert fast.decode(IN.TICK_PRICE, b"\xff\xff") is False                       # does not parse
    assert fast.decode(IN.TICK_PRICE, build(TickPrice, dict(tickType=1, size="abc")).SerializeToString()) is False
    assert fast.decode(IN.ERR_MSG, b"") is False                                   # not a hot message
    assert w.calls == []


def test_the_raw_callback_is_skipped_only_when_it_is_ewrappers_own():
    plain, raw = Calls(), RawCalls()
    assert all(raw_callback(plain, name) is None for name in RAW_CALLBACKS)
    assert all(raw_callback(raw, name) is not None for name in RAW_CALLBACKS)
    seen = []
    plain.tickPriceProtoBuf = seen.append                   # an instance attribute counts too
    assert raw_callback(plain, "tickPriceProtoBuf") == seen.append
    fast = ProtoFastDecoder(Decoder(plain, VERSION))
    body = build(TickPrice, dict(reqId=1, tickType=1, price=2.0, size="3")).SerializeToString()
    assert fast.decode(IN.TICK_PRICE, body) and fast.decode(IN.TICK_PRICE, body)
    assert len(seen) == 2 and seen[0] is not seen[1]        # a fresh message object each time, never the reused one
    assert seen[0].price == 2.0 and seen[1].size == "3"
