"""Session recordings: the file format, the recorder that writes it and the reader that checks it.

Owns: the recording format and everything that touches a recording file. The recorder is fed by
the connection's taps (every inbound frame from the reader thread, every outbound message from
whoever sends it) and writes from its own thread, so the dispatch thread only appends to a list.
Must never: decode or interpret messages (replay does that with ibapi's Decoder), import the
simulator, or block a tap on disk I/O.

Format (version 1) — JSON Lines, UTF-8, one JSON object per line; gzip-compressed when the file
name ends in ``.gz``. Line 1 is the header; every later line is an event, in the order the
recorder saw them (an outbound request is written before anything sent in answer to it):

    {"type":"header","format":"ibframe-recording","version":1,"server_version":176,
     "conn_time":"20240102 09:30:00 EST","client_id":1,"host":"127.0.0.1","port":7497,
     "accounts":["DU1234567"],"ibframe":"0.1.0","ibapi":"10.50.02",
     "wall":1704205800.0,"mono":5123.25,"started":"2024-01-02T14:30:00.000Z"}
    {"type":"out","wall":1704205800.01,"mono":5123.26,"fields":["71","2","1",""]}
    {"type":"in","wall":1704205800.02,"mono":5123.27,"fields":["15","1","DU1234567"]}
    {"type":"in","wall":...,"mono":...,"raw":"AAAA0ggB..."}
    {"type":"mark","wall":...,"mono":...,"name":"stop"}
    {"type":"end","wall":...,"mono":...,"frames_in":812,"messages_out":9}

* ``in`` — one frame from TWS. ``fields`` are its NUL-separated text fields, message id first (as
  a decimal string, also at server versions >= 201 where the wire carries the id as a 4-byte
  integer). ``raw`` (base64 of the exact frame payload, length prefix excluded) replaces
  ``fields`` for frames that are not plain text (protobuf at >= 201, invalid UTF-8).
* ``out`` — one message the client sent, in the same two shapes (``raw`` for protobuf requests).
* ``mark`` — a point the runner names: ``started`` (all strategies started) and ``stop`` (the run
  is about to stop its strategies). Replay plays up to ``stop`` before it stops the strategies.
* ``end`` — written by a clean close. A file without it was cut off (crash, kill, power loss);
  everything before the last flush is still there: the recorder flushes at least every
  ``flush_every`` seconds (0.5 by default; gzip with Z_SYNC_FLUSH, so a truncated .gz stays
  readable up to its last flush) and fsyncs at least once a second.
* Timestamps: ``wall`` is epoch seconds (time.time), ``mono`` is time.monotonic(). Replay puts an
  event at ``header.wall + (event.mono - header.mono)`` — wall time that never jumps — or at its
  ``wall`` when ``mono`` is missing, or at the previous event's time when both are missing.
* Hand-written recordings need only ``type`` and ``fields``: a header with ``server_version`` and
  events without timestamps are valid. Replay delivers an inbound frame only after it has sent
  as many requests as the recording has ``out`` lines before that frame (orders — placeOrder,
  cancelOrder, reqGlobalCancel — not counted), so a hand-written file lists one ``out`` line per
  request the strategy makes; ``fields`` on such a line are optional (when present, replay
  compares them with what it sent and reports differences). Without a ``stop`` mark, ``out``
  lines after the last ``in`` line are taken as the requests the run made while stopping.
* Unknown keys and unknown event types are ignored (forward compatible).
"""
from __future__ import annotations

import atexit
import base64
import binascii
import datetime as dt
import gzip
import json
import logging
import os
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from google.protobuf.message import DecodeError
from ibapi.common import PROTOBUF_MSG_ID
from ibapi.protobuf.PlaceOrderRequest_pb2 import PlaceOrderRequest as PlaceOrderRequestProto
from ibapi.message import IN, OUT
from ibapi.server_versions import MIN_SERVER_VER_PROTOBUF

log = logging.getLogger("ibframe.record")

FORMAT = "ibframe-recording"
FORMAT_VERSION = 1
EVENT_TYPES = ("in", "out", "mark", "end")
ORDER_MESSAGES = frozenset({OUT.PLACE_ORDER, OUT.CANCEL_ORDER, OUT.REQ_GLOBAL_CANCEL})
START_API = OUT.START_API   # sent once per socket: a session that reconnected recorded one per socket, while the
                            # replay's one connection sends one, so only the first one counts as a request
HEADER_WAIT = 1.0          # seconds the header may wait for managedAccounts before it is written without


class RecordingError(ValueError):
    """A recording that cannot be (fully) replayed: where (file:line) and why."""

    def __init__(self, path: str, line: int | None, why: str):
        self.path, self.line, self.why = str(path), line, why
        super().__init__(f"{path}:{line}: {why}" if line else f"{path}: {why}")


# --- payload <-> line ------------------------------------------------------------------------------

def _versions() -> tuple[str, str]:
    from importlib import metadata

    import ibapi

    from . import __version__
    try:
        ibapi_version = metadata.version("ibapi-stable")
    except metadata.PackageNotFoundError:
        ibapi_version = ibapi.get_version_string()
    return __version__, ibapi_version


def payload_to_event(payload: bytes, server_version: int | None) -> dict:
    """The ``fields`` (text) or ``raw`` (anything else) form of one frame payload."""
    raw_ids = server_version is not None and server_version >= MIN_SERVER_VER_PROTOBUF
    try:
        if raw_ids:
            msg_id = int.from_bytes(payload[:4], "big")
            if len(payload) < 4 or msg_id > PROTOBUF_MSG_ID or (len(payload) > 4 and not payload.endswith(b"\0")):
                raise ValueError("not text")
            return {"fields": [str(msg_id)] + payload[4:].decode("utf-8").split("\0")[:-1]}
        if not payload.endswith(b"\0"):
            raise ValueError("not text")
        fields = payload.decode("utf-8").split("\0")[:-1]
        if not fields or not fields[0].isdigit():
            raise ValueError("no message id")
        return {"fields": fields}
    except ValueError:
        return {"raw": base64.b64encode(payload).decode("ascii")}


def event_to_payload(event: dict, server_version: int) -> bytes:
    """The frame payload of an ``in``/``out`` line as it crosses the wire at `server_version`."""
    if "raw" in event:
        return base64.b64decode(event["raw"], validate=True)
    fields = event["fields"]
    text = "".join(f + "\0" for f in fields[1:]).encode("utf-8")
    if server_version >= MIN_SERVER_VER_PROTOBUF:
        return int(fields[0]).to_bytes(4, "big") + text
    return (fields[0] + "\0").encode("utf-8") + text


def out_message_to_event(msg_id: int, text: str) -> dict:
    """An outbound text message as EClient.sendMsg got it (fields NUL-terminated, id not included)."""
    return {"fields": [str(msg_id)] + text.split("\0")[:-1]}


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
                fields = payload_to_event(payload, version).get("fields")
                if fields and fields[0] == str(IN.MANAGED_ACCTS) and len(fields) >= 3:
                    self._accounts = [a for a in fields[2].split(",") if a]
                    return

    def _header(self) -> dict:
        conn = self._conn
        ibframe_version, ibapi_version = _versions()
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


# --- the reader ------------------------------------------------------------------------------------

@dataclass(slots=True)
class Header:
    server_version: int
    conn_time: str = ""
    client_id: int = 1
    host: str = ""
    port: int = 0
    accounts: list[str] = field(default_factory=list)
    ibframe: str = ""
    ibapi: str = ""
    wall: float | None = None
    mono: float | None = None
    raw: dict = field(default_factory=dict)


@dataclass(slots=True)
class Event:
    """One line after the header. `time` is the replay time; `fields`/`payload` for in/out lines."""
    line: int
    type: str
    time: float
    fields: list[str] | None = None
    raw: bytes | None = None
    name: str = ""
    data: dict = field(default_factory=dict)

    @property
    def msg_id(self) -> int | None:
        """The message's id (a protobuf frame's real id: its wire id minus 200)."""
        if self.fields:
            return int(self.fields[0])
        if self.raw is not None and len(self.raw) >= 4:
            wire_id = int.from_bytes(self.raw[:4], "big")
            return wire_id - PROTOBUF_MSG_ID if wire_id > PROTOBUF_MSG_ID else wire_id
        return None

    @property
    def is_protobuf(self) -> bool:
        return self.fields is None and self.raw is not None and len(self.raw) >= 4 \
            and int.from_bytes(self.raw[:4], "big") > PROTOBUF_MSG_ID

    @property
    def is_order(self) -> bool:
        return self.type == "out" and self.msg_id in ORDER_MESSAGES



def placed_order_id(event: Event) -> int | None:
    """The order id of a recorded placeOrder (text fields, or a protobuf PlaceOrderRequest from 203); None else."""
    if event.msg_id != OUT.PLACE_ORDER:
        return None
    if event.fields:
        text = event.fields[1] if len(event.fields) > 1 else ""
        return int(text) if text.lstrip("-").isdigit() else None
    try:
        request = PlaceOrderRequestProto.FromString(event.raw[4:])
    except DecodeError:
        return None
    return request.orderId if request.HasField("orderId") else None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every complete line; RecordingError where the file is damaged."""
    number = 0
    buffer = b""

    def split(final: bool):
        nonlocal buffer, number
        *whole, buffer = buffer.split(b"\n")
        for chunk in whole:
            number += 1
            try:
                yield number, chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RecordingError(path, number, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if final and buffer:
            raise RecordingError(path, number + 1, "the file ends in the middle of this line: the recording was "
                                                   "cut off while it was written (crash or kill?)")

    with open(path, "rb") as fh:
        if not path.name.endswith(".gz"):
            while chunk := fh.read(1 << 16):
                buffer += chunk
                yield from split(False)
            yield from split(True)
            return
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while block := fh.read(1 << 16):
            for at in range(0, len(block), 1024):          # small slices: damage loses at most ~1 KB before it
                chunk = block[at:at + 1024]
                while chunk:
                    if inflate.eof:                       # another gzip member follows (an appended file)
                        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    try:
                        buffer += inflate.decompress(chunk)
                    except zlib.error as exc:
                        yield from split(False)
                        raise RecordingError(path, number + 1, f"gzip data is corrupt after line {number} "
                                                               f"({exc})") from None
                    chunk = inflate.unused_data if inflate.eof else b""
            yield from split(False)
        if not inflate.eof:
            if buffer:
                yield from split(True)
            raise RecordingError(path, number + 1, f"the gzip stream stops after line {number} without its end "
                                                   f"marker: the recording was cut off (crash or kill?)")
        yield from split(True)


def _parse(path: Path, number: int, text: str) -> dict:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordingError(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise RecordingError(path, number, "expected a JSON object with a 'type' key")
    return obj


def _header(path: Path, obj: dict) -> Header:
    if obj.get("type") != "header":
        raise RecordingError(path, 1, f"not an ibframe recording: line 1 is a {obj.get('type')!r} line, "
                                      f"expected the header ({{\"type\":\"header\",\"format\":\"{FORMAT}\",…}})")
    if obj.get("format", FORMAT) != FORMAT:
        raise RecordingError(path, 1, f"format {obj.get('format')!r} is not {FORMAT!r}")
    if int(obj.get("version", FORMAT_VERSION)) > FORMAT_VERSION:
        raise RecordingError(path, 1, f"recording format version {obj['version']} is newer than this ibframe "
                                      f"reads ({FORMAT_VERSION}); upgrade ibframe")
    version = obj.get("server_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise RecordingError(path, 1, f"header has no integer server_version (got {version!r}); a session that "
                                      f"never connected cannot be replayed")
    number = (lambda key: obj[key] if isinstance(obj.get(key), (int, float)) and not isinstance(obj.get(key), bool)
              else None)
    return Header(version, str(obj.get("conn_time") or ""), int(obj.get("client_id") or 1),
                  str(obj.get("host") or ""), int(obj.get("port") or 0), list(obj.get("accounts") or []),
                  str(obj.get("ibframe") or ""), str(obj.get("ibapi") or ""), number("wall"), number("mono"), obj)


class Recording:
    """A recording opened for replay: its header, a summary pass, and its events in order.

    Opening reads the file once (validating every line) so damage is known up front; `events()`
    reads it again lazily and stops cleanly before the damaged line (`damage` says where and why).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise RecordingError(self.path, None, "file not found")
        self.damage: RecordingError | None = None
        self.lines = 0
        self.frames_in = 0
        self.requests: list[Event] = []       # non-order out lines, in order
        self.orders: list[Event] = []         # placeOrder / cancelOrder / reqGlobalCancel out lines
        self.complete = False                 # has the recorder's closing 'end' line
        self.end_time: float | None = None
        self.last_frame_line = 0              # the last 'in' line (requests after it were made while stopping)
        self.marks: set[str] = set()          # the names of the live run's marks ("started", "leftovers", …)
        lines = _lines(self.path)
        try:
            first = next(lines, None)
            if first is None:
                raise RecordingError(self.path, 1, "the file is empty: nothing was recorded")
            self.header = _header(self.path, _parse(self.path, *first))
        except RecordingError as exc:
            if exc.line in (None, 1):
                raise
            raise RecordingError(self.path, 1, f"no readable header ({exc.why})") from None
        try:
            for event in self._events(lines):
                self.lines = event.line
                self.end_time = event.time
                if event.type == "in":
                    self.frames_in += 1
                    self.last_frame_line = event.line
                elif event.type == "out":
                    if event.is_order:
                        self.orders.append(event)
                    elif event.msg_id != START_API or not any(r.msg_id == START_API for r in self.requests[:1]):
                        self.requests.append(event)
                elif event.type == "mark":
                    self.marks.add(event.name)
                elif event.type == "end":
                    self.complete = True
        except RecordingError as exc:
            self.damage = exc

    @property
    def order_ids(self) -> set[int]:
        return {i for i in map(placed_order_id, self.orders) if i is not None}

    @property
    def first_order_id(self) -> int | None:
        for e in self.orders:
            order_id = placed_order_id(e)
            if order_id is not None and order_id >= 0:
                return order_id
        return None

    def events(self) -> Iterator[Event]:
        """Every event after the header; stops before the damaged line, if any."""
        lines = _lines(self.path)
        next(lines)
        try:
            yield from self._events(lines)
        except RecordingError:
            return

    def _events(self, lines: Iterator[tuple[int, str]]) -> Iterator[Event]:
        h = self.header
        now = h.wall if h.wall is not None else 0.0
        for number, text in lines:
            if not text.strip():
                continue
            obj = _parse(self.path, number, text)
            kind = obj["type"]
            if kind not in EVENT_TYPES:
                continue
            mono, wall = obj.get("mono"), obj.get("wall")
            try:
                if mono is not None and h.mono is not None and h.wall is not None:
                    now = max(now, h.wall + (float(mono) - h.mono))
                elif wall is not None:
                    now = max(now, float(wall))
            except (TypeError, ValueError):
                raise RecordingError(self.path, number, f"timestamps must be numbers (wall={wall!r}, "
                                                        f"mono={mono!r})") from None
            event = Event(number, kind, now, name=str(obj.get("name", "")), data=obj)
            if kind in ("in", "out"):
                self._payload(event, obj, number)
            yield event

    def _payload(self, event: Event, obj: dict, number: int) -> None:
        if "fields" in obj:
            fields = obj["fields"]
            if (not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields)
                    or not fields[0].isdigit()):
                raise RecordingError(self.path, number, "'fields' must be a list of strings starting with the "
                                                        "message id, e.g. [\"9\",\"1\",\"574\"]")
            event.fields = fields
        elif "raw" in obj:
            try:
                event.raw = base64.b64decode(obj["raw"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise RecordingError(self.path, number, "'raw' is not valid base64") from None
        elif event.type == "in":
            raise RecordingError(self.path, number, "an 'in' line needs 'fields' or 'raw'")
