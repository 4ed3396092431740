"""Faults on demand: what a real gateway does to a client on a bad day, injected when asked.

Owns: the control API (`control`: `gateway.faults`, the fault record and the per-connection write
path) and the YAML fault scenarios it runs (`scenarios`).

Must never: change the market, decide anything about orders (the broker does), or use randomness.
"""
