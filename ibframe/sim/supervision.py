"""Supervision of the simulated market: one failing order or step part never stops the market for everyone.

Owns: running each part of a market step (the market itself, the broker's orders one by one, the
ledger, each subscriber, the fault script, the state file) so that an exception in one is logged
with its traceback once per distinct cause (then counted, with a one-line reminder at 10, 100,
1000... repeats) and the step goes on; the count of failures per cause (`failures()`); and the
test hook that makes the step fail for orders carrying a given orderRef (`fail_orders_with_ref`,
reached through `gateway.faults.fail_orders_in_step`), so the rejection path can be proven
over the real API.

Must never: decide what happens to a failed order (the broker rejects it), swallow
BaseExceptions that are not errors (cancellation, KeyboardInterrupt), or log one cause per step
forever.
"""
from __future__ import annotations

import logging
import os
import traceback
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("ibframe.sim")


class InjectedStepFailure(RuntimeError):
    """Raised in the market step for an order a test marked (a fault, never a real failure)."""


def cause_of(where: str, exc: BaseException) -> str:
    """A stable key for 'the same failure again': where, the exception type and the line that raised it."""
    frames = traceback.extract_tb(exc.__traceback__)
    origin = f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else "?"
    return f"{where}|{type(exc).__name__}|{origin}"


@dataclass(slots=True)
class StepSupervisor:
    """Counts and logs failures inside market steps; `run` calls one part and survives its exception."""
    counts: dict[str, int] = field(default_factory=dict)
    failing_refs: set[str] = field(default_factory=set)

    def report(self, where: str, exc: BaseException, detail: str = "") -> None:
        """Log a failure: the traceback the first time its cause is seen, a reminder at 10, 100, ...
        `where` names the part (it is part of the cause); `detail` (which order, which client) is not."""
        key = cause_of(where, exc)
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        shown = f"{where} ({detail})" if detail else where
        if n == 1:
            log.error("market step: %s failed (%s: %s); the market goes on", shown, type(exc).__name__, exc,
                      exc_info=exc)
        elif _power_of_ten(n):
            log.warning("market step: %s failed again (%d times so far): %s: %s", shown, n, type(exc).__name__, exc)

    def run(self, where: str, fn: Callable, *args, detail: str = "") -> bool:
        """Call fn(*args); False (after reporting) when it raised."""
        try:
            fn(*args)
            return True
        except Exception as exc:
            self.report(where, exc, detail)
            return False

    def failures(self) -> dict[str, int]:
        """{cause: how many times} for every failure seen so far."""
        return dict(self.counts)

    def fail_orders_with_ref(self, order_ref: str) -> None:
        """Test hook: from now on, working an order whose orderRef is `order_ref` raises in the step."""
        self.failing_refs.add(order_ref)

    def check_injected(self, order_ref: str, order_id: int) -> None:
        if order_ref and order_ref in self.failing_refs:
            raise InjectedStepFailure(f"injected failure while working order {order_id} (orderRef {order_ref!r})")


def _power_of_ten(n: int) -> bool:
    while n >= 10 and n % 10 == 0:
        n //= 10
    return n == 1
