"""(being written) The paper broker: orders, matching against the simulated book, lifecycle messages."""
from __future__ import annotations


class Broker:
    def __init__(self, gateway):
        self.gateway = gateway

    def on_step(self, events) -> None:
        """Called after every market step with {conId: StepEvents}."""

    def on_client_connected(self, session) -> None:
        """Re-send the open orders of this clientId, as TWS does after a reconnect."""

    def to_state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass
