"""Price shocks on demand: move one instrument's simulated price at once (a gap, a crash, a squeeze).

Owns: `shock_price(gateway, con_id, price=..., factor=...)`, the one control tests and demos use to
move a market: it sets the instrument's mid on the gateway's loop; the next market step re-centres
the book there (quotes, marks, account values and margin follow, as after any move). Callable from
any thread (it runs on the gateway's loop through `gateway.call`).

Must never: touch orders, accounts or sessions directly, or use randomness (the market's own
process keeps its seeded draws; a shock only moves the level it starts from).
"""
from __future__ import annotations

import math


def shock_price(gateway, con_id: int, price: float | None = None, factor: float | None = None) -> float:
    """Move a root instrument's mid to `price`, or by `factor` (0.8 = down 20 %). Returns the new mid.

    ValueError when the instrument has no price process of its own (options follow their underlying:
    shock the underlying) or the target is not a positive finite price."""
    if (price is None) == (factor is None):
        raise ValueError("shock_price: give exactly one of price= or factor=")

    def run() -> float:
        market = gateway.market.get(con_id)
        if market is None:
            raise ValueError(f"shock_price: conId {con_id} has no price process of its own (an option or an "
                             f"unknown conId): shock its underlying")
        target = float(price) if price is not None else market.mid * float(factor)
        if not math.isfinite(target) or target <= 0:
            raise ValueError(f"shock_price: the new price must be positive and finite, got {target!r}")
        market.mid = target
        return target
    return gateway.call(run)
