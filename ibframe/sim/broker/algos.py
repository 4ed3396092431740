"""IB algos on the paper broker: Adaptive, Twap, Vwap and ArrivalPx — validation and behaviour in time.

Owns: the algo catalogue (strategy names, their tags and legal values) and its validation with
TWS's errors (439 unknown algo, 441 bad value, 442 algo not allowed for the order, 443 unknown
tag, 440 a modification that changes the algo); each algo's schedule — how much of the parent
should be done by a given time — and the price a slice works at:
  Twap       linear over startTime..endTime, in up to SLICES child slices; strategyType picks the
             price (Marketable takes the book, Matching Midpoint / Same Side / Last rest passively).
  Vwap       a U-shaped intraday volume profile over the window; fills at the step's traded VWAP
             (the mid when nothing printed), at the near side with noTakeLiq.
  ArrivalPx  front-loaded by riskAversion, priced between the arrival mid and the far side.
  Adaptive   no window: works between the mid and the far side, Urgent near the far side, Patient
             near the mid, growing more urgent the longer it waits.
An empty window is now .. the instrument's next liquid close. The broker executes what this
module asks for and applies the order's own limit.

Must never: send messages or change orders; randomness only from the generator the broker passes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..market.ordertime import SessionClock, parse_tws_time
from ..market.universe import Instrument
from ..protocol.handlers import Reject
from .matching import Book, tick_of
from .order_records import SimOrder

SLICES = 20                          # child slices a window is cut into (at most one per step)
ADAPTIVE_URGENCY = {"Urgent": 0.85, "Normal": 0.5, "Patient": 0.2}
ADAPTIVE_PATIENCE = {"Urgent": 10.0, "Normal": 60.0, "Patient": 300.0}   # seconds to reach the far side
RISK_POWER = {"Get Done": 4.0, "Aggressive": 3.0, "Neutral": 2.0, "Passive": 1.2}
RISK_URGENCY = {"Get Done": 1.0, "Aggressive": 0.7, "Neutral": 0.4, "Passive": 0.1}
TWAP_MODES = {"Marketable": "take", "Matching Midpoint": "mid", "Matching Same Side": "near",
              "Matching Last": "last"}
U_SHAPE = (0.5, 1.5)                 # volume density a + b(2x-1)^2 over the window (mean 1)
ALGO_ORDER_TYPES = {"MKT", "LMT"}

TEXT_439 = "Order processing failed. Algorithm definition not found."
TEXT_440 = "Order modify failed. Algorithm cannot be modified."
TEXT_441 = "Order processing failed. Algo attributes validation failed: "
TEXT_442 = "Specified algorithm is not allowed for this order."
TEXT_443 = "Order processing failed. Unknown algo attribute."


def _enum(*choices: str):
    def read(value: str) -> str:
        for c in choices:
            if value.strip().lower() == c.lower():
                return c
        raise ValueError(f"'{value}' is not one of {', '.join(choices)}")
    return read


def _flag(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "y"):
        return True
    if v in ("0", "false", "no", "n", ""):
        return False
    raise ValueError(f"'{value}' is not 0 or 1")


def _pct_vol(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"'{value}' is not a number") from None
    if not 0.01 <= x <= 0.5:
        raise ValueError(f"maxPctVol {value} is outside 0.01 - 0.5")
    return x


def _money(value: str) -> float:
    try:
        x = float(value or 0)
    except ValueError:
        raise ValueError(f"'{value}' is not a number") from None
    if x < 0:
        raise ValueError(f"'{value}' is negative")
    return x


def _time(value: str) -> str:
    return value.strip()      # parsed against the clock when the window is built


CATALOGUE: dict[str, dict] = {
    "Adaptive": {"adaptivePriority": _enum("Urgent", "Normal", "Patient")},
    "Twap": {"strategyType": _enum(*TWAP_MODES), "startTime": _time, "endTime": _time,
             "allowPastEndTime": _flag},
    "Vwap": {"maxPctVol": _pct_vol, "startTime": _time, "endTime": _time, "allowPastEndTime": _flag,
             "noTakeLiq": _flag, "speedUp": _flag, "monetaryValue": _money},
    "ArrivalPx": {"maxPctVol": _pct_vol, "riskAversion": _enum(*RISK_POWER), "startTime": _time,
                  "endTime": _time, "forceCompletion": _flag, "allowPastEndTime": _flag},
}


def _name(strategy: str) -> str | None:
    for name in CATALOGUE:
        if name.lower() == strategy.strip().lower():
            return name
    return None


def read_params(o: SimOrder) -> tuple[str, dict] | Reject:
    """(algo name, parsed params) or the TWS error for the first problem."""
    name = _name(o.algoStrategy)
    if name is None:
        return Reject(439, TEXT_439)
    spec = CATALOGUE[name]
    params: dict = {}
    for tag, value in o.algoParams:
        reader = next((fn for t, fn in spec.items() if t.lower() == tag.strip().lower()), None)
        if reader is None:
            return Reject(443, TEXT_443)
        try:
            params[next(t for t in spec if t.lower() == tag.strip().lower())] = reader(value)
        except ValueError as exc:
            return Reject(441, TEXT_441 + f"{tag}: {exc}")
    return name, params


def modify_problem(old: SimOrder, new: SimOrder) -> Reject | None:
    """440: a modification cannot change (or remove) an order's algo."""
    if old.algoStrategy and old.algoStrategy.strip().lower() != (new.algoStrategy or "").strip().lower():
        return Reject(440, TEXT_440)
    return None


def validate(o: SimOrder, inst: Instrument | None, now: float, clock: SessionClock) -> Reject | None:
    got = read_params(o)
    if isinstance(got, Reject):
        return got
    if inst is None or "ALGO" not in inst.order_types.split(",") or o.orderType not in ALGO_ORDER_TYPES:
        return Reject(442, TEXT_442)
    name, params = got
    try:
        window(name, params, now, clock, inst)
    except ValueError as exc:
        return Reject(441, TEXT_441 + str(exc))
    return None


def window(name: str, params: dict, now: float, clock: SessionClock, inst: Instrument) -> tuple[float, float | None]:
    """(start, end) of the algo's working window; Adaptive has no end. ValueError when impossible."""
    kind = inst.hours_kind
    start = now
    if params.get("startTime"):
        try:
            start = max(now, parse_tws_time(params["startTime"], now))
        except ValueError as exc:
            raise ValueError(f"startTime: {exc}") from None
    if not clock.is_open(kind, True, start):
        start = clock.next_open(kind, True, start) or start
    if name == "Adaptive":
        return start, None
    if params.get("endTime"):
        try:
            end = parse_tws_time(params["endTime"], now)
        except ValueError as exc:
            raise ValueError(f"endTime: {exc}") from None
        if end <= now:
            raise ValueError(f"endTime {params['endTime']} has already passed")
        if end <= start:
            raise ValueError(f"endTime {params['endTime']} is not after startTime")
    else:
        end = clock.next_close(kind, True, start) or start + 3600.0
    return start, end


@dataclass(slots=True)
class AlgoState:
    """What an algo order remembers between steps."""
    name: str
    params: dict = field(default_factory=dict)
    start: float = 0.0
    end: float | None = None
    arrival_mid: float = 0.0
    next_slice: float = 0.0
    interval: float = 0.0
    step: float = 0.0                # market step: the last step before the end is the last chance

    def to_state(self) -> dict:
        return {"name": self.name, "params": self.params, "start": self.start, "end": self.end,
                "arrival_mid": self.arrival_mid, "next_slice": self.next_slice, "interval": self.interval,
                "step": self.step}

    @classmethod
    def from_state(cls, d: dict) -> "AlgoState":
        return cls(d["name"], dict(d.get("params") or {}), d["start"], d.get("end"), d.get("arrival_mid", 0.0),
                   d.get("next_slice", 0.0), d.get("interval", 0.0), d.get("step", 0.0))


def start(o: SimOrder, inst: Instrument, now: float, clock: SessionClock, book: Book | None,
          step_seconds: float) -> AlgoState:
    name, params = read_params(o)                      # validated before
    begin, end = window(name, params, now, clock, inst)
    interval = step_seconds if end is None else max((end - begin) / SLICES, step_seconds)
    mid = book.mid if book is not None else 0.0
    return AlgoState(name, params, begin, end, mid, begin + (interval if end is not None else 0.0), interval,
                     step_seconds)


def _progress(state: AlgoState, t: float) -> float:
    """Fraction of the parent the schedule wants done by `t`."""
    if state.end is None:
        return 1.0
    x = min(max((t - state.start) / (state.end - state.start), 0.0), 1.0)
    if state.name == "Vwap":
        a, b = U_SHAPE
        return a * x + b * ((2 * x - 1) ** 3 + 1) / 6
    if state.name == "ArrivalPx":
        return 1.0 - (1.0 - x) ** RISK_POWER.get(state.params.get("riskAversion", "Neutral"), 2.0)
    return x


def past_end(state: AlgoState, t: float) -> bool:
    """At or past the end of the window: the step before the end time is the last one inside it."""
    return state.end is not None and t + state.step >= state.end - 1e-9


def finishing(state: AlgoState) -> bool:
    """Whether the algo keeps working after its end time (allowPastEndTime / forceCompletion)."""
    return bool(state.params.get("allowPastEndTime") or state.params.get("forceCompletion"))


def due(state: AlgoState, total: float, filled: float, t: float, lot: float, increment: float) -> float:
    """How much the algo wants to execute at `t` (0 between slices; everything left at the end)."""
    remaining = total - filled
    if remaining <= 1e-9 or t < state.start:
        return 0.0
    if state.end is None or past_end(state, t):
        return remaining
    if t + 1e-9 < state.next_slice:
        return 0.0
    while state.next_slice <= t + 1e-9:
        state.next_slice += state.interval
    want = total * _progress(state, t) - filled
    inc = increment if increment > 0 else 1.0
    want = math.floor(want / inc + 1e-9) * inc
    return min(max(want, 0.0), remaining)


def slice_price(state: AlgoState, book: Book, buy: bool, t: float, rng: np.random.Generator,
                step_vwap: float | None) -> tuple[str, float | None]:
    """('take', None) to walk the book, ('rest', price) for a passive fill, ('wait', None) for nothing."""
    inst = book.inst
    if not (book.bids and book.asks):
        return "wait", None
    far, near, mid = book.far(buy), book.near(buy), book.mid
    if state.end is not None and past_end(state, t):
        return "take", None
    if state.name == "Twap":
        mode = TWAP_MODES.get(state.params.get("strategyType", "Marketable"), "take")
        if mode == "take":
            return "take", None
        return "rest", {"mid": round(mid, 10), "near": near, "last": book.last or mid}[mode]
    if state.name == "Vwap":
        if state.params.get("noTakeLiq"):
            return "rest", near
        return "rest", _on_grid(inst, step_vwap if step_vwap else mid, buy)
    if state.name == "ArrivalPx":
        u = RISK_URGENCY.get(state.params.get("riskAversion", "Neutral"), 0.4)
        return "rest", _on_grid(inst, mid + u * (far - mid), buy, mid)
    # Adaptive
    priority = state.params.get("adaptivePriority", "Normal")
    waited = max(t - state.start, 0.0)
    u = min(1.0, ADAPTIVE_URGENCY.get(priority, 0.5) + waited / ADAPTIVE_PATIENCE.get(priority, 60.0))
    if u >= 1.0:
        return "take", None
    if rng.random() >= 0.1 + 0.6 * u * u:
        return "wait", None
    return "rest", _on_grid(inst, mid + u * (far - mid), buy, mid)


def _on_grid(inst: Instrument, price: float, buy: bool, mid: float | None = None) -> float:
    """Snap to the tick grid towards the mid (a buyer rounds down, a seller up), never past the mid
    (a one-tick spread leaves only the mid itself between the sides)."""
    tick = tick_of(inst, price)
    steps = price / tick
    snapped = round((math.floor(steps + 1e-9) if buy else math.ceil(steps - 1e-9)) * tick, 10)
    if mid is not None:
        snapped = max(snapped, round(mid, 10)) if buy else min(snapped, round(mid, 10))
    return snapped
