"""Mutated frames into the real client: state objects stay sound, every bad frame is counted (issue 12, item 6).

An ibframe Engine connects over loopback to a tiny TWS-like server of this file (it answers the API handshake
as TWS 176 does, then streams whatever the test gives it). The frames are the simulator's own (recorded from
a SimGateway through the connection's recorder tap), hand-made market-data frames the simulator does not
send for a stock (option greeks, 5-s bars, generic and string ticks) and, when present, the recorded
real-TWS fixture; request ids are rewritten to the engine's subscriptions. Most are mutated: bit flips,
truncation, dropped / duplicated / swapped fields, NaN / inf / -1 / huge / non-numeric values, unknown
message ids, non-numeric request ids and non-finite prices.

After every frame (the connection's after_frame observer, on the dispatch thread) every state object's
check_invariants() is empty; after every batch, checked again from outside, the reader and dispatch threads are
alive, a valid frame sent after the garbage is delivered, bad_frames grew by at least the frames that must
be refused (unknown ids, non-numeric ids, non-finite prices) and at most the frames mutated, exactly by the
must-refuse count in batches made only of those, and the reasons add up to the total. The bad-frame log
stays bounded however many frames are refused.

Size: fuzz_scale.cases(20000, 1000000) frames (the suite / `make fuzz`).
"""
from __future__ import annotations

import json
import logging
import random
import socket
import struct
import threading
import time

import pytest
from ibapi.decoder import Decoder

from ibframe.connection import BAD_FRAME_FULL_LINES, BAD_FRAME_REASONS
from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.market import Bars, OptionGreeks, OrderBook, Quote, TickRing
from ibframe.router import Request
from conftest import FIXTURE_FRAMES, shared_fixture, wait_until
from fuzz_scale import cases

VERSION = 176
TOTAL = cases(20000, 1000000)
BATCH = 500

# where the request id sits (index in the fields, the message id being field 0), per message id at 176
RID_AT = {1: 2, 2: 2, 45: 2, 46: 2, 12: 2, 13: 2, 21: 1, 99: 1, 17: 1, 90: 1, 50: 2, 81: 1, 58: 2, 57: 2}
# message id -> the subscription kind its request id names
KIND_OF = {1: "quote", 2: "quote", 45: "quote", 46: "quote", 21: "quote", 81: "quote", 58: "quote", 57: "quote",
           12: "book", 13: "book", 99: "ticks", 17: "bars", 90: "bars", 50: "rtbars"}
UNKNOWN_IDS = [i for i in range(1, 200) if i not in Decoder.msgId2handleInfo][:40] + [0, 150, 199, 777777, -4]
HOT_IDS = (1, 2, 12, 13, 99)
VALUES = [b"nan", b"NaN", b"inf", b"-inf", b"Infinity", b"-1", b"-2", b"0", b"1e308", b"1.7976931348623157E308",
          b"9223372036854775807", b"99999999999999999999999", b"abc", b"", b"-", b"1e999", b"\xff\xfe", b"0x10",
          b"sNaN", b"2147483647", b" 12", b"1_000"]
NON_FINITE = [b"nan", b"inf", b"-inf", b"1e999", b"-1e999", b"NaN"]


# --- a raw TWS-like server ------------------------------------------------------------------------------------

class RawGateway:
    """Accepts one client, answers the handshake as TWS `VERSION`, sends managedAccounts and nextValidId, reads
    (and ignores) everything the client sends, and writes whatever frames the test hands it."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sock: socket.socket | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._serve, name="raw-tws", daemon=True).start()

    def _serve(self) -> None:
        sock, _ = self.listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b""
        while len(data) < 8 or len(data) < 8 + struct.unpack("!I", data[4:8])[0]:
            data += sock.recv(4096)
        assert data.startswith(b"API\0")
        sock.sendall(frame([str(VERSION).encode(), b"20261118 11:30:00 US/Eastern"])
                     + frame([b"15", b"1", b"DU1234567"]) + frame([b"9", b"1", b"1"]))
        self.sock = sock
        self.ready.set()
        while True:                                          # the client's requests: read and ignored
            try:
                if not sock.recv(65536):
                    return
            except OSError:
                return

    def send(self, payloads: list[bytes]) -> None:
        self.sock.sendall(b"".join(struct.pack("!I", len(p)) + p for p in payloads))

    def close(self) -> None:
        for s in (self.sock, self.listener):
            if s is not None:
                s.close()


def frame(fields: list[bytes]) -> bytes:
    payload = b"".join(f + b"\0" for f in fields)
    return struct.pack("!I", len(payload)) + payload


# --- the frames ---------------------------------------------------------------------------------------------

class Tap:
    """A recorder for the connection (its `recorder` slot): keeps every inbound frame."""

    def __init__(self):
        self.frames: list[bytes] = []

    def inbound(self, frames: list[bytes]) -> None:
        self.frames.extend(frames)

    def outbound(self, msg_id, text) -> None:
        pass

    def outbound_proto(self, msg_id, data) -> None:
        pass


@pytest.fixture(scope="module")
def sim_frames(tmp_path_factory):
    """The simulator's own frames at VERSION for a stock's quote, depth, ticks and bars: (fields, kind)."""
    from ibframe.sim import SimConfig, SimGateway
    from conftest import MIDDAY
    gw = SimGateway(SimConfig(port=0, seed=11, step_seconds=0.05, start_time=MIDDAY,
                              max_server_version=VERSION)).start()
    engine = Engine("127.0.0.1", gw.port, client_id=7300, state_dir=tmp_path_factory.mktemp("tap")).start()
    tap = Tap()
    engine.conn.recorder = tap
    try:
        aapl = engine.qualify(Stock("AAPL"))
        kinds = {engine.market_data(aapl).req_id: "quote", engine.depth(aapl, rows=10).req_id: "book",
                 engine.tick_by_tick(aapl, "BidAsk").req_id: "ticks", engine.tick_by_tick(aapl, "AllLast").req_id:
                 "ticks", engine.bars(aapl, "1 min", "1800 S").req_id: "bars"}
        wait_until(lambda: len(tap.frames) > 600, timeout=20, what="the simulator's frames")
    finally:
        engine.conn.recorder = None
        engine.stop()
        gw.stop()
    out = []
    for payload in tap.frames:
        fields = payload.split(b"\0")[:-1]
        msg_id = int(fields[0])
        at = RID_AT.get(msg_id)
        kind = kinds.get(int(fields[at])) if at is not None and len(fields) > at else None
        out.append((fields, kind))
    return out


def handmade_frames() -> list[tuple[list[bytes], str | None]]:
    """Market data the simulator does not send for a stock, in TWS 176's layouts."""
    b = lambda *xs: [str(x).encode() for x in xs]          # noqa: E731
    return [
        (b(21, 0, 13, 1, 0.25, 0.5, 3.2, 0.0, 0.05, 0.1, -0.02, 190.0), "quote"),      # model greeks
        (b(21, 0, 10, 0, -1, -2, -1, -1, -2, -2, -2, -1), "quote"),                     # "not computed" sentinels
        (b(50, 3, 0, 1795018200, 190.0, 190.5, 189.5, 190.2, 1200, 190.1, 15), "rtbars"),
        (b(50, 3, 0, 1795018205, 190.2, 190.9, 190.0, 190.4, 800, 190.3, 9), "rtbars"),
        (b(45, 6, 0, 46, 3.0), "quote"),                                                # shortable
        (b(46, 6, 0, 48, "190.5;100;1795018200000;5000;190.2;true"), "quote"),          # RT volume
        (b(46, 6, 0, 45, "1795018200"), "quote"),                                       # last timestamp
        (b(17, 0, "20261118 11:00:00", "20261118 11:30:00", 2,
           "20261118 11:28:00 US/Eastern", 190, 191, 189, 190.5, 1000, 190.2, 12,
           "20261118 11:29:00 US/Eastern", 190.5, 191.5, 190, 191, 900, 190.9, 10), "bars"),
        (b(90, 0, 12, "20261118 11:30:00 US/Eastern", 191, 191.2, 191.5, 190.8, 190.9, 300), "bars"),
    ]


def fixture_frames() -> list[tuple[list[bytes], str | None]]:
    """The recorded real-TWS frames (v176); tick-by-tick ones go to the ticks subscription."""
    out = []
    for line in shared_fixture(FIXTURE_FRAMES).read_text().splitlines():
        fields = [f.encode() for f in json.loads(line)["fields"]]
        out.append((fields, KIND_OF.get(int(fields[0])) if int(fields[0]) == 99 else None))
    return out


# --- mutations ----------------------------------------------------------------------------------------------

def with_rid(fields: list[bytes], kind: str | None, rids: dict[str, int]) -> list[bytes]:
    fields = list(fields)
    at = RID_AT.get(int(fields[0]))
    if kind is not None and at is not None and len(fields) > at:
        fields[at] = str(rids[kind]).encode()
    return fields


def encode(fields: list[bytes]) -> bytes:
    return b"".join(f + b"\0" for f in fields)


def must_refuse(rng: random.Random, fields: list[bytes]) -> bytes:
    """A mutation the client must refuse, whatever else the frame holds: an unknown message id, a non-numeric
    request id in a hot market-data message, or a non-finite price in a TICK_PRICE."""
    msg_id = int(fields[0])
    choice = rng.randrange(3)
    if choice == 1 and msg_id in HOT_IDS:
        fields = list(fields)
        fields[RID_AT[msg_id]] = rng.choice([b"x1", b"1.5.2", b"--3", b"\xff"])
        return encode(fields)
    if choice == 2 and msg_id == 1 and len(fields) == 7:
        fields = list(fields)
        fields[4] = rng.choice(NON_FINITE)
        return encode(fields)
    return encode([str(rng.choice(UNKNOWN_IDS)).encode()] + list(fields[1:]))


def mutate(rng: random.Random, fields: list[bytes]) -> bytes:
    """One of the mutations whose outcome is not knowable in advance (the frame may still be usable)."""
    fields = list(fields)
    op = rng.randrange(8)
    if op == 0:                                              # bit flips
        data = bytearray(encode(fields))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        return bytes(data)
    if op == 1:                                              # truncation
        data = encode(fields)
        return data[:rng.randrange(len(data))]
    if op == 2 and len(fields) > 1:                          # a field dropped
        del fields[rng.randrange(1, len(fields))]
    elif op == 3:                                            # a field duplicated
        i = rng.randrange(len(fields))
        fields.insert(i, fields[i])
    elif op == 4 and len(fields) > 2:                        # two fields swapped
        i, j = rng.sample(range(1, len(fields)), 2)
        fields[i], fields[j] = fields[j], fields[i]
    elif op in (5, 6) and len(fields) > 1:                   # a hostile value
        for _ in range(1 if op == 5 else 3):
            fields[rng.randrange(1, len(fields))] = rng.choice(VALUES)
    else:                                                    # extra bytes / no terminating NUL
        return encode(fields) + rng.choice([b"junk", b"\0\0", b"1"]) if rng.random() < 0.5 else encode(fields)[:-1]
    return encode(fields)


# --- the client under test -----------------------------------------------------------------------------------

@pytest.fixture
def fuzzed(tmp_path):
    gw = RawGateway()
    engine = Engine("127.0.0.1", gw.port, client_id=1, state_dir=tmp_path, throttle=False, pacing=False).start()
    assert gw.ready.wait(10)
    reqs = {}

    def subscribe():
        made = {"quote": Request(engine.request_ids.take(), "mktdata", None, "fuzz quote", quote=Quote("FUZZ"),
                                 greeks=OptionGreeks("FUZZ")),
                "book": Request(engine.request_ids.take(), "depth", None, "fuzz depth", book=OrderBook(10)),
                "ticks": Request(engine.request_ids.take(), "ticks", None, "fuzz ticks", ticks=TickRing(512)),
                "bars": Request(engine.request_ids.take(), "bars", None, "fuzz bars", bars=Bars("1 min")),
                "rtbars": Request(engine.request_ids.take(), "rtbars", None, "fuzz 5-s bars", bars=Bars("1 min"))}
        for req in made.values():
            engine.open_request(req, lambda rid: None)
        return made
    reqs.update(engine.on_dispatch(subscribe))
    engine.conn.after_frame = FrameChecker(reqs)        # state checked after every frame, on the dispatch thread
    yield gw, engine, reqs
    engine.stop()
    gw.close()


def invariant_problems(reqs: dict) -> list[str]:
    """check_invariants() of every state object; call on the dispatch thread."""
    r = reqs
    return (r["quote"].quote.check_invariants() + r["quote"].greeks.check_invariants()
            + r["book"].book.check_invariants() + r["ticks"].ticks.check_invariants()
            + r["bars"].bars.check_invariants() + r["rtbars"].bars.check_invariants())


class FrameChecker:
    """The connection's after_frame observer: every state object's invariants after each frame; keeps the first
    frames that broke one (with what broke), and counts the frames it checked."""

    def __init__(self, reqs: dict):
        self.reqs = reqs
        self.checked = 0
        self.broken: list[tuple[bytes, list[str]]] = []

    def __call__(self, payload: bytes) -> None:
        self.checked += 1
        problems = invariant_problems(self.reqs)
        if problems and len(self.broken) < 5:
            self.broken.append((bytes(payload[:120]), problems))


def state_problems(engine: Engine, reqs: dict) -> list[str]:
    """check_invariants() of every state object, read on the dispatch thread."""
    return engine.on_dispatch(invariant_problems, reqs)


def keep_subscribed(engine: Engine, reqs: dict) -> None:
    """A mutated error frame may have failed a subscription (e.g. code 200 for its id): give it a fresh id."""
    def revive():
        for req in reqs.values():
            if engine.router.requests.get(req.req_id) is not req:
                engine.router.rekey(req, engine.request_ids.take())
    engine.on_dispatch(revive)


def run_batches(gw: RawGateway, engine: Engine, reqs: dict, base: list, total: int, seed: int) -> dict:
    rng = random.Random(seed)
    conn = engine.conn
    sent = refused_at_least = mutated_total = 0
    sentinel = 10 ** 9
    while sent < total:
        keep_subscribed(engine, reqs)
        rids = {kind: req.req_id for kind, req in reqs.items()}
        strict = (sent // BATCH) % 10 == 9                   # every tenth batch: only must-refuse frames
        payloads, must, mutated = [], 0, 0
        for _ in range(min(BATCH, total - sent)):
            fields, kind = rng.choice(base)
            fields = with_rid(fields, kind, rids)
            roll = rng.random()
            if strict or roll < 0.15:
                payloads.append(must_refuse(rng, fields))
                must += 1
                mutated += 1
            elif roll < 0.8:
                payloads.append(mutate(rng, fields))
                mutated += 1
            else:
                payloads.append(encode(fields))
        sentinel += 1
        before = conn.bad_frames
        gw.send(payloads + [encode([b"9", b"1", str(sentinel).encode()])])     # then a valid frame
        wait_until(lambda: engine.router.next_valid_id == sentinel, timeout=60,
                   what=f"the valid frame after batch {sent // BATCH}")
        grew = conn.bad_frames - before
        assert must <= grew <= mutated, (must, grew, mutated)
        if strict:
            assert grew == must
        assert sum(conn.bad_frame_reasons.values()) == conn.bad_frames
        assert set(conn.bad_frame_reasons) <= set(BAD_FRAME_REASONS)
        assert state_problems(engine, reqs) == []
        checker = conn.after_frame
        assert checker.broken == [] and checker.checked >= sent + len(payloads) + 1, checker.broken
        names = {t.name for t in threading.enumerate() if t.is_alive()}
        assert "ibframe-dispatch" in names and conn.isConnected()      # the thread that reads and decodes
        sent += len(payloads)
        refused_at_least += must
        mutated_total += mutated
    return {"sent": sent, "must": refused_at_least, "mutated": mutated_total}


def assert_log_bounded(caplog, elapsed: float) -> None:
    lines = [r for r in caplog.records if r.name == "ibframe.connection" and "bad frame" in r.getMessage()]
    assert len(lines) <= len(BAD_FRAME_REASONS) * (BAD_FRAME_FULL_LINES + elapsed / 10 + 2)
    assert not [r for r in caplog.records if r.name == "ibframe.dispatch"]   # no callback escaped with a traceback


@pytest.fixture
def quiet(caplog):
    """Capture ibframe.connection's bad-frame lines and ibframe.dispatch's failures; the Router's and the order
    manager's reactions to mutated (but readable) errors and orders are not what this test reads."""
    caplog.set_level(logging.WARNING, logger="ibframe.connection")
    caplog.set_level(logging.ERROR, logger="ibframe.dispatch")
    for name in ("ibframe.router", "ibframe.trading", "ibframe.engine", "ibframe", "ibapi"):
        caplog.set_level(logging.CRITICAL, logger=name)
    return caplog


def test_mutated_simulator_frames_never_corrupt_state_and_every_refusal_is_counted(fuzzed, sim_frames, quiet):
    gw, engine, reqs = fuzzed
    base = sim_frames + handmade_frames()
    start = time.monotonic()
    stats = run_batches(gw, engine, reqs, base, TOTAL, seed=12)
    conn = engine.conn
    assert stats["must"] <= conn.bad_frames <= stats["mutated"]
    assert conn.bad_frame_reasons["unknown_id"] > 0 and conn.bad_frame_reasons["garbled"] > 0
    assert conn.bad_frame_reasons["bad_value"] > 0
    assert reqs["quote"].quote.updates > 0 and reqs["book"].book.updates > 0 and len(reqs["bars"].bars) > 0
    assert_log_bounded(quiet, time.monotonic() - start)


def test_mutated_real_tws_frames_never_corrupt_state_and_every_refusal_is_counted(fuzzed, quiet):
    gw, engine, reqs = fuzzed
    base = fixture_frames() + handmade_frames()
    start = time.monotonic()
    stats = run_batches(gw, engine, reqs, base, max(BATCH * 10, TOTAL // 4), seed=13)
    assert stats["must"] <= engine.conn.bad_frames <= stats["mutated"]
    assert_log_bounded(quiet, time.monotonic() - start)
