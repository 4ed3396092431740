"""Strategy YAML → typed config, with errors that name the file, the key and the line.

Owns: reading and validating a run's YAML (strategies, instruments, gateway, simulator,
duration, logging). Never connects anywhere or imports strategy code.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ibapi.contract import Contract

from .contracts import ContractError, from_mapping

LIVE_PORTS = (7496, 4001)


class ConfigError(ValueError):
    """One line a user can act on: where (file:line), which key, what is wrong and what is allowed."""

    def __init__(self, source: str, key: str, line: int | None, message: str):
        self.source, self.key, self.line, self.message = source, key, line, message
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


@dataclass(slots=True)
class StrategyConfig:
    class_path: str                   # "module:Class"
    name: str
    params: dict[str, Any]
    instruments: dict[str, Contract]


@dataclass(slots=True)
class GatewayConfig:
    kind: str = "sim"                 # "sim" or "tws"
    host: str = "127.0.0.1"
    port: int = 7497
    client_id: int = 1
    live: bool = False


@dataclass(slots=True)
class SimSettings:
    seed: int = 1
    speed: float = 1.0
    universe: str | None = None
    start: str = "now"                # now | open | 'YYYY-MM-DD HH:MM' (New York time)


@dataclass(slots=True)
class RunConfig:
    source: str
    strategies: list[StrategyConfig]
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    sim: SimSettings = field(default_factory=SimSettings)
    duration: float | None = None     # seconds; None = until Ctrl-C
    log_level: str = "INFO"
    state_dir: str = "var"
    record: str | None = None         # write the session to this recording (ibframe.record)


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | int | float) -> float:
    """'90s', '5m', '1h', '250ms' or a number of seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text <= 0:
            raise ValueError("must be positive")
        return float(text)
    m = DURATION.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 5m, 1h or a number of seconds")
    value = float(m.group(1)) * UNITS[m.group(2)]
    if value <= 0:
        raise ValueError("must be positive")
    return value


class _Lines:
    """Line numbers of every key path in the YAML document, for error messages."""

    def __init__(self, text: str):
        self.lines: dict[tuple, int] = {}
        try:
            node = yaml.compose(text)
        except yaml.YAMLError:
            node = None
        if node is not None:
            self._walk(node, ())

    def _walk(self, node, path: tuple) -> None:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key_path = path + (str(key_node.value),)
                self.lines[key_path] = key_node.start_mark.line + 1
                self._walk(value_node, key_path)
                self.lines[key_path] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, path + (i,))

    def line(self, path: tuple) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


TOP_KEYS = {"strategy", "strategies", "gateway", "sim", "duration", "log_level", "state_dir", "record"}
STRATEGY_KEYS = {"class", "name", "params", "instruments"}
GATEWAY_KEYS = {"host", "port", "client_id", "live"}
SIM_KEYS = {"seed", "speed", "universe", "start"}


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(source, "", None, "file not found; pass the path of a strategy YAML "
                                            "(examples in config/)") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(source, "", mark.line + 1 if mark else None, f"not valid YAML: {problem}") from None
    lines = _Lines(text)

    def fail(key_path: tuple, message: str):
        raise ConfigError(source, ".".join(str(k) for k in key_path), lines.line(key_path), message)

    if not isinstance(raw, dict):
        fail((), "expected a mapping with a 'strategy' (or 'strategies') section")
    for key in raw:
        if key not in TOP_KEYS:
            fail((key,), f"unknown key; allowed: {', '.join(sorted(TOP_KEYS))}")
    if ("strategy" in raw) == ("strategies" in raw):
        fail((), "give exactly one of 'strategy' (one) or 'strategies' (a list)")
    if "strategy" in raw:
        entries = [(("strategy",), raw["strategy"])]
    else:
        if not isinstance(raw["strategies"], list) or not raw["strategies"]:
            fail(("strategies",), "must be a non-empty list of strategy sections")
        entries = [(("strategies", i), e) for i, e in enumerate(raw["strategies"])]
    strategies = [_strategy(p, e, fail) for p, e in entries]
    names = [s.name for s in strategies]
    if len(set(names)) != len(names):
        fail(("strategies",), f"strategy names must be unique, got {names}")

    cfg = RunConfig(source=source, strategies=strategies)
    cfg.gateway = _gateway(raw.get("gateway", "sim"), fail)
    cfg.sim = _sim(raw.get("sim") or {}, fail)
    if "duration" in raw and raw["duration"] is not None:
        try:
            cfg.duration = parse_duration(raw["duration"])
        except ValueError as exc:
            fail(("duration",), str(exc))
    level = str(raw.get("log_level", "INFO")).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        fail(("log_level",), f"{level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    cfg.log_level = level
    cfg.state_dir = str(raw.get("state_dir", "var"))
    if raw.get("record") is not None:
        if not isinstance(raw["record"], str) or not raw["record"].strip():
            fail(("record",), f"must be the path of a recording file, e.g. var/session.jsonl.gz (JSON Lines; "
                              f"gzip when it ends in .gz), got {raw['record']!r}")
        cfg.record = raw["record"].strip()
    return cfg


def _strategy(path: tuple, entry, fail) -> StrategyConfig:
    if not isinstance(entry, dict):
        fail(path, "expected a mapping with class, name, params, instruments")
    for key in entry:
        if key not in STRATEGY_KEYS:
            fail(path + (key,), f"unknown key; allowed: {', '.join(sorted(STRATEGY_KEYS))}")
    class_path = entry.get("class")
    if not isinstance(class_path, str) or not re.fullmatch(r"[\w.]+:\w+", class_path):
        fail(path + ("class",), f"must be 'package.module:ClassName', got {class_path!r}")
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        fail(path + ("params",), "must be a mapping of parameter names to values")
    instruments_raw = entry.get("instruments") or {}
    if not isinstance(instruments_raw, dict) or not instruments_raw:
        fail(path + ("instruments",), "must map names to contracts, e.g. AAPL: {secType: STK, symbol: AAPL}")
    instruments = {}
    for name, spec in instruments_raw.items():
        if isinstance(spec, str):
            spec = {"symbol": spec, "secType": "STK"}
        if not isinstance(spec, dict):
            fail(path + ("instruments", name), "must be a symbol or a mapping of contract fields")
        try:
            instruments[str(name)] = from_mapping(spec)
        except (ContractError, ValueError) as exc:
            fail(path + ("instruments", name), str(exc))
    name = str(entry.get("name") or class_path.split(":")[1])
    return StrategyConfig(class_path, name, params, instruments)


def _gateway(raw, fail) -> GatewayConfig:
    if raw == "sim" or raw is None:
        return GatewayConfig()
    if isinstance(raw, str):
        host, _, port = raw.rpartition(":")
        if not host or not port.isdigit():
            fail(("gateway",), f"{raw!r}: write 'sim', 'HOST:PORT' or a mapping with host/port/client_id")
        raw = {"host": host, "port": int(port)}
    if not isinstance(raw, dict):
        fail(("gateway",), "write 'sim', 'HOST:PORT' or a mapping with host/port/client_id/live")
    for key in raw:
        if key not in GATEWAY_KEYS:
            fail(("gateway", key), f"unknown key; allowed: {', '.join(sorted(GATEWAY_KEYS))}")
    gw = GatewayConfig(kind="tws", host=str(raw.get("host", "127.0.0.1")))
    for key, kind in (("port", int), ("client_id", int)):
        if key in raw:
            try:
                setattr(gw, key, kind(raw[key]))
            except (TypeError, ValueError):
                fail(("gateway", key), f"must be an integer, got {raw[key]!r}")
    gw.live = raw.get("live", False) is True
    check_live_port(gw, fail)
    return gw


def check_live_port(gw: GatewayConfig, fail) -> None:
    if gw.port in LIVE_PORTS and not gw.live:
        fail(("gateway", "port"), f"{gw.port} is a LIVE trading port (TWS 7496, IB Gateway 4001); "
                                  f"use a paper port (7497/4002) or set 'live: true' under gateway to trade real money")


def _sim(raw, fail) -> SimSettings:
    if not isinstance(raw, dict):
        fail(("sim",), "must be a mapping with seed/speed/universe")
    for key in raw:
        if key not in SIM_KEYS:
            fail(("sim", key), f"unknown key; allowed: {', '.join(sorted(SIM_KEYS))}")
    s = SimSettings()
    try:
        s.seed = int(raw.get("seed", 1))
    except (TypeError, ValueError):
        fail(("sim", "seed"), f"must be an integer, got {raw.get('seed')!r}")
    try:
        s.speed = float(raw.get("speed", 1.0))
        if s.speed <= 0:
            raise ValueError
    except (TypeError, ValueError):
        fail(("sim", "speed"), f"must be a positive number, got {raw.get('speed')!r}")
    s.universe = raw.get("universe")
    start = str(raw.get("start", "now"))
    if start not in ("now", "open") and not re.fullmatch(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?", start):
        fail(("sim", "start"), f"{start!r}: use now, open (30 min into the latest regular session) or "
                               f"'YYYY-MM-DD HH:MM' in New York time")
    s.start = start
    return s
