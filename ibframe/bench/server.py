"""The burst server: a tiny TWS-protocol loopback server, in its own process, for the benchmarks.

Owns: the TWS handshake (server version min(the client's highest, 200): 200 for ibapi and ibframe,
178 for ib_async), the startup answers (nextValidId, managedAccounts, sent only after START_API as TWS
does; an empty account's positionEnd / openOrderEnd / completedOrdersEnd / execDetailsEnd /
accountDownloadEnd when asked), a day of 1-minute bars for each reqHistoricalData, reading the
client's subscription requests for the request ids it chose, and one job per connection:
  * "burst"    — when the client sends reqCurrentTime (the go signal): the burst is encoded with the
                 client's ids, then a start sentinel tick, the burst (one sendall), an end sentinel
                 tick. `started_at` (time.perf_counter, CLOCK_MONOTONIC: the same clock in every
                 process of the machine) is stamped just before the start sentinel is sent;
  * "stream"   — the same, with a prologue sent once and one encoded body sent `repeat` times;
  * "pingpong" — an ask, then `rounds` times: a bid tick, wait for the placeOrder it causes and
                 timestamp its arrival, answer orderStatus Cancelled (so the order stops working),
                 sleep `gap` seconds (1 ms: rounds 1 ms apart);
  * "load"     — pingpong on the first line while the other lines stream a background of
                 `rate` msgs/s, sent in chunks every `chunk` seconds (see `_loaded_pingpong`);
  * "echo"     — no TWS protocol: a tick frame out, any frame back, timestamped, `gap` apart (the floor).
With `version` (226 for the throughput case's protobuf variants) the server speaks up to that version: 4-byte
message ids on every frame from 201, the client's protobuf requests read for their ids, and with `proto` the
burst's market data sent as protobuf (wire.py).
The port, then the report (frames sent, counts, round-trip times), go to the parent as JSON lines
on stdout.
The first market-data subscription is the sentinel (or ping) line; burst slots map to the ones after it.
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


def _handshake(sock: socket.socket, highest: int = wire.SERVER_VERSION) -> tuple[int, bytes]:
    """Read "API\\0" + the client's version range; answer with the version chosen; return it and what came after."""
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
    version = wire.negotiate(data[8:8 + size], highest)
    sock.sendall(wire.handshake_answer(version))
    return version, data[8 + size:]


class _Session:
    """The client's requests as they arrive; collects subscription ids until the go signal."""

    def __init__(self, sock: socket.socket, version: int, leftover: bytes):
        self.sock = sock
        self.version = version
        self.raw_ids = version >= 201          # MIN_SERVER_VER_PROTOBUF: 4-byte message ids both ways
        self.reader = wire.FrameReader(self.raw_ids)
        self.pending = self.reader.feed(leftover)
        self.ids: dict[str, list[int]] = {"mktdata": [], "ticks": [], "depth": [], "bars": []}
        self.frames_sent = 0

    def next_request(self) -> list[str] | None:
        while not self.pending:
            chunk = self.sock.recv(262144)
            if not chunk:
                return None
            self.pending = self.reader.feed(chunk)
        return self.pending.pop(0)

    def poll(self, timeout: float) -> list[list[str]] | None:
        """The requests that arrive within `timeout` seconds ([] if none), None when the client left."""
        if not self.pending:
            ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
            if ready:
                chunk = self.sock.recv(262144)
                if not chunk:
                    return None
                self.pending = self.reader.feed(chunk)
        out, self.pending = self.pending, []
        return out

    def until_go(self) -> bool:
        """Answer the startup requests, note subscriptions; True at the go signal, False if the client left."""
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
            elif msg == wire.REQ_HISTORICAL_DATA:
                req_id = int(fields[1])                     # no version field from server version 124 on
                self.ids["bars"].append(req_id)
                self.send(*wire.history_answer(req_id, self.version))
            elif msg == wire.REQ_CURRENT_TIME:
                return True
            else:
                answer = wire.startup_answer(fields)
                if answer is not None:
                    self.send(answer, 1)

    def send(self, data: bytes, frames: int, wire_ready: bool = False) -> None:
        """Send text frames (their ids made 4-byte from version 201), or frames already in wire form."""
        if self.raw_ids and not wire_ready:
            data = wire.raw_ids(data)
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
            _say(_echo(sock, params["rounds"], params.get("warmup", 0), params.get("gap", 0.0)))
            return
        session = _Session(sock, *_handshake(sock, params.get("version", wire.SERVER_VERSION)))
        streams = _stream_for(params) if mode in ("burst", "stream") else None    # made while the client sets up
        if not session.until_go():
            _say({"error": "client left before the go signal"})
            return
        if mode in ("burst", "stream"):
            _say(_send_burst(session, *streams, params.get("repeat", 1), params.get("proto", False)))
        elif mode == "pingpong":
            _say(_pingpong(session, params["rounds"], params.get("warmup", 0), params.get("gap", 0.0)))
        elif mode == "load":
            _say(_loaded_pingpong(session, params))
        else:
            raise ValueError(f"unknown server mode {mode!r}")
        session.drain()
    finally:
        sock.close()


def _stream_for(params: dict) -> tuple[wire.Burst, wire.Burst]:
    if params["variant"] == "mixed":
        return wire.mixed_stream(params["n"], **params.get("mix", {}))
    return wire.Burst([]), wire.make_burst(params["variant"], params["n"], params.get("instruments", 8))


def _send_burst(session: _Session, prologue: wire.Burst, burst: wire.Burst, repeat: int, proto: bool = False) -> dict:
    sentinel, ids = session.burst_ids()
    if prologue.rows:
        session.send(prologue.encode(ids), len(prologue.rows))
    data = burst.encode(ids, proto)
    if session.raw_ids and not proto:
        data = wire.raw_ids(data)                            # encoded before the clock starts, as the text burst
    started_at = time.perf_counter()
    session.send(wire.tick_price(sentinel, wire.BID, "1.00"), 1)
    for _ in range(repeat):
        session.send(data, len(burst.rows), wire_ready=True)
    session.send(wire.tick_price(sentinel, wire.BID, "2.00"), 1)
    counts = {k: v * repeat for k, v in burst.counts.items()}
    for k, v in prologue.counts.items():
        counts[k] = counts.get(k, 0) + v
    return {"frames": session.frames_sent, "burst_frames": len(burst.rows) * repeat + len(prologue.rows),
            "counts": counts, "ids": ids, "started_at": started_at,
            "send_seconds": time.perf_counter() - started_at,
            "final": wire.final_quotes(burst.rows, len(burst.rows))}


def _ping_ticks(sentinel: int) -> list[bytes]:
    """Two bids that alternate, so that every ping changes the bid."""
    return [wire.tick_price(sentinel, wire.BID, f"{100 + 0.01 * (i % 2):.2f}") for i in range(2)]


def _answer_order(session: _Session, fields: list[str]) -> None:
    """End the order at once (orderStatus Cancelled): nothing stays working for the client's risk checks."""
    session.send(wire.order_status(fields[1]), 1)


def _pingpong(session: _Session, rounds: int, warmup: int, gap: float) -> dict:
    sentinel, _ = session.burst_ids()
    ticks = _ping_ticks(sentinel)
    session.send(wire.tick_price(sentinel, wire.ASK, "100.05"), 1)     # the far side a market buy is valued at
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
        arrived = time.perf_counter_ns()
        _answer_order(session, fields)
        if i >= warmup:
            times[i - warmup] = arrived - sent
        if gap:
            time.sleep(gap)
    return {"frames": session.frames_sent, "round_trip_ns": times.tolist()}


def _loaded_pingpong(session: _Session, params: dict) -> dict:
    """Ping-pong on the first line while the others stream in the background.

    The background is an L1 burst over the other lines (cycled if it runs out), cut into chunks of
    rate * chunk frames, one chunk due every `chunk` seconds on a fixed schedule (a late chunk is sent
    as soon as the loop gets to it, so the rate is kept). A ping (a new bid on the first line) goes out
    `gap` seconds after the previous order arrived, at whatever point of the chunk schedule that falls;
    its round trip ends when its placeOrder is read. Between sends the loop waits in select() for the
    client's frames until the next chunk or ping is due."""
    sentinel, ids = session.burst_ids()
    rounds, warmup, gap = params["rounds"], params.get("warmup", 0), params.get("gap", 0.001)
    period = params.get("chunk", 0.001)
    per_chunk = max(1, round(params["rate"] * period))
    burst = wire.l1_burst(params.get("n", 100_000), len(ids["mktdata"]), seed=5)
    frames = burst.frames(ids)
    chunks = [b"".join(frames[i:i + per_chunk]) for i in range(0, len(frames) - per_chunk + 1, per_chunk)]
    cycle = burst.rows[:len(chunks) * per_chunk]             # the rows the chunks carry, in the order sent
    ticks = _ping_ticks(sentinel)
    session.send(wire.tick_price(sentinel, wire.ASK, "100.05"), 1)
    times = np.zeros(rounds, dtype=np.int64)
    done = background = 0
    ping_sent = None
    now = started = time.perf_counter()
    next_chunk, next_ping = now, now + 0.05                  # the background runs 50 ms before the first ping
    while done < warmup + rounds:
        now = time.perf_counter()
        if now >= next_chunk:
            session.send(chunks[(background // per_chunk) % len(chunks)], per_chunk)
            background += per_chunk
            next_chunk += period
            continue
        if ping_sent is None and now >= next_ping:
            ping_sent = time.perf_counter_ns()
            session.send(ticks[done % 2], 1)
        due = next_chunk if ping_sent is not None else min(next_chunk, next_ping)
        got = session.poll(due - time.perf_counter())
        if got is None:
            return {"error": f"client left after {done} round trips"}
        for fields in got:
            if int(fields[0]) != wire.PLACE_ORDER:
                continue
            if ping_sent is None:
                return {"error": f"an order came without a ping (round {done})"}
            arrived = time.perf_counter_ns()
            if done >= warmup:
                times[done - warmup] = arrived - ping_sent
            _answer_order(session, fields)
            done += 1
            ping_sent, next_ping = None, time.perf_counter() + gap
    ended = time.perf_counter()
    return {"frames": session.frames_sent, "round_trip_ns": times.tolist(), "background_frames": background,
            "background_rate": background / (ended - started), "per_chunk": per_chunk,
            "final": wire.final_quotes(cycle, background)}


def _echo(sock: socket.socket, rounds: int, warmup: int, gap: float) -> dict:
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
        if gap:
            time.sleep(gap)
    sock.close()
    return {"round_trip_ns": times.tolist()}


if __name__ == "__main__":
    serve(sys.argv[1], json.loads(sys.argv[2]))
