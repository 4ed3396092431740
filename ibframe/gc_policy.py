"""The garbage collector's policy for a long run: what Python's cyclic collector may cost the hot path.

Owns: `settle(policy)`, applied once after start-up (connections made, strategies started): a full
collection, then `gc.freeze()` — everything alive at that point (modules, pandas, the simulator's or the
engine's long-lived state) moves to a permanent generation the collector never scans again, so a full
collection later costs what the run allocated since, not the whole heap — and thresholds that collect
the young generation less often. `policy` is "freeze" (the default) or "default" (Python's own, nothing
changed); `release()` undoes it when the run ends (a process that runs many runs, such as a test session or a
sweep, would otherwise keep every earlier run's frozen cycles forever). `GcStats` reads what the collector did (collections per generation) for reports and benchmarks.
Must never: disable the collector (reference cycles a strategy makes would then grow without bound), or
be applied before start-up is done (what start-up allocates and drops should be collected, not frozen).
"""
from __future__ import annotations

import gc
from dataclasses import dataclass

POLICIES = ("freeze", "default")
# young generation collected every 20,000 net allocations instead of 700 (a tick allocates a few dozen
# objects, so this is one young collection every few hundred ticks); the older generations as Python's
FREEZE_THRESHOLDS = (20_000, 10, 10)


@dataclass(frozen=True, slots=True)
class GcStats:
    """Collections so far per generation, and how many objects the freeze took out of the collector's view."""
    collections: tuple[int, int, int]
    frozen: int
    thresholds: tuple[int, int, int]


_saved_thresholds: list[tuple[int, int, int]] = []     # what settle() replaced, for release()


def settle(policy: str = "freeze") -> GcStats:
    """Apply `policy` now (see the module docstring); returns the collector's state after it."""
    if policy not in POLICIES:
        raise ValueError(f"gc policy {policy!r}: write one of {', '.join(POLICIES)}")
    if policy == "freeze":
        gc.collect()
        gc.freeze()
        _saved_thresholds.append(gc.get_threshold())
        gc.set_threshold(*FREEZE_THRESHOLDS)
    return stats()


def release() -> None:
    """Undo the last `settle("freeze")`: frozen objects go back to the oldest generation, thresholds as before."""
    if _saved_thresholds:
        gc.unfreeze()
        gc.set_threshold(*_saved_thresholds.pop())


def stats() -> GcStats:
    return GcStats(tuple(g["collections"] for g in gc.get_stats()), gc.get_freeze_count(), gc.get_threshold())
