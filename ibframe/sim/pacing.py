"""IB's pacing rules, each a small object the server or a request handler consults.

Owns: counting what a client sent in a sliding window and saying how long it must wait.
Never sends anything itself: the caller decides between an error (TWS) and a delay (+PACEAPI).
"""
from __future__ import annotations

from collections import deque


class MessageRate:
    """At most `limit` client messages in any 1-second window (TWS: 50/s, error 100 beyond)."""

    def __init__(self, limit: int, window: float = 1.0):
        self.limit = limit
        self.window = window
        self.times: deque[float] = deque()
        self.violations = 0

    def _trim(self, now: float) -> None:
        while self.times and now - self.times[0] >= self.window:
            self.times.popleft()

    def count(self, now: float) -> int:
        self._trim(now)
        return len(self.times)

    def admit(self, now: float) -> float:
        """Record a message at `now` if it fits; otherwise return the seconds until it would."""
        self._trim(now)
        if len(self.times) < self.limit:
            self.times.append(now)
            return 0.0
        self.violations += 1
        return self.window - (now - self.times[0])
