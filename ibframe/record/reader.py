"""Reading a recording: its header, its events and what it says about orders, checked line by line.

Owns: `Recording` (header, events, requests, orders, order ids, damage: where and why a file stops
being readable), `Header`, `Event` and `placed_order_id`. Must never: write a file.
"""
from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from google.protobuf.message import DecodeError
from ibapi.common import PROTOBUF_MSG_ID
from ibapi.protobuf.PlaceOrderRequest_pb2 import PlaceOrderRequest as PlaceOrderRequestProto
from ibapi.message import OUT
from .format import EVENT_TYPES, FORMAT, FORMAT_VERSION, ORDER_MESSAGES, START_API, RecordingError


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
        self.mark_data: dict[str, dict] = {}  # name -> the first such mark's line (its info: e.g. journal_read)
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
                    self.mark_data.setdefault(event.name, event.data)
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
