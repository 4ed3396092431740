"""Case: µs per placeOrder text, ibapi's `EClient.placeOrder` next to `ibframe.order_encoding`.

Owns: the part "encode": a market order, a limit order, an Adaptive algo order and a 2-leg combo (BAG
with per-leg prices and a smart combo routing param), at server version 200. The stock ibapi EClient is
connected over a loopback socket to a sink in this process (it answers the handshake at 200 and drains);
its `sendMsg` keeps the text instead of sending it, so "ibapi" times placeOrder's checks and encoding
only, as "lean" times `encode_place_order`. Then both again with the text sent on the socket ("sent":
placeOrder as the caller sees it; lean = encode + sendMsg). Batches of the two alternate; each value is
the median over batches of µs per order. verified: for each order the two texts are equal, and every
sent frame reached the sink.
Must never: count a run in which a lean text differs from ibapi's or the encoder declined an order.
"""
from __future__ import annotations

import multiprocessing
import socket
import statistics
import struct
import time
from decimal import Decimal

from . import Row, all_verified, values

TITLE = "placeOrder text (µs per order): stock ibapi vs the lean encoder, server version 200"
VERSION = 200
KINDS = ("market", "limit", "adaptive", "combo")


def size(quick: bool) -> int:
    return 2_000 if quick else 20_000


def parts(quick: bool) -> list[str]:
    return ["encode"]


def _sink_main(answer) -> None:
    """The sink, in its own process (its reads never take this process's GIL): handshake, then count frames."""
    listener = socket.create_server(("127.0.0.1", 0))
    answer.send(listener.getsockname()[1])
    conn, _ = listener.accept()
    buffer, frames, greeted = bytearray(), 0, False
    with conn:
        while chunk := conn.recv(1 << 20):
            buffer += chunk
            if not greeted:                               # "API\0", then the client's version range
                if len(buffer) < 8 or len(buffer) < 8 + struct.unpack("!I", buffer[4:8])[0]:
                    continue
                del buffer[:8 + struct.unpack("!I", buffer[4:8])[0]]
                hello = f"{VERSION}\0" "20261118 11:30:00 EST\0".encode()
                conn.sendall(struct.pack("!I", len(hello)) + hello)
                greeted = True
            start = 0
            while len(buffer) - start >= 4:
                end = start + 4 + struct.unpack_from("!I", buffer, start)[0]
                if end > len(buffer):
                    break
                frames += 1
                start = end
            del buffer[:start]
    answer.send(frames)


class _Sink:
    """A loopback TWS stand-in in a child process: answers the handshake at VERSION and counts frames."""

    def __init__(self):
        context = multiprocessing.get_context("spawn")
        self.answer, theirs = context.Pipe()
        self.process = context.Process(target=_sink_main, args=(theirs,), daemon=True)
        self.process.start()
        if not self.answer.poll(30):
            self.process.kill()
            raise RuntimeError("the bench sink process did not start")
        self.port = self.answer.recv()

    def frames(self, timeout: float = 10.0) -> int | None:
        """Frames read, once the client has disconnected (None if the sink did not answer)."""
        count = self.answer.recv() if self.answer.poll(timeout) else None
        self.process.join(1)
        return count


def _client(port: int):
    """The stock EClient, connected; `sendMsg` keeps the last text and sends it only when `send` is set."""
    from ibapi.client import EClient
    from ibapi.wrapper import EWrapper

    class KeepingClient(EClient):
        def __init__(self):
            super().__init__(EWrapper())
            self.last_text: str | None = None
            self.send = True                               # START_API goes out at connect

        def sendMsg(self, msgId: int, msg: str):
            self.last_text = msg
            if self.send:
                super().sendMsg(msgId, msg)

    client = KeepingClient()
    client.connect("127.0.0.1", port, 0)
    if not client.isConnected() or client.serverVersion() != VERSION:
        raise RuntimeError("the bench client could not connect to its sink")
    return client


def _orders() -> dict[str, tuple]:
    from ibapi.const import UNSET_DOUBLE
    from ibapi.contract import ComboLeg, Contract
    from ibapi.order import Order, OrderComboLeg
    from ibapi.tag_value import TagValue

    stock = Contract()
    stock.symbol, stock.secType, stock.exchange, stock.currency, stock.conId = "AAPL", "STK", "SMART", "USD", 265598

    def order(order_type: str, price: float = UNSET_DOUBLE) -> Order:
        o = Order()
        o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.tif = "BUY", Decimal(100), order_type, price, "DAY"
        return o

    adaptive = order("LMT", 189.91)
    adaptive.algoStrategy, adaptive.algoParams = "Adaptive", [TagValue("adaptivePriority", "Normal")]
    bag = Contract()
    bag.symbol, bag.secType, bag.exchange, bag.currency = "SPY", "BAG", "SMART", "USD"
    for con_id, action in ((756733, "BUY"), (756734, "SELL")):
        leg = ComboLeg()
        leg.conId, leg.ratio, leg.action, leg.exchange = con_id, 1, action, "SMART"
        bag.comboLegs.append(leg)
    combo = order("LMT", 1.25)
    combo.orderComboLegs = [OrderComboLeg(), OrderComboLeg()]
    combo.smartComboRoutingParams = [TagValue("NonGuaranteed", "1")]
    return {"market": (stock, order("MKT")), "limit": (stock, order("LMT", 189.91)),
            "adaptive": (stock, adaptive), "combo": (bag, combo)}


def _batch(call, contract, order, n: int, order_id: int) -> float:
    """µs per call over n calls."""
    perf = time.perf_counter_ns
    started = perf()
    for i in range(order_id, order_id + n):
        call(i, contract, order)
    return (perf() - started) / n / 1000.0


def run(part: str, quick: bool) -> dict:
    from ibapi.message import OUT

    from ..order_encoding import encode_place_order

    n, batches = size(quick), 10
    sink = _Sink()
    client = _client(sink.port)
    out, problems, sent = {}, [], 1                        # START_API
    try:
        for kind, (contract, order) in _orders().items():
            client.send = False
            client.placeOrder(1, contract, order)
            lean = encode_place_order(VERSION, 1, contract, order)
            if lean is None or lean != client.last_text:
                problems.append(f"{kind}: {'declined' if lean is None else 'texts differ'}")
                continue

            def lean_only(order_id, c, o):
                encode_place_order(VERSION, order_id, c, o)

            def lean_sent(order_id, c, o):
                client.sendMsg(OUT.PLACE_ORDER, encode_place_order(VERSION, order_id, c, o))

            for mode, lean_call in (("", lean_only), ("_sent", lean_sent)):
                client.send = mode == "_sent"
                timings = {"ibapi": [], "lean": []}
                for b in range(batches):
                    for name, call in (("ibapi", client.placeOrder), ("lean", lean_call)):
                        timings[name].append(_batch(call, contract, order, n // batches, 1000 + b * n))
                        sent += n // batches if client.send else 0
                for name, data in timings.items():
                    out[f"{kind}_{name}{mode}"] = statistics.median(data)
                out[f"{kind}_speedup{mode}"] = out[f"{kind}_ibapi{mode}"] / out[f"{kind}_lean{mode}"]
    finally:
        client.disconnect()
    read = sink.frames()
    if read != sent:
        problems.append(f"the sink read {read} of {sent:,} frames sent")
    detail = f"{n:,} orders per kind and path, {batches} alternating batches" + (
        "; " + "; ".join(problems) if problems else "")
    return {"values": out, "verified": not problems, "detail": detail}


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    encode = runs.get("encode", [])
    ok = all_verified(encode)
    out = []
    for kind in KINDS:
        note = f"{size(quick):,} orders; texts equal" if kind == KINDS[0] else ""
        for mode, how in (("", "text only"), ("_sent", "sent on loopback")):
            out += [Row(f"{kind}: ibapi placeOrder ({how})", "µs", values(encode, f"{kind}_ibapi{mode}"), ok, note,
                        digits=1),
                    Row(f"{kind}: lean encoder{' + sendMsg' if mode else ''}", "µs",
                        values(encode, f"{kind}_lean{mode}"), ok, digits=2),
                    Row(f"{kind}: speed-up ({how})", "x", values(encode, f"{kind}_speedup{mode}"), ok, digits=1)]
            note = ""
    return out
