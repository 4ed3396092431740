"""One session's message codec: classic text, raw-id text or protobuf, by negotiated version and kind.

Owns: reading a request payload into the text fields the request handlers read (version-200 layout,
msg id first) and turning an answer (msg id first, the values the handlers pass to `Session.send`)
into one framed message, in the form the negotiated version calls for:

* below 201: the msg id is the first text field, every field NUL-terminated (`wire.encode_message`);
* from 201 (`MIN_SERVER_VER_PROTOBUF`): a 4-byte big-endian msg id, then either NUL-terminated text
  fields, or (id + 200) and a protobuf body. A request with id > 200 is decoded by
  `proto_requests.to_text_request`; an answer goes out as protobuf when the version has reached
  `proto_answers.PROTO_SINCE[kind]` (the version at which ibapi sends the requests that cause it as
  protobuf) and the kind is not in the session's `text_kinds` (`SimConfig.text_answers`, for tests
  and for clients that want text).

Text answers at 201–226 keep the version-200 layout: ibapi 10.50's text decoder has no field that
depends on a version above 200.

Must never: touch sessions, sockets or the gateway; a request it cannot read is a `ProtocolError`
whose text says what was wrong (the server answers 320 and goes on).
"""
from __future__ import annotations

import struct

from ibapi.server_versions import MIN_SERVER_VER_PROTOBUF

from .proto_answers import PROTO_SINCE, ProtoAnswerError, ProtoAnswers
from .proto_requests import ProtoOnlyRequest, ProtoRequestError, to_text_request
from .wire import ProtocolError, encode_message, format_field, split_fields

PROTOBUF_OFFSET = 200          # ibapi's PROTOBUF_MSG_ID: a wire id above it carries a protobuf body
_ANSWERS = ProtoAnswers()      # thread-safe; one ibapi Decoder shared by every session


class ProtoOnly(ProtocolError):
    """A request that exists only as protobuf (e.g. reqConfig at 219): no text handler can serve it."""

    def __init__(self, msg_id: int, name: str):
        self.msg_id, self.name = msg_id, name
        super().__init__(f"{name} (message id {msg_id}) is not supported by the simulated gateway")


class SessionCodec:
    """Requests in, answers out, for one negotiated server version."""

    def __init__(self, version: int, text_kinds: frozenset[int] = frozenset()):
        self.version = version
        self.raw_ids = version >= MIN_SERVER_VER_PROTOBUF
        # the answer kinds this session receives as protobuf
        self.proto_kinds = frozenset(kind for kind, since in PROTO_SINCE.items()
                                     if version >= since and kind not in text_kinds)
        self.proto_failures = 0    # answers that fell back to text because the protobuf encoder refused them

    # --- requests -------------------------------------------------------------------------------
    def request_fields(self, payload: bytes) -> list[str]:
        """The request as text fields, msg id first; ProtocolError (ProtoOnly) when it cannot be read."""
        if not self.raw_ids:
            return split_fields(payload)
        if len(payload) < 4:
            raise ProtocolError(f"a message of {len(payload)} bytes has no 4-byte message id")
        msg_id = int.from_bytes(payload[:4], "big")
        if msg_id <= PROTOBUF_OFFSET:
            return [str(msg_id), *split_fields(payload[4:])]
        try:
            return to_text_request(msg_id - PROTOBUF_OFFSET, payload[4:])
        except ProtoOnlyRequest as exc:
            raise ProtoOnly(msg_id - PROTOBUF_OFFSET, exc.name) from None
        except ProtoRequestError as exc:
            raise ProtocolError(f"protobuf request {msg_id - PROTOBUF_OFFSET} unreadable: {exc.reason}") from None

    # --- answers --------------------------------------------------------------------------------
    def kind_of(self, data: bytes) -> int:
        """The message id of one framed answer this codec wrote (0 when it has none)."""
        if self.raw_ids:
            wire_id = int.from_bytes(data[4:8], "big")
            return wire_id - PROTOBUF_OFFSET if wire_id > PROTOBUF_OFFSET else wire_id
        end = data.find(b"\0", 4)
        return int(data[4:end]) if end > 4 and data[4:end].isdigit() else 0

    def encode(self, fields) -> bytes:
        """One framed answer in this session's form."""
        if not self.raw_ids:
            return encode_message(fields)
        kind = int(fields[0])
        texts = [format_field(f).encode("ascii", errors="backslashreplace") for f in fields[1:]]
        if kind in self.proto_kinds:
            try:
                built = _ANSWERS.encode((kind, *texts))
            except ProtoAnswerError:
                built = None
                self.proto_failures += 1
            if built is not None:
                body = built[1]
                return struct.pack("!II", 4 + len(body), kind + PROTOBUF_OFFSET) + body
        payload = kind.to_bytes(4, "big") + b"".join(t + b"\0" for t in texts)
        return struct.pack("!I", len(payload)) + payload
