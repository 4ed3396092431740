"""Strategy YAML → typed config, with errors that name the file, the key and the line.

Owns: reading and validating a run's YAML (strategies, instruments — combos with `legs:` too —,
gateway, simulator, duration, logging, state_dir). The schema is pydantic models (ibframe.config.schema,
and each section's own module for risk/journal/connection/pacing); every way a file can be wrong ends in
one ConfigError line `file:line: key: message`. Never connects anywhere or imports strategy code.

    results.py  RunConfig, StrategyConfig, GatewayConfig, SimSettings (what the rest of ibframe reads)
    types.py    durations, ports, paths, the strict base model
    schema.py   the top-level, strategy, gateway, sim and orders models
    errors.py   ConfigError, YAML line numbers, pydantic errors as one-line messages
    load.py     load_config
"""
from __future__ import annotations

from .errors import ConfigError, Lines
from .load import check_live_port, gateway_option, load_config
from .results import ACK_TIMEOUT, LIVE_PORTS, GatewayConfig, RunConfig, SimSettings, StrategyConfig
from .types import DURATION, UNITS, Section, parse_duration

_Lines = Lines                         # the name this class had before the package split

__all__ = ["ACK_TIMEOUT", "ConfigError", "DURATION", "GatewayConfig", "LIVE_PORTS", "Lines", "RunConfig", "Section",
           "SimSettings", "StrategyConfig", "UNITS", "check_live_port", "gateway_option", "load_config",
           "parse_duration"]
