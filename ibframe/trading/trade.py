"""A Trade: one order and everything TWS said about it, updated in place.

Owns: the order's status, fills (with commissions) and the NBBO at arrival, so execution
quality can be measured. A combo's `fills` are the BAG's own (combo quantity, net price) and its
`leg_fills` the legs' (each with its leg contract). Updated only on the dispatch thread by the order manager.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from ibapi.contract import Contract
from ibapi.order import Order

DONE_STATES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})


def quantity_text(quantity) -> str:
    """A quantity as people write it: 1000000, 0.5, 100 (never 1e+06 or 100.0)."""
    try:
        text = format(Decimal(str(quantity)).normalize(), "f")
    except (InvalidOperation, ValueError):
        return str(quantity)
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(slots=True)
class Fill:
    exec_id: str
    time: str
    side: str                 # BOT / SLD
    shares: float
    price: float
    exchange: str
    commission: float | None = None
    realized_pnl: float | None = None
    contract: Contract | None = None   # what was traded: the instrument, a combo leg's, or the BAG itself
    order_ref: str = ""                # the placing strategy (orderRef), also for orders from before a restart
    late: bool = False                 # reported in answer to reqExecutions (a reconciliation), not as it happened


@dataclass(slots=True)
class Trade:
    order_id: int
    contract: Contract
    order: Order
    strategy: str = ""
    status: str = "PendingSubmit"
    filled: float = 0.0
    remaining: float = 0.0
    avg_fill_price: float = 0.0
    perm_id: int = 0
    fills: list[Fill] = field(default_factory=list)
    errors: list = field(default_factory=list)
    arrival_bid: float | None = None
    arrival_ask: float | None = None
    placed_at: float = 0.0
    leg_fills: list[Fill] = field(default_factory=list)   # a combo's per-leg executions (fills: the BAG's, at net)
    reason: str = ""                   # why it ended when TWS refused or cancelled it (or never answered)
    acknowledged: bool = False         # TWS answered with openOrder / orderStatus: it accepted the order
    unacknowledged: bool = False       # no answer within the manager's ack_timeout: being reconciled with TWS
    pending: Order | None = None       # a modification sent and not yet confirmed by TWS

    @property
    def is_combo(self) -> bool:
        return self.contract.secType == "BAG"

    @property
    def done(self) -> bool:
        return self.status in DONE_STATES

    @property
    def commission(self) -> float:
        return sum(f.commission or 0.0 for f in self.fills + self.leg_fills)

    @property
    def arrival_price(self) -> float | None:
        """The far side of the NBBO when the order was placed (ask for a buy, bid for a sell)."""
        return self.arrival_ask if self.order.action == "BUY" else self.arrival_bid

    @property
    def slippage_per_share(self) -> float | None:
        """Positive = better than the NBBO at arrival (price improvement), negative = worse."""
        if not self.fills or self.arrival_price is None:
            return None
        sign = 1.0 if self.order.action == "BUY" else -1.0
        return sign * (self.arrival_price - self.avg_fill_price)
