"""TWS frames for the benchmarks: the few messages the burst server sends, encoded at server version 200.

Owns: length-prefixed text frames (message id as the first text field, as TWS sends below version 201),
the handshake answer, and the deterministic bursts (L1 ticks, tick-by-tick, L2 depth) with their
expected counts. A burst is generated with placeholder slots for the request ids, because the ids are
chosen by the client; `Burst.encode(ids)` fills them in.
Must never: import the framework (the server process stays light) or use unseeded randomness.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

SERVER_VERSION = 200
CONN_TIME = "20240305 10:00:00 US/Eastern"
ACCOUNT = "DU1234567"

# incoming (to the client) message ids, as in ibapi.message.IN
TICK_PRICE, TICK_SIZE, NEXT_VALID_ID, MARKET_DEPTH_L2, MANAGED_ACCTS, TICK_BY_TICK = 1, 2, 9, 13, 15, 99
# outgoing (from the client) message ids, as in ibapi.message.OUT
REQ_MKT_DATA, PLACE_ORDER, REQ_MKT_DEPTH, REQ_CURRENT_TIME, START_API, REQ_TICK_BY_TICK = 1, 3, 10, 49, 71, 97

BID, ASK, LAST = 1, 2, 4
BID_SIZE, ASK_SIZE, LAST_SIZE, VOLUME = 0, 3, 5, 8
SIZE_FOLLOWS = frozenset({BID, ASK, LAST})       # ibapi's decoder calls tickSize after these tickPrices


def frame(*fields) -> bytes:
    """One frame: 4-byte big-endian length, then NUL-terminated text fields."""
    body = "".join(f"{f}\x00" for f in fields).encode()
    return struct.pack("!I", len(body)) + body


def handshake_answer() -> bytes:
    return frame(SERVER_VERSION, CONN_TIME)


def startup_frames(next_order_id: int = 1) -> bytes:
    return frame(NEXT_VALID_ID, 1, next_order_id) + frame(MANAGED_ACCTS, 1, ACCOUNT)


def tick_price(req_id, tick_type: int, price: str, size: str = "100") -> bytes:
    return frame(TICK_PRICE, 6, req_id, tick_type, price, size, 0)


class FrameReader:
    """Cuts whole frames off a byte stream; `feed(chunk)` returns the new frames' text fields."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, chunk: bytes) -> list[list[str]]:
        self.buffer += chunk
        out, offset, end = [], 0, len(self.buffer)
        while end - offset >= 4:
            size = struct.unpack_from("!I", self.buffer, offset)[0]
            if end - offset - 4 < size:
                break
            payload = bytes(self.buffer[offset + 4:offset + 4 + size])
            out.append(payload.decode("latin-1").split("\0")[:-1])
            offset += 4 + size
        del self.buffer[:offset]
        return out


@dataclass(slots=True)
class Burst:
    """A burst as rows (message id, subscription slot, fields after the request id) and its message counts."""
    rows: list[tuple[int, int, tuple]]
    counts: dict[str, int] = field(default_factory=dict)

    def encode(self, ids: dict[str, list[int]]) -> bytes:
        """The frames with the client's request ids filled in (ids[kind][slot])."""
        md, tbt, dp = ids.get("mktdata", []), ids.get("ticks", []), ids.get("depth", [])
        pack = struct.pack
        parts = []
        for msg_id, slot, rest in self.rows:
            if msg_id == TICK_BY_TICK:
                head = (msg_id, tbt[slot])
            elif msg_id == MARKET_DEPTH_L2:
                head = (msg_id, 1, dp[slot])
            else:
                head = (msg_id, 6, md[slot])
            body = "".join([f"{f}\x00" for f in head] + [f"{f}\x00" for f in rest]).encode()
            parts.append(pack("!I", len(body)))
            parts.append(body)
        return b"".join(parts)


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


def depth_burst(n: int, books: int = 4, rows_per_side: int = 10, seed: int = 3) -> Burst:
    """updateMktDepthL2 on `books` books of `rows_per_side` levels: the books are filled, then updated
    (sizes), with levels deleted and inserted so that every operation is valid and nothing crosses."""
    rng = np.random.default_rng([seed, 3])
    grid = 2 * rows_per_side
    # side 1 (bid): prices mid - k*tick, best first; side 0 (ask): mid + k*tick. A side holds grid steps k.
    held = {(b, s): list(range(1, rows_per_side + 1)) for b in range(books) for s in (0, 1)}
    rows = []
    makers = ("NSDQ", "ARCA", "BATS", "EDGX")

    def price(b: int, s: int, k: int) -> str:
        mid = 100.0 + 10 * b
        return f"{mid - 0.01 * k:.2f}" if s == 1 else f"{mid + 0.01 * k:.2f}"

    for b in range(books):
        for s in (0, 1):
            for p, k in enumerate(held[(b, s)]):
                rows.append((MARKET_DEPTH_L2, b, (p, makers[p % 4], 0, s, price(b, s, k), 100 * (p + 1), 1)))
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
