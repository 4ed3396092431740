"""`python -m ibframe.replay recording.jsonl.gz strategy.yaml`: replay a recorded session into strategies.

Owns: feeding a recording (ibframe.record) through the live path — ibapi's Decoder at the recorded
server version, the same Router, Engine, OrderManager and Strategy code — on a virtual clock, with
every outbound message captured instead of sent; and the simple paper fill model used when orders
are simulated. An entry point like ibframe.run (it subclasses the Runner, so a replay makes the
same requests in the same order as the live run), so it alone may import ibframe.sim's order codec.
Must never: open a socket, read or write a live order-id file, or wait on wall time at --speed max.

How a replay stays faithful and deterministic:

* Time. The dispatcher runs on a `VirtualClock` whose source is the `Feeder` below. The clock
  reads the time of the event being replayed; timers due before the next recorded event fire
  first, at their due time. At --speed max nothing sleeps; at 1x/10x the feeder paces events.
* Requests before answers. An inbound frame is delivered only once the replay has sent as many
  requests (placeOrder/cancelOrder/reqGlobalCancel not counted) as the recording had sent before
  it, so an answer always finds its request registered under the same request id (ids start at
  the same base in every Engine, and the Runner makes requests in the same order). While the
  runner sets up (qualify, account, on_start) the feeder waits for it at each such point; calls
  from the runner's thread are taken only while the feeder waits, so they land at the same place
  in the stream every time, at the recorded time of the request they send (calls from other
  threads while strategies run wait for the same pause, at most 60 s). Once strategies run, a
  request the replay never makes is noted as a divergence and the frames after it still play.
  The play ends at the live run's `stop` mark (without one: at the requests after the last frame,
  or the end); the strategies are stopped there, as they were live, and the rest plays out.
* Orders. Order ids come from an in-memory allocator seeded with the recorded nextValidId (raised
  to the first order id the live run used, since a live id file may have been ahead of TWS).
  fills="recorded" (default) feeds the recorded broker answers back; fills="simulated" drops
  them and fills the strategy's orders against the recorded quotes with `PaperFills`:
  - market orders fill at once at the recorded far side (ask for buys, bid for sells) of the
    instrument's market-data line, or at its first quote when there is none yet (an order on an
    instrument the replay has no market-data line for never fills);
  - limit orders that are marketable when placed fill at the far side; resting ones fill at
    their limit price once the far side reaches it (ask <= limit for a buy, bid >= limit for a sell);
  - stop orders trigger when the far side reaches the stop (ask >= stop for a buy, bid <= stop for
    a sell) and then fill as market orders; stop-limits become limit orders;
  - the whole quantity fills at once; no queue position, no partial fills, no size limits;
  - bracket children wait for their parent's fill; the first child to fill cancels its siblings;
  - other order types are rejected (error 201); commissions: $0.005/share (min $1, max 1% of
    value) for stocks, $0.65/contract options, $0.85/contract futures, 0.2 bp (min $2) forex.
  The answers (openOrder, orderStatus, execDetails, commissionAndFeesReport, position) are encoded
  as TWS frames at the recorded server version (ibframe.sim's order codec) and decoded by the same
  Decoder into the same Router, right after the frame that caused them. Recorded order answers,
  errors naming recorded order ids, and recorded positions after the first recorded order are
  left out. ibframe.sim's paper broker matches against its own simulated book, not a recording,
  so it is not used here.
* Damage. A truncated or corrupt recording plays up to the damaged line, then stops the run as
  the live run stopped and reports the line and the reason. A frame the Decoder cannot read is
  skipped as in a live session and reported with its line number.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import queue
import signal
import sys
import threading
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from ibapi.client import EClient
from google.protobuf.message import DecodeError
from ibapi.common import PROTOBUF_MSG_ID
from ibapi.protobuf.ErrorMessage_pb2 import ErrorMessage as ErrorMessageProto
from ibapi.decoder import Decoder
from ibapi.message import IN, OUT
from ibapi.server_versions import (MAX_CLIENT_VER, MIN_CLIENT_VER, MIN_SERVER_VER_ADVANCED_ORDER_REJECT,
                                    MIN_SERVER_VER_ERROR_TIME)

from .config import ConfigError, GatewayConfig, RunConfig, load_config
from .connection import ConnectError, IBConnection
from .dispatch import Dispatcher, VirtualClock
from .engine import Engine
from .ids import OrderIds
from .journal import JournalConfig
from .recorded_time import recorded_time
from .record import ORDER_MESSAGES, START_API, Event, Recording, RecordingError, event_to_payload, payload_to_event
from .run import Runner, RunError, prepare_process
from .strategy import Strategy

log = logging.getLogger("ibframe.replay")

_WAKE = (lambda: None, ())          # wakes a waiting feeder; runs as a no-op on the dispatch thread


class ReplayError(RuntimeError):
    """The recording cannot be replayed (or the replay could not set up); the text says why."""


def parse_speed(text: str | float | None) -> float | None:
    """'max' (None: no pacing), '1x', '10x', '0.5x' or a number."""
    if text is None or str(text).strip().lower() == "max":
        return None
    raw = str(text).strip().lower().removesuffix("x")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"--speed {text!r}: write max, or a multiple of real time such as 1x or 10x") from None
    if value <= 0:
        raise ValueError(f"--speed {text!r} must be positive")
    return value


@dataclass(slots=True)
class Sent:
    """One message the replay would have sent: `payload` is exactly the bytes after the length prefix."""
    time: float
    payload: bytes
    fields: list[str] | None

    @property
    def msg_id(self) -> int:
        """The message's id (a protobuf request's real id: its wire id minus 200)."""
        if self.fields:
            return int(self.fields[0])
        wire_id = int.from_bytes(self.payload[:4], "big")
        return wire_id - PROTOBUF_MSG_ID if wire_id > PROTOBUF_MSG_ID else wire_id

    @property
    def is_order(self) -> bool:
        return self.msg_id in ORDER_MESSAGES


    def __str__(self) -> str:
        return ",".join(self.fields) if self.fields is not None else f"<{len(self.payload)} bytes>"


# --- the feeder: the virtual clock's source -------------------------------------------------------------

class Feeder:
    """Decides, on the dispatch thread, what runs next: queued work, a synthesized answer, a recorded
    frame, or the due timers (by moving the virtual clock). Phases: setup (the runner is qualifying and
    starting strategies), play, drain (strategies stopped; play out what is left)."""

    def __init__(self, recording: Recording, clock: VirtualClock, speed: float | None):
        self.recording = recording
        self.version = recording.header.server_version
        self.clock = clock
        self.speed = speed
        self._events = recording.events()
        self._peeked: Event | None = None
        self._exhausted = False
        self._cond = threading.Condition()
        self.phase = "setup"
        self._parked = False
        self._park_phase = ""
        self._park_reason = ""
        self._origin: tuple[float, float] | None = None
        self._ended_early_done = False
        self.interrupted = False
        self.dispatcher: Dispatcher | None = None
        self.conn: "ReplayConnection | None" = None
        self.router = None
        self.sent: list[Sent] = []
        self.sent_requests = 0
        self.mark_handlers: dict[str, Callable[[], None]] = {}   # recorded mark name -> what the replay does there
        self.api_started = False             # the replay sent START_API (its one connection)
        self.api_line_seen = False           # the recording's first START_API line was taken
        self.forced = 0
        self.out_index = 0
        self.injected: deque[tuple[bytes, str]] = deque()
        self.drop: Callable[[Event], bool] | None = None      # leave a recorded frame out (simulated fills)
        self.after_frame: Callable[[], None] | None = None    # after each recorded frame (simulated fills)
        self.delivered = 0
        self.skipped = 0
        self.synthesized = 0
        self.last_line = 1
        self.problems: list[str] = []
        self.divergences: list[str] = []

    def bind(self, dispatcher: Dispatcher, conn: "ReplayConnection", router) -> None:
        self.dispatcher, self.conn, self.router = dispatcher, conn, router

    # --- any thread -------------------------------------------------------------------------------------
    def on_sent(self, sent: Sent) -> None:
        with self._cond:
            self.sent.append(sent)
            counts = not sent.is_order and not (sent.msg_id == START_API and self.api_started)
            self.api_started |= sent.msg_id == START_API
            if counts:
                self.sent_requests += 1
                if self._parked:
                    self.dispatcher.queue.put(_WAKE)

    def set_phase(self, phase: str) -> None:
        with self._cond:
            self.phase = phase
            if self._parked:
                self.dispatcher.queue.put(_WAKE)
            self._cond.notify_all()

    def interrupt(self) -> None:
        """Stop reading the recording (Ctrl-C): the run ends as if the recording ended here."""
        with self._cond:
            self.interrupted = True
            if self.dispatcher is not None:
                self.dispatcher.queue.put(_WAKE)

    def wait_parked(self, timeout: float = 60.0) -> None:
        """Block a non-dispatch thread until the feeder waits for it (so its work lands deterministically)."""
        if not self._wait(lambda: self._parked, timeout):
            log.warning("replay: the feeder did not pause within %gs; running the call anyway", timeout)

    def wait_idle(self, phase: str, timeout: float | None = None) -> bool:
        """Block until the feeder has nothing left to do in `phase` (the stop mark or the end)."""
        return self._wait(lambda: self._parked and self._park_phase == phase, timeout)

    def _wait(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        thread = self.dispatcher._thread if self.dispatcher is not None else None
        with self._cond:
            while not ready():
                if thread is None or not thread.is_alive():
                    return True                     # nothing runs the replay any more: do not wait for it
                left = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def inject(self, payload: bytes, what: str) -> None:
        """A synthesized frame, delivered before the next recorded one (dispatch thread)."""
        self.injected.append((payload, what))

    # --- the clock's source (dispatch thread) -------------------------------------------------------
    def next(self, q: queue.Queue, timeout: float | None):
        try:
            return self._next(q, timeout)
        except queue.Empty:
            raise
        except Exception as exc:                    # a bug here must not kill the dispatch thread
            log.exception("replay feeder failed")
            self.problems.append(f"replay stopped at line {self.last_line}: {type(exc).__name__}: {exc}")
            self._exhausted, self._peeked = True, None
            while True:
                item = self._park(q, "end", None, self.phase, self.sent_requests)
                if item is not None:
                    return item

    def _next(self, q: queue.Queue, timeout: float | None):
        while True:
            try:
                return q.get_nowait()
            except queue.Empty:
                pass
            if self.injected:
                return (self._deliver_synthetic, self.injected.popleft())
            phase, sent = self.phase, self.sent_requests
            ev = self._peek()
            if ev is not None and ev.type == "out" and (not self._gates(ev) or sent + self.forced > self.out_index):
                self._take()                        # already sent by the replay (orders never gate)
                continue
            horizon = ev.time if ev is not None else self.clock.now()
            if timeout is not None and self.clock.now() + timeout <= horizon:
                due = self.clock.now() + timeout
                item = self._pace(q, due)
                if item is not None:
                    return item
                self.clock.advance(due)
                raise queue.Empty                   # the dispatcher fires the due timers
            if ev is None:
                if phase == "setup":
                    self._ended_early()
                item = self._park(q, "end", None, phase, sent)
            elif ev.type == "in":
                item = self._pace(q, ev.time)
                if item is not None:
                    return item
                self._take()
                self.clock.advance(ev.time)
                return (self._deliver, (ev,))
            elif ev.type == "mark" and ev.name in self.mark_handlers:
                self._take()                        # the live run lost / regained its socket here
                self.clock.advance(ev.time)
                return (self.mark_handlers[ev.name], ())
            elif ev.type in ("mark", "end"):
                if ev.type == "mark" and ev.name == "stop" and phase != "drain":
                    item = self._park(q, "stop", None, phase, sent)     # the live run stopped its strategies here
                else:
                    self._take()
                    self.clock.advance(ev.time)
                    continue
            elif phase == "setup":                  # the runner has yet to send this request
                item = self._park(q, "request", ev, phase, sent)
            elif phase == "play" and ev.line > self.recording.last_frame_line:
                item = self._park(q, "stop", None, phase, sent)         # no stop mark: stopping requests
            else:
                if phase == "play":
                    self.divergences.append(f"line {ev.line}: the recording sent request #{self.out_index + 1} "
                                            f"({_describe(ev)}) here; the replay did not")
                self.forced += 1
                self._take()
                continue
            if item is not None:
                return item

    def _park(self, q, reason: str, ev: Event | None, phase: str, sent: int):
        """Wait for another thread; None when the state changed meanwhile (look again)."""
        with self._cond:
            if self.phase != phase or self.sent_requests != sent:
                return None
            self._parked, self._park_phase, self._park_reason = True, phase, reason
            self._cond.notify_all()
        try:
            item = q.get()
        finally:
            with self._cond:
                self._parked = False
            self._origin = None                     # pacing restarts after a wait
        if ev is not None and item is not _WAKE:
            self.clock.advance(ev.time)            # the runner's step runs when the recording says it did
        return item

    def _pace(self, q, target: float):
        if self.speed is None:
            return None
        now = time.monotonic()
        if self._origin is None:
            self._origin = (self.clock.now(), now)
        virtual0, wall0 = self._origin
        delay = wall0 + (target - virtual0) / self.speed - now
        if delay <= 0:
            return None
        try:
            return q.get(timeout=delay)
        except queue.Empty:
            return None

    def _peek(self) -> Event | None:
        if self.interrupted and not self._exhausted:
            self.problems.append(f"interrupted after line {self.last_line}")
            self._exhausted, self._peeked = True, None
        if self._peeked is None and not self._exhausted:
            self._peeked = next(self._events, None)
            if self._peeked is None:
                self._exhausted = True
        return self._peeked

    def _gates(self, ev: Event) -> bool:
        """An out line the replay must have sent before later frames: not an order, not a reconnect's START_API."""
        return not ev.is_order and not (ev.msg_id == START_API and self.api_line_seen)

    def _take(self) -> Event:
        ev, self._peeked = self._peeked, None
        self.last_line = ev.line
        if ev.type == "out" and self._gates(ev):
            self.out_index += 1
        if ev.type == "out" and ev.msg_id == START_API:
            self.api_line_seen = True
        return ev

    def _ended_early(self) -> None:
        """The recording ended while the runner still waits for answers: fail those waits now."""
        if self._ended_early_done:
            return
        self._ended_early_done = True
        why = f"the recording ends (line {self.last_line}) before this was answered"
        for req in list(self.router.requests.values()):
            if req.future is not None and not req.future.done():
                req.future.set_exception(TimeoutError(f"{why}: {req.subject}"))
        if not self.router.ready.is_set():
            self.router.connectionClosed()

    # --- delivery (dispatch thread, as queued work) ----------------------------------------------------
    def _deliver(self, ev: Event) -> None:
        if self.drop is not None and self.drop(ev):
            self.skipped += 1
            return
        payload = ev.raw if ev.raw is not None else event_to_payload({"fields": ev.fields}, self.version)
        self._decode(payload, f"line {ev.line}")
        self.delivered += 1
        if self.after_frame is not None:
            self.after_frame()

    def _deliver_synthetic(self, payload: bytes, what: str) -> None:
        self._decode(payload, f"synthesized {what}")
        self.synthesized += 1

    def _decode(self, payload: bytes, where: str) -> None:
        bad = self.conn.bad_frames
        self.conn._decode_batch([payload])
        if self.conn.bad_frames != bad:
            text = self.router.errors[-1].text if self.router.errors else "unreadable"
            self.problems.append(f"{where}: {text}")


def _describe(ev: Event) -> str:
    if ev.fields:
        name = next((n for n, v in vars(OUT).items() if v == int(ev.fields[0]) and not n.startswith("_")), "?")
        return f"{name} {','.join(ev.fields[1:6])}{'…' if len(ev.fields) > 6 else ''}"
    return "a hand-written placeholder" if ev.raw is None else f"{len(ev.raw)} raw bytes"


class ReplayDispatcher(Dispatcher):
    """The dispatcher of a replay: work from other threads is queued only while the feeder waits for it."""

    def __init__(self, clock: VirtualClock, feeder: Feeder):
        super().__init__(clock)
        self.feeder = feeder

    def post(self, fn, *args) -> None:
        if self._thread is not None and self._thread.is_alive() and not self.in_dispatch_thread():
            self.feeder.wait_parked()
        super().post(fn, *args)


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


# --- simulated fills against the recorded quotes -------------------------------------------------------------

EASTERN = ZoneInfo("US/Eastern")
SUPPORTED_ORDER_TYPES = ("MKT", "LMT", "STP", "STP LMT")
ORDER_ANSWERS = frozenset({IN.OPEN_ORDER, IN.ORDER_STATUS, IN.EXECUTION_DATA, IN.COMMISSION_AND_FEES_REPORT,
                           IN.COMPLETED_ORDER, IN.ORDER_BOUND})


@dataclass(slots=True)
class _Working:
    order_id: int
    contract: object
    order: object
    wire: object | None                 # ibframe.sim.broker.order_records.SimOrder parsed from the sent placeOrder
    perm_id: int
    active: bool
    placed_at: float
    triggered: bool = False


class PaperFills:
    """The replay's paper broker (fills="simulated"); the model is described in the module docstring."""

    def __init__(self, engine: Engine, feeder: Feeder, recording: Recording):
        from .sim.broker import order_answers_wire, order_records, order_requests_wire  # the replay entry point
        from .sim.protocol import wire                                                 # alone wires in the sim's codec
        self.records, self.requests_wire = order_records, order_requests_wire
        self.answers, self.format_field = order_answers_wire, wire.format_field
        self.engine, self.feeder = engine, feeder
        self.version = recording.header.server_version
        self.accounts = recording.header.accounts
        self.recorded_order_ids = recording.order_ids
        self.first_order_line = recording.orders[0].line if recording.orders else None
        self.working: dict[int, _Working] = {}
        self.positions: dict[tuple[str, int], list[float]] = {}
        self.seq = 0
        self.fills = 0

    # --- which recorded frames a simulated broker replaces -----------------------------------------------
    def drops(self, ev: Event) -> bool:
        msg_id = ev.msg_id or 0
        if msg_id in ORDER_ANSWERS:
            return True
        if msg_id in (IN.POSITION_DATA, IN.PORTFOLIO_VALUE):
            return self.first_order_line is not None and ev.line > self.first_order_line
        if msg_id == IN.ERR_MSG and ev.is_protobuf:
            try:
                return ErrorMessageProto.FromString(ev.raw[4:]).id in self.recorded_order_ids
            except DecodeError:
                return False
        if msg_id == IN.ERR_MSG and ev.fields:
            at = 1 if self.version >= MIN_SERVER_VER_ERROR_TIME else 2
            try:
                return int(ev.fields[at]) in self.recorded_order_ids
            except (IndexError, ValueError):
                return False
        return False

    # --- orders in ----------------------------------------------------------------------------------------
    def place(self, order_id: int, contract, order, sent: Sent) -> None:
        if order.orderType not in SUPPORTED_ORDER_TYPES:
            self._error(order_id, 201, f"Order rejected - Reason: replay fills support "
                                       f"{', '.join(SUPPORTED_ORDER_TYPES)} orders, not {order.orderType}")
            return
        existing = self.working.get(order_id)
        if existing is not None:                 # a modification: same id, new terms
            existing.order, existing.contract = order, contract
            existing.wire = self._parse(sent) or existing.wire
            w = existing
        else:
            self.seq += 1
            parent = order.parentId
            w = _Working(order_id, contract, order, self._parse(sent), self.records.make_perm_id(self.seq),
                         active=not parent or parent not in self.working, placed_at=self.engine.clock.now())
            self.working[order_id] = w
        status = "Submitted" if w.active else "PreSubmitted"
        self._open_order(w, status)
        self._status(w, status, 0.0, float(order.totalQuantity), 0.0, 0.0)
        if w.active:
            self._check(w, at_placement=True)

    def cancel(self, order_id: int) -> None:
        w = self.working.pop(order_id, None)
        if w is None:
            self._error(order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found.")
            return
        self._error(order_id, 202, "Order Canceled - reason:")
        self._status(w, "Cancelled", 0.0, float(w.order.totalQuantity), 0.0, 0.0)

    # --- matching against the recorded market ------------------------------------------------------------
    def check_all(self) -> None:
        for w in list(self.working.values()):
            if w.active and w.order_id in self.working:
                self._check(w, at_placement=False)

    def _quote(self, w: _Working) -> tuple[float | None, float | None]:
        quote = self.engine.live_quote(getattr(w.contract, "conId", 0))
        if quote is None:
            return None, None
        return quote.bid, quote.ask

    def _check(self, w: _Working, at_placement: bool) -> None:
        bid, ask = self._quote(w)
        buy = w.order.action == "BUY"
        far = ask if buy else bid
        if far is None:
            return
        kind = w.order.orderType
        if kind in ("STP", "STP LMT") and not w.triggered:
            stop = w.order.auxPrice
            if not ((buy and far >= stop) or (not buy and far <= stop)):
                return
            w.triggered, at_placement = True, True
        if kind in ("MKT", "STP"):
            self._fill(w, far, removed=True)
            return
        limit = w.order.lmtPrice
        if (buy and far <= limit) or (not buy and far >= limit):
            self._fill(w, far if at_placement else limit, removed=at_placement)

    def _fill(self, w: _Working, price: float, removed: bool) -> None:
        self.working.pop(w.order_id, None)
        self.fills += 1
        order, contract = w.order, w.contract
        qty = float(order.totalQuantity)
        now = self.engine.clock.now()
        account = order.account or (self.accounts[0] if self.accounts else "") or self.engine.account
        side = "BOT" if order.action == "BUY" else "SLD"
        exec_id = self.records.make_exec_id(self.fills, w.order_id, now)
        when = dt.datetime.fromtimestamp(now, EASTERN).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"
        if w.wire is not None:
            execution = self.records.ExecutionInfo(
                execId=exec_id, time=when, acctNumber=account,
                exchange=contract.primaryExchange or contract.exchange or "SMART", side=side, shares=qty,
                price=price, permId=w.perm_id, clientId=self.engine.client_id, cumQty=qty, avgPrice=price,
                orderRef=order.orderRef, lastLiquidity=2 if removed else 1)
            self._send(self.answers.encode_execution(-1, w.wire, execution, self.version), "execDetails")
        self._status(w, "Filled", qty, 0.0, price, price)
        if w.wire is not None:
            self._open_order(w, "Filled")
        commission = self._commission(contract, qty, price)
        self._send(self.answers.encode_commission_report(exec_id, commission, contract.currency or "USD", None, None,
                                                    None, self.version), "commissionAndFeesReport")
        self._position(account, contract, qty if side == "BOT" else -qty, price)
        for child in [c for c in self.working.values() if c.order.parentId == w.order_id and not c.active]:
            child.active = True
            self._status(child, "Submitted", 0.0, float(child.order.totalQuantity), 0.0, 0.0)
            self._check(child, at_placement=True)
        if order.parentId:                      # one exit of a bracket filled: the others are cancelled
            for sibling in [c for c in self.working.values() if c.order.parentId == order.parentId]:
                self.working.pop(sibling.order_id, None)
                self._status(sibling, "Cancelled", 0.0, float(sibling.order.totalQuantity), 0.0, 0.0)

    @staticmethod
    def _commission(contract, qty: float, price: float) -> float:
        kind = contract.secType
        if kind == "OPT":
            return round(0.65 * qty, 2)
        if kind in ("FUT", "FOP"):
            return round(0.85 * qty, 2)
        if kind == "CASH":
            return round(max(2.0, qty * price * 0.00002), 2)
        return round(min(max(1.0, 0.005 * qty), 0.01 * qty * price), 2)

    # --- answers, encoded as TWS would send them ----------------------------------------------------------
    def _parse(self, sent: Sent):
        if sent.fields is None:
            return None
        try:
            from .sim.protocol.wire import FieldReader
            parsed = self.requests_wire.parse_place_order(FieldReader(sent.fields, "PLACE_ORDER", 1), self.version)
        except ValueError as exc:
            log.warning("replay fills: cannot read back placeOrder %s (%s); no openOrder is synthesized", sent, exc)
            return None
        parsed.clientId = self.engine.client_id
        return parsed

    def _open_order(self, w: _Working, status: str) -> None:
        if w.wire is None:
            return
        w.wire.permId = w.perm_id
        self._send(self.answers.encode_open_order(w.wire, self.records.OrderStateInfo(status=status), self.version),
                   "openOrder")

    def _status(self, w: _Working, status: str, filled: float, remaining: float, avg: float, last: float) -> None:
        self._send(self.answers.encode_order_status(w.order_id, status, filled, remaining, avg, w.perm_id,
                                               w.order.parentId or 0, last, self.engine.client_id, "", None,
                                               self.version), "orderStatus")

    def _error(self, order_id: int, code: int, text: str) -> None:
        if self.version >= MIN_SERVER_VER_ERROR_TIME:
            fields = (IN.ERR_MSG, order_id, code, text, "", int(self.engine.clock.now() * 1000))
        elif self.version >= MIN_SERVER_VER_ADVANCED_ORDER_REJECT:
            fields = (IN.ERR_MSG, 2, order_id, code, text, "")
        else:
            fields = (IN.ERR_MSG, 2, order_id, code, text)
        self._send(fields, "error")

    def _position(self, account: str, contract, delta: float, price: float) -> None:
        key = (account, contract.conId)
        if key not in self.positions:
            known = self.engine.portfolio.positions.get(key)
            self.positions[key] = [known.quantity, known.avg_cost] if known else [0.0, 0.0]
        pos = self.positions[key]
        qty, avg = pos
        new = qty + delta
        if new == 0:
            avg = 0.0
        elif qty == 0 or (qty > 0) != (new > 0):
            avg = price
        elif abs(new) > abs(qty):
            avg = (qty * avg + delta * price) / new
        pos[0], pos[1] = new, avg
        self._send((IN.POSITION_DATA, 3, account, contract.conId, contract.symbol, contract.secType,
                    contract.lastTradeDateOrContractMonth, float(contract.strike or 0.0), contract.right,
                    contract.multiplier, contract.exchange, contract.currency, contract.localSymbol,
                    contract.tradingClass, new, avg), "position")

    def _send(self, fields: tuple, what: str) -> None:
        text = [self.format_field(f) for f in fields]
        self.feeder.inject(event_to_payload({"fields": text}, self.version), what)


# --- the runner and the Python API -------------------------------------------------------------------------------

@dataclass
class ReplayResult:
    """What a replay did: its strategies (their trades and state), every message it sent, and what went wrong."""
    recording: Recording
    strategies: list[Strategy]
    engine: Engine
    sent: list[Sent]
    frames: int                          # recorded frames delivered
    skipped: int                         # recorded order answers left out (fills="simulated")
    synthesized: int                     # frames made by the simulated fills
    damage: RecordingError | None
    problems: list[str] = field(default_factory=list)
    divergences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def orders(self) -> list[Sent]:
        """placeOrder / cancelOrder / reqGlobalCancel messages, in order, byte for byte."""
        return [s for s in self.sent if s.is_order]

    @property
    def recorded_orders(self) -> list[Event]:
        return self.recording.orders

    def strategy(self, name: str | None = None) -> Strategy:
        if name is None:
            return self.strategies[0]
        return next(s for s in self.strategies if s.name == name)

    def report(self) -> str:
        rec = self.recording
        when = ""
        if rec.header.wall is not None:
            start = dt.datetime.fromtimestamp(rec.header.wall, EASTERN)
            when = f" (recorded {start:%Y-%m-%d %H:%M:%S} New York)"
        lines = [f"replayed {rec.path}{when}: {self.frames} frames"
                 + (f" ({self.skipped} recorded order answers left out, {self.synthesized} simulated)"
                    if self.skipped or self.synthesized else "")
                 + f", {len(self.orders)} order messages (recorded: {len(rec.orders)})"]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"divergence: {d}" for d in self.divergences]
        lines += [f"problem: {p}" for p in self.problems]
        if self.damage is not None:
            lines.append(f"damaged recording: replayed up to line {(self.damage.line or 2) - 1}, then stopped: "
                         f"{self.damage}")
        return "\n".join(lines)


class ReplayRunner(Runner):
    """The live Runner with a recording for a gateway: same setup, same requests, same stop."""

    live = False                   # rails as live (risk layer, journal in a temporary folder); no kill file or signal

    def __init__(self, cfg: RunConfig, recording: Recording, fills: str = "recorded", speed: float | None = None,
                 quiet: bool = True):
        if fills not in ("recorded", "simulated"):
            raise ValueError(f"fills must be 'recorded' or 'simulated', got {fills!r}")
        # the journal makes the same requests as live (its reqExecutions reconcile), into a throwaway file
        self.journal_dir = tempfile.TemporaryDirectory(prefix="ibframe-replay-")
        journal = cfg.journal or JournalConfig()
        if journal.enabled:
            journal = dataclasses.replace(journal, path=str(Path(self.journal_dir.name) / "journal.sqlite"))
        super().__init__(dataclasses.replace(cfg, record=None, journal=journal))
        self.recording = recording
        self.fills_mode = fills
        self.speed = speed
        self.quiet = quiet
        self.feeder: Feeder | None = None
        self.fills: PaperFills | None = None

    def connect_replay(self, supervisor) -> None:
        """The recorded socket losses and reconnects drive the supervisor: the same resubscriptions and
        reconciliation requests go out at the same points of the session as they did live."""
        self.feeder.mark_handlers.update({"connection_lost": supervisor.socket_lost,
                                          "reconnected": supervisor.reconnected})

    def leftover_check_due(self) -> bool:
        """Only where the live run made it (its requests are in the recording)."""
        return "leftovers" in self.recording.marks

    def start_gateway(self) -> GatewayConfig:
        h = self.recording.header
        return GatewayConfig(kind="replay", host=h.host or "replay", port=h.port, client_id=h.client_id)

    def make_engine(self, gw: GatewayConfig) -> Engine:
        rec = self.recording
        clock = VirtualClock(rec.header.wall if rec.header.wall is not None else 0.0)
        feeder = Feeder(rec, clock, self.speed)
        clock.source = feeder
        dispatcher = ReplayDispatcher(clock, feeder)
        order_ids = OrderIds()
        if rec.first_order_id is not None:
            order_ids.seed(rec.first_order_id)
        engine = Engine.replaying(lambda router, disp: ReplayConnection(router, disp, feeder), clock, dispatcher,
                                  gw.client_id, order_ids)
        engine.host, engine.port = gw.host, gw.port
        feeder.bind(dispatcher, engine.conn, engine.router)
        if self.fills_mode == "simulated":
            self.fills = PaperFills(engine, feeder, rec)
            engine.conn.fills = self.fills
            feeder.drop, feeder.after_frame = self.fills.drops, self.fills.check_all
        self.feeder = feeder
        return engine

    def play(self, timeout: float | None = None) -> None:
        """Run the strategies through the recording, up to its stop mark or its end."""
        self.feeder.set_phase("play")
        if not self.feeder.wait_idle("play", timeout):
            raise ReplayError(f"replay of {self.recording.path} did not finish within {timeout:g}s")

    def settle(self) -> None:
        if self.feeder is not None:
            self.feeder.set_phase("drain")
            self.feeder.wait_idle("drain")

    def print_summary(self) -> None:
        if not self.quiet:
            super().print_summary()

    def result(self) -> ReplayResult:
        f = self.feeder
        rec = self.recording
        result = ReplayResult(rec, self.strategies, self.engine, list(f.sent), f.delivered, f.skipped,
                              f.synthesized, rec.damage, list(f.problems), list(f.divergences))
        recorded = rec.requests
        replayed = [s for i, s in enumerate(f.sent) if not s.is_order and not
                    (s.msg_id == START_API and any(p.msg_id == START_API for p in f.sent[:i]))]
        for i, (r, s) in enumerate(zip(recorded, replayed), 1):
            want = r.fields if r.fields is not None else (list(r.raw) if r.raw is not None else None)
            got = s.fields if r.fields is not None else list(s.payload)
            if want is not None and want != got:
                result.divergences.append(f"request #{i} differs: recorded (line {r.line}) {_describe(r)}; "
                                          f"replay sent {s}")
                break
        if rec.damage is None and len(recorded) != len(replayed):
            result.divergences.append(f"the recording sent {len(recorded)} requests, the replay {len(replayed)}")
        if not rec.complete and rec.damage is None:
            result.notes.append("the recording has no closing 'end' line (hand-written, or cut off at a flush)")
        return result


def _check_version(rec: Recording) -> None:
    v = rec.header.server_version
    if not MIN_CLIENT_VER <= v <= MAX_CLIENT_VER:
        raise ReplayError(f"{rec.path}: recorded at server version {v}, which this ibapi's Decoder does not know "
                          f"(ibapi {rec.header.ibapi or '?'} recorded it; the installed one decodes versions "
                          f"{MIN_CLIENT_VER}..{MAX_CLIENT_VER}); replay it with a matching ibapi")


def replay(recording: str | Path | Recording, config: str | Path | RunConfig, *, fills: str = "recorded",
           speed: str | float | None = "max", quiet: bool = True, timeout: float | None = None) -> ReplayResult:
    """Replay `recording` into the strategies of `config` (a YAML path or a RunConfig); see ReplayResult.

    Raises ReplayError when the recording cannot be replayed at all (no header, unknown server
    version) or the run cannot set up; damage part-way is reported in `result.damage`.
    """
    return _run(prepare(recording, config, fills=fills, speed=speed, quiet=quiet), timeout)


def prepare(recording: str | Path | Recording, config: str | Path | RunConfig, *, fills: str = "recorded",
            speed: str | float | None = "max", quiet: bool = True) -> ReplayRunner:
    """The runner `replay` uses, before it starts (for callers that want to interrupt it)."""
    try:
        rec = recording if isinstance(recording, Recording) else Recording(recording)
    except RecordingError as exc:
        raise ReplayError(str(exc)) from None
    _check_version(rec)
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    return ReplayRunner(cfg, rec, fills, parse_speed(speed), quiet)


def _run(runner: ReplayRunner, timeout: float | None) -> ReplayResult:
    """Set up, play and stop one replay; its log lines carry the recorded time (recorded_time.py)."""
    rec = runner.recording
    with recorded_time(lambda: runner.feeder.clock.now() if runner.feeder is not None else None):
        try:
            try:
                runner.start()
            except (RunError, ConnectError) as exc:
                where = f" (the recording is damaged: {rec.damage})" if rec.damage else ""
                raise ReplayError(f"replay of {rec.path} could not set up: {exc}{where}") from None
            runner.play(timeout)
        finally:
            runner.stop()
    return runner.result()


# --- command line ------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ibframe.replay",
                                description="Replay a recorded session (python -m ibframe.run --record) into "
                                            "the strategies of a YAML file, on a virtual clock.")
    p.add_argument("recording", help="a recording (.jsonl or .jsonl.gz)")
    p.add_argument("config", help="strategy YAML (its gateway, sim, duration and record keys are ignored)")
    p.add_argument("--speed", default="max", help="max (default: as fast as possible), 1x (recorded pace), 10x, …")
    p.add_argument("--fills", choices=("recorded", "simulated"), default="recorded",
                   help="recorded: feed back the recorded broker answers (default); simulated: fill the "
                        "strategy's orders against the recorded quotes")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        speed = parse_speed(args.speed)
        cfg = load_config(args.config)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    prepare_process(cfg)
    try:
        runner = prepare(args.recording, cfg, fills=args.fills, speed=speed, quiet=False)
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def interrupt(*_):
        if runner.feeder is not None:
            runner.feeder.interrupt()
    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        result = _run(runner, None)
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)
    print("\n" + result.report())
    return 1 if result.damage is not None else 0


if __name__ == "__main__":
    sys.exit(main())
