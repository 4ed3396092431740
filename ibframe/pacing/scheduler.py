"""The request scheduler: every request waits its turn under IB's limits instead of failing.

Owns: which limited requests are open (slots), when each queued request may go, the timer that wakes
the queue, requeueing after the errors TWS gives when a limit was hit anyway (162 pacing, 10190, 10189
"within 15 seconds", 309, 101) and giving up after `max_retries` with advice, and what is visible about
it (`stats()`, `waiting(req)`, `reasons()`, one INFO line per request that waits long).

Runs only on the dispatch thread (submit, the router's finish and retry hooks, its timer). Must never
block, sleep or send anything but through `req.send`; a request cancelled while queued is never sent.
Kinds it does not limit ("details", "optparams", "acctsummary", "rtbars", …) are sent at once.
"""
from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Callable

from ..market.bars import bar_size_seconds
from ..router import Request, RequestError
from .limits import PacingLimits
from .queue import Ticket, WaitingLine
from .rules import HistoricalPacing, RepeatRule, Slots, Verdict

log = logging.getLogger("ibframe.pacing")

LINE_KINDS = ("mktdata", "snapshot")            # each holds one market-data line while open
LIMITED = frozenset({"mktdata", "snapshot", "ticks", "depth", "bars"})
PACING_TEXT = "pacing violation"                # in 162's text when it is about pacing (not "no data")
LIMIT_CODES = {10190: "ticks", 309: "depth", 101: "mktdata"}
ADVICE = {162: "historical requests (pacing.historical.max_requests, pacing.historical.window_seconds)",
          10190: "tick-by-tick streams (pacing.tick_by_tick)", 10189: "tick-by-tick requests",
          309: "market depth subscriptions (pacing.depth)", 101: "market data lines (pacing.market_data_lines)"}


@dataclass(slots=True)
class PacingStats:
    """What the scheduler is doing now and has done."""
    queued: dict[str, int] = field(default_factory=dict)       # waiting to be sent, per kind
    in_flight: dict[str, int] = field(default_factory=dict)    # sent and still open, per kind
    longest_wait: float = 0.0                                  # seconds the oldest queued request has waited
    waits: int = 0                                             # requests that had to wait (not sent at once)
    requeues: int = 0                                          # re-sent after a limit error from TWS
    sent: int = 0                                              # sends (first sends and re-sends)
    cancelled_while_queued: int = 0                            # cancelled before they were ever sent
    failed: int = 0                                            # gave up after max_retries requeues


class RequestScheduler:
    """Sends each request when IB's limits allow; see the module docstring.

    Wiring (all callables, so nothing here reaches into the engine): `now()` the engine's clock,
    `call_later(delay, fn)` a dispatch-thread timer returning a handle with cancel(), `take_id()` a fresh
    request id, `rekey(req, id)` and `finish(req_id)` the router's, `connected()` whether a socket is up.
    """

    def __init__(self, limits: PacingLimits | None, now: Callable[[], float], call_later: Callable,
                 take_id: Callable[[], int], rekey: Callable[[Request, int], None],
                 finish: Callable[[int], object], connected: Callable[[], bool] = lambda: True):
        self.limits = limits or PacingLimits()
        self.now, self.call_later, self.take_id = now, call_later, take_id
        self.rekey, self.finish, self.connected = rekey, finish, connected
        lim = self.limits
        self.ticks = Slots("tick-by-tick", lim.tick_by_tick)
        self.depth = Slots("market depth", lim.depth, distinct=True)
        self.lines = Slots("market data lines", lim.market_data_lines)
        self.open_history = Slots("historical: open requests", lim.historical_open)
        self.tick_repeat = RepeatRule("tick-by-tick", lim.window(lim.tick_by_tick_repeat))
        self.history = HistoricalPacing(lim)
        self._line = WaitingLine()
        self._open: dict[int, Ticket] = {}            # id(req) -> ticket, sent and not finished
        self._seq = itertools.count()
        self._timer = None
        self._timer_due = math.inf
        self._pumping = False
        self._again = False
        self._stats = PacingStats()

    # --- the engine's interface ---------------------------------------------------------------------
    def submit(self, req: Request) -> None:
        """Send `req` now if its limits allow, else queue it (dispatch thread)."""
        ticket = Ticket(req, next(self._seq), queued_at=self.now())
        if req.kind not in LIMITED:
            self._send(ticket, ticket.queued_at)
            return
        ticket.group = self._group(ticket)
        self._line.add(ticket, self.limits.log_wait_after)
        self._pump()
        if self._line.get(req) is ticket:
            self._stats.waits += 1

    def reset(self) -> None:
        """A new connection: nothing is open at TWS any more and every live request will be submitted
        again (Engine.resubscribe). The historical windows are remembered (IB's count of historical
        requests outlives our socket; a 60-in-10-minutes violation is the costly one). The tick-by-tick
        15-second memory is not: streams come back at once, and a 10189 for a too-early repeat, should
        TWS still count the old request, is requeued like any limit error."""
        self.history.answer_all(self.now())
        self.tick_repeat.last.clear()
        self._line.clear()
        self._open.clear()
        for slots in (self.ticks, self.depth, self.lines, self.open_history):
            slots.clear()
        self._disarm()

    def waiting(self, req: Request) -> float | None:
        """Seconds `req` has been waiting in the queue; None when it is not queued (sent, or unknown)."""
        ticket = self._line.get(req)
        return None if ticket is None else max(0.0, self.now() - ticket.queued_at)

    def stats(self) -> PacingStats:
        """A snapshot; safe from any thread (it copies what it reads in one step)."""
        now = self.now()
        out = replace(self._stats, queued={}, in_flight={})
        for ticket in tuple(self._line.by_req.values()):
            out.queued[ticket.req.kind] = out.queued.get(ticket.req.kind, 0) + 1
            out.longest_wait = max(out.longest_wait, now - ticket.queued_at)
        for ticket in tuple(self._open.values()):
            out.in_flight[ticket.req.kind] = out.in_flight.get(ticket.req.kind, 0) + 1
        return out

    def reasons(self) -> list[tuple[str, float, str]]:
        """(subject, seconds waited, why) for every queued request, oldest first."""
        now = self.now()
        return [(t.req.subject, now - t.queued_at, t.reason) for t in self._line]

    # --- router hooks ------------------------------------------------------------------------------
    def on_finish(self, req: Request) -> None:
        """router.finish_hooks: the request ended, was cancelled, failed or left its id."""
        ticket = self._line.get(req)
        if ticket is not None:                       # cancelled while queued: it is never sent
            self._line.remove(ticket)
            self._stats.cancelled_while_queued += 1
            log.debug("%s cancelled while queued; never sent", req.subject)
            self._pump_soon()
            return
        ticket = self._open.pop(id(req), None)
        if ticket is not None:
            self._release(ticket)
            if ticket.group:                         # a retry after 10190/309/101 need not wait out its delay
                for waiting in self._line.groups[ticket.group]:
                    waiting.not_before = 0.0
            self._pump_soon()

    def on_error(self, req: Request, err) -> bool:
        """router.retry_hooks: True when the error was a limit this scheduler requeues the request for."""
        ticket = self._open.get(id(req))
        limit = self._limit_error(req, err) if ticket is not None else None
        if limit is None:
            return False
        if ticket.retries >= self.limits.max_retries:
            self._give_up(ticket, err)
            return True
        now = self.now()
        ticket.retries += 1
        self._stats.requeues += 1
        del self._open[id(req)]
        self._release(ticket)
        if limit == "pacing":
            rest = self.limits.pacing_retry_delay * ticket.retries
            self.history.hold_until = max(self.history.hold_until, now + rest)
            ticket.reason = f"TWS reported a historical pacing violation (162); historical requests rest {rest:g} s"
        elif limit == "repeat":
            self.tick_repeat.record(self._tick_key(req), now)
            ticket.reason = "TWS refused a repeated tick-by-tick request within 15 s (10189)"
        else:
            if req.kind == "ticks":                  # refused, so not "made": it does not start IB's 15 s
                self.tick_repeat.forget(self._tick_key(req), ticket.sent_at)
            limit.learn_cap(now + self.limits.limit_retry_delay)
            ticket.not_before = now + self.limits.limit_retry_delay
            ticket.reason = (f"{limit.name}: TWS refused more ({err.code}) with {limit.in_use()} of ours open; "
                             f"retrying when one closes or in {self.limits.limit_retry_delay:g} s")
        self.rekey(req, self.take_id())              # ids are never reused: the re-send gets a fresh one
        log.info("%s: TWS answered %d (%s); requeued as request %d (retry %d of %d)", req.subject, err.code,
                 err.text, req.req_id, ticket.retries, self.limits.max_retries)
        ticket.queued_at, ticket.checked_at = now, now
        self._line.add(ticket, self.limits.log_wait_after)
        self._pump()
        return True

    # --- what a request is --------------------------------------------------------------------------
    def _limit_error(self, req: Request, err) -> Slots | str | None:
        """What limit this error reports: "pacing" (162), "repeat" (10189 within 15 s), the Slots that
        were full (10190, 309, 101), or None for any other error (it fails the request as before)."""
        code, text = err.code, (err.text or "").lower()
        if code == 162 and req.kind == "bars" and PACING_TEXT in text:
            return "pacing"
        if code == 10189 and req.kind == "ticks" and "15 seconds" in text:
            return "repeat"
        if LIMIT_CODES.get(code) == req.kind or (code == 101 and req.kind == "snapshot"):
            return {"ticks": self.ticks, "depth": self.depth}.get(req.kind, self.lines)
        return None

    def _group(self, ticket: Ticket) -> str:
        kind = ticket.req.kind
        if kind in LINE_KINDS:
            return "lines"
        if kind == "bars":
            ticket.paced = self._bars_keys(ticket.req)
            return "bars-paced" if ticket.paced[0] else "bars"
        return kind

    def _tick_key(self, req: Request) -> tuple:
        return _contract_key(req)[:1] + (req.params.get("tick_type", ""),)

    def _bars_keys(self, req: Request) -> tuple[bool, tuple, tuple, int]:
        """(paced, identical-request key, contract/exchange/whatToShow key, weight) of a bars request."""
        p = req.params
        try:
            seconds, _ = bar_size_seconds(str(p.get("bar_size", "")))
        except ValueError:
            seconds = 0                              # unknown: TWS will say; pace it to be safe
        what = str(p.get("what", "TRADES")).upper()
        ckey = _contract_key(req) + (what,)
        ident = ckey + (p.get("end", ""), p.get("duration", ""), p.get("bar_size", ""), bool(p.get("use_rth")),
                        bool(p.get("keep_up_to_date")))
        return self.limits.paces(seconds), ident, ckey, 2 if what == "BID_ASK" else 1

    def _check(self, ticket: Ticket, now: float) -> tuple[Verdict, tuple]:
        """(verdict, the (Slots, key) pairs the request would hold once sent)."""
        req = ticket.req
        if ticket.group == "lines":
            return self.lines.check(id(req), now), ((self.lines, id(req)),)
        if ticket.group == "ticks":
            verdict = self.ticks.check(id(req), now)
            if verdict.ok:
                verdict = self.tick_repeat.check(self._tick_key(req), now)
            return verdict, ((self.ticks, id(req)),)
        if ticket.group == "depth":
            con = _contract_key(req)[0]
            return self.depth.check(con, now), ((self.depth, con),)
        verdict = self.history.hold(now)
        if verdict.ok:
            verdict = self.open_history.check(id(req), now)
        if verdict.ok and ticket.group == "bars-paced":
            _, ident, ckey, weight = ticket.paced
            verdict = self.history.check(now, ident, ckey, weight, ckey[-1])
        return verdict, ((self.open_history, id(req)),)

    # --- the pump -----------------------------------------------------------------------------------
    def _pump(self) -> None:
        """Send every queued request its limits allow now; arm the timer for the next that could go."""
        if self._pumping:
            self._again = True
            return
        self._pumping = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._pump_once()
        finally:
            self._pumping = False

    def _pump_soon(self) -> None:
        """Pump once the current dispatch task is over: a slot freed by a cancel is reused only after the
        engine has sent that cancel (Engine._cancel finishes the request first, then sends cancelX)."""
        self._arm(self.now(), self.now())

    def _pump_once(self) -> None:
        now = self.now()
        if not self.connected():                     # Engine.resubscribe submits everything again
            self._disarm()
            return
        wake = math.inf
        blocked_by: dict[str, str] = {}
        for name, group in self._line.groups.items():
            i = 0
            while i < len(group):
                ticket = group[i]
                if ticket.not_before > now:
                    wake = min(wake, ticket.not_before)
                    i += 1
                    continue
                verdict, holds = self._check(ticket, now)
                if verdict.ok:
                    self._line.remove(ticket)
                    ticket.holds = holds
                    self._send(ticket, now)
                    continue
                ticket.reason, ticket.checked_at = verdict.reason, now
                if verdict.retry_at is not None:
                    wake = min(wake, verdict.retry_at)
                if verdict.blocks:                   # no later one of this group can go either
                    blocked_by[name] = verdict.reason
                    break
                i += 1
        due, next_log = self._line.due_for_log(now)
        for ticket in due:
            reason = ticket.reason if ticket.checked_at == now else \
                f"behind earlier requests ({blocked_by.get(ticket.group) or ticket.reason or 'queued'})"
            log.info("%s has waited %.1f s to be sent: %s", ticket.req.subject, now - ticket.queued_at, reason)
        self._arm(min(wake, next_log), now)

    def _send(self, ticket: Ticket, now: float) -> None:
        req = ticket.req
        for slots, key in ticket.holds:
            slots.acquire(key)
        if ticket.group == "ticks":
            self.tick_repeat.record(self._tick_key(req), now)
        elif ticket.group == "bars-paced":
            _, ident, ckey, weight = ticket.paced
            self.history.sent(id(ticket), now, ident, ckey, weight)
            if req.streaming and req.future is not None:      # answered at historicalDataEnd, stays open
                req.future.add_done_callback(lambda _f, token=id(ticket): self._answered(token))
        self._open[id(req)] = ticket
        ticket.sent_at = now
        self._stats.sent += 1
        req.sent += 1
        try:
            req.send(req.req_id)
        except Exception:
            log.exception("sending %s failed", req.subject)

    def _answered(self, token: int) -> None:
        if self.history.answered(token, self.now()):
            self._pump_soon()

    def _release(self, ticket: Ticket) -> None:
        self.history.answered(id(ticket), self.now())
        for slots, key in ticket.holds:
            slots.release(key)
        ticket.holds = ()

    def _give_up(self, ticket: Ticket, err) -> None:
        req = ticket.req
        text = (f"{err.text} — still refused after {ticket.retries} requeues by ibframe's pacing: another "
                f"application on this IB account probably uses the same limit. Lower ibframe's limit for "
                f"{ADVICE.get(err.code, 'requests')} to the share this program may use, or close the other "
                f"subscriptions")
        failed = replace(err, text=text)
        log.warning("%s failed: %s", req.subject, text)
        self._stats.failed += 1
        self.finish(req.req_id)                      # on_finish releases its slots
        if req.on_error is not None:
            req.on_error(failed)
        if req.future is not None and not req.future.done():
            req.future.set_exception(RequestError(failed))

    # --- the timer ----------------------------------------------------------------------------------
    def _arm(self, due: float, now: float) -> None:
        """One timer, at the earliest moment a queued request could go (or its wait should be logged)."""
        if due == math.inf:
            self._disarm()
            return
        if self._timer is not None and self._timer_due <= due:
            return
        self._disarm()
        self._timer_due = due
        self._timer = self.call_later(max(0.0, due - now), self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_due = None, math.inf

    def _on_timer(self) -> None:
        self._timer, self._timer_due = None, math.inf
        self._pump()


def _contract_key(req: Request) -> tuple:
    """(instrument, exchange): the conId when known, else the description."""
    c = req.contract
    if c is None:
        return ("", "")
    ident = c.conId or f"{c.symbol}/{c.secType}/{c.currency}/{c.lastTradeDateOrContractMonth}/{c.strike}/{c.right}"
    return (ident, c.exchange or "")
