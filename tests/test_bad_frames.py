"""One counter and one log line per bad frame, whatever layer refused it (issue 12, item 2).

The simulator writes hand-made frames to an ibframe Engine over loopback (`faults.send_raw`). Each path a
frame can be refused on is counted once in `conn.bad_frames` and once in `conn.bad_frame_reasons` under its
reason, logged once by ibframe.connection (never also as IB error 505/508 by the Router, nor by ibapi's
own logger), reported once to error hooks (code -2), and valid data keeps flowing after it.
"""
from __future__ import annotations

import logging
import struct

import pytest
from ibapi.errors import BAD_MESSAGE, UNKNOWN_ID

from ibframe.connection import BAD_FRAME_FULL_LINES, BadFrameLog, IBConnection
from ibframe.contracts import Stock
from ibframe.dispatch import Clock, Dispatcher
from ibframe.engine import Engine
from ibframe.router import Router
from ibframe.sim.protocol.wire import encode_message
from conftest import wait_until

VERSION = 176                                  # text message ids: the frames below are plain fields


@pytest.fixture
def streaming(make_gateway, tmp_path):
    gw = make_gateway(max_server_version=VERSION, seed=5)
    engine = Engine("127.0.0.1", gw.port, client_id=5200, state_dir=tmp_path).start()
    aapl = engine.qualify(Stock("AAPL"))
    quote_req = engine.market_data(aapl)
    book_req = engine.depth(aapl, rows=5)
    wait_until(lambda: quote_req.quote.bid is not None and book_req.book.best_bid is not None, what="data flowing")
    errors: list = []
    engine.router.on_error_hooks.append(errors.append)
    yield gw, engine, quote_req, book_req, errors
    engine.stop()


def send(gw, engine, *fields) -> None:
    assert gw.faults.send_raw(engine.client_id, encode_message([str(f) for f in fields]))


def bad_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "ibframe.connection" and "bad frame" in r.getMessage()]


def still_flowing(engine, quote_req, book_req) -> None:
    updates = quote_req.quote.updates, book_req.book.updates
    wait_until(lambda: quote_req.quote.updates > updates[0] and book_req.book.updates > updates[1],
               what="valid market data after the bad frames")
    assert engine.on_dispatch(quote_req.quote.check_invariants) == []
    assert engine.on_dispatch(book_req.book.check_invariants) == []


def test_an_unknown_message_id_is_counted_once_and_never_logged_as_error_505(streaming, caplog):
    gw, engine, quote_req, book_req, errors = streaming
    caplog.set_level(logging.DEBUG)
    send(gw, engine, 150, 1, 2, 3)
    send(gw, engine, 0, 1)                                  # id 0: ibapi would skip it without a word
    wait_until(lambda: engine.conn.bad_frames == 2, what="both frames counted")
    assert engine.conn.bad_frame_reasons == {"unknown_id": 2}
    assert [e.code for e in errors if e.code in (-2, 505)] == [-2, -2]
    assert not [r for r in caplog.records if r.name == "ibframe.router" and "505" in r.getMessage()]
    assert len(bad_lines(caplog)) == 2 and "unknown message id 150" in bad_lines(caplog)[0].getMessage()
    still_flowing(engine, quote_req, book_req)


def test_a_frame_that_cannot_be_decoded_is_garbled_once(streaming, caplog):
    gw, engine, quote_req, book_req, errors = streaming
    send(gw, engine, 9, 1, "not-a-number")                  # NEXT_VALID_ID with a bad id
    send(gw, engine, 1, 6, quote_req.req_id, 1)             # TICK_PRICE cut short: no price, size, mask
    wait_until(lambda: engine.conn.bad_frames == 2, what="both frames counted")
    assert engine.conn.bad_frame_reasons == {"garbled": 2}
    assert len(bad_lines(caplog)) == 2
    assert [e.code for e in errors if e.code in (-2, 508)] == [-2, -2]
    still_flowing(engine, quote_req, book_req)


def test_a_frame_ibapi_logs_and_skips_is_counted_and_its_log_line_replaced(streaming, caplog):
    """CURRENT_TIME (49) with a field too many: ibapi's interpretWithSignature logs "diff len fields" and
    returns without a callback. Seen through a filter on ibapi's logger, not a mock."""
    gw, engine, quote_req, book_req, errors = streaming
    caplog.set_level(logging.DEBUG)
    send(gw, engine, 49, 1, 1700000000, "extra")
    wait_until(lambda: engine.conn.bad_frames == 1, what="the frame counted")
    assert engine.conn.bad_frame_reasons == {"ibapi_dropped": 1}
    assert not [r for r in caplog.records if r.name.startswith("ibapi") and r.levelno >= logging.WARNING]
    assert len(bad_lines(caplog)) == 1 and "diff len" in bad_lines(caplog)[0].getMessage()
    assert [e.code for e in errors if e.code == -2] == [-2]
    still_flowing(engine, quote_req, book_req)


def test_every_reason_adds_up_to_the_total(streaming):
    gw, engine, quote_req, book_req, _ = streaming
    send(gw, engine, 987, 1)                                          # unknown_id
    send(gw, engine, 9, 1, "x")                                       # garbled
    send(gw, engine, 49, 1, 1700000000, "extra")                     # ibapi_dropped
    send(gw, engine, 1, 6, quote_req.req_id, 1, "nan", 100, 0)       # bad_value
    send(gw, engine, 12, 1, book_req.req_id, 0, 0, 1, "inf", 100)    # bad_value (depth)
    wait_until(lambda: engine.conn.bad_frames == 5, what="five frames counted")
    assert engine.conn.bad_frame_summary() == {"garbled": 1, "unknown_id": 1, "ibapi_dropped": 1, "oversize": 0,
                                               "bad_value": 2}
    assert sum(engine.conn.bad_frame_reasons.values()) == engine.conn.bad_frames
    still_flowing(engine, quote_req, book_req)


def test_a_flood_logs_the_first_lines_in_full_and_counts_every_frame(streaming, caplog):
    gw, engine, quote_req, book_req, _ = streaming
    flood = b"".join(encode_message(["987", str(i)]) for i in range(500))
    assert gw.faults.send_raw(engine.client_id, flood)
    wait_until(lambda: engine.conn.bad_frames == 500, what="every frame counted")
    assert engine.conn.bad_frame_reasons == {"unknown_id": 500}
    assert len(bad_lines(caplog)) == BAD_FRAME_FULL_LINES           # the rest wait for the 10 s summary
    assert "summarised every 10s" in bad_lines(caplog)[-1].getMessage()
    still_flowing(engine, quote_req, book_req)


def test_an_oversize_length_prefix_is_one_oversize_frame_and_resets_the_connection(streaming, caplog):
    gw, engine, _, _, errors = streaming
    assert gw.faults.send_raw(engine.client_id, struct.pack("!I", 2 ** 31) + b"rest")
    wait_until(lambda: engine.router.connection_closed.is_set(), what="the connection reset")
    wait_until(lambda: engine.conn.bad_frames == 1, what="the frame counted")
    assert engine.conn.bad_frame_reasons == {"oversize": 1} and engine.conn.protocol_failures == 1
    assert len(bad_lines(caplog)) == 1 and "over the protocol limit" in bad_lines(caplog)[0].getMessage()
    assert [e.code for e in errors if e.code == -2] == [-2]


def test_a_length_prefix_shorter_than_its_frame_desynchronises_and_is_counted_not_swallowed(streaming):
    """The rest of the cut frame is read as the next length prefix: a framing error the client must survive
    (counted garbage, or an oversize reset), with every state object sound."""
    gw, engine, quote_req, book_req, _ = streaming
    body = b"1\x006\x00" + str(quote_req.req_id).encode() + b"\x001\x00123.5\x00100\x000\x00"
    assert gw.faults.send_raw(engine.client_id, struct.pack("!I", 4) + body)
    wait_until(lambda: engine.conn.bad_frames >= 1, what="the framing error noticed")
    assert sum(engine.conn.bad_frame_reasons.values()) == engine.conn.bad_frames
    if engine.conn.protocol_failures == 0:                    # resynchronised by chance: data still flows
        still_flowing(engine, quote_req, book_req)
    else:
        wait_until(lambda: engine.router.connection_closed.is_set(), what="the reset")
        assert engine.conn.bad_frame_reasons["oversize"] == 1
    assert engine.on_dispatch(quote_req.quote.check_invariants) == []
    assert engine.on_dispatch(book_req.book.check_invariants) == []


# --- without a socket: the same connection object, frames handed to its decode step directly ----------------

def bare_connection(version: int = VERSION) -> tuple[IBConnection, Router]:
    from ibapi.decoder import Decoder
    router = Router(Clock())
    conn = IBConnection(router, Dispatcher())
    conn.serverVersion_ = version
    conn.decoder = Decoder(router, version)
    return conn, router


def test_errors_505_and_508_from_ibapis_decoder_are_frames_not_tws_errors(caplog):
    """If ibapi's decoder itself reports a frame (505, 508, reqId -1), the Router hands it to the connection:
    counted once, never logged as an IB error."""
    conn, router = bare_connection()
    router.error(-1, 0, UNKNOWN_ID.code(), UNKNOWN_ID.msg())
    router.error(-1, 0, BAD_MESSAGE.code(), BAD_MESSAGE.msg() + "1,2,3")
    assert conn.bad_frame_reasons == {"unknown_id": 1, "garbled": 1} and conn.bad_frames == 2
    assert not [r for r in caplog.records if r.name == "ibframe.router"]
    router.error(-1, 0, 508, "a TWS text that is not ibapi's")       # not the decoder's: an IB error as ever
    assert conn.bad_frames == 2 and router.errors[-1].code == 508


def test_a_protobuf_frame_with_an_unknown_id_or_bad_bytes_is_counted_once():
    from ibapi.common import PROTOBUF_MSG_ID
    conn, router = bare_connection(version=203)
    unknown = (PROTOBUF_MSG_ID + 999).to_bytes(4, "big") + b"\x08\x01"
    bad = (PROTOBUF_MSG_ID + 1).to_bytes(4, "big") + b"\xff\xff\xff"      # TICK_PRICE protobuf, unparseable
    conn._decode_batch([unknown, bad])
    assert conn.bad_frame_reasons == {"unknown_id": 1, "garbled": 1} and conn.bad_frames == 2
    assert [e.code for e in router.errors] == [-2, -2]


def test_the_log_summarises_held_lines_per_reason_after_its_interval(caplog):
    dispatcher = Dispatcher().start()
    try:
        logger = logging.getLogger("ibframe.test_bad_frames")
        caplog.set_level(logging.WARNING, logger=logger.name)
        box = BadFrameLog(logger, dispatcher.call_later, full_lines=3, summary_every=0.05)
        for i in range(10):
            dispatcher.call_sync(box.note, "garbled", f"frame {i}", b"x")
        dispatcher.call_sync(box.note, "bad_value", "one", b"y")
        wait_until(lambda: any("7 more" in r.getMessage() for r in caplog.records), what="the summary line")
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 3 + 1 + 1                     # 3 garbled in full, 1 bad_value, 1 summary
        assert "7 more bad frames from TWS skipped (garbled), 10 in all; the latest: frame 9" in lines[-1]
    finally:
        dispatcher.stop()
