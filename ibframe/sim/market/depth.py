"""Market depth: reqMktDepth / cancelMktDepth / reqMktDepthExchanges.

Owns: parsing the depth requests per negotiated version, the per-client limit on distinct depth
subscriptions (309), and keeping each client's copy of the top `numRows` levels of the book equal
to the market's: inserts on subscribe, then after every market step only the rows that changed.

The row protocol is chosen so that both ways clients apply it give the same book: rows are
updated in place (operation 1), only ever inserted at the end (0) and deleted from the end (2),
so a client that shifts rows on insert/delete and one that overwrites them agree.
Side 0 is the ask side, 1 the bid side (EWrapper.updateMktDepth).

Simplifications: every depth venue shows the instrument's consolidated book (the market keeps one
book whose levels carry the quoting maker's name); non-SMART depth leaves the maker out
(MARKET_DEPTH), SMART depth names it (MARKET_DEPTH_L2). Options have no book of their own here.
Never mutates the market; never sends anything for a stream after it was cancelled.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ibapi import server_versions as sv
from ibapi.message import IN, OUT

from ..protocol.handlers import handles
from ..protocol.session import Session
from ..protocol.wire import UNSET_INTEGER, FieldReader
from .lookup import read_contract, resolve
from .market import MAKERS, InstrumentMarket, StepEvents
from .tickbytick import EXCHANGE_ALIASES, wire_size

KIND = "depth"
ASK, BID = 0, 1
INSERT, UPDATE, DELETE = 0, 1, 2
DEPTH_SEC_TYPES = ("STK", "FUT", "CASH")          # sec types with a deep book in this simulator
VENUE_NAMES = {"NSDQ": "ISLAND"}                     # market-maker id -> exchange name in the venue list
VENUE_LISTING = {"ISLAND": ("NASDAQ", "Deep2")}      # exchange -> (listingExch, serviceDataType)
NOT_SUPPORTED = "Deep market data is not supported for this combination of security type/exchange"

Row = tuple  # (price, size, maker)


@dataclass(slots=True)
class DepthStream:
    """One client's depth subscription and the rows it was last sent, per side."""
    req_id: int
    session: Session
    market: InstrumentMarket
    con_id: int
    rows: int
    smart: bool
    sent: dict[int, list[Row]] = field(default_factory=lambda: {ASK: [], BID: []})
    remove: Callable[[], None] | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.remove is not None:
            self.remove()
            self.remove = None

    def top(self) -> dict[int, list[Row]]:
        m = self.market
        pick = (lambda lv: (lv.price, lv.size, lv.maker)) if self.smart else (lambda lv: (lv.price, lv.size, ""))
        return {ASK: [pick(lv) for lv in m.asks[:self.rows]], BID: [pick(lv) for lv in m.bids[:self.rows]]}

    def on_step(self, ev: StepEvents) -> None:
        if ev.book_changed:
            self.sync()

    def sync(self) -> None:
        """Send the row operations that turn what the client holds into the market's top rows."""
        for side, new in self.top().items():
            old = self.sent[side]
            for pos in range(min(len(old), len(new))):
                if old[pos] != new[pos]:
                    self._send(pos, UPDATE, side, new[pos])
            for pos in range(len(old), len(new)):
                self._send(pos, INSERT, side, new[pos])
            for pos in range(len(old) - 1, len(new) - 1, -1):
                self._send(pos, DELETE, side, old[pos])
            self.sent[side] = new

    def _send(self, position: int, operation: int, side: int, row: Row) -> None:
        price, size, maker = row
        if not self.smart:
            self.session.send(IN.MARKET_DEPTH, 1, self.req_id, position, operation, side, float(price),
                              wire_size(size))
        else:   # SMART depth exists from version 146 on, and so does the isSmartDepth field
            self.session.send(IN.MARKET_DEPTH_L2, 1, self.req_id, position, maker, operation, side,
                              float(price), wire_size(size), True)


def _depth_con_ids(session: Session) -> set[int]:
    return {sub.con_id for (kind, _), sub in session.subscriptions.items() if kind == KIND}


@handles(OUT.REQ_MKT_DEPTH)
def req_mkt_depth(session: Session, r: FieldReader) -> None:
    """V, reqId, contract (conId/tradingClass ≥68, primaryExchange ≥149), numRows, isSmartDepth ≥146,
    mktDepthOptions ≥70."""
    v = session.version
    r.int("version")
    req_id = r.int("reqId")
    query = read_contract(r, con_id=v >= sv.MIN_SERVER_VER_TRADING_CLASS,
                          primary=v >= sv.MIN_SERVER_VER_MKT_DEPTH_PRIM_EXCHANGE,
                          trading_class=v >= sv.MIN_SERVER_VER_TRADING_CLASS)
    num_rows = r.int("numRows")
    smart = r.bool("isSmartDepth") if v >= sv.MIN_SERVER_VER_SMART_DEPTH else False
    if v >= sv.MIN_SERVER_VER_LINKING:
        r.str("mktDepthOptions")

    if session.has_subscription(KIND, req_id):
        session.error(req_id, 322, "Duplicate ticker id")
        return
    query.exchange = EXCHANGE_ALIASES.get(query.exchange.upper(), query.exchange)
    inst = resolve(session, req_id, query, "bR")
    if inst is None:
        return
    market = session.gateway.market.get(inst.con_id)
    if (market is None or inst.sec_type not in DEPTH_SEC_TYPES
            or (not smart and query.exchange.upper() in ("", "SMART"))):
        session.error(req_id, 10092, NOT_SUPPORTED)
        return
    limit = session.gateway.config.depth_limit
    held = _depth_con_ids(session)
    if inst.con_id not in held and len(held) >= limit:   # IB counts distinct securities
        session.error(req_id, 309, f"Max number ({limit}) of market depth requests has been reached")
        return
    rows = max(1, min(num_rows, market.depth))
    stream = DepthStream(req_id, session, market, inst.con_id, rows, smart)
    session.add_subscription(KIND, stream)
    stream.sync()
    stream.remove = session.gateway.on_step(inst.con_id, stream.on_step)


@handles(OUT.CANCEL_MKT_DEPTH)
def cancel_mkt_depth(session: Session, r: FieldReader) -> None:
    """V, reqId[, isSmartDepth ≥146]."""
    r.int("version")
    req_id = r.int("reqId")
    if session.version >= sv.MIN_SERVER_VER_SMART_DEPTH:
        r.bool("isSmartDepth")
    if not session.end_subscription(KIND, req_id):
        session.error(req_id, 310, f"Can't find the subscribed market depth with tickerId:{req_id}")


def depth_venues(session: Session) -> list[tuple[str, str, str, str, int]]:
    """(exchange, secType, listingExch, serviceDataType, aggGroup) for every venue quoting a root's book."""
    sec_types = {inst.sec_type for inst in session.gateway.universe.roots()}
    venues = []
    for sec_type in DEPTH_SEC_TYPES:
        if sec_type not in sec_types:
            continue
        for maker in MAKERS.get(sec_type, ()):
            exchange = VENUE_NAMES.get(maker, maker)
            listing, service = VENUE_LISTING.get(exchange, ("", "Deep"))
            venues.append((exchange, sec_type, listing, service, UNSET_INTEGER))
    return venues


@handles(OUT.REQ_MKT_DEPTH_EXCHANGES)
def req_mkt_depth_exchanges(session: Session, r: FieldReader) -> None:
    """MKT_DEPTH_EXCHANGES: count, then per venue exchange, secType and (≥120) listingExch,
    serviceDataType, aggGroup — below 120 a notSuppIsL2 flag instead."""
    venues = depth_venues(session)
    fields: list = []
    for exchange, sec_type, listing, service, agg_group in venues:
        if session.version >= sv.MIN_SERVER_VER_SERVICE_DATA_TYPE:
            fields += [exchange, sec_type, listing, service, agg_group]
        else:
            fields += [exchange, sec_type, 0]
    session.send(IN.MKT_DEPTH_EXCHANGES, len(venues), *fields)
