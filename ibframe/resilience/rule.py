"""The risk rule that refuses orders while the connection is down.

Owns: one `Rule` (ibframe.risk.base) asking the connection supervisor whether orders may go out now.
An order placed while TWS is unreachable is refused at once with a reason, never queued to fire later
when the market may have moved. Must never send, queue or hold orders.
"""
from __future__ import annotations

import time

from ..risk.base import OrderIntent, Refusal


class ConnectedRule:
    name = "connection"

    def __init__(self, supervisor):
        self.supervisor = supervisor         # reads `state`, `down_since` and the last outage's reason

    def check(self, intent: OrderIntent) -> Refusal | None:
        sup = self.supervisor
        if sup.state == "connected":
            return None
        since = sup.down_since
        when = time.strftime("%H:%M:%S", time.localtime(since)) if since else "?"
        why = sup.outages[-1].reason if sup.outages else sup.state
        return Refusal("connection", "connected to TWS and IB", f"{sup.state} since {when} ({why})",
                       "nothing was sent and nothing will be sent later: place the order again from "
                       "on_reconnected() if it still makes sense")
