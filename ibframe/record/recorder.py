"""Writing a recording: the recorder a live run taps its connection with, and `write_recording`.

Owns: `Recorder` (the header once the accounts are known, every frame in and message out, marks, the
end line; flushed and fsynced on a schedule so a crash loses at most the last moments) and
`write_recording` (a file from a list of events, for tests and tools). Must never: read a recording.
"""
from __future__ import annotations

import atexit
import base64
import datetime as dt
import gzip
import json
import logging
import os
import threading
import time
import zlib
from pathlib import Path

from ibapi.common import PROTOBUF_MSG_ID
from ibapi.message import IN
from ibapi.server_versions import MIN_SERVER_VER_PROTOBUF

from .format import FORMAT, FORMAT_VERSION, HEADER_WAIT, out_message_to_event, payload_to_event, versions

log = logging.getLogger("ibframe.record")

# --- the recorder ----------------------------------------------------------------------------------

class Recorder:
    """Writes a session to `path` from its own thread; attach it to an IBConnection before open()."""

    def __init__(self, path: str | Path, flush_every: float = 0.5):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.flush_every = flush_every
        self._raw = open(self.path, "wb")
        self._out = (gzip.GzipFile(filename=self.path.name[:-3], mode="wb", fileobj=self._raw, mtime=0)
                     if self.path.name.endswith(".gz") else self._raw)
        self._lock = threading.Lock()
        self._pending: list[tuple] = []
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self._conn = None
        self._accounts: list[str] | None = None
        self._header_written = False
        self._mono0, self._wall0 = time.monotonic(), time.time()
        self._last_sync = time.monotonic()
        self.frames_in = 0
        self.messages_out = 0
        self.write_errors = 0
        self._thread = threading.Thread(target=self._run, name="ibframe-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def attach(self, conn) -> "Recorder":
        """Tap `conn` (an IBConnection): its reader thread and sendMsg feed this recorder."""
        self._conn = conn
        conn.recorder = self
        return self

    # --- taps: any thread, O(1), never touch the disk ---------------------------------------------
    def inbound(self, frames: list[bytes]) -> None:
        with self._lock:
            self._pending.append(("in", time.monotonic(), time.time(), frames))

    def outbound(self, msg_id: int, text: str) -> None:
        with self._lock:
            self._pending.append(("out", time.monotonic(), time.time(), (msg_id, text)))

    def outbound_proto(self, msg_id: int, data: bytes) -> None:
        with self._lock:
            self._pending.append(("outp", time.monotonic(), time.time(), msg_id.to_bytes(4, "big") + data))

    def mark(self, name: str, **info) -> None:
        """A named point in the session (the runner writes 'started' and 'stop')."""
        with self._lock:
            self._pending.append(("mark", time.monotonic(), time.time(), (name, info)))

    # --- lifecycle ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Write what is pending and the closing 'end' line; the file is complete after this."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        self._thread.join(10)
        self._closed = True
        try:
            atexit.unregister(self.close)
        except Exception:
            pass
        if self._conn is not None and getattr(self._conn, "recorder", None) is self:
            self._conn.recorder = None

    # --- writer thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_every)
            closing = self._closing
            try:
                self._write_pending(final=closing)
            except Exception:
                self.write_errors += 1
                log.exception("recording to %s failed; events were lost", self.path)
            if closing:
                break
        try:
            self._out.close()
            if self._out is not self._raw:
                self._raw.close()
        except OSError:
            log.exception("closing recording %s failed", self.path)

    def _server_version(self) -> int | None:
        return getattr(self._conn, "serverVersion_", None) if self._conn is not None else None

    def _write_pending(self, final: bool) -> None:
        with self._lock:
            if not self._header_written:
                self._look_for_accounts(self._pending)
                waited = time.monotonic() - self._mono0
                if not (final or self._accounts is not None or (self._pending and waited >= HEADER_WAIT)):
                    return
            batch, self._pending = self._pending, []
        lines = []
        if not self._header_written:
            lines.append(self._header())
            self._header_written = True
        version = self._server_version()
        for kind, mono, wall, data in batch:
            stamp = {"wall": round(wall, 6), "mono": round(mono, 6)}
            if kind == "in":
                for payload in data:
                    lines.append({"type": "in", **stamp, **payload_to_event(payload, version)})
                    self.frames_in += 1
            elif kind == "out":
                lines.append({"type": "out", **stamp, **out_message_to_event(*data)})
                self.messages_out += 1
            elif kind == "outp":
                lines.append({"type": "out", **stamp, "raw": base64.b64encode(data).decode("ascii")})
                self.messages_out += 1
            else:
                lines.append({"type": "mark", **stamp, "name": data[0], **data[1]})
        if final:
            lines.append({"type": "end", "wall": round(time.time(), 6), "mono": round(time.monotonic(), 6),
                          "frames_in": self.frames_in, "messages_out": self.messages_out})
        if not lines:
            return
        self._out.write("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode())
        if isinstance(self._out, gzip.GzipFile):
            self._out.flush(zlib.Z_SYNC_FLUSH)      # a cut-off .gz stays readable up to here
        self._raw.flush()
        if final or time.monotonic() - self._last_sync >= 1.0:
            os.fsync(self._raw.fileno())
            self._last_sync = time.monotonic()

    def _look_for_accounts(self, pending: list[tuple]) -> None:
        if self._accounts is not None:
            return
        version = self._server_version()
        for kind, _mono, _wall, data in pending:
            if kind != "in":
                continue
            for payload in data:
                listed = _managed_accounts(payload, version)
                if listed is not None:
                    self._accounts = [a for a in listed.split(",") if a]
                    return

    def _header(self) -> dict:
        conn = self._conn
        ibframe_version, ibapi_version = versions()
        started = dt.datetime.fromtimestamp(self._wall0, dt.timezone.utc)
        conn_time = getattr(conn, "connTime", None)
        if isinstance(conn_time, bytes):
            conn_time = conn_time.decode("utf-8", "backslashreplace")
        return {"type": "header", "format": FORMAT, "version": FORMAT_VERSION,
                "server_version": self._server_version(),
                "conn_time": conn_time, "client_id": getattr(conn, "clientId", None),
                "host": getattr(conn, "host", None), "port": getattr(conn, "port", None),
                "accounts": self._accounts or [], "ibframe": ibframe_version, "ibapi": ibapi_version,
                "wall": round(self._wall0, 6), "mono": round(self._mono0, 6),
                "started": started.strftime("%Y-%m-%dT%H:%M:%S.") + f"{started.microsecond // 1000:03d}Z"}


def write_recording(path: str | Path, events: list[dict], server_version: int = 176,
                    accounts: tuple[str, ...] = ("DU1234567",), **header) -> Path:
    """Write a recording by hand (tests): a header plus `events` (dicts with at least 'type')."""
    path = Path(path)
    head = {"type": "header", "format": FORMAT, "version": FORMAT_VERSION, "server_version": server_version,
            "conn_time": "", "client_id": 1, "accounts": list(accounts), **header}
    text = "".join(json.dumps(obj, separators=(",", ":")) + "\n" for obj in [head, *events])
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as fh:
        fh.write(text.encode())
    return path


def _managed_accounts(payload: bytes, version: int | None) -> str | None:
    """The account list of a MANAGED_ACCTS frame, text or (from server version 207) protobuf; None for any
    other frame."""
    if version is not None and version >= MIN_SERVER_VER_PROTOBUF and len(payload) >= 4 \
            and int.from_bytes(payload[:4], "big") == PROTOBUF_MSG_ID + IN.MANAGED_ACCTS:
        from google.protobuf.message import DecodeError
        from ibapi.protobuf.ManagedAccounts_pb2 import ManagedAccounts
        message = ManagedAccounts()
        try:
            message.ParseFromString(payload[4:])
        except DecodeError:
            return None
        return message.accountsList
    fields = payload_to_event(payload, version).get("fields")
    return fields[2] if fields and fields[0] == str(IN.MANAGED_ACCTS) and len(fields) >= 3 else None
