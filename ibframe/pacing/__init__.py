"""Request pacing: IB's limits on historical data, tick-by-tick, depth and market-data lines, obeyed by
queueing instead of failing.

`install(engine, limits)` replaces the engine's pass-through scheduler with a `RequestScheduler` and adds
its router hooks; `PacingLimits` holds the numbers (the `pacing:` YAML section). Must never be imported by
the simulator, nor block the dispatch thread.
"""
from __future__ import annotations

from .limits import PacingLimits
from .scheduler import PacingStats, RequestScheduler

__all__ = ["PacingLimits", "PacingStats", "RequestScheduler", "install"]


def install(engine, limits: PacingLimits | None = None) -> RequestScheduler:
    """Make `engine` send every request through a RequestScheduler obeying `limits` (IB's defaults when
    None). Call before the first request (e.g. right after `Engine(...)` or `start()`); returns the
    scheduler (its `stats()` and `waiting(req)` show the queue)."""
    router = engine.router
    old = getattr(engine, "scheduler", None)
    if isinstance(old, RequestScheduler):
        router.finish_hooks.remove(old.on_finish)
        router.retry_hooks.remove(old.on_error)
    scheduler = RequestScheduler(limits, now=engine.clock.now, call_later=engine.dispatcher.call_later,
                                 take_id=engine.request_ids.take, rekey=router.rekey, finish=router.finish,
                                 connected=lambda: engine.conn.isConnected())
    router.finish_hooks.append(scheduler.on_finish)
    router.retry_hooks.append(scheduler.on_error)
    engine.scheduler = scheduler
    return scheduler
