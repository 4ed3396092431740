"""Raw-socket helpers for simulator tests that speak the TWS wire by hand (test_sim_limits, test_sim_fuzz).

Owns: framing bytes, reading exact counts and frames, a handshaken raw client, the official client that keeps
a copy of every request frame it sends, and a capture of the simulator's log records (the `sim_log` fixture).
"""
from __future__ import annotations

import logging
import socket
import struct
import threading

import pytest
from ibapi import comm

from conftest import RecordingClient


# --- raw clients -------------------------------------------------------

class CapturingClient(RecordingClient):
    """The official client, keeping a copy of every request frame it sends (to replay or mutate them)."""

    def __init__(self):
        super().__init__()
        self.sent: list[bytes] = []

    def sendMsg(self, msgId: int, msg: str):
        self.sent.append(comm.make_msg(msgId, False, msg))
        super().sendMsg(msgId, msg)


def ibapi_frames(gw, calls) -> list[bytes]:
    """The frames ibapi writes for `calls` (each `fn(client)`), captured from a real session with `gw`
    (best a paused gateway: nothing streams back while they are captured). Capped at 200 (`max_server_version`),
    the gateway makes ibapi write the text frames `raw_client` speaks."""
    c = CapturingClient().start(gw.port)
    start = len(c.sent)
    for call in calls:
        call(c)
    c.reqCurrentTime()
    c.wait("currentTime")
    frames = c.sent[start:-1]
    c.close()
    return frames


def frame(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


def fields_frame(*fields) -> bytes:
    return frame("".join(f"{f}\0" for f in fields).encode())


def recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = s.recv(n - len(data))
        if not part:
            raise ConnectionError("closed")
        data += part
    return data


def read_frame(s: socket.socket) -> list[str]:
    size = struct.unpack("!I", recv_exactly(s, 4))[0]
    return recv_exactly(s, size).decode(errors="replace").rstrip("\0").split("\0")


def raw_client(port: int, client_id: int | None = None, rcvbuf: int | None = None) -> socket.socket:
    """Handshake at v157..200 (the sim answers 200) and, with a clientId, START_API. Nothing is read after."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    s.sendall(b"API\0" + frame(b"v157..200"))
    read_frame(s)
    if client_id is not None:
        s.sendall(fields_frame(71, 2, client_id, ""))
    return s


def closed_by_peer(s: socket.socket, timeout: float = 10.0) -> bool:
    """Read (and drop) whatever arrives until the simulator closes the socket; False if it stays open."""
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class LogCapture(logging.Handler):
    """Every record of the simulator's logger, from any thread."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self.guard:
            self.records.append(record)

    def messages(self, level: int = logging.WARNING) -> list[str]:
        with self.guard:
            return [r.getMessage() for r in self.records if r.levelno >= level]

    def tracebacks(self) -> list[logging.LogRecord]:
        with self.guard:
            return [r for r in self.records if r.levelno >= logging.ERROR and r.exc_info]


@pytest.fixture
def sim_log():
    logger = logging.getLogger("ibframe.sim")
    handler = LogCapture()
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)
