"""The replay's connection: a recording instead of a socket.

Owns: `ReplayConnection` (the live IBConnection, its frames fed by the Feeder, everything it sends
captured by `CaptureTransport` and handed to the Feeder as `Sent`). Must never: open a socket.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ibapi.client import EClient
from ibapi.decoder import Decoder

from ..connection import IBConnection
from ..dispatch import Dispatcher
from ..record import payload_to_event
from .feeder import Feeder, Sent

if TYPE_CHECKING:
    from .paper_fills import PaperFills



# --- the connection: a recording instead of a socket -------------------------------------------------------

class CaptureTransport:
    """What EClient calls `conn`: keeps every message instead of sending it."""

    def __init__(self, owner: "ReplayConnection"):
        self.owner = owner

    def isConnected(self) -> bool:
        return True

    def sendMsg(self, msg: bytes) -> int:
        payload = bytes(msg[4:])
        feeder = self.owner.feeder
        fields = payload_to_event(payload, feeder.version).get("fields")
        feeder.on_sent(Sent(feeder.clock.now(), payload, fields))
        return len(msg)

    def disconnect(self) -> None:
        pass


class ReplayConnection(IBConnection):
    """IBConnection whose handshake comes from the recording header and whose output is captured."""

    def __init__(self, wrapper, dispatcher: Dispatcher, feeder: Feeder):
        super().__init__(wrapper, dispatcher, throttle=False)
        self.feeder = feeder
        self.fills: PaperFills | None = None

    def open(self, host: str, port: int, client_id: int, timeout: float = 10.0) -> None:
        header = self.feeder.recording.header
        self.serverVersion_ = header.server_version
        self.connTime = header.conn_time
        self.clientId = client_id
        self.host, self.port = host, port
        self.conn = CaptureTransport(self)
        self.decoder = Decoder(self.wrapper, self.serverVersion_)
        self.setConnState(EClient.CONNECTED)
        self.startApi()

    def placeOrder(self, orderId, contract, order):
        count = len(self.feeder.sent)
        super().placeOrder(orderId, contract, order)
        if self.fills is not None and len(self.feeder.sent) > count:
            self.fills.place(orderId, contract, order, self.feeder.sent[-1])

    def cancelOrder(self, orderId, orderCancel=None):
        count = len(self.feeder.sent)
        if orderCancel is None:
            from ibapi.order_cancel import OrderCancel
            orderCancel = OrderCancel()
        super().cancelOrder(orderId, orderCancel)
        if self.fills is not None and len(self.feeder.sent) > count:
            self.fills.cancel(orderId)

    def close(self) -> None:
        self.setConnState(EClient.DISCONNECTED)
