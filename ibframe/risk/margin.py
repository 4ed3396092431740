"""The margin monitor: the account's margin buffer decides the GLOBAL trading state.

Owns: the `risk: margin:` settings (`MarginConfig`, what-if settings included), the account-summary
subscription the risk layer reads account values from (`subscribe_account_summary`: one
reqAccountSummary for the margin tags and the PDT guard's, rows fanned out to listeners), and
`MarginMonitor`, which turns ExcessLiquidity / NetLiquidation (and LookAheadExcessLiquidity, and
Cushion when those are missing) into a level — REDUCING at or below `reducing_at`, HALTED at or
below `halt_at`, back one level only once the buffer is `hysteresis` above the line it crossed —
and sets it on the GLOBAL scope of `TradingStates` (source "margin"), with an alert RiskEvent
(logged, through `TradingStates.emit`) on each change and an optional flatten on HALTED.

Why reqAccountSummary and not the reqAccountUpdates values already reaching `engine.portfolio`:
the summary carries account totals without per-segment duplicates, needs no second
reqAccountUpdates (a client has only one; a new one replaces the portfolio's), and its rows can be
routed to listeners by request id without touching the Portfolio. TWS refreshes both every
3 minutes; the what-if check (whatif.py) covers the moment an order is sent.

Must never: block, place or cancel orders itself (flatten is a callable it is given; cancels on
HALTED are the kill switch's listener), lift a state another source set (it only sets and withdraws
its own claim, source "margin"; the kill switch's or an operator's claims stay), or change state on a value it cannot read (text, NaN, inf, a non-positive
NetLiquidation are logged and ignored).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .base import GLOBAL, RiskEvent, TradingState, account_number

log = logging.getLogger("ibframe.risk.margin")

RULE = "margin"
SOURCE = "margin"
MARGIN_TAGS = ("NetLiquidation", "ExcessLiquidity", "FullMaintMarginReq", "Cushion", "LookAheadExcessLiquidity",
               "EquityWithLoanValue")
PDT_TAGS = ("DayTradesRemaining",)
SUMMARY_TAGS = MARGIN_TAGS + PDT_TAGS
KEYS = ("enabled", "reducing_at", "halt_at", "hysteresis", "flatten_on_halt", "look_ahead", "settle",
        "what_if_above", "what_if_timeout")
_RANK = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


# --- configuration --------------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class MarginConfig:
    """`risk: margin:` in the YAML. Ratios are ExcessLiquidity / NetLiquidation (0.10 or "10%")."""
    enabled: bool = True
    reducing_at: float = 0.10           # the seed's buffer: ExcessLiquidity <= 10 % of NetLiquidation -> REDUCING
    halt_at: float = 0.05               # <= 5 % -> HALTED
    hysteresis: float = 0.02            # leave a level only once the ratio is this far above its line
    flatten_on_halt: bool = False       # on HALTED also close every position (through the kill switch's flatten)
    look_ahead: bool = True             # use min(ExcessLiquidity, LookAheadExcessLiquidity)
    settle: float = 0.2                 # seconds to let one update's rows arrive before judging them
    what_if_above: float | None = 50_000.0   # order notional above which TWS is asked first (None = never)
    what_if_timeout: float = 5.0        # seconds to wait for the what-if answer before refusing the order

    @classmethod
    def from_mapping(cls, raw: Mapping | None, fail: Callable[[tuple, str], Any]) -> "MarginConfig":
        """Read the `margin:` mapping; `fail(key_path, message)` raises the config error (paths relative to
        `margin:`)."""
        if raw is None:
            return cls()
        if isinstance(raw, bool):
            return cls(enabled=raw)
        if not isinstance(raw, Mapping):
            fail((), f"must be a mapping with keys {', '.join(KEYS)} (or true/false), got {type(raw).__name__}")
        for key in raw:
            if key not in KEYS:
                fail((key,), f"unknown key; the margin monitor knows {', '.join(KEYS)}")
        flags = {}
        for key, default in (("enabled", True), ("flatten_on_halt", False), ("look_ahead", True)):
            value = raw.get(key, default)
            if not isinstance(value, bool):
                fail((key,), f"must be true or false, got {value!r}")
            flags[key] = value
        reducing = _ratio(raw.get("reducing_at", 0.10), ("reducing_at",), fail)
        halt = _ratio(raw.get("halt_at", 0.05), ("halt_at",), fail)
        hysteresis = _ratio(raw.get("hysteresis", 0.02), ("hysteresis",), fail)
        if not halt < reducing:
            fail(("halt_at",), f"must be below reducing_at ({reducing:.4g}): the account is halted at the lower "
                               f"buffer, got {halt:.4g}")
        if reducing + hysteresis >= 1:
            fail(("hysteresis",), f"reducing_at + hysteresis must stay below 1 (100 % of NetLiquidation), "
                                  f"got {reducing + hysteresis:.4g}")
        settle = _seconds(raw.get("settle", 0.2), ("settle",), fail, allow_zero=True)
        above = raw.get("what_if_above", 50_000.0)
        if above is None or above is False or (isinstance(above, str) and above.strip().lower() == "off"):
            above = None
        elif isinstance(above, bool) or not isinstance(above, (int, float)) or not math.isfinite(above) or above < 0:
            fail(("what_if_above",), f"must be an order notional in the account's currency (e.g. 50000), or off, "
                                     f"got {above!r}")
        else:
            above = float(above)
        timeout = _seconds(raw.get("what_if_timeout", 5.0), ("what_if_timeout",), fail)
        return cls(flags["enabled"], reducing, halt, hysteresis, flags["flatten_on_halt"], flags["look_ahead"],
                   settle, above, timeout)


def _ratio(value, path: tuple, fail) -> float:
    """0.10, 10 %, '10%'."""
    text = value
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            fail(path, f"must be a fraction of NetLiquidation such as 0.10 or '10%', got {text!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value < 1:
        fail(path, f"must be a fraction of NetLiquidation from 0 to below 1 (0.10 or '10%'), got {text!r}")
    return float(value)


def _seconds(value, path: tuple, fail, allow_zero: bool = False) -> float:
    from ..config import parse_duration
    if allow_zero and value == 0 and not isinstance(value, bool):
        return 0.0
    try:
        if isinstance(value, bool):
            raise ValueError
        return parse_duration(value)
    except (ValueError, TypeError):
        fail(path, f"must be a duration such as 5s, 500ms or a number of seconds, got {value!r}")
        raise


# --- the account summary feed ------------------------------------------------------------------------

def subscribe_account_summary(engine, listeners: list[Callable[[tuple | None], None]],
                              tags: tuple[str, ...] = SUMMARY_TAGS):
    """One reqAccountSummary ("All", `tags`) whose rows go to each listener as (account, tag, value,
    currency), and None once the first download is complete. Returns the router Request (cancel it with
    `engine.cancel`-like `cancel_account_summary`). Any thread; the request is registered before it is sent."""
    from ..router import Request

    def fan_out(req) -> None:
        row = req.results[0] if req.results else None
        for listener in listeners:
            try:
                listener(row)
            except Exception:
                log.exception("account summary listener %s failed", getattr(listener, "__qualname__", listener))

    def on_error(err) -> None:
        log.error("account summary subscription failed (%s): the margin monitor and PDT guard get no account "
                  "values; TWS allows 2 account summary subscriptions per client", err)

    def send():
        req = Request(engine.request_ids.take(), "acctsummary", None, "account summary (risk)",
                      on_error=on_error, listeners=[fan_out])
        return engine.open_request(req, lambda rid: engine.conn.reqAccountSummary(rid, "All", ",".join(tags)))
    return engine.on_dispatch(send)


class AccountFeed:
    """The risk layer's one account-summary subscription per engine, shared by the margin monitor and the PDT
    guard. Keeps the latest row per (account, tag, currency) so a listener added later gets them at once."""

    def __init__(self, engine):
        self.engine = engine
        self.listeners: list[Callable[[tuple | None], None]] = [self._keep]
        self.latest: dict[tuple[str, str, str], tuple] = {}
        self.request = None

    def _keep(self, row: tuple | None) -> None:
        if row is not None:
            self.latest[(row[0], row[1], row[3])] = row

    def add(self, listener: Callable[[tuple | None], None]) -> None:
        """Subscribe (the first time) and feed `listener` every row from now on, starting with the latest ones."""
        def attach():
            for row in list(self.latest.values()):
                listener(row)
            self.listeners.append(listener)
        self.engine.on_dispatch(attach)
        if self.request is None:
            self.request = subscribe_account_summary(self.engine, self.listeners)


def account_feed(engine) -> AccountFeed:
    """The engine's shared AccountFeed (made on first use), kept on the engine (`engine.account_feed`): it holds
    the engine (its request, its listeners), so a module-level table of feeds would keep every engine alive."""
    feed = engine.account_feed
    if feed is None:
        feed = engine.account_feed = AccountFeed(engine)
    return feed


def cancel_account_summary(engine, req) -> None:
    def cancel():
        if engine.router.finish(req.req_id) is not None and engine.conn.isConnected():
            engine.conn.cancelAccountSummary(req.req_id)
    engine.on_dispatch(cancel)


# --- the monitor -------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Value:
    value: float
    currency: str


class MarginMonitor:
    """Account values in, the GLOBAL trading state out. Dispatch thread only.

    `states`: engineer K's TradingStates (set / entry / emit). `flatten(reason)`: closes every position
    (optional; called on entering HALTED when `flatten_on_halt`). `call_later(delay, fn)`: the dispatcher's,
    to judge one update's rows together (without it every row is judged at once)."""

    def __init__(self, config: MarginConfig, states, account: str = "",
                 flatten: Callable[[str], None] | None = None,
                 call_later: Callable[[float, Callable[[], None]], Any] | None = None):
        self.config = config
        self.states = states
        self.account = account
        self.flatten = flatten
        self.call_later = call_later
        self.level = TradingState.ACTIVE           # what the buffer says (the GLOBAL state may be stricter)
        self.values: dict[str, _Value] = {}
        self.ratio: float | None = None
        self._pending = False
        self._warned: set[str] = set()
        self.what_if = None                        # the WhatIfCheck install() put on the gate, if any

    # --- input -----------------------------------------------------------------------------------------
    def on_row(self, row: tuple | None) -> None:
        """A feed row (account, tag, value, currency), or None at the end of a download."""
        if row is None:
            self.evaluate()
            return
        self.on_account_value(row[1], row[2], row[3], row[0])

    def on_account_value(self, tag: str, value, currency: str = "", account: str = "") -> None:
        if not self.config.enabled or tag not in MARGIN_TAGS:
            return
        if self.account and account and account != self.account:
            return
        if not self.account and account:
            self.account = account
            log.info("margin monitor watches account %s", account)
        number = account_number(value)
        if number is None:
            self._warn(f"bad:{tag}", f"{tag} = {value!r} is not a usable number: ignored, state unchanged")
            return
        self.values[tag] = _Value(number, currency or "")
        if self.call_later is None or self.config.settle <= 0:
            self.evaluate()
        elif not self._pending:
            self._pending = True
            self.call_later(self.config.settle, self._settled)

    def _settled(self) -> None:
        self._pending = False
        self.evaluate()

    # --- judging ---------------------------------------------------------------------------------------
    def buffer(self) -> float | None:
        """ExcessLiquidity (the lower look-ahead one when configured) / NetLiquidation, or Cushion; None when
        the values cannot say."""
        v = self.values
        nlv, excess = v.get("NetLiquidation"), v.get("ExcessLiquidity")
        if excess is not None and self.config.look_ahead:
            ahead = v.get("LookAheadExcessLiquidity")
            if ahead is not None and ahead.currency == excess.currency and ahead.value < excess.value:
                excess = ahead
        if nlv is not None and excess is not None:
            if nlv.currency != excess.currency:
                self._warn("ccy", f"ExcessLiquidity ({excess.currency}) and NetLiquidation ({nlv.currency}) come "
                                  f"in different currencies: using Cushion")
            elif nlv.value > 0:
                return excess.value / nlv.value
            elif excess.value < 0:
                return excess.value / max(abs(nlv.value), 1.0) - 1.0     # underwater: below every line
            else:
                self._warn("nlv", f"NetLiquidation {nlv.value:g} is not positive: the buffer cannot be computed, "
                                  f"state unchanged")
                return None
        cushion = v.get("Cushion")
        if cushion is not None and -10 < cushion.value <= 1:
            return cushion.value
        return None

    def target(self, ratio: float) -> TradingState:
        """The level for a buffer ratio, given the current level (hysteresis on the way back)."""
        cfg, now = self.config, self.level
        if ratio <= cfg.halt_at or (now is TradingState.HALTED and ratio <= cfg.halt_at + cfg.hysteresis):
            return TradingState.HALTED
        if ratio <= cfg.reducing_at or (now is not TradingState.ACTIVE and ratio <= cfg.reducing_at + cfg.hysteresis):
            return TradingState.REDUCING
        return TradingState.ACTIVE

    def evaluate(self) -> TradingState | None:
        """Judge the latest values; set the GLOBAL state on a level change. Returns the new level or None."""
        if not self.config.enabled:
            return None
        ratio = self.buffer()
        if ratio is None:
            return None
        self.ratio = ratio
        new = self.target(ratio)
        if new is self.level:
            return None
        old, self.level = self.level, new
        reason = self._reason(ratio, new)
        self._apply(new, reason)
        self._alert(old, new, ratio, reason)
        if new is TradingState.HALTED and self.config.flatten_on_halt and self.flatten is not None:
            try:
                self.flatten(reason)
            except Exception:
                log.exception("margin monitor: flatten on HALTED failed")
        return new

    def _apply(self, new: TradingState, reason: str) -> None:
        """Set the monitor's own claim on GLOBAL (ACTIVE withdraws it). TradingStates keeps the strictest claim,
        so a halt by the kill switch or an operator stays whatever the buffer says."""
        self.states.set(GLOBAL, new, reason, SOURCE)
        entry = self.states.entry(GLOBAL)
        if _RANK[entry.state] > _RANK[new]:
            log.info("margin monitor: buffer says %s; GLOBAL stays %s, held by %s", new.value, entry.state.value,
                     entry.source or "another rule")

    def _reason(self, ratio: float, new: TradingState) -> str:
        cfg = self.config
        line = {TradingState.HALTED: f"at or below {cfg.halt_at:.1%}",
                TradingState.REDUCING: f"at or below {cfg.reducing_at:.1%}",
                TradingState.ACTIVE: f"back above {cfg.reducing_at + cfg.hysteresis:.1%}"}[new]
        excess = self.values.get("ExcessLiquidity")
        nlv = self.values.get("NetLiquidation")
        money = f" (ExcessLiquidity {excess.value:,.2f} / NetLiquidation {nlv.value:,.2f} {nlv.currency})" \
            if excess is not None and nlv is not None else ""
        return f"margin buffer {ratio:.1%} of net liquidation {line}{money}"

    def _alert(self, old: TradingState, new: TradingState, ratio: float, reason: str) -> None:
        text = f"margin alert: {old.value} -> {new.value}: {reason}"
        (log.warning if new is not TradingState.ACTIVE else log.info)("%s", text)
        details = {"from": old.value, "to": new.value, "ratio": ratio, "account": self.account,
                   "reducing_at": self.config.reducing_at, "halt_at": self.config.halt_at,
                   "hysteresis": self.config.hysteresis}
        details.update({tag: v.value for tag, v in self.values.items()})
        now = self.states.now() if callable(getattr(self.states, "now", None)) else 0.0
        self.states.emit(RiskEvent(now, "alert", GLOBAL, RULE, text, details))

    def _warn(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("margin monitor: %s", text)
        else:
            log.debug("margin monitor: %s", text)


# --- wiring ------------------------------------------------------------------------------------------

def install(engine, config: "MarginConfig | None", layer) -> "MarginMonitor | None":
    """The risk layer's hook (RiskLayer._plugins): a MarginMonitor on the layer's TradingStates, fed by the
    shared account summary, and the what-if rule on the engine's gate when `what_if_above` is set. Returns the
    monitor (its `what_if` attribute holds the WhatIfCheck, or None), or None when switched off.

    `monitor.flatten` is None here: the runner sets it to the kill switch's flatten when `flatten_on_halt`."""
    config = config if isinstance(config, MarginConfig) else MarginConfig()
    if not config.enabled:
        log.info("margin monitor off (risk.margin.enabled: false)")
        return None
    states = getattr(layer, "states", None)
    if states is None:
        log.warning("margin monitor not installed: the risk layer has no trading states")
        return None
    monitor = MarginMonitor(config, states, account=engine.account, call_later=engine.dispatcher.call_later)
    account_feed(engine).add(monitor.on_row)
    monitor.what_if = _install_what_if(engine, config, layer, monitor)
    log.info("margin monitor on: REDUCING at ExcessLiquidity <= %.1f%% of NetLiquidation, HALTED at <= %.1f%%, "
             "back when %.1f%% above; what-if for orders above %s", config.reducing_at * 100, config.halt_at * 100,
             config.hysteresis * 100, "never" if config.what_if_above is None else f"{config.what_if_above:,.0f}")
    return monitor


def _install_what_if(engine, config: MarginConfig, layer, monitor: "MarginMonitor"):
    if config.what_if_above is None:
        return None
    from .whatif import WhatIfCheck
    orders = engine.orders
    hooks = orders.what_if_hooks

    def send_what_if(contract, order) -> int:
        with engine.order_ids.lock:
            order_id = engine.order_ids.take()
            order.orderId = order_id
            engine.conn.placeOrder(order_id, contract, order)
        return order_id

    def net_liquidation() -> float | None:
        value = monitor.values.get("NetLiquidation")
        return value.value if value is not None else None

    check = WhatIfCheck(config, send_what_if, engine.dispatcher.call_later, net_liquidation)
    hooks.append(check.on_open_order)
    engine.router.on_error_hooks.append(check.on_error)
    gate = getattr(layer, "gate", None) or orders.gate
    gate.add_rule(check)
    return check
