"""One client connection to the simulated gateway, after its handshake.

Owns: the negotiated server version, the clientId, the client's live subscriptions (by reqId)
and the encoding of every outgoing message for that version. Handlers reach the rest of the
gateway through `session.gateway`. Never reads the socket itself: the server feeds it frames (the
partial request it holds is `inbox`, released at close). Bounds what it queues for the client: past
`SimConfig.max_send_queue_bytes` unread, the connection is cut (logged with the clientId), so a
client that stops reading costs the simulator a bounded amount of memory.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Protocol

from ibapi import server_versions as sv
from ibapi.message import IN

from .codec import SessionCodec

if TYPE_CHECKING:
    from ..server import SimGateway

log = logging.getLogger("ibframe.sim")


class Subscription(Protocol):
    """A live stream a client asked for; the gateway calls `close` when it ends for any reason."""
    req_id: int

    def close(self) -> None: ...


class Session:
    def __init__(self, gateway: "SimGateway", writer: asyncio.StreamWriter, version: int, peer: str,
                 connect_options: str = ""):
        self.gateway = gateway
        self.writer = writer
        self.version = version
        self.peer = peer
        self.connect_options = connect_options
        self.client_id: int | None = None
        self.subscriptions: dict[tuple[str, int], Subscription] = {}
        self.market_data_type = 1
        self.closed = False
        self.bytes_sent = 0
        self.inbox = bytearray()                # the request being received (the server's read buffer)
        self.queue_limit = gateway.config.max_send_queue_bytes
        self.codec = SessionCodec(version, frozenset(gateway.config.text_answers))

    # --- output ---------------------------------------------------------------------------------
    def send(self, *fields) -> None:
        """Queue one message (msg id first). Dropped silently once the connection is closed."""
        if self.closed:
            return
        data = self.codec.encode(fields)
        self.bytes_sent += len(data)
        self.gateway.tap(self, fields)
        self.writer.write(data)
        if self.queue_limit and self.send_queued() > self.queue_limit:
            self._stuck()

    def send_queued(self) -> int:
        """Bytes written for this client that its socket has not taken yet (0 once closed)."""
        transport = getattr(self.writer, "transport", None)
        if transport is None or transport.is_closing():
            return 0
        return transport.get_write_buffer_size()

    def _stuck(self) -> None:
        """The client does not read: cut the connection and drop what is queued (a close would wait for it)."""
        log.warning("client %s (%s) is not reading: %d bytes queued to it, over the limit of %d "
                    "(SimConfig.max_send_queue_bytes); disconnecting it", self.client_id, self.peer,
                    self.send_queued(), self.queue_limit)
        transport = getattr(self.writer, "transport", None)
        self.close()
        if transport is not None:
            transport.abort()

    def error(self, req_id: int, code: int, text: str, advanced_json: str = "") -> None:
        """ERR_MSG in the layout of the negotiated version (versioned below 194, timestamped from 194); logged at
        DEBUG with the client and the request, so a run with `--log-level DEBUG` shows every error it answered."""
        log.debug("error %d to client %s (%s) for request %d: %s", code, self.client_id, self.peer, req_id, text)
        if self.version >= sv.MIN_SERVER_VER_ERROR_TIME:
            self.send(IN.ERR_MSG, req_id, code, text, advanced_json, int(time.time() * 1000))
        elif self.version >= sv.MIN_SERVER_VER_ADVANCED_ORDER_REJECT:
            self.send(IN.ERR_MSG, 2, req_id, code, text, advanced_json)
        else:
            self.send(IN.ERR_MSG, 2, req_id, code, text)

    # --- subscriptions ----------------------------------------------------------------------------
    def add_subscription(self, kind: str, sub: Subscription) -> None:
        self.subscriptions[(kind, sub.req_id)] = sub

    def has_subscription(self, kind: str, req_id: int) -> bool:
        return (kind, req_id) in self.subscriptions

    def count_subscriptions(self, kind: str) -> int:
        return sum(1 for k, _ in self.subscriptions if k == kind)

    def end_subscription(self, kind: str, req_id: int) -> bool:
        """Stop one stream; False when the client had no such stream."""
        sub = self.subscriptions.pop((kind, req_id), None)
        if sub is None:
            return False
        sub.close()
        return True

    def close(self) -> None:
        """Release everything this client held; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        for sub in list(self.subscriptions.values()):
            try:
                sub.close()
            except Exception:  # a broken stream must not keep the others alive
                log.exception("closing subscription %s of %s", sub.req_id, self)
        self.subscriptions.clear()
        self.inbox.clear()
        try:
            self.writer.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<client {self.client_id} from {self.peer} v{self.version}>"
