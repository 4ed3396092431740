"""Synthetic and recorded price history (placeholder until the history feed lands)."""


def session_stats(gateway, inst):
    return None
