"""The one dispatch thread, its queue, its timers and its clock.

Owns: running every callback, timer and strategy method on a single thread, in arrival order.
Other threads (the socket reader, user calls) only `post()` work onto the queue. The clock is
an interface so replay can swap the wall clock for a virtual one. A failing callback is
logged and reported, never allowed to kill the thread.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("ibframe.dispatch")


class Clock:
    """Wall-clock time in epoch seconds; replay substitutes a virtual clock with the same interface."""

    def now(self) -> float:
        return time.time()

    def wait(self, q: "queue.SimpleQueue", timeout: float | None):
        """Block on the queue up to `timeout` seconds of this clock (None = forever)."""
        return q.get(timeout=timeout)


class VirtualClock(Clock):
    """Replay's clock: time moves only when told to, never with the wall.

    `now()` is the time of the event being replayed. With a `source` (ibframe.replay's feeder),
    `wait()` asks it for the next thing to run — queued work, a recorded frame, or "let the due
    timers fire" (queue.Empty after moving the clock to them) — so nothing waits on wall time
    unless the replay is paced or waits for another thread. Without a source, queued work runs
    first and an idle wait jumps straight to the next timer.
    """

    def __init__(self, start: float = 0.0, source=None):
        self._now = float(start)
        self.source = source

    def now(self) -> float:
        return self._now

    def advance(self, to: float) -> None:
        """Move forward to `to` (never backward)."""
        if to > self._now:
            self._now = to

    def wait(self, q: "queue.SimpleQueue", timeout: float | None):
        if self.source is not None:
            return self.source.next(q, timeout)
        try:
            return q.get_nowait()
        except queue.Empty:
            if timeout is None:
                return q.get()
            self.advance(self._now + timeout)
            raise


@dataclass(order=True, slots=True)
class _Timer:
    due: float
    seq: int
    fn: Callable = field(compare=False)
    every: float | None = field(compare=False, default=None)
    cancelled: bool = field(compare=False, default=False)


class TimerHandle:
    """Returned by `call_later`/`call_every`; `cancel()` stops it."""

    __slots__ = ("_timer",)

    def __init__(self, timer: _Timer):
        self._timer = timer

    def cancel(self) -> None:
        self._timer.cancelled = True


_STOP = object()


class Dispatcher:
    """Runs posted callables one at a time on its own thread."""

    def __init__(self, clock: Clock | None = None, name: str = "ibframe-dispatch",
                 on_error: Callable[[BaseException, Callable], None] | None = None):
        self.clock = clock or Clock()
        self.queue: queue.SimpleQueue = queue.SimpleQueue()      # C-implemented: a cheaper hand-off between threads
        self.name = name
        self.on_error = on_error
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self.handled = 0

    # --- from any thread ------------------------------------------------------------------------
    def post(self, fn: Callable, *args) -> None:
        """Run fn(*args) on the dispatch thread, after everything already queued."""
        self.queue.put((fn, args))

    def call_later(self, delay: float, fn: Callable) -> TimerHandle:
        timer = _Timer(self.clock.now() + delay, next(self._seq), fn)
        self.post(self._add_timer, timer)
        return TimerHandle(timer)

    def call_every(self, every: float, fn: Callable, first_after: float | None = None) -> TimerHandle:
        if every <= 0:
            raise ValueError(f"timer interval must be positive, got {every}")
        timer = _Timer(self.clock.now() + (every if first_after is None else first_after),
                       next(self._seq), fn, every)
        self.post(self._add_timer, timer)
        return TimerHandle(timer)

    def start(self) -> "Dispatcher":
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is queued, then end the thread."""
        self.queue.put(_STOP)
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def in_dispatch_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def call_sync(self, fn: Callable, *args, timeout: float = 10.0):
        """Run fn on the dispatch thread and wait for its result (for user threads, tests)."""
        if self.in_dispatch_thread():
            return fn(*args)
        done = threading.Event()
        box: dict = {}

        def run():
            try:
                box["value"] = fn(*args)
            except BaseException as exc:   # handed back to the caller's thread
                box["error"] = exc
            finally:
                done.set()
        self.post(run)
        if not done.wait(timeout):
            raise TimeoutError(f"dispatch thread did not run {getattr(fn, '__name__', fn)} within {timeout}s")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    # --- on the dispatch thread -----------------------------------------------------------------
    def _add_timer(self, timer: _Timer) -> None:
        heapq.heappush(self._timers, timer)

    def _run_due_timers(self) -> float | None:
        """Fire due timers; return seconds until the next one (None when there is none)."""
        now = self.clock.now()
        while self._timers and self._timers[0].due <= now:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._safely(timer.fn, ())
            if timer.every is not None and not timer.cancelled:
                timer.due += timer.every
                if timer.due <= now:                 # fell behind: skip missed beats, keep the phase
                    missed = int((now - timer.due) // timer.every) + 1
                    timer.due += missed * timer.every
                heapq.heappush(self._timers, timer)
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return max(0.0, self._timers[0].due - self.clock.now()) if self._timers else None

    def _safely(self, fn: Callable, args: tuple) -> None:
        try:
            fn(*args)
        except Exception as exc:
            log.exception("callback %s failed", getattr(fn, "__qualname__", fn))
            if self.on_error is not None:
                try:
                    self.on_error(exc, fn)
                except Exception:
                    log.exception("error handler failed")

    def run(self) -> None:
        while True:
            wait = self._run_due_timers()
            try:
                item = self.clock.wait(self.queue, wait)
            except queue.Empty:
                continue
            if item is _STOP:
                return
            fn, args = item
            self.handled += 1
            self._safely(fn, args)
