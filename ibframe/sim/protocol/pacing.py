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


class HistoricalPacing:
    """IB's historical-data pacing for one client (error 162 "Historical data request pacing
    violation"), on the simulated clock:

    1. an identical request within 15 s;
    2. six or more requests for the same contract, exchange and whatToShow within 2 s;
    3. more than 60 requests in any 10 minutes (a BID_ASK request counts twice).

    Choice: IB's limitations page states these rules for small bars ("30 secs or less") and says
    the limits for bars of 1 min and more were lifted, so the caller only consults this object
    for bar sizes of 30 seconds or less; larger bars are never paced. Only admitted requests
    are recorded, so a rejected repeat does not extend its own penalty.
    """

    def __init__(self, identical_window: float = 15.0, burst_window: float = 2.0, burst_limit: int = 6,
                 window: float = 600.0, limit: int = 60):
        self.identical_window = identical_window
        self.burst_window = burst_window
        self.burst_limit = burst_limit
        self.window = window
        self.limit = limit
        self.requests: deque[tuple[float, tuple, tuple, int]] = deque()   # (time, key, contract key, weight)

    def admit(self, now: float, key: tuple, contract_key: tuple, weight: int = 1) -> bool:
        """Record the request if no rule forbids it; False means a pacing violation."""
        while self.requests and now - self.requests[0][0] >= self.window:
            self.requests.popleft()
        recent = [(t, k, ck) for t, k, ck, _ in self.requests]
        if any(k == key and now - t < self.identical_window for t, k, _ in recent):
            return False
        if sum(1 for t, _, ck in recent if ck == contract_key and now - t < self.burst_window) + 1 >= self.burst_limit:
            return False
        if sum(w for *_, w in self.requests) + weight > self.limit:
            return False
        self.requests.append((now, key, contract_key, weight))
        return True
