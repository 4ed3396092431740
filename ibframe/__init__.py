"""ibframe: algorithmic trading on Interactive Brokers, on top of the official ibapi client."""
__version__ = "0.1.0"
