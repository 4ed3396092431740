"""Non-finite numbers in market data never enter a state object (part of issue 12's hardening).

The simulator writes hand-made frames to the real ibapi client over loopback (`faults.send_raw`): a price,
size, depth row or bar carrying NaN or infinity is dropped where the frame is routed, counted once
(`router.bad_values`, the book's `rejected`) and counted once as a bad frame of the connection
(`conn.bad_frame_reasons["bad_value"]`), and the next good frame applies as usual. Before, a NaN depth
row corrupted the OrderBook for good and NaN/inf prices reached quotes and bars.
"""
from __future__ import annotations

import math

import pandas as pd
import pytest

from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.sim.protocol.wire import encode_message
from conftest import wait_until

VERSION = 176                                  # text message ids: the frames below are plain fields


@pytest.fixture
def streaming(make_gateway, tmp_path):
    gw = make_gateway(max_server_version=VERSION, seed=3)
    engine = Engine("127.0.0.1", gw.port, client_id=5100, state_dir=tmp_path).start()
    aapl = engine.qualify(Stock("AAPL"))
    quote_req = engine.market_data(aapl)
    book_req = engine.depth(aapl, rows=5)
    bars_req = engine.bars(aapl, "1 min", "1800 S")
    wait_until(lambda: quote_req.quote.bid is not None and book_req.book.best_bid is not None
               and bars_req.bars.complete, what="data flowing")
    yield gw, engine, quote_req, book_req, bars_req
    engine.stop()


def send(gw, engine, *fields) -> None:
    assert gw.faults.send_raw(engine.client_id, encode_message([str(f) for f in fields]))


def test_nan_and_inf_prices_and_sizes_never_reach_the_quote(streaming):
    gw, engine, quote_req, _, _ = streaming
    rid = quote_req.req_id
    send(gw, engine, 1, 6, rid, 1, "nan", 100, 0)          # TICK_PRICE bid NaN (with its size)
    send(gw, engine, 1, 6, rid, 2, "inf", 100, 0)          # ask +inf
    send(gw, engine, 2, 6, rid, 8, "nan")                  # TICK_SIZE volume NaN
    wait_until(lambda: engine.router.bad_values >= 3, what="three bad values counted")
    q = quote_req.quote
    for value in (q.bid, q.ask, q.volume, q.bid_size, q.ask_size):
        assert value is None or math.isfinite(value)
    updates = q.updates
    wait_until(lambda: q.updates > updates, what="good ticks applied after the bad ones")
    assert engine.router.bad_values == 3
    assert engine.conn.bad_frames == 3 and engine.conn.bad_frame_reasons == {"bad_value": 3}   # one per frame
    assert engine.on_dispatch(q.check_invariants) == []


def test_a_nan_price_takes_the_size_of_its_frame_with_it(streaming):
    """TICK_PRICE carries a size: when its price is refused, the size is not applied alone (half a print)."""
    gw, engine, quote_req, _, _ = streaming
    q, rid = quote_req.quote, quote_req.req_id
    send(gw, engine, 1, 6, rid, 4, "nan", 987654, 0)        # LAST NaN with size 987654
    wait_until(lambda: engine.conn.bad_frames == 1, what="the frame counted")
    assert q.last_size != 987654.0 and engine.router.bad_values == 1


def test_a_nan_depth_row_is_refused_and_the_book_keeps_working(streaming):
    gw, engine, _, book_req, _ = streaming
    book = book_req.book
    send(gw, engine, 12, 1, book_req.req_id, 0, 0, 1, "nan", 100)   # MARKET_DEPTH insert bid at NaN
    wait_until(lambda: book.rejected == 1, what="the row refused")
    assert engine.conn.bad_frame_reasons == {"bad_value": 1}
    assert all(math.isfinite(p) for p in book.levels_view[1])
    assert engine.on_dispatch(book.check_invariants) == []
    updates = book.updates
    wait_until(lambda: book.updates > updates + 5, what="valid depth still applied")
    assert book.best_bid is not None and math.isfinite(book.best_bid)


def test_a_bar_with_nan_or_inf_is_dropped(streaming):
    gw, engine, _, _, bars_req = streaming
    bars = bars_req.bars
    before = len(bars)
    last = bars.last
    stamp = (last.time + pd.Timedelta(minutes=1)).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"
    send(gw, engine, 90, bars_req.req_id, 1, stamp, "nan", "190", "191", "189", "190", "100")   # HISTORICAL_DATA_UPDATE
    send(gw, engine, 90, bars_req.req_id, 1, stamp, "190", "inf", "191", "189", "190", "100")
    wait_until(lambda: engine.router.bad_values >= 2, what="both bars counted")
    assert all(math.isfinite(v) for v in bars.close) and all(math.isfinite(v) for v in bars.open)
    assert len(bars) in (before, before + 1)              # a real update may have arrived meanwhile, never the bad ones
    assert engine.router.bad_values == 2 and engine.conn.bad_frame_reasons == {"bad_value": 2}
    assert engine.on_dispatch(bars.check_invariants) == []


def test_a_bar_whose_high_is_below_its_low_is_rejected_and_counted(streaming):
    gw, engine, _, _, bars_req = streaming
    bars = bars_req.bars
    stamp = (bars.last.time + pd.Timedelta(minutes=1)).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"
    # fields: reqId, barCount, date, open, close, high, low, wap, volume
    send(gw, engine, 90, bars_req.req_id, 1, stamp, "190", "190", "189", "191", "190", "100")    # high < low
    send(gw, engine, 90, bars_req.req_id, 1, stamp, "190", "190", "191", "189", "190", "-5")     # volume < 0
    wait_until(lambda: bars.rejected == 2, what="both bars refused")
    wait_until(lambda: engine.conn.bad_frame_reasons["bad_value"] == 2, what="both frames counted")
    assert engine.on_dispatch(bars.check_invariants) == []
