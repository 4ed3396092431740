"""IB's request limits as one settings object, and the `pacing:` YAML section that sets it.

Owns: the numbers the request scheduler obeys (historical-data pacing, simultaneous tick-by-tick,
depth and market-data lines, how errors are retried) with IB's published defaults, the safety margin
added to every time window, and reading them from YAML. Must never hold state or talk to TWS.

Sources (reference notes §3): IB's "historical data limitations" page (identical request within 15 s;
six or more for one contract, exchange and tick type within 2 s; more than 60 in 10 minutes, BID_ASK
counted twice; these "for small bars (30 secs or less)"; at most 50 open requests), tick_data.html
(tick-by-tick streams follow the depth formula, one request per instrument per 15 s), error 309 (3
depth requests by default) and error 101 (100 market-data lines at the least).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

# YAML key (under pacing:, or pacing: historical:) -> field; values are numbers or durations
TOP_KEYS = {"tick_by_tick": "tick_by_tick", "tick_by_tick_repeat_seconds": "tick_by_tick_repeat",
            "depth": "depth", "market_data_lines": "market_data_lines", "margin": "margin",
            "margin_seconds": "margin_seconds", "retries": "max_retries",
            "pacing_retry_delay": "pacing_retry_delay", "limit_retry_delay": "limit_retry_delay",
            "log_wait_after": "log_wait_after"}
HISTORICAL_KEYS = {"open": "historical_open", "identical_seconds": "historical_identical",
                   "same_contract": "historical_same_contract",
                   "same_contract_seconds": "historical_same_contract_window",
                   "max_requests": "historical_max", "window_seconds": "historical_window",
                   "paced_bar_seconds": "historical_paced_bar_seconds", "spacing_seconds": "historical_spacing"}
COUNTS = {"tick_by_tick", "depth", "market_data_lines", "historical_open", "historical_same_contract",
          "historical_max", "max_retries"}
# durations: multiplied by `scaled`; everything else (counts, the margin fraction, bar sizes) is not
TIMES = ("tick_by_tick_repeat", "historical_identical", "historical_same_contract_window", "historical_window",
         "historical_spacing", "margin_seconds", "pacing_retry_delay", "limit_retry_delay", "log_wait_after")


@dataclass(slots=True)
class PacingLimits:
    """What the request scheduler lets through; the defaults are IB's, for one TWS user."""
    tick_by_tick: int = 3                      # simultaneous tick-by-tick streams (error 10190 beyond)
    tick_by_tick_repeat: float = 15.0          # one request per instrument and tick type within this (10189)
    depth: int = 3                             # distinct instruments with market depth (error 309 beyond)
    market_data_lines: int = 100               # reqMktData lines, snapshots included (error 101 beyond)
    historical_open: int = 50                  # historical requests open at once (any bar size)
    historical_identical: float = 15.0         # no identical historical request within this many seconds
    historical_same_contract: int = 5          # at most this many for one contract/exchange/whatToShow ...
    historical_same_contract_window: float = 2.0   # ... within this many seconds (IB: "six or more" violate)
    historical_max: int = 60                   # at most this many historical requests (BID_ASK counts 2) ...
    historical_window: float = 600.0           # ... in any window of this many seconds
    historical_paced_bar_seconds: float = 30.0  # the three rules above apply to bars up to this size; inf = all
    historical_spacing: float = 0.0            # at least this many seconds between two paced requests (0: none;
                                               # window/max, e.g. 10, spreads them evenly instead of in bursts)
    margin: float = 0.05                       # every window is made this fraction longer ...
    margin_seconds: float = 2.0                # ... plus this many seconds (clock skew, time on the wire)
    pacing_retry_delay: float = 10.0           # after a 162 pacing violation, historical requests rest this long
    limit_retry_delay: float = 5.0             # after 10190/309/101 (someone else holds lines) wait this long
    max_retries: int = 5                       # requeues of one request after such errors; then it fails
    log_wait_after: float = 3.0                # a request queued longer than this is logged once (INFO)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise ValueError(f"pacing limit {f.name} must be a number, got {value!r}")
            if f.name in COUNTS and (value < (0 if f.name == "max_retries" else 1) or value != int(value)):
                raise ValueError(f"pacing limit {f.name} must be a whole number ≥ "
                                 f"{0 if f.name == 'max_retries' else 1}, got {value!r}")
            if value < 0:
                raise ValueError(f"pacing limit {f.name} must not be negative, got {value!r}")

    def window(self, seconds: float) -> float:
        """A window of IB's as the scheduler keeps it: longer by the safety margin."""
        return seconds * (1.0 + self.margin) + self.margin_seconds

    def paces(self, bar_seconds: float | None) -> bool:
        """Whether the historical pacing rules apply to bars of this size (None: week/month bars)."""
        if bar_seconds is None:
            return math.isinf(self.historical_paced_bar_seconds)
        return bar_seconds <= self.historical_paced_bar_seconds

    def scaled(self, factor: float) -> "PacingLimits":
        """The same limits with every duration multiplied by `factor` (counts unchanged).

        For a simulator run `speed` times faster than real time, `scaled(1 / speed)` keeps the scheduler
        on the simulator's clock: IB's 10 minutes pass in 600 / speed wall seconds."""
        if not factor > 0:
            raise ValueError(f"scale factor must be positive, got {factor!r}")
        return replace(self, **{name: getattr(self, name) * factor for name in TIMES})

    @classmethod
    def from_mapping(cls, raw, fail, path: tuple = ("pacing",)) -> "PacingLimits":
        """The `pacing:` YAML section; `fail(path, message)` raises the caller's config error."""
        from ..config import parse_duration
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            fail(path, "must be a mapping, e.g. {tick_by_tick: 3, depth: 3, market_data_lines: 100, "
                       "historical: {max_requests: 60}}")
        values: dict = {}

        def take(section: dict, keys: dict, where: tuple) -> None:
            for key, value in section.items():
                if key not in keys:
                    allowed = sorted(keys) + (["historical"] if where == path else [])
                    fail(where + (key,), f"unknown key; allowed: {', '.join(allowed)}")
                name = keys[key]
                if name == "historical_paced_bar_seconds" and value in ("all", "none"):
                    values[name] = math.inf if value == "all" else 0.0
                elif name in TIMES and isinstance(value, str):
                    try:
                        values[name] = parse_duration(value)
                    except ValueError as exc:
                        fail(where + (key,), str(exc))
                elif isinstance(value, bool) or not isinstance(value, (int, float)):
                    fail(where + (key,), f"must be a number, got {value!r}")
                else:
                    values[name] = value

        take({k: v for k, v in raw.items() if k != "historical"}, TOP_KEYS, path)
        hist = raw.get("historical")
        if hist is not None:
            if not isinstance(hist, dict):
                fail(path + ("historical",), "must be a mapping, e.g. {max_requests: 60, window_seconds: 600}")
            take(hist, HISTORICAL_KEYS, path + ("historical",))
        try:
            return cls(**values)
        except ValueError as exc:                # name the YAML key, not the field
            text = str(exc)
            for keys, where in ((TOP_KEYS, path), (HISTORICAL_KEYS, path + ("historical",))):
                for key, name in keys.items():
                    if f"limit {name} " in text:
                        fail(where + (key,), text.replace(f"pacing limit {name} ", ""))
            fail(path, text)
        raise AssertionError("fail() must raise")      # pragma: no cover
