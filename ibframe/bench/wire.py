"""TWS frames for the benchmarks: the few messages the burst server sends, in TWS's text protocol.

Owns: length-prefixed text frames (message id as the first text field, as TWS sends below version 201),
the handshake (the server version is min(the client's highest, 200): ibapi and ibframe get 200,
ib_async, which offers 157..178, gets 178 — every layout sent here is the same at both), the answers
to the startup requests clients send (nextValidId/managedAccounts after START_API; positionEnd,
openOrderEnd, completedOrdersEnd, execDetailsEnd, accountDownloadEnd for ib_async's connect), an
orderStatus, a day of 1-minute bars for reqHistoricalData, and the deterministic bursts (L1 ticks,
tick-by-tick, L2 depth, and the mixed stream of the memory case) with their expected counts. A burst is
generated with placeholder slots for the request ids, because the ids are chosen by the client;
`Burst.encode(ids)` fills them in.
From server version 201 (a case that offers it: the protobuf variants offer 226) every frame carries its message
id as a 4-byte integer (`raw_ids` rewrites text frames so), the client's requests may be protobuf (`FrameReader`
with `raw_ids` reads the request ids out of the few it needs with ibapi's *_pb2 classes, imported only then), and
`Burst.encode(ids, proto=True)` sends the burst's market data as protobuf (id + 200), as TWS does from 206.
Must never: import the framework (the server process stays light) or use unseeded randomness.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

import numpy as np

SERVER_VERSION = 200                     # the highest version the burst server speaks with text market data
PROTOBUF_VERSION = 226                   # the version of the protobuf variants (market data as protobuf from 206)
PROTOBUF_MSG_ID = 200                    # ids above it: a protobuf body, the message id + 200
HISTORICAL_DATA_END_VERSION = 196        # MIN_SERVER_VER_HISTORICAL_DATA_END: bars end in their own message
CONN_TIME = "20240305 10:00:00 US/Eastern"
ACCOUNT = "DU1234567"

# incoming (to the client) message ids, as in ibapi.message.IN
TICK_PRICE, TICK_SIZE, ORDER_STATUS, NEXT_VALID_ID, MARKET_DEPTH_L2, MANAGED_ACCTS = 1, 2, 3, 9, 13, 15
HISTORICAL_DATA, OPEN_ORDER_END, ACCT_DOWNLOAD_END, EXEC_DETAILS_END, POSITION_END = 17, 53, 54, 55, 62
HISTORICAL_DATA_UPDATE, TICK_BY_TICK, COMPLETED_ORDERS_END, HISTORICAL_DATA_END = 90, 99, 102, 108
# outgoing (from the client) message ids, as in ibapi.message.OUT
REQ_MKT_DATA, PLACE_ORDER, REQ_OPEN_ORDERS, REQ_ACCOUNT_UPDATES, REQ_EXECUTIONS = 1, 3, 5, 6, 7
REQ_MKT_DEPTH, REQ_HISTORICAL_DATA, REQ_CURRENT_TIME, REQ_POSITIONS, START_API = 10, 20, 49, 61, 71
REQ_TICK_BY_TICK, REQ_COMPLETED_ORDERS = 97, 99

BID, ASK, LAST = 1, 2, 4
BID_SIZE, ASK_SIZE, LAST_SIZE, VOLUME = 0, 3, 5, 8
SIZE_FOLLOWS = frozenset({BID, ASK, LAST})       # ibapi's decoder calls tickSize after these tickPrices


def frame(*fields) -> bytes:
    """One frame: 4-byte big-endian length, then NUL-terminated text fields."""
    body = "".join(f"{f}\x00" for f in fields).encode()
    return struct.pack("!I", len(body)) + body


def negotiate(hello: bytes, highest: int = SERVER_VERSION) -> int:
    """The server version for a client's "v<min>..<max>" hello: its highest, at most `highest`."""
    found = re.match(rb"v(\d+)(?:\.\.(\d+))?", hello)
    if found is None:
        raise ConnectionError(f"no version range in the client's hello {hello[:32]!r}")
    return min(int(found.group(2) or found.group(1)), highest)


def raw_ids(data: bytes) -> bytes:
    """Text frames with their message id as a 4-byte integer instead of a text field (server version >= 201)."""
    out, offset = [], 0
    while offset < len(data):
        size = struct.unpack_from("!I", data, offset)[0]
        body = data[offset + 4:offset + 4 + size]
        head, _, rest = body.partition(b"\0")
        out.append(struct.pack("!II", len(rest) + 4, int(head)) + rest)
        offset += 4 + size
    return b"".join(out)


# protobuf requests at >= 201: (message id) -> (ibapi.protobuf module.class, [(text field index, proto field)])
_PROTO_REQUESTS = {REQ_MKT_DATA: ("MarketDataRequest", [(2, "reqId")]),
                   REQ_TICK_BY_TICK: ("TickByTickRequest", [(1, "reqId")]),
                   REQ_MKT_DEPTH: ("MarketDepthRequest", [(2, "reqId")]),
                   REQ_HISTORICAL_DATA: ("HistoricalDataRequest", [(1, "reqId")]),
                   REQ_EXECUTIONS: ("ExecutionRequest", [(2, "reqId")]),
                   REQ_ACCOUNT_UPDATES: ("AccountDataRequest", [(2, "subscribe"), (3, "acctCode")]),
                   PLACE_ORDER: ("PlaceOrderRequest", [(1, "orderId")])}


def _proto_request_fields(msg_id: int, body: bytes) -> list[str]:
    """A protobuf request as the text fields the server reads (the request id where the text layout has it)."""
    fields = [str(msg_id)]
    known = _PROTO_REQUESTS.get(msg_id)
    if known is not None:
        import importlib
        name, wanted = known
        message = getattr(importlib.import_module(f"ibapi.protobuf.{name}_pb2"), name).FromString(body)
        for index, attr in wanted:
            value = getattr(message, attr)
            fields += [""] * (index + 1 - len(fields))
            fields[index] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    return fields


def handshake_answer(version: int = SERVER_VERSION) -> bytes:
    return frame(version, CONN_TIME)


def startup_frames(next_order_id: int = 1) -> bytes:
    return frame(NEXT_VALID_ID, 1, next_order_id) + frame(MANAGED_ACCTS, 1, ACCOUNT)


def startup_answer(fields: list[str]) -> bytes | None:
    """The one-frame "nothing here" answer to a startup request (an empty account), or None for others."""
    msg = int(fields[0])
    if msg == REQ_POSITIONS:
        return frame(POSITION_END, 1)
    if msg == REQ_OPEN_ORDERS:
        return frame(OPEN_ORDER_END, 1)
    if msg == REQ_COMPLETED_ORDERS:
        return frame(COMPLETED_ORDERS_END)
    if msg == REQ_EXECUTIONS:
        return frame(EXEC_DETAILS_END, 1, fields[2])
    if msg == REQ_ACCOUNT_UPDATES and fields[2] in ("1", "True"):
        return frame(ACCT_DOWNLOAD_END, 1, fields[3] or ACCOUNT)
    return None


def tick_price(req_id, tick_type: int, price: str, size: str = "100") -> bytes:
    return frame(TICK_PRICE, 6, req_id, tick_type, price, size, 0)


def order_status(order_id, status: str = "Cancelled", remaining: str = "100") -> bytes:
    """orderStatus as TWS sends it from version 131 on (no version field)."""
    return frame(ORDER_STATUS, order_id, status, 0, remaining, 0, 1_000_000 + int(order_id), 0, 0, 1, "", 0)


HISTORY_BARS = 390                       # 09:30 .. 15:59, one trading day of 1-minute bars
HISTORY_DAY = "20240305"
UPDATE_BAR_DATE = f"{HISTORY_DAY} 16:00:00 US/Eastern"   # the bar historicalDataUpdate keeps updating


def history_answer(req_id, version: int, bars: int = HISTORY_BARS) -> tuple[bytes, int]:
    """reqHistoricalData's answer, a day of valid 1-minute bars, and its frame count: bars + end in one frame
    below version 196, bars then historicalDataEnd from 196 on."""
    start, end = f"{HISTORY_DAY} 09:30:00 US/Eastern", UPDATE_BAR_DATE
    flat = []
    for i in range(bars):
        o = 100.0 + 0.01 * (i % 50)
        flat += [f"{HISTORY_DAY} {9 + (30 + i) // 60:02d}:{(30 + i) % 60:02d}:00 US/Eastern",
                 f"{o:.2f}", f"{o + 0.05:.2f}", f"{o - 0.05:.2f}", f"{o + 0.01:.2f}", 1000 + i, f"{o:.3f}", 10]
    if version >= HISTORICAL_DATA_END_VERSION:
        return frame(HISTORICAL_DATA, req_id, bars, *flat) + frame(HISTORICAL_DATA_END, req_id, start, end), 2
    return frame(HISTORICAL_DATA, req_id, start, end, bars, *flat), 1


class FrameReader:
    """Cuts whole frames off a byte stream; `feed(chunk)` returns the new frames' text fields."""

    def __init__(self, raw_ids: bool = False):
        self.buffer = bytearray()
        self.raw_ids = raw_ids             # server version >= 201: 4-byte ids, some requests protobuf

    def feed(self, chunk: bytes) -> list[list[str]]:
        self.buffer += chunk
        out, offset, end = [], 0, len(self.buffer)
        while end - offset >= 4:
            size = struct.unpack_from("!I", self.buffer, offset)[0]
            if end - offset - 4 < size:
                break
            payload = bytes(self.buffer[offset + 4:offset + 4 + size])
            if not self.raw_ids:
                out.append(payload.decode("latin-1").split("\0")[:-1])
            elif int.from_bytes(payload[:4], "big") > PROTOBUF_MSG_ID:
                out.append(_proto_request_fields(int.from_bytes(payload[:4], "big") - PROTOBUF_MSG_ID, payload[4:]))
            else:
                out.append([str(int.from_bytes(payload[:4], "big"))] + payload[4:].decode("latin-1").split("\0")[:-1])
            offset += 4 + size
        del self.buffer[:offset]
        return out


@dataclass(slots=True)
class Burst:
    """A burst as rows (message id, subscription slot, fields after the request id) and its message counts."""
    rows: list[tuple[int, int, tuple]]
    counts: dict[str, int] = field(default_factory=dict)

    def frames(self, ids: dict[str, list[int]]) -> list[bytes]:
        """Each row as one frame, with the client's request ids filled in (ids[kind][slot])."""
        md, tbt, dp, bars = (ids.get(k, []) for k in ("mktdata", "ticks", "depth", "bars"))
        pack = struct.pack
        out = []
        for msg_id, slot, rest in self.rows:
            if msg_id == TICK_BY_TICK:
                head = (msg_id, tbt[slot])
            elif msg_id == MARKET_DEPTH_L2:
                head = (msg_id, 1, dp[slot])
            elif msg_id == HISTORICAL_DATA_UPDATE:
                head = (msg_id, bars[slot])
            else:
                head = (msg_id, 6, md[slot])
            body = "".join([f"{f}\x00" for f in head] + [f"{f}\x00" for f in rest]).encode()
            out.append(pack("!I", len(body)) + body)
        return out

    def encode(self, ids: dict[str, list[int]], proto: bool = False) -> bytes:
        """The whole burst as one byte string, ids filled in; `proto`: as protobuf frames (server version 226)."""
        return b"".join(self.proto_frames(ids) if proto else self.frames(ids))

    def proto_frames(self, ids: dict[str, list[int]]) -> list[bytes]:
        """Each row as one protobuf frame (4-byte id = message id + 200), the same values as `frames`."""
        from ibapi.protobuf.MarketDepthL2_pb2 import MarketDepthL2
        from ibapi.protobuf.TickByTickData_pb2 import TickByTickData
        from ibapi.protobuf.TickPrice_pb2 import TickPrice
        from ibapi.protobuf.TickSize_pb2 import TickSize
        md, tbt, dp = (ids.get(k, []) for k in ("mktdata", "ticks", "depth"))
        out = []
        for msg_id, slot, rest in self.rows:
            if msg_id == TICK_PRICE:
                m = TickPrice(reqId=md[slot], tickType=rest[0], price=float(rest[1]), size=str(rest[2]),
                              attrMask=rest[3])
            elif msg_id == TICK_SIZE:
                m = TickSize(reqId=md[slot], tickType=rest[0], size=str(rest[1]))
            elif msg_id == TICK_BY_TICK:
                m = TickByTickData(reqId=tbt[slot], tickType=rest[0])
                if rest[0] == 3:
                    h = m.historicalTickBidAsk
                    h.time, h.priceBid, h.priceAsk = rest[1], float(rest[2]), float(rest[3])
                    h.sizeBid, h.sizeAsk = str(rest[4]), str(rest[5])
                    h.tickAttribBidAsk.bidPastLow = bool(rest[6] & 1)
                elif rest[0] in (1, 2):
                    h = m.historicalTickLast
                    h.time, h.price, h.size = rest[1], float(rest[2]), str(rest[3])
                    h.tickAttribLast.pastLimit = bool(rest[4] & 1)
                    h.exchange, h.specialConditions = rest[5], rest[6]
                else:
                    h = m.historicalTickMidPoint
                    h.time, h.price = rest[1], float(rest[2])
            elif msg_id == MARKET_DEPTH_L2:
                m = MarketDepthL2(reqId=dp[slot])
                d = m.marketDepthData
                d.position, d.marketMaker, d.operation, d.side = rest[0], rest[1], rest[2], rest[3]
                d.price, d.size, d.isSmartDepth = float(rest[4]), str(rest[5]), bool(rest[6])
            else:
                raise ValueError(f"no protobuf form for message {msg_id} in the bench")
            body = m.SerializeToString()
            out.append(struct.pack("!II", len(body) + 4, msg_id + PROTOBUF_MSG_ID) + body)
        return out


def final_quotes(rows: list[tuple[int, int, tuple]], sent: int) -> dict[int, list[float]]:
    """{slot: [bid, ask]} after the first `sent` rows of `rows` sent over and over (a cycle)."""
    out: dict[int, list] = {}
    n = len(rows)
    for i in range(sent - 1, max(-1, sent - 1 - n), -1):
        msg_id, slot, rest = rows[i % n]
        if msg_id == TICK_PRICE and rest[0] in (BID, ASK):
            side = out.setdefault(slot, [None, None])
            k = 0 if rest[0] == BID else 1
            if side[k] is None:
                side[k] = float(rest[1])
    return out


def _prices(rng, n: int, start: float) -> np.ndarray:
    return np.round(start + np.cumsum(rng.choice((-0.01, 0.0, 0.01), n)), 2)


def l1_burst(n: int, instruments: int = 8, seed: int = 1) -> Burst:
    """tickPrice/tickSize across `instruments`: bid/ask quotes (with sizes), size-only updates, trades."""
    rng = np.random.default_rng([seed, 1])
    which = rng.integers(0, instruments, n)
    roll = rng.random(n)
    mids = _prices(rng, n, 100.0)
    sizes = rng.integers(1, 50, n) * 100
    rows = []
    counts = {"tick_price": 0, "tick_size": 0, "size_after_price": 0}
    for i in range(n):
        slot, r = int(which[i]), roll[i]
        mid = mids[i] + slot * 10
        if r < 0.25:
            rows.append((TICK_PRICE, slot, (BID, f"{mid - 0.01:.2f}", sizes[i], 0)))
        elif r < 0.5:
            rows.append((TICK_PRICE, slot, (ASK, f"{mid + 0.01:.2f}", sizes[i], 0)))
        elif r < 0.6:
            rows.append((TICK_PRICE, slot, (LAST, f"{mid:.2f}", sizes[i], 0)))
        elif r < 0.75:
            rows.append((TICK_SIZE, slot, (BID_SIZE, sizes[i])))
        elif r < 0.9:
            rows.append((TICK_SIZE, slot, (ASK_SIZE, sizes[i])))
        else:
            rows.append((TICK_SIZE, slot, (VOLUME, int(sizes[i]) * 37 + i)))
        if rows[-1][0] == TICK_PRICE:
            counts["tick_price"] += 1
            counts["size_after_price"] += 1          # every price type used here carries a size
        else:
            counts["tick_size"] += 1
    return Burst(rows, counts)


TBT_KINDS = ("BidAsk", "AllLast", "MidPoint")


def tbt_burst(n: int, kinds: tuple[str, ...], seed: int = 2) -> Burst:
    """tick-by-tick frames, one subscription per entry of `kinds` (BidAsk, AllLast/Last, MidPoint)."""
    rng = np.random.default_rng([seed, 2])
    which = rng.integers(0, len(kinds), n)
    mids = _prices(rng, n, 50.0)
    sizes = rng.integers(1, 30, n) * 100
    t0 = 1709650800
    rows = []
    counts = {"tick_by_tick": n}
    for i in range(n):
        slot = int(which[i])
        kind, mid, t = kinds[slot], mids[i] + slot * 10, t0 + i // 1000
        if kind == "BidAsk":
            rows.append((TICK_BY_TICK, slot, (3, t, f"{mid - 0.01:.2f}", f"{mid + 0.01:.2f}", sizes[i],
                                               sizes[-i - 1], 0)))
        elif kind in ("AllLast", "Last"):
            rows.append((TICK_BY_TICK, slot, (2 if kind == "AllLast" else 1, t, f"{mid:.2f}", sizes[i], 0,
                                               "NYSE" if i % 3 else "ARCA", "")))
        else:
            rows.append((TICK_BY_TICK, slot, (4, t, f"{mid:.3f}")))
    return Burst(rows, counts)


MAKERS = ("NSDQ", "ARCA", "BATS", "EDGX")


def _depth_price(b: int, s: int, k: int) -> str:
    """Book b's price k ticks from its mid: side 1 (bid) below, side 0 (ask) above."""
    mid = 100.0 + 10 * b
    return f"{mid - 0.01 * k:.2f}" if s == 1 else f"{mid + 0.01 * k:.2f}"


def book_fills(books: int, rows_per_side: int = 10) -> list[tuple[int, int, tuple]]:
    """The inserts that fill `books` books with `rows_per_side` levels a side (level p at p + 1 ticks)."""
    return [(MARKET_DEPTH_L2, b, (p, MAKERS[p % 4], 0, s, _depth_price(b, s, p + 1), 100 * (p + 1), 1))
            for b in range(books) for s in (0, 1) for p in range(rows_per_side)]


def depth_burst(n: int, books: int = 4, rows_per_side: int = 10, seed: int = 3) -> Burst:
    """updateMktDepthL2 on `books` books of `rows_per_side` levels: the books are filled, then updated
    (sizes), with levels deleted and inserted so that every operation is valid and nothing crosses."""
    rng = np.random.default_rng([seed, 3])
    grid = 2 * rows_per_side
    # side 1 (bid): prices mid - k*tick, best first; side 0 (ask): mid + k*tick. A side holds grid steps k.
    held = {(b, s): list(range(1, rows_per_side + 1)) for b in range(books) for s in (0, 1)}
    makers, price = MAKERS, _depth_price
    rows = book_fills(books, rows_per_side)
    ops = rng.random(n)
    picks = rng.integers(0, 1 << 30, n)
    sizes = rng.integers(1, 100, n) * 100
    while len(rows) < n:
        i = len(rows)
        b, s = int(picks[i] % books), int(picks[i] // books % 2)
        levels = held[(b, s)]
        r = ops[i]
        if r < 0.7 or (r < 0.85 and len(levels) <= rows_per_side // 2) or (r >= 0.85 and len(levels) >= rows_per_side):
            p = int(picks[i] // 8 % len(levels))
            rows.append((MARKET_DEPTH_L2, b, (p, makers[p % 4], 1, s, price(b, s, levels[p]), sizes[i], 1)))
        elif r < 0.85:                                               # delete a level
            p = int(picks[i] // 8 % len(levels))
            k = levels.pop(p)
            rows.append((MARKET_DEPTH_L2, b, (p, makers[p % 4], 2, s, price(b, s, k), 0, 1)))
        else:                                                        # insert a level that is not held
            free = [k for k in range(1, grid + 1) if k not in levels]
            k = free[int(picks[i] // 8 % len(free))]
            p = sum(1 for h in levels if h < k)
            if p >= rows_per_side:
                p = int(picks[i] // 8 % len(levels))
                rows.append((MARKET_DEPTH_L2, b, (p, makers[p % 4], 1, s, price(b, s, levels[p]), sizes[i], 1)))
                continue
            levels.insert(p, k)
            rows.append((MARKET_DEPTH_L2, b, (p, makers[p % 4], 0, s, price(b, s, k), sizes[i], 1)))
    return Burst(rows, {"depth": len(rows)})


TBT_SUBSCRIPTIONS = ("BidAsk", "AllLast", "BidAsk", "MidPoint")


def make_burst(variant: str, n: int, instruments: int = 8) -> Burst:
    if variant == "l1":
        return l1_burst(n, instruments)
    if variant == "tbt":
        return tbt_burst(n, TBT_SUBSCRIPTIONS)
    if variant == "depth":
        return depth_burst(n)
    raise ValueError(f"unknown burst variant {variant!r}")


def mixed_stream(n: int, quotes: int = 200, books: int = 20, rings: int = 20, bars: int = 20,
                 rows_per_side: int = 10, seed: int = 4) -> tuple[Burst, Burst]:
    """The memory case's stream as (prologue, body): the prologue fills the books once; the body — sent
    again and again — is 70% L1 ticks over `quotes` instruments, 10% tick-by-tick over `rings`
    subscriptions, 10% size updates on the filled books' levels (same prices, so valid at any repeat) and
    10% historicalDataUpdate of the current 1-minute bar on `bars` bar series, interleaved at random."""
    rng = np.random.default_rng([seed, 4])
    parts = [l1_burst(n - 3 * (n // 10), quotes),
             tbt_burst(n // 10, tuple(TBT_KINDS[i % 3] for i in range(rings))),
             _book_updates(n // 10, books, rows_per_side, rng), _bar_updates(n // 10, bars, rng)]
    order = rng.permutation(np.repeat(np.arange(len(parts)), [len(p.rows) for p in parts]))
    cursors = [iter(p.rows) for p in parts]
    counts: dict[str, int] = {}
    for p in parts:
        for k, v in p.counts.items():
            counts[k] = counts.get(k, 0) + v
    prologue = book_fills(books, rows_per_side)
    return Burst(prologue, {"depth": len(prologue)}), Burst([next(cursors[k]) for k in order], counts)


def _book_updates(n: int, books: int, rows_per_side: int, rng) -> Burst:
    picks = rng.integers(0, books * 2 * rows_per_side, n)
    sizes = rng.integers(1, 100, n) * 100
    rows = []
    for i in range(n):
        b, rest = divmod(int(picks[i]), 2 * rows_per_side)
        s, p = divmod(rest, rows_per_side)
        rows.append((MARKET_DEPTH_L2, b, (p, MAKERS[p % 4], 1, s, _depth_price(b, s, p + 1), sizes[i], 1)))
    return Burst(rows, {"depth": n})


def _bar_updates(n: int, bars: int, rng) -> Burst:
    """historicalDataUpdate of the bar after the history's last (the first one appends it, the rest replace)."""
    which = rng.integers(0, bars, n)
    moves = rng.integers(0, 10, n)
    rows = []
    for i in range(n):
        slot, o = int(which[i]), 100.0 + int(which[i])
        c = o + 0.01 * int(moves[i])
        rows.append((HISTORICAL_DATA_UPDATE, slot, (i, UPDATE_BAR_DATE, f"{o:.2f}", f"{c:.2f}", f"{o + 0.1:.2f}",
                                                     f"{o - 0.1:.2f}", f"{(o + c) / 2:.3f}", 1000 + i)))
    return Burst(rows, {"bar_update": n})
