"""Option model values (implied vol, greeks, model price) for one option contract.

Owns: the latest ``tickOptionComputation`` per kind -- bid (10), ask (11), last (12),
model (13), custom (53) and their delayed twins (80-83, stored under the same kind with
``delayed=True``).

Must never: take locks, do I/O, or call ibapi ``EClient``. Updated ONLY on the
framework's single dispatch thread. Values ibapi reports as "not computed" arrive as
``None`` and stay ``None`` (never 0, never NaN) so callers can tell "unknown" from zero;
``to_frame`` shows them as NaN. IB's sentinels that reach here raw (a direct caller, an older
decoder) read as ``None`` too: implied vol < 0, delta -2, option/underlying price and PV
dividend -1, gamma/vega/theta -2, ``Double.MAX`` (UNSET_DOUBLE), NaN and infinities.
``check_invariants()`` lists what breaks "every value finite or None" (empty when fine).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

import pandas as pd
from ibapi.const import UNSET_DOUBLE

__all__ = ["OptionGreeks", "OptionComputation", "KINDS"]

KINDS = ("bid", "ask", "last", "model", "custom")
# tick type -> (kind, delayed?)
_TICK_KINDS: dict[int, tuple[str, bool]] = {
    10: ("bid", False), 11: ("ask", False), 12: ("last", False), 13: ("model", False),
    53: ("custom", False),
    80: ("bid", True), 81: ("ask", True), 82: ("last", True), 83: ("model", True),
}


def _value(x: Any, not_computed: float | None = None) -> float | None:
    """A finite float, or None for "not computed" (IB's sentinel, UNSET_DOUBLE, NaN, inf, not a number)."""
    if x is None:
        return None
    try:
        number = float(x)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number == UNSET_DOUBLE or number == not_computed:
        return None
    return number


def _implied_vol(x: Any) -> float | None:
    number = _value(x)
    return None if number is None or number < 0 else number


@dataclass(slots=True, frozen=True)
class OptionComputation:
    """One tickOptionComputation. ``tick_attrib``: 0 return-based, 1 price-based (IB)."""

    implied_vol: float | None = None
    delta: float | None = None
    opt_price: float | None = None
    pv_dividend: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None
    und_price: float | None = None
    tick_attrib: int | None = None
    delayed: bool = False
    time: float | None = None


_COMPUTATION_FIELDS = tuple(f.name for f in fields(OptionComputation))
_VALUE_FIELDS = _COMPUTATION_FIELDS[:8]          # implied_vol .. und_price


@dataclass(slots=True, eq=False)
class OptionGreeks:
    """Latest OptionComputation per kind for one option."""

    contract_key: str = ""
    bid: OptionComputation | None = None
    ask: OptionComputation | None = None
    last: OptionComputation | None = None
    model: OptionComputation | None = None
    custom: OptionComputation | None = None
    updates: int = 0
    ignored: int = 0                         # tick types that are not option computations
    updated: float | None = None
    on_change: list[Callable[["OptionGreeks"], None]] = field(default_factory=list, repr=False)

    def on_option_computation(self, tick_type: int, tick_attrib: int | None,
                              implied_vol: float | None, delta: float | None,
                              opt_price: float | None, pv_dividend: float | None,
                              gamma: float | None, vega: float | None, theta: float | None,
                              und_price: float | None, time: float | None = None) -> None:
        spec = _TICK_KINDS.get(tick_type)
        if spec is None:
            self.ignored += 1
            return
        kind, delayed = spec
        try:
            attrib = None if tick_attrib is None else int(tick_attrib)
        except (TypeError, ValueError, OverflowError):
            attrib = None
        setattr(self, kind, OptionComputation(
            _implied_vol(implied_vol), _value(delta, -2.0), _value(opt_price, -1.0),
            _value(pv_dividend, -1.0), _value(gamma, -2.0), _value(vega, -2.0), _value(theta, -2.0),
            _value(und_price, -1.0), attrib, delayed, time))
        self.updates += 1
        self.updated = time
        for hook in tuple(self.on_change):
            hook(self)

    def check_invariants(self) -> list[str]:
        """What breaks "every stored value is a finite float or None" (empty when all is well)."""
        problems = []
        for kind in KINDS:
            comp = getattr(self, kind)
            if comp is None:
                continue
            if not isinstance(comp, OptionComputation):
                problems.append(f"{kind}: {comp!r} is not an OptionComputation")
                continue
            for name in _VALUE_FIELDS:
                value = getattr(comp, name)
                if value is not None and not (isinstance(value, float) and math.isfinite(value)):
                    problems.append(f"{kind}.{name} = {value!r} is neither a finite float nor None")
            if comp.implied_vol is not None and comp.implied_vol < 0:
                problems.append(f"{kind}.implied_vol = {comp.implied_vol!r} is negative (IB's 'not computed')")
        return problems

    def get(self, kind: str) -> OptionComputation | None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        return getattr(self, kind)

    def to_frame(self) -> pd.DataFrame:
        """One row per kind received (index "kind"); None values become NaN."""
        rows, kinds = [], []
        for kind in KINDS:
            comp = getattr(self, kind)
            if comp is not None:
                kinds.append(kind)
                rows.append({k: (math.nan if v is None and k != "tick_attrib" else v)
                             for k, v in asdict(comp).items()})
        frame = pd.DataFrame(rows, index=pd.Index(kinds, name="kind"),
                             columns=list(_COMPUTATION_FIELDS))
        return frame
