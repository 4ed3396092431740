"""A strategy reads quotes whose price and size belong together, and sees every trade print once.

A TICK_PRICE of BID, ASK or LAST carries a size: ibapi's Decoder turns it into tickPrice and then
tickSize. These tests check, against what ibapi's own Decoder delivers for the same frames, that
`on_quote` only ever sees states TWS actually sent (never a new price with the previous size), that
`on_trade` runs once per print with that print's price and size, and that this holds for every decode
path: ibframe's fast text decoder, ibapi's text Decoder and ibapi's protobuf Decoder.
"""
from __future__ import annotations

from decimal import Decimal

import pytest
from ibapi import comm
from ibapi.common import PROTOBUF_MSG_ID, TickAttrib
from ibapi.const import UNSET_DECIMAL
from ibapi.decoder import Decoder
from ibapi.message import IN
from ibapi.protobuf.TickPrice_pb2 import TickPrice
from ibapi.protobuf.TickSize_pb2 import TickSize
from ibapi.ticktype import TickTypeEnum as TT
from ibapi.wrapper import EWrapper

from ibframe.connection import IBConnection
from ibframe.contracts import Stock
from ibframe.dispatch import Dispatcher
from ibframe.engine import Engine
from ibframe.market import Quote
from ibframe.router import Request
from ibframe.strategy import Strategy
from conftest import wait_until

PRICE_SIZE = {TT.BID: TT.BID_SIZE, TT.ASK: TT.ASK_SIZE, TT.LAST: TT.LAST_SIZE,
              TT.DELAYED_BID: TT.DELAYED_BID_SIZE, TT.DELAYED_ASK: TT.DELAYED_ASK_SIZE,
              TT.DELAYED_LAST: TT.DELAYED_LAST_SIZE}
TOP = {TT.BID: "bid", TT.ASK: "ask", TT.LAST: "last", TT.BID_SIZE: "bid_size", TT.ASK_SIZE: "ask_size",
       TT.LAST_SIZE: "last_size", TT.DELAYED_BID: "bid", TT.DELAYED_ASK: "ask", TT.DELAYED_LAST: "last",
       TT.DELAYED_BID_SIZE: "bid_size", TT.DELAYED_ASK_SIZE: "ask_size", TT.DELAYED_LAST_SIZE: "last_size"}
FIELDS = ("bid", "bid_size", "ask", "ask_size", "last", "last_size")


class Watcher(Strategy):
    """Writes down what on_quote and on_trade saw, nothing else."""

    def on_start(self):
        self.quotes, self.prints = [], []
        if "instrument" in self.params:
            self.quote(self.params["instrument"])

    def on_quote(self, instrument, quote):
        self.quotes.append(tuple(getattr(quote, f) for f in FIELDS))

    def on_trade(self, instrument, quote):
        self.prints.append((quote.last, quote.last_size))


# --- what ibapi's own Decoder says about the same frames -------------------------------------------------

class TickCalls(EWrapper):
    def __init__(self):
        super().__init__()
        self.calls = []

    def tickPrice(self, reqId, tickType, price, attrib):
        self.calls.append(("price", reqId, tickType, price))

    def tickSize(self, reqId, tickType, size):
        self.calls.append(("size", reqId, tickType, size))

    def tickGeneric(self, reqId, tickType, value):
        self.calls.append(("generic", reqId, tickType, value))

    def tickString(self, reqId, tickType, value):
        self.calls.append(("string", reqId, tickType, value))


def ibapi_frames(frames: list[bytes], version: int, req_id: int) -> list[list[tuple]]:
    """Each frame through ibapi's Decoder as EClient.run does it (text, raw-id text from 201, protobuf above
    id 200): the tick callbacks of each frame for req_id."""
    out = []
    for payload in frames:
        w = TickCalls()
        decoder = Decoder(w, version)
        if version >= 201:
            msg_id, body = int.from_bytes(payload[:4], "big"), payload[4:]
            if msg_id > 200:
                decoder.processProtoBuf(body, msg_id - 200)
            else:
                decoder.interpret(comm.read_fields(body), msg_id)
        else:
            msg_id = int(payload[:payload.index(b"\0")])
            decoder.interpret(comm.read_fields(payload[payload.index(b"\0") + 1:]), msg_id)
        calls = [c for c in w.calls if c[1] == req_id]
        if calls:
            out.append(calls)
    return out


def _size(value) -> float | None:
    return None if value == UNSET_DECIMAL else float(value)


def _price(tick_type: int, value: float) -> float | None:
    if value == -1.0 or (value == 0.0 and TOP[tick_type] in ("bid", "ask")):
        return None
    return value


def expected(per_frame: list[list[tuple]]) -> tuple[list[tuple], list[tuple]]:
    """(the top-of-book states after each frame that changed one, the prints) by IB's rules:
    a LAST price with its size is a print; a LAST_SIZE frame alone is one too, unless it repeats the
    size of the LAST price frame just before it (TWS's copy)."""
    state = dict.fromkeys(FIELDS)
    states, prints, previous = [], [], None
    for calls in per_frame:
        for kind, _, tick_type, value in calls:
            if tick_type in TOP:
                state[TOP[tick_type]] = _size(value) if kind == "size" else _price(tick_type, value)
        top = tuple(state[f] for f in FIELDS)
        if not states or top != states[-1]:
            states.append(top)
        kinds = [(kind, tick_type) for kind, _, tick_type, _ in calls]
        if any(k == "price" and t in (TT.LAST, TT.DELAYED_LAST) for k, t in kinds):
            prints.append((state["last"], state["last_size"]))
            previous = ("price", state["last_size"])
        elif any(t in (TT.LAST_SIZE, TT.DELAYED_LAST_SIZE) for _, t in kinds):
            if previous != ("price", state["last_size"]) and state["last"] is not None:
                prints.append((state["last"], state["last_size"]))
            previous = ("size", state["last_size"])
    return states, prints


# --- over a real socket against the simulator ----------------------------------------------------------

class FrameTap:
    """Stands where a Recorder stands on the connection: sees every frame the engine receives, in order."""

    def __init__(self):
        self.frames: list[bytes] = []

    def inbound(self, frames):
        self.frames.extend(frames)

    def outbound(self, msg_id, msg):
        pass

    def outbound_proto(self, msg_id, msg):
        pass



def test_on_quote_and_on_trade_see_what_ibapi_delivered_for_each_frame(gateway, tmp_path):
    engine = Engine("127.0.0.1", gateway.port, client_id=871, state_dir=tmp_path)
    tap = engine.conn.recorder = FrameTap()
    engine.start()
    try:
        aapl = engine.qualify(Stock("AAPL"))
        s = Watcher(engine, "watch", {"instrument": "AAPL"}, {"AAPL": aapl})
        engine.on_dispatch(s._start)
        wait_until(lambda: len(s.prints) >= 25, what="25 trade prints")
        cut = {}

        def stop_here():                         # on the dispatch thread: every frame counted so far is decoded
            s.running = False
            cut["frames"] = engine.conn.frames_received
            cut["req_id"] = s._requests[0].req_id
        engine.on_dispatch(stop_here)
        quotes, prints = list(s.quotes), list(s.prints)
    finally:
        engine.stop()
    per_frame = ibapi_frames(tap.frames[:cut["frames"]], engine.conn.serverVersion_, cut["req_id"])
    states, want_prints = expected(per_frame)
    assert len(want_prints) >= 25
    assert prints == want_prints                 # every print, in order, with its own size, none twice
    assert quotes == states                      # every state on_quote saw is one TWS sent, none skipped
    sizes = {size for _, size in prints}
    assert len(sizes) > 1                        # the stream really varies sizes (else the check is weak)


# --- every decode path, TWS's own order of messages ----------------------------------------------------

def tick_price(req_id: int, tick_type: int, price: str, size: str) -> tuple[int, list[str]]:
    return IN.TICK_PRICE, ["6", str(req_id), str(tick_type), price, size, "1"]


def tick_size(req_id: int, tick_type: int, size: str) -> tuple[int, list[str]]:
    return IN.TICK_SIZE, ["6", str(req_id), str(tick_type), size]


def tws_stream(req_id: int) -> list[tuple[int, list[str]]]:
    """What TWS sends: each priced tick with its size, then the same size again as a TICK_SIZE."""
    r = req_id
    return [
        tick_price(r, TT.BID, "100.0", "300"), tick_size(r, TT.BID_SIZE, "300"),
        tick_price(r, TT.ASK, "100.05", "200"), tick_size(r, TT.ASK_SIZE, "200"),
        tick_price(r, TT.LAST, "100.02", "100"), tick_size(r, TT.LAST_SIZE, "100"), tick_size(r, TT.VOLUME, "1000"),
        tick_price(r, TT.LAST, "100.03", "500"), tick_size(r, TT.LAST_SIZE, "500"),
        tick_price(r, TT.LAST, "100.03", "500"), tick_size(r, TT.LAST_SIZE, "500"),   # same price and size again
        tick_size(r, TT.LAST_SIZE, "700"),                                            # a print: only the size changed
        tick_size(r, TT.LAST_SIZE, "700"),                                            # and another just like it
        tick_price(r, TT.BID, "100.01", "300"), tick_size(r, TT.BID_SIZE, "300"),
        tick_size(r, TT.BID_SIZE, "900"),
        tick_price(r, TT.DELAYED_LAST, "100.04", "200"), tick_size(r, TT.DELAYED_LAST_SIZE, "200"),
    ]


WANT_PRINTS = [(100.02, 100.0), (100.03, 500.0), (100.03, 500.0), (100.03, 700.0), (100.03, 700.0),
               (100.04, 200.0)]
WANT_QUOTES = [  # bid, bid_size, ask, ask_size, last, last_size
    (100.0, 300.0, None, None, None, None),
    (100.0, 300.0, 100.05, 200.0, None, None),
    (100.0, 300.0, 100.05, 200.0, 100.02, 100.0),
    (100.0, 300.0, 100.05, 200.0, 100.03, 500.0),
    (100.0, 300.0, 100.05, 200.0, 100.03, 700.0),
    (100.01, 300.0, 100.05, 200.0, 100.03, 700.0),
    (100.01, 900.0, 100.05, 200.0, 100.03, 700.0),
    (100.01, 900.0, 100.05, 200.0, 100.04, 200.0),
]


def _text(msg_id: int, fields: list[str]) -> bytes:
    return str(msg_id).encode() + b"\0" + b"".join(f.encode() + b"\0" for f in fields)


def _protobuf(msg_id: int, fields: list[str]) -> bytes:
    if msg_id == IN.TICK_PRICE:
        _, req_id, tick_type, price, size, mask = fields
        body = TickPrice(reqId=int(req_id), tickType=int(tick_type), price=float(price), size=size,
                         attrMask=int(mask)).SerializeToString()
    else:
        _, req_id, tick_type, size = fields
        body = TickSize(reqId=int(req_id), tickType=int(tick_type), size=size).SerializeToString()
    return (msg_id + PROTOBUF_MSG_ID).to_bytes(4, "big") + body


def feed(path: str, router, messages) -> None:
    """Deliver the messages to the router the way each decode path does."""
    if path == "ibapi-text":                          # ibapi's Decoder: replay's and the fallback's path
        decoder = Decoder(router, 200)
        for msg_id, fields in messages:
            decoder.interpret(tuple(f.encode() for f in fields), msg_id)
        return
    version, encode = (200, _text) if path == "fast-text" else (201, _protobuf)
    conn = IBConnection(router, Dispatcher())
    conn.serverVersion_ = version
    conn.decoder = Decoder(router, version)
    conn._decode_batch([encode(msg_id, fields) for msg_id, fields in messages])
    assert conn.bad_frames == 0


def watched_quote(tmp_path, req_id: int = 1000000042):
    """An engine (not connected) whose router knows one market-data request a Watcher listens to."""
    engine = Engine("127.0.0.1", 0, state_dir=tmp_path)
    contract = Stock("XYZ")
    req = engine.router.register(Request(req_id, "mktdata", contract, "XYZ", quote=Quote("XYZ")))
    s = Watcher(engine, "watch", {}, {"XYZ": contract})
    s.on_start()
    s._track(req, "XYZ", s._quote_listener("XYZ"))
    s.running = True
    return engine.router, req, s


@pytest.mark.parametrize("path", ["fast-text", "ibapi-text", "ibapi-protobuf"])
def test_each_decode_path_gives_one_on_quote_per_update_with_its_own_size(path, tmp_path):
    router, req, s = watched_quote(tmp_path)
    stream = tws_stream(req.req_id)
    feed(path, router, stream)
    assert s.prints == WANT_PRINTS
    assert s.quotes == WANT_QUOTES
    assert req.quote.prints == len(WANT_PRINTS)
    assert req.quote.updates == len(stream) + sum(1 for msg_id, _ in stream if msg_id == IN.TICK_PRICE)
    per_frame = ibapi_frames([_text(m, f) for m, f in stream], 200, req.req_id)
    assert expected(per_frame) == (WANT_QUOTES, WANT_PRINTS)     # the hand-written answer is IB's rule


def test_router_pairs_tick_price_with_its_tick_size_in_twss_order(tmp_path):
    router, req, s = watched_quote(tmp_path)
    calls = []
    req.listeners.append(lambda r: calls.append((r.quote.bid, r.quote.bid_size, r.quote.last, r.quote.last_size)))
    attrib = TickAttrib()
    for price, size in ((10.0, Decimal(100)), (10.5, Decimal(400)), (10.5, Decimal(900))):
        before = len(calls)
        router.tickPrice(req.req_id, TT.BID, price, attrib)
        assert len(calls) == before                                  # held until its size arrives
        router.tickSize(req.req_id, TT.BID_SIZE, size)
        assert len(calls) == before + 1 and calls[-1][:2] == (price, float(size))
    router.tickPrice(req.req_id, TT.LAST, 10.25, attrib)
    router.tickSize(req.req_id, TT.LAST_SIZE, Decimal(300))
    router.tickSize(req.req_id, TT.LAST_SIZE, Decimal(300))          # TWS's copy: no second print
    assert calls[-2:] == [(10.5, 900.0, 10.25, 300.0)] * 2
    assert s.prints == [(10.25, 300.0)]
    assert s.quotes[-1] == (10.5, 900.0, None, None, 10.25, 300.0)
    assert len(s.quotes) == 4


def test_a_price_without_its_size_is_applied_by_the_next_tick(tmp_path):
    router, req, s = watched_quote(tmp_path)
    router.tickPrice(req.req_id, TT.ASK, 20.0, TickAttrib())         # only a direct caller does this
    router.tickGeneric(req.req_id, TT.HALTED, 0.0)
    assert req.quote.ask == 20.0 and req.quote.halted is False
    assert s.quotes == [(None, None, 20.0, None, None, None)]
    router.tickPrice(req.req_id, TT.BID, 19.0, TickAttrib())
    router.tickPrice(req.req_id, TT.HIGH, 21.0, TickAttrib())         # a price with no size releases it too
    assert req.quote.bid == 19.0 and req.quote.high == 21.0
    assert s.quotes[-1] == (19.0, None, 20.0, None, None, None)


def test_a_subscriber_joining_late_gets_no_print_that_happened_before(tmp_path):
    router, req, s = watched_quote(tmp_path)
    r = req.req_id
    feed("fast-text", router, [tick_price(r, TT.LAST, "5.0", "100"), tick_size(r, TT.LAST_SIZE, "100")])
    late = Watcher(s.engine, "late", {}, {"XYZ": Stock("XYZ")})
    late.on_start()
    late.running = True
    req.listeners.append(late._quote_listener("XYZ"))
    feed("fast-text", router, [tick_price(req.req_id, TT.BID, "4.9", "100")])
    assert late.prints == [] and late.quotes == [(4.9, 100.0, None, None, 5.0, 100.0)]
    feed("fast-text", router, [tick_price(req.req_id, TT.LAST, "5.0", "100")])
    assert late.prints == [(5.0, 100.0)] and s.prints == [(5.0, 100.0)] * 2
