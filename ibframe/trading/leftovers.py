"""Orders an earlier run left working: found at start, then cancelled, adopted or left — and reported.

Owns: the start-of-run check (`check_leftovers`). It asks TWS for this client's open orders
(reqOpenOrders: only this client id's orders, the only ones this client can cancel or follow), and
for every working order this process did not place it applies the policy of the strategy its
`orderRef` names: `cancel` (the default: cancelOrder, then waits a bounded time for TWS to
confirm), `adopt` (the order becomes one of that strategy's trades: `open_trades()`, `on_fill`,
`position()`, cancelled at stop with `on_stop: cancel`) or `leave` (it keeps working; this run
neither follows it for the strategy nor cancels it, not even at stop). An order whose orderRef
names no strategy of this run is left the same way and reported. Each leftover gets one log line,
one event for the journal (a `RiskEvent` of kind "leftover": `risk_events` table) and a line in
the run summary (`leftover_summary`). When TWS does not answer in time the run goes on, says the
leftovers could not be checked, and applies the policy if the answer still comes.
Also owns the YAML value parser (`parse_leftovers`) for `orders: {leftovers: ...}` and a
strategy's `leftovers:`.

Must never: touch an order of another client id, place an order, guess an outcome TWS did not
report, or block the dispatch thread (the waiting happens on the caller's thread; everything
that reads or changes trades runs on the dispatch thread).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ibapi.const import UNSET_DOUBLE

from ..contracts import label
from ..errors import CANCEL_FAILED
from ..risk.base import GLOBAL, RiskEvent
from .trade import Trade, quantity_text

log = logging.getLogger("ibframe.leftovers")

POLICIES = ("cancel", "adopt", "leave")
DEFAULT_POLICY = "cancel"
ANSWER_TIMEOUT = 10.0          # seconds TWS may take to list the open orders (reqOpenOrders -> openOrderEnd)
CANCEL_TIMEOUT = 5.0           # seconds to wait for TWS to confirm the cancels
POLL = 0.05
CANCELLED = frozenset({"Cancelled", "ApiCancelled"})


def parse_leftovers(raw, fail, path: tuple) -> str | None:
    """`orders: {leftovers: ...}` (run-wide) or `strategies[i].leftovers:` (one strategy) -> 'cancel' |
    'adopt' | 'leave'; None when not given (the run-wide value, else 'cancel', applies).
    `fail(key_path, message)` raises the config error."""
    if raw is None:
        return None
    if isinstance(raw, str) and raw.strip().lower() in POLICIES:
        return raw.strip().lower()
    fail(path, f"{raw!r}: write cancel (cancel at start the working orders an earlier run of the strategy left, the "
               f"default), adopt (make them the strategy's own trades again) or leave (let them work, untouched)")
    return None


@dataclass(slots=True)
class LeftoverPolicy:
    """What to do with an earlier run's working orders: run-wide `default`, overridden per strategy name."""
    default: str = DEFAULT_POLICY
    strategies: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in [("default", self.default)] + list(self.strategies.items()):
            if value not in POLICIES:
                raise ValueError(f"leftovers policy for {name}: {value!r} is not one of {', '.join(POLICIES)}")

    def for_strategy(self, name: str) -> str:
        return self.strategies.get(name, self.default)


@dataclass(slots=True)
class Leftover:
    """One working order found at start that this process did not place, and what became of it."""
    trade: Trade
    strategy: str               # the strategy of this run its orderRef names ("" = none)
    policy: str                 # cancel | adopt | leave | unowned (orderRef names no strategy of this run)
    outcome: str = ""           # what was done, in words
    still_working: bool = True  # after what was done (a refused or unconfirmed cancel: True)
    cancel_errors_before: int = 0

    @property
    def order_id(self) -> int:
        return self.trade.order_id

    def describe(self) -> str:
        o, t = self.trade.order, self.trade
        price = f" @ {o.lmtPrice:g}" if o.lmtPrice not in (None, UNSET_DOUBLE) and o.orderType in (
            "LMT", "STP LMT", "LOC", "LIT") else ""
        return (f"order {t.order_id} {o.action} {quantity_text(o.totalQuantity)} {label(t.contract)} "
                f"{o.orderType}{price}")

    def kind(self) -> str:
        """What became of it, in a word or two (the summary counts these)."""
        if self.policy != "cancel":
            return {"adopt": "adopted", "leave": "left", "unowned": "left (no strategy)"}[self.policy]
        for start, kind in (("cancelled", "cancelled"), ("filled", "filled"), ("ended", "ended"),
                            ("cancel refused", "cancel refused")):
            if self.outcome.startswith(start):
                return kind
        return "cancel not confirmed"

    def line(self) -> str:
        ref = self.trade.order.orderRef or ""
        owner = f"strategy {self.strategy}" if self.strategy else f"orderRef {ref!r}: no strategy of this run"
        return f"{self.describe()} ({owner}): {self.outcome}"


@dataclass(slots=True)
class LeftoverReport:
    """What the start-of-run check found (kept current: a late answer adds to it)."""
    checked: bool = False       # TWS listed the open orders (in time, or `late`)
    late: bool = False          # the answer came after the wait gave up; the policy was applied then
    reason: str = ""            # why it could not be checked (while not checked)
    leftovers: list[Leftover] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.leftovers:
            key = item.kind()
            out[key] = out.get(key, 0) + 1
        return out


def leftover_summary(report: LeftoverReport | None) -> list[str]:
    """Lines for the run summary: nothing when the check ran and found nothing."""
    if report is None:
        return []
    if not report.checked:
        return [f"\n== leftover orders: NOT checked ({report.reason}); orders an earlier run left working may "
                f"still be working: check TWS"]
    if not report.leftovers:
        return []
    counts = ", ".join(f"{n} {what}" for what, n in report.counts().items())
    late = " (TWS answered late; applied then)" if report.late else ""
    return [f"\n== leftover orders from an earlier run: {len(report.leftovers)} found: {counts}{late}"] + \
        [f"   {item.line()}" for item in report.leftovers]


class LeftoverCheck:
    """One check at start. `strategies`: objects with `name` and `adopt(trade)` (the Strategy API).
    `on_event(RiskEvent)` hooks (the journal's `record_risk_event`) must not block."""

    def __init__(self, engine, strategies: Sequence, policy: LeftoverPolicy | None = None,
                 on_event: Sequence[Callable[[RiskEvent], None]] = (), timeout: float = ANSWER_TIMEOUT,
                 cancel_timeout: float = CANCEL_TIMEOUT):
        self.engine = engine
        self.orders = engine.orders
        self.strategies = {s.name: s for s in strategies}
        self.policy = policy or LeftoverPolicy()
        self.on_event = list(on_event)
        self.timeout = timeout
        self.cancel_timeout = cancel_timeout
        self.report = LeftoverReport()
        self._answered = threading.Event()
        self._handled = False
        self._gave_up = False

    # --- the caller's thread ----------------------------------------------------------------------
    def run(self) -> LeftoverReport:
        """Ask, wait for the answer (bounded), wait for the cancels (bounded), report. Not the dispatch thread."""
        if self.engine.dispatcher.in_dispatch_thread():
            raise RuntimeError("check_leftovers waits for TWS's answer: call it from the runner's thread (after "
                               "engine.start(), before the strategies start), not from a callback")
        self.engine.on_dispatch(self._ask)
        if not self._answered.wait(self.timeout) and self.engine.on_dispatch(self._give_up):
            return self.report
        self._await_cancels()
        self.engine.on_dispatch(self._tell_all)
        return self.report

    def _await_cancels(self) -> None:
        deadline = time.monotonic() + self.cancel_timeout
        while True:
            pending = self.engine.on_dispatch(self._settle)
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        if pending:
            self.engine.on_dispatch(self._unconfirmed, pending)

    # --- the dispatch thread --------------------------------------------------------------------
    def _ask(self) -> None:
        self.orders.open_order_end_hooks.append(self._on_open_order_end)
        log.info("asking TWS for this client's open orders: working orders an earlier run left are %s",
                 _policy_words(self.policy))
        self.engine.conn.reqOpenOrders()

    def _give_up(self) -> bool:
        """The wait is over: True when TWS has not answered (the check goes on in 'late' mode)."""
        if self._handled:
            return False
        self._gave_up = True
        self.report.reason = f"TWS did not list its open orders within {self.timeout:g}s"
        log.warning("leftover orders could not be checked: %s. Orders an earlier run left working may still be "
                    "working; the run goes on (and applies the leftovers policy if the answer still comes) — check TWS",
                    self.report.reason)
        self._emit(RiskEvent(self.engine.clock.now(), "leftover", GLOBAL, "leftovers",
                             f"leftover orders not checked: {self.report.reason}", {"checked": False}))
        return True

    def _on_open_order_end(self) -> None:
        if self._handled:
            return
        self._handled = True
        if self._on_open_order_end in self.orders.open_order_end_hooks:
            self.orders.open_order_end_hooks.remove(self._on_open_order_end)
        self.report.checked, self.report.late, self.report.reason = True, self._gave_up, ""
        found = self.orders.found_working()
        cancelling = {t.order_id for t in found if self._policy_of(t)[1] == "cancel" and not t.filled}
        for trade in found:
            strategy, policy = self._policy_of(trade)
            item = Leftover(trade, strategy, policy)
            self.report.leftovers.append(item)
            self._apply(item, parent_cancelled=trade.order.parentId in cancelling)
        if self._gave_up:
            log.warning("TWS listed its open orders after all (%d leftover order(s)); the leftovers policy was "
                        "applied now", len(found))
            self._tell_all()
            call_later = self.engine.dispatcher.call_later
            if any(item.policy == "cancel" for item in self.report.leftovers):
                call_later(self.cancel_timeout, self._late_settle)
        self._answered.set()

    def _late_settle(self) -> None:
        """After a late answer: say what became of the cancels sent then (nobody waits for them)."""
        pending = self._settle()
        self._unconfirmed(pending)
        for item in self.report.leftovers:
            if item.policy == "cancel":
                self._tell(item)

    def _policy_of(self, trade: Trade) -> tuple[str, str]:
        ref = trade.order.orderRef or ""
        if ref in self.strategies:
            return ref, self.policy.for_strategy(ref)
        return "", "unowned"

    def _apply(self, item: Leftover, parent_cancelled: bool) -> None:
        trade = item.trade
        if item.policy == "cancel":
            item.cancel_errors_before = len(trade.errors)
            if parent_cancelled:
                item.outcome = "cancel asked (with its parent)"
            else:
                item.outcome = "cancel sent"
                self.orders.cancel(trade)
        elif item.policy == "adopt":
            self.strategies[item.strategy].adopt(trade)
            item.outcome = f"adopted: strategy {item.strategy} follows it as its own trade"
        elif item.policy == "leave":
            self.orders.disown(trade)
            item.outcome = "left working (leftovers: leave); this run does not follow or cancel it"
        else:
            self.orders.disown(trade)
            item.outcome = "left working; this run does not follow or cancel it"

    def _settle(self) -> list[Leftover]:
        """Fill in the outcome of each cancel TWS answered; returns the ones still waiting."""
        pending = []
        for item in self.report.leftovers:
            if item.policy != "cancel" or not item.outcome.startswith("cancel "):
                continue
            trade = item.trade
            refused = [e for e in trade.errors[item.cancel_errors_before:] if e.code in CANCEL_FAILED]
            if trade.status in CANCELLED:
                item.outcome, item.still_working = "cancelled", False
            elif trade.status == "Filled":
                item.outcome, item.still_working = "filled before the cancel reached TWS", False
            elif trade.done:
                item.outcome, item.still_working = f"ended {trade.status}", False
            elif refused:
                err = refused[-1]
                item.outcome = f"cancel refused ({err.code}: {err.text}); it is still working — cancel it in TWS"
            else:
                pending.append(item)
        return pending

    def _unconfirmed(self, pending: list[Leftover]) -> None:
        for item in pending:
            if item.outcome.startswith("cancel ") and not item.trade.done:
                item.outcome = (f"cancel sent, not confirmed within {self.cancel_timeout:g}s; it may still be "
                                f"working — check TWS")

    def _tell_all(self) -> None:
        for item in self.report.leftovers:
            self._tell(item)
        if self.report.leftovers:
            counts = ", ".join(f"{n} {what}" for what, n in self.report.counts().items())
            log.warning("%d leftover order(s) from an earlier run: %s", len(self.report.leftovers), counts)
        else:
            log.info("no working orders left by an earlier run")

    def _tell(self, item: Leftover) -> None:
        log.warning("leftover %s", item.line())
        o, t = item.trade.order, item.trade
        details = {"order_id": t.order_id, "perm_id": t.perm_id, "con_id": t.contract.conId,
                   "symbol": label(t.contract), "side": o.action, "quantity": _quantity(o), "filled": t.filled,
                   "order_type": o.orderType, "order_ref": o.orderRef or "", "strategy": item.strategy,
                   "policy": item.policy, "outcome": item.outcome, "still_working": item.still_working,
                   "late": self.report.late}
        self._emit(RiskEvent(self.engine.clock.now(), "leftover", item.strategy or GLOBAL, "leftovers",
                             f"leftover {item.line()}", details))

    def _emit(self, event: RiskEvent) -> None:
        for hook in self.on_event:
            try:
                hook(event)
            except Exception:
                log.exception("leftover event hook %r failed", hook)


def check_leftovers(engine, strategies: Sequence, policy: LeftoverPolicy | None = None, *,
                    on_event: Sequence[Callable[[RiskEvent], None]] = (), timeout: float = ANSWER_TIMEOUT,
                    cancel_timeout: float = CANCEL_TIMEOUT) -> LeftoverReport:
    """At start — after engine.start(), before the strategies start — find the working orders an earlier run
    of this client id left, apply each one's policy, and report (log, `on_event`, the returned report, which
    `leftover_summary` turns into summary lines). From the runner's thread; returns within about
    `timeout + cancel_timeout` seconds whatever TWS does."""
    return LeftoverCheck(engine, strategies, policy, on_event, timeout, cancel_timeout).run()


def _policy_words(policy: LeftoverPolicy) -> str:
    text = {"cancel": "cancelled", "adopt": "adopted", "leave": "left working"}[policy.default]
    if policy.strategies:
        text += " (" + ", ".join(f"{name}: {value}" for name, value in sorted(policy.strategies.items())) + ")"
    return text


def _quantity(order) -> float:
    try:
        return float(order.totalQuantity)
    except (TypeError, ValueError, ArithmeticError):
        return float("nan")
