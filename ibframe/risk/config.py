"""The `risk:` YAML section → a typed RiskConfig, with defaults that protect a new user.

Owns: the names, defaults and validation of the pre-trade limits — the strategy limits directly
under `risk:` (defaults for every strategy), `risk.strategies.NAME` overrides and `risk.account`
(account-wide limits), and hands `pdt:` / `margin:` to their own modules
(`ibframe.risk.pdt.PdtConfig.from_mapping`, `ibframe.risk.margin.MarginConfig.from_mapping`) and
`kill:` to `ibframe.risk.kill.KillConfig.from_mapping`. Errors go
through `fail(key_path, message)`, which names the file, the key and the line.
Must never: read files, connect anywhere, or build rules (ibframe.risk.layer does).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Mapping

from .freshness import FreshnessLimits
from .kill import KillConfig
from .margin import MarginConfig
from .pdt import PdtConfig

ANY = "*"                                    # the secType key that applies to every other secType
SEC_TYPES = ("STK", "OPT", "FUT", "FOP", "CASH", "BAG", "IND", "CFD", "BOND", "WAR", "CMDTY", "FUND", "CRYPTO",
             "IOPT", "NEWS", "EVENT")

# Per secType defaults for a new user: a few round lots, a few contracts; notional in the instrument's currency.
DEFAULT_MAX_ORDER_QUANTITY = {ANY: 10_000.0, "STK": 10_000.0, "OPT": 100.0, "FOP": 50.0, "FUT": 50.0,
                              "CASH": 1_000_000.0, "BAG": 100.0, "CRYPTO": 100.0}
DEFAULT_MAX_ORDER_NOTIONAL = {ANY: 1_000_000.0}
DEFAULT_MAX_POSITION = {ANY: 20_000.0, "STK": 20_000.0, "OPT": 200.0, "FOP": 100.0, "FUT": 100.0,
                        "CASH": 2_000_000.0, "BAG": 200.0, "CRYPTO": 200.0}
DEFAULT_SEC_TYPES = frozenset({"STK", "OPT", "FUT", "FOP", "CASH", "BAG"})


@dataclass(slots=True, frozen=True)
class Limits:
    """One strategy's resolved limits (None: no limit). Quantities in shares/contracts/combos/units."""
    max_order_quantity: Mapping[str, float | None] = field(default_factory=lambda: dict(DEFAULT_MAX_ORDER_QUANTITY))
    max_order_notional: Mapping[str, float | None] = field(default_factory=lambda: dict(DEFAULT_MAX_ORDER_NOTIONAL))
    max_position: Mapping[str, float | None] = field(default_factory=lambda: dict(DEFAULT_MAX_POSITION))
    max_gross_exposure: float | None = None
    max_net_exposure: float | None = None
    max_price: float = 1e7                   # a price at or above this is a typo, whatever the instrument
    price_percent: float | None = 5.0        # limit prices this far through the far side are refused
    price_ticks: float | None = None         # ... or this many ticks (the larger allowance wins)
    tick_size: float = 0.01
    stop_percent: float | None = 25.0        # stop (trigger) prices this far through the far side are refused
    allow_market_without_quote: bool = False
    max_orders_per_second: int | None = 10
    max_orders_per_minute: int | None = 300
    max_cancels_per_second: int | None = 20
    max_cancels_per_minute: int | None = 600
    repeated_fills: int | None = 50          # this many fills ...
    repeated_fills_seconds: float = 60.0     # ... within this many seconds set the strategy to:
    repeated_fills_state: str = "REDUCING"
    self_match: str = "account"              # "account": any order of this process; "strategy": its own; "off"
    duplicate_seconds: float = 1.0           # 0: off
    allowed_sec_types: frozenset | None = DEFAULT_SEC_TYPES
    allowed_symbols: frozenset | None = None
    denied_symbols: frozenset = frozenset()

    def by_sec_type(self, table: Mapping[str, float | None], sec_type: str) -> float | None:
        return table[sec_type] if sec_type in table else table.get(ANY)


@dataclass(slots=True, frozen=True)
class AccountLimits:
    """Account-wide limits: TWS's positions plus every working order of this process."""
    max_position: Mapping[str, float | None] = field(default_factory=dict)
    max_gross_exposure: float | None = 2_000_000.0
    max_net_exposure: float | None = 1_000_000.0


@dataclass(slots=True)
class RiskConfig:
    enabled: bool = True
    defaults: Limits = field(default_factory=Limits)
    strategies: dict[str, Limits] = field(default_factory=dict)
    account: AccountLimits = field(default_factory=AccountLimits)
    pdt: Any = None                          # ibframe.risk.pdt.PdtConfig (None: its defaults)
    margin: Any = None                       # ibframe.risk.margin.MarginConfig
    kill: Any = None                         # ibframe.risk.kill.KillConfig
    stale_data: Any = None                   # ibframe.risk.freshness.FreshnessLimits (None: its defaults)

    def limits(self, strategy: str) -> Limits:
        return self.strategies.get(strategy, self.defaults)

    @classmethod
    def from_mapping(cls, raw, fail: Callable[[tuple, str], Any] | None = None,
                     strategy_names: list[str] | None = None, path: tuple = ("risk",)) -> "RiskConfig":
        fail = fail or _raise
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            fail(path, "must be a mapping of risk limits, e.g. {max_order_quantity: 1000, strategies: {...}}")
        allowed = set(STRATEGY_KEYS) | TOP_ONLY
        for key in raw:
            if key not in allowed:
                fail(path + (key,), f"unknown key; allowed: {', '.join(sorted(allowed))}")
        cfg = cls()
        cfg.enabled = _bool(raw.get("enabled", True), path + ("enabled",), fail)
        base = _strategy_values({k: v for k, v in raw.items() if k in STRATEGY_KEYS}, path, fail, Limits())
        cfg.defaults = replace(Limits(), **base)
        overrides = raw.get("strategies") or {}
        if not isinstance(overrides, dict):
            fail(path + ("strategies",), "must map strategy names to their limits, e.g. {momo: {max_position: 500}}")
        for name, entry in overrides.items():
            where = path + ("strategies", name)
            if strategy_names is not None and str(name) not in strategy_names:
                fail(where, f"no strategy is named {name!r}; configured: {', '.join(strategy_names)}")
            if not isinstance(entry, dict):
                fail(where, "must be a mapping of limits, e.g. {max_order_quantity: 100}")
            for key in entry:
                if key not in STRATEGY_KEYS:
                    fail(where + (key,), f"unknown key; allowed: {', '.join(sorted(STRATEGY_KEYS))}")
            cfg.strategies[str(name)] = replace(cfg.defaults, **_strategy_values(entry, where, fail, cfg.defaults))
        cfg.account = _account(raw.get("account") or {}, path + ("account",), fail)
        cfg.pdt = _section(PdtConfig, raw.get("pdt"), path + ("pdt",), fail)
        cfg.margin = _section(MarginConfig, raw.get("margin"), path + ("margin",), fail)
        cfg.kill = _section(KillConfig, raw.get("kill"), path + ("kill",), fail)
        cfg.stale_data = FreshnessLimits.from_mapping(raw.get("stale_data"), fail, path + ("stale_data",))
        return cfg


class RiskConfigError(ValueError):
    """A `risk:` section given outside a YAML file (e.g. a dict in a test) has a bad key."""


def _raise(key_path: tuple, message: str):
    raise RiskConfigError(f"{'.'.join(str(k) for k in key_path)}: {message}")


def _section(kind, raw, path: tuple, fail):
    """PdtConfig / MarginConfig / KillConfig from their own module; their key paths are relative to the section."""
    return kind.from_mapping(raw, lambda key_path, message: fail(path + tuple(key_path), message))


# --- values -----------------------------------------------------------------------------------------------
def _number(value, path: tuple, fail, *, allow_zero: bool = False, integer: bool = False):
    """A positive finite number; None/'off'/'none' = no limit."""
    if value is None or value is False or (isinstance(value, str)         # YAML reads a bare `off` as false
                                           and value.strip().lower() in ("off", "none", "null")):
        return None
    if isinstance(value, bool):
        fail(path, f"must be a number or off, got {value!r}")
    try:
        number = float(str(value).replace("_", "").replace(",", "")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        fail(path, f"must be a positive number (or off for no limit), got {value!r}")
    if integer:
        if number != int(number):
            fail(path, f"must be a whole number, got {value!r}")
        return int(number)
    return number


def _bool(value, path: tuple, fail) -> bool:
    if not isinstance(value, bool):
        fail(path, f"must be true or false, got {value!r}")
    return value


def _seconds(value, path: tuple, fail, *, allow_zero: bool) -> float:
    from ..config import parse_duration
    if allow_zero and str(value).strip() in ("0", "0s", "0.0", "off", "False"):
        return 0.0
    try:
        return parse_duration(value)
    except ValueError as exc:
        fail(path, f"{exc}" + (" (0 or off turns it off)" if allow_zero else ""))


def _by_sec_type(value, path: tuple, fail, default: Mapping) -> dict:
    """A number for every secType, or {STK: 1000, OPT: 10, '*': 5000}; other secTypes keep the default."""
    if isinstance(value, dict):
        table = dict(default)
        for key, item in value.items():
            sec = str(key).upper()
            if sec not in SEC_TYPES and sec not in (ANY, "DEFAULT"):
                fail(path + (key,), f"unknown secType; use one of {', '.join(SEC_TYPES)} or '*' for the rest")
            table[ANY if sec == "DEFAULT" else sec] = _number(item, path + (key,), fail)
        return table
    return {ANY: _number(value, path, fail)}


def _symbols(value, path: tuple, fail) -> frozenset | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        fail(path, "must be a list of symbols or conIds, e.g. [AAPL, MSFT, 265598]")
    return frozenset(str(v).upper() for v in value)


def _price_tolerance(value, path: tuple, fail, _base=None) -> dict:
    if value is None or value is False or (isinstance(value, str) and value.lower() == "off"):
        return {"price_percent": None, "price_ticks": None, "stop_percent": None}
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return {"price_percent": _percent(value, path, fail)}
    if not isinstance(value, dict):
        fail(path, "write a percent (5%) or {percent: 5, ticks: 20, tick_size: 0.01, stop_percent: 25}")
    out = {}
    for key, item in value.items():
        where = path + (key,)
        if key == "percent":
            out["price_percent"] = _percent(item, where, fail)
        elif key == "ticks":
            out["price_ticks"] = _number(item, where, fail)
        elif key == "tick_size":
            out["tick_size"] = _number(item, where, fail)
        elif key == "stop_percent":
            out["stop_percent"] = _percent(item, where, fail)
        else:
            fail(where, "unknown key; allowed: percent, stop_percent, ticks, tick_size")
    return out


def _percent(value, path: tuple, fail) -> float | None:
    if isinstance(value, str) and value.strip().endswith("%"):
        value = value.strip()[:-1]
    return _number(value, path, fail)


def _repeated(value, path: tuple, fail, _base=None) -> dict:
    if value is None or value is False or (isinstance(value, str) and value.lower() == "off"):
        return {"repeated_fills": None}
    if not isinstance(value, dict):
        fail(path, "write {fills: 50, within: 60s, then: REDUCING} (or off)")
    out = {}
    for key, item in value.items():
        where = path + (key,)
        if key == "fills":
            out["repeated_fills"] = _number(item, where, fail, integer=True)
        elif key == "within":
            out["repeated_fills_seconds"] = _seconds(item, where, fail, allow_zero=False)
        elif key == "then":
            state = str(item).upper()
            if state not in ("REDUCING", "HALTED"):
                fail(where, f"{item!r}: write REDUCING (only orders that reduce pass) or HALTED (nothing passes)")
            out["repeated_fills_state"] = state
        else:
            fail(where, "unknown key; allowed: fills, within, then")
    return out


def _self_match(value, path: tuple, fail, _base=None) -> dict:
    text = "off" if value is False else str(value).lower()
    if text not in ("account", "strategy", "off"):
        fail(path, f"{value!r}: write account (any order of this process), strategy (its own) or off")
    return {"self_match": text}


def _sec_types(value, path: tuple, fail, _base=None) -> dict:
    if value is None or value == "*" or value == ["*"]:
        return {"allowed_sec_types": None}
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        fail(path, f"must be a list of secTypes, e.g. [STK, OPT] (or '*' for all), from {', '.join(SEC_TYPES)}")
    for i, item in enumerate(value):
        if str(item).upper() not in SEC_TYPES:
            fail(path + (i,), f"{item!r} is not a secType; use one of {', '.join(SEC_TYPES)}")
    return {"allowed_sec_types": frozenset(str(v).upper() for v in value)}


# key -> parser(value, path, fail) -> {Limits field: value}
STRATEGY_KEYS: dict[str, Callable] = {
    "max_order_quantity": lambda v, p, f, b: {"max_order_quantity": _by_sec_type(v, p, f, b.max_order_quantity)},
    "max_order_notional": lambda v, p, f, b: {"max_order_notional": _by_sec_type(v, p, f, b.max_order_notional)},
    "max_position": lambda v, p, f, b: {"max_position": _by_sec_type(v, p, f, b.max_position)},
    "max_gross_exposure": lambda v, p, f, b: {"max_gross_exposure": _number(v, p, f)},
    "max_net_exposure": lambda v, p, f, b: {"max_net_exposure": _number(v, p, f)},
    "max_price": lambda v, p, f, b: {"max_price": _number(v, p, f) or math.inf},
    "price_tolerance": _price_tolerance,
    "allow_market_without_quote": lambda v, p, f, b: {"allow_market_without_quote": _bool(v, p, f)},
    "max_orders_per_second": lambda v, p, f, b: {"max_orders_per_second": _number(v, p, f, integer=True)},
    "max_orders_per_minute": lambda v, p, f, b: {"max_orders_per_minute": _number(v, p, f, integer=True)},
    "max_cancels_per_second": lambda v, p, f, b: {"max_cancels_per_second": _number(v, p, f, integer=True)},
    "max_cancels_per_minute": lambda v, p, f, b: {"max_cancels_per_minute": _number(v, p, f, integer=True)},
    "repeated_fills": _repeated,
    "self_match": _self_match,
    "duplicate_window": lambda v, p, f, b: {"duplicate_seconds": _seconds(v, p, f, allow_zero=True)},
    "allowed_sec_types": _sec_types,
    "allowed_symbols": lambda v, p, f, b: {"allowed_symbols": _symbols(v, p, f)},
    "denied_symbols": lambda v, p, f, b: {"denied_symbols": _symbols(v, p, f) or frozenset()},
}
TOP_ONLY = {"enabled", "strategies", "account", "pdt", "margin", "kill", "stale_data"}
ACCOUNT_KEYS = ("max_position", "max_gross_exposure", "max_net_exposure")
_LIMIT_FIELDS = {f.name for f in fields(Limits)}


def _strategy_values(raw: dict, path: tuple, fail, base: Limits) -> dict:
    """Parsed {Limits field: value} for the keys given; per-secType tables extend `base`'s."""
    out: dict = {}
    for key, value in raw.items():
        out.update(STRATEGY_KEYS[key](value, path + (key,), fail, base))
    assert set(out) <= _LIMIT_FIELDS, set(out) - _LIMIT_FIELDS
    return out


def _account(raw, path: tuple, fail) -> AccountLimits:
    if not isinstance(raw, dict):
        fail(path, "must be a mapping, e.g. {max_gross_exposure: 500000, max_net_exposure: 250000}")
    for key in raw:
        if key not in ACCOUNT_KEYS:
            fail(path + (key,), f"unknown key; allowed: {', '.join(ACCOUNT_KEYS)}")
    acct = AccountLimits()
    if "max_position" in raw:
        acct = replace(acct, max_position=_by_sec_type(raw["max_position"], path + ("max_position",), fail, {}))
    for key in ("max_gross_exposure", "max_net_exposure"):
        if key in raw:
            acct = replace(acct, **{key: _number(raw[key], path + (key,), fail)})
    return acct
