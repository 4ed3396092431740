"""The parameter grid of a sweep: `--param NAME=VALUES` text to values, and the grid's points.

Owns: the value syntax and its error messages, and the points of the grid (the Cartesian product of
every parameter's values, in the order the parameters were given):

* `a:b`      — every whole number from a to b, both included (`3:10` is 3, 4, …, 10);
* `a:b:step` — from a to b in steps of `step`, b included when a step lands on it (`20:60:10` is 20, 30, …, 60;
  `0.5:2:0.5` is 0.5, 1.0, 1.5, 2.0); whole numbers stay whole when a, b and step all are;
* `3,5,8`    — exactly these values: whole numbers, decimals, true/false, or text (`5 secs,1 min`);
* `8`        — one value.

Decimal arithmetic keeps `0.1:0.3:0.1` at 0.1, 0.2, 0.3 (never 0.30000000000000004).
Must never: know which parameters a strategy has (ibframe.sweep.plan checks the names), or run anything.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

MAX_POINTS = 100_000                  # one parameter's values, and the whole grid: a typo guard, not a limit of Dask
NAME = re.compile(r"^([^=\s]+\.)?[A-Za-z_]\w*$")     # param, or STRATEGY.param
SYNTAX = "a:b (whole numbers a to b), a:b:step, a list 3,5,8, or one value"


class ParamError(ValueError):
    """A --param that cannot be read; the text says what was wrong and what to write."""


@dataclass(slots=True, frozen=True)
class Grid:
    """Parameters in the order given, each with its values; `points()` is their Cartesian product."""
    names: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]

    def __len__(self) -> int:
        return math.prod(len(v) for v in self.values)

    def points(self) -> list[dict[str, Any]]:
        """Every parameter set, the last parameter varying fastest."""
        return [dict(zip(self.names, combo)) for combo in itertools.product(*self.values)]

    def describe(self) -> dict[str, list]:
        return {name: list(values) for name, values in zip(self.names, self.values)}


def parse_param(text: str) -> tuple[str, list[Any]]:
    """'fast=3:10' -> ('fast', [3, 4, …, 10]); ParamError naming the option otherwise."""
    name, sep, spec = str(text).partition("=")
    name = name.strip()
    if not sep or not name:
        raise ParamError(f"--param {text!r}: write NAME=VALUES, e.g. fast=3:10 (values: {SYNTAX})")
    if not NAME.fullmatch(name):
        raise ParamError(f"--param {text!r}: {name!r} is not a parameter name; write a name such as fast, or "
                         f"STRATEGY.NAME (e.g. ma-cross.fast) when the config has several strategies")
    try:
        return name, parse_values(spec)
    except ParamError as exc:
        raise ParamError(f"--param {name}={spec.strip()}: {exc}") from None


def parse_values(spec: Any) -> list[Any]:
    """The values of one parameter from its text (see the module docstring); a list or tuple is taken as given."""
    if isinstance(spec, (list, tuple, range)):
        values = [_checked(v) for v in spec]
        if not values:
            raise ParamError("no values given")
        return _unique(values)
    if not isinstance(spec, str):
        return [_checked(spec)]
    text = spec.strip()
    if not text:
        raise ParamError(f"no values given; write {SYNTAX}")
    if ":" in text:
        return _range(text)
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise ParamError(f"an empty item in the list {text!r}; write the values separated by commas, e.g. 3,5,8")
    return _unique([_scalar(item) for item in items])


def make_grid(params: dict[str, Any] | Iterable[str]) -> Grid:
    """A Grid from {'fast': '3:10', 'slow': [20, 30]} (the Python API) or ['fast=3:10', …] (--param options)."""
    pairs: list[tuple[str, list[Any]]] = []
    if isinstance(params, dict):
        for name, spec in params.items():
            name = str(name).strip()
            if not NAME.fullmatch(name):
                raise ParamError(f"{name!r} is not a parameter name; use NAME or STRATEGY.NAME")
            try:
                pairs.append((name, parse_values(spec)))
            except ParamError as exc:
                raise ParamError(f"parameter {name}: {exc}") from None
    else:
        pairs = [parse_param(text) for text in params]
    if not pairs:
        raise ParamError("no parameters to sweep: give at least one, e.g. --param fast=3:10")
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise ParamError(f"parameter {name} is given twice; give all its values in one --param {name}=…")
        seen.add(name)
    grid = Grid(tuple(n for n, _ in pairs), tuple(tuple(v) for _, v in pairs))
    if len(grid) > MAX_POINTS:
        raise ParamError(f"the grid has {len(grid):,} parameter sets (more than {MAX_POINTS:,}); narrow a range or "
                         f"take a larger step")
    return grid


# --- values -----------------------------------------------------------------------------------------------------

def _range(text: str) -> list[Any]:
    parts = [p.strip() for p in text.split(":")]
    if len(parts) not in (2, 3) or not all(parts):
        raise ParamError(f"{text!r} is not a range; write a:b (e.g. 3:10) or a:b:step (e.g. 20:60:10)")
    try:
        numbers = [Decimal(p) for p in parts]
    except InvalidOperation:
        raise ParamError(f"{text!r}: a range takes numbers, e.g. 3:10 or 0.5:2:0.5; list other values with "
                         f"commas (e.g. 5 secs,1 min)") from None
    if not all(n.is_finite() for n in numbers):
        raise ParamError(f"{text!r}: the numbers of a range must be finite")
    start, stop = numbers[0], numbers[1]
    whole = all(n == n.to_integral_value() and "." not in p and "e" not in p.lower() for n, p in zip(numbers, parts))
    if len(numbers) == 2:
        if not whole:
            raise ParamError(f"{text!r}: a range of decimals needs a step, e.g. {parts[0]}:{parts[1]}:0.5")
        step = Decimal(1)
    else:
        step = numbers[2]
        if step <= 0:
            raise ParamError(f"{text!r}: the step must be positive (got {parts[2]})")
    if start > stop:
        raise ParamError(f"{text!r} is empty: the start is after the end; write {parts[1]}:{parts[0]}"
                         + (f":{parts[2]}" if len(parts) == 3 else ""))
    count = int((stop - start) / step) + 1
    if count > MAX_POINTS:
        raise ParamError(f"{text!r} has {count:,} values (more than {MAX_POINTS:,}); take a larger step")
    values = [start + i * step for i in range(count)]
    return [int(v) if whole else float(v) for v in values]


def _scalar(text: str) -> Any:
    """'5' -> 5, '2.5' -> 2.5, 'true' -> True, anything else stays text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return text
    return _checked(value)


def _checked(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamError(f"{value!r} is not a finite number")
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    raise ParamError(f"{value!r} ({type(value).__name__}) is not a parameter value: use numbers, true/false or text")


def _unique(values: list[Any]) -> list[Any]:
    seen = []
    for v in values:
        if any(type(v) is type(s) and v == s for s in seen):
            raise ParamError(f"{v!r} is listed twice")
        seen.append(v)
    return values
