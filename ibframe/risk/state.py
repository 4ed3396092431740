"""Trading states: ACTIVE / REDUCING / HALTED, per strategy and account-wide (GLOBAL).

Owns: the state of every scope (GLOBAL and each strategy's name), who set it, when and why; the
effective state of a scope (the stricter of GLOBAL and the scope's own); the `trading_state`
refusal the risk gate asks for first; the few orders a halt lets through (the kill switch's
flatten orders, registered with `exempt`); and the RiskEvents that announce a change.

Must never: talk to TWS, cancel or place anything (halting's consequences live in `kill.py`, a
listener), block, or read the engine's private fields. `set` runs its listeners on the calling
thread: call it on the dispatch thread (the kill switch, the margin monitor and strategies do).
Cancels are never refused: they are not order intents and never reach `refusal`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from ..trading.trade import quantity_text
from .base import GLOBAL, OrderIntent, Refusal, RiskEvent, TradingState

log = logging.getLogger("ibframe.risk.state")

RULE = "trading_state"
STRICTNESS = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
STRATEGY_SOURCE = "strategy"


@dataclass(slots=True, frozen=True)
class StateEntry:
    """One scope's own state: what, why, who set it and when."""
    state: TradingState
    reason: str = ""
    source: str = ""
    since: float = 0.0


ACTIVE_ENTRY = StateEntry(TradingState.ACTIVE)


def as_state(value) -> TradingState:
    """TradingState from a TradingState or its name ('halted', 'REDUCING'); ValueError naming the choices."""
    if isinstance(value, TradingState):
        return value
    try:
        return TradingState(str(value).strip().upper())
    except ValueError:
        raise ValueError(f"{value!r} is not a trading state; use one of "
                         f"{', '.join(s.value for s in TradingState)}") from None


class TradingStates:
    """Every scope's trading state. Reads are cheap dictionary look-ups (the gate asks on every order).

    Each source (the kill switch, the margin monitor, a throttle, the strategy, an operator) holds its
    own claim on a scope; the scope's own state is the strictest claim. So a source lifts only what it
    set: the margin monitor going back to ACTIVE does not lift a throttle's pause or the kill switch's
    halt, and a strategy cannot lift a halt the risk layer put on it.
    """

    def __init__(self, now: Callable[[], float]):
        self.now = now
        self._claims: dict[str, dict[str, StateEntry]] = {}   # scope -> source -> its claim (never ACTIVE)
        self._entries: dict[str, StateEntry] = {}             # scope -> its strictest claim (cached)
        self._exempt: dict[int, object] = {}          # id(order) -> order: flatten orders a halt lets through
        self.listeners: list[Callable[[RiskEvent], None]] = []

    # --- reading ---------------------------------------------------------------------------------
    def entry(self, scope: str = GLOBAL) -> StateEntry:
        """The scope's own state (its strictest claim, not combined with GLOBAL), with its reason and source."""
        return self._entries.get(scope or GLOBAL, ACTIVE_ENTRY)

    def claims(self, scope: str = GLOBAL) -> dict[str, StateEntry]:
        """source -> claim, for every source holding the scope above ACTIVE (a copy)."""
        return dict(self._claims.get(scope or GLOBAL, {}))

    def state(self, scope: str = GLOBAL) -> TradingState:
        """Effective state of a scope: the stricter of GLOBAL's and the scope's own."""
        return self._governing(scope)[1].state

    def _governing(self, scope: str) -> tuple[str, StateEntry]:
        """(scope, entry) of whichever of GLOBAL and `scope` is stricter (GLOBAL on a tie)."""
        glob = self._entries.get(GLOBAL, ACTIVE_ENTRY)
        if not scope or scope == GLOBAL:
            return GLOBAL, glob
        own = self._entries.get(scope, ACTIVE_ENTRY)
        if STRICTNESS[own.state] > STRICTNESS[glob.state]:
            return scope, own
        return GLOBAL, glob

    def scopes(self) -> dict[str, StateEntry]:
        """Every scope held above ACTIVE by some source, with its own state."""
        return dict(self._entries)

    # --- changing --------------------------------------------------------------------------------
    def set(self, scope: str, state, reason: str, source: str = "") -> bool:
        """Set `source`'s claim on a scope (GLOBAL or a strategy's name); True when the claim changed.

        ACTIVE withdraws the source's claim. The scope's own state becomes its strictest claim. Every change
        of a claim is logged and told to the listeners as a RiskEvent 'state' whose details carry the
        scope's own `state` and `previous` state, the `claim` and `source`. Setting the same state again
        changes nothing (no event). Runs on the calling thread: the dispatch thread.
        """
        state = as_state(state)
        scope = scope or GLOBAL
        claims = self._claims.setdefault(scope, {})
        had = claims.get(source)
        if (had.state if had else TradingState.ACTIVE) is state:
            return False
        now = self.now()
        before = self.entry(scope)
        if state is TradingState.ACTIVE:
            claims.pop(source, None)
        else:
            claims[source] = StateEntry(state, reason, source, now)
        if claims:
            strictest = max(claims.values(), key=lambda e: (STRICTNESS[e.state], e.since))
            self._entries[scope] = strictest
        else:
            self._entries.pop(scope, None)
            self._claims.pop(scope, None)
        after = self.entry(scope)
        where = "globally" if scope == GLOBAL else f"for strategy {scope}"
        text = f"trading state {where}: {before.state.value} -> {after.state.value}"
        if after.state is before.state:
            text = f"trading state {where} stays {after.state.value}"
        claim = "lifts its claim" if state is TradingState.ACTIVE else f"claims {state.value}"
        text += f" ({source or 'unnamed source'} {claim}{': ' + reason if reason else ''})"
        (log.warning if after.state is not TradingState.ACTIVE else log.info)("%s", text)
        self.emit(RiskEvent(now, "state", scope, RULE, text,
                            {"state": after.state.value, "previous": before.state.value, "claim": state.value,
                             "reason": reason, "source": source}))
        return True

    def set_by_strategy(self, scope: str, state, reason: str) -> bool:
        """A strategy setting its own scope (source 'strategy'): it lifts only its own claim, never GLOBAL."""
        if not scope or scope == GLOBAL:
            raise ValueError("a strategy sets its own scope only; GLOBAL belongs to the risk layer and the kill switch")
        changed = self.set(scope, state, reason, STRATEGY_SOURCE)
        entry = self.entry(scope)
        if as_state(state) is TradingState.ACTIVE and entry.state is not TradingState.ACTIVE:
            log.warning("strategy %s lifted its own claim but stays %s: %s holds it (%s); only that source lifts it",
                        scope, entry.state.value, entry.source or "the risk layer", entry.reason)
        return changed

    def emit(self, event: RiskEvent) -> None:
        """Hand a risk event (a state change, a kill) to every listener; a failing listener is logged."""
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("trading-state listener %s failed", getattr(listener, "__qualname__", listener))

    # --- the flatten exemption -------------------------------------------------------------------
    def exempt(self, order) -> None:
        """Let this one order (an ibapi Order: the kill switch's flatten) through a halt, if it reduces."""
        self._exempt[id(order)] = order

    def release(self, order) -> None:
        self._exempt.pop(id(order), None)

    def is_exempt(self, order) -> bool:
        return self._exempt.get(id(order)) is order

    # --- the gate's first question ----------------------------------------------------------------
    def refusal(self, intent: OrderIntent) -> Refusal | None:
        """None when the intent may pass this scope's state, else why not.

        ACTIVE: None. REDUCING: None only for an order that reduces a position (`intent.reduces`, set by the
        gate). HALTED: a Refusal for everything, except a new order registered with `exempt` (the kill
        switch's flatten) that reduces.
        """
        scope, entry = self._governing(intent.strategy)
        state = entry.state
        if state is TradingState.ACTIVE:
            return None
        if state is TradingState.REDUCING and intent.reduces:
            return None
        if state is TradingState.HALTED and intent.reduces and intent.kind == "new" and self.is_exempt(intent.order):
            return None
        where = "globally" if scope == GLOBAL else f"for strategy {scope}"
        why = f"{state.value} {where}" + (f" since {_clock(entry.since)}" if entry.since else "") + \
              (f" by {entry.source}" if entry.source else "") + (f": {entry.reason}" if entry.reason else "")
        order = intent.order
        what = f"{'modification of ' if intent.kind == 'modify' else ''}{order.action} " \
               f"{quantity_text(order.totalQuantity)} {intent.contract.symbol or intent.contract.conId}"
        if state is TradingState.REDUCING:
            return Refusal(RULE, f"{why} (only orders that reduce a position pass)",
                           f"{what}, which opens or increases a position",
                           "send only orders that reduce or close a position until the state is ACTIVE again; "
                           "cancels always pass")
        if entry.source == STRATEGY_SOURCE:
            lift = "the strategy calls set_trading_state('ACTIVE', reason)"
        elif entry.source.startswith("kill"):
            lift = "a kill switch halt lasts until the run ends: remove the kill file, if any, and start a new run"
        else:
            lift = f"it lifts when {entry.source or 'the source that set it'} lifts it"
        return Refusal(RULE, f"{why} (nothing passes)", what, f"no order or modification may be sent while halted; "
                                                              f"cancels always pass. To trade again: {lift}")


def _clock(t: float) -> str:
    import time
    return time.strftime("%H:%M:%S", time.localtime(t))


# --- the strategy's view (Strategy.trading_state / set_trading_state) --------------------------------
def states_of(engine) -> TradingStates | None:
    """The engine's TradingStates, when a risk layer is installed (`engine.risk.states`), else None."""
    risk = getattr(engine, "risk", None)
    states = getattr(risk, "states", None)
    return states if isinstance(states, TradingStates) else None


def _need(engine, strategy: str) -> TradingStates:
    states = states_of(engine)
    if states is None:
        raise RuntimeError(f"strategy {strategy}: this engine has no risk layer, so it has no trading states; "
                           f"run it with ibframe.run (which installs the risk layer) or install one with "
                           f"ibframe.risk.layer.RiskLayer.install(engine, config, strategies)")
    return states


def strategy_state(engine, strategy: str) -> TradingState:
    return _need(engine, strategy).state(strategy)


def set_strategy_state(engine, strategy: str, state, reason: str) -> bool:
    return _need(engine, strategy).set_by_strategy(strategy, state, reason)
