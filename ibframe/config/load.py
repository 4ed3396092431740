"""`load_config(path)`: a run's YAML file → RunConfig, or one ConfigError naming the file, the key and the line.

Owns: reading the file, parsing YAML, running the schema (ibframe.config.schema and each section's own
model) and building the result dataclasses. Whatever the file holds, the outcome is a RunConfig or a
ConfigError — never another exception. Must never: connect anywhere, import strategy code, create paths.
"""
from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import yaml
from pydantic import ValidationError

from ..contracts import ContractError, from_mapping
from .errors import LOADER, ConfigError, Lines, dotted, problems
from .results import LIVE_PORTS, GatewayConfig, RunConfig, SimSettings, StrategyConfig
from .schema import GatewaySection, RunSection, StrategySection

MAX_DEPTH = 50                           # mappings and lists inside each other
MAX_BYTES = 4 * 1024 * 1024              # a strategy YAML is a page or two; this is far past any real one


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    source = str(path)
    text = _read(path, source)
    raw = _parse(text, source)
    lines = Lines(text)

    def fail(key_path: tuple, message: str) -> NoReturn:
        raise ConfigError(source, dotted(key_path), lines.line(key_path), message)

    if lines.duplicates:
        key_path, first = lines.duplicates[0]
        fail(key_path, f"given twice (first on line {first}); keep one")
    if not isinstance(raw, dict):
        fail((), "expected a mapping with a 'strategy' (or 'strategies') section")
    try:
        top = RunSection.model_validate(raw)
    except ValidationError as exc:
        found = list(problems(exc, RunSection))
        key_path, message = min(found, key=lambda p: lines.line(p[0]) or 0)
        fail(key_path, message)
    if (top.strategy is None) == (top.strategies is None):
        fail((), "give exactly one of 'strategy' (one) or 'strategies' (a list)")
    if top.strategy is not None:
        entries = [(("strategy",), top.strategy)]
    else:
        entries = [(("strategies", i), e) for i, e in enumerate(top.strategies)]
    strategies = [_strategy(where, entry, lines, fail) for where, entry in entries]
    names = [s.name for s in strategies]
    if len(set(names)) != len(names):
        fail(("strategies",), f"strategy names must be unique, got {names}")

    cfg = RunConfig(source=source, strategies=strategies, gateway=_gateway(top.gateway),
                    sim=SimSettings(top.sim.seed, top.sim.speed, top.sim.universe, top.sim.start),
                    duration=top.duration, log_level=top.log_level, state_dir=top.state_dir, record=top.record,
                    ack_timeout=top.orders.ack_timeout, on_stop=top.on_stop, gc=top.gc,
                    leftovers=top.orders.leftovers or "cancel")
    from ..risk.config import RiskConfig                      # the `risk:` section (ibframe.risk.config)
    cfg.risk = RiskConfig.from_mapping(top.risk, fail, names)
    from ..journal.config import JournalConfig                # the `journal:` section (ibframe.journal)
    cfg.journal = JournalConfig.from_mapping(top.journal, fail)
    from ..resilience.config import ConnectionConfig           # the `connection:` section (ibframe.resilience)
    cfg.connection = ConnectionConfig.from_mapping(top.connection, fail)
    from ..pacing import PacingLimits                          # the `pacing:` section (ibframe.pacing)
    cfg.pacing = PacingLimits.from_mapping(top.pacing, fail, ("pacing",))
    return cfg


def _read(path: Path, source: str) -> str:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(source, "", None, f"larger than {MAX_BYTES // 1024 // 1024} MiB: this is not a "
                                                f"strategy YAML (examples in config/)")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", None, "file not found; pass the path of a strategy YAML "
                                            "(examples in config/)") from None
    except IsADirectoryError:
        raise ConfigError(source, "", None, "is a folder; pass the path of a strategy YAML "
                                            "(examples in config/)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, "", None, f"not a UTF-8 text file (byte {exc.start}); save it as UTF-8 "
                                            f"text") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(source, "", None, f"cannot read it ({getattr(exc, 'strerror', None) or exc}); "
                                            f"check the path and its permissions") from None


def _parse(text: str, source: str):
    try:
        _check_depth(text, source)
        return yaml.load(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(source, "", mark.line + 1 if mark else None, f"not valid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(source, "", None, "not valid YAML here: nested too deeply; a strategy YAML is a few "
                                            "levels deep") from None


def _check_depth(text: str, source: str) -> None:
    """Refuse absurd nesting before composing (PyYAML composes recursively: deep nesting is slow, then fails)."""
    depth = 0
    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(source, "", event.start_mark.line + 1, f"nested more than {MAX_DEPTH} levels "
                                                                         f"deep; a strategy YAML is a few levels deep")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _strategy(where: tuple, entry: StrategySection, lines: Lines, fail) -> StrategyConfig:
    instruments = {}
    for name, spec in entry.instruments.items():
        try:
            instruments[name] = from_mapping(dict(spec))
        except ContractError as exc:
            fail(where + ("instruments", name) + tuple(exc.key), str(exc))
        except (ValueError, TypeError, AttributeError) as exc:    # the contract helpers' own checks
            fail(where + ("instruments", name), str(exc) or type(exc).__name__)
    name = entry.name or entry.class_path.split(":")[1]
    on_disconnect = entry.on_disconnect.cancel_after if entry.on_disconnect is not None else None
    return StrategyConfig(entry.class_path, name, dict(entry.params or {}), instruments, on_disconnect,
                          leftovers=entry.leftovers, yaml_path=where, param_lines=lines.under(where + ("params",)))


def _gateway(section: GatewaySection | None) -> GatewayConfig:
    if section is None:
        return GatewayConfig()
    return GatewayConfig(kind="tws", host=section.host, port=section.port, client_id=section.client_id,
                         live=section.live)


YAML_LIVE_HINT = "use a paper port (7497/4002) or set 'live: true' under gateway to trade real money"


def check_live_port(gw: GatewayConfig, fail, live_hint: str = YAML_LIVE_HINT) -> None:
    """A gateway given outside the YAML (the --gateway option): a TCP port, and paper unless `live`."""
    if not 1 <= gw.port <= 65535:
        fail(("gateway", "port"), f"{gw.port} is not a TCP port: use 1-65535 (TWS paper 7497, IB Gateway paper 4002)")
    if gw.port in LIVE_PORTS and not gw.live:
        fail(("gateway", "port"), f"{gw.port} is a LIVE trading port (TWS 7496, IB Gateway 4001); {live_hint}")


def gateway_option(text: str, client_id: int, live: bool = False, live_hint: str = YAML_LIVE_HINT) -> GatewayConfig:
    """The gateway a command line's --gateway names: 'sim' (the embedded simulator) or HOST:PORT (a TCP port,
    paper unless `live`); ValueError saying what to write."""
    if text == "sim":
        return GatewayConfig(client_id=client_id)
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--gateway {text!r}: write 'sim' (the embedded simulator) or HOST:PORT, e.g. "
                         f"127.0.0.1:7497 for TWS paper trading")
    gw = GatewayConfig("tws", host, int(port), client_id, live)

    def fail(_path, message):
        raise ValueError(f"--gateway {text}: {message}")
    check_live_port(gw, fail, live_hint)
    return gw
