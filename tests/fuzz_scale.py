"""How many cases a fuzz test runs: a bounded number in the suite, the full count under `make fuzz`.

`make fuzz` sets IBFRAME_FUZZ=full; `make test` (and CI) leaves it unset so the suite stays under 10 minutes.
"""
from __future__ import annotations

import os

FULL = os.environ.get("IBFRAME_FUZZ", "").strip().lower() == "full"


def cases(in_suite: int, full: int) -> int:
    """`in_suite` cases in `make test`, `full` cases under `make fuzz`."""
    return full if FULL else in_suite
