"""A strategy's `params:` schema: types, ranges and cross-checks declared on the strategy class.

Owns: `StrategyParams` (the base of a strategy's nested `Params` model) and `check_params`, which
validates a strategy section's `params:` against it before the run connects and returns the values with
defaults filled in. A strategy without a `Params` model gets its params unchecked, as given.
Must never: import strategies itself, connect anywhere, or change the StrategyConfig it is given.

    class MovingAverageCross(Strategy):
        class Params(StrategyParams):
            fast: int = Field(10, ge=1, description="a whole number of bars ≥ 1")
            quantity: float = Field(100, gt=0, description="a positive number of shares")
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from .config import ConfigError, Section
from .config.errors import dotted, problems


# IB's bar sizes (reqHistoricalData barSizeSetting) and history durations ('3600 S', '2 D', '1 W', '1 M', '1 Y')
BarSize = Annotated[Literal["1 secs", "5 secs", "10 secs", "15 secs", "30 secs", "1 min", "2 mins", "3 mins",
                            "5 mins", "10 mins", "15 mins", "20 mins", "30 mins", "1 hour", "2 hours", "3 hours",
                            "4 hours", "8 hours", "1 day", "1W", "1M"],
                    Field(description="an IB bar size such as '5 secs', '1 min', '1 hour', '1 day'")]
HistoryDuration = Annotated[str, Field(pattern=r"^[1-9]\d{0,5} [SDWMY]$",
                                       description="an IB duration such as '3600 S', '2 D', '1 W', '1 M', '1 Y'")]


class StrategyParams(Section):
    """Base of a strategy's `Params`: unknown keys, NaN/inf and strings-for-numbers are errors.

    A field's `description` is read as "must be <description>" in error messages; a check across fields
    is a `field_validator` on the later field (its line is named) or a `model_validator(mode="after")`."""


def params_model(strategy_class: type) -> type[BaseModel] | None:
    """The strategy's Params model, or None when it declares none."""
    model = getattr(strategy_class, "Params", None)
    if model is None:
        return None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{strategy_class.__qualname__}.Params must be a class deriving from "
                        f"ibframe.params.StrategyParams, got {model!r}")
    return model


def check_params(strategy_class: type, strategy_config, source: str) -> dict[str, Any]:
    """The strategy's params validated by its `Params` model, defaults filled in (a copy when it has none).

    Raises ConfigError `source:line: strategy.params.KEY: message` naming the first bad key."""
    raw = strategy_config.params
    where = tuple(strategy_config.yaml_path or ("strategy",)) + ("params",)
    lines = strategy_config.param_lines or {}
    try:
        model = params_model(strategy_class)
    except TypeError as exc:
        raise ConfigError(source, dotted(where), lines.get(()), str(exc)) from None
    if model is None:
        return dict(raw or {})
    try:
        return model.model_validate(dict(raw or {})).model_dump()
    except ValidationError as exc:
        found = list(problems(exc, model))
        key, message = min(found, key=lambda p: _line(lines, p[0]) or 0)
        raise ConfigError(source, dotted(where + key), _line(lines, key), message) from None


def _line(lines: dict, key: tuple) -> int | None:
    key = tuple(key)
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return lines.get(())
