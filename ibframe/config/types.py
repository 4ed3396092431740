"""The value types a run's YAML is made of, as pydantic annotated types with messages a user can act on.

Owns: durations ('90s', '5m', a number of seconds), finite positive numbers, TCP ports, paths that must be
a file to write or a folder (checked against the disk: folder vs file, a parent that can be made, writable),
and the base model every config section derives from (unknown keys refused, NaN and infinity refused).
Must never: create, open or write any path.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
OFF_WORDS = ("0", "0s", "0.0", "0ms", "off")


class Section(BaseModel):
    """A YAML mapping: unknown keys are errors, floats must be finite, values are not coerced from strings."""
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, frozen=True,
                              hide_input_in_errors=False)


def parse_duration(text: str | int | float) -> float:
    """'90s', '5m', '1h', '250ms' or a number of seconds; positive and finite."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text) or text <= 0:
            raise ValueError(f"{text!r}: must be a positive, finite number of seconds (or e.g. 90s, 5m, 1h)")
        return float(text)
    m = DURATION.match(str(text)) if isinstance(text, str) and len(text) < 100 else None
    if not m:
        raise ValueError(f"{_short(text)} is not a duration; write e.g. 90s, 5m, 1h or a number of seconds")
    value = float(m.group(1)) * UNITS[m.group(2)]
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{_short(text)}: must be a positive, finite duration (e.g. 90s, 5m, 1h)")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _seconds(value: Any) -> float:
    return parse_duration(value)


def _seconds_or_off(value: Any) -> float:
    """A duration, or 0 / off / false for 'never' (what the 0 means is the field's description)."""
    if value is False or (not isinstance(value, bool) and str(value).strip().lower() in OFF_WORDS):
        return 0.0
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{exc} (0 or off turns it off)") from None


Seconds = Annotated[float, BeforeValidator(_seconds)]
SecondsOrOff = Annotated[float, BeforeValidator(_seconds_or_off)]
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Port = Annotated[int, Field(ge=1, le=65535, description="a TCP port, 1-65535 (TWS paper 7497, IB Gateway paper "
                                                         "4002)")]


# --- paths --------------------------------------------------------------------------------------------------

def _text_path(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\0" in value or len(value) > 4096:
        raise ValueError(f"must be {what}, got {_short(value)}")
    return value.strip()


def _probe(path: Path) -> tuple[bool, bool]:
    """(exists, is a folder), never raising for odd names (too long, unreadable parents)."""
    try:
        return path.exists(), path.is_dir()
    except (OSError, ValueError):
        return False, False


def nearest_existing(path: Path) -> Path | None:
    for parent in path.parents:
        if _probe(parent)[0]:
            return parent
    return None


def check_file_to_write(text: str, example: str) -> str:
    """A file a run will create or append to: not a folder, its folder a folder (or makeable) and writable."""
    target = Path(text)
    exists, is_dir = _probe(target)
    if is_dir:
        raise ValueError(f"{text} is a folder: give a file name in it, e.g. {target / example}")
    existing = nearest_existing(target)
    if existing is not None and not _probe(existing)[1]:
        raise ValueError(f"{existing} is a file, so {target.parent} cannot be made a folder: write it elsewhere")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{existing} is not writable: choose a folder you can write")
    if exists and not os.access(target, os.W_OK):
        raise ValueError(f"{text} exists and is not writable: choose another file")
    return text


def check_folder(text: str, what: str) -> str:
    """A folder a run will create if needed and write in: not a file, its parents makeable, writable."""
    target = Path(text)
    exists, is_dir = _probe(target)
    if exists and not is_dir:
        raise ValueError(f"{text} is a file: {what}")
    existing = target if exists else nearest_existing(target)
    if existing is not None and not _probe(existing)[1]:
        raise ValueError(f"{existing} is a file, so {text} cannot be made a folder: {what}")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{existing} is not writable: {what}")
    return text


def check_file_to_read(text: str, what: str) -> str:
    exists, is_dir = _probe(Path(text))
    if is_dir:
        raise ValueError(f"{text} is a folder: give {what} in it")
    if not exists:
        raise ValueError(f"{text}: no such file; give the path of {what}")
    if not os.access(text, os.R_OK):
        raise ValueError(f"{text} is not readable: give the path of {what} you can read")
    return text
