"""The connection to TWS / IB Gateway: an EClient whose reader only frames bytes.

Owns: the socket, the handshake, the reader thread and the outgoing throttle. The reader
cuts frames off its buffer with a moving offset (no copy of the rest of the buffer per
message, unlike ibapi's EReader) and hands them, a batch per recv, to the dispatch thread,
which decodes them with ibapi's own Decoder (the streaming market-data messages with
ibframe.decoding, which has the same effect, faster). Nothing here interprets a message.

Backpressure: at most MAX_QUEUED_BATCHES batches (each at most one recv, 256 KiB) wait for
the dispatch thread. When it falls behind, the reader stops reading and TWS's sends wait in
the socket buffers, so memory stays bounded however long a burst lasts; nothing is dropped.
"""
from __future__ import annotations

import collections
import logging
import socket
import struct
import threading
import time

from ibapi import comm
from ibapi.client import EClient
from ibapi.common import PROTOBUF_MSG_ID
from ibapi.decoder import Decoder
from ibapi.server_versions import MAX_CLIENT_VER, MIN_CLIENT_VER, MIN_SERVER_VER_PROTOBUF

from .decoding import FastDecoder
from .dispatch import Dispatcher

log = logging.getLogger("ibframe.connection")

RECV_SIZE = 262144
MAX_QUEUED_BATCHES = 16              # at most 16 recvs (4 MiB of frames) wait for the dispatch thread


class ConnectError(ConnectionError):
    """The gateway could not be reached or refused us; the text says what to check."""


class Throttle:
    """At most `rate` messages per second out (TWS allows 50; we keep a margin at 45)."""

    def __init__(self, rate: int = 45, window: float = 1.0):
        self.rate = rate
        self.window = window
        self.sent: collections.deque[float] = collections.deque()
        self.delayed = 0

    def wait_time(self, now: float) -> float:
        while self.sent and now - self.sent[0] >= self.window:
            self.sent.popleft()
        if len(self.sent) < self.rate:
            return 0.0
        return self.window - (now - self.sent[0])

    def record(self, now: float) -> None:
        self.sent.append(now)


class SocketTransport:
    """What EClient calls `conn`: sends whole messages (sendall), paced by the throttle."""

    def __init__(self, sock: socket.socket, throttle: Throttle | None):
        self.socket: socket.socket | None = sock
        self.lock = threading.Lock()
        self.throttle = throttle
        self.wrapper = None

    def isConnected(self) -> bool:
        return self.socket is not None

    def sendMsg(self, msg: bytes) -> int:
        with self.lock:
            if self.socket is None:
                return 0
            if self.throttle is not None:
                delay = self.throttle.wait_time(time.monotonic())
                if delay > 0:
                    self.throttle.delayed += 1
                    time.sleep(delay)
                self.throttle.record(time.monotonic())
            self.socket.sendall(msg)
            return len(msg)

    def disconnect(self) -> None:
        with self.lock:
            sock, self.socket = self.socket, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
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
    """EClient with ibframe's reader thread, throttle and dispatch thread."""

    def __init__(self, wrapper, dispatcher: Dispatcher, throttle: bool = True):
        super().__init__(wrapper)
        self.dispatcher = dispatcher
        self.use_throttle = throttle
        self._reader: threading.Thread | None = None
        self.frames_received = 0
        self.bad_frames = 0
        self.recorder = None                 # an ibframe.record.Recorder taps every frame in and message out
        self._fast: FastDecoder | None = None   # the hot market-data messages; ibapi's Decoder does the rest
        self._room = threading.Semaphore(MAX_QUEUED_BATCHES)   # batches the reader may still queue

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
        self.conn = SocketTransport(sock, Throttle() if self.use_throttle else None)
        self.decoder = Decoder(self.wrapper, self.serverVersion_)
        self.setConnState(EClient.CONNECTED)
        self._reader = threading.Thread(target=self._read_loop, args=(sock, buffer), name="ibframe-reader",
                                        daemon=True)
        self._reader.start()
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

    # --- reader thread: frames only -----------------------------------------------------------------
    def _read_loop(self, sock: socket.socket, buffer: bytearray) -> None:
        try:
            while True:
                frames, used = split_frames(buffer)
                if used:
                    del buffer[:used]
                    if self.recorder is not None:
                        self.recorder.inbound(frames)
                    while not self._room.acquire(timeout=0.5):      # the dispatch thread is behind: wait
                        if self.connState != EClient.CONNECTED:
                            return
                    self.dispatcher.post(self._decode_queued, frames)
                chunk = sock.recv(RECV_SIZE)
                if not chunk:
                    break
                buffer += chunk
        except OSError:
            pass
        self.dispatcher.post(self._connection_lost)

    # --- dispatch thread ------------------------------------------------------------------------------
    def _decode_queued(self, frames: list[bytes]) -> None:
        """A batch from the reader: decode it, then let the reader queue another."""
        try:
            self._decode_batch(frames)
        finally:
            self._room.release()

    def _decode_batch(self, frames: list[bytes]) -> None:
        raw_ids = self.serverVersion_ is not None and self.serverVersion_ >= MIN_SERVER_VER_PROTOBUF
        fast = self._fast
        if fast is None or fast.decoder is not self.decoder:
            fast = self._fast = FastDecoder(self.decoder)
        hot = fast.handlers
        self.frames_received += len(frames)
        for payload in frames:
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
                    self.decoder.processProtoBuf(body, msg_id - PROTOBUF_MSG_ID)
                    continue
                fields = body.split(b"\0")
                fields.pop()                             # as comm.read_fields: what follows the last NUL is no field
                handler = hot.get(msg_id)
                if handler is None or not handler(fields):
                    self.decoder.interpret(tuple(fields), msg_id)
            except Exception as exc:
                self.bad_frames += 1
                log.error("garbled message from TWS skipped (%s: %s): %r", type(exc).__name__, exc, payload[:120])
                report = getattr(self.wrapper, "bad_message", None)
                if report is not None:
                    report(payload, exc)

    def _connection_lost(self) -> None:
        was_connected = self.connState == EClient.CONNECTED
        self.setConnState(EClient.DISCONNECTED)
        if self.conn is not None:
            self.conn.disconnect()
        if was_connected:
            log.warning("connection to %s:%s lost", self.host, self.port)
            self.wrapper.connectionClosed()

    def close(self) -> None:
        """Disconnect on purpose (no 'lost' warning)."""
        self.setConnState(EClient.DISCONNECTED)
        if self.conn is not None:
            self.conn.disconnect()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(5)
