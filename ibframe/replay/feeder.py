"""The replay's clock source: the recording's frames, played in order on the virtual clock.

Owns: `Feeder` (which frame comes next, when the virtual clock moves, which requests the replay must
have sent before a frame, divergences from the recorded requests, how many recorded frames are done,
`frames_done`, for progress), `Sent` (one message the replay
would have sent), `ReplayDispatcher` and `parse_speed`. See the package docstring for the model.
Must never: touch a socket, or decide an order's fate (paper_fills.py does, with --fills simulated).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ibapi.common import PROTOBUF_MSG_ID
from ibapi.message import OUT

from ..dispatch import Dispatcher, VirtualClock
from ..record import ORDER_MESSAGES, START_API, Event, Recording, event_to_payload

if TYPE_CHECKING:
    from .connection import ReplayConnection



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

    @property
    def frames_done(self) -> int:
        """Recorded frames played so far (delivered or left out), of `recording.frames_in`; read from any thread,
        for progress. Counting costs the play nothing: these counters exist anyway."""
        return self.delivered + self.skipped

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
                                            f"({describe_event(ev)}) here; the replay did not")
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


def describe_event(ev: Event) -> str:
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
