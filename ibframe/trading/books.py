"""Per-strategy books: what each strategy itself holds, from its own fills only.

Owns: one strategy's net position per instrument (conId), average cost, realized P&L (before
commissions) and commissions, and its net count of each combo it traded; P&L marked to a price;
a DataFrame view. A fill belongs to the strategy that placed its order: the Trade's `strategy`,
else the execution's `orderRef` (orders placed before a restart come back with it). A combo
counts per leg (its leg executions) and, separately, as a number of combos (its BAG executions).

Must never: read the account's positions (that is the Portfolio's), talk to TWS, or change the
executions it reads. It folds the order manager's executions lazily when read (under a lock, so a
test or user thread reading a position cannot fold a fill twice).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pandas as pd
from ibapi.contract import Contract

from ..contracts import label
from .trade import Fill, Trade

EPS = 1e-9


def multiplier(contract: Contract | None) -> float:
    """Price multiplier: 100 for a US equity option, 50 for ES, 1 for stocks, FX and bonds."""
    if contract is None or contract.secType not in ("OPT", "FOP", "FUT", "WAR"):
        return 1.0
    try:
        return float(contract.multiplier or 1) or 1.0
    except ValueError:
        return 1.0


def combo_key(contract: Contract) -> tuple:
    """A combo's identity: its legs (conId, ratio, action), whatever the BAG's own conId (0)."""
    return ("BAG",) + tuple(sorted((leg.conId, leg.ratio, leg.action) for leg in contract.comboLegs or []))


@dataclass(slots=True)
class Holding:
    """A strategy's own holding of one instrument (or one combo)."""
    contract: Contract
    quantity: float = 0.0
    avg_cost: float = 0.0          # per unit, before the multiplier (as a price)
    realized_pnl: float = 0.0      # closed quantity × (exit − average cost) × multiplier, before commissions
    fills: list[Fill] = field(default_factory=list)

    @property
    def commission(self) -> float:
        return sum(f.commission or 0.0 for f in self.fills)

    @property
    def last_price(self) -> float | None:
        return self.fills[-1].price if self.fills else None

    def add(self, fill: Fill, mult: float) -> None:
        signed = fill.shares if fill.side == "BOT" else -fill.shares
        q = self.quantity
        if abs(q) < EPS or (q > 0) == (signed > 0):                 # opening or adding
            total = abs(q) + abs(signed)
            self.avg_cost = (self.avg_cost * abs(q) + fill.price * abs(signed)) / total if total else 0.0
        else:                                                       # reducing, closing or flipping
            closed = min(abs(signed), abs(q))
            self.realized_pnl += closed * (fill.price - self.avg_cost) * (1.0 if q > 0 else -1.0) * mult
            if abs(signed) > abs(q) + EPS:
                self.avg_cost = fill.price
        self.quantity = round(q + signed, 9)
        if abs(self.quantity) < EPS:
            self.quantity, self.avg_cost = 0.0, 0.0
        self.fills.append(fill)

    def pnl(self, mark: float | None, mult: float) -> float:
        """Realized + open quantity marked at `mark` (the last fill's price when None), less commissions."""
        price = mark if mark is not None else self.last_price
        unrealized = self.quantity * (price - self.avg_cost) * mult if price is not None and self.quantity else 0.0
        return self.realized_pnl + unrealized - self.commission


class Book:
    """One strategy's own positions, folded from the order manager's executions when read.

    `executions` is the order manager's append-only list of (Trade or None, Fill), one per execution in
    arrival order, so the book reads each new entry once.
    """

    def __init__(self, owner: str, executions: Sequence[tuple[Trade | None, Fill]]):
        self.owner = owner
        self._executions = executions
        self._read = 0
        self._lock = threading.Lock()
        self._holdings: dict[int, Holding] = {}
        self._combos: dict[tuple, Holding] = {}

    def _sync(self) -> None:
        if len(self._executions) == self._read:
            return
        with self._lock:
            new = self._executions[self._read:]
            for trade, fill in new:
                self._fold(trade, fill)
            self._read += len(new)

    def _fold(self, trade: Trade | None, fill: Fill) -> None:
        owner = trade.strategy if trade is not None and trade.strategy else fill.order_ref
        if owner != self.owner:
            return
        contract = fill.contract if fill.contract is not None else (trade.contract if trade else None)
        if contract is None:
            return
        if contract.secType == "BAG":
            if trade is not None and trade.contract.comboLegs:      # a foreign BAG fill names no legs
                key = combo_key(trade.contract)
                self._combos.setdefault(key, Holding(trade.contract)).add(fill, 1.0)
            return
        con_id = contract.conId or (trade.contract.conId if trade is not None else 0)
        if trade is not None and not trade.is_combo and trade.contract.conId == con_id:
            contract = trade.contract                              # the qualified one: multiplier, exchange
        self._holdings.setdefault(con_id, Holding(contract)).add(fill, multiplier(contract))

    # --- reading --------------------------------------------------------------------------------
    def position(self, contract: Contract) -> float:
        """Net quantity this strategy holds (for a BAG: net number of combos)."""
        holding = self.holding(contract)
        return holding.quantity if holding is not None else 0.0

    def holding(self, contract: Contract) -> Holding | None:
        self._sync()
        if contract.secType == "BAG":
            return self._combos.get(combo_key(contract))
        return self._holdings.get(contract.conId)

    def holdings(self) -> dict[int, Holding]:
        """conId → Holding for every instrument the strategy traded (combo legs included)."""
        self._sync()
        return dict(self._holdings)

    def combos(self) -> dict[tuple, Holding]:
        self._sync()
        return dict(self._combos)

    def pnl(self, con_id: int, mark: float | None = None) -> float | None:
        """P&L of one instrument, marked at `mark` (else at its last fill); None if never traded."""
        holding = self.holdings().get(con_id)
        return None if holding is None else holding.pnl(mark, multiplier(holding.contract))

    def to_frame(self, marks: Mapping[int, float] | None = None) -> pd.DataFrame:
        """One row per instrument: quantity, avg_cost, realized_pnl, commission, mark and pnl."""
        marks = marks or {}
        rows = []
        for con_id, h in self.holdings().items():
            mark = marks.get(con_id)
            rows.append({"instrument": label(h.contract), "conId": con_id, "quantity": h.quantity,
                         "avg_cost": h.avg_cost, "realized_pnl": h.realized_pnl, "commission": h.commission,
                         "mark": mark if mark is not None else h.last_price,
                         "pnl": h.pnl(mark, multiplier(h.contract))})
        return pd.DataFrame(rows, columns=["instrument", "conId", "quantity", "avg_cost", "realized_pnl",
                                           "commission", "mark", "pnl"])
