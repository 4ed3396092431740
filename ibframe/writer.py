"""The outgoing writer: paces every message to TWS so the gateway never counts too many in a second.

Owns: the queue of outgoing frames (orders and cancels first, then everything else, FIFO within
each), the token bucket that decides when the next one may leave, the writer thread that sends
what had to wait, and the record of what was never sent (`dropped()`).

TWS allows `limit` messages (50 by default) in any 1-second window and answers more with error 100,
then disconnects. The gateway measures on its own clock, at arrival, so the client keeps a margin:
the bucket refills at RATE_SHARE * limit per second and holds at most BURST_SHARE * limit tokens.
Any 1-second window of sends then holds at most 0.1L + 0.7L = 0.8L messages (40 of 50), and any
window of 1 + SKEW_ALLOWANCE seconds at most 0.1L + 0.77L < L: the gateway may see the sends
squeezed together by up to SKEW_ALLOWANCE (network jitter, a late read, the writer thread
woken late) and still counts at most `limit` in its second. (0.7 rather than 0.8: a gateway that
counts at processing time and stalls — a loaded machine, a GC pause — for up to ~0.28 s still sees
no more than `limit`; measured against the simulator on a loaded 2-core CI box.) The bucket runs on integer
nanoseconds (GCRA: one "theoretical arrival time"), so the bound holds exactly, with no float drift.

Fast path: with nothing queued and a token free, the caller's thread sends at once (no hand-off, no
added latency under the limit). Otherwise the frame is queued and the caller returns at once: the
caller (the dispatch thread) never sleeps or waits on pacing.

Must never: sleep or wait on the caller's thread; reorder two orders/cancels or two other messages;
send a frame after `close()` (a closed writer's queue is dropped and reported, never sent later or
on another socket); interpret a message beyond its id (and an order's id, for the drop report).
"""
from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ibapi.common import PROTOBUF_MSG_ID
from ibapi.message import OUT
from ibapi.server_versions import (MIN_SERVER_VER_CME_TAGGING_FIELDS, MIN_SERVER_VER_ORDER_CONTAINER,
                                   MIN_SERVER_VER_PROTOBUF)

log = logging.getLogger("ibframe.writer")

DEFAULT_LIMIT = 50            # TWS: 50 messages per second per client (more for some accounts)
RATE_SHARE = 0.7              # steady rate: 0.7 * limit per second
BURST_SHARE = 0.1             # tokens saved while idle: 0.1 * limit (at least 1)
SKEW_ALLOWANCE = 0.1          # seconds by which the gateway may see our sends squeezed and still count <= limit
WARN_AFTER = 1.0              # a message that waited longer than this is worth a warning ...
WARN_EVERY = 5.0              # ... at most once per this many seconds
ORDER_IDS = frozenset({OUT.PLACE_ORDER, OUT.CANCEL_ORDER, OUT.REQ_GLOBAL_CANCEL})   # sent first

NS = 1_000_000_000

Dropped = tuple[int, "int | None"]      # (OUT message id, order id for a place/cancel)


# --- reading a frame -------------------------------------------------------------------------------

def message_id(frame: bytes, raw_ids: bool) -> int:
    """The OUT id of a framed message as ibapi's EClient.sendMsg built it (length prefix, then the id:
    4 binary bytes when `raw_ids` (server >= MIN_SERVER_VER_PROTOBUF), else text up to the first NUL);
    protobuf messages (id + PROTOBUF_MSG_ID) give the plain OUT id. -1 when unreadable."""
    try:
        if raw_ids:
            raw = int.from_bytes(frame[4:8], "big")
        else:
            raw = int(frame[4:frame.index(b"\0", 4)])
    except ValueError:
        return -1
    return raw - PROTOBUF_MSG_ID if raw > PROTOBUF_MSG_ID else raw


def order_id_of(frame: bytes, server_version: int) -> int | None:
    """The order id a PLACE_ORDER or CANCEL_ORDER frame carries (None for anything else or unreadable)."""
    raw_ids = server_version >= MIN_SERVER_VER_PROTOBUF
    msg_id = message_id(frame, raw_ids)
    if msg_id not in (OUT.PLACE_ORDER, OUT.CANCEL_ORDER):
        return None
    try:
        if raw_ids:
            raw, body = int.from_bytes(frame[4:8], "big"), frame[8:]
            if raw > PROTOBUF_MSG_ID:
                return _proto_order_id(msg_id, body)
            fields = body.split(b"\0")
        else:
            fields = frame[4:].split(b"\0")[1:]
        if msg_id == OUT.PLACE_ORDER:
            skip = 1 if server_version < MIN_SERVER_VER_ORDER_CONTAINER else 0      # a VERSION field first
        else:
            skip = 1 if server_version < MIN_SERVER_VER_CME_TAGGING_FIELDS else 0
        return int(fields[skip])
    except (ValueError, IndexError):
        return None


def _proto_order_id(msg_id: int, body: bytes) -> int | None:
    from google.protobuf.message import DecodeError
    if msg_id == OUT.PLACE_ORDER:
        from ibapi.protobuf.PlaceOrderRequest_pb2 import PlaceOrderRequest as Request
    else:
        from ibapi.protobuf.CancelOrderRequest_pb2 import CancelOrderRequest as Request
    try:
        request = Request.FromString(body)
    except DecodeError:
        return None
    return request.orderId if request.HasField("orderId") else None


# --- pacing ----------------------------------------------------------------------------------------

class TokenBucket:
    """A token bucket as GCRA on integer nanoseconds: `rate` tokens per second, at most `burst` saved.

    In any span of D seconds it lets through at most burst + ceil(D * rate) - 1 messages."""

    __slots__ = ("interval_ns", "tolerance_ns", "tat")

    def __init__(self, rate: float, burst: int):
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs a positive rate and a burst of at least 1 (got {rate}, {burst})")
        self.interval_ns = math.ceil(NS / rate)                                   # rounded up: never faster
        self.tolerance_ns = (burst - 1) * self.interval_ns
        self.tat = -(1 << 62)                                                     # full at start

    def wait_ns(self, now_ns: int) -> int:
        """Nanoseconds until a token is free (0: one is free now)."""
        return max(0, self.tat - self.tolerance_ns - now_ns)

    def take(self, now_ns: int) -> None:
        """Spend a token at `now_ns` (the caller checked wait_ns(now_ns) == 0)."""
        self.tat = max(self.tat, now_ns) + self.interval_ns


def bucket_for(limit: int) -> TokenBucket:
    """The bucket that keeps any 1 s window at or under 0.8 * limit (see the module docstring)."""
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"the outgoing message limit must be a whole number of messages per second >= 1, "
                         f"got {limit!r}; TWS's is 50 (set it higher only if IB raised it for your account)")
    return TokenBucket(RATE_SHARE * limit, max(1, int(BURST_SHARE * limit)))


@dataclass(slots=True)
class Outgoing:
    """One queued frame."""
    frame: bytes
    msg_id: int
    queued_ns: int


class PacedQueue:
    """Two FIFO queues (orders/cancels, then the rest) behind one token bucket. Not thread-safe:
    the writer holds its lock around every call. Kept apart from the thread so it can be run on a
    virtual clock (tests)."""

    def __init__(self, limit: int):
        self.bucket = bucket_for(limit)
        self.orders: collections.deque[Outgoing] = collections.deque()
        self.others: collections.deque[Outgoing] = collections.deque()

    def __len__(self) -> int:
        return len(self.orders) + len(self.others)

    def admit_now(self, now_ns: int) -> bool:
        """True (and the token is spent) when a new message may go at once: nothing queued, a token free."""
        if self.orders or self.others:
            return False
        bucket = self.bucket                     # TokenBucket.wait_ns and take, inlined: this is the hot path
        tat = bucket.tat
        if tat - bucket.tolerance_ns > now_ns:
            return False
        bucket.tat = (tat if tat > now_ns else now_ns) + bucket.interval_ns
        return True

    def push(self, item: Outgoing) -> None:
        (self.orders if item.msg_id in ORDER_IDS else self.others).append(item)

    def pop_ready(self, now_ns: int) -> tuple[Outgoing | None, int | None]:
        """(the next message, 0) when its token is free (spent), else (None, ns to wait); (None, None) if empty."""
        queue = self.orders or self.others
        if not queue:
            return None, None
        wait = self.bucket.wait_ns(now_ns)
        if wait:
            return None, wait
        self.bucket.take(now_ns)
        return queue.popleft(), 0

    def oldest_ns(self) -> int | None:
        heads = [q[0].queued_ns for q in (self.orders, self.others) if q]
        return min(heads) if heads else None

    def take_all(self) -> list[Outgoing]:
        items = list(self.orders) + list(self.others)
        self.orders.clear()
        self.others.clear()
        return items


# --- the writer ------------------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class WriterStats:
    """What the writer is doing, at one instant."""
    limit: int
    queued_orders: int          # orders and cancels waiting
    queued_other: int           # everything else waiting
    sent: int                   # messages handed to the socket
    waited: int                 # of those, how many had to queue first
    longest_wait: float         # seconds, the longest any sent message waited
    current_wait: float         # seconds the oldest queued message has waited so far (0 when none)
    dropped: int                # messages never sent (closed or the socket failed with them queued)
    running: bool               # the writer thread is alive

    @property
    def queued(self) -> int:
        return self.queued_orders + self.queued_other


class OutgoingWriter:
    """Sends framed messages through `send` (a socket's sendall), paced; see the module docstring.

    `submit` may be called from any thread and never waits on pacing. `on_dropped`, when set, is called
    with the list of (msg id, order id) dropped at once (from the thread that saw the close or the failure).
    """

    def __init__(self, send: Callable[[bytes], object], limit: int = DEFAULT_LIMIT, server_version: int = 0,
                 clock: Callable[[], int] = time.monotonic_ns, name: str = "ibframe-writer"):
        self.limit = limit
        self.server_version = server_version
        self.on_dropped: Callable[[list[Dropped]], None] | None = None
        self._send = send
        self._clock = clock
        self._raw_ids = server_version >= MIN_SERVER_VER_PROTOBUF
        self._queue = PacedQueue(limit)
        self._lock = threading.Lock()              # taken directly on the hot path (cheaper than the Condition)
        self._cond = threading.Condition(self._lock)
        self._in_flight = False          # a frame is being written (by the caller or the thread)
        self._closed = False
        self._draining = 0               # threads waiting in drain()
        self._sent = 0
        self._waited = 0
        self._longest_ns = 0
        self._dropped: list[Dropped] = []
        self._warned_ns: int | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- any thread -------------------------------------------------------------------------------
    def submit(self, frame: bytes) -> None:
        """Send `frame` now if the pace allows and nothing waits, else queue it; returns at once either way."""
        now = self._clock()
        late = None
        with self._lock:
            if not self._closed and not self._in_flight and self._queue.admit_now(now):
                self._in_flight = True               # the fast path: this thread writes it, now
            else:
                item = Outgoing(frame, message_id(frame, self._raw_ids), now)
                if not self._closed:
                    was_idle = not self._queue and not self._in_flight
                    self._queue.push(item)
                    if was_idle:
                        self._cond.notify_all()
                    return
                late = item
        if late is not None:
            self._drop([late], "the writer is closed")
            return
        try:
            self._send(frame)
        except Exception as exc:
            self._failed(Outgoing(frame, message_id(frame, self._raw_ids), now), exc)
            return
        with self._lock:
            self._in_flight = False
            self._sent += 1
            if self._draining or self._queue.orders or self._queue.others:
                self._cond.notify_all()

    def stats(self) -> WriterStats:
        now = self._clock()
        with self._lock:
            oldest = self._queue.oldest_ns()
            return WriterStats(self.limit, len(self._queue.orders), len(self._queue.others), self._sent,
                               self._waited, self._longest_ns / NS,
                               0.0 if oldest is None else max(0, now - oldest) / NS,
                               len(self._dropped), self._thread.is_alive())

    def dropped(self) -> list[Dropped]:
        """Every message never sent, in queue order: (OUT id, order id for PLACE_ORDER/CANCEL_ORDER else None)."""
        with self._lock:
            return list(self._dropped)

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` s until everything queued was sent; True if it was. For a deliberate
        close from a thread that may wait (never the dispatch thread: it is what fills the queue)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("drain() called on the writer's own thread would wait for itself")
        with self._lock:
            self._draining += 1
            try:
                return self._cond.wait_for(lambda: self._closed or (not self._queue and not self._in_flight),
                                           timeout) and not self._closed
            finally:
                self._draining -= 1

    def close(self, reason: str = "the connection closed") -> None:
        """Stop: the thread ends and whatever is still queued is dropped (reported, never sent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            items = self._queue.take_all()
            self._cond.notify_all()
        self._drop(items, reason)

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end (after close) and any frame being written by it; True if it did."""
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def closed(self) -> bool:
        return self._closed

    # --- the writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._closed:
                        return
                    wait_ns = None
                    if not self._in_flight:
                        item, wait_ns = self._queue.pop_ready(self._clock())
                        if item is not None:
                            break
                    self._cond.wait(None if wait_ns is None else wait_ns / NS)
                self._in_flight = True
            try:
                self._send(item.frame)
            except Exception as exc:
                self._failed(item, exc)
                return
            waited = self._clock() - item.queued_ns
            with self._lock:
                self._in_flight = False
                self._sent += 1
                self._waited += 1
                self._longest_ns = max(self._longest_ns, waited)
                queued = len(self._queue)
                if self._draining:
                    self._cond.notify_all()
            if waited > WARN_AFTER * NS:
                self._warn_slow(waited, queued)

    def _warn_slow(self, waited_ns: int, queued: int) -> None:
        now = self._clock()
        if self._warned_ns is not None and now - self._warned_ns < WARN_EVERY * NS:
            return
        self._warned_ns = now
        rate = RATE_SHARE * self.limit
        log.warning("outgoing messages wait for IB's pacing: the last one waited %.1fs, %d still queued (about %.0fs "
                    "more at %g/s). TWS allows %d messages per second; send fewer at once, or raise the limit only "
                    "if IB raised it for your account", waited_ns / NS, queued, queued / rate, rate, self.limit)

    # --- failures and drops -----------------------------------------------------------------------
    def _failed(self, item: Outgoing, exc: Exception) -> None:
        """The socket refused a frame: close, and report it with everything queued behind it."""
        with self._lock:
            already = self._closed
            self._closed = True
            self._in_flight = False
            items = [item] + self._queue.take_all()
            self._cond.notify_all()
        if not already and not isinstance(exc, OSError):
            log.error("the outgoing writer failed on a message (%s: %s); the connection can send no more",
                      type(exc).__name__, exc)
        self._drop(items, f"the socket failed ({type(exc).__name__}: {exc})")

    def _drop(self, items: list[Outgoing], reason: str) -> None:
        if not items:
            return
        entries = [(i.msg_id, order_id_of(i.frame, self.server_version)) for i in items]
        with self._lock:
            self._dropped.extend(entries)
        orders = [oid for msg_id, oid in entries if msg_id in ORDER_IDS]
        if orders:
            ids = [str(o) for o in orders if o is not None] or ["none: a global cancel"]
            shown = ", ".join(ids[:10]) + (", …" if len(ids) > 10 else "")
            log.warning("%d outgoing messages were not sent (%s), %d of them orders or cancels (order ids %s): "
                        "they will not be sent later; check those orders after reconnecting", len(entries), reason,
                        len(orders), shown)
        else:
            log.info("%d outgoing messages were not sent (%s); none was an order or a cancel", len(entries), reason)
        if self.on_dropped is not None:
            try:
                self.on_dropped(entries)
            except Exception:
                log.exception("the writer's on_dropped hook failed")
