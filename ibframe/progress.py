"""Progress of long work (history downloads, replays, sweeps): a bar on a terminal, log lines elsewhere.

Owns: `progress(total, what, unit, …)` and what it returns — how progress is shown (a tqdm bar when the
stream is a terminal or `enabled=True`; plain `logging` lines on the `ibframe.progress` logger, at most
one every `every` seconds of wall time plus a last one, when it is not; nothing when `enabled=False`),
the words of those lines, and `follow(count, …)`, which samples a counter from a thread so the work
itself pays nothing per step.

Must never: raise from `update` or `close` (a closed stream or a broken handler must not stop a replay or
a download: the progress goes quiet instead), decide when the work ends, cost the work more than an
addition and a clock reading per `update`, or touch sys.stdout and the logging handlers unless a command
line asks (`console=True`, and only while its bar shows).
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Callable, TextIO

LOG = logging.getLogger("ibframe.progress")
EVERY = 10.0                     # seconds of wall time between two log lines


def progress(total: int | None, what: str, unit: str = "step", *, enabled: bool | None = None,
             stream: TextIO | None = None, log: logging.Logger | None = None, every: float = EVERY,
             clock: Callable[[], float] = time.monotonic, console: bool = False) -> "Progress":
    """Progress of `total` steps (None: not known, counts only) of the work `what` ("history AAPL 1 min").

    `unit` names one step, singular ("chunk"; the log lines add the plural s). `enabled`: None shows a
    bar when `stream` (default: sys.stderr now) is a terminal and log lines when it is not; True always
    a bar; False nothing. Log lines go to `log` (default the `ibframe.progress` logger) at INFO, at most
    one per `every` seconds of `clock` (wall time, monotonic) and one at `close`. Use it as a context
    manager, or call `close()`. `console=True` is for a command line, which owns the terminal: while its
    bar shows, lines printed to sys.stdout and the root logger's console lines are written above the bar
    instead of through it (a library call leaves both alone).
    """
    stream = sys.stderr if stream is None else stream
    if enabled is False:
        return Progress(total, what, unit, clock)
    if enabled is None and not _is_terminal(stream):
        return LogProgress(total, what, unit, log or LOG, every, clock)
    try:
        return BarProgress(total, what, unit, stream, clock, console)
    except Exception:                          # tqdm could not draw on this stream: say it in the log instead
        return LogProgress(total, what, unit, log or LOG, every, clock)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:                          # closed, or not a file at all
        return False


class Progress:
    """Counts and shows nothing (`enabled=False`); the two that show something extend it."""

    def __init__(self, total: int | None, what: str, unit: str, clock: Callable[[], float]):
        self.total = None if total is None else max(int(total), 0)
        self.what, self.unit, self.clock = what, unit, clock
        self.n = 0
        self.closed = False
        self.started = self._now()

    def update(self, n: int = 1) -> None:
        """`n` more steps done. Never raises."""
        if self.closed:
            return
        self.n += n
        try:
            self._shown()
        except Exception:
            self._quiet()

    def close(self) -> None:
        """The work ended (done or not): the last line, or the bar removed. Never raises; twice is once."""
        if self.closed:
            return
        self.closed = True
        try:
            self._closed()
        except Exception:
            self._quiet()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- what the subclasses show ------------------------------------------------------------------------
    def _shown(self) -> None:
        pass

    def _closed(self) -> None:
        pass

    def _quiet(self) -> None:
        """Showing failed: stay silent from now on, keep counting."""
        self._shown = self._closed = lambda: None

    def _now(self) -> float:
        try:
            return float(self.clock())
        except Exception:
            return 0.0

    # --- the words -----------------------------------------------------------------------------------------
    def count_text(self) -> str:
        """'12/40 chunks (30%)', or '12,000 frames' when the total is not known."""
        if self.total is None:
            return f"{self.n:,} {self._units(self.n)}"
        share = f" ({100 * self.n // self.total}%)" if self.total else ""
        return f"{self.n:,}/{self.total:,} {self._units(self.total)}{share}"

    def line(self, final: bool = False) -> str:
        elapsed = max(self._now() - self.started, 0.0)
        if not final:
            left = ""
            if self.total and 0 < self.n < self.total:
                left = f", about {seconds_text(elapsed * (self.total - self.n) / self.n)} left"
            return f"{self.what}: {self.count_text()}, {seconds_text(elapsed)} elapsed{left}"
        rate = f", {self.n / elapsed:,.{1 if self.n / elapsed < 10 else 0}f} {self._units(2)}/s" \
            if elapsed > 0 and self.n else ""
        if self.total is None or self.n >= self.total:
            return f"{self.what}: done, {self.count_text()} in {seconds_text(elapsed)}{rate}"
        return f"{self.what}: stopped at {self.count_text()} after {seconds_text(elapsed)}"

    def _units(self, count: int) -> str:
        return self.unit if count == 1 or not self.unit else f"{self.unit}s"


class LogProgress(Progress):
    """Log lines: at most one per `every` seconds of wall time, and the last one at close."""

    def __init__(self, total, what, unit, log: logging.Logger, every: float, clock):
        super().__init__(total, what, unit, clock)
        self.log, self.every = log, max(float(every), 0.0)
        self.next_line = self.started + self.every

    def _shown(self) -> None:
        now = self._now()
        if now >= self.next_line:
            self.next_line = now + self.every
            self.log.info("%s", self.line())

    def _closed(self) -> None:
        self.log.info("%s", self.line(final=True))


class BarProgress(Progress):
    """A tqdm bar on `stream`, removed at close (what the work prints next says how it ended)."""

    def __init__(self, total, what, unit, stream, clock, console: bool = False):
        super().__init__(total, what, unit, clock)
        from tqdm import tqdm
        self.bar = tqdm(total=total, desc=what, unit=unit, file=stream, leave=False, dynamic_ncols=True,
                        mininterval=0.1)
        self._stdout = self._logging = None
        if console:
            self._take_console()

    def _take_console(self) -> None:
        from tqdm.contrib.logging import logging_redirect_tqdm
        if any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stdout, sys.stderr)
               for h in logging.getLogger().handlers):
            self._logging = logging_redirect_tqdm()
            self._logging.__enter__()
        self._stdout = _AboveBar(sys.stdout, self.bar)
        sys.stdout = self._stdout

    def _shown(self) -> None:
        self.bar.update(self.n - self.bar.n)

    def _closed(self) -> None:
        try:
            self.bar.close()
        finally:
            self._give_console_back()

    def _quiet(self) -> None:
        super()._quiet()
        try:
            self.bar.disable = True
        except Exception:
            pass
        self._give_console_back()

    def _give_console_back(self) -> None:
        out, self._stdout = self._stdout, None
        if out is not None:
            if sys.stdout is out:
                sys.stdout = out.wrapped
            out.flush_rest()
        logs, self._logging = self._logging, None
        if logs is not None:
            logs.__exit__(None, None, None)


class _AboveBar:
    """sys.stdout while a command line's bar shows: each whole line is written above the bar."""

    def __init__(self, wrapped, bar):
        self.wrapped, self.bar = wrapped, bar
        self._rest = ""

    def write(self, text: str) -> int:
        head, newline, self._rest = (self._rest + text).rpartition("\n")
        if newline:
            from tqdm import tqdm
            with tqdm.get_lock():
                try:
                    self.bar.clear(nolock=True)
                except Exception:
                    pass
                self.wrapped.write(head + newline)
                self.wrapped.flush()
                try:
                    self.bar.refresh(nolock=True)
                except Exception:
                    pass
        return len(text)

    def flush_rest(self) -> None:
        rest, self._rest = self._rest, ""
        if rest:
            self.wrapped.write(rest)

    def flush(self) -> None:
        self.wrapped.flush()

    def __getattr__(self, name):
        return getattr(self.wrapped, name)


def seconds_text(seconds: float) -> str:
    """'8.1 s', '19 s', '2 min 05 s', '10 min', '1 h 03 min', '4 h'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    seconds = round(seconds)
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest:02d} s" if rest else f"{minutes} min"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def follow(count: Callable[[], int | None], total: int | None, what: str, unit: str = "step", *,
           interval: float = 0.1, **options) -> "Follower":
    """A context manager showing the progress of work that keeps its own counter; see Follower."""
    return Follower(count, total, what, unit, interval=interval, **options)


class Follower:
    """Shows the progress of work that keeps its own counter: `count()` (steps done so far, read from another
    thread) is sampled every `interval` seconds of wall time, so the work pays nothing per step.

        with follow(lambda: feeder.frames_done, total, "replay x.jsonl.gz", "frame"):
            run()

    `count` may raise or return None until the work has begun (counted as 0). The other keyword arguments
    are `progress`'s. On leaving the block it samples one last time and closes the progress.
    """

    def __init__(self, count: Callable[[], int | None], total: int | None, what: str, unit: str = "step", *,
                 interval: float = 0.1, **options):
        self.count, self.interval = count, interval
        self.progress = progress(total, what, unit, **options)
        self.shown = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        try:
            done = int(self.count() or 0)
        except Exception:
            return
        if done > self.shown:
            self.progress.update(done - self.shown)
            self.shown = done

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Progress:
        if type(self.progress) is not Progress:          # something to show: sample from a thread
            self._thread = threading.Thread(target=self._run, name="ibframe-progress", daemon=True)
            self._thread.start()
        return self.progress

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        self.progress.close()
