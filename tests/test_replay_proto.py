"""A recording made at server version 226, where TWS sends market data as protobuf, replays into strategies.

The hand-written recording has text frames with 4-byte message ids (managedAccounts as ``fields``, nextValidId
as ``raw``), the contract details as protobuf (CONTRACT_DATA / CONTRACT_DATA_END + 200) and protobuf market data
built with ibapi's *_pb2 classes: TICK_PRICE with sizes, TICK_SIZE, TICK_BY_TICK (BidAsk, MidPoint on another
line), MARKET_DEPTH and MARKET_DEPTH_L2. Replay sends them through the live decode path (IBConnection's
_decode_batch: the protobuf fast decoder, ibapi's processProtoBuf for the rest), the Router and the state
objects, so the strategy must see the quotes, the ticks and the book.
"""
from __future__ import annotations

import base64

from ibapi.message import IN
from ibapi.protobuf.ContractDataEnd_pb2 import ContractDataEnd
from ibapi.protobuf.ContractData_pb2 import ContractData
from ibapi.protobuf.MarketDepthL2_pb2 import MarketDepthL2
from ibapi.protobuf.MarketDepth_pb2 import MarketDepth
from ibapi.protobuf.TickByTickData_pb2 import TickByTickData
from ibapi.protobuf.TickPrice_pb2 import TickPrice
from ibapi.protobuf.TickSize_pb2 import TickSize

from ibframe.ids import REQUEST_ID_BASE
from ibframe.record import Recording, write_recording
from ibframe.replay import replay
from ibframe.strategy import Strategy
from replay_fixtures import session_config, without_rail_requests

VERSION = 226
AAPL = 265598


class ProtoWatcher(Strategy):
    """A quote, BidAsk ticks and a book on its one instrument; keeps every quote it is told about."""

    def on_start(self):
        name = next(iter(self.instruments))
        self.seen = []
        self.q = self.quote(name)
        self.ring = self.ticks(name, "BidAsk")
        self.book = self.depth(name, rows=5)

    def on_quote(self, instrument, quote):
        self.seen.append((quote.bid, quote.bid_size, quote.ask, quote.ask_size))


def proto(msg_id: int, message, wall: float | None = None) -> dict:
    event = {"type": "in", "raw": base64.b64encode((msg_id + 200).to_bytes(4, "big")
                                                   + message.SerializeToString()).decode("ascii")}
    if wall is not None:
        event["wall"] = wall
    return event


def contract_data(req_id: int) -> ContractData:
    m = ContractData(reqId=req_id)
    c = m.contract
    c.conId, c.symbol, c.secType, c.exchange, c.primaryExch, c.currency = AAPL, "AAPL", "STK", "SMART", "NASDAQ", "USD"
    c.localSymbol, c.tradingClass = "AAPL", "NMS"
    d = m.contractDetails
    d.marketName, d.minTick, d.orderTypes, d.validExchanges = "NMS", "0.01", "LMT,MKT", "SMART,NASDAQ"
    d.longName, d.timeZoneId = "APPLE INC", "US/Eastern"
    return m


def tick_price(rid, tick_type, price, size):
    return TickPrice(reqId=rid, tickType=tick_type, price=price, size=size, attrMask=0)


def depth_row(cls, rid, position, operation, side, price, size, maker=None):
    m = cls(reqId=rid)
    d = m.marketDepthData
    d.position, d.operation, d.side, d.price, d.size = position, operation, side, price, size
    if maker is not None:
        d.marketMaker, d.isSmartDepth = maker, True
    return m


def events() -> list[dict]:
    details, quote, ticks, book = (REQUEST_ID_BASE + i for i in range(4))
    bid_ask = TickByTickData(reqId=ticks, tickType=3)
    h = bid_ask.historicalTickBidAsk
    h.time, h.priceBid, h.priceAsk, h.sizeBid, h.sizeAsk = 1709650800, 189.97, 190.02, "300", "500"
    h.tickAttribBidAsk.bidPastLow = True
    later = TickByTickData(reqId=ticks, tickType=3)
    h = later.historicalTickBidAsk
    h.time, h.priceBid, h.priceAsk, h.sizeBid, h.sizeAsk = 1709650801, 189.98, 190.01, "200", "100"
    text_id = (IN.NEXT_VALID_ID).to_bytes(4, "big") + b"1\x0041\x00"
    return [{"type": "out"},                                                   # START_API (protobuf at 226)
            {"type": "in", "fields": ["15", "1", "DU1234567"]},                 # text, 4-byte id on the wire
            {"type": "in", "raw": base64.b64encode(text_id).decode()},          # nextValidId as raw bytes
            {"type": "out"},                                                   # reqContractDetails
            proto(IN.CONTRACT_DATA, contract_data(details)),
            proto(IN.CONTRACT_DATA_END, ContractDataEnd(reqId=details)),
            {"type": "out"}, {"type": "out"},                                  # reqPositions, reqAccountUpdates
            {"type": "out"}, {"type": "out"}, {"type": "out"},                 # reqMktData, reqTickByTick, reqMktDepth
            proto(IN.TICK_PRICE, tick_price(quote, 1, 189.98, "300"), 100.0),  # bid + its size: one quote update
            proto(IN.TICK_PRICE, tick_price(quote, 2, 190.01, "12.5"), 100.1),
            proto(IN.TICK_SIZE, TickSize(reqId=quote, tickType=0, size="400"), 100.2),
            proto(IN.TICK_SIZE, TickSize(reqId=quote, tickType=8, size="123456"), 100.3),   # volume
            proto(IN.TICK_BY_TICK, bid_ask, 100.4),
            proto(IN.TICK_BY_TICK, later, 100.5),
            proto(IN.MARKET_DEPTH, depth_row(MarketDepth, book, 0, 0, 1, 189.98, "400"), 100.6),     # insert bid
            proto(IN.MARKET_DEPTH, depth_row(MarketDepth, book, 0, 0, 0, 190.01, "100"), 100.7),     # insert ask
            proto(IN.MARKET_DEPTH, depth_row(MarketDepth, book, 1, 0, 1, 189.97, "900"), 100.8),     # 2nd bid
            proto(IN.MARKET_DEPTH_L2, depth_row(MarketDepthL2, book, 0, 1, 0, 190.01, "250", "ARCA"), 100.9),
            proto(IN.MARKET_DEPTH, depth_row(MarketDepth, book, 1, 2, 1, 189.97, "0"), 101.0),       # delete it
            {"type": "out"}, {"type": "out"}, {"type": "out"}]                 # the three cancels at stop


def test_protobuf_market_data_at_226_replays_into_quote_ticks_and_book(tmp_path):
    path = write_recording(tmp_path / "proto226.jsonl", events(), server_version=VERSION)
    rec = Recording(path)
    assert rec.header.server_version == VERSION
    raw = [e for e in rec.events() if e.type == "in" and e.raw is not None]
    assert len(raw) == 14 and sum(1 for e in raw if e.is_protobuf) == 13

    cfg = session_config("test_replay_proto:ProtoWatcher", {"AAPL": {"secType": "STK", "symbol": "AAPL"}})
    without_rail_requests(cfg)
    result = replay(path, cfg)
    assert result.problems == [] and result.damage is None and result.divergences == []
    assert result.frames == sum(1 for e in events() if e["type"] == "in")
    s = result.strategy()
    assert s.instruments["AAPL"].conId == AAPL and s.instruments["AAPL"].primaryExchange == "NASDAQ"
    # each price with its size is one update; then the bid size alone; the volume tick calls no on_quote
    assert s.seen == [(189.98, 300.0, None, None), (189.98, 300.0, 190.01, 12.5), (189.98, 400.0, 190.01, 12.5)]
    assert s.q.volume == 123456.0
    frame = s.ring.to_frame("bid_ask")
    assert list(frame["bid"]) == [189.97, 189.98] and list(frame["ask"]) == [190.02, 190.01]
    assert s.book.best_bid == 189.98 and s.book.best_ask == 190.01
    bids, asks = s.book.depth()
    assert [b[:2] for b in bids] == [(189.98, 400.0)] and [a[:2] for a in asks] == [(190.01, 250.0)]
    assert asks[0][2] == "ARCA"
    assert result.engine.router.next_valid_id == 41 and result.engine.account == "DU1234567"
    conn = result.engine.conn
    assert conn._fast_proto is not None and conn.bad_frames == 0       # the protobuf fast path took the ticks
    # at 226 the replay's requests go out as protobuf too (START_API, reqMktData, ... as id + 200)
    assert [m.msg_id for m in result.sent[:1]] == [71] and all(m.fields is None for m in result.sent)
