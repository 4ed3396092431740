"""The `journal:` section of a run's YAML: whether to journal, where, how often to snapshot the account.

Owns: `JournalConfig` and reading it from the YAML mapping (`from_mapping(raw, fail)`, where
`fail(key_path, message)` raises the config error naming file, key and line), and the default path:
one journal per account, `<state_dir>/journal-<account>.sqlite`. The keys and their checks are the pydantic
model `JournalSection`. Must never: open or create the file.

    journal:
      enabled: true                  # default true; `journal: false` also turns it off
      path: var/journal-{account}.sqlite   # default <state_dir>/journal-<account>.sqlite
      snapshot_every: 1m             # account values and positions; 0 or off: no snapshots
      sample_every: 1s               # the NBBO of every live quote line, when it changed; 0 or off: none
      nbbo_snapshots: true           # an order or fill with no live line gets a reqMktData snapshot of its NBBO
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationError

from ..config.errors import first_problem
from ..config.types import Section, _text_path, check_file_to_write, parse_duration

DEFAULT_SNAPSHOT_EVERY = 60.0
DEFAULT_SAMPLE_EVERY = 1.0


@dataclass(slots=True)
class JournalConfig:
    enabled: bool = True
    path: str | None = None                     # None: <state_dir>/journal-<account>.sqlite; may hold {account}
    snapshot_every: float = DEFAULT_SNAPSHOT_EVERY     # seconds; 0 = no snapshots
    sample_every: float = DEFAULT_SAMPLE_EVERY         # seconds between NBBO marks of the live lines; 0 = none
    nbbo_snapshots: bool = True                        # arrival / fill NBBO by snapshot when no line is open

    @classmethod
    def from_mapping(cls, raw, fail) -> "JournalConfig":
        """From the YAML under `journal:` (a mapping, or true/false), validated by `JournalSection`."""
        if raw is None:
            return cls()
        if isinstance(raw, bool):
            return cls(enabled=raw)
        if not isinstance(raw, dict):
            fail(("journal",), f"must be a mapping such as {{path: var/journal.sqlite, snapshot_every: 1m}} or "
                               f"true/false, got {raw!r}")
        try:
            section = JournalSection.model_validate(raw)
        except ValidationError as exc:
            key_path, message = first_problem(exc, JournalSection)
            fail(("journal",) + key_path, message)
        return cls(enabled=section.enabled, path=section.path, snapshot_every=section.snapshot_every,
                   sample_every=section.sample_every, nbbo_snapshots=section.nbbo_snapshots)

    def path_for(self, state_dir: str | Path, account: str) -> Path:
        """The journal file of this account: `path` with {account} filled in, else the per-account default."""
        name = re.sub(r"[^\w.-]", "_", account) if account else ""
        if self.path:
            return Path(self.path.replace("{account}", name or "unknown"))
        return Path(state_dir) / (f"journal-{name}.sqlite" if name else "journal.sqlite")


def _path(value) -> str | None:
    if value is None:
        return None
    text = _text_path(value, "a file path such as var/journal-{account}.sqlite")
    check_file_to_write(text.replace("{account}", "ACCOUNT"), "journal.sqlite")
    return text


def _every(value, default: float = DEFAULT_SNAPSHOT_EVERY) -> float:
    if value is None:
        return default
    if value is False or (not isinstance(value, bool) and str(value).strip().lower() in ("0", "0s", "0.0", "off")):
        return 0.0
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{exc} (0 or off: no snapshots)") from None


class JournalSection(Section):
    """The schema of `journal:`; JournalConfig is built from it."""
    enabled: bool = Field(True, description="true or false")
    path: Annotated[str | None, BeforeValidator(_path)] = None
    snapshot_every: Annotated[float, BeforeValidator(_every)] = DEFAULT_SNAPSHOT_EVERY
    sample_every: Annotated[float, BeforeValidator(lambda v: _every(v, DEFAULT_SAMPLE_EVERY))] = DEFAULT_SAMPLE_EVERY
    nbbo_snapshots: bool = Field(True, description="true or false")
