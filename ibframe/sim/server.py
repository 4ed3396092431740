"""The simulated gateway's socket server: handshake, client registry, request dispatch, market clock.

Owns: the listening socket, each connection's lifetime (handshake → START_API → requests →
cleanup), the clientId registry, the per-client message-rate limit and the market clock that
steps the simulated market and fans its events out to subscribers. It gives the fault injector
(`faults/control.py`: `gateway.faults`) its hooks (every connection's writer, requests before dispatch, each
market step, a restart of the listening socket) and saves the `--state` file (`persistence.py`).
Every part of a market step runs under the `StepSupervisor` (`supervision.py`): a failure is logged
once per cause and the market goes on. Per-connection memory is bounded: a request declared longer
than `max_request_bytes` closes the connection at once, a partial request is released at close, and
a client leaving more than `max_send_queue_bytes` unread is cut off (`session.py`);
`connection_stats()` shows what each connection holds.

Why asyncio: one event loop serialises every client request and every market step, so the
simulator needs no locks and its output is a deterministic function of (seed, requests).
`SimGateway.start()` runs that loop in a background thread for tests and for the runner;
`python -m ibframe.sim` runs it in the foreground.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from ibapi.message import IN, OUT

from . import persistence
from .accounts.account import Ledger
from .broker.broker import Broker
from .faults.control import Faults
from .faults.scenarios import load_scenario
from .market.any_symbol import AnySymbol
from .market.market import Market, StepEvents
from .market.universe import Universe, load_universe
from .persistence import StateFile
from .protocol import handlers
from .protocol.codec import ProtoOnly
from .protocol.pacing import MessageRate
from .protocol.session import Session
from .protocol.wire import (
    API_PREFIX, MAX_FRAME, FieldReader, ProtocolError, parse_handshake, split_frames,
)
from .supervision import StepSupervisor

log = logging.getLogger("ibframe.sim")

SIM_MAX_VERSION = 226      # ibapi 10.50's highest; from 201 requests and answers may be protobuf (protocol/codec.py)
SIM_TEXT_VERSION = 200     # the highest version at which every message is classic text
SIM_MIN_VERSION = 157      # the oldest client range served (ib_async's minimum)
MAX_SEND_QUEUE_BYTES = 4 * 1024 * 1024     # unread output per client before it is cut off
MAX_REQUEST_BYTES = 1024 * 1024            # the protocol allows 16 MiB; no API request comes near 1 MiB
EASTERN = ZoneInfo("America/New_York")

FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm.nj"),
    (2104, "Market data farm connection is OK:usfuture"),
    (2104, "Market data farm connection is OK:cashfarm"),
    (2104, "Market data farm connection is OK:usopt"),
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:cashhmds"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefil"),
)


def default_max_version() -> int:
    """SIM_MAX_VERSION, or the cap IBFRAME_SIM_MAX_VERSION sets for every simulator of this process (so the
    whole test suite runs at 200 as well as at 226: `IBFRAME_SIM_MAX_VERSION=200 make test`)."""
    text = os.environ.get("IBFRAME_SIM_MAX_VERSION", "").strip()
    if not text:
        return SIM_MAX_VERSION
    if not text.isdigit() or not SIM_MIN_VERSION <= int(text) <= SIM_MAX_VERSION:
        raise ValueError(f"IBFRAME_SIM_MAX_VERSION={text!r}: give a server version within "
                         f"{SIM_MIN_VERSION}..{SIM_MAX_VERSION}, or unset it")
    return int(text)


@dataclass(slots=True)
class SimConfig:
    """Everything `python -m ibframe.sim` can be told; defaults are a TWS paper gateway."""
    host: str = "127.0.0.1"
    port: int = 7497
    seed: int = 1
    universe: str | Path | None = None
    step_seconds: float = 0.25          # market granularity (IB samples stock quotes every 250 ms)
    speed: float = 1.0                  # simulated seconds per wall second
    start_time: float | None = None     # epoch seconds of the first step; None = now
    max_server_version: int = field(default_factory=lambda: default_max_version())
    market_data_lines: int = 100        # error 101 beyond this many reqMktData lines per client
    depth_limit: int = 3                # error 309 beyond this many depth subscriptions per client
    tick_by_tick_limit: int = 3         # error 10190 beyond this many tick-by-tick subscriptions
    pace_messages: bool = True          # 50 msg/s per client (error 100, then disconnect)
    max_messages_per_second: int = 50
    pace_historical: bool = True        # historical-data pacing (error 162)
    pace_tick_by_tick: bool = True      # one tick-by-tick request per instrument per 15 s
    state_file: str | Path | None = None    # orders, executions, positions, cash, ids kept across restarts
    faults_file: str | Path | None = None   # a YAML fault scenario run on the simulated clock (faults/scenarios.py)
    max_send_queue_bytes: int = MAX_SEND_QUEUE_BYTES    # a client that lets more pile up unread is disconnected
    max_request_bytes: int = MAX_REQUEST_BYTES          # a request declared longer closes the connection at once
    socket_send_buffer: int | None = None   # SO_SNDBUF of each client socket (None: the OS default)
    # --any-symbol: an unknown US stock/ETF symbol gets a deterministic generated instrument instead of
    # error 200 (market/any_symbol.py). Off here, so a bare SimConfig answers like a real paper TWS and
    # tests of error 200 keep their meaning; `python -m ibframe.sim` (make sim) and the runner's embedded
    # gateway switch it on, so any strategy's symbols trade.
    any_symbol: bool = False
    text_answers: frozenset[int] = frozenset()  # IN msg ids always sent as text, even where the version allows protobuf


@dataclass(slots=True)
class ConnectionStats:
    """What one open connection costs the simulator right now (`SimGateway.connection_stats()`)."""
    client_id: int | None        # None until START_API
    peer: str
    input_buffered: int          # bytes of a request not yet complete
    send_queued: int             # bytes written to the client that it has not taken yet (above the kernel)
    bytes_sent: int


class SimGateway:
    """A TWS paper gateway on a socket, with a seeded market behind it."""

    def __init__(self, config: SimConfig | None = None, universe: Universe | None = None):
        self.config = config or SimConfig()
        scenario = load_scenario(self.config.faults_file) if self.config.faults_file else None
        start = self.config.start_time
        if start is None:
            step = self.config.step_seconds
            start = round(time.time() / step) * step
        self.start_time = start
        self.universe = universe or load_universe(self.config.universe,
                                                  today=dt.datetime.fromtimestamp(start, EASTERN).date())
        self.accounts = [a.id for a in self.universe.accounts]
        # generated symbols: made on request only with --any-symbol, but always restorable from --state
        self.universe.generator = AnySymbol(self.config.seed, dt.datetime.fromtimestamp(start, EASTERN).date(),
                                            on_request=self.config.any_symbol)
        self.market = Market(self.universe.roots(), self.config.seed, start, self.config.step_seconds,
                             session_stats=self._session_stats, find=self.universe.get)
        self.sessions: dict[int, Session] = {}
        self.open_sessions: set[Session] = set()    # every handshaken connection, with or without a clientId
        self.supervisor = StepSupervisor()           # market-step failures: logged once per cause, survived
        self.step_listeners: dict[int, list[Callable[[StepEvents], None]]] = {}
        self.next_order_id = 1
        self.ledger = Ledger(self, self.universe.accounts)   # cash, positions, margin (account.py)
        self.broker = Broker(self)                           # orders and matching (broker.py)
        self.faults = Faults(self, scenario)                 # injected faults, the control API (faults/control.py)
        self.persistence: StateFile | None = None            # the --state file (persistence.py)
        if self.config.state_file:
            self.persistence = StateFile(self, self.config.state_file)
            self.persistence.load()
        self.taps: list[Callable[[Session, tuple], None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._connections: set[asyncio.Task] = set()
        self.port = self.config.port
        _load_request_modules()

    # --- clock --------------------------------------------------------------------------------
    def now(self) -> float:
        """Simulated epoch seconds: the time of the latest market step."""
        return self.market.time

    def _session_stats(self, inst):
        from .market import history  # history builds on the market module; imported late to keep startup light
        return history.session_stats(self, inst)

    # --- market fan-out ---------------------------------------------------------------------------
    def on_step(self, con_id: int, listener: Callable[[StepEvents], None]) -> Callable[[], None]:
        """Call `listener` after every market step in which a root instrument trades; returns the unsubscribe."""
        self.market.get(con_id)              # the market builds an instrument's market lazily: now it steps
        self.step_listeners.setdefault(con_id, []).append(listener)

        def remove() -> None:
            listeners = self.step_listeners.get(con_id, [])
            if listener in listeners:
                listeners.remove(listener)
        return remove

    def _step_market(self) -> None:
        """One market step; every part is supervised, so one failure never stops the market for everyone."""
        supervise = self.supervisor.run
        events = self.market.step()          # a failure here is the clock's to survive: no events to fan out
        supervise("broker", self.broker.on_step, events)   # fills first: quotes sent after a step include them
        supervise("ledger", self.ledger.on_step, events)
        for con_id, ev in events.items():
            if not ev.trading:               # closed: nothing moved, the feeds stay silent
                continue
            for listener in list(self.step_listeners.get(con_id, ())):
                if not supervise("a market subscriber", listener, ev, detail=f"conId {con_id}"):
                    if listener in self.step_listeners.get(con_id, ()):
                        self.step_listeners[con_id].remove(listener)    # a broken stream is dropped
        supervise("fault script", self.faults.on_step)
        if self.persistence is not None:
            supervise("state file", self.persistence.after_step)

    async def _market_clock(self) -> None:
        step_wall = self.config.step_seconds / self.config.speed
        next_at = self.loop.time() + step_wall
        while True:
            delay = next_at - self.loop.time()
            # behind schedule (a slow machine): still yield once, so requests are served between steps
            await asyncio.sleep(max(delay, 0.0))
            self.supervisor.run("market", self._step_market)
            next_at += step_wall
            if self.loop.time() - next_at > 5.0:    # far behind (suspended machine): do not replay hours
                next_at = self.loop.time() + step_wall

    # --- output tap (recorders, tests) ------------------------------------------------------------
    def tap(self, session: Session, fields: tuple) -> None:
        for fn in self.taps:
            fn(session, fields)

    # --- lifecycle -------------------------------------------------------------------------------
    async def serve(self) -> None:
        """Listen and run until `stop()`."""
        self.loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, self.config.host, self.config.port)
        self.port = self._server.sockets[0].getsockname()[1]
        clock = asyncio.create_task(self._market_clock())
        log.info("simulated TWS listening on %s:%d (seed %d, server versions %d..%d)", self.config.host,
                 self.port, self.config.seed, SIM_MIN_VERSION, self.config.max_server_version)
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            clock.cancel()
            self.faults.cancel_pending()
            if self.persistence is not None:
                self.persistence.save()
            self._server.close()
            for session in list(self.sessions.values()):
                session.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()

    def start(self) -> "SimGateway":
        """Run the gateway on a background thread; returns once it accepts connections."""
        def run() -> None:
            asyncio.run(self.serve())
        self._thread = threading.Thread(target=run, name="ibframe-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"simulated gateway did not start listening on {self.config.host}:{self.config.port}")
        return self

    def stop(self) -> None:
        """Stop serving (saves the --state file); safe to call again once stopped."""
        if self.loop and self._stopping and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stopping.set)
        if self._thread:
            self._thread.join(10)

    def connection_stats(self) -> list[ConnectionStats]:
        """Per open connection: partial input held, output queued unread, bytes sent (any thread)."""
        def collect() -> list[ConnectionStats]:
            return [ConnectionStats(s.client_id, s.peer, len(s.inbox), s.send_queued(), s.bytes_sent)
                    for s in self.open_sessions]
        return self.call(collect)

    def call(self, fn: Callable, *args):
        """Run `fn(*args)` on the gateway's loop from another thread and return its result."""
        async def run():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    async def _restart(self, keep_state: bool = True, pause: float = 1.0) -> None:
        """A gateway restart (faults.restart): close the port and every connection, rebuild the broker and
        the ledger from their saved state (or fresh), and listen again on the same port after `pause`."""
        self._server.close()
        for session in list(self.sessions.values()):
            session.close()
        self.sessions.clear()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        # no await before the books are rebuilt: a market step in between would be lost
        state = persistence.capture(self) if keep_state else None
        self.ledger = Ledger(self, self.universe.accounts)
        self.broker = Broker(self)
        self.next_order_id = 1
        if state is not None:
            persistence.restore(self, state)
        self.faults.reset()
        if self.persistence is not None:
            self.persistence.save()
        log.info("gateway restart: %d connections closed, state %s; listening again in %.2gs", len(tasks),
                 "kept" if keep_state else "reset", pause)
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        await asyncio.sleep(pause)
        self._server = await asyncio.start_server(self._handle, self.config.host, self.port)
        log.info("gateway restart: listening again on %s:%d", self.config.host, self.port)

    def __enter__(self) -> "SimGateway":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- one connection ----------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        peer = "%s:%s" % writer.get_extra_info("peername")[:2]
        if self.config.socket_send_buffer:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(self.config.socket_send_buffer))
        session: Session | None = None
        try:
            session = await self._handshake(reader, writer, peer)
            if session is not None:
                await self._serve_session(session, reader)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("%s went away", session or peer)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("connection %s failed", session or peer)
        finally:
            if session is not None:
                if self.sessions.get(session.client_id) is session:
                    del self.sessions[session.client_id]
                self.open_sessions.discard(session)
                session.close()
                if session.client_id is not None:
                    log.info("client %s disconnected", session.client_id)
            else:
                writer.close()
            self._connections.discard(task)

    async def _handshake(self, reader, writer, peer) -> Session | None:
        prefix = await reader.readexactly(4)
        if prefix != API_PREFIX:
            log.warning("%s: not a TWS API client (first bytes %r); closing", peer, prefix)
            return None
        size = int.from_bytes(await reader.readexactly(4), "big")
        if size > 1024:
            log.warning("%s: handshake of %d bytes is not a version string; closing", peer, size)
            return None
        try:
            hello = parse_handshake(await reader.readexactly(size))
        except ProtocolError as exc:
            log.warning("%s: %s; closing", peer, exc)
            return None
        version = min(hello.max_version, self.config.max_server_version)
        if hello.max_version < SIM_MIN_VERSION or hello.min_version > version:
            log.warning("%s: client versions %d..%d do not reach the served range %d..%d; closing",
                        peer, hello.min_version, hello.max_version, SIM_MIN_VERSION, self.config.max_server_version)
            return None
        when = dt.datetime.fromtimestamp(self.now(), EASTERN).strftime("%Y%m%d %H:%M:%S %Z")
        reply = f"{version}\0{when}\0".encode()
        writer.write(len(reply).to_bytes(4, "big") + reply)      # one write: ibapi reads only the first frame
        await writer.drain()
        session = Session(self, writer, version, peer, hello.options)
        self.faults.attach(session)
        self.open_sessions.add(session)
        return session

    async def _serve_session(self, session: Session, reader: asyncio.StreamReader) -> None:
        buffer = session.inbox               # released by session.close(), whatever ends the connection
        limit = min(self.config.max_request_bytes, MAX_FRAME)
        rate = MessageRate(self.config.max_messages_per_second) if self.config.pace_messages else None
        paced = "+PACEAPI" in session.connect_options
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                if buffer:
                    log.warning("%s vanished mid-message (%d bytes unread)", session, len(buffer))
                return
            buffer += chunk
            try:
                frames = split_frames(buffer, limit)
            except ProtocolError as exc:
                session.error(-1, 320, f"Server error when reading an API client request. {exc}")
                log.warning("%s: %s; closing", session, exc)
                return
            for payload in frames:
                if rate is not None:
                    wait = rate.admit(self.loop.time())
                    if wait > 0:
                        if paced:
                            await asyncio.sleep(wait)
                            rate.admit(self.loop.time())
                        else:
                            session.error(-1, 100, "Max rate of messages per second has been exceeded:"
                                                   f"max={self.config.max_messages_per_second} "
                                                   f"rec={rate.count(self.loop.time())} (1)")
                            if rate.violations >= 3:
                                log.warning("%s kept exceeding %d msg/s; disconnecting as TWS does", session,
                                            self.config.max_messages_per_second)
                                await self._close_gracefully(session, reader)
                                return
                            continue
                if not self._dispatch(session, payload):
                    return
            await session.writer.drain()

    async def _close_gracefully(self, session: Session, reader: asyncio.StreamReader) -> None:
        """Flush what we said, then drain the client's input briefly: closing with unread input would
        reset the connection and could destroy our last message (error 100) before the client reads it."""
        try:
            await session.writer.drain()
            session.writer.write_eof()
            await asyncio.wait_for(reader.read(-1), 1.0)
        except (asyncio.TimeoutError, ConnectionError, OSError):
            pass

    def _dispatch(self, session: Session, payload: bytes) -> bool:
        """Handle one request; False when the connection must close."""
        try:
            fields = session.codec.request_fields(payload)
            if not fields or not fields[0].lstrip("-").isdigit():
                raise ProtocolError(f"message id {fields[0][:20] if fields else ''!r} is not a number")
            msg_id = int(fields[0])
        except ProtoOnly as exc:
            session.error(-1, 320, f"Server error when reading an API client request. {exc}")
            log.warning("%s: %s", session, exc)
            return True
        except ProtocolError as exc:
            session.error(-1, 320, f"Server error when reading an API client request. {exc}")
            log.warning("%s sent a garbled message: %s", session, exc)
            return True
        except Exception as exc:             # never expected: the codec raises ProtocolError only
            log.warning("%s sent an unreadable message (%s: %s)", session, type(exc).__name__, exc)
            return True
        if session.client_id is None:
            if msg_id != OUT.START_API:
                session.error(-1, 320, f"Server error when reading an API client request. "
                                       f"Expected START_API (71) first, got message id {msg_id}")
                return True
            return self._start_api(session, FieldReader(fields, "START_API", 1))
        if self.faults.intercept(session, msg_id, fields):
            return True
        handler = handlers.HANDLERS.get(msg_id)
        if handler is None:
            session.error(-1, 320, f"Server error when reading an API client request. "
                                   f"Unsupported message id {msg_id}")
            log.warning("%s sent unsupported message id %d", session, msg_id)
            return True
        reader = FieldReader(fields, handler.__name__, 1)
        try:
            handler(session, reader)
        except ProtocolError as exc:
            # the request's id when the handler got that far (as TWS names the request it could not read)
            session.error(_id_or_unset(reader), 320, f"Server error when reading an API client request. {exc}")
            log.warning("%s: %s", session, exc)
        except Exception:
            log.exception("%s: handler %s failed on %r", session, handler.__name__, fields[:6])
            session.error(_id_or_unset(reader), 322, f"Server error when processing an API client request. "
                                                     f"({handler.__name__} failed; see the simulator log)")
        if self.persistence is not None:
            self.persistence.after_request(msg_id)
        return True

    def _start_api(self, session: Session, r: FieldReader) -> bool:
        try:
            r.int("version")
            client_id = r.int("clientId")
        except ProtocolError as exc:
            session.error(-1, 320, f"Server error when reading an API client request. {exc}")
            return False
        if client_id in self.sessions:
            session.error(-1, 326, "Unable to connect as the client id is already in use. "
                                   "Retry with a unique client id.")
            log.warning("%s asked for clientId %d, which is in use; refused (326)", session.peer, client_id)
            return False
        session.client_id = client_id
        self.sessions[client_id] = session
        log.info("client %d connected from %s at server version %d%s", client_id, session.peer,
                 session.version, f" with options {session.connect_options!r}" if session.connect_options else "")
        session.send(IN.MANAGED_ACCTS, 1, ",".join(self.accounts))
        session.send(IN.NEXT_VALID_ID, 1, self.next_order_id)
        for code, text in self.faults.farm_notices(FARM_NOTICES):
            session.error(-1, code, text)
        self.broker.on_client_connected(session)
        return True


def _id_or_unset(reader: FieldReader) -> int:
    return reader.req_id if reader.req_id is not None else -1


def _load_request_modules() -> None:
    """Import every request family once so their handlers register."""
    from .accounts import account_requests  # noqa: F401
    from .broker import orders  # noqa: F401
    from .market import contracts, depth, historical, historical_ticks, mktdata, realtime_bars, tickbytick  # noqa: F401
    from .protocol import basics  # noqa: F401
