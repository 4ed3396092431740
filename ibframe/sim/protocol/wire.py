"""TWS API framing and field encoding, as the gateway side sees it.

Owns: the byte layout of a frame (4-byte big-endian length + NUL-terminated text fields),
turning Python values into wire fields the way TWS prints them, and reading request fields
back the way ``ibapi.client`` wrote them. Knows nothing about sessions, markets or sockets.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

MAX_FRAME = 0xFFFFFF  # ibapi refuses anything longer (const.MAX_MSG_LEN)
API_PREFIX = b"API\0"

UNSET_INTEGER = 2**31 - 1
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"  # how TWS prints Double.MAX_VALUE
UNSET_DOUBLE = 1.7976931348623157e308


class ProtocolError(ValueError):
    """A frame or field the gateway cannot make sense of; the text says what and where."""


def frame(payload: bytes) -> bytes:
    """Length-prefix one payload."""
    return struct.pack("!I", len(payload)) + payload


def format_field(value) -> str:
    """One value as TWS writes it: bools as 0/1, None as empty, floats without a trailing '.0' noise."""
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, float):
        if math.isinf(value):
            return "Infinity"
        if value == UNSET_DOUBLE:
            return UNSET_DOUBLE_TEXT
        text = repr(value)
        return text
    return str(value)


def encode_message(fields) -> bytes:
    """A whole server→client message (msg id first) as one framed payload."""
    text = "".join(format_field(f) + "\0" for f in fields)
    return frame(text.encode("ascii", errors="backslashreplace"))


def split_frames(buffer: bytearray, limit: int = MAX_FRAME) -> list[bytes]:
    """Cut every complete frame off the front of ``buffer`` (in place); partial data stays.
    A declared length over `limit` (at most the protocol's) is a ProtocolError as soon as it is read."""
    out = []
    while len(buffer) >= 4:
        size = struct.unpack_from("!I", buffer, 0)[0]
        if size > limit:
            raise ProtocolError(f"frame length {size} exceeds the limit of {limit} bytes"
                                + (" (the TWS protocol's)" if limit == MAX_FRAME else " (SimConfig.max_request_bytes)"))
        if len(buffer) < 4 + size:
            break
        out.append(bytes(buffer[4:4 + size]))
        del buffer[:4 + size]
    return out


def split_fields(payload: bytes) -> list[str]:
    """NUL-separated fields; the trailing terminator yields no field."""
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"non-ASCII byte at offset {exc.start} of the message") from None
    parts = text.split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


@dataclass(slots=True)
class Handshake:
    """What the client said before START_API: its version range and connect options."""
    min_version: int
    max_version: int
    options: str


def parse_handshake(payload: bytes) -> Handshake:
    """Parse ``v<min>..<max>[ options]`` (or a single ``v<n>``)."""
    text = payload.decode("ascii", errors="replace").strip("\0")
    if not text.startswith("v"):
        raise ProtocolError(f"handshake must start with 'v<min>..<max>', got {text[:40]!r}")
    head, _, options = text[1:].partition(" ")
    low, sep, high = head.partition("..")
    try:
        lo = int(low)
        hi = int(high) if sep else lo
    except ValueError:
        raise ProtocolError(f"handshake version range {head!r} is not 'min..max'") from None
    if lo > hi:
        raise ProtocolError(f"handshake version range {lo}..{hi} is empty")
    return Handshake(lo, hi, options.strip())


class FieldReader:
    """Reads request fields in order, mirroring the ``make_field`` calls in ``ibapi.client``.

    Every read names what it expected, so a truncated or garbled request produces an error
    text like ``field 7 (strike): expected a number, got 'abc'``.
    """

    __slots__ = ("fields", "pos", "msg_name", "req_id")

    ID_NAMES = frozenset({"reqId", "orderId", "tickerId"})

    def __init__(self, fields: list[str], msg_name: str = "request", start: int = 0):
        self.fields = fields
        self.pos = start
        self.msg_name = msg_name
        self.req_id: int | None = None      # the request's id once read: the id an error about it carries

    def _next(self, what: str) -> str:
        if self.pos >= len(self.fields):
            raise ProtocolError(f"{self.msg_name} is truncated: field {self.pos} ({what}) is missing")
        value = self.fields[self.pos]
        self.pos += 1
        return value

    def remaining(self) -> int:
        return len(self.fields) - self.pos

    def str(self, what: str = "text") -> str:
        return self._next(what)

    def int(self, what: str = "integer", default: int = 0) -> int:
        value = self._int(what, default)
        if self.req_id is None and what in self.ID_NAMES and isinstance(value, int):
            self.req_id = value
        return value

    def _int(self, what: str, default):
        raw = self._next(what)
        if raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            try:
                as_float = float(raw)
            except ValueError:
                as_float = math.nan
            if not as_float.is_integer():
                raise ProtocolError(
                    f"{self.msg_name} field {self.pos - 1} ({what}): expected an integer, got {raw[:30]!r}"
                ) from None
            value = int(as_float)
        if not INT64_MIN <= value <= INT64_MAX:       # TWS reads Java ints and longs: nothing wider exists
            raise ProtocolError(f"{self.msg_name} field {self.pos - 1} ({what}): the integer {raw[:30]!r} is "
                                f"out of range")
        return value

    def float(self, what: str = "number", default: float = 0.0) -> float:
        raw = self._next(what)
        if raw == "":
            return default
        try:
            return float(raw)
        except ValueError:
            raise ProtocolError(
                f"{self.msg_name} field {self.pos - 1} ({what}): expected a number, got {raw[:30]!r}"
            ) from None

    def bool(self, what: str = "flag") -> bool:
        return self.int(what) != 0

    def skip(self, count: int = 1) -> None:
        for _ in range(count):
            self._next("ignored field")
