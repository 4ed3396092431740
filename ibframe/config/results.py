"""What a loaded run config is: the plain dataclasses the rest of ibframe reads (and tests build by hand).

Owns: RunConfig, StrategyConfig, GatewayConfig, SimSettings and their defaults. Must never validate
(ibframe.config.schema does, before these are built) or read files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ibapi.contract import Contract

LIVE_PORTS = (7496, 4001)
ACK_TIMEOUT = 10.0                    # default seconds TWS may take to acknowledge an order


@dataclass(slots=True)
class StrategyConfig:
    class_path: str                   # "module:Class"
    name: str
    params: dict[str, Any]
    instruments: dict[str, Contract]
    on_disconnect: float | None = None   # None: leave working orders at IB; N: cancel them if down longer than N s
    leftovers: str | None = None      # an earlier run's working orders: cancel | adopt | leave; None: the run's
    yaml_path: tuple = ()             # where this section is in its YAML, e.g. ("strategies", 1); () built in code
    param_lines: dict = field(default_factory=dict)   # key path under params: -> line, for params errors


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
    ack_timeout: float = ACK_TIMEOUT  # seconds TWS may take to answer a placeOrder before ibframe reconciles
    on_stop: str = "cancel"           # working orders at the end of a run: "cancel" them or "leave" them working
    gc: str = "freeze"                # the collector after start-up (ibframe.gc_policy): "freeze" or "default"
    leftovers: str = "cancel"         # an earlier run's working orders at start (orders.leftovers): cancel|adopt|leave
    risk: Any = None                  # ibframe.risk.config.RiskConfig (the `risk:` section; defaults when absent)
    journal: Any = None               # ibframe.journal.config.JournalConfig (the `journal:` section)
    connection: Any = None            # ibframe.resilience.config.ConnectionConfig (the `connection:` section)
    pacing: Any = None                # ibframe.pacing.PacingLimits (the `pacing:` section; IB's limits when absent)
