"""The NBBO at the moments execution quality needs: an order's arrival, each fill, and periodic marks.

Owns: `NbboMarks`, which watches the order manager's hooks and tells its own `hooks` (the journal) the
quote at each such moment, saying where it came from:

* arrival: the strategy's streaming line when one was open (the Trade already carries it, and the journal's
  order row stores it), else a one-off reqMktData snapshot this module takes as the order is sent
  ("every order gets one"); the snapshot's bid/ask also land on the Trade (`arrival_bid` / `arrival_ask`);
* fill: the instrument's live line when the execution arrives, else a snapshot; an execution TWS reports
  late (`Fill.late`: an answer to reqExecutions, after a restart or a reconnect) gets none, since the
  quote now says nothing about a fill made then;
* sample: every live line's quote, on a timer the journal sets (`sample`), when it changed since the last.

One snapshot per instrument is in flight at a time; orders and fills arriving meanwhile share its answer.
A snapshot TWS refuses (no permissions, unknown contract) or never ends leaves the moment without a quote:
TCA then says "no arrival quote" rather than use a made-up one.

Must never: delay or block an order (snapshots are asked after placeOrder went out), raise into the order
manager's hooks, or touch the engine beyond its narrow `QuoteSource` interface.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ibapi.contract import Contract

log = logging.getLogger("ibframe.nbbo")

STALE_SNAPSHOT = 15.0      # seconds: a snapshot still unanswered after this no longer holds others back


class QuoteSource(Protocol):
    """What NbboMarks needs from the engine."""

    def live_quote(self, con_id: int): ...                     # the open line's Quote, or None

    def live_quotes(self) -> list[tuple[Contract, object]]: ...  # (contract, Quote) of every open line

    def snapshot(self, contract: Contract, on_done=None): ...  # a Request whose future resolves with a Quote


# hook(why, source, contract, quote, trade_or_None, exec_id_or_None, order_id_or_None)
Hook = Callable[[str, str, Contract, object, object, object, object], None]


@dataclass
class _Pending:
    """One snapshot in flight for an instrument, and who waits for its answer."""
    asked: float
    waiting: list[tuple[str, object, object, object]] = field(default_factory=list)  # (why, trade, exec_id, order_id)


class NbboMarks:
    def __init__(self, source: QuoteSource, now: Callable[[], float], snapshots: bool = True):
        self.source = source
        self.now = now
        self.snapshots = snapshots
        self.hooks: list[Hook] = []
        self._pending: dict[int, _Pending] = {}
        self._sampled: dict[int, tuple] = {}          # conId -> (bid, ask, last) of its latest sample
        self.snapshots_taken = 0

    # --- the order manager's hooks (dispatch thread) ---------------------------------------------------
    def on_sent(self, trade, action: str) -> None:
        """A placeOrder went out: an arrival quote for it if the strategy had no live line."""
        if action != "place" or trade.contract.secType == "BAG":
            return
        if trade.arrival_bid is not None or trade.arrival_ask is not None:
            return                              # the live line's quote: the order row carries it
        self._ask(trade.contract, ("arrival", trade, None, trade.order_id))

    def on_execution(self, trade, fill, execution) -> None:
        """An execution arrived: the NBBO now, from the live line or a snapshot (not for late reports)."""
        contract = fill.contract
        if contract is None or contract.secType == "BAG" or fill.late:
            return
        quote = self.source.live_quote(contract.conId)
        moment = ("fill", trade, execution.execId, execution.orderId)
        if quote is not None and (quote.bid is not None or quote.ask is not None):
            self._tell("line", contract, quote, moment)
        else:
            self._ask(contract, moment)

    def sample(self) -> None:
        """Every live line's quote as a 'sample' mark (a dispatcher timer calls this); a line whose bid, ask
        and last are what the previous sample saw is left out (a quiet instrument writes nothing)."""
        for contract, quote in self.source.live_quotes():
            seen = (quote.bid, quote.ask, quote.last)
            if seen == (None, None, None) or self._sampled.get(contract.conId) == seen:
                continue
            self._sampled[contract.conId] = seen
            self._tell("line", contract, quote, ("sample", None, None, None))

    # --- snapshots -------------------------------------------------------------------------------------
    def _ask(self, contract: Contract, moment: tuple) -> None:
        if not self.snapshots or not contract.conId:
            return
        pending = self._pending.get(contract.conId)
        now = self.now()
        if pending is not None and now - pending.asked < STALE_SNAPSHOT:
            pending.waiting.append(moment)
            return
        pending = self._pending[contract.conId] = _Pending(now, [moment])
        self.snapshots_taken += 1
        try:
            self.source.snapshot(contract, on_done=lambda fut: self._answered(contract, pending, fut))
        except Exception:
            log.exception("NBBO snapshot of %s could not be asked", contract.symbol)
            self._pending.pop(contract.conId, None)

    def _answered(self, contract: Contract, pending: _Pending, fut) -> None:
        if self._pending.get(contract.conId) is pending:
            del self._pending[contract.conId]
        if fut.cancelled() or fut.exception() is not None:
            log.info("no NBBO snapshot for %s (%s): its %d order/fill moment(s) keep no quote", contract.symbol,
                     "cancelled" if fut.cancelled() else fut.exception(), len(pending.waiting))
            return
        quote = fut.result()
        if quote.bid is None and quote.ask is None:
            return
        for moment in pending.waiting:
            why, trade = moment[0], moment[1]
            if why == "arrival" and trade is not None and trade.arrival_bid is None and trade.arrival_ask is None:
                trade.arrival_bid, trade.arrival_ask = quote.bid, quote.ask
            self._tell("snapshot", contract, quote, moment)

    def _tell(self, source: str, contract: Contract, quote, moment: tuple) -> None:
        why, trade, exec_id, order_id = moment
        for hook in list(self.hooks):
            try:
                hook(why, source, contract, quote, trade, exec_id, order_id)
            except Exception:
                log.exception("an NBBO hook failed (%s %s)", why, contract.symbol)
