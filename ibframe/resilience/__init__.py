"""Surviving disconnects: the connection supervisor, its settings, data-farm staleness, the connected rule."""
from .config import ConnectionConfig, parse_on_disconnect
from .supervisor import ConnectionSupervisor, Outage

__all__ = ["ConnectionConfig", "ConnectionSupervisor", "Outage", "parse_on_disconnect"]
