"""Option model values (implied vol, greeks, model price) for one option contract.

Owns: the latest ``tickOptionComputation`` per kind -- bid (10), ask (11), last (12),
model (13), custom (53) and their delayed twins (80-83, stored under the same kind with
``delayed=True``).

Must never: take locks, do I/O, or call ibapi ``EClient``. Updated ONLY on the
framework's single dispatch thread. Values ibapi reports as "not computed" arrive as
``None`` and stay ``None`` (never 0, never NaN) so callers can tell "unknown" from zero;
``to_frame`` shows them as NaN.
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


def _value(x: Any) -> float | None:
    if x is None:
        return None
    number = float(x)
    return None if math.isnan(number) or number == UNSET_DOUBLE else number


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
        setattr(self, kind, OptionComputation(
            _value(implied_vol), _value(delta), _value(opt_price), _value(pv_dividend),
            _value(gamma), _value(vega), _value(theta), _value(und_price),
            None if tick_attrib is None else int(tick_attrib), delayed, time))
        self.updates += 1
        self.updated = time
        for hook in tuple(self.on_change):
            hook(self)

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
