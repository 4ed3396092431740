"""The recording's format: its constants, its errors, and one frame payload to and from one line.

Owns: FORMAT / FORMAT_VERSION / EVENT_TYPES, which requests are orders (ORDER_MESSAGES) and START_API,
`RecordingError`, and the `fields` / `raw` shapes of a payload (`payload_to_event`, `event_to_payload`,
`out_message_to_event`); the format itself is described in the package docstring.
Must never: open a file.
"""
from __future__ import annotations

import base64

from ibapi.common import PROTOBUF_MSG_ID
from ibapi.message import OUT
from ibapi.server_versions import MIN_SERVER_VER_PROTOBUF


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

def versions() -> tuple[str, str]:
    from importlib import metadata

    import ibapi

    from .. import __version__
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
