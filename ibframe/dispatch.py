"""The one dispatch thread, its queue, its timers, its clock and the sockets it watches.

Owns: running every callback, timer and strategy method on a single thread, in arrival order.
Other threads (the supervisor, the writer, user calls) only `post()` work onto the queue. The
connection's socket is *watched* by the same thread (`watch`): one selector waits on the socket,
the timers and a wake-up socket that `post()` pokes while the thread sleeps, so a frame goes from
the kernel to the strategy with no hand-off between threads. The clock is an interface so replay
can swap the wall clock for a virtual one (replay watches no socket). A failing callback is logged
and reported, never allowed to kill the thread.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import queue
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("ibframe.dispatch")


class Clock:
    """Wall-clock time in epoch seconds; replay substitutes a virtual clock with the same interface."""

    def now(self) -> float:
        return time.time()

    def wall(self, seconds: float) -> float:
        """How long `seconds` of this clock last on the wall (a clock that runs faster than the wall says less)."""
        return seconds

    def wait(self, q: "queue.SimpleQueue", timeout: float | None):
        """Block on the queue up to `timeout` seconds of this clock (None = forever)."""
        return q.get(timeout=None if timeout is None else self.wall(timeout))


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
POSTED_PER_ROUND = 64        # posted callables run between two looks at a watched socket


@dataclass(slots=True)
class Watch:
    """A socket the dispatch thread watches; `on_readable(watch)` runs on the dispatch thread when it has data.

    `quiet_at` (time.monotonic) is the latest moment the socket was known to hold no unread data — when a look
    found it quiet, or when a wait on it ended because data came. Data read later arrived after it, so
    `now - quiet_at` bounds how long that data can have waited for the dispatch thread. The reader of the
    socket may move it forward too (after a recv that emptied the kernel's buffer)."""
    sock: socket.socket
    on_readable: Callable[["Watch"], None]
    quiet_at: float = 0.0



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
        self._watches: dict[int, Watch] = {}             # fileno -> Watch, changed on the dispatch thread only
        self._selector: selectors.BaseSelector | None = None     # made with the first watch
        self._wake_r: socket.socket | None = None        # post() pokes _wake_w while the thread sleeps in select
        self._wake_w: socket.socket | None = None
        self._sleeping = False                          # in a blocking select: post() must poke the wake socket
        self.idle = True                                # waiting for work (no callback running)

    # --- from any thread ------------------------------------------------------------------------
    def post(self, fn: Callable, *args) -> None:
        """Run fn(*args) on the dispatch thread, after everything already queued."""
        self.queue.put((fn, args))
        if self._sleeping:
            self._poke()

    def _poke(self) -> None:
        wake = self._wake_w
        if wake is None:
            return
        try:
            wake.send(b"\0")
        except (BlockingIOError, OSError):        # full (a poke is already pending) or closed at exit
            pass

    def watch(self, sock: socket.socket, on_readable: Callable[[Watch], None]) -> None:
        """From any thread: from now on the dispatch thread reads `sock` itself, calling `on_readable(watch)`
        whenever it has data (or was closed). Registered on the dispatch thread, in order with posted work."""
        self.post(self._add_watch, Watch(sock, on_readable, time.monotonic()))

    def unwatch(self, sock: socket.socket) -> None:
        """From any thread: stop watching `sock` (a closed socket is also dropped when its fd is reused)."""
        self.post(self._remove_watch, sock)

    def call_later(self, delay: float, fn: Callable) -> TimerHandle:
        timer = _Timer(self.clock.now() + delay, next(self._seq), fn)
        if threading.current_thread() is self._thread:
            heapq.heappush(self._timers, timer)          # on the dispatch thread (e.g. an order's ack timeout)
        else:
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
        self._poke()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def in_dispatch_thread(self) -> bool:
        return threading.current_thread() is self._thread

    @property
    def thread_id(self) -> int | None:
        """The dispatch thread's ident (None before it started): e.g. to tell its log records apart."""
        return self._thread.ident if self._thread is not None else None

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

    def _add_watch(self, watch: Watch) -> None:
        try:
            fd = watch.sock.fileno()
        except OSError:
            fd = -1
        if fd < 0:
            return                                       # closed before its registration ran
        if self._selector is None:
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        old = self._watches.pop(fd, None)
        if old is not None:                              # the fd of a closed socket, reused by the new one
            self._selector.unregister(fd)
        self._watches[fd] = watch
        self._selector.register(fd, selectors.EVENT_READ, watch)

    def _remove_watch(self, sock: socket.socket) -> None:
        for fd, watch in list(self._watches.items()):
            if watch.sock is sock:
                del self._watches[fd]
                try:
                    self._selector.unregister(fd)
                except (KeyError, ValueError, OSError):
                    pass

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
        try:
            while True:
                if self._watches:
                    if not self._watching_round():
                        return
                    continue
                wait = self._run_due_timers()
                try:
                    self.idle = True
                    item = self.clock.wait(self.queue, wait)
                except queue.Empty:
                    continue
                finally:
                    self.idle = False
                if item is _STOP:
                    return
                fn, args = item
                self.handled += 1
                self._safely(fn, args)
        finally:
            self._close_selector()

    def _close_selector(self) -> None:
        selector, self._selector = self._selector, None
        self._watches.clear()
        if selector is not None:
            selector.close()
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._wake_w = None

    def _watching_round(self) -> bool:
        """Up to POSTED_PER_ROUND posted callables, then the due timers, then one look at the watched sockets (a wait
        when nothing else is due). False at stop."""
        get = self.queue.get_nowait
        for _ in range(POSTED_PER_ROUND):
            try:
                item = get()
            except queue.Empty:
                break
            if item is _STOP:
                return False
            self.handled += 1
            self._safely(item[0], item[1])
        wait = self._run_due_timers()                    # after the posted work: it may have added a timer
        select = self._selector.select
        ready = select(0)
        now = time.monotonic()
        if not ready and self.queue.empty() and wait != 0:
            for watch in self._watches.values():
                watch.quiet_at = now                     # looked and found nothing unread
            self._sleeping = True
            self.idle = True
            try:
                if self.queue.empty():                   # a post between the look and here pokes the wake socket
                    ready = select(None if wait is None else self.clock.wall(wait))
            finally:
                self._sleeping = False
                self.idle = False
            now = time.monotonic()
            for key, _ in ready:
                if key.data is not None:
                    key.data.quiet_at = now              # we were waiting on it: its data has just come
        readable = set()
        for key, _ in ready:
            if key.data is None:
                self._drain_wake()
            else:
                readable.add(key.fd)
        for fd, watch in list(self._watches.items()):
            if fd in readable:
                self._safely(watch.on_readable, (watch,))
            else:
                watch.quiet_at = now
        return True

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
