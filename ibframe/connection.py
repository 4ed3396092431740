"""The connection to TWS / IB Gateway: an EClient whose socket is read by the dispatch thread itself.

Owns: the socket, the handshake, reading and framing what arrives, and the paced outgoing writer
(ibframe.writer). The dispatch thread watches the socket (Dispatcher.watch): when it is readable, one
recv, the whole frames cut off the buffer with a moving offset (no copy of the rest of the buffer per
message, unlike ibapi's EReader) and decoded at once with ibapi's own Decoder (the streaming
market-data messages with ibframe.decoding, which has the same effect, faster). No thread hands a
frame to another between the kernel and the strategy. Nothing here interprets a message.

Bad frames: every frame the client cannot use is counted once and logged once, whatever layer
refused it: `bad_frames` (the total) and `bad_frame_reasons` (a Counter) — "garbled" (decoding
or routing it raised), "unknown_id" (no such message id: never handed to ibapi, whose decoder
would report it as error 505), "ibapi_dropped" (ibapi's decoder logged and skipped it; its log
line is replaced by ours), "oversize" (a length prefix over MAX_MSG_LEN: a protocol failure
that resets the connection) and "bad_value" (the Router refused what it carried, e.g. a NaN
price; see router.py). Log lines are rate-limited per reason (BadFrameLog): the first
BAD_FRAME_FULL_LINES in full, then one summary line per reason at most every
BAD_FRAME_SUMMARY_EVERY seconds, so a flood cannot fill a disk.

Backpressure: the socket is read only when the dispatch thread is free to handle what it reads (one
recv of at most RECV_SIZE at a time), so when strategies fall behind, TWS's sends wait in the socket
buffers and memory stays bounded however long a burst lasts; nothing is dropped. How far behind the
socket the dispatch thread is (`current_lag`) is bounded from the last moment the socket was seen
with nothing unread (Watch.quiet_at).
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from ibapi import comm
from ibapi.client import EClient
from ibapi.common import PROTOBUF_MSG_ID
from ibapi.const import MAX_MSG_LEN
from ibapi.decoder import Decoder
from ibapi.message import OUT
from ibapi.server_versions import MAX_CLIENT_VER, MIN_CLIENT_VER, MIN_SERVER_VER_PROTOBUF

from .decoding import FastDecoder
from .decoding_proto import ProtoFastDecoder
from .dispatch import Dispatcher, Watch
from .order_encoding import encode_place_order
from .risk.gate import DOOR
from .writer import DEFAULT_LIMIT, OutgoingWriter, WriterStats

log = logging.getLogger("ibframe.connection")

RECV_SIZE = 262144                   # one recv, decoded before the next: at most this much read ahead
BAD_FRAME_REASONS = ("garbled", "unknown_id", "ibapi_dropped", "oversize", "bad_value")
BAD_FRAME_FULL_LINES = 20            # bad frames of one reason logged in full before lines are summarised
BAD_FRAME_SUMMARY_EVERY = 10.0       # seconds between summary lines of one reason


class BadFrame(ValueError):
    """Why a frame was not used, handed to the wrapper's `bad_message`; `reason` names its counter."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(slots=True)
class _ReasonLog:
    seen: int = 0                    # bad frames of this reason so far
    held: int = 0                    # not logged yet: the next summary line reports them
    summary_due: bool = False        # a summary is scheduled
    latest: str = ""


class BadFrameLog:
    """Logs bad frames by reason: the first `full_lines` of each in full, the rest as one summary line per reason
    at most every `summary_every` seconds (scheduled with `call_later(delay, fn)`). Never counts: the connection
    does. Runs on the dispatch thread only."""

    def __init__(self, logger: logging.Logger, call_later: Callable[[float, Callable], object],
                 full_lines: int = BAD_FRAME_FULL_LINES, summary_every: float = BAD_FRAME_SUMMARY_EVERY):
        self.logger = logger
        self.call_later = call_later
        self.full_lines = full_lines
        self.summary_every = summary_every
        self._reasons: dict[str, _ReasonLog] = {}

    def note(self, reason: str, detail: str, payload: bytes) -> None:
        entry = self._reasons.get(reason)
        if entry is None:
            entry = self._reasons[reason] = _ReasonLog()
        entry.seen += 1
        detail = detail if len(detail) <= 300 else detail[:300] + "…"
        level = logging.WARNING if reason == "bad_value" else logging.ERROR
        if entry.seen <= self.full_lines:
            more = (f" (further {reason} frames are summarised every {self.summary_every:g}s)"
                    if entry.seen == self.full_lines else "")
            self.logger.log(level, "bad frame from TWS skipped (%s): %s; frame %r%s", reason, detail,
                            bytes(payload[:120]), more)
            return
        entry.held += 1
        entry.latest = detail
        if not entry.summary_due:
            entry.summary_due = True
            self.call_later(self.summary_every, lambda: self.summarise(reason))

    def summarise(self, reason: str | None = None) -> None:
        """Log what was held back (of one reason, or of all): one line per reason."""
        for name, entry in list(self._reasons.items()):
            if reason is not None and name != reason:
                continue
            entry.summary_due = False
            if entry.held:
                level = logging.WARNING if name == "bad_value" else logging.ERROR
                self.logger.log(level, "%d more bad frames from TWS skipped (%s), %d in all; the latest: %s",
                                entry.held, name, entry.seen, entry.latest)
                entry.held = 0


class _Decoding(threading.local):
    conn: "IBConnection | None" = None           # the connection decoding a frame on this thread, if any


_DECODING = _Decoding()


class _IbapiDropFilter(logging.Filter):
    """On ibapi's decoder logger: an error it logs while an ibframe connection decodes a frame (e.g. "diff len
    fields and params", after which it skips the frame) marks that frame "ibapi_dropped"; the line itself is
    replaced by the connection's one. Outside a decode, records pass untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        conn = _DECODING.conn
        if conn is None or record.levelno < logging.WARNING:
            return True
        conn.frame_fault("ibapi_dropped", record.getMessage()[:200])
        return False


_IBAPI_DROP_FILTER = _IbapiDropFilter()
logging.getLogger("ibapi.decoder").addFilter(_IBAPI_DROP_FILTER)


class ConnectError(ConnectionError):
    """The gateway could not be reached or refused us; the text says what to check."""


class SocketTransport:
    """What EClient calls `conn`: hands each whole message to the paced OutgoingWriter (ibframe.writer),
    or, without a limit (benchmarks, `throttle=False`), straight to sendall. Never sleeps on pacing."""

    def __init__(self, sock: socket.socket, limit: int | None = DEFAULT_LIMIT, server_version: int = 0):
        self.socket: socket.socket | None = sock
        self.lock = threading.Lock()
        self.wrapper = None
        self.writer: OutgoingWriter | None = None
        if limit:
            self.writer = OutgoingWriter(self._sendall, limit, server_version or 0)

    def isConnected(self) -> bool:
        return self.socket is not None

    def sendMsg(self, msg: bytes) -> int:
        if self.writer is not None:
            self.writer.submit(msg)
            return len(msg)
        with self.lock:
            if self.socket is None:
                return 0
            self.socket.sendall(msg)
            return len(msg)

    def _sendall(self, msg: bytes) -> None:
        sock = self.socket
        if sock is None:
            raise ConnectionError("the connection to the gateway is closed")
        sock.sendall(msg)

    # --- the writer's state (all empty without a writer) -----------------------------------------------
    def stats(self) -> WriterStats | None:
        """Queue depths, messages sent and waited, the longest and the current wait; None without pacing."""
        return self.writer.stats() if self.writer is not None else None

    def dropped(self) -> list[tuple[int, int | None]]:
        """(OUT msg id, order id or None) of every message that was queued and never sent."""
        return self.writer.dropped() if self.writer is not None else []

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the queue to empty (a deliberate close; never on the dispatch thread)."""
        return self.writer.drain(timeout) if self.writer is not None else True

    def disconnect(self) -> None:
        """Close: the writer stops and drops what is queued (never sent later), then the socket closes."""
        if self.writer is not None:
            self.writer.close()
        with self.lock:
            sock, self.socket = self.socket, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)      # a sendall in progress on another thread fails now
            except OSError:
                pass
            if self.writer is not None:
                self.writer.join(1.0)            # its last frame, if one was being written, is done
            sock.close()


_LENGTH = struct.Struct("!I")


def split_frames(buffer: bytearray) -> tuple[list[bytes], int]:
    """Every whole frame in `buffer` and how many bytes they used; one pass, one copy per frame."""
    frames = []
    offset = 0
    data = bytes(buffer)                 # slicing bytes is cheaper than slicing a memoryview into bytes
    end = len(data)
    unpack = _LENGTH.unpack_from
    while end - offset >= 4:
        stop = offset + 4 + unpack(data, offset)[0]
        if stop > end:
            break
        frames.append(data[offset + 4:stop])
        offset = stop
    return frames, offset


class IBConnection(EClient):
    """EClient with ibframe's reader thread, paced writer and dispatch thread."""

    def __init__(self, wrapper, dispatcher: Dispatcher, throttle: bool = True, writer_limit: int = DEFAULT_LIMIT):
        super().__init__(wrapper)
        self.dispatcher = dispatcher
        self.use_throttle = throttle
        self.writer_limit = writer_limit     # TWS's messages/s for this account (ibframe.writer keeps under it)
        self.frames_received = 0
        self.bad_frames = 0                  # frames not used, whatever refused them (one per frame)
        self.bad_frame_reasons: Counter[str] = Counter()   # the same, by reason (BAD_FRAME_REASONS)
        self.bad_frame_log = BadFrameLog(log, dispatcher.call_later)
        self._fault: tuple[str, str] | None = None          # what refused the frame being decoded
        hooks = getattr(wrapper, "frame_fault_hooks", None)  # the Router reports bad values and ibapi's 505/508
        if isinstance(hooks, list):
            hooks.append(self.frame_fault)
        self.protocol_failures = 0           # framing errors that reset the connection (a frame over MAX_MSG_LEN)
        self.dispatch_lag = 0.0              # seconds the last decoded batch may have waited for the dispatch thread
        self.max_dispatch_lag = 0.0
        self.lag_warning = 1.0               # warn past this lag (connection.lag_warning in the YAML)
        self.lag_warnings = 0                # batches decoded later than lag_warning
        self._lag_warned_at = float("-inf")
        self.recorder = None                 # an ibframe.record.Recorder taps every frame in and message out
        self.after_frame = None              # fn(payload) called on the dispatch thread after each frame is handled
        self._fast: FastDecoder | None = None   # the hot market-data messages; ibapi's Decoder does the rest
        self._fast_proto: ProtoFastDecoder | None = None   # the same messages in protobuf form (version >= 206)
        self._inbox = bytearray()            # bytes read and not yet a whole frame (dispatch thread only)
        self._watch: Watch | None = None     # the socket's Watch: when it was last seen with nothing unread
        self._batch_since: float | None = None   # while a batch is decoded: the earliest its data can have come
        self.generation = 0                  # sockets opened so far (each reconnect opens one more)

    # --- connecting ---------------------------------------------------------------------------
    def open(self, host: str, port: int, client_id: int, timeout: float = 10.0) -> None:
        """Connect, negotiate the version and send START_API; raises ConnectError with advice."""
        where = f"{host}:{port}"
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except ConnectionRefusedError:
            raise ConnectError(f"could not connect to {where}: connection refused (502). Is TWS or IB Gateway "
                               f"running with 'Enable ActiveX and Socket Clients' on port {port}?") from None
        except socket.timeout:
            raise ConnectError(f"could not connect to {where}: no answer within {timeout:g}s") from None
        except OSError as exc:
            raise ConnectError(f"could not connect to {where}: {exc.strerror or exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hello = f"v{MIN_CLIENT_VER}..{MAX_CLIENT_VER}"
        if self.connectOptions:
            hello += " " + self.connectOptions
        sock.sendall(b"API\0" + comm.make_initial_msg(hello))
        buffer = bytearray()
        deadline = time.monotonic() + timeout
        fields: tuple = ()
        while len(fields) != 2:
            frames, used = split_frames(buffer)
            if frames:
                fields = comm.read_fields(frames[0])
                del buffer[:4 + len(frames[0])]
                continue
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                sock.close()
                raise ConnectError(f"{where} accepted the connection but never answered the API handshake; "
                                   f"is this a TWS API port?") from None
            if not chunk:
                sock.close()
                raise ConnectError(f"{where} closed the connection during the handshake (is clientId "
                                   f"{client_id} allowed? are API connections enabled?)")
            buffer += chunk
        self.serverVersion_ = int(fields[0])
        self.connTime = fields[1]
        self.clientId = client_id
        self.host, self.port = host, port
        sock.settimeout(None)
        self.conn = SocketTransport(sock, self.writer_limit if self.use_throttle else None, self.serverVersion_)
        self.decoder = Decoder(self.wrapper, self.serverVersion_)
        self.setConnState(EClient.CONNECTED)
        self.generation += 1                 # a late read of an earlier socket can no longer end this one
        generation = self.generation
        self.dispatcher.post(self._start_reading, bytes(buffer), generation)
        self.dispatcher.watch(sock, lambda watch: self._on_readable(watch, generation))
        self.startApi()
        log.info("connected to %s as client %d, server version %d", where, client_id, self.serverVersion_)

    # --- outgoing: tapped for the recorder before they leave ------------------------------------------
    def sendMsg(self, msgId: int, msg: str):
        if self.recorder is not None:
            self.recorder.outbound(msgId, msg)
        super().sendMsg(msgId, msg)

    def sendMsgProtoBuf(self, msgId: int, msg: bytes):
        if self.recorder is not None:
            self.recorder.outbound_proto(msgId, msg)
        super().sendMsgProtoBuf(msgId, msg)

    # --- the one door: placeOrder only with the risk gate's pass ---------------------------------------
    def placeOrder(self, orderId, contract, order):
        """Send an order only if the risk gate approved it: `OrderManager` takes a one-use pass for this
        (orderId, Order) from `ibframe.risk.gate.DOOR` after the gate, and only then calls here. Anything
        else (a hand call, a stale pass, an order changed since its check) raises UnapprovedOrder and sends
        nothing. What-if orders (`order.whatIf`) need no pass: TWS never works them."""
        DOOR.admit(self, orderId, order)
        text = encode_place_order(self.serverVersion_, orderId, contract, order) if self.isConnected() else None
        if text is None:                     # a feature the lean encoder leaves to ibapi, or not connected
            super().placeOrder(orderId, contract, order)
        else:                                # the same bytes ibapi would send (tests/test_order_encoding.py)
            self.sendMsg(OUT.PLACE_ORDER, text)

    # --- reading, on the dispatch thread ---------------------------------------------------------------
    def _start_reading(self, leftover: bytes, generation: int) -> None:
        """A new socket: what the handshake read beyond its answer starts the inbox (decoded if whole)."""
        if generation != self.generation:
            return
        self._inbox = bytearray(leftover)
        self._watch = None
        if leftover:
            self._consume(time.monotonic(), generation, None)

    def _on_readable(self, watch: Watch, generation: int) -> None:
        """The watched socket has data (or was closed): one recv, then every whole frame decoded."""
        if generation != self.generation:
            self.dispatcher.unwatch(watch.sock)
            return
        self._watch = watch
        since = watch.quiet_at
        try:
            chunk = watch.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.dispatcher.unwatch(watch.sock)
            self._connection_lost(generation)
            return
        read_at = time.monotonic()
        if len(chunk) < RECV_SIZE:
            watch.quiet_at = read_at         # the kernel had no more: anything read later came after now
        self._inbox += chunk
        self._consume(since, generation, watch.sock)

    def _consume(self, since: float, generation: int, sock: socket.socket | None) -> None:
        inbox = self._inbox
        frames, used = split_frames(inbox)
        if used:
            del inbox[:used]
            if self.recorder is not None:
                self.recorder.inbound(frames)
            self._batch_since = since
            try:
                self._note_lag(time.monotonic() - since)
                self._decode_batch(frames)
            finally:
                self._batch_since = None
        if len(inbox) >= 4 and _LENGTH.unpack_from(inbox)[0] > MAX_MSG_LEN and generation == self.generation:
            self._protocol_failure(sock, inbox)

    @staticmethod
    def _observe(after: Callable[[bytes], None], payload: bytes) -> None:
        """Call the after-frame observer (state checks in the fuzz tests); what it raises is logged, not spread."""
        try:
            after(payload)
        except Exception:
            log.exception("the after_frame observer raised on frame %r", bytes(payload[:80]))

    def _protocol_failure(self, sock: socket.socket | None, buffer: bytearray) -> None:
        """A frame longer than the protocol allows: nothing after it can be framed. Reset the connection (the
        supervisor reconnects and resubscribes) instead of buffering forever; counted and logged once, as an
        "oversize" bad frame."""
        declared = _LENGTH.unpack_from(buffer)[0]
        self.protocol_failures += 1
        detail = (f"protocol failure from {self.host}:{self.port}: a frame declares {declared} bytes, over the "
                  f"protocol limit {MAX_MSG_LEN}; resetting the connection")
        self._reject(bytes(buffer[:16]), "oversize", detail, None)
        buffer.clear()
        sock = sock or (self.conn.socket if self.conn is not None else None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the next read sees the end: connection lost, reconnect
            except OSError:
                pass

    # --- dispatch thread ------------------------------------------------------------------------------
    def current_lag(self) -> float:
        """How far behind the socket the dispatch thread may be now (0 when it waits for data): while a batch is
        decoded, the age of the earliest moment its data can have come; between batches, the time since the
        socket was last seen with nothing unread. Any thread; what a stale-data check reads."""
        since = self._batch_since
        if since is None:
            watch = self._watch
            if watch is None or self.dispatcher.idle:
                return 0.0
            since = watch.quiet_at
        return max(0.0, time.monotonic() - since)

    def _note_lag(self, lag: float) -> None:
        """The dispatch lag: how old the frames being decoded now can be. Warned about (at most every 10 s) past
        `lag_warning` seconds: strategy code slower than the stream it subscribed to."""
        self.dispatch_lag = lag
        if lag > self.max_dispatch_lag:
            self.max_dispatch_lag = lag
        if lag > self.lag_warning:
            self.lag_warnings += 1
            now = time.monotonic()
            if now - self._lag_warned_at >= 10.0:
                self._lag_warned_at = now
                log.warning("the dispatch thread is %.2fs behind the socket: strategy callbacks are slower than "
                            "their market data; make on_quote/on_tick cheaper or subscribe to less", lag)

    def _decode_batch(self, frames: list[bytes]) -> None:
        raw_ids = self.serverVersion_ is not None and self.serverVersion_ >= MIN_SERVER_VER_PROTOBUF
        fast = self._fast
        if fast is None or fast.decoder is not self.decoder:
            fast = self._fast = FastDecoder(self.decoder)
        hot = fast.handlers
        known = self.decoder.msgId2handleInfo
        after = self.after_frame
        self.frames_received += len(frames)
        _DECODING.conn = self
        try:
            for payload in frames:
                self._fault = None
                try:
                    if raw_ids:
                        msg_id = int.from_bytes(payload[:4], "big")
                        body = payload[4:]
                    else:
                        text_id, nul, body = payload.partition(b"\0")
                        if not nul:
                            raise ValueError("no NUL after the message id")
                        msg_id = int(text_id)
                    if msg_id > PROTOBUF_MSG_ID:
                        proto = self._fast_proto
                        if proto is None or proto.decoder is not self.decoder:
                            proto = self._fast_proto = ProtoFastDecoder(self.decoder)
                        if proto.decode(msg_id - PROTOBUF_MSG_ID, body):
                            pass                         # a hot market-data message, delivered as ibapi would
                        elif msg_id - PROTOBUF_MSG_ID in self.decoder.msgId2handleInfoProtoBuf:
                            self.decoder.processProtoBuf(body, msg_id - PROTOBUF_MSG_ID)
                        else:
                            self._fault = ("unknown_id", f"unknown protobuf message id {msg_id - PROTOBUF_MSG_ID}")
                    else:
                        fields = body.split(b"\0")
                        fields.pop()                 # as comm.read_fields: what follows the last NUL is no field
                        handler = hot.get(msg_id)
                        if handler is None or not handler(fields):
                            if msg_id in known:
                                self.decoder.interpret(tuple(fields), msg_id)
                            else:                    # ibapi would skip it (id 0) or report error 505
                                self._fault = ("unknown_id", f"unknown message id {msg_id}")
                except Exception as exc:
                    reason, detail = self._fault or ("garbled", f"{type(exc).__name__}: {exc}")
                    self._fault = None
                    self._reject(payload, reason, detail, exc)
                else:
                    if self._fault is not None:
                        (reason, detail), self._fault = self._fault, None
                        self._reject(payload, reason, detail, None)
                if after is not None:
                    self._observe(after, payload)
        finally:
            _DECODING.conn = None
            self._fault = None

    def frame_fault(self, reason: str, detail: str) -> None:
        """Another layer refused what a frame carried (the Router: "bad_value"; ibapi: 505/508, a logged drop).
        During a decode it marks the frame being decoded (counted once when it is done); otherwise it is a
        frame of its own."""
        if _DECODING.conn is self:
            if self._fault is None:
                self._fault = (reason, detail)
        else:
            self._reject(b"", reason, detail, None)

    def _reject(self, payload: bytes, reason: str, detail: str, exc: Exception | None) -> None:
        """Log one unusable frame (rate-limited per reason), tell the wrapper (`bad_message`), then count it: a
        reader of the counters (a monitor, a test on another thread) sees the count only once both are done."""
        try:
            self.bad_frame_log.note(reason, detail, payload)
            report = getattr(self.wrapper, "bad_message", None)
            if report is not None:
                report(payload, exc if exc is not None and reason == "garbled" else BadFrame(reason, detail))
        finally:
            self.bad_frames += 1
            self.bad_frame_reasons[reason] += 1

    def _connection_lost(self, generation: int | None = None) -> None:
        if generation is not None and generation != self.generation:
            return                               # the reader of an earlier socket: this one is not affected
        was_connected = self.connState == EClient.CONNECTED
        self.setConnState(EClient.DISCONNECTED)
        if self.conn is not None:
            self.conn.disconnect()
        if was_connected:
            log.warning("connection to %s:%s lost", self.host, self.port)
            self.wrapper.connectionClosed()

    def bad_frame_summary(self) -> dict[str, int]:
        """{reason: frames} of every bad frame so far (all BAD_FRAME_REASONS, zeros included)."""
        return {reason: self.bad_frame_reasons.get(reason, 0) for reason in BAD_FRAME_REASONS}

    def close(self, drain: float = 2.0) -> None:
        """Disconnect on purpose (no 'lost' warning). Off the dispatch thread, what the paced writer still holds
        (e.g. the cancels of a stopping run) gets up to `drain` seconds to go out first."""
        if self.conn is not None and drain > 0 and not self.dispatcher.in_dispatch_thread() \
                and self.connState == EClient.CONNECTED and hasattr(self.conn, "drain"):
            if not self.conn.drain(drain):
                log.warning("closing with messages still queued for TWS after %gs: they are dropped", drain)
        self.setConnState(EClient.DISCONNECTED)
        sock = getattr(self.conn, "socket", None)
        if self.conn is not None:
            self.conn.disconnect()
        if sock is not None:
            self.dispatcher.unwatch(sock)
