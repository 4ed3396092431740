"""ibframe.sim: a simulated TWS / IB Gateway that speaks the real TWS API socket protocol.

It stands apart from the framework: nothing here imports ibframe's core, and any TWS API
client (the official ibapi, ib_async, ...) can connect to it as to a paper gateway.
"""
from .server import SimConfig, SimGateway

__all__ = ["SimConfig", "SimGateway"]
