"""The admission rules, one small object per limit, each answering "may this go now, and if not, why
and until when".

Owns: counting what is open (slots: tick-by-tick, depth, market-data lines, open historical requests)
and what was sent inside IB's time windows (historical pacing, the tick-by-tick repeat rule). Pure
bookkeeping over times it is given: never reads a clock, never sends, never logs.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .limits import PacingLimits


@dataclass(slots=True, frozen=True)
class Verdict:
    """A rule's answer. `retry_at`: when a time window frees (None: when a slot is released).
    `blocks`: no later request of the same group can pass either (keep first-come, first-served)."""
    ok: bool
    reason: str = ""
    retry_at: float | None = None
    blocks: bool = False


GO = Verdict(True)


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 9.5 else f"{value:.1f} s"


class Slots:
    """At most `limit` held at once. With `distinct`, holders of the same key share one slot (IB counts
    market depth per distinct instrument)."""

    def __init__(self, name: str, limit: int, distinct: bool = False):
        self.name = name
        self.limit = limit
        self.distinct = distinct
        self.held: dict[object, int] = {}          # key -> holders
        self.cap: int | None = None                # a lower limit learned from TWS's refusal, until cap_until
        self.cap_until = 0.0

    def in_use(self) -> int:
        return len(self.held) if self.distinct else sum(self.held.values())

    def limit_now(self, now: float) -> int:
        if self.cap is not None and now < self.cap_until:
            return min(self.cap, self.limit)
        self.cap = None
        return self.limit

    def check(self, key: object, now: float) -> Verdict:
        if self.distinct and key in self.held:
            return GO
        limit = self.limit_now(now)
        used = self.in_use()
        if used < limit:
            return GO
        learned = f" (TWS refused more; the configured limit {self.limit} returns in " \
                  f"{_seconds(self.cap_until - now)})" if limit < self.limit else ""
        return Verdict(False, f"{self.name}: {used} of {limit} in use{learned}",
                       self.cap_until if limit < self.limit else None, blocks=not self.distinct)

    def acquire(self, key: object) -> None:
        self.held[key] = self.held.get(key, 0) + 1

    def release(self, key: object) -> None:
        left = self.held.get(key, 0) - 1
        if left > 0:
            self.held[key] = left
        else:
            self.held.pop(key, None)

    def learn_cap(self, until: float) -> None:
        """TWS said the limit is reached with what we hold now (another application holds the rest)."""
        self.cap = max(self.in_use(), 0)
        self.cap_until = until

    def clear(self) -> None:
        self.held.clear()
        self.cap = None


class RepeatRule:
    """At most one request per key within `window` seconds (tick-by-tick: per instrument and tick type)."""

    def __init__(self, name: str, window: float):
        self.name = name
        self.window = window
        self.last: dict[object, float] = {}

    def check(self, key: object, now: float) -> Verdict:
        last = self.last.get(key)
        if last is None or now - last >= self.window:
            return GO
        return Verdict(False, f"{self.name}: asked for the same instrument {_seconds(now - last)} ago "
                              f"(one request per {_seconds(self.window)}), next in {_seconds(last + self.window - now)}",
                       last + self.window)

    def forget(self, key: object, at: float) -> None:
        """Undo the record made at `at` (TWS refused that request, so it did not count)."""
        if self.last.get(key) == at:
            del self.last[key]

    def record(self, key: object, now: float) -> None:
        self.last[key] = now
        if len(self.last) > 256:                    # forget keys whose window has passed
            self.last = {k: t for k, t in self.last.items() if now - t < self.window}


class HistoricalPacing:
    """IB's three historical pacing rules (windows include the margin): no identical request within 15 s;
    at most 5 per contract/exchange/whatToShow within 2 s; at most 60 (BID_ASK counting 2) within 10
    minutes. Optionally a minimum spacing between two sends, and a hold after TWS reported a violation.

    When does a request count? TWS stamps it on arrival, which we cannot see: it is no earlier than our
    send and no later than TWS's answer. So a request counts as *pending* (at "now", in every window) from
    its send until it is answered, and from then on at the time of the answer. Whatever holds it up on the
    way (the outgoing writer's queue, a busy gateway) then only makes TWS see larger gaps, never smaller."""

    def __init__(self, limits: PacingLimits):
        self.identical = limits.window(limits.historical_identical)
        self.burst = limits.window(limits.historical_same_contract_window)
        self.burst_max = limits.historical_same_contract
        self.span = limits.window(limits.historical_window)
        self.max = limits.historical_max
        self.minutes = limits.historical_window / 60
        self.spacing = limits.historical_spacing
        self.hold_until = 0.0
        self.last_send = -math.inf
        # answered requests, in the order answered: (time, weight, identical key, contract key)
        self.settled: deque[tuple[float, int, tuple, tuple]] = deque()
        self.weight = 0                                               # sum of weights in `settled`
        self.last_identical: dict[tuple, float] = {}
        self.by_contract: dict[tuple, deque[float]] = {}
        # sent, not answered yet: token -> (weight, identical key, contract key)
        self.pending: dict[object, tuple[int, tuple, tuple]] = {}
        self.pending_weight = 0
        self.pending_idents: dict[tuple, int] = {}
        self.pending_contracts: dict[tuple, int] = {}

    def _expire(self, now: float) -> None:
        keep = max(self.span, self.identical, self.burst)
        while self.settled and now - self.settled[0][0] >= keep:
            t, w, ident, ckey = self.settled.popleft()
            self.weight -= w
            if self.last_identical.get(ident) == t:
                del self.last_identical[ident]
            times = self.by_contract.get(ckey)
            if times and times[0] == t:
                times.popleft()
                if not times:
                    del self.by_contract[ckey]

    def hold(self, now: float) -> Verdict:
        """The hold after a pacing violation TWS reported (all historical requests wait)."""
        if now < self.hold_until:
            return Verdict(False, f"historical: resting after a pacing violation reported by TWS, resuming in "
                                  f"{_seconds(self.hold_until - now)}", self.hold_until, blocks=True)
        return GO

    def check(self, now: float, ident: tuple, ckey: tuple, weight: int, what: str) -> Verdict:
        self._expire(now)
        if now - self.last_send < self.spacing:
            at = self.last_send + self.spacing
            return Verdict(False, f"historical: spacing requests {_seconds(self.spacing)} apart, next in "
                                  f"{_seconds(at - now)}", at, blocks=True)
        in_window = self.weight
        if self.span < max(self.identical, self.burst):       # `settled` keeps more than this window
            in_window = sum(w for t, w, *_ in self.settled if now - t < self.span)
        counted = in_window + self.pending_weight
        if counted + weight > self.max:
            need, freed, slot = counted + weight - self.max, 0, None
            for t, w, *_ in self.settled:
                if now - t >= self.span:
                    continue
                freed += w
                if freed >= need:
                    slot = t + self.span
                    break
            when = f"next slot in {_seconds(slot - now)}" if slot is not None else \
                f"{self.pending_weight} not answered yet"
            return Verdict(False, f"historical: {counted} in the last {self.minutes:g} min (limit {self.max}"
                                  f"{', a BID_ASK request counts 2' if weight == 2 else ''}), {when}", slot, blocks=True)
        if self.pending_idents.get(ident):
            return Verdict(False, "historical: an identical request is not answered yet (then 15 s more)")
        last = self.last_identical.get(ident)
        if last is not None and now - last < self.identical:
            return Verdict(False, f"historical: an identical request was answered {_seconds(now - last)} ago, "
                                  f"next in {_seconds(last + self.identical - now)}", last + self.identical)
        times = self.by_contract.get(ckey, ())
        recent = [t for t in times if now - t < self.burst]
        if len(recent) + self.pending_contracts.get(ckey, 0) >= self.burst_max:
            free_at = None
            k = len(recent) + self.pending_contracts.get(ckey, 0) - self.burst_max
            if k < len(recent):
                free_at = recent[k] + self.burst
            return Verdict(False, f"historical: {self.burst_max} requests for {ckey[0]}/{ckey[1]}/{what} within "
                                  f"{_seconds(self.burst)}"
                                  + (f", next in {_seconds(free_at - now)}" if free_at else ", waiting for answers"),
                           free_at)
        return GO

    def sent(self, token: object, now: float, ident: tuple, ckey: tuple, weight: int) -> None:
        """A paced request went out: it counts as pending until `answered(token)`."""
        self.pending[token] = (weight, ident, ckey)
        self.pending_weight += weight
        self.pending_idents[ident] = self.pending_idents.get(ident, 0) + 1
        self.pending_contracts[ckey] = self.pending_contracts.get(ckey, 0) + 1
        self.last_send = now

    def answered(self, token: object, now: float) -> bool:
        """TWS answered (data, an error, or it was cancelled): from now on it counts at `now`."""
        entry = self.pending.pop(token, None)
        if entry is None:
            return False
        weight, ident, ckey = entry
        self.pending_weight -= weight
        for counter, key in ((self.pending_idents, ident), (self.pending_contracts, ckey)):
            left = counter[key] - 1
            if left:
                counter[key] = left
            else:
                del counter[key]
        self.settled.append((now, weight, ident, ckey))
        self.weight += weight
        self.last_identical[ident] = now
        self.by_contract.setdefault(ckey, deque()).append(now)
        return True

    def answer_all(self, now: float) -> None:
        """A new connection: whatever was pending may have reached TWS; count it from now."""
        for token in list(self.pending):
            self.answered(token, now)
