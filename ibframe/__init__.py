"""ibframe: algorithmic trading on Interactive Brokers, on top of the official ibapi client.

`from ibframe import Strategy` is loaded lazily so that `ibframe.sim`, which must stand apart
from the framework core, can be imported without pulling the core in.
"""
__version__ = "0.1.0"
__all__ = ["Strategy", "__version__"]


def __getattr__(name):
    if name == "Strategy":
        from .strategy import Strategy
        return Strategy
    raise AttributeError(f"module 'ibframe' has no attribute {name!r}")
