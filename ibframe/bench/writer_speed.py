"""Case 9: the outgoing writer — no added latency under the limit, and a burst that never trips TWS.

Owns: the parts
  * latency — two loopback TCP connections to one receiver in this process; the same order-sized frames
              go alternately straight through `sendall` on one and through an `OutgoingWriter` at the
              default limit (50/s) on the other, one every 13 ms (so each side stays under the limit).
              Each message is timed from the call to its arrival at the receiver (perf_counter_ns, one
              clock); reported as p50 per side and their ratio (peers in the same run), plus what the
              call itself costs the caller;
  * burst   — 1,000 placeOrder frames (200 with --quick) handed to a writer at once, as one callback
              would: how long the caller was busy, how long the burst took to arrive, and the most
              messages the receiver saw in any 1-second window (TWS's count; the limit is 50).
Must never: count a run in which a message was lost or out of order, a latency message had to queue
(it would measure pacing, not latency), or the receiver saw more than the limit in a second.
"""
from __future__ import annotations

import logging
import socket
import statistics
import threading
import time

from ..connection import split_frames          # imported up front: not on the receiver's clock
from ..writer import BURST_SHARE, RATE_SHARE, OutgoingWriter
from . import Row, all_verified, values

TITLE = "outgoing writer (fast path vs sendall; a paced order burst)"
LIMIT = 50
SPACING = 0.015                  # seconds between messages (alternating sides): each side 1 per 30 ms < 35/s: the fast path


def parts(quick: bool) -> list[str]:
    return ["latency", "burst"]


def messages(quick: bool) -> int:
    return 100 if quick else 400         # per side in "latency"


def burst_size(quick: bool) -> int:
    return 200 if quick else 1_000


def repeats(part: str, quick: bool) -> int | None:
    return 1 if quick and part == "burst" else None


class _Receiver:
    """A loopback listener that timestamps every whole frame as it arrives, per connection."""

    def __init__(self, connections: int):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(connections)
        self.port = self.server.getsockname()[1]
        self.arrivals: list[list[tuple[int, bytes]]] = [[] for _ in range(connections)]
        self.cond = threading.Condition()
        self.threads = []
        for slot in range(connections):
            thread = threading.Thread(target=self._serve, args=(slot,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _serve(self, slot: int) -> None:
        conn, _ = self.server.accept()
        buffer = bytearray()
        with conn:
            while chunk := conn.recv(262144):
                now = time.perf_counter_ns()
                buffer += chunk
                frames, used = split_frames(buffer)
                del buffer[:used]
                with self.cond:
                    self.arrivals[slot].extend((now, f) for f in frames)
                    self.cond.notify_all()

    def wait_for(self, slot: int, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.arrivals[slot]) >= count, timeout)

    def close(self) -> None:
        self.server.close()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _order_frame(order_id: int) -> bytes:
    """A placeOrder-sized text frame (about 330 bytes, as ibapi's for a limit order at server version 176)."""
    from ibapi import comm
    from ibapi.message import OUT
    fields = [order_id, 265598, "AAPL", "STK", "", 0.0, "", "", "SMART", "", "USD", "", "", "BUY", 100, "LMT",
              189.5] + [""] * 60 + [0] * 60
    return comm.make_msg(OUT.PLACE_ORDER, False, "".join(comm.make_field(f) for f in fields))


def run(part: str, quick: bool) -> dict:
    return _latency(quick) if part == "latency" else _burst(quick)


def _latency(quick: bool) -> dict:
    n = messages(quick)
    receiver = _Receiver(2)
    plain, paced = _connect(receiver.port), _connect(receiver.port)
    writer = OutgoingWriter(paced.sendall, LIMIT, server_version=176)
    try:
        plain.sendall(_order_frame(-1))           # a first frame that says which receiver slot is which socket
        paced.sendall(_order_frame(-2))
        if not (receiver.wait_for(0, 1, 10) and receiver.wait_for(1, 1, 10)):
            return {"values": {}, "verified": False, "detail": "the receiver did not get both connections"}
        slots = {"plain": 0 if receiver.arrivals[0][0][1] == _order_frame(-1)[4:] else 1}
        slots["paced"] = 1 - slots["plain"]
        latency = {"plain": [], "paced": []}
        cost = {"plain": [], "paced": []}
        sides = (("plain", plain.sendall), ("paced", writer.submit))
        for i in range(1, n + 1):
            for side, send in (sides if i % 2 else sides[::-1]):      # alternate who goes first
                frame = _order_frame(i)
                started = time.perf_counter_ns()
                send(frame)
                returned = time.perf_counter_ns()
                if not receiver.wait_for(slots[side], i + 1, 5):
                    return {"values": {}, "verified": False, "detail": f"{side} message {i} did not arrive"}
                arrived = receiver.arrivals[slots[side]][i][0]
                latency[side].append((arrived - started) / 1000.0)
                cost[side].append((returned - started) / 1000.0)
                time.sleep(SPACING)
        stats = writer.stats()
    finally:
        writer.close()
        for sock in (plain, paced):
            sock.close()
        receiver.close()
    in_order = all([f for _, f in receiver.arrivals[slots[s]][1:]] == [_order_frame(i)[4:] for i in range(1, n + 1)]
                   for s in ("plain", "paced"))
    ok = in_order and stats.waited == 0 and stats.dropped == 0 and stats.sent == n
    p50 = {side: statistics.median(latency[side]) for side in latency}
    return {"values": {"sendall_p50_us": p50["plain"], "writer_p50_us": p50["paced"],
                       "ratio": p50["paced"] / p50["plain"],
                       "sendall_call_us": statistics.median(cost["plain"]),
                       "writer_call_us": statistics.median(cost["paced"])},
            "verified": ok,
            "detail": f"{n} messages per side, {stats.waited} had to queue, in order: {in_order}"}


def _burst(quick: bool) -> dict:
    n = burst_size(quick)
    logging.getLogger("ibframe.writer").setLevel(logging.ERROR)      # its "messages wait" warning is expected here
    receiver = _Receiver(1)
    sock = _connect(receiver.port)
    writer = OutgoingWriter(sock.sendall, LIMIT, server_version=176)
    frames = [_order_frame(i) for i in range(1, n + 1)]
    try:
        started = time.perf_counter_ns()
        for frame in frames:
            writer.submit(frame)
        returned = time.perf_counter_ns()
        arrived = receiver.wait_for(0, n, n / (0.8 * LIMIT) + 30)
        stats = writer.stats()
    finally:
        writer.close()
        sock.close()
        receiver.close()
    times = [t for t, _ in receiver.arrivals[0]]
    peak, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= 1_000_000_000:
            lo += 1
        peak = max(peak, hi - lo + 1)
    in_order = [f for _, f in receiver.arrivals[0]] == [f[4:] for f in frames]
    ok = arrived and in_order and peak <= LIMIT and stats.dropped == 0
    return {"values": {"burst_s": (times[-1] - started) / 1e9 if times else 0.0,
                       "caller_ms": (returned - started) / 1e6, "peak_per_s": float(peak),
                       "longest_wait_s": stats.longest_wait},
            "verified": ok,
            "detail": f"{len(times)}/{n} arrived, in order: {in_order}, at most {peak} in any second"}


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    lat, bur = runs.get("latency", []), runs.get("burst", [])
    ok_lat, ok_bur = all_verified(lat), all_verified(bur)
    n, b = messages(quick), burst_size(quick)
    return [
        Row("straight sendall: call -> arrival (p50)", "us", values(lat, "sendall_p50_us"), ok_lat,
            f"{n} order-sized frames per side, loopback", digits=1),
        Row("through the writer under the limit (p50)", "us", values(lat, "writer_p50_us"), ok_lat,
            "fast path: sent on the caller's thread", digits=1),
        Row("writer / sendall (p50, same run)", "x", values(lat, "ratio"), ok_lat, "1.0 = no added latency",
            digits=2),
        Row("caller's cost per message: sendall", "us", values(lat, "sendall_call_us"), ok_lat, digits=1),
        Row("caller's cost per message: writer", "us", values(lat, "writer_call_us"), ok_lat, digits=1),
        Row(f"{b:,}-order burst: caller busy", "ms", values(bur, "caller_ms"), ok_bur,
            "the dispatch thread never waits on pacing", digits=1),
        Row(f"{b:,}-order burst: last arrival", "s", values(bur, "burst_s"), ok_bur,
            f"{RATE_SHARE * LIMIT:g}/s after a burst of {int(BURST_SHARE * LIMIT)}", digits=2),
        Row("most messages in any 1 s at the receiver", "msgs", values(bur, "peak_per_s"), ok_bur,
            f"TWS's limit {LIMIT}; target <= {int((RATE_SHARE + BURST_SHARE) * LIMIT)}"),
    ]
