"""The `connection:` YAML section and a strategy's `on_disconnect:` → typed settings.

Owns: how the connection supervisor reconnects (backoff, jitter, giving up, client id in use, the wait for
IB after 1100) and each strategy's cancel-on-disconnect policy; the YAML keys and their checks are the pydantic
model `ConnectionSection`. Must never connect anywhere or hold state.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, field_validator

from ..config.errors import first_problem
from ..config.types import Section, Seconds

IN_USE = ("wait", "next")


@dataclass(slots=True)
class ConnectionConfig:
    """How a lost connection is brought back (see README "When the connection drops")."""
    reconnect: bool = True              # False: a lost connection ends the run with exit code 3
    initial_delay: float = 0.5          # seconds before the first attempt
    max_delay: float = 30.0             # the backoff never waits longer than this
    multiplier: float = 2.0             # each failed attempt multiplies the delay
    jitter: float = 0.2                 # each delay is moved by up to ± this fraction (no thundering herd)
    give_up_after: int | None = None    # attempts; None = never give up (live trading: TWS restarts nightly)
    restore_timeout: float = 120.0      # after 1100 / 2110 with the socket up: reconnect if IB is not back by then
    client_id_in_use: str = "wait"      # 326: "wait" and retry the same id, or "next": try spare_client_ids in turn
    spare_client_ids: list[int] = field(default_factory=list)
    handshake_timeout: float = 10.0     # seconds a reconnect attempt may take to get nextValidId back
    max_messages_per_second: int = 50   # TWS's limit for this account; the paced writer keeps under it
    lag_warning: float = 1.0            # warn when market data waits longer than this for the dispatch thread

    def delays(self, rng: random.Random | None = None):
        """The wait before each attempt: exponential, capped, jittered; endless or `give_up_after` long."""
        rng = rng or random.Random()
        delay, n = self.initial_delay, 0
        while self.give_up_after is None or n < self.give_up_after:
            n += 1
            spread = delay * self.jitter
            yield max(0.0, delay + rng.uniform(-spread, spread))
            delay = min(self.max_delay, delay * self.multiplier)

    @classmethod
    def from_mapping(cls, raw, fail, path: tuple = ("connection",)) -> "ConnectionConfig":
        """From the YAML under `connection:`, validated by `ConnectionSection`; `fail(key_path, message)`."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            fail(path, "must be a mapping, e.g. {reconnect: true, max_delay: 30s, give_up_after: null}")
        try:
            section = ConnectionSection.model_validate(raw)
        except ValidationError as exc:
            key_path, message = first_problem(exc, ConnectionSection)
            fail(path + key_path, message)
        return cls(**{f.name: getattr(section, f.name) for f in fields(cls)})


def _give_up(value):
    return None if value in (None, "never") else value


def _in_use(value):
    if value not in IN_USE:
        raise ValueError(f"{value!r}: write wait (retry the same client id with backoff) or next (try "
                         f"spare_client_ids in turn)")
    return value


def _no_null(value):
    return [] if value is None else value


class ConnectionSection(Section):
    """The schema of `connection:`; ConnectionConfig is built from it (same names, same defaults)."""
    reconnect: bool = Field(True, description="true or false (false: a lost connection ends the run)")
    initial_delay: Seconds = 0.5
    max_delay: Seconds = Field(30.0, validate_default=True)
    multiplier: float = Field(2.0, ge=1, description="a number ≥ 1")
    jitter: float = Field(0.2, ge=0, le=1, description="a number from 0 to 1")
    give_up_after: Annotated[int | None, BeforeValidator(_give_up)] = Field(
        None, ge=1, description="a number of attempts (≥ 1), or never")
    restore_timeout: Seconds = 120.0
    client_id_in_use: Annotated[str, BeforeValidator(_in_use)] = "wait"
    spare_client_ids: Annotated[list[Annotated[int, Field(ge=0, le=2**31 - 1)]], BeforeValidator(_no_null)] = Field(
        default_factory=list, validate_default=True, description="a list of client ids (whole numbers from 0), "
                                                                  "e.g. [11, 12]")
    handshake_timeout: Seconds = 10.0
    max_messages_per_second: int = Field(50, ge=1, le=1_000_000, description="a whole number ≥ 1 (TWS allows 50 "
                                         "unless IB raised your account's limit)")
    lag_warning: Seconds = 1.0

    @field_validator("max_delay")
    @classmethod
    def _not_shorter(cls, value: float, info: ValidationInfo) -> float:
        initial = info.data.get("initial_delay")
        if initial is not None and value < initial:
            raise ValueError(f"{value:g}s is shorter than initial_delay {initial:g}s")
        return value

    @field_validator("spare_client_ids")
    @classmethod
    def _spares_for_next(cls, value: list, info: ValidationInfo) -> list:
        if info.data.get("client_id_in_use") == "next" and not value:
            raise ValueError("client_id_in_use: next needs spare_client_ids, e.g. [11, 12]")
        return value


def parse_on_disconnect(raw, fail, path: tuple) -> float | None:
    """A strategy's `on_disconnect:` — `leave` (None: IB keeps its working orders) or `{cancel_after: 30s}`
    (seconds: cancel them after the reconnect when the disconnect lasted longer). The YAML loader validates
    it with ibframe.config.schema; this is the same check for callers holding a plain value."""
    from ..config.schema import StrategySection
    probe = {"class": "m:C", "instruments": {"X": "X"}, "on_disconnect": raw}
    try:
        section = StrategySection.model_validate(probe)
    except ValidationError as exc:
        key_path, message = first_problem(exc, StrategySection)
        fail(path + key_path[1:], message)
    return section.on_disconnect.cancel_after if section.on_disconnect is not None else None
