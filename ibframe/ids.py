"""Request-id and order-id allocators.

Owns: handing out ids. Request ids are never reused within a process and live in their own
range, far above order ids, so an `error(id, …)` can always be told apart. Order ids start
from TWS's nextValidId but never go below anything this machine has already issued: before an
id leaves `take()` it is covered by a persisted reservation (write-then-rename, fsync). Ids are
reserved in blocks so an order costs one fsync per block, not one each; a restart skips the
unused rest of a block, which is harmless (ids must only never repeat). The next block is reserved
ahead, on a background thread, once half of the current one is used: the order path waits for an
fsync only when that reservation has not landed yet (the first order, a jump from nextValidId, a disk
slower than half a block of orders). Must never: hand out an id the file does not cover.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

REQUEST_ID_BASE = 1_000_000_000      # TWS order ids stay far below this in practice


class RequestIds:
    """Monotonic request ids; thread-safe; never reused in this process."""

    def __init__(self, start: int = REQUEST_ID_BASE):
        self._next = start
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            value = self._next
            self._next += 1
            return value

    def is_request_id(self, value: int) -> bool:
        return value >= REQUEST_ID_BASE


class OrderIdError(RuntimeError):
    """No order id can be issued (not seeded yet, or the id file cannot be written)."""


class OrderIds:
    """Order ids from TWS's nextValidId, persisted so a restart never reissues one.

    `seed(n)` may be called many times (each nextValidId); the allocator keeps
    max(n, highest issued + 1, persisted). `take()` persists before returning.
    """

    def __init__(self, path: str | Path | None = None, block: int = 100):
        self.path = Path(path) if path else None
        self.block = max(1, block)
        self._lock = threading.RLock()
        self._file_lock = threading.Lock()    # one writer of the file at a time (order path or background)
        self._next: int | None = None
        self._floor = self._read_persisted()
        self._reserved = self._floor          # ids below this are covered by the file (durably)
        self._written = self._floor           # the highest value written to the file
        self._ahead_target = 0                # the reservation the background writer is asked for
        self._ahead_wanted = threading.Event()
        self._ahead: threading.Thread | None = None   # started with the first reservation ahead
        self._closed = False
        self.sync_persists = 0                # reservations the order path waited for
        self.ahead_persists = 0               # reservations made in the background, ahead of need

    @property
    def lock(self) -> threading.RLock:
        """Held by callers that must take an id and send placeOrder as one step."""
        return self._lock

    def _read_persisted(self) -> int:
        if self.path is None or not self.path.exists():
            return 0
        text = self.path.read_text().strip()
        try:
            return int(text)
        except ValueError:
            raise OrderIdError(f"order-id file {self.path} holds {text[:40]!r}, not an integer; "
                               f"fix or delete it (deleting risks reusing ids on this account)") from None

    def _persist(self, next_id: int) -> None:
        """Write `next_id` durably, unless a value at least as high is already written (never goes back)."""
        if self.path is None:
            return
        with self._file_lock:
            if next_id <= self._written:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            with open(tmp, "w") as fh:
                fh.write(f"{next_id}\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self._written = next_id

    def _reserve_ahead_loop(self) -> None:
        """The background writer: covers ids up to the target it is asked for, before the order path needs them."""
        while True:
            self._ahead_wanted.wait()
            self._ahead_wanted.clear()
            if self._closed:
                return
            target = self._ahead_target
            try:
                self._persist(target)
            except OSError:
                pass                          # the order path persists (and raises) itself when it gets there
            else:
                with self._lock:
                    if target > self._reserved:
                        self._reserved = target
                        self.ahead_persists += 1

    def _maybe_reserve_ahead(self) -> None:
        """Past half of the block: ask the background writer for the next one (a few µs: no thread start)."""
        if (self.path is None or self._closed or self._next is None
                or self._reserved - self._next >= self.block // 2):
            return
        target = max(self._reserved, self._next) + self.block
        if target <= self._ahead_target:
            return                            # asked already
        self._ahead_target = target
        if self._ahead is None:
            self._ahead = threading.Thread(target=self._reserve_ahead_loop, name="ibframe-order-ids", daemon=True)
            self._ahead.start()
        self._ahead_wanted.set()

    def close(self) -> None:
        """End the background writer (its reservation in flight, if any, completes first)."""
        self._closed = True
        self._ahead_wanted.set()
        if self._ahead is not None:
            self._ahead.join(5.0)

    def wait_ahead(self, timeout: float = 5.0) -> bool:
        """Wait until the reservation asked of the background writer has landed (tests; a clean shutdown)."""
        deadline = time.monotonic() + timeout
        while self._reserved < self._ahead_target:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True

    def seed(self, next_valid_id: int) -> int:
        """Take TWS's nextValidId into account; returns the id the next `take()` will give."""
        with self._lock:
            candidates = [next_valid_id, self._floor]
            if self._next is not None:
                candidates.append(self._next)
            self._next = max(candidates)
            return self._next

    @property
    def seeded(self) -> bool:
        return self._next is not None

    def peek(self) -> int | None:
        return self._next

    def take(self) -> int:
        with self._lock:
            if self._next is None:
                raise OrderIdError("no order id yet: wait for nextValidId from TWS before placing orders")
            value = self._next
            if value + 1 > self._reserved:
                self.sync_persists += 1
                self._persist(value + self.block)
                self._reserved = value + self.block
            self._floor = value + 1
            self._next = value + 1
            self._maybe_reserve_ahead()
            return value
