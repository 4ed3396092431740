"""The waiting line of the request scheduler: tickets in groups, first come first served in each.

Owns: one ticket per request not yet sent (or sent and open), the group each waits in ("lines" for
market data and snapshots, "ticks", "depth", "bars" and "bars-paced"), their order, and when a long
wait is due to be logged. Knows nothing of IB's limits and never sends: the scheduler decides.
"""
from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass

from ..router import Request

GROUPS = ("lines", "ticks", "depth", "bars-paced", "bars")


@dataclass(slots=True)
class Ticket:
    """One request's place in the scheduler."""
    req: Request
    seq: int                              # order of first submission (a requeued request keeps its place)
    group: str = ""
    queued_at: float = 0.0
    not_before: float = 0.0               # not before this time (a retry after a limit error)
    retries: int = 0
    logged: bool = False
    log_at: float = 0.0                   # when its wait counts as long (logged once, at INFO)
    reason: str = ""                      # why it waits, as last checked
    checked_at: float = -1.0              # when `reason` was last set
    holds: tuple = ()                     # (Slots, key) pairs held while open
    sent_at: float = 0.0
    paced: tuple | None = None            # bars: (paced, identical key, contract key, weight), computed once

    def __lt__(self, other: "Ticket") -> bool:
        return self.seq < other.seq


class WaitingLine:
    """Queued tickets by group, each group sorted by seq; plus a heap of when each wait gets logged."""

    def __init__(self):
        self.groups: dict[str, list[Ticket]] = {name: [] for name in GROUPS}
        self.by_req: dict[int, Ticket] = {}                 # id(req) -> ticket
        self._log_due: list[tuple[float, int, Ticket]] = []

    def __len__(self) -> int:
        return len(self.by_req)

    def __iter__(self):
        return iter(sorted(self.by_req.values()))

    def get(self, req: Request) -> Ticket | None:
        return self.by_req.get(id(req))

    def add(self, ticket: Ticket, log_after: float) -> None:
        bisect.insort(self.groups[ticket.group], ticket)
        self.by_req[id(ticket.req)] = ticket
        ticket.logged = False
        ticket.log_at = ticket.queued_at + log_after
        heapq.heappush(self._log_due, (ticket.log_at, ticket.seq, ticket))

    def remove(self, ticket: Ticket) -> None:
        """Take a ticket out of the line (sent, or cancelled while waiting)."""
        group = self.groups[ticket.group]
        i = bisect.bisect_left(group, ticket)
        if i < len(group) and group[i] is ticket:
            del group[i]
        else:
            group.remove(ticket)
        self.by_req.pop(id(ticket.req), None)

    def clear(self) -> None:
        for group in self.groups.values():
            group.clear()
        self.by_req.clear()
        self._log_due.clear()

    def due_for_log(self, now: float) -> tuple[list[Ticket], float]:
        """Tickets still waiting whose wait became long (each once), and when the next one will."""
        due = []
        while self._log_due and self._log_due[0][0] <= now:
            at, _, ticket = heapq.heappop(self._log_due)
            if not ticket.logged and at == ticket.log_at and self.by_req.get(id(ticket.req)) is ticket:
                ticket.logged = True
                due.append(ticket)
        return due, (self._log_due[0][0] if self._log_due else float("inf"))
