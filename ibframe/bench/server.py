"""The burst server: a tiny TWS-protocol loopback server, in its own process, for the benchmarks.

Owns: the TWS handshake the stock EClient accepts (server version 200), the startup answers
(nextValidId, managedAccounts, sent only after START_API as TWS does), reading the client's
subscription requests for the request ids it chose, and one job per connection:
  * "burst"    — when the client sends reqCurrentTime (the go signal): a start sentinel tick, the
                 pre-generated burst with the client's ids (encoded before, sent with one sendall),
                 an end sentinel tick;
  * "stream"   — the same, with one encoded burst sent `repeat` times (a long stream, for memory);
  * "pingpong" — a tick, then wait for the placeOrder it causes and timestamp its arrival, `rounds` times;
  * "echo"     — no TWS protocol: a tick frame out, any frame back, timestamped (the socket floor).
The port, then the report (frames sent, counts, round-trip times), go to the parent as JSON lines
on stdout.
The first market-data subscription is the sentinel line; burst slots map to the ones after it.
Must never: import the framework, or answer anything it was not asked for.
"""
from __future__ import annotations

import json
import select
import socket
import struct
import subprocess
import sys
import time

import numpy as np

from . import wire


class ServerProcess:
    """`python -m ibframe.bench.server MODE PARAMS` as a child process; `.port`, then `.report()`.

    The child writes its port, then its report, as JSON lines on stdout.
    """

    def __init__(self, mode: str, **params):
        self.process = subprocess.Popen([sys.executable, "-m", "ibframe.bench.server", mode, json.dumps(params)],
                                        stdout=subprocess.PIPE, text=True)
        self.port = int(self._line(60)["port"])

    def _line(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise RuntimeError(f"burst server (pid {self.process.pid}) said nothing within {timeout:g}s")
        return json.loads(line)

    def report(self, timeout: float = 300.0) -> dict:
        return self._line(timeout)

    def close(self) -> None:
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _say(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def _handshake(sock: socket.socket) -> bytes:
    """Read "API\\0" + the client's version range; answer with version 200; return what came after."""
    data = b""
    while True:
        if len(data) >= 8:
            size = struct.unpack_from("!I", data, 4)[0]
            if len(data) >= 8 + size:
                break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("client left during the handshake")
        data += chunk
    if not data.startswith(b"API\0"):
        raise ConnectionError(f"not a TWS API client: {data[:16]!r}")
    sock.sendall(wire.handshake_answer())
    return data[8 + size:]


class _Session:
    """The client's requests as they arrive; collects subscription ids until the go signal."""

    def __init__(self, sock: socket.socket, leftover: bytes):
        self.sock = sock
        self.reader = wire.FrameReader()
        self.pending = self.reader.feed(leftover)
        self.ids: dict[str, list[int]] = {"mktdata": [], "ticks": [], "depth": []}
        self.frames_sent = 0

    def next_request(self) -> list[str] | None:
        while not self.pending:
            chunk = self.sock.recv(262144)
            if not chunk:
                return None
            self.pending = self.reader.feed(chunk)
        return self.pending.pop(0)

    def until_go(self) -> bool:
        """Answer START_API, note subscriptions; True at the go signal, False if the client left."""
        while True:
            fields = self.next_request()
            if fields is None:
                return False
            msg = int(fields[0])
            if msg == wire.START_API:
                self.send(wire.startup_frames(), 2)
            elif msg == wire.REQ_MKT_DATA:
                self.ids["mktdata"].append(int(fields[2]))
            elif msg == wire.REQ_TICK_BY_TICK:
                self.ids["ticks"].append(int(fields[1]))
            elif msg == wire.REQ_MKT_DEPTH:
                self.ids["depth"].append(int(fields[2]))
            elif msg == wire.REQ_CURRENT_TIME:
                return True

    def send(self, data: bytes, frames: int) -> None:
        self.sock.sendall(data)
        self.frames_sent += frames

    def drain(self) -> None:
        """Read (and ignore) whatever the client still sends until it disconnects."""
        try:
            while self.sock.recv(262144):
                pass
        except OSError:
            pass

    def burst_ids(self) -> tuple[int, dict[str, list[int]]]:
        ids = dict(self.ids)
        sentinel, ids["mktdata"] = ids["mktdata"][0], ids["mktdata"][1:]
        return sentinel, ids


def serve(mode: str, params: dict) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        _say({"port": listener.getsockname()[1]})
        sock, _ = listener.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if mode == "echo":
            _say(_echo(sock, params["rounds"], params.get("warmup", 0)))
            return
        session = _Session(sock, _handshake(sock))
        if mode in ("burst", "stream"):
            burst = wire.make_burst(params["variant"], params["n"], params.get("instruments", 8))
            if not session.until_go():
                _say({"error": "client left before the go signal"})
                return
            _say(_send_burst(session, burst, params.get("repeat", 1)))
        elif mode == "pingpong":
            if not session.until_go():
                _say({"error": "client left before the go signal"})
                return
            _say(_pingpong(session, params["rounds"], params.get("warmup", 0)))
        else:
            raise ValueError(f"unknown server mode {mode!r}")
        session.drain()
    finally:
        sock.close()


def _send_burst(session: _Session, burst: wire.Burst, repeat: int) -> dict:
    sentinel, ids = session.burst_ids()
    data = burst.encode(ids)
    session.send(wire.tick_price(sentinel, wire.BID, "1.00"), 1)
    started = time.perf_counter()
    for _ in range(repeat):
        session.send(data, len(burst.rows))
    session.send(wire.tick_price(sentinel, wire.BID, "2.00"), 1)
    return {"frames": session.frames_sent, "burst_frames": len(burst.rows) * repeat,
            "counts": {k: v * repeat for k, v in burst.counts.items()}, "ids": ids,
            "send_seconds": time.perf_counter() - started}


def _pingpong(session: _Session, rounds: int, warmup: int) -> dict:
    sentinel, _ = session.burst_ids()
    ticks = [wire.tick_price(sentinel, wire.BID, f"{100 + 0.01 * (i % 2):.2f}") for i in range(2)]
    times = np.zeros(rounds, dtype=np.int64)
    for i in range(warmup + rounds):
        sent = time.perf_counter_ns()
        session.send(ticks[i % 2], 1)
        while True:
            fields = session.next_request()
            if fields is None:
                return {"error": f"client left after {i} round trips"}
            if int(fields[0]) == wire.PLACE_ORDER:
                break
        if i >= warmup:
            times[i - warmup] = time.perf_counter_ns() - sent
    return {"frames": session.frames_sent, "round_trip_ns": times.tolist()}


def _echo(sock: socket.socket, rounds: int, warmup: int) -> dict:
    tick = wire.tick_price(1, wire.BID, "100.00")
    reader = wire.FrameReader()
    times = np.zeros(rounds, dtype=np.int64)
    for i in range(warmup + rounds):
        sent = time.perf_counter_ns()
        sock.sendall(tick)
        got: list = []
        while not got:
            chunk = sock.recv(65536)
            if not chunk:
                return {"error": f"echo client left after {i} round trips"}
            got = reader.feed(chunk)
        if i >= warmup:
            times[i - warmup] = time.perf_counter_ns() - sent
    sock.close()
    return {"round_trip_ns": times.tolist()}


if __name__ == "__main__":
    serve(sys.argv[1], json.loads(sys.argv[2]))
