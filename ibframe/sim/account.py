"""(being written) The simulated accounts: cash, positions, P&L, margin, day trades."""
from __future__ import annotations


class Ledger:
    def __init__(self, gateway, specs):
        self.gateway = gateway
        self.specs = specs

    def on_step(self, events) -> None:
        """Called after every market step with {conId: StepEvents}."""

    def to_state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass
