"""Faults on demand: what a real gateway does to a client on a bad day, injected when asked.

Owns: the control API tests use (`gateway.faults.drop_client(7)`, `.connectivity_lost()`, ...,
callable from any thread), running a parsed YAML fault scenario (`scenarios.py` reads the files)
on the market's steps, the record of every injected fault (`history`, and a log line starting
"fault:"), and the per-connection write path that delays messages or silences market data (`FaultWriter`).

The faults, as TWS shows them:
- drop_client: the socket is cut; the client sees its connection close.
- connectivity_lost / connectivity_restored: error 1100 to every client (reqId -1) and the farm
  "broken" notices (2103, 2105, 2157); market data stops (subscriptions stay registered but send
  nothing); on restore 1101 "data lost" (market data subscriptions are dropped: the client must
  resubscribe) or 1102 "data maintained" (the streams resume), then the farm OK notices. Orders,
  executions and account messages keep flowing: the simulated exchange side keeps working.
- reject_next_orders: the next N orders get error 201 with the reason (the broker's `reject_next`).
- swallow_next_orders: the next N placeOrders are never answered (the broker's `swallow_next`).
- delay_messages: each outgoing message is held `seconds` (wall clock) before it is written; the
  order of messages is never changed, so messages written after the delay ends queue behind.
- pacing_violation: error 100 then the connection is closed, as TWS does past 50 messages/s; or
  (kind="historical") the client's next historical data request fails with 162 pacing violation.
- send_raw: bytes written to one client as they are (a garbled or oversized frame on the wire).
- restart: every client is disconnected, the listening socket closes and reopens on the same port
  after a pause; orders, positions, executions and the next order id survive (through the
  broker's and ledger's to_state / load_state); the market keeps running.

Must never: change the market, decide anything about orders (the broker does), or use randomness.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ibapi.message import IN, OUT

if TYPE_CHECKING:
    from .scenarios import ScriptedFault
    from ..server import SimGateway
    from ..protocol.session import Session

log = logging.getLogger("ibframe.sim")

LOST = "Connectivity between IB and Trader Workstation has been lost."
RESTORED_DATA_LOST = "Connectivity between IB and Trader Workstation has been restored - data lost."
RESTORED_DATA_KEPT = "Connectivity between IB and Trader Workstation has been restored - data maintained."
BROKEN = {2104: (2103, "Market data farm connection is broken:"),
          2106: (2105, "HMDS data farm connection is broken:"),
          2158: (2157, "Sec-def data farm connection is broken:")}
DEFAULT_REJECT = "Simulated rejection (fault injected)"
HISTORICAL_PACING = "Historical Market Data Service error message:Historical data request pacing violation"
NOT_SUBSCRIBED = "Requested market data is not subscribed."

# Subscription families that are market data (dropped by "restored - data lost").
DATA_KINDS = ("mktdata", "depth", "tickbytick", "realtimebars", "historical")
# Messages that are market data (silenced while connectivity is lost).
DATA_MESSAGES = frozenset(int(m) for m in (
    IN.TICK_PRICE, IN.TICK_SIZE, IN.TICK_OPTION_COMPUTATION, IN.TICK_GENERIC, IN.TICK_STRING, IN.TICK_EFP,
    IN.MARKET_DEPTH, IN.MARKET_DEPTH_L2, IN.REAL_TIME_BARS, IN.TICK_BY_TICK, IN.HISTORICAL_DATA_UPDATE))
HISTORICAL_REQUESTS = frozenset({OUT.REQ_HISTORICAL_DATA, OUT.REQ_HISTORICAL_TICKS})


# --- the record -------------------------------------------------------------------------------------

@dataclass(slots=True)
class FaultRecord:
    """One injected fault: when (simulated epoch and seconds since start), what, with what, from where."""
    time: float
    elapsed: float
    name: str
    params: dict
    source: str            # "api" (a call) or "scenario:<line>"
    outcome: str = ""      # what happened ("no such client", "already lost", ...)


def _kind(v: Any) -> str:
    if v not in ("messages", "historical"):
        raise ValueError(f"{v!r} is not a pacing kind (messages or historical)")
    return v


# --- the write path ---------------------------------------------------------------------------------

class FaultWriter:
    """Stands in for a session's StreamWriter: silences market data during an outage and delays
    messages in order. Everything else is the real writer's."""

    def __init__(self, faults: "Faults", session: "Session", inner: asyncio.StreamWriter):
        self.faults = faults
        self.session = session
        self.inner = inner
        self.queue: deque[tuple[float, bytes]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._eof = False

    def write(self, data: bytes) -> None:
        if self._eof or self.inner.is_closing():
            return
        if self.faults.data_down and self.session.codec.kind_of(data) in DATA_MESSAGES:
            return
        delay = self.faults.delay_for(self.session)
        if delay <= 0 and not self.queue:
            self.inner.write(data)
            return
        loop = self.faults.gateway.loop
        due = loop.time() + delay
        if self.queue:                       # never overtake what is already waiting
            due = max(due, self.queue[-1][0])
        self.queue.append((due, data))
        if self._timer is None:
            self._timer = loop.call_at(self.queue[0][0], self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self.inner.is_closing():
            self.queue.clear()
            return
        now = self.faults.gateway.loop.time()
        while self.queue and self.queue[0][0] <= now:
            self.inner.write(self.queue.popleft()[1])
        if self.queue:
            self._timer = self.faults.gateway.loop.call_at(self.queue[0][0], self._flush)

    def flush_now(self) -> None:
        """Write everything held back (before a graceful close: order matters more than delay)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self.queue and not self.inner.is_closing():
            self.inner.write(self.queue.popleft()[1])
        self.queue.clear()

    def write_eof(self) -> None:
        self.flush_now()
        self._eof = True
        if not self.inner.is_closing():
            self.inner.write_eof()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.queue.clear()
        self.inner.close()

    def abort(self) -> None:
        """Cut the connection now (no FIN handshake, nothing held back is sent)."""
        self.close()
        self.inner.transport.abort()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@dataclass(slots=True)
class _Delay:
    seconds: float
    until: float | None        # loop time when it ends; None = until cleared


# --- the control API --------------------------------------------------------------------------------

class Faults:
    """`gateway.faults`: inject faults now (any thread) or on a scripted schedule (simulated time)."""

    def __init__(self, gateway: "SimGateway", scenario: list[ScriptedFault] | None = None):
        self.gateway = gateway
        self.history: list[FaultRecord] = []
        self.script: deque[ScriptedFault] = deque(sorted(scenario or [], key=lambda f: f.at))
        self.data_down = False
        self._restore_at: float | None = None       # simulated time of an automatic restore
        self._restore_data_lost = True
        self._delays: dict[int | None, _Delay] = {}
        self._historical_refusals: dict[int, int] = {}
        self._market_data_refusals: dict[int, list[int | str]] = {}   # client id -> [count, code, text]
        self._tasks: set[asyncio.Task] = set()
        self._restarting = False

    # --- public API (thread-safe) ---
    def drop_client(self, client_id: int) -> bool:
        """Cut one client's connection at once; False when no such client is connected."""
        return self._run(self._drop_client, client_id)

    def send_raw(self, client_id: int, data: bytes) -> bool:
        """Write `data` to one client as it is (no framing): a garbled or oversized frame on the wire, as a
        broken proxy or TWS would send it. False when no such client is connected."""
        return self._run(self._send_raw, client_id, bytes(data))

    def connectivity_lost(self, seconds: float | None = None, data_lost: bool = True) -> None:
        """TWS loses IB: 1100, farms broken, market data stops; restored by itself after `seconds`
        simulated seconds (with 1101 or 1102 per `data_lost`), else by connectivity_restored()."""
        self._run(self._connectivity_lost, seconds, data_lost, "api")

    def connectivity_restored(self, data_lost: bool = True) -> None:
        """1101 (subscriptions dropped) or 1102 (streams resume), then the farm OK notices."""
        self._run(self._connectivity_restored, data_lost, "api")

    def reject_next_orders(self, n: int, reason: str = DEFAULT_REJECT) -> None:
        """The next `n` new orders (any client) get error 201 with `reason`."""
        self._run(self._reject_next_orders, n, reason, "api")

    def fail_orders_in_step(self, order_ref: str) -> None:
        """Working an order with this orderRef raises inside the market step (proves the supervisor)."""
        self._run(lambda: (self._record("fail_orders_in_step", {"order_ref": order_ref}, "api"),
                           self.gateway.supervisor.fail_orders_with_ref(order_ref)))

    def swallow_next_orders(self, n: int) -> None:
        """The next `n` placeOrders (any client) get no answer at all: no openOrder, status or error."""
        self._run(lambda: (self._record("swallow_next_orders", {"n": n}, "api"), self.gateway.broker.swallow_next(n)))

    def delay_messages(self, seconds: float, client_id: int | None = None, duration: float | None = None) -> None:
        """Hold each outgoing message `seconds` (wall clock) before writing it, for one client or all,
        for `duration` wall seconds (None: until delay_messages(0) clears it). Order is kept."""
        self._run(self._delay_messages, seconds, client_id, duration, "api")

    def pacing_violation(self, client_id: int, kind: str = "messages") -> bool:
        """kind="messages": error 100 then disconnect; kind="historical": the next historical request
        of this client fails with 162. False when no such client is connected."""
        return self._run(self._pacing_violation, client_id, _kind(kind), "api")

    def refuse_market_data(self, client_id: int, n: int = 1, code: int = 354, text: str = NOT_SUBSCRIBED) -> None:
        """The client's next `n` reqMktData (streams and snapshots) get error `code` (354: no market data
        permissions) instead of data."""
        self._run(lambda: (self._record("refuse_market_data", {"client_id": client_id, "n": n, "code": code}, "api"),
                           self._market_data_refusals.__setitem__(client_id, [n, code, text])))

    def restart(self, keep_state: bool = True, pause: float = 1.0) -> None:
        """A gateway restart: clients dropped, the port closed for `pause` wall seconds, state kept
        (or not). From another thread this returns once the gateway listens again."""
        loop = self._loop()
        if self._on_loop():
            self._spawn(self._restart(keep_state, pause, "api"))
            return
        asyncio.run_coroutine_threadsafe(self._restart(keep_state, pause, "api"), loop).result(pause + 30)

    # --- hooks the server calls ---
    def attach(self, session: "Session") -> None:
        """Route a new connection's output through the fault write path."""
        session.writer = FaultWriter(self, session, session.writer)

    def farm_notices(self, ok_notices) -> list[tuple[int, str]]:
        """The farm messages a client gets at connect: OK, or broken while connectivity is lost."""
        if not self.data_down:
            return list(ok_notices)
        return [self._broken(code, text) for code, text in ok_notices]

    def intercept(self, session: "Session", msg_id: int, fields: list[str]) -> bool:
        """True when an injected fault answered this request instead of its handler."""
        if msg_id in HISTORICAL_REQUESTS and self._historical_refusals.get(session.client_id, 0) > 0:
            self._historical_refusals[session.client_id] -= 1
            try:
                req_id = int(fields[1])
            except (IndexError, ValueError):
                return False
            session.error(req_id, 162, HISTORICAL_PACING)
            log.warning("fault: historical pacing violation for client %s (reqId %d)", session.client_id, req_id)
            return True
        refusal = self._market_data_refusals.get(session.client_id)
        if msg_id == OUT.REQ_MKT_DATA and refusal and refusal[0] > 0:
            try:
                req_id = int(fields[2])              # REQ_MKT_DATA: msg id, version, reqId, ...
            except (IndexError, ValueError):
                return False
            refusal[0] -= 1
            session.error(req_id, refusal[1], refusal[2])
            log.warning("fault: market data refused for client %s (reqId %d, error %s)", session.client_id, req_id,
                        refusal[1])
            return True
        return False

    def on_step(self) -> None:
        """After each market step: run scripted faults and automatic restores that are due."""
        now = self.gateway.now()
        if self._restore_at is not None and now >= self._restore_at:
            self._connectivity_restored(self._restore_data_lost, "timer")
        elapsed = now - self.gateway.start_time
        while self.script and self.script[0].at <= elapsed + 1e-9:
            self._run_scripted(self.script.popleft())

    def delay_for(self, session: "Session") -> float:
        """Seconds to hold a message to this session right now."""
        if not self._delays:
            return 0.0
        now = self.gateway.loop.time()
        for key in (session.client_id, None):
            d = self._delays.get(key)
            if d is None or (key is not None and session.client_id is None):
                continue
            if d.until is not None and now >= d.until:
                del self._delays[key]
                continue
            return d.seconds
        return 0.0

    def reset(self) -> None:
        """A restart comes up connected, with no delays or pending refusals."""
        self.data_down = False
        self._restore_at = None
        self._delays.clear()
        self._historical_refusals.clear()
        self._market_data_refusals.clear()

    def cancel_pending(self) -> None:
        """The gateway stops: abandon a restart in progress."""
        for task in list(self._tasks):
            task.cancel()

    # --- the faults themselves (on the loop) ---
    def _record(self, name: str, params: dict, source: str, outcome: str = "") -> FaultRecord:
        now = self.gateway.now()
        rec = FaultRecord(now, now - self.gateway.start_time, name, params, source, outcome)
        self.history.append(rec)
        shown = " ".join(f"{k}={v!r}" for k, v in params.items())
        log.warning("fault: %s%s at +%.2fs (%s)%s", name, f" {shown}" if shown else "", rec.elapsed, source,
                    f": {outcome}" if outcome else "")
        return rec

    def _drop_client(self, client_id: int, source: str = "api") -> bool:
        session = self.gateway.sessions.get(client_id)
        if session is None:
            self._record("drop_client", {"client_id": client_id}, source, "no such client")
            return False
        self._record("drop_client", {"client_id": client_id}, source)
        self._forget(session)
        writer = session.writer
        session.close()
        if isinstance(writer, FaultWriter):
            writer.inner.transport.abort()
        return True

    def _send_raw(self, client_id: int, data: bytes, source: str = "api") -> bool:
        session = self.gateway.sessions.get(client_id)
        params = {"client_id": client_id, "bytes": len(data)}
        if session is None:
            self._record("send_raw", params, source, "no such client")
            return False
        self._record("send_raw", params, source)
        writer = session.writer
        (writer.inner if isinstance(writer, FaultWriter) else writer).write(data)
        return True

    def _connectivity_lost(self, seconds: float | None, data_lost: bool, source: str) -> None:
        params = {"seconds": seconds, "data_lost": data_lost} if seconds is not None else {}
        if self.data_down:
            self._record("connectivity_lost", params, source, "already lost")
            return
        self._record("connectivity_lost", params, source)
        self.data_down = True
        from ..server import FARM_NOTICES
        for session in self._sessions():
            session.error(-1, 1100, LOST)
            for code, text in self.farm_notices(FARM_NOTICES):
                session.error(-1, code, text)
        if seconds is not None:
            self._restore_at = self.gateway.now() + seconds
            self._restore_data_lost = data_lost

    def _connectivity_restored(self, data_lost: bool, source: str) -> None:
        if not self.data_down:
            self._record("connectivity_restored", {"data_lost": data_lost}, source, "was not lost")
            return
        self._record("connectivity_restored", {"data_lost": data_lost}, source)
        self.data_down = False
        self._restore_at = None
        from ..server import FARM_NOTICES
        for session in self._sessions():
            if data_lost:
                dropped = [key for key in session.subscriptions if key[0] in DATA_KINDS]
                for kind, req_id in dropped:
                    session.end_subscription(kind, req_id)
                session.error(-1, 1101, RESTORED_DATA_LOST)
            else:
                session.error(-1, 1102, RESTORED_DATA_KEPT)
            for code, text in FARM_NOTICES:
                session.error(-1, code, text)

    def _reject_next_orders(self, n: int, reason: str, source: str) -> None:
        self._record("reject_next_orders", {"n": n, "reason": reason}, source)
        self.gateway.broker.reject_next(n, reason)

    def _delay_messages(self, seconds: float, client_id: int | None, duration: float | None, source: str) -> None:
        params = {"seconds": seconds}
        if client_id is not None:
            params["client_id"] = client_id
        if duration is not None:
            params["duration"] = duration
        self._record("delay_messages", params, source, "cleared" if seconds <= 0 else "")
        if seconds <= 0:
            if client_id is None:
                self._delays.clear()
            else:
                self._delays.pop(client_id, None)
            return
        until = self.gateway.loop.time() + duration if duration is not None else None
        self._delays[client_id] = _Delay(float(seconds), until)

    def _pacing_violation(self, client_id: int, kind: str, source: str) -> bool:
        session = self.gateway.sessions.get(client_id)
        params = {"client_id": client_id, "kind": kind}
        if session is None:
            self._record("pacing_violation", params, source, "no such client")
            return False
        self._record("pacing_violation", params, source)
        if kind == "historical":
            self._historical_refusals[client_id] = self._historical_refusals.get(client_id, 0) + 1
            return True
        limit = self.gateway.config.max_messages_per_second
        session.error(-1, 100, f"Max rate of messages per second has been exceeded:max={limit} rec={limit + 1} (1)")
        self._forget(session)
        writer = session.writer
        try:
            writer.write_eof()        # the client reads error 100, then sees the connection close
        except (OSError, RuntimeError):
            pass
        self._loop().call_later(2.0, session.close)   # in case the client never closes its side
        return True

    async def _restart(self, keep_state: bool, pause: float, source: str) -> None:
        params = {"keep_state": keep_state, "pause": pause}
        if self._restarting:
            self._record("restart", params, source, "already restarting")
            return
        self._record("restart", params, source)
        self._restarting = True
        try:
            await self.gateway._restart(keep_state, pause)
        finally:
            self._restarting = False

    def _run_scripted(self, f: ScriptedFault) -> None:
        source = f"scenario line {f.line}"
        p = f.params
        try:
            if f.name == "drop_client":
                self._drop_client(p["client_id"], source)
            elif f.name == "connectivity_lost":
                self._connectivity_lost(p.get("seconds"), p.get("data_lost", True), source)
            elif f.name == "connectivity_restored":
                self._connectivity_restored(p.get("data_lost", True), source)
            elif f.name == "reject_next_orders":
                self._reject_next_orders(p["n"], p.get("reason") or DEFAULT_REJECT, source)
            elif f.name == "delay_messages":
                self._delay_messages(p["seconds"], p.get("client_id"), p.get("duration"), source)
            elif f.name == "pacing_violation":
                self._pacing_violation(p["client_id"], p.get("kind") or "messages", source)
            elif f.name == "restart":
                keep = p.get("keep_state")
                self._spawn(self._restart(True if keep is None else keep,
                                          1.0 if p.get("pause") is None else p["pause"], source))
        except Exception:
            log.exception("fault: scripted %s (%s) failed", f.name, source)

    # --- plumbing ---
    def _sessions(self) -> list["Session"]:
        return [s for s in self.gateway.sessions.values() if not s.closed]

    @staticmethod
    def _broken(code: int, text: str) -> tuple[int, str]:
        broken = BROKEN.get(code)
        if broken is None:
            return code, text
        return broken[0], broken[1] + text.rsplit(":", 1)[-1]

    def _forget(self, session: "Session") -> None:
        """Unregister the clientId now, so the client can reconnect with it at once."""
        if self.gateway.sessions.get(session.client_id) is session:
            del self.gateway.sessions[session.client_id]

    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = self.gateway.loop
        if loop is None or loop.is_closed():
            raise RuntimeError("the simulated gateway is not running: start() it before injecting faults")
        return loop

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.gateway.loop
        except RuntimeError:
            return False

    def _run(self, fn: Callable, *args):
        """Run on the gateway's loop (directly when already there) and return the result."""
        self._loop()
        if self._on_loop():
            return fn(*args)
        return self.gateway.call(fn, *args)

    def _spawn(self, coro) -> None:
        task = self._loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
